//! A decompressed copy of a large gzipped IDX file, kept next to it, so that
//! a second run skips the inflate (about 0.1 s for MNIST's training images,
//! single-threaded: a deflate stream cannot be split between threads).
//!
//! For `DIR/NAME.gz`, the copy is `DIR/.NAME.gz.simdnet-cache`:
//!
//! | offset | size | content                                                 |
//! |--------|------|---------------------------------------------------------|
//! | 0      | 8    | magic `simdnet1`                                        |
//! | 8      | 8    | the `.gz` file's size in bytes (little-endian `u64`)    |
//! | 16     | 8    | its modification time, seconds since 1970 (`i64`)      |
//! | 24     | 4    | and nanoseconds (`u32`)                                 |
//! | 28     | 8    | its last 8 bytes: the gzip trailer (CRC-32 and size of the decoded data) |
//! | 36     | 4    | `h`, the length of the IDX header (`u32`)               |
//! | 40     | h    | the IDX header, as decoded from the `.gz`               |
//! | 40 + h | rest | the IDX body                                            |
//!
//! The copy is used only if everything matches the `.gz` as it is now: its
//! size, modification time and trailer, the IDX header just decoded from it,
//! the body length the header promises; and the CRC-32 of the copy's header and
//! body, computed while reading it, equals the `.gz`'s trailer (the checksum
//! of the data the `.gz` decodes to). Anything else (a stale, truncated or
//! tampered copy, an unreadable one) is ignored silently and the `.gz` is
//! read as usual, which writes a fresh copy.
//!
//! A copy is written (with [`crate::safe_file::write_atomic`]) only after the
//! `.gz` has been read and fully checked (including gzip's own checksum), only
//! for a body of at least [`MIN_BODY`] bytes, and only for a single-member gzip
//! file (whose trailer is the checksum of all of its data). If the folder is
//! read-only, or writing fails for any reason, nothing is said: the cache is an
//! optimisation, never a requirement. Setting [`ENV_DISABLE`] (to anything but
//! `0` or empty) turns it off. Deleting the copies is always safe.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use flate2::Crc;

/// The environment variable that turns the cache off: `SIMDNET_NO_DATA_CACHE=1`.
pub const ENV_DISABLE: &str = "SIMDNET_NO_DATA_CACHE";
/// Smallest IDX body worth a cached copy: 1 MiB (MNIST's image files; the
/// label files inflate in well under a millisecond and are not cached).
pub const MIN_BODY: u64 = 1 << 20;
/// The file name suffix of a cached copy.
pub const SUFFIX: &str = ".simdnet-cache";

const MAGIC: &[u8; 8] = b"simdnet1";
/// Bytes before the IDX header: magic, size, seconds, nanoseconds, trailer, header length.
const FIXED: usize = 8 + 8 + 8 + 4 + 8 + 4;
/// Longest IDX header stored (4 bytes of magic and up to 255 sizes would be
/// more, but this module only serves image and label files: at most 16 bytes).
const MAX_IDX_HEADER: usize = 64;
/// Threads read and checksum a body in pieces of this many bytes.
const CRC_PIECE: usize = 4 << 20;

/// Whether [`ENV_DISABLE`] turns the cache off.
pub fn disabled() -> bool {
    std::env::var_os(ENV_DISABLE).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Where the cached copy of `gz` lives: `DIR/.NAME.simdnet-cache`.
pub fn path_for(gz: &Path) -> Option<PathBuf> {
    let name = gz.file_name()?.to_str()?;
    Some(gz.with_file_name(format!(".{name}{SUFFIX}")))
}

/// What identifies the `.gz` file a copy was made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    len: u64,
    secs: i64,
    nanos: u32,
    /// The gzip trailer: CRC-32 (little-endian) then the decoded size mod 2^32.
    trailer: [u8; 8],
}

impl Key {
    /// The key of the regular file `gz` as it is now (`meta` is that of the
    /// opened file); `None` if it cannot be read (then nothing is cached).
    pub fn of(gz: &Path, meta: &fs::Metadata) -> Option<Key> {
        if !meta.is_file() || meta.len() < 18 {
            return None;
        }
        let (secs, nanos) = match meta.modified().ok()?.duration_since(UNIX_EPOCH) {
            Ok(d) => (i64::try_from(d.as_secs()).ok()?, d.subsec_nanos()),
            Err(e) => (
                -i64::try_from(e.duration().as_secs()).ok()?,
                e.duration().subsec_nanos(),
            ),
        };
        let mut f = File::open(gz).ok()?;
        f.seek(SeekFrom::Start(meta.len() - 8)).ok()?;
        let mut trailer = [0u8; 8];
        f.read_exact(&mut trailer).ok()?;
        Some(Key {
            len: meta.len(),
            secs,
            nanos,
            trailer,
        })
    }

    fn crc(&self) -> u32 {
        u32::from_le_bytes([self.trailer[0], self.trailer[1], self.trailer[2], self.trailer[3]])
    }

    fn size_mod_2_32(&self) -> u32 {
        u32::from_le_bytes([self.trailer[4], self.trailer[5], self.trailer[6], self.trailer[7]])
    }

    fn to_bytes(self) -> [u8; FIXED - 4] {
        let mut b = [0u8; FIXED - 4];
        b[..8].copy_from_slice(MAGIC);
        b[8..16].copy_from_slice(&self.len.to_le_bytes());
        b[16..24].copy_from_slice(&self.secs.to_le_bytes());
        b[24..28].copy_from_slice(&self.nanos.to_le_bytes());
        b[28..36].copy_from_slice(&self.trailer);
        b
    }
}

/// A cached copy whose key and IDX header match, positioned at its body;
/// the body is not read (nor checked) yet.
pub struct Hit {
    file: File,
    /// Where the body starts in the file.
    body_at: u64,
    key: Key,
    /// CRC of the IDX header, to be continued over the body.
    crc: Crc,
}

/// Opens the cached copy of `gz` if its key is `key` and its IDX header is
/// `idx_header` (as just decoded from `gz`), and it holds exactly `body_len`
/// more bytes; else `None`.
pub fn open(gz: &Path, key: Key, idx_header: &[u8], body_len: u64) -> Option<Hit> {
    if disabled() || body_len < MIN_BODY {
        return None;
    }
    let mut file = File::open(path_for(gz)?).ok()?;
    let meta = file.metadata().ok()?;
    let expected_len = (FIXED + idx_header.len()) as u64 + body_len;
    if !meta.is_file() || meta.len() != expected_len {
        return None;
    }
    let mut fixed = [0u8; FIXED];
    file.read_exact(&mut fixed).ok()?;
    if fixed[..FIXED - 4] != key.to_bytes()[..] {
        return None;
    }
    let h = u32::from_le_bytes([fixed[36], fixed[37], fixed[38], fixed[39]]) as usize;
    if h != idx_header.len() || h > MAX_IDX_HEADER {
        return None;
    }
    let mut stored = [0u8; MAX_IDX_HEADER];
    file.read_exact(&mut stored[..h]).ok()?;
    if stored[..h] != *idx_header {
        return None;
    }
    let mut crc = Crc::new();
    crc.update(idx_header);
    let body_at = (FIXED + h) as u64;
    Some(Hit {
        file,
        body_at,
        key,
        crc,
    })
}

impl Hit {
    /// Reads the body into `data` (empty, with room for `body_len` bytes) and
    /// checks it against the `.gz`'s trailer. Returns whether `data` now holds
    /// the verified body; on `false` `data` is cleared (and keeps its room).
    ///
    /// The body is read in pieces of `CRC_PIECE` (4 MiB) on the rayon pool,
    /// each piece checksummed while it is still in cache. Most of a read
    /// into a fresh buffer is the kernel zeroing the pages it first touches
    /// (huge pages, see [`crate::huge_pages`]); one thread per piece shares
    /// that out. Measured on an AMD EPYC Zen 3 (2 threads), MNIST's 47 MB of
    /// training images, read and checksummed: 19-28 ms in one sequential
    /// read, 12-15 ms in pieces (5 runs each).
    pub fn read_body(mut self, data: &mut Vec<u8>, body_len: u64) -> bool {
        let ok = match usize::try_from(body_len) {
            Ok(len) if data.is_empty() && data.capacity() >= len => match self.read_pieces(data, len) {
                Some(body) => {
                    self.crc.combine(&body);
                    self.crc.sum() == self.key.crc() && self.crc.amount() == self.key.size_mod_2_32()
                }
                None => false,
            },
            _ => false,
        };
        if !ok {
            data.clear();
        }
        ok
    }

    /// Fills `data` with the `len` body bytes, piece by piece in parallel,
    /// and returns their CRC; `None` if a piece cannot be read in full.
    #[cfg(unix)]
    fn read_pieces(&self, data: &mut Vec<u8>, len: usize) -> Option<Crc> {
        use rayon::prelude::*;
        use std::os::unix::fs::FileExt;
        let body = data.spare_capacity_mut()[..len]
            .par_chunks_mut(CRC_PIECE)
            .enumerate()
            .map(|(i, piece)| {
                let piece = zeroed(piece);
                self.file
                    .read_exact_at(piece, self.body_at + (i * CRC_PIECE) as u64)
                    .ok()?;
                let mut c = Crc::new();
                c.update(piece);
                Some(c)
            })
            .try_reduce(Crc::new, |a, b| Some(combined(a, b)))?;
        // SAFETY: every piece was read in full, so every byte of the first
        // `len` was written by `zeroed` (and then by the read) above. (When a
        // read fails, `try_reduce` may stop before zeroing the other pieces:
        // the length is then left at 0.)
        unsafe { data.set_len(len) };
        Some(body)
    }

    /// [`read_pieces`](Self::read_pieces) where there is no positioned read:
    /// one sequential read, then the checksum.
    #[cfg(not(unix))]
    fn read_pieces(&mut self, data: &mut Vec<u8>, len: usize) -> Option<Crc> {
        self.file.seek(SeekFrom::Start(self.body_at)).ok()?;
        (&mut self.file).take(len as u64).read_to_end(data).ok()?;
        (data.len() == len).then(|| crc_of(data))
    }
}

/// Zeroes `piece` and returns it as initialised bytes (to be read into).
#[cfg(unix)]
fn zeroed(piece: &mut [std::mem::MaybeUninit<u8>]) -> &mut [u8] {
    piece.fill(std::mem::MaybeUninit::new(0));
    // SAFETY: every byte was just written, and `MaybeUninit<u8>` has the
    // layout of `u8`.
    unsafe { &mut *(piece as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) }
}

/// Writes the cached copy of `gz` (made from `key`'s file, whose IDX header
/// and body are given), unless disabled, too small, or not a single-member
/// gzip file; silently does nothing if it cannot be written.
pub fn store(gz: &Path, key: Key, idx_header: &[u8], body: &[u8]) {
    if disabled() || (body.len() as u64) < MIN_BODY || idx_header.len() > MAX_IDX_HEADER {
        return;
    }
    let mut crc = Crc::new();
    crc.update(idx_header);
    crc.combine(&crc_of(body));
    // A multi-member file's trailer checks only its last member: not cached.
    if crc.sum() != key.crc() || crc.amount() != key.size_mod_2_32() {
        return;
    }
    let Some(path) = path_for(gz) else { return };
    let mut bytes = Vec::new();
    if bytes
        .try_reserve_exact(FIXED + idx_header.len() + body.len())
        .is_err()
    {
        return;
    }
    bytes.extend_from_slice(&key.to_bytes());
    bytes.extend_from_slice(&(idx_header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(idx_header);
    bytes.extend_from_slice(body);
    let _ = crate::safe_file::write_atomic(&path, &bytes, "decompressed data cache");
}

/// The CRC-32 of `bytes`, computed in pieces on the rayon pool.
fn crc_of(bytes: &[u8]) -> Crc {
    use rayon::prelude::*;
    bytes
        .par_chunks(CRC_PIECE)
        .map(|piece| {
            let mut c = Crc::new();
            c.update(piece);
            c
        })
        .reduce(Crc::new, combined)
}

/// The CRC of `a`'s bytes followed by `b`'s (pieces combined in order).
fn combined(mut a: Crc, b: Crc) -> Crc {
    a.combine(&b);
    a
}
