//! Resolving a container's `user` (`name`, `uid`, `name:group`, `uid:gid`) against
//! the image's `/etc/passwd` and `/etc/group`, read from the unpacked layers
//! (the top-most layer that has the file wins; a whiteout hides lower ones).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use crate::runtime::User;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("user {user:?}: no such user in the image's /etc/passwd{}", if *.has_passwd { "" } else { " (the image has no /etc/passwd)" })]
    UnknownUser { user: String, has_passwd: bool },
    #[error("user {user:?}: no such group {group:?} in the image's /etc/group")]
    UnknownGroup { user: String, group: String },
    #[error("user {user:?}: cannot read {path}: {message}")]
    Read {
        user: String,
        path: PathBuf,
        message: String,
    },
}

/// Finds `etc/<name>` in the layers, top-most first, honouring whiteouts.
fn find_in_layers(layers: &[PathBuf], name: &str) -> Option<PathBuf> {
    for layer in layers.iter().rev() {
        let etc = layer.join("etc");
        let file = etc.join(name);
        if file.is_file() {
            return Some(file);
        }
        if etc.join(format!(".wh.{name}")).exists()
            || etc.join(".wh..wh..opq").exists()
            || layer.join(".wh.etc").exists()
        {
            return None;
        }
    }
    None
}

fn read(layers: &[PathBuf], name: &str, user: &str) -> Result<Option<String>, UserError> {
    match find_in_layers(layers, name) {
        None => Ok(None),
        Some(p) => std::fs::read_to_string(&p)
            .map(Some)
            .map_err(|e| UserError::Read {
                user: user.to_string(),
                path: p.clone(),
                message: e.to_string(),
            }),
    }
}

/// `(name, uid, gid)` of each passwd line.
fn passwd_entries(text: &str) -> impl Iterator<Item = (&str, u32, u32)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 || l.starts_with('#') {
            return None;
        }
        Some((f[0], f[2].parse().ok()?, f[3].parse().ok()?))
    })
}

/// `(name, gid)` of each group line.
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 3 || l.starts_with('#') {
            return None;
        }
        Some((f[0], f[2].parse().ok()?))
    })
}

/// Resolves `spec` (empty or absent: root) in the image made of `layers`.
pub fn resolve(layers: &[PathBuf], spec: Option<&str>) -> Result<User, UserError> {
    let spec = spec.map(str::trim).unwrap_or("");
    if spec.is_empty() {
        return Ok(User { uid: 0, gid: 0 });
    }
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read(layers, "passwd", spec)?;
    let entries: Vec<(&str, u32, u32)> = passwd
        .as_deref()
        .map(|t| passwd_entries(t).collect())
        .unwrap_or_default();
    let (uid, primary_gid) = match user_part.parse::<u32>() {
        Ok(uid) => (
            uid,
            entries
                .iter()
                .find(|e| e.1 == uid)
                .map(|e| e.2)
                .unwrap_or(0),
        ),
        Err(_) => match entries.iter().find(|e| e.0 == user_part) {
            Some(e) => (e.1, e.2),
            None => {
                return Err(UserError::UnknownUser {
                    user: spec.to_string(),
                    has_passwd: passwd.is_some(),
                });
            }
        },
    };
    let gid = match group_part {
        None | Some("") => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = read(layers, "group", spec)?;
                group
                    .as_deref()
                    .and_then(|t| group_entries(t).find(|e| e.0 == g).map(|e| e.1))
                    .ok_or_else(|| UserError::UnknownGroup {
                        user: spec.to_string(),
                        group: g.to_string(),
                    })?
            }
        },
    };
    Ok(User { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> (tempfile::TempDir, Vec<PathBuf>) {
        let d = tempfile::tempdir().unwrap();
        let low = d.path().join("l0");
        let high = d.path().join("l1");
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::create_dir_all(high.join("etc")).unwrap();
        std::fs::write(
            low.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nold:x:5:5::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            high.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(high.join("etc/group"), "root:x:0:\nstaff:x:50:app\n").unwrap();
        (d, vec![low, high])
    }

    #[test]
    fn names_ids_and_groups_resolve_from_the_top_layer() {
        let (_d, l) = layers();
        assert_eq!(resolve(&l, None).unwrap(), User { uid: 0, gid: 0 });
        assert_eq!(
            resolve(&l, Some("app")).unwrap(),
            User {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(
            resolve(&l, Some("1000")).unwrap(),
            User {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(
            resolve(&l, Some("4242")).unwrap(),
            User { uid: 4242, gid: 0 }
        );
        assert_eq!(
            resolve(&l, Some("app:staff")).unwrap(),
            User { uid: 1000, gid: 50 }
        );
        assert_eq!(resolve(&l, Some("7:8")).unwrap(), User { uid: 7, gid: 8 });
        // "old" only exists in the lower layer's passwd, which the upper one hides.
        assert!(matches!(
            resolve(&l, Some("old")),
            Err(UserError::UnknownUser { .. })
        ));
        let e = resolve(&l, Some("app:nogroup")).unwrap_err();
        assert!(e.to_string().contains("no such group \"nogroup\""), "{e}");
    }
}
