//! Reading a machine config from the three file forms users write:
//!
//! 1. the API body, `{"config": {...}}`, possibly with `name`, `region` and other
//!    request fields beside `config`;
//! 2. the CLI file (`fly machine run --machine-config`), a bare config with
//!    `containers` (or `image`) at the root;
//! 3. the seeds' `cli-config.json`, `{"config": {"containers": ...}}` (the same
//!    shape as 1).
//!
//! A root object with a `config` key is form 1/3, anything else form 2. Errors
//! name the JSON path (rooted at `config`, whichever form was used) and the line
//! and column in the input.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::MachineConfig;

/// A config document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message} (line {line}, column {column})")]
pub struct ParseError {
    /// JSON path of the offending value, like `config.containers[0].env`.
    pub path: String,
    /// What is wrong, without the position.
    pub message: String,
    pub line: usize,
    pub column: usize,
}

#[derive(Deserialize)]
struct Wrapped {
    config: MachineConfig,
    #[serde(flatten)]
    _rest: Map<String, Value>,
}

/// Parse any of the three config file forms into a [`MachineConfig`].
pub fn parse_machine_config_document(json: &str) -> Result<MachineConfig, ParseError> {
    // First pass: syntax, and which form this is.
    let root: Value = serde_json::from_str(json).map_err(|e| from_serde("config", &e))?;
    let Value::Object(map) = &root else {
        return Err(ParseError {
            path: "config".into(),
            message: format!(
                "expected a JSON object (a machine config, or {{\"config\": ...}}), found {}",
                kind_of(&root)
            ),
            line: 1,
            column: 1,
        });
    };
    // Second pass: typed, over the text, so errors keep their line and column.
    if map.contains_key("config") {
        if !map["config"].is_object() {
            let (line, column) = position_of_key(json, "config", 1);
            return Err(ParseError {
                path: "config".into(),
                message: format!("expected an object, found {}", kind_of(&map["config"])),
                line,
                column,
            });
        }
        let config = typed::<Wrapped>(json, "").map(|w| w.config)?;
        if config.extra.contains_key("config") {
            // Echoed, `{"config": {"config": ...}}` would read back as a
            // different document; a config inside a config is refused.
            let (line, column) = position_of_key(json, "config", 2);
            return Err(ParseError {
                path: "config.config".into(),
                message: "a machine config cannot contain another \"config\"".into(),
                line,
                column,
            });
        }
        Ok(config)
    } else {
        typed::<MachineConfig>(json, "config")
    }
}

/// Parse a bare config (form 2) only; paths are rooted at `config`.
pub fn parse_machine_config(json: &str) -> Result<MachineConfig, ParseError> {
    typed::<MachineConfig>(json, "config")
}

fn typed<T: for<'de> Deserialize<'de>>(json: &str, root: &str) -> Result<T, ParseError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = result.map_err(|e| {
        let path = join_path(root, e.path());
        from_serde(&path, e.inner())
    })?;
    de.end().map_err(|e| from_serde(root, &e))?;
    Ok(value)
}

fn join_path(root: &str, path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = root.to_owned();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    if out.is_empty() { "config".into() } else { out }
}

fn from_serde(path: &str, e: &serde_json::Error) -> ParseError {
    // serde_json appends " at line L column C" to its messages; keep the message bare.
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    };
    ParseError {
        path: path.to_owned(),
        message,
        line: e.line(),
        column: e.column(),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Line and column (1-based) of the `nth` `"key"` in the text; (1, 1) if absent.
fn position_of_key(json: &str, key: &str, nth: usize) -> (usize, usize) {
    let needle = format!("\"{key}\"");
    let Some((offset, _)) = json.match_indices(&needle).nth(nth.saturating_sub(1)) else {
        return (1, 1);
    };
    let before = &json[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}
