//! Where the site's packs come from: the pack registries the controller hands over in the
//! cluster's objects namespace, kept as a copy in this cluster so that a site cut off from
//! the management cluster (or an agent restarted while it is) still reaches them.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use strata_shared::contracts::names::{AGENT_NAMESPACE, PACK_REGISTRIES_SECRET};
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::registry::site_access::{SiteAccessError, SiteRegistries};

use crate::management_link::ManagementLink;

#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error(
        "the pack registries: not in the management cluster ({management}) and no copy in this cluster yet (Secret {AGENT_NAMESPACE}/{PACK_REGISTRIES_SECRET})"
    )]
    Unavailable { management: String },
    #[error("the pack registries' copy in this cluster: {0}")]
    Local(#[source] WriteError),
    #[error(transparent)]
    Invalid(#[from] SiteAccessError),
}

/// The registries from the management cluster (and the copy here brought up to date), else
/// the copy here.
pub async fn site_registries(
    workload: &KubeWriter,
    link: &ManagementLink,
) -> Result<SiteRegistries, RegistriesError> {
    let management = match from_management(link).await {
        Ok(found) => {
            keep_copy(workload, &found).await;
            return Ok(found);
        }
        Err(why) => why,
    };
    let copy = workload
        .namespaced::<Secret>(AGENT_NAMESPACE)
        .get(PACK_REGISTRIES_SECRET)
        .await
        .map_err(RegistriesError::Local)?
        .ok_or(RegistriesError::Unavailable { management })?;
    Ok(SiteRegistries::from_secret(&copy)?)
}

/// Err: why not, for the message when there is no copy either.
async fn from_management(link: &ManagementLink) -> Result<SiteRegistries, String> {
    let management = link.management().await.map_err(|e| e.to_string())?;
    let found = management
        .namespaced::<Secret>(&link.objects_namespace)
        .get(PACK_REGISTRIES_SECRET)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "Secret {}/{PACK_REGISTRIES_SECRET} does not exist there yet",
                link.objects_namespace
            )
        })?;
    SiteRegistries::from_secret(&found).map_err(|e| e.to_string())
}

/// A copy that cannot be written now is written on a later round.
async fn keep_copy(workload: &KubeWriter, registries: &SiteRegistries) {
    let copy = registries.to_secret(ObjectMeta {
        namespace: Some(AGENT_NAMESPACE.into()),
        ..ObjectMeta::default()
    });
    if let Err(e) = workload.apply(&copy).await {
        tracing::info!(error = %e, "cannot keep a copy of the pack registries in this cluster; will try again");
    }
}
