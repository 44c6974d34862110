//! UDP services through the proxy inside `hangar serve`, end to end: a real
//! server with its own bridge, real machines running `testapp serve-udp`
//! (which answers `<machine id>: <datagram>`), real UDP clients on loopback
//! (needs root).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{ProxyEnv, free_port, pushed_image};
use hangar_test_support::Registry;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

const TESTAPP: &str = "/usr/local/bin/testapp";

/// The proxy test environment, with helpers for UDP machines.
struct UdpEnv(ProxyEnv);

impl std::ops::Deref for UdpEnv {
    type Target = ProxyEnv;

    fn deref(&self) -> &ProxyEnv {
        &self.0
    }
}

impl UdpEnv {
    async fn start(extra: &[&str]) -> UdpEnv {
        UdpEnv(ProxyEnv::start(extra).await)
    }

    /// Creates a machine of `app` running `testapp serve-udp INTERNAL` with
    /// a UDP service on public `port`, and waits until it has started.
    async fn udp_machine(&self, app: &str, image: &str, internal: u16, port: u16) -> String {
        let services = json!([{"protocol": "udp", "internal_port": internal,
            "autostop": "off", "ports": [{"port": port}]}]);
        self.machine(
            app,
            image,
            &[TESTAPP, "serve-udp", &internal.to_string()],
            services,
        )
        .await
    }

    /// Creates a machine of `app` running `cmd` behind `services`, and
    /// waits until it has started.
    async fn machine(&self, app: &str, image: &str, cmd: &[&str], services: Value) -> String {
        let m = self
            .server
            .create_machine(
                app,
                json!({"config": {"image": image, "init": {"cmd": cmd}, "services": services}}),
            )
            .await;
        let id = m["id"].as_str().expect("machine id").to_owned();
        self.server.wait_ok(app, &id, "started", 30).await;
        id
    }

    async fn stop(&self, app: &str, id: &str) {
        let (s, b) = self
            .server
            .post(&format!("/apps/{app}/machines/{id}/stop"), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "stop {id}: {b}");
        self.server.wait_ok(app, id, "stopped", 30).await;
    }
}

/// The value of the first metric line starting with `prefix` (a name, or
/// a name and the start of its labels).
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A port free for both TCP and UDP on loopback.
fn free_tcp_and_udp_port() -> u16 {
    for _ in 0..100 {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

/// A client socket on loopback.
async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Sends `payload` to 127.0.0.1:`port` until an answer arrives (UDP may
/// drop; the proxy learns of new machines within its refresh), at most
/// `secs` seconds; returns the answer. The answer must come from the port
/// the datagram was sent to.
async fn ask(sock: &UdpSocket, port: u16, payload: &str, secs: u64) -> String {
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < deadline {
        sock.send_to(payload.as_bytes(), target).await.unwrap();
        if let Ok(r) =
            tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
        {
            let (n, from) = r.unwrap();
            assert_eq!(from, target, "the answer comes from the public port");
            let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
            if answer.ends_with(&format!(": {payload}")) {
                return answer;
            }
            // An answer to an earlier retry of this socket: read on.
        }
    }
    panic!("no answer to {payload:?} on UDP port {port} within {secs} s");
}

/// The machine id in an answer `<id>: <payload>`.
fn answered_by(answer: &str) -> &str {
    answer.split_once(": ").expect("an answer `id: payload`").0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_udp_service_answers_on_its_public_port_and_an_idle_flow_ends() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-udp:1").await;
    let env = UdpEnv::start(&["--proxy-udp-idle-timeout", "1s"]).await;
    let port = free_tcp_and_udp_port();
    env.server.create_app("udp-echo").await;
    let id = env.udp_machine("udp-echo", &image, 5353, port).await;

    let sock = client().await;
    let answer = ask(&sock, port, "ping-1", 15).await;
    assert_eq!(answer, format!("{id}: ping-1"));
    // The same flow: the same machine, and a binary payload comes back whole.
    let answer = ask(&sock, port, "ping-2\u{0}\u{7f}", 5).await;
    assert_eq!(answer, format!("{id}: ping-2\u{0}\u{7f}"));

    let load = format!("hangar_proxy_machine_load{{app=\"udp-echo\",machine=\"{id}\"");
    // The proxy counts an answer just after sending it: give it a moment.
    let counted = |m: &str| {
        metric(m, &load) == Some(1.0)
            && metric(m, "hangar_proxy_udp_flows_total").unwrap_or(0.0) >= 1.0
            && metric(m, "hangar_proxy_udp_datagrams_in_total").unwrap_or(0.0) >= 2.0
            && metric(m, "hangar_proxy_udp_datagrams_out_total").unwrap_or(0.0) >= 2.0
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut m = env.metrics().await;
    while !counted(&m) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = env.metrics().await;
    }
    assert!(
        counted(&m),
        "the flow is the machine's load (1); at least 1 flow, 2 datagrams in and out\n{m}"
    );

    // After a second without datagrams the flow ends: the load goes back to 0.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = env.metrics().await;
        if metric(&m, &load) == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the idle flow never ended\n{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The client's next datagram opens a new flow.
    let flows_before = metric(&env.metrics().await, "hangar_proxy_udp_flows_total").unwrap();
    let answer = ask(&sock, port, "ping-3", 5).await;
    assert_eq!(answer, format!("{id}: ping-3"));
    let flows_after = metric(&env.metrics().await, "hangar_proxy_udp_flows_total").unwrap();
    assert!(
        flows_after > flows_before,
        "{flows_before} -> {flows_after}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_datagrams_start_a_stopped_machine_and_are_all_answered() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-udp-cold:1").await;
    let env = UdpEnv::start(&[]).await;
    let port = free_tcp_and_udp_port();
    env.server.create_app("udp-cold").await;
    // The app binds its port a moment after the machine has started: the
    // first datagrams are refused (ICMP port unreachable) and the proxy
    // sends them again.
    let services = json!([{"protocol": "udp", "internal_port": 5353,
        "autostop": "off", "ports": [{"port": port}]}]);
    let late = format!("sleep 0.3; exec {TESTAPP} serve-udp 5353");
    let id = env
        .machine("udp-cold", &image, &["/bin/sh", "-c", &late], services)
        .await;
    // Warm once, so the proxy is known to route the port.
    let warm = client().await;
    assert_eq!(ask(&warm, port, "warm", 15).await, format!("{id}: warm"));
    drop(warm);
    env.stop("udp-cold", &id).await;
    // Let the proxy see it stopped (it re-reads the list on every change).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A burst while the machine is stopped: held while it starts, then
    // every datagram is delivered without the client resending, once.
    let sock = client().await;
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let burst: Vec<String> = (0..10).map(|i| format!("cold-{i}")).collect();
    for p in &burst {
        sock.send_to(p.as_bytes(), target).await.unwrap();
    }
    let mut answers = HashSet::new();
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0u8; 65_535];
    while answers.len() < burst.len() && Instant::now() < deadline {
        if let Ok(r) =
            tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
        {
            let (n, from) = r.unwrap();
            assert_eq!(from, target, "the answer comes from the public port");
            answers.insert(String::from_utf8_lossy(&buf[..n]).into_owned());
            count += 1;
        }
    }
    let want: HashSet<String> = burst.iter().map(|p| format!("{id}: {p}")).collect();
    assert_eq!(
        answers,
        want,
        "every datagram of the burst is answered\nlog:\n{}",
        env.server.log()
    );
    // Nothing more arrives (no datagram was delivered twice).
    if let Ok(r) = tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
    {
        count += usize::from(r.is_ok());
    }
    assert_eq!(count, burst.len(), "answers: {answers:?}");
    assert_eq!(env.server.state("udp-cold", &id).await, "started");
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "hangar_proxy_autostarts_total"),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flows_spread_over_two_machines_and_each_client_stays_on_one() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-udp-lb:1").await;
    let env = UdpEnv::start(&[]).await;
    let port = free_tcp_and_udp_port();
    env.server.create_app("udp-lb").await;
    let a = env.udp_machine("udp-lb", &image, 5353, port).await;
    let b = env.udp_machine("udp-lb", &image, 5353, port).await;
    // Let the proxy learn of both before the first flow.
    tokio::time::sleep(Duration::from_millis(600)).await;

    let mut clients = Vec::new();
    let mut per_machine: HashMap<String, usize> = HashMap::new();
    for i in 0..8 {
        let sock = client().await;
        let answer = ask(&sock, port, &format!("hello-{i}"), 15).await;
        let by = answered_by(&answer).to_owned();
        assert!(by == a || by == b, "{answer}");
        *per_machine.entry(by.clone()).or_default() += 1;
        clients.push((sock, by));
    }
    assert_eq!(
        per_machine.len(),
        2,
        "both machines take flows: {per_machine:?}"
    );
    assert!(
        per_machine.values().all(|n| *n >= 2),
        "flows go to the machine with the fewest: {per_machine:?}"
    );
    // Each client stays pinned to its machine.
    for round in 0..3 {
        for (i, (sock, by)) in clients.iter().enumerate() {
            let answer = ask(sock, port, &format!("again-{i}-{round}"), 5).await;
            assert_eq!(answered_by(&answer), by, "client {i} moved");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_port_number_serves_tcp_and_udp_for_two_different_apps() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-udp-tcp:1").await;
    let env = UdpEnv::start(&[]).await;
    let port = free_tcp_and_udp_port();
    env.server.create_app("same-tcp").await;
    env.server.create_app("same-udp").await;
    let tcp_services = json!([{"protocol": "tcp", "internal_port": 9000,
        "autostop": "off", "ports": [{"port": port}]}]);
    env.machine(
        "same-tcp",
        &image,
        &[TESTAPP, "serve-tcp", "9000"],
        tcp_services,
    )
    .await;
    let udp_id = env.udp_machine("same-udp", &image, 9000, port).await;

    let sock = client().await;
    assert_eq!(
        ask(&sock, port, "over-udp", 15).await,
        format!("{udp_id}: over-udp")
    );
    // The TCP port of the same number echoes (the TCP app's server).
    let deadline = Instant::now() + Duration::from_secs(15);
    let echoed = loop {
        let attempt = async {
            let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            c.write_all(b"over-tcp").await?;
            let mut buf = [0u8; 8];
            c.read_exact(&mut buf).await?;
            std::io::Result::Ok(buf)
        };
        match tokio::time::timeout(Duration::from_secs(3), attempt).await {
            Ok(Ok(buf)) => break buf,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!(
                "TCP port {port} never echoed: {other:?}\nlog:\n{}",
                env.server.log()
            ),
        }
    };
    assert_eq!(&echoed, b"over-tcp");
    // And UDP still goes to the UDP app.
    assert_eq!(
        ask(&sock, port, "udp-again", 5).await,
        format!("{udp_id}: udp-again")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn autostop_leaves_a_machine_with_a_live_flow_and_stops_it_after() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-udp-stop:1").await;
    let env = UdpEnv::start(&["--autostop-period", "1s", "--proxy-udp-idle-timeout", "1s"]).await;
    let port = free_tcp_and_udp_port();
    env.server.create_app("udp-stop").await;
    let services = json!([{"protocol": "udp", "internal_port": 5353,
        "autostop": "stop", "ports": [{"port": port}]}]);
    let id = env
        .machine(
            "udp-stop",
            &image,
            &[TESTAPP, "serve-udp", "5353"],
            services,
        )
        .await;
    // A client that keeps talking for 4 s (four autostop periods): the
    // machine keeps running.
    let sock = client().await;
    let talking_until = Instant::now() + Duration::from_secs(4);
    let mut i = 0;
    while Instant::now() < talking_until {
        let answer = ask(&sock, port, &format!("busy-{i}"), 10).await;
        assert_eq!(answered_by(&answer), id);
        i += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(env.server.state("udp-stop", &id).await, "started");
    // Once the client is quiet, the flow ends and autostop stops the machine.
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.server.state("udp-stop", &id).await != "stopped" {
        assert!(
            Instant::now() < deadline,
            "the idle machine was never stopped\nlog:\n{}",
            env.server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let m = env.metrics().await;
    assert_eq!(metric(&m, "hangar_proxy_autostops_total"), Some(1.0), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_udp_port_two_apps_declare_goes_to_the_lowest_machine_id_with_one_warning() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-udp-clash:1").await;
    let env = UdpEnv::start(&[]).await;
    let port = free_tcp_and_udp_port();
    env.server.create_app("clash-one").await;
    env.server.create_app("clash-two").await;
    let one = env.udp_machine("clash-one", &image, 5353, port).await;
    let two = env.udp_machine("clash-two", &image, 5353, port).await;
    let winner = one.clone().min(two.clone());
    // Several refreshes later, every client still reaches the winner.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 0..4 {
        let sock = client().await;
        let answer = ask(&sock, port, &format!("who-{i}"), 15).await;
        assert_eq!(answered_by(&answer), winner, "{answer}");
    }
    let log = env.server.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("several apps declare this UDP port"))
        .collect::<Vec<_>>();
    assert_eq!(warnings.len(), 1, "one warning:\n{log}");
    let loser = if winner == one {
        "clash-two"
    } else {
        "clash-one"
    };
    assert!(warnings[0].contains(loser), "{}", warnings[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_whose_machine_was_stopped_starts_it_again_with_its_next_datagram() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/proxy-udp-again:1").await;
    let env = UdpEnv::start(&[]).await;
    let port = free_tcp_and_udp_port();
    env.server.create_app("udp-again").await;
    let id = env.udp_machine("udp-again", &image, 5353, port).await;
    let sock = client().await;
    assert_eq!(
        ask(&sock, port, "before", 15).await,
        format!("{id}: before")
    );
    // The flow outlives its machine's run (idle timeout 30 s)...
    env.stop("udp-again", &id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...and its next datagram starts the machine again instead of going
    // to a port nothing serves.
    assert_eq!(ask(&sock, port, "after", 15).await, format!("{id}: after"));
    assert_eq!(env.server.state("udp-again", &id).await, "started");
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, "hangar_proxy_autostarts_total"),
        Some(1.0),
        "{m}"
    );
}
