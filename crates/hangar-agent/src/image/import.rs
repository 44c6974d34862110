//! Imports images without a registry: from an OCI image layout directory
//! (`oci-layout`, `index.json`, `blobs/sha256/...`) or from a `docker save`
//! tarball (`manifest.json`, config, `layer.tar`s). Every blob is checked
//! against its digest on the way in.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde_json::json;

use super::digest::{Digest, HashingWriter};
use super::error::{ImageError, io_at};
use super::manifest::{
    Descriptor, Document, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_MANIFEST, Parsed,
    digest_of, pick_platform,
};
use super::record::ImageRecord;
use super::reference::ImageRef;
use super::store::ImageStore;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn invalid(reference: &str, reason: String) -> ImageError {
    ImageError::InvalidImage {
        reference: reference.to_string(),
        reason,
    }
}

fn canonical(name: &str) -> Result<String, ImageError> {
    Ok(ImageRef::parse(name)?.canonical())
}

/// Runs blocking import work off the async runtime.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| io_at(path)(std::io::Error::other(e)))?
}

impl ImageStore {
    /// Imports the image of an OCI image layout directory. `name` picks the
    /// `index.json` entry whose `org.opencontainers.image.ref.name` matches
    /// (else the only entry) and names the record; without it, the entry's
    /// ref name is used.
    pub async fn import_oci_layout(
        &self,
        dir: &Path,
        name: Option<&str>,
    ) -> Result<ImageRecord, ImageError> {
        let store = self.clone();
        let dir_owned = dir.to_path_buf();
        let name = name.map(str::to_string);
        let (reference, manifest_bytes, manifest_digest, config, layers) =
            blocking(dir, move || {
                store.copy_oci_layout(&dir_owned, name.as_deref())
            })
            .await?;
        self.finish_import(reference, manifest_bytes, manifest_digest, config, layers)
            .await
    }

    #[allow(clippy::type_complexity)]
    fn copy_oci_layout(
        &self,
        dir: &Path,
        name: Option<&str>,
    ) -> Result<(String, Vec<u8>, Digest, Descriptor, Vec<Descriptor>), ImageError> {
        let label = dir.display().to_string();
        let layout_path = dir.join("oci-layout");
        let layout = fs::read(&layout_path).map_err(io_at(&layout_path))?;
        let layout: serde_json::Value = serde_json::from_slice(&layout)
            .map_err(|e| invalid(&label, format!("oci-layout: {e}")))?;
        if layout["imageLayoutVersion"] != "1.0.0" {
            return Err(invalid(
                &label,
                format!(
                    "oci-layout: unsupported version {}",
                    layout["imageLayoutVersion"]
                ),
            ));
        }
        let index_path = dir.join("index.json");
        let index = fs::read(&index_path).map_err(io_at(&index_path))?;
        let Parsed::Index(entries) = Document::parse(&label, &index)? else {
            return Err(invalid(&label, "index.json is not an index".into()));
        };
        let wanted = name.map(canonical).transpose()?;
        let named = |d: &Descriptor| d.annotations.get(REF_NAME).and_then(|n| canonical(n).ok());
        let entry = match &wanted {
            Some(wanted) => entries
                .iter()
                .find(|d| named(d).as_ref() == Some(wanted))
                .or_else(|| (entries.len() == 1).then(|| &entries[0])),
            None if entries.len() == 1 => entries.first(),
            None => None,
        }
        .ok_or_else(|| {
            invalid(
                &label,
                format!(
                    "index.json has {} entries and none is named {:?}",
                    entries.len(),
                    name.unwrap_or("")
                ),
            )
        })?;
        let reference = match wanted.or_else(|| named(entry)) {
            Some(reference) => reference,
            None => {
                return Err(invalid(
                    &label,
                    "the image has no ref name annotation: give it a name".into(),
                ));
            }
        };

        let read_layout_blob =
            |descriptor: &Descriptor, what: &str| -> Result<(Vec<u8>, Digest), ImageError> {
                let digest = digest_of(&reference, descriptor)?;
                let path = dir.join("blobs/sha256").join(digest.hex());
                let data = fs::read(&path).map_err(io_at(&path))?;
                let actual = Digest::of(&data);
                if actual != digest {
                    return Err(super::store::bad_digest(&reference, what, &digest, &actual));
                }
                Ok((data, digest))
            };
        let (mut bytes, mut digest) = read_layout_blob(entry, "manifest")?;
        let (config, layers) = loop {
            match Document::parse(&reference, &bytes)? {
                Parsed::Manifest { config, layers } => break (config, layers),
                Parsed::Index(manifests) => {
                    let entry = pick_platform(&manifests).ok_or_else(|| {
                        ImageError::NoMatchingPlatform {
                            reference: reference.clone(),
                        }
                    })?;
                    (bytes, digest) = read_layout_blob(entry, "manifest")?;
                }
            }
        };
        for (descriptor, what) in
            std::iter::once((&config, "config")).chain(layers.iter().map(|l| (l, "layer blob")))
        {
            let blob_digest = digest_of(&reference, descriptor)?;
            if self.has_blob(&blob_digest) {
                continue;
            }
            let path = dir.join("blobs/sha256").join(blob_digest.hex());
            let mut file = fs::File::open(&path).map_err(io_at(&path))?;
            self.put_blob_reader(&reference, what, &blob_digest, &mut file)?;
        }
        Ok((reference, bytes, digest, config, layers))
    }

    /// Imports the image of a `docker save` tarball. `name` picks the image
    /// whose `RepoTags` hold it (else the first) and names the record;
    /// without it, the first repo tag is used.
    pub async fn import_docker_archive(
        &self,
        path: &Path,
        name: Option<&str>,
    ) -> Result<ImageRecord, ImageError> {
        let store = self.clone();
        let path_owned = path.to_path_buf();
        let name = name.map(str::to_string);
        let (reference, manifest_bytes, manifest_digest, config, layers) =
            blocking(path, move || {
                store.copy_docker_archive(&path_owned, name.as_deref())
            })
            .await?;
        self.finish_import(reference, manifest_bytes, manifest_digest, config, layers)
            .await
    }

    #[allow(clippy::type_complexity)]
    fn copy_docker_archive(
        &self,
        path: &Path,
        name: Option<&str>,
    ) -> Result<(String, Vec<u8>, Digest, Descriptor, Vec<Descriptor>), ImageError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let label = path.display().to_string();
        let file = fs::File::open(path).map_err(io_at(path))?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(file));
        // Every file of the archive, hashed on the way into the store's tmp dir.
        let mut files: HashMap<String, (Digest, u64, bool, tempfile::NamedTempFile)> =
            HashMap::new();
        let mut manifest_json = None;
        for entry in archive.entries().map_err(io_at(path))? {
            let mut entry = entry.map_err(io_at(path))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let entry_name = entry
                .path()
                .map_err(io_at(path))?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            if entry_name == "manifest.json" {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(io_at(path))?;
                manifest_json = Some(data);
                continue;
            }
            let temp = self.temp_file()?;
            let temp_path = temp.path().to_path_buf();
            let mut magic = [0u8; 2];
            let mut writer = HashingWriter::new(temp);
            std::io::copy(&mut entry, &mut writer).map_err(io_at(&temp_path))?;
            let (temp, digest, size) = writer.finish();
            let gzip = {
                let mut f = fs::File::open(&temp_path).map_err(io_at(&temp_path))?;
                f.read(&mut magic).unwrap_or(0) == 2 && magic == [0x1f, 0x8b]
            };
            files.insert(entry_name, (digest, size, gzip, temp));
        }
        let manifest_json = manifest_json
            .ok_or_else(|| invalid(&label, "no manifest.json: not a docker save archive".into()))?;
        let entries: Vec<Entry> = serde_json::from_slice(&manifest_json)
            .map_err(|e| invalid(&label, format!("manifest.json: {e}")))?;
        let wanted = name.map(canonical).transpose()?;
        let tags = |e: &Entry| -> Vec<String> {
            e.repo_tags
                .iter()
                .flatten()
                .filter_map(|t| canonical(t).ok())
                .collect()
        };
        let entry = match &wanted {
            Some(wanted) => entries
                .iter()
                .find(|e| tags(e).contains(wanted))
                .or(entries.first()),
            None => entries.first(),
        }
        .ok_or_else(|| invalid(&label, "manifest.json lists no image".into()))?;
        let reference = match wanted.or_else(|| tags(entry).into_iter().next()) {
            Some(reference) => reference,
            None => {
                return Err(invalid(
                    &label,
                    "the image has no repo tag: give it a name".into(),
                ));
            }
        };

        let mut take =
            |file_name: &str, media_type: Option<&str>| -> Result<Descriptor, ImageError> {
                let (digest, size, gzip, temp) = files.remove(file_name).ok_or_else(|| {
                    invalid(
                        &reference,
                        format!("manifest.json names {file_name:?}, which the archive lacks"),
                    )
                })?;
                let media_type =
                    media_type.unwrap_or(if gzip { OCI_LAYER_GZIP } else { OCI_LAYER_TAR });
                if !self.has_blob(&digest) {
                    self.commit_blob(temp, &digest)?;
                }
                Ok(Descriptor {
                    media_type: media_type.to_string(),
                    digest: digest.to_string(),
                    size,
                    platform: None,
                    annotations: Default::default(),
                })
            };
        let config = take(&entry.config, Some(OCI_CONFIG))?;
        let layers = entry
            .layers
            .iter()
            .map(|layer| take(layer, None))
            .collect::<Result<Vec<_>, _>>()?;
        // The archive has no manifest blob: write the OCI manifest it implies.
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers,
        });
        let bytes =
            serde_json::to_vec(&manifest).map_err(|e| invalid(&reference, e.to_string()))?;
        let digest = Digest::of(&bytes);
        Ok((reference, bytes, digest, config, layers))
    }

    /// Unpacks the layers of an imported image and records it.
    async fn finish_import(
        &self,
        reference: String,
        manifest_bytes: Vec<u8>,
        manifest_digest: Digest,
        config: Descriptor,
        layers: Vec<Descriptor>,
    ) -> Result<ImageRecord, ImageError> {
        let config_digest = digest_of(&reference, &config)?;
        let (image_config, specs) = self.read_config(&reference, &config_digest, &layers)?;
        let layer_records = self.unpack_layers(&reference, &specs, |_, _, _| {}).await?;
        self.put_blob_bytes(&reference, "manifest", &manifest_digest, &manifest_bytes)?;
        let record = ImageRecord {
            reference,
            manifest_digest,
            config_digest,
            config: image_config,
            layers: layer_records,
        };
        self.save_record(&record)?;
        Ok(record)
    }
}
