//! The proxy against loopback machines: routing by Host, forwarding headers,
//! autostart, load spreading, limits, checks, preferences and autostop.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hangar_proxy::MachineState;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_host_and_adds_forwarding_headers() {
    let fleet = TestFleet::new();
    let public = free_port();
    let (ia, ib) = (free_port(), free_port());
    fleet
        .add("alpha", "a1", Kind::Http, http_service(ia, public), true)
        .await;
    fleet
        .add("beta", "b1", Kind::Http, http_service(ib, public), true)
        .await;
    let _proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;

    let (s, body) = get(public, "alpha.localhost", "/").await;
    assert_eq!(s, 200, "{body}");
    assert!(body.starts_with("a1\nversion: HTTP/1.1\n"), "{body}");
    for h in [
        "fly-client-ip: 127.0.0.1",
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        &format!("x-forwarded-port: {public}"),
        "fly-region: local",
        "host: alpha.localhost",
    ] {
        assert!(
            body.contains(&format!("\n{h}\n")),
            "missing {h:?} in {body}"
        );
    }
    assert!(body.contains("\nfly-request-id: "), "{body}");

    let (s, body) = get(public, &format!("beta.localhost:{public}"), "/").await;
    assert_eq!(s, 200);
    assert!(body.starts_with("b1\n"), "{body}");

    let (s, _) = get(public, "gamma.localhost", "/").await;
    assert_eq!(s, 404, "an app not served on this port");

    // A client's X-Forwarded-For is kept and extended.
    let r = client()
        .get(format!("http://127.0.0.1:{public}/"))
        .header("host", "alpha.localhost")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(
        body.contains("\nx-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn h2_backend_speaks_h2c_to_the_machine() {
    let fleet = TestFleet::new();
    let public = free_port();
    let services = json!([{"internal_port": free_port(), "ports": [{"port": public,
        "handlers": ["http"], "http_options": {"h2_backend": true}}]}]);
    fleet.add("h2", "h1", Kind::Http, services, true).await;
    let _proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;
    for _ in 0..3 {
        let (s, body) = get(public, "h2.localhost", "/?q=1").await;
        assert_eq!(s, 200, "{body}");
        assert!(body.starts_with("h1\nversion: HTTP/2.0\n"), "{body}");
        assert!(body.contains("\nfly-client-ip: 127.0.0.1\n"), "{body}");
    }
    let (_, body) = get(public, "h2.localhost", "/").await;
    assert!(body.starts_with("h1\nversion: HTTP/2.0\n"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_cold_requests_share_one_start_and_none_fails() {
    let fleet = TestFleet::new();
    let public = free_port();
    fleet
        .add(
            "cold",
            "c1",
            Kind::Http,
            http_service(free_port(), public),
            false,
        )
        .await;
    // The machine's port opens 300 ms after the start call returns.
    fleet.with("c1", |m| m.start_delay = Duration::from_millis(300));
    let proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;

    let mut tasks = Vec::new();
    for _ in 0..10 {
        tasks.push(tokio::spawn(get(public, "cold.localhost", "/")));
    }
    for t in tasks {
        let (s, body) = t.await.unwrap();
        assert_eq!(s, 200, "{body}");
        assert!(body.starts_with("c1\n"));
    }
    assert_eq!(fleet.starts.load(Ordering::SeqCst), 1, "one start shared");
    assert_eq!(fleet.state("c1"), MachineState::Started);
    let m = metrics(&proxy).await;
    assert!(m.contains("hangar_proxy_autostarts_total 1\n"), "{m}");
    assert!(
        m.contains("hangar_proxy_requests_total{code=\"2xx\"} 10\n"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn autostart_off_answers_503_and_does_not_start() {
    let fleet = TestFleet::new();
    let public = free_port();
    let services = json!([{"internal_port": free_port(), "autostart": false,
        "ports": [{"port": public, "handlers": ["http"]}]}]);
    fleet.add("off", "o1", Kind::Http, services, false).await;
    let _proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;
    let (s, _) = get(public, "off.localhost", "/").await;
    assert_eq!(s, 503);
    assert_eq!(fleet.starts.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn load_spreads_across_machines() {
    let fleet = TestFleet::new();
    let public = free_port();
    let internal = free_port();
    for id in ["s1", "s2", "s3"] {
        fleet
            .add(
                "spread",
                id,
                Kind::Http,
                http_service(internal, public),
                true,
            )
            .await;
        fleet.with(id, |m| m.delay_ms.store(300, Ordering::SeqCst));
    }
    let _proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;
    let mut tasks = Vec::new();
    for _ in 0..9 {
        tasks.push(tokio::spawn(get(public, "spread.localhost", "/slow")));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().0, 200);
    }
    // Least-loaded choice: no machine gets much more than its share (two
    // concurrent picks may read the same loads and land together).
    let served: Vec<u32> = ["s1", "s2", "s3"]
        .iter()
        .map(|id| fleet.served(id))
        .collect();
    assert_eq!(served.iter().sum::<u32>(), 9);
    assert!(
        served.iter().all(|n| (2..=4).contains(n)),
        "uneven: {served:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hard_limit_queues_then_answers_503() {
    let fleet = TestFleet::new();
    let public = free_port();
    let services = json!([{"internal_port": free_port(),
        "concurrency": {"type": "requests", "soft_limit": 1, "hard_limit": 2},
        "ports": [{"port": public, "handlers": ["http"]}]}]);
    fleet.add("lim", "l1", Kind::Http, services, true).await;
    fleet.with("l1", |m| m.delay_ms.store(1500, Ordering::SeqCst));
    let proxy = start_proxy(&fleet, options()).await; // queue timeout 500 ms
    wait_port(public).await;

    let began = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(tokio::spawn(get(public, "lim.localhost", "/slow")));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().0);
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        vec![200, 200, 503, 503],
        "two at the hard limit, two rejected"
    );
    assert!(began.elapsed() >= Duration::from_millis(1500));
    let m = metrics(&proxy).await;
    assert_eq!(metric(&m, "hangar_proxy_rejected_total"), 2.0, "{m}");

    // Queued requests get through when a slot frees within the wait.
    fleet.with("l1", |m| m.delay_ms.store(200, Ordering::SeqCst));
    let mut tasks = Vec::new();
    for _ in 0..3 {
        tasks.push(tokio::spawn(get(public, "lim.localhost", "/slow")));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().0, 200, "queued, then served");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_check_takes_a_machine_out_of_rotation_until_it_passes() {
    let fleet = TestFleet::new();
    let public = free_port();
    let internal = free_port();
    let services = json!([{"internal_port": internal,
        "checks": [{"type": "http", "path": "/health", "interval": "100ms", "timeout": "1s"}],
        "ports": [{"port": public, "handlers": ["http"]}]}]);
    fleet
        .add("chk", "h1", Kind::Http, services.clone(), true)
        .await;
    fleet.add("chk", "h2", Kind::Http, services, true).await;
    let _proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;

    fleet.with("h1", |m| m.healthy.store(false, Ordering::SeqCst));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = fleet.served("h1");
    for _ in 0..10 {
        let (s, body) = get(public, "chk.localhost", "/").await;
        assert_eq!(s, 200);
        assert!(
            body.starts_with("h2\n"),
            "unhealthy h1 got a request: {body}"
        );
    }
    assert_eq!(fleet.served("h1"), before);

    fleet.with("h1", |m| m.healthy.store(true, Ordering::SeqCst));
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Ties between idle machines go round-robin: h1 gets its share again.
    let before = fleet.served("h1");
    for _ in 0..10 {
        assert_eq!(get(public, "chk.localhost", "/").await.0, 200);
    }
    assert!(fleet.served("h1") > before, "h1 is back in rotation");
}

#[tokio::test(flavor = "multi_thread")]
async fn force_instance_and_cordon_and_failed_connect() {
    let fleet = TestFleet::new();
    let public = free_port();
    let internal = free_port();
    for id in ["f1", "f2", "f3"] {
        fleet
            .add("pick", id, Kind::Http, http_service(internal, public), true)
            .await;
    }
    let proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;

    for _ in 0..3 {
        let r = client()
            .get(format!("http://127.0.0.1:{public}/"))
            .header("host", "pick.localhost")
            .header("fly-force-instance-id", "f2")
            .send()
            .await
            .unwrap();
        assert!(r.text().await.unwrap().starts_with("f2\n"));
    }

    // Cordoned machines get nothing; f3's server dies without the API
    // knowing: its failed connect is retried on f1.
    fleet.with("f2", |m| m.info.cordoned = true);
    fleet.with("f3", |m| {
        if let Some(t) = m.task.take() {
            t.abort();
        }
    });
    proxy.refresh().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..6 {
        let (s, body) = get(public, "pick.localhost", "/").await;
        assert_eq!(s, 200, "{body}");
        assert!(body.starts_with("f1\n"), "{body}");
    }
    let m = metrics(&proxy).await;
    assert!(!m.contains("hangar_proxy_connect_retries_total 0\n"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn autostop_stops_idle_machines_down_to_min_running_and_busy_holds_it_off() {
    let fleet = TestFleet::new();
    let public = free_port();
    let internal = free_port();
    let services = json!([{"internal_port": internal, "autostop": "suspend",
        "min_machines_running": 1,
        "ports": [{"port": public, "handlers": ["http"]}]}]);
    for id in ["a1", "a2", "a3"] {
        fleet
            .add("idle", id, Kind::Http, services.clone(), true)
            .await;
    }
    let mut opts = options();
    opts.autostop_period = Duration::from_millis(200);
    let proxy = start_proxy(&fleet, opts).await;
    wait_port(public).await;
    let addr = proxy.metrics_addr().unwrap();
    // a2 says it is busy in the background.
    let r = client()
        .post(format!("http://{addr}/busy?machine=a2&seconds=60"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let running: Vec<_> = ["a1", "a2", "a3"]
            .into_iter()
            .filter(|id| fleet.state(id) == MachineState::Started)
            .collect();
        if running.len() == 1 {
            assert_eq!(running, vec!["a2"], "the busy machine stays");
            break;
        }
        assert!(Instant::now() < deadline, "still running: {running:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Never below min_machines_running, even once a2 is no longer busy.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fleet.state("a2"), MachineState::Started);
    // Suspend is refused by this fleet (501): each stop fell back to stop.
    assert_eq!(fleet.suspends.load(Ordering::SeqCst), 2);
    assert_eq!(fleet.stops.load(Ordering::SeqCst), 2);
    let m = metrics(&proxy).await;
    assert!(m.contains("hangar_proxy_autostops_total 2\n"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lone_idle_machine_is_stopped_and_started_again_on_demand() {
    let fleet = TestFleet::new();
    let public = free_port();
    let services = json!([{"internal_port": free_port(), "autostop": "stop",
        "ports": [{"port": public, "handlers": ["http"]}]}]);
    fleet.add("lone", "z1", Kind::Http, services, true).await;
    let mut opts = options();
    opts.autostop_period = Duration::from_millis(200);
    let _proxy = start_proxy(&fleet, opts).await;
    wait_port(public).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while fleet.state("z1") != MachineState::Stopped {
        assert!(
            Instant::now() < deadline,
            "the lone idle machine was not stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, body) = get(public, "lone.localhost", "/").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(fleet.starts.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn closest_region_first_and_fly_prefer_region() {
    let fleet = TestFleet::new();
    let public = free_port();
    let internal = free_port();
    fleet
        .add(
            "geo",
            "here",
            Kind::Http,
            http_service(internal, public),
            true,
        )
        .await;
    fleet
        .add(
            "geo",
            "there",
            Kind::Http,
            http_service(internal, public),
            true,
        )
        .await;
    fleet.with("there", |m| m.info.region = "ams".into());
    let _proxy = start_proxy(&fleet, options()).await;
    wait_port(public).await;
    for _ in 0..4 {
        let (s, body) = get(public, "geo.localhost", "/").await;
        assert_eq!(s, 200);
        assert!(
            body.starts_with("here\n"),
            "the proxy's own region first: {body}"
        );
        let r = client()
            .get(format!("http://127.0.0.1:{public}/"))
            .header("host", "geo.localhost")
            .header("fly-prefer-region", "ams")
            .send()
            .await
            .unwrap();
        let body = r.text().await.unwrap();
        assert!(body.starts_with("there\n"), "preferred region: {body}");
    }
}
