//! The controller's life beyond the happy path: every bad input is a condition and
//! creates nothing; a controller killed half-way is replaced by its standby, which
//! converges to the same objects; a change of intent is a new revision; a new agent image
//! rolls the agent; deleting a cluster before its pivot tears it down; a change the upgrade
//! rules refuse publishes nothing and says which rule.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use strata_e2e::cloud_sim::workload::StopWorkloads;
use strata_e2e::dynamic_objects::{differences, get_dynamic, resource};
use strata_e2e::management::{
    ControllerProcess, ManagementEnv, ManagementOptions, apply_secret, ensure_namespace,
    publish_pack, repo_root, strata_binary,
};
use strata_e2e::samples::apply_sample;
use strata_e2e::wait::eventually;
use strata_e2e::workload_cluster_status::{
    cluster, condition, describe, wait_phase, wait_phase_before_pivot,
};
use strata_shared::capi::{BuildInput, control_plane_name, control_plane_objects};
use strata_shared::cluster::{ClusterPhase, WorkloadCluster};
use strata_shared::contracts::field_managers::AGENT_FIELD_MANAGER;
use strata_shared::contracts::names::{AGENT_NAME, AGENT_NAMESPACE, objects_namespace};
use strata_shared::revision::ClusterRevision;

async fn namespace_exists(client: &Client, name: &str) -> bool {
    Api::<Namespace>::all(client.clone())
        .get_opt(name)
        .await
        .unwrap()
        .is_some()
}

async fn all_of(client: &Client, api_version: &str, kind: &str) -> Vec<DynamicObject> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(api_version, kind));
    api.list(&ListParams::default()).await.unwrap().items
}

/// One bad input: how to make it, the reason and a piece of the message it must give.
struct Case {
    name: &'static str,
    base: &'static str,
    edit: fn(&mut Value),
    reason: &'static str,
    message: &'static str,
}

#[tokio::test]
async fn bad_inputs_yield_conditions_and_create_nothing() {
    let env = ManagementEnv::start(ManagementOptions {
        simulator: false,
        ..ManagementOptions::named("bad-inputs")
    })
    .await
    .unwrap();
    let client = env.client();
    let ns = "bad";
    ensure_namespace(&client, ns).await.unwrap();
    apply_sample(&client, "accounts/aws.yaml", ns, |_| {}).await;
    apply_sample(&client, "accounts/vsphere.yaml", ns, |_| {}).await;
    // An account whose secret lacks a key.
    apply_secret(&client, ns, "half-secret", &[("AccessKeyID", "AKIA")])
        .await
        .unwrap();
    apply_sample(&client, "accounts/aws.yaml", ns, |d| {
        if d["kind"] == "CloudAccount" {
            d["metadata"]["name"] = json!("half");
            d["spec"]["secretRef"]["name"] = json!("half-secret");
        }
    })
    .await;
    // An account that does not allow its secret into workload clusters.
    apply_sample(&client, "accounts/aws.yaml", ns, |d| {
        if d["kind"] == "CloudAccount" {
            d["metadata"]["name"] = json!("kept-home");
            d["spec"]["copySecretToWorkloadClusters"] = json!(false);
        }
    })
    .await;
    // Profiles naming a pack version and a registry that do not exist.
    apply_sample(&client, "profiles/sim-infra.yaml", ns, |d| {
        d["metadata"]["name"] = json!("missing-pack");
        d["spec"]["layers"][1]["version"] = json!("1.99.0");
    })
    .await;
    apply_sample(&client, "profiles/sim-infra.yaml", ns, |d| {
        d["metadata"]["name"] = json!("missing-registry");
        d["spec"]["layers"][2]["registry"] = json!("nowhere");
    })
    .await;
    // A profile whose layer values name a system macro that does not exist: refused when
    // the cluster is validated, before any revision reaches a site.
    apply_sample(&client, "profiles/sim-infra.yaml", ns, |d| {
        d["metadata"]["name"] = json!("unknown-macro");
        d["spec"]["layers"][2]["values"] = json!(
            "manifests:\n  calico:\n    clusterName: \"{{ .spectro.system.cluster.nickname }}\"\n"
        );
    })
    .await;
    // A second version of the shared sim-infra, published in this namespace as an object of
    // its own; and one version of a profile published twice here, which is ambiguous.
    apply_sample(&client, "profiles/sim-infra.yaml", ns, |d| {
        d["metadata"]["name"] = json!("sim-infra-2-0-0");
        d["spec"]["name"] = json!("sim-infra");
        d["spec"]["version"] = json!("2.0.0");
        d["spec"]["description"] = json!("the next version");
    })
    .await;
    for object in ["twice-a", "twice-b"] {
        apply_sample(&client, "profiles/sim-infra.yaml", ns, |d| {
            d["metadata"]["name"] = json!(object);
            d["spec"]["name"] = json!("twice");
        })
        .await;
    }
    // A namespace the conflicting cluster's objects would need, owned by nobody.
    ensure_namespace(&client, &objects_namespace(ns, "conflict"))
        .await
        .unwrap();

    let cases = [
        Case {
            name: "no-profile",
            base: "clusters/sim-demo.yaml",
            edit: |d| d["spec"]["profiles"][0]["name"] = json!("nope"),
            reason: "ProfileNotFound",
            message: "profile \"nope\" was not found",
        },
        Case {
            name: "no-version",
            base: "clusters/sim-demo.yaml",
            edit: |d| d["spec"]["profiles"][0]["version"] = json!("9.9.9"),
            reason: "ProfileNotFound",
            message: "has no version \"9.9.9\"; versions given: 1.0.0, 2.0.0",
        },
        Case {
            name: "ambiguous",
            base: "clusters/sim-demo.yaml",
            edit: |d| d["spec"]["profiles"][0]["name"] = json!("twice"),
            reason: "InvalidProfile",
            message: "profile \"twice\" version \"1.0.0\" is published twice in namespace bad: ClusterProfiles twice-a and twice-b",
        },
        Case {
            name: "wrong-cloud",
            base: "clusters/sim-demo.yaml",
            edit: |d| d["spec"]["profiles"][0] = json!({"name": "aws-infra", "version": "1.0.0"}),
            reason: "CloudMismatch",
            message: "is for cloud \"aws\"",
        },
        Case {
            name: "no-account",
            base: "clusters/aws-ml.yaml",
            edit: |d| d["spec"]["cloudAccountRef"]["name"] = json!("ghost"),
            reason: "CloudAccountNotFound",
            message: "CloudAccount bad/ghost does not exist",
        },
        Case {
            name: "account-cloud",
            base: "clusters/aws-ml.yaml",
            edit: |d| d["spec"]["cloudAccountRef"]["name"] = json!("vsphere-dc-east"),
            reason: "CloudAccountInvalid",
            message: "is vsphere, but the cluster's cloudType is aws",
        },
        Case {
            name: "not-copyable",
            base: "clusters/aws-ml.yaml",
            edit: |d| d["spec"]["cloudAccountRef"]["name"] = json!("kept-home"),
            reason: "CloudAccountNotCopyable",
            message: "spec.copySecretToWorkloadClusters is not true",
        },
        Case {
            name: "secret-key",
            base: "clusters/aws-ml.yaml",
            edit: |d| d["spec"]["cloudAccountRef"]["name"] = json!("half"),
            reason: "CloudAccountInvalid",
            message: "has no key SecretAccessKey",
        },
        Case {
            name: "missing-pack",
            base: "clusters/sim-demo.yaml",
            edit: |d| d["spec"]["profiles"][0]["name"] = json!("missing-pack"),
            reason: "PackUnresolved",
            message: "has no version \"1.99.0\"",
        },
        Case {
            name: "missing-registry",
            base: "clusters/sim-demo.yaml",
            edit: |d| d["spec"]["profiles"][0]["name"] = json!("missing-registry"),
            reason: "PackUnresolved",
            message: "no PackRegistry named \"nowhere\"",
        },
        Case {
            name: "unknown-macro",
            base: "clusters/sim-demo.yaml",
            edit: |d| d["spec"]["profiles"][0]["name"] = json!("unknown-macro"),
            reason: "InvalidProfile",
            message: "pack cni-calico:3.19.0: values manifests.calico.clusterName: .spectro.system.cluster.nickname",
        },
        Case {
            name: "too-small",
            base: "clusters/sim-demo.yaml",
            edit: |d| d["spec"]["nodePools"]["controlPlane"]["machine"]["cpus"] = json!(1),
            reason: "ConstraintsNotMet",
            message: "needs at least 2 CPUs",
        },
        Case {
            name: "bad-count",
            base: "clusters/sim-demo.yaml",
            edit: |d| d["spec"]["nodePools"]["controlPlane"]["count"] = json!(2),
            reason: "InvalidSpec",
            message: "expected 1, 3 or 5",
        },
        Case {
            name: "no-placement",
            base: "clusters/aws-ml.yaml",
            edit: |d| {
                d["spec"].as_object_mut().unwrap().remove("aws");
            },
            reason: "InvalidSpec",
            message: "spec.aws: is missing",
        },
        Case {
            name: "bad-network",
            base: "clusters/sim-demo.yaml",
            edit: |d| d["spec"]["clusterNetwork"] = json!({"podCidrs": ["10.96.0.0/16"]}),
            reason: "InvalidStack",
            message: "overlaps the service range 10.96.0.0/12",
        },
        Case {
            name: "conflict",
            base: "clusters/sim-demo.yaml",
            edit: |_| {},
            reason: "NamespaceConflict",
            message: "already exists and is not this cluster's",
        },
    ];
    for case in &cases {
        apply_sample(&client, case.base, ns, |d| {
            d["metadata"]["name"] = json!(case.name);
            (case.edit)(d);
        })
        .await;
    }
    let controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        &[],
    )
    .unwrap();
    for case in &cases {
        let wc = wait_phase(
            &env,
            &controller,
            ns,
            case.name,
            ClusterPhase::Invalid,
            Duration::from_secs(120),
        )
        .await;
        let (status, reason, message) = condition(&wc, "Valid");
        assert_eq!(
            (status, reason),
            ("False", case.reason),
            "{}: {message}",
            case.name
        );
        assert!(
            message.contains(case.message),
            "{}: {message:?} should say {:?}",
            case.name,
            case.message
        );
        assert_eq!(condition(&wc, "Ready").0, "False");
        if case.name != "conflict" {
            assert!(
                !namespace_exists(&client, &objects_namespace(ns, case.name)).await,
                "{}",
                case.name
            );
        }
    }
    // Nothing anywhere: no CAPI object, no revision, no identity.
    assert!(
        all_of(&client, "cluster.x-k8s.io/v1beta2", "Cluster")
            .await
            .is_empty()
    );
    assert!(
        all_of(&client, "strata.dev/v1alpha1", "ClusterRevision")
            .await
            .is_empty()
    );
    assert!(
        all_of(
            &client,
            "infrastructure.cluster.x-k8s.io/v1beta2",
            "AWSClusterStaticIdentity"
        )
        .await
        .is_empty()
    );

    // What was missing appears: the cluster goes on by itself.
    apply_sample(&client, "accounts/aws.yaml", ns, |d| {
        if d["kind"] == "CloudAccount" {
            d["metadata"]["name"] = json!("ghost");
        }
    })
    .await;
    let wc = wait_phase(
        &env,
        &controller,
        ns,
        "no-account",
        ClusterPhase::Provisioning,
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(condition(&wc, "Valid").0, "True");
    assert_eq!(wc.status.unwrap().revision, Some(1));

    // A cluster on the second version of sim-infra is valid beside those on the first.
    apply_sample(&client, "clusters/sim-demo.yaml", ns, |d| {
        d["metadata"]["name"] = json!("newer");
        d["spec"]["profiles"][0]["version"] = json!("2.0.0");
    })
    .await;
    let wc = wait_phase(
        &env,
        &controller,
        ns,
        "newer",
        ClusterPhase::Provisioning,
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(condition(&wc, "Valid").0, "True");
    // `strata profile versions` says which version each cluster is on.
    let listed = std::process::Command::new(strata_binary())
        .args([
            "profile",
            "versions",
            "sim-infra",
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(env.control_plane.kubeconfig_path())
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let versions: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap(),
                v["namespace"].as_str().unwrap(),
                v["object"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("1.0.0", "strata-system", "sim-infra"),
            ("2.0.0", ns, "sim-infra-2-0-0")
        ]
    );
    let on = |i: usize| -> Vec<&str> {
        listed[i]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect()
    };
    assert!(on(0).contains(&"bad/too-small"), "{listed:?}");
    assert_eq!(on(1), ["bad/newer"]);

    // What a site writes into its status decides nothing: a forged "Pivoted=True, Moved"
    // (the agent may write its status) leaves the controller applying the objects.
    let clusters: Api<WorkloadCluster> = Api::namespaced(client.clone(), ns);
    let pivoted = json!({
        "apiVersion": "strata.dev/v1alpha1",
        "kind": "WorkloadCluster",
        "status": { "conditions": [{
            "type": "Pivoted", "status": "True", "reason": "Moved",
            "message": "the CAPI objects live in the workload cluster",
            "lastTransitionTime": "2026-11-21T00:00:00Z",
        }]},
    });
    clusters
        .patch_status(
            "no-account",
            &PatchParams::apply(AGENT_FIELD_MANAGER).force(),
            &Patch::Apply(&pivoted),
        )
        .await
        .unwrap();
    let objects = objects_namespace(ns, "no-account");
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let wc = cluster(&client, ns, "no-account").await.unwrap();
        assert_eq!(
            wc.status.as_ref().unwrap().phase,
            Some(ClusterPhase::Provisioning),
            "a forged Pivoted condition changed the controller's course: {}",
            describe(Some(&wc))
        );
    }

    // Once the controller has granted the move (its ledger, on the objects namespace; the
    // test records it as the controller does), deleting the cluster waits for the agent to
    // move the objects back; nothing is deleted.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &objects,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"strata.dev/pivot": "granted"}}})),
        )
        .await
        .unwrap();
    wait_phase(
        &env,
        &controller,
        ns,
        "no-account",
        ClusterPhase::Pivoted,
        Duration::from_secs(60),
    )
    .await;
    clusters
        .delete("no-account", &DeleteParams::default())
        .await
        .unwrap();
    let wc = wait_phase(
        &env,
        &controller,
        ns,
        "no-account",
        ClusterPhase::Deleting,
        Duration::from_secs(60),
    )
    .await;
    let (status, reason, message) = condition(&wc, "Deleting");
    assert_eq!((status, reason), ("False", "AwaitingMoveBack"), "{message}");
    assert!(
        message.contains("its agent must move them back"),
        "{message}"
    );
    let capi = get_dynamic(
        &client,
        "cluster.x-k8s.io/v1beta2",
        "Cluster",
        Some(&objects),
        "no-account",
    )
    .await;
    assert!(
        capi.is_some_and(|c| c.metadata.deletion_timestamp.is_none()),
        "the CAPI Cluster was deleted"
    );
    assert!(namespace_exists(&client, &objects).await);
    assert_eq!(
        condition(&wc, "Pivoted").0,
        "True",
        "the agent's condition is kept"
    );
}

async fn leads(controller: &ControllerProcess) -> bool {
    let answer = controller.get("/readyz").await.ok();
    answer.is_some_and(|(_, body)| body.trim() == "ok (leading)")
}

async fn leader_and_standby(a: &ControllerProcess, b: &ControllerProcess) -> (bool, bool) {
    (leads(a).await, leads(b).await)
}

/// The CAPI objects (kind/name → spec) in a namespace.
async fn capi_specs(
    client: &Client,
    namespace: &str,
    built: &[Value],
) -> Vec<(String, Value, i64)> {
    let mut out = Vec::new();
    for object in built {
        let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap();
        let read = get_dynamic(
            client,
            text("/apiVersion"),
            text("/kind"),
            Some(namespace),
            text("/metadata/name"),
        )
        .await
        .unwrap();
        out.push((
            format!("{} {}", text("/kind"), text("/metadata/name")),
            read.data["spec"].clone(),
            read.metadata.generation.unwrap_or_default(),
        ));
    }
    out
}

#[tokio::test]
async fn restart_day2_image_roll_and_deletion() {
    let _stop = StopWorkloads;
    let env = ManagementEnv::start(ManagementOptions::named("lifecycle"))
        .await
        .unwrap();
    let client = env.client();
    let ns = "strata-demo";
    let name = "demo";
    let objects = objects_namespace(ns, name);
    ensure_namespace(&client, ns).await.unwrap();
    let kubeconfig = env.control_plane.kubeconfig_path().to_path_buf();
    let mut a = ControllerProcess::start(&kubeconfig, env.dir.path(), "controller-a", &[]).unwrap();
    let mut b = ControllerProcess::start(&kubeconfig, env.dir.path(), "controller-b", &[]).unwrap();
    let (a_leads, b_leads) = eventually(
        "one controller to lead",
        Duration::from_secs(60),
        || async {
            let roles = leader_and_standby(&a, &b).await;
            (roles.0 != roles.1).then_some(roles)
        },
    )
    .await;
    assert!(a_leads ^ b_leads);
    let (leader, standby) = if a_leads {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let (_, body) = standby.get("/readyz").await.unwrap();
    assert_eq!(body.trim(), "ok (standing by)");

    // Kill the leader once it has applied the objects, before the agent is installed.
    apply_sample(&client, "clusters/sim-demo.yaml", ns, |_| {}).await;
    eventually(
        "the CAPI objects to be applied",
        Duration::from_secs(120),
        || async {
            let wc = cluster(&client, ns, name).await?;
            let applied = wc
                .status?
                .conditions
                .iter()
                .any(|c| c.type_ == "ObjectsApplied" && c.status == "True");
            applied.then_some(())
        },
    )
    .await;
    let revision = Api::<ClusterRevision>::namespaced(client.clone(), &objects)
        .get(&format!("{name}-r1"))
        .await
        .unwrap();
    let built = control_plane_objects(&BuildInput {
        cluster_name: name,
        namespace: &objects,
        revision: 1,
        desired: &revision.spec.desired,
    })
    .unwrap();
    let before = capi_specs(&client, &objects, &built).await;
    leader.kill();

    // The standby takes over once the lease expires, and converges to the same objects.
    let wc = wait_phase_before_pivot(
        &env,
        standby,
        ns,
        name,
        ClusterPhase::AgentInstalled,
        Duration::from_secs(240),
    )
    .await;
    assert_eq!(wc.status.as_ref().unwrap().revision, Some(1));
    let revisions = Api::<ClusterRevision>::namespaced(client.clone(), &objects)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        revisions.items.len(),
        1,
        "one revision, not one per controller"
    );
    let after = capi_specs(&client, &objects, &built).await;
    for (sent, ((what, spec_before, generation_before), (_, spec_after, generation_after))) in
        built.iter().zip(before.iter().zip(&after))
    {
        for spec in [spec_before, spec_after] {
            let mut found = Vec::new();
            differences(&sent["spec"], spec, "spec", &mut found);
            assert!(found.is_empty(), "{what}: {found:?}");
        }
        // Templates are immutable: the same one, never rewritten.
        if what.contains("Template") {
            assert_eq!(generation_before, generation_after, "{what} was rewritten");
        }
    }
    // Nothing extra: one template, one control plane.
    let templates = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &objects,
        &resource(
            "infrastructure.cluster.x-k8s.io/v1beta2",
            "SimMachineTemplate",
        ),
    )
    .list(&ListParams::default())
    .await
    .unwrap();
    assert_eq!(templates.items.len(), 1);

    // A change of intent is the next revision; the same intent is not.
    let clusters: Api<WorkloadCluster> = Api::namespaced(client.clone(), ns);
    clusters
        .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"overrides": [{"pack": "cni-calico", "values": "manifests:\n  calico:\n    mtu: 1400\n"}]}})))
        .await
        .unwrap();
    eventually("revision 2", Duration::from_secs(60), || async {
        (cluster(&client, ns, name).await?.status?.revision == Some(2)).then_some(())
    })
    .await;
    let r2 = Api::<ClusterRevision>::namespaced(client.clone(), &objects)
        .get(&format!("{name}-r2"))
        .await
        .unwrap();
    let calico = r2
        .spec
        .desired
        .layers
        .iter()
        .find(|l| l.name == "cni-calico")
        .unwrap();
    assert!(calico.values.contains("mtu: 1400"), "{}", calico.values);
    let capi_cluster = get_dynamic(
        &client,
        "cluster.x-k8s.io/v1beta2",
        "Cluster",
        Some(&objects),
        name,
    )
    .await
    .unwrap();
    assert_eq!(
        capi_cluster
            .annotations()
            .get("strata.dev/revision")
            .map(String::as_str),
        Some("2")
    );

    // A changed profile is a new revision of every cluster using it.
    apply_sample(&client, "profiles/sim-infra.yaml", "strata-system", |d| {
        d["spec"]["layers"][3]["values"] = json!("storageClass:\n  default: true\n");
    })
    .await;
    eventually(
        "revision 3, from the changed profile",
        Duration::from_secs(60),
        || async { (cluster(&client, ns, name).await?.status?.revision == Some(3)).then_some(()) },
    )
    .await;

    // A graceful stop gives the lease up; a controller with a new agent image takes over
    // at once and rolls the agent.
    assert!(
        standby.terminate(Duration::from_secs(20)),
        "the controller did not stop on SIGTERM:\n{}",
        standby.log_tail(20)
    );
    let c = ControllerProcess::start(
        &kubeconfig,
        env.dir.path(),
        "controller-c",
        &["--agent-image", "strata-agent:e2e-2"],
    )
    .unwrap();
    let workload = env.workload(&objects, name).await.unwrap().unwrap();
    let deployments: Api<Deployment> = Api::namespaced(workload.client(), AGENT_NAMESPACE);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let image = deployments
            .get(AGENT_NAME)
            .await
            .ok()
            .and_then(|d| d.spec?.template.spec?.containers.first()?.image.clone());
        if image.as_deref() == Some("strata-agent:e2e-2") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent Deployment still has image {image:?}\n--- controller c ---\n{}",
            c.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The phase was AgentInstalled before the roll too, so the phase alone does not say
    // that controller c has recorded the new image: wait for the image in the status.
    wait_phase_before_pivot(
        &env,
        &c,
        ns,
        name,
        ClusterPhase::AgentInstalled,
        Duration::from_secs(120),
    )
    .await;
    eventually(
        "status.agentImage to name the rolled image",
        Duration::from_secs(60),
        || async {
            let status = cluster(&client, ns, name).await?.status?;
            (status.agent_image.as_deref() == Some("strata-agent:e2e-2")
                && status.phase == Some(ClusterPhase::AgentInstalled))
            .then_some(())
        },
    )
    .await;

    // Deleting the cluster before its pivot: CAPI tears it down, then the namespace goes.
    clusters
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the WorkloadCluster to be gone",
        Duration::from_secs(180),
        || async { cluster(&client, ns, name).await.is_none().then_some(()) },
    )
    .await;
    assert!(
        get_dynamic(
            &client,
            "cluster.x-k8s.io/v1beta2",
            "Cluster",
            Some(&objects),
            name
        )
        .await
        .is_none()
    );
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(&objects)
        .await
        .unwrap();
    assert!(
        namespace.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "the objects namespace stays"
    );
    let id = workload.id().to_string();
    drop(workload);
    eventually(
        "the workload control plane to stop",
        Duration::from_secs(60),
        || async {
            strata_e2e::cloud_sim::workload::running(&id)
                .is_none()
                .then_some(())
        },
    )
    .await;
    let (_, metrics) = c.get("/metrics").await.unwrap();
    assert!(
        metrics.contains("strata_controller_clusters{phase=\"AgentInstalled\"} 0"),
        "{metrics}"
    );
}

/// A copy of the sample pack `name` in `into`, its `pack.json` edited by `edit`.
fn sample_pack_variant(name: &str, into: &std::path::Path, edit: impl Fn(&mut Value)) {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    copy(
        &repo_root().join("manifests/samples/packs").join(name),
        into,
    );
    let path = into.join("pack.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

/// The cluster's revisions, by number.
async fn revision_numbers(client: &Client, namespace: &str) -> Vec<i64> {
    let mut numbers: Vec<i64> = Api::<ClusterRevision>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.spec.number)
        .collect();
    numbers.sort_unstable();
    numbers
}

#[tokio::test]
async fn upgrade_rules_refuse_a_change_before_anything_is_published() {
    let env = ManagementEnv::start(ManagementOptions {
        simulator: false,
        ..ManagementOptions::named("upgrade-rules")
    })
    .await
    .unwrap();
    let client = env.client();
    let ns = "upgrades";
    let name = "steps";
    let objects = objects_namespace(ns, name);
    ensure_namespace(&client, ns).await.unwrap();
    // Kubernetes one minor up, two minors up and one patch down from the sample's 1.20.2,
    // and a Calico that can only be applied on top of Kubernetes 1.21.
    let packs = tempfile::tempdir().unwrap();
    for version in ["1.21.1", "1.22.0", "1.20.1"] {
        let dir = packs.path().join(format!("kubernetes-{version}"));
        sample_pack_variant("kubernetes", &dir, |m| m["version"] = json!(version));
        publish_pack(&env.registry, &dir).await.unwrap();
    }
    let calico = packs.path().join("cni-calico-3.20.0");
    sample_pack_variant("cni-calico", &calico, |m| {
        m["version"] = json!("3.20.0");
        m["constraints"]["dependencies"]
            .as_array_mut()
            .unwrap()
            .push(json!({"packName": "kubernetes", "layer": "k8s", "type": "upgrade", "minVersion": "1.21.0"}));
    });
    publish_pack(&env.registry, &calico).await.unwrap();
    // One version of the profile per step: (version, Kubernetes, Calico).
    let steps = [
        ("1.0.0", "1.20.2", "3.19.0"),
        ("2.0.0", "1.22.0", "3.19.0"),
        ("3.0.0", "1.20.1", "3.19.0"),
        ("4.0.0", "1.21.1", "3.20.0"),
        ("5.0.0", "1.21.1", "3.19.0"),
    ];
    for (version, kubernetes, calico) in steps {
        apply_sample(&client, "profiles/sim-infra.yaml", ns, |d| {
            d["metadata"]["name"] = json!(format!("upgrade-infra-{}", version.replace('.', "-")));
            d["spec"]["name"] = json!("upgrade-infra");
            d["spec"]["version"] = json!(version);
            d["spec"]["layers"][1]["version"] = json!(kubernetes);
            d["spec"]["layers"][2]["version"] = json!(calico);
        })
        .await;
    }
    apply_sample(&client, "clusters/sim-demo.yaml", ns, |d| {
        d["metadata"]["name"] = json!(name);
        d["spec"]["profiles"] = json!([{"name": "upgrade-infra", "version": "1.0.0"}]);
    })
    .await;
    let controller = ControllerProcess::start(
        env.control_plane.kubeconfig_path(),
        env.dir.path(),
        "controller",
        &[],
    )
    .unwrap();
    let wc = wait_phase(
        &env,
        &controller,
        ns,
        name,
        ClusterPhase::Provisioning,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(wc.status.unwrap().revision, Some(1));

    let clusters: Api<WorkloadCluster> = Api::namespaced(client.clone(), ns);
    let move_to = |version: &'static str| {
        let clusters = clusters.clone();
        async move {
            clusters
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"profiles": [{"name": "upgrade-infra", "version": version}]}})),
                )
                .await
                .unwrap();
        }
    };
    let published = |message: &'static str| {
        let client = client.clone();
        async move {
            eventually(message, Duration::from_secs(60), || async {
                let wc = cluster(&client, ns, name).await?;
                let generation = wc.metadata.generation;
                let status = wc.status.as_ref()?;
                let c = status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "RevisionPublished")?;
                (status.observed_generation == generation && c.observed_generation == generation)
                    .then(|| wc.clone())
            })
            .await
        }
    };
    let refusals = [
        (
            "2.0.0",
            "the change is refused and revision 1 (Kubernetes v1.20.2, 4 layers) stays in force: \
             one Kubernetes minor version at a time: Kubernetes 1.20.2 → 1.22.0 skips minor 1.21; \
             publish a revision with 1.21.x first",
        ),
        (
            "3.0.0",
            "the change is refused and revision 1 (Kubernetes v1.20.2, 4 layers) stays in force: \
             Kubernetes never goes down: Kubernetes 1.20.2 → 1.20.1 is a downgrade; keep 1.20.2 \
             or move up to a later 1.20 or a 1.21.x release",
        ),
        (
            "4.0.0",
            "the change is refused and revision 1 (Kubernetes v1.20.2, 4 layers) stays in force: \
             pack upgrade constraint: cni-calico 3.19.0 → 3.20.0 can only be applied on top of \
             kubernetes >= 1.21.0; the running revision has kubernetes 1.20.2; publish a revision \
             with kubernetes >= 1.21.0 first, then cni-calico 3.20.0",
        ),
    ];
    for (version, expected) in refusals {
        move_to(version).await;
        let wc = published("the refusal of a change").await;
        let (status, reason, message) = condition(&wc, "RevisionPublished");
        assert_eq!(
            (status, reason, message),
            ("False", "UpgradeRefused", expected),
            "profile {version}"
        );
        // Nothing published, nothing changed: still revision 1, its objects as they were,
        // the spec valid all the same.
        let status = wc.status.as_ref().unwrap();
        assert_eq!(status.revision, Some(1), "profile {version}");
        assert_eq!(status.phase, Some(ClusterPhase::Provisioning));
        assert_eq!(condition(&wc, "Valid").0, "True");
        assert_eq!(revision_numbers(&client, &objects).await, [1]);
        let control_plane = get_dynamic(
            &client,
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane",
            Some(&objects),
            &control_plane_name(name),
        )
        .await
        .unwrap();
        assert_eq!(control_plane.data["spec"]["version"], "v1.20.2");
    }

    // One minor step publishes revision 2 and clears the refusal; Calico 3.20.0 on top of
    // it is revision 3; going back to 1.20.2 (a rollback to revision 1's content) is a
    // downgrade and refused.
    move_to("5.0.0").await;
    let wc = published("revision 2").await;
    let (status, reason, message) = condition(&wc, "RevisionPublished");
    assert_eq!(
        (status, reason, message),
        (
            "True",
            "Published",
            "revision 2 (Kubernetes v1.21.1, 4 layers)"
        )
    );
    assert_eq!(wc.status.as_ref().unwrap().revision, Some(2));
    move_to("4.0.0").await;
    let wc = published("revision 3").await;
    assert_eq!(condition(&wc, "RevisionPublished").0, "True");
    assert_eq!(wc.status.as_ref().unwrap().revision, Some(3));
    assert_eq!(revision_numbers(&client, &objects).await, [1, 2, 3]);
    move_to("1.0.0").await;
    let wc = published("the refusal of a rollback").await;
    let (status, reason, message) = condition(&wc, "RevisionPublished");
    assert_eq!((status, reason), ("False", "UpgradeRefused"), "{message}");
    assert!(
        message.contains("Kubernetes 1.21.1 → 1.20.2 is a downgrade"),
        "{message}"
    );
    assert_eq!(wc.status.as_ref().unwrap().revision, Some(3));
    assert_eq!(revision_numbers(&client, &objects).await, [1, 2, 3]);
}
