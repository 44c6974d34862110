//! The JSON examples of the product guides (copied from the seeds into
//! `tests/fixtures/`): each parses, validates unchanged, and serializes back to
//! the same JSON value.

use hangar_types::config::{DependencyCondition, HealthProbe};
use hangar_types::{parse_machine_config_document, start_groups};
use serde_json::Value;

const FIXTURES: &[(&str, &str)] = &[
    (
        "seed_example_configuration.json",
        include_str!("fixtures/seed_example_configuration.json"),
    ),
    (
        "seed_cli_config.json",
        include_str!("fixtures/seed_cli_config.json"),
    ),
    (
        "seed_rate_limiter.json",
        include_str!("fixtures/seed_rate_limiter.json"),
    ),
    (
        "seed_litefs.json",
        include_str!("fixtures/seed_litefs.json"),
    ),
];

/// The config part of a fixture, as a plain JSON value.
fn config_value(text: &str) -> Value {
    let v: Value = serde_json::from_str(text).unwrap();
    match v.get("config") {
        Some(c) => c.clone(),
        None => v,
    }
}

#[test]
fn every_seed_example_round_trips_to_the_same_json() {
    for (name, text) in FIXTURES {
        let config = parse_machine_config_document(text)
            .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        let echoed = serde_json::to_value(&config).unwrap();
        assert_eq!(echoed, config_value(text), "{name} is not echoed unchanged");
    }
}

#[test]
fn every_seed_example_validates_unchanged() {
    for (name, text) in FIXTURES {
        let config = parse_machine_config_document(text).unwrap();
        if let Err(problems) = config.validate() {
            panic!("{name} does not validate:\n{problems}");
        }
    }
}

#[test]
fn first_example_depends_on_the_name_derived_from_its_image() {
    let config = parse_machine_config_document(FIXTURES[0].1).unwrap();
    let names: Vec<_> = config
        .containers()
        .iter()
        .map(|c| c.effective_name().unwrap())
        .collect();
    assert_eq!(names, ["my-app", "log-shipper"]);
    // log-shipper waits for my-app to be healthy, and my-app has a health check
    // (flattened, under `health_checks`).
    let dep = &config.containers()[1].depends_on()[0];
    assert_eq!(dep.target(), Some("my-app"));
    assert_eq!(dep.condition_or_default(), DependencyCondition::Healthy);
    assert!(config.containers()[0].has_health_checks());
    assert_eq!(
        start_groups(config.containers()).unwrap(),
        vec![vec!["my-app".to_string()], vec!["log-shipper".to_string()]]
    );

    // Without the derived name, the same dependency is reported.
    let mut renamed = config.clone();
    renamed.containers.as_mut().unwrap()[0].name = Some("app".into());
    let problems = renamed.validate().unwrap_err();
    assert_eq!(
        problems.to_string(),
        "config.containers[1].depends_on[0]: no container named \"my-app\""
    );
}

#[test]
fn seed_health_checks_normalize_whichever_spelling() {
    let first = parse_machine_config_document(FIXTURES[0].1).unwrap();
    let hc = first.containers()[0].health_checks().next().unwrap();
    let HealthProbe::Http(http) = hc.probe().unwrap() else {
        panic!("expected an http probe");
    };
    assert_eq!(http.path.as_deref(), Some("/health"));
    assert_eq!(http.effective_port(), Some(80));
    assert_eq!(hc.interval.as_ref().unwrap().as_std().as_secs(), 10);
    assert_eq!(hc.timeout.as_ref().unwrap().as_std().as_secs(), 5);

    let cli = parse_machine_config_document(FIXTURES[1].1).unwrap();
    let HealthProbe::Exec(exec) = cli.containers()[1]
        .health_checks()
        .next()
        .unwrap()
        .probe()
        .unwrap()
    else {
        panic!("expected an exec probe");
    };
    assert_eq!(
        exec.command.unwrap(),
        ["wget", "-q", "--spider", "http://localhost"]
    );
    assert_eq!(
        start_groups(cli.containers()).unwrap(),
        vec![vec!["echo".to_string()], vec!["nginx".to_string()]]
    );
}

#[test]
fn litefs_integers_are_seconds() {
    let litefs = parse_machine_config_document(FIXTURES[3].1).unwrap();
    let hc = litefs.containers()[0].health_checks().next().unwrap();
    assert_eq!(hc.grace_period.as_ref().unwrap().as_std().as_secs(), 500);
    assert_eq!(hc.interval.as_ref().unwrap().as_std().as_secs(), 1000);
    // `delay_start` is not a field Hangar knows: kept, echoed, ignored.
    assert_eq!(hc.extra.get("delay_start"), Some(&Value::from(0)));
}

#[test]
fn rate_limiter_file_decodes_to_the_nginx_config() {
    let cfg = parse_machine_config_document(FIXTURES[2].1).unwrap();
    let file = &cfg.containers()[0].files()[0];
    let text = String::from_utf8(file.decoded_raw_value().unwrap().unwrap()).unwrap();
    assert!(text.starts_with("limit_req_zone $binary_remote_addr zone=my_zone:10m rate=1r/s;"));
    assert!(text.contains("proxy_pass http://localhost:80;"));
}

/// The guide's fragments (`tcp`, `http`, `exec` probes; a `depends_on` with
/// `container`) put into a config.
#[test]
fn seed_fragments_parse_and_validate() {
    let text = r#"{"containers": [
        {"name": "sidecar1", "image": "redis", "healthchecks": [
            {"tcp": {"port": 6379}},
            {"http": {"port": 80, "method": "GET", "path": "/", "scheme": "http"}},
            {"exec": {"command": ["sh", "-c", "pg_isready -U postgres"]}}
        ]},
        {"name": "app", "image": "app", "depends_on": [
            {"container": "sidecar1", "condition": "healthy"}
        ]}
    ]}"#;
    let cfg = parse_machine_config_document(text).unwrap();
    cfg.validate().unwrap();
    let kinds: Vec<_> = cfg.containers()[0]
        .health_checks()
        .map(|h| h.probe().unwrap().kind())
        .collect();
    assert_eq!(kinds, ["tcp", "http", "exec"]);
    assert_eq!(
        serde_json::to_value(&cfg).unwrap(),
        serde_json::from_str::<Value>(text).unwrap()
    );
}
