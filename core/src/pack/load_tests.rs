//! Tests of [`Pack::load`]: the folder-level rules, on real folders.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::finding::Severity;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nrest-of-image";

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples/packs")
}

/// A pack folder in a temporary directory, built file by file.
struct PackDir {
    _temp: tempfile::TempDir,
    dir: PathBuf,
}

impl PackDir {
    fn new(pack_json: &str, values: &str) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("pack");
        fs::create_dir(&dir).unwrap();
        let pack = PackDir { _temp: temp, dir };
        pack.file("pack.json", pack_json)
            .file("values.yaml", values)
            .bytes("logo.png", PNG)
    }

    fn addon(kind: &str) -> Self {
        let json = format!(
            r#"{{"name": "app", "displayName": "App", "version": "1.0.0", "layer": "addon", "addonType": "{kind}"}}"#
        );
        PackDir::new(&json, "pack:\n  namespace: app\n")
    }

    fn file(self, rel: &str, text: &str) -> Self {
        self.bytes(rel, text.as_bytes())
    }

    fn bytes(self, rel: &str, data: &[u8]) -> Self {
        let path = self.dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
        self
    }

    fn remove(self, rel: &str) -> Self {
        fs::remove_file(self.dir.join(rel)).unwrap();
        self
    }

    fn load(&self) -> (Option<Pack>, Findings) {
        Pack::load(&self.dir)
    }

    fn errors(&self) -> Findings {
        let (pack, findings) = self.load();
        assert!(pack.is_none(), "expected the pack to be refused");
        findings
    }
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n";

fn chart_yaml(name: &str, version: &str) -> String {
    format!("apiVersion: v2\nname: {name}\nversion: {version}\n")
}

fn chart_archive(name: &str, version: &str) -> Vec<u8> {
    chart_archive_at(&format!("{name}/Chart.yaml"), name, version)
}

/// A chart archive whose Chart.yaml is the entry `entry` (`./Chart.yaml` for an archive
/// made with `tar -C chart .`).
fn chart_archive_at(entry: &str, name: &str, version: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let text = chart_yaml(name, version);
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    // Written raw: the tar crate's path setters drop a leading `./`.
    header.as_old_mut().name[..entry.len()].copy_from_slice(entry.as_bytes());
    header.set_cksum();
    builder.append(&header, text.as_bytes()).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn every_sample_pack_is_valid() {
    let mut count = 0;
    for entry in fs::read_dir(samples()).unwrap() {
        let dir = entry.unwrap().path();
        let (pack, findings) = Pack::load(&dir);
        assert!(pack.is_some(), "{}: {findings:#?}", dir.display());
        count += 1;
    }
    assert!(count >= 9, "expected the sample packs, found {count}");
}

#[test]
fn sample_packs_have_the_content_their_layer_needs() {
    let load = |name: &str| Pack::load(&samples().join(name)).0.unwrap();
    let istio = load("istio");
    assert_eq!(istio.content(), PackContent::Charts);
    let charts: Vec<(&str, &[layout::ChartSource])> = istio
        .layout
        .charts
        .iter()
        .map(|c| (c.name.as_str(), c.sources.as_slice()))
        .collect();
    assert_eq!(
        charts.len(),
        2,
        "an archive and a folder of one chart are one chart"
    );
    assert_eq!(charts[0].0, "istio-controlplane");
    assert_eq!(charts[0].1.len(), 2);
    let kubeflow = load("kubeflow");
    assert_eq!(kubeflow.content(), PackContent::Manifests);
    assert!(
        kubeflow.manifest_objects.is_empty(),
        "kubeflow's manifests are templates: their objects are known once rendered"
    );
    assert_eq!(load("golden-centos-aws").content(), PackContent::None);
    assert_eq!(
        load("golden-centos-aws").manifest.annotations["imageId"],
        "ami-071f6fc516c53fca1"
    );
}

#[test]
fn the_folder_must_exist() {
    let (pack, findings) = Pack::load(Path::new("/nonexistent/pack"));
    assert!(pack.is_none());
    assert!(findings.contains("", "does not exist; expected a pack folder"));
}

#[test]
fn pack_json_and_values_yaml_are_mandatory() {
    let findings = PackDir::addon("ingress")
        .file("charts/x/Chart.yaml", &chart_yaml("x", "1"))
        .remove("pack.json")
        .errors();
    assert!(findings.contains("pack.json", "is missing; every pack needs one"));
    let findings = PackDir::addon("ingress")
        .file("charts/x/Chart.yaml", &chart_yaml("x", "1"))
        .remove("values.yaml")
        .errors();
    assert!(findings.contains("values.yaml", "is missing; every pack needs one"));
}

#[test]
fn an_empty_values_file_is_fine_for_an_os_pack() {
    let pack = PackDir::new(
        r#"{"name": "os", "displayName": "OS", "version": "18.04.4", "layer": "os"}"#,
        "",
    );
    let (loaded, findings) = pack.load();
    assert!(loaded.is_some(), "{findings:#?}");
    assert!(findings.is_empty(), "{findings:#?}");
}

#[test]
fn pack_json_findings_are_prefixed_with_the_file() {
    let findings = PackDir::new(
        r#"{"name": "os", "displayName": "OS", "version": "1", "layer": "firmware"}"#,
        "",
    )
    .errors();
    assert!(findings.contains("pack.json: layer", "found \"firmware\""));
}

#[test]
fn missing_logo_is_a_warning_and_a_fake_logo_too() {
    let pack = PackDir::addon("ingress")
        .file("manifests/app.yaml", DEPLOYMENT)
        .remove("logo.png");
    let (loaded, findings) = pack.load();
    assert!(loaded.is_some());
    assert!(findings.contains(
        "logo.png",
        "is missing; a pack needs a logo.png to be published"
    ));
    let pack = PackDir::addon("ingress")
        .file("manifests/app.yaml", DEPLOYMENT)
        .file("logo.png", "not an image");
    let (loaded, findings) = pack.load();
    assert!(loaded.is_some());
    assert!(findings.contains("logo.png", "is not a PNG image"));
    assert!(findings.iter().all(|f| f.severity == Severity::Warning));
}

#[test]
fn packs_that_install_into_the_cluster_need_charts_or_manifests() {
    for layer in ["cni", "csi"] {
        let json =
            format!(r#"{{"name": "x", "displayName": "X", "version": "1", "layer": "{layer}"}}"#);
        let findings = PackDir::new(&json, "").errors();
        assert!(
            findings.contains("", &format!("a {layer} pack installs into the cluster")),
            "{findings:#?}"
        );
    }
    let findings = PackDir::addon("ingress").errors();
    assert!(findings.contains(
        "",
        "needs Helm charts under charts/ or manifests under manifests/; found neither"
    ));
}

#[test]
fn chart_folders_need_chart_yaml_and_archives_must_be_charts() {
    let findings = PackDir::addon("ingress")
        .file("charts/app/values.yaml", "a: 1")
        .errors();
    assert!(findings.contains("charts/app", "is a folder without Chart.yaml"));
    let findings = PackDir::addon("ingress")
        .file("charts/app.tgz", "not gzip")
        .errors();
    assert!(findings.contains("charts/app.tgz", "is not a Helm chart archive"));
    let findings = PackDir::addon("ingress")
        .file("charts/app/Chart.yaml", "apiVersion: v2\nversion: 1.0.0\n")
        .errors();
    assert!(findings.contains("charts/app/Chart.yaml", "has no name"));
}

#[test]
fn an_archive_and_a_folder_of_different_versions_use_the_archive() {
    // Folder first (charts/app sorts before charts/app.tgz), then archive first.
    for (archive, folder) in [
        ("charts/app.tgz", "charts/app"),
        ("charts/app.tgz", "charts/zz-app"),
    ] {
        let pack = PackDir::addon("ingress")
            .bytes(archive, &chart_archive("app", "1.0.0"))
            .file(&format!("{folder}/Chart.yaml"), &chart_yaml("app", "2.0.0"));
        let (loaded, findings) = pack.load();
        let loaded = loaded.unwrap_or_else(|| panic!("{findings:#?}"));
        let chart = &loaded.layout.charts[0];
        assert_eq!(
            (chart.version.as_str(), chart.path.as_str()),
            ("1.0.0", archive)
        );
        let warned_on = if folder == "charts/app" {
            archive
        } else {
            folder
        };
        assert!(
            findings.contains(
                warned_on,
                &format!(
                    "chart app: the archive {archive} holds version 1.0.0, the folder {folder} \
                     holds version 2.0.0; the archive is used"
                )
            ),
            "{findings:#?}"
        );
    }
    // The same version written with and without a leading v is the same version.
    let (loaded, findings) = PackDir::addon("ingress")
        .bytes("charts/app.tgz", &chart_archive("app", "0.12.2"))
        .file("charts/app/Chart.yaml", &chart_yaml("app", "v0.12.2"))
        .load();
    assert!(loaded.is_some());
    assert_eq!(
        findings
            .warnings()
            .filter(|w| w.message.contains("the archive is used"))
            .count(),
        0
    );
}

#[test]
fn chart_archives_rooted_at_dot_load_as_helm_loads_them() {
    let (loaded, findings) = PackDir::addon("ingress")
        .bytes(
            "charts/app-1.0.0.tgz",
            &chart_archive_at("./Chart.yaml", "app", "1.0.0"),
        )
        .load();
    let loaded = loaded.unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!(loaded.layout.charts[0].name, "app");
    assert_eq!(loaded.layout.charts[0].version, "1.0.0");
    // Helm takes the first component as the chart folder: deeper is not the chart's.
    let findings = PackDir::addon("ingress")
        .bytes(
            "charts/app.tgz",
            &chart_archive_at("./app/Chart.yaml", "app", "1.0.0"),
        )
        .errors();
    assert!(findings.contains("charts/app.tgz", "no <chart>/Chart.yaml inside"));
    let findings = PackDir::addon("ingress")
        .bytes(
            "charts/app.tgz",
            &chart_archive_at("Chart.yaml", "app", "1.0.0"),
        )
        .errors();
    assert!(findings.contains("charts/app.tgz", "no <chart>/Chart.yaml inside"));
}

#[test]
fn chart_names_come_from_chart_yaml_and_stray_files_are_warnings() {
    let pack = PackDir::addon("monitoring")
        .bytes(
            "charts/prometheus-15.0.1.tgz",
            &chart_archive("prometheus", "15.0.1"),
        )
        .file("charts/NOTES.txt", "hello")
        .file("values.yaml", "charts:\n  prometheus: {}\n  grafana: {}\n");
    let (loaded, findings) = pack.load();
    let loaded = loaded.unwrap();
    assert_eq!(loaded.layout.charts[0].name, "prometheus");
    assert!(findings.contains(
        "charts/NOTES.txt",
        "is neither a chart archive (.tgz) nor a chart folder"
    ));
    assert!(
        findings.contains("values.yaml: charts.grafana", "no chart named grafana"),
        "{findings:#?}"
    );
}

#[test]
fn declared_paths_must_exist_inside_the_pack() {
    let json = r#"{"name": "app", "displayName": "App", "version": "1", "layer": "addon", "addonType": "ingress",
        "kubeManifests": ["manifests/app.yaml", "manifests/gone.yaml", "manifests/escape.yaml"], "charts": ["/abs.tgz"]}"#;
    let pack = PackDir::new(json, "").file("manifests/app.yaml", DEPLOYMENT);
    std::os::unix::fs::symlink("/etc/hostname", pack.dir.join("manifests/escape.yaml")).unwrap();
    let findings = pack.errors();
    assert!(findings.contains("pack.json: charts[0]", "is an absolute path"));
    assert!(
        findings.contains(
            "pack.json: kubeManifests[1]",
            "\"manifests/gone.yaml\" does not exist in the pack"
        ),
        "{findings:#?}"
    );
    assert!(
        findings.contains(
            "pack.json: kubeManifests[2]",
            "resolves outside the pack folder"
        ),
        "{findings:#?}"
    );
    assert!(findings.contains(
        "manifests/escape.yaml",
        "is a link to something outside the pack folder"
    ));
}

#[test]
fn manifests_must_be_kubernetes_objects() {
    let findings = PackDir::addon("ingress")
        .file(
            "manifests/app.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {}\n",
        )
        .errors();
    assert!(
        findings.contains("manifests/app.yaml: document 1", "metadata.name is missing"),
        "{findings:#?}"
    );
    let findings = PackDir::addon("ingress")
        .file("manifests/app.yaml", "kind: [unclosed")
        .errors();
    assert!(
        findings
            .iter()
            .any(|f| f.subject.starts_with("manifests/app.yaml") && f.message.contains("YAML")),
        "{findings:#?}"
    );
}

#[test]
fn templated_manifests_are_left_to_rendering_and_plain_ones_are_checked() {
    let template = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.missing | required \"x\" }}\n";
    let (pack, findings) = PackDir::addon("ingress")
        .file("manifests/app.yaml", template)
        .file(
            "manifests/plain.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n",
        )
        .load();
    let pack = pack.unwrap();
    assert!(findings.is_empty(), "{findings:#?}");
    let checked: Vec<(&str, &str)> = pack
        .manifest_objects
        .iter()
        .flat_map(|m| {
            m.objects
                .iter()
                .map(move |o| (m.path.as_str(), o.name.as_str()))
        })
        .collect();
    assert_eq!(checked, [("manifests/plain.yaml", "web")]);
}

#[test]
fn non_yaml_manifests_are_warnings_and_nested_folders_are_read() {
    let pack = PackDir::addon("ingress")
        .file("manifests/base/app.yaml", DEPLOYMENT)
        .file("manifests/README.txt", "notes");
    let (loaded, findings) = pack.load();
    assert_eq!(
        loaded.unwrap().layout.manifests[0].path,
        "manifests/base/app.yaml"
    );
    assert!(findings.contains("manifests/README.txt", "is not a .yaml or .yml file"));
}

#[test]
fn bad_images_and_unknown_manifest_sections_come_from_values_yaml() {
    let findings = PackDir::addon("ingress")
        .file("manifests/app.yaml", DEPLOYMENT)
        .file(
            "values.yaml",
            "pack:\n  content:\n    images:\n      - nginx::1\nmanifests:\n  other: {}\n",
        )
        .errors();
    assert!(
        findings.contains("values.yaml: pack.content.images[0]", "nginx::1"),
        "{findings:#?}"
    );
    assert!(findings.iter().any(|f| f.subject == "values.yaml: manifests.other" && f.severity == Severity::Warning));
}

#[test]
fn resource_param_refs_must_name_values() {
    let json = r#"{"name": "app", "displayName": "App", "version": "1", "layer": "addon", "addonType": "ingress",
        "constraints": {"resources": [{"type": "memory", "minLimit": 512, "components": [
            {"scheduleType": "worker", "resourceRequestParamRef": "manifests.app.memory", "replicaCountParamRef": "manifests.app.replicas"}]}]}}"#;
    let pack = PackDir::new(json, "manifests:\n  app:\n    replicas: 2\n")
        .file("manifests/app.yaml", DEPLOYMENT);
    let (loaded, findings) = pack.load();
    assert!(loaded.is_some());
    assert!(findings.contains(
        "pack.json: constraints.resources[0].components[0].resourceRequestParamRef",
        "\"manifests.app.memory\" names no key in values.yaml"
    ));
    assert!(
        !findings
            .iter()
            .any(|f| f.subject.ends_with("replicaCountParamRef"))
    );
}

#[test]
fn digest_is_stable_and_changes_with_content() {
    let pack = PackDir::addon("ingress").file("manifests/app.yaml", DEPLOYMENT);
    let first = pack.load().0.unwrap().digest().unwrap();
    assert_eq!(first, pack.load().0.unwrap().digest().unwrap());
    let pack = pack.file("manifests/app.yaml", &DEPLOYMENT.replace("app", "web"));
    assert_ne!(first, pack.load().0.unwrap().digest().unwrap());
    assert!(first.starts_with("sha256:") && first.len() == 71);
}

/// A pack's digest is its content digest: the same whatever level its archive was made at,
/// and the one any reader computes from the archive it received.
#[test]
fn digest_is_the_same_at_every_compression_level() {
    use crate::pack::archive::{
        ArchiveLimits, archive_pack, archive_pack_to, sha256_digest, unpack_archive,
    };
    use flate2::Compression;

    let pack = PackDir::addon("ingress").file("manifests/app.yaml", DEPLOYMENT);
    let loaded = pack.load().0.unwrap();
    let digest = loaded.digest().unwrap();
    let name = loaded.manifest.name.as_str();
    let at = |level| {
        let written =
            archive_pack_to(&loaded.dir, name, Compression::new(level), Vec::new()).unwrap();
        (written.out, written.content_digest)
    };
    let ((level_1, digest_1), (level_9, digest_9)) = (at(1), at(9));
    assert_ne!(level_1, level_9, "two levels, two archives");
    assert_ne!(sha256_digest(&level_1), sha256_digest(&level_9));
    assert_eq!(
        (digest_1.as_str(), digest_9.as_str()),
        (digest.as_str(), digest.as_str())
    );
    assert_eq!(
        archive_pack(&loaded.dir, name, Compression::new(3))
            .unwrap()
            .content_digest,
        digest
    );
    // The default archive is neither of them byte for byte, and has the same identity.
    assert_ne!(sha256_digest(&loaded.archive().unwrap()), digest);
    for bytes in [level_1, level_9, loaded.archive().unwrap()] {
        let out = tempfile::tempdir().unwrap();
        let unpacked = unpack_archive(
            bytes.as_slice(),
            &out.path().join("p"),
            &ArchiveLimits::default(),
        )
        .unwrap();
        assert_eq!(unpacked.content_digest, digest);
        let (reloaded, _) = Pack::load(&out.path().join("p"));
        assert_eq!(reloaded.unwrap().digest().unwrap(), digest);
    }
}

#[test]
fn a_catalog_lists_what_it_has_and_refuses_ambiguity() {
    use crate::catalog::{LocalPackCatalog, PackSource, ResolveError};
    let temp = tempfile::tempdir().unwrap();
    let copy = |from: &str, to: &str| {
        let target = temp.path().join(to);
        for entry in walk(&samples().join(from)) {
            let rel = entry.strip_prefix(samples().join(from)).unwrap();
            let dest = target.join(rel);
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(&entry, dest).unwrap();
        }
    };
    copy("kubernetes", "a-k8s");
    copy("istio", "b-istio");
    copy("kubernetes", "c-k8s");
    let catalog = LocalPackCatalog::load(temp.path()).unwrap();
    match catalog.resolve("calico", "1", None).unwrap_err() {
        ResolveError::UnknownPack { available, .. } => {
            assert_eq!(available, ["istio", "kubernetes"])
        }
        other => panic!("unexpected {other}"),
    }
    let err = catalog
        .resolve("kubernetes", "1.20.2", None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pack kubernetes:1.20.2 is in more than one folder"),
        "{err}"
    );
    let err = catalog
        .resolve("istio", "1.7", None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pack \"istio\" has no version \"1.7\"")
            && err.contains("versions there: 1.6.2"),
        "{err}"
    );
    assert_eq!(
        catalog
            .resolve("istio", "1.6.2.0", None)
            .unwrap()
            .manifest
            .version,
        "1.6.2"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
