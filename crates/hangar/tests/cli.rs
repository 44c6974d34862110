//! The `hangar` CLI end to end: the real binary against a real `hangar serve`
//! (temp data dir, loopback-only machines), images pushed to a real registry
//! on loopback. Seed files are fixtures copied as written; their images are
//! swapped with `--image-rewrite` / `HANGAR_IMAGE_REWRITE`, never by editing.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Server, TOKEN, pushed_image};
use hangar_test_support::{ImageBuilder, Registry};
use serde_json::{Value, json};

const TESTAPP: &str = "/usr/local/bin/testapp";

/// What one `hangar` run printed and how it exited.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Panics with everything printed unless the exit code is `code`.
    fn expect(self, code: i32, what: &str) -> Out {
        assert_eq!(self.code, code, "{what}: {self:#?}");
        self
    }

    fn ok(self, what: &str) -> Out {
        self.expect(0, what)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/fixtures")
}

/// The `hangar` command aimed at `server`, with no app or rewrite from the
/// environment of the test run.
fn command(server: &Server, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hangar"));
    c.args(args)
        .current_dir(dir)
        .env("HANGAR_API_URL", format!("http://{}", server.addr))
        .env("HANGAR_API_TOKEN", TOKEN)
        .env("HANGAR_LOG", "warn")
        .env_remove("HANGAR_APP")
        .env_remove("FLY_API_TOKEN")
        .env_remove("HANGAR_IMAGE_REWRITE");
    c
}

/// Runs `hangar ARGS` in `dir` with `stdin` and optional extra environment.
fn hangar_full(
    server: &Server,
    dir: &Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> Out {
    let mut c = command(server, dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning hangar");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn hangar(server: &Server, args: &[&str]) -> Out {
    hangar_full(server, &std::env::temp_dir(), args, "", &[])
}

/// `hangar machine exec ...`, retried (at most 30 s) while the API says the
/// container is not running yet: the machine's `started` can come before its
/// container's start.
fn exec_retry(server: &Server, args: &[&str]) -> Out {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = hangar(server, args);
        if !out.stderr.contains("is not running") || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The machines of `app` that are not destroyed.
async fn live_machines(server: &Server, app: &str) -> Vec<Value> {
    let (_, ms) = server.get(&format!("/apps/{app}/machines")).await;
    ms.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["state"] != "destroyed" && m["state"] != "destroying")
        .collect()
}

/// Standard base64 with padding (what the CLI sends as `raw_value`).
fn b64(s: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_secrets_tokens_exit_codes_and_bad_fly_toml() {
    let server = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();

    let out = hangar(&server, &["apps", "create", "cli-apps"]).ok("apps create");
    assert!(out.stdout.contains("cli-apps"), "{out:?}");
    let list = hangar(&server, &["apps", "list", "--json"]).ok("apps list --json");
    assert!(
        list.json()
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "cli-apps"),
        "{list:?}"
    );
    let table = hangar(&server, &["apps", "list"]).ok("apps list");
    assert!(table.stdout.starts_with("NAME"), "{table:?}");
    assert!(table.stdout.contains("cli-apps"), "{table:?}");

    // Secrets: values go in, never come out.
    let out = hangar(
        &server,
        &[
            "secrets",
            "set",
            "-a",
            "cli-apps",
            "DB_PASS=hunter2-value",
            "API_KEY=key-value-123",
        ],
    )
    .ok("secrets set");
    assert!(out.stdout.contains("API_KEY") && out.stdout.contains("DB_PASS"));
    // The app from fly.toml in the current directory.
    std::fs::write(tmp.path().join("fly.toml"), "app = \"cli-apps\"\n").unwrap();
    for args in [&["secrets", "list"][..], &["secrets", "list", "--json"][..]] {
        let out = hangar_full(&server, tmp.path(), args, "", &[]).ok("secrets list");
        for printed in [&out.stdout, &out.stderr] {
            assert!(!printed.contains("hunter2-value"), "{out:?}");
            assert!(!printed.contains("key-value-123"), "{out:?}");
        }
        assert!(out.stdout.contains("DB_PASS") && out.stdout.contains("API_KEY"));
    }
    hangar(&server, &["secrets", "unset", "-a", "cli-apps", "API_KEY"]).ok("secrets unset");
    let names: Vec<Value> = hangar(&server, &["secrets", "list", "-a", "cli-apps", "--json"])
        .ok("secrets list")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("DB_PASS")]);
    // Also through HANGAR_APP.
    let out = hangar_full(
        &server,
        &std::env::temp_dir(),
        &["secrets", "list"],
        "",
        &[("HANGAR_APP", "cli-apps")],
    )
    .ok("secrets list with HANGAR_APP");
    assert!(out.stdout.contains("DB_PASS"), "{out:?}");

    // Tokens: a new token works until revoked.
    let created = hangar(&server, &["tokens", "create", "--name", "ci", "--json"])
        .ok("tokens create")
        .json();
    let token = created["token"].as_str().expect("token").to_owned();
    let id = created["id"].as_str().expect("token id").to_owned();
    let list = hangar(&server, &["tokens", "list", "--json"]).ok("tokens list");
    assert!(list.stdout.contains("\"ci\""), "{list:?}");
    assert!(!list.stdout.contains(&token), "tokens list shows a token");
    let env = [("HANGAR_API_TOKEN", token.as_str())];
    hangar_full(&server, tmp.path(), &["apps", "list"], "", &env).ok("apps list, new token");
    hangar(&server, &["tokens", "revoke", &id]).ok("tokens revoke");
    let out = hangar_full(&server, tmp.path(), &["apps", "list"], "", &env)
        .expect(1, "apps list, revoked token");
    assert!(out.stderr.contains("401"), "{out:?}");

    // Exit codes: 3 not found, 2 usage, 1 other errors.
    let out = hangar(
        &server,
        &["machine", "status", "-a", "cli-apps", "0123456789abcd"],
    )
    .expect(3, "status of a missing machine");
    assert!(out.stderr.contains("404"), "{out:?}");
    hangar(&server, &["apps", "destroy", "no-such-app", "--yes"]).expect(3, "destroy missing app");
    hangar(&server, &["machine", "run", "--no-such-flag"]).expect(2, "unknown flag");
    let empty = tempfile::tempdir().unwrap();
    let out = hangar_full(&server, empty.path(), &["machine", "list"], "", &[])
        .expect(1, "no app anywhere");
    assert!(out.stderr.contains("-a/--app"), "{out:?}");
    let out = hangar(&server, &["machine", "logs", "-a", "cli-apps", "x"]).expect(1, "logs");
    assert!(out.stderr.contains("invalid machine id \"x\""), "{out:?}");

    // A bad fly.toml names file, line and key.
    std::fs::write(
        tmp.path().join("fly.toml"),
        "app = \"cli-apps\"\n[http_service]\ninternal_port = \"80\"\n",
    )
    .unwrap();
    let out = hangar_full(&server, tmp.path(), &["deploy", "--image", "x"], "", &[])
        .expect(1, "deploy of a bad fly.toml");
    assert!(
        out.stderr
            .contains("fly.toml:3:17: http_service.internal_port"),
        "{out:?}"
    );
    std::fs::write(
        tmp.path().join("fly.toml"),
        "app = \"cli-apps\"\n\n[[vm]]\n  memory = \"lots\"\n",
    )
    .unwrap();
    let out = hangar_full(&server, tmp.path(), &["deploy", "--image", "x"], "", &[])
        .expect(1, "deploy of a bad vm memory");
    assert!(out.stderr.contains("fly.toml:4:"), "{out:?}");
    assert!(
        out.stderr.contains("vm[0].memory") || out.stderr.contains("memory"),
        "{out:?}"
    );

    // Volumes.
    let v = hangar(
        &server,
        &[
            "volumes", "create", "data", "-a", "cli-apps", "--size", "1", "--json",
        ],
    )
    .ok("volumes create")
    .json();
    let vol = v["id"].as_str().expect("volume id").to_owned();
    hangar(
        &server,
        &["volumes", "extend", "-a", "cli-apps", &vol, "--size", "2"],
    )
    .ok("volumes extend");
    let shown = hangar(
        &server,
        &["volumes", "show", "-a", "cli-apps", &vol, "--json"],
    )
    .ok("volumes show")
    .json();
    assert_eq!(shown["size_gb"], 2, "{shown}");
    let table = hangar(&server, &["volumes", "list", "-a", "cli-apps"]).ok("volumes list");
    assert!(
        table.stdout.contains(&vol) && table.stdout.contains("2GB"),
        "{table:?}"
    );
    hangar(
        &server,
        &["volumes", "destroy", "-a", "cli-apps", &vol, "--yes"],
    )
    .ok("volumes destroy");
    let left = hangar(&server, &["volumes", "list", "-a", "cli-apps", "--json"])
        .ok("volumes list")
        .json();
    assert!(
        left.as_array()
            .unwrap()
            .iter()
            .all(|v| v["id"] != json!(vol) || v["state"] == "destroyed"),
        "{left}"
    );

    // Destroy asks; "no" keeps the app.
    hangar_full(
        &server,
        tmp.path(),
        &["apps", "destroy", "cli-apps"],
        "n\n",
        &[],
    )
    .expect(1, "destroy declined");
    let (s, _) = server.get("/apps/cli-apps").await;
    assert_eq!(s, 200, "declined destroy removed the app");
    hangar(&server, &["apps", "destroy", "cli-apps", "--yes"]).ok("apps destroy");
    let (s, _) = server.get("/apps/cli-apps").await;
    assert_eq!(s, 404, "app still there after destroy");
}

#[tokio::test(flavor = "multi_thread")]
async fn machine_commands_end_to_end() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "cli/machine:1").await;
    let server = Server::start_with(&["--network", "none", "--no-proxy"]).await;
    let app = "cli-machines";
    hangar(&server, &["apps", "create", app]).ok("apps create");

    // machine run with the flags of seeds 000/004 → the config has them.
    let out = hangar(
        &server,
        &[
            "machine",
            "run",
            "-a",
            app,
            &image,
            "--name",
            "web-1",
            "--env",
            "GREETING=hi there",
            "--port",
            "80:8080/tcp:http",
            "--port",
            "443:8080/tcp:http:tls",
            "--vm-cpu-kind",
            "shared",
            "--vm-cpus",
            "1",
            "--vm-memory",
            "256",
            "--autostart=true",
            "--autostop=stop",
            "--restart",
            "always",
            "--metadata",
            "team=blue",
            "--file-literal",
            "/etc/motd=hello-file",
        ],
    )
    .ok("machine run");
    let id = out.stdout.trim().to_owned();
    let m = server.machine(app, &id).await;
    assert_eq!(m["state"], "started", "{m:#}");
    assert_eq!(m["name"], "web-1");
    let c = &m["config"];
    assert_eq!(c["image"], json!(image));
    assert_eq!(c["env"]["GREETING"], "hi there");
    assert_eq!(
        c["guest"],
        json!({"cpu_kind": "shared", "cpus": 1, "memory_mb": 256})
    );
    assert_eq!(c["restart"]["policy"], "always");
    assert_eq!(c["metadata"]["team"], "blue");
    assert_eq!(c["files"][0]["raw_value"], json!(b64("hello-file")));
    let svc = &c["services"][0];
    assert_eq!(svc["internal_port"], 8080);
    assert_eq!(svc["autostop"], "stop");
    assert_eq!(svc["autostart"], true);
    assert_eq!(
        svc["ports"],
        json!([{"port": 80, "handlers": ["http"]}, {"port": 443, "handlers": ["http", "tls"]}])
    );

    // exec prints the command's output and exits with its code.
    let out = exec_retry(
        &server,
        &["machine", "exec", "-a", app, &id, "--", "cat", "/etc/motd"],
    )
    .ok("exec cat");
    assert_eq!(out.stdout, "hello-file");
    let out = hangar(
        &server,
        &[
            "machine",
            "exec",
            "-a",
            app,
            &id,
            "--",
            "sh",
            "-c",
            "echo oops >&2; exit 7",
        ],
    );
    assert_eq!(out.code, 7, "{out:?}");
    assert!(out.stderr.contains("oops"), "{out:?}");

    // logs: the server inside the machine said it listens.
    let logs = hangar(&server, &["machine", "logs", "-a", app, &id]).ok("logs");
    assert!(
        logs.stdout
            .lines()
            .any(|l| l.ends_with("listening on 8080")),
        "{logs:?}"
    );
    let logs = hangar(
        &server,
        &["machine", "logs", "-a", app, &id, "--tail", "1", "--json"],
    )
    .ok("logs --json");
    let line: Value = serde_json::from_str(logs.stdout.trim()).unwrap();
    assert_eq!(line["stream"], json!("stdout"), "{logs:?}");

    // list (JSON and table) and status.
    let list = hangar(&server, &["machine", "list", "-a", app, "--json"]).ok("list --json");
    assert_eq!(list.json().as_array().unwrap().len(), 1, "{list:?}");
    assert_eq!(list.json()[0]["id"], json!(id));
    let table = hangar(&server, &["machine", "list", "-a", app]).ok("list");
    assert!(
        table.stdout.lines().nth(1).unwrap().starts_with(&id),
        "{table:?}"
    );
    let status = hangar(&server, &["machine", "status", "-a", app, &id]).ok("status");
    assert!(
        status.stdout.contains("started") && status.stdout.contains("256 MB"),
        "{status:?}"
    );
    let app_status = hangar(&server, &["status", "-a", app, "--json"])
        .ok("status --json")
        .json();
    assert_eq!(app_status["app"]["name"], app);
    assert_eq!(app_status["machines"][0]["id"], json!(id));

    // stop / start.
    hangar(&server, &["machine", "stop", "-a", app, &id]).ok("stop");
    assert_eq!(server.state(app, &id).await, "stopped");
    hangar(&server, &["machine", "start", "-a", app, &id]).ok("start");
    assert_eq!(server.state(app, &id).await, "started");

    // update shows the diff and asks; "n" changes nothing, --yes applies.
    let out = hangar_full(
        &server,
        &std::env::temp_dir(),
        &["machine", "update", "-a", app, "--vm-memory", "512M", &id],
        "n\n",
        &[],
    )
    .expect(1, "update declined");
    assert!(
        out.stdout.contains(&format!(
            "Configuration changes to be applied to machine: {id} (web-1)"
        )),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("-     \"memory_mb\": 256,\n+     \"memory_mb\": 512,\n"),
        "{out:?}"
    );
    assert!(out.stdout.contains("identical lines"), "{out:?}");
    assert!(out.stderr.contains("Apply changes?"), "{out:?}");
    let before = server.machine(app, &id).await;
    assert_eq!(before["config"]["guest"]["memory_mb"], 256);
    hangar(
        &server,
        &[
            "machine",
            "update",
            "-a",
            app,
            "--vm-memory",
            "512M",
            "--yes",
            &id,
        ],
    )
    .ok("update --yes");
    let after = server.machine(app, &id).await;
    assert_eq!(after["config"]["guest"]["memory_mb"], 512);
    assert_ne!(
        after["version"], before["version"],
        "update made no new version"
    );
    assert_eq!(after["state"], "started");
    let out = hangar(
        &server,
        &[
            "machine",
            "update",
            "-a",
            app,
            "--vm-memory",
            "512",
            "--yes",
            &id,
        ],
    )
    .ok("update without changes");
    assert!(out.stdout.contains("No changes"), "{out:?}");

    // clone copies the config; a standby clone stays stopped.
    let out = hangar(&server, &["machine", "clone", "-a", app, &id]).ok("clone");
    let clone = out.stdout.trim().to_owned();
    let cm = server.machine(app, &clone).await;
    assert_eq!(cm["state"], "started");
    assert_eq!(cm["config"]["env"], after["config"]["env"]);
    assert_eq!(cm["config"]["guest"]["memory_mb"], 512);
    let out = hangar(
        &server,
        &["machine", "clone", "-a", app, &id, "--standby-for", &id],
    )
    .ok("clone --standby-for");
    let standby = out.stdout.trim().to_owned();
    let sm = server.machine(app, &standby).await;
    assert_eq!(sm["config"]["standbys"], json!([id]));
    assert_ne!(sm["state"], "started", "{sm:#}");

    // scale count: standbys are not counted.
    hangar(&server, &["scale", "count", "3", "-a", app]).ok("scale up");
    let ms = live_machines(&server, app).await;
    let active: Vec<&Value> = ms
        .iter()
        .filter(|m| m["config"]["standbys"].is_null())
        .collect();
    assert_eq!(active.len(), 3, "{ms:#?}");
    let show = hangar(&server, &["scale", "show", "-a", app, "--json"])
        .ok("scale show")
        .json();
    assert_eq!(show[0]["count"], 3, "{show}");
    hangar(&server, &["scale", "count", "1", "-a", app]).ok("scale down");
    let ms = live_machines(&server, app).await;
    assert_eq!(
        ms.iter()
            .filter(|m| m["config"]["standbys"].is_null())
            .count(),
        1,
        "{ms:#?}"
    );
    assert_eq!(ms.len(), 2, "the standby stays: {ms:#?}");

    // cordon, destroy.
    let survivor = ms
        .iter()
        .find(|m| m["config"]["standbys"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A lease keeps others from changing the machine until released.
    let nonce = hangar(
        &server,
        &[
            "machine", "lease", "acquire", "-a", app, &survivor, "--ttl", "60",
        ],
    )
    .ok("lease acquire")
    .stdout
    .trim()
    .to_owned();
    assert!(!nonce.is_empty());
    let shown = hangar(
        &server,
        &["machine", "lease", "show", "-a", app, &survivor, "--json"],
    )
    .ok("lease show")
    .json();
    assert!(
        shown["expires_at"].is_number() || shown["expires_at"].is_string(),
        "{shown}"
    );
    let out =
        hangar(&server, &["machine", "stop", "-a", app, &survivor]).expect(1, "stop under lease");
    assert!(out.stderr.contains("409"), "{out:?}");
    assert_eq!(server.state(app, &survivor).await, "started");
    hangar(
        &server,
        &[
            "machine", "lease", "release", "-a", app, &survivor, "--nonce", &nonce,
        ],
    )
    .ok("lease release");
    hangar(&server, &["machine", "restart", "-a", app, &survivor]).ok("restart after release");
    server.wait_ok(app, &survivor, "started", 60).await;

    hangar(&server, &["machine", "cordon", "-a", app, &survivor]).ok("cordon");
    assert_eq!(server.machine(app, &survivor).await["cordoned"], true);
    hangar(&server, &["machine", "uncordon", "-a", app, &survivor]).ok("uncordon");
    assert_eq!(server.machine(app, &survivor).await["cordoned"], false);
    hangar(
        &server,
        &[
            "machine", "destroy", "-a", app, "--force", &survivor, &standby,
        ],
    )
    .ok("destroy");
    assert!(live_machines(&server, app).await.is_empty());
}

/// An image whose default command serves HTTP on port 80 (the seeds' `echo`
/// container answers `wget http://localhost`).
async fn port_80_image(registry: &Registry, tag: &str) -> String {
    let image = ImageBuilder::new()
        .cmd(&[TESTAPP, "serve-http", "80"])
        .build();
    registry.push(&image, tag).await.unwrap();
    registry.reference(tag)
}

#[tokio::test(flavor = "multi_thread")]
async fn machine_create_from_each_seed_cli_config() {
    let registry = Registry::start().unwrap();
    // Local images under the seeds' repository names, so containers named
    // after their image (seed 000's first example) keep their names.
    let web = pushed_image(&registry, "nginx:1").await;
    let echo = port_80_image(&registry, "echo-server:1").await;
    let my_app = pushed_image(&registry, "my-app:1").await;
    let shipper = pushed_image(&registry, "log-shipper:1").await;
    let litefs = pushed_image(&registry, "litefs:1").await;
    let server = Server::start_with(&["--network", "none", "--no-proxy"]).await;
    let app = "cli-create";
    hangar(&server, &["apps", "create", app]).ok("apps create");
    let dir = fixtures();
    let nginx_conf = std::fs::read_to_string(dir.join("seed000/nginx.conf")).unwrap();
    let rewrite_nginx = format!("nginx:latest={web}");
    let rewrite_echo = format!("ealen/echo-server={echo}");
    let env_rewrites = format!(
        "registry.fly.io/my-app:latest={my_app},registry.fly.io/log-shipper:latest={shipper},flyio/litefs:latest={litefs}"
    );
    let local = [&web, &echo, &my_app, &shipper, &litefs];
    let env = [("HANGAR_IMAGE_REWRITE", env_rewrites.as_str())];
    let mut created = Vec::new();
    for file in [
        "seed000/cli-config.json",
        "rate-limiter.json",
        "litefs.json",
        "example-configuration.json",
    ] {
        let path = dir.join(file);
        let before = std::fs::read_to_string(&path).unwrap();
        let out = hangar_full(
            &server,
            &std::env::temp_dir(),
            &[
                "machine",
                "create",
                "-a",
                app,
                "-f",
                path.to_str().unwrap(),
                "--image-rewrite",
                &rewrite_nginx,
                "--image-rewrite",
                &rewrite_echo,
            ],
            "",
            &env,
        );
        assert_eq!(out.code, 0, "create -f {file}: {out:#?}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            before,
            "{file} was changed"
        );
        let id = out.stdout.trim().to_owned();
        let m = server.machine(app, &id).await;
        let written: Value = serde_json::from_str(&before).unwrap();
        let written = written.get("config").unwrap_or(&written);
        let containers = m["config"]["containers"].as_array().unwrap();
        assert_eq!(
            containers.len(),
            written["containers"].as_array().unwrap().len()
        );
        for (got, want) in containers
            .iter()
            .zip(written["containers"].as_array().unwrap())
        {
            assert_eq!(got["name"], want["name"], "{file}");
            let image = got["image"].as_str().unwrap();
            assert!(
                local.iter().any(|l| *l == image),
                "{file}: image {image} not rewritten"
            );
        }
        created.push((file, id, m));
    }
    // seed 000's local_path became the file's contents.
    let (_, _, seed000) = &created[0];
    assert_eq!(
        seed000["config"]["containers"][0]["files"][0]["raw_value"],
        json!(b64(&nginx_conf))
    );
    assert!(seed000["config"]["containers"][0]["files"][0]["local_path"].is_null());
    // The two nginx+echo forms run: echo answers on 80, so nginx starts after it.
    for (file, id, _) in &created[..2] {
        let out = hangar(&server, &["machine", "start", "-a", app, id]);
        assert_eq!(
            out.code,
            0,
            "start {file}: {out:#?}\nlog:\n{}",
            server.log()
        );
        // nginx starts once echo is healthy; give its checks a minute.
        let deadline = Instant::now() + Duration::from_secs(60);
        let out = loop {
            let out = hangar(
                &server,
                &[
                    "machine",
                    "exec",
                    "-a",
                    app,
                    id,
                    "--container",
                    "nginx",
                    "--",
                    "cat",
                    "/etc/nginx/conf.d/default.conf",
                ],
            );
            if out.code == 0 || Instant::now() > deadline {
                break out.ok("nginx's config file");
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        // The seed's inline copy lacks the file's final newline.
        assert_eq!(out.stdout.trim_end(), nginx_conf.trim_end(), "{file}");
    }

    // Seed 000's `machine run --machine-config cli-config.json ...` line, run
    // where the file is (its local_path is relative to it).
    let out = hangar_full(
        &server,
        &dir.join("seed000"),
        &[
            "machine",
            "run",
            "-a",
            app,
            "--machine-config",
            "cli-config.json",
            "--autostart=true",
            "--autostop=suspend",
            "--port",
            "80:8080/tcp:http",
            "--port",
            "443:8080/tcp:http:tls",
            "--vm-cpu-kind",
            "shared",
            "--vm-cpus",
            "1",
            "--vm-memory",
            "256",
            "--image-rewrite",
            &rewrite_nginx,
            "--image-rewrite",
            &rewrite_echo,
        ],
        "",
        &[],
    );
    assert_eq!(
        out.code,
        0,
        "seed 000 run line: {out:#?}\nlog:\n{}",
        server.log()
    );
    let m = server.machine(app, out.stdout.trim()).await;
    assert_eq!(m["state"], "started", "{m:#}");
    let c = &m["config"];
    assert_eq!(c["containers"][0]["name"], "nginx");
    assert_eq!(c["containers"][1]["image"], json!(echo));
    assert_eq!(
        c["containers"][0]["files"][0]["raw_value"],
        json!(b64(&nginx_conf))
    );
    assert_eq!(c["services"][0]["autostop"], "suspend");
    assert_eq!(c["services"][0]["autostart"], true);
    assert_eq!(
        c["services"][0]["ports"][1],
        json!({"port": 443, "handlers": ["http", "tls"]})
    );
    assert_eq!(
        c["guest"],
        json!({"cpu_kind": "shared", "cpus": 1, "memory_mb": 256})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_seed_002_runs_both_groups_then_rolls_a_new_image() {
    let registry = Registry::start().unwrap();
    // `go run main.go` and `nginx -g 'daemon off;'` as the seed writes them,
    // both answering HTTP on 8080.
    let script = format!("#!/bin/sh\nexec {TESTAPP} serve-http 8080\n");
    let build = |tag: &'static str| {
        ImageBuilder::new()
            .file("/usr/bin/go", script.clone(), 0o755)
            .file("/usr/sbin/nginx", script.clone(), 0o755)
            .env("RELEASE", tag)
            .build()
    };
    registry.push(&build("v1"), "cli/goapp:v1").await.unwrap();
    registry.push(&build("v2"), "cli/goapp:v2").await.unwrap();
    let v1 = registry.reference("cli/goapp:v1");
    let v2 = registry.reference("cli/goapp:v2");
    let server = Server::start_with(&["--network", "none", "--no-proxy"]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("seed002.toml"), dir.path().join("fly.toml")).unwrap();
    let app = "my-go-app-with-nginx";

    // The seed asks for a Dockerfile build: without --image that is refused clearly.
    let out =
        hangar_full(&server, dir.path(), &["deploy"], "", &[]).expect(1, "deploy without image");
    assert!(
        out.stderr.contains("build.dockerfile") && out.stderr.contains("--image"),
        "{out:?}"
    );

    let out = hangar_full(&server, dir.path(), &["deploy", "--image", &v1], "", &[]);
    assert_eq!(
        out.code,
        0,
        "first deploy: {out:#?}\nlog:\n{}",
        server.log()
    );
    assert!(
        out.stderr
            .contains("Process group web: first deploy, 2 machine(s)"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("Process group nginx: first deploy, 2 machine(s)"),
        "{out:?}"
    );
    let ms = live_machines(&server, app).await;
    assert_eq!(ms.len(), 4, "{ms:#?}");
    for group in ["web", "nginx"] {
        let members: Vec<&Value> = ms
            .iter()
            .filter(|m| m["config"]["metadata"]["fly_process_group"] == group)
            .collect();
        assert_eq!(members.len(), 2, "group {group}: {ms:#?}");
        for m in members {
            let id = m["id"].as_str().unwrap();
            assert_eq!(m["state"], "started", "{m:#}");
            assert_eq!(m["config"]["image"], json!(v1));
            // The group's command really runs: it answers HTTP on 8080.
            server
                .exec_ok(
                    app,
                    id,
                    None,
                    &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
                )
                .await;
        }
    }
    let web = ms
        .iter()
        .find(|m| m["config"]["metadata"]["fly_process_group"] == "web")
        .unwrap();
    assert_eq!(
        web["config"]["init"]["cmd"],
        json!(["go", "run", "main.go"])
    );

    // A later deploy updates the same machines in place, one at a time.
    let out = hangar_full(&server, dir.path(), &["deploy", "--image", &v2], "", &[]);
    assert_eq!(
        out.code,
        0,
        "second deploy: {out:#?}\nlog:\n{}",
        server.log()
    );
    assert!(
        out.stderr.contains("updating 2 machine(s) (rolling)"),
        "{out:?}"
    );
    let after = live_machines(&server, app).await;
    let mut before_ids: Vec<&str> = ms.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let mut after_ids: Vec<&str> = after.iter().map(|m| m["id"].as_str().unwrap()).collect();
    before_ids.sort();
    after_ids.sort();
    assert_eq!(before_ids, after_ids, "machines were replaced, not updated");
    for m in &after {
        assert_eq!(m["config"]["image"], json!(v2));
        assert_eq!(m["state"], "started");
    }
    let out = hangar_full(&server, dir.path(), &["deploy", "--image", &v2], "", &[]).ok("redeploy");
    assert!(out.stderr.contains("is up to date"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_seed_003_seed_000_and_a_standby_group() {
    let registry = Registry::start().unwrap();
    let web = pushed_image(&registry, "cli/web:1").await;
    let echo = port_80_image(&registry, "cli/echo:1").await;
    let server = Server::start_with(&["--network", "none", "--no-proxy"]).await;

    // Seed 003: http_service with autostop → two machines.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures().join("seed003.toml"), dir.path().join("fly.toml")).unwrap();
    let out = hangar_full(
        &server,
        dir.path(),
        &["deploy", "-a", "cli-seed3", "--image", &web],
        "",
        &[],
    );
    assert_eq!(
        out.code,
        0,
        "deploy seed 003: {out:#?}\nlog:\n{}",
        server.log()
    );
    let ms = live_machines(&server, "cli-seed3").await;
    assert_eq!(ms.len(), 2, "{ms:#?}");
    for m in &ms {
        assert_eq!(m["state"], "started");
        let svc = &m["config"]["services"][0];
        assert_eq!(svc["internal_port"], 8080);
        assert_eq!(svc["autostop"], "stop", "{m:#}");
        assert_eq!(svc["autostart"], true);
    }

    // Seed 000: machine_config with nginx + echo, the deployed image replaces echo.
    let seed000 = fixtures().join("seed000");
    let toml = seed000.join("fly.toml");
    let rewrite = format!("nginx:latest={web}");
    let out = hangar_full(
        &server,
        &std::env::temp_dir(),
        &[
            "deploy",
            "-a",
            "cli-seed0",
            "-c",
            toml.to_str().unwrap(),
            "--image",
            &echo,
            "--image-rewrite",
            &rewrite,
        ],
        "",
        &[],
    );
    assert_eq!(
        out.code,
        0,
        "deploy seed 000: {out:#?}\nlog:\n{}",
        server.log()
    );
    let ms = live_machines(&server, "cli-seed0").await;
    assert_eq!(ms.len(), 2, "{ms:#?}");
    for m in &ms {
        assert_eq!(m["state"], "started");
        let cs = m["config"]["containers"].as_array().unwrap();
        let image_of = |name: &str| cs.iter().find(|c| c["name"] == name).unwrap()["image"].clone();
        assert_eq!(image_of("echo"), json!(echo));
        assert_eq!(image_of("nginx"), json!(web));
        // nginx started after echo was healthy: it serves 8080.
        server
            .exec_ok(
                "cli-seed0",
                m["id"].as_str().unwrap(),
                Some("nginx"),
                &["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
            )
            .await;
    }

    // A group without services gets one machine and a stopped standby; a
    // group with a volume gets one machine with the volume mounted.
    let web2 = pushed_image(&registry, "cli/web:2").await;
    let worker = tempfile::tempdir().unwrap();
    std::fs::write(
        worker.path().join("fly.toml"),
        format!(
            "app = \"cli-worker\"\n\n[build]\n  image = \"{web}\"\n\n[processes]\n  worker = \"{TESTAPP} sleep 600\"\n  db = \"{TESTAPP} sleep 600\"\n\n[mounts]\n  source = \"data\"\n  destination = \"/data\"\n  processes = [\"db\"]\n"
        ),
    )
    .unwrap();
    let out = hangar_full(&server, worker.path(), &["deploy"], "", &[]);
    assert_eq!(
        out.code,
        0,
        "deploy worker: {out:#?}\nlog:\n{}",
        server.log()
    );
    let ms = live_machines(&server, "cli-worker").await;
    let group = |g: &str| -> Vec<Value> {
        ms.iter()
            .filter(|m| m["config"]["metadata"]["fly_process_group"] == g)
            .cloned()
            .collect()
    };
    let workers = group("worker");
    let running: Vec<&Value> = workers
        .iter()
        .filter(|m| m["config"]["standbys"].is_null())
        .collect();
    let standbys: Vec<&Value> = workers
        .iter()
        .filter(|m| !m["config"]["standbys"].is_null())
        .collect();
    assert_eq!((running.len(), standbys.len()), (1, 1), "{ms:#?}");
    assert_eq!(running[0]["state"], "started");
    assert_eq!(standbys[0]["config"]["standbys"], json!([running[0]["id"]]));
    assert_ne!(standbys[0]["state"], "started");
    let db = group("db");
    assert_eq!(db.len(), 1, "{ms:#?}");
    let db_id = db[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(db[0]["config"]["mounts"][0]["path"], "/data");
    let vols = hangar(&server, &["volumes", "list", "-a", "cli-worker", "--json"])
        .ok("volumes list")
        .json();
    assert_eq!(vols[0]["name"], "data", "{vols}");
    assert_eq!(vols[0]["attached_machine_id"], json!(db_id));
    assert_eq!(db[0]["config"]["mounts"][0]["volume"], vols[0]["id"]);
    server
        .exec_ok(
            "cli-worker",
            &db_id,
            None,
            &["sh", "-c", "echo kept > /data/f"],
        )
        .await;

    // An immediate redeploy updates every machine in place; the volume stays.
    let out = hangar_full(
        &server,
        worker.path(),
        &["deploy", "--strategy", "immediate", "--image", &web2],
        "",
        &[],
    );
    assert_eq!(out.code, 0, "immediate redeploy: {out:#?}");
    assert!(out.stderr.contains("(immediate)"), "{out:?}");
    let after = live_machines(&server, "cli-worker").await;
    assert_eq!(after.len(), 3, "{after:#?}");
    for m in &after {
        assert_eq!(m["config"]["image"], json!(web2), "{m:#}");
    }
    let standby = after
        .iter()
        .find(|m| !m["config"]["standbys"].is_null())
        .unwrap();
    assert_eq!(standby["config"]["standbys"], json!([running[0]["id"]]));
    server.wait_ok("cli-worker", &db_id, "started", 60).await;
    let kept = server
        .exec_ok("cli-worker", &db_id, None, &["cat", "/data/f"])
        .await;
    assert_eq!(kept, "kept\n");

    // A group fly.toml no longer has: left alone unless confirmed.
    std::fs::write(
        worker.path().join("fly.toml"),
        format!("app = \"cli-worker\"\n\n[processes]\n  worker = \"{TESTAPP} sleep 600\"\n"),
    )
    .unwrap();
    let out = hangar_full(
        &server,
        worker.path(),
        &["deploy", "--image", &web2],
        "",
        &[],
    )
    .ok("deploy without db, not confirmed");
    assert!(
        out.stderr.contains("no longer has") && out.stderr.contains(&db_id),
        "{out:?}"
    );
    assert_eq!(live_machines(&server, "cli-worker").await.len(), 3);
    let out = hangar_full(
        &server,
        worker.path(),
        &["deploy", "--image", &web2, "--yes"],
        "",
        &[],
    )
    .ok("deploy without db, --yes");
    assert!(
        out.stderr.contains(&format!("machine {db_id} destroyed")),
        "{out:?}"
    );
    let left = live_machines(&server, "cli-worker").await;
    assert_eq!(left.len(), 2, "{left:#?}");
    assert!(left.iter().all(|m| m["id"] != json!(db_id)));
}

#[tokio::test(flavor = "multi_thread")]
async fn run_shell_through_a_pty() {
    let registry = Registry::start().unwrap();
    let image = pushed_image(&registry, "cli/shell:1").await;
    let server = Server::start().await;
    let pty = nix::pty::openpty(None, None).unwrap();
    let rewrite = format!("ubuntu={image}");
    let mut cmd = command(
        &server,
        &std::env::temp_dir(),
        &["machine", "run", "--shell", "--image-rewrite", &rewrite],
    );
    let slave = std::fs::File::from(pty.slave);
    let mut child = cmd
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |needle: &str, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {needle:?} on the terminal in {secs} s; saw:\n{seen}"),
            }
        }
        seen.clone()
    };
    let shown = wait_for(":/# ", 120);
    let id = shown
        .split("Machine ID: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("machine id on the terminal")
        .to_owned();
    master
        .write_all(b"echo hello-$((40+2)); hostname\n")
        .unwrap();
    let shown = wait_for("hello-42", 30);
    assert!(shown.contains(&id), "hostname is the machine id: {shown}");
    master.write_all(b"exit\n").unwrap();
    wait_for("destroyed", 60);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "hangar did not exit after `exit`"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}: {seen}");
    // The throwaway machine and its app are gone.
    let (_, apps) = server.get("/apps").await;
    let left: Vec<&Value> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["name"].as_str().unwrap().starts_with("hangar-shell-"))
        .collect();
    assert!(left.is_empty(), "shell app left behind: {left:?}");
    assert!(
        server.machine_pids(&id).is_empty(),
        "machine {id} still runs"
    );
}
