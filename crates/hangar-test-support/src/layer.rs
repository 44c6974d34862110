//! One image layer described entry by entry, serialized as a deterministic tar.
//!
//! Paths are relative to the root (a leading `/` is dropped). Whiteouts are
//! written the way OCI and Docker layers carry them: `.wh.NAME` deletes `NAME`
//! of lower layers, `.wh..wh..opq` in a directory hides everything below it
//! that lower layers hold.

use tar::{EntryType, Header};

/// The modification time written into every entry, so images are reproducible.
pub(crate) const MTIME: u64 = 1_700_000_000;

#[derive(Clone, Debug)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
}

#[derive(Clone, Debug)]
struct Entry {
    path: String,
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// A layer under construction; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct Layer {
    entries: Vec<Entry>,
}

fn relative(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

impl Layer {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, path: &str, kind: Kind, mode: u32) -> Self {
        self.entries.push(Entry {
            path: relative(path),
            kind,
            mode,
            uid: 0,
            gid: 0,
            xattrs: Vec::new(),
        });
        self
    }

    /// A regular file with `contents` and permission bits `mode`, owned by root.
    pub fn file(self, path: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Self {
        self.push(path, Kind::File(contents.into()), mode)
    }

    /// A directory with permission bits `mode`, owned by root.
    pub fn dir(self, path: &str, mode: u32) -> Self {
        self.push(path, Kind::Dir, mode)
    }

    /// A symbolic link at `path` pointing to `target` (written as given).
    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.push(path, Kind::Symlink(target.to_string()), 0o777)
    }

    /// A hard link at `path` to the earlier entry `target` of this layer.
    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.push(path, Kind::Hardlink(relative(target)), 0o644)
    }

    /// Changes the owner of the entry added last.
    pub fn owned_by(mut self, uid: u64, gid: u64) -> Self {
        if let Some(last) = self.entries.last_mut() {
            last.uid = uid;
            last.gid = gid;
        }
        self
    }

    /// Adds an extended attribute (a PAX `SCHILY.xattr.NAME` record) to the
    /// entry added last.
    pub fn xattr(mut self, name: &str, value: &[u8]) -> Self {
        if let Some(last) = self.entries.last_mut() {
            last.xattrs.push((name.to_string(), value.to_vec()));
        }
        self
    }

    /// A whiteout: deletes `path` (file or directory) of the layers below.
    pub fn whiteout(self, path: &str) -> Self {
        let path = relative(path);
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (format!("{parent}/"), name.to_string()),
            None => (String::new(), path),
        };
        self.push(
            &format!("{parent}.wh.{name}"),
            Kind::File(Vec::new()),
            0o644,
        )
    }

    /// An opaque-directory marker: `dir` of this layer hides all of `dir` below.
    pub fn opaque(self, dir: &str) -> Self {
        let dir = relative(dir);
        let dir = dir.trim_end_matches('/');
        self.push(
            &format!("{dir}/.wh..wh..opq"),
            Kind::File(Vec::new()),
            0o644,
        )
    }

    /// A raw entry with an arbitrary path (even `../x` or `/abs`), for tests
    /// that check an unpacker rejects it.
    pub fn raw_file(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.entries.push(Entry {
            path: path.to_string(),
            kind: Kind::File(contents.into()),
            mode: 0o644,
            uid: 0,
            gid: 0,
            xattrs: Vec::new(),
        });
        self
    }

    /// The layer as an uncompressed tar archive.
    pub fn to_tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        builder.mode(tar::HeaderMode::Deterministic);
        for entry in &self.entries {
            if !entry.xattrs.is_empty() {
                append_pax(&mut builder, &entry.path, &entry.xattrs)
                    .unwrap_or_else(|e| panic!("layer entry {:?}: {e}", entry.path));
            }
            let mut header = Header::new_gnu();
            header.set_mode(entry.mode);
            header.set_uid(entry.uid);
            header.set_gid(entry.gid);
            header.set_mtime(MTIME);
            let result = match &entry.kind {
                Kind::File(contents) => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_size(contents.len() as u64);
                    append_raw(&mut builder, header, &entry.path, contents)
                }
                Kind::Dir => {
                    header.set_entry_type(EntryType::Directory);
                    header.set_size(0);
                    let path = format!("{}/", entry.path.trim_end_matches('/'));
                    append_raw(&mut builder, header, &path, &[][..])
                }
                Kind::Symlink(target) | Kind::Hardlink(target) => {
                    let kind = if matches!(entry.kind, Kind::Symlink(_)) {
                        EntryType::Symlink
                    } else {
                        EntryType::Link
                    };
                    header.set_entry_type(kind);
                    header.set_size(0);
                    builder.append_link(&mut header, &entry.path, target)
                }
            };
            // Writing into a Vec cannot fail; a path tar cannot encode is a
            // bug in the test that asked for it.
            result.unwrap_or_else(|e| panic!("layer entry {:?}: {e}", entry.path));
        }
        builder.into_inner().expect("finishing a tar in memory")
    }
}

/// Appends an entry without the path checks of `Builder::append_data`, so
/// tests can build hostile layers (`../x`, `/abs`) on purpose.
fn append_raw(
    builder: &mut tar::Builder<Vec<u8>>,
    mut header: Header,
    path: &str,
    data: &[u8],
) -> std::io::Result<()> {
    if path.len() < 100 && !path.contains("..") && !path.starts_with('/') {
        return builder.append_data(&mut header, path, data);
    }
    // Long or hostile names: write the name bytes ourselves (GNU long name
    // when needed), which `append_data` would refuse for `..` and `/`.
    if path.len() >= 100 {
        let mut long = Header::new_gnu();
        long.as_gnu_mut().expect("gnu header").name[..13].copy_from_slice(b"././@LongLink");
        long.set_mode(0o644);
        long.set_entry_type(EntryType::GNULongName);
        let mut name = path.as_bytes().to_vec();
        name.push(0);
        long.set_size(name.len() as u64);
        long.set_cksum();
        builder.append(&long, &name[..])?;
    }
    let bytes = path.as_bytes();
    let name = &mut header.as_old_mut().name;
    let n = bytes.len().min(name.len());
    name[..n].copy_from_slice(&bytes[..n]);
    header.set_cksum();
    builder.append(&header, data)
}

/// Appends a PAX extended header carrying `xattrs` for the entry that follows.
fn append_pax(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    xattrs: &[(String, Vec<u8>)],
) -> std::io::Result<()> {
    let mut data = Vec::new();
    for (name, value) in xattrs {
        let key = format!("SCHILY.xattr.{name}");
        // A record is "LEN KEY=VALUE\n", LEN counting the whole record.
        let body = key.len() + value.len() + 3;
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {key}=").as_bytes());
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut header = Header::new_ustar();
    let name = format!("PaxHeaders/{}", path.rsplit('/').next().unwrap_or(path));
    header.set_path(&name[..name.len().min(99)])?;
    header.set_entry_type(EntryType::XHeader);
    header.set_mode(0o644);
    header.set_mtime(MTIME);
    header.set_size(data.len() as u64);
    header.set_cksum();
    builder.append(&header, &data[..])
}
