//! The infrastructure machine controllers (VSphereMachine, AWSMachine, AzureMachine,
//! SimMachine): once the Machine has bootstrap data and the cluster's infrastructure is
//! provisioned, the instance "boots" after the configured delay (plus jitter and any slow
//! fault) and the machine gets a provider ID in its cloud's format, addresses and a ready
//! status; or, on request, fails to provision.

use serde_json::{Value, json};

use super::api::merge_into;
use super::objects::{is_deleting, is_paused, name, str_at, uid};
use super::providers::{self, MachineState};
use super::snapshot::ClusterView;
use super::{Shared, SimError};

pub async fn reconcile(
    shared: &Shared,
    view: &ClusterView<'_>,
    machine: &Value,
) -> Result<(), SimError> {
    let Some((provider, infra)) = view.infra_machine(machine) else {
        return Ok(());
    };
    if is_paused(infra) || is_deleting(infra) || is_deleting(machine) {
        return Ok(());
    }
    let kind = provider.machine_kind();
    if providers::is_provisioned(provider, infra) {
        return Ok(());
    }
    let infra_cluster = view.infra.map(|(_, c)| c).unwrap_or(&Value::Null);
    let machine_name = name(machine);
    let has_bootstrap = str_at(machine, "/spec/bootstrap/dataSecretName").is_some();
    let state = if !view.infra_provisioned() {
        MachineState::Pending("waiting for the cluster's infrastructure")
    } else if !has_bootstrap {
        MachineState::Pending("waiting for bootstrap data")
    } else if let Some(reason) = shared.failure_for(view.namespace, machine_name) {
        let message = format!("simulated fault: the instance failed to provision ({reason})");
        let status = providers::machine_status(
            provider,
            infra,
            &MachineState::Failed {
                reason: &reason,
                message: &message,
            },
        );
        if shared.kube.apply_status(&kind, infra, status).await? {
            tracing::warn!(machine = %machine_name, %reason, "machine failed to provision");
        }
        return Ok(());
    } else {
        let delay =
            shared.options.provision_delay + shared.slowness_for(view.namespace, machine_name);
        if shared.waited(uid(infra), "provision", delay, true) {
            let instance = providers::instance(provider, infra_cluster, infra);
            let mut spec = json!({ "providerID": instance.provider_id });
            merge_into(&mut spec, instance.spec.clone());
            shared
                .kube
                .merge_if_changed(&kind, infra, json!({ "spec": spec }))
                .await?;
            let status =
                providers::machine_status(provider, infra, &MachineState::Running(&instance));
            shared.kube.apply_status(&kind, infra, status).await?;
            tracing::info!(machine = %machine_name, provider_id = %instance.provider_id, "instance running");
            return Ok(());
        }
        MachineState::Pending("the instance is booting")
    };
    let status = providers::machine_status(provider, infra, &state);
    shared.kube.apply_status(&kind, infra, status).await?;
    Ok(())
}

/// The failure an infrastructure machine reports, by its contract: the v1beta1 failure
/// fields, or a false Ready condition whose reason is not the simulator's "Provisioning".
pub fn failure(infra: &Value) -> Option<(String, String)> {
    if let Some(reason) = str_at(infra, "/status/failureReason") {
        let message = str_at(infra, "/status/failureMessage").unwrap_or_default();
        return Some((reason.to_string(), message.to_string()));
    }
    let conditions = infra.pointer("/status/conditions")?.as_array()?;
    let ready = conditions
        .iter()
        .find(|c| str_at(c, "/type") == Some("Ready"))?;
    let reason = str_at(ready, "/reason")?;
    (str_at(ready, "/status") == Some("False") && !matches!(reason, "Provisioning" | "NotReady"))
        .then(|| {
            (
                reason.to_string(),
                str_at(ready, "/message").unwrap_or_default().to_string(),
            )
        })
}
