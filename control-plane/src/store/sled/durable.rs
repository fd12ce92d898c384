//! Making a flushed round truly durable. sled writes its log with `pwrite`
//! and `sync_file_range`, which survives a killed process but not a lost
//! power supply: it flushes neither the drive's cache nor the file's size.
//! Values too large for its log go to blob files that it never syncs. So
//! after each flush the committer calls [`Durability::sync`], which
//! `fdatasync`s the log and every blob written since the last round, and the
//! blob directory.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The files of one sled database that a sync must reach.
#[derive(Debug)]
pub(super) struct Durability {
    log: File,
    blobs: PathBuf,
    /// Blobs are named by increasing log sequence numbers; those up to this
    /// one are already synced.
    synced_blob: u64,
}

impl Durability {
    /// Opens the database at `path` for syncing. Blobs already there were
    /// synced by the process that wrote them, or are older than the log.
    pub fn open(path: &Path) -> io::Result<Self> {
        let log = File::open(path.join("db"))?;
        let blobs = path.join("blobs");
        let mut durability = Self {
            log,
            blobs,
            synced_blob: 0,
        };
        durability.synced_blob = durability.newest_blob()?.unwrap_or(0);
        Ok(durability)
    }

    /// Opens the database at `path` so that the next sync reaches every
    /// blob, for one-off syncs outside the committer.
    pub fn open_unsynced(path: &Path) -> io::Result<Self> {
        Ok(Self {
            log: File::open(path.join("db"))?,
            blobs: path.join("blobs"),
            synced_blob: 0,
        })
    }

    /// Syncs the log, the blobs written since the last call, and their
    /// directory.
    pub fn sync(&mut self) -> io::Result<()> {
        let newest = self.sync_new_blobs()?;
        self.log.sync_data()?;
        if let Some(newest) = newest {
            self.synced_blob = newest;
        }
        Ok(())
    }

    fn sync_new_blobs(&self) -> io::Result<Option<u64>> {
        let mut newest = None;
        for (id, path) in self.blobs()? {
            if id > self.synced_blob {
                File::open(&path)?.sync_data()?;
                newest = newest.max(Some(id));
            }
        }
        if newest.is_some() {
            File::open(&self.blobs)?.sync_all()?;
        }
        Ok(newest)
    }

    fn newest_blob(&self) -> io::Result<Option<u64>> {
        Ok(self.blobs()?.into_iter().map(|(id, _)| id).max())
    }

    fn blobs(&self) -> io::Result<Vec<(u64, PathBuf)>> {
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut blobs = Vec::new();
        for entry in entries {
            let entry = entry?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                blobs.push((id, entry.path()));
            }
        }
        Ok(blobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_reaches_new_blobs_and_remembers_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"log").unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        std::fs::write(dir.path().join("blobs/7"), b"old").unwrap();
        let mut durability = Durability::open(dir.path()).unwrap();
        assert_eq!(durability.synced_blob, 7);

        std::fs::write(dir.path().join("blobs/12"), b"new").unwrap();
        durability.sync().unwrap();

        assert_eq!(durability.synced_blob, 12);
    }

    #[test]
    fn a_store_without_blobs_syncs_its_log() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"log").unwrap();

        let mut durability = Durability::open(dir.path()).unwrap();

        durability.sync().unwrap();
        assert_eq!(durability.synced_blob, 0);
    }
}
