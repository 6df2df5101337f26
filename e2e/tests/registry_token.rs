//! The test registry with bearer tokens (distribution's `auth: token`) and its token
//! server: the challenge → token → retry flow over plain reqwest, both ways of naming
//! the signing key that distribution 2.8 accepts (`kid`, `x5c`), per-user grants, and the
//! statuses clients see when a token does not allow what they ask.
//!
//! What distribution 2.8 answers when a valid token lacks an action (a reader pushing):
//! `401 Unauthorized` (never 403), with
//! `WWW-Authenticate: Bearer realm="…",service="…",scope="repository:NAME:pull,push",error="insufficient_scope"`
//! and the body `{"errors":[{"code":"UNAUTHORIZED",…}]}`. An untrusted, malformed or
//! expired token gets the same 401 with `error="invalid_token"`. The token server itself
//! does not refuse a known user who asks for more than allowed: like Docker Hub, it
//! issues a token with the allowed part (possibly none), so the client's retry gets the
//! registry's `insufficient_scope` 401. Only unknown users and wrong passwords get 401
//! from the token server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Client, Method, StatusCode, Url};
use strata_e2e::pki::TestCa;
use strata_e2e::registry::{
    RegistryAuthMode, RegistryOptions, RegistryUser, TOKEN_ISSUER, TOKEN_SERVICE, TestRegistry,
    TokenAuth,
};
use strata_e2e::token_server::{
    AccessRule, KeyHeader, Scope, TokenSigner, decode_claims, decode_header,
};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

fn digest(data: &[u8]) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA256, data);
    let hex: String = sum.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn header(response: &reqwest::Response, name: impl reqwest::header::AsHeaderName) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The parameters of a `Bearer k="v",k="v"` challenge.
fn challenge_params(challenge: &str) -> Vec<(String, String)> {
    let rest = challenge
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer challenge: {challenge:?}"));
    let mut params = Vec::new();
    let mut rest = rest.trim();
    while let Some((key, after)) = rest.split_once("=\"") {
        let (value, after) = after.split_once('"').unwrap();
        params.push((key.trim().to_string(), value.to_string()));
        rest = after.trim_start_matches(',').trim();
    }
    params
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// What the token server answered.
struct TokenAnswer {
    status: StatusCode,
    challenge: String,
    body: serde_json::Value,
}

/// `GET realm?service=…&scope=…` with Basic credentials, as a Docker client does.
async fn fetch_token(
    client: &Client,
    realm: &str,
    service: &str,
    scopes: &[&str],
    credentials: Option<(&str, &str)>,
) -> TokenAnswer {
    let mut url = Url::parse(realm).unwrap();
    url.query_pairs_mut().append_pair("service", service);
    for scope in scopes {
        url.query_pairs_mut().append_pair("scope", scope);
    }
    let mut builder = client.get(url);
    if let Some((user, password)) = credentials {
        builder = builder.basic_auth(user, Some(password));
    }
    let response = builder.send().await.unwrap();
    let status = response.status();
    let challenge = header(&response, WWW_AUTHENTICATE);
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    TokenAnswer {
        status,
        challenge,
        body,
    }
}

/// The token for `user` (the registry's first user when None) and `scopes`; panics
/// unless the token server answers 200.
async fn get_token(
    client: &Client,
    registry: &TestRegistry,
    user: Option<&RegistryUser>,
    scopes: &[&str],
) -> String {
    let server = registry.token_server().unwrap();
    let (name, password) = match user {
        Some(user) => (user.name.as_str(), user.password.as_str()),
        None => (registry.username(), registry.password()),
    };
    let answer = fetch_token(
        client,
        server.realm(),
        server.service(),
        scopes,
        Some((name, password)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_string()
}

/// A request to the registry with a bearer token.
async fn send(
    client: &Client,
    registry: &TestRegistry,
    method: Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}{path}", registry.url())
    };
    let mut builder = client
        .request(method, url)
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(reqwest::header::ACCEPT, OCI_MANIFEST)
        .body(body);
    if let Some(content_type) = content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    builder.send().await.unwrap()
}

/// Pushes `blob` (monolithic upload) with a token; returns the response of the last step
/// (201 when it worked) or of the first that failed.
async fn push_blob(
    client: &Client,
    registry: &TestRegistry,
    repository: &str,
    token: &str,
    blob: &[u8],
) -> reqwest::Response {
    let response = send(
        client,
        registry,
        Method::POST,
        &format!("/v2/{repository}/blobs/uploads/"),
        token,
        None,
        Vec::new(),
    )
    .await;
    if response.status() != StatusCode::ACCEPTED {
        return response;
    }
    let mut location = Url::parse(registry.url())
        .unwrap()
        .join(&header(&response, "location"))
        .unwrap();
    location
        .query_pairs_mut()
        .append_pair("digest", &digest(blob));
    send(
        client,
        registry,
        Method::PUT,
        location.as_str(),
        token,
        Some("application/octet-stream"),
        blob.to_vec(),
    )
    .await
}

/// Pushes a one-layer OCI artifact as `oras push` would; returns the manifest's status.
async fn push_artifact(
    client: &Client,
    registry: &TestRegistry,
    repository: &str,
    tag: &str,
    token: &str,
    layer: &[u8],
) -> StatusCode {
    for blob in [layer, b"{}".as_slice()] {
        let response = push_blob(client, registry, repository, token, blob).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            registry.log_tail()
        );
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_EMPTY, "digest": digest(b"{}"), "size": 2 },
        "layers": [{
            "mediaType": OCI_LAYER,
            "digest": digest(layer),
            "size": layer.len(),
            "annotations": { "org.opencontainers.image.title": "layer.tar.gz" },
        }],
    });
    send(
        client,
        registry,
        Method::PUT,
        &format!("/v2/{repository}/manifests/{tag}"),
        token,
        Some(OCI_MANIFEST),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .await
    .status()
}

fn writer() -> RegistryUser {
    RegistryUser::new("writer", "writer-password")
}

fn reader() -> RegistryUser {
    RegistryUser::new("reader", "reader-password")
}

/// A token registry with a writer (everything) and a reader (pull from every repository).
async fn writer_and_reader_registry(key_header: KeyHeader) -> TestRegistry {
    let auth = TokenAuth {
        key_header,
        ..TokenAuth::default()
    }
    .grant("reader", vec![AccessRule::pull("*")]);
    TestRegistry::start(RegistryOptions {
        users: vec![writer(), reader()],
        ..RegistryOptions::token(auth)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_challenge_token_retry_flow_works_with_reqwest() {
    let registry = writer_and_reader_registry(KeyHeader::Kid).await;
    assert!(matches!(
        registry
            .token_server()
            .map(|s| s.realm().starts_with("https://127.0.0.1:")),
        Some(true)
    ));
    let client = registry.http_client().unwrap();
    let repository = "strata/spectro-packs/archive/flow";

    // 1. No token: 401 with a Bearer challenge naming the realm, the service and the
    //    scope the request needs.
    let response = client
        .get(format!("{}/v2/{repository}/tags/list", registry.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&response, WWW_AUTHENTICATE);
    let params = challenge_params(&challenge);
    let server = registry.token_server().unwrap();
    assert_eq!(param(&params, "realm"), Some(server.realm()), "{challenge}");
    assert_eq!(
        param(&params, "service"),
        Some(TOKEN_SERVICE),
        "{challenge}"
    );
    assert_eq!(
        param(&params, "scope"),
        Some(format!("repository:{repository}:pull").as_str()),
        "{challenge}"
    );
    // Basic credentials are not a token: the registry itself never takes them.
    let response = client
        .get(format!("{}/v2/", registry.url()))
        .basic_auth("writer", Some("writer-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // 2. The token, for the scope of the challenge plus push.
    let scope = format!("repository:{repository}:pull,push");
    let answer = fetch_token(
        &client,
        param(&params, "realm").unwrap(),
        param(&params, "service").unwrap(),
        &[&scope],
        Some(("writer", "writer-password")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let token = answer.body["token"].as_str().unwrap();
    assert_eq!(answer.body["access_token"].as_str(), Some(token));
    assert_eq!(answer.body["expires_in"].as_u64(), Some(300));
    let jose = decode_header(token).unwrap();
    assert_eq!(jose["alg"], "ES256");
    assert_eq!(
        jose["kid"].as_str(),
        Some(server.signer().key_id().as_str())
    );
    let claims = decode_claims(token).unwrap();
    assert_eq!(claims["iss"], TOKEN_ISSUER);
    assert_eq!(claims["aud"], TOKEN_SERVICE);
    assert_eq!(claims["sub"], "writer");
    assert_eq!(
        claims["access"],
        serde_json::json!([{ "type": "repository", "name": repository, "actions": ["pull", "push"] }])
    );

    // 3. The retry with the token: 200 for /v2/ and the tag list, and a push.
    let response = send(
        &client,
        &registry,
        Method::GET,
        "/v2/",
        token,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "{}", registry.log_tail());
    assert_eq!(
        push_artifact(&client, &registry, repository, "1.0.0", token, b"layer").await,
        StatusCode::CREATED
    );
    let response = send(
        &client,
        &registry,
        Method::GET,
        &format!("/v2/{repository}/tags/list"),
        token,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let tags: serde_json::Value = response.json().await.unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["1.0.0"]));

    // A token for another repository does not open this one.
    let other = get_token(&client, &registry, None, &["repository:elsewhere:pull"]).await;
    let response = send(
        &client,
        &registry,
        Method::GET,
        &format!("/v2/{repository}/tags/list"),
        &other,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        header(&response, WWW_AUTHENTICATE).contains("error=\"insufficient_scope\""),
        "{}",
        header(&response, WWW_AUTHENTICATE)
    );

    // The token server saw the two requests.
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].user.as_deref(), Some("writer"));
    assert_eq!(requests[0].status, 200);
    assert_eq!(requests[0].granted[0].to_string(), scope);
}

#[tokio::test]
async fn tokens_naming_their_key_with_x5c_work_too() {
    let registry = writer_and_reader_registry(KeyHeader::X5c).await;
    let client = registry.http_client().unwrap();
    let repository = "x5c/pack";
    let scope = format!("repository:{repository}:pull,push");
    let token = get_token(&client, &registry, Some(&writer()), &[&scope]).await;
    let jose = decode_header(&token).unwrap();
    assert!(jose.get("kid").is_none(), "{jose}");
    // The chain: the signing certificate, then the CA.
    assert_eq!(jose["x5c"].as_array().map(Vec::len), Some(2), "{jose}");
    assert_eq!(
        push_artifact(&client, &registry, repository, "1", &token, b"x5c layer").await,
        StatusCode::CREATED,
        "{}",
        registry.log_tail()
    );
    // The same registry takes `kid` tokens from the same key as well.
    let server = registry.token_server().unwrap();
    let kid_token = server
        .token_for(
            Some("writer"),
            &[Scope::parse(&format!("repository:{repository}:pull")).unwrap()],
            KeyHeader::Kid,
        )
        .unwrap();
    let response = send(
        &client,
        &registry,
        Method::GET,
        &format!("/v2/{repository}/manifests/1"),
        &kid_token,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK, "{}", registry.log_tail());
}

#[tokio::test]
async fn a_reader_can_pull_but_its_push_is_refused_with_insufficient_scope() {
    let registry = writer_and_reader_registry(KeyHeader::Kid).await;
    let client = registry.http_client().unwrap();
    let repository = "strata/spectro-packs/archive/readonly";
    let scope = format!("repository:{repository}:pull,push");
    let writer_token = get_token(&client, &registry, Some(&writer()), &[&scope]).await;
    assert_eq!(
        push_artifact(
            &client,
            &registry,
            repository,
            "1.0.0",
            &writer_token,
            b"pack"
        )
        .await,
        StatusCode::CREATED
    );

    // The reader asks for pull and push and is granted pull only: a token, not an error.
    let answer = fetch_token(
        &client,
        registry.token_server().unwrap().realm(),
        TOKEN_SERVICE,
        &[&scope],
        Some(("reader", "reader-password")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body["scope"].as_str(),
        Some(format!("repository:{repository}:pull").as_str())
    );
    let reader_token = answer.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        decode_claims(&reader_token).unwrap()["access"][0]["actions"],
        serde_json::json!(["pull"])
    );

    // Pulling works.
    let response = send(
        &client,
        &registry,
        Method::GET,
        &format!("/v2/{repository}/manifests/1.0.0"),
        &reader_token,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = send(
        &client,
        &registry,
        Method::GET,
        &format!("/v2/{repository}/blobs/{}", digest(b"pack")),
        &reader_token,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"pack");

    // Pushing (opening an upload) is refused: 401 with error="insufficient_scope" and the
    // scope it needs, not 403.
    let response = push_blob(&client, &registry, repository, &reader_token, b"nope").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&response, WWW_AUTHENTICATE);
    let params = challenge_params(&challenge);
    assert_eq!(
        param(&params, "error"),
        Some("insufficient_scope"),
        "{challenge}"
    );
    // The actions come from a Go map: their order varies from one answer to the next.
    let needed = Scope::parse(param(&params, "scope").unwrap()).unwrap();
    assert_eq!(needed.name, repository, "{challenge}");
    let mut actions = needed.actions.clone();
    actions.sort();
    assert_eq!(actions, ["pull", "push"], "{challenge}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "{body}");
    // So is replacing a tag, and deleting.
    let response = send(
        &client,
        &registry,
        Method::PUT,
        &format!("/v2/{repository}/manifests/2.0.0"),
        &reader_token,
        Some(OCI_MANIFEST),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = send(
        &client,
        &registry,
        Method::DELETE,
        &format!("/v2/{repository}/blobs/{}", digest(b"pack")),
        &reader_token,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&response, WWW_AUTHENTICATE).contains("insufficient_scope"));

    // The catalog needs registry:catalog:*, which the reader has no rule for.
    let reader_catalog =
        get_token(&client, &registry, Some(&reader()), &["registry:catalog:*"]).await;
    let response = send(
        &client,
        &registry,
        Method::GET,
        "/v2/_catalog",
        &reader_catalog,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let writer_catalog = get_token(&client, &registry, None, &["registry:catalog:*"]).await;
    let response = send(
        &client,
        &registry,
        Method::GET,
        "/v2/_catalog",
        &writer_catalog,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let catalog: serde_json::Value = response.json().await.unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!([repository]));
}

#[tokio::test]
async fn the_token_server_refuses_unknown_users_wrong_passwords_and_anonymous_requests() {
    let registry = writer_and_reader_registry(KeyHeader::Kid).await;
    let client = registry.http_client().unwrap();
    let server = registry.token_server().unwrap();
    let scope = "repository:any:pull";
    for credentials in [
        Some(("nobody", "writer-password")),
        Some(("writer", "wrong")),
        None,
    ] {
        let answer = fetch_token(
            &client,
            server.realm(),
            TOKEN_SERVICE,
            &[scope],
            credentials,
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{credentials:?}: {}",
            answer.body
        );
        assert!(
            answer.challenge.starts_with("Basic "),
            "{}",
            answer.challenge
        );
        assert!(answer.body.get("token").is_none());
    }
    // Another service's tokens are not this server's to issue.
    let answer = fetch_token(
        &client,
        server.realm(),
        "another-service",
        &[scope],
        Some(("writer", "writer-password")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);

    // The OAuth2 form (containerd's POST) works for known users only.
    for (password, expected) in [
        ("writer-password", StatusCode::OK),
        ("wrong", StatusCode::UNAUTHORIZED),
    ] {
        let form = format!(
            "grant_type=password&service={TOKEN_SERVICE}&scope=repository%3Aany%3Apull&\
             client_id=strata-tests&username=writer&password={password}"
        );
        let response = client
            .post(server.realm())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
        if expected == StatusCode::OK {
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(body["access_token"].as_str().is_some(), "{body}");
        }
    }
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 401, 400, 200, 401]);
}

#[tokio::test]
async fn anonymous_access_when_configured() {
    let auth = TokenAuth {
        anonymous: Some(vec![AccessRule::pull("public/*")]),
        ..TokenAuth::default()
    };
    let registry = TestRegistry::start(RegistryOptions::token(auth))
        .await
        .unwrap();
    let client = registry.http_client().unwrap();
    let owner = get_token(
        &client,
        &registry,
        None,
        &["repository:public/pack:pull,push"],
    )
    .await;
    assert_eq!(
        push_artifact(&client, &registry, "public/pack", "1", &owner, b"public").await,
        StatusCode::CREATED
    );
    let server = registry.token_server().unwrap();
    let answer = fetch_token(
        &client,
        server.realm(),
        TOKEN_SERVICE,
        &["repository:public/pack:pull,push"],
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let anonymous = answer.body["token"].as_str().unwrap();
    assert_eq!(decode_claims(anonymous).unwrap()["sub"], "");
    let pull = send(
        &client,
        &registry,
        Method::GET,
        "/v2/public/pack/manifests/1",
        anonymous,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(pull.status(), StatusCode::OK);
    let push = push_blob(&client, &registry, "public/pack", anonymous, b"x").await;
    assert_eq!(push.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_from_an_untrusted_key_are_invalid() {
    let registry = writer_and_reader_registry(KeyHeader::Kid).await;
    let client = registry.http_client().unwrap();

    // A key certified by another CA, in both header styles.
    let dir = tempfile::tempdir().unwrap();
    let foreign_ca = TestCa::new(dir.path(), "foreign").unwrap();
    let foreign = foreign_ca
        .issue(
            "foreign-signer",
            strata_e2e::pki::CertUse::Client {
                user: TOKEN_ISSUER,
                groups: &[],
            },
        )
        .unwrap();
    let signer = TokenSigner::from_pem(
        &foreign.key_pem,
        &format!("{}{}", foreign.cert_pem, foreign_ca.cert_pem),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": "writer", "aud": TOKEN_SERVICE,
        "exp": now + 300, "nbf": now, "iat": now, "jti": "foreign",
        "access": [{ "type": "repository", "name": "any", "actions": ["pull"] }],
    });
    for key_header in [KeyHeader::Kid, KeyHeader::X5c] {
        let forged = signer.sign(key_header, &claims).unwrap();
        let response = send(
            &client,
            &registry,
            Method::GET,
            "/v2/any/tags/list",
            &forged,
            None,
            Vec::new(),
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{key_header:?}"
        );
        assert!(
            header(&response, WWW_AUTHENTICATE).contains("error=\"invalid_token\""),
            "{key_header:?}: {}",
            header(&response, WWW_AUTHENTICATE)
        );
    }

    // The trusted key, but an audience array instead of a string: distribution 2.8 cannot
    // parse it (malformed token).
    let trusted = registry.token_server().unwrap().signer();
    let mut array_audience = claims.clone();
    array_audience["aud"] = serde_json::json!([TOKEN_SERVICE]);
    let token = trusted.sign(KeyHeader::Kid, &array_audience).unwrap();
    let response = send(
        &client,
        &registry,
        Method::GET,
        "/v2/any/tags/list",
        &token,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&response, WWW_AUTHENTICATE).contains("invalid_token"));

    // Expired (beyond distribution's 60 s of leeway).
    let mut expired = claims.clone();
    expired["exp"] = (now - 120).into();
    let token = trusted.sign(KeyHeader::Kid, &expired).unwrap();
    let response = send(
        &client,
        &registry,
        Method::GET,
        "/v2/any/tags/list",
        &token,
        None,
        Vec::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // And the control: the same claims, signed by the trusted key, pass.
    let token = trusted.sign(KeyHeader::Kid, &claims).unwrap();
    let response = send(
        &client,
        &registry,
        Method::GET,
        "/v2/any/tags/list",
        &token,
        None,
        Vec::new(),
    )
    .await;
    // Authorized; the repository does not exist.
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_auth_over_plain_http() {
    let registry = TestRegistry::start(RegistryOptions {
        tls: false,
        ..RegistryOptions::token(TokenAuth::default())
    })
    .await
    .unwrap();
    assert!(matches!(
        RegistryOptions::token(TokenAuth::default()).auth,
        RegistryAuthMode::Token(_)
    ));
    assert!(registry.url().starts_with("http://"));
    let server = registry.token_server().unwrap();
    assert!(server.realm().starts_with("http://"), "{}", server.realm());
    let client = registry.http_client().unwrap();
    let token = get_token(
        &client,
        &registry,
        None,
        &["repository:plain/pack:pull,push"],
    )
    .await;
    assert_eq!(
        push_artifact(&client, &registry, "plain/pack", "1", &token, b"plain").await,
        StatusCode::CREATED
    );
}

// ---- Strata's pack registry client against a bearer-token registry ----

mod client {
    use std::path::{Path, PathBuf};

    use strata_e2e::registry::{RegistryOptions, RegistryUser, TestRegistry, TokenAuth};
    use strata_e2e::token_server::{AccessRule, KeyHeader};
    use strata_shared::pack::Pack;
    use strata_shared::registry::client::{self as pack_client, PackRegistryClient, RegistryError};
    use strata_shared::registry::credentials::Credentials;

    fn sample_pack(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/samples/packs")
            .join(name)
    }

    fn load(dir: &Path) -> Pack {
        let (pack, findings) = Pack::load(dir);
        pack.unwrap_or_else(|| panic!("{} is not a valid pack: {findings:?}", dir.display()))
    }

    fn client_for(registry: &TestRegistry, user: &str, password: &str) -> PackRegistryClient {
        let address = format!("{}/strata", registry.host()).parse().unwrap();
        PackRegistryClient::new(
            address,
            pack_client::RegistryOptions {
                ca_pem: registry.ca_pem().map(str::to_owned),
                credentials: Credentials::Basic {
                    username: user.to_owned(),
                    password: password.to_owned(),
                },
                ..pack_client::RegistryOptions::default()
            },
        )
        .unwrap()
    }

    async fn registry(key_header: KeyHeader) -> TestRegistry {
        let auth = TokenAuth {
            key_header,
            ..TokenAuth::default()
        }
        .grant("reader", vec![AccessRule::pull("*")]);
        TestRegistry::start(RegistryOptions {
            users: vec![
                RegistryUser::new("writer", "writer-password"),
                RegistryUser::new("reader", "reader-password"),
            ],
            ..RegistryOptions::token(auth)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn pack_registry_client_pushes_resolves_and_pulls_with_bearer_tokens() {
        for key_header in [KeyHeader::Kid, KeyHeader::X5c] {
            let registry = registry(key_header).await;
            let writer = client_for(&registry, "writer", "writer-password");
            let pack = load(&sample_pack("istio"));
            let pushed = writer.push(&pack, false).await.unwrap();
            assert_eq!(pushed.descriptor.file_name, "istio-1.6.2.tar.gz");
            assert_eq!(
                pushed.descriptor.content_digest,
                Some(pack.digest().unwrap())
            );
            assert_eq!(
                pushed.descriptor.layer_digest,
                strata_shared::pack::archive::sha256_digest(&pack.archive().unwrap())
            );
            assert!(matches!(
                writer.push(&pack, false).await,
                Err(RegistryError::Exists { .. })
            ));
            assert_eq!(writer.versions("istio").await.unwrap(), ["1.6.2"]);
            let resolved = writer.resolve("istio", "1.6.2").await.unwrap();
            // resolve reads no layer: everything but the content digest.
            assert_eq!(
                resolved,
                strata_shared::registry::client::PackDescriptor {
                    content_digest: None,
                    ..pushed.descriptor.clone()
                }
            );

            // The reader pulls and gets a valid pack, byte for byte the same archive.
            let reader = client_for(&registry, "reader", "reader-password");
            let (_, manifest) = reader.inspect("istio", "1.6.2", None).await.unwrap();
            assert_eq!(manifest.version, "1.6.2");
            let dest = tempfile::tempdir().unwrap();
            let into = dest.path().join("istio");
            let pulled = reader.pull("istio", "1.6.2", &into, None).await.unwrap();
            assert_eq!(
                pulled.descriptor.layer_digest,
                pushed.descriptor.layer_digest
            );
            assert_eq!(pulled.descriptor, pushed.descriptor);
            assert_eq!(pulled.content_digest, pack.digest().unwrap());
            let pulled_pack = load(&into);
            assert_eq!(pulled_pack.digest().unwrap(), pack.digest().unwrap());

            // Every token request succeeded, and tokens were asked for with the scopes of
            // the operations (pull for reading, pull+push for the upload).
            let server = registry.token_server().unwrap();
            let requests = server.requests();
            assert!(requests.iter().all(|r| r.status == 200), "{requests:?}");
            assert!(
                requests.iter().any(|r| r.user.as_deref() == Some("writer")
                    && r.granted
                        .iter()
                        .any(|s| s.actions.iter().any(|a| a == "push"))),
                "{requests:?}"
            );
        }
    }

    /// `list()` reads `/v2/_catalog`, which distribution guards with the scope
    /// `registry:catalog:*`. A client that asks for a repository scope instead (oci-client
    /// 0.18's `catalog()` asks for `repository:<reference's repository>:pull`) gets 401
    /// insufficient_scope from every token registry.
    #[tokio::test]
    async fn list_works_against_a_token_registry() {
        let registry = registry(KeyHeader::Kid).await;
        let writer = client_for(&registry, "writer", "writer-password");
        writer
            .push(&load(&sample_pack("istio")), false)
            .await
            .unwrap();
        let listed = writer.list().await;
        let scopes: Vec<String> = registry
            .token_server()
            .unwrap()
            .requests()
            .iter()
            .flat_map(|r| r.requested.iter().map(ToString::to_string))
            .collect();
        let listed = listed.unwrap_or_else(|error| {
            panic!(
                "list() failed against a token registry: {error:?}; scopes the client asked \
                 the token server for: {scopes:?} (the catalog needs registry:catalog:*)"
            )
        });
        assert_eq!(
            listed.get("istio").map(Vec::as_slice),
            Some(&["1.6.2".to_owned()][..])
        );
    }

    #[tokio::test]
    async fn an_unknown_user_gets_unauthorized() {
        let registry = registry(KeyHeader::Kid).await;
        let nobody = client_for(&registry, "nobody", "nothing");
        let error = nobody.resolve("istio", "1.6.2").await.unwrap_err();
        assert!(
            matches!(&error, RegistryError::Unauthorized { username: Some(user), .. } if user == "nobody"),
            "{error:?}"
        );
        let error = nobody
            .push(&load(&sample_pack("istio")), false)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, RegistryError::Unauthorized { .. }),
            "{error:?}"
        );
        // The token server refused it; the registry never saw a token.
        let requests = registry.token_server().unwrap().requests();
        assert!(
            !requests.is_empty() && requests.iter().all(|r| r.status == 401),
            "{requests:?}"
        );
    }

    /// The reader's credentials are right (the token server issues it a token) but the
    /// token only grants pull; distribution refuses the upload with 401
    /// insufficient_scope. That is "may not push", not "wrong credentials".
    #[tokio::test]
    async fn a_reader_pushing_gets_forbidden_not_unauthorized() {
        let registry = registry(KeyHeader::Kid).await;
        let writer = client_for(&registry, "writer", "writer-password");
        let pack = load(&sample_pack("istio"));
        writer.push(&pack, false).await.unwrap();

        let reader = client_for(&registry, "reader", "reader-password");
        // Reading works with the same credentials…
        reader.resolve("istio", "1.6.2").await.unwrap();
        // …pushing does not.
        let error = reader.push(&pack, true).await.unwrap_err();
        let requests = registry.token_server().unwrap().requests();
        assert!(
            requests.iter().any(|r| r.user.as_deref() == Some("reader")
                && r.status == 200
                && r.requested
                    .iter()
                    .any(|s| s.actions.iter().any(|a| a == "push"))
                && r.granted.iter().all(|s| s.actions == ["pull"])),
            "{requests:?}"
        );
        assert_reader_push_error(&error);
    }

    /// A reader's push must not be reported as wrong credentials: they are right, the
    /// user just may not push.
    fn assert_reader_push_error(error: &RegistryError) {
        assert!(
            matches!(error, RegistryError::Forbidden { username: Some(user), .. } if user == "reader"),
            "a reader's push should be reported as Forbidden (the credentials are fine; \
             the token lacks push), got {error:?}: {error}"
        );
    }
}
