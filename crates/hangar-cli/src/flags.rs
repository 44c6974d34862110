//! The machine-config flags of `machine run` and `machine update` (seeds 000
//! and 004): `--env`, `--port`, `--vm-*`, `--autostart`, `--autostop`,
//! `--restart`, `--metadata`, `--file-*`, `--entrypoint`, `--standby-for`,
//! and how they change a config. Also `--machine-config` files and their
//! `files[].local_path`, read relative to the file.

use std::path::Path;

use base64::Engine;
use serde_json::{Map, Value, json};

/// A flag with a value that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {value:?}: {problem}")]
pub struct FlagError {
    pub flag: &'static str,
    pub value: String,
    pub problem: String,
}

fn bad(flag: &'static str, value: &str, problem: impl Into<String>) -> FlagError {
    FlagError {
        flag,
        value: value.to_owned(),
        problem: problem.into(),
    }
}

/// Flags that change a machine config.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigFlags {
    /// Environment variable NAME=VALUE (repeatable).
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Service port: PORT[:INTERNAL][/PROTOCOL[:HANDLER...]], e.g. 443:8080/tcp:http:tls (repeatable).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Vec<String>,
    /// Number of CPUs.
    #[arg(long = "vm-cpus", value_name = "N")]
    pub vm_cpus: Option<u32>,
    /// Memory, in MB unless suffixed (256, 512M, 1G).
    #[arg(long = "vm-memory", value_name = "SIZE")]
    pub vm_memory: Option<String>,
    /// CPU kind: shared or performance.
    #[arg(long = "vm-cpu-kind", value_name = "KIND")]
    pub vm_cpu_kind: Option<String>,
    /// Let the proxy start this machine on traffic (services only).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub autostart: Option<bool>,
    /// Let the proxy stop (or suspend) this machine when idle: stop, suspend or off.
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "stop")]
    pub autostop: Option<String>,
    /// Restart policy: no, always or on-fail.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Metadata NAME=VALUE (repeatable).
    #[arg(short = 'm', long = "metadata", value_name = "NAME=VALUE")]
    pub metadata: Vec<String>,
    /// A local file copied into the machine: GUEST_PATH=LOCAL_PATH (repeatable).
    #[arg(long = "file-local", value_name = "GUEST=LOCAL")]
    pub file_local: Vec<String>,
    /// A file with literal contents: GUEST_PATH=VALUE (repeatable).
    #[arg(long = "file-literal", value_name = "GUEST=VALUE")]
    pub file_literal: Vec<String>,
    /// A file holding an app secret: GUEST_PATH=SECRET_NAME (repeatable).
    #[arg(long = "file-secret", value_name = "GUEST=SECRET")]
    pub file_secret: Vec<String>,
    /// The image's entrypoint replaced (split on spaces).
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Make this machine a stopped standby for these machines (comma-separated ids).
    #[arg(long = "standby-for", value_name = "IDS", value_delimiter = ',')]
    pub standby_for: Vec<String>,
}

fn pair<'a>(flag: &'static str, s: &'a str) -> Result<(&'a str, &'a str), FlagError> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v)),
        _ => Err(bad(flag, s, "expected NAME=VALUE")),
    }
}

/// `256`, `512M`, `512mb`, `1G`, `2gb` → MB.
pub fn parse_memory_mb(s: &str) -> Result<u64, FlagError> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, mult) = if let Some(n) = t.strip_suffix('g') {
        (n, 1024)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 1)
    } else {
        (t, 1)
    };
    match num.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n * mult),
        _ => Err(bad(
            "--vm-memory",
            s,
            "expected a size in MB such as 256, 512M or 1G",
        )),
    }
}

/// One `--port`: `(port, internal_port, protocol, handlers)`.
pub fn parse_port(s: &str) -> Result<(u16, u16, String, Vec<String>), FlagError> {
    let (ports, rest) = match s.split_once('/') {
        Some((p, r)) => (p, Some(r)),
        None => (s, None),
    };
    let num = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("--port", s, format!("{p:?} is not a port number (1-65535)")))
    };
    let (port, internal) = match ports.split_once(':') {
        Some((p, i)) => (num(p)?, num(i)?),
        None => (num(ports)?, num(ports)?),
    };
    let mut parts = rest.unwrap_or("tcp").split(':');
    let protocol = parts.next().unwrap_or("tcp").trim().to_ascii_lowercase();
    if protocol != "tcp" && protocol != "udp" {
        return Err(bad("--port", s, "protocol must be tcp or udp"));
    }
    let mut handlers = Vec::new();
    for h in parts {
        let h = h.trim().to_ascii_lowercase();
        if !["http", "tls", "proxy_proto", "pg_tls", "edge_http"].contains(&h.as_str()) {
            return Err(bad(
                "--port",
                s,
                format!("unknown handler {h:?} (http, tls, proxy_proto, pg_tls, edge_http)"),
            ));
        }
        handlers.push(h);
    }
    Ok((port, internal, protocol, handlers))
}

/// `obj[key]` as an object, made one when absent or not an object.
fn object<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    let map = v.as_object_mut().expect("configs are objects");
    let slot = map.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("just made an object")
}

/// `obj[key]` as an array, made one when absent or not an array.
fn array<'a>(v: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    let map = v.as_object_mut().expect("configs are objects");
    let slot = map.entry(key).or_insert_with(|| json!([]));
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().expect("just made an array")
}

/// Sets a file entry, replacing one with the same guest path.
fn set_file(config: &mut Value, entry: Value) {
    let files = array(config, "files");
    files.retain(|f| f.get("guest_path") != entry.get("guest_path"));
    files.push(entry);
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

impl ConfigFlags {
    /// Applies the flags to `config` (an object); local files are read
    /// relative to the current directory.
    pub fn apply(&self, config: &mut Value) -> Result<(), FlagError> {
        if !config.is_object() {
            *config = json!({});
        }
        for e in &self.env {
            let (k, v) = pair("--env", e)?;
            object(config, "env").insert(k.to_owned(), json!(v));
        }
        for m in &self.metadata {
            let (k, v) = pair("--metadata", m)?;
            object(config, "metadata").insert(k.to_owned(), json!(v));
        }
        if let Some(c) = self.vm_cpus {
            if c == 0 {
                return Err(bad("--vm-cpus", "0", "must be at least 1"));
            }
            object(config, "guest").insert("cpus".into(), json!(c));
        }
        if let Some(m) = &self.vm_memory {
            let mb = parse_memory_mb(m)?;
            object(config, "guest").insert("memory_mb".into(), json!(mb));
        }
        if let Some(k) = &self.vm_cpu_kind {
            if k != "shared" && k != "performance" {
                return Err(bad("--vm-cpu-kind", k, "must be shared or performance"));
            }
            object(config, "guest").insert("cpu_kind".into(), json!(k));
        }
        if let Some(r) = &self.restart {
            let policy = match r.as_str() {
                "no" => "no",
                "always" => "always",
                "on-fail" | "on-failure" => "on-failure",
                _ => return Err(bad("--restart", r, "must be no, always or on-fail")),
            };
            object(config, "restart").insert("policy".into(), json!(policy));
        }
        if let Some(e) = &self.entrypoint {
            let argv: Vec<&str> = e.split_whitespace().collect();
            if argv.is_empty() {
                return Err(bad("--entrypoint", e, "empty"));
            }
            object(config, "init").insert("entrypoint".into(), json!(argv));
        }
        for p in &self.port {
            let (port, internal, protocol, handlers) = parse_port(p)?;
            let mut entry = json!({"port": port});
            if !handlers.is_empty() {
                entry["handlers"] = json!(handlers);
            }
            let services = array(config, "services");
            let existing = services.iter_mut().find(|s| {
                s.get("internal_port").and_then(Value::as_u64) == Some(u64::from(internal))
                    && s.get("protocol").and_then(Value::as_str).unwrap_or("tcp") == protocol
            });
            match existing {
                Some(s) => {
                    let ports = array(s, "ports");
                    ports.retain(|x| x.get("port").and_then(Value::as_u64) != Some(port.into()));
                    ports.push(entry);
                }
                None => services.push(json!({
                    "protocol": protocol,
                    "internal_port": internal,
                    "ports": [entry],
                })),
            }
        }
        self.apply_autostart_autostop(config)?;
        for f in &self.file_local {
            let (guest, local) = pair("--file-local", f)?;
            let data = std::fs::read(local)
                .map_err(|e| bad("--file-local", f, format!("reading {local}: {e}")))?;
            set_file(
                config,
                json!({"guest_path": guest, "raw_value": b64(&data)}),
            );
        }
        for f in &self.file_literal {
            let (guest, value) = pair("--file-literal", f)?;
            set_file(
                config,
                json!({"guest_path": guest, "raw_value": b64(value.as_bytes())}),
            );
        }
        for f in &self.file_secret {
            let (guest, secret) = pair("--file-secret", f)?;
            set_file(config, json!({"guest_path": guest, "secret_name": secret}));
        }
        if !self.standby_for.is_empty() {
            let ids: Vec<&str> = self
                .standby_for
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .collect();
            config["standbys"] = json!(ids);
        }
        Ok(())
    }

    fn apply_autostart_autostop(&self, config: &mut Value) -> Result<(), FlagError> {
        let autostop = match self.autostop.as_deref() {
            None => None,
            Some("stop") | Some("true") => Some("stop"),
            Some("suspend") => Some("suspend"),
            Some("off") | Some("false") => Some("off"),
            Some(other) => {
                return Err(bad("--autostop", other, "must be stop, suspend or off"));
            }
        };
        if autostop.is_none() && self.autostart.is_none() {
            return Ok(());
        }
        let services = array(config, "services");
        if services.is_empty() {
            let flag = if autostop.is_some() {
                "--autostop"
            } else {
                "--autostart"
            };
            return Err(bad(
                flag,
                self.autostop.as_deref().unwrap_or("true"),
                "the machine has no services: add one with --port",
            ));
        }
        for s in services {
            if let Some(a) = autostop {
                s["autostop"] = json!(a);
            }
            if let Some(a) = self.autostart {
                s["autostart"] = json!(a);
            }
        }
        Ok(())
    }
}

/// A `--machine-config` value: inline JSON (first character `{`) or a file.
/// A `{"config": {...}}` wrapper (the API's request body) is unwrapped;
/// `files[].local_path` is read relative to the file.
pub fn load_machine_config(value: &str) -> Result<Value, FlagError> {
    let flag = "--machine-config";
    let (text, dir) = if value.trim_start().starts_with('{') {
        (
            value.to_owned(),
            std::env::current_dir().unwrap_or_default(),
        )
    } else {
        let path = Path::new(value);
        let text = std::fs::read_to_string(path).map_err(|e| bad(flag, value, e.to_string()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        (text, dir)
    };
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| bad(flag, value, format!("not JSON: {e}")))?;
    let mut config = unwrap_config(doc).map_err(|p| bad(flag, value, p))?;
    inline_local_files(&mut config, &dir).map_err(|p| bad(flag, value, p))?;
    Ok(config)
}

/// A machine config from a document that is either a config or a request
/// body holding one under `config`.
pub fn unwrap_config(doc: Value) -> Result<Value, String> {
    match doc {
        Value::Object(mut o) => match o.remove("config") {
            Some(c @ Value::Object(_)) => Ok(c),
            Some(_) => Err("config: must be an object".into()),
            None => Ok(Value::Object(o)),
        },
        _ => Err("must be a JSON object".into()),
    }
}

/// Replaces `files[].local_path` (machine and containers) by `raw_value`
/// holding the file's contents, read relative to `dir`.
pub fn inline_local_files(config: &mut Value, dir: &Path) -> Result<(), String> {
    if let Some(files) = config.get_mut("files") {
        inline_list("files", files, dir)?;
    }
    if let Some(Value::Array(cs)) = config.get_mut("containers") {
        for (i, c) in cs.iter_mut().enumerate() {
            if let Some(files) = c.get_mut("files") {
                inline_list(&format!("containers[{i}].files"), files, dir)?;
            }
        }
    }
    Ok(())
}

fn inline_list(at: &str, files: &mut Value, dir: &Path) -> Result<(), String> {
    let Some(files) = files.as_array_mut() else {
        return Ok(());
    };
    for (j, f) in files.iter_mut().enumerate() {
        let Some(local) = f.get("local_path").and_then(Value::as_str) else {
            continue;
        };
        let path = dir.join(local);
        let data = std::fs::read(&path)
            .map_err(|e| format!("{at}[{j}].local_path: reading {}: {e}", path.display()))?;
        let obj = f.as_object_mut().expect("has a key, so an object");
        obj.remove("local_path");
        obj.insert("raw_value".into(), json!(b64(&data)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory_mb("256").unwrap(), 256);
        assert_eq!(parse_memory_mb("512M").unwrap(), 512);
        assert_eq!(parse_memory_mb("1G").unwrap(), 1024);
        assert_eq!(parse_memory_mb("2gb").unwrap(), 2048);
        assert!(parse_memory_mb("lots").is_err());
        assert!(parse_memory_mb("0").is_err());
    }

    #[test]
    fn ports_of_seed_000() {
        assert_eq!(
            parse_port("443:8080/tcp:http:tls").unwrap(),
            (443, 8080, "tcp".into(), vec!["http".into(), "tls".into()])
        );
        assert_eq!(
            parse_port("8080").unwrap(),
            (8080, 8080, "tcp".into(), vec![])
        );
        assert!(parse_port("80:x").is_err());
        assert!(parse_port("80/tcp:gopher").is_err());
    }

    #[test]
    fn seed_000_run_flags_build_services_and_guest() {
        let flags = ConfigFlags {
            port: vec!["80:8080/tcp:http".into(), "443:8080/tcp:http:tls".into()],
            autostart: Some(true),
            autostop: Some("suspend".into()),
            vm_cpu_kind: Some("shared".into()),
            vm_cpus: Some(1),
            vm_memory: Some("256".into()),
            env: vec!["A=b=c".into()],
            restart: Some("on-fail".into()),
            file_literal: vec!["/etc/x=hi".into()],
            standby_for: vec!["m1".into()],
            ..ConfigFlags::default()
        };
        let mut c = json!({});
        flags.apply(&mut c).unwrap();
        assert_eq!(
            c["services"],
            json!([{"protocol": "tcp", "internal_port": 8080, "autostop": "suspend",
                    "autostart": true,
                    "ports": [{"port": 80, "handlers": ["http"]},
                              {"port": 443, "handlers": ["http", "tls"]}]}])
        );
        assert_eq!(
            c["guest"],
            json!({"cpu_kind": "shared", "cpus": 1, "memory_mb": 256})
        );
        assert_eq!(c["env"]["A"], "b=c");
        assert_eq!(c["restart"]["policy"], "on-failure");
        assert_eq!(c["files"][0]["raw_value"], "aGk=");
        assert_eq!(c["standbys"], json!(["m1"]));
    }

    #[test]
    fn autostop_without_services_is_refused() {
        let flags = ConfigFlags {
            autostop: Some("stop".into()),
            ..ConfigFlags::default()
        };
        let e = flags.apply(&mut json!({})).unwrap_err();
        assert!(e.to_string().contains("no services"), "{e}");
    }

    #[test]
    fn config_wrapper_is_unwrapped() {
        let c = unwrap_config(json!({"config": {"image": "x"}})).unwrap();
        assert_eq!(c, json!({"image": "x"}));
        let c = unwrap_config(json!({"containers": []})).unwrap();
        assert_eq!(c, json!({"containers": []}));
        assert!(unwrap_config(json!([1])).is_err());
    }
}
