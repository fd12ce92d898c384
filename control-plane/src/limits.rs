//! Request size limits for every gRPC call.
//!
//! Request bodies are followed through gRPC's framing as they arrive: a
//! message whose length prefix declares more than the limit fails the call
//! with RESOURCE_EXHAUSTED at once, so an oversized request is neither
//! waited for nor buffered. Each service also sets its own, smaller, tonic
//! message limit. The admin service audits these refusals like its others
//! (`admin::early_refusal`).

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// The largest request message any service accepts.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024 + 64 * 1024;

/// Wraps every request body in a [`LimitedBody`].
#[derive(Clone, Copy, Debug)]
pub struct RequestLimitLayer {
    max: usize,
}

impl RequestLimitLayer {
    pub fn new(max: usize) -> Self {
        Self { max }
    }
}

impl<S> tower::Layer<S> for RequestLimitLayer {
    type Service = RequestLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLimit {
            inner,
            max: self.max,
        }
    }
}

/// The service that [`RequestLimitLayer`] makes.
#[derive(Clone, Debug)]
pub struct RequestLimit<S> {
    inner: S,
    max: usize,
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for RequestLimit<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let max = self.max;
        let request = request.map(|body| {
            tonic::body::Body::new(LimitedBody {
                inner: body,
                framing: Framing::default(),
                max,
            })
        });
        self.inner.call(request)
    }
}

/// A request body that fails as soon as one of its gRPC messages is declared
/// (or found) to be longer than `max` bytes.
///
/// The limit is per message, not per stream, so a long-lived stream of small
/// messages (an xDS stream, a watch) is never cut off; and the declared
/// length in each message's 5-byte prefix is checked before any of the
/// message arrives, so a client cannot make the server wait for, or reserve
/// room for, a message it will refuse.
pub struct LimitedBody {
    inner: tonic::body::Body,
    framing: Framing,
    max: usize,
}

/// Where the body stands in gRPC's length-prefixed framing.
#[derive(Debug, Default)]
struct Framing {
    /// The prefix of the next message, as much of it as has arrived.
    prefix: [u8; PREFIX_LEN],
    prefix_seen: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

/// A gRPC message prefix: one flag byte and a big-endian u32 length.
const PREFIX_LEN: usize = 5;

impl Framing {
    /// Follows `data` through the framing; returns the declared length of
    /// the first message longer than `max`, if any.
    fn advance(&mut self, mut data: &[u8], max: usize) -> Option<usize> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let taken = self.remaining.min(data.len());
                self.remaining -= taken;
                data = &data[taken..];
                continue;
            }

            let taken = (PREFIX_LEN - self.prefix_seen).min(data.len());
            self.prefix[self.prefix_seen..self.prefix_seen + taken].copy_from_slice(&data[..taken]);
            self.prefix_seen += taken;
            data = &data[taken..];
            if self.prefix_seen < PREFIX_LEN {
                return None;
            }

            self.prefix_seen = 0;
            let length = u32::from_be_bytes([
                self.prefix[1],
                self.prefix[2],
                self.prefix[3],
                self.prefix[4],
            ]) as usize;
            if length > max {
                return Some(length);
            }
            self.remaining = length;
        }
        None
    }
}

impl Body for LimitedBody {
    type Data = <tonic::body::Body as Body>::Data;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };

        if let Some(data) = frame.data_ref() {
            let max = self.max;
            if let Some(length) = self.framing.advance(data, max) {
                let message =
                    format!("request message of {length} bytes is larger than the limit of {max}");
                return Poll::Ready(Some(Err(Status::resource_exhausted(message))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(length: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.resize(PREFIX_LEN + length as usize, b'x');
        bytes
    }

    #[test]
    fn messages_within_the_limit_pass_however_many_arrive() {
        let mut framing = Framing::default();
        let stream: Vec<u8> = (0..1000).flat_map(|_| message(100)).collect();

        for chunk in stream.chunks(7) {
            assert_eq!(framing.advance(chunk, 128), None);
        }
    }

    #[test]
    fn an_oversized_declared_length_is_refused_before_its_body_arrives() {
        let mut framing = Framing::default();
        let mut stream = message(10);
        stream.extend_from_slice(&[0, 0x04, 0, 0, 0]);

        assert_eq!(framing.advance(&stream[..13], 1024), None);
        assert_eq!(framing.advance(&stream[13..], 1024), Some(64 * 1024 * 1024));
    }

    #[test]
    fn a_prefix_split_across_frames_is_read_whole() {
        let mut framing = Framing::default();
        let stream = [0u8, 0, 0, 0x10, 0];

        for byte in &stream[..4] {
            assert_eq!(framing.advance(std::slice::from_ref(byte), 1024), None);
        }
        assert_eq!(framing.advance(&stream[4..], 1024), Some(4096));
    }
}
