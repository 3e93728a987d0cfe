//! Which app serves a request: the route table the agent's Python `HttpRouter` decides, matched
//! here per request. The table is replaced whole (one pointer swap), so a request sees either the
//! old routes or the new ones, never a mix.

use std::sync::{Arc, RwLock};

/// `/exact`, or `/prefix/...` for a prefix and everything below it; `host` None = any Host.
#[derive(Debug, Clone)]
pub struct Route<T> {
    pub route: String,
    pub host: Option<String>,
    pub target: T,
}

impl<T> Route<T> {
    fn wildcard(&self) -> bool {
        self.route.ends_with("/...")
    }

    pub fn matches_path(&self, path: &str) -> bool {
        if !self.wildcard() {
            return path == self.route;
        }
        let prefix = &self.route[..self.route.len() - 4];
        prefix.is_empty()
            || path == prefix
            || (path.starts_with(prefix) && path[prefix.len()..].starts_with('/'))
    }

    /// Host-bound over any-Host, exact over wildcard, longer route first.
    fn specificity(&self) -> (bool, bool, usize) {
        (self.host.is_some(), !self.wildcard(), self.route.len())
    }
}

/// `host:port` -> `host`, lowercased (an IPv6 literal with several colons is left whole).
pub fn hostname(host: &str) -> String {
    let name = if host.matches(':').count() == 1 {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    } else {
        host
    };
    name.to_ascii_lowercase()
}

pub struct RouteTable<T> {
    routes: RwLock<Arc<Vec<Route<T>>>>,
}

impl<T> Default for RouteTable<T> {
    fn default() -> Self {
        Self {
            routes: RwLock::new(Arc::new(Vec::new())),
        }
    }
}

impl<T: Clone> RouteTable<T> {
    /// Replace every route at once; sorted by specificity here (stable, so ties keep their order).
    pub fn replace(&self, mut routes: Vec<Route<T>>) {
        for r in routes.iter_mut() {
            r.host = r.host.as_ref().map(|h| h.to_ascii_lowercase());
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
        *self.routes.write().unwrap() = Arc::new(routes);
    }

    pub fn snapshot(&self) -> Arc<Vec<Route<T>>> {
        self.routes.read().unwrap().clone()
    }

    /// The first route, most specific first, that matches `host` (a Host header) and `path`.
    pub fn lookup(&self, host: &str, path: &str) -> Option<Route<T>> {
        let name = hostname(host);
        let routes = self.snapshot();
        routes
            .iter()
            .find(|r| r.host.as_deref().is_none_or(|h| h == name) && r.matches_path(path))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(r: &str, host: Option<&str>, t: &'static str) -> Route<&'static str> {
        Route {
            route: r.into(),
            host: host.map(String::from),
            target: t,
        }
    }

    #[test]
    fn prefix_routes_match_themselves_and_below_only() {
        let r = route("/hello/...", None, "a");
        assert!(r.matches_path("/hello"));
        assert!(r.matches_path("/hello/x/y"));
        assert!(!r.matches_path("/helloworld"));
        assert!(route("/...", None, "a").matches_path("/anything"));
        assert!(route("/exact", None, "a").matches_path("/exact"));
        assert!(!route("/exact", None, "a").matches_path("/exact/x"));
    }

    #[test]
    fn host_routes_win_then_exact_then_longer_prefix() {
        let t = RouteTable::default();
        t.replace(vec![
            route("/...", None, "catchall"),
            route("/api/...", None, "api"),
            route("/api/v1/...", None, "v1"),
            route("/...", Some("App.NS"), "byhost"),
        ]);
        assert_eq!(t.lookup("other:8081", "/api/x").unwrap().target, "api");
        assert_eq!(t.lookup("other", "/api/v1/x").unwrap().target, "v1");
        assert_eq!(t.lookup("app.ns:8081", "/api/x").unwrap().target, "byhost");
        assert_eq!(t.lookup("APP.NS", "/").unwrap().target, "byhost");
        assert_eq!(t.lookup("x", "/zzz").unwrap().target, "catchall");
    }

    #[test]
    fn a_replaced_table_is_seen_whole() {
        let t = RouteTable::default();
        t.replace(vec![route("/a/...", None, "v1")]);
        let before = t.snapshot();
        t.replace(vec![route("/a/...", None, "v2")]);
        assert_eq!(before[0].target, "v1");
        assert_eq!(t.lookup("h", "/a").unwrap().target, "v2");
        assert!(t.lookup("h", "/b").is_none());
    }

    #[test]
    fn hostname_strips_one_port() {
        assert_eq!(hostname("Hello.Default:8081"), "hello.default");
        assert_eq!(hostname("[::1]:80:x"), "[::1]:80:x");
    }
}
