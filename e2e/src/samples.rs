//! The repository's sample manifests (`manifests/samples/`), read and applied into a test's
//! namespace, whole or edited.
//!
//! A sample that cannot be read or applied panics with the file or the error named: these
//! are for tests, where a broken sample is the failure.

use kube::Client;
use serde_json::{Value, json};

use crate::management::{apply, ensure_namespace, read_documents, repo_root};

/// Every document of `manifests/samples/<path>`, as JSON.
pub fn sample(path: &str) -> Vec<Value> {
    read_documents(&repo_root().join("manifests/samples").join(path))
        .unwrap_or_else(|e| panic!("the sample {path}: {e}"))
}

/// Applies a sample's documents into `namespace` (overriding theirs), each after `edit`.
pub async fn apply_sample(client: &Client, path: &str, namespace: &str, edit: impl Fn(&mut Value)) {
    for mut document in sample(path) {
        document["metadata"]["namespace"] = json!(namespace);
        edit(&mut document);
        apply(client, &document)
            .await
            .unwrap_or_else(|e| panic!("applying the sample {path} into {namespace}: {e}"));
    }
}

/// The sim sample as `namespace/name`, with one control-plane node and one worker: the
/// pivot happens at the first node all the same, and the scale-out after it is short.
/// With `orphan`, deleting it forgets the cluster without the move back and leaves its
/// cloud resources (`deletionPolicy: Orphan`).
pub async fn apply_small_sim_cluster(client: &Client, namespace: &str, name: &str, orphan: bool) {
    ensure_namespace(client, namespace)
        .await
        .unwrap_or_else(|e| panic!("creating the namespace {namespace}: {e}"));
    apply_sample(client, "clusters/sim-demo.yaml", namespace, |document| {
        document["metadata"]["name"] = json!(name);
        document["spec"]["nodePools"]["controlPlane"]["count"] = json!(1);
        document["spec"]["nodePools"]["workers"][0]["count"] = json!(1);
        if orphan {
            document["spec"]["deletionPolicy"] = json!("Orphan");
        }
    })
    .await;
}

/// A copy of the sample pack `manifests/samples/packs/<pack>` in `to`, to publish changed
/// (a new version, other values).
pub fn copy_sample_pack(pack: &str, to: &std::path::Path) {
    copy_dir(&repo_root().join("manifests/samples/packs").join(pack), to);
}

/// The ConfigMap that opens a site's gate for [`write_gated_chart_pack`]'s chart.
pub const CHART_GATE: (&str, &str) = ("kube-public", "chart-gate");

/// A chart that does not render while the site has not opened its gate (the ConfigMap
/// `kube-public/chart-gate`): helm's `fail` at install time, the way a chart refuses
/// values or a cluster it cannot run on. Its release is `gated`, in `gated`.
pub fn write_gated_chart_pack(dir: &std::path::Path) {
    let templates = dir.join("charts/gated/templates");
    std::fs::create_dir_all(&templates)
        .unwrap_or_else(|e| panic!("writing the gated chart pack in {}: {e}", dir.display()));
    std::fs::write(
        dir.join("pack.json"),
        r#"{"name": "gated-chart", "displayName": "Renders once the site opens its gate", "version": "1.0.0", "layer": "addon", "addonType": "app services", "cloudTypes": ["all"], "charts": ["charts/gated"]}"#,
    )
    .unwrap_or_else(|e| panic!("writing the gated chart pack in {}: {e}", dir.display()));
    std::fs::write(
        dir.join("values.yaml"),
        "pack:\n  namespace: gated\ncharts:\n  gated:\n    state: open\n",
    )
    .unwrap_or_else(|e| panic!("writing the gated chart pack in {}: {e}", dir.display()));
    std::fs::write(
        dir.join("charts/gated/Chart.yaml"),
        "apiVersion: v2\nname: gated\nversion: 1.0.0\n",
    )
    .unwrap_or_else(|e| panic!("writing the gated chart pack in {}: {e}", dir.display()));
    std::fs::write(dir.join("charts/gated/values.yaml"), "state: closed\n")
        .unwrap_or_else(|e| panic!("writing the gated chart pack in {}: {e}", dir.display()));
    std::fs::write(
        templates.join("configmap.yaml"),
        "{{- if not (lookup \"v1\" \"ConfigMap\" \"kube-public\" \"chart-gate\") }}\n\
         {{- fail \"the site has not opened kube-public/chart-gate\" }}\n\
         {{- end }}\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gated\n\
         data:\n  state: {{ .Values.state | quote }}\n",
    )
    .unwrap_or_else(|e| panic!("writing the gated chart pack in {}: {e}", dir.display()));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    fn or_panic<T>(result: std::io::Result<T>, from: &std::path::Path, to: &std::path::Path) -> T {
        result.unwrap_or_else(|e| panic!("copying {} to {}: {e}", from.display(), to.display()))
    }
    or_panic(std::fs::create_dir_all(to), from, to);
    for entry in or_panic(std::fs::read_dir(from), from, to) {
        let entry = or_panic(entry, from, to);
        let target = to.join(entry.file_name());
        if or_panic(entry.file_type(), from, to).is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            or_panic(std::fs::copy(entry.path(), &target), from, to);
        }
    }
}
