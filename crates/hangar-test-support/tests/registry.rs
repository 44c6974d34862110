//! The registry starts on loopback, accepts pushes and serves them back.

use hangar_test_support::{ImageBuilder, Registry};

async fn get(url: &str, auth: Option<(&str, &str)>) -> reqwest::Response {
    let request = reqwest::Client::new()
        .get(url)
        .header("Accept", "application/vnd.oci.image.manifest.v1+json");
    let request = match auth {
        Some((user, password)) => request.basic_auth(user, Some(password)),
        None => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn pushed_manifest_and_blobs_are_served() {
    let registry = Registry::start().unwrap();
    let image = ImageBuilder::new().file("/hello", "world", 0o644).build();
    let digest = registry.push(&image, "demo/app:v1").await.unwrap();
    assert_eq!(digest, image.manifest.digest);

    let base = format!("http://{}", registry.host());
    let response = get(&format!("{base}/v2/demo/app/manifests/v1"), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["docker-content-digest"], digest.as_str());
    assert_eq!(
        response.bytes().await.unwrap(),
        image.manifest.data.as_slice()
    );

    let layer = &image.layers[2].blob;
    let response = get(&format!("{base}/v2/demo/app/blobs/{}", layer.digest), None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), layer.data.as_slice());
    assert!(registry.blob_path(&layer.digest).is_file());

    // Pushing again (blobs already there) is fine.
    registry.push(&image, "demo/app:v2").await.unwrap();
    let missing = get(&format!("{base}/v2/demo/app/manifests/nope"), None).await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn basic_auth_registry_requires_credentials() {
    let registry = Registry::start_with_basic_auth("hangar", "s3cret").unwrap();
    let image = ImageBuilder::new().build();
    registry.push(&image, "private:latest").await.unwrap();
    let url = format!("http://{}/v2/private/manifests/latest", registry.host());
    assert_eq!(get(&url, None).await.status(), 401);
    assert_eq!(get(&url, Some(("hangar", "wrong"))).await.status(), 401);
    assert_eq!(get(&url, Some(("hangar", "s3cret"))).await.status(), 200);
}

#[test]
fn registry_process_ends_on_drop() {
    let registry = Registry::start().unwrap();
    let addr = registry.addr();
    drop(registry);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still listening on {addr}"
    );
}

#[tokio::test]
async fn token_auth_registry_takes_bearer_tokens() {
    let registry = Registry::start_with_token_auth("hangar", "s3cret").unwrap();
    let image = ImageBuilder::new().build();
    registry.push(&image, "private/app:v1").await.unwrap();
    let url = format!("http://{}/v2/private/app/manifests/v1", registry.host());

    let anonymous = get(&url, None).await;
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer realm=\"http://127.0.0.1:"),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"repository:private/app:pull\""),
        "{challenge}"
    );

    let client = reqwest::Client::new();
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let token = registry.token("private/app", &["pull"]).unwrap();
    let response = client
        .get(&url)
        .header("Accept", accept)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.unwrap(),
        image.manifest.data.as_slice()
    );

    // A token for another repository does not open this one.
    let other = registry.token("other/app", &["pull"]).unwrap();
    let response = client
        .get(&url)
        .header("Accept", accept)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // The realm hands out tokens for the right credentials only.
    let realm = challenge
        .split("realm=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let token_url =
        format!("{realm}?service=hangar-test-registry&scope=repository:private/app:pull");
    let refused = client
        .get(&token_url)
        .basic_auth("hangar", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let granted: serde_json::Value = client
        .get(&token_url)
        .basic_auth("hangar", Some("s3cret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = granted["token"].as_str().unwrap();
    let response = client
        .get(&url)
        .header("Accept", accept)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
