//! The applications behind the server's workloads, threads of the bench on
//! 127.0.0.1: an echo server (latency and new connections) and a sink that
//! reads until the client stops sending and answers with the byte count
//! (bulk throughput). Each connection gets a thread; they end with the
//! bench.

use std::io::{self, Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};

/// Read and write size of both applications.
const BUFFER: usize = 256 * 1024;

/// What an application does with a connection.
#[derive(Clone, Copy, Debug)]
pub enum App {
    /// Writes back everything it reads.
    Echo,
    /// Counts what it reads; at the end of the input, writes the count as
    /// eight little-endian bytes.
    Sink,
}

impl App {
    /// Starts the application on a free loopback port and returns where.
    pub fn start(self) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let address = listener.local_addr()?;
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = self.serve(stream);
                });
            }
        });
        Ok(address)
    }

    fn serve(self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let mut buffer = vec![0; BUFFER];
        let mut total = 0u64;
        loop {
            let read = stream.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            total += read as u64;
            if let App::Echo = self {
                stream.write_all(&buffer[..read])?;
            }
        }

        if let App::Sink = self {
            stream.write_all(&total.to_le_bytes())?;
        }
        Ok(())
    }
}
