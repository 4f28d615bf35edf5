//! The file system seam under [`super::LocalFs`].
//!
//! [`RealFs`] is the operating system's. Tests put a simulated file system here that
//! records every operation and can say, at any point, what a power loss would leave: only
//! what was fsynced (see `simfs`). Every call blocks; callers run them on the blocking pool.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

/// What a path names (without following links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// A link, socket, device...: never created by storaged.
    Other,
}

/// A path's kind and modification time.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub kind: Kind,
    pub modified: SystemTime,
}

/// One entry of a directory.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: OsString,
    pub kind: Kind,
}

/// A file being written (created with [`Fs::create_new`]).
pub trait WriteFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's content durable (fsync).
    fn sync_all(&mut self) -> io::Result<()>;
    /// Makes the file's content durable without its timestamps (fdatasync): all a write
    /// into a preallocated file needs.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// A file opened for reading; its length and time are those seen when it was opened.
pub trait ReadFile: Send + Sync + fmt::Debug {
    /// The file's length in bytes.
    fn size(&self) -> u64;
    fn modified(&self) -> SystemTime;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// The operations the local backend performs on its data directory.
pub trait Fs: Send + Sync + fmt::Debug + 'static {
    /// Creates `dir` if needed and takes an exclusive lock on it for the life of the
    /// returned guard; `WouldBlock` when another process holds it.
    fn lock(&self, dir: &Path) -> io::Result<Box<dyn fmt::Debug + Send + Sync>>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// `AlreadyExists` when the path exists.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Creates a file that must not exist yet.
    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// Opens an existing file for positional writes (nothing truncated).
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    fn open(&self, path: &Path) -> io::Result<Arc<dyn ReadFile>>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// A second name `to` (which must not exist) for the file `from`.
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries durable (fsync of the directory).
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// `None` when nothing is at `path`.
    fn stat(&self, path: &Path) -> io::Result<Option<Meta>>;
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
}

/// The operating system's file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

fn kind_of(t: std::fs::FileType) -> Kind {
    if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Dir
    } else {
        Kind::Other
    }
}

struct RealWrite(std::fs::File);

impl WriteFile for RealWrite {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.0, buf)
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, buf, offset)
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

#[derive(Debug)]
struct RealRead {
    file: std::fs::File,
    len: u64,
    modified: SystemTime,
}

impl ReadFile for RealRead {
    fn size(&self) -> u64 {
        self.len
    }

    fn modified(&self) -> SystemTime {
        self.modified
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
    }
}

impl Fs for RealFs {
    fn lock(&self, dir: &Path) -> io::Result<Box<dyn fmt::Debug + Send + Sync>> {
        std::fs::create_dir_all(dir)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(RealWrite(file)))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        Ok(Box::new(RealWrite(file)))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn ReadFile>> {
        let file = std::fs::File::open(path)?;
        let metadata = file.metadata()?;
        Ok(Arc::new(RealRead {
            file,
            len: metadata.len(),
            modified: metadata.modified()?,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::File::open(path)?.sync_all()
    }

    fn stat(&self, path: &Path) -> io::Result<Option<Meta>> {
        match std::fs::symlink_metadata(path) {
            Ok(m) => Ok(Some(Meta {
                kind: kind_of(m.file_type()),
                modified: m.modified()?,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        std::fs::read_dir(path)?
            .map(|entry| {
                let entry = entry?;
                Ok(DirEntry {
                    name: entry.file_name(),
                    kind: kind_of(entry.file_type()?),
                })
            })
            .collect()
    }
}
