//! The management cluster's Cluster API providers as `clusterctl init` would leave them,
//! and their provider packs, as a release pipeline would publish them: what the
//! controller hands a workload cluster before its move (`docs/providers.md`).
//!
//! The simulator plays the core provider, the kubeadm bootstrap and control-plane
//! providers and four infrastructure providers (sim, vSphere, AWS, Azure) in the
//! management cluster, so the inventory written here lists those. Each provider's pack
//! holds its Namespace and its CRDs as the management cluster serves them (the upstream
//! CRDs after the changes kube-apiserver 1.20 needs, `crate::capi_crds`); each
//! infrastructure provider's pack also holds the simulator's controllers
//! (`manifests/samples/providers/sim-controllers.yaml`), with clusterctl's variables
//! set in its values.yaml. `crate::management` writes the inventory and publishes the
//! packs.

use std::fs;
use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use serde_json::{Value, json};
use strata_shared::provider::ProviderKind;

/// The image the simulator's controllers run as in a workload cluster (the process
/// kubelet runs the `strata-sim-cloud` binary for it).
pub const SIM_IMAGE: &str = concat!("strata-sim-cloud:", env!("CARGO_PKG_VERSION"));
/// The infrastructure providers the simulator plays.
pub const SIMULATED_INFRASTRUCTURES: [&str; 4] = ["sim", "vsphere", "aws", "azure"];
/// The version the inventory gives the simulated providers: that of the upstream CRDs
/// for the core and kubeadm providers (Cluster API 1.11, the first with `v1beta2`
/// storage), the project's own for the infrastructure providers the simulator plays.
const CORE_VERSION: &str = "v1.11.0";
const SIM_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// One provider as the inventory lists it and its pack carries it.
#[derive(Debug, Clone)]
pub struct SimulatedProvider {
    pub kind: ProviderKind,
    pub name: &'static str,
    pub version: &'static str,
    pub namespace: &'static str,
}

impl SimulatedProvider {
    pub fn pack(&self) -> String {
        self.kind.pack_name(self.name)
    }

    /// Whether `crd` is one of this provider's.
    fn owns(&self, crd: &CustomResourceDefinition) -> bool {
        let group = crd.spec.group.as_str();
        match self.kind {
            ProviderKind::CoreProvider => matches!(
                group,
                "cluster.x-k8s.io"
                    | "addons.cluster.x-k8s.io"
                    | "ipam.cluster.x-k8s.io"
                    | "runtime.cluster.x-k8s.io"
            ),
            ProviderKind::BootstrapProvider => group == "bootstrap.cluster.x-k8s.io",
            ProviderKind::ControlPlaneProvider => group == "controlplane.cluster.x-k8s.io",
            ProviderKind::InfrastructureProvider => {
                group == "infrastructure.cluster.x-k8s.io"
                    && crd.spec.names.plural.starts_with(self.name)
            }
            ProviderKind::CertManager => false,
        }
    }
}

/// Every provider the simulator plays, in install order.
pub fn simulated_providers() -> Vec<SimulatedProvider> {
    let mut providers = vec![
        SimulatedProvider {
            kind: ProviderKind::CoreProvider,
            name: "cluster-api",
            version: CORE_VERSION,
            namespace: "capi-system",
        },
        SimulatedProvider {
            kind: ProviderKind::BootstrapProvider,
            name: "kubeadm",
            version: CORE_VERSION,
            namespace: "capi-kubeadm-bootstrap-system",
        },
        SimulatedProvider {
            kind: ProviderKind::ControlPlaneProvider,
            name: "kubeadm",
            version: CORE_VERSION,
            namespace: "capi-kubeadm-control-plane-system",
        },
    ];
    providers.extend(
        SIMULATED_INFRASTRUCTURES
            .iter()
            .map(|name| SimulatedProvider {
                kind: ProviderKind::InfrastructureProvider,
                name,
                version: SIM_VERSION,
                // Where the simulator's controllers run.
                namespace: "capi-system",
            }),
    );
    providers
}

/// The CRD as a pack carries it: what the management cluster serves, without its
/// server-side state.
fn crd_for_pack(crd: &CustomResourceDefinition) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": crd.name_any(),
            "labels": crd.labels(),
        },
        "spec": crd.spec,
    })
}

fn yaml_documents(objects: &[Value]) -> Result<String, String> {
    let mut text = String::new();
    for object in objects {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(object).map_err(|e| e.to_string())?);
    }
    Ok(text)
}

/// Writes `provider`'s pack into `dir`: its Namespace and CRDs, and for an infrastructure
/// provider the simulator's controllers running at `speed` (`fast` or `cloud`).
pub fn write_pack(
    provider: &SimulatedProvider,
    crds: &[CustomResourceDefinition],
    speed: &str,
    dir: &Path,
) -> Result<(), String> {
    let manifests = dir.join("manifests");
    fs::create_dir_all(&manifests).map_err(|e| format!("{}: {e}", manifests.display()))?;
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": provider.namespace },
    })];
    objects.extend(crds.iter().filter(|c| provider.owns(c)).map(crd_for_pack));
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("manifests/components.yaml", &yaml_documents(&objects)?)?;
    let mut files = vec!["manifests/components.yaml"];
    let mut values = json!({ "pack": { "namespace": provider.namespace } });
    if provider.kind == ProviderKind::InfrastructureProvider {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/samples/providers/sim-controllers.yaml");
        let controllers =
            fs::read_to_string(&source).map_err(|e| format!("{}: {e}", source.display()))?;
        write("manifests/controllers.yaml", &controllers)?;
        files.push("manifests/controllers.yaml");
        values["variables"] = json!({ "SIM_IMAGE": SIM_IMAGE, "SIM_SPEED": speed });
    }
    let pack = json!({
        "name": provider.pack(),
        "displayName": format!("{} {} (simulated)", provider.kind, provider.name),
        "version": strata_shared::provider::pack_version(provider.version),
        "layer": "addon",
        "addonType": "cluster api provider",
        "cloudTypes": ["all"],
        "kubeManifests": files,
    });
    write(
        "pack.json",
        &serde_json::to_string_pretty(&pack).map_err(|e| e.to_string())?,
    )?;
    write(
        "values.yaml",
        &serde_yaml::to_string(&values).map_err(|e| e.to_string())?,
    )
}
