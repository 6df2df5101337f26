#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;

#[tokio::test]
async fn request_failures_from_real_connections() {
    // Connection refused: a port that was just free. Transient, so retried, then
    // Unreachable.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let address: RegistryAddress = format!("127.0.0.1:{port}").parse().unwrap();
    let no_wait = RetryPolicy {
        attempts: 2,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };
    let client = PackRegistryClient::new(
        address,
        RegistryOptions {
            plain_http: true,
            retry: no_wait.clone(),
            ..RegistryOptions::default()
        },
    )
    .unwrap();
    let error = client.resolve("p", "1.0").await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { attempts: 2, .. }),
        "{error:?}"
    );

    // TLS against something that is not TLS: a certificate/protocol failure, which
    // retrying cannot fix (one attempt).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let address: RegistryAddress = format!("127.0.0.1:{port}").parse().unwrap();
    let client = PackRegistryClient::new(
        address,
        RegistryOptions {
            retry: no_wait,
            ..RegistryOptions::default()
        },
    )
    .unwrap();
    let error = client.resolve("p", "1.0").await.unwrap_err();
    assert!(
        matches!(error, RegistryError::Unreachable { attempts: 1, .. }),
        "{error:?}"
    );
    server.abort();
}

#[test]
fn refuses_credentials_over_plain_http() {
    let error = PackRegistryClient::new(
        "registry.example:5000".parse().unwrap(),
        RegistryOptions {
            plain_http: true,
            credentials: Credentials::Basic {
                username: "u".into(),
                password: "secret".into(),
            },
            ..RegistryOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(error, RegistryError::CredentialsOverPlainHttp { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("--plain-http"), "{message}");
    assert!(message.contains("spec.plainHttp"), "{message}");
    assert!(!message.contains("secret"), "{message}");
    // Anonymous over plain HTTP is fine.
    PackRegistryClient::new(
        "registry.example:5000".parse().unwrap(),
        RegistryOptions {
            plain_http: true,
            ..RegistryOptions::default()
        },
    )
    .unwrap();
}

#[test]
fn limit_errors_name_the_registry_the_reference_and_the_limit() {
    let declared = RegistryError::ResponseTooLarge {
        registry: "h:1".into(),
        reference: "h:1/spectro-packs/archive/p:1".into(),
        what: "manifest",
        size: 5_000_000,
        declared: true,
        limit: 4_194_304,
    };
    assert_eq!(
        declared.to_string(),
        "h:1 sent a manifest for h:1/spectro-packs/archive/p:1 of 5000000 bytes, over \
         the 4194304-byte limit for a manifest"
    );
    let grown = RegistryError::ResponseTooLarge {
        registry: "h:1".into(),
        reference: "r".into(),
        what: "tag list page",
        size: 4_194_305,
        declared: false,
        limit: 4_194_304,
    };
    assert!(
        grown.to_string().contains("of more than 4194304 bytes"),
        "{grown}"
    );
    let late = RegistryError::DeadlineExceeded {
        registry: "h:1".into(),
        reference: "h:1/spectro-packs/archive/p:1".into(),
        deadline: Duration::from_secs(300),
    };
    assert_eq!(
        late.to_string(),
        "fetching h:1/spectro-packs/archive/p:1 from h:1 took longer than 300 s (the \
         deadline for one pack): the registry is too slow or stalled"
    );
}

#[test]
fn refuses_a_ca_that_is_not_pem() {
    let error = PackRegistryClient::new(
        "h:1".parse().unwrap(),
        RegistryOptions {
            ca_pem: Some("not a certificate".into()),
            ..RegistryOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(error, RegistryError::Setup { .. }), "{error}");
}

#[test]
fn error_messages_carry_their_context() {
    let unauthorized = RegistryError::Unauthorized {
        registry: "h:1".into(),
        username: Some("u".into()),
    };
    assert_eq!(
        unauthorized.to_string(),
        "wrong or missing credentials for h:1 (user \"u\")"
    );
    let forbidden = RegistryError::Forbidden {
        registry: "h:1".into(),
        repository: "spectro-packs/archive/p".into(),
        username: Some("u".into()),
    };
    assert_eq!(
        forbidden.to_string(),
        "user \"u\" may not access spectro-packs/archive/p on h:1: the credentials are valid, the permission is missing"
    );
    let unknown = RegistryError::UnknownVersion {
        registry: "h:1".into(),
        name: "p".into(),
        version: "9".into(),
        available: vec!["1.0".into(), "2.0".into()],
    };
    assert!(unknown.to_string().ends_with("versions there: 1.0, 2.0"));
}

#[test]
fn retry_policy_default() {
    let policy = RetryPolicy::default();
    assert_eq!(policy.attempts, 4);
    assert_eq!(policy.min_delay, Duration::from_millis(200));
    assert_eq!(policy.max_delay, Duration::from_secs(2));
    let options = RegistryOptions::default();
    assert_eq!(options.max_pack_bytes, 1 << 30);
    assert_eq!(options.fetch_deadline, Duration::from_secs(300));
    assert_eq!(options.request_timeout, Duration::from_secs(30));
    assert_eq!(options.limits.manifest_bytes, 4 << 20);
}
