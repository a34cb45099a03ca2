//! Prometheus metrics. Handles are resolved once per route and backend when the route
//! index is built, so the hot path only bumps atomics (no label hashing per request).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = [(&'static str, String); 1];
type ClassLabels = [(&'static str, String); 2];
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Status classes, indexed by `status / 100 - 1`; index 5 is "error" (no response).
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~8 s: loopback proxying is sub-millisecond, cross-region is 100s of ms.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

#[derive(Clone)]
pub(crate) struct Metrics {
    route_requests: Family<ClassLabels, Counter>,
    route_latency: Histograms,
    retries: Family<Labels, Counter>,
    backend_requests: Family<ClassLabels, Counter>,
    backend_latency: Histograms,
    ejections: Family<Labels, Counter>,
    pub(crate) connections: Gauge,
    pub(crate) rejected_connections: Counter,
}

impl Metrics {
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let m = Self {
            route_requests: Family::default(),
            route_latency: Family::new_with_constructor(latency_histogram),
            retries: Family::default(),
            backend_requests: Family::default(),
            backend_latency: Family::new_with_constructor(latency_histogram),
            ejections: Family::default(),
            connections: Gauge::default(),
            rejected_connections: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("lb");
        r.register("requests", "Proxied requests by route and status class", m.route_requests.clone());
        r.register(
            "request_duration_seconds",
            "Time to response headers by route, retries included",
            m.route_latency.clone(),
        );
        r.register("retries", "Retries by route", m.retries.clone());
        r.register("backend_requests", "Attempts by backend and status class", m.backend_requests.clone());
        r.register("backend_duration_seconds", "Time to response headers by backend", m.backend_latency.clone());
        r.register("ejections", "Outlier ejections by backend", m.ejections.clone());
        r.register("connections", "Client connections open", m.connections.clone());
        r.register(
            "rejected_connections",
            "Client connections closed at the connection limit",
            m.rejected_connections.clone(),
        );
        m
    }

    pub(crate) fn route(&self, route: &str) -> RouteStats {
        let class = |c: &str| {
            self.route_requests.get_or_create(&[("route", route.to_owned()), ("class", c.to_owned())]).clone()
        };
        RouteStats {
            classes: CLASSES.map(class),
            latency: self.route_latency.get_or_create(&[("route", route.to_owned())]).clone(),
            retries: self.retries.get_or_create(&[("route", route.to_owned())]).clone(),
        }
    }

    pub(crate) fn backend(&self, backend: &str) -> BackendStats {
        let class = |c: &str| {
            self.backend_requests.get_or_create(&[("backend", backend.to_owned()), ("class", c.to_owned())]).clone()
        };
        BackendStats {
            classes: CLASSES.map(class),
            latency: self.backend_latency.get_or_create(&[("backend", backend.to_owned())]).clone(),
            ejections: self.ejections.get_or_create(&[("backend", backend.to_owned())]).clone(),
        }
    }
}

fn class_index(status: Option<http::StatusCode>) -> usize {
    status.map_or(5, |s| usize::from(s.as_u16() / 100).clamp(1, 5) - 1)
}

#[derive(Clone)]
pub(crate) struct RouteStats {
    classes: [Counter; 6],
    latency: Histogram,
    pub(crate) retries: Counter,
}

impl RouteStats {
    pub(crate) fn record(&self, status: Option<http::StatusCode>, secs: f64) {
        if let Some(c) = self.classes.get(class_index(status)) {
            c.inc();
        }
        self.latency.observe(secs);
    }
}

#[derive(Clone)]
pub(crate) struct BackendStats {
    classes: [Counter; 6],
    latency: Histogram,
    pub(crate) ejections: Counter,
}

impl BackendStats {
    pub(crate) fn record(&self, status: Option<http::StatusCode>, secs: f64) {
        if let Some(c) = self.classes.get(class_index(status)) {
            c.inc();
        }
        if status.is_some() {
            self.latency.observe(secs);
        }
    }

    /// Stats that count nowhere, for unit tests.
    #[cfg(test)]
    pub(crate) fn detached() -> Self {
        Self { classes: Default::default(), latency: latency_histogram(), ejections: Counter::default() }
    }
}
