//! A site's link to management as its own cluster holds it (the agent's management Secret),
//! and a way for a test to route it through a [`FaultProxy`] it can cut: a site admin can
//! point its agent anywhere, so the tests do the same.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use strata_shared::contracts::names::{AGENT_NAMESPACE, MANAGEMENT_SECRET};
use strata_shared::management_access::ManagementLinkData;

use crate::fault_proxy::FaultProxy;
use crate::management::ManagementEnv;
use crate::wait::eventually;

/// The link the site's agent uses. Panics (a test helper) when the Secret is missing or
/// unreadable.
pub async fn link_data(workload: &Client) -> ManagementLinkData {
    let secret = Api::<Secret>::namespaced(workload.clone(), AGENT_NAMESPACE)
        .get(MANAGEMENT_SECRET)
        .await
        .unwrap_or_else(|e| panic!("the agent's management Secret: {e}"));
    ManagementLinkData::from_secret(&secret)
        .unwrap_or_else(|e| panic!("the agent's management Secret: {e}"))
}

/// Writes the link the site's agent uses, as its site admin would.
pub async fn write_link(workload: &Client, data: &ManagementLinkData) {
    let secret = data.to_secret(ObjectMeta {
        name: Some(MANAGEMENT_SECRET.into()),
        namespace: Some(AGENT_NAMESPACE.into()),
        ..ObjectMeta::default()
    });
    Api::<Secret>::namespaced(workload.clone(), AGENT_NAMESPACE)
        .patch(
            MANAGEMENT_SECRET,
            &PatchParams::apply("e2e-site-admin").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap_or_else(|e| panic!("writing the agent's management Secret: {e}"));
}

/// Routes the site's link to the management API server through a new fault proxy, and
/// returns it once the agent has reached management through it.
pub async fn route_through_proxy(env: &ManagementEnv, workload: &Client) -> FaultProxy {
    let upstream: SocketAddr = format!("127.0.0.1:{}", env.control_plane.apiserver_port())
        .parse()
        .unwrap_or_else(|e| panic!("the management API server's address: {e}"));
    let proxy = FaultProxy::start(upstream)
        .await
        .unwrap_or_else(|e| panic!("starting the fault proxy: {e}"));
    let mut through_proxy = link_data(workload).await;
    through_proxy.access.server = proxy.url_for("https");
    write_link(workload, &through_proxy).await;
    eventually(
        "the agent reaches management through the proxy",
        Duration::from_secs(60),
        || async { (proxy.stats().accepted > 0).then_some(()) },
    )
    .await;
    proxy
}
