//! One app version (a pre-instantiated module or component with its limits) and one invocation of
//! it: admit, queue for an execution slot, a fresh instance in a fresh store, run the entry point,
//! classify.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wasmtime::{
    Engine, InstancePre, Linker, Module, ResourceLimiter, Result, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use crate::component::{CGuest, Kind};
use crate::files::{Scratch, ScratchFull};
use crate::hostcall::{HostBridge, HostFn, HostState};
use crate::lane::{self, Cancelled, Lanes};
use crate::metrics::AppMetrics;
use crate::pipes::BoundedOutput;
use crate::reaper::Reaper;
use crate::sched::{Admission, Admitted, FairSlots, Refusal};

/// What every invocation shares: the engine and the schedulers.
pub struct Shared {
    pub engine: Engine,
    pub admission: Arc<Admission>,
    pub slots: Arc<FairSlots>,
    /// Set at shutdown: every running guest traps at its next epoch tick.
    pub interrupt: AtomicBool,
    /// Tears down large instances off the guest threads (with their admission, so the memory
    /// they held counts against the budget until it is really given back).
    pub reaper: Reaper<(AnyStore, Admitted)>,
    /// Where guests that run long move to (crate::lane).
    pub lanes: Lanes,
}

/// What a core module runs unless its app names another export (WAGI's `entrypoint`).
pub const DEFAULT_ENTRYPOINT: &str = "_start";

/// Instances whose linear memory grew past this are torn down by the reaper.
const REAP_ABOVE_BYTES: usize = 4 << 20;

/// The store an invocation ran in, whichever kind of app it was.
pub enum AnyStore {
    Module(Store<Guest>),
    Component(Store<CGuest>),
}

impl AnyStore {
    fn peak_memory(&self) -> usize {
        match self {
            Self::Module(s) => s.data().limiter.peak,
            Self::Component(s) => s.data().limiter.peak,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppLimits {
    pub memory_bytes: u64,
    pub timeout: Duration,
    pub max_concurrency: u32,
    /// How long a request may wait for admission before it is refused (503 busy).
    pub max_wait: Duration,
    pub stdout_bytes: usize,
    pub stderr_bytes: usize,
}

pub struct AppVersion {
    pub namespace: String,
    pub name: String,
    /// The app's identity for fairness and its concurrency limit (stable across versions).
    pub id: u64,
    pub kind: Kind,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    entrypoint: String,
    pub limits: AppLimits,
    pub egress: Arc<crate::egress::Policy>,
    pub spin: Arc<crate::spin::SpinApp>,
    /// The directories its guests see (crate::files).
    pub files: Arc<crate::files::Files>,
    /// Spin imports the component has that Shoal does not implement (their calls trap).
    pub stubbed: Vec<String>,
    pub metrics: Arc<AppMetrics>,
    pub in_flight: AtomicU64,
    host: Option<Arc<HostBridge>>,
}

/// Store data of one invocation.
pub struct Guest {
    wasi: WasiP1Ctx,
    /// Whether this invocation holds an execution slot now: it gives the slot back at epoch ticks
    /// and host calls, and whoever drops the invocation releases it only if still held.
    pub holding: Arc<AtomicBool>,
    limiter: MemoryLimiter,
    pub host: Option<HostState>,
    pub host_failure: Option<String>,
}

pub(crate) struct MemoryLimiter {
    pub(crate) limit: usize,
    pub(crate) hit: bool,
    /// Linear memory the instance holds now, all its memories together (a component may have
    /// several); initial sizes count, since wasmtime asks the limiter for them too.
    held: usize,
    /// The most `held` ever was: what the instance cost in linear memory.
    pub(crate) peak: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        self.held = self.held.saturating_sub(current) + desired;
        self.peak = self.peak.max(self.held);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

pub struct Request {
    pub stdin: Bytes,
    pub env: Vec<(String, String)>,
    /// Replaces the app's args; argv[0] is always the app name.
    pub args: Option<Vec<String>>,
    /// How long this request may wait for admission; None is the app's own budget.
    pub max_wait: Option<Duration>,
    pub arrival: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Exit,
    Trap,
    Timeout,
    OutOfMemory,
    StdoutLimit,
    Busy,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Exit => "exit",
            Self::Trap => "trap",
            Self::Timeout => "timeout",
            Self::OutOfMemory => "out_of_memory",
            Self::StdoutLimit => "stdout_limit",
            Self::Busy => "busy",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone)]
pub struct InvocationResult {
    pub outcome: Outcome,
    pub stdout: Bytes,
    pub stderr: Bytes,
    pub exit_code: Option<i32>,
    pub message: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub instantiate_seconds: f64,
    pub duration_seconds: f64,
    /// Set when admission refused the request ("concurrency" or "memory").
    pub refusal: Option<&'static str>,
}

/// When an invocation's phases happened: instantiate and duration count from `start`.
pub(crate) struct Timing {
    pub start: Instant,
    pub instantiated: Option<Instant>,
    pub end: Instant,
}

impl Timing {
    /// The guest has just ended.
    pub(crate) fn ended(start: Instant, instantiated: Option<Instant>) -> Self {
        Self {
            start,
            instantiated,
            end: Instant::now(),
        }
    }
}

impl InvocationResult {
    /// A guest that ran: its outcome (from `classify` or a clean end) and what it wrote.
    pub(crate) fn ran(
        (outcome, exit_code, message): (Outcome, Option<i32>, String),
        stdout: &BoundedOutput,
        stderr: &BoundedOutput,
        t: Timing,
    ) -> Self {
        Self {
            outcome,
            stdout_truncated: stdout.overflowed(),
            stderr_truncated: stderr.overflowed(),
            stdout: stdout.take(),
            stderr: stderr.take(),
            exit_code,
            message,
            instantiate_seconds: t
                .instantiated
                .map(|i| (i - t.start).as_secs_f64())
                .unwrap_or(0.0),
            duration_seconds: (t.end - t.start).as_secs_f64(),
            refusal: None,
        }
    }

    /// The background lane's runtime stopped (shutdown) before the guest ended.
    pub(crate) fn shut_down() -> Self {
        Self::refused(
            Outcome::Error,
            "the data plane shut down while the guest ran".into(),
            None,
        )
    }

    pub(crate) fn refused(
        outcome: Outcome,
        message: String,
        refusal: Option<&'static str>,
    ) -> Self {
        Self {
            outcome,
            stdout: Bytes::new(),
            stderr: Bytes::new(),
            exit_code: None,
            message,
            stdout_truncated: false,
            stderr_truncated: false,
            instantiate_seconds: 0.0,
            duration_seconds: 0.0,
            refusal,
        }
    }
}

pub fn app_id(namespace: &str, name: &str) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    (namespace, name).hash(&mut h);
    h.finish()
}

pub struct AppConfig {
    pub namespace: String,
    pub name: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub entrypoint: String,
    pub limits: AppLimits,
    /// Where a component may send outbound HTTP (empty: nowhere).
    pub egress: Arc<crate::egress::Policy>,
    /// What a Spin app's Spin imports see (variables, the key-value backend).
    pub spin: Arc<crate::spin::SpinApp>,
    /// The directories its guests see: read-only mounts and a scratch directory.
    pub files: Arc<crate::files::Files>,
}

impl AppVersion {
    /// Link WASI and the app's host functions, and pre-instantiate.
    pub fn new(
        engine: &Engine,
        module: &Module,
        cfg: AppConfig,
        metrics: Arc<AppMetrics>,
        host: Option<(Arc<HostBridge>, Vec<HostFn>)>,
    ) -> Result<Self> {
        let mut linker: Linker<Guest> = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |g: &mut Guest| &mut g.wasi)?;
        let bridge = match host {
            Some((bridge, fns)) => {
                for f in fns {
                    crate::hostcall::define(&mut linker, engine, f)?;
                }
                Some(bridge)
            }
            None => None,
        };
        // A missing entry point is the app's error at load, not every request's.
        match module.get_export(&cfg.entrypoint) {
            Some(wasmtime::ExternType::Func(f))
                if f.params().len() == 0 && f.results().len() == 0 => {}
            _ => return Err(wasmtime::Error::new(NoEntry(cfg.entrypoint))),
        }
        let pre = linker.instantiate_pre(module)?;
        Self::with_kind((Kind::Module(pre), vec![]), cfg, metrics, bridge)
    }

    /// Link WASI preview 2 (and wasi:http) for a component, and pre-instantiate it as the world
    /// it exports.
    pub fn new_component(
        engine: &Engine,
        component: &wasmtime::component::Component,
        cfg: AppConfig,
        metrics: Arc<AppMetrics>,
    ) -> Result<Self> {
        if cfg.entrypoint != DEFAULT_ENTRYPOINT {
            wasmtime::bail!(
                "entrypoint {:?} applies to core modules only: a component runs the world it \
                 exports (wasi:http/incoming-handler or wasi:cli/run)",
                cfg.entrypoint
            );
        }
        let kind = crate::component::prepare(engine, component)?;
        Self::with_kind(kind, cfg, metrics, None)
    }

    fn with_kind(
        (kind, stubbed): (Kind, Vec<String>),
        cfg: AppConfig,
        metrics: Arc<AppMetrics>,
        bridge: Option<Arc<HostBridge>>,
    ) -> Result<Self> {
        cfg.files.check()?;
        let mut argv = vec![cfg.name.clone()];
        argv.extend(cfg.args);
        Ok(Self {
            id: app_id(&cfg.namespace, &cfg.name),
            namespace: cfg.namespace,
            name: cfg.name,
            kind,
            argv,
            env: cfg.env,
            entrypoint: cfg.entrypoint,
            limits: cfg.limits,
            egress: cfg.egress,
            spin: cfg.spin,
            files: cfg.files,
            stubbed,
            metrics,
            in_flight: AtomicU64::new(0),
            host: bridge,
        })
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// An invocation that was admitted and holds an execution slot. Dropping it (a request whose
/// client went away, wherever it was) gives back what it holds; `finish` also records metrics
/// and retires the store.
pub struct Ticket {
    shared: Arc<Shared>,
    app: Arc<AppVersion>,
    admitted: Option<Admitted>,
    /// Whether the invocation holds its slot now: it gives the slot back at epoch ticks and host
    /// calls, and whoever ends the invocation releases it only if still held.
    pub holding: Arc<AtomicBool>,
    pub deadline: Instant,
    /// When the slot was first taken: instantiate and duration count from here.
    pub start: Instant,
}

impl Ticket {
    /// Record the invocation's metrics, give the slot back, and tear the store down (large ones on
    /// the reaper, which releases the admission once the memory is really given back).
    pub fn finish(self, store: Option<AnyStore>, result: &InvocationResult) {
        drop(self.finish_later(store, result));
    }

    /// `finish`, but the store is torn down when the returned value is dropped: the HTTP path
    /// sends its response first (resetting an instance's memory is on no client's clock).
    pub fn finish_later(mut self, store: Option<AnyStore>, result: &InvocationResult) -> Leftover {
        let metrics = &self.app.metrics;
        metrics.duration.observe(result.duration_seconds);
        if result.instantiate_seconds > 0.0 {
            metrics.instance_start.observe(result.instantiate_seconds);
            // Only instances that came to be: a refused or failed instantiation cost nothing.
            if let Some(s) = &store {
                metrics.instance_memory.observe(s.peak_memory() as f64);
            }
        }
        metrics.count(result.outcome.as_str());
        self.release_slot();
        Leftover {
            shared: self.shared.clone(),
            held: store.zip(self.admitted.take()),
        }
    }

    fn release_slot(&self) {
        if self.holding.swap(false, Ordering::AcqRel) {
            self.shared.slots.release();
        }
    }
}

/// An ended invocation's store and the admission it holds until the store is torn down (large
/// ones on the reaper, which releases the admission once the memory is really given back).
pub struct Leftover {
    shared: Arc<Shared>,
    held: Option<(AnyStore, Admitted)>,
}

impl Drop for Leftover {
    fn drop(&mut self) {
        if let Some((store, admitted)) = self.held.take() {
            if store.peak_memory() > REAP_ABOVE_BYTES {
                self.shared.reaper.retire((store, admitted));
            } else {
                drop(store);
                drop(admitted);
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.release_slot();
        self.app.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.app.metrics.active.fetch_sub(1, Ordering::Relaxed);
    }
}

fn refusal_message(app: &AppVersion, r: Refusal) -> String {
    match r {
        Refusal::Concurrency { limit } => format!("app at its concurrency limit of {limit}"),
        Refusal::Share {
            held,
            share,
            budget,
        } => format!(
            "app {} needs {} bytes of memory (its limit) but already holds {} bytes in running \
             instances, and one app may hold at most {} bytes of the agent's memory budget of {} bytes",
            app.label(),
            app.limits.memory_bytes,
            held,
            share,
            budget
        ),
        Refusal::Memory { in_use, budget } => format!(
            "app {} needs {} bytes of memory (its limit) but the agent's memory budget of {} bytes \
             has {} left: {} are held by running instances",
            app.label(),
            app.limits.memory_bytes,
            budget,
            budget.saturating_sub(in_use),
            in_use
        ),
    }
}

/// Admission, then a slot: the ticket to run, or the result that says why not (busy, timeout).
pub async fn enter(
    shared: &Arc<Shared>,
    app: &Arc<AppVersion>,
    arrival: Instant,
    max_wait: Option<Duration>,
) -> std::result::Result<Ticket, InvocationResult> {
    let limits = &app.limits;
    // A client's deadline counts from its arrival, queueing included, so it never waits past it.
    // A patient caller (a queued message, a job: an explicit max_wait) waits for admission first
    // and then gets the app's full timeout.
    let mut deadline = arrival + limits.timeout;
    let wait_until = match max_wait {
        Some(w) => arrival + w,
        None => (arrival + limits.max_wait).min(deadline),
    };
    let admitted = match shared
        .admission
        .admit(
            app.id,
            limits.max_concurrency,
            limits.memory_bytes,
            wait_until,
        )
        .await
    {
        Ok(a) => a,
        Err(r) => {
            app.metrics.refused(r.reason());
            app.metrics.count("busy");
            return Err(InvocationResult::refused(
                Outcome::Busy,
                refusal_message(app, r),
                Some(r.reason()),
            ));
        }
    };
    if max_wait.is_some() {
        deadline = Instant::now() + limits.timeout;
    }
    app.in_flight.fetch_add(1, Ordering::Relaxed);
    app.metrics.active.fetch_add(1, Ordering::Relaxed);
    let mut ticket = Ticket {
        shared: shared.clone(),
        app: app.clone(),
        admitted: Some(admitted),
        holding: Arc::new(AtomicBool::new(false)),
        deadline,
        start: arrival,
    };
    let queued =
        tokio::time::timeout_at(deadline.into(), shared.slots.acquire(app.id, false)).await;
    ticket.start = Instant::now();
    app.metrics
        .queue_wait
        .observe((ticket.start - arrival).as_secs_f64());
    if queued.is_err() {
        app.metrics.count("timeout");
        return Err(InvocationResult::refused(
            Outcome::Timeout,
            format!(
                "deadline of {}s exceeded while waiting to run",
                limits.timeout.as_secs_f64()
            ),
            None,
        ));
    }
    ticket.holding.store(true, Ordering::Release);
    Ok(ticket)
}

/// Run one invocation to its end; never fails for guest misbehaviour (that is the outcome).
pub async fn invoke(shared: Arc<Shared>, app: Arc<AppVersion>, req: Request) -> InvocationResult {
    invoke_then_teardown(shared, app, req).await.0
}

/// `invoke`, with the store's teardown left to the caller (it happens when the `Leftover` drops).
pub async fn invoke_then_teardown(
    shared: Arc<Shared>,
    app: Arc<AppVersion>,
    req: Request,
) -> (InvocationResult, Option<Leftover>) {
    let lanes = shared.lanes.clone();
    lane::run(&lanes, admit_and_run(shared, app, req))
        .await
        .unwrap_or_else(|Cancelled| (InvocationResult::shut_down(), None))
}

async fn admit_and_run(
    shared: Arc<Shared>,
    app: Arc<AppVersion>,
    req: Request,
) -> (InvocationResult, Option<Leftover>) {
    let ticket = match enter(&shared, &app, req.arrival, req.max_wait).await {
        Ok(t) => t,
        Err(refused) => return (refused, None),
    };
    let (result, store) = match &app.kind {
        Kind::Module(pre) => {
            let (r, s) = run(&shared, &app, pre, req, &ticket).await;
            (r, Some(AnyStore::Module(s)))
        }
        Kind::Command(pre) => {
            let (r, s) = crate::component::run_command(&shared, &app, pre, req, &ticket).await;
            (r, Some(AnyStore::Component(s)))
        }
        Kind::Proxy(_) => (
            InvocationResult::refused(
                Outcome::Error,
                "this app is a wasi:http component: it only serves HTTP requests".into(),
                None,
            ),
            None,
        ),
    };
    let leftover = ticket.finish_later(store, &result);
    (result, Some(leftover))
}

/// The memory limiter and the epoch callback of an invocation's store: at every tick the guest
/// gives its slot to the next app in line and queues again; past the deadline (or at shutdown)
/// it traps.
pub(crate) fn govern<T: Send + 'static>(
    store: &mut Store<T>,
    shared: &Arc<Shared>,
    app_id: u64,
    ticket: &Ticket,
    scratch: Option<Arc<Scratch>>,
) {
    store.set_epoch_deadline(1);
    let (sh, holding, deadline) = (shared.clone(), ticket.holding.clone(), ticket.deadline);
    store.epoch_deadline_callback(move |_ctx| {
        if sh.interrupt.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return Ok(UpdateDeadline::Interrupt);
        }
        if let Some(s) = &scratch {
            s.tick().map_err(wasmtime::Error::new)?;
        }
        // Give the slot to the next app in line, really yield the thread (so a request that has
        // not reached the queue yet gets polled), then queue for a slot again; in the background
        // lane a guest runs without a slot, so it only yields.
        if holding.swap(false, Ordering::AcqRel) {
            sh.slots.release();
        }
        if lane::on_background() {
            return Ok(UpdateDeadline::Yield(1));
        }
        let (sh2, held) = (sh.clone(), holding.clone());
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                sh2.slots.acquire(app_id, true).await;
                held.store(true, Ordering::Release);
            }),
        ))
    });
}

impl MemoryLimiter {
    pub(crate) fn new(limits: &AppLimits) -> Self {
        Self {
            limit: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            hit: false,
            held: 0,
            peak: 0,
        }
    }
}

impl AppVersion {
    /// The app's own args followed by `extra` (a WAGI request's query args).
    pub(crate) fn args_then(&self, extra: Vec<String>) -> Vec<String> {
        self.argv[1..].iter().cloned().chain(extra).collect()
    }

    /// argv: a request's own args after the app name, else the app's.
    pub(crate) fn argv_for(&self, args: Option<&[String]>) -> Vec<String> {
        match args {
            Some(args) => std::iter::once(self.name.clone())
                .chain(args.iter().cloned())
                .collect(),
            None => self.argv.clone(),
        }
    }

    pub(crate) fn env(&self) -> &[(String, String)] {
        &self.env
    }
}

async fn run(
    shared: &Arc<Shared>,
    app: &Arc<AppVersion>,
    pre: &InstancePre<Guest>,
    req: Request,
    ticket: &Ticket,
) -> (InvocationResult, Store<Guest>) {
    let limits = &app.limits;
    let stdout = BoundedOutput::new(limits.stdout_bytes, true);
    let stderr = BoundedOutput::new(limits.stderr_bytes, false);
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(app.argv_for(req.args.as_deref()).as_slice())
        .envs(app.env.as_slice())
        .envs(req.env.as_slice())
        .stdin(MemoryInputPipe::new(req.stdin))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    let scratch = app.files.preopen(&mut wasi).map(|s| s.map(Arc::new));
    let guest = Guest {
        wasi: wasi.build_p1(),
        holding: ticket.holding.clone(),
        limiter: MemoryLimiter::new(limits),
        host: app
            .host
            .as_ref()
            .map(|b| HostState::new(b.clone(), &app.namespace, &app.name, app.id)),
        host_failure: None,
    };
    let mut store = Store::new(&shared.engine, guest);
    store.limiter(|g| &mut g.limiter);
    let (scratch, opened) = match scratch {
        Ok(s) => (s, Ok(())),
        Err(e) => (None, Err(e)),
    };
    govern(&mut store, shared, app.id, ticket, scratch.clone());
    let start = ticket.start;
    let mut instantiated = None;
    let outcome: Result<()> = async {
        opened?;
        let instance = pre.instantiate_async(&mut store).await?;
        instantiated = Some(Instant::now());
        let entry = instance
            .get_typed_func::<(), ()>(&mut store, &app.entrypoint)
            .map_err(|_| wasmtime::Error::new(NoEntry(app.entrypoint.clone())))?;
        entry.call_async(&mut store, ()).await
    }
    .await;
    let timing = Timing::ended(start, instantiated);
    let outcome = crate::files::checked_at_end(outcome, scratch.as_deref());
    let g = store.data();
    let verdict = classify(
        outcome,
        g.limiter.hit,
        g.host_failure.as_deref(),
        &stdout,
        limits,
        instantiated.is_some(),
    );
    let result = InvocationResult::ran(verdict, &stdout, &stderr, timing);
    (result, store)
}

#[derive(Debug)]
pub(crate) struct NoEntry(pub(crate) String);

impl std::fmt::Display for NoEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "module has no {:?} export to run (a function with no parameters and results)",
            self.0
        )
    }
}

impl std::error::Error for NoEntry {}

/// What a guest's run came to: ok, or the outcome its error stands for.
pub(crate) fn classify(
    run: Result<()>,
    oom: bool,
    host_failure: Option<&str>,
    stdout: &BoundedOutput,
    limits: &AppLimits,
    instantiated: bool,
) -> (Outcome, Option<i32>, String) {
    let e = match run {
        Ok(()) => return (Outcome::Ok, Some(0), String::new()),
        Err(e) => e,
    };
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return match exit.0 {
            0 => (Outcome::Ok, Some(0), String::new()),
            c if oom => (
                Outcome::OutOfMemory,
                Some(c),
                format!("exited with code {c} at the memory limit"),
            ),
            c => (Outcome::Exit, Some(c), format!("exited with code {c}")),
        };
    }
    if stdout.overflowed() {
        return (
            Outcome::StdoutLimit,
            None,
            format!(
                "stdout limit of {} bytes exceeded: the module wrote {} bytes before it was stopped",
                stdout.limit(),
                stdout.attempted()
            ),
        );
    }
    if let Some(message) = host_failure {
        return (Outcome::Trap, None, message.to_string());
    }
    if let Some(full) = e.downcast_ref::<ScratchFull>() {
        return (Outcome::Trap, None, full.to_string());
    }
    if let Some(n) = e.downcast_ref::<NoEntry>() {
        return (Outcome::Error, None, n.to_string());
    }
    let last = e.root_cause().to_string();
    let last = last
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string();
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => {
            return (
                Outcome::Timeout,
                None,
                format!("deadline of {}s exceeded", limits.timeout.as_secs_f64()),
            );
        }
        Some(Trap::StackOverflow) => return (Outcome::Trap, None, "stack overflow".into()),
        _ => {}
    }
    if !instantiated {
        if oom || (last.contains("memory") && (last.contains("limit") || last.contains("exceed"))) {
            return (
                Outcome::OutOfMemory,
                None,
                format!("needs more than {} bytes", limits.memory_bytes),
            );
        }
        return (
            Outcome::Error,
            None,
            format!("instantiation failed: {last}"),
        );
    }
    if oom {
        return (
            Outcome::OutOfMemory,
            None,
            format!("memory limit {} reached ({last})", limits.memory_bytes),
        );
    }
    (Outcome::Trap, None, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineSettings, build_engine};
    use crate::metrics::Registry;

    const HELLO: &str = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "Content-Type: text/plain\n\nhi\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 29))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;
    const SPIN: &str =
        r#"(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"#;
    /// 64 KiB .. 8 MiB, one bound per power of two (the agent's are 64 KiB .. 4 GiB).
    const MEMORY_BOUNDS: [f64; 8] = [
        65536.0, 131072.0, 262144.0, 524288.0, 1048576.0, 2097152.0, 4194304.0, 8388608.0,
    ];
    const GROW: &str = r#"(module (memory (export "memory") 1)
      (func (export "_start") (loop $l
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable)) (br $l))))"#;

    fn shared(budget: u64, slots: usize) -> Arc<Shared> {
        let engine = build_engine(&EngineSettings {
            max_instances: 64,
            ..Default::default()
        })
        .unwrap();
        Arc::new(Shared {
            engine,
            admission: Admission::new(budget, 0.5),
            slots: FairSlots::new(slots),
            interrupt: AtomicBool::new(false),
            reaper: Reaper::start("test-reaper"),
            lanes: Default::default(),
        })
    }

    fn app(
        shared: &Shared,
        name: &str,
        wat: &str,
        timeout_ms: u64,
        concurrency: u32,
    ) -> Arc<AppVersion> {
        Arc::new(
            load(
                shared,
                name,
                wat,
                DEFAULT_ENTRYPOINT,
                timeout_ms,
                concurrency,
            )
            .unwrap(),
        )
    }

    fn load(
        shared: &Shared,
        name: &str,
        wat: &str,
        entrypoint: &str,
        timeout_ms: u64,
        concurrency: u32,
    ) -> Result<AppVersion> {
        let module = Module::new(&shared.engine, wat).unwrap();
        let registry = Registry::new(vec![0.001, 0.01, 0.1, 1.0], MEMORY_BOUNDS.to_vec());
        let cfg = AppConfig {
            namespace: "ns".into(),
            name: name.into(),
            args: vec![],
            env: vec![],
            entrypoint: entrypoint.into(),
            limits: AppLimits {
                memory_bytes: 4 << 20,
                timeout: Duration::from_millis(timeout_ms),
                max_concurrency: concurrency,
                max_wait: Duration::from_millis(20),
                stdout_bytes: 1024,
                stderr_bytes: 1024,
            },
            egress: Default::default(),
            spin: Default::default(),
            files: Default::default(),
        };
        AppVersion::new(&shared.engine, &module, cfg, registry.app("ns", name), None)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_app_may_name_its_entry_point_and_a_missing_one_fails_the_load() {
        let sh = shared(1 << 30, 2);
        let _t = ticker(&sh);
        let two = HELLO.replace("(export \"_start\")", "(export \"handle\")");
        let handle = Arc::new(load(&sh, "handle", &two, "handle", 500, 4).unwrap());
        let r = invoke(sh.clone(), handle, request()).await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        let missing = load(&sh, "missing", HELLO, "handle", 500, 4).err().unwrap();
        assert!(
            format!("{missing:#}").contains("no \"handle\" export"),
            "{missing:#}"
        );
    }

    fn request() -> Request {
        Request {
            stdin: Bytes::new(),
            env: vec![],
            args: None,
            max_wait: None,
            arrival: Instant::now(),
        }
    }

    fn ticker(shared: &Shared) -> crate::engine::EpochTicker {
        crate::engine::EpochTicker::start(shared.engine.clone(), Duration::from_millis(1))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fresh_instance_runs_and_limits_hold() {
        let sh = shared(1 << 30, 2);
        let _t = ticker(&sh);
        let hello = app(&sh, "hello", HELLO, 500, 4);
        let r = invoke(sh.clone(), hello.clone(), request()).await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        assert_eq!(&r.stdout[..], b"Content-Type: text/plain\n\nhi\n");
        let r = invoke(sh.clone(), app(&sh, "spin", SPIN, 50, 4), request()).await;
        assert_eq!(r.outcome, Outcome::Timeout);
        assert!(r.duration_seconds < 0.5);
        let r = invoke(sh.clone(), app(&sh, "grow", GROW, 500, 4), request()).await;
        assert_eq!(r.outcome, Outcome::OutOfMemory, "{r:?}");
        assert_eq!(hello.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(sh.admission.memory_in_use(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_instance_records_the_linear_memory_it_peaked_at() {
        let sh = shared(1 << 30, 2);
        let _t = ticker(&sh);
        // 1 page to start, then 4 and 1 more: 6 pages (384 KiB), its initial page included.
        let grow = r#"(module (memory (export "memory") 1)
          (func (export "_start")
            (drop (memory.grow (i32.const 4))) (drop (memory.grow (i32.const 1)))))"#;
        let six = app(&sh, "six", grow, 500, 4);
        for _ in 0..2 {
            let r = invoke(sh.clone(), six.clone(), request()).await;
            assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        }
        let (counts, sum) = six.metrics.instance_memory.snapshot();
        // Bounds 64K, 128K, 256K, 512K, ...: both instances land in the 512 KiB bucket.
        assert_eq!(counts[..5], [0, 0, 0, 2, 2]);
        assert_eq!(sum, 2.0 * 6.0 * 65536.0);
        // An invocation the budget refused made no instance and records none.
        let tight = shared(1 << 20, 2);
        let refused = app(&tight, "refused", grow, 500, 4);
        let r = invoke(tight.clone(), refused.clone(), request()).await;
        assert_eq!(r.refusal, Some("memory"), "{r:?}");
        assert_eq!(
            refused.metrics.instance_memory.snapshot(),
            (vec![0; 9], 0.0)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spinning_guests_do_not_starve_another_app() {
        // One execution slot: four spinning guests of one app, then a hello of another app.
        let sh = shared(1 << 30, 1);
        let _t = ticker(&sh);
        let spin = app(&sh, "spin", SPIN, 400, 8);
        let spinners: Vec<_> = (0..4)
            .map(|_| tokio::spawn(invoke(sh.clone(), spin.clone(), request())))
            .collect();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let hello = app(&sh, "hello", HELLO, 500, 4);
        let started = Instant::now();
        let r = invoke(sh.clone(), hello, request()).await;
        assert_eq!(r.outcome, Outcome::Ok);
        // It waits for one tick of the running guest at most, not for the spinners to end.
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "{:?}",
            started.elapsed()
        );
        for s in spinners {
            assert_eq!(s.await.unwrap().outcome, Outcome::Timeout);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_memory_budget_refuses_and_says_why() {
        let sh = shared(6 << 20, 2);
        let _t = ticker(&sh);
        let spin = app(&sh, "spin", SPIN, 200, 8);
        let first = tokio::spawn(invoke(sh.clone(), spin.clone(), request()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = invoke(sh.clone(), spin.clone(), request()).await;
        assert_eq!((r.outcome, r.refusal), (Outcome::Busy, Some("memory")));
        assert!(
            r.message.contains("ns/spin needs 4194304 bytes"),
            "{}",
            r.message
        );
        assert!(
            r.message.contains("budget of 6291456 bytes"),
            "{}",
            r.message
        );
        assert_eq!(first.await.unwrap().outcome, Outcome::Timeout);
        assert_eq!(sh.admission.memory_in_use(), 0);
    }
}
