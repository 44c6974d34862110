//! Which app a command acts on: `-a/--app`, else `HANGAR_APP`, else the `app`
//! of the fly.toml in the current directory (or the one `-c/--config` names).

use std::path::{Path, PathBuf};

/// Why no app could be found.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(
        "no app given: pass -a/--app, set HANGAR_APP, or run where a fly.toml sets `app` ({0})"
    )]
    Missing(String),
    #[error("{path}: {problem}")]
    BadFlyToml { path: String, problem: String },
}

/// The `-a/--app` and `-c/--config` flags every app-scoped command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct AppArgs {
    /// The app (else HANGAR_APP, else `app` in fly.toml).
    #[arg(short = 'a', long = "app", env = "HANGAR_APP", global = true)]
    pub app: Option<String>,
    /// The fly.toml to read the app name from.
    #[arg(
        short = 'c',
        long = "config",
        global = true,
        default_value = "fly.toml"
    )]
    pub config: PathBuf,
}

impl AppArgs {
    /// The app name.
    pub fn resolve(&self) -> Result<String, AppError> {
        if let Some(a) = self.app.as_ref().filter(|a| !a.trim().is_empty()) {
            return Ok(a.trim().to_owned());
        }
        app_from_fly_toml(&self.config)
    }
}

/// The `app` key of a fly.toml.
fn app_from_fly_toml(path: &Path) -> Result<String, AppError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::Missing(format!("{shown} not found")));
        }
        Err(e) => {
            return Err(AppError::BadFlyToml {
                path: shown,
                problem: e.to_string(),
            });
        }
    };
    let doc: toml::Table = toml::from_str(&text).map_err(|e| AppError::BadFlyToml {
        path: shown.clone(),
        problem: e.message().to_owned(),
    })?;
    match doc.get("app") {
        Some(toml::Value::String(a)) if !a.trim().is_empty() => Ok(a.trim().to_owned()),
        Some(_) => Err(AppError::BadFlyToml {
            path: shown,
            problem: "app: must be a non-empty string".into(),
        }),
        None => Err(AppError::Missing(format!("{shown} has no `app`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_flag_wins_then_fly_toml() {
        let dir = std::env::temp_dir().join(format!("hangar-cli-target-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("fly.toml");
        std::fs::write(&toml, "app = 'from-toml'\nprimary_region = 'ams'\n").unwrap();
        let mut args = AppArgs {
            app: None,
            config: toml.clone(),
        };
        assert_eq!(args.resolve().unwrap(), "from-toml");
        args.app = Some("flag".into());
        assert_eq!(args.resolve().unwrap(), "flag");
        args.app = None;
        std::fs::write(&toml, "primary_region = 'ams'\n").unwrap();
        assert!(matches!(args.resolve(), Err(AppError::Missing(_))));
        args.config = dir.join("absent.toml");
        assert!(
            args.resolve()
                .unwrap_err()
                .to_string()
                .contains("not found")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
