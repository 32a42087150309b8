//! The files a user names (kernel, initrds, DTB): checked with `stat` before
//! a byte is read (regular file, size within what can be placed), then read
//! once into memory that the segments share ([`Blob`]), so that neither a
//! bzImage's payload nor concatenated initrds are copied a second time.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes of a segment: a whole buffer or a slice of one, cheap to clone.
#[derive(Clone)]
pub struct Blob {
    buf: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Blob {
    /// The whole of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        let end = bytes.len();
        Blob { buf: Arc::new(bytes), start: 0, end }
    }

    /// The bytes as a vector to extend: the buffer itself when this blob
    /// is all of it and its only owner, else a copy.
    pub fn into_vec(self) -> Vec<u8> {
        let whole = self.start == 0 && self.end == self.buf.len();
        match (whole, Arc::try_unwrap(self.buf)) {
            (true, Ok(v)) => v,
            (_, Ok(v)) => v[self.start..self.end].to_vec(),
            (_, Err(shared)) => shared[self.start..self.end].to_vec(),
        }
    }

    /// `self[range]` without copying; None when it is not inside.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Option<Blob> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        Some(Blob { buf: Arc::clone(&self.buf), start: self.start + range.start, end: self.start + range.end })
    }

    /// `self[from..]` without copying (empty when `from` is past the end).
    pub fn tail(&self, from: usize) -> Blob {
        self.slice(from.min(self.len())..self.len()).unwrap_or_else(|| Blob::new(Vec::new()))
    }
}

impl Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

impl fmt::Debug for Blob {
    // Segments are megabytes: show the length only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.len())
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Blob::new(v)
    }
}

/// An input file that cannot be used; every variant names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// open/stat/read failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        why: String,
    },
    /// A device, FIFO, directory...: only regular files are read (a
    /// /dev/zero "kernel" would be read until memory runs out).
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead ("directory", "character device", ...).
        what: &'static str,
    },
    /// Larger than anything that could be placed.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The most bytes it may have.
        limit: u64,
        /// What the limit is ("that can be placed in this machine's usable
        /// memory", "a DTB may have", ...).
        why: Cow<'static, str>,
    },
    /// Together, the files are larger than the limit.
    TooLargeTogether {
        /// What the files are ("initrds").
        what: &'static str,
        /// Their total size in bytes.
        size: u64,
        /// The most bytes they may have together.
        limit: u64,
        /// What the limit is.
        why: Cow<'static, str>,
    },
    /// The initrd (one file, several concatenated, or a unified kernel
    /// image's sections) holds no byte.
    EmptyInitrd {
        /// Where it came from, as the plan names it.
        source: String,
    },
    /// The file changed size while it was read.
    Changed {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, why } => write!(f, "{}: {why}", crate::escape::path(path)),
            Self::NotRegular { path, what } => {
                write!(f, "{}: is a {what}, not a regular file (only files are loaded)", crate::escape::path(path))
            }
            Self::TooLarge { path, size, limit, why } => {
                write!(f, "{}: {size} bytes is more than the {limit} bytes {why}", crate::escape::path(path))
            }
            Self::TooLargeTogether { what, size, limit, why } => {
                write!(f, "the {what} are {size} bytes together, more than the {limit} bytes {why}")
            }
            Self::EmptyInitrd { source } => write!(
                f,
                "{source}: the initrd is empty (0 bytes): there is no archive for the kernel to unpack, and \
                 kexec_file_load refuses an empty file (fs/kernel_read_file.c: EINVAL); leave out --initrd"
            ),
            Self::Changed { path } => {
                write!(f, "{}: the file changed size while it was read", crate::escape::path(path))
            }
        }
    }
}

impl std::error::Error for InputError {}

/// A file's size after checking it is a regular file.
pub fn regular_size(path: &Path) -> Result<u64, InputError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    regular_len(path, &meta)
}

/// Open `path` for reading and check, on the opened file itself, that it
/// is a regular file: its size. O_NONBLOCK keeps open() of a FIFO from
/// waiting for a writer (it has no effect on regular files), and fstat on
/// the descriptor leaves no window for the path to be swapped.
pub fn open_regular(path: &Path) -> Result<(std::fs::File, u64), InputError> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let meta = f.metadata().map_err(|e| io_error(path, e))?;
    let size = regular_len(path, &meta)?;
    Ok((f, size))
}

fn io_error(path: &Path, e: std::io::Error) -> InputError {
    InputError::Io { path: path.to_path_buf(), why: e.to_string() }
}

fn regular_len(path: &Path, meta: &std::fs::Metadata) -> Result<u64, InputError> {
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(InputError::NotRegular { path: path.to_path_buf(), what: crate::system::file_kind(ft) });
    }
    Ok(meta.len())
}

/// A buffer of `cap` bytes to read into, or the error saying this process
/// cannot have that much memory (rather than an abort on allocation).
fn buffer(path: &Path, head: Vec<u8>, cap: u64) -> Result<Vec<u8>, InputError> {
    let mut out = head;
    let more = usize::try_from(cap.saturating_sub(out.len() as u64)).unwrap_or(usize::MAX);
    out.try_reserve_exact(more).map_err(|_| InputError::Io {
        path: path.to_path_buf(),
        why: format!("cannot allocate {cap} bytes to read it into"),
    })?;
    Ok(out)
}

/// Read the opened regular file `f` (`path`, `size` bytes by fstat) into
/// `out`.
fn read_into(path: &Path, f: std::fs::File, size: u64, out: &mut Vec<u8>) -> Result<(), InputError> {
    let before = out.len();
    // One more byte than fstat said: a file that grew is noticed, not
    // read without bound.
    f.take(size.saturating_add(1)).read_to_end(out).map_err(|e| io_error(path, e))?;
    if (out.len() - before) as u64 != size {
        return Err(InputError::Changed { path: path.to_path_buf() });
    }
    Ok(())
}

/// A regular file opened by [`open_regular`], its first bytes read: what a
/// format probe looks at before the file's size is bounded by its format.
/// [`Opened::read_rest`] reads the rest onto them, so every byte is read
/// once, from one descriptor.
pub struct Opened {
    path: PathBuf,
    file: std::fs::File,
    /// Its size by fstat.
    pub size: u64,
    /// Its first bytes (all of it when shorter).
    pub head: Vec<u8>,
}

/// Open `path` and read its first `n` bytes.
pub fn open_with_head(path: &Path, n: u64) -> Result<Opened, InputError> {
    let (file, size) = open_regular(path)?;
    let mut head = Vec::new();
    (&file).take(n.min(size)).read_to_end(&mut head).map_err(|e| io_error(path, e))?;
    Ok(Opened { path: path.to_path_buf(), file, size, head })
}

impl Opened {
    /// The whole file, at most `limit` bytes (refused before the rest is
    /// read when fstat says more).
    pub fn read_rest(self, limit: u64, why: impl Into<Cow<'static, str>>) -> Result<Blob, InputError> {
        let Opened { path, file, size, head } = self;
        if size > limit {
            return Err(InputError::TooLarge { path, size, limit, why: why.into() });
        }
        let done = head.len() as u64;
        let mut out = buffer(&path, head, size)?;
        read_into(&path, file, size - done.min(size), &mut out)?;
        Ok(Blob::new(out))
    }
}

/// Read one input file of at most `limit` bytes.
pub fn read_file(path: &Path, limit: u64, why: impl Into<Cow<'static, str>>) -> Result<Blob, InputError> {
    let (f, size) = open_regular(path)?;
    if size > limit {
        return Err(InputError::TooLarge { path: path.to_path_buf(), size, limit, why: why.into() });
    }
    let mut out = buffer(path, Vec::new(), size)?;
    read_into(path, f, size, &mut out)?;
    Ok(Blob::new(out))
}

/// Read several files back to back into one buffer (initrds: the kernel's
/// initramfs unpacker takes concatenated archives), each byte copied once.
/// `what` names them in errors ("initrds").
pub fn read_concatenated(
    paths: &[PathBuf],
    limit: u64,
    what: &'static str,
    why: impl Into<Cow<'static, str>>,
) -> Result<Blob, InputError> {
    read_concatenated_after(Vec::new(), paths, limit, what, why)
}

/// [`read_concatenated`], the files appended to the bytes of `head` (a
/// unified kernel image's own initrd, padded): the files are read straight
/// into the one buffer, and `limit` bounds the whole.
///
/// Sizes come first, from `stat` (which opens nothing: a FIFO is refused
/// without waiting, and a thousand initrds do not need a thousand
/// descriptors); then each file is opened as it is read, checked again on
/// its descriptor and read for exactly the size counted (a file swapped or
/// grown in between is refused as changed).
pub fn read_concatenated_after(
    head: Vec<u8>,
    paths: &[PathBuf],
    limit: u64,
    what: &'static str,
    why: impl Into<Cow<'static, str>>,
) -> Result<Blob, InputError> {
    let why = why.into();
    let mut sizes = Vec::with_capacity(paths.len());
    let mut total = head.len() as u64;
    for p in paths {
        let size = regular_size(p)?;
        if size > limit {
            return Err(InputError::TooLarge { path: p.clone(), size, limit, why: why.clone() });
        }
        total = total.checked_add(size).filter(|t| *t <= limit).ok_or_else(|| InputError::TooLargeTogether {
            what,
            size: total.saturating_add(size),
            limit,
            why: why.clone(),
        })?;
        sizes.push(size);
    }
    let first = paths.first().map_or(Path::new(what), PathBuf::as_path);
    let mut out = buffer(first, head, total)?;
    for (p, size) in paths.iter().zip(sizes) {
        let (f, now) = open_regular(p)?;
        if now != size {
            return Err(InputError::Changed { path: p.clone() });
        }
        read_into(p, f, size, &mut out)?;
    }
    Ok(Blob::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rkx-input-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_sole_whole_blob_gives_up_its_buffer() {
        let v: Vec<u8> = (0u8..100).collect();
        let ptr = v.as_ptr();
        let back = Blob::new(v).into_vec();
        assert_eq!(back.as_ptr(), ptr, "no copy");
        let b = Blob::new((0u8..100).collect());
        let part = b.slice(10..20).unwrap();
        assert_eq!(part.into_vec(), (10u8..20).collect::<Vec<_>>());
        assert_eq!(b.clone().into_vec().len(), 100, "shared: copied");
    }

    #[test]
    fn blob_slices_share_the_buffer() {
        let b = Blob::new((0u8..100).collect());
        let s = b.slice(10..20).unwrap();
        assert_eq!(&s[..], &(10u8..20).collect::<Vec<_>>()[..]);
        assert_eq!(s.slice(5..10).unwrap()[0], 15);
        assert!(s.slice(5..11).is_none());
        #[allow(clippy::reversed_empty_ranges)] // a reversed range on purpose
        let reversed = 50..40;
        assert!(b.slice(reversed).is_none());
        assert_eq!(b.tail(95).len(), 5);
        assert_eq!(b.tail(500).len(), 0);
    }

    #[test]
    fn special_files_and_oversized_files_are_refused_before_reading() {
        let e = read_file(Path::new("/dev/zero"), 1 << 30, "test").unwrap_err();
        assert!(e.to_string().contains("character device, not a regular file"), "{e}");
        let d = dir("big");
        let e = read_file(&d, 1 << 30, "test").unwrap_err();
        assert!(matches!(e, InputError::NotRegular { what: "directory", .. }));
        // A sparse file: huge by stat, nothing read.
        let sparse = d.join("sparse");
        let f = std::fs::File::create(&sparse).unwrap();
        f.set_len(40 << 30).unwrap();
        let e = read_file(&sparse, 1 << 30, "fit in RAM").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: 42949672960 bytes is more than the 1073741824 bytes fit in RAM", sparse.display())
        );
        let e = read_file(&d.join("missing"), 10, "x").unwrap_err();
        assert!(e.to_string().contains("No such file"), "{e}");
        // A FIFO with no writer: refused on the opened descriptor, not
        // waited on (a plain open() would block here for ever).
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert!(matches!(e, InputError::NotRegular { what: "FIFO", .. }), "{e}");
        assert!(read_concatenated(&[fifo], 10, "initrds", "x").is_err());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn concatenation_reads_each_file_once_in_order() {
        let d = dir("cat");
        let a = d.join("a");
        let b = d.join("b");
        std::fs::write(&a, b"first").unwrap();
        std::fs::write(&b, b"second").unwrap();
        let blob = read_concatenated(&[a.clone(), b.clone(), a.clone()], 100, "initrds", "t").unwrap();
        assert_eq!(&blob[..], b"firstsecondfirst");
        let e = read_concatenated(&[a.clone(), b], 8, "initrds", "fit").unwrap_err();
        assert_eq!(e.to_string(), "the initrds are 11 bytes together, more than the 8 bytes fit");
        std::fs::remove_dir_all(d).unwrap();
    }
}
