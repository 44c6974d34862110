//! `hangar machine run --shell`: a throwaway machine and a line-by-line shell
//! over the exec API (there is no interactive exec): each line runs as
//! `sh -c LINE` in the machine; `exit` or end of input ends the shell, and the
//! machine (and the app, when one was made for it) is destroyed.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{Value, json};

use super::run::{START_WAIT, create_machine};
use crate::client::Client;
use crate::output::field;

/// Seconds one shell line may run.
const LINE_TIMEOUT: u64 = 300;

/// A name for an app made for one shell.
fn throwaway_app_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("hangar-shell-{}-{nanos:x}", std::process::id())
}

/// Reads one line from stdin without blocking the runtime; None at the end.
async fn read_line() -> anyhow::Result<Option<String>> {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line)),
        }
    })
    .await
    .context("reading stdin")?
}

pub async fn shell(
    client: &Client,
    app: Option<String>,
    config: Value,
    region: Option<String>,
) -> anyhow::Result<ExitCode> {
    let (app, made_app) = match app {
        Some(a) => (a, false),
        None => {
            let name = throwaway_app_name();
            client
                .post("/apps", &json!({"app_name": name}))
                .await
                .with_context(|| format!("creating app {name} for the shell"))?;
            (name, true)
        }
    };
    let result = session(client, &app, config, region).await;
    if made_app && let Err(e) = client.delete(&format!("/apps/{app}")).await {
        eprintln!("hangar: destroying app {app}: {e}");
    }
    result
}

async fn session(
    client: &Client,
    app: &str,
    config: Value,
    region: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut body = json!({"config": config});
    if let Some(r) = region {
        body["region"] = json!(r);
    }
    let m = create_machine(client, app, &body).await?;
    let id = field(&m, "/id");
    eprintln!("Machine ID: {id} (app {app}); it is destroyed when the shell exits");
    let result = async {
        client
            .wait_for(app, &id, "started", START_WAIT)
            .await
            .with_context(|| format!("machine {id} did not start"))?;
        exec_ready(client, app, &id).await?;
        lines(client, app, &id).await
    }
    .await;
    match client
        .delete(&format!("/apps/{app}/machines/{id}?force=true"))
        .await
    {
        Ok(_) => eprintln!("Machine {id} destroyed"),
        Err(e) => eprintln!("hangar: destroying machine {id}: {e}"),
    }
    result
}

/// Waits until the machine accepts exec: `started` can come before its
/// container runs (at most 60 s, probing with `true`).
async fn exec_ready(client: &Client, app: &str, id: &str) -> anyhow::Result<()> {
    let path = format!("/apps/{app}/machines/{id}/exec");
    let body = json!({"command": ["true"], "timeout": 10});
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match client.post(&path, &body).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e).context(format!("machine {id} never accepted commands"));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

async fn lines(client: &Client, app: &str, id: &str) -> anyhow::Result<ExitCode> {
    let mut last = 0i64;
    loop {
        print!("{id}:/# ");
        std::io::stdout().flush()?;
        let Some(line) = read_line().await? else {
            println!();
            break;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "exit" || line.starts_with("exit ") {
            break;
        }
        let body = json!({"command": ["sh", "-c", line], "timeout": LINE_TIMEOUT});
        match client
            .post(&format!("/apps/{app}/machines/{id}/exec"), &body)
            .await
        {
            Ok(out) => {
                print!("{}", field(&out, "/stdout"));
                eprint!("{}", field(&out, "/stderr"));
                last = out.get("exit_code").and_then(Value::as_i64).unwrap_or(1);
            }
            Err(e) => {
                eprintln!("hangar: {e}");
                last = 1;
            }
        }
    }
    Ok(ExitCode::from(u8::try_from(last).unwrap_or(1)))
}
