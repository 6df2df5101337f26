#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::pivot::{MoveKind, plan};

const NS: &str = "edge";
const CORE: &str = "cluster.x-k8s.io/v1beta2";

fn kind(name: &str) -> MoveKind {
    MoveKind {
        group: "cluster.x-k8s.io".into(),
        version: "v1beta2".into(),
        kind: name.into(),
        plural: format!("{}s", name.to_lowercase()),
        namespaced: true,
        status_subresource: true,
        clusterctl: true,
        move_label: false,
        move_hierarchy_label: false,
    }
}

/// A Cluster with one MachineDeployment owning one Machine, each with a status.
fn objects() -> Vec<SourceObject> {
    let object = |kind: &str, name: &str, owner: Option<(&str, &str)>| -> Value {
        let mut value = json!({
            "apiVersion": CORE, "kind": kind,
            "metadata": {
                "name": name, "namespace": NS, "uid": format!("uid-{name}"),
                "resourceVersion": "7",
                "labels": {"cluster.x-k8s.io/cluster-name": "demo"},
            },
            "spec": {"clusterName": "demo"},
            "status": {"phase": "Running"},
        });
        if let Some((owner_kind, owner)) = owner {
            value["metadata"]["ownerReferences"] = json!([{
                "apiVersion": CORE, "kind": owner_kind, "name": owner,
                "uid": format!("uid-{owner}"), "controller": true,
            }]);
        }
        value
    };
    [
        object("Cluster", "demo", None),
        object(
            "MachineDeployment",
            "demo-general",
            Some(("Cluster", "demo")),
        ),
        object(
            "Machine",
            "demo-general-a",
            Some(("MachineDeployment", "demo-general")),
        ),
    ]
    .into_iter()
    .map(|v| SourceObject::from_json(v).unwrap())
    .collect()
}

fn files() -> BackupFiles {
    let kinds = vec![kind("Cluster"), kind("MachineDeployment"), kind("Machine")];
    let objects = objects();
    let plan = plan("demo", NS, &kinds, &objects).unwrap();
    backup_files(&plan, &objects, "2026-12-04T10:00:00Z")
}

fn reader(files: &BackupFiles) -> impl Fn(&str) -> Result<Vec<u8>, String> + use<> {
    let map: BTreeMap<String, Vec<u8>> = files.files.iter().cloned().collect();
    move |file: &str| {
        map.get(file)
            .cloned()
            .ok_or_else(|| "no such file".to_string())
    }
}

#[test]
fn a_backup_lists_every_object_in_creation_order_with_its_status() {
    let written = files();
    let manifest = &written.manifest;
    assert_eq!(manifest.format, BACKUP_FORMAT);
    assert_eq!(
        (manifest.namespace.as_str(), manifest.cluster.as_str()),
        (NS, "demo")
    );
    let order: Vec<(&str, usize)> = manifest
        .objects
        .iter()
        .map(|e| (e.kind.as_str(), e.group))
        .collect();
    assert_eq!(
        order,
        [("Cluster", 0), ("MachineDeployment", 1), ("Machine", 2)]
    );
    assert!(
        manifest
            .objects
            .iter()
            .all(|e| e.status_subresource && !e.global)
    );
    assert_eq!(manifest.objects[0].file, "objects/0001-cluster-demo.json");

    let read = read_backup(
        &written.manifest_bytes(),
        reader(&written),
        Some("edge/demo"),
    )
    .unwrap();
    assert_eq!(read.objects.len(), 3);
    let (entry, machine) = &read.objects[2];
    assert_eq!(entry.describe(), "Machine edge/demo-general-a");
    assert_eq!(
        machine.json["status"]["phase"], "Running",
        "the status is kept"
    );
}

#[test]
fn a_backup_of_another_cluster_or_format_is_refused() {
    let written = files();
    let other = read_backup(
        &written.manifest_bytes(),
        reader(&written),
        Some("edge/other"),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        other,
        "backup.json: the backup is of cluster edge/demo, not of edge/other"
    );
    let mut manifest = written.manifest.clone();
    manifest.format = "something/v9".into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let wrong = read_backup(&bytes, reader(&written), None)
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("format is \"something/v9\""), "{wrong}");
    let garbage = read_backup(b"{not json", reader(&written), None)
        .unwrap_err()
        .to_string();
    assert!(
        garbage.starts_with("backup.json: cannot be read as a backup manifest"),
        "{garbage}"
    );
}

#[test]
fn a_missing_corrupt_or_swapped_file_is_refused_naming_it() {
    let written = files();
    let manifest = written.manifest_bytes();
    let machine_file = written.manifest.objects[2].file.clone();

    let mut missing: BTreeMap<String, Vec<u8>> = written.files.iter().cloned().collect();
    missing.remove(&machine_file);
    let read = |map: BTreeMap<String, Vec<u8>>| {
        move |file: &str| {
            map.get(file)
                .cloned()
                .ok_or_else(|| "no such file".to_string())
        }
    };
    let error = read_backup(&manifest, read(missing), None).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{machine_file}: listed in the manifest but missing or unreadable: no such file")
    );

    let mut corrupt: BTreeMap<String, Vec<u8>> = written.files.iter().cloned().collect();
    corrupt.get_mut(&machine_file).unwrap().push(b' ');
    let error = read_backup(&manifest, read(corrupt), None).unwrap_err();
    assert!(matches!(error, BackupError::Corrupt { ref file, .. } if *file == machine_file));

    // The Machine's file holds the MachineDeployment, digest and all.
    let mut swapped_manifest = written.manifest.clone();
    swapped_manifest.objects[2].sha256 = swapped_manifest.objects[1].sha256.clone();
    let mut swapped: BTreeMap<String, Vec<u8>> = written.files.iter().cloned().collect();
    let deployment = swapped[&written.manifest.objects[1].file].clone();
    swapped.insert(machine_file.clone(), deployment);
    let error = read_backup(
        &serde_json::to_vec(&swapped_manifest).unwrap(),
        read(swapped),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("holds MachineDeployment edge/demo-general")
            && error.contains("the manifest says Machine edge/demo-general-a"),
        "{error}"
    );
}

#[test]
fn file_names_cannot_lead_out_of_the_directory() {
    let written = files();
    for bad in [
        "../../etc/passwd",
        "objects/../backup.json",
        "objects/a/b.json",
        "/etc/passwd",
        "objects/.hidden.json",
        "objects/.json",
    ] {
        let mut manifest = written.manifest.clone();
        manifest.objects[0].file = bad.into();
        let error = read_backup(
            &serde_json::to_vec(&manifest).unwrap(),
            reader(&written),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(error, BackupError::UnsafeFileName { .. }),
            "{bad}: {error}"
        );
    }
    let mut twice = written.manifest.clone();
    twice.objects[1].file = twice.objects[0].file.clone();
    let error =
        read_backup(&serde_json::to_vec(&twice).unwrap(), reader(&written), None).unwrap_err();
    assert!(matches!(error, BackupError::Duplicate { .. }), "{error}");
    let mut empty = written.manifest.clone();
    empty.objects.clear();
    assert_eq!(
        read_backup(&serde_json::to_vec(&empty).unwrap(), reader(&written), None).unwrap_err(),
        BackupError::Empty
    );
}

#[test]
fn only_a_shared_object_may_lie_outside_the_clusters_namespace() {
    let written = files();
    let mut manifest = written.manifest.clone();
    manifest.objects[2].namespace = Some("kube-system".into());
    let error = read_backup(
        &serde_json::to_vec(&manifest).unwrap(),
        reader(&written),
        None,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "objects/0003-machine-demo-general-a.json: Machine kube-system/demo-general-a is outside the cluster's namespace edge, and only a shared object (an identity, its Secret) may be"
    );
}
