//! The directories of a store known to be durable, so that a commit syncs a directory's
//! parent only the first time this process uses the directory.
//!
//! A blob renamed into a directory survives a power loss only if the directory's own entry
//! in its parent does too. Finding a directory is not enough to know that: another commit
//! may have just created it and not yet synced its parent, or an earlier process may have
//! died before syncing. So a directory this process has not yet seen made durable gets
//! its parent synced before it is used, whoever created it; after that it costs nothing.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Makes a directory entry change (create, rename) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How a directory's entries are made durable: [`sync_dir`], or a counting stand-in in
/// tests.
type SyncDir = Box<dyn Fn(&Path) -> io::Result<()> + Send + Sync>;

/// The directories below a store's root whose entries are durable.
pub(crate) struct DurableDirs {
    /// The store's root, made durable when the store is opened.
    root: PathBuf,
    /// Directories whose parent was synced, by this process, after they existed.
    known: Mutex<HashSet<PathBuf>>,
    sync: SyncDir,
}

impl DurableDirs {
    /// No directory below `root` known durable yet.
    pub(crate) fn new(root: PathBuf) -> Self {
        Self::with_sync(root, Box::new(sync_dir))
    }

    fn with_sync(root: PathBuf, sync: SyncDir) -> Self {
        DurableDirs {
            root,
            known: Mutex::default(),
            sync,
        }
    }

    /// Creates `dir` and any missing directories between it and the root, and returns
    /// once each one's entry in its parent is durable. A directory already known durable
    /// costs a set lookup and no system call.
    pub(crate) fn ensure(&self, dir: &Path) -> io::Result<()> {
        if self.known.lock().expect("durable dirs").contains(dir) {
            return Ok(());
        }
        let parent = dir.parent().expect("store directories have a parent");
        if parent != self.root {
            self.ensure(parent)?;
        }
        match std::fs::create_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        // Whoever made the directory, its entry is durable once its parent was synced
        // after it existed. Callers racing here each sync rather than trust another's sync
        // that may not have happened yet.
        (self.sync)(parent)?;
        self.known
            .lock()
            .expect("durable dirs")
            .insert(dir.to_owned());
        Ok(())
    }
}

impl fmt::Debug for DurableDirs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableDirs")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc;

    use super::*;

    /// A set over `root` whose syncs are recorded in the returned list.
    fn recording(root: &Path) -> (Arc<DurableDirs>, Arc<Mutex<Vec<PathBuf>>>) {
        let synced = Arc::new(Mutex::new(Vec::new()));
        let log = synced.clone();
        let dirs = DurableDirs::with_sync(
            root.to_owned(),
            Box::new(move |dir| {
                log.lock().unwrap().push(dir.to_owned());
                Ok(())
            }),
        );
        (Arc::new(dirs), synced)
    }

    #[test]
    fn a_directory_made_without_a_sync_is_synced_before_use() {
        let root = tempfile::tempdir().unwrap();
        let (dirs, synced) = recording(root.path());
        let blobs = root.path().join("blobs");
        dirs.ensure(&blobs).unwrap();
        // Made by another commit, or by a process that died before syncing its parent.
        let leaf = blobs.join("sha256/ab");
        std::fs::create_dir_all(&leaf).unwrap();
        synced.lock().unwrap().clear();
        dirs.ensure(&leaf).unwrap();
        assert_eq!(
            *synced.lock().unwrap(),
            [blobs.clone(), blobs.join("sha256")]
        );
    }

    #[test]
    fn a_known_directory_costs_no_sync() {
        let root = tempfile::tempdir().unwrap();
        let (dirs, synced) = recording(root.path());
        let alg = root.path().join("blobs/sha256");
        dirs.ensure(&alg.join("ab")).unwrap();
        assert_eq!(synced.lock().unwrap().len(), 3, "blobs, sha256 and ab made");
        for _ in 0..3 {
            dirs.ensure(&alg.join("ab")).unwrap();
        }
        assert_eq!(synced.lock().unwrap().len(), 3, "no sync once known");
        dirs.ensure(&alg.join("cd")).unwrap();
        assert_eq!(synced.lock().unwrap()[3..], [alg], "only the new entry");
    }

    /// A commit that finds the directory another commit is still creating syncs its
    /// parent itself rather than use it before that commit's sync.
    #[test]
    fn a_directory_another_commit_is_still_making_durable_is_synced_before_use() {
        let root = tempfile::tempdir().unwrap();
        let blobs = root.path().join("blobs");
        let (entered_tx, entered) = mpsc::channel::<()>();
        let (release, held) = mpsc::channel::<()>();
        let held = Mutex::new(Some(held));
        let synced = Arc::new(Mutex::new(Vec::new()));
        let (log, parent) = (synced.clone(), blobs.clone());
        // The first sync of `blobs` (the first commit's) waits until the test lets it go.
        let dirs = Arc::new(DurableDirs::with_sync(
            root.path().to_owned(),
            Box::new(move |dir| {
                let first = if dir == parent {
                    held.lock().unwrap().take()
                } else {
                    None
                };
                if let Some(held) = first {
                    entered_tx.send(()).unwrap();
                    held.recv().unwrap();
                }
                log.lock().unwrap().push(dir.to_owned());
                Ok(())
            }),
        ));
        dirs.ensure(&blobs).unwrap();
        synced.lock().unwrap().clear();
        let leaf = blobs.join("sha256");
        let first = {
            let (dirs, leaf) = (dirs.clone(), leaf.clone());
            std::thread::spawn(move || dirs.ensure(&leaf))
        };
        entered.recv().unwrap();
        assert!(leaf.exists(), "the first commit created the directory");
        dirs.ensure(&leaf).unwrap();
        assert_eq!(
            *synced.lock().unwrap(),
            std::slice::from_ref(&blobs),
            "synced by the second"
        );
        release.send(()).unwrap();
        first.join().unwrap().unwrap();
        assert_eq!(*synced.lock().unwrap(), [blobs.clone(), blobs]);
    }
}
