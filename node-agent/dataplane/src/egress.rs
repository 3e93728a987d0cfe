//! Outbound HTTP from components, denied by default: a request leaves only when its scheme, host
//! and port match one of the app's `allowedOutboundHosts` rules (parsed and validated in Python,
//! `shoal_api.egress`), and only to an address the host resolved itself and checked. The Host
//! header plays no part (wasi:http forbids guests to set it; it is derived from the authority).
//! Loopback, link-local (the cloud metadata address among them), unspecified, multicast and
//! broadcast addresses are refused unless a rule names that very address as an IP literal: a
//! name that merely resolves to one (a rebinding DNS answer, `localhost`) is refused.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::uri::Scheme;
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::metrics::AppMetrics;

/// One rule: `scheme://host:port` where each part may be a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `http`, `https`, or None for any.
    pub scheme: Option<String>,
    pub host: HostPattern,
    pub port: PortPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Any,
    /// `*.example.com`: any name under the suffix (stored without `*.`), not the suffix itself.
    Subdomain(String),
    Name(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPattern {
    Any,
    /// Port omitted in the rule: the request scheme's default (80, 443).
    Default,
    Exact(u16),
}

impl Rule {
    /// From the agent's normalized triple (scheme or `*`, host pattern, `*`/`default`/digits).
    pub fn from_parts(scheme: &str, host: &str, port: &str) -> Result<Self, String> {
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_string()),
            other => return Err(format!("unsupported scheme {other:?}")),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostPattern::Subdomain(suffix.to_string())
        } else if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            HostPattern::Ip(ip.to_canonical())
        } else {
            HostPattern::Name(host)
        };
        let port = match port {
            "*" => PortPattern::Any,
            "default" => PortPattern::Default,
            digits => {
                PortPattern::Exact(digits.parse().map_err(|_| format!("bad port {digits:?}"))?)
            }
        };
        Ok(Self { scheme, host, port })
    }

    fn matches(&self, dest: &Destination) -> bool {
        let scheme = self.scheme.as_deref().is_none_or(|s| s == dest.scheme);
        let port = match self.port {
            PortPattern::Any => true,
            PortPattern::Default => dest.port == default_port(dest.scheme),
            PortPattern::Exact(p) => dest.port == p,
        };
        let host = match (&self.host, &dest.host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Ip(ip), Host::Ip(d)) => ip == d,
            (HostPattern::Name(n), Host::Name(d)) => n == d,
            (HostPattern::Subdomain(s), Host::Name(d)) => d
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            _ => false,
        };
        scheme && port && host
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

/// Where a request asks to go, from its URI alone.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Destination {
    scheme: &'static str,
    host: Host,
    port: u16,
}

impl Destination {
    fn of(uri: &http::Uri) -> Result<Self, Error> {
        let scheme = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => "https",
            Some(s) if *s == Scheme::HTTP => "http",
            _ => return Err(Error::HttpProtocolError),
        };
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let name = authority.host().to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        if name.is_empty() {
            return Err(Error::HttpRequestUriInvalid);
        }
        let host = match name.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip.to_canonical()),
            Err(_) => Host::Name(name.to_string()),
        };
        Ok(Self {
            scheme,
            host,
            port: authority.port_u16().unwrap_or(default_port(scheme)),
        })
    }
}

/// Addresses no app reaches unless a rule names them literally: the node itself, link-local
/// (169.254.169.254, the cloud metadata service, and fd00:ec2::254, its IPv6 twin), unspecified,
/// multicast and broadcast.
pub fn is_special(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unicast_link_local()
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// Why a request was refused, or the addresses it may connect to.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No rule matches the URI's scheme, host and port.
    NotListed,
    /// Rules match, but every resolved address is special and none is listed literally.
    Prohibited,
    Connect(Vec<SocketAddr>),
}

/// The app's rules; empty denies everything.
#[derive(Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

impl Policy {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }

    fn matching<'a>(&'a self, dest: &'a Destination) -> impl Iterator<Item = &'a Rule> {
        self.rules.iter().filter(move |r| r.matches(dest))
    }

    /// Which of the addresses `dest` resolved to may be connected to (pure: the caller resolves).
    fn judge(&self, dest: &Destination, resolved: &[IpAddr]) -> Verdict {
        let rules: Vec<&Rule> = self.matching(dest).collect();
        if rules.is_empty() {
            return Verdict::NotListed;
        }
        let listed = |ip: &IpAddr| {
            rules
                .iter()
                .any(|r| matches!(r.host, HostPattern::Ip(l) if l == *ip))
        };
        let ok: Vec<SocketAddr> = resolved
            .iter()
            .map(|ip| ip.to_canonical())
            .filter(|ip| !is_special(*ip) || listed(ip))
            .map(|ip| SocketAddr::new(ip, dest.port))
            .collect();
        if ok.is_empty() {
            Verdict::Prohibited
        } else {
            Verdict::Connect(ok)
        }
    }
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

/// The wasi:http hooks of one component invocation: its app's policy and where refusals count.
pub struct Egress {
    pub policy: Arc<Policy>,
    pub metrics: Arc<AppMetrics>,
    pub label: Arc<str>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

impl wasmtime_wasi_http::WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let policy = self.policy.clone();
        let metrics = self.metrics.clone();
        let label = self.label.clone();
        Box::new(async move {
            let refuse = |e: Error, why: String| {
                metrics.egress_denied();
                eprintln!("WARNING shoal_dataplane: app {label}: outbound request refused: {why}");
                Err(e)
            };
            let dest = Destination::of(request.uri())?;
            let resolved = if policy.matching(&dest).next().is_none() {
                vec![]
            } else {
                resolve(&dest).await?
            };
            let addrs = match policy.judge(&dest, &resolved) {
                Verdict::NotListed => {
                    return refuse(
                        Error::HttpRequestDenied,
                        format!("{} is not in allowedOutboundHosts", request.uri()),
                    );
                }
                Verdict::Prohibited => {
                    return refuse(
                        Error::DestinationIpProhibited,
                        format!(
                            "{} resolves only to loopback/link-local/metadata addresses {resolved:?} \
                             that no rule lists as an IP literal",
                            request.uri()
                        ),
                    );
                }
                Verdict::Connect(addrs) => addrs,
            };
            send(request, &dest, &addrs, options).await
        })
    }
}

async fn resolve(dest: &Destination) -> Result<Vec<IpAddr>, Error> {
    match &dest.host {
        Host::Ip(ip) => Ok(vec![*ip]),
        Host::Name(name) => {
            let found = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio::net::lookup_host((name.as_str(), dest.port)),
            )
            .await
            .map_err(|_| Error::DnsTimeout)?
            .map_err(|e| Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?;
            Ok(found.map(|a| a.ip()).collect())
        }
    }
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default TLS versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth(),
            )
        })
        .clone()
}

/// Connect to the first address that answers (only the checked ones), then send over HTTP/1.1.
async fn send(
    mut request: http::Request<WasiBody>,
    dest: &Destination,
    addrs: &[SocketAddr],
    options: Option<RequestOptions>,
) -> SendResult {
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(CONNECT_TIMEOUT);
    let first_byte_timeout = options
        .and_then(|o| o.first_byte_timeout)
        .unwrap_or(FIRST_BYTE_TIMEOUT);
    let mut last = Error::ConnectionRefused;
    let mut tcp = None;
    for addr in addrs {
        match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) => last = Error::Connect(e),
            Err(_) => last = Error::ConnectionTimeout,
        }
    }
    let tcp = tcp.ok_or(last)?;
    let stream: Box<dyn Stream> = if dest.scheme == "https" {
        let name = match &dest.host {
            Host::Ip(ip) => rustls::pki_types::ServerName::IpAddress((*ip).into()),
            Host::Name(n) => rustls::pki_types::ServerName::try_from(n.clone())
                .map_err(|_| Error::HttpRequestUriInvalid)?,
        };
        let tls = tokio_rustls::TlsConnector::from(tls_config())
            .connect(name, tcp)
            .await
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // The request line carries only the path; the authority went into the Host header already.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *request.uri_mut() = http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;
    // The connection is driven by its own task while the guest reads the response.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = done_tx.send(conn.await);
    });
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)??;
    let io = async move {
        match done_rx.await {
            Ok(r) => r.map_err(Error::from),
            Err(_) => Ok(()),
        }
    };
    Ok((
        response.map(|b| b.map_err(Error::from).boxed_unsync()),
        Box::new(io),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn policy(rules: &[(&str, &str, &str)]) -> Policy {
        Policy::new(
            rules
                .iter()
                .map(|(s, h, p)| Rule::from_parts(s, h, p).unwrap())
                .collect(),
        )
    }

    fn dest(uri: &str) -> Destination {
        Destination::of(&uri.parse().unwrap()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const PUBLIC: &str = "93.184.215.14";

    #[test]
    fn nothing_is_allowed_without_rules() {
        let p = policy(&[]);
        assert_eq!(
            p.judge(&dest("https://api.example.com/x"), &[ip(PUBLIC)]),
            Verdict::NotListed
        );
    }

    #[test]
    fn exact_hosts_match_scheme_and_default_port() {
        let p = policy(&[("https", "api.example.com", "default")]);
        let ok = Verdict::Connect(vec![SocketAddr::new(ip(PUBLIC), 443)]);
        assert_eq!(
            p.judge(&dest("https://api.example.com/x"), &[ip(PUBLIC)]),
            ok
        );
        assert_eq!(
            p.judge(&dest("https://API.example.com./"), &[ip(PUBLIC)]),
            ok
        );
        for denied in [
            "http://api.example.com/",
            "https://api.example.com:8443/",
            "https://example.com/",
            "https://xapi.example.com/",
            "https://api.example.com.evil.net/",
        ] {
            assert_eq!(
                p.judge(&dest(denied), &[ip(PUBLIC)]),
                Verdict::NotListed,
                "{denied}"
            );
        }
    }

    #[test]
    fn wildcard_subdomains_and_ports() {
        let p = policy(&[("http", "*.svc.cluster.local", "8080"), ("*", "*", "9000")]);
        let cluster = [ip("10.96.0.5")];
        assert!(matches!(
            p.judge(&dest("http://redis.ns.svc.cluster.local:8080/"), &cluster),
            Verdict::Connect(_)
        ));
        assert_eq!(
            p.judge(&dest("http://svc.cluster.local:8080/"), &cluster),
            Verdict::NotListed
        );
        assert_eq!(
            p.judge(&dest("http://a.svc.cluster.local:8081/"), &cluster),
            Verdict::NotListed
        );
        assert!(matches!(
            p.judge(&dest("https://anything.example:9000/"), &[ip(PUBLIC)]),
            Verdict::Connect(_)
        ));
    }

    #[test]
    fn special_addresses_need_a_literal_rule() {
        // A listed name that resolves to loopback or the metadata address is refused.
        let p = policy(&[
            ("http", "localhost", "8080"),
            ("http", "*.example.com", "*"),
        ]);
        assert_eq!(
            p.judge(
                &dest("http://localhost:8080/"),
                &[ip("127.0.0.1"), ip("::1")]
            ),
            Verdict::Prohibited
        );
        assert_eq!(
            p.judge(
                &dest("http://rebind.example.com/"),
                &[ip("169.254.169.254")]
            ),
            Verdict::Prohibited
        );
        // Only the public address of a mixed answer is kept.
        assert_eq!(
            p.judge(
                &dest("http://mixed.example.com/"),
                &[ip("127.0.0.1"), ip(PUBLIC)]
            ),
            Verdict::Connect(vec![SocketAddr::new(ip(PUBLIC), 80)])
        );
        // Listed literally, loopback is reachable, IPv4-mapped IPv6 included.
        let p = policy(&[("http", "127.0.0.1", "8080"), ("http", "[::1]", "8080")]);
        assert!(matches!(
            p.judge(&dest("http://127.0.0.1:8080/"), &[ip("127.0.0.1")]),
            Verdict::Connect(_)
        ));
        assert!(matches!(
            p.judge(&dest("http://[::ffff:127.0.0.1]:8080/"), &[ip("127.0.0.1")]),
            Verdict::Connect(_)
        ));
        assert!(matches!(
            p.judge(&dest("http://[::1]:8080/"), &[ip("::1")]),
            Verdict::Connect(_)
        ));
        assert_eq!(
            p.judge(&dest("http://127.0.0.2:8080/"), &[ip("127.0.0.2")]),
            Verdict::NotListed
        );
        // A wildcard host never unlocks special addresses.
        let p = policy(&[("*", "*", "*")]);
        for special in [
            "169.254.169.254",
            "127.0.0.1",
            "0.0.0.0",
            "fe80::1",
            "fd00:ec2::254",
        ] {
            let d = Destination {
                scheme: "http",
                host: Host::Ip(ip(special)),
                port: 80,
            };
            assert_eq!(
                p.judge(&d, &[ip(special)]),
                Verdict::Prohibited,
                "{special}"
            );
        }
        assert!(!is_special(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    }

    #[test]
    fn bad_rules_and_uris_are_errors() {
        assert!(Rule::from_parts("ftp", "a", "default").is_err());
        assert!(Rule::from_parts("http", "a", "99999").is_err());
        assert!(Destination::of(&"/relative".parse().unwrap()).is_err());
    }
}
