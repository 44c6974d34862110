//! A table of invalid configs: each one is rejected by validation with exactly
//! the listed problems (path and message), and a config with many problems
//! reports all of them.

use hangar_types::parse_machine_config_document;

/// (what, config JSON, expected problems as "path: message")
const CASES: &[(&str, &str, &[&str])] = &[
    (
        "duplicate container names",
        r#"{"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]}"#,
        &[r#"config.containers[1].name: duplicate container name "a" (also config.containers[0])"#],
    ),
    (
        "duplicate name derived from images",
        r#"{"containers": [{"image": "r.io/app:1"}, {"image": "other.io/team/app:2"}]}"#,
        &[
            r#"config.containers[1].image: duplicate container name "app" (also config.containers[0])"#,
        ],
    ),
    (
        "depends_on a missing container",
        r#"{"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y", "depends_on": [{"name": "db"}]}]}"#,
        &[r#"config.containers[1].depends_on[0]: no container named "db""#],
    ),
    (
        "depends_on itself",
        r#"{"containers": [{"name": "a", "image": "x", "depends_on": [{"container": "a"}]}]}"#,
        &[r#"config.containers[0].depends_on[0]: container "a" depends on itself"#],
    ),
    (
        "depends_on naming nobody",
        r#"{"containers": [{"name": "a", "image": "x", "depends_on": [{"condition": "started"}]}]}"#,
        &[r#"config.containers[0].depends_on[0]: missing the container to wait for (give "name")"#],
    ),
    (
        "depends_on name and container disagree",
        r#"{"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x", "depends_on": [{"name": "a", "container": "c"}]}]}"#,
        &[r#"config.containers[1].depends_on[0]: "name" ("a") and "container" ("c") disagree"#],
    ),
    (
        "two-container cycle",
        r#"{"containers": [{"name": "a", "image": "x", "depends_on": [{"name": "b"}]}, {"name": "b", "image": "x", "depends_on": [{"name": "a"}]}]}"#,
        &["config.containers: dependency cycle a → b → a"],
    ),
    (
        "three-container cycle named from its smallest member",
        r#"{"containers": [{"name": "web", "image": "x", "depends_on": [{"name": "db"}]}, {"name": "db", "image": "x", "depends_on": [{"name": "cache"}]}, {"name": "cache", "image": "x", "depends_on": [{"name": "web"}]}]}"#,
        &["config.containers: dependency cycle cache → web → db → cache"],
    ),
    (
        "unknown condition",
        r#"{"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x", "depends_on": [{"name": "a", "condition": "ready"}]}]}"#,
        &[
            r#"config.containers[1].depends_on[0].condition: unknown condition "ready" (expected started, healthy or exited_successfully)"#,
        ],
    ),
    (
        "healthy on a container without health checks",
        r#"{"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x", "depends_on": [{"name": "a", "condition": "healthy"}]}]}"#,
        &[
            r#"config.containers[1].depends_on[0].condition: container "a" has no health checks, so it can never be healthy"#,
        ],
    ),
    (
        "raw_value not base64",
        r#"{"containers": [{"name": "a", "image": "x", "files": [{"guest_path": "/etc/a", "raw_value": "not base64!"}]}]}"#,
        &["config.containers[0].files[0].raw_value: not valid base64"],
    ),
    (
        "guest_path relative",
        r#"{"image": "x", "files": [{"guest_path": "etc/a", "raw_value": "YQ=="}]}"#,
        &[r#"config.files[0].guest_path: must be an absolute path (got "etc/a")"#],
    ),
    (
        "guest_path with ..",
        r#"{"image": "x", "files": [{"guest_path": "/etc/../root/.ssh/keys", "raw_value": "YQ=="}]}"#,
        &[r#"config.files[0].guest_path: must not contain ".." (got "/etc/../root/.ssh/keys")"#],
    ),
    (
        "guest_path under /proc",
        r#"{"image": "x", "files": [{"guest_path": "/proc/sys/kernel/x", "raw_value": "YQ=="}]}"#,
        &[r#"config.files[0].guest_path: must not be under /proc (got "/proc/sys/kernel/x")"#],
    ),
    (
        "guest_path under /sys, spelled with a double slash",
        r#"{"image": "x", "files": [{"guest_path": "//sys/x", "raw_value": "YQ=="}]}"#,
        &[r#"config.files[0].guest_path: must not be under /sys (got "//sys/x")"#],
    ),
    (
        "guest_path under /dev",
        r#"{"containers": [{"name": "a", "image": "x", "files": [{"guest_path": "/dev/sda", "secret_name": "S"}]}]}"#,
        &[r#"config.containers[0].files[0].guest_path: must not be under /dev (got "/dev/sda")"#],
    ),
    (
        "file without a source",
        r#"{"image": "x", "files": [{"guest_path": "/a"}]}"#,
        &[
            "config.files[0]: give exactly one of raw_value, secret_name, local_path or image_config (none given)",
        ],
    ),
    (
        "file with two sources",
        r#"{"image": "x", "files": [{"guest_path": "/a", "raw_value": "YQ==", "secret_name": "S"}]}"#,
        &[
            "config.files[0]: give exactly one of raw_value, secret_name, local_path or image_config (got raw_value and secret_name)",
        ],
    ),
    (
        "health check without a probe",
        r#"{"containers": [{"name": "a", "image": "x", "healthchecks": [{"interval": 5}]}]}"#,
        &[
            r#"config.containers[0].healthchecks[0]: health check has no probe (give one of "tcp", "http", "exec", or a "type")"#,
        ],
    ),
    (
        "health check with two nested probes",
        r#"{"containers": [{"name": "a", "image": "x", "healthchecks": [{"tcp": {"port": 1}, "http": {"port": 2}}]}]}"#,
        &[
            "config.containers[0].healthchecks[0]: health check has 2 probes (tcp and http); give exactly one",
        ],
    ),
    (
        "health check both flattened and nested",
        r#"{"containers": [{"name": "a", "image": "x", "health_checks": [{"type": "http", "exec": {"command": ["true"]}}]}]}"#,
        &[
            "config.containers[0].health_checks[0]: health check has 2 probes (exec and http); give exactly one",
        ],
    ),
    (
        "unknown flattened type",
        r#"{"containers": [{"name": "a", "image": "x", "health_checks": [{"type": "grpc"}]}]}"#,
        &[
            r#"config.containers[0].health_checks[0].type: unknown health check type "grpc" (expected tcp, http or exec)"#,
        ],
    ),
    (
        "exec check without a command",
        r#"{"containers": [{"name": "a", "image": "x", "healthchecks": [{"exec": {"command": []}}]}]}"#,
        &["config.containers[0].healthchecks[0].exec.command: an exec check needs a command"],
    ),
    (
        "tcp check without a port",
        r#"{"containers": [{"name": "a", "image": "x", "health_checks": [{"type": "tcp"}]}]}"#,
        &["config.containers[0].health_checks[0].port: a tcp check needs a port"],
    ),
    (
        "thresholds below 1",
        r#"{"containers": [{"name": "a", "image": "x", "healthchecks": [{"tcp": {"port": 80}, "success_threshold": 0, "failure_threshold": -2}]}]}"#,
        &[
            "config.containers[0].healthchecks[0].success_threshold: must be at least 1 (got 0)",
            "config.containers[0].healthchecks[0].failure_threshold: must be at least 1 (got -2)",
        ],
    ),
    (
        "timeout longer than interval",
        r#"{"containers": [{"name": "a", "image": "x", "healthchecks": [{"tcp": {"port": 80}, "interval": "5s", "timeout": 10}]}]}"#,
        &[
            "config.containers[0].healthchecks[0].timeout: timeout (10s) is longer than interval (5s)",
        ],
    ),
    (
        "service check timeout longer than interval",
        r#"{"image": "x", "services": [{"internal_port": 8080, "checks": [{"type": "http", "interval": "1s", "timeout": "1500ms"}]}]}"#,
        &["config.services[0].checks[0].timeout: timeout (1500ms) is longer than interval (1s)"],
    ),
    (
        "port above 65535",
        r#"{"image": "x", "services": [{"internal_port": 70000, "ports": [{"port": 443}]}]}"#,
        &["config.services[0].internal_port: port 70000 is outside 1–65535"],
    ),
    (
        "port 0",
        r#"{"image": "x", "services": [{"internal_port": 8080, "ports": [{"port": 0}]}]}"#,
        &["config.services[0].ports[0].port: port 0 is outside 1–65535"],
    ),
    (
        "health check port out of range",
        r#"{"containers": [{"name": "a", "image": "x", "healthchecks": [{"http": {"port": -1}}]}]}"#,
        &["config.containers[0].healthchecks[0].http.port: port -1 is outside 1–65535"],
    ),
    (
        "soft_limit above hard_limit",
        r#"{"image": "x", "services": [{"internal_port": 80, "concurrency": {"type": "requests", "soft_limit": 30, "hard_limit": 20}}]}"#,
        &["config.services[0].concurrency.soft_limit: soft_limit (30) is above hard_limit (20)"],
    ),
    (
        "unknown stop signal",
        r#"{"image": "x", "stop_config": {"signal": "SIGFOO"}}"#,
        &[r#"config.stop_config.signal: unknown signal "SIGFOO""#],
    ),
    (
        "unknown signal number in a container",
        r#"{"containers": [{"name": "a", "image": "x", "stop": {"signal": 99}}]}"#,
        &[r#"config.containers[0].stop.signal: unknown signal "99""#],
    ),
    (
        "more cpus than any host",
        r#"{"image": "x", "guest": {"cpus": 4096, "memory_mb": 256}}"#,
        &["config.guest.cpus: 4096 cpus is more than any host has (at most 1024)"],
    ),
    (
        "zero cpus",
        r#"{"image": "x", "guest": {"cpus": 0}}"#,
        &["config.guest.cpus: must be at least 1 (got 0)"],
    ),
    (
        "more memory than any host",
        r#"{"image": "x", "guest": {"memory_mb": 100000000}}"#,
        &[
            "config.guest.memory_mb: 100000000 MB is more memory than any host has (at most 67108864)",
        ],
    ),
    (
        "too little memory",
        r#"{"image": "x", "guest": {"memory_mb": 8}}"#,
        &["config.guest.memory_mb: must be at least 16 (got 8)"],
    ),
    (
        "unknown restart policy",
        r#"{"image": "x", "restart": {"policy": "sometimes"}}"#,
        &[
            r#"config.restart.policy: unknown restart policy "sometimes" (expected no, always or on-failure)"#,
        ],
    ),
    (
        "unknown autostop",
        r#"{"image": "x", "services": [{"internal_port": 80, "autostop": "pause"}]}"#,
        &[
            r#"config.services[0].autostop: unknown autostop "pause" (expected true, false, "off", "stop" or "suspend")"#,
        ],
    ),
    (
        "no image and no containers",
        r#"{"guest": {"cpus": 1}}"#,
        &["config.image: an image is required (or give containers)"],
    ),
    (
        "container without image",
        r#"{"containers": [{"name": "a"}]}"#,
        &["config.containers[0].image: an image is required"],
    ),
    (
        "both healthchecks spellings",
        r#"{"containers": [{"name": "a", "image": "x", "healthchecks": [{"tcp": {"port": 1}}], "health_checks": [{"tcp": {"port": 1}}]}]}"#,
        &[
            r#"config.containers[0]: give health checks under "healthchecks" or "health_checks", not both"#,
        ],
    ),
    (
        "invalid container name",
        r#"{"containers": [{"name": "../etc", "image": "x"}]}"#,
        &[
            r#"config.containers[0].name: invalid container name "../etc" (use letters, digits, '-', '_' and '.', not starting with '.' or '-')"#,
        ],
    ),
    (
        "malformed standby",
        r#"{"image": "x", "standbys": ["not-a-machine"]}"#,
        &[
            r#"config.standbys[0]: invalid machine id "not-a-machine": must be exactly 14 lowercase hex digits"#,
        ],
    ),
    (
        "mount of a malformed volume id under /proc",
        r#"{"image": "x", "mounts": [{"volume": "data", "path": "/proc/data"}]}"#,
        &[
            r#"config.mounts[0].volume: invalid volume id "data": must start with "vol_""#,
            r#"config.mounts[0].path: must not be under /proc (got "/proc/data")"#,
        ],
    ),
    (
        "unknown schedule",
        r#"{"image": "x", "schedule": "yearly"}"#,
        &[
            r#"config.schedule: unknown schedule "yearly" (expected hourly, daily, weekly or monthly)"#,
        ],
    ),
    (
        "unknown TLS version",
        r#"{"image": "x", "services": [{"internal_port": 80, "ports": [{"port": 80}, {"port": 443, "handlers": ["tls", "http"], "tls_options": {"versions": ["TLSv1.1", "tlsv1.3"]}}]}]}"#,
        &[
            r#"config.services[0].ports[1].tls_options.versions[0]: unknown TLS version "TLSv1.1" (expected TLSv1.2 or TLSv1.3)"#,
        ],
    ),
    (
        "empty ALPN protocol",
        r#"{"image": "x", "services": [{"internal_port": 80, "ports": [{"port": 443, "handlers": ["tls"], "tls_options": {"alpn": ["h2", ""]}}]}]}"#,
        &["config.services[0].ports[0].tls_options.alpn[1]: must not be empty"],
    ),
    (
        "unknown handler",
        r#"{"image": "x", "services": [{"internal_port": 80, "ports": [{"port": 443, "handlers": ["tls", "htttp"]}]}]}"#,
        &[
            r#"config.services[0].ports[0].handlers[1]: unknown handler "htttp" (expected http, tls, proxy_proto, pg_tls or edge_http)"#,
        ],
    ),
    (
        "unknown PROXY protocol version",
        r#"{"image": "x", "services": [{"internal_port": 80, "ports": [{"port": 25, "handlers": ["proxy_proto"], "proxy_proto_options": {"version": "v3"}}]}]}"#,
        &[
            r#"config.services[0].ports[0].proxy_proto_options.version: unknown PROXY protocol version "v3" (expected v1 or v2)"#,
        ],
    ),
    (
        "negative HTTP timeouts",
        r#"{"image": "x", "services": [{"internal_port": 80, "ports": [{"port": 80, "handlers": ["http"], "http_options": {"idle_timeout": -1, "headers_read_timeout": -30}}]}]}"#,
        &[
            "config.services[0].ports[0].http_options.idle_timeout: must not be negative (got -1)",
            "config.services[0].ports[0].http_options.headers_read_timeout: must not be negative (got -30)",
        ],
    ),
    (
        "file mode out of range",
        r#"{"image": "x", "files": [{"guest_path": "/a", "raw_value": "YQ==", "mode": 65536}]}"#,
        &["config.files[0].mode: must be between 0 and 0o7777 (4095) (got 65536)"],
    ),
];

#[test]
fn every_bad_input_reports_exactly_its_problems() {
    assert!(CASES.len() >= 30);
    for (what, json, expected) in CASES {
        let config = parse_machine_config_document(json)
            .unwrap_or_else(|e| panic!("{what}: should parse, got {e}"));
        let problems = match config.validate() {
            Ok(()) => panic!("{what}: validated, expected {expected:?}"),
            Err(p) => p,
        };
        let got: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(&got, expected, "{what}");
    }
}

#[test]
fn all_problems_are_reported_one_per_line() {
    let json = r#"{"config": {
        "guest": {"cpus": 0, "memory_mb": 1},
        "stop_config": {"signal": "SIGNOPE"},
        "containers": [
            {"name": "a", "image": "x", "depends_on": [{"name": "db"}]},
            {"name": "a", "image": "y", "files": [{"guest_path": "/sys/x"}]}
        ]
    }}"#;
    let problems = parse_machine_config_document(json)
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(
        problems.to_string(),
        [
            "config.guest.cpus: must be at least 1 (got 0)",
            "config.guest.memory_mb: must be at least 16 (got 1)",
            r#"config.stop_config.signal: unknown signal "SIGNOPE""#,
            r#"config.containers[1].name: duplicate container name "a" (also config.containers[0])"#,
            r#"config.containers[0].depends_on[0]: no container named "db""#,
            r#"config.containers[1].files[0].guest_path: must not be under /sys (got "/sys/x")"#,
            "config.containers[1].files[0]: give exactly one of raw_value, secret_name, local_path or image_config (none given)",
        ]
        .join("\n")
    );
    assert_eq!(problems.len(), 7);
}

#[test]
fn unknown_keys_are_not_validated() {
    // Unknown keys anywhere (even with values that would be wrong for a known
    // key) do not produce problems.
    let json = r#"{"image": "x", "future_field": {"port": 99999},
        "services": [{"internal_port": 80, "new_knob": true}]}"#;
    parse_machine_config_document(json)
        .unwrap()
        .validate()
        .unwrap();
}

#[test]
fn port_handlers_and_options_fly_users_write_are_accepted() {
    // What `fly launch` writes for an HTTP service with TLS options, a raw
    // TLS port, Postgres and PROXY protocol ports, in the spellings real
    // configs use.
    let json = r#"{"image": "x", "services": [
        {"protocol": "tcp", "internal_port": 8080, "ports": [
            {"port": 80, "handlers": ["http"], "force_https": true,
             "http_options": {"idle_timeout": 0, "headers_read_timeout": 30}},
            {"port": 443, "handlers": ["tls", "http"],
             "tls_options": {"alpn": ["h2", "http/1.1"], "versions": ["TLSv1.2", "TLSv1.3"],
                             "default_self_signed": false}}]},
        {"protocol": "tcp", "internal_port": 9000, "ports": [
            {"port": 9443, "handlers": ["TLS"], "tls_options": {"alpn": [], "versions": ["tlsv1.3"]}},
            {"port": 5432, "handlers": ["pg_tls"]},
            {"port": 8443, "handlers": ["edge_http"]},
            {"port": 2525, "handlers": ["proxy_proto"], "proxy_proto_options": {"version": "v2"}},
            {"port": 2526, "handlers": ["proxy_proto"], "proxy_proto_options": {"version": "v1"}}]}
    ]}"#;
    parse_machine_config_document(json)
        .unwrap()
        .validate()
        .unwrap();
}
