//! Who may run a guest now: admission (per-app concurrency, the agent's memory budget) and a fair
//! queue for execution slots.
//!
//! Admission bounds what is in flight: an app's `maxConcurrency`, and the sum of the memory limits
//! of running instances against the agent's budget, so a burst cannot grow the agent past what its
//! pod may use. Execution slots bound what runs on the guest threads at once; a guest gives its
//! slot back at every epoch tick and queues again behind the other apps' waiters (round robin over
//! apps), so an app with many long guests cannot hold every slot while another app's short
//! request waits.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, oneshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The app already runs `limit` instances.
    Concurrency { limit: u32 },
    /// Starting would put the sum of in-flight memory limits over the budget.
    Memory { in_use: u64, budget: u64 },
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Concurrency { .. } => "concurrency",
            Self::Memory { .. } => "memory",
        }
    }
}

#[derive(Default)]
struct AdmissionState {
    in_flight: HashMap<u64, u32>,
    memory_in_use: u64,
}

/// Pure bookkeeping under one lock; `Notify` wakes waiters when something is released.
pub struct Admission {
    budget: u64,
    state: Mutex<AdmissionState>,
    released: Notify,
}

/// Held while an instance may run; dropping it releases the app's slot and its memory.
pub struct Admitted {
    admission: Arc<Admission>,
    app: u64,
    memory: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        {
            let mut s = self.admission.state.lock().unwrap();
            if let Some(n) = s.in_flight.get_mut(&self.app) {
                *n -= 1;
                if *n == 0 {
                    s.in_flight.remove(&self.app);
                }
            }
            s.memory_in_use -= self.memory;
        }
        self.admission.released.notify_waiters();
    }
}

impl Admission {
    pub fn new(budget: u64) -> Arc<Self> {
        Arc::new(Self {
            budget,
            state: Mutex::default(),
            released: Notify::new(),
        })
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn memory_in_use(&self) -> u64 {
        self.state.lock().unwrap().memory_in_use
    }

    pub fn try_admit(
        self: &Arc<Self>,
        app: u64,
        limit: u32,
        memory: u64,
    ) -> Result<Admitted, Refusal> {
        let mut s = self.state.lock().unwrap();
        let running = s.in_flight.get(&app).copied().unwrap_or(0);
        if running >= limit {
            return Err(Refusal::Concurrency { limit });
        }
        if s.memory_in_use + memory > self.budget {
            return Err(Refusal::Memory {
                in_use: s.memory_in_use,
                budget: self.budget,
            });
        }
        *s.in_flight.entry(app).or_insert(0) += 1;
        s.memory_in_use += memory;
        Ok(Admitted {
            admission: self.clone(),
            app,
            memory,
        })
    }

    /// Admit, waiting for a release until `until`; the last refusal if none came in time.
    pub async fn admit(
        self: &Arc<Self>,
        app: u64,
        limit: u32,
        memory: u64,
        until: Instant,
    ) -> Result<Admitted, Refusal> {
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_admit(app, limit, memory) {
                Ok(a) => return Ok(a),
                Err(refusal) => {
                    let now = Instant::now();
                    if now >= until || tokio::time::timeout(until - now, notified).await.is_err() {
                        return self.try_admit(app, limit, memory).map_err(|_| refusal);
                    }
                }
            }
        }
    }
}

#[derive(Default)]
struct SlotState {
    free: usize,
    queues: HashMap<u64, VecDeque<oneshot::Sender<()>>>,
    /// Apps with waiters, in the order they get the next free slot.
    ring: VecDeque<u64>,
}

/// Execution slots handed out round robin over apps.
pub struct FairSlots {
    state: Mutex<SlotState>,
}

impl FairSlots {
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SlotState {
                free: slots,
                ..Default::default()
            }),
        })
    }

    /// Wait for a slot; the caller must `release` it exactly once.
    pub async fn acquire(&self, app: u64) {
        let rx = {
            let mut s = self.state.lock().unwrap();
            if s.free > 0 && s.ring.is_empty() {
                s.free -= 1;
                return;
            }
            let (tx, rx) = oneshot::channel();
            s.queues.entry(app).or_default().push_back(tx);
            if !s.ring.contains(&app) {
                s.ring.push_back(app);
            }
            rx
        };
        // If this future is dropped while waiting (a deadline passed), the guard gives back a
        // slot that was handed over in the meantime instead of leaking it.
        let mut waiter = Waiter {
            rx: Some(rx),
            slots: self,
        };
        if let Some(rx) = waiter.rx.as_mut() {
            let _ = rx.await;
        }
        waiter.rx = None;
    }

    /// Give the slot to the next app in the ring, or back to the pool.
    pub fn release(&self) {
        let mut s = self.state.lock().unwrap();
        while let Some(app) = s.ring.pop_front() {
            let (sender, more) = match s.queues.get_mut(&app) {
                Some(q) => (q.pop_front(), !q.is_empty()),
                None => (None, false),
            };
            if more {
                s.ring.push_back(app);
            } else {
                s.queues.remove(&app);
            }
            if let Some(tx) = sender
                && tx.send(()).is_ok()
            {
                return;
            }
        }
        s.free += 1;
    }

    pub fn waiting(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .queues
            .values()
            .map(|q| q.len())
            .sum()
    }
}

struct Waiter<'a> {
    rx: Option<oneshot::Receiver<()>>,
    slots: &'a FairSlots,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.slots.release();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn admission_counts_concurrency_and_memory() {
        let a = Admission::new(100);
        let x = a.try_admit(1, 2, 40).unwrap();
        let _y = a.try_admit(1, 2, 40).unwrap();
        assert_eq!(
            a.try_admit(1, 2, 1).err(),
            Some(Refusal::Concurrency { limit: 2 })
        );
        assert_eq!(
            a.try_admit(2, 5, 30).err(),
            Some(Refusal::Memory {
                in_use: 80,
                budget: 100
            })
        );
        drop(x);
        assert!(a.try_admit(2, 5, 30).is_ok());
        assert_eq!(a.memory_in_use(), 40);
    }

    #[tokio::test]
    async fn admission_waits_for_a_release_until_its_deadline() {
        let a = Admission::new(10);
        let held = a.try_admit(1, 1, 10).unwrap();
        let until = Instant::now() + Duration::from_millis(20);
        assert!(a.admit(2, 1, 5, until).await.is_err());
        let a2 = a.clone();
        let waiter = tokio::spawn(async move {
            a2.admit(2, 1, 5, Instant::now() + Duration::from_secs(5))
                .await
                .is_ok()
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn slots_go_round_robin_over_apps() {
        let slots = FairSlots::new(1);
        slots.acquire(1).await; // app 1 runs
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Three waiters of app 1 queue first, then one of app 2.
        for (i, app) in [(0, 1u64), (1, 1), (2, 1), (3, 2)] {
            let (s, o) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                s.acquire(app).await;
                o.lock().unwrap().push(i);
                s.release();
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(slots.waiting(), 4);
        slots.release();
        for t in tasks {
            t.await.unwrap();
        }
        // App 2's waiter runs second, not after all of app 1's.
        assert_eq!(*order.lock().unwrap(), vec![0, 3, 1, 2]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_leak_the_slot() {
        let slots = FairSlots::new(1);
        slots.acquire(1).await;
        let gave_up = tokio::time::timeout(Duration::from_millis(10), slots.acquire(2)).await;
        assert!(gave_up.is_err());
        slots.release();
        tokio::time::timeout(Duration::from_millis(100), slots.acquire(3))
            .await
            .expect("the slot is free again");
    }
}
