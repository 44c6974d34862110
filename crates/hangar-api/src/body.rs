//! Request bodies and query strings. Bodies are JSON, read with or without a
//! Content-Type; an empty body (or `null`) reads as the type's default, so
//! bodyless POSTs work. Errors name the problem, its JSON path and its line
//! and column.

use crate::error::ApiError;
use crate::state::ApiState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

/// A request body, read whole (up to the configured limit).
pub struct Body(pub Bytes);

impl FromRequest<ApiState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge(state.config.max_body_bytes))
            }
            Err(rej) => Err(ApiError::BadRequest(format!(
                "cannot read request body: {}",
                rej.body_text()
            ))),
        }
    }
}

impl Body {
    /// Whether the body is empty, whitespace or `null`.
    pub fn is_empty(&self) -> bool {
        let t = self.0.trim_ascii();
        t.is_empty() || t == b"null"
    }

    /// Parses the body as `T`; an empty body gives `T::default()`.
    pub fn parse<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.is_empty() {
            return Ok(T::default());
        }
        parse_json(&self.0)
    }

    /// The body as a JSON object (`{}` when empty).
    pub fn value(&self) -> Result<serde_json::Value, ApiError> {
        if self.is_empty() {
            return Ok(serde_json::Value::Object(Default::default()));
        }
        let v: serde_json::Value = parse_json(&self.0)?;
        if !v.is_object() {
            return Err(ApiError::BadRequest(format!(
                "request body must be a JSON object, found {}",
                kind_of(&v)
            )));
        }
        Ok(v)
    }
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parses JSON text as `T`, naming the path, line and column of a problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let out: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = out.map_err(|e| {
        let path = json_path(e.path());
        let inner = e.into_inner();
        describe(&path, &inner)
    })?;
    de.end().map_err(|e| describe("", &e))?;
    Ok(value)
}

fn describe(path: &str, e: &serde_json::Error) -> ApiError {
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => full.as_str(),
    };
    let pos = format!("line {}, column {}", e.line(), e.column());
    if e.is_syntax() || e.is_eof() {
        ApiError::BadRequest(format!("malformed JSON in request body: {message} ({pos})"))
    } else if path.is_empty() {
        ApiError::BadRequest(format!("invalid request body: {message} ({pos})"))
    } else {
        ApiError::BadRequest(format!("invalid request body at {path}: {message} ({pos})"))
    }
}

fn json_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// A parsed query string; keys may repeat.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<String>) -> Params {
        let raw = raw.unwrap_or_default();
        Params(
            form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, with comma-separated values split.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`; present without value = true).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("" | "true" | "1" | "yes" | "True" | "TRUE") => Ok(Some(true)),
            Some("false" | "0" | "no" | "False" | "FALSE") => Ok(Some(false)),
            Some(v) => Err(ApiError::BadRequest(format!(
                "query parameter {key}: expected true or false, got {v:?}"
            ))),
        }
    }

    /// A non-negative integer parameter.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::BadRequest(format!(
                    "query parameter {key}: expected a non-negative integer, got {v:?}"
                ))
            }),
        }
    }
}
