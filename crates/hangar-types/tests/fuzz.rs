//! Property tests over the config parser: arbitrary strings and arbitrary JSON
//! shaped like machine configs never make it panic, and whatever parses is
//! stable: parse → serialize → parse gives the same config and the same JSON.
//! Validation and start order never panic either.
//!
//! `fuzz_for_a_while` is the long run (ignored by default): it keeps generating
//! cases until `HANGAR_FUZZ_SECS` seconds (default 60) have passed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hangar_types::{parse_machine_config_document, start_groups};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};

/// Keys of the config and its parts, so generated objects hit real fields.
const KEYS: &[&str] = &[
    "config",
    "containers",
    "name",
    "image",
    "depends_on",
    "container",
    "condition",
    "healthchecks",
    "health_checks",
    "type",
    "tcp",
    "http",
    "exec",
    "port",
    "path",
    "method",
    "scheme",
    "command",
    "interval",
    "timeout",
    "grace_period",
    "success_threshold",
    "failure_threshold",
    "files",
    "guest_path",
    "raw_value",
    "secret_name",
    "local_path",
    "image_config",
    "mode",
    "env",
    "guest",
    "cpus",
    "memory_mb",
    "services",
    "internal_port",
    "ports",
    "autostop",
    "autostart",
    "concurrency",
    "soft_limit",
    "hard_limit",
    "restart",
    "policy",
    "max_retries",
    "stop",
    "stop_config",
    "signal",
    "mounts",
    "volume",
    "checks",
    "standbys",
    "schedule",
    "metadata",
    "processes",
    "kind",
    "unhealthy",
    "extra_key",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e6f64..1.0e6).prop_map(Value::from),
        prop_oneof![
            Just("10s".to_string()),
            Just("500ms".to_string()),
            Just("1m30s".to_string()),
            Just("SIGTERM".to_string()),
            Just("healthy".to_string()),
            Just("http".to_string()),
            Just("tcp".to_string()),
            Just("exec".to_string()),
            Just("suspend".to_string()),
            Just("on-failure".to_string()),
            Just("/etc/x".to_string()),
            Just("registry.fly.io/my-app:latest".to_string()),
            "[a-z0-9:/._-]{0,12}",
            any::<String>(),
        ]
        .prop_map(Value::from),
    ]
}

fn config_like() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kvs| {
                let mut m = Map::new();
                for (k, v) in kvs {
                    m.insert(k.to_string(), v);
                }
                Value::Object(m)
            }),
        ]
    })
}

/// Mostly well-typed conditions (known or not), sometimes anything.
fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(&["started", "healthy", "exited_successfully", "ready"][..])
            .prop_map(Value::from),
        1 => leaf(),
    ]
}

/// Mostly well-typed durations (numbers and strings), sometimes anything.
fn duration_like() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => (0u64..100_000).prop_map(Value::from),
        2 => "[0-9]{1,4}(ns|us|ms|s|m|h)([0-9]{1,2}(ms|s))?".prop_map(Value::from),
        1 => leaf(),
    ]
}

/// A well-formed container config with generated values in known places.
fn container_shaped() -> impl Strategy<Value = Value> {
    (
        prop::option::of("[a-z]{1,3}"),
        prop::collection::vec(("[a-z]{1,3}", condition()), 0..3),
        prop::option::of(duration_like()),
        prop::option::of(config_like()),
    )
        .prop_map(|(name, deps, interval, extra)| {
            let mut c = json!({"image": "registry.fly.io/app:1"});
            if let Some(n) = name {
                c["name"] = json!(n);
            }
            c["depends_on"] = Value::Array(
                deps.into_iter()
                    .map(|(n, cond)| json!({"name": n, "condition": cond}))
                    .collect(),
            );
            if let Some(i) = interval {
                c["healthchecks"] = json!([{"type": "tcp", "port": 80, "interval": i}]);
            }
            if let Some(e) = extra {
                c["extra_key"] = e;
            }
            c
        })
}

fn document() -> impl Strategy<Value = Value> {
    prop_oneof![
        config_like(),
        prop::collection::vec(container_shaped(), 0..5)
            .prop_map(|cs| json!({"config": {"containers": cs}})),
        prop::collection::vec(container_shaped(), 0..5).prop_map(|cs| json!({"containers": cs})),
    ]
}

/// Inputs that parsed (so the stability check really ran on them).
static PARSED: AtomicUsize = AtomicUsize::new(0);
/// Parsed inputs that had containers.
static WITH_CONTAINERS: AtomicUsize = AtomicUsize::new(0);

/// Parse; if it parses, re-serialize and re-parse and demand the same result.
fn check_stable(text: &str) -> Result<(), TestCaseError> {
    let Ok(first) = parse_machine_config_document(text) else {
        return Ok(());
    };
    PARSED.fetch_add(1, Ordering::Relaxed);
    if !first.containers().is_empty() {
        WITH_CONTAINERS.fetch_add(1, Ordering::Relaxed);
    }
    let json1 = serde_json::to_string(&first).expect("a parsed config serializes");
    let second = parse_machine_config_document(&json1)
        .map_err(|e| TestCaseError::fail(format!("re-parse failed: {e}\n{json1}")))?;
    prop_assert_eq!(&first, &second);
    let json2 = serde_json::to_string(&second).unwrap();
    prop_assert_eq!(
        serde_json::from_str::<Value>(&json1).unwrap(),
        serde_json::from_str::<Value>(&json2).unwrap()
    );
    // Neither validation nor ordering may panic on whatever parsed.
    let _ = first.validate();
    let _ = start_groups(first.containers());
    Ok(())
}

/// One pass over both strategies, `cases` each, with fresh runners (a runner
/// counts its successes across `run` calls, so it cannot be reused).
fn run(cases: u32) -> Result<(), String> {
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new(config.clone())
        .run(&any::<String>(), |s| check_stable(&s))
        .map_err(|e| e.to_string())?;
    TestRunner::new(config)
        .run(&document(), |v| check_stable(&v.to_string()))
        .map_err(|e| e.to_string())
}

#[test]
fn parser_is_stable_on_a_few_hundred_cases() {
    run(256).unwrap();
    // The generators must reach the interesting part: configs that parse,
    // many of them with containers.
    let parsed = PARSED.load(Ordering::Relaxed);
    let with_containers = WITH_CONTAINERS.load(Ordering::Relaxed);
    assert!(parsed >= 100, "only {parsed} of 512 inputs parsed");
    assert!(
        with_containers >= 50,
        "only {with_containers} parsed inputs had containers"
    );
}

#[test]
#[ignore = "long run: cargo test --release --test fuzz -- --ignored"]
fn fuzz_for_a_while() {
    let secs: u64 = std::env::var("HANGAR_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rounds = 0u64;
    while Instant::now() < deadline {
        // Fresh runners each round: a new random seed, bounded work per round.
        run(2000).unwrap();
        rounds += 1;
    }
    println!(
        "fuzz: {rounds} rounds of 2 × 2000 cases in {secs}s ({} parsed, {} with containers), no panic, all stable",
        PARSED.load(Ordering::Relaxed),
        WITH_CONTAINERS.load(Ordering::Relaxed)
    );
}

/// Inputs the long run once found unstable.
#[test]
fn past_findings_stay_fixed() {
    for text in [
        r#"{"config": {"config": null}}"#,
        r#"{"config": {"config": {"image": "x"}}}"#,
    ] {
        check_stable(text).unwrap();
    }
}
