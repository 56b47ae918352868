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
//! - A save killed outright (SIGKILL) cannot clean up after itself; the
//!   next save to the same path removes such leftovers (this user's
//!   temporary files whose process is gone).
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
    let (file, tmp, _registered) = create_temp(path, what)?;
    drop(file);
    let _ = fs::remove_file(&tmp);
    Ok(())
}

/// Whether `path` names a folder by its spelling alone, whatever is there:
/// it has no file name (`.`, `..`, `a/..`, `/`), or it ends in `/` or `/.`,
/// which [`Path::file_name`] reads past (`a/.` has the file name `a`).
fn names_a_folder(path: &Path) -> bool {
    let text = path.as_os_str().as_encoded_bytes();
    path.file_name().is_none() || text.ends_with(b"/") || text.ends_with(b"/.")
}

/// The checks on the path itself; returns the permissions to give the new file.
fn check_target(path: &Path, what: &str) -> Result<Option<fs::Permissions>> {
    if names_a_folder(path) {
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
                format!("'{}' is not a folder; choose a path inside one", folder.display()),
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

/// The temporary files of saves to `path` start with this (`.NAME.`) and end
/// with [`TEMP_SUFFIX`]; between them, the writer's process id and a random number.
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    format!(".{name}.")
}

const TEMP_SUFFIX: &str = ".simdnet-tmp";

/// Opens `tmp` for writing only if nothing is there: `O_CREAT|O_EXCL` fails
/// on an existing name, a symbolic link (even a dangling one) included, so a
/// link planted at the name is never followed.
fn open_exclusive(tmp: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(tmp)
}

/// Creates a fresh temporary file beside `path`, exclusively, at a random
/// name, registered (the returned guard) for removal by a second signal.
fn create_temp(path: &Path, what: &str) -> Result<(File, PathBuf, TempFile)> {
    let folder = folder_of(path);
    remove_stale_temps(path, &folder);
    let prefix = temp_prefix(path);
    let mut last = None;
    for _ in 0..TEMP_TRIES {
        let tmp = folder.join(format!(
            "{prefix}{}.{:016x}{TEMP_SUFFIX}",
            std::process::id(),
            rand::random::<u64>()
        ));
        // Registered before it exists: a second Ctrl-C that lands between the
        // creation and a later registration (a thread preempted there on a
        // busy machine) would leave the file behind. The name is this
        // process's and random, so the handler can only unlink our file, or
        // nothing if it is not created yet.
        let registered = TempFile::new(&tmp);
        match open_exclusive(&tmp) {
            Ok(f) => return Ok((f, tmp, registered)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(refuse(path, what, explain(&e, &folder))),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::other("no free temporary name"));
    Err(refuse(path, what, explain(&e, &folder)))
}

/// Removes what a save to `path` killed outright (SIGKILL, power loss) left
/// behind: our own temporary files whose writer process is gone. Only on
/// systems with `/proc` (Linux), where a process's liveness can be seen, and
/// only entries owned by this user; a planted link is removed, not followed.
fn remove_stale_temps(path: &Path, folder: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if !Path::new("/proc/self").exists() {
            return;
        }
        let Ok(entries) = fs::read_dir(folder) else {
            return;
        };
        let prefix = temp_prefix(path);
        let me = std::process::id();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(middle) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(TEMP_SUFFIX))
            else {
                continue;
            };
            let Some(pid) = middle.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let full = entry.path();
            let owned = fs::symlink_metadata(&full)
                .is_ok_and(|m| (m.file_type().is_file() || m.file_type().is_symlink()) && m.uid() == euid());
            if owned {
                let _ = fs::remove_file(&full);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, folder);
}

#[cfg(unix)]
fn euid() -> u32 {
    extern "C" {
        fn geteuid() -> u32;
    }
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { geteuid() }
}

/// Writes `bytes` to `path` atomically and safely (see the module docs);
/// `what` names the file in errors ("model", "checkpoint", ...).
pub fn write_atomic(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    let perms = check_target(path, what)?;
    let folder = folder_of(path);
    let (mut file, tmp, _registered) = create_temp(path, what)?;
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

    /// A fresh folder in the system's temporary folder, removed when the
    /// test ends (passed or not): unit tests have no `CARGO_TARGET_TMPDIR`.
    struct Scratch(PathBuf);

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl AsRef<Path> for Scratch {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("simdnet-safe-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Scratch(d)
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

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_temporary_name_is_not_followed() {
        let d = scratch("planted");
        let victim = d.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let tmp = d.join(".m.bin.1.0.simdnet-tmp");
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let e = open_exclusive(&tmp).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        // A dangling link is not followed either (it would create its target).
        let dangling = d.join(".m.bin.1.1.simdnet-tmp");
        std::os::unix::fs::symlink(d.join("created"), &dangling).unwrap();
        assert!(open_exclusive(&dangling).is_err());
        assert!(!d.join("created").exists());
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[cfg(unix)]
    #[test]
    fn leftovers_of_a_dead_writer_are_removed_and_others_kept() {
        let d = scratch("stale");
        let p = d.join("m.bin");
        // Process ids above the kernel's maximum (2^22) never exist.
        let dead = d.join(format!(".m.bin.{}.00.simdnet-tmp", (1u32 << 22) + 7));
        let mine = d.join(format!(".m.bin.{}.00.simdnet-tmp", std::process::id()));
        let live = d.join(".m.bin.1.00.simdnet-tmp"); // process 1 always runs
        let other = d.join(".other.bin.4194311.00.simdnet-tmp");
        for f in [&dead, &mine, &live, &other] {
            fs::write(f, b"x").unwrap();
        }
        // Another user's leftover is theirs to remove: only root can make one here.
        let foreign = d.join(format!(".m.bin.{}.00.simdnet-tmp", (1u32 << 22) + 8));
        fs::write(&foreign, b"x").unwrap();
        let foreign_owned = std::os::unix::fs::chown(&foreign, Some(4242), Some(4242)).is_ok();
        write_atomic(&p, b"new", "model").unwrap();
        assert!(!dead.exists(), "a dead writer's temporary file is removed");
        assert!(
            mine.exists() && live.exists() && other.exists(),
            "live writers' files and other names are kept"
        );
        assert_eq!(
            foreign.exists(),
            foreign_owned,
            "a dead writer's file is removed only when it is this user's"
        );
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_folder() {
        assert_eq!(folder_of(Path::new("model.simdnet")), PathBuf::from("."));
        assert_eq!(folder_of(Path::new("runs/model.simdnet")), PathBuf::from("runs"));
        assert_eq!(folder_of(Path::new("/model.simdnet")), PathBuf::from("/"));
    }

    /// The failures a root-run test cannot provoke on the real file system
    /// (a full disk, a read-only mount, a folder without write permission)
    /// each get their own words and fix.
    #[test]
    fn io_errors_are_explained_with_their_fix() {
        let folder = Path::new("runs");
        let full = explain(&io::Error::from_raw_os_error(28), folder);
        assert!(
            full.starts_with("the disk is full (")
                && full.ends_with("); free some space or choose another folder"),
            "{full}"
        );
        let read_only = explain(&io::Error::from_raw_os_error(30), folder);
        assert!(
            read_only.starts_with("the file system is read-only (")
                && read_only.ends_with("); choose another folder"),
            "{read_only}"
        );
        let denied = explain(&io::Error::from(io::ErrorKind::PermissionDenied), folder);
        assert!(
            denied.starts_with("no permission to write in 'runs' (")
                && denied.ends_with("); choose a folder you can write to"),
            "{denied}"
        );
        let other = io::Error::other("the cable is out");
        assert_eq!(explain(&other, folder), "the cable is out");
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
