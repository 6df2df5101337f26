//! The test registry: TLS from its own CA, htpasswd users, pushing and pulling an OCI
//! artifact through the distribution API, plain HTTP, several instances at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Client, StatusCode, Url};
use strata_e2e::pki::TestCa;
use strata_e2e::registry::{
    RegistryError, RegistryOptions, RegistryUser, TestRegistry, client_trusting,
};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const DIGEST_HEADER: &str = "docker-content-digest";

fn digest(data: &[u8]) -> String {
    // sha2 through strata-shared: the digest is computed here, not taken from the registry.
    strata_shared::pack::archive::sha256_digest(data)
}

fn header(response: &reqwest::Response, name: impl reqwest::header::AsHeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// An authenticated request to `path` (starting with `/v2/`).
fn request(
    client: &Client,
    registry: &TestRegistry,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    client
        .request(method, format!("{}{path}", registry.url()))
        .basic_auth(registry.username(), Some(registry.password()))
}

/// Monolithic blob upload: POST opens an upload session, PUT with `?digest=` sends the
/// whole blob and closes it. Returns the digest.
async fn push_blob(
    client: &Client,
    registry: &TestRegistry,
    repository: &str,
    blob: &[u8],
) -> String {
    let blob_digest = digest(blob);
    let response = request(
        client,
        registry,
        reqwest::Method::POST,
        &format!("/v2/{repository}/blobs/uploads/"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "{}",
        registry.log_tail()
    );
    // distribution answers an absolute URL; relative ones are resolved like a client would.
    let mut location = Url::parse(registry.url())
        .unwrap()
        .join(&header(&response, "location"))
        .unwrap();
    location
        .query_pairs_mut()
        .append_pair("digest", &blob_digest);
    let response = client
        .put(location)
        .basic_auth(registry.username(), Some(registry.password()))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        registry.log_tail()
    );
    assert_eq!(header(&response, DIGEST_HEADER), blob_digest);
    blob_digest
}

async fn get_bytes(
    client: &Client,
    registry: &TestRegistry,
    path: &str,
    accept: Option<&str>,
) -> (StatusCode, String, Vec<u8>) {
    let mut builder = request(client, registry, reqwest::Method::GET, path);
    if let Some(accept) = accept {
        builder = builder.header(reqwest::header::ACCEPT, accept);
    }
    let response = builder.send().await.unwrap();
    let status = response.status();
    let digest_header = header(&response, DIGEST_HEADER);
    (
        status,
        digest_header,
        response.bytes().await.unwrap().to_vec(),
    )
}

/// Status of `GET /v2/` with the given credentials (None: anonymous).
async fn v2_status(
    client: &Client,
    registry: &TestRegistry,
    credentials: Option<(&str, &str)>,
) -> StatusCode {
    let mut builder = client.get(format!("{}/v2/", registry.url()));
    if let Some((user, password)) = credentials {
        builder = builder.basic_auth(user, Some(password));
    }
    builder.send().await.unwrap().status()
}

/// Every message in an error's source chain, for asserting on the cause reqwest wraps.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(" / ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn tls_registry_with_basic_auth_stores_and_serves_an_oci_artifact() {
    let registry = TestRegistry::start(RegistryOptions::default())
        .await
        .unwrap();
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    assert_eq!(registry.url(), format!("https://{}", registry.host()));
    assert_eq!(registry.username(), "strata");
    assert_eq!(registry.password().len(), 32);
    assert!(registry.ca_pem().unwrap().contains("BEGIN CERTIFICATE"));
    assert!(registry.ca_file().unwrap().is_file());
    let docker_config: serde_json::Value =
        serde_json::from_str(&registry.docker_config_json()).unwrap();
    assert_eq!(
        docker_config["auths"][registry.host()]["username"],
        "strata"
    );
    let client = registry.http_client().unwrap();

    // Authentication.
    let anonymous = client
        .get(format!("{}/v2/", registry.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&anonymous, WWW_AUTHENTICATE).starts_with("Basic realm="));
    let wrong = v2_status(
        &client,
        &registry,
        Some((registry.username(), "not-the-password")),
    )
    .await;
    assert_eq!(wrong, StatusCode::UNAUTHORIZED);
    let unknown = v2_status(&client, &registry, Some(("nobody", registry.password()))).await;
    assert_eq!(unknown, StatusCode::UNAUTHORIZED);
    let right = v2_status(
        &client,
        &registry,
        Some((registry.username(), registry.password())),
    )
    .await;
    assert_eq!(right, StatusCode::OK);

    // Push: a layer, the empty config, and a manifest referencing both, tagged v1.
    let repository = "strata/test-artifact";
    let layer: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let layer_digest = push_blob(&client, &registry, repository, &layer).await;
    let config_digest = push_blob(&client, &registry, repository, b"{}").await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_EMPTY, "digest": config_digest, "size": 2 },
        "layers": [{ "mediaType": OCI_LAYER, "digest": layer_digest, "size": layer.len() }],
        "annotations": { "org.opencontainers.image.title": "strata e2e" },
    }))
    .unwrap();
    let manifest_digest = digest(&manifest);
    let response = request(
        &client,
        &registry,
        reqwest::Method::PUT,
        &format!("/v2/{repository}/manifests/v1"),
    )
    .header(CONTENT_TYPE, OCI_MANIFEST)
    .body(manifest.clone())
    .send()
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        registry.log_tail()
    );
    assert_eq!(header(&response, DIGEST_HEADER), manifest_digest);

    // Pull the manifest back by tag and by digest: byte-identical, digest as computed.
    let manifest_path = |reference: &str| format!("/v2/{repository}/manifests/{reference}");
    for reference in ["v1", manifest_digest.as_str()] {
        let (status, digest_header, body) = get_bytes(
            &client,
            &registry,
            &manifest_path(reference),
            Some(OCI_MANIFEST),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "manifest {reference}");
        assert_eq!(body, manifest, "manifest {reference}");
        assert_eq!(digest(&body), manifest_digest);
        assert_eq!(digest_header, manifest_digest);
    }
    let response = request(
        &client,
        &registry,
        reqwest::Method::HEAD,
        &manifest_path("v1"),
    )
    .header(reqwest::header::ACCEPT, OCI_MANIFEST)
    .send()
    .await
    .unwrap();
    assert_eq!(header(&response, CONTENT_TYPE), OCI_MANIFEST);

    // And the blobs.
    for (expected, blob_digest) in [(&layer[..], &layer_digest), (&b"{}"[..], &config_digest)] {
        let (status, digest_header, body) = get_bytes(
            &client,
            &registry,
            &format!("/v2/{repository}/blobs/{blob_digest}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, expected);
        assert_eq!(&digest(&body), blob_digest);
        assert_eq!(&digest_header, blob_digest);
    }

    // Tags: a second tag on the same manifest.
    let response = request(
        &client,
        &registry,
        reqwest::Method::PUT,
        &format!("/v2/{repository}/manifests/v2"),
    )
    .header(CONTENT_TYPE, OCI_MANIFEST)
    .body(manifest.clone())
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let (status, _, body) = get_bytes(
        &client,
        &registry,
        &format!("/v2/{repository}/tags/list"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut tags: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(tags["name"], repository);
    let mut tags: Vec<String> = serde_json::from_value(tags["tags"].take()).unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);

    // Deletion is enabled: deleting the manifest by digest removes it and its tags.
    let response = request(
        &client,
        &registry,
        reqwest::Method::DELETE,
        &manifest_path(&manifest_digest),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "{}",
        registry.log_tail()
    );
    let (status, _, _) = get_bytes(
        &client,
        &registry,
        &manifest_path(&manifest_digest),
        Some(OCI_MANIFEST),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) =
        get_bytes(&client, &registry, &manifest_path("v1"), Some(OCI_MANIFEST)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Anonymous reads of content are refused too, not just /v2/.
    let anonymous = client
        .get(format!(
            "{}/v2/{repository}/blobs/{layer_digest}",
            registry.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let log = std::fs::read_to_string(registry.log_path()).unwrap();
    assert!(log.contains("listening on"), "{log}");
}

#[tokio::test]
async fn client_that_does_not_trust_the_ca_fails_the_tls_handshake() {
    let registry = TestRegistry::start(RegistryOptions::default())
        .await
        .unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = TestCa::new(other_dir.path(), "some other CA").unwrap();
    let client = client_trusting(&other_ca.cert_pem).unwrap();

    let error = client
        .get(format!("{}/v2/", registry.url()))
        .send()
        .await
        .expect_err("a registry signed by an untrusted CA was accepted");
    assert!(error.is_connect(), "{error:?}");
    let chain = error_chain(&error);
    assert!(
        chain.to_lowercase().contains("certificate"),
        "not a certificate error: {chain}"
    );

    // The same registry with the right CA still answers (the failure was the trust).
    let trusted = registry.http_client().unwrap();
    assert_eq!(
        v2_status(&trusted, &registry, None).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn plain_http_registry_works() {
    let registry = TestRegistry::start(RegistryOptions::plain_http())
        .await
        .unwrap();
    assert!(registry.url().starts_with("http://127.0.0.1:"));
    assert!(registry.ca_pem().is_none());
    assert!(registry.ca_file().is_none());
    let client = registry.http_client().unwrap();

    assert_eq!(
        v2_status(&client, &registry, None).await,
        StatusCode::UNAUTHORIZED
    );
    let credentials = Some((registry.username(), registry.password()));
    assert_eq!(
        v2_status(&client, &registry, credentials).await,
        StatusCode::OK
    );

    let blob = b"plain http blob".to_vec();
    let blob_digest = push_blob(&client, &registry, "plain/repo", &blob).await;
    let (status, _, body) = get_bytes(
        &client,
        &registry,
        &format!("/v2/plain/repo/blobs/{blob_digest}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, blob);
}

#[tokio::test]
async fn two_registries_run_at_once_with_their_own_users_and_cas() {
    let options_a = RegistryOptions {
        users: vec![
            RegistryUser::new("alice", "alice-password"),
            RegistryUser::new("bob", "bob-password"),
        ],
        ..RegistryOptions::default()
    };
    let (a, b) = tokio::join!(
        TestRegistry::start(options_a),
        TestRegistry::start(RegistryOptions::default())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.host(), b.host());
    assert_ne!(a.ca_pem(), b.ca_pem());
    assert_ne!(a.password(), b.password());
    assert_eq!(a.username(), "alice");

    let client_a = a.http_client().unwrap();
    let client_b = b.http_client().unwrap();
    for user in a.users() {
        let status = v2_status(&client_a, &a, Some((&user.name, &user.password))).await;
        assert_eq!(status, StatusCode::OK, "user {}", user.name);
    }
    assert_eq!(
        v2_status(&client_b, &b, Some((b.username(), b.password()))).await,
        StatusCode::OK
    );
    // Users are per registry.
    assert_eq!(
        v2_status(&client_b, &b, Some(("alice", "alice-password"))).await,
        StatusCode::UNAUTHORIZED
    );
    // CAs are per registry.
    assert!(
        client_a
            .get(format!("{}/v2/", b.url()))
            .send()
            .await
            .is_err()
    );

    // Storage is per registry.
    let blob_digest = push_blob(&client_a, &a, "only/in-a", b"a's blob").await;
    let path = format!("/v2/only/in-a/blobs/{blob_digest}");
    assert_eq!(
        get_bytes(&client_a, &a, &path, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get_bytes(&client_b, &b, &path, None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn stop_and_drop_kill_and_reap_the_process() {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;

    let stopped = TestRegistry::start(RegistryOptions::plain_http())
        .await
        .unwrap();
    let pid = Pid::from_raw(i32::try_from(stopped.pid().unwrap()).unwrap());
    let dir = stopped.dir().to_path_buf();
    stopped.stop().unwrap();
    // Reaped: the pid no longer exists (a zombie would still accept signal 0).
    assert_eq!(kill(pid, None), Err(nix::errno::Errno::ESRCH));
    assert!(!dir.exists(), "the temporary folder outlived the registry");

    let dropped = TestRegistry::start(RegistryOptions::plain_http())
        .await
        .unwrap();
    let pid = Pid::from_raw(i32::try_from(dropped.pid().unwrap()).unwrap());
    drop(dropped);
    assert_eq!(kill(pid, None), Err(nix::errno::Errno::ESRCH));
}

#[tokio::test]
async fn start_refuses_unusable_users() {
    let no_users = RegistryOptions {
        users: Vec::new(),
        ..RegistryOptions::default()
    };
    assert!(matches!(
        TestRegistry::start(no_users).await,
        Err(RegistryError::NoUsers)
    ));
    let colon = RegistryOptions {
        users: vec![RegistryUser::new("a:b", "x")],
        ..RegistryOptions::default()
    };
    assert!(matches!(
        TestRegistry::start(colon).await,
        Err(RegistryError::InvalidUserName { .. })
    ));
}
