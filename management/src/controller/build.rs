//! Building a cluster's objects from its desired state, without a client: the cloud
//! identities (which stay in the management cluster whoever holds the CAPI objects) and the
//! CAPI objects of one revision.

use std::collections::BTreeMap;

use serde_json::Value;
use strata_shared::capi::{
    BuildError as CapiBuildError, BuildInput, IdentityInput, control_plane_objects,
    identity_objects, identity_secret_name,
};
use strata_shared::cluster::ClusterCloud;
use strata_shared::management_access::SecretKey;
use strata_shared::revision::DesiredState;

use super::context::Settings;
use super::validate::ValidCluster;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot build the cloud identities of cluster {cluster}: {source}")]
    Identities {
        cluster: String,
        #[source]
        source: CapiBuildError,
    },
    #[error("cannot build the CAPI objects of revision {revision} of cluster {cluster}: {source}")]
    Objects {
        cluster: String,
        revision: i64,
        #[source]
        source: CapiBuildError,
    },
}

/// A cluster's identity objects, and the Secret its agent copies them from.
pub struct Identities {
    pub objects: Vec<Value>,
    pub secret: SecretKey,
}

/// The identities of a cluster with a cloud account on a real cloud; none otherwise.
pub fn identities(
    valid: &ValidCluster<'_>,
    desired: &DesiredState,
    settings: &Settings,
) -> Result<Option<Identities>, BuildError> {
    let cloud = valid.cluster.spec.cloud_type;
    let (Some(account), true) = (&desired.account, cloud != ClusterCloud::Sim) else {
        return Ok(None);
    };
    let objects_namespace = valid.location.objects_namespace.as_str();
    let empty = BTreeMap::new();
    let provider_namespace = settings
        .provider_namespace(cloud)
        .unwrap_or(objects_namespace);
    let objects = identity_objects(&IdentityInput {
        namespace: objects_namespace,
        account,
        cloud,
        secret_data: valid.account_secret.unwrap_or(&empty),
        provider_namespace,
    })
    .map_err(|source| BuildError::Identities {
        cluster: valid.location.key(),
        source,
    })?;
    Ok(Some(Identities {
        objects,
        secret: SecretKey {
            namespace: provider_namespace.to_string(),
            name: identity_secret_name(objects_namespace),
        },
    }))
}

/// The CAPI objects of revision `revision`.
pub fn capi_objects(
    valid: &ValidCluster<'_>,
    revision: i64,
    desired: &DesiredState,
) -> Result<Vec<Value>, BuildError> {
    let input = BuildInput {
        cluster_name: valid.name(),
        namespace: &valid.location.objects_namespace,
        revision,
        desired,
    };
    control_plane_objects(&input).map_err(|source| BuildError::Objects {
        cluster: valid.location.key(),
        revision,
        source,
    })
}
