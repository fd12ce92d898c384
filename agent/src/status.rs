//! The status file, `<data-dir>/status.json`, for operators and tests: what
//! the agent enforces and where it came from, which the xDS client writes
//! as it applies configurations, and the data path's counters (allowed and
//! refused connections, by reason), which [`publish_counters`] writes every
//! few seconds while they change. Both writers go through one
//! [`StatusFile`], so each write carries the latest of both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::cache::{CacheError, DataDir, Status};
use crate::proxy::Counters;

/// How often the counters are written while they change.
const COUNTERS_EVERY: Duration = Duration::from_secs(2);
/// How often they are logged while they change.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The status file of a data directory, and what it says.
#[derive(Clone, Debug)]
pub struct StatusFile {
    dir: DataDir,
    current: Arc<Mutex<Status>>,
}

impl StatusFile {
    /// The status file of `dir`, saying `status` once written.
    pub fn new(dir: DataDir, status: Status) -> Self {
        Self {
            dir,
            current: Arc::new(Mutex::new(status)),
        }
    }

    /// What the file says, or will once written.
    pub fn current(&self) -> Status {
        self.lock().clone()
    }

    /// Writes `status`, keeping the counters last written.
    pub fn save(&self, status: &Status) -> Result<(), CacheError> {
        let mut current = self.lock();
        let counters = std::mem::take(&mut current.counters);
        *current = Status {
            counters,
            ..status.clone()
        };
        current.save(&self.dir)
    }

    /// [`save`](Self::save)s on the blocking pool, since each write syncs
    /// the disk, and logs a failure.
    pub async fn save_off_thread(&self, status: Status) {
        let file = self.clone();
        off_thread(move || file.save(&status)).await;
    }

    /// Writes `counters` beside the status last saved, unless the file
    /// holds them already; true when written.
    pub fn save_counters(&self, counters: BTreeMap<String, u64>) -> Result<bool, CacheError> {
        let mut current = self.lock();
        if current.counters == counters {
            return Ok(false);
        }
        current.counters = counters;
        current.save(&self.dir).map(|()| true)
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        self.current.lock().expect("status lock")
    }
}

/// Writes `counters` into `file` every few seconds while they change, and
/// logs them every minute while they change, until `shutdown`.
pub async fn publish_counters(
    file: StatusFile,
    counters: Arc<Counters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(COUNTERS_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut logged = (Instant::now(), counters.values());

    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        let values = counters.values();
        write(&file, values.clone()).await;

        if logged.0.elapsed() >= LOG_EVERY && values != logged.1 {
            tracing::info!(counters = ?values, "data path counters");
            logged = (Instant::now(), values);
        }
    }
    write(&file, counters.values()).await;
}

/// Writes the counters off the runtime's threads.
async fn write(file: &StatusFile, values: BTreeMap<String, u64>) {
    let file = file.clone();
    off_thread(move || file.save_counters(values).map(drop)).await;
}

/// Runs `write` on the blocking pool, and logs a failure.
async fn off_thread(write: impl FnOnce() -> Result<(), CacheError> + Send + 'static) {
    match tokio::task::spawn_blocking(write).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "status file not written"),
        Err(error) => tracing::warn!(%error, "status file writer failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Source;

    fn file() -> (tempfile::TempDir, StatusFile) {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::open(&root.path().join("data")).unwrap();
        let status = Status {
            node: "web-1".into(),
            ..Status::default()
        };
        (root, StatusFile::new(dir, status))
    }

    fn written(file: &StatusFile) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(file.dir.status()).unwrap()).unwrap()
    }

    fn counted(denied: u64) -> BTreeMap<String, u64> {
        BTreeMap::from([("inbound_denied".to_owned(), denied)])
    }

    #[test]
    fn counters_and_status_keep_each_other() {
        let (_root, file) = file();
        let status = Status {
            source: Source::ControlPlane,
            revision: 7,
            ..file.current()
        };

        file.save(&status).unwrap();
        file.save_counters(counted(3)).unwrap();
        file.save(&Status {
            revision: 8,
            ..status
        })
        .unwrap();

        let saved = written(&file);
        assert_eq!(saved["revision"], 8);
        assert_eq!(saved["source"], "control-plane");
        assert_eq!(saved["counters"]["inbound_denied"], 3);
    }

    #[test]
    fn unchanged_counters_are_not_written_again() {
        let (_root, file) = file();

        assert!(file.save_counters(counted(1)).unwrap());
        assert!(!file.save_counters(counted(1)).unwrap());
        assert!(file.save_counters(counted(2)).unwrap());
        assert_eq!(written(&file)["counters"]["inbound_denied"], 2);
    }

    #[tokio::test]
    async fn published_counters_reach_the_file_and_stop_on_shutdown() {
        let (_root, file) = file();
        let counters = Arc::new(Counters::default());
        counters
            .inbound_denied
            .fetch_add(4, std::sync::atomic::Ordering::Relaxed);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(publish_counters(file.clone(), counters, shutdown));

        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();

        assert_eq!(written(&file)["counters"]["inbound_denied"], 4);
        assert_eq!(written(&file)["node"], "web-1");
    }
}
