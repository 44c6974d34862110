//! OCI images: pulls from registries, imports, a content-addressed store, and unpacked layers.
