//! Open-loop request latency: small requests sent at a fixed rate over a
//! few established connections to an echo server, whatever the replies
//! do, each timed from the moment it was written to the moment its echo
//! was read. A thread keeps the schedule (`thread::sleep` wakes within tens
//! of microseconds, the runtime's timers only every millisecond) and one
//! thread per connection reads the replies.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::load::Latencies;

/// Bytes of each request and reply; the first eight carry its number.
const FRAME: usize = 64;
/// The longest wait for any reply.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The load of one run.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Requests per second.
    pub rate: f64,
    /// How long requests are sent.
    pub duration: Duration,
    /// Connections the requests are spread over, round-robin.
    pub connections: usize,
}

impl Pace {
    fn requests(&self) -> usize {
        (self.rate * self.duration.as_secs_f64()).round() as usize
    }
}

/// What one run measured.
#[derive(Debug, Default)]
pub struct LatencyRun {
    /// Write to reply, of every request answered.
    pub latencies: Latencies,
    /// How late the pacer wrote each request (not part of the latencies).
    pub lag: Latencies,
    /// Requests sent.
    pub sent: usize,
    /// Requests not answered.
    pub lost: usize,
    pub first_error: Option<String>,
}

impl LatencyRun {
    /// Adds the requests of `other`, a later round of the same load.
    pub fn merge(&mut self, other: LatencyRun) {
        self.latencies.merge(other.latencies);
        self.lag.merge(other.lag);
        self.sent += other.sent;
        self.lost += other.lost;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

/// When each request was written, in nanoseconds since the run started;
/// zero until it is.
type SentAt = Arc<Vec<AtomicU64>>;

/// Runs `pace` against the echo server at `target`.
pub fn run(target: SocketAddr, pace: Pace) -> io::Result<LatencyRun> {
    let mut writers = connect(target, pace.connections)?;
    let requests = pace.requests();
    let sent_at: SentAt = Arc::new((0..requests).map(|_| AtomicU64::new(0)).collect());
    let started = Instant::now();

    let mut readers = Vec::with_capacity(writers.len());
    for (index, writer) in writers.iter().enumerate() {
        let expected = (index..requests).step_by(writers.len()).count();
        let stream = writer.try_clone()?;
        readers.push(read_replies(stream, expected, started, sent_at.clone()));
    }

    let mut run = LatencyRun {
        sent: requests,
        ..LatencyRun::default()
    };
    if let Err(error) = pace_requests(&mut writers, pace.rate, started, &sent_at, &mut run.lag) {
        run.first_error = Some(format!("writing: {error}"));
    }

    for reader in readers {
        let (latencies, error) = reader.join().unwrap_or_default();
        for latency in latencies {
            run.latencies.record(latency);
        }
        if run.first_error.is_none() {
            run.first_error = error;
        }
    }
    run.lost = requests - run.latencies.len();
    Ok(run)
}

/// Opens `count` connections and makes one untimed round trip on each.
fn connect(target: SocketAddr, count: usize) -> io::Result<Vec<TcpStream>> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect_timeout(&target, READ_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        let mut frame = [0u8; FRAME];
        stream.write_all(&frame)?;
        stream.read_exact(&mut frame)?;
        streams.push(stream);
    }
    Ok(streams)
}

/// Writes request `n` to connection `n % connections` at its due time.
fn pace_requests(
    writers: &mut [TcpStream],
    rate: f64,
    started: Instant,
    sent_at: &SentAt,
    lag: &mut Latencies,
) -> io::Result<()> {
    let mut frame = [0u8; FRAME];
    for (n, slot) in sent_at.iter().enumerate() {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }

        let now = Instant::now();
        lag.record(now.saturating_duration_since(due));
        let nanos = now.duration_since(started).as_nanos().max(1) as u64;
        slot.store(nanos, Ordering::Release);
        frame[..8].copy_from_slice(&(n as u64).to_le_bytes());
        writers[n % writers.len()].write_all(&frame)?;
    }
    Ok(())
}

/// Reads `expected` replies from `stream`, timing each against its write.
fn read_replies(
    mut stream: TcpStream,
    expected: usize,
    started: Instant,
    sent_at: SentAt,
) -> JoinHandle<(Vec<Duration>, Option<String>)> {
    std::thread::spawn(move || {
        let mut latencies = Vec::with_capacity(expected);
        let mut frame = [0u8; FRAME];
        for _ in 0..expected {
            if let Err(error) = stream.read_exact(&mut frame) {
                return (latencies, Some(format!("reading: {error}")));
            }
            let read_at = started.elapsed().as_nanos() as u64;

            let mut number = [0u8; 8];
            number.copy_from_slice(&frame[..8]);
            let Some(slot) = sent_at.get(u64::from_le_bytes(number) as usize) else {
                return (latencies, Some("a reply to no request".into()));
            };
            let written = slot.load(Ordering::Acquire);
            latencies.push(Duration::from_nanos(read_at.saturating_sub(written)));
        }
        (latencies, None)
    })
}
