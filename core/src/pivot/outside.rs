//! The objects outside the namespace that a move needs: the cluster-scoped identities the
//! namespace's objects name, and the Secrets those identities read from the provider's
//! namespace. They are fetched one by one by name, because the agent may `get` its own
//! cluster's identity and Secret but may not list anyone else's.

use std::collections::{BTreeMap, BTreeSet};

use super::objects::{GroupKind, MoveKind, SourceObject};
use super::refs::spec_refs;

/// An object to read by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedObject {
    pub kind: MoveKind,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for WantedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind.kind, self.name),
            None => write!(f, "{} {}", self.kind.kind, self.name),
        }
    }
}

/// What the `objects` read so far (the namespace's, plus whatever was fetched) reference
/// outside `namespace` and is not among them yet, sorted. A caller fetches these, adds
/// what it found and asks again until nothing new is wanted: an identity fetched this
/// round names its Secret only in the next.
///
/// Only references the plan follows out of the namespace count: identities that may be
/// cluster-scoped, when their kind is, and identities' Secrets in the provider's namespace.
/// Kinds not discovered are skipped: the plan could not move them anyway.
pub fn unread_references(
    namespace: &str,
    kinds: &[MoveKind],
    objects: &[SourceObject],
) -> Vec<WantedObject> {
    let kinds: BTreeMap<GroupKind, &MoveKind> =
        kinds.iter().map(|kind| (kind.group_kind(), kind)).collect();
    let secret = MoveKind::secret();
    let read: BTreeSet<(GroupKind, Option<&str>, &str)> = objects
        .iter()
        .map(|o| (o.kind.group_kind(), o.namespace.as_deref(), o.name.as_str()))
        .collect();
    let mut wanted: BTreeMap<(GroupKind, Option<String>, String), WantedObject> = BTreeMap::new();
    let movable = |object: &SourceObject| {
        let group_kind = object.kind.group_kind();
        group_kind == secret.group_kind() || kinds.get(&group_kind).is_some_and(|k| k.is_movable())
    };
    for object in objects.iter().filter(|o| movable(o)) {
        for spec_ref in spec_refs(object) {
            let group_kind = GroupKind::new(&spec_ref.group, &spec_ref.kind);
            let (kind, scope) = if spec_ref.crosses_namespace {
                match spec_ref.namespace.as_deref() {
                    Some(other) if other != namespace && group_kind == secret.group_kind() => {
                        (&secret, Some(other.to_string()))
                    }
                    _ => continue,
                }
            } else if spec_ref.may_be_cluster_scoped
                && spec_ref.namespace.is_none()
                && let Some(kind) = kinds.get(&group_kind)
                && !kind.namespaced
                && kind.is_movable()
            {
                (*kind, None)
            } else {
                continue;
            };
            if read.contains(&(group_kind.clone(), scope.as_deref(), spec_ref.name.as_str())) {
                continue;
            }
            wanted
                .entry((group_kind, scope.clone(), spec_ref.name.clone()))
                .or_insert_with(|| WantedObject {
                    kind: kind.clone(),
                    namespace: scope,
                    name: spec_ref.name.clone(),
                });
        }
    }
    wanted.into_values().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    const INFRA: &str = "infrastructure.cluster.x-k8s.io/v1beta2";

    fn kind(kind: &str, plural: &str, namespaced: bool) -> MoveKind {
        MoveKind {
            group: "infrastructure.cluster.x-k8s.io".into(),
            version: "v1beta2".into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            status_subresource: false,
            clusterctl: true,
            move_label: false,
            move_hierarchy_label: false,
        }
    }

    fn kinds() -> Vec<MoveKind> {
        vec![
            kind("VSphereCluster", "vsphereclusters", true),
            kind("VSphereClusterIdentity", "vsphereclusteridentities", false),
            kind("AWSCluster", "awsclusters", true),
            kind(
                "AWSClusterStaticIdentity",
                "awsclusterstaticidentities",
                false,
            ),
            kind("AzureCluster", "azureclusters", true),
            kind("AzureClusterIdentity", "azureclusteridentities", true),
        ]
    }

    fn read(value: serde_json::Value) -> SourceObject {
        SourceObject::from_json(value).unwrap()
    }

    fn infra_cluster(kind: &str, identity_kind: &str) -> SourceObject {
        read(json!({
            "apiVersion": INFRA, "kind": kind,
            "metadata": {"name": "edge", "namespace": "team-edge", "uid": format!("uid-{kind}")},
            "spec": {"identityRef": {"kind": identity_kind, "name": "strata-team-edge"}},
        }))
    }

    fn identity(kind: &str, secret_field: &str, annotated: bool) -> SourceObject {
        let mut identity = json!({
            "apiVersion": INFRA, "kind": kind,
            "metadata": {"name": "strata-team-edge", "uid": format!("uid-{kind}-identity")},
            "spec": {secret_field: "strata-team-edge-credentials"},
        });
        if annotated {
            identity["metadata"]["annotations"] =
                json!({crate::contracts::labels::SECRET_NAMESPACE_ANNOTATION: "capv-system"});
        }
        read(identity)
    }

    fn described(wanted: &[WantedObject]) -> Vec<String> {
        wanted.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_cluster_scoped_identity_then_its_secret_in_the_provider_namespace() {
        let mut objects = vec![infra_cluster("VSphereCluster", "VSphereClusterIdentity")];
        assert_eq!(
            described(&unread_references("team-edge", &kinds(), &objects)),
            ["VSphereClusterIdentity strata-team-edge"]
        );
        objects.push(identity("VSphereClusterIdentity", "secretName", true));
        let wanted = unread_references("team-edge", &kinds(), &objects);
        assert_eq!(
            described(&wanted),
            ["Secret capv-system/strata-team-edge-credentials"]
        );
        assert_eq!(wanted[0].kind, MoveKind::secret());
        objects.push(read(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "strata-team-edge-credentials", "namespace": "capv-system", "uid": "uid-secret"},
        })));
        assert!(unread_references("team-edge", &kinds(), &objects).is_empty());
    }

    #[test]
    fn the_identities_the_controller_builds_lead_to_their_secrets() {
        use crate::capi::{IdentityInput, identity_objects};
        use crate::cluster::ClusterCloud;
        let account = crate::revision::AccountSettings {
            name: "account".into(),
            vsphere: None,
            azure: None,
        };
        let cases = [
            (
                ClusterCloud::Vsphere,
                "VSphereCluster",
                "VSphereClusterIdentity",
                "capv-system",
                [("username", "u"), ("password", "p")],
            ),
            (
                ClusterCloud::Aws,
                "AWSCluster",
                "AWSClusterStaticIdentity",
                "capa-system",
                [("AccessKeyID", "k"), ("SecretAccessKey", "s")],
            ),
        ];
        for (cloud, cluster_kind, identity_kind, provider_namespace, data) in cases {
            let secret_data = data
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let built = identity_objects(&IdentityInput {
                namespace: "team-edge",
                account: &account,
                cloud,
                secret_data: &secret_data,
                provider_namespace,
            })
            .unwrap();
            let mut identity = built
                .into_iter()
                .find(|o| o["kind"] == identity_kind)
                .unwrap();
            identity["metadata"]["uid"] = json!("uid-built-identity");
            let objects = vec![infra_cluster(cluster_kind, identity_kind), read(identity)];
            assert_eq!(
                described(&unread_references("team-edge", &kinds(), &objects)),
                [format!(
                    "Secret {provider_namespace}/strata-team-edge-credentials"
                )],
                "{cloud:?}"
            );
        }
    }

    #[test]
    fn an_aws_identity_names_its_secret_in_secret_ref() {
        let objects = vec![
            infra_cluster("AWSCluster", "AWSClusterStaticIdentity"),
            identity("AWSClusterStaticIdentity", "secretRef", true),
        ];
        assert_eq!(
            described(&unread_references("team-edge", &kinds(), &objects)),
            ["Secret capv-system/strata-team-edge-credentials"]
        );
    }

    #[test]
    fn nothing_is_fetched_for_namespaced_identities_or_unknown_places() {
        // Azure's identity is in the namespace, listed with it.
        let azure = vec![infra_cluster("AzureCluster", "AzureClusterIdentity")];
        assert!(unread_references("team-edge", &kinds(), &azure).is_empty());
        // Without the annotation the Secret's namespace is unknown: not guessed.
        let unannotated = vec![
            infra_cluster("VSphereCluster", "VSphereClusterIdentity"),
            identity("VSphereClusterIdentity", "secretName", false),
        ];
        assert!(unread_references("team-edge", &kinds(), &unannotated).is_empty());
        // An identity kind not discovered in the target cannot move: not fetched.
        let kinds: Vec<MoveKind> = kinds()
            .into_iter()
            .filter(|k| k.kind != "VSphereClusterIdentity")
            .collect();
        let objects = vec![infra_cluster("VSphereCluster", "VSphereClusterIdentity")];
        assert!(unread_references("team-edge", &kinds, &objects).is_empty());
    }

    #[test]
    fn a_field_named_like_an_identity_secret_on_another_kind_is_not_a_reference() {
        let mut other = identity("VSphereCluster", "secretName", true);
        other.namespace = Some("team-edge".into());
        other.json["metadata"]["namespace"] = json!("team-edge");
        assert!(unread_references("team-edge", &kinds(), &[other]).is_empty());
    }
}
