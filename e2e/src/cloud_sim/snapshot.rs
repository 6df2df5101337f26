//! One pass's view of an apiserver: every CAPI object the simulator plays, listed once,
//! and grouped per Cluster. Controllers decide from the snapshot and write; the next pass
//! lists again and sees what they wrote (level-triggered, like an informer resync).

use std::collections::HashMap;

use serde_json::Value;

use super::SimError;
use super::api::Kube;
use super::kinds::{
    CLUSTER, KUBEADM_CONFIG, KUBEADM_CONTROL_PLANE, Kind, MACHINE, MACHINE_DEPLOYMENT,
    MACHINE_HEALTH_CHECK, MACHINE_SET, Provider,
};
use super::objects::{CONTROL_PLANE_LABEL, bool_at, is_deleting, label, name, namespace, str_at};
use super::providers;

#[derive(Debug, Default)]
pub struct Snapshot {
    pub clusters: Vec<Value>,
    kcps: Vec<Value>,
    mds: Vec<Value>,
    mss: Vec<Value>,
    machines: Vec<Value>,
    health_checks: Vec<Value>,
    configs: Vec<Value>,
    infra_clusters: Vec<(Provider, Value)>,
    infra_machines: Vec<(Provider, Value)>,
}

/// The providers of the Clusters' infrastructure references; every provider when one
/// names none the simulator knows (nothing of it is then left out).
fn providers_named(clusters: &[Value]) -> Vec<Provider> {
    let mut named = Vec::new();
    for cluster in clusters {
        match str_at(cluster, "/spec/infrastructureRef/kind").and_then(Provider::of_kind) {
            Some(provider) if !named.contains(&provider) => named.push(provider),
            Some(_) => {}
            None => return Provider::ALL.to_vec(),
        }
    }
    named
}

impl Snapshot {
    /// Lists the Clusters, then what they may have: nothing more without a Cluster, and
    /// only the infrastructure kinds of the providers the Clusters name.
    pub async fn load(kube: &Kube, ns: Option<&str>) -> Result<Snapshot, SimError> {
        let list = |kind: Kind| async move { kube.list(&kind, ns).await };
        let clusters = list(CLUSTER).await?;
        if clusters.is_empty() {
            return Ok(Snapshot::default());
        }
        let providers = providers_named(&clusters);
        let mut snapshot = Snapshot {
            clusters,
            kcps: list(KUBEADM_CONTROL_PLANE).await?,
            mds: list(MACHINE_DEPLOYMENT).await?,
            mss: list(MACHINE_SET).await?,
            machines: list(MACHINE).await?,
            health_checks: list(MACHINE_HEALTH_CHECK).await?,
            configs: list(KUBEADM_CONFIG).await?,
            ..Snapshot::default()
        };
        for provider in providers {
            for object in list(provider.cluster_kind()).await? {
                snapshot.infra_clusters.push((provider, object));
            }
            for object in list(provider.machine_kind()).await? {
                snapshot.infra_machines.push((provider, object));
            }
        }
        Ok(snapshot)
    }

    /// The objects of one Cluster.
    pub fn view<'a>(&'a self, cluster: &'a Value) -> ClusterView<'a> {
        let ns = namespace(cluster);
        let cluster_name = name(cluster);
        let same_ns = |o: &&Value| namespace(o) == ns;
        let of_cluster =
            |o: &&Value| same_ns(o) && str_at(o, "/spec/clusterName") == Some(cluster_name);
        let by_ref = |pointer: &str| {
            let kind = str_at(cluster, &format!("{pointer}/kind"))?;
            let ref_name = str_at(cluster, &format!("{pointer}/name"))?;
            Some((kind, ref_name))
        };
        let kcp = by_ref("/spec/controlPlaneRef").and_then(|(kind, ref_name)| {
            (kind == KUBEADM_CONTROL_PLANE.kind)
                .then(|| {
                    self.kcps
                        .iter()
                        .filter(same_ns)
                        .find(|k| name(k) == ref_name)
                })
                .flatten()
        });
        let infra = by_ref("/spec/infrastructureRef").and_then(|(kind, ref_name)| {
            self.infra_clusters
                .iter()
                .find(|(p, o)| {
                    p.cluster_kind().kind == kind && namespace(o) == ns && name(o) == ref_name
                })
                .map(|(p, o)| (*p, o))
        });
        ClusterView {
            cluster,
            namespace: ns,
            name: cluster_name,
            infra,
            kcp,
            mds: self.mds.iter().filter(of_cluster).collect(),
            mss: self.mss.iter().filter(of_cluster).collect(),
            machines: self.machines.iter().filter(of_cluster).collect(),
            health_checks: self.health_checks.iter().filter(of_cluster).collect(),
            configs: self
                .configs
                .iter()
                .filter(same_ns)
                .map(|c| (name(c), c))
                .collect(),
            infra_machines: self
                .infra_machines
                .iter()
                .filter(|(_, o)| namespace(o) == ns)
                .map(|(p, o)| ((p.machine_kind().kind, name(o)), (*p, o)))
                .collect(),
        }
    }
}

/// A Cluster and the objects that belong to it.
pub struct ClusterView<'a> {
    pub cluster: &'a Value,
    pub namespace: &'a str,
    pub name: &'a str,
    pub infra: Option<(Provider, &'a Value)>,
    pub kcp: Option<&'a Value>,
    pub mds: Vec<&'a Value>,
    pub mss: Vec<&'a Value>,
    pub machines: Vec<&'a Value>,
    pub health_checks: Vec<&'a Value>,
    configs: HashMap<&'a str, &'a Value>,
    infra_machines: HashMap<(&'static str, &'a str), (Provider, &'a Value)>,
}

impl<'a> ClusterView<'a> {
    /// The Cluster is paused (`spec.paused` or the paused annotation): nothing of it may
    /// change.
    pub fn paused(&self) -> bool {
        bool_at(self.cluster, "/spec/paused") || super::objects::is_paused(self.cluster)
    }

    pub fn infra_provisioned(&self) -> bool {
        self.infra
            .is_some_and(|(provider, infra)| providers::is_provisioned(provider, infra))
    }

    pub fn control_plane_initialized(&self) -> bool {
        self.kcp
            .is_some_and(|kcp| bool_at(kcp, "/status/initialization/controlPlaneInitialized"))
    }

    /// The infrastructure machine a Machine references.
    pub fn infra_machine(&self, machine: &Value) -> Option<(Provider, &'a Value)> {
        let kind = str_at(machine, "/spec/infrastructureRef/kind")?;
        let ref_name = str_at(machine, "/spec/infrastructureRef/name")?;
        let provider = Provider::of_kind(kind)?;
        self.infra_machines
            .get(&(provider.machine_kind().kind, ref_name))
            .copied()
    }

    /// The KubeadmConfig a Machine references.
    pub fn config(&self, machine: &Value) -> Option<&'a Value> {
        let ref_name = str_at(machine, "/spec/bootstrap/configRef/name")?;
        self.configs.get(ref_name).copied()
    }

    pub fn is_control_plane(machine: &Value) -> bool {
        label(machine, CONTROL_PLANE_LABEL).is_some()
    }

    /// Machines not being deleted.
    pub fn live<'b>(machines: &'b [&'a Value]) -> impl Iterator<Item = &'a Value> + 'b {
        machines.iter().copied().filter(|m| !is_deleting(m))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_providers_the_clusters_name_are_listed_or_all_when_one_names_none() {
        let cluster = |kind: &str| json!({ "spec": { "infrastructureRef": { "kind": kind } } });
        assert_eq!(
            providers_named(&[cluster("SimCluster"), cluster("SimCluster")]),
            [Provider::Sim]
        );
        assert_eq!(
            providers_named(&[cluster("AWSCluster"), cluster("SimCluster")]),
            [Provider::Aws, Provider::Sim]
        );
        assert_eq!(
            providers_named(&[cluster("SimCluster"), json!({ "spec": {} })]),
            Provider::ALL
        );
        assert_eq!(providers_named(&[cluster("DockerCluster")]), Provider::ALL);
    }
}
