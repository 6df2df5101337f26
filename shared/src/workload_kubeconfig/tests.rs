//! Tests of reading workload kubeconfigs: CAPI's form is accepted and builds a kube
//! client; every form that would run code, read files, weaken TLS or redirect traffic is
//! refused by name; findings never show secrets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};

use super::document::without_values;
use super::*;

const SERVER: &str = "https://10.0.0.5:6443";
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2VuLXBheWxvYWQ.c2lnbmF0dXJlLWJ5dGVz";

/// A 2048-bit RSA key in both encodings, because kubeadm (and so CAPI) writes client keys
/// as PKCS#1 `RSA PRIVATE KEY`, which rcgen cannot produce with ring.
const RSA_KEY_PKCS1: &str = include_str!("testdata/rsa_client_key_pkcs1.pem");
const RSA_KEY_PKCS8: &str = include_str!("testdata/rsa_client_key_pkcs8.pem");

struct Pki {
    ca_pem: String,
    ca_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

/// A cluster CA and an admin client certificate signed by it, as kubeadm makes them.
fn pki_for(client_key: &KeyPair, key_pem: String) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kubernetes");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "kubernetes-admin");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(client_key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        ca_der: ca.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem,
    }
}

fn pki() -> Pki {
    let key = KeyPair::generate().unwrap();
    let key_pem = key.serialize_pem();
    pki_for(&key, key_pem)
}

fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

/// The user lines CAPI writes: the client certificate and key, inline.
fn capi_user(pki: &Pki) -> String {
    format!(
        "    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&pki.cert_pem),
        b64(&pki.key_pem)
    )
}

fn token_user(token: &str) -> String {
    format!("    token: {token}\n")
}

/// A kubeconfig laid out as CAPI writes it; `cluster_extra` goes into the cluster and
/// `user` is the user's body, both as lines indented by four spaces.
fn kubeconfig(pki: &Pki, cluster_extra: &str, user: &str) -> String {
    format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {SERVER}
{cluster_extra}  name: site-a
contexts:
- context:
    cluster: site-a
    user: site-a-admin
  name: site-a-admin@site-a
current-context: site-a-admin@site-a
kind: Config
preferences: {{}}
users:
- name: site-a-admin
  user:
{user}",
        ca = b64(&pki.ca_pem),
    )
}

fn capi_kubeconfig(pki: &Pki) -> String {
    kubeconfig(pki, "", &capi_user(pki))
}

fn refused(text: &str) -> UnsafeKubeconfig {
    match parse(text) {
        Ok(access) => panic!("accepted {access:?} from:\n{text}"),
        Err(error) => {
            assert_eq!(error.reason(), "UnsafeKubeconfig");
            error
        }
    }
}

fn at(path: &str) -> String {
    path.to_string()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn timeouts() -> ClientTimeouts {
    ClientTimeouts {
        connect: Duration::from_secs(3),
        read: Duration::from_secs(5),
        write: Duration::from_secs(7),
    }
}

#[test]
fn a_capi_kubeconfig_is_read_as_data() {
    let pki = pki();
    let access = parse(&capi_kubeconfig(&pki)).unwrap();
    assert_eq!(access.server(), SERVER);
    assert_eq!(access.ca_pem(), pki.ca_pem.as_bytes());
    assert_eq!(
        access.credential(),
        &WorkloadCredential::ClientCertificate {
            cert_pem: pki.cert_pem.clone().into_bytes(),
            key_pem: pki.key_pem.clone().into_bytes(),
        }
    );
    assert_eq!(access.ca_fingerprint(), sha256_hex(&pki.ca_der));
}

#[test]
fn the_ca_fingerprint_is_of_the_der_so_pem_layout_does_not_change_it() {
    let pki = pki();
    let plain = parse(&capi_kubeconfig(&pki)).unwrap();
    let relaid_pem = format!(
        "a comment before the certificate\r\n{}",
        pki.ca_pem.replace('\n', "\r\n")
    );
    let relaid = Pki {
        ca_pem: relaid_pem,
        ..pki
    };
    let other = parse(&capi_kubeconfig(&relaid)).unwrap();
    assert_ne!(plain.ca_pem(), other.ca_pem());
    assert_eq!(plain.ca_fingerprint(), other.ca_fingerprint());
    assert_ne!(
        plain.ca_fingerprint(),
        parse(&capi_kubeconfig(&self::pki()))
            .unwrap()
            .ca_fingerprint()
    );
}

#[test]
fn the_server_is_normalised() {
    let pki = pki();
    let cases = [
        (
            "https://Site-A.Example:6443/",
            "https://site-a.example:6443",
        ),
        ("https://10.0.0.5:443", "https://10.0.0.5"),
        ("https://[fd00::5]:6443", "https://[fd00::5]:6443"),
    ];
    for (written, normalised) in cases {
        let text = capi_kubeconfig(&pki).replace(SERVER, written);
        assert_eq!(parse(&text).unwrap().server(), normalised, "from {written}");
    }
}

#[test]
fn a_token_user_is_accepted() {
    let pki = pki();
    let access = parse(&kubeconfig(&pki, "", &token_user(TOKEN))).unwrap();
    assert_eq!(
        access.credential(),
        &WorkloadCredential::Token(TOKEN.to_string())
    );
}

#[test]
fn the_kube_config_holds_only_the_inline_data() {
    let pki = pki();
    let access = parse(&capi_kubeconfig(&pki)).unwrap();
    let config = access.to_kube_config(timeouts()).unwrap();
    assert_eq!(config.cluster_url.to_string(), format!("{SERVER}/"));
    assert_eq!(config.root_cert, Some(vec![pki.ca_der.clone()]));
    assert_eq!(config.root_cert_file, None);
    assert!(!config.accept_invalid_certs);
    assert_eq!(config.proxy_url, None);
    assert_eq!(config.tls_server_name, None);
    assert!(config.headers.is_empty());
    assert_eq!(config.connect_timeout, Some(Duration::from_secs(3)));
    assert_eq!(config.read_timeout, Some(Duration::from_secs(5)));
    assert_eq!(config.write_timeout, Some(Duration::from_secs(7)));
    let auth = &config.auth_info;
    assert!(auth.exec.is_none() && auth.auth_provider.is_none());
    assert!(auth.token_file.is_none() && auth.client_certificate.is_none());
    assert!(auth.client_key.is_none() && auth.token.is_none());
    assert!(auth.username.is_none() && auth.password.is_none());
    assert!(auth.impersonate.is_none() && auth.impersonate_groups.is_none());
    assert!(auth.impersonate_uid.is_none() && auth.impersonate_user_extra.is_none());
    assert!(auth.other.is_empty());
    assert_eq!(
        auth.client_certificate_data.as_deref(),
        Some(b64(&pki.cert_pem).as_str())
    );
    assert!(auth.client_key_data.is_some());
}

fn install_crypto_provider() {
    // Another test may have installed it first; either way ring is the provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test]
async fn kube_builds_a_client_from_each_accepted_credential() {
    install_crypto_provider();
    let ec = pki();
    let rsa_key = KeyPair::from_pem(RSA_KEY_PKCS8).unwrap();
    let rsa = pki_for(&rsa_key, RSA_KEY_PKCS1.to_string());
    let cases = [
        ("EC PKCS#8 key", capi_kubeconfig(&ec)),
        ("RSA PKCS#1 key", capi_kubeconfig(&rsa)),
        ("token", kubeconfig(&ec, "", &token_user(TOKEN))),
    ];
    for (what, text) in cases {
        let access = parse(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
        let config = access.to_kube_config(timeouts()).unwrap();
        if let Err(error) = kube::Client::try_from(config) {
            panic!("{what}: kube refused the config: {error}");
        }
    }
}

#[tokio::test]
async fn exec_is_refused_and_its_command_never_runs() {
    install_crypto_provider();
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("exec-ran");
    let user = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: sh\n      args: [\"-c\", \"touch {}\"]\n",
        marker.display()
    );
    let text = kubeconfig(&pki, "", &user);

    assert_eq!(
        refused(&text),
        UnsafeKubeconfig::Exec {
            at: at("users[0].user.exec")
        }
    );
    assert!(!marker.exists());

    // The witness works: kube's own loader does run the command.
    let loaded = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let config = kube::Config::from_custom_kubeconfig(loaded, &Default::default())
        .await
        .unwrap();
    let _ = kube::Client::try_from(config);
    assert!(
        marker.exists(),
        "kube's loader did not run the exec command"
    );
}

#[test]
fn each_behaviour_changing_user_field_is_refused_by_name() {
    let pki = pki();
    let with_cert = |extra: &str| kubeconfig(&pki, "", &format!("{}{extra}", capi_user(&pki)));
    let cases = [
        (
            "    auth-provider:\n      name: gcp\n      config:\n        cmd-path: /bin/sh\n",
            UnsafeKubeconfig::AuthProvider {
                at: at("users[0].user.auth-provider"),
            },
        ),
        (
            "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
            UnsafeKubeconfig::FilePath {
                at: at("users[0].user.tokenFile"),
            },
        ),
        (
            "    client-certificate: /etc/strata/tls.crt\n",
            UnsafeKubeconfig::FilePath {
                at: at("users[0].user.client-certificate"),
            },
        ),
        (
            "    client-key: /etc/strata/tls.key\n",
            UnsafeKubeconfig::FilePath {
                at: at("users[0].user.client-key"),
            },
        ),
        (
            "    password: hunter2\n",
            UnsafeKubeconfig::BasicAuth {
                at: at("users[0].user.password"),
            },
        ),
        (
            "    username: admin\n",
            UnsafeKubeconfig::BasicAuth {
                at: at("users[0].user.username"),
            },
        ),
        (
            "    as: system:admin\n",
            UnsafeKubeconfig::Impersonation {
                at: at("users[0].user.as"),
            },
        ),
        (
            "    as-groups: [system:masters]\n",
            UnsafeKubeconfig::Impersonation {
                at: at("users[0].user.as-groups"),
            },
        ),
        (
            "    as-user-extra:\n      scopes: [all]\n",
            UnsafeKubeconfig::Impersonation {
                at: at("users[0].user.as-user-extra"),
            },
        ),
        (
            "    as-uid: \"0\"\n",
            UnsafeKubeconfig::Impersonation {
                at: at("users[0].user.as-uid"),
            },
        ),
        (
            "    Exec: {command: sh}\n",
            UnsafeKubeconfig::UnknownField {
                at: at("users[0].user.Exec"),
            },
        ),
    ];
    for (extra, expected) in cases {
        assert_eq!(refused(&with_cert(extra)), expected, "for {extra}");
    }
}

#[test]
fn each_behaviour_changing_cluster_field_is_refused_by_name() {
    let pki = pki();
    let cases = [
        (
            "    certificate-authority: /etc/kubernetes/pki/ca.crt\n",
            UnsafeKubeconfig::FilePath {
                at: at("clusters[0].cluster.certificate-authority"),
            },
        ),
        (
            "    insecure-skip-tls-verify: true\n",
            UnsafeKubeconfig::InsecureSkipTlsVerify {
                at: at("clusters[0].cluster.insecure-skip-tls-verify"),
            },
        ),
        (
            "    insecure-skip-tls-verify: \"false\"\n",
            UnsafeKubeconfig::InsecureSkipTlsVerify {
                at: at("clusters[0].cluster.insecure-skip-tls-verify"),
            },
        ),
        (
            "    proxy-url: http://10.9.9.9:3128\n",
            UnsafeKubeconfig::ProxyUrl {
                at: at("clusters[0].cluster.proxy-url"),
            },
        ),
        (
            "    tls-server-name: kubernetes.default\n",
            UnsafeKubeconfig::TlsServerName {
                at: at("clusters[0].cluster.tls-server-name"),
            },
        ),
        (
            "    disable-compression: true\n",
            UnsafeKubeconfig::UnknownField {
                at: at("clusters[0].cluster.disable-compression"),
            },
        ),
    ];
    for (extra, expected) in cases {
        let text = kubeconfig(&pki, extra, &capi_user(&pki));
        assert_eq!(refused(&text), expected, "for {extra}");
    }
}

#[test]
fn tolerated_fields_change_nothing() {
    let pki = pki();
    let plain = parse(&capi_kubeconfig(&pki)).unwrap();
    let cluster_extra = "    insecure-skip-tls-verify: false\n    extensions:\n    - name: client.authentication.k8s.io/exec\n      extension: {audience: x}\n";
    let user = format!(
        "{}    extensions:\n    - name: note\n      extension: {{}}\n",
        capi_user(&pki)
    );
    let text = kubeconfig(&pki, cluster_extra, &user)
        .replace(
            "    user: site-a-admin\n",
            "    user: site-a-admin\n    namespace: kube-system\n",
        )
        .replace(
            "preferences: {}",
            "preferences: {colors: true}\nextensions: []",
        );
    assert_eq!(parse(&text).unwrap(), plain);
}

#[test]
fn unknown_fields_anywhere_are_refused() {
    let pki = pki();
    let text = capi_kubeconfig(&pki);
    let cases = [
        (format!("{text}proxy: http://10.9.9.9:3128\n"), "proxy"),
        (
            text.replace(
                "  name: site-a\n",
                "  name: site-a\n  server: https://elsewhere\n",
            ),
            "clusters[0].server",
        ),
        (
            text.replace(
                "    user: site-a-admin\n",
                "    user: site-a-admin\n    cluster-override: x\n",
            ),
            "contexts[0].context.cluster-override",
        ),
    ];
    for (text, path) in cases {
        assert_eq!(
            refused(&text),
            UnsafeKubeconfig::UnknownField { at: at(path) },
            "for {path}"
        );
    }
}

#[test]
fn a_refused_field_in_an_unused_user_is_refused_too() {
    let pki = pki();
    let text = format!(
        "{}- name: spare\n  user:\n    exec: {{command: sh}}\n",
        capi_kubeconfig(&pki)
    );
    assert_eq!(
        refused(&text),
        UnsafeKubeconfig::Exec {
            at: at("users[1].user.exec")
        }
    );
}

#[test]
fn the_server_must_be_a_bare_https_url() {
    let pki = pki();
    let text = capi_kubeconfig(&pki);
    let server_at = at("clusters[0].cluster.server");
    assert_eq!(
        refused(&text.replace(SERVER, "http://10.0.0.5:6443")),
        UnsafeKubeconfig::NotHttps {
            at: server_at.clone(),
            scheme: "http".to_string()
        }
    );
    for bad in [
        "https://10.0.0.5:6443/api",
        "https://admin:pw@10.0.0.5:6443",
        "https://10.0.0.5:6443/?watch=1",
        "https://10.0.0.5:99999",
        "10.0.0.5:6443",
    ] {
        match refused(&text.replace(SERVER, bad)) {
            UnsafeKubeconfig::BadServer { at, .. } => assert_eq!(at, server_at, "for {bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert_eq!(
        refused(&text.replace(&format!("    server: {SERVER}\n"), "")),
        UnsafeKubeconfig::MissingServer { at: server_at }
    );
}

#[test]
fn the_ca_must_be_inline_certificates() {
    let pki = pki();
    let text = capi_kubeconfig(&pki);
    let ca_line = format!("    certificate-authority-data: {}\n", b64(&pki.ca_pem));
    let ca_at = at("clusters[0].cluster.certificate-authority-data");
    let with_ca = |data: &str| {
        text.replace(
            &ca_line,
            &format!("    certificate-authority-data: {data}\n"),
        )
    };

    assert_eq!(
        refused(&text.replace(&ca_line, "")),
        UnsafeKubeconfig::MissingCertificateAuthority { at: ca_at.clone() }
    );
    assert_eq!(
        refused(&with_ca("not base64!")),
        UnsafeKubeconfig::NotBase64 { at: ca_at.clone() }
    );
    for data in [b64("no PEM at all"), b64(&pki.key_pem)] {
        match refused(&with_ca(&data)) {
            UnsafeKubeconfig::BadPem { at, .. } => assert_eq!(at, ca_at),
            other => panic!("{other:?}"),
        }
    }
    let not_a_certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    match refused(&with_ca(&b64(not_a_certificate))) {
        UnsafeKubeconfig::BadCertificate { at, .. } => assert_eq!(at, ca_at),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_credential_must_be_one_complete_inline_credential() {
    let pki = pki();
    let other = self::pki();
    let user_at = at("users[0].user");
    let cert_line = format!("    client-certificate-data: {}\n", b64(&pki.cert_pem));
    let key_line = format!("    client-key-data: {}\n", b64(&pki.key_pem));

    assert_eq!(
        refused(&kubeconfig(&pki, "", "    extensions: []\n")),
        UnsafeKubeconfig::MissingCredential {
            at: user_at.clone()
        }
    );
    assert_eq!(
        refused(&kubeconfig(&pki, "", &cert_line)),
        UnsafeKubeconfig::IncompleteClientCertificate {
            at: user_at.clone(),
            missing: "client-key-data"
        }
    );
    assert_eq!(
        refused(&kubeconfig(&pki, "", &key_line)),
        UnsafeKubeconfig::IncompleteClientCertificate {
            at: user_at.clone(),
            missing: "client-certificate-data"
        }
    );
    assert_eq!(
        refused(&kubeconfig(
            &pki,
            "",
            &format!("{}{}", capi_user(&pki), token_user(TOKEN))
        )),
        UnsafeKubeconfig::TwoCredentials {
            at: user_at.clone()
        }
    );
    let mismatched = format!("{cert_line}    client-key-data: {}\n", b64(&other.key_pem));
    assert_eq!(
        refused(&kubeconfig(&pki, "", &mismatched)),
        UnsafeKubeconfig::KeyMismatch {
            at: user_at.clone()
        }
    );
    let two_keys = format!(
        "{cert_line}    client-key-data: {}\n",
        b64(&format!("{}{}", pki.key_pem, other.key_pem))
    );
    match refused(&kubeconfig(&pki, "", &two_keys)) {
        UnsafeKubeconfig::BadPrivateKey { at, .. } => {
            assert_eq!(at, "users[0].user.client-key-data")
        }
        other => panic!("{other:?}"),
    }
    let cert_as_key = format!("{cert_line}    client-key-data: {}\n", b64(&pki.cert_pem));
    match refused(&kubeconfig(&pki, "", &cert_as_key)) {
        UnsafeKubeconfig::BadPrivateKey { at, .. } => {
            assert_eq!(at, "users[0].user.client-key-data")
        }
        other => panic!("{other:?}"),
    }
    for (token, what) in [
        ("\"\"", "empty"),
        ("\"abc def\"", "a space"),
        ("\"abc\\r\\nX-Evil: 1\"", "a header"),
    ] {
        match refused(&kubeconfig(&pki, "", &token_user(token))) {
            UnsafeKubeconfig::BadToken { at, .. } => {
                assert_eq!(at, "users[0].user.token", "for {what}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn the_context_decides_which_cluster_and_user() {
    let first = pki();
    let second = pki();
    let two = format!(
        "clusters:
- name: one
  cluster: {{server: https://one.example:6443, certificate-authority-data: {}}}
- name: two
  cluster: {{server: https://two.example:6443, certificate-authority-data: {}}}
users:
- name: one
  user: {{token: one-token}}
- name: two
  user: {{client-certificate-data: {}, client-key-data: {}}}
contexts:
- name: one
  context: {{cluster: one, user: one}}
- name: two
  context: {{cluster: two, user: two}}
",
        b64(&first.ca_pem),
        b64(&second.ca_pem),
        b64(&second.cert_pem),
        b64(&second.key_pem),
    );
    assert_eq!(
        refused(&two),
        UnsafeKubeconfig::AmbiguousContext { count: 2 }
    );
    assert_eq!(
        refused(&format!("{two}current-context: \"\"\n")),
        UnsafeKubeconfig::AmbiguousContext { count: 2 }
    );
    let chosen = parse(&format!("{two}current-context: two\n")).unwrap();
    assert_eq!(chosen.server(), "https://two.example:6443");
    assert_eq!(chosen.ca_pem(), second.ca_pem.as_bytes());
    assert!(matches!(
        chosen.credential(),
        WorkloadCredential::ClientCertificate { .. }
    ));
    assert_eq!(
        refused(&format!("{two}current-context: three\n")),
        UnsafeKubeconfig::UnknownContext {
            name: "three".to_string()
        }
    );
    let dangling = format!(
        "{two}- name: three\n  context: {{cluster: one, user: nobody}}\ncurrent-context: three\n"
    );
    assert_eq!(
        refused(&dangling),
        UnsafeKubeconfig::UnknownReference {
            at: at("contexts[2].context.user"),
            section: "users",
            name: "nobody".to_string()
        }
    );
    assert_eq!(
        refused(&two.replace("- name: two\n  cluster:", "- name: one\n  cluster:")),
        UnsafeKubeconfig::DuplicateName {
            section: "clusters",
            name: "one".to_string()
        }
    );
    let only_one = parse(&format!(
        "clusters:\n- name: one\n  cluster: {{server: https://one.example:6443, certificate-authority-data: {}}}\nusers:\n- name: one\n  user: {{token: one-token}}\ncontexts:\n- name: one\n  context: {{cluster: one, user: one}}\n",
        b64(&first.ca_pem)
    ))
    .unwrap();
    assert_eq!(only_one.server(), "https://one.example:6443");
    assert_eq!(refused("kind: Config\n"), UnsafeKubeconfig::NoContext);
}

#[test]
fn input_is_bounded_in_size() {
    let pki = pki();
    let text = capi_kubeconfig(&pki);
    let padded_to = |size: usize| format!("{text}#{}\n", "x".repeat(size - text.len() - 2));
    assert!(parse(&padded_to(MAX_KUBECONFIG_BYTES)).is_ok());
    assert_eq!(
        refused(&padded_to(MAX_KUBECONFIG_BYTES + 1)),
        UnsafeKubeconfig::TooLarge {
            size: MAX_KUBECONFIG_BYTES + 1,
            limit: MAX_KUBECONFIG_BYTES
        }
    );
}

#[test]
fn secret_bytes_are_read_as_utf8_text_within_the_bound() {
    let pki = pki();
    let text = capi_kubeconfig(&pki);
    assert_eq!(parse_bytes(text.as_bytes()).unwrap(), parse(&text).unwrap());
    let mut not_utf8 = text.clone().into_bytes();
    not_utf8.insert(3, 0xff);
    match parse_bytes(&not_utf8) {
        Err(UnsafeKubeconfig::Malformed { detail }) => {
            assert!(detail.contains("offset 3"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    let oversized = vec![0xff; MAX_KUBECONFIG_BYTES + 1];
    assert_eq!(
        parse_bytes(&oversized),
        Err(UnsafeKubeconfig::TooLarge {
            size: MAX_KUBECONFIG_BYTES + 1,
            limit: MAX_KUBECONFIG_BYTES
        })
    );
}

#[test]
fn alias_expansion_is_bounded() {
    // Nine levels of nine aliases each: 9^9 strings if expanded in full.
    let mut bomb = String::from("preferences:\n  l0: &l0 [x, x, x, x, x, x, x, x, x]\n");
    for level in 1..9 {
        let previous = format!("*l{}", level - 1);
        let items = [previous.as_str(); 9].join(", ");
        bomb.push_str(&format!("  l{level}: &l{level} [{items}]\n"));
    }
    let pki = pki();
    let text = capi_kubeconfig(&pki).replace("preferences: {}\n", &bomb);
    match refused(&text) {
        UnsafeKubeconfig::Malformed { detail } => {
            assert!(detail.contains("repetition limit"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("preferences: {}{}\n", "[".repeat(1_000), "]".repeat(1_000));
    match refused(&deep) {
        UnsafeKubeconfig::Malformed { detail } => {
            assert!(detail.contains("recursion limit"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn repeated_keys_and_documents_are_refused() {
    let pki = pki();
    let repeated = kubeconfig(
        &pki,
        "",
        &format!("{}{}", token_user("first"), token_user("second")),
    );
    match refused(&repeated) {
        UnsafeKubeconfig::Malformed { detail } => assert!(detail.contains("duplicate"), "{detail}"),
        other => panic!("{other:?}"),
    }
    let text = capi_kubeconfig(&pki);
    assert!(matches!(
        refused(&format!("{text}---\n{text}")),
        UnsafeKubeconfig::Malformed { .. }
    ));
}

#[test]
fn findings_never_show_the_token_or_the_key() {
    let pki = pki();
    let key_b64 = b64(&pki.key_pem);
    let key_body_line = pki.key_pem.lines().nth(1).unwrap().to_string();
    let token_part = "c2VjcmV0LXRva2VuLXBheWxvYWQ";
    let corrupted_key = pki
        .key_pem
        .replacen(&key_body_line, &format!("{key_body_line}!"), 1);
    let cases = [
        kubeconfig(
            &pki,
            "",
            &format!("{}    exec: {{command: sh}}\n", token_user(TOKEN)),
        ),
        kubeconfig(
            &pki,
            "",
            &format!("{}{}", capi_user(&pki), token_user(TOKEN)),
        ),
        kubeconfig(&pki, "", &token_user(&format!("\"{TOKEN} \""))),
        kubeconfig(&pki, "", &format!("    token: [{TOKEN}]\n")),
        "users: 880055535512345678\n".to_string(),
        capi_kubeconfig(&pki).replace("  user:\n", &format!("  user: \"{TOKEN}\"\n  x:\n")),
        format!("clusters: {TOKEN}\n"),
        capi_kubeconfig(&pki).replace(SERVER, &format!("https://admin:{TOKEN}@10.0.0.5")),
        capi_kubeconfig(&pki).replace(&b64(&pki.ca_pem), &key_b64),
        capi_kubeconfig(&pki).replace(&key_b64, &b64(&corrupted_key)),
        capi_kubeconfig(&pki).replace(&key_b64, &format!("{key_b64}!")),
        capi_kubeconfig(&pki).replace(&b64(&pki.cert_pem), &key_b64),
    ];
    for text in cases {
        let error = refused(&text);
        for shown in [error.to_string(), format!("{error:?}")] {
            for secret in [
                TOKEN,
                token_part,
                "880055535512345678",
                &key_b64[..40],
                &key_body_line,
            ] {
                assert!(!shown.contains(secret), "{shown} shows {secret}");
            }
        }
    }
}

#[test]
fn debug_output_redacts_the_key_and_the_token() {
    let pki = pki();
    let key_body_line = pki.key_pem.lines().nth(1).unwrap().to_string();
    let with_cert = format!("{:?}", parse(&capi_kubeconfig(&pki)).unwrap());
    assert!(!with_cert.contains(&key_body_line), "{with_cert}");
    assert!(with_cert.contains(SERVER), "{with_cert}");
    let with_token = format!(
        "{:?}",
        parse(&kubeconfig(&pki, "", &token_user(TOKEN))).unwrap()
    );
    assert!(!with_token.contains(TOKEN), "{with_token}");
}

#[test]
fn values_chosen_by_the_site_are_cut_short_in_findings() {
    let long = "n".repeat(10_000);
    let error = refused(&format!("current-context: {long}\ncontexts: []\n"));
    assert!(error.to_string().len() < 200, "{error}");
}

#[test]
fn parser_messages_lose_their_quoted_values() {
    let message = r#"users[0]: invalid type: string "s3cr\"et", expected struct UserFields at line 3, integer `12345` and unknown field `token-x`"#;
    let cleaned = without_values(message);
    assert!(
        !cleaned.contains("s3cr") && !cleaned.contains("et\"") && !cleaned.contains("12345"),
        "{cleaned}"
    );
    assert!(
        cleaned.contains("`token-x`") && cleaned.contains("expected struct UserFields"),
        "{cleaned}"
    );
}
