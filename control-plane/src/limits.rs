//! Request size limits for every gRPC call.
//!
//! Request bodies are counted as they arrive; one that grows past the limit
//! fails the call with RESOURCE_EXHAUSTED at that point, so an oversized
//! request is never buffered whole.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// The largest request body the admin API accepts.
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
                seen: 0,
                max,
            })
        });
        self.inner.call(request)
    }
}

/// A request body that fails once more than `max` bytes have arrived.
pub struct LimitedBody {
    inner: tonic::body::Body,
    seen: usize,
    max: usize,
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
            self.seen = self.seen.saturating_add(data.len());
            if self.seen > self.max {
                let message = format!("request is larger than the limit of {} bytes", self.max);
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
