//! fly.toml files shaped like the ones `fly launch` writes and users keep
//! editing: single-quoted strings, an empty `[build]`, boolean autostop, a
//! release command, old `[[services]]` blocks with legacy keys.

use std::path::Path;

use hangar_fly_toml::{FlyToml, MountPlan};
use serde_json::json;

fn parse(text: &str) -> FlyToml {
    FlyToml::parse(text, Path::new("fly.toml")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn launch_generated_phoenix_app_with_volume() {
    let toml = parse(
        r#"# fly.toml app configuration file generated for books on 2024-05-01T10:00:00Z
#
app = 'books'
primary_region = 'fra'
kill_signal = 'SIGTERM'

[build]

[deploy]
  release_command = '/app/bin/migrate'

[env]
  PHX_HOST = 'books.example.com'
  PORT = '8080'

[[mounts]]
  source = 'books_data'
  destination = '/mnt/data'
  initial_size = '40gb'

[http_service]
  internal_port = 8080
  force_https = true
  auto_stop_machines = true
  auto_start_machines = false
  min_machines_running = 0
  processes = ['app']

  [http_service.concurrency]
    type = 'connections'
    hard_limit = 1000
    soft_limit = 1000

[[vm]]
  memory = '1gb'
  cpu_kind = 'shared'
  cpus = 1
"#,
    );
    let warnings: Vec<String> = toml.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        ["fly.toml:10:3: deploy.release_command: not used by hangar, ignored"]
    );
    // An empty [build] and no --image: nothing to deploy, and plan says so.
    assert_eq!(
        toml.deploy_image(None).unwrap_err().to_string(),
        "fly.toml: build.image: no image to deploy: set [build] image or pass --image"
    );
    let plans = toml.plan("registry.local/books:1").unwrap();
    let p = &plans[0];
    assert_eq!(p.group, "app");
    assert_eq!(
        p.config["services"][0],
        json!({
            "protocol": "tcp",
            "internal_port": 8080,
            "autostop": true,
            "autostart": false,
            "min_machines_running": 0,
            "ports": [
                {"port": 80, "handlers": ["http"], "force_https": true},
                {"port": 443, "handlers": ["tls", "http"]}
            ],
            "concurrency": {"type": "connections", "soft_limit": 1000, "hard_limit": 1000}
        })
    );
    assert_eq!(
        p.config["guest"],
        json!({"memory_mb": 1024, "cpu_kind": "shared", "cpus": 1})
    );
    assert_eq!(p.config["stop_config"], json!({"signal": "SIGTERM"}));
    assert_eq!(p.config["env"]["PORT"], "8080");
    assert_eq!(p.config["env"]["PRIMARY_REGION"], "fra");
    assert_eq!(
        p.mounts,
        [MountPlan {
            source: "books_data".into(),
            destination: "/mnt/data".into(),
            initial_size_gb: Some(40)
        }]
    );
    // A volume: one machine, services or not.
    assert_eq!((p.first_deploy_machines, p.first_deploy_standbys), (1, 0));
}

#[test]
fn old_style_services_block_with_tls_options_and_statics() {
    let toml = parse(
        r#"app = "legacy"
kill_timeout = 5

[experimental]
  auto_rollback = true

[[services]]
  http_checks = []
  internal_port = 3000
  processes = ["app"]
  protocol = "tcp"
  script_checks = []
  [services.concurrency]
    hard_limit = 25
    soft_limit = 20
    type = "connections"

  [[services.ports]]
    force_https = true
    handlers = ["http"]
    port = 80

  [[services.ports]]
    handlers = ["tls", "http"]
    port = 443
    [services.ports.tls_options]
      alpn = ["h2", "http/1.1"]
    [services.ports.http_options.response.headers]
      X-Frame-Options = "DENY"

  [[services.tcp_checks]]
    grace_period = "1s"
    interval = "15s"
    restart_limit = 0
    timeout = "2s"

[[statics]]
  guest_path = "/app/public"
  url_prefix = "/static/"
"#,
    );
    let warnings: Vec<String> = toml.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "fly.toml:5:3: experimental.auto_rollback: not used by hangar, ignored",
            "fly.toml:12:3: services[0].script_checks: not used by hangar, ignored",
            "fly.toml:34:5: services[0].tcp_checks[0].restart_limit: not used by hangar, ignored",
        ]
    );
    let plans = toml.plan("registry.local/legacy:9").unwrap();
    let c = &plans[0].config;
    assert_eq!(
        c["services"][0]["ports"][1],
        json!({
            "port": 443,
            "handlers": ["tls", "http"],
            "tls_options": {"alpn": ["h2", "http/1.1"]},
            "http_options": {"response": {"headers": {"X-Frame-Options": "DENY"}}}
        })
    );
    assert_eq!(
        c["services"][0]["checks"],
        json!([{"type": "tcp", "interval": "15s", "timeout": "2s", "grace_period": "1s"}])
    );
    // Both autostop and autostart unset: turned on.
    assert_eq!(c["services"][0]["autostop"], "stop");
    assert_eq!(c["services"][0]["autostart"], true);
    assert_eq!(c["stop_config"], json!({"timeout": 5}));
    assert_eq!(
        c["statics"],
        json!([{"guest_path": "/app/public", "url_prefix": "/static/"}])
    );
}

#[test]
fn worker_only_app_gets_a_standby() {
    let toml = parse(
        "app = 'cron'\n[build]\n  image = 'registry.local/cron:2'\n[processes]\n  cron = 'supercronic /app/crontab'\n",
    );
    let plans = toml.plan("").unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].group, "cron");
    assert_eq!(plans[0].config["image"], "registry.local/cron:2");
    assert_eq!(
        plans[0].config["init"]["cmd"],
        json!(["supercronic", "/app/crontab"])
    );
    assert!(!plans[0].has_services);
    assert_eq!(
        (
            plans[0].first_deploy_machines,
            plans[0].first_deploy_standbys
        ),
        (1, 1)
    );
}
