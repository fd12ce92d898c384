//! How much of the machine other processes took during a run: everything
//! busy in `/proc/stat` less this process and the children it waited for
//! (every control plane it stopped). A benchmark whose figures moved
//! because of a concurrent build says so here.

use std::fmt;
use std::time::Instant;

/// Kernel clock ticks per second (`USER_HZ`), the same on every Linux.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU counters at one moment.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    at: Instant,
    /// Ticks every core spent busy.
    machine_busy: u64,
    /// Ticks of this process and its reaped children.
    ours: u64,
}

/// The others' share of a stretch of time.
#[derive(Clone, Copy, Debug)]
pub struct Others {
    /// CPU seconds other processes used.
    pub cpu_seconds: f64,
    /// Of the CPU seconds the machine had.
    pub share: f64,
}

impl fmt::Display for Others {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "other processes used {:.1} CPU-s ({:.0}% of the machine) during the run",
            self.cpu_seconds,
            self.share * 100.0
        )
    }
}

impl CpuSample {
    /// Reads the counters now (zeros where they cannot be read).
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            machine_busy: machine_busy().unwrap_or(0),
            ours: ours().unwrap_or(0),
        }
    }

    /// What other processes used since `earlier`.
    pub fn others_since(&self, earlier: &CpuSample) -> Others {
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy);
        let ours = self.ours.saturating_sub(earlier.ours);
        let cpu_seconds = busy.saturating_sub(ours) as f64 / TICKS_PER_SECOND;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let available = self.at.duration_since(earlier.at).as_secs_f64() * cores as f64;
        Others {
            cpu_seconds,
            share: cpu_seconds / available.max(f64::MIN_POSITIVE),
        }
    }
}

/// Busy ticks of all cores: user, nice, system, irq, softirq and steal.
fn machine_busy() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// This process's user and system ticks and those of its reaped children.
fn ours() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces; utime is the 14th field overall, the 12th after it.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|f| f.parse().ok())
        .collect();
    Some(fields.iter().sum())
}
