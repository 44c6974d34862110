//! The content-addressed image store (layout in the module docs of `image`).
//!
//! Every write lands in `tmp/` first and is renamed into place, so readers
//! (and other processes sharing the directory) never see a partial blob,
//! layer or record. Work on one digest is serialized inside the process by
//! a per-key lock; across processes the renames keep the store consistent
//! (the loser of a race discards its identical copy).

use std::collections::HashMap;
use std::fs;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flate2::read::GzDecoder;

use super::digest::{Digest, HashingReader, HashingWriter};
use super::error::{ImageError, io_at};
use super::manifest::Descriptor;
use super::pull::LayerState;
use super::record::{ConfigBlob, ImageConfig, ImageRecord, LayerRecord};
use super::reference::ImageRef;
use super::unpack::unpack_layer;

/// The image store; cheap to clone, shareable across tasks and threads.
#[derive(Clone, Debug)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A layer of a manifest, with its diff id from the config.
#[derive(Clone, Debug)]
pub(crate) struct LayerSpec {
    pub digest: Digest,
    pub diff_id: Digest,
    pub media_type: String,
    pub size: u64,
}

impl ImageStore {
    /// Opens (creating if needed) the store rooted at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, ImageError> {
        let root = root.as_ref().to_path_buf();
        for dir in ["blobs/sha256", "layers/sha256", "images", "tmp"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_at(&path))?;
        }
        remove_stale_work(&root.join("tmp"));
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where blob `digest` is (or would be) stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(digest.hex())
    }

    /// Where the layer with diff id `diff_id` is (or would be) unpacked.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.inner.root.join("layers/sha256").join(diff_id.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    fn tmp(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    pub(crate) fn temp_file(&self) -> Result<tempfile::NamedTempFile, ImageError> {
        tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.tmp())
            .map_err(io_at(self.tmp()))
    }

    /// A lock serializing work on `key` (a digest) within this process.
    pub(crate) async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, m| Arc::strong_count(m) > 1 || m.try_lock().is_err());
            locks.entry(key.to_string()).or_default().clone()
        };
        mutex.lock_owned().await
    }

    /// Stores `data` as blob `expected` after checking its digest.
    pub(crate) fn put_blob_bytes(
        &self,
        reference: &str,
        what: &str,
        expected: &Digest,
        data: &[u8],
    ) -> Result<(), ImageError> {
        let actual = Digest::of(data);
        if &actual != expected {
            return Err(bad_digest(reference, what, expected, &actual));
        }
        if self.has_blob(expected) {
            return Ok(());
        }
        let mut file = self.temp_file()?;
        file.write_all(data).map_err(io_at(file.path()))?;
        file.as_file().sync_all().map_err(io_at(file.path()))?;
        self.commit_blob(file, expected)
    }

    /// Copies the blob read from `reader` into the store, checking its digest.
    pub(crate) fn put_blob_reader(
        &self,
        reference: &str,
        what: &str,
        expected: &Digest,
        reader: &mut dyn Read,
    ) -> Result<(), ImageError> {
        let file = self.temp_file()?;
        let path = file.path().to_path_buf();
        let mut writer = HashingWriter::new(file);
        std::io::copy(reader, &mut writer).map_err(io_at(&path))?;
        let (file, actual, _) = writer.finish();
        if &actual != expected {
            return Err(bad_digest(reference, what, expected, &actual));
        }
        file.as_file().sync_all().map_err(io_at(&path))?;
        self.commit_blob(file, expected)
    }

    /// Renames a complete, verified temporary file into the blob store.
    pub(crate) fn commit_blob(
        &self,
        file: tempfile::NamedTempFile,
        digest: &Digest,
    ) -> Result<(), ImageError> {
        let target = self.blob_path(digest);
        file.persist(&target).map_err(|e| io_at(&target)(e.error))?;
        Ok(())
    }

    /// Reads a (small) blob and checks it still matches its digest; a
    /// corrupted blob is removed so the next pull fetches it again.
    pub(crate) fn read_blob(
        &self,
        reference: &str,
        what: &str,
        digest: &Digest,
    ) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest);
        let data = fs::read(&path).map_err(io_at(&path))?;
        let actual = Digest::of(&data);
        if &actual != digest {
            let _ = fs::remove_file(&path);
            return Err(bad_digest(reference, what, digest, &actual));
        }
        Ok(data)
    }

    /// Unpacks layer `layer` from its stored blob unless it is unpacked
    /// already; checks the blob digest and the diff id on the way. Blocking:
    /// call it from `spawn_blocking`.
    pub(crate) fn unpack_stored_layer(
        &self,
        reference: &str,
        layer: &LayerSpec,
    ) -> Result<PathBuf, ImageError> {
        let target = self.layer_dir(&layer.diff_id);
        if target.is_dir() {
            return Ok(target);
        }
        let blob = self.blob_path(&layer.digest);
        let file = fs::File::open(&blob).map_err(io_at(&blob))?;
        let mut blob_reader = HashingReader::new(BufReader::with_capacity(256 * 1024, file));
        let mut magic = [0u8; 2];
        let peeked = peek(&mut blob_reader, &mut magic).map_err(io_at(&blob))?;
        let gzip = peeked == 2 && magic == [0x1f, 0x8b];
        // The peeked bytes go back in front of the rest of the stream.
        let chained = std::io::Cursor::new(magic)
            .take(peeked as u64)
            .chain(&mut blob_reader);
        let work = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.tmp())
            .map_err(io_at(self.tmp()))?;
        let unpack_err = |source| ImageError::Unpack {
            reference: reference.to_string(),
            layer: layer.digest.to_string(),
            source,
        };
        let (diff_id, _) = if gzip {
            let decoder = GzDecoder::new(chained);
            let reader =
                unpack_layer(HashingReader::new(decoder), work.path()).map_err(unpack_err)?;
            reader.finish().map_err(io_at(&blob))?
        } else {
            let reader =
                unpack_layer(HashingReader::new(chained), work.path()).map_err(unpack_err)?;
            reader.finish().map_err(io_at(&blob))?
        };
        let (blob_digest, _) = blob_reader.finish().map_err(io_at(&blob))?;
        if blob_digest != layer.digest {
            let _ = fs::remove_file(&blob);
            return Err(bad_digest(
                reference,
                "layer blob",
                &layer.digest,
                &blob_digest,
            ));
        }
        if diff_id != layer.diff_id {
            return Err(bad_digest(
                reference,
                "layer diff id",
                &layer.diff_id,
                &diff_id,
            ));
        }
        let work = work.keep();
        fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(io_at(&work))?;
        if let Err(e) = fs::rename(&work, &target) {
            // Another process unpacked the same layer first; theirs is identical.
            let _ = fs::remove_dir_all(&work);
            if !target.is_dir() {
                return Err(io_at(&target)(e));
            }
        }
        Ok(target)
    }

    /// Unpacks every layer (each under its own lock, off the async runtime).
    pub(crate) async fn unpack_layers(
        &self,
        reference: &str,
        layers: &[LayerSpec],
        mut on_layer: impl FnMut(usize, &LayerSpec, LayerState),
    ) -> Result<Vec<LayerRecord>, ImageError> {
        let mut records = Vec::with_capacity(layers.len());
        for (index, layer) in layers.iter().enumerate() {
            let dir = self.layer_dir(&layer.diff_id);
            if dir.is_dir() {
                on_layer(index, layer, LayerState::Cached);
            } else {
                on_layer(index, layer, LayerState::Unpacking);
                let _guard = self.lock(layer.diff_id.as_str()).await;
                let store = self.clone();
                let reference = reference.to_string();
                let spec = layer.clone();
                tokio::task::spawn_blocking(move || store.unpack_stored_layer(&reference, &spec))
                    .await
                    .map_err(|e| io_at(&dir)(std::io::Error::other(e)))??;
                on_layer(index, layer, LayerState::Ready);
            }
            records.push(LayerRecord {
                digest: layer.digest.clone(),
                diff_id: layer.diff_id.clone(),
                media_type: layer.media_type.clone(),
                size: layer.size,
                dir,
            });
        }
        Ok(records)
    }

    /// Parses a stored config blob and pairs the manifest's layers with its
    /// diff ids.
    pub(crate) fn read_config(
        &self,
        reference: &str,
        config: &Digest,
        layers: &[Descriptor],
    ) -> Result<(ImageConfig, Vec<LayerSpec>), ImageError> {
        let invalid = |reason: String| ImageError::InvalidImage {
            reference: reference.to_string(),
            reason,
        };
        let bytes = self.read_blob(reference, "config", config)?;
        let blob: ConfigBlob =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("config: {e}")))?;
        if let (Some(os), Some(arch)) = (&blob.os, &blob.architecture)
            && (os != "linux" || arch != "amd64")
        {
            return Err(invalid(format!(
                "built for {os}/{arch}, this host runs linux/amd64"
            )));
        }
        if blob.rootfs.diff_ids.len() != layers.len() {
            return Err(invalid(format!(
                "config lists {} diff ids for {} layers",
                blob.rootfs.diff_ids.len(),
                layers.len()
            )));
        }
        let mut specs = Vec::with_capacity(layers.len());
        for (layer, diff_id) in layers.iter().zip(&blob.rootfs.diff_ids) {
            specs.push(LayerSpec {
                digest: Digest::parse(&layer.digest).map_err(&invalid)?,
                diff_id: Digest::parse(diff_id).map_err(&invalid)?,
                media_type: layer.media_type.clone(),
                size: layer.size,
            });
        }
        Ok((
            blob.config.map(ImageConfig::from).unwrap_or_default(),
            specs,
        ))
    }

    fn record_path(&self, canonical: &str) -> PathBuf {
        self.inner
            .root
            .join("images")
            .join(format!("{}.json", Digest::of(canonical.as_bytes()).hex()))
    }

    /// Writes `record` atomically, replacing an earlier one for its reference.
    pub(crate) fn save_record(&self, record: &ImageRecord) -> Result<(), ImageError> {
        let path = self.record_path(&record.reference);
        let data = serde_json::to_vec_pretty(record).map_err(|e| io_at(&path)(e.into()))?;
        let mut file = self.temp_file()?;
        file.write_all(&data).map_err(io_at(&path))?;
        file.as_file().sync_all().map_err(io_at(&path))?;
        file.persist(&path).map_err(|e| io_at(&path)(e.error))?;
        Ok(())
    }

    /// The record of `reference` (any spelling: `nginx`,
    /// `docker.io/library/nginx:latest`), or of manifest digest
    /// `sha256:...`; `None` when the store does not have it.
    pub fn get(&self, reference: &str) -> Result<Option<ImageRecord>, ImageError> {
        if let Ok(digest) = Digest::parse(reference) {
            return Ok(self
                .list()?
                .into_iter()
                .find(|r| r.manifest_digest == digest));
        }
        let canonical = ImageRef::parse(reference)?.canonical();
        let path = self.record_path(&canonical);
        match fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| io_at(&path)(e.into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(&path)(e)),
        }
    }

    /// Every image record, sorted by reference.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let dir = self.inner.root.join("images");
        let mut records = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_at(&dir))? {
            let path = entry.map_err(io_at(&dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let data = fs::read(&path).map_err(io_at(&path))?;
                let record: ImageRecord =
                    serde_json::from_slice(&data).map_err(|e| io_at(&path)(e.into()))?;
                records.push(record);
            }
        }
        records.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(records)
    }

    /// Forgets `reference`; its blobs and layers stay until [`Self::prune`].
    pub fn remove(&self, reference: &str) -> Result<ImageRecord, ImageError> {
        let record = self.get(reference)?.ok_or_else(|| ImageError::NotFound {
            reference: reference.to_string(),
        })?;
        let path = self.record_path(&record.reference);
        fs::remove_file(&path).map_err(io_at(&path))?;
        Ok(record)
    }

    /// Deletes blobs and unpacked layers that no record refers to, except
    /// the layer directories in `in_use` (e.g. lower dirs of machines whose
    /// image record was removed). Returns how many entries were deleted.
    pub fn prune(&self, in_use: &[PathBuf]) -> Result<usize, ImageError> {
        let records = self.list()?;
        let mut keep_blobs = std::collections::HashSet::new();
        let mut keep_layers: std::collections::HashSet<PathBuf> = in_use.iter().cloned().collect();
        for record in &records {
            keep_blobs.insert(record.manifest_digest.hex().to_string());
            keep_blobs.insert(record.config_digest.hex().to_string());
            for layer in &record.layers {
                keep_blobs.insert(layer.digest.hex().to_string());
                keep_layers.insert(layer.dir.clone());
            }
        }
        let mut removed = 0;
        let blobs = self.inner.root.join("blobs/sha256");
        for entry in fs::read_dir(&blobs).map_err(io_at(&blobs))? {
            let entry = entry.map_err(io_at(&blobs))?;
            if !keep_blobs.contains(entry.file_name().to_string_lossy().as_ref()) {
                fs::remove_file(entry.path()).map_err(io_at(entry.path()))?;
                removed += 1;
            }
        }
        let layers = self.inner.root.join("layers/sha256");
        for entry in fs::read_dir(&layers).map_err(io_at(&layers))? {
            let entry = entry.map_err(io_at(&layers))?;
            if !keep_layers.contains(&entry.path()) {
                fs::remove_dir_all(entry.path()).map_err(io_at(entry.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Work files older than this in `tmp/` were left by a process that died
/// mid-pull (a live pull writes to its files continuously).
const STALE_WORK: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes work files and directories a crashed process left in `tmp/`.
fn remove_stale_work(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_WORK);
        if stale {
            let path = entry.path();
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
        }
    }
}

pub(crate) fn bad_digest(
    reference: &str,
    what: &str,
    expected: &Digest,
    actual: &Digest,
) -> ImageError {
    ImageError::BadDigest {
        reference: reference.to_string(),
        what: what.to_string(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

/// Reads up to `buf.len()` bytes (fewer only at the end of the stream).
fn peek(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
