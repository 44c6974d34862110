//! Resolution tests: commands, env order, users, files, checks, and errors with
//! their JSON paths.

use super::*;
use crate::spec::ImageConfig;

fn image_dir() -> (tempfile::TempDir, ImageSpec) {
    let d = tempfile::tempdir().unwrap();
    let l = d.path().join("layer0");
    std::fs::create_dir_all(l.join("etc")).unwrap();
    std::fs::write(
        l.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    let img = ImageSpec {
        layers: vec![l],
        config: ImageConfig {
            entrypoint: Some(vec!["/bin/entry".into()]),
            cmd: Some(vec!["serve".into()]),
            env: Some(vec!["A=image".into(), "B=image".into(), "PATH=/bin".into()]),
            working_dir: Some("/srv".into()),
            user: Some("app".into()),
        },
        raw_config: Some("{\"config\":{}}".into()),
    };
    (d, img)
}

fn spec(config: serde_json::Value) -> (tempfile::TempDir, MachineSpec) {
    let (d, img) = image_dir();
    let spec = MachineSpec {
        machine_id: "m1".into(),
        env: [
            ("B".to_string(), "agent".to_string()),
            ("C".to_string(), "agent".to_string()),
        ]
        .into(),
        config: serde_json::from_value(config).unwrap(),
        images: [("img".to_string(), img)].into(),
        secrets: [("tok".to_string(), "c2VjcmV0".to_string())].into(),
        volumes: vec![],
        state_dir: d.path().join("state"),
        log_buffer_lines: None,
    };
    (d, spec)
}

#[test]
fn containers_resolve_command_env_user_files_and_checks() {
    let (_d, s) = spec(serde_json::json!({
        "env": {"C": "machine", "D": "machine"},
        "containers": [
            {"name": "web", "image": "img", "env": {"D": "container"},
             "cmd": ["other"],
             "files": [{"guest_path": "/etc/app.conf", "raw_value": "aGVsbG8=", "mode": 384},
                       {"guest_path": "/run/tok", "secret_name": "tok"},
                       {"guest_path": "/img.json", "image_config": "img"}],
             "health_checks": [{"type": "http", "port": 8080, "path": "/health", "interval": "1s",
                                "success_threshold": 2, "kind": "liveness", "unhealthy": "stop"}],
             "stop": {"signal": "SIGTERM"}},
            {"name": "side", "image": "img", "exec": ["/bin/side", "-v"], "user": "0:0",
             "depends_on": [{"container": "web", "condition": "healthy"}],
             "restart": {"policy": "no"}}
        ],
        "stop_config": {"timeout": "9s"}
    }));
    let plan = resolve(&s).unwrap();
    let web = &plan.containers[0];
    assert_eq!(web.launch.process.argv, vec!["/bin/entry", "other"]);
    assert_eq!(
        web.launch.process.env,
        vec![
            "A=image",
            "B=agent",
            "PATH=/bin",
            "C=machine",
            "D=container"
        ]
    );
    assert_eq!(web.launch.process.cwd, PathBuf::from("/srv"));
    assert_eq!(
        web.launch.process.user,
        User {
            uid: 1000,
            gid: 1000
        }
    );
    assert_eq!(web.launch.files[0].content, b"hello");
    assert_eq!(web.launch.files[0].mode, 0o600);
    assert_eq!(
        web.launch.files[0].owner,
        User {
            uid: 1000,
            gid: 1000
        }
    );
    assert_eq!(web.launch.files[1].content, b"secret");
    assert_eq!(web.launch.files[2].content, b"{\"config\":{}}");
    assert_eq!(web.checks[0].success_threshold, 2);
    assert_eq!(web.checks[0].kind, CheckKind::Liveness);
    assert_eq!(web.checks[0].on_unhealthy, UnhealthyAction::Stop);
    assert_eq!(web.checks[0].interval, Duration::from_secs(1));
    assert_eq!(
        web.stop,
        StopPlan {
            signal: libc::SIGTERM,
            timeout: Duration::from_secs(9)
        }
    );
    assert_eq!(web.restart.policy, RestartPolicyKind::OnFailure);
    assert_eq!(
        web.launch.rootfs.state_dir,
        s.state_dir.join("containers/web")
    );
    let side = &plan.containers[1];
    assert_eq!(side.launch.process.argv, vec!["/bin/side", "-v"]);
    assert_eq!(side.launch.process.user, User { uid: 0, gid: 0 });
    assert_eq!(
        side.depends_on,
        vec![Dependency {
            container: "web".into(),
            condition: Condition::Healthy
        }]
    );
    assert_eq!(side.restart.policy, RestartPolicyKind::No);
    assert_eq!(
        side.stop,
        StopPlan {
            signal: libc::SIGINT,
            timeout: Duration::from_secs(9)
        }
    );
}

#[test]
fn a_single_image_with_processes_becomes_one_container_per_process() {
    let (_d, s) = spec(serde_json::json!({
        "image": "img",
        "restart": {"policy": "always"},
        "processes": [{"cmd": ["web"]}, {"exec": ["/bin/worker"], "env": {"W": "1"}}]
    }));
    let plan = resolve(&s).unwrap();
    let names: Vec<_> = plan.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["process-0", "process-1"]);
    assert_eq!(
        plan.containers[0].launch.process.argv,
        vec!["/bin/entry", "web"]
    );
    assert_eq!(plan.containers[1].launch.process.argv, vec!["/bin/worker"]);
    assert!(
        plan.containers[1]
            .launch
            .process
            .env
            .contains(&"W=1".to_string())
    );
    assert!(
        plan.containers
            .iter()
            .all(|c| c.restart.policy == RestartPolicyKind::Always)
    );
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let (_d, s) = spec(serde_json::json!({
        "containers": [
            {"name": "a", "image": "img", "user": "nobody",
             "files": [{"guest_path": "/x", "local_path": "x.conf"}, {"guest_path": "rel", "raw_value": "eA=="}],
             "depends_on": [{"name": "ghost"}]},
            {"name": "a", "image": "missing"},
            {"name": "c", "image": "img", "health_checks": [{"type": "tcp"}], "restart": {"policy": "sometimes"}}
        ]
    }));
    let err = resolve(&s).unwrap_err();
    let all = err.problems.join("\n");
    for expected in [
        "config.containers[1].name: \"a\" is also the name of config.containers[0]",
        "config.containers[0].user: user \"nobody\": no such user",
        "config.containers[0].files[0].local_path: pilot does not read host files",
        "config.containers[0].files[1].guest_path: \"rel\" is not an absolute path",
        "config.containers[0].depends_on[0].name: no container named \"ghost\"",
        "config.containers[1].image: \"missing\" is not among the spec's images",
        "config.containers[2].health_checks[0].port: missing",
        "config.containers[2].restart.policy: unknown policy \"sometimes\"",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
}

#[test]
fn dependency_cycles_are_rejected() {
    let (_d, s) = spec(serde_json::json!({
        "containers": [
            {"name": "a", "image": "img", "depends_on": [{"name": "b"}]},
            {"name": "b", "image": "img", "depends_on": [{"name": "a", "condition": "healthy"}]}
        ]
    }));
    let err = resolve(&s).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.contains("cycle: a -> b -> a")),
        "{err}"
    );
}
