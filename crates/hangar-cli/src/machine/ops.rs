//! The small machine commands: list, status, start, stop, restart, destroy,
//! clone, exec, cordon, uncordon and leases.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use super::run::{START_WAIT, create_machine};
use crate::client::Client;
use crate::output::{Table, field, machine_image, print_json, process_group};
use crate::target::AppArgs;

/// `hangar machine lease ...`
#[derive(Debug, clap::Subcommand)]
pub enum LeaseCommand {
    /// Show who holds a machine's lease.
    #[command(after_help = concat!("Examples:\n  hangar machine lease show -a my-app 3d8d9014b32e89 --json\n\n", exit_codes!()))]
    Show {
        #[command(flatten)]
        app: AppArgs,
        /// The machine's id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take a machine's lease; prints the nonce other calls must send.
    #[command(after_help = concat!("Examples:\n  hangar machine lease acquire -a my-app 3d8d9014b32e89 --ttl 60 --description deploy\n\n", exit_codes!()))]
    Acquire {
        #[command(flatten)]
        app: AppArgs,
        /// The machine's id.
        id: String,
        /// Seconds the lease lasts.
        #[arg(long, default_value_t = 30)]
        ttl: u64,
        /// Why it is held.
        #[arg(long)]
        description: Option<String>,
        /// Print the lease as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Release a lease held with NONCE.
    #[command(after_help = concat!("Examples:\n  hangar machine lease release -a my-app 3d8d9014b32e89 --nonce 8d6d5e7f\n\n", exit_codes!()))]
    Release {
        #[command(flatten)]
        app: AppArgs,
        /// The machine's id.
        id: String,
        /// The nonce `acquire` printed.
        #[arg(long)]
        nonce: String,
    },
}

/// The row of a machine in `list` and `status`.
pub fn machine_row(m: &Value) -> Vec<String> {
    vec![
        field(m, "/id"),
        field(m, "/name"),
        field(m, "/state"),
        field(m, "/region"),
        process_group(m),
        machine_image(m),
        field(m, "/private_ip"),
        field(m, "/updated_at"),
    ]
}

pub const MACHINE_HEADER: &[&str] = &[
    "ID", "NAME", "STATE", "REGION", "GROUP", "IMAGE", "IP", "UPDATED",
];

pub async fn list(client: &Client, app: &str, json: bool) -> anyhow::Result<ExitCode> {
    let ms = client.get(&format!("/apps/{app}/machines")).await?;
    if json {
        print_json(&ms);
    } else {
        let mut t = Table::new(MACHINE_HEADER);
        for m in ms.as_array().into_iter().flatten() {
            t.row(machine_row(m));
        }
        t.print();
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(client: &Client, app: &str, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let m = client.get(&format!("/apps/{app}/machines/{id}")).await?;
    if json {
        print_json(&m);
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(MACHINE_HEADER);
    t.row(machine_row(&m));
    t.print();
    let guest = m.pointer("/config/guest").cloned().unwrap_or(Value::Null);
    println!();
    println!("Version:  {}", field(&m, "/version"));
    println!("Instance: {}", field(&m, "/instance_id"));
    println!("Cordoned: {}", field(&m, "/cordoned"));
    if !guest.is_null() {
        println!(
            "Guest:    {} cpus ({}), {} MB",
            field(&guest, "/cpus"),
            field(&guest, "/cpu_kind"),
            field(&guest, "/memory_mb")
        );
    }
    let events = m
        .get("events")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !events.is_empty() {
        println!();
        let mut t = Table::new(&["EVENT", "STATUS", "SOURCE", "TIMESTAMP"]);
        for e in events.iter().take(10) {
            t.row(vec![
                field(e, "/type"),
                field(e, "/status"),
                field(e, "/source"),
                field(e, "/timestamp"),
            ]);
        }
        t.print();
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn start(client: &Client, app: &str, ids: &[String]) -> anyhow::Result<ExitCode> {
    for id in ids {
        client
            .post(&format!("/apps/{app}/machines/{id}/start"), &json!({}))
            .await?;
        client
            .wait_for(app, id, "started", START_WAIT)
            .await
            .with_context(|| format!("machine {id} did not start"))?;
        println!("Started {id}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn stop(
    client: &Client,
    app: &str,
    ids: &[String],
    signal: Option<String>,
    timeout: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut body = json!({});
    if let Some(s) = signal {
        body["signal"] = json!(s);
    }
    if let Some(t) = timeout {
        body["timeout"] = json!(t);
    }
    for id in ids {
        client
            .post(&format!("/apps/{app}/machines/{id}/stop"), &body)
            .await?;
        client
            .wait_for(app, id, "stopped", START_WAIT)
            .await
            .with_context(|| format!("machine {id} did not stop"))?;
        println!("Stopped {id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Suspends each machine and waits until it is `suspended`.
pub async fn suspend(client: &Client, app: &str, ids: &[String]) -> anyhow::Result<ExitCode> {
    for id in ids {
        client
            .post(&format!("/apps/{app}/machines/{id}/suspend"), &json!({}))
            .await?;
        client
            .wait_for(app, id, "suspended", START_WAIT)
            .await
            .with_context(|| format!("machine {id} did not suspend"))?;
        println!("Suspended {id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A bodyless action (`restart`, `cordon`, `uncordon`) on each machine.
pub async fn simple(
    client: &Client,
    app: &str,
    ids: &[String],
    action: &str,
    done: &str,
) -> anyhow::Result<ExitCode> {
    for id in ids {
        client
            .post(&format!("/apps/{app}/machines/{id}/{action}"), &json!({}))
            .await?;
        println!("{done} {id}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn destroy(
    client: &Client,
    app: &str,
    ids: &[String],
    force: bool,
) -> anyhow::Result<ExitCode> {
    for id in ids {
        let q = if force { "?force=true" } else { "" };
        client
            .delete(&format!("/apps/{app}/machines/{id}{q}"))
            .await?;
        println!("Destroyed {id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The body that creates a copy of machine `m` (its config as it is).
pub fn clone_body(
    m: &Value,
    region: Option<&str>,
    standby_for: &[String],
) -> anyhow::Result<Value> {
    let id = field(m, "/id");
    let mut config = m.get("config").cloned().unwrap_or_else(|| json!({}));
    if config
        .get("mounts")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        anyhow::bail!(
            "machine {id} mounts a volume; volumes are not copied: create a volume and a machine for it instead"
        );
    }
    let mut body = json!({});
    if standby_for.is_empty() {
        if let Some(o) = config.as_object_mut() {
            o.remove("standbys");
        }
    } else {
        config["standbys"] = json!(standby_for);
        body["skip_launch"] = json!(true);
    }
    body["config"] = config;
    let region = region
        .map(str::to_owned)
        .unwrap_or_else(|| field(m, "/region"));
    if !region.is_empty() {
        body["region"] = json!(region);
    }
    Ok(body)
}

pub async fn clone(
    client: &Client,
    app: &str,
    id: &str,
    region: Option<String>,
    name: Option<String>,
    standby_for: Vec<String>,
    detach: bool,
) -> anyhow::Result<ExitCode> {
    let source = client.get(&format!("/apps/{app}/machines/{id}")).await?;
    let mut body = clone_body(&source, region.as_deref(), &standby_for)?;
    if let Some(n) = name {
        body["name"] = json!(n);
    }
    eprintln!(
        "Cloning machine {id} into region {}",
        field(&body, "/region")
    );
    let m = create_machine(client, app, &body).await?;
    let new = field(&m, "/id");
    eprintln!("Machine {new} has been created...");
    if !standby_for.is_empty() {
        eprintln!(
            "Machine {new} is a standby for {}: created, not started",
            standby_for.join(",")
        );
    } else if !detach {
        eprintln!("Waiting for machine {new} to start...");
        client
            .wait_for(app, &new, "started", START_WAIT)
            .await
            .with_context(|| format!("machine {new} did not start"))?;
    }
    eprintln!("Machine has been successfully cloned!");
    println!("{new}");
    Ok(ExitCode::SUCCESS)
}

pub async fn exec(
    client: &Client,
    app: &str,
    id: &str,
    container: Option<String>,
    timeout: u64,
    json: bool,
    command: Vec<String>,
) -> anyhow::Result<ExitCode> {
    let mut body = json!({"command": command, "timeout": timeout});
    if let Some(c) = container {
        body["container"] = json!(c);
    }
    let out = client
        .post(&format!("/apps/{app}/machines/{id}/exec"), &body)
        .await?;
    if json {
        print_json(&out);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", field(&out, "/stdout"));
    eprint!("{}", field(&out, "/stderr"));
    let code = out.get("exit_code").and_then(Value::as_i64).unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

pub async fn lease(client: &Client, cmd: LeaseCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LeaseCommand::Show { app, id, json } => {
            let app = app.resolve()?;
            let l = client
                .get(&format!("/apps/{app}/machines/{id}/lease"))
                .await?;
            if json {
                print_json(&l);
            } else {
                let l = l.get("data").unwrap_or(&l);
                let mut t = Table::new(&["OWNER", "DESCRIPTION", "EXPIRES", "VERSION"]);
                t.row(vec![
                    field(l, "/owner"),
                    field(l, "/description"),
                    field(l, "/expires_at"),
                    field(l, "/version"),
                ]);
                t.print();
            }
        }
        LeaseCommand::Acquire {
            app,
            id,
            ttl,
            description,
            json,
        } => {
            let app = app.resolve()?;
            let mut body = json!({"ttl": ttl});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let l = client
                .post(&format!("/apps/{app}/machines/{id}/lease"), &body)
                .await?;
            if json {
                print_json(&l);
            } else {
                let data = l.get("data").unwrap_or(&l);
                println!("{}", field(data, "/nonce"));
            }
        }
        LeaseCommand::Release { app, id, nonce } => {
            let app = app.resolve()?;
            client
                .call_with(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/machines/{id}/lease"),
                    None,
                    &[("fly-machine-lease-nonce", &nonce)],
                )
                .await?;
            println!("Released the lease on {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `hangar machine logs` asks for.
pub struct LogsArgs {
    pub follow: bool,
    pub container: Option<String>,
    pub tail: Option<u64>,
    pub json: bool,
}

/// Prints a machine's log lines: `TIME CONTAINER[stream] MESSAGE`, or the
/// API's JSON lines with `--json`.
pub async fn logs(
    client: &Client,
    app: &str,
    id: &str,
    args: LogsArgs,
) -> anyhow::Result<ExitCode> {
    let mut query = vec![format!("follow={}", args.follow)];
    if let Some(c) = &args.container {
        query.push(format!(
            "container={}",
            form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
        ));
    }
    if let Some(n) = args.tail {
        query.push(format!("tail={n}"));
    }
    let path = format!("/apps/{app}/machines/{id}/logs?{}", query.join("&"));
    let mut out = std::io::stdout().lock();
    client
        .get_lines(&path, |line| {
            use std::io::Write as _;
            let text = if args.json {
                line.to_owned()
            } else {
                match serde_json::from_str::<Value>(line) {
                    Ok(v) => {
                        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                        let stream = if s("stream") == "stderr" {
                            "[stderr]"
                        } else {
                            ""
                        };
                        format!(
                            "{} {}{stream} {}",
                            s("timestamp"),
                            s("container"),
                            s("message")
                        )
                    }
                    Err(_) => line.to_owned(),
                }
            };
            // A closed stdout (`| head`) ends the stream.
            writeln!(out, "{text}").is_ok()
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
