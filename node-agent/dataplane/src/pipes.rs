//! Bounded stdout/stderr for guests: stdout past its limit stops the guest (its response would be
//! cut anyway), stderr past its limit is dropped; both count what the guest tried to write, so
//! the error can say how much that was.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

#[derive(Debug, Default)]
struct State {
    buf: BytesMut,
    attempted: u64,
    overflowed: bool,
}

/// One invocation's stdout or stderr; clones share the same buffer.
#[derive(Clone)]
pub struct BoundedOutput {
    state: Arc<Mutex<State>>,
    limit: usize,
    stop_on_overflow: bool,
}

/// Error a guest's write turns into when stdout passes its limit.
#[derive(Debug)]
pub struct OutputLimit {
    pub limit: usize,
}

impl std::fmt::Display for OutputLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stdout limit of {} bytes exceeded", self.limit)
    }
}

impl std::error::Error for OutputLimit {}

impl BoundedOutput {
    pub fn new(limit: usize, stop_on_overflow: bool) -> Self {
        Self {
            state: Arc::default(),
            limit,
            stop_on_overflow,
        }
    }

    /// Append what fits; false when some of `data` did not.
    fn push(&self, data: &[u8]) -> bool {
        let mut s = self.state.lock().unwrap();
        s.attempted += data.len() as u64;
        let room = self.limit.saturating_sub(s.buf.len());
        if data.len() > room {
            s.buf.extend_from_slice(&data[..room]);
            s.overflowed = true;
            return false;
        }
        s.buf.extend_from_slice(data);
        true
    }

    pub fn take(&self) -> Bytes {
        std::mem::take(&mut self.state.lock().unwrap().buf).freeze()
    }

    pub fn overflowed(&self) -> bool {
        self.state.lock().unwrap().overflowed
    }

    pub fn attempted(&self) -> u64 {
        self.state.lock().unwrap().attempted
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[async_trait::async_trait]
impl Pollable for BoundedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for BoundedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if !self.push(&bytes) && self.stop_on_overflow {
            return Err(StreamError::Trap(OutputLimit { limit: self.limit }.into()));
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept: the limit is enforced (and counted) in `write`.
        Ok(1 << 20)
    }
}

impl AsyncWrite for BoundedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if !self.push(buf) && self.stop_on_overflow {
            return Poll::Ready(Err(std::io::Error::other(OutputLimit {
                limit: self.limit,
            })));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for BoundedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for BoundedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_stops_at_its_limit_and_counts_what_was_tried() {
        let mut out = BoundedOutput::new(4, true);
        assert!(out.write(Bytes::from_static(b"abc")).is_ok());
        assert!(out.write(Bytes::from_static(b"defg")).is_err());
        assert!(out.overflowed());
        assert_eq!(out.attempted(), 7);
        assert_eq!(&out.take()[..], b"abcd");
    }

    #[test]
    fn stderr_drops_past_its_limit() {
        let mut err = BoundedOutput::new(2, false);
        assert!(err.write(Bytes::from_static(b"abc")).is_ok());
        assert_eq!(&err.take()[..], b"ab");
    }
}
