//! Copying bytes both ways between two connections, with half-close: when
//! one side stops sending, the other side's write half is shut down and the
//! other direction goes on until it ends too.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Each direction starts with a small buffer, so that idle and chatty
/// connections stay small, and moves to the large one the first time a
/// read fills it: bulk transfers then cross in fewer, larger writes (four
/// TLS records per write instead of one).
const FIRST_BUFFER: usize = 16 * 1024;
const LARGE_BUFFER: usize = 64 * 1024;

/// The bytes carried by one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transferred {
    /// From the downstream side to the upstream side.
    pub sent: u64,
    /// From the upstream side to the downstream side.
    pub received: u64,
}

/// How a carried connection ended.
#[derive(Debug)]
pub struct Carried {
    pub transferred: Transferred,
    /// Why it ended otherwise than by both sides finishing.
    pub error: Option<String>,
}

/// [`forward`]s until both directions end, or until `cut` resolves, which
/// drops both sides at once and gives `why` as the error.
pub async fn forward_until<D, U>(
    downstream: D,
    upstream: U,
    cut: impl Future<Output = ()>,
    why: &str,
) -> Carried
where
    D: AsyncRead + AsyncWrite,
    U: AsyncRead + AsyncWrite,
{
    let forwarded = tokio::select! {
        forwarded = forward(downstream, upstream) => forwarded.map_err(|error| error.to_string()),
        () = cut => Err(why.to_owned()),
    };

    match forwarded {
        Ok(transferred) => Carried {
            transferred,
            error: None,
        },
        Err(error) => Carried {
            transferred: Transferred::default(),
            error: Some(error),
        },
    }
}

/// Copies `downstream` to `upstream` and back until both directions end.
/// An error in either direction ends both.
pub async fn forward<D, U>(downstream: D, upstream: U) -> io::Result<Transferred>
where
    D: AsyncRead + AsyncWrite,
    U: AsyncRead + AsyncWrite,
{
    let (down_read, down_write) = tokio::io::split(downstream);
    let (up_read, up_write) = tokio::io::split(upstream);

    let (sent, received) =
        tokio::try_join!(one_way(down_read, up_write), one_way(up_read, down_write))?;
    Ok(Transferred { sent, received })
}

/// Copies `from` to `to` until `from` ends, then shuts `to` down. A TLS
/// peer that closes without `close_notify` ends its direction as a clean
/// close would.
async fn one_way<R, W>(mut from: R, mut to: W) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0; FIRST_BUFFER];
    let mut total = 0;
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(error) => return Err(error),
        };

        to.write_all(&buffer[..read]).await?;
        to.flush().await?;
        total += read as u64;
        if read == buffer.len() && buffer.len() < LARGE_BUFFER {
            buffer.resize(LARGE_BUFFER, 0);
        }
    }

    match to.shutdown().await {
        Err(error) if error.kind() != io::ErrorKind::NotConnected => Err(error),
        _ => Ok(total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_direction_half_closes_on_its_own() {
        let (client, near) = tokio::io::duplex(64);
        let (far, server) = tokio::io::duplex(64);
        let forwarding = tokio::spawn(forward(near, far));
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let (mut server_read, mut server_write) = tokio::io::split(server);

        client_write.write_all(b"request").await.unwrap();
        client_write.shutdown().await.unwrap();
        let mut request = Vec::new();
        server_read.read_to_end(&mut request).await.unwrap();

        server_write.write_all(b"response after eof").await.unwrap();
        server_write.shutdown().await.unwrap();
        let mut response = Vec::new();
        client_read.read_to_end(&mut response).await.unwrap();

        assert_eq!(request, b"request");
        assert_eq!(response, b"response after eof");
        let transferred = forwarding.await.unwrap().unwrap();
        assert_eq!(
            transferred,
            Transferred {
                sent: 7,
                received: 18
            }
        );
    }
}
