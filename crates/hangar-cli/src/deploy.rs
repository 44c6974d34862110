//! `hangar deploy`: reads fly.toml (hangar-fly-toml), then per process group
//! either creates the first machines as seed 003 describes (two with
//! autostop/autostart for groups with services, one plus a stopped standby
//! for groups without, one for groups with volumes), or updates the group's
//! machines in place: `rolling` one at a time, waiting for `started` and for
//! the machine's checks; `immediate` all at once without waiting.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use hangar_fly_toml::{DeployStrategy, FlyToml, GroupPlan};
use serde_json::{Value, json};

use crate::client::Client;
use crate::machine::{RewriteArgs, create_machine};
use crate::output::{field, is_standby, process_group};
use crate::prompt::confirm;
use crate::rewrite::ImageRewrites;

/// How long a machine may take to start (image pull included).
const START_WAIT: Duration = Duration::from_secs(300);
/// How long a started machine's checks may take to pass.
const CHECKS_WAIT: Duration = Duration::from_secs(120);

/// `hangar deploy`
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The app (else HANGAR_APP, else `app` in fly.toml).
    #[arg(short = 'a', long = "app", env = "HANGAR_APP")]
    pub app: Option<String>,
    /// The fly.toml to deploy.
    #[arg(short = 'c', long = "config", default_value = "fly.toml")]
    pub config: PathBuf,
    /// The image to deploy (else `[build] image`; hangar does not build images).
    #[arg(short = 'i', long)]
    pub image: Option<String>,
    /// Replace `[deploy] strategy`: rolling or immediate.
    #[arg(long)]
    pub strategy: Option<String>,
    /// Do not ask (destroys machines of process groups fly.toml no longer has).
    #[arg(short = 'y', long)]
    pub yes: bool,
    #[command(flatten)]
    pub rewrite: RewriteArgs,
}

fn strategy(args: &DeployArgs, toml: &FlyToml) -> anyhow::Result<DeployStrategy> {
    let s = match &args.strategy {
        Some(s) => DeployStrategy::parse(s).ok_or_else(|| {
            anyhow::anyhow!(
                "--strategy {s:?}: must be one of {}",
                DeployStrategy::KNOWN.join(", ")
            )
        })?,
        None => toml.strategy(),
    };
    Ok(match s {
        DeployStrategy::Canary | DeployStrategy::Bluegreen => {
            eprintln!(
                "--> strategy {} is not supported by hangar deploy yet; deploying rolling",
                s.as_str()
            );
            DeployStrategy::Rolling
        }
        other => other,
    })
}

pub async fn run(client: &Client, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let toml = FlyToml::load(&args.config)?;
    for w in toml.warnings() {
        eprintln!("warning: {w}");
    }
    let app = match args.app.as_deref().filter(|a| !a.trim().is_empty()) {
        Some(a) => a.to_owned(),
        None => toml.app().map(str::to_owned).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: app: not set; pass -a/--app or set HANGAR_APP",
                args.config.display()
            )
        })?,
    };
    let rewrites = ImageRewrites::from_flags_and_env(&args.rewrite.image_rewrite)?;
    let image = rewrites.image(&toml.deploy_image(args.image.as_deref())?);
    let strategy = strategy(&args, &toml)?;
    let mut plans = toml.plan(&image)?;
    for p in &mut plans {
        rewrites.apply(&mut p.config);
    }
    eprintln!(
        "==> Deploying {image} to app {app} ({} strategy)",
        strategy.as_str()
    );
    ensure_app(client, &app).await?;
    let existing = client
        .get(&format!("/apps/{app}/machines"))
        .await?
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| !matches!(field(m, "/state").as_str(), "destroyed" | "destroying"))
        .collect::<Vec<_>>();
    let d = Deploy {
        client,
        app: &app,
        region: toml.primary_region().map(str::to_owned),
        strategy,
    };
    for plan in &plans {
        let members: Vec<Value> = existing
            .iter()
            .filter(|m| process_group(m) == plan.group)
            .cloned()
            .collect();
        if members.is_empty() {
            d.first_deploy(plan).await?;
        } else {
            d.update_group(plan, &members).await?;
        }
    }
    let stale: Vec<&Value> = existing
        .iter()
        .filter(|m| !plans.iter().any(|p| p.group == process_group(m)))
        .collect();
    if !stale.is_empty() {
        let ids: Vec<String> = stale.iter().map(|m| field(m, "/id")).collect();
        eprintln!(
            "--> {} machine(s) belong to process groups fly.toml no longer has: {}",
            ids.len(),
            ids.join(", ")
        );
        if args.yes || confirm("Destroy them?") {
            for id in &ids {
                client
                    .delete(&format!("/apps/{app}/machines/{id}?force=true"))
                    .await?;
                eprintln!("  machine {id} destroyed");
            }
        } else {
            eprintln!("  left as they are");
        }
    }
    eprintln!("==> Deployed {app}");
    Ok(ExitCode::SUCCESS)
}

/// Creates the app when it does not exist yet.
async fn ensure_app(client: &Client, app: &str) -> anyhow::Result<()> {
    match client.get(&format!("/apps/{app}")).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => {
            client
                .post("/apps", &json!({"app_name": app}))
                .await
                .with_context(|| format!("creating app {app}"))?;
            eprintln!("--> Created app {app}");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

struct Deploy<'a> {
    client: &'a Client,
    app: &'a str,
    region: Option<String>,
    strategy: DeployStrategy,
}

impl Deploy<'_> {
    fn body(&self, config: Value) -> Value {
        let mut body = json!({"config": config});
        if let Some(r) = &self.region {
            body["region"] = json!(r);
        }
        body
    }

    /// A volume named `name` not attached to any machine, else a new one.
    async fn volume_for(&self, name: &str, size_gb: u64) -> anyhow::Result<String> {
        let vols = self
            .client
            .get(&format!("/apps/{}/volumes", self.app))
            .await?;
        let free = vols.as_array().into_iter().flatten().find(|v| {
            field(v, "/name") == name
                && field(v, "/attached_machine_id").is_empty()
                && field(v, "/state") != "destroyed"
        });
        if let Some(v) = free {
            return Ok(field(v, "/id"));
        }
        let mut body = json!({"name": name, "size_gb": size_gb});
        if let Some(r) = &self.region {
            body["region"] = json!(r);
        }
        let v = self
            .client
            .post(&format!("/apps/{}/volumes", self.app), &body)
            .await?;
        let id = field(&v, "/id");
        eprintln!("  volume {id} ({name}, {size_gb}GB) created");
        Ok(id)
    }

    async fn first_deploy(&self, plan: &GroupPlan) -> anyhow::Result<()> {
        let group = &plan.group;
        eprintln!(
            "--> Process group {group}: first deploy, {} machine(s){}",
            plan.first_deploy_machines,
            if plan.first_deploy_standbys > 0 {
                format!(" and {} standby", plan.first_deploy_standbys)
            } else {
                String::new()
            }
        );
        let mut config = plan.config.clone();
        if !plan.mounts.is_empty() {
            let mut mounts = Vec::new();
            for m in &plan.mounts {
                let id = self
                    .volume_for(&m.source, m.initial_size_gb.unwrap_or(1))
                    .await?;
                mounts.push(m.machine_mount(&id));
            }
            config["mounts"] = json!(mounts);
        }
        let mut first = None;
        for _ in 0..plan.first_deploy_machines {
            let m = create_machine(self.client, self.app, &self.body(config.clone())).await?;
            let id = field(&m, "/id");
            eprintln!("  machine {id} created in {}", field(&m, "/region"));
            self.wait_healthy(&id).await?;
            first.get_or_insert(id);
        }
        if let Some(watched) = first {
            for _ in 0..plan.first_deploy_standbys {
                let mut c = config.clone();
                c["standbys"] = json!([watched]);
                let mut body = self.body(c);
                body["skip_launch"] = json!(true);
                let m = create_machine(self.client, self.app, &body).await?;
                eprintln!(
                    "  machine {} created as a stopped standby for {watched}",
                    field(&m, "/id")
                );
            }
        }
        Ok(())
    }

    /// Waits for `started`, then for the machine's checks to pass.
    async fn wait_healthy(&self, id: &str) -> anyhow::Result<()> {
        eprintln!("  waiting for machine {id} to start...");
        self.client
            .wait_for(self.app, id, "started", START_WAIT)
            .await
            .with_context(|| format!("machine {id} did not start"))?;
        let deadline = tokio::time::Instant::now() + CHECKS_WAIT;
        loop {
            let m = self
                .client
                .get(&format!("/apps/{}/machines/{id}", self.app))
                .await?;
            let checks = m
                .get("checks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let failing: Vec<String> = checks
                .iter()
                .filter(|c| field(c, "/status") != "passing")
                .map(|c| format!("{} ({})", field(c, "/name"), field(c, "/status")))
                .collect();
            if failing.is_empty() {
                let note = if checks.is_empty() {
                    "no checks reported".to_owned()
                } else {
                    format!("{} check(s) passing", checks.len())
                };
                eprintln!("  machine {id} started, {note}");
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "machine {id}: checks not passing after {}s: {}",
                    CHECKS_WAIT.as_secs(),
                    failing.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Updates one machine under a lease, so no one else changes it meanwhile.
    async fn update_leased(&self, id: &str, body: &Value) -> anyhow::Result<()> {
        let base = format!("/apps/{}/machines/{id}", self.app);
        let lease = self
            .client
            .post(
                &format!("{base}/lease"),
                &json!({"ttl": 60, "description": "hangar deploy"}),
            )
            .await
            .with_context(|| {
                format!("taking the lease of machine {id} (another deploy running?)")
            })?;
        let nonce = field(&lease, "/nonce");
        let headers = [("fly-machine-lease-nonce", nonce.as_str())];
        let updated = self
            .client
            .call_with(reqwest::Method::POST, &base, Some(body), &headers)
            .await
            .with_context(|| format!("updating machine {id}"));
        let released = self
            .client
            .call_with(
                reqwest::Method::DELETE,
                &format!("{base}/lease"),
                None,
                &headers,
            )
            .await;
        updated?;
        if let Err(e) = released {
            eprintln!("  warning: releasing the lease of machine {id}: {e}");
        }
        Ok(())
    }

    async fn update_group(&self, plan: &GroupPlan, members: &[Value]) -> anyhow::Result<()> {
        let group = &plan.group;
        eprintln!(
            "--> Process group {group}: updating {} machine(s) ({})",
            members.len(),
            self.strategy.as_str()
        );
        let mut to_wait = Vec::new();
        for m in members {
            let id = field(m, "/id");
            let old = m.get("config").cloned().unwrap_or_else(|| json!({}));
            let mut new = plan.config.clone();
            // Keep what belongs to this machine: its volumes and whom it watches.
            for key in ["mounts", "standbys"] {
                match old.get(key) {
                    Some(v) => new[key] = v.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove(key);
                        }
                    }
                }
            }
            if new == old {
                eprintln!("  machine {id} is up to date");
                continue;
            }
            let body = json!({"config": new, "current_version": m.get("version").cloned().unwrap_or(Value::Null)});
            self.update_leased(&id, &body).await?;
            eprintln!("  machine {id} updated to a new version");
            let running = matches!(field(m, "/state").as_str(), "started" | "starting");
            if running && !is_standby(m) {
                match self.strategy {
                    DeployStrategy::Immediate => to_wait.push(id),
                    _ => self.wait_healthy(&id).await?,
                }
            }
        }
        if !to_wait.is_empty() {
            eprintln!(
                "  immediate: not waiting for {} machine(s) to start",
                to_wait.len()
            );
        }
        Ok(())
    }
}
