//! Volume tests on real loop-mounted ext4 filesystems (need root).

use super::*;

/// Destroys the volume even when the test fails half-way.
struct Guard<'a>(&'a VolumeManager, &'a str);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = self.0.destroy(self.1);
    }
}

fn manager() -> (tempfile::TempDir, VolumeManager) {
    let dir = tempfile::tempdir().unwrap();
    let m = VolumeManager::open(dir.path().join("volumes")).unwrap();
    (dir, m)
}

#[test]
fn data_survives_unmount_and_remount() {
    let (_tmp, m) = manager();
    let id = "vol_persist000001";
    m.create(id, 1).unwrap();
    let _g = Guard(&m, id);
    let mnt = m.mount(id).unwrap();
    std::fs::write(mnt.join("kept.txt"), b"still here").unwrap();
    m.unmount(id).unwrap();
    assert!(!m.is_mounted(id).unwrap());
    assert!(
        !mnt.join("kept.txt").exists(),
        "unmounted dir must be empty"
    );
    let mnt = m.mount(id).unwrap();
    assert_eq!(std::fs::read(mnt.join("kept.txt")).unwrap(), b"still here");
    // Mounting twice is harmless.
    assert_eq!(m.mount(id).unwrap(), mnt);
}

#[test]
fn size_is_enforced_and_extend_grows_it_while_mounted() {
    let (_tmp, m) = manager();
    let id = "vol_sizelimit0001";
    m.create(id, 1).unwrap();
    let _g = Guard(&m, id);
    let mnt = m.mount(id).unwrap();
    let big = std::fs::File::create(mnt.join("big")).unwrap();
    // 1.5 GiB cannot fit in a 1 GiB volume.
    let err = nix::fcntl::fallocate(
        &big,
        nix::fcntl::FallocateFlags::empty(),
        0,
        (3 * GIB / 2) as i64,
    )
    .unwrap_err();
    assert_eq!(err, nix::errno::Errno::ENOSPC);

    let outcome = m.extend(id, 2).unwrap();
    assert_eq!(m.size_bytes(id).unwrap(), 2 * GIB);
    if outcome.needs_restart {
        // This host cannot grow a mounted ext4 (no CAP_SYS_RESOURCE): the next
        // mount finishes the resize.
        drop(big);
        m.unmount(id).unwrap();
        m.mount(id).unwrap();
    }
    let big = std::fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("big"))
        .unwrap();
    nix::fcntl::fallocate(
        &big,
        nix::fcntl::FallocateFlags::empty(),
        0,
        (3 * GIB / 2) as i64,
    )
    .expect("after extending to 2 GiB, 1.5 GiB fits");
}

#[test]
fn extend_while_unmounted_and_refuse_shrink() {
    let (_tmp, m) = manager();
    let id = "vol_offline000001";
    m.create(id, 1).unwrap();
    let _g = Guard(&m, id);
    assert_eq!(
        m.extend(id, 3).unwrap(),
        Extended {
            needs_restart: false
        }
    );
    let mnt = m.mount(id).unwrap();
    let st = nix::sys::statvfs::statvfs(&mnt).unwrap();
    let total = st.blocks() * st.fragment_size();
    assert!(total > 2 * GIB, "filesystem grew to {total} bytes");
    let err = m.extend(id, 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "volume vol_offline000001: size_gb can only grow: it is 3 GiB, asked for 2"
    );
}

#[test]
fn destroy_leaves_no_mount_no_loop_device_no_files() {
    let (_tmp, m) = manager();
    let id = "vol_destroy000001";
    m.create(id, 1).unwrap();
    let mnt = m.mount(id).unwrap();
    let image = m.image(id).unwrap();
    m.destroy(id).unwrap();
    assert!(!mounted_targets().contains(&mnt));
    assert!(loop_devices_of(&image).is_empty());
    assert!(!image.exists());
    assert!(m.list().unwrap().is_empty());
    // Destroying again is success.
    m.destroy(id).unwrap();
}

#[test]
fn bad_inputs_are_named() {
    let (_tmp, m) = manager();
    assert_eq!(
        m.create("vol_zero", 0).unwrap_err().to_string(),
        "volume vol_zero: size_gb must be between 1 and 500, got 0"
    );
    assert_eq!(
        m.create("../escape", 1).unwrap_err().to_string(),
        "volume id \"../escape\" is not a valid directory name"
    );
    assert_eq!(
        m.mount("vol_missing").unwrap_err().to_string(),
        "volume vol_missing: not found on this host"
    );
    m.create("vol_twice00000001", 1).unwrap();
    let _g = Guard(&m, "vol_twice00000001");
    assert_eq!(
        m.create("vol_twice00000001", 1).unwrap_err().to_string(),
        "volume vol_twice00000001 already exists on this host"
    );
    assert_eq!(m.list().unwrap(), vec!["vol_twice00000001".to_string()]);
}

#[test]
fn mountinfo_escapes_are_decoded() {
    assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
    assert_eq!(unescape_mountinfo("/plain"), "/plain");
    assert_eq!(unescape_mountinfo("/trail\\04"), "/trail\\04");
}
