//! A simulated file system for power-loss tests.
//!
//! Every file and directory keeps two versions: what a reader sees now, and what is
//! durable (its content or entries at its last fsync). Each mutating call records a
//! snapshot, so a test can replay any prefix of a workload and ask what a power loss at
//! that point may leave ([`Crash`]): only what was fsynced, everything, or the mixes a
//! real file system allows (entries persisted but not data, or data but not entries).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::fs::{DirEntry, Fs, Kind, Meta, ReadFile, WriteFile};

type Ino = u64;

#[derive(Debug, Clone)]
enum Node {
    File {
        data: Vec<u8>,
        durable: Vec<u8>,
    },
    Dir {
        entries: BTreeMap<OsString, Ino>,
        durable: BTreeMap<OsString, Ino>,
    },
}

/// The whole file system at one moment.
#[derive(Debug, Clone)]
pub(crate) struct State {
    nodes: HashMap<Ino, Node>,
    next: Ino,
}

const ROOT: Ino = 0;

/// Which parts of a snapshot survive a simulated power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crash {
    /// Only what was fsynced: directory entries and file contents as of their last fsync.
    OnlySynced,
    /// Directory entries as they are, file contents as of their last fsync.
    EntriesNotData,
    /// File contents as they are, directory entries as of their last fsync.
    DataNotEntries,
    /// Everything (a process crash: the page cache survives).
    Everything,
}

impl Crash {
    pub(crate) const ALL: [Crash; 4] = [
        Crash::OnlySynced,
        Crash::EntriesNotData,
        Crash::DataNotEntries,
        Crash::Everything,
    ];
}

impl State {
    fn new() -> Self {
        let root = Node::Dir {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
        };
        Self {
            nodes: HashMap::from([(ROOT, root)]),
            next: 1,
        }
    }

    /// What survives `crash`, with everything in it durable.
    pub(crate) fn after(&self, crash: Crash) -> State {
        let keep_entries = matches!(crash, Crash::EntriesNotData | Crash::Everything);
        let keep_data = matches!(crash, Crash::DataNotEntries | Crash::Everything);
        let nodes = self
            .nodes
            .iter()
            .map(|(ino, node)| {
                let node = match node {
                    Node::File { data, durable } => {
                        let kept = if keep_data { data } else { durable };
                        Node::File {
                            data: kept.clone(),
                            durable: kept.clone(),
                        }
                    }
                    Node::Dir { entries, durable } => {
                        let kept = if keep_entries { entries } else { durable };
                        Node::Dir {
                            entries: kept.clone(),
                            durable: kept.clone(),
                        }
                    }
                };
                (*ino, node)
            })
            .collect();
        State {
            nodes,
            next: self.next,
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let mut ino = ROOT;
        for c in path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(name) => {
                    let Some(Node::Dir { entries, .. }) = self.nodes.get(&ino) else {
                        return Err(io::ErrorKind::NotADirectory.into());
                    };
                    ino = *entries.get(name).ok_or(io::ErrorKind::NotFound)?;
                }
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(io::ErrorKind::InvalidInput.into())
                }
            }
        }
        Ok(ino)
    }

    /// The parent directory's inode and the last component.
    fn parent_of(&self, path: &Path) -> io::Result<(Ino, OsString)> {
        let name = path.file_name().ok_or(io::ErrorKind::InvalidInput)?;
        let parent = self.lookup(path.parent().ok_or(io::ErrorKind::InvalidInput)?)?;
        match self.nodes.get(&parent) {
            Some(Node::Dir { .. }) => Ok((parent, name.to_owned())),
            _ => Err(io::ErrorKind::NotADirectory.into()),
        }
    }

    /// The entry `path` names: its directory, its name and its inode.
    fn entry(&mut self, path: &Path) -> io::Result<(Ino, OsString, Ino)> {
        let (dir, name) = self.parent_of(path)?;
        let ino = *self
            .entries_mut(dir)
            .get(&name)
            .ok_or(io::ErrorKind::NotFound)?;
        Ok((dir, name, ino))
    }

    fn entries_mut(&mut self, dir: Ino) -> &mut BTreeMap<OsString, Ino> {
        match self.nodes.get_mut(&dir) {
            Some(Node::Dir { entries, .. }) => entries,
            _ => unreachable!("checked to be a directory"),
        }
    }

    fn add(&mut self, path: &Path, node: Node) -> io::Result<Ino> {
        let (parent, name) = self.parent_of(path)?;
        if self.entries_mut(parent).contains_key(&name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(ino, node);
        self.entries_mut(parent).insert(name, ino);
        Ok(ino)
    }

    fn kind(&self, ino: Ino) -> Kind {
        match self.nodes.get(&ino) {
            Some(Node::File { .. }) => Kind::File,
            Some(Node::Dir { .. }) => Kind::Dir,
            None => Kind::Other,
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    snapshots: Mutex<Vec<State>>,
    sync_dirs: bool,
    sync_files: bool,
}

/// A simulated file system; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct SimFs(Arc<Inner>);

impl SimFs {
    /// An empty file system. `sync_dirs` / `sync_files` false make those fsyncs no-ops,
    /// as if the code had forgotten them.
    pub(crate) fn new(sync_dirs: bool, sync_files: bool) -> Self {
        Self::from_state(State::new(), sync_dirs, sync_files)
    }

    /// A file system holding `state`.
    pub(crate) fn from_state(state: State, sync_dirs: bool, sync_files: bool) -> Self {
        Self(Arc::new(Inner {
            state: Mutex::new(state),
            snapshots: Mutex::new(Vec::new()),
            sync_dirs,
            sync_files,
        }))
    }

    /// The state after each mutating call so far, oldest first.
    pub(crate) fn snapshots(&self) -> Vec<State> {
        self.0
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs a mutating `f` on the state and records a snapshot when it changed anything.
    fn mutate<T>(&self, f: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        let result = f(&mut state)?;
        self.0
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(state.clone());
        Ok(result)
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> io::Result<T>) -> io::Result<T> {
        f(&self.0.state.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

struct SimWrite {
    fs: SimFs,
    ino: Ino,
    at: usize,
}

impl SimWrite {
    fn write(&mut self, buf: &[u8], offset: usize) -> io::Result<()> {
        let ino = self.ino;
        self.fs.mutate(|s| match s.nodes.get_mut(&ino) {
            Some(Node::File { data, .. }) => {
                if data.len() < offset + buf.len() {
                    data.resize(offset + buf.len(), 0);
                }
                data[offset..offset + buf.len()].copy_from_slice(buf);
                Ok(())
            }
            _ => Err(io::ErrorKind::NotFound.into()),
        })
    }
}

impl WriteFile for SimWrite {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf, self.at)?;
        self.at += buf.len();
        Ok(())
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.write(buf, usize::try_from(offset).map_err(io::Error::other)?)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync_all()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        if !self.fs.0.sync_files {
            return Ok(());
        }
        let ino = self.ino;
        self.fs.mutate(|s| match s.nodes.get_mut(&ino) {
            Some(Node::File { data, durable }) => {
                durable.clone_from(data);
                Ok(())
            }
            _ => Err(io::ErrorKind::NotFound.into()),
        })
    }
}

/// An open file reads the inode's current data, as on a real file system; its size is
/// the one seen when it was opened.
#[derive(Debug)]
struct SimRead {
    fs: SimFs,
    ino: Ino,
    len: u64,
}

/// Every simulated file has this modification time.
fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

impl ReadFile for SimRead {
    fn size(&self) -> u64 {
        self.len
    }

    fn modified(&self) -> SystemTime {
        epoch()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        self.fs.read(|s| match s.nodes.get(&self.ino) {
            Some(Node::File { data, .. }) => {
                let src = data
                    .get(start..start + buf.len())
                    .ok_or(io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(src);
                Ok(())
            }
            _ => Err(io::ErrorKind::NotFound.into()),
        })
    }
}

impl Fs for SimFs {
    fn lock(&self, dir: &Path) -> io::Result<Box<dyn std::fmt::Debug + Send + Sync>> {
        self.create_dir_all(dir)?;
        Ok(Box::new(()))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut at = std::path::PathBuf::from("/");
        for c in path.components() {
            if let Component::Normal(name) = c {
                at.push(name);
                match self.create_dir(&at) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.mutate(|s| {
            s.add(
                path,
                Node::Dir {
                    entries: BTreeMap::new(),
                    durable: BTreeMap::new(),
                },
            )
            .map(drop)
        })
    }

    fn create_new(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let ino = self.mutate(|s| {
            s.add(
                path,
                Node::File {
                    data: Vec::new(),
                    durable: Vec::new(),
                },
            )
        })?;
        Ok(Box::new(SimWrite {
            fs: self.clone(),
            ino,
            at: 0,
        }))
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let ino = self.read(|s| match s.nodes.get(&s.lookup(path)?) {
            Some(Node::File { .. }) => s.lookup(path),
            _ => Err(io::ErrorKind::IsADirectory.into()),
        })?;
        Ok(Box::new(SimWrite {
            fs: self.clone(),
            ino,
            at: 0,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn ReadFile>> {
        self.read(|s| match s.nodes.get(&s.lookup(path)?) {
            Some(Node::File { data, .. }) => Ok(Arc::new(SimRead {
                fs: self.clone(),
                ino: s.lookup(path)?,
                len: data.len() as u64,
            }) as _),
            _ => Err(io::ErrorKind::IsADirectory.into()),
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mutate(|s| {
            let (from_dir, from_name, ino) = s.entry(from)?;
            let (to_dir, to_name) = s.parent_of(to)?;
            if let Some(existing) = s.entries_mut(to_dir).get(&to_name).copied() {
                if s.kind(existing) == Kind::Dir {
                    return Err(io::ErrorKind::IsADirectory.into());
                }
            }
            s.entries_mut(from_dir).remove(&from_name);
            s.entries_mut(to_dir).insert(to_name, ino);
            Ok(())
        })
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.mutate(|s| {
            let ino = s.lookup(from)?;
            if s.kind(ino) == Kind::Dir {
                return Err(io::ErrorKind::IsADirectory.into());
            }
            let (to_dir, to_name) = s.parent_of(to)?;
            if s.entries_mut(to_dir).contains_key(&to_name) {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            s.entries_mut(to_dir).insert(to_name, ino);
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.mutate(|s| {
            let (dir, name, ino) = s.entry(path)?;
            if s.kind(ino) == Kind::Dir {
                return Err(io::ErrorKind::IsADirectory.into());
            }
            s.entries_mut(dir).remove(&name);
            Ok(())
        })
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        self.mutate(|s| {
            let (dir, name, ino) = s.entry(path)?;
            match s.nodes.get(&ino) {
                Some(Node::Dir { entries, .. }) if entries.is_empty() => {}
                Some(Node::Dir { .. }) => return Err(io::ErrorKind::DirectoryNotEmpty.into()),
                _ => return Err(io::ErrorKind::NotADirectory.into()),
            }
            s.entries_mut(dir).remove(&name);
            Ok(())
        })
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.mutate(|s| {
            let (dir, name) = s.parent_of(path)?;
            s.entries_mut(dir)
                .remove(&name)
                .map(drop)
                .ok_or_else(|| io::ErrorKind::NotFound.into())
        })
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if !self.0.sync_dirs {
            return self.read(|s| s.lookup(path).map(drop));
        }
        self.mutate(|s| {
            let ino = s.lookup(path)?;
            match s.nodes.get_mut(&ino) {
                Some(Node::Dir { entries, durable }) => {
                    durable.clone_from(entries);
                    Ok(())
                }
                _ => Err(io::ErrorKind::NotADirectory.into()),
            }
        })
    }

    fn stat(&self, path: &Path) -> io::Result<Option<Meta>> {
        self.read(|s| match s.lookup(path) {
            Ok(ino) => Ok(Some(Meta {
                kind: s.kind(ino),
                modified: epoch(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.read(|s| match s.nodes.get(&s.lookup(path)?) {
            Some(Node::Dir { entries, .. }) => Ok(entries
                .iter()
                .map(|(name, ino)| DirEntry {
                    name: name.clone(),
                    kind: s.kind(*ino),
                })
                .collect()),
            _ => Err(io::ErrorKind::NotADirectory.into()),
        })
    }
}
