//! The acknowledged head: how far the store's history reached when it last
//! answered a writer, kept in a small file beside sled's own.
//!
//! sled recovers a log with damaged bytes by dropping everything from the
//! damage on, and opens what is left without a word. The store compares the
//! history it finds with this file on open, and refuses one that ends before
//! what it already acknowledged.
//!
//! The file is written after each round's disk sync, without a sync of its
//! own: after a power cut it may lag behind the log, but it never runs
//! ahead of it.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::integrity::Head;
use crate::store::StoreError;

const FILE_NAME: &str = "acknowledged";

/// The newest revision and audit sequence the store answered a writer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Acknowledged {
    pub revision: u64,
    pub audit_sequence: u64,
}

/// Reads the acknowledged head of the store at `path`, if one was recorded.
pub(super) fn read(path: &Path) -> Result<Option<Acknowledged>, StoreError> {
    let file = path.join(FILE_NAME);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(unreadable(&file, &error.to_string())),
    };

    let mut numbers = text.split_whitespace().map(str::parse::<u64>);
    match (numbers.next(), numbers.next(), numbers.next()) {
        (Some(Ok(revision)), Some(Ok(audit_sequence)), None) => Ok(Some(Acknowledged {
            revision,
            audit_sequence,
        })),
        _ => Err(unreadable(&file, "it does not hold two numbers")),
    }
}

fn unreadable(file: &Path, detail: &str) -> StoreError {
    StoreError::Damaged(format!(
        "the acknowledged head {} is unreadable: {detail}",
        file.display()
    ))
}

/// Records the acknowledged head; the committer holds one.
#[derive(Debug)]
pub(super) struct Recorder {
    file: File,
    path: PathBuf,
}

impl Recorder {
    /// Opens (or creates) the file of the store at `path` and records
    /// `head`, the head the store opened at, in it.
    pub fn open(path: &Path, head: &Head) -> io::Result<Self> {
        let path = path.join(FILE_NAME);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;

        let mut recorder = Self { file, path };
        recorder.record(head)?;
        Ok(recorder)
    }

    /// Overwrites the file with `head` in one write. The numbers have a
    /// fixed width, so the file never shrinks and a write leaves nothing of
    /// the one before.
    pub fn record(&mut self, head: &Head) -> io::Result<()> {
        let text = format!("{:020} {:020}\n", head.revision, head.audit_sequence);
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Refuses a history that ends before `acknowledged`.
pub(super) fn check(found: &Head, acknowledged: Option<Acknowledged>) -> Result<(), StoreError> {
    let Some(acknowledged) = acknowledged else {
        return Ok(());
    };
    if found.revision >= acknowledged.revision
        && found.audit_sequence >= acknowledged.audit_sequence
    {
        return Ok(());
    }
    Err(StoreError::Damaged(format!(
        "its log ends at revision {} and audit entry {}, but revision {} and audit entry {} \
         were acknowledged before: the log lost writes",
        found.revision, found.audit_sequence, acknowledged.revision, acknowledged.audit_sequence
    )))
}
