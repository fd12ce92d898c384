//! New connections: clients that each, in a loop, connect, send one byte to
//! the echo server, read it back and close, for a fixed time. Through a
//! proxy pair every connection is a new mTLS connection between the two
//! proxies, with a full handshake (neither side resumes sessions).

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The longest wait to connect or for the echo.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What one run achieved.
#[derive(Clone, Debug, Default)]
pub struct Connects {
    /// Connections that carried their byte there and back.
    pub completed: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub first_error: Option<String>,
}

impl Connects {
    /// Completed connections per second.
    pub fn rate(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `clients` looping clients against the echo server at `target`
/// for `duration`.
pub fn run(target: SocketAddr, clients: usize, duration: Duration) -> Connects {
    let started = Instant::now();
    let deadline = started + duration;
    let threads: Vec<_> = (0..clients)
        .map(|_| std::thread::spawn(move || client(target, deadline)))
        .collect();

    let mut total = Connects::default();
    for thread in threads {
        let Ok(part) = thread.join() else { continue };
        total.completed += part.completed;
        total.failed += part.failed;
        total.first_error = total.first_error.or(part.first_error);
    }
    total.elapsed = started.elapsed();
    total
}

fn client(target: SocketAddr, deadline: Instant) -> Connects {
    let mut outcome = Connects::default();
    while Instant::now() < deadline {
        match round_trip(target) {
            Ok(()) => outcome.completed += 1,
            Err(error) => {
                outcome.failed += 1;
                outcome.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    outcome
}

fn round_trip(target: SocketAddr) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&target, TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.write_all(b"x")?;
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)
}
