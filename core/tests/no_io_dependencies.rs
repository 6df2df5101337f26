//! strata-core is the pure half of the domain: no network client and no async runtime may
//! reach it, directly or through another crate. The dependency graph is read from
//! `cargo tree` for strata-core alone, so that features other workspace members turn on
//! (strata-shared enables kube's client) do not count against it, as they would in the
//! workspace-wide resolve of `cargo metadata`.

#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::Command;

/// Crates that mean a client, a runtime or network I/O. `kube-client` is kube's `client`
/// and `config` features; kube's `derive` and `kube-core` are data only.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "kube-client",
    "kube-runtime",
    "hyper",
    "hyper-util",
    "reqwest",
    "oci-client",
    "tower",
];

/// One line of `cargo tree --prefix depth`: how deep, and the package name.
fn parse_line(line: &str) -> Option<(usize, &str)> {
    let digits = line.find(|c: char| !c.is_ascii_digit())?;
    let depth = line[..digits].parse().ok()?;
    let name = line[digits..].split_whitespace().next()?;
    Some((depth, name))
}

/// For each forbidden crate in the tree, the path from strata-core to it.
fn forbidden_paths(tree: &str) -> Vec<String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut found = Vec::new();
    for (depth, name) in tree.lines().filter_map(parse_line) {
        stack.truncate(depth);
        stack.push(name);
        if FORBIDDEN.contains(&name) {
            found.push(stack.join(" -> "));
        }
    }
    found
}

fn strata_core_tree() -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(&cargo)
        .args(["tree", "--offline", "--locked", "--edges", "normal"])
        .args([
            "--prefix",
            "depth",
            "--format",
            "{p}",
            "--package",
            "strata-core",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .unwrap_or_else(|error| panic!("running {cargo} tree: {error}"));
    assert!(
        output.status.success(),
        "{cargo} tree for strata-core failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo tree prints UTF-8")
}

#[test]
fn strata_core_depends_on_no_client_or_runtime() {
    let tree = strata_core_tree();
    let root = tree.lines().filter_map(parse_line).next();
    assert_eq!(
        root,
        Some((0, "strata-core")),
        "cargo tree did not start at strata-core:\n{tree}"
    );
    // The tree must hold real dependencies, or an empty answer would pass.
    assert!(
        tree.lines()
            .filter_map(parse_line)
            .any(|(_, name)| name == "k8s-openapi"),
        "k8s-openapi missing from strata-core's tree:\n{tree}"
    );
    let paths = forbidden_paths(&tree);
    assert!(
        paths.is_empty(),
        "strata-core must not depend on a client or runtime crate; found:\n  {}",
        paths.join("\n  ")
    );
}

#[test]
fn a_forbidden_crate_is_reported_with_its_path() {
    let tree = "0strata-core v0.1.0\n1kube v5.0.0\n2kube-core v5.0.0\n2kube-client v5.0.0\n3tokio v1.0.0\n1serde v1.0.0\n";
    assert_eq!(
        forbidden_paths(tree),
        vec![
            "strata-core -> kube -> kube-client".to_owned(),
            "strata-core -> kube -> kube-client -> tokio".to_owned(),
        ]
    );
}
