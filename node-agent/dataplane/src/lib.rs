//! Shoal's native data plane, a Python extension (`shoal_dataplane`).
//!
//! The agent's control plane stays in Python (watch, pull, lifecycle, capabilities, metrics
//! export); this crate owns the per-request path: the wasmtime engine and compile cache, one fresh
//! instance per request with admission and a fair queue, and the HTTP listener of the trigger port.

pub mod cache;
pub mod cgi;
pub mod component;
pub mod egress;
pub mod engine;
pub mod files;
pub mod hangup;
pub mod hostcall;
pub mod invoke;
pub mod lane;
pub mod metrics;
pub mod pipes;
pub mod preview3;
mod python;
pub mod reaper;
pub mod router;
pub mod sched;
pub mod server;
pub mod spin;

/// Rust's allocations in this extension (not Python's) go to mimalloc: the request path allocates
/// and frees many small objects per request, which glibc's malloc served measurably slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
