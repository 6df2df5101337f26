//! The container images: `scripts/images.sh` builds `strata` and `strata-agent` from the
//! debug binaries next to this test (no container daemon: `strata-image` assembles each
//! image from the binaries, their shared libraries and a few files) and pushes them to a
//! test registry with TLS and htpasswd. Each image is then pulled back by hand over the
//! distribution API (no Strata code): the manifest by tag, the config and layer blobs
//! checked against their digests and sizes; the configuration's entrypoint, user,
//! environment and OCI labels; the layer's entries (owners, modes, time stamps); and the
//! programs run from the extracted layer and answer, `chroot`ed into it as the image's
//! user when the test runs as root, else through the image's own loader.
//!
//! The debug binaries stand in for the release ones (the script's `--binaries`), and
//! e2e's `helm` (on the Helm engine library) for the official helm: its `--help` runs in
//! the image, its chart commands would need the engine library, which the image lacks.
//!
//! No Kubernetes control plane is started.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use strata_e2e::cli_run::describe_output as describe;

use serde_json::Value;
use strata_e2e::management::repo_root;
use strata_e2e::oci_images::{OCI_MANIFEST, OciImages, sha256};
use strata_e2e::registry::{RegistryOptions, TestRegistry};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// e2e's helm, built with the other binaries of the workspace into target/<profile>/.
const HELM: &str = env!("CARGO_BIN_EXE_helm");
const PREFIX: &str = "strata";
const TAG: &str = "test";
const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";
const SOURCE: &str = "https://strata.invalid/source";
/// 2023-11-14T22:13:20Z.
const EPOCH: u64 = 1_700_000_000;
const CREATED: &str = "2023-11-14T22:13:20Z";
const NONROOT: u64 = 65532;
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Where strata, strata-agent, strata-image and helm were built.
fn binaries_dir() -> PathBuf {
    Path::new(HELM).parent().unwrap().to_path_buf()
}

fn strata_image_tool() -> PathBuf {
    let tool = binaries_dir().join("strata-image");
    assert!(
        tool.is_file(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins)",
        tool.display()
    );
    tool
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn images_sh(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(repo_root().join("scripts/images.sh"));
    command.args(args).env_remove("SOURCE_DATE_EPOCH");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().await.unwrap()
}

fn arg(text: impl AsRef<std::ffi::OsStr>) -> String {
    text.as_ref().to_string_lossy().into_owned()
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("images are built for x86_64 and aarch64 only, not {other}"),
    }
}

/// One entry of a layer.
#[derive(Debug, Clone)]
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    size: u64,
    link: Option<String>,
    /// The first bytes (all of a small file).
    head: Vec<u8>,
}

/// The entries of an uncompressed layer, in archive order.
fn list_layer(tar_bytes: &[u8]) -> Vec<(String, Entry)> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut entries = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let path = text(&entry.path_bytes());
        let link = entry.link_name().unwrap().map(|l| arg(l.as_os_str()));
        let mut head = Vec::new();
        (&mut entry).take(64 * 1024).read_to_end(&mut head).unwrap();
        entries.push((
            path,
            Entry {
                kind: header.entry_type(),
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                mtime: header.mtime().unwrap(),
                size: header.size().unwrap(),
                link,
                head,
            },
        ));
    }
    entries
}

/// Extracts the layer into `root` as a container runtime would: modes, and owners when
/// this process may set them.
fn extract(tar_bytes: &[u8], root: &Path, as_root: bool) {
    let mut archive = tar::Archive::new(tar_bytes);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(as_root);
    archive.unpack(root).unwrap();
    // The image's / is the runtime's: traversable by its user.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    // Real, effective, saved, filesystem.
    uid_line.split_whitespace().nth(2) == Some("0")
}

/// How the test runs a program of an extracted image.
enum Runner {
    /// `chroot --userspec=<user> <root>`: the image's files only, as the image's user.
    Chroot { chroot: PathBuf, user: String },
    /// The image's own loader with the image's library folders; the program sees the
    /// machine's files otherwise.
    Loader {
        loader: PathBuf,
        library_path: String,
    },
}

impl Runner {
    fn for_image(root: &Path, entries: &[(String, Entry)], user: &str) -> Runner {
        if running_as_root() {
            return Runner::Chroot {
                chroot: find_chroot(),
                user: user.to_owned(),
            };
        }
        let regular = |path: &&String| {
            entries
                .iter()
                .any(|(p, e)| p == *path && e.kind == tar::EntryType::Regular)
        };
        let files: Vec<&String> = entries.iter().map(|(p, _)| p).filter(regular).collect();
        let loader = files
            .iter()
            .find(|p| {
                Path::new(p.as_str())
                    .file_name()
                    .is_some_and(|n| arg(n).starts_with("ld-linux"))
            })
            .expect("no ld-linux loader in the image");
        let mut folders: Vec<String> = files
            .iter()
            .filter(|p| p.contains(".so"))
            .map(|p| {
                let folder = Path::new(p.as_str()).parent().unwrap();
                arg(root.join(folder).as_os_str())
            })
            .collect();
        folders.dedup();
        Runner::Loader {
            loader: root.join(loader.as_str()),
            library_path: folders.join(":"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Runner::Chroot { user, .. } => format!("chroot into the image as {user}"),
            Runner::Loader { loader, .. } => format!(
                "the image's loader {} (not root, so no chroot)",
                loader.display()
            ),
        }
    }

    /// Runs `program` of the image with the image's environment (`KEY=value` lines of
    /// its configuration) and nothing of the test's.
    fn run(&self, root: &Path, env: &[(String, String)], program: &str, args: &[&str]) -> Output {
        let mut command = match self {
            Runner::Chroot { chroot, user } => {
                let mut command = std::process::Command::new(chroot);
                command
                    .arg(format!("--userspec={user}"))
                    .arg(root)
                    .arg(program);
                command
            }
            Runner::Loader {
                loader,
                library_path,
            } => {
                // A bare name is looked up on the image's PATH, in the image.
                let path = if program.contains('/') {
                    root.join(program.trim_start_matches('/'))
                } else {
                    let image_path = env.iter().find(|(k, _)| k == "PATH").unwrap();
                    image_path
                        .1
                        .split(':')
                        .map(|dir| root.join(dir.trim_start_matches('/')).join(program))
                        .find(|candidate| candidate.is_file())
                        .unwrap_or_else(|| panic!("{program} is not on the image's PATH"))
                };
                let mut command = std::process::Command::new(loader);
                command.arg("--library-path").arg(library_path).arg(path);
                command
            }
        };
        command
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)));
        command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} of the image: {e}"))
    }
}

/// chroot(8): root's PATH has it, a test runner's may not.
fn find_chroot() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join("chroot"))
        .find(|candidate| candidate.is_file())
        .expect("chroot not found (coreutils), needed to run the images' programs as root")
}

/// Pulls `<PREFIX>/<name>:<TAG>` and checks its manifest, config and layer; returns the
/// config and the uncompressed layer.
async fn pull(images: &OciImages<'_>, name: &str, pushed_digest: &str) -> (Value, Vec<u8>) {
    let repository = format!("{PREFIX}/{name}");
    let manifest = images.fetch_manifest(&repository, TAG).await.unwrap();
    assert_eq!(manifest.media_type, OCI_MANIFEST, "{name}");
    assert_eq!(sha256(&manifest.bytes), pushed_digest, "{name}");
    assert_eq!(manifest.digest.as_deref(), Some(pushed_digest), "{name}");
    let manifest: Value = serde_json::from_slice(&manifest.bytes).unwrap();
    assert_eq!(manifest["schemaVersion"], 2, "{manifest}");
    assert_eq!(manifest["mediaType"], OCI_MANIFEST, "{manifest}");
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json",
        "{manifest}"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(
        layers[0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "{manifest}"
    );

    let blob = |descriptor: &Value| {
        let digest = descriptor["digest"].as_str().unwrap().to_owned();
        let size = descriptor["size"].as_u64().unwrap();
        let repository = repository.clone();
        async move {
            let bytes = images.fetch_blob(&repository, &digest).await.unwrap();
            assert_eq!(bytes.len() as u64, size, "size of {digest} in {repository}");
            assert_eq!(
                sha256(&bytes),
                digest,
                "content of {digest} in {repository}"
            );
            bytes
        }
    };
    let config: Value = serde_json::from_slice(&blob(&manifest["config"]).await).unwrap();
    let compressed = blob(&layers[0]).await;
    let mut layer = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut layer)
        .unwrap();
    assert_eq!(
        config["rootfs"],
        serde_json::json!({"type": "layers", "diff_ids": [sha256(&layer)]}),
        "{name}: the config names the uncompressed layer's digest"
    );
    // The same labels on the manifest, for registries' and scanners' views.
    assert_eq!(
        manifest["annotations"], config["config"]["Labels"],
        "{name}: manifest annotations and image labels"
    );
    (config, layer)
}

fn check_config(name: &str, description_word: &str, config: &Value) {
    assert_eq!(config["architecture"], oci_arch(), "{config}");
    assert_eq!(config["os"], "linux", "{config}");
    assert_eq!(config["created"], CREATED, "{config}");
    let run = &config["config"];
    assert_eq!(run["User"], "65532:65532", "{name}: {run}");
    assert_eq!(
        run["Entrypoint"],
        serde_json::json!([format!("/usr/local/bin/{name}")]),
        "{name}: {run}"
    );
    assert_eq!(run["WorkingDir"], "/", "{name}: {run}");
    let env: Vec<&str> = run["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"PATH=/usr/local/bin:/usr/bin:/bin"),
        "{env:?}"
    );
    assert!(env.contains(&"HOME=/home/nonroot"), "{env:?}");
    assert_eq!(
        env.contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        Path::new(CA_BUNDLE).is_file(),
        "{env:?}"
    );
    let labels = run["Labels"].as_object().unwrap();
    let label = |key: &str| {
        labels
            .get(&format!("org.opencontainers.image.{key}"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{name}: no label {key} in {labels:?}"))
    };
    assert_eq!(label("title"), name);
    assert!(
        label("description").contains(description_word),
        "{name}: {}",
        label("description")
    );
    assert_eq!(label("version"), VERSION);
    assert_eq!(label("revision"), REVISION);
    assert_eq!(label("source"), SOURCE);
    assert_eq!(label("licenses"), "Apache-2.0");
    assert_eq!(label("created"), CREATED);
    assert_eq!(labels.len(), 7, "{name}: {labels:?}");
}

fn check_entries(name: &str, entries: &[(String, Entry)], programs: &[&str]) {
    let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "{name}: entries in path order");
    let by_path: BTreeMap<&str, &Entry> = entries.iter().map(|(p, e)| (p.as_str(), e)).collect();
    let get = |path: &str| {
        *by_path
            .get(path)
            .unwrap_or_else(|| panic!("{name}: no {path} in {paths:?}"))
    };
    for (path, entry) in entries {
        assert_eq!(entry.mtime, EPOCH, "{name}: time stamp of {path}");
        if entry.kind == tar::EntryType::Regular {
            assert_eq!((entry.uid, entry.gid), (0, 0), "{name}: owner of {path}");
            assert_eq!(entry.mode & 0o022, 0, "{name}: {path} writable by others");
        }
    }
    for program in programs {
        let entry = get(&format!("usr/local/bin/{program}"));
        assert_eq!(entry.kind, tar::EntryType::Regular, "{name}: {program}");
        assert_eq!(entry.mode, 0o755, "{name}: {program} is executable");
        assert!(
            entry.head.starts_with(b"\x7fELF"),
            "{name}: {program} is ELF"
        );
        assert!(
            entry.size > 1024 * 1024,
            "{name}: {program} is {} bytes",
            entry.size
        );
    }
    let tmp = get("tmp/");
    assert_eq!((tmp.kind, tmp.mode), (tar::EntryType::Directory, 0o1777));
    let home = get("home/nonroot/");
    assert_eq!((home.uid, home.gid, home.mode), (NONROOT, NONROOT, 0o755));
    if name == "strata" {
        let cache = get("var/cache/strata/");
        assert_eq!(
            (cache.uid, cache.gid, cache.mode),
            (NONROOT, NONROOT, 0o755)
        );
    }
    let passwd = text(&get("etc/passwd").head);
    assert!(
        passwd.contains("nonroot:x:65532:65532:nonroot:/home/nonroot:"),
        "{passwd}"
    );
    assert!(text(&get("etc/group").head).contains("nonroot:x:65532:"));
    assert!(text(&get("etc/nsswitch.conf").head).contains("passwd: files"));
    if Path::new(CA_BUNDLE).is_file() {
        let bundle = get("etc/ssl/certs/ca-certificates.crt");
        assert!(text(&bundle.head).contains("BEGIN CERTIFICATE"), "{name}");
    } else {
        eprintln!("this machine has no {CA_BUNDLE}: the images carry none (not checked)");
    }
    // Links are symbolic (a hard link would name a path the runtime may not have yet)
    // and never climb with "..": absolute targets resolve inside the image's root.
    for (path, entry) in entries {
        if let Some(link) = &entry.link {
            assert_eq!(entry.kind, tar::EntryType::Symlink, "{name}: {path}");
            assert!(!link.contains(".."), "{name}: {path} -> {link}");
        }
    }
}

#[tokio::test]
async fn the_images_script_builds_pushes_and_the_pulled_images_start() {
    let tool = strata_image_tool();
    let registry = TestRegistry::start(RegistryOptions::default())
        .await
        .unwrap();
    let layouts = tempfile::tempdir().unwrap();
    let to = format!("{}/{PREFIX}", registry.host());
    let args = [
        "--binaries".into(),
        arg(binaries_dir()),
        "--tool".into(),
        arg(&tool),
        "--helm".into(),
        HELM.into(),
        "--layout-dir".into(),
        arg(layouts.path()),
        "--revision".into(),
        REVISION.into(),
        "--source".into(),
        SOURCE.into(),
        "--push".into(),
        to.clone(),
        "--tag".into(),
        TAG.into(),
        "--ca-file".into(),
        arg(registry.ca_file().unwrap()),
        "--username".into(),
        registry.username().into(),
    ];
    let epoch = EPOCH.to_string();
    let output = images_sh(
        &args,
        &[
            ("SOURCE_DATE_EPOCH", epoch.as_str()),
            ("STRATA_IMAGE_PASSWORD", registry.password()),
        ],
    )
    .await;
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    eprintln!("scripts/images.sh:\n{stderr}{stdout}");
    assert!(
        !stderr.contains(registry.password()),
        "the password shows in the script's output"
    );

    // stdout: `<name> <digest> <layout>` per build, `<reference>@<digest>` per push.
    let built: BTreeMap<&str, &str> = stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split(' ');
            Some((words.next()?, words.next()?))
        })
        .filter(|(name, _)| !name.contains('/'))
        .collect();
    let pushed: BTreeMap<String, String> = stdout
        .lines()
        .filter_map(|l| l.split_once('@'))
        .map(|(reference, digest)| (reference.to_owned(), digest.to_owned()))
        .collect();
    assert_eq!(built.len(), 2, "{stdout}");
    assert_eq!(pushed.len(), 2, "{stdout}");

    let images = OciImages::new(&registry).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    for (name, programs, description_word) in [
        ("strata", &["strata"][..], "controller"),
        ("strata-agent", &["strata-agent", "helm"][..], "helm"),
    ] {
        let reference = format!("{to}/{name}:{TAG}");
        let digest = pushed
            .get(&reference)
            .unwrap_or_else(|| panic!("{reference} not in {stdout}"));
        assert_eq!(built.get(name), Some(&digest.as_str()), "{name}: {stdout}");
        assert_eq!(
            images
                .manifest_digest(&format!("{PREFIX}/{name}"), TAG)
                .await
                .unwrap()
                .as_deref(),
            Some(digest.as_str())
        );

        let (config, layer) = pull(&images, name, digest).await;
        check_config(name, description_word, &config);
        let entries = list_layer(&layer);
        check_entries(name, &entries, programs);

        let root = scratch.path().join(name);
        std::fs::create_dir(&root).unwrap();
        let as_root = running_as_root();
        extract(&layer, &root, as_root);
        let user = config["config"]["User"].as_str().unwrap();
        let runner = Runner::for_image(&root, &entries, user);
        eprintln!("{name}: running its programs with {}", runner.describe());
        let entrypoint = config["config"]["Entrypoint"][0].as_str().unwrap();
        let env: Vec<(String, String)> = config["config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let (key, value) = v.as_str().unwrap().split_once('=').unwrap();
                (key.to_owned(), value.to_owned())
            })
            .collect();
        let answer = runner.run(&root, &env, entrypoint, &["--version"]);
        assert!(answer.status.success(), "{name}: {}", describe(&answer));
        let version_line = text(&answer.stdout);
        // The test build of the agent says "(with test fault hooks)" after the version.
        assert!(
            version_line.starts_with(&format!("{name} {VERSION}")),
            "{name} --version: {version_line:?}"
        );
        if programs.contains(&"helm") {
            // By name, as the agent runs it: found on the image's PATH.
            let help = runner.run(&root, &env, "helm", &["--help"]);
            assert!(help.status.success(), "helm: {}", describe(&help));
            assert!(
                text(&help.stdout).contains("Usage: helm"),
                "helm --help: {}",
                describe(&help)
            );
        }
        if as_root {
            // Extracted as a runtime would, the user's folders are the user's.
            let mut owned = vec!["home/nonroot"];
            if name == "strata" {
                owned.push("var/cache/strata");
            }
            for folder in owned {
                let metadata = std::fs::metadata(root.join(folder)).unwrap();
                assert_eq!(
                    std::os::unix::fs::MetadataExt::uid(&metadata),
                    NONROOT as u32,
                    "{name}: owner of the extracted {folder}"
                );
            }
        }
    }

    // Pushing the same layouts again (to another tag) sends no blob: the registry has
    // them all, and the manifests get the same digests.
    let push_again = |tag: &str, password: &str| {
        let mut command = tokio::process::Command::new(&tool);
        command
            .arg("push")
            .arg("--layout-dir")
            .arg(layouts.path())
            .args(["--to", &to, "--tag", tag, "--username", registry.username()])
            .arg("--ca-file")
            .arg(registry.ca_file().unwrap())
            .env("STRATA_IMAGE_PASSWORD", password);
        async move { command.output().await.unwrap() }
    };
    let again = push_again("again", registry.password()).await;
    assert!(again.status.success(), "{}", describe(&again));
    let again_stderr = text(&again.stderr);
    assert_eq!(
        again_stderr.matches("already in").count(),
        4,
        "{}",
        describe(&again)
    );
    assert!(!again_stderr.contains("pushing sha256:"), "{again_stderr}");
    for (reference, digest) in &pushed {
        let retagged = reference.replace(&format!(":{TAG}"), ":again");
        assert!(
            text(&again.stdout).contains(&format!("{retagged}@{digest}")),
            "{}",
            describe(&again)
        );
    }

    // A wrong password: refused, and the tag does not appear.
    let refused = push_again("refused", "not-the-password").await;
    assert!(!refused.status.success(), "{}", describe(&refused));
    let refused_stderr = text(&refused.stderr);
    assert!(
        refused_stderr.contains("401") && refused_stderr.contains(registry.host()),
        "{}",
        describe(&refused)
    );
    assert_eq!(
        images
            .manifest_digest(&format!("{PREFIX}/strata"), "refused")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn missing_inputs_are_refused_naming_the_file() {
    let tool = strata_image_tool();
    let layouts = tempfile::tempdir().unwrap();
    let run = |binaries: PathBuf, helm: String| {
        let args = [
            "--binaries".into(),
            arg(binaries),
            "--tool".into(),
            arg(&tool),
            "--helm".into(),
            helm,
            "--layout-dir".into(),
            arg(layouts.path()),
            "--source".into(),
            SOURCE.into(),
        ];
        async move { images_sh(&args, &[]).await }
    };

    // No binaries at all: the controller's is the first looked for.
    let empty = tempfile::tempdir().unwrap();
    let output = run(empty.path().to_path_buf(), HELM.into()).await;
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = text(&output.stderr);
    let missing = empty.path().join("strata");
    assert!(
        stderr.contains(&format!(
            "image strata needs the strata binary (from --binaries): {}: no such file",
            missing.display()
        )),
        "{}",
        describe(&output)
    );

    // The controller's binary but not the agent's.
    let half = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(binaries_dir().join("strata"), half.path().join("strata")).unwrap();
    let output = run(half.path().to_path_buf(), HELM.into()).await;
    assert!(!output.status.success(), "{}", describe(&output));
    let missing = half.path().join("strata-agent");
    assert!(
        text(&output.stderr).contains(&format!("{}: no such file", missing.display())),
        "{}",
        describe(&output)
    );

    // A "binary" that is not a program.
    let fake = tempfile::tempdir().unwrap();
    for program in ["strata", "strata-agent"] {
        let path = fake.path().join(program);
        std::fs::write(&path, "#!/bin/sh\necho strata\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let output = run(fake.path().to_path_buf(), HELM.into()).await;
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stderr).contains(&format!(
            "{} is not an ELF executable",
            fake.path().join("strata").display()
        )),
        "{}",
        describe(&output)
    );

    // A helm that is not there: refused by the script before anything is built.
    let no_helm = layouts.path().join("no-such-helm");
    let output = run(binaries_dir(), arg(&no_helm)).await;
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        text(&output.stderr).contains(&format!("--helm {}: no such file", no_helm.display())),
        "{}",
        describe(&output)
    );

    // Nothing was written for any of them.
    assert!(
        std::fs::read_dir(layouts.path()).unwrap().next().is_none(),
        "layouts written for bad input"
    );
}
