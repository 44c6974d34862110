//! OCI images: pulls from registries, imports, a content-addressed store, and
//! unpacked layers.
//!
//! [`ImageStore`] keeps everything under one data directory, shared by every
//! machine of the host:
//!
//! ```text
//! blobs/sha256/<hex>          manifests, configs, compressed layers (verified by digest)
//! layers/sha256/<diff id hex> each layer unpacked once, ready to be an overlayfs lower dir
//! images/<hex>.json           one ImageRecord per reference (hex = sha256 of the reference)
//! tmp/                        work in progress, renamed into place when complete
//! ```
//!
//! Layers are unpacked with their whiteouts converted to the overlayfs form
//! (`.wh.NAME` → a 0/0 character device `NAME`, `.wh..wh..opq` → the
//! `trusted.overlay.opaque=y` xattr on its directory), so a machine's rootfs is
//! `overlay lowerdir=<ImageRecord::lowerdir()>` with nothing left to convert.
//! Paths that leave the layer (`..`, writes through symlinks) are rejected.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hangar_agent::image::ImageError> {
//! use hangar_agent::image::{ImageStore, RegistryAuth};
//! let store = ImageStore::open("/var/lib/hangar/images")?;
//! let record = store
//!     .pull("nginx", &RegistryAuth::Anonymous, &|p| eprintln!("{p:?}"))
//!     .await?;
//! println!("{} {} lower={}", record.reference, record.manifest_digest, record.lowerdir());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod digest;
mod error;
mod import;
mod manifest;
mod pull;
mod record;
mod reference;
mod store;
mod unpack;

pub use digest::Digest;
pub use error::ImageError;
pub use pull::{LayerState, ProgressFn, PullProgress, RegistryAuth};
pub use record::{ImageConfig, ImageRecord, LayerRecord};
pub use reference::ImageRef;
pub use store::ImageStore;
pub use unpack::{UnpackError, unpack_layer};
