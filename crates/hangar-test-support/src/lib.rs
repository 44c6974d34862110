//! Test support shared by Hangar's crates: real parts, no mocks.
//!
//! - [`testapp_binary`]: the static `testapp` program (crate `hangar-testapp`),
//!   built once and shared by parallel tests and test binaries.
//! - [`ImageBuilder`]: real OCI images (gzip tar layers from busybox-static and
//!   testapp, an image config, a manifest), written as an OCI image layout
//!   directory or a `docker save` tarball; [`unpacked_layers`] unpacks an image's
//!   layers into directories usable as overlayfs lower dirs.
//! - [`pilot_binary`]: the pilot binary (`HANGAR_PILOT`, or built by cargo).
//! - [`Registry`]: Debian's `docker-registry` on loopback, anonymous or with
//!   basic auth, or with token (Bearer) auth and its token server, that
//!   images can be pushed to.

#![forbid(unsafe_code)]

mod error;
mod image;
mod layer;
mod pilot;
mod registry;
mod testapp;
mod token;
mod unpack;

pub use error::{Error, Result};
pub use image::{
    Blob, Image, ImageBuilder, LayerBlob, MEDIA_TYPE_CONFIG, MEDIA_TYPE_INDEX,
    MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_MANIFEST,
};
pub use layer::Layer;
pub use pilot::pilot_binary;
pub use registry::Registry;
pub use testapp::{testapp_binary, workspace_root};
pub use unpack::unpacked_layers;
