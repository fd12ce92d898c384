//! Processes the agent benchmarks run and watch: `palisade-agent` and
//! `haproxy`, each with a log file, killed when dropped; and what the
//! kernel says about them: CPU time, resident memory, and its peak during a
//! load.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::cp::Memory;

/// Kernel clock ticks per second (`USER_HZ`), the same on every Linux.
const TICKS_PER_SECOND: u64 = 100;
/// How often the memory sampler reads VmRSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// A child process with its log.
pub struct Process {
    /// What the reports call it.
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with standard error going to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails, with the log, if it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited with {status}; log:\n{}", self.name, self.log());
        }
        Ok(())
    }

    /// User and system time of all its threads so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_of(self.pid())
    }

    /// Its resident memory now and at its peak.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory_of(self.pid())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds `name` next to the running executable.
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the bench executable")?;
    let binary = exe.with_file_name(name);
    match binary.is_file() {
        true => Ok(binary),
        false => bail!(
            "{} not found; build it first with `cargo build --release --workspace --bins`",
            binary.display()
        ),
    }
}

/// User and system time of every thread of process `pid`.
pub fn cpu_of(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // utime and stime are the 14th and 15th fields; the second, the command
    // name in parentheses, may hold spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// VmRSS and VmHWM of process `pid`.
pub fn memory_of(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss_kib), Some(peak_kib)) => Ok(Memory { rss_kib, peak_kib }),
        _ => bail!("/proc/{pid}/status lacks VmRSS or VmHWM"),
    }
}

/// Reads the resident memory of some processes every [`SAMPLE_EVERY`]
/// until stopped, keeping the largest reading of each.
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<u64>>,
}

impl PeakSampler {
    /// Starts sampling `pids`.
    pub fn start(pids: Vec<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peaks = vec![0; pids.len()];
            while !flag.load(Ordering::Relaxed) {
                for (peak, pid) in peaks.iter_mut().zip(&pids) {
                    if let Ok(memory) = memory_of(*pid) {
                        *peak = (*peak).max(memory.rss_kib);
                    }
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            peaks
        });
        Self { stop, thread }
    }

    /// Stops and returns the largest VmRSS of each process, in KiB, in the
    /// order given.
    pub fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
