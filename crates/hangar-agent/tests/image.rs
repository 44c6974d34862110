//! The image store against real parts: images built from busybox-static and
//! testapp, Debian's docker-registry on loopback, real overlay mounts.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

use hangar_agent::image::{
    ImageError, ImageRef, ImageStore, LayerState, PullProgress, RegistryAuth,
};
use hangar_test_support::{Image, ImageBuilder, Layer, Registry};

fn demo_image() -> Image {
    ImageBuilder::new()
        .entrypoint(&["/usr/local/bin/testapp"])
        .cmd(&["serve-http", "9000"])
        .env("GREETING", "hello")
        .working_dir("/srv")
        .user("app")
        .expose("9000/tcp")
        .label("team", "hangar")
        .file("/srv/index.txt", "served\n", 0o640)
        .build()
}

fn new_store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("images")).unwrap();
    (dir, store)
}

fn no_progress(_: &PullProgress) {}

fn assert_demo_record(record: &hangar_agent::image::ImageRecord, image: &Image) {
    assert_eq!(record.manifest_digest.as_str(), image.digest());
    assert_eq!(record.config_digest.as_str(), image.config.digest);
    let c = &record.config;
    assert_eq!(
        c.entrypoint.as_deref(),
        Some(&["/usr/local/bin/testapp".to_string()][..])
    );
    assert_eq!(
        c.cmd.as_deref(),
        Some(&["serve-http".to_string(), "9000".to_string()][..])
    );
    assert!(c.env.iter().any(|e| e == "GREETING=hello"), "{:?}", c.env);
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    assert_eq!(c.user.as_deref(), Some("app"));
    assert!(c.exposed_ports.contains(&"9000/tcp".to_string()));
    assert_eq!(c.labels.get("team").map(String::as_str), Some("hangar"));

    assert_eq!(record.layers.len(), 3);
    let dirs = record.layer_dirs();
    assert_eq!(
        std::fs::read(dirs[0].join("bin/busybox")).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(
        std::fs::read_link(dirs[0].join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let tmp = std::fs::metadata(dirs[0].join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    assert_eq!(
        std::fs::metadata(dirs[0].join("home/app")).unwrap().uid(),
        1000
    );
    assert!(dirs[1].join("usr/local/bin/testapp").is_file());
    let index = dirs[2].join("srv/index.txt");
    assert_eq!(std::fs::read_to_string(&index).unwrap(), "served\n");
    assert_eq!(
        std::fs::metadata(&index).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    // overlayfs wants the highest layer first.
    let expected: Vec<String> = dirs.iter().rev().map(|d| d.display().to_string()).collect();
    assert_eq!(record.lowerdir(), expected.join(":"));
}

#[tokio::test]
async fn pull_anonymous_reports_progress_and_reuses_the_store() {
    let registry = Registry::start().unwrap();
    let image = demo_image();
    registry.push(&image, "demo/app:v1").await.unwrap();
    let (_dir, store) = new_store();
    let reference = registry.reference("demo/app:v1");

    let events = Mutex::new(Vec::new());
    let record = store
        .pull(&reference, &RegistryAuth::Anonymous, &|p: &PullProgress| {
            events.lock().unwrap().push(p.clone())
        })
        .await
        .unwrap();
    assert_eq!(record.reference, reference);
    assert_demo_record(&record, &image);

    let events = events.into_inner().unwrap();
    for (index, layer) in image.layers.iter().enumerate() {
        let of_layer: Vec<&PullProgress> = events.iter().filter(|e| e.index == index).collect();
        let last_download = of_layer
            .iter()
            .rfind(|e| e.state == LayerState::Downloading)
            .unwrap_or_else(|| panic!("no download progress for layer {index}: {of_layer:?}"));
        assert_eq!(last_download.done, layer.blob.size());
        assert_eq!(last_download.total, layer.blob.size());
        assert_eq!(last_download.digest.as_str(), layer.blob.digest);
        assert_eq!(of_layer.last().unwrap().state, LayerState::Ready);
        assert!(of_layer.iter().all(|e| e.layers == 3));
    }

    // get/list find it under any spelling; a second pull downloads nothing.
    assert_eq!(store.get(&reference).unwrap().as_ref(), Some(&record));
    assert_eq!(store.get(image.digest()).unwrap().as_ref(), Some(&record));
    assert_eq!(store.list().unwrap(), vec![record.clone()]);
    let again = Mutex::new(Vec::new());
    let second = store
        .pull(&reference, &RegistryAuth::Anonymous, &|p: &PullProgress| {
            again.lock().unwrap().push(p.state)
        })
        .await
        .unwrap();
    assert_eq!(second, record);
    assert_eq!(again.into_inner().unwrap(), vec![LayerState::Cached; 3]);

    let removed = store.remove(&reference).unwrap();
    assert_eq!(removed.reference, reference);
    assert!(store.get(&reference).unwrap().is_none());
    assert!(matches!(
        store.remove(&reference),
        Err(ImageError::NotFound { .. })
    ));
    // Nothing refers to the layers any more: prune deletes blobs and layers.
    // manifest, config and 3 layer blobs; 3 unpacked layers.
    assert_eq!(store.prune(&[]).unwrap(), 5 + 3);
    assert!(!record.layers[0].dir.exists());
}

#[tokio::test]
async fn pull_with_basic_auth() {
    let registry = Registry::start_with_basic_auth("hangar", "s3cret").unwrap();
    let image = demo_image();
    registry.push(&image, "private/app:v1").await.unwrap();
    let (_dir, store) = new_store();
    let reference = registry.reference("private/app:v1");

    let anonymous = store
        .pull(&reference, &RegistryAuth::Anonymous, &no_progress)
        .await;
    match anonymous {
        Err(ImageError::Unauthorized { reference: r }) => assert_eq!(r, reference),
        other => panic!("anonymous pull: {other:?}"),
    }
    let wrong = RegistryAuth::Basic {
        username: "hangar".into(),
        password: "wrong".into(),
    };
    let error = store
        .pull(&reference, &wrong, &no_progress)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ImageError::Unauthorized { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&reference), "{error}");

    let right = RegistryAuth::Basic {
        username: "hangar".into(),
        password: "s3cret".into(),
    };
    let record = store.pull(&reference, &right, &no_progress).await.unwrap();
    assert_demo_record(&record, &image);
}

#[tokio::test]
async fn pull_by_digest_and_missing_images() {
    let registry = Registry::start().unwrap();
    let image = demo_image();
    registry.push(&image, "demo/app:v1").await.unwrap();
    let (_dir, store) = new_store();

    let by_digest = registry.reference(&format!("demo/app@{}", image.digest()));
    let record = store
        .pull(&by_digest, &RegistryAuth::Anonymous, &no_progress)
        .await
        .unwrap();
    assert_eq!(record.reference, by_digest);
    assert_demo_record(&record, &image);

    let absent_digest = format!("sha256:{}", "0".repeat(64));
    let missing = registry.reference(&format!("demo/app@{absent_digest}"));
    let error = store
        .pull(&missing, &RegistryAuth::Anonymous, &no_progress)
        .await
        .unwrap_err();
    assert!(matches!(error, ImageError::NotFound { .. }), "{error:?}");

    let missing = registry.reference("demo/app:nope");
    let error = store
        .pull(&missing, &RegistryAuth::Anonymous, &no_progress)
        .await
        .unwrap_err();
    match error {
        ImageError::NotFound { reference } => assert_eq!(reference, missing),
        other => panic!("{other:?}"),
    }
    let error = store
        .pull(
            &registry.reference("other/repo:v1"),
            &RegistryAuth::Anonymous,
            &no_progress,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ImageError::NotFound { .. }), "{error:?}");

    let error = store
        .pull("Not A Reference!", &RegistryAuth::Anonymous, &no_progress)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ImageError::InvalidReference { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn corrupted_registry_blob_is_rejected() {
    let registry = Registry::start().unwrap();
    let image = demo_image();
    registry.push(&image, "demo/app:v1").await.unwrap();
    let layer = &image.layers[2].blob;
    let stored = registry.blob_path(&layer.digest);
    let mut data = std::fs::read(&stored).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0xff;
    std::fs::write(&stored, &data).unwrap();

    let (_dir, store) = new_store();
    let reference = registry.reference("demo/app:v1");
    let error = store
        .pull(&reference, &RegistryAuth::Anonymous, &no_progress)
        .await
        .unwrap_err();
    assert!(matches!(error, ImageError::BadDigest { .. }), "{error:?}");
    assert!(error.to_string().contains(&reference), "{error}");
    assert!(store.get(&reference).unwrap().is_none());
    assert!(!store.blob_path(&layer.digest.parse_digest()).exists());
}

trait ParseDigest {
    fn parse_digest(&self) -> hangar_agent::image::Digest;
}

impl ParseDigest for String {
    fn parse_digest(&self) -> hangar_agent::image::Digest {
        hangar_agent::image::Digest::parse(self).unwrap()
    }
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_share_the_store() {
    let registry = Registry::start().unwrap();
    let image = demo_image();
    registry.push(&image, "demo/app:v1").await.unwrap();
    let (_dir, store) = new_store();
    let reference = registry.reference("demo/app:v1");
    let (a, b, c) = tokio::join!(
        store.pull(&reference, &RegistryAuth::Anonymous, &no_progress),
        store.pull(&reference, &RegistryAuth::Anonymous, &no_progress),
        // A second store on the same directory, as a second agent process would be.
        async {
            let other = ImageStore::open(store.root()).unwrap();
            other
                .pull(&reference, &RegistryAuth::Anonymous, &no_progress)
                .await
        },
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_demo_record(&a, &image);
    let leftovers: Vec<_> = std::fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "work files left: {leftovers:?}");
}

#[tokio::test]
async fn import_oci_layout_and_docker_archive() {
    let image = demo_image();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    image
        .write_oci_layout(&layout, Some("demo/app:v1"))
        .unwrap();
    let archive = work.path().join("image.tar");
    image
        .write_docker_archive(&archive, "demo/saved:v2")
        .unwrap();

    let (_dir, store) = new_store();
    let record = store.import_oci_layout(&layout, None).await.unwrap();
    assert_eq!(record.reference, "docker.io/demo/app:v1");
    assert_demo_record(&record, &image);
    assert_eq!(store.get("demo/app:v1").unwrap(), Some(record));

    let (_dir2, store2) = new_store();
    let record = store2.import_docker_archive(&archive, None).await.unwrap();
    assert_eq!(record.reference, "docker.io/demo/saved:v2");
    // The archive carries no manifest: the store writes an OCI one, so only
    // the config and the layers (by diff id) match the registry image.
    assert_eq!(record.config_digest.as_str(), image.config.digest);
    for (layer, built) in record.layers.iter().zip(&image.layers) {
        assert_eq!(layer.diff_id.as_str(), built.diff_id);
    }
    assert!(
        record.layer_dirs()[1]
            .join("usr/local/bin/testapp")
            .is_file()
    );
    assert_eq!(record.config.user.as_deref(), Some("app"));
    let named = store2
        .import_docker_archive(&archive, Some("local/renamed:x"))
        .await
        .unwrap();
    assert_eq!(named.reference, "docker.io/local/renamed:x");
}

#[tokio::test]
async fn corrupted_layout_blob_is_rejected() {
    let image = demo_image();
    let work = tempfile::tempdir().unwrap();
    image
        .write_oci_layout(work.path(), Some("demo/app:v1"))
        .unwrap();
    let blob = work
        .path()
        .join("blobs/sha256")
        .join(image.layers[1].blob.hex());
    let mut data = std::fs::read(&blob).unwrap();
    data[10] ^= 0x01;
    std::fs::write(&blob, &data).unwrap();
    let (_dir, store) = new_store();
    let error = store
        .import_oci_layout(work.path(), None)
        .await
        .unwrap_err();
    assert!(matches!(error, ImageError::BadDigest { .. }), "{error:?}");
    assert!(store.get("demo/app:v1").unwrap().is_none());
}

/// An overlay mount of the image's layers, unmounted on drop.
struct Overlay(std::path::PathBuf);

impl Overlay {
    fn mount(lowerdir: &str, target: &Path) -> Self {
        nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(format!("lowerdir={lowerdir}").as_str()),
        )
        .expect("mount overlay");
        Self(target.to_path_buf())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test]
async fn whiteouts_hide_lower_files_in_a_real_overlay() {
    let image = ImageBuilder::new()
        .file("/data/keep.txt", "keep", 0o644)
        .file("/data/drop.txt", "drop", 0o644)
        .file("/opaque/old.txt", "old", 0o644)
        .layer(
            Layer::new()
                .whiteout("/etc/hostname")
                .whiteout("/data/drop.txt")
                .whiteout("/home/app")
                .dir("/opaque", 0o755)
                .opaque("/opaque")
                .file("/opaque/new.txt", "new", 0o644),
        )
        .build();
    let work = tempfile::tempdir().unwrap();
    image
        .write_oci_layout(&work.path().join("layout"), Some("whiteouts:1"))
        .unwrap();
    let (_dir, store) = new_store();
    let record = store
        .import_oci_layout(&work.path().join("layout"), None)
        .await
        .unwrap();

    // The top layer holds overlayfs whiteouts, not .wh. files.
    let top = record.layer_dirs().pop().unwrap();
    let whiteout = std::fs::symlink_metadata(top.join("etc/hostname")).unwrap();
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    assert!(!top.join("etc/.wh.hostname").exists());
    assert_eq!(
        xattr::get(top.join("opaque"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );

    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let _mount = Overlay::mount(&record.lowerdir(), &root);
    assert!(root.join("bin/busybox").is_file());
    assert!(root.join("etc/passwd").is_file());
    assert!(
        !root.join("etc/hostname").exists(),
        "whited-out file visible"
    );
    assert!(
        !root.join("home/app").exists(),
        "whited-out directory visible"
    );
    assert!(root.join("home").is_dir());
    assert_eq!(
        std::fs::read_to_string(root.join("data/keep.txt")).unwrap(),
        "keep"
    );
    assert!(!root.join("data/drop.txt").exists());
    assert!(
        !root.join("opaque/old.txt").exists(),
        "opaque dir shows lower files"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("opaque/new.txt")).unwrap(),
        "new"
    );
}

#[tokio::test]
async fn layers_that_escape_are_rejected() {
    let (_dir, store) = new_store();
    let work = tempfile::tempdir().unwrap();

    let image = ImageBuilder::new()
        .layer(Layer::new().raw_file("../../escaped.txt", "x"))
        .build();
    image
        .write_oci_layout(&work.path().join("dotdot"), Some("escape:dotdot"))
        .unwrap();
    let error = store
        .import_oci_layout(&work.path().join("dotdot"), None)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("leaves the layer"), "{error}");
    assert!(!store.root().join("escaped.txt").exists());

    // A symlink to an absolute host path, then a file written "through" it.
    let outside = work.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let image = ImageBuilder::new()
        .layer(
            Layer::new()
                .symlink("/evil", outside.to_str().unwrap())
                .file("/evil/planted.txt", "x", 0o644),
        )
        .build();
    image
        .write_oci_layout(&work.path().join("symlink"), Some("escape:symlink"))
        .unwrap();
    let error = store
        .import_oci_layout(&work.path().join("symlink"), None)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("symlink"), "{error}");
    assert!(
        !outside.join("planted.txt").exists(),
        "wrote through a symlink"
    );

    let image = ImageBuilder::new()
        .layer(Layer::new().hardlink("/etc/shadow-link", "/../../etc/shadow"))
        .build();
    image
        .write_oci_layout(&work.path().join("hardlink"), Some("escape:hardlink"))
        .unwrap();
    let error = store
        .import_oci_layout(&work.path().join("hardlink"), None)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("hard link"), "{error}");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn references_are_normalized_like_docker() {
    let cases = [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("user/app:tag", "docker.io/user/app:tag"),
        ("ghcr.io/org/app:v1", "ghcr.io/org/app:v1"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
    ];
    for (input, canonical) in cases {
        assert_eq!(
            ImageRef::parse(input).unwrap().canonical(),
            canonical,
            "{input}"
        );
    }
    let digest = format!("sha256:{}", "a".repeat(64));
    let pinned = ImageRef::parse(&format!("127.0.0.1:5000/repo@{digest}")).unwrap();
    assert_eq!(pinned.registry(), "127.0.0.1:5000");
    assert_eq!(pinned.repository(), "repo");
    assert_eq!(pinned.digest(), Some(digest.as_str()));

    for loopback in [
        "127.0.0.1:5000/a",
        "localhost/a",
        "localhost:5000/a",
        "127.1.2.3/a",
    ] {
        assert!(
            ImageRef::parse(loopback).unwrap().is_loopback_registry(),
            "{loopback}"
        );
    }
    for remote in ["nginx", "ghcr.io/a/b", "10.0.0.1:5000/a"] {
        assert!(
            !ImageRef::parse(remote).unwrap().is_loopback_registry(),
            "{remote}"
        );
    }
    for bad in ["", "UPPER/case", "a@sha256:short"] {
        let error = ImageRef::parse(bad).unwrap_err();
        assert!(
            matches!(error, ImageError::InvalidReference { .. }),
            "{bad}: {error:?}"
        );
    }
}

#[tokio::test]
async fn pull_with_bearer_token_auth() {
    let registry = Registry::start_with_token_auth("hangar", "s3cret").unwrap();
    let image = demo_image();
    registry.push(&image, "private/app:v1").await.unwrap();
    let reference = registry.reference("private/app:v1");

    // Anonymous clients get a token without access from the realm.
    let (_dir, store) = new_store();
    let error = store
        .pull(&reference, &RegistryAuth::Anonymous, &no_progress)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ImageError::Unauthorized { .. }),
        "{error:?}"
    );

    // Credentials are exchanged for a token at the realm the registry names.
    let wrong = RegistryAuth::Basic {
        username: "hangar".into(),
        password: "wrong".into(),
    };
    let error = store
        .pull(&reference, &wrong, &no_progress)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ImageError::Unauthorized { .. }),
        "{error:?}"
    );
    let basic = RegistryAuth::Basic {
        username: "hangar".into(),
        password: "s3cret".into(),
    };
    let record = store.pull(&reference, &basic, &no_progress).await.unwrap();
    assert_demo_record(&record, &image);

    // A token obtained elsewhere is presented as is.
    let (_dir, store) = new_store();
    let token = registry.token("private/app", &["pull"]).unwrap();
    let record = store
        .pull(&reference, &RegistryAuth::Bearer { token }, &no_progress)
        .await
        .unwrap();
    assert_demo_record(&record, &image);
    let (_dir, store) = new_store();
    let foreign = registry.token("other/app", &["pull"]).unwrap();
    let error = store
        .pull(
            &reference,
            &RegistryAuth::Bearer { token: foreign },
            &no_progress,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ImageError::Unauthorized { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn image_index_resolves_to_linux_amd64() {
    let registry = Registry::start().unwrap();
    let arm = ImageBuilder::new()
        .file("/platform", "arm64", 0o644)
        .build();
    let amd = ImageBuilder::new()
        .file("/platform", "amd64", 0o644)
        .build();
    registry
        .push_index(
            &[(&arm, "linux/arm64"), (&amd, "linux/amd64")],
            "multi/app:v1",
        )
        .await
        .unwrap();
    registry
        .push_index(&[(&arm, "linux/arm64")], "multi/app:arm-only")
        .await
        .unwrap();
    let (_dir, store) = new_store();

    let reference = registry.reference("multi/app:v1");
    let record = store
        .pull(&reference, &RegistryAuth::Anonymous, &no_progress)
        .await
        .unwrap();
    assert_eq!(record.reference, reference);
    assert_eq!(record.manifest_digest.as_str(), amd.digest());
    let top = record.layer_dirs().pop().unwrap();
    assert_eq!(
        std::fs::read_to_string(top.join("platform")).unwrap(),
        "amd64"
    );

    let reference = registry.reference("multi/app:arm-only");
    let error = store
        .pull(&reference, &RegistryAuth::Anonymous, &no_progress)
        .await
        .unwrap_err();
    match error {
        ImageError::NoMatchingPlatform { reference: r } => assert_eq!(r, reference),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn owners_modes_xattrs_and_links_are_kept() {
    let image = ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("/data", 0o750)
                .owned_by(1000, 1000)
                .file("/data/tool", "#!/bin/sh\n", 0o4755)
                .file("/data/notes", "notes", 0o600)
                .owned_by(1000, 1000)
                .xattr("user.hangar", b"yes")
                .hardlink("/data/notes-link", "/data/notes")
                .symlink("/data/passwd", "/etc/passwd"),
        )
        .build();
    let work = tempfile::tempdir().unwrap();
    image.write_oci_layout(work.path(), Some("meta:1")).unwrap();
    let (_dir, store) = new_store();
    let record = store.import_oci_layout(work.path(), None).await.unwrap();
    let top = record.layer_dirs().pop().unwrap();

    let data = std::fs::metadata(top.join("data")).unwrap();
    assert_eq!(
        (data.uid(), data.gid(), data.mode() & 0o7777),
        (1000, 1000, 0o750)
    );
    let tool = std::fs::metadata(top.join("data/tool")).unwrap();
    assert_eq!(tool.mode() & 0o7777, 0o4755, "setuid kept");
    let notes = std::fs::metadata(top.join("data/notes")).unwrap();
    assert_eq!(
        (notes.uid(), notes.gid(), notes.mode() & 0o7777),
        (1000, 1000, 0o600)
    );
    assert_eq!(notes.mtime(), 1_700_000_000);
    assert_eq!(
        xattr::get(top.join("data/notes"), "user.hangar")
            .unwrap()
            .as_deref(),
        Some(&b"yes"[..])
    );
    let link = std::fs::metadata(top.join("data/notes-link")).unwrap();
    assert_eq!(link.ino(), notes.ino(), "hard link shares the inode");
    // An absolute symlink is kept as written (resolved inside the container).
    assert_eq!(
        std::fs::read_link(top.join("data/passwd")).unwrap(),
        Path::new("/etc/passwd")
    );
}

/// The agent boxes pulls as `Send` futures; this fails to compile otherwise.
#[allow(dead_code)]
fn pull_future_is_send(store: &ImageStore) {
    fn assert_send<T: Send>(_: T) {}
    assert_send(store.pull("nginx", &RegistryAuth::Anonymous, &|_| {}));
}
