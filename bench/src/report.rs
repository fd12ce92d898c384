//! The results of a run and the table that shows them beside their goals.

use std::fmt;
use std::time::Duration;

use crate::cp::Memory;
use crate::load::{Latencies, Outcome};
use crate::table::{Table, met, millis, per_second, seconds};

/// Applies per second that 64 clients must reach.
const APPLY_TARGET: f64 = 2_000.0;
/// The clients at which the apply target holds.
const TARGET_CLIENTS: usize = 64;
/// The longest the large apply and a cold start may take.
const TIME_TARGET: Duration = Duration::from_secs(2);
/// The most a freshly started control plane may hold resident, in MiB.
const MEMORY_TARGET_MIB: u64 = 200;

/// Which system a figure belongs to.
#[derive(Clone, Copy, Debug)]
pub enum Peer {
    Palisade,
    Etcd,
}

/// The median and the 99th percentile of some calls.
#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
}

impl Percentiles {
    pub fn of(latencies: &mut Latencies) -> Self {
        Self {
            p50: latencies.quantile(0.50),
            p99: latencies.quantile(0.99),
        }
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} / {} ms", millis(self.p50), millis(self.p99))
    }
}

/// Timed restarts of a control plane holding `resources`.
#[derive(Debug)]
pub struct ColdStart {
    pub resources: usize,
    pub starts: Vec<(Duration, Memory)>,
}

/// One client count's apply loads.
#[derive(Debug)]
struct ApplyRow {
    clients: usize,
    palisade: Option<Outcome>,
    etcd: Option<Outcome>,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Report {
    applies: Vec<ApplyRow>,
    pub etcd_version: Option<String>,
    /// Documents in the large apply, and how long it took.
    pub file_apply: Option<(usize, Duration)>,
    pub get: Option<Percentiles>,
    /// Resources in each List, and its latency.
    pub list: Option<(usize, Percentiles)>,
    pub cold_start: Option<ColdStart>,
}

impl Report {
    pub fn add_applies(&mut self, peer: Peer, clients: usize, outcome: Outcome) {
        let index = match self.applies.iter().position(|r| r.clients == clients) {
            Some(index) => index,
            None => {
                self.applies.push(ApplyRow {
                    clients,
                    palisade: None,
                    etcd: None,
                });
                self.applies.len() - 1
            }
        };
        match peer {
            Peer::Palisade => self.applies[index].palisade = Some(outcome),
            Peer::Etcd => self.applies[index].etcd = Some(outcome),
        }
    }

    /// Prints the results table.
    pub fn print(mut self) {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let etcd = self
            .etcd_version
            .clone()
            .unwrap_or_else(|| "etcd: not run".into());
        println!("\nPalisade store benchmarks: {cores} cores; {etcd}\n");

        let mut table = Table::<6>::default();
        table.row(["measure", "palisade", "etcd", "ratio", "goal", "met"]);
        for row in &mut self.applies {
            apply_rows(&mut table, row);
        }
        self.single_rows(&mut table);
        table.print();
    }

    fn single_rows(&self, table: &mut Table<6>) {
        if let Some((docs, elapsed)) = self.file_apply {
            let label = format!("apply of {docs} documents in one call");
            let met = met(elapsed < TIME_TARGET);
            table.row([&label, &seconds(elapsed), "", "", "< 2 s", met]);
        }
        if let Some(get) = self.get {
            table.row(["Get p50 / p99", &get.to_string(), "", "", "", ""]);
        }
        if let Some((listed, list)) = self.list {
            let label = format!("List of {listed}, p50 / p99");
            table.row([&label, &list.to_string(), "", "", "", ""]);
        }
        if let Some(cold) = &self.cold_start {
            cold_rows(table, cold);
        }
    }
}

fn apply_rows(table: &mut Table<6>, row: &mut ApplyRow) {
    let clients = row.clients;
    let rate = |o: &Option<Outcome>| o.as_ref().map(Outcome::rate);
    let (palisade, etcd) = (rate(&row.palisade), rate(&row.etcd));
    let ratio = match (palisade, etcd) {
        (Some(p), Some(e)) if e > 0.0 => format!("{:.2}x", p / e),
        _ => String::new(),
    };
    let (goal, met) = match (clients == TARGET_CLIENTS, palisade) {
        (true, Some(p)) => (">= 2,000/s", met(p >= APPLY_TARGET)),
        _ => ("", ""),
    };
    let noun = if clients == 1 { "client" } else { "clients" };
    let label = format!("durable applies/s, {clients} {noun}");
    table.row([
        &label,
        &per_second(palisade),
        &per_second(etcd),
        &ratio,
        goal,
        met,
    ]);

    let latency = |o: &mut Option<Outcome>| {
        o.as_mut()
            .map(|o| Percentiles::of(&mut o.latencies).to_string())
            .unwrap_or_default()
    };
    let (palisade, etcd) = (latency(&mut row.palisade), latency(&mut row.etcd));
    table.row(["  latency p50 / p99", &palisade, &etcd, "", "", ""]);
    for (peer, outcome) in [("palisade", &row.palisade), ("etcd", &row.etcd)] {
        if let Some(outcome) = outcome.as_ref().filter(|o| o.errors > 0) {
            table.row([
                "  failed calls",
                &outcome.errors.to_string(),
                peer,
                "",
                "",
                "",
            ]);
        }
    }
}

fn cold_rows(table: &mut Table<6>, cold: &ColdStart) {
    let mut times: Vec<Duration> = cold.starts.iter().map(|(t, _)| *t).collect();
    times.sort_unstable();
    let Some(median) = times.get(times.len() / 2).copied() else {
        return;
    };
    let rss = cold
        .starts
        .iter()
        .map(|(_, m)| m.rss_kib)
        .max()
        .unwrap_or(0)
        / 1024;
    let peak = cold
        .starts
        .iter()
        .map(|(_, m)| m.peak_kib)
        .max()
        .unwrap_or(0)
        / 1024;

    let runs = times.len();
    let label = format!(
        "cold start, {} resources (median of {runs})",
        cold.resources
    );
    let met_time = met(median < TIME_TARGET);
    table.row([&label, &seconds(median), "", "", "< 2 s", met_time]);

    let label = format!("  VmRSS / VmHWM at SERVING (max of {runs})");
    let memory = format!("{rss} / {peak} MiB");
    let met_memory = met(rss.max(peak) < MEMORY_TARGET_MIB);
    table.row([&label, &memory, "", "", "< 200 MiB", met_memory]);
}
