//! `machine_config` (top level or `[experimental]`): a JSON file path relative
//! to the fly.toml, or inline JSON whose first character is `{`. Read in any of
//! the three forms hangar-types accepts (`{"config": ...}` or a bare config).

use std::path::Path;

use hangar_types::{MachineConfig, parse_machine_config_document};
use serde_json::{Map, Value};

use crate::error::{FlyTomlError, Pos};
use crate::read::At;

/// The machine config the fly.toml points at, typed and as a JSON object.
pub(crate) fn load(
    file: &Path,
    dir: &Path,
    mc: &At<String>,
    json_start: Option<Pos>,
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
    let config = parse_machine_config_document(&json).map_err(|e| match (&origin, json_start) {
        (Some(p), _) => err(format!(
            "{}:{}:{}: {}: {}",
            p.display(),
            e.line,
            e.column,
            e.path,
            e.message
        )),
        // Inline: the position in the fly.toml itself.
        (None, Some(start)) => {
            let pos = Pos {
                line: start.line + e.line - 1,
                column: if e.line == 1 {
                    start.column + e.column - 1
                } else {
                    e.column
                },
            };
            FlyTomlError::at(
                file,
                Some(pos),
                &mc.key,
                format!("{}: {}", e.path, e.message),
            )
        }
        (None, None) => err(format!(
            "inline JSON line {}, column {}: {}: {}",
            e.line, e.column, e.path, e.message
        )),
    })?;
    let Value::Object(map) = serde_json::to_value(&config).map_err(|e| err(e.to_string()))? else {
        return Err(err("a machine config must be a JSON object".into()));
    };
    Ok((config, map))
}
