//! `machine_config` (top level or `[experimental]`): a JSON file path relative
//! to the fly.toml, or inline JSON whose first character is `{`. Read in any of
//! the three forms hangar-types accepts (`{"config": ...}` or a bare config).

use std::path::Path;

use hangar_types::{MachineConfig, parse_machine_config_document};
use serde_json::{Map, Value};

use crate::error::FlyTomlError;
use crate::read::At;

/// The machine config the fly.toml points at, typed and as a JSON object.
pub(crate) fn load(
    file: &Path,
    dir: &Path,
    mc: &At<String>,
) -> Result<(MachineConfig, Map<String, Value>), FlyTomlError> {
    let err = |message: String| FlyTomlError::at(file, Some(mc.pos), &mc.key, message);
    let text = mc.value.trim();
    if text.is_empty() {
        return Err(err(
            "expected a JSON file path or inline JSON starting with {, found an empty string"
                .into(),
        ));
    }
    let (json, origin) = if text.starts_with('{') {
        (text.to_owned(), None)
    } else {
        let path = dir.join(text);
        let json = std::fs::read_to_string(&path)
            .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        (json, Some(path))
    };
    let config = parse_machine_config_document(&json).map_err(|e| {
        let place = match &origin {
            Some(p) => format!("{}:{}:{}", p.display(), e.line, e.column),
            None => format!("inline JSON line {}, column {}", e.line, e.column),
        };
        err(format!("{place}: {}: {}", e.path, e.message))
    })?;
    let Value::Object(map) = serde_json::to_value(&config).map_err(|e| err(e.to_string()))? else {
        return Err(err("a machine config must be a JSON object".into()));
    };
    Ok((config, map))
}
