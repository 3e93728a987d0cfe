//! Whether an HTTP client hung up before a component's response was all written.
//!
//! A `wasi:http/proxy` guest runs in a task of its own and goes on after its client has gone: hyper
//! drops the request's future (the client closed while the guest had not set a response yet) or
//! the response body (it closed while the body was streaming). The guest's next write then fails
//! with `stream-error.closed`, and a guest that does not expect it (componentize-py raises, the
//! handler traps with a traceback) ends badly through no fault of its own. Knowing that the client
//! hung up lets the data plane say so in one line instead of reporting a guest failure.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Set once the client of one request has hung up.
#[derive(Clone, Debug, Default)]
pub struct HangUp(Arc<AtomicBool>);

impl HangUp {
    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Armed while the request waits for the guest's response: dropped armed (hyper dropped the
    /// future that held it), the client has hung up.
    pub fn waiting(&self) -> Waiting {
        Waiting(Some(self.clone()))
    }

    /// The response body, reporting a hang-up if hyper drops it before its end.
    pub fn watch(&self, body: HyperOutgoingBody) -> Watched {
        Watched {
            body,
            ended: false,
            hangup: self.clone(),
        }
    }
}

pub struct Waiting(Option<HangUp>);

impl Waiting {
    /// The response (or the error that stands for it) is on its way to the client.
    pub fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.set();
        }
    }
}

pub struct Watched {
    body: HyperOutgoingBody,
    ended: bool,
    hangup: HangUp,
}

impl Body for Watched {
    type Data = <HyperOutgoingBody as Body>::Data;
    type Error = <HyperOutgoingBody as Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            this.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // Before the body itself is dropped: the guest's next write fails only after that.
        if !self.ended && !self.body.is_end_stream() {
            self.hangup.set();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use std::collections::VecDeque;

    /// A body whose chunks are all there at once.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = <HyperOutgoingBody as Body>::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn body(chunks: &[&'static str]) -> HyperOutgoingBody {
        Chunks(
            chunks
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
        )
        .boxed_unsync()
    }

    #[test]
    fn waiting_dropped_unanswered_is_a_hangup() {
        let h = HangUp::default();
        h.waiting().answered();
        assert!(!h.happened());
        drop(h.waiting());
        assert!(h.happened());
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_is_a_hangup() {
        let read = HangUp::default();
        let all = read.watch(body(&["a", "b"])).collect().await.unwrap();
        assert_eq!(&all.to_bytes()[..], b"ab");
        assert!(!read.happened());
        let cut = HangUp::default();
        let mut watched = cut.watch(body(&["a", "b"]));
        let first = watched.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        drop(watched);
        assert!(cut.happened());
    }
}
