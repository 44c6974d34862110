//! Helpers of the API wire types: image references as the API shows them,
//! Authorization schemes, the error body built from validation problems, exec
//! argv, lease ttl defaults, volume and secret names.

use hangar_types::error::ErrorResponse;
use hangar_types::lease::CreateLeaseRequest;
use hangar_types::machine::{ExecRequest, ImageRef};
use hangar_types::parse_machine_config_document;
use hangar_types::secret::check_secret_name;
use hangar_types::token::{AuthScheme, parse_authorization};
use hangar_types::volume::check_volume_name;
use serde_json::json;

#[test]
fn image_refs_split_like_the_api_shows_them() {
    let r = ImageRef::parse("registry.fly.io/my-app:deployment-01");
    assert_eq!(
        (
            r.registry.as_str(),
            r.repository.as_str(),
            r.tag.as_str(),
            r.digest.as_str()
        ),
        ("registry.fly.io", "my-app", "deployment-01", "")
    );
    let r = ImageRef::parse("nginx");
    assert_eq!(
        (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
        ("registry-1.docker.io", "library/nginx", "latest")
    );
    let r = ImageRef::parse("ealen/echo-server");
    assert_eq!(
        (r.repository.as_str(), r.tag.as_str()),
        ("ealen/echo-server", "latest")
    );
    let r = ImageRef::parse("localhost:5000/team/app@sha256:abc");
    assert_eq!(
        (
            r.registry.as_str(),
            r.repository.as_str(),
            r.tag.as_str(),
            r.digest.as_str()
        ),
        ("localhost:5000", "team/app", "", "sha256:abc")
    );
    assert_eq!(
        serde_json::to_value(ImageRef::parse("nginx:1.25")).unwrap(),
        json!({"registry": "registry-1.docker.io", "repository": "library/nginx", "tag": "1.25"})
    );
}

#[test]
fn authorization_schemes() {
    assert_eq!(
        parse_authorization("Bearer abc"),
        Some((AuthScheme::Bearer, "abc"))
    );
    assert_eq!(
        parse_authorization("bearer  abc "),
        Some((AuthScheme::Bearer, "abc"))
    );
    assert_eq!(
        parse_authorization("FlyV1 fm2_xyz"),
        Some((AuthScheme::FlyV1, "fm2_xyz"))
    );
    assert_eq!(parse_authorization("Basic dXNlcg=="), None);
    assert_eq!(parse_authorization("Bearer "), None);
    assert_eq!(parse_authorization("abc"), None);
}

#[test]
fn error_body_lists_every_problem() {
    let problems = parse_machine_config_document(
        r#"{"containers": [{"name": "a", "image": "x", "depends_on": [{"name": "db"}]}], "guest": {"cpus": 0}}"#,
    )
    .unwrap()
    .validate()
    .unwrap_err();
    let body = serde_json::to_value(ErrorResponse::from(&problems)).unwrap();
    assert_eq!(
        body,
        json!({
            "error": "config.guest.cpus: must be at least 1 (got 0)\nconfig.containers[0].depends_on[0]: no container named \"db\"",
            "details": [
                {"path": "config.guest.cpus", "message": "must be at least 1 (got 0)"},
                {"path": "config.containers[0].depends_on[0]", "message": "no container named \"db\""}
            ]
        })
    );
    assert_eq!(
        serde_json::to_value(ErrorResponse::new("machine not found")).unwrap(),
        json!({"error": "machine not found"})
    );
}

#[test]
fn exec_argv_from_command_or_cmd() {
    let r: ExecRequest = serde_json::from_value(json!({"command": ["ls", "-l", "/a b"]})).unwrap();
    assert_eq!(r.argv(), ["ls", "-l", "/a b"]);
    let r: ExecRequest = serde_json::from_value(json!({"cmd": "ls  -l /tmp"})).unwrap();
    assert_eq!(r.argv(), ["ls", "-l", "/tmp"]);
}

#[test]
fn lease_ttl_defaults() {
    let r: CreateLeaseRequest = serde_json::from_value(json!({"ttl": 120})).unwrap();
    assert_eq!(r.ttl_or_default(), 120);
    let r: CreateLeaseRequest = serde_json::from_value(json!({"description": "deploy"})).unwrap();
    assert_eq!(r.ttl_or_default(), 30);
}

#[test]
fn volume_and_secret_names() {
    assert!(check_volume_name("pg_data").is_ok());
    assert!(check_volume_name("PG-data").is_err());
    assert!(check_volume_name(&"a".repeat(31)).is_err());
    assert!(check_secret_name("DATABASE_URL").is_ok());
    assert!(check_secret_name("1PASSWORD").is_err());
    assert!(check_secret_name("A-B").is_err());
}
