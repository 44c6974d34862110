//! `machine_config` given as a file path (relative to the fly.toml) and as
//! inline JSON, top level and under `[experimental]`: both give the same plan.

use std::path::Path;

use hangar_fly_toml::FlyToml;
use serde_json::json;

const CONFIG: &str = r#"{
  "containers": [
    {"name": "app", "image": "placeholder", "env": {"MODE": "web"}},
    {"name": "sidecar", "image": "registry.local/sidecar:1",
     "files": [{"guest_path": "/etc/sidecar.conf", "local_path": "conf/sidecar.conf"}],
     "depends_on": [{"container": "app", "condition": "started"}]}
  ],
  "guest": {"cpus": 2, "memory_mb": 512}
}"#;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn check_plan(toml: &FlyToml) {
    let plans = toml.plan("registry.local/app:7").unwrap();
    assert_eq!(plans.len(), 1);
    let c = &plans[0].config;
    // No `container` key: the container named "app" runs the deployed image.
    assert_eq!(c["containers"][0]["image"], "registry.local/app:7");
    assert_eq!(c["containers"][0]["env"]["MODE"], "web");
    assert_eq!(c["containers"][0]["env"]["LOG"], "debug");
    assert_eq!(c["containers"][1]["image"], "registry.local/sidecar:1");
    // The sidecar's local file was read relative to the fly.toml's directory.
    assert_eq!(
        c["containers"][1]["files"],
        json!([{"guest_path": "/etc/sidecar.conf", "raw_value": "cG9ydD05MDkwCg=="}])
    );
    // [[vm]] overrides the machine config's guest memory, keeps its cpus.
    assert_eq!(c["guest"], json!({"cpus": 2, "memory_mb": 1024}));
    assert_eq!(c["env"]["LOG"], "debug");
    assert_eq!(c["services"][0]["internal_port"], 8080);
    assert!(c.get("image").is_none());
}

const REST: &str =
    "[env]\nLOG = \"debug\"\n[[vm]]\nmemory = \"1gb\"\n[http_service]\ninternal_port = 8080\n";

#[test]
fn machine_config_from_a_file_relative_to_fly_toml() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "deploy/machine.json", CONFIG);
    write(dir.path(), "deploy/conf/sidecar.conf", "port=9090\n");
    // Paths are relative to the fly.toml, wherever the caller's cwd is.
    write(
        dir.path(),
        "deploy/fly.toml",
        &format!("app = \"mc\"\nmachine_config = \"machine.json\"\n{REST}"),
    );
    let toml = FlyToml::load(&dir.path().join("deploy/fly.toml")).unwrap();
    check_plan(&toml);
}

#[test]
fn machine_config_inline_json_in_experimental() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "conf/sidecar.conf", "port=9090\n");
    write(
        dir.path(),
        "fly.toml",
        &format!("app = \"mc\"\n{REST}[experimental]\nmachine_config = '''{CONFIG}'''\n"),
    );
    let toml = FlyToml::load(&dir.path().join("fly.toml")).unwrap();
    assert!(toml.warnings().is_empty(), "{:?}", toml.warnings());
    check_plan(&toml);
}

#[test]
fn machine_config_wrapped_in_config_key_is_read_too() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "conf/sidecar.conf", "port=9090\n");
    write(dir.path(), "mc.json", &format!("{{\"config\": {CONFIG}}}"));
    write(
        dir.path(),
        "fly.toml",
        &format!("machine_config = \"mc.json\"\n{REST}"),
    );
    check_plan(&FlyToml::load(&dir.path().join("fly.toml")).unwrap());
}

#[test]
fn bad_json_in_a_machine_config_file_names_the_file_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "mc.json",
        "{\n  \"containers\": [\n    {\"image\": 5}\n  ]\n}\n",
    );
    write(
        dir.path(),
        "fly.toml",
        "app = \"a\"\nmachine_config = \"mc.json\"\n",
    );
    let fly = dir.path().join("fly.toml");
    let err = FlyToml::load(&fly).unwrap().plan("img").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:18: machine_config: {}:3:15: config.containers[0].image: invalid type: integer `5`, expected a string",
            fly.display(),
            dir.path().join("mc.json").display()
        )
    );
}
