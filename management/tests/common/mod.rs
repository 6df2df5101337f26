//! Helpers shared by the `strata` CLI integration tests: running the binary, the sample
//! fixtures, building small packs in temporary folders, and an independent SHA-256.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use assert_cmd::Command;

/// The `strata` binary, with no helm to find: these tests check what strata does on its
/// own (e2e's pack_render tests run it with helm).
pub fn strata() -> Command {
    let mut command = Command::cargo_bin("strata").expect("the strata binary is built");
    command.env_remove("STRATA_HELM").env("PATH", "");
    command
}

/// `strata <args>` run in `dir`, whatever its exit status.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    strata()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("strata runs")
}

/// `manifests/samples` of the repository.
pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples")
}

/// `manifests/samples/packs/<name>`.
pub fn sample_pack(name: &str) -> PathBuf {
    samples().join("packs").join(name)
}

/// Every sample pack folder, sorted by name.
pub fn sample_pack_names() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(samples().join("packs"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("pack.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

pub fn stderr_lines(output: &Output) -> Vec<String> {
    stderr(output).lines().map(str::to_string).collect()
}

pub fn code(output: &Output) -> i32 {
    output.status.code().expect("strata exited normally")
}

/// A readable dump of a run, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit status: {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    )
}

/// Asserts that stderr has `line` as one of its lines, exactly.
pub fn assert_stderr_line(output: &Output, line: &str) {
    assert!(
        stderr_lines(output).iter().any(|l| l == line),
        "expected the stderr line\n  {line}\n{}",
        describe(output)
    );
}

/// Asserts that some stderr line starts with `prefix` and contains every one of `needles`.
pub fn assert_stderr_line_matching(output: &Output, prefix: &str, needles: &[&str]) {
    assert!(
        stderr_lines(output)
            .iter()
            .any(|l| l.starts_with(prefix) && needles.iter().all(|n| l.contains(n))),
        "expected a stderr line starting with\n  {prefix}\ncontaining {needles:?}\n{}",
        describe(output)
    );
}

/// Writes a file, creating its parent folders.
pub fn write(path: &Path, contents: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, contents).unwrap();
}

/// The 8-byte PNG signature, all a logo.png needs to pass validation.
pub const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

pub const DEMO_PACK_JSON: &str = r#"{
  "name": "demo",
  "displayName": "Demo",
  "version": "1.0.0",
  "layer": "addon",
  "addonType": "monitoring",
  "kubeManifests": ["manifests/app.yaml"]
}
"#;

pub const DEMO_VALUES: &str = "pack:
  namespace: demo
  content:
    images:
      - docker.io/library/nginx:1.25
manifests:
  app:
    replicas: 1
";

pub const DEMO_MANIFEST: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  replicas: \"1\"
";

/// Creates `root/<dir_name>`: a valid addon pack `demo:1.0.0` with one manifest, a logo and
/// values, which validates without any finding. Tests break one thing in it.
pub fn demo_pack(root: &Path, dir_name: &str) -> PathBuf {
    let dir = root.join(dir_name);
    write(&dir.join("pack.json"), DEMO_PACK_JSON);
    write(&dir.join("values.yaml"), DEMO_VALUES);
    write(&dir.join("logo.png"), PNG_SIGNATURE);
    write(&dir.join("manifests/app.yaml"), DEMO_MANIFEST);
    dir
}

/// Rewrites a pack's pack.json after `edit` changed its top-level object.
pub fn edit_pack_json(
    dir: &Path,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let path = dir.join("pack.json");
    let mut value: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(value.as_object_mut().expect("pack.json is an object"));
    fs::write(&path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

/// Copies a folder tree (folders and regular files), like `cp -r src dst`. The copies get
/// new modification times.
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dst.join(entry.file_name());
        let file_type = entry.file_type().unwrap();
        if file_type.is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            assert!(
                file_type.is_file(),
                "{} is not a regular file",
                entry.path().display()
            );
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Sets the modification time of every file under `dir` to `when`.
pub fn touch_all(dir: &Path, when: SystemTime) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            touch_all(&path, when);
        } else {
            fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
    }
}

/// A modification time far from "now": 2001-09-09.
pub fn long_ago() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)
}

/// `strata pack inspect -o json <path>` parsed; panics unless it succeeds.
pub fn inspect_json(path: &Path) -> serde_json::Value {
    let output = strata()
        .args(["pack", "inspect", "-o", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(
        code(&output),
        0,
        "inspect {}\n{}",
        path.display(),
        describe(&output)
    );
    serde_json::from_slice(&output.stdout).expect("inspect -o json prints JSON")
}

/// What a gzipped archive decompresses to (every member), with flate2 here rather than
/// Strata's unpacker, so that content digests are checked independently.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// SHA-256 of `data` as `sha256:<hex>`, computed with sha2 here rather than taken from the
/// CLI's output, so that digests are checked independently.
pub fn sha256(data: &[u8]) -> String {
    strata_shared::pack::archive::sha256_digest(data)
}
