//! The small TCP services behind the agents, run as tasks of the test
//! process on `127.0.0.1:<app port>` of their host.
//!
//! Each is an echo server that trusts its agent the way a real
//! application would: it first reads the PROXY protocol v2 header the
//! agent sends, answers with one line naming the caller identity from the
//! header's TLV `0xE0`, then echoes whatever the caller sends. It records
//! the identity of every connection it saw, so that a test can tell that a
//! refused call never reached it, and the source address of the header,
//! which is where the caller's agent connected from.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::network::Site;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;

/// The v2 signature that opens a PROXY header.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2, command PROXY.
const VERSION_PROXY: u8 = 0x21;
/// The TLV the agent puts the caller's SPIFFE ID in.
const SPIFFE_ID_TLV: u8 = 0xE0;
/// How long a connection may take to send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the service records of a connection without a usable header.
pub const NO_HEADER: &str = "<no PROXY header>";
/// What it records of a header without the identity TLV.
pub const NO_IDENTITY: &str = "<no identity>";

/// One echo server; it stops when dropped.
pub struct App {
    /// The port it listens on, on 127.0.0.1 of its host.
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

/// What the service read of one connection.
#[derive(Clone, Debug)]
struct Seen {
    caller: String,
    /// The header's source address; `None` without a usable header.
    source: Option<SocketAddr>,
}

impl App {
    /// Starts an echo server on a free port of 127.0.0.1 of `host`.
    pub async fn start(host: &Site) -> App {
        let listener = host
            .listen((Ipv4Addr::LOCALHOST, 0).into())
            .expect("binding an application port");
        let port = listener.local_addr().expect("its address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(listener, seen.clone()));
        App { port, seen, task }
    }

    /// The caller of every connection so far, oldest first.
    pub fn callers(&self) -> Vec<String> {
        let seen = self.seen.lock().expect("callers");
        seen.iter().map(|s| s.caller.clone()).collect()
    }

    /// The source address in the PROXY header of every connection so far,
    /// oldest first; `None` for one without a usable header.
    pub fn sources(&self) -> Vec<Option<SocketAddr>> {
        let seen = self.seen.lock().expect("callers");
        seen.iter().map(|s| s.source).collect()
    }

    /// How many connections reached it.
    pub fn connections(&self) -> usize {
        self.seen.lock().expect("callers").len()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts until aborted; the connections' tasks end with it.
async fn serve(listener: TcpListener, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(answer(stream, seen.clone()));
    }
}

async fn answer(mut stream: TcpStream, seen: Arc<Mutex<Vec<Seen>>>) {
    let header = timeout(HEADER_TIMEOUT, read_header(&mut stream)).await;
    let (caller, source) = match header {
        Ok(Ok(header)) => {
            let caller = header.spiffe_id.unwrap_or_else(|| NO_IDENTITY.to_owned());
            (caller, Some(header.source))
        }
        _ => (NO_HEADER.to_owned(), None),
    };
    let record = Seen {
        caller: caller.clone(),
        source,
    };
    seen.lock().expect("callers").push(record);
    if caller == NO_HEADER {
        return;
    }

    if stream
        .write_all(format!("{caller}\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let (mut from, mut to) = stream.split();
    let _ = tokio::io::copy(&mut from, &mut to).await;
}

/// What a PROXY v2 header says.
#[derive(Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// The value of TLV `0xE0`, if the header has one.
    pub spiffe_id: Option<String>,
}

/// Reads a PROXY v2 header over TCP from the start of `reader`.
pub async fn read_header<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<ProxyHeader> {
    let mut fixed = [0u8; 16];
    reader.read_exact(&mut fixed).await?;
    if fixed[..12] != SIGNATURE || fixed[12] != VERSION_PROXY {
        return Err(invalid("not a PROXY v2 header"));
    }
    let width = match fixed[13] {
        0x11 => 4,
        0x21 => 16,
        _ => return Err(invalid("not TCP over IPv4 or IPv6")),
    };
    let mut body = vec![0; usize::from(u16::from_be_bytes([fixed[14], fixed[15]]))];
    reader.read_exact(&mut body).await?;

    let ports = 2 * width;
    let block = body
        .get(..ports + 4)
        .ok_or_else(|| invalid("short address block"))?;
    Ok(ProxyHeader {
        source: socket(&block[..width], &block[ports..ports + 2]),
        destination: socket(&block[width..ports], &block[ports + 2..ports + 4]),
        spiffe_id: spiffe_id(&body[ports + 4..])?,
    })
}

fn socket(ip: &[u8], port: &[u8]) -> SocketAddr {
    let ip: std::net::IpAddr = match <[u8; 4]>::try_from(ip) {
        Ok(v4) => v4.into(),
        Err(_) => <[u8; 16]>::try_from(ip).expect("16 bytes").into(),
    };
    SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]]))
}

/// The value of the identity TLV among `tlvs`, if any.
fn spiffe_id(mut tlvs: &[u8]) -> io::Result<Option<String>> {
    let mut found = None;
    while !tlvs.is_empty() {
        let [kind, high, low, rest @ ..] = tlvs else {
            return Err(invalid("truncated TLV"));
        };
        let length = usize::from(u16::from_be_bytes([*high, *low]));
        let value = rest.get(..length).ok_or_else(|| invalid("truncated TLV"))?;
        if *kind == SPIFFE_ID_TLV {
            let text = String::from_utf8(value.to_vec()).map_err(|_| invalid("TLV not UTF-8"))?;
            found = Some(text);
        }
        tlvs = &rest[length..];
    }
    Ok(found)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_header_with_the_identity_tlv_is_read() {
        let mut header = SIGNATURE.to_vec();
        header.extend_from_slice(&[VERSION_PROXY, 0x11, 0, 12 + 3 + 4]);
        header.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0x1f, 0x90, 0x00, 0x50]);
        header.extend_from_slice(&[SPIFFE_ID_TLV, 0, 4]);
        header.extend_from_slice(b"id:x");
        header.extend_from_slice(b"after");

        let mut reader = &header[..];
        let parsed = read_header(&mut reader).await.unwrap();

        assert_eq!(parsed.source, "10.0.0.1:8080".parse().unwrap());
        assert_eq!(parsed.destination, "10.0.0.2:80".parse().unwrap());
        assert_eq!(parsed.spiffe_id.as_deref(), Some("id:x"));
        assert_eq!(reader, b"after");
    }

    #[tokio::test]
    async fn plain_bytes_are_not_a_header() {
        let mut reader = &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..];

        assert!(read_header(&mut reader).await.is_err());
    }
}
