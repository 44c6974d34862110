//! Every spelling a user may write is accepted, means the same thing, and is
//! echoed back as written: durations, autostop, restart policies, signals,
//! health check shapes, depends_on keys, the three document forms, explicit
//! nulls, unknown keys. Also: parse errors name the path and position, and
//! typed ids reject malformed values.

use std::time::Duration as Std;

use hangar_types::config::{
    AutostopMode, ContainerConfig, HealthCheck, HealthProbe, MachineService, RestartMode,
    RestartPolicy, Signal,
};
use hangar_types::duration::Duration;
use hangar_types::machine::{MachineState, StopRequest, WaitQuery};
use hangar_types::{AppName, MachineId, VolumeId, parse_machine_config_document};
use serde_json::{Value, json};

fn echo<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) -> (T, Value) {
    let t: T = serde_json::from_value(v).unwrap();
    let back = serde_json::to_value(&t).unwrap();
    (t, back)
}

#[test]
fn durations_in_every_spelling() {
    let cases: &[(Value, Std)] = &[
        (json!(10), Std::from_secs(10)),
        (json!(0.5), Std::from_millis(500)),
        (json!("10s"), Std::from_secs(10)),
        (json!("500ms"), Std::from_millis(500)),
        (json!("1m30s"), Std::from_secs(90)),
        (json!("1h"), Std::from_secs(3600)),
        (json!("1.5s"), Std::from_millis(1500)),
        (json!("250us"), Std::from_micros(250)),
        (json!("0"), Std::ZERO),
        (json!("10"), Std::from_secs(10)),
    ];
    for (input, want) in cases {
        let (d, back): (Duration, Value) = echo(input.clone());
        assert_eq!(d.as_std(), *want, "{input}");
        assert_eq!(&back, input, "{input} echoed as written");
    }
    // Equal by length of time, whatever the spelling.
    assert_eq!(Duration::from_secs(90), Duration::parse("1m30s").unwrap());
}

#[test]
fn bad_durations_are_refused_with_a_reason() {
    for (input, msg) in [
        (
            "10x",
            r#"invalid duration "10x": unknown unit "x" (use ns, us, ms, s, m or h)"#,
        ),
        (
            "-5s",
            r#"invalid duration "-5s": negative durations are not allowed"#,
        ),
        ("", r#"invalid duration "": empty"#),
        (
            "s",
            r#"invalid duration "s": expected a number followed by a unit, like "10s" or "1m30s""#,
        ),
    ] {
        assert_eq!(Duration::parse(input).unwrap_err().to_string(), msg);
    }
    assert!(serde_json::from_value::<Duration>(json!(-1)).is_err());
}

#[test]
fn hangar_made_durations_are_go_strings() {
    assert_eq!(Duration::from_std(Std::from_secs(90)).to_string(), "1m30s");
    assert_eq!(
        Duration::from_std(Std::from_millis(1500)).to_string(),
        "1.5s"
    );
    assert_eq!(
        Duration::from_std(Std::from_millis(250)).to_string(),
        "250ms"
    );
    assert_eq!(
        serde_json::to_value(Duration::from_secs(5)).unwrap(),
        json!(5)
    );
}

#[test]
fn autostop_in_every_spelling() {
    for (input, mode) in [
        (json!(true), AutostopMode::Stop),
        (json!(false), AutostopMode::Off),
        (json!("off"), AutostopMode::Off),
        (json!("stop"), AutostopMode::Stop),
        (json!("suspend"), AutostopMode::Suspend),
    ] {
        let body = json!({"internal_port": 8080, "autostop": input});
        let (s, back): (MachineService, Value) = echo(body.clone());
        assert_eq!(s.autostop_mode(), mode, "{input}");
        assert_eq!(back, body);
    }
}

#[test]
fn restart_policies_in_every_spelling() {
    let (r, back): (RestartPolicy, Value) = echo(json!({"policy": "on-failure", "max_retries": 3}));
    assert_eq!(r.mode(), RestartMode::OnFailure);
    assert_eq!(r.max_retries_or_default(), 3);
    assert!(r.should_restart(Some(1), 2));
    assert!(!r.should_restart(Some(1), 3));
    assert!(!r.should_restart(Some(0), 0));
    assert_eq!(back, json!({"policy": "on-failure", "max_retries": 3}));

    for word in ["no", "never"] {
        let (r, back): (RestartPolicy, Value) = echo(json!({"policy": word}));
        assert!(r.mode().is_no(), "{word}");
        assert!(!r.should_restart(Some(1), 0));
        assert_eq!(back, json!({"policy": word}));
    }
    let (r, _): (RestartPolicy, Value) = echo(json!({"policy": "always"}));
    assert!(r.should_restart(Some(0), 1000));
    // No policy: the spec's default, on-failure.
    assert_eq!(RestartPolicy::default().mode(), RestartMode::OnFailure);
}

#[test]
fn signals_by_name_or_number() {
    for (input, n) in [
        (json!("SIGTERM"), 15),
        (json!("TERM"), 15),
        (json!("sigint"), 2),
        (json!(9), 9),
        (json!("9"), 9),
        (json!("SIGUSR1"), 10),
    ] {
        let (s, back): (Signal, Value) = echo(input.clone());
        assert_eq!(s.number(), Some(n), "{input}");
        assert_eq!(back, input);
    }
    assert_eq!(Signal::Number(15).name(), Some("SIGTERM"));
    assert_eq!(Signal::named("SIGFOO").number(), None);
    assert_eq!(Signal::Number(0).number(), None);
}

#[test]
fn stop_request_timeout_as_number_or_string() {
    let (r, back): (StopRequest, Value) = echo(json!({"timeout": 30, "signal": 15}));
    assert_eq!(r.timeout.unwrap().as_std(), Std::from_secs(30));
    assert_eq!(back, json!({"timeout": 30, "signal": 15}));
    let (r, _): (StopRequest, Value) = echo(json!({"timeout": "2m", "signal": "SIGKILL"}));
    assert_eq!(r.timeout.unwrap().as_std(), Std::from_secs(120));
    assert_eq!(r.signal.unwrap().number(), Some(9));
}

#[test]
fn nested_and_flattened_health_checks_give_the_same_probe() {
    let nested: HealthCheck = serde_json::from_value(
        json!({"http": {"port": 8080, "path": "/up", "method": "GET"}, "interval": "5s"}),
    )
    .unwrap();
    let flat: HealthCheck = serde_json::from_value(
        json!({"type": "http", "port": 8080, "path": "/up", "method": "GET", "interval": 5}),
    )
    .unwrap();
    assert_eq!(nested.probe().unwrap(), flat.probe().unwrap());
    assert_eq!(nested.interval, flat.interval);
    assert!(flat.is_flattened() && !nested.is_flattened());

    let tcp: HealthCheck = serde_json::from_value(json!({"type": "tcp", "port": 6379})).unwrap();
    let HealthProbe::Tcp(t) = tcp.probe().unwrap() else {
        panic!()
    };
    assert_eq!(t.port, Some(6379));
    let exec: HealthCheck =
        serde_json::from_value(json!({"type": "exec", "command": ["true"]})).unwrap();
    assert_eq!(exec.probe().unwrap().kind(), "exec");
}

#[test]
fn both_health_check_keys_and_both_depends_on_keys() {
    for key in ["healthchecks", "health_checks"] {
        let body = json!({"name": "db", "image": "postgres", key: [{"tcp": {"port": 5432}}]});
        let (c, back): (ContainerConfig, Value) = echo(body.clone());
        assert_eq!(c.health_checks().count(), 1, "{key}");
        assert_eq!(back, body, "{key} echoed under the same key");
    }
    for key in ["name", "container"] {
        let body = json!({"image": "app", "depends_on": [{key: "db", "condition": "healthy"}]});
        let (c, back): (ContainerConfig, Value) = echo(body.clone());
        assert_eq!(c.depends_on()[0].target(), Some("db"), "{key}");
        assert_eq!(back, body);
    }
}

#[test]
fn effective_names_from_images() {
    for (image, name) in [
        ("registry.fly.io/my-app:latest", "my-app"),
        ("nginx", "nginx"),
        ("nginx:1.25", "nginx"),
        ("ghcr.io/org/tool@sha256:abcd", "tool"),
        ("localhost:5000/team/svc:v2", "svc"),
    ] {
        let c = ContainerConfig {
            image: Some(image.into()),
            ..Default::default()
        };
        assert_eq!(c.effective_name().as_deref(), Some(name), "{image}");
    }
    assert_eq!(
        ContainerConfig::new("given", "registry.fly.io/my-app")
            .effective_name()
            .as_deref(),
        Some("given")
    );
}

#[test]
fn the_three_document_forms_give_the_same_config() {
    let bare = r#"{"containers": [{"name": "a", "image": "x"}], "guest": {"cpus": 2}}"#;
    let wrapped = format!(r#"{{"config": {bare}}}"#);
    let api_body =
        format!(r#"{{"name": "m1", "region": "ams", "config": {bare}, "skip_launch": true}}"#);
    let a = parse_machine_config_document(bare).unwrap();
    assert_eq!(a.containers().len(), 1);
    assert_eq!(a.guest().cpus, Some(2));
    assert_eq!(parse_machine_config_document(&wrapped).unwrap(), a);
    assert_eq!(parse_machine_config_document(&api_body).unwrap(), a);
}

#[test]
fn explicit_nulls_mean_absent() {
    let c = parse_machine_config_document(
        r#"{"image": "x", "env": null, "guest": null, "services": [{"internal_port": 80, "autostop": null, "concurrency": null}]}"#,
    )
    .unwrap();
    assert!(c.env.is_none() && c.guest.is_none());
    assert!(c.services()[0].autostop.is_none());
    c.validate().unwrap();
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({"image": "x", "services": [{"internal_port": 80}]})
    );
}

#[test]
fn unknown_keys_are_kept_and_echoed() {
    let text = r#"{"image": "x", "brand_new": {"a": [1, 2]},
        "containers": [{"name": "a", "image": "y", "services": [{"internal_port": 1}]}]}"#;
    let c = parse_machine_config_document(text).unwrap();
    assert_eq!(c.extra["brand_new"], json!({"a": [1, 2]}));
    assert!(c.containers()[0].extra.contains_key("services"));
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        serde_json::from_str::<Value>(text).unwrap()
    );
}

#[test]
fn parse_errors_name_the_path_and_position() {
    let text = "{\n  \"config\": {\n    \"containers\": [\n      {\"name\": \"a\", \"image\": 5}\n    ]\n  }\n}";
    let e = parse_machine_config_document(text).unwrap_err();
    assert_eq!(e.path, "config.containers[0].image");
    assert_eq!(e.line, 4);
    assert_eq!(e.message, "invalid type: integer `5`, expected a string");
    assert_eq!(
        e.to_string(),
        format!(
            "config.containers[0].image: {} (line 4, column {})",
            e.message, e.column
        )
    );

    let e = parse_machine_config_document(r#"{"guest": {"cpus": "two"}}"#).unwrap_err();
    assert_eq!(e.path, "config.guest.cpus");

    let e = parse_machine_config_document(
        r#"{"containers": [{"image": "x", "healthchecks": [{"interval": "soon"}]}]}"#,
    )
    .unwrap_err();
    assert_eq!(e.path, "config.containers[0].healthchecks[0].interval");
    assert!(
        e.message.starts_with("invalid duration \"soon\""),
        "{}",
        e.message
    );

    let e = parse_machine_config_document("[1, 2]").unwrap_err();
    assert_eq!(e.path, "config");
    assert!(e.message.starts_with("expected a JSON object"));

    let e = parse_machine_config_document("{\"image\": \"x\",\n  oops}").unwrap_err();
    assert_eq!((e.path.as_str(), e.line), ("config", 2));

    // A config inside a config would echo back as a different document.
    let e = parse_machine_config_document("{\"config\": {\"image\": \"x\",\n \"config\": {}}}")
        .unwrap_err();
    assert_eq!(e.path, "config.config");
    assert_eq!(
        e.message,
        r#"a machine config cannot contain another "config""#
    );
    assert_eq!((e.line, e.column), (2, 2));

    let e = parse_machine_config_document(r#"{"config": "nope"}"#).unwrap_err();
    assert_eq!(e.path, "config");
    assert_eq!(e.message, "expected an object, found a string");
}

#[test]
fn typed_ids_reject_malformed_values() {
    assert!(MachineId::parse("d8d9510a295118").is_ok());
    for bad in [
        "",
        "D8D9510A295118",
        "d8d9510a29511",
        "d8d9510a295118a",
        "zzzzzzzzzzzzzz",
    ] {
        assert!(MachineId::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(MachineId::from_random(u64::MAX).as_str().len(), 14);
    assert!(serde_json::from_value::<MachineId>(json!("nope")).is_err());

    assert!(AppName::parse("my-app-2").is_ok());
    for bad in ["", "My-App", "-app", "app-", "a_b", &"a".repeat(64)] {
        assert!(AppName::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        AppName::parse("Bad").unwrap_err().to_string(),
        r#"invalid app name "Bad": may only contain lowercase letters, digits and '-'"#
    );

    assert!(VolumeId::parse("vol_4y5mpg9ldnwzqe3v").is_ok());
    for bad in ["vol_", "4y5mpg9ldnwzqe3v", "vol_ABC", "vol_a-b"] {
        assert!(VolumeId::parse(bad).is_err(), "{bad:?}");
    }
    let v = VolumeId::from_random(123456789);
    assert!(VolumeId::parse(v.as_str()).is_ok());
}

#[test]
fn app_create_accepts_app_name_or_name() {
    use hangar_types::app::CreateAppRequest;
    let a: CreateAppRequest =
        serde_json::from_value(json!({"app_name": "one", "org_slug": "personal"})).unwrap();
    let b: CreateAppRequest = serde_json::from_value(json!({"name": "one"})).unwrap();
    assert_eq!(a.app_name().unwrap(), b.app_name().unwrap());
    let both: CreateAppRequest =
        serde_json::from_value(json!({"name": "one", "app_name": "two"})).unwrap();
    assert!(both.app_name().is_err());
    let none: CreateAppRequest = serde_json::from_value(json!({})).unwrap();
    assert_eq!(
        none.app_name().unwrap_err().to_string(),
        r#"app_name: missing (give "app_name" or "name")"#
    );
}

#[test]
fn wait_query_reads_repeated_states_and_clamps_the_timeout() {
    let q = WaitQuery::from_pairs([
        ("state", "stopped"),
        ("state", "destroyed"),
        ("timeout", "120"),
        ("instance_id", "01H"),
    ])
    .unwrap();
    assert_eq!(q.states, [MachineState::Stopped, MachineState::Destroyed]);
    assert_eq!(q.timeout_secs, 60);
    assert_eq!(q.wanted_version(), Some("01H"));
    let default = WaitQuery::from_pairs([]).unwrap();
    assert_eq!(default.states, [MachineState::Started]);
    assert!(WaitQuery::from_pairs([("state", "sleeping")]).is_err());
}

#[test]
fn machine_states_use_the_api_names() {
    for s in MachineState::ALL {
        let v = serde_json::to_value(s).unwrap();
        assert_eq!(v, json!(s.as_str()));
        assert_eq!(s.as_str().parse::<MachineState>().unwrap(), s);
    }
    assert_eq!(MachineState::LaunchFailed.as_str(), "launch_failed");
}

#[test]
fn health_check_defaults() {
    let hc: HealthCheck = serde_json::from_value(json!({"tcp": {"port": 1}})).unwrap();
    assert_eq!(hc.interval_or_default(), Std::from_secs(15));
    assert_eq!(hc.timeout_or_default(), Std::from_secs(2));
    assert_eq!(hc.success_threshold_or_default(), 1);
    assert_eq!(hc.failure_threshold_or_default(), 3);
    // Without a timeout, a short interval bounds the default timeout.
    let fast: HealthCheck =
        serde_json::from_value(json!({"tcp": {"port": 1}, "interval": "500ms"})).unwrap();
    assert_eq!(fast.timeout_or_default(), Std::from_millis(500));
}
