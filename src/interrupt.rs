//! Ctrl-C and SIGTERM: ask long work to stop at a safe point, and never
//! leave a half-written file behind.
//!
//! After [`install`], the first SIGINT or SIGTERM only sets a flag
//! ([`requested`]) that the training loop reads after every mini-batch; it
//! then stops, saves what it was asked to save, and exits non-zero. A second
//! signal ends the process at once: the handler first removes the temporary
//! file that [`crate::safe_file`] may be writing (registered with
//! [`TempFile`]), so no partial file survives.
//!
//! The handler does only async-signal-safe things: atomic loads and stores,
//! `write(2)`, `unlink(2)` and `_exit(2)`.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};

static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The last signal received (0: none since [`clear`]).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The temporary file being written, as a NUL-terminated path (null: none).
static TEMP: AtomicPtr<std::ffi::c_char> = AtomicPtr::new(std::ptr::null_mut());

/// SIGINT (Ctrl-C) and SIGTERM (`kill`), the same on Linux, macOS and the BSDs.
pub const SIGINT: i32 = 2;
/// SIGTERM (`kill`'s default signal).
pub const SIGTERM: i32 = 15;

#[cfg(unix)]
mod sys {
    use std::ffi::{c_char, c_int};
    extern "C" {
        pub fn signal(signum: c_int, handler: usize) -> usize;
        pub fn write(fd: c_int, buf: *const u8, count: usize) -> isize;
        pub fn unlink(path: *const c_char) -> c_int;
        pub fn _exit(code: c_int) -> !;
    }
}

#[cfg(unix)]
extern "C" fn on_signal(sig: std::ffi::c_int) {
    let first = SIGNAL.swap(sig, Ordering::SeqCst) == 0;
    if first {
        const MSG: &[u8] = b"\nStopping after this mini-batch (press Ctrl-C again to quit at once).\n";
        // SAFETY: write(2) is async-signal-safe; MSG is a valid buffer.
        unsafe { sys::write(2, MSG.as_ptr(), MSG.len()) };
        return;
    }
    let temp = TEMP.swap(std::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: `temp` is null or a NUL-terminated path leaked by `TempFile::new`
    // and never freed while registered; unlink(2) and _exit(2) are
    // async-signal-safe.
    unsafe {
        if !temp.is_null() {
            sys::unlink(temp);
        }
        sys::_exit(128 + sig);
    }
}

/// Routes SIGINT and SIGTERM to the stop flag (idempotent). Until it is
/// called the signals keep their default action: end the process.
pub fn install() {
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    #[cfg(unix)]
    // SAFETY: `on_signal` is an `extern "C" fn(c_int)`, the handler type
    // signal(2) expects, and does only async-signal-safe work.
    unsafe {
        let handler = on_signal as extern "C" fn(std::ffi::c_int) as usize;
        sys::signal(SIGINT, handler);
        sys::signal(SIGTERM, handler);
    }
}

/// Whether a stop was requested (a signal arrived since [`clear`]).
pub fn requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// The signal that requested the stop, if one did.
pub fn signal() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Forgets a requested stop.
pub fn clear() {
    SIGNAL.store(0, Ordering::SeqCst);
}

/// Requests a stop as a signal would (for tests and for library callers
/// that want to stop training from another thread).
pub fn request() {
    let _ = SIGNAL.compare_exchange(0, SIGINT, Ordering::SeqCst, Ordering::SeqCst);
}

/// Registers a temporary file for removal if a second signal ends the
/// process while it exists; unregisters it when dropped. One at a time:
/// while one is registered, a second registration does nothing (files are
/// saved one after another).
pub struct TempFile {
    ptr: *mut std::ffi::c_char,
}

impl TempFile {
    /// Registers `path` (a path with a NUL byte cannot exist, so it is skipped).
    pub fn new(path: &std::path::Path) -> TempFile {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) {
                let ptr = c.into_raw();
                if TEMP
                    .compare_exchange(std::ptr::null_mut(), ptr, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    // Another file is registered: keep that one.
                    // SAFETY: `ptr` came from `into_raw` just above and was never shared.
                    drop(unsafe { std::ffi::CString::from_raw(ptr) });
                    return TempFile {
                        ptr: std::ptr::null_mut(),
                    };
                }
                return TempFile { ptr };
            }
        }
        let _ = path;
        TempFile {
            ptr: std::ptr::null_mut(),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.ptr.is_null() {
            return;
        }
        if TEMP
            .compare_exchange(self.ptr, std::ptr::null_mut(), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            // SAFETY: we own `ptr` (from `CString::into_raw`) and it is no
            // longer registered, so the handler cannot see it.
            drop(unsafe { std::ffi::CString::from_raw(self.ptr) });
        }
    }
}
