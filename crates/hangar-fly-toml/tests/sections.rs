//! One fly.toml using every section Hangar reads: what each process group's
//! machine config, volumes and first-deploy counts become.

use hangar_fly_toml::{DeployStrategy, FlyToml, GroupPlan, MountPlan};
use serde_json::json;

const FLY_TOML: &str = r#"
app = "shop"
primary_region = "ams"
kill_signal = "SIGTERM"
kill_timeout = "30s"
swap_size_mb = 512

[build]
  image = "registry.local/shop:3"

[env]
  LOG_LEVEL = "info"
  WORKERS = 4

[processes]
  web = "bin/server --port 8080"
  worker = "bin/worker"
  db = "postgres -D /data"

[deploy]
  strategy = "canary"

[http_service]
  internal_port = 8080
  force_https = true
  auto_stop_machines = "suspend"
  auto_start_machines = true
  min_machines_running = 1
  processes = ["web"]
  [http_service.concurrency]
    type = "requests"
    soft_limit = 20
    hard_limit = 25
  [[http_service.checks]]
    interval = "15s"
    timeout = "2s"
    grace_period = "5s"
    method = "GET"
    path = "/health"
    [http_service.checks.headers]
      X-Check = "yes"

[[services]]
  internal_port = 5432
  protocol = "tcp"
  processes = ["db"]
  auto_stop_machines = false
  [[services.ports]]
    start_port = 5432
    end_port = 5433
    handlers = ["pg_tls"]
  [[services.http_checks]]
    path = "/ready"
    protocol = "http"

[checks.db_alive]
  type = "tcp"
  port = 5432
  interval = 10
  processes = ["db"]

[[vm]]
  size = "shared-cpu-2x"

[[vm]]
  memory = "2gb"
  processes = ["db"]

[[vm]]
  cpu_kind = "performance"
  cpus = 4
  memory_mb = 8192
  processes = ["worker"]

[mounts]
  source = "pgdata"
  destination = "/data"
  initial_size = "10gb"
  processes = ["db"]

[[restart]]
  policy = "always"
  processes = ["worker"]

[[restart]]
  policy = "on-failure"
  max_retries = 3
  processes = ["web"]

[[files]]
  guest_path = "/etc/motd"
  raw_value = "aGVsbG8K"

[[files]]
  guest_path = "/etc/secret"
  secret_name = "API_KEY"
  processes = ["web"]

[experimental]
  entrypoint = ["/bin/tini", "--"]

[metrics]
  port = 9091
  path = "/metrics"
"#;

fn plans() -> (FlyToml, Vec<GroupPlan>) {
    let toml = FlyToml::parse(FLY_TOML, std::path::Path::new("fly.toml")).unwrap();
    let image = toml.deploy_image(None).unwrap();
    let plans = toml.plan(&image).unwrap();
    (toml, plans)
}

#[test]
fn top_level_values() {
    let (toml, plans) = plans();
    assert!(toml.warnings().is_empty(), "{:?}", toml.warnings());
    assert_eq!(toml.app(), Some("shop"));
    assert_eq!(toml.primary_region(), Some("ams"));
    assert_eq!(toml.image(), Some("registry.local/shop:3"));
    assert_eq!(toml.strategy(), DeployStrategy::Canary);
    assert_eq!(toml.process_groups(), ["web", "worker", "db"]);
    for p in &plans {
        let c = &p.config;
        assert_eq!(c["image"], "registry.local/shop:3");
        assert_eq!(
            c["env"],
            json!({"LOG_LEVEL": "info", "WORKERS": "4", "FLY_PROCESS_GROUP": p.group, "PRIMARY_REGION": "ams"})
        );
        assert_eq!(
            c["metadata"],
            json!({"fly_process_group": p.group, "fly_platform_version": "v2"})
        );
        assert_eq!(
            c["stop_config"],
            json!({"signal": "SIGTERM", "timeout": "30s"})
        );
        assert_eq!(c["init"]["entrypoint"], json!(["/bin/tini", "--"]));
        assert_eq!(c["init"]["swap_size_mb"], 512);
    }
}

#[test]
fn web_group_gets_the_http_service_and_two_machines() {
    let (_, plans) = plans();
    let web = &plans[0];
    assert_eq!(web.group, "web");
    assert_eq!(
        web.config["init"]["cmd"],
        json!(["bin/server", "--port", "8080"])
    );
    assert_eq!(
        web.config["services"],
        json!([{
            "protocol": "tcp",
            "internal_port": 8080,
            "autostop": "suspend",
            "autostart": true,
            "min_machines_running": 1,
            "ports": [
                {"port": 80, "handlers": ["http"], "force_https": true},
                {"port": 443, "handlers": ["tls", "http"]}
            ],
            "concurrency": {"type": "requests", "soft_limit": 20, "hard_limit": 25},
            "checks": [{
                "type": "http", "interval": "15s", "timeout": "2s", "grace_period": "5s",
                "method": "GET", "path": "/health",
                "headers": [{"name": "X-Check", "values": ["yes"]}]
            }]
        }])
    );
    assert_eq!(
        web.config["guest"],
        json!({"cpu_kind": "shared", "cpus": 2, "memory_mb": 512})
    );
    assert_eq!(
        web.config["restart"],
        json!({"policy": "on-failure", "max_retries": 3})
    );
    assert_eq!(
        web.config["files"],
        json!([{"guest_path": "/etc/secret", "secret_name": "API_KEY"}])
    );
    assert!(web.config.get("metrics").is_none());
    assert!(web.config.get("checks").is_none());
    assert!(web.has_services);
    assert!(web.mounts.is_empty());
    assert_eq!(
        (web.first_deploy_machines, web.first_deploy_standbys),
        (2, 0)
    );
}

#[test]
fn worker_group_without_services_gets_one_machine_and_a_standby() {
    let (_, plans) = plans();
    let worker = &plans[1];
    assert_eq!(worker.group, "worker");
    assert_eq!(worker.config["init"]["cmd"], json!(["bin/worker"]));
    assert!(worker.config.get("services").is_none());
    assert!(!worker.has_services);
    // The preset applies to every group; the worker's own [[vm]] overrides it.
    assert_eq!(
        worker.config["guest"],
        json!({"cpu_kind": "performance", "cpus": 4, "memory_mb": 8192})
    );
    assert_eq!(worker.config["restart"], json!({"policy": "always"}));
    assert!(worker.config.get("files").is_none());
    assert!(worker.config.get("metrics").is_none());
    assert_eq!(
        (worker.first_deploy_machines, worker.first_deploy_standbys),
        (1, 1)
    );
}

#[test]
fn db_group_with_a_volume_gets_one_machine() {
    let (_, plans) = plans();
    let db = &plans[2];
    assert_eq!(db.group, "db");
    assert_eq!(db.config["init"]["cmd"], json!(["postgres", "-D", "/data"]));
    assert_eq!(
        db.config["services"],
        json!([{
            "protocol": "tcp",
            "internal_port": 5432,
            "autostop": false,
            "ports": [{"start_port": 5432, "end_port": 5433, "handlers": ["pg_tls"]}],
            "checks": [{"type": "http", "path": "/ready", "protocol": "http"}]
        }])
    );
    assert_eq!(
        db.config["checks"],
        json!({"db_alive": {"type": "tcp", "port": 5432, "interval": 10}})
    );
    // Its own [[vm]] replaces the one for every group (flyctl picks one).
    assert_eq!(db.config["guest"], json!({"memory_mb": 2048}));
    // Sections without `processes` go to the default group: "app" if there
    // is one, else the first name alphabetically, here "db".
    assert_eq!(
        db.config["files"],
        json!([{"guest_path": "/etc/motd", "raw_value": "aGVsbG8K"}])
    );
    assert_eq!(
        db.config["metrics"],
        json!({"port": 9091, "path": "/metrics"})
    );
    assert!(db.config.get("restart").is_none());
    assert!(db.config.get("mounts").is_none());
    assert_eq!(
        db.mounts,
        [MountPlan {
            source: "pgdata".into(),
            destination: "/data".into(),
            initial_size_gb: Some(10)
        }]
    );
    assert_eq!(
        db.mounts[0].machine_mount("vol_0123456789abcdef"),
        json!({"volume": "vol_0123456789abcdef", "path": "/data", "name": "pgdata"})
    );
    assert!(db.has_services);
    assert_eq!((db.first_deploy_machines, db.first_deploy_standbys), (1, 0));
}

#[test]
fn local_files_are_read_relative_to_the_fly_toml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/app.ini"), "[app]\nx=1\n").unwrap();
    let fly = dir.path().join("fly.toml");
    std::fs::write(
        &fly,
        "[[files]]\nguest_path = \"/etc/app.ini\"\nlocal_path = \"conf/app.ini\"\n",
    )
    .unwrap();
    let plans = FlyToml::load(&fly).unwrap().plan("img:1").unwrap();
    assert_eq!(
        plans[0].config["files"],
        json!([{"guest_path": "/etc/app.ini", "raw_value": "W2FwcF0KeD0xCg=="}])
    );
    // No services, no volumes: one machine and a standby.
    assert_eq!(
        (
            plans[0].first_deploy_machines,
            plans[0].first_deploy_standbys
        ),
        (1, 1)
    );
}

#[test]
fn every_strategy_spelling() {
    for (s, want) in [
        ("rolling", DeployStrategy::Rolling),
        ("immediate", DeployStrategy::Immediate),
        ("canary", DeployStrategy::Canary),
        ("bluegreen", DeployStrategy::Bluegreen),
    ] {
        let toml = FlyToml::parse(
            &format!("[deploy]\nstrategy = \"{s}\"\n"),
            std::path::Path::new("fly.toml"),
        )
        .unwrap();
        assert_eq!(toml.strategy(), want);
        assert_eq!(want.as_str(), s);
    }
}

#[test]
fn restart_policy_spellings() {
    for (written, sent) in [
        ("always", "always"),
        ("never", "never"),
        ("no", "no"),
        ("on-failure", "on-failure"),
        ("on-fail", "on-failure"),
    ] {
        let toml = FlyToml::parse(
            &format!("[[restart]]\npolicy = \"{written}\"\nretries = 2\n"),
            std::path::Path::new("fly.toml"),
        )
        .unwrap();
        let plans = toml.plan("img").unwrap();
        assert_eq!(
            plans[0].config["restart"],
            json!({"policy": sent, "max_retries": 2}),
            "{written}"
        );
    }
}

#[test]
fn sections_without_processes_go_to_the_app_group() {
    let toml = FlyToml::parse(
        "[processes]\nworker = \"bin/worker\"\napp = \"bin/web\"\n[http_service]\ninternal_port = 8080\n[[vm]]\nsize = \"shared-cpu-4x\"\n[[restart]]\npolicy = \"always\"\n",
        std::path::Path::new("fly.toml"),
    )
    .unwrap();
    assert_eq!(toml.process_groups(), ["worker", "app"]);
    let plans = toml.plan("img").unwrap();
    let (worker, app) = (&plans[0], &plans[1]);
    assert_eq!(app.group, "app");
    assert!(app.has_services);
    assert_eq!(app.config["restart"], json!({"policy": "always"}));
    assert!(!worker.has_services);
    assert!(worker.config.get("restart").is_none());
    assert_eq!(
        (worker.first_deploy_machines, worker.first_deploy_standbys),
        (1, 1)
    );
    // A [[vm]] naming no group is for every group.
    for p in &plans {
        assert_eq!(
            p.config["guest"],
            json!({"cpu_kind": "shared", "cpus": 4, "memory_mb": 1024})
        );
    }
}
