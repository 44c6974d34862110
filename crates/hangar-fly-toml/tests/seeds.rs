//! Every fly.toml of the seeds, copied as written into tests/fixtures, parses
//! and plans into what a deploy of it must create.

mod common;

use common::fixture;
use hangar_fly_toml::{DeployStrategy, FlyToml};
use hangar_types::config::decode_base64;
use serde_json::json;

const IMAGE: &str = "registry.local/test-app:1";

#[test]
fn seed000_machine_config_file_with_container_and_http_service() {
    let toml = FlyToml::load(&fixture("seed000/fly.toml")).unwrap();
    assert!(toml.warnings().is_empty(), "{:?}", toml.warnings());
    assert_eq!(toml.app(), None);
    assert_eq!(toml.process_groups(), ["app"]);
    assert_eq!(toml.strategy(), DeployStrategy::Rolling);
    let plans = toml.plan(IMAGE).unwrap();
    assert_eq!(plans.len(), 1);
    let p = &plans[0];
    assert_eq!(p.group, "app");
    assert!(p.has_services);
    assert_eq!((p.first_deploy_machines, p.first_deploy_standbys), (2, 0));
    let c = &p.config;
    // The machine runs both containers of cli-config.json; the deployed image
    // replaces echo's, nginx keeps its own and depends on echo being healthy.
    let containers = c["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["name"], "nginx");
    assert_eq!(containers[0]["image"], "nginx:latest");
    assert_eq!(
        containers[0]["depends_on"],
        json!([{"container": "echo", "condition": "healthy"}])
    );
    assert_eq!(containers[1]["name"], "echo");
    assert_eq!(containers[1]["image"], IMAGE);
    assert_eq!(containers[1]["health_checks"][0]["type"], "exec");
    assert_eq!(containers[1]["env"]["FLY_PROCESS_GROUP"], "app");
    assert!(c.get("image").is_none());
    // nginx.conf was read next to fly.toml and sent as contents.
    let file = &containers[0]["files"][0];
    assert_eq!(file["guest_path"], "/etc/nginx/conf.d/default.conf");
    assert!(file.get("local_path").is_none());
    let bytes = decode_base64(file["raw_value"].as_str().unwrap()).unwrap();
    let on_disk = std::fs::read(fixture("seed000/nginx.conf")).unwrap();
    assert_eq!(bytes, on_disk);
    // [http_service] internal_port = 8080 → ports 80 (http) and 443 (tls+http).
    assert_eq!(
        c["services"],
        json!([{
            "protocol": "tcp",
            "internal_port": 8080,
            "autostop": "stop",
            "autostart": true,
            "ports": [
                {"port": 80, "handlers": ["http"]},
                {"port": 443, "handlers": ["tls", "http"]}
            ]
        }])
    );
    assert_eq!(
        c["metadata"],
        json!({"fly_process_group": "app", "fly_platform_version": "v2"})
    );
}

#[test]
fn seed001_same_fly_toml_without_blank_line() {
    let toml = FlyToml::load(&fixture("seed001/fly.toml")).unwrap();
    let plans = toml.plan(IMAGE).unwrap();
    assert_eq!(plans[0].config["containers"][1]["image"], IMAGE);
    assert_eq!(plans[0].config["services"][0]["internal_port"], 8080);
}

#[test]
fn seed000_inline_machine_config_placeholder_parses_and_plan_names_the_json_error() {
    // The seed's inline example elides the containers with "…": the fly.toml
    // is valid TOML, the JSON inside is not, and plan says where.
    let path = fixture("seed000_inline/fly.toml");
    let toml = FlyToml::load(&path).unwrap();
    let err = toml.plan(IMAGE).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:3:5: machine_config: config: expected value",
            path.display()
        )
    );
}

#[test]
fn seed001_empty_inline_machine_config_parses_and_plan_says_it_is_empty() {
    let path = fixture("seed001_inline.toml");
    let toml = FlyToml::load(&path).unwrap();
    let err = toml.plan(IMAGE).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:1:18: machine_config: expected a JSON file path or inline JSON starting with {{, found an empty string",
            path.display()
        )
    );
}

#[test]
fn seed002_two_process_groups_share_one_service_definition() {
    let path = fixture("seed002.toml");
    let toml = FlyToml::load(&path).unwrap();
    assert_eq!(toml.app(), Some("my-go-app-with-nginx"));
    assert_eq!(toml.process_groups(), ["web", "nginx"]);
    assert_eq!(toml.strategy(), DeployStrategy::Rolling);
    assert_eq!(toml.image(), None);
    // restart_limit is legacy fly.toml: read past with a warning.
    let warnings: Vec<String> = toml.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [format!(
            "{}:7:42: services[0].tcp_checks[0].restart_limit: not used by hangar, ignored",
            path.display()
        )]
    );
    // [build] dockerfile: building is out of scope; without --image, plan says so.
    let err = toml.plan("").unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:22:3: build.dockerfile: building images is out of scope for hangar: build and push the image yourself, then set [build] image or pass --image",
            path.display()
        )
    );
    let plans = toml.plan(IMAGE).unwrap();
    let groups: Vec<&str> = plans.iter().map(|p| p.group.as_str()).collect();
    assert_eq!(groups, ["web", "nginx"]);
    let expected_service = json!({
        "protocol": "tcp",
        "internal_port": 8080,
        "autostop": "stop",
        "autostart": true,
        "ports": [
            {"port": 80, "handlers": ["http"]},
            {"port": 443, "handlers": ["http"]}
        ],
        "checks": [{"type": "tcp", "interval": "30s", "timeout": "10s"}]
    });
    for (p, cmd) in plans.iter().zip([
        json!(["go", "run", "main.go"]),
        json!(["nginx", "-g", "daemon off;"]),
    ]) {
        assert!(p.has_services);
        assert_eq!((p.first_deploy_machines, p.first_deploy_standbys), (2, 0));
        assert_eq!(p.config["image"], IMAGE);
        assert_eq!(p.config["init"]["cmd"], cmd);
        assert_eq!(p.config["services"], json!([expected_service]));
        assert_eq!(p.config["metadata"]["fly_process_group"], p.group);
        assert_eq!(p.config["env"]["FLY_PROCESS_GROUP"], p.group);
    }
}

#[test]
fn seed003_http_service_autostop_and_concurrency() {
    let toml = FlyToml::load(&fixture("seed003.toml")).unwrap();
    assert!(toml.warnings().is_empty());
    let plans = toml.plan(IMAGE).unwrap();
    assert_eq!(plans.len(), 1);
    let p = &plans[0];
    assert_eq!((p.first_deploy_machines, p.first_deploy_standbys), (2, 0));
    assert_eq!(
        p.config["services"],
        json!([{
            "protocol": "tcp",
            "internal_port": 8080,
            "autostop": "stop",
            "autostart": true,
            "min_machines_running": 0,
            "ports": [
                {"port": 80, "handlers": ["http"], "force_https": true},
                {"port": 443, "handlers": ["tls", "http"]}
            ],
            "concurrency": {"type": "requests", "soft_limit": 200}
        }])
    );
}

/// The machine_config JSON examples of the seeds, each given as the
/// machine_config of a fly.toml.
#[test]
fn seed_machine_config_examples_plan() {
    for (name, containers, replaced) in [
        ("seed_example_configuration.json", 2, "my-app"),
        ("seed_rate_limiter.json", 2, "nginx"),
        ("seed_litefs.json", 1, "litefs"),
        ("seed_cli_config.json", 2, "nginx"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixture(name), dir.path().join("mc.json")).unwrap();
        std::fs::copy(fixture("seed000/nginx.conf"), dir.path().join("nginx.conf")).unwrap();
        let fly = dir.path().join("fly.toml");
        std::fs::write(&fly, "app = \"x\"\nmachine_config = \"mc.json\"\n").unwrap();
        let plans = FlyToml::load(&fly).unwrap().plan(IMAGE).unwrap();
        let c = &plans[0].config;
        let cs = c["containers"].as_array().unwrap();
        assert_eq!(cs.len(), containers, "{name}");
        // No `container` key: the first container runs the deployed image.
        let first = cs[0]["name"].as_str().unwrap_or("my-app");
        assert_eq!(first, replaced, "{name}");
        assert_eq!(cs[0]["image"], IMAGE, "{name}");
        // Without services, a standby instead of a second machine.
        let has = !c["services"].is_null();
        assert_eq!(plans[0].has_services, has, "{name}");
    }
}
