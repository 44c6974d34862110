//! Concurrency `type` under the `http` handler: `connections` (the default)
//! counts a client connection as one unit of load while it is open and sends
//! its requests to the machine it was given; `requests` counts requests and
//! picks a machine for each.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::time::Instant;

fn services(internal: u16, public: u16, concurrency: serde_json::Value) -> serde_json::Value {
    json!([{"internal_port": internal, "concurrency": concurrency,
        "ports": [{"port": public, "handlers": ["http"]}]}])
}

/// One HTTP/1.1 client connection to the proxy, kept open until dropped.
struct OneConnection {
    send: hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OneConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn one_connection(public: u16) -> OneConnection {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", public))
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    OneConnection { send, task }
}

/// The machine id that answered on `c` (`/` answers `ID\n...`).
async fn who(c: &mut OneConnection, host: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    c.send.ready().await.unwrap();
    let req = http::Request::get("/")
        .header("host", host)
        .body(http_body_util::Empty::new())
        .unwrap();
    let r = c.send.send_request(req).await.unwrap();
    let status = r.status().as_u16();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    (status, body.lines().next().unwrap_or_default().to_owned())
}

fn load_of(metrics: &str, id: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("hangar_proxy_machine_load{"))
        .find(|l| l.contains(&format!("machine=\"{id}\"")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no load for {id} in\n{metrics}"))
}

/// Waits (at most 5 s) until the machine's load reads `want`.
async fn wait_load(proxy: &hangar_proxy::Proxy, id: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = metrics(proxy).await;
        if load_of(&m, id) == want {
            return;
        }
        assert!(Instant::now() < deadline, "load of {id} never {want}:\n{m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_is_one_unit_of_load_and_keeps_its_machine() {
    let fleet = TestFleet::new();
    let (public, internal) = (free_port(), free_port());
    // No type given: connections, as on Fly.
    let svc = services(internal, public, json!({"soft_limit": 1, "hard_limit": 5}));
    for id in ["k1", "k2"] {
        fleet.add("conns", id, Kind::Http, svc.clone(), true).await;
    }
    let proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;

    // Every request on one connection goes to the machine it was given.
    let mut a = one_connection(public).await;
    let (s, first) = who(&mut a, "conns.localhost").await;
    assert_eq!(s, 200);
    for _ in 0..5 {
        assert_eq!(who(&mut a, "conns.localhost").await, (200, first.clone()));
    }
    // Idle between requests, the open connection still counts.
    wait_load(&proxy, &first, 1.0).await;

    // A second connection finds that machine at its soft limit and gets the
    // other one, and keeps it too.
    let mut b = one_connection(public).await;
    let (s, second) = who(&mut b, "conns.localhost").await;
    assert_eq!(s, 200);
    assert_ne!(second, first, "the first machine is at its soft limit");
    for _ in 0..3 {
        assert_eq!(who(&mut b, "conns.localhost").await, (200, second.clone()));
    }
    wait_load(&proxy, &second, 1.0).await;
    wait_load(&proxy, &first, 1.0).await;

    // Closing the connections gives the load back.
    drop(a);
    drop(b);
    wait_load(&proxy, &first, 0.0).await;
    wait_load(&proxy, &second, 0.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_moves_when_its_machine_is_cordoned() {
    let fleet = TestFleet::new();
    let (public, internal) = (free_port(), free_port());
    let svc = services(internal, public, json!({"type": "connections"}));
    for id in ["m1", "m2"] {
        fleet.add("move", id, Kind::Http, svc.clone(), true).await;
    }
    let proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;
    let mut a = one_connection(public).await;
    let (_, first) = who(&mut a, "move.localhost").await;
    fleet.with(&first, |m| m.info.cordoned = true);
    proxy.refresh().await;
    let (s, now) = who(&mut a, "move.localhost").await;
    assert_eq!(s, 200);
    assert_ne!(now, first, "a cordoned machine gets nothing new");
    wait_load(&proxy, &first, 0.0).await;
    wait_load(&proxy, &now, 1.0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_hard_limit_a_new_connection_waits_then_gets_503() {
    let fleet = TestFleet::new();
    let (public, internal) = (free_port(), free_port());
    let svc = services(
        internal,
        public,
        json!({"type": "connections", "soft_limit": 1, "hard_limit": 1}),
    );
    fleet.add("full", "h1", Kind::Http, svc, true).await;
    let proxy = start_proxy(&fleet, options()).await; // queue timeout 500 ms
    wait_port(public).await;

    let mut a = one_connection(public).await;
    assert_eq!(who(&mut a, "full.localhost").await.0, 200);
    // `a` holds the only slot while open, even idle.
    let mut b = one_connection(public).await;
    let began = Instant::now();
    assert_eq!(who(&mut b, "full.localhost").await.0, 503);
    assert!(
        began.elapsed() >= Duration::from_millis(400),
        "it waited first"
    );
    // `a` itself is never refused: its requests use its own slot.
    assert_eq!(who(&mut a, "full.localhost").await.0, 200);
    drop(a);
    wait_load(&proxy, "h1", 0.0).await;
    assert_eq!(who(&mut b, "full.localhost").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_type_requests_one_connection_spreads_over_machines() {
    let fleet = TestFleet::new();
    let (public, internal) = (free_port(), free_port());
    let svc = services(
        internal,
        public,
        json!({"type": "requests", "soft_limit": 5}),
    );
    for id in ["r1", "r2"] {
        fleet.add("reqs", id, Kind::Http, svc.clone(), true).await;
    }
    let proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;
    let mut a = one_connection(public).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (s, id) = who(&mut a, "reqs.localhost").await;
        assert_eq!(s, 200);
        seen.insert(id);
    }
    assert_eq!(seen.len(), 2, "ties go round-robin: {seen:?}");
    // Between requests the open connection holds nothing.
    wait_load(&proxy, "r1", 0.0).await;
    wait_load(&proxy, "r2", 0.0).await;
}
