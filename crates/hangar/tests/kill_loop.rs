//! The agent SIGKILLed again and again while machines are created, started and
//! stopped concurrently: after each restart on the same data dir every
//! machine's state must match reality, and in the end nothing is left behind
//! (needs root).

mod common;

use std::time::{Duration, Instant};

use common::{Server, pushed_image};
use hangar_test_support::Registry;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const APP: &str = "e2e-kill";
const ROUNDS: u64 = 5;
/// States a machine may rest in; anything else is an operation in flight.
/// (`created`: a create interrupted before its launch may be rolled back to a
/// machine that was never started, which a user can start.)
const SETTLED: &[&str] = &["created", "started", "stopped", "destroyed", "failed"];

/// Sends one request; `None` when the server went away meanwhile.
async fn fire(
    client: &reqwest::Client,
    method: Method,
    url: String,
    body: Value,
) -> Option<StatusCode> {
    client
        .request(method, url)
        .bearer_auth(common::TOKEN)
        .json(&body)
        .send()
        .await
        .ok()
        .map(|r| r.status())
}

/// Waits (at most 60 s) until no machine is in the middle of an operation;
/// returns every machine as `(id, state)`.
async fn settled(server: &Server) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all: Vec<(String, String)> = server
            .all_machines()
            .await
            .into_iter()
            .map(|(_, m)| {
                (
                    m["id"].as_str().unwrap_or_default().to_owned(),
                    m["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let busy: Vec<_> = all
            .iter()
            .filter(|(_, s)| !SETTLED.contains(&s.as_str()))
            .collect();
        if busy.is_empty() {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "machines still in flight a minute after the restart: {busy:?}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every machine's recorded state against what runs on the host.
async fn check_reality(server: &Server, round: u64) {
    let all = settled(server).await;
    let mut counts = std::collections::BTreeMap::new();
    for (_, s) in &all {
        *counts.entry(s.clone()).or_insert(0) += 1;
    }
    eprintln!("kill loop: after round {round}: {counts:?}");
    for (id, state) in all {
        // A just-exited pilot may still be reaped: allow a moment for the
        // recorded state and the host to agree.
        let mut pids = server.machine_pids(&id);
        let mut now = state.clone();
        for _ in 0..50 {
            if (now == "started") != pids.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            now = server.state(APP, &id).await;
            pids = server.machine_pids(&id);
        }
        if now == "started" {
            assert!(
                !pids.is_empty(),
                "round {round}: {id} is started but nothing runs"
            );
            let (s, b) = server.exec(APP, &id, None, &["true"]).await;
            assert_eq!(
                s,
                StatusCode::OK,
                "round {round}: exec in re-attached {id}: {b}"
            );
        } else {
            assert!(
                pids.is_empty(),
                "round {round}: {id} is {now} but processes {pids:?} run\nlog:\n{}",
                server.log()
            );
            assert!(
                server.cgroup_dirs(&id).is_empty(),
                "round {round}: {id} is {now} but its cgroups remain: {:?}",
                server.cgroup_dirs(&id)
            );
        }
    }
}

/// Processes other than the server whose command line names the data dir
/// (pilots of this test's machines are started with paths inside it).
fn strays(server: &Server) -> Vec<(i32, String)> {
    let needle = server.data.to_string_lossy().into_owned();
    let me = server.pid().map(|p| p as i32);
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if Some(pid) == me || !common::alive(pid) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            out.push((pid, cmdline));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkilled_agent_comes_back_with_states_matching_reality_and_no_leftovers() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "e2e/kill:1").await;
    let mut server = Server::start().await;
    server.create_app(APP).await;
    let config = json!({"config": {"image": image, "guest": {"cpus": 1, "memory_mb": 128}}});
    // A first machine pulls the image; the loop's creates use the cache.
    let first = server.create_machine(APP, config.clone()).await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    server.wait_ok(APP, &first_id, "started", 60).await;

    for round in 0..ROUNDS {
        let machines = settled(&server).await;
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let (client, url, body) = (
                server.client.clone(),
                server.url(&format!("/apps/{APP}/machines")),
                config.clone(),
            );
            tasks.push(tokio::spawn(async move {
                fire(&client, Method::POST, url, body).await
            }));
        }
        for (id, state) in &machines {
            let action = match state.as_str() {
                "started" => "stop",
                "stopped" => "start",
                _ => continue,
            };
            let (client, url) = (
                server.client.clone(),
                server.url(&format!("/apps/{APP}/machines/{id}/{action}")),
            );
            tasks.push(tokio::spawn(async move {
                fire(&client, Method::POST, url, json!({})).await
            }));
        }
        // Kill at a different point of the operations each round.
        tokio::time::sleep(Duration::from_millis(30 + round * 60)).await;
        server.sigkill();
        for t in tasks {
            let _ = t.await;
        }
        server.spawn().await;
        check_reality(&server, round).await;
    }

    // Everything the loop made goes away with the machines.
    let all = settled(&server).await;
    assert!(all.len() > 1, "the loop created machines: {all:?}");
    for (id, state) in &all {
        if state == "destroyed" {
            continue;
        }
        let (s, b) = server
            .delete(&format!("/apps/{APP}/machines/{id}?force=true"))
            .await;
        assert!(s.is_success(), "destroy {id}: {s} {b}");
        server.wait_ok(APP, id, "destroyed", 30).await;
        assert!(
            !std::path::Path::new("/run/netns")
                .join(format!("hangar-{id}"))
                .exists(),
            "netns of {id} left"
        );
    }
    assert_eq!(server.leftover_cgroups(), Vec::<std::path::PathBuf>::new());
    assert_eq!(
        strays(&server),
        Vec::<(i32, String)>::new(),
        "stray processes"
    );
}
