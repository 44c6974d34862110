//! Helpers shared by the fly.toml tests: fixture paths and parse shortcuts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hangar_fly_toml::{FlyToml, FlyTomlError};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Parse `text` as if it were `fly.toml` in the fixtures directory.
pub fn parse(text: &str) -> Result<FlyToml, FlyTomlError> {
    FlyToml::parse(text, Path::new("fly.toml"))
}

/// The error text of a fly.toml that must fail to parse.
pub fn parse_err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("parsed, but should not have:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// The error text of a fly.toml that parses but must fail to plan.
pub fn plan_err(text: &str) -> String {
    let toml = parse(text).unwrap_or_else(|e| panic!("does not parse: {e}"));
    match toml.plan("registry.local/app:1") {
        Ok(p) => panic!("planned, but should not have: {p:#?}"),
        Err(e) => e.to_string(),
    }
}
