//! A chart layer's release through the helm CLI (`strata_shared::chart_release`), with the
//! tests' helm on the real Helm engine against a real apiserver: installed, upgraded,
//! read, uninstalled, and brought back after a helm killed mid-install or mid-upgrade,
//! with never a second release.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::Value;
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use strata_e2e::management::repo_root;
use strata_shared::chart_release::{
    ChartRelease, ChartReleaseError, install_or_upgrade, release_info, release_manifest, uninstall,
};
use strata_shared::helm_cli::Helm;

const HELM: &str = env!("CARGO_BIN_EXE_helm");
const NS: &str = "web";

fn chart() -> PathBuf {
    repo_root().join("manifests/samples/packs/hello-chart/charts/hello-web")
}

fn release(cp: &ControlPlane, name: &str, values: &str) -> ChartRelease {
    ChartRelease {
        name: name.to_string(),
        namespace: NS.to_string(),
        chart: chart(),
        values: serde_yaml::from_str(values).unwrap(),
        kubeconfig: cp.kubeconfig_path().to_path_buf(),
    }
}

fn helm() -> Helm {
    Helm::new(HELM).with_timeout(Duration::from_secs(60))
}

/// `helm list` in the namespace: the deployed and failed releases (the pending ones are
/// asked one by one with `release_info`).
fn releases(kubeconfig: &Path) -> Vec<(String, String)> {
    let output = Command::new(HELM)
        .args([
            "list",
            "--output",
            "json",
            "--namespace",
            NS,
            "--kubeconfig",
        ])
        .arg(kubeconfig)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let list: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    list.iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Starts `helm upgrade --install … --wait`, which waits forever here (no kubelet makes
/// the Deployment available), and kills it once the release is in `pending`.
fn kill_helm_mid_operation(cp: &ControlPlane, name: &str, values: &Path, pending: &str) {
    let mut child: Child = Command::new(HELM)
        .args(["upgrade", "--install", name])
        .arg(chart())
        .args([
            "--namespace",
            NS,
            "--create-namespace",
            "--wait",
            "--timeout",
            "300s",
        ])
        .arg("--values")
        .arg(values)
        .arg("--kubeconfig")
        .arg(cp.kubeconfig_path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = release_info(&helm(), cp.kubeconfig_path(), NS, name).unwrap();
        if info.as_ref().is_some_and(|i| i.status == pending) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {pending}: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

async fn replicas(cp: &ControlPlane, name: &str) -> Option<i32> {
    let api: Api<Deployment> = Api::namespaced(cp.client(), NS);
    api.get(name).await.unwrap().spec.unwrap().replicas
}

#[tokio::test]
async fn releases_install_upgrade_recover_and_uninstall_without_duplicates() {
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("chart-release")
    })
    .await
    .unwrap();
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    let helm = helm();

    // Installed once, then upgraded with changed values; the manifest is the release's.
    let first = install_or_upgrade(&helm, &release(&cp, "hello", "replicaCount: 1\n")).unwrap();
    assert_eq!((first.revision, first.status.as_str()), (1, "deployed"));
    let second = install_or_upgrade(&helm, &release(&cp, "hello", "replicaCount: 3\n")).unwrap();
    assert_eq!((second.revision, second.status.as_str()), (2, "deployed"));
    assert_eq!(replicas(&cp, "hello-hello-web").await, Some(3));
    let manifest = release_manifest(&helm, &kubeconfig, NS, "hello").unwrap();
    assert!(
        manifest.contains("kind: Deployment") && manifest.contains("replicas: 3"),
        "{manifest}"
    );

    // helm killed during a first install leaves `pending-install`: uninstalled and
    // installed again, as one release.
    let values = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(values.path(), "replicaCount: 2\n").unwrap();
    kill_helm_mid_operation(&cp, "stuck", values.path(), "pending-install");
    let recovered = install_or_upgrade(&helm, &release(&cp, "stuck", "replicaCount: 2\n")).unwrap();
    assert_eq!(recovered.status, "deployed");
    assert_eq!(replicas(&cp, "stuck-hello-web").await, Some(2));

    // helm killed during an upgrade leaves `pending-upgrade`: rolled back to the last
    // deployed revision, then upgraded.
    std::fs::write(values.path(), "replicaCount: 4\n").unwrap();
    kill_helm_mid_operation(&cp, "hello", values.path(), "pending-upgrade");
    let upgraded = install_or_upgrade(&helm, &release(&cp, "hello", "replicaCount: 5\n")).unwrap();
    assert_eq!(upgraded.status, "deployed");
    assert!(upgraded.revision >= 4, "{upgraded:?}");
    assert_eq!(replicas(&cp, "hello-hello-web").await, Some(5));

    let mut listed = releases(&kubeconfig);
    listed.sort();
    assert_eq!(
        listed,
        [
            ("hello".to_string(), "deployed".to_string()),
            ("stuck".to_string(), "deployed".to_string())
        ],
        "one release each"
    );
    for name in ["hello", "stuck"] {
        let info = release_info(&helm, &kubeconfig, NS, name).unwrap().unwrap();
        assert_eq!(info.status, "deployed", "{name}: none left pending");
    }

    // A chart that does not render fails naming the release and the command.
    let mut broken = release(&cp, "broken", "");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("Chart.yaml"),
        "apiVersion: v2\nname: broken\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("templates/a.yaml"),
        "a: {{ .Values.x | nope }}\n",
    )
    .unwrap();
    broken.chart = dir.path().to_path_buf();
    let error = install_or_upgrade(&helm, &broken).unwrap_err();
    match &error {
        ChartReleaseError::Helm {
            release,
            command,
            message,
        } => {
            assert_eq!(release, "web/broken");
            assert_eq!(command, "upgrade --install");
            assert!(
                message.contains("function \"nope\" not defined"),
                "{message}"
            );
        }
        other => panic!("expected a helm failure, got {other:?}"),
    }

    // Uninstalled once; a second time there is nothing to uninstall.
    assert!(uninstall(&helm, &kubeconfig, NS, "stuck").unwrap());
    assert!(!uninstall(&helm, &kubeconfig, NS, "stuck").unwrap());
    assert_eq!(release_info(&helm, &kubeconfig, NS, "stuck").unwrap(), None);
}
