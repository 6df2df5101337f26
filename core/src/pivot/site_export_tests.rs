#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::pack::archive::unpack_archive;
use crate::pivot::SourceObject;
use crate::pivot::backup::{BACKUP_FORMAT, BackupManifest, read_backup};

const NS: &str = "strata-wc-edge-demo";

fn entry(n: usize, api_version: &str, kind: &str, name: &str, global: bool) -> BackupEntry {
    BackupEntry {
        file: format!("objects/{n:04}-{}-{name}.json", kind.to_lowercase()),
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: Some(NS.into()),
        name: name.into(),
        uid: format!("uid-{name}"),
        group: n,
        status_subresource: kind != "Secret",
        global,
        sha256: String::new(),
    }
}

/// A backup of a Cluster, a Machine, its kubeconfig Secret, and a shared identity.
fn files() -> BackupFiles {
    let entries = vec![
        entry(1, "cluster.x-k8s.io/v1beta2", "Cluster", "demo", false),
        entry(2, "cluster.x-k8s.io/v1beta2", "Machine", "demo-a", false),
        entry(3, "v1", "Secret", "demo-kubeconfig", false),
        entry(
            4,
            "infrastructure.cluster.x-k8s.io/v1beta1",
            "AzureClusterIdentity",
            "shared",
            true,
        ),
    ];
    let mut objects = Vec::new();
    let mut files = Vec::new();
    for mut e in entries {
        let object = json!({
            "apiVersion": e.api_version, "kind": e.kind,
            "metadata": {"name": e.name, "namespace": NS, "uid": e.uid},
            "status": {"phase": "Running"},
        });
        let bytes = serde_json::to_vec_pretty(&object).unwrap();
        e.sha256 = crate::pack::archive::sha256_digest(&bytes);
        files.push((e.file.clone(), bytes));
        objects.push(e);
    }
    BackupFiles {
        manifest: BackupManifest {
            format: BACKUP_FORMAT.into(),
            cluster: "demo".into(),
            namespace: NS.into(),
            taken_at: "2026-12-04T10:00:00Z".into(),
            objects,
        },
        files,
    }
}

/// Unpacks an export and reads its backup, as a restore does.
fn read_export(bytes: &[u8]) -> Backup {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("export");
    unpack_archive(bytes, &dest, &EXPORT_LIMITS).unwrap();
    let manifest = std::fs::read(dest.join(MANIFEST_FILE)).unwrap();
    read_backup(
        &manifest,
        |file| std::fs::read(dest.join(file)).map_err(|e| e.to_string()),
        Some(&format!("{NS}/demo")),
    )
    .unwrap()
}

#[test]
fn a_site_copy_leaves_the_shared_objects_to_management_and_reads_back_whole() {
    let copy = site_copy(files());
    let kinds: Vec<&str> = copy
        .manifest
        .objects
        .iter()
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(kinds, ["Cluster", "Machine", "Secret"]);
    assert_eq!(copy.files.len(), 3, "the shared object's file goes too");

    let bytes = pack(&copy).unwrap();
    let backup = read_export(&bytes);
    assert_eq!(backup.objects.len(), 3);
    assert_eq!(backup.objects[1].1.json["status"]["phase"], "Running");
    check_site_objects(&backup).unwrap();
}

#[test]
fn the_content_digest_ignores_the_time_and_follows_every_object() {
    let first = site_copy(files());
    let mut later = site_copy(files());
    later.manifest.taken_at = "2026-12-05T10:00:00Z".into();
    assert_eq!(content_digest(&first), content_digest(&later));
    let mut changed = site_copy(files());
    changed.manifest.objects[1].sha256 = "sha256:other".into();
    assert_ne!(content_digest(&first), content_digest(&changed));
    let mut fewer = site_copy(files());
    fewer.manifest.objects.pop();
    assert_ne!(content_digest(&first), content_digest(&fewer));
}

#[test]
fn an_export_too_large_for_a_secret_is_refused_naming_its_size() {
    let mut copy = site_copy(files());
    // Incompressible content, as a cluster of tens of thousands of machines would be.
    let mut noise = Vec::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < MAX_EXPORT_BYTES + 1024 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        noise.extend_from_slice(&state.to_le_bytes());
    }
    copy.files[0].1 = noise;
    let error = pack(&copy).unwrap_err();
    assert!(
        matches!(error, SiteExportError::TooLarge { objects: 3, bytes } if bytes > MAX_EXPORT_BYTES),
        "{error}"
    );
    assert!(error.to_string().contains("strata-agent backup"), "{error}");
}

fn backup_of(entries: Vec<BackupEntry>) -> Backup {
    let objects = entries
        .into_iter()
        .map(|e| {
            let object = SourceObject::from_json(json!({
                "apiVersion": e.api_version, "kind": e.kind,
                "metadata": {"name": e.name, "namespace": NS, "uid": e.uid},
            }))
            .unwrap();
            (e, object)
        })
        .collect();
    Backup {
        manifest: site_copy(files()).manifest,
        objects,
    }
}

#[test]
fn a_site_export_holding_what_its_agent_may_not_write_is_refused_naming_it() {
    let shared = backup_of(vec![entry(
        4,
        "infrastructure.cluster.x-k8s.io/v1beta1",
        "AzureClusterIdentity",
        "shared",
        true,
    )]);
    assert_eq!(
        check_site_objects(&shared).unwrap_err().to_string(),
        format!(
            "objects/0004-azureclusteridentity-shared.json: AzureClusterIdentity {NS}/shared is shared (an identity or its Secret); a site's export holds none"
        )
    );
    let refused: BTreeMap<&str, (&str, &str)> = [
        ("a Role", ("rbac.authorization.k8s.io/v1", "Role")),
        ("a Pod", ("v1", "Pod")),
        ("a ServiceAccount", ("v1", "ServiceAccount")),
        (
            "a look-alike group",
            ("evil.cluster.x-k8s.io.example/v1", "Machine"),
        ),
        (
            "a strata object",
            ("strata.dev/v1alpha1", "WorkloadCluster"),
        ),
    ]
    .into_iter()
    .collect();
    for (what, (api_version, kind)) in refused {
        let backup = backup_of(vec![entry(1, api_version, kind, "x", false)]);
        let error = check_site_objects(&backup).unwrap_err();
        assert!(
            matches!(&error, SiteExportError::KindNotAllowed { api_version: found, .. } if found == api_version),
            "{what}: {error}"
        );
    }
    let allowed = backup_of(vec![
        entry(1, "cluster.x-k8s.io/v1beta2", "Cluster", "demo", false),
        entry(
            2,
            "controlplane.cluster.x-k8s.io/v1beta2",
            "KubeadmControlPlane",
            "cp",
            false,
        ),
        entry(
            3,
            "bootstrap.cluster.x-k8s.io/v1beta2",
            "KubeadmConfig",
            "b",
            false,
        ),
        entry(
            4,
            "infrastructure.cluster.x-k8s.io/v1beta1",
            "VSphereMachine",
            "m",
            false,
        ),
        entry(
            5,
            "addons.cluster.x-k8s.io/v1beta2",
            "ClusterResourceSet",
            "s",
            false,
        ),
        entry(6, "v1", "ConfigMap", "c", false),
    ]);
    check_site_objects(&allowed).unwrap();
}
