//! The one wasmtime Engine of an agent and the thread that drives its epoch.
//!
//! Pooling allocator: instance slots, linear memories and fiber stacks are reserved once and
//! reused, with copy-on-write memory images, so a fresh instance per request costs microseconds.
//! Epoch interruption: a ticker bumps the epoch every tick; each store's callback yields to the
//! fair scheduler at every tick and traps once the request's deadline has passed.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig, Result,
};

/// What the engine is built with; everything here that changes compiled code is in the cache key.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Instance (and memory, table, stack) slots of the pool: the most instances alive at once.
    pub max_instances: u32,
    /// The largest linear memory any app may ask for.
    pub max_memory_bytes: usize,
    /// Bytes of each linear memory kept mapped (zeroed, not decommitted) when a slot is reused.
    pub keep_resident_bytes: usize,
    /// Deeper stacks let honest recursive guests run; runaway recursion still traps.
    pub max_wasm_stack: usize,
    pub tick: Duration,
    /// Reset only the pages a guest dirtied (Linux 6.7+; elsewhere wasmtime falls back to zeroing
    /// the whole keep-resident prefix on every reuse): most guests touch a few pages of it.
    pub pagemap_scan: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
            keep_resident_bytes: 128 << 10,
            max_wasm_stack: 512 << 10,
            tick: Duration::from_micros(250),
            pagemap_scan: true,
        }
    }
}

pub fn build_engine(s: &EngineSettings) -> Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(s.max_instances)
        .total_memories(s.max_instances)
        .total_tables(s.max_instances)
        .total_stacks(s.max_instances)
        .total_component_instances(s.max_instances)
        .max_memory_size(s.max_memory_bytes)
        .linear_memory_keep_resident(s.keep_resident_bytes)
        .table_keep_resident(16 << 10)
        .pagemap_scan(if s.pagemap_scan {
            Enabled::Auto
        } else {
            Enabled::No
        });
    let mut cfg = Config::new();
    // Async support is always on in wasmtime 48: guests run as fibers that yield at epoch ticks.
    cfg.epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        .parallel_compilation(true)
        .max_wasm_stack(s.max_wasm_stack)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&cfg)
}

/// Hex of the engine's compatibility hash: a serialized module only loads on a match.
pub fn fingerprint(engine: &Engine) -> String {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Bumps the epoch every tick until dropped (the drop joins the thread).
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("shoal-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch ticker");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
