//! fly.toml: the app configuration `hangar deploy` reads, parsed with errors that
//! name file, line and key, and turned into the machine configs of each process
//! group.
//!
//! ```
//! use std::path::Path;
//! use hangar_fly_toml::FlyToml;
//!
//! let toml = FlyToml::parse(r#"
//! app = "hello"
//! [http_service]
//! internal_port = 8080
//! force_https = true
//! "#, Path::new("fly.toml")).unwrap();
//! let plans = toml.plan("registry.local/hello:1").unwrap();
//! assert_eq!(plans[0].group, "app");
//! assert_eq!(plans[0].first_deploy_machines, 2);
//! assert_eq!(plans[0].config["services"][0]["ports"][1]["port"], 443);
//!
//! let err = FlyToml::parse("[http_service]\ninternal_port = \"80\"\n", Path::new("fly.toml"))
//!     .unwrap_err();
//! assert_eq!(err.to_string(),
//!     "fly.toml:2:17: http_service.internal_port: expected an integer, found a string");
//! ```
//!
//! # What becomes what
//!
//! - One machine config per process group (`[processes]`; `app` when there is
//!   none). A group's command becomes `init.cmd` (split like a shell would);
//!   its machines carry metadata `fly_process_group` and
//!   `fly_platform_version = "v2"`, and env `FLY_PROCESS_GROUP` (plus
//!   `PRIMARY_REGION` when `primary_region` is set) beside `[env]`.
//! - `[http_service]` is a TCP service with port 80 (`http`, `force_https`) and
//!   443 (`tls` + `http`); `[[services]]` are taken as written. A service (and a
//!   check, mount, restart, file or metrics section) with `processes = [...]`
//!   applies to those groups; without, to the default group only, as flyctl
//!   does: `app` if there is such a group, else the first name alphabetically.
//!   A service that sets neither `auto_stop_machines` nor
//!   `auto_start_machines` gets autostop `"stop"` and autostart on (what a
//!   first deploy promises).
//! - `[[vm]]`: each group takes one section, the first naming it, else the
//!   first naming no group (as flyctl does). In it, a `size` preset comes
//!   first, then `cpus`, `cpu_kind`, `memory` / `memory_mb` override it.
//! - `machine_config` (top level or `[experimental]`) is the base of every
//!   group's config: a JSON file path relative to the fly.toml, or inline JSON
//!   starting with `{`. With `containers`, the deployed image replaces the image
//!   of `container` (else of the container named `app`, else the first), which
//!   also gets the group's command and env.
//! - `local_path` files (`[[files]]` and the machine config's) are read here,
//!   relative to the fly.toml's directory, and sent as `raw_value`.
//! - Volumes (`[mounts]`) are listed per group in [`GroupPlan::mounts`]; they go
//!   into `config.mounts` only once created ([`MountPlan::machine_mount`]).
//! - Unknown keys are warnings ([`FlyToml::warnings`]), not errors.
#![forbid(unsafe_code)]

mod error;
mod machine_config;
mod model;
mod parse;
mod plan;
mod read;
pub mod shell;
mod tree;
pub mod units;

use std::path::{Path, PathBuf};

pub use error::{FlyTomlError, Pos, Warning};
pub use model::{DeployStrategy, MountPlan};
pub use plan::GroupPlan;

use model::Model;

/// A parsed fly.toml.
#[derive(Debug, Clone)]
pub struct FlyToml {
    path: PathBuf,
    model: Model,
    warnings: Vec<Warning>,
}

impl FlyToml {
    /// Read and parse the fly.toml at `path`.
    pub fn load(path: &Path) -> Result<FlyToml, FlyTomlError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FlyTomlError::at(path, None, "", format!("cannot read the file: {e}")))?;
        FlyToml::parse(&text, path)
    }

    /// Parse fly.toml text; `path` names the file in errors, and its directory
    /// is where relative paths (`machine_config`, `local_path`) are read from.
    pub fn parse(text: &str, path: &Path) -> Result<FlyToml, FlyTomlError> {
        let (model, warnings) = parse::parse(text, path)?;
        Ok(FlyToml {
            path: path.to_owned(),
            model,
            warnings,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn app(&self) -> Option<&str> {
        self.model.app.as_deref()
    }

    pub fn primary_region(&self) -> Option<&str> {
        self.model.primary_region.as_deref()
    }

    /// `[build] image`.
    pub fn image(&self) -> Option<&str> {
        self.model.image.as_deref()
    }

    /// The process groups: the keys of `[processes]` in order, `["app"]` when
    /// there is no `[processes]`.
    pub fn process_groups(&self) -> Vec<String> {
        groups(&self.model)
    }

    /// `[deploy] strategy` (rolling when not given).
    pub fn strategy(&self) -> DeployStrategy {
        self.model.strategy
    }

    /// Keys Hangar read past: unknown keys, and fly.toml keys it does not act on.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The image to deploy: `flag` (`--image`) if given, else `[build] image`.
    /// Without either, an error: naming `build.dockerfile` (or `builder`,
    /// `buildpacks`) when the fly.toml asks for a build, which Hangar does not do.
    pub fn deploy_image(&self, flag: Option<&str>) -> Result<String, FlyTomlError> {
        if let Some(i) = flag.filter(|i| !i.trim().is_empty()) {
            return Ok(i.to_owned());
        }
        if let Some(i) = self.image() {
            return Ok(i.to_owned());
        }
        Err(match &self.model.build_source {
            Some(b) => FlyTomlError::at(
                &self.path,
                Some(b.pos),
                &b.key,
                "building images is out of scope for hangar: build and push the image yourself, then set [build] image or pass --image",
            ),
            None => FlyTomlError::at(
                &self.path,
                None,
                "build.image",
                "no image to deploy: set [build] image or pass --image",
            ),
        })
    }

    /// Everything a deploy creates, per process group. `image` is the image to
    /// run (from `--image` or `[build] image`; see [`FlyToml::deploy_image`]).
    /// Files (`local_path`, machine_config file paths) are resolved relative to
    /// the fly.toml's directory here, so the result is final.
    pub fn plan(&self, image: &str) -> Result<Vec<GroupPlan>, FlyTomlError> {
        let image = self.deploy_image(Some(image))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        plan::plan(
            &self.model,
            &self.path,
            &dir,
            &self.process_groups(),
            &image,
        )
    }
}

pub(crate) fn groups(m: &Model) -> Vec<String> {
    if m.processes.is_empty() {
        vec!["app".to_owned()]
    } else {
        m.processes.iter().map(|p| p.name.value.clone()).collect()
    }
}
