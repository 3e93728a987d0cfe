//! Per-app counters and histograms, written lock-free on the request path and read by the Python
//! agent at scrape time (it exports them with prometheus-client under the agent's metric names).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Cumulative-at-read histogram: one counter per bucket (non-cumulative while written).
pub struct Histogram {
    bounds: Arc<Vec<f64>>,
    counts: Vec<AtomicU64>,
    /// Sum in units of 1/`per_unit` of an observation (nanoseconds for seconds, bytes for bytes):
    /// integer adds stay lock-free.
    sum: AtomicU64,
    per_unit: f64,
}

impl Histogram {
    /// Observations in seconds.
    pub fn new(bounds: Arc<Vec<f64>>) -> Self {
        Self::with_resolution(bounds, 1e9)
    }

    /// Observations in bytes (whole numbers: the sum needs no finer unit).
    pub fn bytes(bounds: Arc<Vec<f64>>) -> Self {
        Self::with_resolution(bounds, 1.0)
    }

    fn with_resolution(bounds: Arc<Vec<f64>>, per_unit: f64) -> Self {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            bounds,
            counts,
            sum: AtomicU64::new(0),
            per_unit,
        }
    }

    pub fn observe(&self, value: f64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum
            .fetch_add((value.max(0.0) * self.per_unit) as u64, Ordering::Relaxed);
    }

    /// (cumulative counts per bound plus +Inf, sum in the observations' unit).
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        let mut acc = 0;
        let counts = self
            .counts
            .iter()
            .map(|c| {
                acc += c.load(Ordering::Relaxed);
                acc
            })
            .collect();
        (
            counts,
            self.sum.load(Ordering::Relaxed) as f64 / self.per_unit,
        )
    }
}

pub const OUTCOMES: [&str; 8] = [
    "ok",
    "exit",
    "trap",
    "timeout",
    "out_of_memory",
    "stdout_limit",
    "busy",
    "error",
];
pub const REFUSALS: [&str; 2] = ["concurrency", "memory"];

pub struct AppMetrics {
    pub instance_start: Histogram,
    pub queue_wait: Histogram,
    pub first_byte: Histogram,
    pub duration: Histogram,
    /// The most linear memory each instance held at once, in bytes (one observation per instance).
    pub instance_memory: Histogram,
    pub outcomes: [AtomicU64; 8],
    pub refusals: [AtomicU64; 2],
    pub active: AtomicI64,
    /// Outbound HTTP requests refused by the app's allow-list or the special-address rule.
    pub egress_denied: AtomicU64,
}

impl AppMetrics {
    fn new(bounds: &Arc<Vec<f64>>, memory_bounds: &Arc<Vec<f64>>) -> Self {
        Self {
            instance_start: Histogram::new(bounds.clone()),
            queue_wait: Histogram::new(bounds.clone()),
            first_byte: Histogram::new(bounds.clone()),
            duration: Histogram::new(bounds.clone()),
            instance_memory: Histogram::bytes(memory_bounds.clone()),
            outcomes: Default::default(),
            refusals: Default::default(),
            active: AtomicI64::new(0),
            egress_denied: AtomicU64::new(0),
        }
    }

    pub fn count(&self, outcome: &str) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn egress_denied(&self) {
        self.egress_denied.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, reason: &str) {
        if let Some(i) = REFUSALS.iter().position(|o| *o == reason) {
            self.refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Metrics of every app by (namespace, name); they outlive app versions, as Prometheus children do.
pub struct Registry {
    bounds: Arc<Vec<f64>>,
    memory_bounds: Arc<Vec<f64>>,
    apps: Mutex<HashMap<(String, String), Arc<AppMetrics>>>,
}

impl Registry {
    /// `bounds` in seconds for the latency histograms, `memory_bounds` in bytes.
    pub fn new(bounds: Vec<f64>, memory_bounds: Vec<f64>) -> Self {
        Self {
            bounds: Arc::new(bounds),
            memory_bounds: Arc::new(memory_bounds),
            apps: Mutex::default(),
        }
    }

    pub fn app(&self, namespace: &str, name: &str) -> Arc<AppMetrics> {
        self.apps
            .lock()
            .unwrap()
            .entry((namespace.to_string(), name.to_string()))
            .or_insert_with(|| Arc::new(AppMetrics::new(&self.bounds, &self.memory_bounds)))
            .clone()
    }

    pub fn all(&self) -> Vec<((String, String), Arc<AppMetrics>)> {
        let apps = self.apps.lock().unwrap();
        let mut v: Vec<_> = apps.iter().map(|(k, m)| (k.clone(), m.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_le_bounds() {
        let h = Histogram::new(Arc::new(vec![0.001, 0.01]));
        h.observe(0.001);
        h.observe(0.005);
        h.observe(5.0);
        let (counts, sum) = h.snapshot();
        assert_eq!(counts, vec![1, 2, 3]);
        assert!((sum - 5.006).abs() < 1e-6);
    }

    #[test]
    fn byte_histograms_sum_whole_bytes() {
        let h = Histogram::bytes(Arc::new(vec![65536.0, 131072.0]));
        h.observe(65536.0);
        h.observe(3.0 * 65536.0);
        let (counts, sum) = h.snapshot();
        assert_eq!(counts, vec![1, 1, 2]);
        assert_eq!(sum, 4.0 * 65536.0);
    }
}
