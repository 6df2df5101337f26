//! The trust between the management cluster and a cluster's agent, as the trust tests set
//! it up and check it: the controller run with exactly the rights of its manifests, the
//! management token the agent holds in its own cluster, and what the management API server
//! answers a request made with that token.
//!
//! A setup step or a read that fails panics with what it was doing: these are for tests,
//! where that is the failure.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use strata_shared::cluster::WorkloadCluster;
use strata_shared::contracts::names::{AGENT_NAMESPACE, MANAGEMENT_SECRET};

use crate::management::{ControllerProcess, ManagementEnv};

/// `strata controller` with exactly the rights of the chart's `templates/rbac.yaml`
/// (`manifests/chart/strata`); the providers a cluster runs after its move come from the
/// inventory and packs of the environment ([`crate::provider_packs`]).
pub async fn start_controller(env: &ManagementEnv, name: &str) -> ControllerProcess {
    let kubeconfig = env
        .controller_kubeconfig()
        .await
        .unwrap_or_else(|e| panic!("the kubeconfig of the controller {name}: {e}"));
    ControllerProcess::start(&kubeconfig, env.dir.path(), name, &[])
        .unwrap_or_else(|e| panic!("starting the controller {name}: {e}"))
}

/// The management token the agent holds in its own cluster (`strata-system/strata-management`).
pub async fn agent_token(workload: &Client) -> String {
    let secret = Api::<Secret>::namespaced(workload.clone(), AGENT_NAMESPACE)
        .get(MANAGEMENT_SECRET)
        .await
        .unwrap_or_else(|e| panic!("reading {AGENT_NAMESPACE}/{MANAGEMENT_SECRET}: {e}"));
    let data = secret.data.unwrap_or_default();
    let token = data.get("token").unwrap_or_else(|| {
        panic!(
            "{AGENT_NAMESPACE}/{MANAGEMENT_SECRET} has no token: {:?}",
            data.keys()
        )
    });
    String::from_utf8(token.0.clone())
        .unwrap_or_else(|e| panic!("the token of {AGENT_NAMESPACE}/{MANAGEMENT_SECRET}: {e}"))
}

/// What the management API server answers a read of the cluster's own WorkloadCluster made
/// with `token`: its status code (200 when it was read).
pub async fn answer_to_token(env: &ManagementEnv, token: &str, namespace: &str, name: &str) -> u16 {
    let agent = env
        .control_plane
        .client_for_token(token)
        .await
        .unwrap_or_else(|e| panic!("a client with the agent's token: {e}"));
    match Api::<WorkloadCluster>::namespaced(agent, namespace)
        .get(name)
        .await
    {
        Ok(_) => 200,
        Err(kube::Error::Api(e)) => e.code,
        Err(other) => panic!("reading {namespace}/{name} with the agent's token: {other}"),
    }
}
