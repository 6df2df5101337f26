//! Strata's singletons in a workload cluster (the agent, the provider controllers): one
//! replica, replaced rather than rolled, running as the cluster's administrator.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::contracts::labels::APP_NAME_LABEL;

/// Makes the service account named like `meta`, in `namespace`, the workload cluster's
/// administrator.
pub fn cluster_admin_binding(meta: ObjectMeta, namespace: &str) -> ClusterRoleBinding {
    let account = meta.name.clone().unwrap_or_default();
    ClusterRoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account,
            namespace: Some(namespace.into()),
            ..Subject::default()
        }]),
    }
}

/// One replica of `pod`, replaced rather than rolled (`Recreate`), selected and labelled by
/// the name label of `meta`: two copies at once would act on the same objects.
pub fn singleton_deployment(meta: ObjectMeta, pod: PodSpec) -> Deployment {
    let labels = meta.labels.clone().unwrap_or_default();
    let selector: BTreeMap<String, String> = labels
        .iter()
        .filter(|(k, _)| k.as_str() == APP_NAME_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Deployment {
        metadata: meta,
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}
