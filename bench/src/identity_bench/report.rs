//! The identity benchmarks' results table.

use std::time::Duration;

use super::raw::RawRate;
use crate::load::Outcome;
use crate::noise::Others;
use crate::paced::{PacedOutcome, Schedule};
use crate::table::{Table, met, millis, per_second};

/// Durable signings per second that [`TARGET_CLIENTS`] clients must reach.
const SIGN_TARGET: f64 = 2_000.0;
/// And what they should reach.
const SIGN_GOAL: f64 = 10_000.0;
/// The clients at which the signing targets hold.
const TARGET_CLIENTS: usize = 32;
/// The slowest p99 the paced load may see.
const P99_TARGET: Duration = Duration::from_millis(5);

/// Everything an identity run measured.
#[derive(Debug, Default)]
pub struct IdentityReport {
    pub raw: Vec<RawRate>,
    /// Closed-loop loads by client count.
    pub signing: Vec<(usize, Outcome)>,
    pub paced: Option<(Schedule, PacedOutcome)>,
    /// What other processes took meanwhile.
    pub others: Option<Others>,
}

impl IdentityReport {
    /// Prints the results table.
    pub fn print(mut self) {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("\nPalisade identity benchmarks: {cores} cores");
        if let Some(others) = self.others {
            println!("{others}");
        }
        println!();

        let mut table = Table::<5>::default();
        table.row([
            "measure",
            "value",
            "vs raw (1 / all threads)",
            "goal",
            "met",
        ]);
        for raw in &self.raw {
            let label = format!("raw check + sign/s, {} thread(s), in process", raw.threads);
            table.row([&label, &per_second(Some(raw.rate())), "", "", ""]);
        }
        let ratios = self.raw_rates();
        for (clients, outcome) in &mut self.signing {
            signing_rows(&mut table, *clients, outcome, ratios);
        }
        if let Some((schedule, outcome)) = &mut self.paced {
            paced_rows(&mut table, schedule, outcome);
        }
        table.print();
    }

    /// The single-thread and the many-thread raw rates.
    fn raw_rates(&self) -> Option<(f64, f64)> {
        let single = self.raw.iter().find(|r| r.threads == 1)?.rate();
        let most = self.raw.iter().max_by_key(|r| r.threads)?.rate();
        Some((single, most))
    }
}

fn signing_rows(
    table: &mut Table<5>,
    clients: usize,
    outcome: &mut Outcome,
    raw: Option<(f64, f64)>,
) {
    let rate = outcome.rate();
    let ratio = raw
        .map(|(single, most)| format!("{:.2}x / {:.2}x", rate / single, rate / most))
        .unwrap_or_default();
    let (goal, met) = match clients == TARGET_CLIENTS {
        true => (
            ">= 2,000/s (goal 10,000/s)",
            match (rate >= SIGN_TARGET, rate >= SIGN_GOAL) {
                (true, true) => "yes, goal too",
                (true, false) => "yes, not the goal",
                _ => "NO",
            },
        ),
        false => ("", ""),
    };
    let noun = if clients == 1 { "client" } else { "clients" };
    let label = format!("durable SignWorkload/s, {clients} {noun}");
    table.row([&label, &per_second(Some(rate)), &ratio, goal, met]);

    let latency = format!(
        "{} / {} ms",
        millis(outcome.latencies.quantile(0.5)),
        millis(outcome.latencies.quantile(0.99))
    );
    table.row(["  latency p50 / p99", &latency, "", "", ""]);
    if outcome.errors > 0 {
        table.row(["  failed calls", &outcome.errors.to_string(), "", "", ""]);
    }
}

fn paced_rows(table: &mut Table<5>, schedule: &Schedule, outcome: &mut PacedOutcome) {
    let label = format!(
        "open loop at {:.0}/s for {:.0} s: achieved/s",
        schedule.rate,
        schedule.duration.as_secs_f64()
    );
    table.row([&label, &per_second(Some(outcome.rate())), "", "", ""]);

    let latencies = &mut outcome.latencies;
    let p99 = latencies.quantile(0.99);
    let latency = format!(
        "{} / {} / {} ms",
        millis(latencies.quantile(0.5)),
        millis(p99),
        millis(latencies.quantile(1.0))
    );
    let p99_met = met(p99 < P99_TARGET && outcome.errors == 0);
    table.row([
        "  issuance p50 / p99 / max",
        &latency,
        "",
        "p99 < 5 ms",
        p99_met,
    ]);

    let lag = format!(
        "{} / {} ms",
        millis(outcome.start_lag.quantile(0.99)),
        millis(outcome.start_lag.quantile(1.0))
    );
    table.row(["  driver start lag p99 / max (included)", &lag, "", "", ""]);
    let sent = format!("{} sent, {} failed", outcome.sent, outcome.errors);
    table.row(["  calls", &sent, "", "", ""]);
}
