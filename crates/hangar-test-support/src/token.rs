//! A token server for a registry with token ("Bearer") auth, the scheme
//! Docker Hub uses: the registry answers 401 with a Bearer challenge naming
//! this server, clients fetch a JWT here (anonymously or with basic auth) and
//! present it to the registry.
//!
//! Tokens are RS256 JWTs carrying the signing certificate in `x5c`; the
//! registry trusts that certificate through its `rootcertbundle`. Keys are
//! made and tokens signed with the `openssl` command. Anonymous clients get
//! tokens without access; clients with the right credentials get the
//! actions they ask for.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use crate::error::{Error, Result, io_at};

pub(crate) const SERVICE: &str = "hangar-test-registry";
pub(crate) const ISSUER: &str = "hangar-test-tokens";

/// Signs tokens; shared by the server thread and [`crate::Registry::token`].
#[derive(Clone)]
pub(crate) struct Signer {
    key: PathBuf,
    cert_der: Vec<u8>,
}

impl Signer {
    /// Makes an RSA key and a self-signed certificate in `dir`; returns the
    /// signer and the certificate (PEM) path for the registry's config.
    pub(crate) fn create(dir: &Path) -> Result<(Self, PathBuf)> {
        let key = dir.join("token-key.pem");
        let cert = dir.join("token-cert.pem");
        run_openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=hangar-test-tokens",
                "-keyout",
                path_str(&key)?,
                "-out",
                path_str(&cert)?,
            ],
            None,
        )?;
        let cert_der = run_openssl(&["x509", "-in", path_str(&cert)?, "-outform", "DER"], None)?;
        Ok((Self { key, cert_der }, cert))
    }

    /// A token for `subject` granting `actions` on repository `name`.
    pub(crate) fn token(&self, subject: &str, access: &[(String, Vec<String>)]) -> Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let header =
            json!({"typ": "JWT", "alg": "RS256", "x5c": [STANDARD.encode(&self.cert_der)]});
        let access: Vec<_> = access
            .iter()
            .map(|(name, actions)| json!({"type": "repository", "name": name, "actions": actions}))
            .collect();
        let claims = json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 3600,
            "nbf": now - 60,
            "iat": now - 60,
            "jti": format!("{now}-{}", std::process::id()),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = run_openssl(
            &["dgst", "-sha256", "-sign", path_str(&self.key)?],
            Some(signing_input.as_bytes()),
        )?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| Error::Registry(format!("{}: not UTF-8", path.display())))
}

fn run_openssl(args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_at("openssl"))?;
    let input = stdin.unwrap_or_default().to_vec();
    let mut pipe = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let output = child.wait_with_output().map_err(io_at("openssl"))?;
    let _ = writer.join();
    if !output.status.success() {
        return Err(Error::Registry(format!(
            "openssl {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(output.stdout)
}

/// The token server; stops (and joins its thread) on drop.
pub(crate) struct TokenServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TokenServer {
    pub(crate) fn start(signer: Signer, username: String, password: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io_at("127.0.0.1:0"))?;
        let addr = listener.local_addr().map_err(io_at("127.0.0.1:0"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{username}:{password}"))
        );
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = answer(stream, &signer, &username, &expected);
                }
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The realm URL for the registry's config.
    pub(crate) fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or_default())
            .ok()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if bytes[i] == b'%'
            && let Some(byte) = escaped
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a `repository:NAME:ACTIONS` scope.
pub(crate) fn parse_scope(scope: &str) -> Option<(String, Vec<String>)> {
    let rest = scope.strip_prefix("repository:")?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((
        name.to_string(),
        actions.split(',').map(str::to_string).collect(),
    ))
}

fn answer(
    stream: TcpStream,
    signer: &Signer,
    username: &str,
    expected: &str,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let scopes: Vec<(String, Vec<String>)> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(k, _)| *k == "scope")
        .flat_map(|(_, v)| {
            let v = percent_decode(v);
            v.split(' ').filter_map(parse_scope).collect::<Vec<_>>()
        })
        .collect();
    let (status, body) = match authorization.as_deref() {
        Some(given) if given == expected => match signer.token(username, &scopes) {
            Ok(token) => (
                "200 OK",
                json!({"token": token, "access_token": token, "expires_in": 3600}),
            ),
            Err(e) => ("500 Internal Server Error", json!({"error": e.to_string()})),
        },
        Some(_) => (
            "401 Unauthorized",
            json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}),
        ),
        None => match signer.token("", &[]) {
            Ok(token) => (
                "200 OK",
                json!({"token": token, "access_token": token, "expires_in": 3600}),
            ),
            Err(e) => ("500 Internal Server Error", json!({"error": e.to_string()})),
        },
    };
    let body = body.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
