//! The agent benchmarks' results table.

use std::time::Duration;

use super::bulk::Transfer;
use super::connects::Connects;
use super::latency::LatencyRun;
use crate::cli::AgentArgs;
use crate::cp::Memory;
use crate::noise::Others;
use crate::table::{Table, met, millis};

/// The most latency the pair may add at p99, and the goal.
const ADDED_P99_MUST: Duration = Duration::from_micros(500);
const ADDED_P99_GOAL: Duration = Duration::from_micros(100);
/// Of HAProxy's throughput ratio: what the pair must reach, and the goal.
const BULK_GOAL: f64 = 1.5;
/// CPU per full handshake on the server side, the goal.
const HANDSHAKE_CPU_GOAL: Duration = Duration::from_micros(180);
/// Idle resident memory of an agent: must and goal, in KiB.
const IDLE_MUST_KIB: u64 = 30 * 1024;
const IDLE_GOAL_KIB: u64 = 8 * 1024;

/// What the new-connection run of a proxy pair measured.
#[derive(Debug)]
pub struct ConnectRun {
    pub connects: Connects,
    /// CPU time the client and server sides used meanwhile.
    pub client_cpu: Duration,
    pub server_cpu: Duration,
}

impl ConnectRun {
    fn per_connection(&self, cpu: Duration) -> Duration {
        cpu.checked_div(self.connects.completed.max(1) as u32)
            .unwrap_or_default()
    }
}

/// Everything measured on one route.
#[derive(Debug)]
pub struct RouteResult {
    pub name: &'static str,
    pub latency: Option<LatencyRun>,
    pub bulk: Vec<Transfer>,
    pub connects: Option<ConnectRun>,
}

impl RouteResult {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            latency: None,
            bulk: Vec::new(),
            connects: None,
        }
    }

    /// The median bulk rate, bytes per second.
    fn bulk_rate(&self) -> f64 {
        let mut rates: Vec<f64> = self.bulk.iter().map(Transfer::rate).collect();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied().unwrap_or(0.0)
    }
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct AgentReport {
    /// Workloads the server agent serves.
    pub workloads: usize,
    /// Client and server agents' memory, idle.
    pub idle: [Memory; 2],
    /// Their largest VmRSS during the loads, KiB.
    pub loaded: Vec<u64>,
    /// Their VmHWM at the end, KiB.
    pub peak: [u64; 2],
    pub routes: Vec<RouteResult>,
    pub haproxy_version: Option<String>,
    pub others: Option<Others>,
}

impl AgentReport {
    /// Prints the results table.
    pub fn print(mut self, args: &AgentArgs) {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("\nPalisade agent benchmarks: {cores} cores");
        if let Some(version) = &self.haproxy_version {
            println!("peer: {version}");
        }
        if let Some(others) = self.others {
            println!("{others}");
        }
        println!();

        let mut table = Table::<4>::default();
        table.row(["measure", "value", "goal", "met"]);
        self.latency_rows(&mut table, args);
        self.bulk_rows(&mut table, args);
        self.connect_rows(&mut table, args);
        self.memory_rows(&mut table);
        table.print();
    }

    fn latency_rows(&mut self, table: &mut Table<4>, args: &AgentArgs) {
        table.row([
            &format!(
                "latency: {} B echo, open loop at {:.0}/s for {} s over {} connections",
                64, args.rate, args.latency_secs, args.latency_connections
            ),
            "",
            "",
            "",
        ]);
        table.row([
            &format!(
                "  in {} rounds of {:.1} s, the paths taking turns",
                args.latency_rounds,
                args.latency_round_time().as_secs_f64()
            ),
            "",
            "",
            "",
        ]);
        let mut direct = None;
        for route in &mut self.routes {
            let Some(run) = route.latency.as_mut() else {
                continue;
            };
            let (p50, p99, p999) = (
                run.latencies.quantile(0.5),
                run.latencies.quantile(0.99),
                run.latencies.quantile(0.999),
            );
            table.row([
                &format!("  {}: p50 / p99 / p99.9 ms", route.name),
                &format!("{} / {} / {}", millis(p50), millis(p99), millis(p999)),
                "",
                "",
            ]);
            if run.lost > 0 {
                let error = run.first_error.as_deref().unwrap_or("");
                table.row([
                    &format!("    unanswered of {}", run.sent),
                    &format!("{} ({error})", run.lost),
                    "0",
                    "NO",
                ]);
            }
            match direct {
                None => direct = Some((p50, p99)),
                Some((base50, base99)) => {
                    let added99 = p99.saturating_sub(base99);
                    let goal = (route.name == "agent pair").then(|| {
                        let verdict = match (added99 < ADDED_P99_MUST, added99 < ADDED_P99_GOAL) {
                            (true, true) => "yes, goal too",
                            (true, false) => "yes, not the goal",
                            _ => "NO",
                        };
                        ("< 0.5 ms (goal 0.1 ms)", verdict)
                    });
                    let (goal, verdict) = goal.unwrap_or(("", ""));
                    table.row([
                        "    added over direct, p50 / p99 ms",
                        &format!(
                            "{} / {}",
                            millis(p50.saturating_sub(base50)),
                            millis(added99)
                        ),
                        goal,
                        verdict,
                    ]);
                }
            }
            table.row([
                "    pacer lateness p99 (not included)",
                &millis(run.lag.quantile(0.99)),
                "",
                "",
            ]);
        }
    }

    fn bulk_rows(&self, table: &mut Table<4>, args: &AgentArgs) {
        table.row([
            &format!(
                "bulk: one connection, {} s, median of {}",
                args.bulk_secs, args.bulk_rounds
            ),
            "",
            "",
            "",
        ]);
        let direct = self.routes.first().map_or(0.0, RouteResult::bulk_rate);
        let ratio = |route: &RouteResult| route.bulk_rate() / direct.max(f64::MIN_POSITIVE);
        let haproxy = self.route("HAProxy pair").map(ratio);
        for route in &self.routes {
            let mib = route.bulk_rate() / (1024.0 * 1024.0);
            let (goal, verdict) = match (route.name, haproxy) {
                ("agent pair", Some(peer)) => {
                    let ours = ratio(route);
                    let verdict = match (ours >= peer, ours >= BULK_GOAL * peer) {
                        (true, true) => "yes, goal too",
                        (true, false) => "yes, not the goal",
                        _ => "NO",
                    };
                    (
                        format!(">= HAProxy's {peer:.2}x (goal {:.2}x)", BULK_GOAL * peer),
                        verdict,
                    )
                }
                _ => (String::new(), ""),
            };
            table.row([
                &format!("  {}: MiB/s, ratio to direct", route.name),
                &format!("{mib:.0}, {:.2}x", ratio(route)),
                &goal,
                verdict,
            ]);
        }
    }

    fn connect_rows(&self, table: &mut Table<4>, args: &AgentArgs) {
        table.row([
            &format!(
                "new mTLS connections: {} clients, {} s, 1 B echoed on each",
                args.connect_clients, args.connect_secs
            ),
            "",
            "",
            "",
        ]);
        for route in &self.routes {
            let Some(run) = &route.connects else { continue };
            let server = run.per_connection(run.server_cpu);
            let client = run.per_connection(run.client_cpu);
            table.row([
                &format!("  {}: connections/s (failed)", route.name),
                &format!("{:.0} ({})", run.connects.rate(), run.connects.failed),
                "",
                "",
            ]);
            let goal = route.name == "agent pair";
            table.row([
                "    CPU per connection, server / client side",
                &format!("{} / {} us", server.as_micros(), client.as_micros()),
                if goal { "server < 180 us" } else { "" },
                if goal {
                    met(server < HANDSHAKE_CPU_GOAL)
                } else {
                    ""
                },
            ]);
        }
    }

    fn memory_rows(&self, table: &mut Table<4>) {
        table.row([
            &format!(
                "agent memory, {} workloads on the server node",
                self.workloads
            ),
            "",
            "",
            "",
        ]);
        let mib = |kib: u64| format!("{:.1}", kib as f64 / 1024.0);
        for (index, side) in ["client", "server"].iter().enumerate() {
            let idle = self.idle[index].rss_kib;
            let verdict = match (idle < IDLE_MUST_KIB, idle < IDLE_GOAL_KIB) {
                (true, true) => "yes, goal too",
                (true, false) => "yes, not the goal",
                _ => "NO",
            };
            let loaded = self.loaded.get(index).copied().unwrap_or(0);
            table.row([
                &format!("  {side} agent VmRSS idle / under load / VmHWM, MiB"),
                &format!(
                    "{} / {} / {}",
                    mib(idle),
                    mib(loaded),
                    mib(self.peak[index])
                ),
                "idle < 30 MiB (goal 8)",
                verdict,
            ]);
        }
    }

    fn route(&self, name: &str) -> Option<&RouteResult> {
        self.routes.iter().find(|route| route.name == name)
    }
}
