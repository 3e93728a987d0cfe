//! Where large instances are torn down: a thread of its own, off the guest threads.
//!
//! Dropping a store gives its linear memory back to the pool, and wasmtime decommits what lies past
//! the keep-resident prefix (`madvise`). For a guest that filled tens of MiB that takes
//! milliseconds in the kernel, and on a guest thread every request queued behind it waited as
//! long. Small instances are still dropped in place: handing them over would cost more than the
//! few pages they reset.

use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;

/// Drops what it is given, in order, on its own thread; dropping the reaper finishes the queue.
pub struct Reaper<T: Send + 'static> {
    tx: Option<Sender<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Reaper<T> {
    pub fn start(name: &str) -> Self {
        let (tx, rx) = channel::<T>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Ok(item) = rx.recv() {
                    drop(item);
                }
            })
            .expect("spawn the reaper thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Drop `item` on the reaper's thread (here, if that thread is gone).
    pub fn retire(&self, item: T) {
        if let Some(tx) = &self.tx
            && let Err(back) = tx.send(item)
        {
            drop(back.0);
        }
    }
}

impl<T: Send + 'static> Drop for Reaper<T> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(Arc<AtomicUsize>, std::thread::ThreadId);

    impl Drop for Counted {
        fn drop(&mut self) {
            assert_ne!(
                std::thread::current().id(),
                self.1,
                "dropped on the caller's thread"
            );
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn items_are_dropped_on_the_reaper_thread_and_the_queue_is_finished() {
        let dropped = Arc::new(AtomicUsize::new(0));
        let reaper = Reaper::start("test-reaper");
        for _ in 0..100 {
            reaper.retire(Counted(dropped.clone(), std::thread::current().id()));
        }
        drop(reaper);
        assert_eq!(dropped.load(Ordering::SeqCst), 100);
    }
}
