//! Reading a file the user named without hanging or running out of memory:
//! the counterpart of [`crate::safe_file`], used by every reader of a whole
//! file (model, checkpoint, grid file, image, tuning file).
//!
//! - [`open_regular`] looks at the path before opening it (opening a FIFO
//!   waits for a writer, and a device such as `/dev/zero` never ends), then
//!   at what was opened (the path may have been replaced in between).
//! - [`read_at_most`] reads no more than a limit, whatever size the file
//!   claimed when it was opened, so a file that grows is caught too.
//!
//! The data files are not read this way: the IDX reader accepts pipes and
//! devices on purpose and bounds its read by the header instead.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

/// What stands at a path that is not a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRegular {
    /// A folder.
    Folder,
    /// A device, a FIFO or a socket.
    Special,
}

impl fmt::Display for NotRegular {
    /// The phrase that follows "it is" in a message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotRegular::Folder => "a folder",
            NotRegular::Special => "not a regular file (a device, a pipe or a socket)",
        })
    }
}

fn kind(meta: &fs::Metadata) -> Option<NotRegular> {
    if meta.is_file() {
        None
    } else if meta.is_dir() {
        Some(NotRegular::Folder)
    } else {
        Some(NotRegular::Special)
    }
}

/// Opens `path` for reading if it is a regular file, and gives the file and
/// its length. A failure to look at it or to open it goes through `io`; a
/// path that is not a regular file goes through `not_regular`, and is not
/// even opened if it was seen to be one before opening.
pub fn open_regular<E>(
    path: &Path,
    io: impl Fn(io::Error) -> E,
    not_regular: impl Fn(NotRegular) -> E,
) -> Result<(File, u64), E> {
    if let Some(k) = kind(&fs::metadata(path).map_err(&io)?) {
        return Err(not_regular(k));
    }
    let file = File::open(path).map_err(&io)?;
    let meta = file.metadata().map_err(&io)?;
    match kind(&meta) {
        Some(k) => Err(not_regular(k)),
        None => Ok((file, meta.len())),
    }
}

/// Appends at most `max` bytes of `file` to `bytes` and tells whether that
/// was all of it (`false`: the file holds more than `max` bytes, and only
/// `max + 1` of them were read).
pub fn read_at_most(file: File, max: u64, bytes: &mut Vec<u8>) -> io::Result<bool> {
    let start = bytes.len() as u64;
    file.take(max.saturating_add(1)).read_to_end(bytes)?;
    Ok(bytes.len() as u64 - start <= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder holding the file `f` with `bytes`; gives both paths.
    fn folder_with_file(tag: &str, bytes: &[u8]) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("simdnet-safe-read-{tag}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        fs::write(&file, bytes).unwrap();
        (dir, file)
    }

    fn open(path: &Path) -> Result<u64, String> {
        open_regular(path, |e| format!("io: {}", e.kind()), |k| k.to_string()).map(|(_, len)| len)
    }

    #[test]
    fn only_a_regular_file_is_opened() {
        let (dir, file) = folder_with_file("open", b"12345");
        assert_eq!(open(&file), Ok(5));
        assert_eq!(open(&dir), Err("a folder".to_string()));
        assert_eq!(
            open(Path::new("/dev/null")),
            Err("not a regular file (a device, a pipe or a socket)".to_string())
        );
        assert_eq!(
            open(&dir.join("missing")),
            Err("io: entity not found".to_string())
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_read_stops_one_byte_past_the_limit() {
        let (dir, path) = folder_with_file("max", b"0123456789");
        for (max, whole, read) in [
            (10, true, 10),
            (11, true, 10),
            (9, false, 10),
            (3, false, 4),
            (0, false, 1),
        ] {
            let mut bytes = b"xy".to_vec();
            let all = read_at_most(File::open(&path).unwrap(), max, &mut bytes).unwrap();
            assert_eq!((all, bytes.len() - 2), (whole, read), "max {max}");
            assert_eq!(&bytes[..2], b"xy");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
