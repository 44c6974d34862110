//! A real OCI registry on loopback: Debian's `docker-registry` (the CNCF
//! distribution registry), started per test with its own port and storage,
//! anonymous, with basic auth, or with token auth (a token server of
//! [`crate::token`] next to it), killed (by its pid) when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{Error, Result, io_at};
use crate::image::{Blob, Image, MEDIA_TYPE_INDEX};
use crate::token::{ISSUER, SERVICE, Signer, TokenServer};

const BINARY: &str = "/usr/bin/docker-registry";
/// How long a registry may take to answer `/v2/` after it was spawned.
const STARTUP: Duration = Duration::from_secs(15);
/// How many ports are tried when another process takes the free port first.
const ATTEMPTS: usize = 5;

/// A running registry; see the module docs.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    credentials: Option<(String, String)>,
    token: Option<(Signer, TokenServer)>,
    dir: TempDir,
}

/// How clients must authenticate.
enum Auth<'a> {
    Anonymous,
    Basic(&'a str, &'a str),
    /// Bearer tokens from the server at `realm`, signed by the certificate.
    Token {
        realm: String,
        cert: &'a Path,
    },
}

impl Registry {
    /// An anonymous registry (no auth).
    pub fn start() -> Result<Self> {
        Self::launch(None, false)
    }

    /// A registry that requires HTTP basic auth with these credentials
    /// (htpasswd with a bcrypt hash, as the registry demands).
    pub fn start_with_basic_auth(username: &str, password: &str) -> Result<Self> {
        Self::launch(Some((username.to_string(), password.to_string())), false)
    }

    /// A registry with token auth, as Docker Hub has: it answers 401 with a
    /// Bearer challenge, and a token server on loopback hands out tokens —
    /// with the requested access for these credentials, without any access
    /// to anonymous clients. [`Self::token`] makes tokens directly.
    pub fn start_with_token_auth(username: &str, password: &str) -> Result<Self> {
        Self::launch(Some((username.to_string(), password.to_string())), true)
    }

    fn launch(credentials: Option<(String, String)>, token_auth: bool) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("hangar-registry-")
            .tempdir()
            .map_err(io_at(std::env::temp_dir()))?;
        let token = match (&credentials, token_auth) {
            (Some((user, password)), true) => {
                let (signer, cert) = Signer::create(dir.path())?;
                let server = TokenServer::start(signer.clone(), user.clone(), password.clone())?;
                Some((signer, server, cert))
            }
            _ => None,
        };
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            let port = free_port()?;
            let auth = match (&token, &credentials) {
                (Some((_, server, cert)), _) => Auth::Token {
                    realm: server.realm(),
                    cert,
                },
                (None, Some((user, password))) => Auth::Basic(user, password),
                (None, None) => Auth::Anonymous,
            };
            match spawn(dir.path(), port, auth) {
                Ok(child) => {
                    return Ok(Self {
                        child,
                        addr: SocketAddr::from(([127, 0, 0, 1], port)),
                        credentials,
                        token: token.map(|(signer, server, _)| (signer, server)),
                        dir,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Registry("did not start".into())))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `127.0.0.1:PORT/<repo_tag>`, a full image reference.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.host())
    }

    /// The credentials of a basic-auth registry.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()))
    }

    /// A bearer token for a token-auth registry granting `actions` (e.g.
    /// `["pull"]`) on `repository`; `None` for other registries.
    pub fn token(&self, repository: &str, actions: &[&str]) -> Option<String> {
        let (signer, _) = self.token.as_ref()?;
        let actions = actions.iter().map(|a| a.to_string()).collect();
        signer
            .token("hangar-test", &[(repository.to_string(), actions)])
            .ok()
    }

    /// The registry's storage root (filesystem driver), e.g. to corrupt a
    /// blob on purpose: blobs live in
    /// `docker/registry/v2/blobs/sha256/<hex[..2]>/<hex>/data`.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Path of the stored data of blob `digest` (`sha256:<hex>`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage_dir()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2.min(hex.len())])
            .join(hex)
            .join("data")
    }

    /// Pushes `image` as `repo_tag` (`name:tag`, or `name` for `latest`)
    /// over the distribution protocol; returns the manifest digest.
    pub async fn push(&self, image: &Image, repo_tag: &str) -> Result<String> {
        let (repo, tag) = split_repo_tag(repo_tag);
        let bearer = self.token(repo, &["pull", "push"]);
        let bearer = bearer.as_deref();
        let client = reqwest::Client::new();
        let base = format!("http://{}", self.addr);
        for blob in image.blobs() {
            let url = format!("{base}/v2/{repo}/blobs/{}", blob.digest);
            let exists = self.send(client.head(&url), bearer, "HEAD blob").await?;
            if exists.status().is_success() {
                continue;
            }
            let started = self
                .send(
                    client.post(format!("{base}/v2/{repo}/blobs/uploads/")),
                    bearer,
                    "start upload",
                )
                .await?;
            expect_status(&started, 202, "start upload")?;
            let location = started
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::Registry("upload without a Location header".into()))?;
            let mut upload = if location.starts_with("http") {
                reqwest::Url::parse(location)
            } else {
                reqwest::Url::parse(&base).and_then(|b| b.join(location))
            }
            .map_err(|e| Error::Registry(format!("upload location {location:?}: {e}")))?;
            upload.query_pairs_mut().append_pair("digest", &blob.digest);
            let request = client
                .put(upload)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(blob.data.to_vec());
            let done = self.send(request, bearer, "upload blob").await?;
            expect_status(&done, 201, "upload blob")?;
        }
        self.put_manifest(repo, tag, &image.manifest, bearer)
            .await?;
        Ok(image.manifest.digest.clone())
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Blob,
        bearer: Option<&str>,
    ) -> Result<()> {
        let request = reqwest::Client::new()
            .put(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.addr
            ))
            .header(reqwest::header::CONTENT_TYPE, &manifest.media_type)
            .body(manifest.data.to_vec());
        let done = self.send(request, bearer, "put manifest").await?;
        expect_status(&done, 201, "put manifest")
    }

    /// Pushes a multi-platform image: each `(image, "os/arch")` by digest,
    /// then an OCI image index naming them under `repo_tag`. Returns the
    /// index digest.
    pub async fn push_index(&self, entries: &[(&Image, &str)], repo_tag: &str) -> Result<String> {
        let (repo, tag) = split_repo_tag(repo_tag);
        let mut manifests = Vec::new();
        for (image, platform) in entries {
            let (os, architecture) = platform
                .split_once('/')
                .ok_or_else(|| Error::Image(format!("platform {platform:?}: expected os/arch")))?;
            self.push(image, &format!("{repo}:{}", image.manifest.hex()))
                .await?;
            let mut descriptor = image.manifest.descriptor();
            descriptor["platform"] = serde_json::json!({"os": os, "architecture": architecture});
            manifests.push(descriptor);
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": manifests,
        });
        let index = Blob::new(
            MEDIA_TYPE_INDEX,
            serde_json::to_vec(&index).expect("serializing JSON into memory"),
        );
        let bearer = self.token(repo, &["pull", "push"]);
        self.put_manifest(repo, tag, &index, bearer.as_deref())
            .await?;
        Ok(index.digest)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        bearer: Option<&str>,
        what: &str,
    ) -> Result<reqwest::Response> {
        let request = match (bearer, &self.credentials) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some((user, password))) => request.basic_auth(user, Some(password)),
            (None, None) => request,
        };
        request.send().await.map_err(|source| Error::Http {
            what: what.to_string(),
            source,
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Child::kill signals exactly the pid this registry was spawned as.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn split_repo_tag(repo_tag: &str) -> (&str, &str) {
    match repo_tag.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (repo_tag, "latest"),
    }
}

fn expect_status(response: &reqwest::Response, want: u16, what: &str) -> Result<()> {
    if response.status().as_u16() == want {
        Ok(())
    } else {
        Err(Error::Registry(format!(
            "{what}: expected status {want}, got {}",
            response.status()
        )))
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_at("127.0.0.1:0"))?;
    let port = listener.local_addr().map_err(io_at("127.0.0.1:0"))?.port();
    Ok(port)
}

fn spawn(dir: &Path, port: u16, auth: Auth<'_>) -> Result<Child> {
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: hangar-test-registry\n",
        storage = dir.join("storage").display(),
    );
    match auth {
        Auth::Anonymous => {}
        Auth::Basic(user, password) => {
            let hash = bcrypt::hash_with_result(password, 4)
                .map_err(|e| Error::Registry(format!("bcrypt: {e}")))?
                .format_for_version(bcrypt::Version::TwoY);
            let htpasswd = dir.join("htpasswd");
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).map_err(io_at(&htpasswd))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: hangar-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        Auth::Token { realm, cert } => config.push_str(&format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            cert.display()
        )),
    }
    let config_path = dir.join(format!("config-{port}.yml"));
    std::fs::write(&config_path, config).map_err(io_at(&config_path))?;
    let log_path = dir.join(format!("registry-{port}.log"));
    let log = std::fs::File::create(&log_path).map_err(io_at(&log_path))?;
    let log_err = log.try_clone().map_err(io_at(&log_path))?;
    let mut child = Command::new(BINARY)
        .arg("serve")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(io_at(BINARY))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + STARTUP;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(Error::Registry(format!("exited with {status}: {log}")));
        }
        if answers_v2(addr) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Registry(format!(
                "no answer on {addr}/v2/ within {STARTUP:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `GET /v2/` answers 200 (anonymous) or 401 (auth required).
fn answers_v2(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    if stream.read_exact(&mut head).is_err() {
        return false;
    }
    head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.1 401")
}
