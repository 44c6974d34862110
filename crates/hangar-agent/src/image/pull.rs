//! Pulls images from OCI registries over the distribution protocol (through
//! `oci-client`): anonymous, basic or bearer-token auth; plain HTTP for
//! registries on loopback, HTTPS otherwise; indexes resolved to linux/amd64.

use futures::{StreamExt, TryStreamExt};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use tokio::io::AsyncWriteExt;

use super::digest::Digest;
use super::error::{ImageError, io_at};
use super::manifest::{ACCEPTED_MANIFESTS, Document, Parsed, digest_of, pick_platform};
use super::record::ImageRecord;
use super::reference::ImageRef;
use super::store::{ImageStore, LayerSpec, bad_digest};

/// Layer blobs fetched at the same time by one pull.
const PARALLEL_DOWNLOADS: usize = 3;

/// Credentials for a registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RegistryAuth {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// A registry token, sent as `Authorization: Bearer`.
    Bearer {
        token: String,
    },
}

impl RegistryAuth {
    fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        use oci_client::secrets::RegistryAuth as Oci;
        match self {
            Self::Anonymous => Oci::Anonymous,
            Self::Basic { username, password } => Oci::Basic(username.clone(), password.clone()),
            Self::Bearer { token } => Oci::Bearer(token.clone()),
        }
    }
}

/// Where a layer is in a pull.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerState {
    /// Already unpacked in the store: nothing to do (the layer's last report).
    Cached,
    /// Bytes arriving: `done` of `total`.
    Downloading,
    Unpacking,
    /// Unpacked (the layer's last report).
    Ready,
}

/// One progress report of a pull: per layer, bytes done out of total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullProgress {
    pub reference: String,
    /// Position of the layer (0 = lowest) and the number of layers.
    pub index: usize,
    pub layers: usize,
    pub digest: Digest,
    pub state: LayerState,
    pub done: u64,
    pub total: u64,
}

/// A progress sink; `&|_| {}` ignores progress.
pub type ProgressFn<'a> = &'a (dyn Fn(&PullProgress) + Send + Sync);

fn map_error(reference: &str, error: OciDistributionError) -> ImageError {
    let registry = |message: String| ImageError::Registry {
        reference: reference.to_string(),
        message,
    };
    let not_found = || ImageError::NotFound {
        reference: reference.to_string(),
    };
    let unauthorized = || ImageError::Unauthorized {
        reference: reference.to_string(),
    };
    match error {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
        OciDistributionError::ImageManifestNotFoundError(_) => not_found(),
        OciDistributionError::RegistryError { envelope, url } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                )
            }) {
                not_found()
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                unauthorized()
            } else {
                registry(format!("{url}: {envelope:?}"))
            }
        }
        OciDistributionError::RequestError(e) if e.status().is_some_and(|s| s.as_u16() == 404) => {
            not_found()
        }
        OciDistributionError::RequestError(e)
            if e.status().is_some_and(|s| matches!(s.as_u16(), 401 | 403)) =>
        {
            unauthorized()
        }
        OciDistributionError::ServerError { code: 404, .. } => not_found(),
        OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => unauthorized(),
        OciDistributionError::DigestError(e) => ImageError::BadDigest {
            reference: reference.to_string(),
            what: "manifest".into(),
            expected: String::new(),
            actual: e.to_string(),
        },
        OciDistributionError::UnsupportedMediaTypeError(media_type)
        | OciDistributionError::IncompatibleLayerMediaTypeError(media_type) => {
            ImageError::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type,
            }
        }
        other => registry(other.to_string()),
    }
}

fn client_for(image: &ImageRef) -> oci_client::Client {
    let protocol = if image.is_loopback_registry() {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    oci_client::Client::new(ClientConfig {
        protocol,
        platform_resolver: Some(Box::new(oci_client::client::linux_amd64_resolver)),
        connect_timeout: Some(std::time::Duration::from_secs(30)),
        read_timeout: Some(std::time::Duration::from_secs(300)),
        ..Default::default()
    })
}

impl ImageStore {
    /// Pulls `reference` (`nginx`, `user/app:tag`, `host:port/repo@sha256:...`)
    /// into the store and records it; blobs and layers already present are
    /// not fetched again. Progress goes to `progress` (`&|_| {}` to ignore).
    pub async fn pull(
        &self,
        reference: &str,
        auth: &RegistryAuth,
        progress: ProgressFn<'_>,
    ) -> Result<ImageRecord, ImageError> {
        let image = ImageRef::parse(reference)?;
        let name = image.canonical();
        let client = client_for(&image);
        let auth = auth.to_oci();

        let (manifest_bytes, manifest_digest, config, layers) =
            self.fetch_manifest(&client, &image, &auth).await?;
        let config_digest = digest_of(&name, &config)?;
        if !self.has_blob(&config_digest) {
            let mut data = Vec::new();
            client
                .pull_blob(&image.0, config_digest.as_str(), &mut data)
                .await
                .map_err(|e| blob_error(&name, "config", &config_digest, e))?;
            self.put_blob_bytes(&name, "config", &config_digest, &data)?;
        }
        let (image_config, specs) = self.read_config(&name, &config_digest, &layers)?;

        let count = specs.len();
        // A plain loop (no closures in the stream's type) keeps the pull
        // future Send for callers that box it.
        let mut downloads = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            if self.layer_dir(&spec.diff_id).is_dir() {
                continue;
            }
            let (client, image) = (&client, &image);
            downloads.push(async move {
                let _guard = self.lock(spec.digest.as_str()).await;
                if self.has_blob(&spec.digest) || self.layer_dir(&spec.diff_id).is_dir() {
                    return Ok(());
                }
                self.download_layer(client, image, index, count, spec, progress)
                    .await
            });
        }
        futures::stream::iter(downloads)
            .buffer_unordered(PARALLEL_DOWNLOADS)
            .try_collect::<Vec<()>>()
            .await?;
        let layer_records = self
            .unpack_layers(&name, &specs, |index, spec, state| {
                progress(&PullProgress {
                    reference: name.clone(),
                    index,
                    layers: count,
                    digest: spec.digest.clone(),
                    state,
                    done: spec.size,
                    total: spec.size,
                });
            })
            .await?;
        // Store the manifest last: its presence means the image is complete.
        self.put_blob_bytes(&name, "manifest", &manifest_digest, &manifest_bytes)?;
        let record = ImageRecord {
            reference: name,
            manifest_digest,
            config_digest,
            config: image_config,
            layers: layer_records,
        };
        self.save_record(&record)?;
        Ok(record)
    }

    /// Fetches the manifest (through an index if needed) and checks its digest.
    async fn fetch_manifest(
        &self,
        client: &oci_client::Client,
        image: &ImageRef,
        auth: &oci_client::secrets::RegistryAuth,
    ) -> Result<
        (
            Vec<u8>,
            Digest,
            super::manifest::Descriptor,
            Vec<super::manifest::Descriptor>,
        ),
        ImageError,
    > {
        let name = image.canonical();
        let (bytes, _) = client
            .pull_manifest_raw(&image.0, auth, ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| map_error(&name, e))?;
        let digest = Digest::of(&bytes);
        if let Some(pinned) = image.digest()
            && digest.as_str() != pinned
        {
            return Err(ImageError::BadDigest {
                reference: name,
                what: "manifest".into(),
                expected: pinned.to_string(),
                actual: digest.to_string(),
            });
        }
        match Document::parse(&name, &bytes)? {
            Parsed::Manifest { config, layers } => Ok((bytes, digest, config, layers)),
            Parsed::Index(manifests) => {
                let entry =
                    pick_platform(&manifests).ok_or_else(|| ImageError::NoMatchingPlatform {
                        reference: name.clone(),
                    })?;
                let expected = digest_of(&name, entry)?;
                let by_digest = image.0.clone_with_digest(expected.to_string());
                let (bytes, _) = client
                    .pull_manifest_raw(&by_digest, auth, ACCEPTED_MANIFESTS)
                    .await
                    .map_err(|e| map_error(&name, e))?;
                let actual = Digest::of(&bytes);
                if actual != expected {
                    return Err(bad_digest(&name, "manifest", &expected, &actual));
                }
                match Document::parse(&name, &bytes)? {
                    Parsed::Manifest { config, layers } => Ok((bytes, actual, config, layers)),
                    Parsed::Index(_) => Err(ImageError::InvalidImage {
                        reference: name,
                        reason: "an index inside an index".into(),
                    }),
                }
            }
        }
    }

    /// Streams one layer blob into the store, reporting progress and
    /// checking its digest.
    async fn download_layer(
        &self,
        client: &oci_client::Client,
        image: &ImageRef,
        index: usize,
        count: usize,
        spec: &LayerSpec,
        progress: ProgressFn<'_>,
    ) -> Result<(), ImageError> {
        let name = image.canonical();
        let mut stream = client
            .pull_blob_stream(&image.0, spec.digest.as_str())
            .await
            .map_err(|e| blob_error(&name, "layer", &spec.digest, e))?;
        let total = stream.content_length.unwrap_or(spec.size);
        let temp = self.temp_file()?;
        let path = temp.path().to_path_buf();
        let mut file = tokio::fs::File::from_std(temp.reopen().map_err(io_at(&path))?);
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        let mut done = 0u64;
        let report = |done: u64| {
            progress(&PullProgress {
                reference: name.clone(),
                index,
                layers: count,
                digest: spec.digest.clone(),
                state: LayerState::Downloading,
                done,
                total,
            })
        };
        report(0);
        while let Some(chunk) = stream.stream.next().await {
            let chunk = chunk.map_err(|e| {
                let digest_error = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>());
                match digest_error {
                    Some(d) => ImageError::BadDigest {
                        reference: name.clone(),
                        what: "layer blob".into(),
                        expected: spec.digest.to_string(),
                        actual: d.to_string(),
                    },
                    None => blob_error(&name, "layer", &spec.digest, e.into()),
                }
            })?;
            sha2::Digest::update(&mut hasher, &chunk);
            file.write_all(&chunk).await.map_err(io_at(&path))?;
            done += chunk.len() as u64;
            report(done);
        }
        file.sync_all().await.map_err(io_at(&path))?;
        drop(file);
        let actual = Digest::from_hasher(hasher);
        if actual != spec.digest {
            return Err(bad_digest(&name, "layer blob", &spec.digest, &actual));
        }
        self.commit_blob(temp, &spec.digest)
    }
}

fn blob_error(
    reference: &str,
    what: &str,
    digest: &Digest,
    error: OciDistributionError,
) -> ImageError {
    match error {
        OciDistributionError::DigestError(e) => ImageError::BadDigest {
            reference: reference.to_string(),
            what: what.to_string(),
            expected: digest.to_string(),
            actual: e.to_string(),
        },
        other => map_error(reference, other),
    }
}
