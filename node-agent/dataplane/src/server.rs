//! The agent's trigger port: hyper HTTP/1.1 on the I/O runtime, one fresh instance per request on
//! the guest runtime, WAGI (CGI) in and out.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::cgi::{CgiRequest, build_args, build_env, parse_response, unquote};
use crate::component::{Kind, Served, full};
use crate::invoke::{self, AppVersion, InvocationResult, Outcome, Shared};
use crate::router::RouteTable;

/// What a route leads to.
#[derive(Clone)]
pub struct HttpTarget {
    pub app: Arc<AppVersion>,
    pub app_env: Arc<Vec<(String, String)>>,
    pub max_body_bytes: usize,
}

pub struct Server {
    pub shared: Arc<Shared>,
    pub routes: RouteTable<HttpTarget>,
    pub draining: AtomicBool,
}

type Body = wasmtime_wasi_http::p2::body::HyperOutgoingBody;

fn text(status: u16, message: &str) -> Response<Body> {
    let mut r = Response::new(full(Bytes::from(format!("{}\n", message.trim_end()))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn outcome_status(o: Outcome) -> u16 {
    match o {
        Outcome::Busy => 503,
        Outcome::Timeout => 504,
        Outcome::StdoutLimit => 502,
        _ => 500,
    }
}

const STRIPPED: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

/// An invocation as HTTP: the CGI response of a clean run, else an error status that says why.
pub fn to_response(result: InvocationResult) -> Response<Body> {
    if result.outcome != Outcome::Ok {
        let mut r = text(
            outcome_status(result.outcome),
            &format!("{}: {}", result.outcome.as_str(), result.message),
        );
        if result.outcome == Outcome::Busy {
            r.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        return r;
    }
    let cgi = match parse_response(&result.stdout) {
        Ok(c) => c,
        Err(e) => return text(502, &format!("malformed CGI response from module: {e}")),
    };
    let mut r = Response::new(full(result.stdout.slice(cgi.body_offset..)));
    *r.status_mut() = StatusCode::from_u16(cgi.status).unwrap_or(StatusCode::OK);
    let headers = r.headers_mut();
    for (name, value) in cgi.headers {
        if STRIPPED.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(n, v);
        }
    }
    r
}

fn log_stderr(app: &AppVersion, stderr: &[u8]) {
    if stderr.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(stderr);
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(20) {
        eprintln!(
            "WARNING shoal_dataplane: app {}: stderr: {}",
            app.label(),
            line
        );
    }
}

impl Server {
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
        local_port: u16,
    ) -> Response<Body> {
        let arrival = Instant::now();
        if self.draining.load(Ordering::Relaxed) {
            let mut r = text(503, "agent is shutting down");
            r.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
            r.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        let host_header = req
            .headers()
            .get(hyper::header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .unwrap_or_default();
        let raw_path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let path = unquote(&raw_path);
        let Some(route) = self.routes.lookup(&host_header, &path) else {
            return text(404, &format!("no app serves {path}"));
        };
        let target = route.target;
        if let Kind::Proxy(pre) = &target.app.kind {
            let app = target.app.clone();
            let served = crate::component::serve(
                self.shared.clone(),
                app.clone(),
                pre.clone(),
                req,
                arrival,
                target.max_body_bytes,
            )
            .await;
            let response = match served {
                Served::Response(r) => r,
                Served::Failed(result) => to_response(result),
            };
            app.metrics
                .first_byte
                .observe(arrival.elapsed().as_secs_f64());
            return response;
        }
        let max = target.max_body_bytes;
        let too_big = || text(413, &format!("request body exceeds {max} bytes"));
        if req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .is_some_and(|n| n > max)
        {
            return too_big();
        }
        let method = req.method().as_str().to_string();
        let protocol = format!("{:?}", req.version());
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = match Limited::new(req.into_body(), max).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return too_big(),
        };
        let (host, port) = match host_header.matches(':').count() {
            1 => {
                let (h, p) = host_header.rsplit_once(':').unwrap_or((&host_header, ""));
                (h.to_string(), p.parse::<u16>().unwrap_or(local_port))
            }
            _ => (host_header.clone(), local_port),
        };
        let host = if host.is_empty() {
            "localhost".to_string()
        } else {
            host
        };
        let cgi = CgiRequest {
            method: &method,
            path: &raw_path,
            query: &query,
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            body_length: body.len(),
            host: &host,
            port,
            scheme: "http",
            remote_addr: remote.ip().to_string(),
            protocol: &protocol,
        };
        let env = build_env(&cgi, &route.route, &target.app_env);
        // WAGI: the query's args (if any) come after the ones the app declares.
        let args = target.app.args_then(build_args(&query));
        let request = invoke::Request {
            stdin: body,
            env,
            args: Some(args),
            max_wait: None,
            arrival,
        };
        let app = target.app.clone();
        // Inline in the connection's task: no hop through the scheduler (a spawned task woke the
        // other worker thread for every request). If the client goes away, hyper drops this
        // future and the guest with it; its slot and admission are given back by their guards.
        let (result, leftover) =
            invoke::invoke_then_teardown(self.shared.clone(), app.clone(), request).await;
        log_stderr(&app, &result.stderr);
        let response = to_response(result);
        app.metrics
            .first_byte
            .observe(arrival.elapsed().as_secs_f64());
        // The instance's teardown runs after hyper has written this response: a task spawned
        // from here lands in this worker's next-task slot (no other thread is woken for it) and
        // runs once the connection's task yields, after the write.
        if let Some(l) = leftover {
            tokio::spawn(async move { drop(l) });
        }
        response
    }

    /// Accept connections until the task is aborted.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(80);
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("WARNING shoal_dataplane: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let s = server.clone();
                    async move { Ok::<_, Infallible>(s.handle(req, remote, local_port).await) }
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}
