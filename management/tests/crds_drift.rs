//! `strata crds`, and `manifests/crds/` kept equal to what it generates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const REGENERATE: &str = "run `cargo run -p strata-management -- crds --output-dir manifests/crds` \
                          from the repository root and commit the result";

fn committed_crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds")
}

/// File name → contents of every entry in `dir`.
fn files_in(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; {REGENERATE}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let contents = if entry.file_type().unwrap().is_file() {
                fs::read(entry.path()).unwrap()
            } else {
                Vec::new()
            };
            (name, contents)
        })
        .collect()
}

/// Runs `strata crds --output-dir` into a fresh folder and returns what it wrote.
fn generated() -> BTreeMap<String, Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("crds");
    let output = strata()
        .arg("crds")
        .arg("--output-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let files = files_in(&dir);
    for name in files.keys() {
        assert!(
            stdout(&output).contains(&format!("wrote {}", dir.join(name).display())),
            "{name} not reported\n{}",
            describe(&output)
        );
    }
    files
}

#[test]
fn manifests_crds_matches_the_generated_crds() {
    let expected = generated();
    assert!(
        !expected.is_empty(),
        "strata crds --output-dir wrote nothing"
    );
    let committed = files_in(&committed_crds_dir());

    let missing: Vec<&String> = expected
        .keys()
        .filter(|n| !committed.contains_key(*n))
        .collect();
    let extra: Vec<&String> = committed
        .keys()
        .filter(|n| !expected.contains_key(*n))
        .collect();
    let differing: Vec<&String> = expected
        .iter()
        .filter(|(name, bytes)| committed.get(*name).is_some_and(|c| c != *bytes))
        .map(|(name, _)| name)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differing.is_empty(),
        "manifests/crds/ is out of date with the Rust types: missing files {missing:?}, \
         files strata does not generate {extra:?}, files with other contents {differing:?}; {REGENERATE} (delete the files it does not generate)"
    );
}

#[test]
fn crds_prints_every_crd() {
    let output = strata().arg("crds").output().unwrap();
    assert_eq!(code(&output), 0, "{}", describe(&output));
    let text = stdout(&output);
    let mut names = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let crd = <serde_yaml::Value as serde::Deserialize>::deserialize(document).unwrap();
        if crd.is_null() {
            continue;
        }
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        assert_eq!(crd["spec"]["group"], "strata.dev");
        names.push(crd["metadata"]["name"].as_str().unwrap().to_string());
    }
    assert_eq!(
        names,
        [
            "cloudaccounts.strata.dev",
            "clusterprofiles.strata.dev",
            "clusterrevisions.strata.dev",
            "packregistries.strata.dev",
            "workloadclusters.strata.dev"
        ]
    );

    // The printed stream is the files of --output-dir, each behind a `---`.
    let files = generated();
    let file_names: Vec<String> = names.iter().map(|n| format!("{n}.yaml")).collect();
    assert_eq!(files.keys().cloned().collect::<Vec<_>>(), file_names);
    let joined: String = file_names
        .iter()
        .map(|n| format!("---\n{}", String::from_utf8(files[n].clone()).unwrap()))
        .collect();
    assert_eq!(text, joined);
}
