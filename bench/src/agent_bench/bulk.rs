//! Bulk throughput: one connection writes as fast as it can to a sink for
//! a fixed time, closes its sending side, and waits for the sink's count of
//! what arrived; the time runs from the first write to that count.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Size of each write.
const CHUNK: usize = 256 * 1024;
/// The longest wait to connect or for the count.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What one transfer carried.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    pub bytes: u64,
    pub elapsed: Duration,
}

impl Transfer {
    /// Bytes per second.
    pub fn rate(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sends to the sink at `target` for `duration`.
pub fn run(target: SocketAddr, duration: Duration) -> io::Result<Transfer> {
    let mut stream = TcpStream::connect_timeout(&target, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let chunk = vec![0x5a; CHUNK];

    let started = Instant::now();
    let mut bytes = 0u64;
    while started.elapsed() < duration {
        stream.write_all(&chunk)?;
        bytes += CHUNK as u64;
    }
    stream.shutdown(Shutdown::Write)?;

    let mut count = [0u8; 8];
    stream.read_exact(&mut count)?;
    let elapsed = started.elapsed();
    let received = u64::from_le_bytes(count);
    if received != bytes {
        let message = format!("sent {bytes} bytes, the sink counted {received}");
        return Err(io::Error::other(message));
    }
    Ok(Transfer { bytes, elapsed })
}
