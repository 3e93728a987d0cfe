//! Who may run a guest now: admission (per-app concurrency, the agent's memory budget) and a fair
//! queue for execution slots.
//!
//! Admission bounds what is in flight: an app's `maxConcurrency`, and the sum of the memory limits
//! of running instances against the agent's budget, so a burst cannot grow the agent past what its
//! pod may use. Execution slots bound what runs on the guest threads at once; a guest gives its
//! slot back at every epoch tick and queues again behind the other apps' waiters (round robin over
//! apps), so an app with many long guests cannot hold every slot while another app's short
//! request waits.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, oneshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The app already runs `limit` instances.
    Concurrency { limit: u32 },
    /// Starting would put the sum of in-flight memory limits over the budget.
    Memory { in_use: u64, budget: u64 },
    /// The app already holds `held` bytes of the budget; one more instance would pass its share.
    Share { held: u64, share: u64, budget: u64 },
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Concurrency { .. } => "concurrency",
            Self::Memory { .. } | Self::Share { .. } => "memory",
        }
    }
}

/// One app's instances in flight.
struct AppAdmission {
    running: u32,
    /// The sum of their memory limits.
    held: u64,
    /// Wakes this app's waiters (refused by its own concurrency limit or share) when one of its
    /// instances ends: nothing another app releases can change that refusal.
    released: Arc<Notify>,
}

#[derive(Default)]
struct AdmissionState {
    in_flight: HashMap<u64, AppAdmission>,
    memory_in_use: u64,
}

/// Pure bookkeeping under one lock. A refused waiter sleeps on what can change its refusal: its
/// own app's releases (concurrency, share) or any release of memory (the budget). Waking every
/// waiter on every release made each short request of one app poll all of another app's queued
/// requests (thousands of wake-ups a second under a noisy neighbour).
pub struct Admission {
    budget: u64,
    /// The most of the budget one app may hold while it already runs an instance: the rest stays
    /// free for the other apps, so one app's memory-hungry guests cannot refuse everyone else.
    share: u64,
    state: Mutex<AdmissionState>,
    /// Wakes the waiters refused by the budget.
    memory_released: Arc<Notify>,
}

/// Held while an instance may run; dropping it releases the app's slot and its memory.
pub struct Admitted {
    admission: Arc<Admission>,
    app: u64,
    memory: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let app_released = {
            let mut s = self.admission.state.lock().unwrap();
            s.memory_in_use -= self.memory;
            match s.in_flight.get_mut(&self.app) {
                Some(a) => {
                    a.running -= 1;
                    a.held -= self.memory;
                    let notify = a.released.clone();
                    if a.running == 0 {
                        s.in_flight.remove(&self.app);
                    }
                    Some(notify)
                }
                None => None,
            }
        };
        if let Some(n) = app_released {
            n.notify_waiters();
        }
        self.admission.memory_released.notify_waiters();
    }
}

impl Admission {
    /// `share`: the fraction of the budget one app may hold (an app may always run one instance).
    pub fn new(budget: u64, share: f64) -> Arc<Self> {
        Arc::new(Self {
            budget,
            share: (budget as f64 * share.clamp(0.0, 1.0)) as u64,
            state: Mutex::default(),
            memory_released: Arc::new(Notify::new()),
        })
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn memory_in_use(&self) -> u64 {
        self.state.lock().unwrap().memory_in_use
    }

    fn refusal(&self, s: &AdmissionState, app: u64, limit: u32, memory: u64) -> Option<Refusal> {
        let (running, held) = s
            .in_flight
            .get(&app)
            .map(|a| (a.running, a.held))
            .unwrap_or((0, 0));
        if running >= limit {
            return Some(Refusal::Concurrency { limit });
        }
        if running > 0 && held + memory > self.share {
            return Some(Refusal::Share {
                held,
                share: self.share,
                budget: self.budget,
            });
        }
        if s.memory_in_use + memory > self.budget {
            return Some(Refusal::Memory {
                in_use: s.memory_in_use,
                budget: self.budget,
            });
        }
        None
    }

    fn admit_locked(self: &Arc<Self>, s: &mut AdmissionState, app: u64, memory: u64) -> Admitted {
        let entry = s.in_flight.entry(app).or_insert_with(|| AppAdmission {
            running: 0,
            held: 0,
            released: Arc::new(Notify::new()),
        });
        entry.running += 1;
        entry.held += memory;
        s.memory_in_use += memory;
        Admitted {
            admission: self.clone(),
            app,
            memory,
        }
    }

    pub fn try_admit(
        self: &Arc<Self>,
        app: u64,
        limit: u32,
        memory: u64,
    ) -> Result<Admitted, Refusal> {
        let mut s = self.state.lock().unwrap();
        match self.refusal(&s, app, limit, memory) {
            Some(r) => Err(r),
            None => Ok(self.admit_locked(&mut s, app, memory)),
        }
    }

    /// Admit, waiting for a release that could change the refusal until `until`; the last
    /// refusal if none came in time.
    pub async fn admit(
        self: &Arc<Self>,
        app: u64,
        limit: u32,
        memory: u64,
        until: Instant,
    ) -> Result<Admitted, Refusal> {
        loop {
            let refusal = match self.try_admit(app, limit, memory) {
                Ok(a) => return Ok(a),
                Err(r) => r,
            };
            let now = Instant::now();
            if now >= until {
                return Err(refusal);
            }
            let notify = match refusal {
                Refusal::Memory { .. } => self.memory_released.clone(),
                // Refused by its own app, which then has instances in flight (an entry); if they
                // ended meanwhile, try again at once.
                _ => match self.app_notify(app) {
                    Some(n) => n,
                    None => continue,
                },
            };
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // Registered: a release from now on wakes it. One that came before is seen here.
            match self.try_refused(app, limit, memory) {
                Some(r) if std::mem::discriminant(&r) == std::mem::discriminant(&refusal) => {}
                _ => continue,
            }
            if tokio::time::timeout(until - now, woken).await.is_err() {
                return self.try_admit(app, limit, memory).map_err(|_| refusal);
            }
        }
    }

    fn app_notify(&self, app: u64) -> Option<Arc<Notify>> {
        let s = self.state.lock().unwrap();
        s.in_flight.get(&app).map(|a| a.released.clone())
    }

    fn try_refused(&self, app: u64, limit: u32, memory: u64) -> Option<Refusal> {
        let s = self.state.lock().unwrap();
        self.refusal(&s, app, limit, memory)
    }
}

/// One priority level: waiters per app, and the apps in the order they get the next slot.
#[derive(Default)]
struct Level {
    queues: HashMap<u64, VecDeque<oneshot::Sender<()>>>,
    ring: VecDeque<u64>,
}

impl Level {
    fn push(&mut self, app: u64, tx: oneshot::Sender<()>) {
        self.queues.entry(app).or_default().push_back(tx);
        if !self.ring.contains(&app) {
            self.ring.push_back(app);
        }
    }

    /// Hand the slot to the next waiter, round robin over apps; false if nobody took it.
    fn hand_over(&mut self) -> bool {
        while let Some(app) = self.ring.pop_front() {
            let (sender, more) = match self.queues.get_mut(&app) {
                Some(q) => (q.pop_front(), !q.is_empty()),
                None => (None, false),
            };
            if more {
                self.ring.push_back(app);
            } else {
                self.queues.remove(&app);
            }
            if let Some(tx) = sender
                && tx.send(()).is_ok()
            {
                return true;
            }
        }
        false
    }

    fn waiting(&self) -> usize {
        self.queues.values().map(|q| q.len()).sum()
    }
}

#[derive(Default)]
struct SlotState {
    free: usize,
    /// Invocations that have not run yet: served first, so a short request never waits behind
    /// more than the one tick a running guest may still use.
    fresh: Level,
    /// Guests that gave their slot back at an epoch tick (or after a host call) and want it again.
    resumed: Level,
}

/// Execution slots handed out round robin over apps, new invocations before resumed ones.
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

    /// Wait for a slot; the caller must `release` it exactly once. `resumed`: the caller already
    /// ran and gave its slot back to let others run.
    pub async fn acquire(&self, app: u64, resumed: bool) {
        let rx = {
            let mut s = self.state.lock().unwrap();
            if s.free > 0 && s.fresh.ring.is_empty() && s.resumed.ring.is_empty() {
                s.free -= 1;
                return;
            }
            let (tx, rx) = oneshot::channel();
            if resumed {
                s.resumed.push(app, tx);
            } else {
                s.fresh.push(app, tx);
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

    /// Give the slot to the next waiter (new invocations first), or back to the pool.
    pub fn release(&self) {
        let mut s = self.state.lock().unwrap();
        if s.fresh.hand_over() || s.resumed.hand_over() {
            return;
        }
        s.free += 1;
    }

    pub fn waiting(&self) -> usize {
        let s = self.state.lock().unwrap();
        s.fresh.waiting() + s.resumed.waiting()
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
        let a = Admission::new(100, 1.0);
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

    #[test]
    fn one_app_keeps_to_its_share_and_leaves_the_rest_to_others() {
        let a = Admission::new(100, 0.5);
        let _first = a.try_admit(1, 8, 40).unwrap();
        assert_eq!(
            a.try_admit(1, 8, 40).err(),
            Some(Refusal::Share {
                held: 40,
                share: 50,
                budget: 100
            })
        );
        let _other = a.try_admit(2, 8, 40).unwrap();
        // An app with nothing in flight may run one instance even above its share.
        let b = Admission::new(100, 0.5);
        assert!(b.try_admit(3, 8, 80).is_ok());
    }

    #[tokio::test]
    async fn admission_waits_for_a_release_until_its_deadline() {
        let a = Admission::new(10, 1.0);
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
    async fn a_waiter_at_its_concurrency_limit_is_admitted_by_its_own_release_only() {
        let a = Admission::new(1000, 1.0);
        let mine = a.try_admit(1, 1, 10).unwrap();
        let a2 = a.clone();
        let waiter = tokio::spawn(async move {
            a2.admit(1, 1, 10, Instant::now() + Duration::from_secs(5))
                .await
                .is_ok()
        });
        // Another app's instances come and go: nothing the waiter can use.
        for _ in 0..50 {
            drop(a.try_admit(2, 4, 10).unwrap());
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished());
        drop(mine);
        assert!(waiter.await.unwrap());
        assert_eq!(a.memory_in_use(), 0);
    }

    #[tokio::test]
    async fn slots_go_round_robin_over_apps() {
        let slots = FairSlots::new(1);
        slots.acquire(1, false).await; // app 1 runs
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Three waiters of app 1 queue first, then one of app 2.
        for (i, app) in [(0, 1u64), (1, 1), (2, 1), (3, 2)] {
            let (s, o) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                s.acquire(app, false).await;
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
    async fn new_invocations_go_before_resumed_guests() {
        let slots = FairSlots::new(1);
        slots.acquire(1, false).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, app, resumed) in [(0, 1u64, true), (1, 1, true), (2, 2, false)] {
            let (s, o) = (slots.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                s.acquire(app, resumed).await;
                o.lock().unwrap().push(i);
                s.release();
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        slots.release();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![2, 0, 1]);
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_leak_the_slot() {
        let slots = FairSlots::new(1);
        slots.acquire(1, false).await;
        let gave_up =
            tokio::time::timeout(Duration::from_millis(10), slots.acquire(2, false)).await;
        assert!(gave_up.is_err());
        slots.release();
        tokio::time::timeout(Duration::from_millis(100), slots.acquire(3, false))
            .await
            .expect("the slot is free again");
    }
}
