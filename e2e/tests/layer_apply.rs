//! A manifest layer applied to a real apiserver (`strata_shared::layer_apply`): CRDs first
//! and Established before their custom resources, every object labelled into the layer's
//! ApplySet, the parent ConfigMap describing the set, a field another manager changed set
//! back, and what a new version no longer renders pruned; and the drift pass over an applied
//! layer (`correct_drift`), which puts back what was deleted or changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;
use strata_shared::layer::readiness::Readiness;
use strata_shared::layer_apply::{
    DriftKind, LayerApplyError, ManifestLayer, apply_manifest_layer, correct_drift, layer_readiness,
};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.strata.dev
spec:
  group: example.strata.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

// Rendered in an order that is not the install order: the custom resource and the
// Deployment come before the CRD and the Namespace they need.
fn version_one() -> String {
    format!(
        "apiVersion: example.strata.dev/v1\nkind: Widget\nmetadata: {{name: w1}}\nspec: {{size: 3}}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: web, image: nginx}}]}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{level: info}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: extra, namespace: shop}}\ndata: {{a: b}}\n---\n\
         {CRD}---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n"
    )
}

/// Version two no longer renders the Widget and the `extra` ConfigMap.
fn version_two() -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: web, image: nginx}}]}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{level: info}}\n---\n\
         {CRD}---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n"
    )
}

fn layer(rendered: &str) -> ManifestLayer<'_> {
    ManifestLayer {
        name: "shop",
        namespace: "shop",
        rendered,
    }
}

const WAIT: Duration = Duration::from_secs(30);

fn keys(keys: &[strata_shared::layer::install_order::ObjectKey]) -> Vec<String> {
    keys.iter()
        .map(|k| match &k.namespace {
            Some(ns) => format!("{}/{ns}/{}", k.kind, k.name),
            None => format!("{}/{}", k.kind, k.name),
        })
        .collect()
}

#[tokio::test]
async fn a_manifest_layer_is_applied_in_order_as_an_applyset_corrected_and_pruned() {
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("layer-apply")
    })
    .await
    .unwrap();
    let client = cp.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "strata-system"}}))
                .unwrap(),
        )
        .await
        .unwrap();

    // Version one: in install order, CRD first, Namespace next, the Widget last.
    let one = version_one();
    let report = apply_manifest_layer(&client, &layer(&one), AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();
    assert_eq!(
        keys(&report.applied),
        [
            "CustomResourceDefinition/widgets.example.strata.dev",
            "Namespace/shop",
            "ConfigMap/shop/settings",
            "ConfigMap/shop/extra",
            "Deployment/shop/web",
            "Widget/shop/w1",
        ]
    );
    assert!(report.pruned.is_empty());

    // The set: the parent describes it, every member carries its id.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "strata-system");
    let parent = config_maps.get("strata-layer-shop").await.unwrap();
    let labels = parent.metadata.labels.clone().unwrap();
    let id = labels["applyset.kubernetes.io/id"].clone();
    assert!(id.starts_with("applyset-") && id.ends_with("-v1"), "{id}");
    let annotations: BTreeMap<String, String> = parent.metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations["applyset.kubernetes.io/contains-group-kinds"],
        "ConfigMap,CustomResourceDefinition.apiextensions.k8s.io,Deployment.apps,Namespace,Widget.example.strata.dev"
    );
    assert_eq!(
        annotations["applyset.kubernetes.io/additional-namespaces"],
        "shop"
    );
    assert!(annotations["applyset.kubernetes.io/tooling"].starts_with("strata/v"));
    let shop: Api<ConfigMap> = Api::namespaced(client.clone(), "shop");
    let settings = shop.get("settings").await.unwrap();
    assert_eq!(
        settings.metadata.labels.as_ref().unwrap()["applyset.kubernetes.io/part-of"],
        id
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "shop",
        &ApiResource::from_gvk(&GroupVersionKind::gvk("example.strata.dev", "v1", "Widget")),
    );
    let widget = widgets.get("w1").await.unwrap();
    assert_eq!(widget.data["spec"]["size"], 3);

    // Readiness as the cluster has it: no controller runs the Deployment here.
    let states = layer_readiness(&client, "shop", &report.applied)
        .await
        .unwrap();
    let not_ready: Vec<String> = states
        .iter()
        .filter_map(|(key, state)| match state {
            Readiness::Ready => None,
            Readiness::NotReady { reason } | Readiness::Failed { reason } => {
                Some(format!("{}: {reason}", key.name))
            }
        })
        .collect();
    assert_eq!(not_ready.len(), 1, "{not_ready:?}");
    assert!(not_ready[0].starts_with("web: "), "{not_ready:?}");

    // Another manager changes a field the layer owns and adds one it does not: the next
    // apply sets the first back and leaves the second.
    shop.patch(
        "settings",
        &PatchParams::apply("someone-else").force(),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "shop"},
            "data": {"level": "debug", "extra": "kept"},
        })),
    )
    .await
    .unwrap();
    let again = apply_manifest_layer(&client, &layer(&one), AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();
    assert!(again.pruned.is_empty());
    let data = shop.get("settings").await.unwrap().data.unwrap();
    assert_eq!(data["level"], "info");
    assert_eq!(data["extra"], "kept");

    // Version two drops the Widget and a ConfigMap: both pruned, the Widget first
    // (reverse install order); the rest stays.
    let two = version_two();
    let report = apply_manifest_layer(&client, &layer(&two), AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();
    assert_eq!(
        keys(&report.pruned),
        ["Widget/shop/w1", "ConfigMap/shop/extra"]
    );
    assert!(shop.get_opt("extra").await.unwrap().is_none());
    assert!(widgets.get_opt("w1").await.unwrap().is_none());
    assert!(shop.get_opt("settings").await.unwrap().is_some());
    let annotations = config_maps
        .get("strata-layer-shop")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap();
    assert_eq!(
        annotations["applyset.kubernetes.io/contains-group-kinds"],
        "ConfigMap,CustomResourceDefinition.apiextensions.k8s.io,Deployment.apps,Namespace"
    );
    // Applied again, nothing more to prune.
    let report = apply_manifest_layer(&client, &layer(&two), AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();
    assert!(report.pruned.is_empty());

    // Someone on the site labels an object of theirs into the set: the agent never applied
    // it, so it is not the agent's to delete.
    shop.patch(
        "planted",
        &PatchParams::apply("site-user"),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "planted", "namespace": "shop",
                         "labels": {"applyset.kubernetes.io/part-of": id.clone()}},
        })),
    )
    .await
    .unwrap();
    let report = apply_manifest_layer(&client, &layer(&two), AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();
    assert!(report.pruned.is_empty(), "{:?}", report.pruned);
    assert!(shop.get_opt("planted").await.unwrap().is_some());

    // An object that belongs to another set is not taken over.
    shop.patch(
        "foreign",
        &PatchParams::apply("other-tool"),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "foreign", "namespace": "shop",
                         "labels": {"applyset.kubernetes.io/part-of": "applyset-other-v1"}},
        })),
    )
    .await
    .unwrap();
    let taking = format!(
        "{two}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: foreign\n  labels: {{applyset.kubernetes.io/part-of: applyset-other-v1}}\n"
    );
    let error = apply_manifest_layer(&client, &layer(&taking), AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(error, LayerApplyError::ApplySet { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("applyset-other-v1"), "{error}");

    // An object the apiserver refuses (a selector that does not match its pods) stops the
    // layer naming the object, and nothing is pruned: the ConfigMap this version no longer
    // renders is still there, and the parent still names its kind.
    let refused = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: y}}\n    spec: {containers: [{name: c, image: nginx}]}\n";
    let error = apply_manifest_layer(&client, &layer(refused), AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap_err();
    match &error {
        LayerApplyError::Write {
            layer,
            object,
            action,
            ..
        } => {
            assert_eq!(layer, "shop");
            assert_eq!(object, "Deployment.apps shop/bad");
            assert_eq!(*action, "server-side apply");
        }
        other => panic!("expected the apiserver's refusal, got {other:?}"),
    }
    assert!(error.to_string().contains("selector"), "{error}");
    assert!(shop.get_opt("settings").await.unwrap().is_some());
    let annotations = config_maps
        .get("strata-layer-shop")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap();
    assert!(
        annotations["applyset.kubernetes.io/contains-group-kinds"].contains("ConfigMap"),
        "{annotations:?}"
    );
}

const GADGET_CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "gadgets.example.strata.dev"},
 "spec": {"group": "example.strata.dev", "scope": "Namespaced",
  "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
  "versions": [{"name": "v1", "served": true, "storage": true,
   "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;

/// A custom resource whose CRD an operator creates when it starts (not the layer) is
/// applied once the kind is served; one whose kind never comes fails naming it; and a kind
/// no longer served has nothing left to prune.
#[tokio::test]
async fn a_kind_an_operator_creates_is_waited_for() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("layer-kinds")
    })
    .await
    .unwrap();
    let client = cp.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in ["strata-system", "ops"] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap(),
            )
            .await
            .unwrap();
    }
    let rendered = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: operator-settings}\n---\n\
                    apiVersion: example.strata.dev/v1\nkind: Gadget\nmetadata: {name: g1}\nspec: {a: 1}\n";
    let layer = ManifestLayer {
        name: "ops",
        namespace: "ops",
        rendered,
    };

    // Nothing creates the kind: the layer fails after the wait, naming the object, and
    // applies nothing.
    let error = apply_manifest_layer(&client, &layer, AGENT_FIELD_MANAGER, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(error, LayerApplyError::KindNotServed { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("Gadget.example.strata.dev ops/g1"),
        "{error}"
    );
    let ops: Api<ConfigMap> = Api::namespaced(client.clone(), "ops");
    assert!(ops.get_opt("operator-settings").await.unwrap().is_none());

    // "The operator" creates its CRD a moment after the layer starts.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let operator = {
        let crds = crds.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            crds.create(
                &PostParams::default(),
                &serde_json::from_str(GADGET_CRD).unwrap(),
            )
            .await
            .unwrap();
        })
    };
    let report = apply_manifest_layer(&client, &layer, AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();
    operator.await.unwrap();
    assert_eq!(
        keys(&report.applied),
        ["ConfigMap/ops/operator-settings", "Gadget/ops/g1"]
    );

    // The CRD goes (uninstalled with its operator); the next version has no Gadget, and
    // pruning skips the kind nobody serves any more.
    crds.delete("gadgets.example.strata.dev", &Default::default())
        .await
        .unwrap();
    let gadgets_gone = async {
        while kube::discovery::pinned_kind(
            &client,
            &GroupVersionKind::gvk("example.strata.dev", "v1", "Gadget"),
        )
        .await
        .is_ok()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), gadgets_gone)
        .await
        .unwrap();
    let settings_only = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: operator-settings}\n";
    let report = apply_manifest_layer(
        &client,
        &ManifestLayer {
            name: "ops",
            namespace: "ops",
            rendered: settings_only,
        },
        AGENT_FIELD_MANAGER,
        WAIT,
    )
    .await
    .unwrap();
    assert!(report.pruned.is_empty(), "{:?}", report.pruned);
    assert_eq!(keys(&report.applied), ["ConfigMap/ops/operator-settings"]);
}

async fn create_namespaces(client: &kube::Client, names: &[&str]) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in names {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap(),
            )
            .await
            .unwrap();
    }
}

// The Service and the Deployment's CPU limit are stored with the apiserver's defaults and
// normalisations (`clusterIP`, `targetPort`, `sessionAffinity`, `1000m` as `1`): neither is
// drift. (The port names its protocol: this apiserver's server-side apply refuses a port
// without it, the key of the ports list.)
const DRIFT_LAYER: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: drift}\n---\n\
apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {level: info}\n---\n\
apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n          resources: {limits: {cpu: 1000m}}\n---\n\
apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, protocol: TCP}]\n";

fn corrections(report: &strata_shared::layer_apply::DriftReport) -> Vec<String> {
    report
        .corrections
        .iter()
        .map(|correction| {
            let object = keys(std::slice::from_ref(&correction.object)).join("");
            match &correction.kind {
                DriftKind::Recreated => format!("{object}: re-created"),
                DriftKind::FieldReset { field } => format!("{object}: {field} set back"),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_drift_pass_recreates_what_was_deleted_and_sets_back_what_was_changed() {
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("layer-drift")
    })
    .await
    .unwrap();
    let client = cp.client();
    create_namespaces(&client, &["strata-system"]).await;
    let layer = ManifestLayer {
        name: "drift",
        namespace: "drift",
        rendered: DRIFT_LAYER,
    };
    apply_manifest_layer(&client, &layer, AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();

    // Nothing changed: nothing to correct, whatever the apiserver added.
    let report = correct_drift(&client, &layer, AGENT_FIELD_MANAGER)
        .await
        .unwrap();
    assert_eq!(report.checked, 4);
    assert_eq!(corrections(&report), Vec::<String>::new());

    // The Deployment is deleted; another manager changes a field the layer sets and adds
    // one it does not.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "drift");
    deployments
        .delete("web", &Default::default())
        .await
        .unwrap();
    assert!(deployments.get_opt("web").await.unwrap().is_none());
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "drift");
    config_maps
        .patch(
            "settings",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": "drift"},
                "data": {"level": "debug", "extra": "kept"},
            })),
        )
        .await
        .unwrap();

    let report = correct_drift(&client, &layer, AGENT_FIELD_MANAGER)
        .await
        .unwrap();
    assert_eq!(report.checked, 4);
    assert_eq!(
        corrections(&report),
        [
            "ConfigMap/drift/settings: data.level set back",
            "Deployment/drift/web: re-created",
        ]
    );
    let data = config_maps.get("settings").await.unwrap().data.unwrap();
    assert_eq!(data["level"], "info");
    assert_eq!(data["extra"], "kept");
    let web = deployments.get("web").await.unwrap();
    assert_eq!(web.spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(
        web.metadata.labels.unwrap()["applyset.kubernetes.io/part-of"],
        config_maps
            .get("settings")
            .await
            .unwrap()
            .metadata
            .labels
            .unwrap()["applyset.kubernetes.io/part-of"]
    );

    // Converged: the next pass has nothing to do, even a second or more after the last
    // apply, when re-applying `1000m` (stored as `1`) would move the manager's
    // managedFields time and so the resourceVersion. It writes nothing either: `1000m` and
    // `1` are one amount, so the Deployment is not applied again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let web: Api<Deployment> = Api::namespaced(client.clone(), "drift");
    let before = web.get("web").await.unwrap().metadata.resource_version;
    let report = correct_drift(&client, &layer, AGENT_FIELD_MANAGER)
        .await
        .unwrap();
    assert_eq!(corrections(&report), Vec::<String>::new());
    let after = web.get("web").await.unwrap().metadata.resource_version;
    assert_eq!(
        before, after,
        "a converged pass wrote the Deployment whose limit it holds as `1`"
    );
}

// Two Deployments the layer renders with 2 replicas; an autoscaler scales `web`.
const AUTOSCALED_LAYER: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: scaled}\n---\n\
apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: nginx}]}\n---\n\
apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: plain}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: plain}}\n  template:\n    metadata: {labels: {app: plain}}\n    spec: {containers: [{name: plain, image: nginx}]}\n---\n\
apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 1\n  maxReplicas: 5\n";

/// The autoscaler's count, as the HPA controller sets it: through the scale subresource.
async fn scale(deployments: &Api<Deployment>, name: &str, replicas: i32) {
    deployments
        .patch_scale(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
}

async fn replicas(deployments: &Api<Deployment>, name: &str) -> Option<i32> {
    deployments.get(name).await.unwrap().spec.unwrap().replicas
}

#[tokio::test]
async fn the_replicas_an_autoscaler_sets_are_left_to_it() {
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("layer-hpa")
    })
    .await
    .unwrap();
    let client = cp.client();
    create_namespaces(&client, &["strata-system"]).await;
    let layer = ManifestLayer {
        name: "scaled",
        namespace: "scaled",
        rendered: AUTOSCALED_LAYER,
    };
    apply_manifest_layer(&client, &layer, AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "scaled");
    scale(&deployments, "web", 4).await;
    scale(&deployments, "plain", 5).await;

    // The autoscaled count stays; the other one is the layer's, and is set back.
    let report = correct_drift(&client, &layer, AGENT_FIELD_MANAGER)
        .await
        .unwrap();
    assert_eq!(
        corrections(&report),
        ["Deployment/scaled/plain: spec.replicas set back"]
    );
    assert_eq!(replicas(&deployments, "web").await, Some(4));
    assert_eq!(replicas(&deployments, "plain").await, Some(2));

    // Applied again (a new version of the layer, a restarted agent): the same, and the
    // layer let go of the field without resetting it.
    apply_manifest_layer(&client, &layer, AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();
    assert_eq!(replicas(&deployments, "web").await, Some(4));
    scale(&deployments, "web", 3).await;
    apply_manifest_layer(&client, &layer, AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();
    let report = correct_drift(&client, &layer, AGENT_FIELD_MANAGER)
        .await
        .unwrap();
    assert_eq!(corrections(&report), Vec::<String>::new());
    assert_eq!(replicas(&deployments, "web").await, Some(3));
    let owners: Vec<String> = deployments
        .get("web")
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| {
            entry.manager.as_deref() == Some(AGENT_FIELD_MANAGER)
                && entry
                    .fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        })
        .map(|entry| format!("{entry:?}"))
        .collect();
    assert!(
        owners.is_empty(),
        "the agent still owns web's replicas: {owners:?}"
    );
}

/// Not a test: what a drift pass over an unchanged layer of 500 ConfigMaps costs, against
/// applying the same layer again. `cargo nextest run -p strata-e2e --test layer_apply
/// --run-ignored only --no-capture drift_pass_cost`.
#[tokio::test]
#[ignore]
async fn drift_pass_cost() {
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("layer-drift-cost")
    })
    .await
    .unwrap();
    let client = cp.client();
    create_namespaces(&client, &["strata-system", "bulk"]).await;
    let rendered: String = (0..500)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: setting-{i}}}\ndata: {{level: info, index: \"{i}\"}}\n"
            )
        })
        .collect();
    let layer = ManifestLayer {
        name: "bulk",
        namespace: "bulk",
        rendered: &rendered,
    };
    apply_manifest_layer(&client, &layer, AGENT_FIELD_MANAGER, WAIT)
        .await
        .unwrap();

    let mut applies = Vec::new();
    let mut passes = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let report = apply_manifest_layer(&client, &layer, AGENT_FIELD_MANAGER, WAIT)
            .await
            .unwrap();
        applies.push(started.elapsed());
        assert_eq!(report.applied.len(), 500);
        let started = Instant::now();
        let report = correct_drift(&client, &layer, AGENT_FIELD_MANAGER)
            .await
            .unwrap();
        passes.push(started.elapsed());
        assert_eq!(report.checked, 500);
        assert!(report.corrections.is_empty(), "{:?}", report.corrections);
    }
    applies.sort();
    passes.sort();
    let (apply, pass) = (applies[1], passes[1]);
    println!(
        "500 ConfigMaps, unchanged, median of 3: re-apply {apply:?}, drift pass {pass:?}, ratio {:.1}x (re-applies {applies:?}, passes {passes:?})",
        apply.as_secs_f64() / pass.as_secs_f64()
    );
}
