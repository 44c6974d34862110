//! The JSON shapes of the API's answers (`App`, `Machine`, `MachineEvent`,
//! `Lease`, `Volume`, `AppSecret`), built from store records.

use hangar_agent::store::{
    AppRecord, EventRecord, LeaseRecord, MachineRecord, SecretInfo, TokenRecord, VersionRecord,
    VolumeRecord,
};
use serde_json::{Map, Value, json};

pub use hangar_agent::machine::rfc3339;

pub fn app(a: &AppRecord) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "internal_numeric_id": a.internal_numeric_id,
        "machine_count": a.machine_count,
        "volume_count": a.volume_count,
        "network": a.network,
        "organization": {"name": a.org_slug, "slug": a.org_slug},
        "status": if a.machine_count > 0 { "deployed" } else { "pending" },
        "created_at": a.created_at,
    })
}

/// `registry/repository:tag@digest` split the way the API reports it.
pub fn image_ref(image: &str) -> Value {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, d),
        None => (image, ""),
    };
    let (rest, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], &rest[i + 1..]),
        _ => (rest, if digest.is_empty() { "latest" } else { "" }),
    };
    let (registry, repository) = match rest.split_once('/') {
        Some((first, tail))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), tail.to_owned())
        }
        _ => {
            let repo = if rest.contains('/') {
                rest.to_owned()
            } else {
                format!("library/{rest}")
            };
            ("docker.io".to_owned(), repo)
        }
    };
    json!({"registry": registry, "repository": repository, "tag": tag, "digest": digest, "labels": {}})
}

/// The config as the client sent it, with the machine's current metadata
/// (which the metadata endpoints change without a new version).
fn config_with_metadata(m: &MachineRecord) -> Value {
    let mut config = m.config.clone();
    if let Value::Object(obj) = &mut config {
        let had = obj.get("metadata").map(|v| !v.is_null()).unwrap_or(false);
        if had || !m.metadata.is_empty() {
            let md: Map<String, Value> = m
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            obj.insert("metadata".into(), Value::Object(md));
        }
    }
    config
}

pub fn machine(m: &MachineRecord, events: &[EventRecord], lease: Option<&LeaseRecord>) -> Value {
    let image_ref = m.image_ref.clone().unwrap_or_else(|| {
        m.config
            .get("image")
            .and_then(Value::as_str)
            .or_else(|| {
                m.config
                    .pointer("/containers/0/image")
                    .and_then(Value::as_str)
            })
            .map(image_ref)
            .unwrap_or_else(|| json!({}))
    });
    let mut out = json!({
        "id": m.id,
        "name": m.name,
        "state": m.state.as_str(),
        "region": m.region,
        "instance_id": m.instance_id,
        "version": m.version,
        "private_ip": m.private_ip.clone().unwrap_or_default(),
        "config": config_with_metadata(m),
        "image_ref": image_ref,
        "created_at": rfc3339(m.created_at),
        "updated_at": rfc3339(m.updated_at),
        "events": events.iter().map(event).collect::<Vec<_>>(),
        "checks": [],
        "cordoned": m.cordoned,
        "host_status": "ok",
    });
    if let Some(ip) = &m.private_ipv4 {
        out["private_ipv4"] = json!(ip);
    }
    if let Some(l) = lease {
        out["lease"] =
            json!({"owner": l.owner, "description": l.description, "expires_at": l.expires_at});
    }
    out
}

pub fn event(e: &EventRecord) -> Value {
    json!({
        "id": e.id,
        "type": e.kind,
        "status": e.status,
        "source": e.source,
        "timestamp": e.timestamp,
        "request": e.request,
    })
}

pub fn version(v: &VersionRecord) -> Value {
    json!({
        "version": v.version,
        "user_config": v.config,
        "created_at": rfc3339(v.created_at),
        "replaced": v.replaced_at.is_some(),
    })
}

pub fn lease(l: &LeaseRecord) -> Value {
    json!({
        "nonce": l.nonce,
        "owner": l.owner,
        "description": l.description,
        "expires_at": l.expires_at,
        "version": l.version,
    })
}

pub fn secret(s: &SecretInfo) -> Value {
    json!({
        "name": s.name,
        "digest": s.digest,
        "created_at": rfc3339(s.created_at),
        "updated_at": rfc3339(s.updated_at),
    })
}

pub fn token(t: &TokenRecord) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "admin": t.admin,
        "created_at": rfc3339(t.created_at),
        "revoked": t.revoked_at.is_some(),
    })
}

pub fn volume(v: &VolumeRecord) -> Value {
    let bytes_total = v.size_gb.saturating_mul(1 << 30);
    json!({
        "id": v.id,
        "name": v.name,
        "state": v.state,
        "size_gb": v.size_gb,
        "region": v.region,
        "zone": "local",
        "encrypted": v.encrypted,
        "fstype": v.fstype,
        "type": "local",
        "attached_machine_id": v.attached_machine_id,
        "attached_alloc_id": Value::Null,
        "auto_backup_enabled": v.auto_backup_enabled,
        "snapshot_retention": v.snapshot_retention,
        "block_size": 4096,
        "blocks": bytes_total / 4096,
        "bytes_total": bytes_total,
        "created_at": rfc3339(v.created_at),
        "host_status": "ok",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn image_refs_split_like_docker() {
        assert_eq!(image_ref("nginx")["repository"], "library/nginx");
        assert_eq!(image_ref("nginx")["tag"], "latest");
        let r = image_ref("127.0.0.1:5000/team/app:v2");
        assert_eq!(r["registry"], "127.0.0.1:5000");
        assert_eq!(r["repository"], "team/app");
        assert_eq!(r["tag"], "v2");
        assert_eq!(image_ref("busybox@sha256:abc")["digest"], "sha256:abc");
    }
}
