//! The proxy's Prometheus metrics: lock-free counters and fixed-bucket
//! histograms, written out in the text exposition format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::catalog::Catalog;

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn write(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every metric of one proxy.
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests_2xx: Counter,
    pub requests_3xx: Counter,
    pub requests_4xx: Counter,
    pub requests_5xx: Counter,
    pub requests_1xx: Counter,
    pub tcp_connections: Counter,
    pub connect_retries: Counter,
    pub queued: Counter,
    pub rejected_capacity: Counter,
    pub autostarts: Counter,
    pub autostops: Counter,
    pub latency: Histogram,
    pub start_ms: Histogram,
    pub udp: UdpMetrics,
}

/// UDP services: datagrams relayed, dropped (by reason) and flows.
#[derive(Debug, Default)]
pub struct UdpMetrics {
    /// Datagrams received from clients on UDP service ports.
    pub datagrams_in: Counter,
    /// Datagrams sent back to clients (the machines' replies).
    pub datagrams_out: Counter,
    /// Client datagrams dropped because the flow's queue was full (its
    /// machine was starting).
    pub dropped_queue_full: Counter,
    /// Client datagrams dropped because no machine could take them.
    pub dropped_no_machine: Counter,
    /// Datagrams (either way) a socket refused to send.
    pub dropped_send_error: Counter,
    /// Client datagrams dropped because the proxy holds as many flows as
    /// it may (half its open-file limit) and this port had none to evict.
    pub dropped_flow_limit: Counter,
    /// Flows opened (a new client address on a UDP service port).
    pub flows: Counter,
    /// Flows ended early to make room (a port's table or the proxy's flow
    /// limit was full).
    pub flows_evicted: Counter,
}

impl UdpMetrics {
    fn render(&self, out: &mut String) {
        for (name, help, c) in [
            (
                "hangar_proxy_udp_datagrams_in_total",
                "UDP datagrams received from clients.",
                &self.datagrams_in,
            ),
            (
                "hangar_proxy_udp_datagrams_out_total",
                "UDP datagrams sent back to clients.",
                &self.datagrams_out,
            ),
            (
                "hangar_proxy_udp_flows_total",
                "UDP flows opened (a new client address on a UDP service port).",
                &self.flows,
            ),
            (
                "hangar_proxy_udp_flows_evicted_total",
                "UDP flows ended early to make room for new ones.",
                &self.flows_evicted,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        out.push_str("# HELP hangar_proxy_udp_dropped_total UDP datagrams dropped, by reason.\n");
        out.push_str("# TYPE hangar_proxy_udp_dropped_total counter\n");
        for (reason, c) in [
            ("queue_full", &self.dropped_queue_full),
            ("no_machine", &self.dropped_no_machine),
            ("send_error", &self.dropped_send_error),
            ("flow_limit", &self.dropped_flow_limit),
        ] {
            let _ = writeln!(
                out,
                "hangar_proxy_udp_dropped_total{{reason=\"{reason}\"}} {}",
                c.get()
            );
        }
    }
}

impl Metrics {
    pub fn response(&self, status: u16, elapsed: Duration) {
        match status {
            200..=299 => self.requests_2xx.inc(),
            300..=399 => self.requests_3xx.inc(),
            400..=499 => self.requests_4xx.inc(),
            500..=599 => self.requests_5xx.inc(),
            _ => self.requests_1xx.inc(),
        }
        self.latency.observe(elapsed);
    }

    /// The exposition text, with per-machine load from `catalog`.
    pub fn render(&self, catalog: &Catalog) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP hangar_proxy_requests_total HTTP responses sent, by status class.\n");
        out.push_str("# TYPE hangar_proxy_requests_total counter\n");
        for (class, c) in [
            ("1xx", &self.requests_1xx),
            ("2xx", &self.requests_2xx),
            ("3xx", &self.requests_3xx),
            ("4xx", &self.requests_4xx),
            ("5xx", &self.requests_5xx),
        ] {
            let _ = writeln!(
                out,
                "hangar_proxy_requests_total{{code=\"{class}\"}} {}",
                c.get()
            );
        }
        for (name, help, c) in [
            (
                "hangar_proxy_tcp_connections_total",
                "Raw TCP connections proxied.",
                &self.tcp_connections,
            ),
            (
                "hangar_proxy_connect_retries_total",
                "Upstream connects that failed and were retried.",
                &self.connect_retries,
            ),
            (
                "hangar_proxy_queued_total",
                "Requests that waited for a machine under its hard limit.",
                &self.queued,
            ),
            (
                "hangar_proxy_rejected_total",
                "Requests answered 503 because every machine was at its hard limit.",
                &self.rejected_capacity,
            ),
            (
                "hangar_proxy_autostarts_total",
                "Machines started for a request.",
                &self.autostarts,
            ),
            (
                "hangar_proxy_autostops_total",
                "Machines stopped or suspended as idle.",
                &self.autostops,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        self.udp.render(&mut out);
        out.push_str("# HELP hangar_proxy_request_duration_seconds Time to the response head.\n");
        out.push_str("# TYPE hangar_proxy_request_duration_seconds histogram\n");
        self.latency
            .write(&mut out, "hangar_proxy_request_duration_seconds");
        out.push_str(
            "# HELP hangar_proxy_autostart_duration_seconds From start to the port accepting.\n",
        );
        out.push_str("# TYPE hangar_proxy_autostart_duration_seconds histogram\n");
        self.start_ms
            .write(&mut out, "hangar_proxy_autostart_duration_seconds");
        out.push_str("# HELP hangar_proxy_machine_load In-flight requests or connections per machine service.\n");
        out.push_str("# TYPE hangar_proxy_machine_load gauge\n");
        for l in &catalog.lives {
            let _ = writeln!(
                out,
                "hangar_proxy_machine_load{{app=\"{}\",machine=\"{}\",port=\"{}\",region=\"{}\"}} {}",
                l.app,
                l.id,
                l.addr.port(),
                l.region,
                l.load()
            );
        }
        out.push_str(
            "# HELP hangar_proxy_machine_healthy Whether the machine's service checks pass.\n",
        );
        out.push_str("# TYPE hangar_proxy_machine_healthy gauge\n");
        for l in &catalog.lives {
            let _ = writeln!(
                out,
                "hangar_proxy_machine_healthy{{app=\"{}\",machine=\"{}\",port=\"{}\"}} {}",
                l.app,
                l.id,
                l.addr.port(),
                u8::from(l.healthy())
            );
        }
        out
    }
}
