//! The one HTTP client of the CLI: finds the API (`HANGAR_API_URL`) and the
//! token (`HANGAR_API_TOKEN`, `FLY_API_TOKEN`, then the admin-token file that
//! `hangar serve` writes), sends JSON, and turns the API's `{"error": ...}`
//! answers into typed errors that keep the status and the message.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Where the API listens when `HANGAR_API_URL` is not set.
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:4280";

/// What went wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API could not be reached or the connection broke.
    #[error("{method} {url}: cannot reach the API (is `hangar serve` running? HANGAR_API_URL)")]
    Transport {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The API answered with an error status.
    #[error("{method} {path}: {status}: {message}")]
    Api {
        method: Method,
        path: String,
        status: StatusCode,
        message: String,
    },
    /// The API answered 2xx with a body that is not the JSON expected.
    #[error("{method} {path}: answer is not JSON: {problem}")]
    Decode {
        method: Method,
        path: String,
        problem: String,
    },
    /// `HANGAR_API_URL` is not an http(s) URL.
    #[error("HANGAR_API_URL: {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the API said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }
}

/// A client of one Machines API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// The token from the environment, or from the admin-token file of
/// `$HANGAR_DATA_DIR` (default `/var/lib/hangar`).
fn find_token() -> Option<String> {
    for var in ["HANGAR_API_TOKEN", "FLY_API_TOKEN"] {
        if let Ok(t) = std::env::var(var) {
            let t = t.trim().to_owned();
            if !t.is_empty() {
                return Some(t);
            }
        }
    }
    let dir = std::env::var_os("HANGAR_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/hangar"));
    std::fs::read_to_string(dir.join("admin-token"))
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

impl Client {
    /// A client configured from the environment.
    pub fn from_env() -> Result<Client, ClientError> {
        let url = std::env::var("HANGAR_API_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_owned());
        Client::new(&url, find_token())
    }

    /// A client of the API at `url` (without `/v1`).
    pub fn new(url: &str, token: Option<String>) -> Result<Client, ClientError> {
        let url = url.trim().trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ClientError::BadUrl(url.to_owned()));
        }
        let base = url.strip_suffix("/v1").unwrap_or(url).to_owned();
        let http = reqwest::Client::builder()
            // The longest call is a wait of at most 60 s.
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a reqwest client with timeouts always builds");
        Ok(Client { base, token, http })
    }

    /// One call to `/v1{path}`; the answer's JSON (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.call_with(method, path, body, &[]).await
    }

    /// One call with extra headers (a lease nonce, say).
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, ClientError> {
        let url = format!("{}/v1{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            method: method.clone(),
            url: url.clone(),
            source,
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|source| ClientError::Transport {
            method: method.clone(),
            url,
            source,
        })?;
        if !status.is_success() {
            return Err(ClientError::Api {
                method,
                path: path.to_owned(),
                status,
                message: error_message(&text),
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Decode {
            method,
            path: path.to_owned(),
            problem: e.to_string(),
        })
    }

    /// `GET /v1{path}` read line by line as it arrives, each line handed to
    /// `on_line` until it returns false or the stream ends. No overall
    /// timeout: a followed stream lasts as long as the server sends.
    pub async fn get_lines(
        &self,
        path: &str,
        mut on_line: impl FnMut(&str) -> bool,
    ) -> Result<(), ClientError> {
        let url = format!("{}/v1{path}", self.base);
        let transport = |source| ClientError::Transport {
            method: Method::GET,
            url: url.clone(),
            source,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("a reqwest client with a connect timeout always builds");
        let mut req = http.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.map_err(transport)?;
            return Err(ClientError::Api {
                method: Method::GET,
                path: path.to_owned(),
                status,
                message: error_message(&text),
            });
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if !on_line(String::from_utf8_lossy(&line[..end]).as_ref()) {
                    return Ok(());
                }
            }
        }
        if !pending.is_empty() {
            on_line(String::from_utf8_lossy(&pending).as_ref());
        }
        Ok(())
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::DELETE, path, None).await
    }

    /// `GET .../wait` for one of `states` (at most 60 s per call, as the API
    /// allows); repeated until `total` has passed.
    pub async fn wait_for(
        &self,
        app: &str,
        id: &str,
        states: &str,
        total: Duration,
    ) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + total;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let secs = left.as_secs().clamp(1, 60);
            let path = format!("/apps/{app}/machines/{id}/wait?state={states}&timeout={secs}");
            match self.get(&path).await {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.status() == Some(StatusCode::REQUEST_TIMEOUT)
                        && tokio::time::Instant::now() < deadline =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The `error` of an API error body, else the body itself (or the status's
/// reason when empty).
fn error_message(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => match v.get("error").and_then(Value::as_str) {
            Some(m) => m.to_owned(),
            None => v.to_string(),
        },
        Err(_) if text.trim().is_empty() => "no message".to_owned(),
        Err(_) => text.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_prefers_the_error_field() {
        assert_eq!(
            error_message(r#"{"error":"app not found"}"#),
            "app not found"
        );
        assert_eq!(error_message("plain text\n"), "plain text");
        assert_eq!(error_message(""), "no message");
        assert_eq!(error_message(r#"{"x":1}"#), r#"{"x":1}"#);
    }

    #[test]
    fn urls_are_checked_and_v1_is_not_doubled() {
        assert!(matches!(
            Client::new("localhost:4280", None),
            Err(ClientError::BadUrl(_))
        ));
        let c = Client::new("http://127.0.0.1:4280/v1/", None).unwrap();
        assert_eq!(c.base, "http://127.0.0.1:4280");
    }
}
