//! Validation: what a cluster says and what it names, checked without a client. A cluster
//! that passes is a [`ValidCluster`]; one that does not is [`Invalid`], with the reason of
//! its Valid condition. Nothing is created for an invalid cluster.

use std::collections::BTreeMap;

use kube::ResourceExt;
use strata_shared::cloud_account::{CloudAccount, copy_refusal};
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::labels::{WORKLOAD_CLUSTER_LABEL, WORKLOAD_CLUSTER_NAMESPACE_LABEL};
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::profile::compose::validate_cluster_spec;
use strata_shared::revision::{validate_account, validate_placement};

use super::dereference::Inputs;
use super::namespaces::namespace_belongs_to;
use super::outcome::{Invalid, InvalidReason};

/// A cluster whose own fields, objects namespace and cloud account are fit to build from.
pub struct ValidCluster<'a> {
    pub cluster: &'a WorkloadCluster,
    pub location: ClusterLocation,
    pub account: Option<&'a CloudAccount>,
    /// The account secret's keys and text values, when the Secret exists.
    pub account_secret: Option<&'a BTreeMap<String, String>>,
}

impl ValidCluster<'_> {
    pub fn name(&self) -> &str {
        &self.location.cluster
    }

    pub fn namespace(&self) -> &str {
        &self.location.cluster_namespace
    }
}

/// The cluster's own fields: checked before anything it names is read.
pub fn spec(cluster: &WorkloadCluster) -> Result<(), Invalid> {
    let mut findings = validate_cluster_spec(cluster);
    findings.extend(validate_placement(cluster));
    if findings.has_errors() {
        return Err(Invalid::from_findings(
            InvalidReason::InvalidSpec,
            &findings,
        ));
    }
    Ok(())
}

/// The cluster with what it names, as [`super::dereference`] found it.
pub fn cluster<'a>(
    cluster: &'a WorkloadCluster,
    location: ClusterLocation,
    inputs: &'a Inputs,
) -> Result<ValidCluster<'a>, Invalid> {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    if let Some(existing) = &inputs.objects_namespace
        && !namespace_belongs_to(existing, &namespace, &name)
    {
        let message = format!(
            "namespace {} already exists and is not this cluster's (labels {WORKLOAD_CLUSTER_NAMESPACE_LABEL} and {WORKLOAD_CLUSTER_LABEL} do not name {namespace}/{name}); rename the cluster or remove the namespace",
            location.objects_namespace
        );
        return Err(Invalid::new(InvalidReason::NamespaceConflict, message));
    }
    let account = match (&cluster.spec.cloud_account_ref, &inputs.account) {
        (Some(reference), None) => {
            let message = format!(
                "spec.cloudAccountRef: CloudAccount {namespace}/{} does not exist",
                reference.name
            );
            return Err(Invalid::new(InvalidReason::CloudAccountNotFound, message));
        }
        (Some(_), Some(account)) => Some(account_fit(cluster, account, inputs)?),
        (None, _) => None,
    };
    Ok(ValidCluster {
        cluster,
        location,
        account,
        account_secret: inputs.account_secret.as_ref(),
    })
}

fn account_fit<'a>(
    cluster: &WorkloadCluster,
    account: &'a CloudAccount,
    inputs: &Inputs,
) -> Result<&'a CloudAccount, Invalid> {
    let keys: Option<Vec<String>> = inputs
        .account_secret
        .as_ref()
        .map(|s| s.keys().cloned().collect());
    let findings = validate_account(cluster, account, keys.as_deref());
    if findings.has_errors() {
        return Err(Invalid::from_findings(
            InvalidReason::CloudAccountInvalid,
            &findings,
        ));
    }
    if let Some(refusal) = copy_refusal(cluster.spec.cloud_type, account) {
        return Err(Invalid::new(
            InvalidReason::CloudAccountNotCopyable,
            refusal,
        ));
    }
    Ok(account)
}
