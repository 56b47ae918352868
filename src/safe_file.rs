//! Saving without harm: every file simdnet writes (models, checkpoints, the
//! tuning file, histories, charts, images) goes through [`write_atomic`].
//!
//! - The destination must be absent or a regular, writable file with one
//!   link: a symbolic link, folder, device node, FIFO or socket is refused
//!   and left untouched, and so are read-only files and hard-linked ones.
//! - [`check_destination`] runs the same checks (and a trial creation in
//!   the folder) so that a command can refuse a bad path before long work.
//! - The bytes go to a temporary file beside the destination, named at
//!   random and created exclusively (`O_CREAT|O_EXCL` never follows a
//!   symbolic link planted at that name), synced, renamed over the
//!   destination, and the folder is synced. On any error, and on a second
//!   Ctrl-C ([`crate::interrupt`]), the temporary file is removed.
//! - Errors name the path the user gave, never the temporary one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::interrupt::TempFile;

/// Tries at a fresh random name before giving up on creating the temporary file.
const TEMP_TRIES: usize = 16;

fn refuse(path: &Path, what: &str, problem: impl Into<String>) -> Error {
    Error::Save {
        path: path.to_path_buf(),
        what: what.to_string(),
        problem: problem.into(),
    }
}

/// The folder that holds `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Why an I/O error happened, in words, with the fix.
fn explain(e: &io::Error, folder: &Path) -> String {
    match e.raw_os_error() {
        Some(28) => format!("the disk is full ({e}); free some space or choose another folder"),
        Some(30) => format!("the file system is read-only ({e}); choose another folder"),
        _ if e.kind() == io::ErrorKind::PermissionDenied => format!(
            "no permission to write in '{}' ({e}); choose a folder you can write to",
            folder.display()
        ),
        _ => format!("{e}"),
    }
}

/// Checks, without writing it, that `path` can receive a `what` (e.g.
/// "model"): its folder exists and takes new files, and nothing but an
/// absent path or a regular, writable, singly-linked file is there.
pub fn check_destination(path: &Path, what: &str) -> Result<()> {
    check_target(path, what)?;
    // A trial creation proves the folder takes new files (permissions,
    // read-only mounts, quotas of zero) before any long work starts.
    let (file, tmp) = create_temp(path, what)?;
    drop(file);
    let _ = fs::remove_file(&tmp);
    Ok(())
}

/// The checks on the path itself; returns the permissions to give the new file.
fn check_target(path: &Path, what: &str) -> Result<Option<fs::Permissions>> {
    let name_ok = path.file_name().is_some_and(|n| n != "." && n != "..");
    if !name_ok || path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(refuse(
            path,
            what,
            "the path names a folder, not a file; add a file name",
        ));
    }
    let folder = folder_of(path);
    match fs::metadata(&folder) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(refuse(
                path,
                what,
                format!("'{}' is not a folder", folder.display()),
            ))
        }
        Err(_) => {
            return Err(refuse(
                path,
                what,
                format!(
                    "the folder '{}' does not exist; create it (mkdir -p '{}') or choose another path",
                    folder.display(),
                    folder.display()
                ),
            ))
        }
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(refuse(path, what, explain(&e, &folder))),
    };
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err(refuse(
            path,
            what,
            "it is a symbolic link, and simdnet never writes through one; give the file's real path or remove the link",
        ));
    }
    if ft.is_dir() {
        return Err(refuse(path, what, "it is a folder; add a file name"));
    }
    if !ft.is_file() {
        return Err(refuse(
            path,
            what,
            "it is not a regular file (a device, FIFO or socket), and simdnet replaces only regular files; choose another path",
        ));
    }
    if meta.permissions().readonly() {
        return Err(refuse(
            path,
            what,
            "the file is read-only; make it writable (chmod u+w) or choose another path",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(refuse(
                path,
                what,
                format!(
                    "the file has {} hard links, and replacing it would split them; choose another path",
                    meta.nlink()
                ),
            ));
        }
    }
    Ok(Some(meta.permissions()))
}

/// Creates a fresh temporary file beside `path`, exclusively, at a random name.
fn create_temp(path: &Path, what: &str) -> Result<(File, PathBuf)> {
    let folder = folder_of(path);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let mut last = None;
    for _ in 0..TEMP_TRIES {
        let tmp = folder.join(format!(".{name}.{:016x}.simdnet-tmp", rand::random::<u64>()));
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(refuse(path, what, explain(&e, &folder))),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::other("no free temporary name"));
    Err(refuse(path, what, explain(&e, &folder)))
}

/// Writes `bytes` to `path` atomically and safely (see the module docs);
/// `what` names the file in errors ("model", "checkpoint", ...).
pub fn write_atomic(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    let perms = check_target(path, what)?;
    let folder = folder_of(path);
    let (mut file, tmp) = create_temp(path, what)?;
    let _registered = TempFile::new(&tmp);
    let written = (|| -> io::Result<()> {
        file.write_all(bytes)?;
        let mode = match perms {
            Some(p) => p,
            None => default_permissions(&file)?,
        };
        file.set_permissions(mode)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable. Some file systems cannot sync a
        // folder; the data is already on disk then, so that is not an error.
        if let Ok(dir) = File::open(&folder) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(refuse(path, what, explain(&e, &folder)));
    }
    Ok(())
}

/// Permissions for a new file: readable by all, writable by the owner
/// (`rw-r--r--`, what most tools create under the usual umask).
fn default_permissions(file: &File) -> io::Result<fs::Permissions> {
    #[cfg(unix)]
    {
        let _ = file;
        use std::os::unix::fs::PermissionsExt;
        Ok(fs::Permissions::from_mode(0o644))
    }
    #[cfg(not(unix))]
    {
        file.metadata().map(|m| m.permissions())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("simdnet-safe-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_and_replaces_a_regular_file() {
        let d = scratch("replace");
        let p = d.join("m.bin");
        write_atomic(&p, b"one", "model").unwrap();
        write_atomic(&p, b"two", "model").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn refuses_a_folder_and_a_missing_folder() {
        let d = scratch("folder");
        let e = write_atomic(&d, b"x", "model").unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        let e = check_destination(&d.join("nope/m.bin"), "model")
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
