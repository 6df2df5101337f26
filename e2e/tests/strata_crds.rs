//! Strata's own CRDs install into the real apiserver, and the sample objects are accepted
//! with nothing pruned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use strata_e2e::capi_crds::{apply_all, pruned_fields};
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};

fn samples() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples");
    let mut objects = Vec::new();
    for folder in ["profiles", "clusters", "accounts"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for document in serde_yaml::Deserializer::from_str(&text) {
                let value: Value = serde::Deserialize::deserialize(document).unwrap();
                // The accounts' Secrets are core objects, not Strata's.
                if value["apiVersion"] == "strata.dev/v1alpha1" {
                    objects.push(value);
                }
            }
        }
    }
    objects.push(json!({
        "apiVersion": "strata.dev/v1alpha1",
        "kind": "PackRegistry",
        "metadata": { "name": "private" },
        "spec": {
            "endpoint": "registry.example.internal:5000",
            "basePath": "platform",
            "caBundle": "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
            "credentialsSecretRef": { "name": "registry-credentials" },
            "plainHttp": false,
            "default": true,
        },
    }));
    objects
}

#[tokio::test]
async fn strata_crds_install_and_keep_every_field_of_the_samples() {
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("strata-crds")
    })
    .await
    .unwrap();
    let client = cp.client();
    let crds: Vec<Value> = strata_shared::crd::all()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).unwrap())
        .collect();
    apply_all(&client, &crds).await.unwrap();

    let namespace = "samples";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": namespace } })).unwrap(),
        )
        .await
        .unwrap();
    let objects = samples();
    assert!(
        objects.len() >= 12,
        "five profiles, four clusters, three accounts and a registry"
    );
    for mut object in objects {
        object["metadata"]["namespace"] = json!(namespace);
        let kind = object["kind"].as_str().unwrap().to_string();
        let gvk = GroupVersionKind::gvk("strata.dev", "v1alpha1", &kind);
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk));
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let applied = api
            .patch(
                &name,
                &PatchParams::apply("strata-e2e-test").force(),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|e| panic!("{kind} {name} was refused: {e}"));
        let read_back = serde_json::to_value(api.get(&applied.name_any()).await.unwrap()).unwrap();
        let pruned = pruned_fields(&object["spec"], &read_back["spec"]);
        assert!(
            pruned.is_empty(),
            "{kind} {name}: the apiserver pruned {pruned:?}"
        );
    }
}
