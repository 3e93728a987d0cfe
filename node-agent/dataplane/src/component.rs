//! Components (WASI preview 2): a `wasi:http/proxy` component serves each HTTP request from a
//! fresh instance, as wasmtime's `serve` command does; a `wasi:cli/run` component runs like a
//! core module (CGI over its stdio for HTTP, stdin for messages, argv for jobs). Both get the same
//! admission, fair slots, deadline, memory limit and metrics as modules.
//!
//! Outbound HTTP from a component goes only where the app's allow-list says (`egress.rs`); with
//! none, every request is refused (`HttpRequestDenied`).
//!
//! A guest that fails after its client hung up (`hangup.rs`) is reported in one line: its failure
//! is most likely the write to the closed response, not a bug of its own.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Result, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::egress::Egress;
use crate::hangup::HangUp;
use crate::invoke::{
    AnyStore, AppVersion, InvocationResult, MemoryLimiter, Outcome, Request, Shared, Ticket,
    Timing, classify, enter, govern,
};
use crate::pipes::BoundedOutput;

/// What an app version instantiates per invocation.
pub enum Kind {
    Module(wasmtime::InstancePre<crate::invoke::Guest>),
    /// Exports `wasi:cli/run`.
    Command(CommandPre<CGuest>),
    /// Exports `wasi:http/incoming-handler` (the `wasi:http/proxy` world).
    Proxy(ProxyPre<CGuest>),
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Module(_) => "module",
            Self::Command(_) => "command",
            Self::Proxy(_) => "proxy",
        }
    }
}

/// Store data of one component invocation.
pub struct CGuest {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    http: WasiHttpCtx,
    hooks: Egress,
    pub(crate) spin: Arc<crate::spin::SpinApp>,
    pub(crate) limiter: MemoryLimiter,
}

impl WasiView for CGuest {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CGuest {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Link WASI preview 2, wasi:http and Spin's interfaces (trapping stubs for the Spin imports Shoal
/// lacks, returned by name), and pre-instantiate as the world the component exports.
pub fn prepare(engine: &Engine, component: &Component) -> Result<(Kind, Vec<String>)> {
    let mut linker: Linker<CGuest> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::spin::add_to_linker(&mut linker)?;
    let stubbed = crate::spin::stub_absent(&mut linker, engine, component)?;
    let pre = linker.instantiate_pre(component)?;
    if let Ok(proxy) = ProxyPre::new(pre.clone()) {
        return Ok((Kind::Proxy(proxy), stubbed));
    }
    match CommandPre::new(pre) {
        Ok(command) => Ok((Kind::Command(command), stubbed)),
        Err(_) => wasmtime::bail!(
            "the component exports neither wasi:http/incoming-handler@0.2 (an HTTP app) nor \
             wasi:cli/run@0.2 (a command)"
        ),
    }
}

fn guest(wasi: WasiCtx, app: &AppVersion) -> CGuest {
    CGuest {
        wasi,
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        hooks: Egress {
            policy: app.egress.clone(),
            metrics: app.metrics.clone(),
            label: app.label().into(),
        },
        spin: app.spin.clone(),
        limiter: MemoryLimiter::new(&app.limits),
    }
}

/// Run a `wasi:cli/run` component once: the same contract as a module's `_start`.
pub async fn run_command(
    shared: &Arc<Shared>,
    app: &Arc<AppVersion>,
    pre: &CommandPre<CGuest>,
    req: Request,
    ticket: &Ticket,
) -> (InvocationResult, Store<CGuest>) {
    let limits = &app.limits;
    let stdout = BoundedOutput::new(limits.stdout_bytes, true);
    let stderr = BoundedOutput::new(limits.stderr_bytes, false);
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(app.argv_for(req.args.as_deref()).as_slice())
        .envs(app.env())
        .envs(req.env.as_slice())
        .stdin(MemoryInputPipe::new(req.stdin))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    let (scratch, opened) = match app.files.preopen(&mut wasi) {
        Ok(s) => (s.map(Arc::new), Ok(())),
        Err(e) => (None, Err(e)),
    };
    let mut store = Store::new(&shared.engine, guest(wasi.build(), app));
    store.limiter(|g| &mut g.limiter);
    govern(&mut store, shared, app.id, ticket, scratch.clone());
    let start = ticket.start;
    let mut instantiated = None;
    let outcome: Result<std::result::Result<(), ()>> = async {
        opened?;
        let command = pre.instantiate_async(&mut store).await?;
        instantiated = Some(Instant::now());
        command.wasi_cli_run().call_run(&mut store).await
    }
    .await;
    let timing = Timing::ended(start, instantiated);
    let outcome = crate::files::checked_at_end(outcome, scratch.as_deref());
    let verdict = match outcome {
        Ok(Err(())) => (
            Outcome::Exit,
            Some(1),
            "wasi:cli/run returned an error (exit code 1)".into(),
        ),
        run => classify(
            run.map(|_| ()),
            store.data().limiter.hit,
            None,
            &stdout,
            limits,
            instantiated.is_some(),
        ),
    };
    let result = InvocationResult::ran(verdict, &stdout, &stderr, timing);
    (result, store)
}

/// Either the guest's own response (its body streams while the guest still writes it), or the
/// invocation's result when the guest never set one.
pub enum Served {
    Response(hyper::Response<HyperOutgoingBody>),
    Failed(InvocationResult),
}

/// Serve one HTTP request with a fresh instance of a `wasi:http/proxy` component.
pub async fn serve(
    shared: Arc<Shared>,
    app: Arc<AppVersion>,
    pre: ProxyPre<CGuest>,
    req: hyper::Request<Incoming>,
    arrival: Instant,
    max_body_bytes: usize,
) -> Served {
    let ticket = match enter(&shared, &app, arrival, None).await {
        Ok(t) => t,
        Err(refused) => return Served::Failed(refused),
    };
    let limits = app.limits.clone();
    let stderr = BoundedOutput::new(limits.stderr_bytes, false);
    let stdout = BoundedOutput::new(limits.stdout_bytes, false);
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(&app.argv_for(None))
        .envs(app.env())
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    let (scratch, opened) = match app.files.preopen(&mut wasi) {
        Ok(s) => (s.map(Arc::new), Ok(())),
        Err(e) => (None, Err(e)),
    };
    let mut store = Store::new(&shared.engine, guest(wasi.build(), &app));
    store.limiter(|g| &mut g.limiter);
    govern(&mut store, &shared, app.id, &ticket, scratch.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The body is read by the guest as it asks for it, never more than the app's limit.
    let req = req.map(|body| {
        Limited::new(body, max_body_bytes)
            .map_err(move |_| wasmtime_wasi_http::Error::HttpRequestBodySize(None))
    });
    let prepared = (|| {
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(tx)?;
        Ok::<_, wasmtime::Error>((incoming, out))
    })();
    let (incoming, out) = match prepared {
        Ok(p) => p,
        Err(e) => {
            let result = InvocationResult::refused(Outcome::Error, format!("{e:#}"), None);
            ticket.finish(Some(AnyStore::Component(store)), &result);
            return Served::Failed(result);
        }
    };
    let start = ticket.start;
    let label = app.label();
    let hangup = HangUp::default();
    let waiting = hangup.waiting();
    let guest_hangup = hangup.clone();
    // A task of its own: the guest may go on writing the body after it has sent the headers.
    let lanes = shared.lanes.clone();
    let guest = async move {
        let mut instantiated = None;
        let outcome: Result<()> = async {
            opened?;
            let proxy = pre.instantiate_async(&mut store).await?;
            instantiated = Some(Instant::now());
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, out)
                .await
        }
        .await;
        let timing = Timing::ended(start, instantiated);
        let outcome = crate::files::checked_at_end(outcome, scratch.as_deref());
        let verdict = classify(
            outcome,
            store.data().limiter.hit,
            None,
            &stdout,
            &limits,
            instantiated.is_some(),
        );
        let result = InvocationResult::ran(verdict, &stdout, &stderr, timing);
        if result.outcome != Outcome::Ok && guest_hangup.happened() {
            eprintln!(
                "INFO shoal_dataplane: app {label}: {}",
                after_hangup(&result)
            );
        } else {
            for line in output_lines(&result).iter().take(20) {
                eprintln!("WARNING shoal_dataplane: app {label}: output: {line}");
            }
        }
        ticket.finish(Some(AnyStore::Component(store)), &result);
        result
    };
    let task = tokio::spawn(async move { crate::lane::run(&lanes, guest).await });
    let answer = rx.await;
    waiting.answered();
    match answer {
        Ok(Ok(response)) => Served::Response(response.map(|b| hangup.watch(b).boxed_unsync())),
        Ok(Err(code)) => Served::Failed(InvocationResult::refused(
            Outcome::Error,
            format!("the component answered with an error: {code:?}"),
            None,
        )),
        Err(_) => match task.await {
            Ok(Ok(r)) if r.outcome == Outcome::Ok => Served::Failed(InvocationResult::refused(
                Outcome::Error,
                "the component returned without setting a response".into(),
                None,
            )),
            Ok(Ok(r)) => Served::Failed(r),
            Ok(Err(crate::lane::Cancelled)) => Served::Failed(InvocationResult::shut_down()),
            Err(e) => Served::Failed(InvocationResult::refused(
                Outcome::Error,
                format!("the invocation failed in the host: {e}"),
                None,
            )),
        },
    }
}

/// The guest's stdout and stderr lines that say something.
fn output_lines(result: &InvocationResult) -> Vec<String> {
    String::from_utf8_lossy(&result.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&result.stderr).lines())
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// One line for a guest that failed after its client hung up: how it ended and its last word.
fn after_hangup(result: &InvocationResult) -> String {
    let how = result.message.lines().next().unwrap_or("");
    let last = last_word(&output_lines(result))
        .map(|l| format!("; its last word: {}", l.trim()))
        .unwrap_or_default();
    format!(
        "the client hung up before the response was written; the guest then ended with {}: {how}{last}",
        result.outcome.as_str()
    )
}

/// The line of a guest's output that says why it failed: a Python traceback's exception (the first
/// unindented line after it; componentize-py's own panic follows it), else the last line but
/// Rust's hint about RUST_BACKTRACE.
fn last_word(lines: &[String]) -> Option<&str> {
    if let Some(start) = lines
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last):"))
        && let Some(exception) = lines[start + 1..].iter().find(|l| !l.starts_with(' '))
    {
        return Some(exception);
    }
    lines
        .iter()
        .rev()
        .find(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .map(String::as_str)
}

/// A body of bytes as the components' response body type.
pub fn full(bytes: Bytes) -> HyperOutgoingBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{EngineSettings, build_engine};
    use crate::invoke::{AppConfig, AppLimits, invoke};
    use crate::metrics::Registry;
    use crate::reaper::Reaper;
    use crate::sched::{Admission, FairSlots};
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// A `wasi:cli/run` command with no imports: `run` returns ok, or spins forever.
    fn command(body: &str) -> String {
        format!(
            r#"(component
              (core module $m (func (export "run") (result i32) {body}))
              (core instance $i (instantiate $m))
              (func $run (result (result)) (canon lift (core func $i "run")))
              (instance $r (export "run" (func $run)))
              (export "wasi:cli/run@0.2.0" (instance $r)))"#
        )
    }

    fn app(shared: &Shared, wat: &str) -> Arc<AppVersion> {
        let component = Component::new(&shared.engine, wat).unwrap();
        let cfg = AppConfig {
            namespace: "ns".into(),
            name: "cmd".into(),
            args: vec![],
            env: vec![],
            entrypoint: "_start".into(),
            limits: AppLimits {
                memory_bytes: 4 << 20,
                timeout: Duration::from_millis(100),
                max_concurrency: 4,
                max_wait: Duration::from_millis(20),
                stdout_bytes: 1024,
                stderr_bytes: 1024,
            },
            egress: Default::default(),
            spin: Default::default(),
            files: Default::default(),
        };
        let metrics = Registry::new(vec![0.001], vec![65536.0]).app("ns", "cmd");
        Arc::new(AppVersion::new_component(&shared.engine, &component, cfg, metrics).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_component_runs_and_its_deadline_holds() {
        let engine = build_engine(&EngineSettings {
            max_instances: 16,
            ..Default::default()
        })
        .unwrap();
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            admission: Admission::new(1 << 30, 0.5),
            slots: FairSlots::new(2),
            interrupt: AtomicBool::new(false),
            reaper: Reaper::start("test-reaper"),
            lanes: Default::default(),
        });
        let _ticker = crate::engine::EpochTicker::start(engine, Duration::from_millis(1));
        let request = || Request {
            stdin: Bytes::new(),
            env: vec![],
            args: None,
            max_wait: None,
            arrival: Instant::now(),
        };
        let ok = app(&shared, &command("i32.const 0"));
        assert_eq!(ok.kind.as_str(), "command");
        let r = invoke(shared.clone(), ok, request()).await;
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        let spin = app(&shared, &command("(loop $l (br $l)) i32.const 0"));
        let r = invoke(shared.clone(), spin, request()).await;
        assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
        assert_eq!(shared.admission.memory_in_use(), 0);
    }

    #[test]
    fn the_last_word_of_a_failed_guest_is_its_exception() {
        let lines = |text: &str| text.lines().map(str::to_string).collect::<Vec<_>>();
        let python = lines(
            "Traceback (most recent call last):\n  File \"/0/app.py\", line 66, in handle\n    \
             stream.blocking_write_and_flush(text)\ncomponentize_py_types.Err: Err(value=StreamError_Closed())\n\
             thread '<unnamed>' panicked at runtime/src/lib.rs:499:21:\n\
             Python function threw an unexpected exception\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        );
        assert_eq!(
            last_word(&python),
            Some("componentize_py_types.Err: Err(value=StreamError_Closed())")
        );
        let rust = lines(
            "thread 'main' panicked at src/lib.rs:3:5:\nbroken pipe\n\
             note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        );
        assert_eq!(last_word(&rust), Some("broken pipe"));
        assert_eq!(last_word(&[]), None);
    }

    #[test]
    fn a_component_that_exports_neither_world_is_refused_by_name() {
        let engine = build_engine(&EngineSettings {
            max_instances: 4,
            ..Default::default()
        })
        .unwrap();
        let component = Component::new(&engine, "(component)").unwrap();
        let err = prepare(&engine, &component).err().unwrap().to_string();
        assert!(err.contains("neither wasi:http/incoming-handler"), "{err}");
    }
}
