//! The image builder writes valid OCI layouts and docker-save tarballs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use hangar_test_support::{ImageBuilder, Layer, unpacked_layers};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn tar_entries(tar: &[u8]) -> BTreeMap<String, (tar::EntryType, u32, u64, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar);
    let mut entries = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        entries.insert(
            path,
            (
                header.entry_type(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                data,
            ),
        );
    }
    entries
}

#[test]
fn oci_layout_digests_match_contents() {
    let image = ImageBuilder::new()
        .entrypoint(&["/usr/local/bin/testapp"])
        .cmd(&["serve-http", "9000"])
        .env("GREETING", "hi")
        .working_dir("/tmp")
        .user("app")
        .expose("9000/tcp")
        .label("team", "hangar")
        .file("/etc/motd", "welcome\n", 0o600)
        .build();
    let dir = tempfile::tempdir().unwrap();
    image.write_oci_layout(dir.path(), Some("demo:1")).unwrap();

    let layout: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let descriptor = &index["manifests"][0];
    assert_eq!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"],
        "demo:1"
    );

    // Every descriptor's digest and size match the blob it names.
    let manifest_bytes = read_blob(dir.path(), descriptor["digest"].as_str().unwrap());
    assert_eq!(sha256(&manifest_bytes), descriptor["digest"]);
    assert_eq!(
        manifest_bytes.len() as u64,
        descriptor["size"].as_u64().unwrap()
    );
    let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let mut all = vec![manifest["config"].clone()];
    all.extend(manifest["layers"].as_array().unwrap().iter().cloned());
    for d in &all {
        let data = read_blob(dir.path(), d["digest"].as_str().unwrap());
        assert_eq!(sha256(&data), d["digest"]);
        assert_eq!(data.len() as u64, d["size"].as_u64().unwrap());
    }

    // The config's diff ids are the digests of the uncompressed layers.
    let config: Value = serde_json::from_slice(&read_blob(
        dir.path(),
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "busybox, testapp, extra files");
    for (layer, diff_id) in layers
        .iter()
        .zip(config["rootfs"]["diff_ids"].as_array().unwrap())
    {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let tar = gunzip(&read_blob(dir.path(), layer["digest"].as_str().unwrap()));
        assert_eq!(&sha256(&tar), diff_id);
    }
    let c = &config["config"];
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/usr/local/bin/testapp"])
    );
    assert_eq!(c["Cmd"], serde_json::json!(["serve-http", "9000"]));
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hi")
    );
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("PATH="))
    );
    assert_eq!(c["WorkingDir"], "/tmp");
    assert_eq!(c["User"], "app");
    assert!(c["ExposedPorts"].get("9000/tcp").is_some());
    assert_eq!(c["Labels"]["team"], "hangar");
}

#[test]
fn base_layer_holds_busybox_users_and_tmp() {
    let image = ImageBuilder::new().build();
    let base = tar_entries(&image.layers[0].tar);
    let (kind, mode, _, data) = &base["bin/busybox"];
    assert_eq!(*kind, tar::EntryType::Regular);
    assert_eq!(*mode, 0o755);
    assert_eq!(data, &std::fs::read("/bin/busybox").unwrap());
    for applet in ["sh", "ls", "cat", "wget", "nc", "sleep", "id", "ps"] {
        assert_eq!(
            base[&format!("bin/{applet}")].0,
            tar::EntryType::Symlink,
            "{applet}"
        );
    }
    let passwd = String::from_utf8(base["etc/passwd"].3.clone()).unwrap();
    assert!(passwd.contains("app:x:1000:1000:"), "{passwd}");
    assert!(passwd.contains("nobody:x:65534:65534:"), "{passwd}");
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    let group = String::from_utf8(base["etc/group"].3.clone()).unwrap();
    assert!(group.contains("app:x:1000:"), "{group}");
    assert_eq!(base["tmp/"].1, 0o1777);
    assert!(base.contains_key("etc/hostname"));
    assert_eq!(base["home/app/"].2, 1000);

    let testapp = tar_entries(&image.layers[1].tar);
    assert_eq!(testapp["usr/local/bin/testapp"].1, 0o755);
}

#[test]
fn same_builder_calls_give_same_digest() {
    let a = ImageBuilder::new().file("/a", "x", 0o644).build();
    let b = ImageBuilder::new().file("/a", "x", 0o644).build();
    let c = ImageBuilder::new().file("/a", "y", 0o644).build();
    assert_eq!(a.digest(), b.digest());
    assert_ne!(a.digest(), c.digest());
}

#[test]
fn whiteout_layer_carries_markers() {
    let image = ImageBuilder::new()
        .layer(Layer::new().whiteout("/etc/hostname").opaque("/home"))
        .build();
    let top = tar_entries(&image.layers.last().unwrap().tar);
    assert!(top.contains_key("etc/.wh.hostname"), "{:?}", top.keys());
    assert!(top.contains_key("home/.wh..wh..opq"), "{:?}", top.keys());

    // Unpacked, they take the overlayfs form.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dirs = unpacked_layers(&image).unwrap();
    let top = dirs.last().unwrap();
    let whiteout = std::fs::symlink_metadata(top.join("etc/hostname")).unwrap();
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    assert!(!top.join("etc/.wh.hostname").exists());
    let opaque = xattr::get(top.join("home"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
}

#[test]
fn docker_archive_lists_config_and_layers() {
    let image = ImageBuilder::new().build();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.tar");
    image.write_docker_archive(&path, "demo/app:v2").unwrap();
    let entries = tar_entries(&std::fs::read(&path).unwrap());
    let manifest: Value = serde_json::from_slice(&entries["manifest.json"].3).unwrap();
    let m = &manifest[0];
    assert_eq!(m["RepoTags"], serde_json::json!(["demo/app:v2"]));
    let config = &entries[m["Config"].as_str().unwrap()].3;
    assert_eq!(sha256(config), image.config.digest);
    let config: Value = serde_json::from_slice(config).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = m["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        assert_eq!(&sha256(&entries[layer.as_str().unwrap()].3), diff_id);
    }
}

#[test]
fn unpacked_layers_hold_the_files() {
    let image = ImageBuilder::new()
        .file("/srv/data.txt", "data", 0o640)
        .build();
    let dirs = unpacked_layers(&image).unwrap();
    assert_eq!(dirs.len(), 3);
    assert_eq!(
        std::fs::read(dirs[0].join("bin/busybox")).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        std::fs::read_link(dirs[0].join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert!(dirs[1].join("usr/local/bin/testapp").is_file());
    assert_eq!(
        std::fs::read_to_string(dirs[2].join("srv/data.txt")).unwrap(),
        "data"
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(
        std::fs::metadata(dirs[2].join("srv/data.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o640
    );
    assert_eq!(
        std::fs::metadata(dirs[0].join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert_eq!(
        std::fs::metadata(dirs[0].join("home/app")).unwrap().uid(),
        1000
    );
}
