//! Two lanes for guests, as an OS scheduler keeps interactive and batch work apart: every
//! invocation starts in the foreground lane (the runtime that also serves connections); one that
//! has been on the CPU for longer than `demote_after` moves, at its next yield, to a background
//! runtime whose threads run at a low priority. There it no longer takes an execution slot, so
//! short requests never wait behind it, and the kernel gives it whatever CPU the agent's
//! foreground leaves. In a pod the nice level only orders the agent's own threads (the pod's
//! cgroup weight decides against other pods), so a long guest still gets an idle core in full.
//!
//! Why a move and not a priority change: an unprivileged thread may lower its priority but not
//! raise it again (RLIMIT_NICE), so the only way back to full speed for the next short request
//! is a different thread.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

thread_local! {
    static BACKGROUND: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as a background-lane thread (the runtime's `on_thread_start`).
pub fn mark_background_thread() {
    BACKGROUND.with(|b| b.set(true));
}

/// Whether the calling thread belongs to the background lane: guests running there do not hold
/// or queue for an execution slot.
pub fn on_background() -> bool {
    BACKGROUND.with(Cell::get)
}

/// Where long guests go; without a background runtime everything runs inline (unit tests).
#[derive(Clone, Default)]
pub struct Lanes {
    pub background: Option<Handle>,
    pub demote_after: Duration,
}

/// The background runtime went away (shutdown) before the moved invocation ended.
#[derive(Debug)]
pub struct Cancelled;

/// Run `fut` in the foreground until it has spent `demote_after` in its polls, then move it to
/// the background lane for the rest. Dropping the returned future drops `fut` wherever it runs
/// (a client that goes away cancels its guest, as before).
pub async fn run<F>(lanes: &Lanes, fut: F) -> Result<F::Output, Cancelled>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut fut = Box::pin(fut);
    let background = match &lanes.background {
        Some(h) if !on_background() => h.clone(),
        _ => return Ok(fut.await),
    };
    let limit = lanes.demote_after;
    let mut spent = Duration::ZERO;
    let inline = std::future::poll_fn(|cx| {
        let t = Instant::now();
        let polled = fut.as_mut().poll(cx);
        spent += t.elapsed();
        match polled {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending if spent >= limit => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    if let Some(v) = inline {
        return Ok(v);
    }
    // The spawned task polls `fut` at once, so its wakers are registered anew from there.
    let moved = AbortOnDrop(background.spawn(fut));
    moved.await.map_err(|e| {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        Cancelled
    })
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn background_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(mark_background_thread)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Busy for `polls` polls of about `each` on the CPU, yielding between them; says where it
    /// ended.
    async fn spin(polls: u32, each: Duration) -> bool {
        for _ in 0..polls {
            let t = Instant::now();
            while t.elapsed() < each {
                std::hint::spin_loop();
            }
            tokio::task::yield_now().await;
        }
        on_background()
    }

    #[tokio::test]
    async fn a_short_invocation_stays_and_a_long_one_moves() {
        let bg = background_runtime();
        let lanes = |ms| Lanes {
            background: Some(bg.handle().clone()),
            demote_after: Duration::from_millis(ms),
        };
        // Wall time counts, and the machine may be busy: a wide margin for the short one.
        let short = run(&lanes(50), spin(2, Duration::from_micros(100))).await;
        assert!(!short.unwrap(), "a short invocation ran in the foreground");
        let long = run(&lanes(2), spin(20, Duration::from_millis(1))).await;
        assert!(
            long.unwrap(),
            "a long invocation finished in the background"
        );
        bg.shutdown_background();
    }

    #[tokio::test]
    async fn dropping_a_moved_invocation_cancels_it() {
        let bg = background_runtime();
        let lanes = Lanes {
            background: Some(bg.handle().clone()),
            demote_after: Duration::from_millis(1),
        };
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let fut = async move {
            spin(1_000, Duration::from_millis(1)).await;
            flag.store(true, Ordering::SeqCst);
        };
        let r = tokio::time::timeout(Duration::from_millis(50), run(&lanes, fut)).await;
        assert!(r.is_err(), "the invocation was still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!finished.load(Ordering::SeqCst));
        // The background thread is free again: a new long invocation moves and finishes there.
        let again = run(&lanes, spin(5, Duration::from_millis(1))).await;
        assert!(again.unwrap());
        bg.shutdown_background();
    }

    #[tokio::test]
    async fn without_a_background_runtime_everything_runs_inline() {
        let lanes = Lanes::default();
        let long = run(&lanes, spin(5, Duration::from_millis(1))).await;
        assert!(!long.unwrap());
    }
}
