//! Checks of request values beyond their JSON types: every problem is
//! reported with its JSON path, all at once.

use crate::error::Problem;
use hangar_types::MachineConfig;

/// Problems of a machine config, each at a path under `config`
/// (hangar-types' validation: every problem at once).
pub fn machine_config(cfg: &MachineConfig) -> Vec<Problem> {
    match cfg.validate() {
        Ok(()) => Vec::new(),
        Err(problems) => problems
            .iter()
            .map(|p| Problem {
                path: p.path.clone(),
                message: p.message.clone(),
            })
            .collect(),
    }
}

/// Problems of a machine name: 1 to 63 characters of letters, digits and '-'.
pub fn machine_name(name: &str) -> Option<Problem> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (!ok).then(|| Problem {
        path: "name".into(),
        message: format!("{name:?} must be 1 to 63 letters, digits, '-' or '_'"),
    })
}

/// Problems of a region code: 2 to 16 lowercase letters and digits.
pub fn region(region: &str) -> Option<Problem> {
    let ok = (2..=16).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (!ok).then(|| Problem {
        path: "region".into(),
        message: format!("{region:?} must be 2 to 16 lowercase letters or digits"),
    })
}

/// Problems of a lease TTL in seconds.
pub fn lease_ttl(path: &str, ttl: i64) -> Option<Problem> {
    (!(1..=86_400).contains(&ttl)).then(|| Problem {
        path: path.into(),
        message: format!("{ttl} must be between 1 and 86400 seconds"),
    })
}

/// A metadata key: 1 to 64 letters, digits, '_', '-', '.' or '/'.
pub fn metadata_key(key: &str) -> Option<Problem> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b));
    (!ok).then(|| Problem {
        path: format!("metadata.{key}"),
        message: "keys must be 1 to 64 letters, digits, '_', '-', '.' or '/'".into(),
    })
}
