//! The hand-run commands (`plan`, `move`, `own-cache`) refuse bad input with the file or
//! folder named, before touching any cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_strata-agent"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn a_missing_kubeconfig_is_named() {
    for command in ["plan", "move"] {
        let (ok, text) = run(&[
            command,
            "--source-kubeconfig",
            "/nonexistent/source.kubeconfig",
            "--target-kubeconfig",
            "/nonexistent/target.kubeconfig",
            "--namespace",
            "team-a-edge",
            "--cluster",
            "edge",
        ]);
        assert!(!ok, "{command}: {text}");
        assert!(
            text.contains("/nonexistent/source.kubeconfig"),
            "{command}: {text}"
        );
    }
}

#[test]
fn a_kubeconfig_that_is_not_one_is_named() {
    let dir = tempfile_dir();
    let bad = dir.join("bad.kubeconfig");
    std::fs::write(&bad, "clusters: [this is not: a kubeconfig").unwrap();
    let bad = bad.to_str().unwrap();
    let (ok, text) = run(&[
        "move",
        "--source-kubeconfig",
        bad,
        "--target-kubeconfig",
        bad,
        "--namespace",
        "team-a-edge",
        "--cluster",
        "edge",
    ]);
    assert!(!ok, "{text}");
    assert!(text.contains(bad), "{text}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_move_command_requires_its_cluster() {
    let (ok, text) = run(&[
        "move",
        "--source-kubeconfig",
        "a",
        "--target-kubeconfig",
        "b",
    ]);
    assert!(!ok);
    assert!(
        text.contains("--namespace") && text.contains("--cluster"),
        "{text}"
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-agent-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The init container's command: the pack cache folder is given to the agent's user, and
/// a folder that is not there is named.
#[test]
fn own_cache_gives_the_folder_to_the_user_and_names_a_missing_one() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile_dir().join("pack-cache");
    std::fs::create_dir_all(&dir).unwrap();
    // Whoever runs the tests can always give a folder to themselves; root can give it
    // to anyone, as the init container does.
    let own = std::fs::metadata(&dir).unwrap().uid();
    let uid = if own == 0 { 65532 } else { own };
    let (ok, text) = run(&["own-cache", &format!("--uid={uid}"), dir.to_str().unwrap()]);
    assert!(ok, "{text}");
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, uid));
    let missing = dir.join("not-there");
    let (ok, text) = run(&["own-cache", "--uid=65532", missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(text.contains(missing.to_str().unwrap()), "{text}");
}
