//! Real OCI images for tests, and their two on-disk forms.
//!
//! [`ImageBuilder::new`] starts from two layers: busybox-static at
//! `/bin/busybox` with applet symlinks, `/etc/passwd` and `/etc/group`
//! (root, `app` 1000:1000, nobody), `/tmp` (1777) and placeholders for
//! `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`; then `testapp` at
//! `/usr/local/bin/testapp`. Extra files go into a third layer; whole layers
//! (e.g. with whiteouts) can be appended. Layers are gzip tars, the config
//! and manifest are the OCI media types, and every byte is reproducible, so
//! the same builder calls give the same digests.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Result, io_at};
use crate::layer::{Layer, MTIME};
use crate::testapp::testapp_binary;

pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The busybox applets linked in `/bin`.
const APPLETS: &[&str] = &[
    "[", "ash", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df",
    "dirname", "du", "echo", "env", "expr", "false", "find", "free", "grep", "head", "hostname",
    "id", "ip", "kill", "ln", "ls", "mkdir", "mkfifo", "mount", "mv", "nc", "nslookup", "pidof",
    "ping", "printf", "ps", "pwd", "readlink", "rm", "rmdir", "sed", "seq", "sh", "sleep", "sort",
    "stat", "tail", "tee", "test", "timeout", "top", "touch", "tr", "true", "umount", "uname",
    "uniq", "usleep", "vi", "wc", "wget", "which", "whoami", "xargs", "yes",
];

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
app:x:1000:1000:app:/home/app:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\napp:x:1000:\nnobody:x:65534:\n";

pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A content-addressed blob.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    /// `sha256:<hex>` of `data`.
    pub digest: String,
    pub data: Arc<Vec<u8>>,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Self {
        Self {
            media_type: media_type.to_string(),
            digest: sha256_digest(&data),
            data: Arc::new(data),
        }
    }

    pub fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    /// An OCI descriptor of this blob.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size()})
    }
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// One layer: its compressed blob, and its uncompressed tar and diff id.
#[derive(Clone, Debug)]
pub struct LayerBlob {
    /// The gzip tar, as pushed and stored.
    pub blob: Blob,
    /// The uncompressed tar (what `docker save` writes).
    pub tar: Arc<Vec<u8>>,
    /// `sha256:<hex>` of `tar`, as listed in the config's `rootfs.diff_ids`.
    pub diff_id: String,
}

impl LayerBlob {
    pub fn from_layer(layer: &Layer) -> Self {
        Self::from_tar(layer.to_tar())
    }

    pub fn from_tar(tar: Vec<u8>) -> Self {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(&tar).expect("gzip into memory");
        let gz = encoder.finish().expect("gzip into memory");
        Self {
            blob: Blob::new(MEDIA_TYPE_LAYER_GZIP, gz),
            diff_id: sha256_digest(&tar),
            tar: Arc::new(tar),
        }
    }
}

/// A built image: layers (lowest first), config and manifest blobs.
#[derive(Clone, Debug)]
pub struct Image {
    pub layers: Vec<LayerBlob>,
    pub config: Blob,
    pub manifest: Blob,
}

/// Builds an [`Image`]; see the module docs for what the base holds.
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    extra_files: Option<Layer>,
    layers: Vec<Layer>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    working_dir: Option<String>,
    user: Option<String>,
    exposed_ports: Vec<String>,
    labels: BTreeMap<String, String>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl ImageBuilder {
    /// busybox + testapp, `Cmd ["/usr/local/bin/testapp", "serve-http", "8080"]`,
    /// `Env [PATH=...]`, port 8080/tcp exposed.
    pub fn new() -> Self {
        Self {
            extra_files: None,
            layers: Vec::new(),
            entrypoint: None,
            cmd: Some(strings(&["/usr/local/bin/testapp", "serve-http", "8080"])),
            env: vec![DEFAULT_PATH.to_string()],
            working_dir: None,
            user: None,
            exposed_ports: vec!["8080/tcp".to_string()],
            labels: BTreeMap::new(),
        }
    }

    pub fn entrypoint(mut self, args: &[&str]) -> Self {
        self.entrypoint = Some(strings(args));
        self
    }

    pub fn cmd(mut self, args: &[&str]) -> Self {
        self.cmd = Some(strings(args));
        self
    }

    /// Adds `NAME=VALUE` to the config's `Env` (replacing an earlier `NAME`).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        let prefix = format!("{name}=");
        self.env.retain(|entry| !entry.starts_with(&prefix));
        self.env.push(format!("{name}={value}"));
        self
    }

    pub fn working_dir(mut self, dir: &str) -> Self {
        self.working_dir = Some(dir.to_string());
        self
    }

    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// Exposes a port, e.g. `"9000/tcp"`.
    pub fn expose(mut self, port: &str) -> Self {
        if !self.exposed_ports.iter().any(|p| p == port) {
            self.exposed_ports.push(port.to_string());
        }
        self
    }

    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.insert(name.to_string(), value.to_string());
        self
    }

    /// Adds a file (root-owned, `mode`) to the extra-files layer, which sits
    /// on top of busybox and testapp.
    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        let layer = self.extra_files.take().unwrap_or_default();
        self.extra_files = Some(layer.file(path, contents, mode));
        self
    }

    /// Appends a whole layer (after the extra-files layer), e.g. one with
    /// whiteouts.
    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    pub fn build(self) -> Image {
        let (busybox, testapp) = base_layers();
        let mut layers = vec![busybox.clone(), testapp.clone()];
        layers.extend(self.extra_files.iter().map(LayerBlob::from_layer));
        layers.extend(self.layers.iter().map(LayerBlob::from_layer));

        let mut config = json!({
            "Env": self.env,
            "ExposedPorts": self.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect::<serde_json::Map<_, _>>(),
        });
        let fields = [
            ("Entrypoint", self.entrypoint.map(|v| json!(v))),
            ("Cmd", self.cmd.map(|v| json!(v))),
            ("WorkingDir", self.working_dir.map(|v| json!(v))),
            ("User", self.user.map(|v| json!(v))),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                config[name] = value;
            }
        }
        if !self.labels.is_empty() {
            config["Labels"] = json!(self.labels);
        }
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2023-11-14T22:13:20Z",
            "config": config,
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": layers.iter().map(|_| json!({"created_by": "hangar-test-support"})).collect::<Vec<_>>(),
        });
        let config = Blob::new(MEDIA_TYPE_CONFIG, to_json(&config));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": config.descriptor(),
            "layers": layers.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(MEDIA_TYPE_MANIFEST, to_json(&manifest));
        Image {
            layers,
            config,
            manifest,
        }
    }
}

fn to_json(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serializing JSON into memory")
}

/// The busybox and testapp layers, built once per process.
fn base_layers() -> &'static (LayerBlob, LayerBlob) {
    static BASE: OnceLock<(LayerBlob, LayerBlob)> = OnceLock::new();
    BASE.get_or_init(|| {
        let busybox = std::fs::read("/bin/busybox")
            .unwrap_or_else(|e| panic!("/bin/busybox (install busybox-static): {e}"));
        let mut layer = Layer::new();
        for dir in [
            "bin",
            "dev",
            "etc",
            "home",
            "proc",
            "run",
            "sys",
            "usr",
            "usr/local",
            "var",
        ] {
            layer = layer.dir(dir, 0o755);
        }
        layer = layer
            .dir("root", 0o700)
            .dir("tmp", 0o1777)
            .dir("home/app", 0o755)
            .owned_by(1000, 1000)
            .file("bin/busybox", busybox, 0o755);
        for applet in APPLETS {
            layer = layer.symlink(&format!("bin/{applet}"), "busybox");
        }
        layer = layer
            .file("etc/passwd", PASSWD, 0o644)
            .file("etc/group", GROUP, 0o644)
            .file("etc/hostname", "localhost\n", 0o644)
            .file("etc/hosts", "127.0.0.1 localhost\n::1 localhost\n", 0o644)
            .file("etc/resolv.conf", "", 0o644);
        let testapp_path = testapp_binary();
        let testapp = std::fs::read(&testapp_path)
            .unwrap_or_else(|e| panic!("{}: {e}", testapp_path.display()));
        let testapp =
            Layer::new()
                .dir("usr/local/bin", 0o755)
                .file("usr/local/bin/testapp", testapp, 0o755);
        (
            LayerBlob::from_layer(&layer),
            LayerBlob::from_layer(&testapp),
        )
    })
}

impl Image {
    /// `sha256:<hex>` of the manifest.
    pub fn digest(&self) -> &str {
        &self.manifest.digest
    }

    /// Every blob the manifest references, config first.
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter().map(|l| &l.blob))
    }

    /// Writes an OCI image layout into `dir` (created if missing):
    /// `oci-layout`, `index.json` (with `ref_name` as the
    /// `org.opencontainers.image.ref.name` annotation when given) and
    /// `blobs/sha256/<hex>` for the manifest, config and layers.
    pub fn write_oci_layout(&self, dir: &Path, ref_name: Option<&str>) -> Result<()> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(io_at(&blobs))?;
        for blob in self.blobs().chain(std::iter::once(&self.manifest)) {
            let path = blobs.join(blob.hex());
            std::fs::write(&path, &*blob.data).map_err(io_at(&path))?;
        }
        let mut descriptor = self.manifest.descriptor();
        descriptor["platform"] = json!({"architecture": "amd64", "os": "linux"});
        if let Some(name) = ref_name {
            descriptor["annotations"] = json!({"org.opencontainers.image.ref.name": name});
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [descriptor],
        });
        write(&dir.join("index.json"), &to_json(&index))?;
        write(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
    }

    /// Writes a `docker save` style tarball at `path`: `manifest.json`
    /// (with `repo_tag` in `RepoTags`), `repositories`, `<config hex>.json`,
    /// and each layer uncompressed as `<diff id hex>/layer.tar`.
    pub fn write_docker_archive(&self, path: &Path, repo_tag: &str) -> Result<()> {
        let config_name = format!("{}.json", self.config.hex());
        let layer_names: Vec<String> = self
            .layers
            .iter()
            .map(|l| format!("{}/layer.tar", l.diff_id.trim_start_matches("sha256:")))
            .collect();
        let manifest = json!([{
            "Config": config_name,
            "RepoTags": [repo_tag],
            "Layers": layer_names,
        }]);
        let (repo, tag) = match repo_tag.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (repo_tag, "latest"),
        };
        let top = self
            .layers
            .last()
            .map(|l| l.diff_id.trim_start_matches("sha256:"));
        let repositories = json!({ repo: { tag: top } });

        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(MTIME);
            header.set_size(data.len() as u64);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, name, data)
        };
        let result = (|| {
            add(&config_name, &self.config.data)?;
            for (layer, name) in self.layers.iter().zip(&layer_names) {
                add(name, &layer.tar)?;
            }
            add("manifest.json", &to_json(&manifest))?;
            add("repositories", &to_json(&repositories))
        })();
        result.map_err(io_at(path))?;
        let data = builder.into_inner().map_err(io_at(path))?;
        write(path, &data)
    }
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).map_err(io_at(path))
}
