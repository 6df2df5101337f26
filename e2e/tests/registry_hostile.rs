//! Registries that misbehave: an oversized manifest, a blob that trickles past the
//! deadline, a token realm on another host. Each gives a clear error, credentials never
//! leave for the other host, and a running controller keeps provisioning the clusters
//! that do not need the slow registry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use strata_e2e::hostile_registry::{HostileOptions, HostileRegistry, Hostility};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, apply, apply_secret, ensure_namespace,
    repo_root,
};
use strata_e2e::pki::TestCa;
use strata_e2e::registry::TestRegistry;
use strata_e2e::samples::apply_sample;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{cluster, describe};
use strata_shared::pack::Pack;
use strata_shared::registry::address::RegistryAddress;
use strata_shared::registry::client::{
    PackRegistryClient, RegistryError, RegistryOptions, RetryPolicy,
};
use strata_shared::registry::credentials::Credentials;

const BASE: &str = "hostile";
const MIB: usize = 1 << 20;

fn test_ca(dir: &Path) -> TestCa {
    TestCa::new(dir, "hostile-test-ca").unwrap()
}

fn options(ca: &TestCa, credentials: Credentials) -> RegistryOptions {
    RegistryOptions {
        ca_pem: Some(ca.cert_pem.clone()),
        credentials,
        retry: RetryPolicy {
            attempts: 2,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(50),
        },
        ..RegistryOptions::default()
    }
}

fn client(registry: &HostileRegistry, options: RegistryOptions) -> PackRegistryClient {
    let address: RegistryAddress = format!("{}/{BASE}", registry.host()).parse().unwrap();
    PackRegistryClient::new(address, options).unwrap()
}

fn credentials() -> Credentials {
    Credentials::Basic {
        username: "tenant".into(),
        password: "tenant-secret".into(),
    }
}

fn sample_pack(name: &str) -> Pack {
    let (pack, findings) = Pack::load(&repo_root().join("manifests/samples/packs").join(name));
    pack.unwrap_or_else(|| panic!("sample pack {name} is not valid: {findings:?}"))
}

/// The size, declaration and limit of a ResponseTooLarge, after checking its message.
fn too_large(error: &RegistryError, host: &str, what: &str) -> (u64, bool, u64) {
    let message = error.to_string();
    assert!(message.contains(host), "{message}");
    assert!(message.contains(what), "{message}");
    match error {
        RegistryError::ResponseTooLarge {
            size,
            declared,
            limit,
            ..
        } => {
            assert!(
                message.contains(&format!("{limit}-byte limit")),
                "{message}"
            );
            (*size, *declared, *limit)
        }
        other => panic!("expected ResponseTooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_manifests_and_tag_lists_are_refused_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca(dir.path());
    let registry = HostileRegistry::start(
        HostileOptions {
            packs: vec![
                (
                    "declared".into(),
                    Hostility::Oversized {
                        size: 5 * MIB,
                        declared: true,
                    },
                ),
                (
                    "undeclared".into(),
                    Hostility::Oversized {
                        size: 5 * MIB,
                        declared: false,
                    },
                ),
            ],
            ..HostileOptions::default()
        },
        Some(&ca),
    )
    .unwrap();
    let host = registry.host();
    let client = client(&registry, options(&ca, Credentials::Anonymous));
    let limit = 4 * MIB as u64;

    // Refused from its Content-Length, before the body is read.
    let error = client.resolve("declared", "1.0.0").await.unwrap_err();
    assert!(
        error.to_string().contains(&format!(
            "{host}/{BASE}/spectro-packs/archive/declared:1.0.0"
        )),
        "{error}"
    );
    assert_eq!(
        too_large(&error, &host, "manifest"),
        (5 * MIB as u64, true, limit)
    );

    // Without one: refused once what arrived passes the limit.
    let error = client.resolve("undeclared", "1.0.0").await.unwrap_err();
    let (size, declared, found_limit) = too_large(&error, &host, "manifest");
    assert!(!declared && size > limit && found_limit == limit, "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("more than {limit} bytes")),
        "{error}"
    );

    // A tag list page is bounded the same way.
    let error = client.versions("declared").await.unwrap_err();
    too_large(&error, &host, "tag list page");

    // A smaller limit is a setting.
    let strict = self::client(
        &registry,
        RegistryOptions {
            limits: strata_shared::registry::client::ResponseLimits {
                manifest_bytes: 1024,
                ..Default::default()
            },
            ..options(&ca, Credentials::Anonymous)
        },
    );
    let error = strict.resolve("declared", "1.0.0").await.unwrap_err();
    assert_eq!(too_large(&error, &host, "manifest").2, 1024);

    // Too large is final: each refusal was one request, not retried.
    let manifest_requests = registry
        .requests()
        .iter()
        .filter(|r| r.target.contains("/manifests/"))
        .count();
    assert_eq!(manifest_requests, 3);
}

#[tokio::test]
async fn a_blob_that_trickles_fails_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca(dir.path());
    let registry = HostileRegistry::start(
        HostileOptions {
            packs: vec![(
                "slow".into(),
                Hostility::SlowBlob {
                    size: MIB as u64,
                    interval: Duration::from_millis(50),
                },
            )],
            ..HostileOptions::default()
        },
        Some(&ca),
    )
    .unwrap();
    let host = registry.host();
    let client = client(
        &registry,
        RegistryOptions {
            fetch_deadline: Duration::from_secs(2),
            ..options(&ca, Credentials::Anonymous)
        },
    );
    // Repeated: a deadline that only sometimes fires is a race.
    for round in 0..3 {
        let version = format!("1.0.{round}");
        let dest = dir.path().join(format!("slow-{round}"));
        let error = client
            .pull("slow", &version, &dest, None)
            .await
            .unwrap_err();
        let message = error.to_string();
        match &error {
            RegistryError::DeadlineExceeded {
                registry,
                reference,
                deadline,
            } => {
                assert_eq!(registry, &host);
                assert_eq!(
                    reference,
                    &format!("{host}/{BASE}/spectro-packs/archive/slow:{version}")
                );
                assert_eq!(*deadline, Duration::from_secs(2));
            }
            other => panic!("expected DeadlineExceeded, got {other:?}"),
        }
        assert!(message.contains("took longer than 2 s"), "{message}");
        assert!(message.contains(&host), "{message}");
        assert!(!dest.exists(), "nothing is left behind: {}", dest.display());
        let digest = HostileRegistry::slow_layer_digest("slow", &version);
        assert!(
            registry
                .trickles_started()
                .contains(&format!("slow@{digest}")),
            "the download had started: {:?}",
            registry.trickles_started()
        );
        // The client let go of the connection: the trickle ends.
        eventually(
            "the registry to notice the client hung up",
            Duration::from_secs(20),
            || async { (registry.trickles_open() == 0).then_some(()) },
        )
        .await;
    }
}

#[tokio::test]
async fn credentials_never_go_to_a_realm_on_another_host_or_over_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_ca(dir.path());
    // The "other host": a server that records whatever reaches it. Its certificate is
    // from the same CA and valid for `localhost`, so a client that did send it the
    // credentials would get through the handshake and be recorded.
    let elsewhere = HostileRegistry::start(HostileOptions::default(), Some(&ca)).unwrap();
    let plain = HostileRegistry::start(HostileOptions::default(), None).unwrap();
    let other_host = format!("https://localhost:{}/token", elsewhere.addr().port());
    let plain_realm = format!("{}/token", plain.url());

    for (realm, reason, recorder) in [
        (
            &other_host,
            "is on another host (localhost; the registry is 127.0.0.1)",
            &elsewhere,
        ),
        (&plain_realm, "is plain HTTP", &plain),
    ] {
        let registry = HostileRegistry::start(
            HostileOptions {
                challenge_everything: Some(realm.clone()),
                ..HostileOptions::default()
            },
            Some(&ca),
        )
        .unwrap();
        let client = client(&registry, options(&ca, credentials()));
        let errors = [
            client.resolve("istio", "1.6.2").await.unwrap_err(),
            client.versions("istio").await.unwrap_err(),
            client.list().await.unwrap_err(),
            client.push(&sample_pack("istio"), false).await.unwrap_err(),
        ];
        for error in &errors {
            assert!(
                matches!(error, RegistryError::RealmRefused { .. }),
                "{error:?}"
            );
            let message = error.to_string();
            assert!(message.contains(realm.as_str()), "{message}");
            assert!(message.contains(reason), "{message}");
            assert!(message.contains(&registry.host()), "{message}");
            assert!(!message.contains("tenant-secret"), "{message}");
        }
        // Nothing reached the realm, not even a connection; the registry itself never
        // saw an Authorization header either.
        assert_eq!(recorder.connections(), 0, "{:?}", recorder.requests());
        assert!(
            registry
                .requests()
                .iter()
                .all(|r| r.authorization.is_none()),
            "{:?}",
            registry.requests()
        );
    }

    // Without credentials there is nothing to leak: an anonymous client may ask a realm
    // on another host for a token, and sends it no Authorization header.
    let registry = HostileRegistry::start(
        HostileOptions {
            challenge_everything: Some(other_host.clone()),
            ..HostileOptions::default()
        },
        Some(&ca),
    )
    .unwrap();
    let anonymous = client(&registry, options(&ca, Credentials::Anonymous));
    let error = anonymous.resolve("istio", "1.6.2").await.unwrap_err();
    assert!(
        !matches!(error, RegistryError::RealmRefused { .. }),
        "{error:?}"
    );
    let asked = elsewhere.requests();
    assert!(
        !asked.is_empty() && asked.iter().all(|r| r.target.starts_with("/token?")),
        "{asked:?}"
    );
    assert!(asked.iter().all(|r| r.authorization.is_none()), "{asked:?}");

    // Plain HTTP with credentials is refused before any request.
    let error = PackRegistryClient::new(
        format!("{}/{BASE}", plain.host()).parse().unwrap(),
        RegistryOptions {
            plain_http: true,
            ..options(&ca, credentials())
        },
    )
    .unwrap_err();
    assert!(
        matches!(error, RegistryError::CredentialsOverPlainHttp { .. }),
        "{error:?}"
    );
    assert_eq!(plain.connections(), 0);
}

// ---- A running controller with one slow registry ----

/// The packs of the sample sim cluster's profiles, `sim-infra` and `sim-addons`.
const SIM_PACKS: [&str; 6] = [
    "sim-os",
    "kubernetes",
    "cni-calico",
    "csi-hostpath",
    "hello-chart",
    "hello-manifests",
];

/// Pushes the sample sim cluster's packs to `<registry>/<base>`: a registry identity the controller
/// has fetched nothing from yet.
async fn publish_sim_packs(registry: &TestRegistry, base: &str) {
    let client = PackRegistryClient::new(
        format!("{}/{base}", registry.host()).parse().unwrap(),
        RegistryOptions {
            ca_pem: registry.ca_pem().map(str::to_owned),
            credentials: Credentials::Basic {
                username: registry.username().into(),
                password: registry.password().into(),
            },
            ..RegistryOptions::default()
        },
    )
    .unwrap();
    for name in SIM_PACKS {
        client.push(&sample_pack(name), true).await.unwrap();
    }
}

async fn objects_applied(client: &kube::Client, namespace: &str, name: &str) -> bool {
    cluster(client, namespace, name)
        .await
        .and_then(|c| c.status)
        .is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "ObjectsApplied" && c.status == "True")
        })
}

/// A controller reconciles a cluster whose OS pack comes from a registry that trickles
/// its blob, and, while that fetch hangs, clusters whose packs come from elsewhere (and
/// must be fetched, not remembered) still get their CAPI objects. Three rounds, each
/// with a new slow fetch started first.
#[tokio::test]
async fn a_slow_registry_does_not_hold_up_other_clusters() {
    let env = ManagementEnv::start(ManagementOptions {
        simulator: false,
        ..ManagementOptions::named("hostile-registry")
    })
    .await
    .unwrap();
    let client = env.client();
    let ca = test_ca(&env.dir.path().join("hostile-ca"));
    let slow = HostileRegistry::start(
        HostileOptions {
            packs: vec![(
                "sim-os".into(),
                Hostility::SlowBlob {
                    size: MIB as u64,
                    interval: Duration::from_millis(500),
                },
            )],
            ..HostileOptions::default()
        },
        Some(&ca),
    )
    .unwrap();
    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    let controller =
        ControllerProcess::start(&kubeconfig, env.dir.path(), "controller", &[]).unwrap();

    for round in 1..=3 {
        // A cluster whose OS layer comes from the slow registry, in a version no earlier
        // round asked for, so that its fetch is a new one.
        let slow_ns = format!("slow-{round}");
        let version = format!("1.0.{round}");
        ensure_namespace(&client, &slow_ns).await.unwrap();
        apply(
            &client,
            &json!({
                "apiVersion": "strata.dev/v1alpha1",
                "kind": "PackRegistry",
                "metadata": { "name": "slow", "namespace": slow_ns },
                "spec": { "endpoint": slow.host(), "basePath": BASE, "caBundle": ca.cert_pem },
            }),
        )
        .await
        .unwrap();
        apply_sample(&client, "profiles/sim-infra.yaml", &slow_ns, |d| {
            d["metadata"]["name"] = json!("sim-infra-slow");
            d["spec"]["layers"][0]["registry"] = json!("slow");
            d["spec"]["layers"][0]["version"] = json!(version);
        })
        .await;
        apply_sample(&client, "clusters/sim-demo.yaml", &slow_ns, |d| {
            d["metadata"]["name"] = json!("stuck");
            d["spec"]["profiles"][0]["name"] = json!("sim-infra-slow");
        })
        .await;
        let digest = HostileRegistry::slow_layer_digest("sim-os", &version);
        eventually(
            &format!("the controller to start downloading sim-os:{version}"),
            Duration::from_secs(90),
            || async {
                slow.trickles_started()
                    .contains(&format!("sim-os@{digest}"))
                    .then_some(())
            },
        )
        .await;

        // While it hangs, a cluster whose packs are in another registry (a base path the
        // controller has not fetched from) gets its objects.
        let fast_ns = format!("fast-{round}");
        let base = format!("round{round}");
        publish_sim_packs(&env.registry, &base).await;
        // The cluster's default registry serves its provider packs too.
        strata_e2e::management::publish_provider_packs(&client, &env.registry, "fast", &base)
            .await
            .unwrap();
        ensure_namespace(&client, &fast_ns).await.unwrap();
        apply_secret(
            &client,
            &fast_ns,
            "registry",
            &[
                ("username", env.registry.username()),
                ("password", env.registry.password()),
            ],
        )
        .await
        .unwrap();
        apply(
            &client,
            &json!({
                "apiVersion": "strata.dev/v1alpha1",
                "kind": "PackRegistry",
                "metadata": { "name": "samples-here", "namespace": fast_ns },
                "spec": {
                    "endpoint": env.registry.host(),
                    "basePath": base,
                    "caBundle": env.registry.ca_pem().unwrap_or_default(),
                    "credentialsSecretRef": { "name": "registry" },
                    "default": true,
                },
            }),
        )
        .await
        .unwrap();
        apply_sample(&client, "clusters/sim-demo.yaml", &fast_ns, |d| {
            d["metadata"]["name"] = json!("fast");
        })
        .await;
        let waited = tokio::time::timeout(Duration::from_secs(90), async {
            while !objects_applied(&client, &fast_ns, "fast").await {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "round {round}: {fast_ns}/fast got no objects while the slow registry trickled: \
             {}\n--- controller log ---\n{}",
            describe(cluster(&client, &fast_ns, "fast").await.as_ref()),
            controller.log_tail(40)
        );

        // The slow cluster is still waiting for its pack, not failed or done.
        assert!(
            !objects_applied(&client, &slow_ns, "stuck").await,
            "round {round}: {}",
            describe(cluster(&client, &slow_ns, "stuck").await.as_ref())
        );
        assert!(
            slow.trickles_open() >= 1,
            "round {round}: the slow download ended"
        );
    }
}
