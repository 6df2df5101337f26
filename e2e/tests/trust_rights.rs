//! What the controller and an agent may do in the management cluster, asked of the real
//! apiserver's authorizer (SubjectAccessReview) once the controller, running with its own
//! least-privilege account (the chart's `templates/rbac.yaml` (`manifests/chart/strata`)), has installed two clusters'
//! agents: the refusals that make the link a trust boundary (no token for a kube-system
//! account, no Secret writes outside its own namespaces, no escalation, no reach into
//! another cluster, no long-lived token), and enough allowed rights that a test refusing
//! everything would fail. Then, for real, the agent's attempt at a token Secret, beside a
//! control Secret that shows this control plane's token controller does fill them in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use strata_e2e::access_review::{Right, ServiceAccountUser, unexpected};
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, SYSTEM_NAMESPACE, ensure_namespace,
};
use strata_e2e::samples::apply_sample;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::wait_phase_before_pivot;
use strata_shared::cluster::ClusterPhase;
use strata_shared::contracts::names::{
    AGENT_NAMESPACE, AGENT_OBJECTS_ROLE, CONTROLLER_OBJECTS_ROLE, ClusterLocation,
    MANAGEMENT_SECRET,
};

const CONTROLLER_ACCOUNT: &str = "strata-controller";
const RBAC: &str = "rbac.authorization.k8s.io";
const CAPI: &str = "cluster.x-k8s.io";
const CONTROL_PLANE: &str = "controlplane.cluster.x-k8s.io";
const INFRASTRUCTURE: &str = "infrastructure.cluster.x-k8s.io";
const STRATA: &str = "strata.dev";
const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
const TOKEN_SECRET_ACCOUNT: &str = "kubernetes.io/service-account.name";
/// A namespace that belongs to no one in this test.
const UNRELATED: &str = "default";

fn right(verb: &str, group: &str, resource: &str) -> Right {
    Right::new(verb, group, resource)
}

/// A right on a namespace object, as the apiserver sees a request for it: the namespace's
/// name is also the request's namespace, so bindings inside it count too.
fn namespace_right(verb: &str, namespace: &str) -> Right {
    right(verb, "", "namespaces")
        .in_namespace(namespace)
        .named(namespace)
}

/// Reviews both lists and fails with every right that is not as expected, each with what
/// it would amount to.
async fn assert_rights(
    client: &Client,
    user: &ServiceAccountUser,
    refused: &[(String, Right)],
    allowed: &[(String, Right)],
) {
    let mut wrong = unexpected(client, user, refused, false).await.unwrap();
    wrong.extend(unexpected(client, user, allowed, true).await.unwrap());
    assert!(
        wrong.is_empty(),
        "{} of {} rights of {user} are not as expected:\n{}",
        wrong.len(),
        refused.len() + allowed.len(),
        wrong.join("\n")
    );
}

fn controller_refusals(cluster: &ClusterLocation) -> Vec<(String, Right)> {
    let mut refused = vec![
        (
            "a token for any kube-system account".to_string(),
            right("create", "", "serviceaccounts")
                .subresource("token")
                .in_namespace("kube-system"),
        ),
        (
            "a token for the namespace controller (deletes any namespace)".into(),
            right("create", "", "serviceaccounts")
                .subresource("token")
                .in_namespace("kube-system")
                .named("namespace-controller"),
        ),
        (
            "a token for the role aggregation controller (holds escalate)".into(),
            right("create", "", "serviceaccounts")
                .subresource("token")
                .in_namespace("kube-system")
                .named("clusterrole-aggregation-controller"),
        ),
        (
            "a token for an account of an unrelated namespace".into(),
            right("create", "", "serviceaccounts")
                .subresource("token")
                .in_namespace(UNRELATED)
                .named("default"),
        ),
        (
            "a token for an account of the WorkloadCluster's namespace".into(),
            right("create", "", "serviceaccounts")
                .subresource("token")
                .in_namespace(&cluster.cluster_namespace)
                .named("default"),
        ),
        (
            "reading every Secret of kube-system at once (their tokens)".into(),
            right("list", "", "secrets").in_namespace("kube-system"),
        ),
        (
            "reading every Secret cluster-wide".into(),
            right("list", "", "secrets"),
        ),
        (
            "raising its own rights by writing a role with more".into(),
            right("escalate", RBAC, "clusterroles"),
        ),
        (
            "raising its own rights in kube-system by writing a role with more".into(),
            right("escalate", RBAC, "roles").in_namespace("kube-system"),
        ),
        (
            "granting anyone cluster-admin".into(),
            right("bind", RBAC, "clusterroles").named("cluster-admin"),
        ),
        (
            "granting anyone cluster-admin within a namespace".into(),
            right("bind", RBAC, "clusterroles")
                .named("cluster-admin")
                .in_namespace(&cluster.objects_namespace),
        ),
        (
            "granting anyone admin".into(),
            right("bind", RBAC, "clusterroles").named("admin"),
        ),
        (
            "granting any role it does not hold".into(),
            right("bind", RBAC, "clusterroles"),
        ),
        (
            "running a pod as a kube-system account".into(),
            right("create", "", "pods").in_namespace("kube-system"),
        ),
        (
            "signing itself a client certificate".into(),
            right(
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests",
            ),
        ),
        (
            "intercepting every object written".into(),
            right(
                "create",
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            ),
        ),
    ];
    for resource in ["users", "groups", "serviceaccounts"] {
        refused.push((
            format!("acting as other {resource}"),
            right("impersonate", "", resource),
        ));
    }
    refused.push((
        "acting as kube-system's service accounts".into(),
        right("impersonate", "", "serviceaccounts").in_namespace("kube-system"),
    ));
    for namespace in ["kube-system", UNRELATED, cluster.cluster_namespace.as_str()] {
        for verb in ["create", "update", "patch", "delete", "deletecollection"] {
            refused.push((
                format!("writing Secrets in {namespace}, which are not its own"),
                right(verb, "", "secrets").in_namespace(namespace),
            ));
        }
    }
    refused.push((
        "rewriting a kube-system account's token Secret".into(),
        right("patch", "", "secrets")
            .in_namespace("kube-system")
            .named("namespace-controller-token"),
    ));
    refused
}

fn controller_allowances(cluster: &ClusterLocation) -> Vec<(String, Right)> {
    let agent = cluster.agent_names();
    vec![
        (
            "minting the agent's token".to_string(),
            right("create", "", "serviceaccounts")
                .subresource("token")
                .in_namespace(SYSTEM_NAMESPACE)
                .named(&agent.service_account),
        ),
        (
            "keeping the agent's credential Secret".into(),
            right("patch", "", "secrets")
                .in_namespace(SYSTEM_NAMESPACE)
                .named(&agent.credential_secret),
        ),
        (
            "granting the agent its objects namespace".into(),
            right("bind", RBAC, "clusterroles")
                .named(AGENT_OBJECTS_ROLE)
                .in_namespace(&cluster.objects_namespace),
        ),
        (
            "granting itself its writes in a namespace it manages".into(),
            right("bind", RBAC, "clusterroles")
                .named(CONTROLLER_OBJECTS_ROLE)
                .in_namespace(&cluster.objects_namespace),
        ),
        (
            "writing the bindings in the objects namespace".into(),
            right("create", RBAC, "rolebindings").in_namespace(&cluster.objects_namespace),
        ),
        (
            "reading CAPI's kubeconfig".into(),
            right("get", "", "secrets")
                .in_namespace(&cluster.objects_namespace)
                .named(&format!("{}-kubeconfig", cluster.cluster)),
        ),
        (
            "writing identity Secrets in the objects namespace (its own binding there)".into(),
            right("create", "", "secrets").in_namespace(&cluster.objects_namespace),
        ),
        (
            "applying the CAPI objects".into(),
            right("patch", CAPI, "clusters").in_namespace(&cluster.objects_namespace),
        ),
        (
            "reporting the cluster's status".into(),
            right("patch", STRATA, "workloadclusters")
                .subresource("status")
                .in_namespace(&cluster.cluster_namespace)
                .named(&cluster.cluster),
        ),
    ]
}

fn capi_resources() -> [(&'static str, &'static str); 5] {
    [
        (CAPI, "clusters"),
        (CAPI, "machines"),
        (CAPI, "machinedeployments"),
        (CONTROL_PLANE, "kubeadmcontrolplanes"),
        (INFRASTRUCTURE, "simmachines"),
    ]
}

fn agent_refusals(own: &ClusterLocation, other: &ClusterLocation) -> Vec<(String, Right)> {
    let names = own.agent_names();
    let other_names = other.agent_names();
    let mut refused = Vec::new();
    // Every token it could get for itself or anyone would outlive the one the controller
    // gives it (bound to its credential Secret, capped, revocable).
    for namespace in [
        SYSTEM_NAMESPACE,
        own.objects_namespace.as_str(),
        own.cluster_namespace.as_str(),
        "kube-system",
    ] {
        for verb in ["create", "get", "list", "update", "patch", "delete"] {
            refused.push((
                format!("a token of its own making in {namespace}"),
                right(verb, "", "serviceaccounts")
                    .subresource("token")
                    .in_namespace(namespace),
            ));
        }
    }
    refused.push((
        "a token of its own making for its own account".into(),
        right("create", "", "serviceaccounts")
            .subresource("token")
            .in_namespace(SYSTEM_NAMESPACE)
            .named(&names.service_account),
    ));
    for verb in ["create", "update", "patch"] {
        refused.push((
            "a token Secret for its own account, which would never expire".into(),
            right(verb, "", "secrets").in_namespace(SYSTEM_NAMESPACE),
        ));
    }
    refused.push((
        "rewriting its own credential Secret".into(),
        right("patch", "", "secrets")
            .in_namespace(SYSTEM_NAMESPACE)
            .named(&names.credential_secret),
    ));
    refused.push((
        "deleting its own credential Secret".into(),
        right("delete", "", "secrets")
            .in_namespace(SYSTEM_NAMESPACE)
            .named(&names.credential_secret),
    ));
    refused.push((
        "editing its own service account".into(),
        right("patch", "", "serviceaccounts")
            .in_namespace(SYSTEM_NAMESPACE)
            .named(&names.service_account),
    ));
    for (namespace, whose) in [
        ("kube-system", "kube-system's"),
        (UNRELATED, "an unrelated namespace's"),
        (
            own.cluster_namespace.as_str(),
            "the WorkloadCluster's namespace's (its cloud accounts')",
        ),
        (
            other.objects_namespace.as_str(),
            "the other cluster's objects namespace's",
        ),
        (SYSTEM_NAMESPACE, "the controller's namespace's"),
    ] {
        for verb in ["get", "list"] {
            refused.push((
                format!("reading {whose} Secrets"),
                right(verb, "", "secrets").in_namespace(namespace),
            ));
        }
    }
    refused.push((
        "reading the other cluster's credential".into(),
        right("get", "", "secrets")
            .in_namespace(SYSTEM_NAMESPACE)
            .named(&other_names.credential_secret),
    ));
    refused.push((
        "reading the other cluster's kubeconfig".into(),
        right("get", "", "secrets")
            .in_namespace(&other.objects_namespace)
            .named(&format!("{}-kubeconfig", other.cluster)),
    ));
    for (group, resource) in capi_resources() {
        for verb in [
            "get", "list", "watch", "create", "patch", "update", "delete",
        ] {
            refused.push((
                "acting on the other cluster's CAPI objects".into(),
                right(verb, group, resource).in_namespace(&other.objects_namespace),
            ));
        }
    }
    refused.push((
        "acting on the other cluster's CAPI Cluster by name".into(),
        right("patch", CAPI, "clusters")
            .in_namespace(&other.objects_namespace)
            .named(&other.cluster),
    ));
    for verb in ["get", "list", "create"] {
        refused.push((
            "the other cluster's revisions".into(),
            right(verb, STRATA, "clusterrevisions").in_namespace(&other.objects_namespace),
        ));
    }
    refused.push((
        "CAPI objects anywhere".into(),
        right("list", CAPI, "clusters"),
    ));
    for verb in ["get", "patch", "update", "delete"] {
        refused.push((
            "the other cluster's WorkloadCluster".into(),
            right(verb, STRATA, "workloadclusters")
                .in_namespace(&other.cluster_namespace)
                .named(&other.cluster),
        ));
    }
    refused.push((
        "the other cluster's WorkloadCluster status (its reports)".into(),
        right("patch", STRATA, "workloadclusters")
            .subresource("status")
            .in_namespace(&other.cluster_namespace)
            .named(&other.cluster),
    ));
    for verb in ["patch", "update", "delete"] {
        refused.push((
            "its own WorkloadCluster's spec (the operator's intent)".into(),
            right(verb, STRATA, "workloadclusters")
                .in_namespace(&own.cluster_namespace)
                .named(&own.cluster),
        ));
    }
    refused.push((
        "replacing its own WorkloadCluster's status wholesale".into(),
        right("update", STRATA, "workloadclusters")
            .subresource("status")
            .in_namespace(&own.cluster_namespace)
            .named(&own.cluster),
    ));
    refused.push((
        "the WorkloadClusters of its namespace".into(),
        right("list", STRATA, "workloadclusters").in_namespace(&own.cluster_namespace),
    ));
    for verb in ["patch", "update", "delete"] {
        refused.push((
            "its own objects namespace (the controller's ledger, its grants)".into(),
            namespace_right(verb, &own.objects_namespace),
        ));
    }
    refused.push((
        "the other cluster's ledger".into(),
        namespace_right("get", &other.objects_namespace),
    ));
    refused.push(("listing namespaces".into(), right("list", "", "namespaces")));
    for (verb, resource) in [
        ("create", "rolebindings"),
        ("patch", "roles"),
        ("escalate", "roles"),
    ] {
        refused.push((
            "changing its own rights in its objects namespace".into(),
            right(verb, RBAC, resource).in_namespace(&own.objects_namespace),
        ));
    }
    refused.push((
        "granting anyone its objects role".into(),
        right("bind", RBAC, "clusterroles")
            .named(AGENT_OBJECTS_ROLE)
            .in_namespace(&own.objects_namespace),
    ));
    refused.push((
        "changing its own ClusterRole".into(),
        right("patch", RBAC, "clusterroles").named(&names.rbac),
    ));
    refused.push((
        "acting as another account".into(),
        right("impersonate", "", "serviceaccounts"),
    ));
    refused
}

fn agent_allowances(own: &ClusterLocation) -> Vec<(String, Right)> {
    let names = own.agent_names();
    let mut allowed = vec![
        (
            "fetching its renewed token".to_string(),
            right("get", "", "secrets")
                .in_namespace(SYSTEM_NAMESPACE)
                .named(&names.credential_secret),
        ),
        (
            "reporting into its own WorkloadCluster's status".into(),
            right("patch", STRATA, "workloadclusters")
                .subresource("status")
                .in_namespace(&own.cluster_namespace)
                .named(&own.cluster),
        ),
        (
            "reading its own WorkloadCluster (deletion, revision)".into(),
            right("get", STRATA, "workloadclusters")
                .in_namespace(&own.cluster_namespace)
                .named(&own.cluster),
        ),
        (
            "reading the controller's grant on its objects namespace".into(),
            namespace_right("get", &own.objects_namespace),
        ),
        (
            "reading its revisions".into(),
            right("list", STRATA, "clusterrevisions").in_namespace(&own.objects_namespace),
        ),
        (
            "carrying its cluster's Secrets in a move back".into(),
            right("create", "", "secrets").in_namespace(&own.objects_namespace),
        ),
    ];
    for (group, resource) in capi_resources() {
        for verb in ["create", "patch", "delete"] {
            allowed.push((
                "moving its own CAPI objects".into(),
                right(verb, group, resource).in_namespace(&own.objects_namespace),
            ));
        }
    }
    allowed
}

/// What a token the agent can make for the `default` account of its objects namespace
/// (the only account there) would be worth: nothing of the agent's.
fn objects_default_refusals(own: &ClusterLocation) -> Vec<(String, Right)> {
    vec![
        (
            "reading the cluster's Secrets".to_string(),
            right("get", "", "secrets").in_namespace(&own.objects_namespace),
        ),
        (
            "acting on the cluster's CAPI objects".into(),
            right("patch", CAPI, "clusters").in_namespace(&own.objects_namespace),
        ),
        (
            "reading the WorkloadCluster".into(),
            right("get", STRATA, "workloadclusters")
                .in_namespace(&own.cluster_namespace)
                .named(&own.cluster),
        ),
        (
            "minting tokens".into(),
            right("create", "", "serviceaccounts")
                .subresource("token")
                .in_namespace(&own.objects_namespace),
        ),
    ]
}

fn token_secret(namespace: &str, name: &str, account: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            annotations: Some(BTreeMap::from([(
                TOKEN_SECRET_ACCOUNT.to_string(),
                account.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some(TOKEN_SECRET_TYPE.into()),
        ..Secret::default()
    }
}

/// What became of a token Secret: still there, with or without a `token` key, or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenSecretState {
    Waiting,
    HasToken,
    Gone,
}

async fn token_secret_state(client: &Client, namespace: &str, name: &str) -> TokenSecretState {
    match Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap()
    {
        None => TokenSecretState::Gone,
        Some(s) if s.data.as_ref().is_some_and(|d| d.contains_key("token")) => {
            TokenSecretState::HasToken
        }
        Some(_) => TokenSecretState::Waiting,
    }
}

/// The agent's token (from its link Secret in its workload cluster) cannot make itself a
/// token Secret that works: none in the system namespace (refused), and the one it may
/// write in its objects namespace, for its own account's name, is never filled in (the
/// account does not exist there), while a control Secret for an existing account, made at
/// the same time on the same control plane, is.
async fn agent_cannot_make_a_token_secret(env: &ManagementEnv, own: &ClusterLocation) {
    let admin = env.client();
    let names = own.agent_names();
    let workload = env
        .workload(&own.objects_namespace, &own.cluster)
        .await
        .unwrap()
        .expect("the workload control plane");
    let link = Api::<Secret>::namespaced(workload.client(), AGENT_NAMESPACE)
        .get(MANAGEMENT_SECRET)
        .await
        .unwrap();
    let token = String::from_utf8(link.data.unwrap()["token"].0.clone()).unwrap();
    let agent = env.control_plane.client_for_token(&token).await.unwrap();

    // Its token is the agent's: it does what the agent may.
    Api::<Secret>::namespaced(agent.clone(), SYSTEM_NAMESPACE)
        .get(&names.credential_secret)
        .await
        .expect("the agent's token reads its credential Secret");

    let in_system = Api::<Secret>::namespaced(agent.clone(), SYSTEM_NAMESPACE)
        .create(
            &PostParams::default(),
            &token_secret(SYSTEM_NAMESPACE, "agent-made-token", &names.service_account),
        )
        .await;
    match in_system {
        Err(kube::Error::Api(e)) if e.code == 403 => {}
        other => panic!(
            "a token Secret for the agent's own account in {SYSTEM_NAMESPACE}, made with its token: expected 403 Forbidden, got {other:?}"
        ),
    }

    // The control: an account that exists, in a namespace of its own.
    let control_namespace = "token-secret-control";
    ensure_namespace(&admin, control_namespace).await.unwrap();
    eventually(
        "the control namespace's default service account",
        Duration::from_secs(60),
        || async {
            Api::<ServiceAccount>::namespaced(admin.clone(), control_namespace)
                .get_opt("default")
                .await
                .ok()
                .flatten()
        },
    )
    .await;

    let agents = Api::<Secret>::namespaced(agent.clone(), &own.objects_namespace);
    let agent_secret = "agent-made-token";
    agents
        .create(
            &PostParams::default(),
            &token_secret(&own.objects_namespace, agent_secret, &names.service_account),
        )
        .await
        .expect("the agent may write Secrets in its objects namespace (its move carries them)");
    let control_secret = "control-token";
    Api::<Secret>::namespaced(admin.clone(), control_namespace)
        .create(
            &PostParams::default(),
            &token_secret(control_namespace, control_secret, "default"),
        )
        .await
        .unwrap();

    // Watched side by side: until the control has its token, and as long again (at least
    // 10 s) after, unless the token controller removed the agent's Secret first.
    let started = Instant::now();
    let mut control_done: Option<Duration> = None;
    let mut agent_state;
    loop {
        agent_state = token_secret_state(&admin, &own.objects_namespace, agent_secret).await;
        assert_ne!(
            agent_state,
            TokenSecretState::HasToken,
            "the agent's token Secret in {} for {} got a token: a credential that never expires",
            own.objects_namespace,
            names.service_account
        );
        if control_done.is_none()
            && token_secret_state(&admin, control_namespace, control_secret).await
                == TokenSecretState::HasToken
        {
            control_done = Some(started.elapsed());
        }
        match control_done {
            Some(took) if agent_state == TokenSecretState::Gone => {
                eprintln!(
                    "the control Secret got its token after {took:?}; the token controller deleted the agent's"
                );
                break;
            }
            Some(took) if started.elapsed() >= (took * 2).max(took + Duration::from_secs(10)) => {
                eprintln!(
                    "the control Secret got its token after {took:?}; the agent's had none {:?} after it was made",
                    started.elapsed()
                );
                break;
            }
            None => assert!(
                started.elapsed() < Duration::from_secs(60),
                "the control token Secret for {control_namespace}/default got no token in 60 s: this control plane's token controller does not fill them in, so the agent's case proves nothing"
            ),
            Some(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if agent_state == TokenSecretState::Waiting {
        agents
            .delete(agent_secret, &DeleteParams::default())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_controller_and_the_agents_hold_only_their_rights() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("rights"))
        .await
        .unwrap();
    let client = env.client();
    let own = ClusterLocation::of("team-rights", "edge");
    let other = ClusterLocation::of("team-other", "other");
    for cluster in [&own, &other] {
        ensure_namespace(&client, &cluster.cluster_namespace)
            .await
            .unwrap();
        apply_sample(
            &client,
            "clusters/sim-demo.yaml",
            &cluster.cluster_namespace,
            |d| d["metadata"]["name"] = serde_json::json!(cluster.cluster),
        )
        .await;
    }
    let kubeconfig = env.controller_kubeconfig().await.unwrap();
    let controller =
        ControllerProcess::start(&kubeconfig, env.dir.path(), "controller", &[]).unwrap();
    // Installed, so every right the controller grants an agent exists; not run, so
    // nothing moves while the rights are read.
    for cluster in [&own, &other] {
        wait_phase_before_pivot(
            &env,
            &controller,
            &cluster.cluster_namespace,
            &cluster.cluster,
            ClusterPhase::AgentInstalled,
            Duration::from_secs(240),
        )
        .await;
    }

    let controller_user = ServiceAccountUser::new(SYSTEM_NAMESPACE, CONTROLLER_ACCOUNT);
    assert_rights(
        &client,
        &controller_user,
        &controller_refusals(&own),
        &controller_allowances(&own),
    )
    .await;

    for (cluster, neighbour) in [(&own, &other), (&other, &own)] {
        let agent =
            ServiceAccountUser::new(SYSTEM_NAMESPACE, &cluster.agent_names().service_account);
        assert_rights(
            &client,
            &agent,
            &agent_refusals(cluster, neighbour),
            &agent_allowances(cluster),
        )
        .await;
    }
    let objects_default = ServiceAccountUser::new(&own.objects_namespace, "default");
    assert_rights(
        &client,
        &objects_default,
        &objects_default_refusals(&own),
        &[],
    )
    .await;

    agent_cannot_make_a_token_secret(&env, &own).await;
}
