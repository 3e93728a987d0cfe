//! The Python face of the data plane: `DataPlane`, `Compiled`, `App`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use tokio::runtime::Runtime;

use crate::cache::{Artifact, ModuleCache, sha256_hex};
use crate::engine::{EngineSettings, EpochTicker, build_engine};
use crate::hostcall::{GuestMemory, HostBridge, HostFn, val_type};
use crate::invoke::{self, AppConfig, AppLimits, AppVersion, Shared};
use crate::lane::Lanes;
use crate::metrics::{OUTCOMES, REFUSALS, Registry};
use crate::reaper::Reaper;
use crate::router::Route;
use crate::sched::{Admission, FairSlots};
use crate::server::{HttpTarget, Server};

/// A compiled module or component: what `DataPlane.load` links and pre-instantiates.
#[pyclass(frozen, module = "shoal_dataplane")]
pub struct Compiled {
    module: Artifact,
    #[pyo3(get)]
    digest: String,
    #[pyo3(get)]
    result: &'static str,
    #[pyo3(get)]
    seconds: f64,
}

#[pymethods]
impl Compiled {
    /// (module, name) of every import of a core module; a component's are (interface, "").
    #[getter]
    fn imports(&self) -> Vec<(String, String)> {
        match &self.module {
            Artifact::Module(m) => m
                .imports()
                .map(|i| (i.module().to_string(), i.name().to_string()))
                .collect(),
            Artifact::Component(c) => {
                let engine = c.engine();
                c.component_type()
                    .imports(engine)
                    .map(|(name, _)| (name.to_string(), String::new()))
                    .collect()
            }
        }
    }

    /// "module" or "component".
    #[getter]
    fn kind(&self) -> &'static str {
        self.module.kind()
    }
}

/// One loaded app version.
#[pyclass(frozen, module = "shoal_dataplane")]
pub struct App {
    inner: Arc<AppVersion>,
}

#[pymethods]
impl App {
    #[getter]
    fn in_flight(&self) -> u64 {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    #[getter]
    fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// "module", "command" (a wasi:cli/run component) or "proxy" (a wasi:http component).
    #[getter]
    fn kind(&self) -> &'static str {
        self.inner.kind.as_str()
    }

    /// The Spin interfaces the component imports that Shoal does not implement (calls trap).
    #[getter]
    fn unimplemented(&self) -> Vec<String> {
        self.inner.stubbed.clone()
    }
}

#[pyclass(frozen, module = "shoal_dataplane")]
pub struct DataPlane {
    shared: Arc<Shared>,
    cache: ModuleCache,
    registry: Arc<Registry>,
    server: Arc<Server>,
    bridge: Mutex<Option<Arc<HostBridge>>>,
    /// Spin's key-value (and later redis, mysql) for components: `backend(ns, app, op, args)`.
    spin_backend: Mutex<Option<Arc<Py<PyAny>>>>,
    runtime: Mutex<Option<Runtime>>,
    background: Mutex<Option<Runtime>>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
    ticker: Mutex<Option<EpochTicker>>,
    closed: AtomicBool,
}

/// The foreground runtime serves connections and runs every guest first, inline in its
/// connection task (no hop between threads); a running guest gives its thread back at every
/// epoch tick. Guests that run long move to the background runtime (crate::lane), whose threads
/// run at a lower priority.
fn runtime(name: &str, threads: usize, background: bool) -> PyResult<Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(threads.max(1)).thread_name(name);
    if background {
        b.on_thread_start(|| {
            crate::lane::mark_background_thread();
            lower_priority();
        });
    }
    b.enable_all()
        .build()
        .map_err(|e| PyOSError::new_err(format!("starting the {name} runtime: {e}")))
}

/// How much lower the background lane's threads run than the agent's other threads (nice
/// levels); `SHOAL_GUEST_NICE` overrides it (0: as the rest of the agent). bench-coldstart's
/// neighbour (hello p99 beside an app whose guests spin on every slot, 2 cores, client on the
/// same host), when every guest thread ran at one nice level: 0: 3.9-4.1 ms, 10: 2.3, 19: 1.2
/// (quiet 0.3-0.6 ms). Only guests that ran past `demote_after_ms` run there, so the lowest level
/// costs short requests nothing; in a pod it orders the agent's own threads only.
const GUEST_NICE: i32 = 19;

/// A thread may always lower its own priority, so this needs no privilege; Linux applies
/// `setpriority(PRIO_PROCESS, 0)` to the calling thread only.
fn lower_priority() {
    let nice = std::env::var("SHOAL_GUEST_NICE")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(GUEST_NICE);
    if nice <= 0 {
        return;
    }
    // SAFETY: plain syscalls on the calling thread; a failure only leaves the priority as it was.
    // Relative to the thread's nice now (the agent may itself run niced).
    let rc = unsafe {
        let now = libc::getpriority(libc::PRIO_PROCESS, 0);
        libc::setpriority(libc::PRIO_PROCESS, 0, (now + nice).min(19))
    };
    if rc != 0 {
        eprintln!(
            "WARNING shoal_dataplane: could not lower the guest threads' priority: {}",
            std::io::Error::last_os_error()
        );
    }
    if std::env::var("SHOAL_GUEST_SCHED").as_deref() == Ok("idle") {
        idle_policy();
    }
}

/// SCHED_IDLE: a weight of 3 against nice 19's 15, and a waking normal thread preempts it at once.
/// Like lowering nice, a thread may move itself there without privilege.
fn idle_policy() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain syscall on the calling thread with a valid sched_param.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        eprintln!(
            "WARNING shoal_dataplane: could not move the guest threads to SCHED_IDLE: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn err(e: wasmtime::Error) -> PyErr {
    PyValueError::new_err(format!("{e:#}"))
}

/// (module, name, params, results, index in the Python registry) of one host function to link.
type LinkedFunction = (String, String, Vec<String>, Vec<String>, usize);

type ResultTuple = (
    &'static str,
    Py<PyBytes>,
    Py<PyBytes>,
    Option<i32>,
    String,
    bool,
    bool,
    f64,
    f64,
    Option<&'static str>,
);

#[pymethods]
impl DataPlane {
    #[new]
    #[pyo3(signature = (*, cache_dir, memory_budget, buckets, memory_buckets, guest_threads=2, tick_ms=0.25,
                        keep_resident_bytes=131072, max_instances=1000, max_memory_bytes=4294967296,
                        app_memory_share=0.5, demote_after_ms=5.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        cache_dir: Option<PathBuf>,
        memory_budget: u64,
        buckets: Vec<f64>,
        memory_buckets: Vec<f64>,
        guest_threads: usize,
        tick_ms: f64,
        keep_resident_bytes: usize,
        max_instances: u32,
        max_memory_bytes: usize,
        app_memory_share: f64,
        demote_after_ms: f64,
    ) -> PyResult<Self> {
        let settings = EngineSettings {
            max_instances,
            max_memory_bytes,
            keep_resident_bytes,
            tick: Duration::from_secs_f64(tick_ms.max(0.1) / 1000.0),
            ..Default::default()
        };
        let engine = build_engine(&settings).map_err(err)?;
        let cache = ModuleCache::new(engine.clone(), cache_dir).map_err(err)?;
        let rt = runtime("shoal-dataplane", guest_threads, false)?;
        let bg = runtime("shoal-guests-bg", guest_threads, true)?;
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            admission: Admission::new(memory_budget, app_memory_share),
            // As many slots as threads: a thread fewer (to keep one free for the listener) cost
            // 40% of req/s and did not shorten the neighbour's tail (bench-coldstart).
            slots: FairSlots::new(guest_threads.max(1)),
            interrupt: AtomicBool::new(false),
            reaper: Reaper::start("shoal-reaper"),
            lanes: Lanes {
                background: Some(bg.handle().clone()),
                demote_after: Duration::from_secs_f64(demote_after_ms.max(0.0) / 1000.0),
            },
        });
        let server = Arc::new(Server {
            shared: shared.clone(),
            routes: Default::default(),
            draining: AtomicBool::new(false),
        });
        Ok(Self {
            shared,
            cache,
            registry: Arc::new(Registry::new(buckets, memory_buckets)),
            server,
            bridge: Mutex::new(None),
            spin_backend: Mutex::new(None),
            runtime: Mutex::new(Some(rt)),
            background: Mutex::new(Some(bg)),
            listener: Mutex::new(None),
            ticker: Mutex::new(Some(EpochTicker::start(engine, settings.tick))),
            closed: AtomicBool::new(false),
        })
    }

    /// Where Python host functions are dispatched: `dispatch(state, index, memory, args)` and
    /// `new_state(namespace, app)`. Set once, before apps with host functions load.
    fn set_host(&self, dispatch: Py<PyAny>, new_state: Py<PyAny>) {
        *self.bridge.lock().unwrap() = Some(Arc::new(HostBridge {
            dispatch,
            new_state,
            shared: self.shared.clone(),
        }));
    }

    /// Where components' Spin stores are served: `backend(namespace, app, op, args)`, called with
    /// the GIL; raising LookupError means "no such store". Set once, before Spin apps load.
    fn set_spin_backend(&self, backend: Py<PyAny>) {
        *self.spin_backend.lock().unwrap() = Some(Arc::new(backend));
    }

    /// Compile `wasm` (or load it from the cache); the GIL is released meanwhile. `digest`: the
    /// sha256 the caller already computed (and checked) of these bytes, the cache key; hashed
    /// here when not given.
    #[pyo3(signature = (wasm, digest=None))]
    fn compile(&self, py: Python<'_>, wasm: &[u8], digest: Option<String>) -> PyResult<Compiled> {
        let (module, result, seconds, hex) = py
            .allow_threads(|| {
                let hex = match &digest {
                    Some(d) => d.trim_start_matches("sha256:").to_ascii_lowercase(),
                    None => sha256_hex(wasm),
                };
                let (m, r, s) = self.cache.get(wasm, &hex)?;
                Ok::<_, wasmtime::Error>((m, r, s, hex))
            })
            .map_err(err)?;
        Ok(Compiled {
            module,
            digest: format!("sha256:{hex}"),
            result: result.as_str(),
            seconds,
        })
    }

    /// Drop a compiled module from memory (the disk cache keeps it).
    fn forget(&self, digest: &str) {
        self.cache.forget(digest.trim_start_matches("sha256:"));
    }

    /// Link and pre-instantiate `compiled` as an app version. `host_functions`: (module, name,
    /// params, results, index) of the Python host functions the module imports.
    #[pyo3(signature = (compiled, *, namespace, name, args, env, entrypoint, memory_bytes, timeout_s,
                        max_concurrency, max_wait_s, stdout_bytes, stderr_bytes, host_functions,
                        allowed_outbound=Vec::new(), variables=Vec::new(), mounts=Vec::new(),
                        scratch=None))]
    #[allow(clippy::too_many_arguments)]
    fn load(
        &self,
        py: Python<'_>,
        compiled: &Compiled,
        namespace: String,
        name: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        entrypoint: String,
        memory_bytes: u64,
        timeout_s: f64,
        max_concurrency: u32,
        max_wait_s: f64,
        stdout_bytes: usize,
        stderr_bytes: usize,
        host_functions: Vec<LinkedFunction>,
        allowed_outbound: Vec<(String, String, String)>,
        variables: Vec<(String, String)>,
        mounts: Vec<(String, String)>,
        scratch: Option<(String, u64, String)>,
    ) -> PyResult<App> {
        let rules = allowed_outbound
            .iter()
            .map(|(scheme, host, port)| crate::egress::Rule::from_parts(scheme, host, port))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PyValueError::new_err(format!("allowedOutboundHosts: {e}")))?;
        let mut fns = Vec::new();
        for (module, fname, params, results, index) in host_functions {
            fns.push(HostFn {
                module,
                name: fname,
                params: params
                    .iter()
                    .map(|p| val_type(p))
                    .collect::<wasmtime::Result<_>>()
                    .map_err(err)?,
                results: results
                    .iter()
                    .map(|p| val_type(p))
                    .collect::<wasmtime::Result<_>>()
                    .map_err(err)?,
                index,
            });
        }
        let host = if fns.is_empty() {
            None
        } else {
            let bridge = self.bridge.lock().unwrap().clone();
            let Some(bridge) = bridge else {
                return Err(PyRuntimeError::new_err(
                    "host functions requested but set_host was not called",
                ));
            };
            Some((bridge, fns))
        };
        let metrics = self.registry.app(&namespace, &name);
        let spin = Arc::new(crate::spin::SpinApp {
            namespace: namespace.clone(),
            name: name.clone(),
            variables: variables.into_iter().collect(),
            backend: self.spin_backend.lock().unwrap().clone(),
        });
        let cfg = AppConfig {
            namespace,
            name,
            args,
            env,
            entrypoint,
            limits: AppLimits {
                memory_bytes,
                timeout: Duration::from_secs_f64(timeout_s.max(0.001)),
                max_concurrency: max_concurrency.max(1),
                max_wait: Duration::from_secs_f64(max_wait_s.max(0.0)),
                stdout_bytes,
                stderr_bytes,
            },
            egress: Arc::new(crate::egress::Policy::new(rules)),
            spin,
            // (host directory, guest path) pairs; scratch: (guest path, bound, host root).
            files: Arc::new(crate::files::Files {
                mounts: mounts
                    .into_iter()
                    .map(|(host, guest)| crate::files::Mount {
                        host: host.into(),
                        guest,
                    })
                    .collect(),
                scratch: scratch.map(|(guest, max_bytes, root)| crate::files::ScratchSpec {
                    guest,
                    max_bytes,
                    root: root.into(),
                }),
            }),
        };
        let artifact = compiled.module.clone();
        let engine = self.shared.engine.clone();
        let app = py
            .allow_threads(|| match &artifact {
                Artifact::Module(module) => AppVersion::new(&engine, module, cfg, metrics, host),
                Artifact::Component(component) => {
                    if host.is_some() {
                        wasmtime::bail!(
                            "components cannot import Shoal's core-module host functions"
                        );
                    }
                    AppVersion::new_component(&engine, component, cfg, metrics)
                }
            })
            .map_err(err)?;
        Ok(App {
            inner: Arc::new(app),
        })
    }

    /// Run one invocation and wait for it (GIL released). Returns (outcome, stdout, stderr,
    /// exit_code, message, stdout_truncated, stderr_truncated, instantiate_s, duration_s, refusal).
    #[pyo3(signature = (app, stdin=None, env=None, args=None, max_wait_s=None))]
    fn invoke(
        &self,
        py: Python<'_>,
        app: &App,
        stdin: Option<&[u8]>,
        env: Option<Vec<(String, String)>>,
        args: Option<Vec<String>>,
        max_wait_s: Option<f64>,
    ) -> PyResult<ResultTuple> {
        let handle = self.handle()?;
        let request = invoke::Request {
            stdin: Bytes::copy_from_slice(stdin.unwrap_or_default()),
            env: env.unwrap_or_default(),
            args,
            max_wait: max_wait_s.map(|s| Duration::from_secs_f64(s.max(0.0))),
            arrival: Instant::now(),
        };
        let (shared, version) = (self.shared.clone(), app.inner.clone());
        // Run on this (waiter) thread, inside the runtime: no hop to a worker and back. The fair
        // queue still bounds how many guests execute at once.
        let r = py.allow_threads(|| handle.block_on(invoke::invoke(shared, version, request)));
        Ok((
            r.outcome.as_str(),
            PyBytes::new(py, &r.stdout).unbind(),
            PyBytes::new(py, &r.stderr).unbind(),
            r.exit_code,
            r.message,
            r.stdout_truncated,
            r.stderr_truncated,
            r.instantiate_seconds,
            r.duration_seconds,
            r.refusal,
        ))
    }

    /// Replace the whole HTTP route table: (route, host or None, app, app_env, max_body_bytes).
    #[allow(clippy::type_complexity)]
    fn set_routes(
        &self,
        routes: Vec<(
            String,
            Option<String>,
            Py<App>,
            Vec<(String, String)>,
            usize,
        )>,
    ) {
        let table = routes
            .into_iter()
            .map(|(route, host, app, app_env, max_body_bytes)| Route {
                route,
                host,
                target: HttpTarget {
                    app: app.get().inner.clone(),
                    app_env: Arc::new(app_env),
                    max_body_bytes,
                },
            })
            .collect();
        self.server.routes.replace(table);
    }

    /// Serve the trigger port; returns the bound port (useful with port 0).
    fn listen(&self, py: Python<'_>, host: String, port: u16) -> PyResult<u16> {
        let handle = self.handle()?;
        let listener = py
            .allow_threads(|| {
                handle.block_on(async {
                    let ip: std::net::IpAddr = host.parse().map_err(|e| {
                        std::io::Error::other(format!("{host} is not an IP address: {e}"))
                    })?;
                    let addr = std::net::SocketAddr::new(ip, port);
                    let socket = if ip.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()?
                    } else {
                        tokio::net::TcpSocket::new_v6()?
                    };
                    socket.set_reuseaddr(true)?;
                    socket.bind(addr)?;
                    socket.listen(1024)
                })
            })
            .map_err(|e| PyOSError::new_err(format!("cannot listen on {host}:{port}: {e}")))?;
        let bound = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let task = handle.spawn(self.server.clone().serve(listener));
        if let Some(old) = self.listener.lock().unwrap().replace(task) {
            old.abort();
        }
        Ok(bound)
    }

    /// Stop accepting connections on the trigger port.
    fn stop_listening(&self) {
        if let Some(t) = self.listener.lock().unwrap().take() {
            t.abort();
        }
    }

    /// While draining every trigger request answers 503 with `Connection: close`.
    fn set_draining(&self, draining: bool) {
        self.server.draining.store(draining, Ordering::Relaxed);
    }

    /// Guests still running trap at their next epoch tick (shutdown after the grace period).
    fn interrupt(&self) {
        self.shared.interrupt.store(true, Ordering::Relaxed);
    }

    #[getter]
    fn memory_budget(&self) -> u64 {
        self.shared.admission.budget()
    }

    #[getter]
    fn memory_in_use(&self) -> u64 {
        self.shared.admission.memory_in_use()
    }

    /// Every app's metrics: [(namespace, app, {histogram: (cumulative counts, sum)},
    /// {outcome: n}, {refusal reason: n}, instances active)].
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for ((ns, name), m) in self.registry.all() {
            let hists = PyDict::new(py);
            for (key, h) in [
                ("instance_start", &m.instance_start),
                ("queue_wait", &m.queue_wait),
                ("first_byte", &m.first_byte),
                ("duration", &m.duration),
                ("instance_memory", &m.instance_memory),
            ] {
                hists.set_item(key, h.snapshot())?;
            }
            let outcomes = PyDict::new(py);
            for (i, o) in OUTCOMES.iter().enumerate() {
                outcomes.set_item(*o, m.outcomes[i].load(Ordering::Relaxed))?;
            }
            let refusals = PyDict::new(py);
            for (i, r) in REFUSALS.iter().enumerate() {
                refusals.set_item(*r, m.refusals[i].load(Ordering::Relaxed))?;
            }
            out.append((
                ns,
                name,
                hists,
                outcomes,
                refusals,
                m.active.load(Ordering::Relaxed),
                m.egress_denied.load(Ordering::Relaxed),
            ))?;
        }
        Ok(out)
    }

    /// Stop the listener, the runtimes (running guests are interrupted) and the epoch ticker.
    fn close(&self, py: Python<'_>) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.stop_listening();
        self.server.routes.replace(Vec::new());
        self.shared.interrupt.store(true, Ordering::Relaxed);
        let rt = self.runtime.lock().unwrap().take();
        let bg = self.background.lock().unwrap().take();
        let ticker = self.ticker.lock().unwrap().take();
        py.allow_threads(move || {
            // The foreground first: dropping its tasks cancels what they moved to the background.
            for rt in [rt, bg].into_iter().flatten() {
                rt.shutdown_timeout(Duration::from_secs(2));
            }
            drop(ticker);
        });
        *self.bridge.lock().unwrap() = None;
    }
}

impl DataPlane {
    fn handle(&self) -> PyResult<tokio::runtime::Handle> {
        self.runtime
            .lock()
            .unwrap()
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| PyRuntimeError::new_err("data plane is closed"))
    }
}

#[pyfunction]
fn wasmtime_version() -> &'static str {
    crate::cache::wasmtime_version()
}

/// WebAssembly text to binary (tests and examples: the agent never loads wasmtime-py).
#[pyfunction]
fn wat2wasm<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyBytes>> {
    let wasm = wat::parse_str(text).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &wasm))
}

#[pymodule]
fn shoal_dataplane(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DataPlane>()?;
    m.add_class::<Compiled>()?;
    m.add_class::<App>()?;
    m.add_class::<GuestMemory>()?;
    m.add_function(wrap_pyfunction!(wasmtime_version, m)?)?;
    m.add_function(wrap_pyfunction!(wat2wasm, m)?)?;
    Ok(())
}
