//! The xDS benchmarks' results table, one per fleet size.

use std::time::Duration;

use super::connect::{Connected, Reading};
use super::floor::Floor;
use super::push::{Arrivals, FleetPush, TargetedPush};
use super::storm::Storm;
use crate::load::Latencies;
use crate::noise::Others;
use crate::table::{Table, met, millis, seconds};

/// The slowest acknowledgement of a fleet push allowed, and the goal.
const PUSH_TARGET: Duration = Duration::from_secs(1);
const PUSH_GOAL: Duration = Duration::from_millis(100);
/// Control-plane memory per idle stream that is the goal, in KiB.
const MEMORY_GOAL_KIB: f64 = 32.0;
/// The longest any agent may wait for its first response after a restart.
const FIRST_RESPONSE_TARGET: Duration = Duration::from_secs(2);

/// Everything one fleet size measured.
#[derive(Debug)]
pub struct XdsReport {
    pub agents: usize,
    pub setup: Duration,
    pub connected: Connected,
    pub fleet_push: FleetPush,
    pub targeted: TargetedPush,
    pub storm: Option<Storm>,
    /// The storm's reconnections as bare TLS resumptions.
    pub floor: Option<Floor>,
    /// What other processes took meanwhile.
    pub others: Others,
}

impl XdsReport {
    /// Prints the results table.
    pub fn print(mut self) {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!(
            "\nPalisade xDS benchmarks: {} agents, {cores} cores\n{}\n",
            self.agents, self.others
        );

        let mut table = Table::<4>::default();
        table.row(["measure", "value", "goal", "met"]);
        self.setup_rows(&mut table);
        fleet_rows(&mut table, &mut self.fleet_push);
        targeted_rows(&mut table, &mut self.targeted, self.agents);
        memory_rows(&mut table, &self.connected.readings);
        if let Some(storm) = &mut self.storm {
            storm_rows(&mut table, storm);
            if let Some(floor) = &mut self.floor {
                floor_rows(&mut table, floor, storm);
            }
        }
        table.print();
    }

    fn setup_rows(&self, table: &mut Table<4>) {
        table.row([
            "setup: apply the fleet, attest every node",
            &seconds(self.setup),
            "",
            "",
        ]);
        let sync = self.connected.sync;
        let value = format!(
            "{} ({:.0} agents/s, {} KiB sent)",
            seconds(sync),
            self.agents as f64 / sync.as_secs_f64(),
            self.connected.bytes / 1024
        );
        table.row(["connect and sync every agent", &value, "", ""]);
    }
}

fn fleet_rows(table: &mut Table<4>, push: &mut FleetPush) {
    let label = format!(
        "fleet push: {} policy change(s) x {} agents",
        push.changes, push.agents
    );
    table.row([&label, "", "", ""]);
    let (received, acked) = arrival_cells(&mut push.arrivals);
    table.row(["  OK -> received, p50 / p99 / max", &received, "", ""]);
    let max = push.arrivals.acked.quantile(1.0);
    let verdict = match (max < PUSH_TARGET, max < PUSH_GOAL) {
        _ if push.missed > 0 => "NO",
        (true, true) => "yes, goal too",
        (true, false) => "yes, not the goal",
        (false, _) => "NO",
    };
    let goal = "< 1 s (goal 100 ms)";
    table.row(["  OK -> ACK sent, p50 / p99 / max", &acked, goal, verdict]);

    let apply = format!(
        "{} / {} ms",
        millis(push.apply.quantile(0.5)),
        millis(push.apply.quantile(1.0))
    );
    table.row(["  Apply call (send -> OK), p50 / max", &apply, "", ""]);
    let misses = format!("{} / {}", push.missed, push.unexpected);
    table.row([
        "  updates missed / unexpected responses",
        &misses,
        "0 / 0",
        "",
    ]);
    let server = format!("{} of {}", push.server_acked, push.agents);
    table.row([
        "  streams the server saw ACK the last change",
        &server,
        "all",
        "",
    ]);
}

fn targeted_rows(table: &mut Table<4>, push: &mut TargetedPush, agents: usize) {
    table.row([
        "targeted push: the target workload's port changes",
        "",
        "",
        "",
    ]);
    let reached = format!(
        "{} of {agents} (expected {}; exactly those: {})",
        push.reached,
        push.expected,
        if push.exact { "yes" } else { "no" }
    );
    let goal = format!("= {}", push.expected);
    let ok = met(push.exact);
    table.row(["  nodes that received anything", &reached, &goal, ok]);
    let per_node = push.bytes / push.reached.max(1);
    let bytes = format!(
        "{per_node} B ({} responses, {} B)",
        push.responses, push.bytes
    );
    table.row(["  bytes per affected node", &bytes, "", ""]);
    let (received, acked) = arrival_cells(&mut push.arrivals);
    table.row(["  OK -> received, p50 / p99 / max", &received, "", ""]);
    table.row(["  OK -> ACK sent, p50 / p99 / max", &acked, "", ""]);
}

fn memory_rows(table: &mut Table<4>, readings: &[Reading]) {
    let streams: Vec<String> = readings.iter().map(|r| r.streams.to_string()).collect();
    let rss: Vec<String> = readings
        .iter()
        .map(|r| (r.rss_kib / 1024).to_string())
        .collect();
    let label = format!("memory: VmRSS with {} idle streams", streams.join(" / "));
    table.row([&label, &format!("{} MiB", rss.join(" / ")), "", ""]);

    for pair in readings.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        let added = (to.streams - from.streams) as f64;
        let slope = (to.rss_kib as f64 - from.rss_kib as f64) / added;
        let label = format!("  KiB per idle stream, {} -> {}", from.streams, to.streams);
        let last = to.streams == readings[readings.len() - 1].streams;
        let (goal, ok) = match last {
            true => ("< 32 KiB", met(slope < MEMORY_GOAL_KIB)),
            false => ("", ""),
        };
        table.row([&label, &format!("{slope:.1}"), goal, ok]);
    }
}

fn floor_rows(table: &mut Table<4>, floor: &mut Floor, storm: &Storm) {
    let label = format!(
        "storm floor: {} bare TLS 1.3 resumptions at once, 1 B each way",
        floor.clients
    );
    table.row([&label, "", "", ""]);
    let ratio = storm.all_acked.as_secs_f64() / floor.all_done.as_secs_f64().max(1e-9);
    table.row([
        "  release -> byte back, p50 / p99 / max",
        &format!("{} ms", percentiles(&mut floor.done)),
        "",
        "",
    ]);
    let ratio = format!("{ratio:.1}x the floor's time");
    table.row(["  the storm's release -> every agent ACKed", &ratio, "", ""]);
    let cpu = format!(
        "{} / {} ({} resumed)",
        seconds(floor.server_cpu),
        seconds(floor.client_cpu),
        floor.resumed
    );
    table.row(["  CPU: server / clients", &cpu, "", ""]);
}

fn storm_rows(table: &mut Table<4>, storm: &mut Storm) {
    let label = format!(
        "reconnect storm: {} agents, restart on the same port",
        storm.agents
    );
    table.row([&label, "", "", ""]);
    let restart = format!("{} / {}", seconds(storm.stop), seconds(storm.start));
    table.row([
        "  stop (SIGTERM -> exit) / start (-> SERVING)",
        &restart,
        "",
        "",
    ]);
    table.row([
        "  release -> every agent ACKed every type",
        &seconds(storm.all_acked),
        "",
        "",
    ]);

    let first = &mut storm.first_response;
    let max = first.quantile(1.0);
    let cell = format!("{} ms", percentiles(first));
    let ok = met(max < FIRST_RESPONSE_TARGET);
    table.row([
        "  release -> first response, p50 / p99 / max",
        &cell,
        "< 2 s",
        ok,
    ]);

    let resent = format!(
        "{} of {} resources sent",
        storm.unchanged_resent, storm.resources_resent
    );
    let ok = met(storm.unchanged_resent == 0);
    table.row(["  resent although unchanged", &resent, "0", ok]);
    let cpu = format!(
        "{} / {}",
        seconds(storm.server_cpu),
        seconds(storm.fleet_cpu)
    );
    table.row([
        "  CPU until synced: control plane / simulated fleet",
        &cpu,
        "",
        "",
    ]);
    let sent = format!("{} B, {} streams retried", storm.bytes, storm.retries);
    table.row(["  first answers' size, retries", &sent, "", ""]);
    let tcp = format!(
        "{} / {}",
        storm.tcp.listen_overflows, storm.tcp.syn_retransmits
    );
    table.row([
        "  kernel: listen queue overflows / SYN resends",
        &tcp,
        "",
        "",
    ]);
}

fn arrival_cells(arrivals: &mut Arrivals) -> (String, String) {
    (
        format!("{} ms", percentiles(&mut arrivals.received)),
        format!("{} ms", percentiles(&mut arrivals.acked)),
    )
}

fn percentiles(latencies: &mut Latencies) -> String {
    format!(
        "{} / {} / {}",
        millis(latencies.quantile(0.5)),
        millis(latencies.quantile(0.99)),
        millis(latencies.quantile(1.0))
    )
}
