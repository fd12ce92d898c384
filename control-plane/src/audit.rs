//! The audit log: who did what, when, at which revision, and how it ended.
//!
//! Entries form a hash chain: each entry's hash is an HMAC, keyed from the
//! barrier's data key, over the previous entry's hash and the entry itself.
//! Altering, removing or reordering an entry breaks the chain at that entry,
//! and forging a consistent chain needs the master key.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};

/// The hash that precedes the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Denied,
    Unauthenticated,
    Invalid,
    Conflict,
    Error,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Invalid => "invalid",
            Outcome::Conflict => "conflict",
            Outcome::Error => "error",
        }
    }
}

/// What a caller did: the part of an entry that the caller's request decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time_unix_ms: i64,
    pub actor: String,
    pub action: String,
    pub targets: Vec<String>,
    pub outcome: Outcome,
    pub detail: String,
}

impl AuditRecord {
    /// A record stamped with the current time.
    pub fn now(actor: &str, action: &str, outcome: Outcome) -> Self {
        let time_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self {
            time_unix_ms,
            actor: actor.to_owned(),
            action: action.to_owned(),
            targets: Vec::new(),
            outcome,
            detail: String::new(),
        }
    }

    pub fn with_targets(mut self, targets: Vec<String>) -> Self {
        self.targets = targets;
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// One link of the chain, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub sequence: u64,
    pub revision: u64,
    #[serde(flatten)]
    pub record: AuditRecord,
    pub previous_hash: String,
    pub hash: String,
}

/// The result of walking the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub entries_checked: u64,
    /// The first entry that fails, and why.
    pub broken: Option<(u64, String)>,
}

/// Links and checks entries.
#[derive(Clone)]
pub struct AuditChain {
    key: hmac::Key,
}

impl AuditChain {
    pub fn new(key: hmac::Key) -> Self {
        Self { key }
    }

    /// Makes the entry that follows `previous_hash`.
    pub fn link(
        &self,
        sequence: u64,
        revision: u64,
        previous_hash: &str,
        record: AuditRecord,
    ) -> AuditEntry {
        let mut entry = AuditEntry {
            sequence,
            revision,
            record,
            previous_hash: previous_hash.to_owned(),
            hash: String::new(),
        };
        entry.hash = self.hash_of(&entry);
        entry
    }

    fn hash_of(&self, entry: &AuditEntry) -> String {
        let mut unhashed = entry.clone();
        unhashed.hash.clear();
        let bytes = serde_json::to_vec(&unhashed).expect("audit entry serializes");
        hex::encode(hmac::sign(&self.key, &bytes).as_ref())
    }

    /// Walks stored entries in key order. `head` is the (sequence, hash) that
    /// the store recorded for its newest entry, which catches a removed tail.
    pub fn verify<I>(&self, stored: I, head: Option<(u64, String)>) -> Verification
    where
        I: IntoIterator<Item = (u64, Result<AuditEntry, String>)>,
    {
        let mut checked = 0;
        let mut previous = (0u64, GENESIS_HASH.to_owned());

        for (key, entry) in stored {
            checked += 1;
            match self.check_link(key, entry, &previous) {
                Ok(hash) => previous = (key, hash),
                Err(problem) => {
                    return Verification {
                        entries_checked: checked,
                        broken: Some((key, problem)),
                    };
                }
            }
        }

        let broken = match head {
            Some((sequence, hash)) if (sequence, hash.as_str()) != (previous.0, &*previous.1) => {
                Some((
                    previous.0 + 1,
                    format!("entries after {} are missing", previous.0),
                ))
            }
            _ => None,
        };
        Verification {
            entries_checked: checked,
            broken,
        }
    }

    fn check_link(
        &self,
        key: u64,
        entry: Result<AuditEntry, String>,
        previous: &(u64, String),
    ) -> Result<String, String> {
        let entry = entry.map_err(|e| format!("entry cannot be read: {e}"))?;
        if entry.sequence != key {
            return Err(format!(
                "entry is stored at {key} but says it is {}",
                entry.sequence
            ));
        }
        if key != previous.0 + 1 {
            return Err(format!(
                "entries {} to {} are missing",
                previous.0 + 1,
                key - 1
            ));
        }
        if entry.previous_hash != previous.1 {
            return Err("previous hash does not match the entry before it".into());
        }
        if self.hash_of(&entry) != entry.hash {
            return Err("entry was altered: its hash does not match its contents".into());
        }
        Ok(entry.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> AuditChain {
        AuditChain::new(hmac::Key::new(hmac::HMAC_SHA256, b"test audit key"))
    }

    fn entries(chain: &AuditChain, count: u64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for sequence in 1..=count {
            let previous = out
                .last()
                .map_or(GENESIS_HASH.to_owned(), |e| e.hash.clone());
            let record = AuditRecord::now("spiffe://td/admin/a", "apply", Outcome::Ok);
            out.push(chain.link(sequence, sequence, &previous, record));
        }
        out
    }

    fn stored(entries: &[AuditEntry]) -> Vec<(u64, Result<AuditEntry, String>)> {
        entries
            .iter()
            .map(|e| (e.sequence, Ok(e.clone())))
            .collect()
    }

    fn head(entries: &[AuditEntry]) -> Option<(u64, String)> {
        entries.last().map(|e| (e.sequence, e.hash.clone()))
    }

    #[test]
    fn intact_chain_verifies() {
        let chain = chain();
        let log = entries(&chain, 5);

        let result = chain.verify(stored(&log), head(&log));

        assert_eq!(
            result,
            Verification {
                entries_checked: 5,
                broken: None
            }
        );
    }

    #[test]
    fn altered_entry_is_named() {
        let chain = chain();
        let mut log = entries(&chain, 5);
        let head = head(&log);
        log[2].record.actor = "spiffe://td/admin/mallory".into();

        let result = chain.verify(stored(&log), head);

        assert_eq!(result.broken.unwrap().0, 3);
    }

    #[test]
    fn removed_entry_is_named() {
        let chain = chain();
        let mut log = entries(&chain, 5);
        let head = head(&log);
        log.remove(1);

        let (sequence, problem) = chain.verify(stored(&log), head).broken.unwrap();

        assert_eq!(sequence, 3);
        assert!(problem.contains("missing"), "{problem}");
    }

    #[test]
    fn removed_tail_is_caught_by_the_head() {
        let chain = chain();
        let mut log = entries(&chain, 5);
        let head = head(&log);
        log.pop();

        let (sequence, _) = chain.verify(stored(&log), head).broken.unwrap();

        assert_eq!(sequence, 5);
    }

    #[test]
    fn swapped_entries_are_named() {
        let chain = chain();
        let log = entries(&chain, 5);
        let mut swapped = stored(&log);
        let (a, b) = (swapped[1].1.clone(), swapped[2].1.clone());
        swapped[1].1 = b;
        swapped[2].1 = a;

        let (sequence, _) = chain.verify(swapped, head(&log)).broken.unwrap();

        assert_eq!(sequence, 2);
    }

    #[test]
    fn entry_forged_without_the_key_is_refused() {
        let chain = chain();
        let mut log = entries(&chain, 3);
        let forger = AuditChain::new(hmac::Key::new(hmac::HMAC_SHA256, b"guessed"));
        let record = AuditRecord::now("spiffe://td/admin/mallory", "apply", Outcome::Ok);
        log[2] = forger.link(3, 3, &log[1].hash, record);

        let result = chain.verify(stored(&log), head(&log));

        assert_eq!(result.broken.unwrap().0, 3);
    }
}
