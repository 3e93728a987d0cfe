//! WAGI (CGI for WebAssembly) as pure functions: the request environment and the response parser.
//!
//! The same rules as `shoal_agent.triggers.wagi` (deislabs/wagi semantics): the request body is
//! stdin, request metadata is CGI environment variables (RFC 3875 plus WAGI's `X_*` extras), and
//! stdout is a CGI response: header lines, a blank line, then the body.

pub const SERVER_SOFTWARE: &str = "shoal-wagi/1";

/// Never handed to guests: credentials and hop-by-hop headers that describe our connection.
const DROPPED_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "connection",
    "keep-alive",
    "upgrade",
];

/// The parts of an HTTP request that WAGI exposes.
#[derive(Debug, Clone)]
pub struct CgiRequest<'a> {
    pub method: &'a str,
    /// Raw (still percent-encoded) path, without the query.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body_length: usize,
    pub host: &'a str,
    pub port: u16,
    pub scheme: &'a str,
    pub remote_addr: String,
    pub protocol: &'a str,
}

/// (SCRIPT_NAME, PATH_INFO) for a prefix route like `/api` or a wildcard `/api/...`.
pub fn split_route<'a>(route: &str, raw_path: &'a str) -> (String, &'a str) {
    let prefix = route.strip_suffix("/...").unwrap_or(route);
    let prefix = prefix.trim_end_matches('/');
    let rest = raw_path.strip_prefix(prefix).unwrap_or(raw_path);
    (prefix.to_string(), rest)
}

/// Percent-decoding as Python's `urllib.parse.unquote` does it (invalid escapes kept as they are,
/// the bytes decoded as UTF-8 with replacement).
pub fn unquote(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// CGI/WAGI environment for `req` matched by `route`; app env first so request data wins.
pub fn build_env(
    req: &CgiRequest<'_>,
    route: &str,
    app_env: &[(String, String)],
) -> Vec<(String, String)> {
    let (script_name, raw_path_info) = split_route(route, req.path);
    let host_port = if req.port == 80 || req.port == 443 {
        req.host.to_string()
    } else {
        format!("{}:{}", req.host, req.port)
    };
    let mut full_url = format!("{}://{}{}", req.scheme, host_port, req.path);
    if !req.query.is_empty() {
        full_url.push('?');
        full_url.push_str(req.query);
    }
    // Insertion-ordered, later keys replace earlier ones in place, as a Python dict does. A linear
    // scan: a few dozen short keys per request, cheaper than hashing each one.
    let mut vars: Vec<(String, String)> =
        Vec::with_capacity(app_env.len() + req.headers.len() + 19);
    let put = |k: String, v: String, vars: &mut Vec<(String, String)>| match vars
        .iter_mut()
        .find(|(key, _)| *key == k)
    {
        Some(slot) => slot.1 = v,
        None => vars.push((k, v)),
    };
    for (k, v) in app_env {
        put(k.clone(), v.clone(), &mut vars);
    }
    let mut content_type = String::new();
    let mut from_request: Vec<String> = Vec::new();
    for (name, value) in &req.headers {
        let lower = name.to_ascii_lowercase();
        if DROPPED_HEADERS.contains(&lower.as_str()) {
            continue;
        }
        if lower == "content-type" {
            content_type = value.to_string();
        }
        let key = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        // A repeated header is joined with ", " as HTTP allows.
        let earlier = if from_request.contains(&key) {
            vars.iter().find(|(k, _)| *k == key)
        } else {
            None
        };
        let joined = match earlier {
            Some((_, earlier)) => format!("{earlier}, {value}"),
            None => value.to_string(),
        };
        put(key.clone(), joined, &mut vars);
        from_request.push(key);
    }
    let path_info = unquote(raw_path_info);
    let fixed: [(&str, String); 19] = [
        ("AUTH_TYPE", String::new()),
        ("CONTENT_LENGTH", req.body_length.to_string()),
        ("CONTENT_TYPE", content_type),
        ("GATEWAY_INTERFACE", "CGI/1.1".into()),
        ("PATH_INFO", path_info.clone()),
        ("PATH_TRANSLATED", path_info),
        ("QUERY_STRING", req.query.into()),
        ("REMOTE_ADDR", req.remote_addr.clone()),
        ("REMOTE_HOST", req.remote_addr.clone()),
        ("REMOTE_USER", String::new()),
        ("REQUEST_METHOD", req.method.to_ascii_uppercase()),
        ("SCRIPT_NAME", script_name),
        ("SERVER_NAME", req.host.into()),
        ("SERVER_PORT", req.port.to_string()),
        ("SERVER_PROTOCOL", req.protocol.into()),
        ("SERVER_SOFTWARE", SERVER_SOFTWARE.into()),
        ("X_MATCHED_ROUTE", route.into()),
        ("X_FULL_URL", full_url),
        ("X_RAW_PATH_INFO", raw_path_info.into()),
    ];
    for (k, v) in fixed {
        put(k.to_string(), v, &mut vars);
    }
    vars
}

/// argv after argv[0]: CGI "ISINDEX" queries (no `=`) become arguments, split on `+`.
pub fn build_args(query: &str) -> Vec<String> {
    if query.is_empty() || query.contains('=') {
        return Vec::new();
    }
    query
        .split('+')
        .filter(|p| !p.is_empty())
        .map(unquote)
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Offset of the body in the guest's stdout.
    pub body_offset: usize,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split_head(stdout: &[u8]) -> Result<(&[u8], usize), String> {
    let crlf = find(stdout, b"\r\n\r\n");
    let lf = find(stdout, b"\n\n");
    // Whichever blank line comes first when both styles appear.
    match (crlf, lf) {
        (Some(c), Some(l)) if l < c => Ok((&stdout[..l], l + 2)),
        (Some(c), _) => Ok((&stdout[..c], c + 4)),
        (None, Some(l)) => Ok((&stdout[..l], l + 2)),
        (None, None) => Err("no blank line after the CGI headers".into()),
    }
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b))
}

/// Parse a CGI response; the error is the message of the 502 the client gets.
pub fn parse_response(stdout: &[u8]) -> Result<CgiResponse, String> {
    if stdout.is_empty() {
        return Err("empty response: the module printed nothing".into());
    }
    let (head, body_offset) = split_head(stdout)?;
    let mut status: Option<u16> = None;
    let mut headers = Vec::new();
    let (mut has_content_type, mut has_location) = (false, false);
    let head = String::from_utf8_lossy(head).replace("\r\n", "\n");
    // latin-1 as in the Python parser: every byte is one char.
    for line in head.split('\n') {
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => ("", ""),
        };
        if !line.contains(':') || !valid_header_name(name) {
            let shown: String = line.chars().take(80).collect();
            return Err(format!("malformed header line {shown:?}"));
        }
        let lower = name.to_ascii_lowercase();
        if lower == "status" {
            let code = value.split(' ').next().unwrap_or("");
            let parsed = code
                .parse::<u16>()
                .ok()
                .filter(|c| code.len() == 3 && (100..=599).contains(c));
            match parsed {
                Some(c) => status = Some(c),
                None => {
                    let shown: String = value.chars().take(40).collect();
                    return Err(format!("bad Status header {shown:?}"));
                }
            }
            continue;
        }
        has_content_type |= lower == "content-type";
        has_location |= lower == "location";
        headers.push((name.to_string(), value.to_string()));
    }
    if !(has_content_type || has_location || status.is_some()) {
        return Err("response has none of Content-Type, Location or Status".into());
    }
    let status = status.unwrap_or(if has_location && !has_content_type {
        302
    } else {
        200
    });
    Ok(CgiResponse {
        status,
        headers,
        body_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(path: &'a str, query: &'a str, headers: Vec<(&'a str, &'a str)>) -> CgiRequest<'a> {
        CgiRequest {
            method: "get",
            path,
            query,
            headers,
            body_length: 3,
            host: "example.test",
            port: 8081,
            scheme: "http",
            remote_addr: "127.0.0.1".into(),
            protocol: "HTTP/1.1",
        }
    }

    fn get<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn env_has_script_name_path_info_and_joined_headers() {
        let r = req(
            "/api/a%20b",
            "x=1",
            vec![("X-Tag", "a"), ("x-tag", "b"), ("Authorization", "secret")],
        );
        let env = build_env(&r, "/api/...", &[("HTTP_X_TAG".into(), "app".into())]);
        assert_eq!(get(&env, "SCRIPT_NAME"), "/api");
        assert_eq!(get(&env, "PATH_INFO"), "/a b");
        assert_eq!(get(&env, "X_RAW_PATH_INFO"), "/a%20b");
        assert_eq!(get(&env, "HTTP_X_TAG"), "a, b");
        assert_eq!(get(&env, "REQUEST_METHOD"), "GET");
        assert_eq!(
            get(&env, "X_FULL_URL"),
            "http://example.test:8081/api/a%20b?x=1"
        );
        assert_eq!(get(&env, "CONTENT_LENGTH"), "3");
        assert!(env.iter().all(|(k, _)| k != "HTTP_AUTHORIZATION"));
    }

    #[test]
    fn isindex_queries_become_args() {
        assert_eq!(build_args("a+b%21"), vec!["a", "b!"]);
        assert!(build_args("a=b").is_empty());
        assert!(build_args("").is_empty());
    }

    #[test]
    fn parses_status_location_and_both_line_endings() {
        let r = parse_response(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope")
            .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(
            r.headers,
            vec![("Content-Type".to_string(), "text/plain".to_string())]
        );
        let r = parse_response(b"Location: /elsewhere\n\n").unwrap();
        assert_eq!(r.status, 302);
        let r = parse_response(b"status: 201\n\nmade").unwrap();
        assert_eq!(r.status, 201);
        let out = b"Content-Type: text/plain\n\nhello\r\n\r\n";
        let r = parse_response(out).unwrap();
        assert_eq!(&out[r.body_offset..], b"hello\r\n\r\n");
    }

    #[test]
    fn malformed_responses_say_why() {
        assert_eq!(
            parse_response(b"").unwrap_err(),
            "empty response: the module printed nothing"
        );
        assert!(
            parse_response(b"Content-Type: text/plain\nhello")
                .unwrap_err()
                .contains("no blank line")
        );
        assert!(
            parse_response(b"X-Only: 1\n\n")
                .unwrap_err()
                .contains("none of Content-Type")
        );
        assert!(
            parse_response(b"Status: 99x\n\n")
                .unwrap_err()
                .contains("bad Status")
        );
        assert!(
            parse_response(b"not a header\n\n")
                .unwrap_err()
                .contains("malformed header line")
        );
    }
}
