//! Interoperability with the ORAS Python SDK (PyPI `oras`), driven through
//! `tests/fixtures/oras_interop.py` with the python of the virtual environment
//! `scripts/oras-sdk.sh` makes (`scripts/install-test-deps.sh` runs it):
//!
//! - a pack pushed the documented way (`tar -czf istio-1.6.2.tar.gz istio/`, then the
//!   equivalent of `oras push <ref> istio-1.6.2.tar.gz`) is pulled by Strata's client and
//!   validates as a pack;
//! - a pack pushed by Strata is pulled by the SDK, untarred with `tar`, and every file
//!   is byte for byte the one in the source folder.
//!
//! The registry is the test registry with TLS from its own CA and Basic credentials;
//! the SDK trusts only that CA.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_e2e::registry::{RegistryOptions, TestRegistry};
use strata_shared::pack::Pack;
use strata_shared::registry::client::{self as pack_client, PackRegistryClient};
use strata_shared::registry::credentials::Credentials;

const BASE: &str = "strata";

fn oras_python() -> PathBuf {
    // Fails (never skips) when the SDK is not installed.
    strata_e2e::binaries::oras_python().unwrap_or_else(|e| panic!("{e}"))
}

fn fixture_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oras_interop.py")
}

fn sample_pack(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests/samples/packs")
        .join(name)
}

/// Runs `oras_interop.py <command> --registry … <args>`.
async fn sdk_output(
    registry: &TestRegistry,
    command: &str,
    args: &[&Path],
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(oras_python());
    cmd.arg(fixture_script())
        .arg(command)
        .arg("--registry")
        .arg(registry.host())
        .arg("--user")
        .arg(registry.username())
        .arg("--password")
        .arg(registry.password());
    match registry.ca_file() {
        Some(ca) => cmd.arg("--ca").arg(ca),
        None => cmd.arg("--insecure"),
    };
    cmd.args(args);
    cmd.output().await.unwrap()
}

/// Runs `oras_interop.py <command> --registry … <args>` and returns its JSON result.
async fn sdk(registry: &TestRegistry, command: &str, args: &[&Path]) -> serde_json::Value {
    let output = sdk_output(registry, command, args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "oras_interop.py {command} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\n\
         registry log:\n{}",
        output.status,
        registry.log_tail()
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("oras_interop.py printed no JSON result ({e}): {stdout}"))
}

fn strata_client(registry: &TestRegistry) -> PackRegistryClient {
    let address = format!("{}/{BASE}", registry.host()).parse().unwrap();
    PackRegistryClient::new(
        address,
        pack_client::RegistryOptions {
            ca_pem: registry.ca_pem().map(str::to_owned),
            credentials: Credentials::Basic {
                username: registry.username().to_owned(),
                password: registry.password().to_owned(),
            },
            ..pack_client::RegistryOptions::default()
        },
    )
    .unwrap()
}

/// Every regular file under `root`, by path relative to it.
fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                walk(root, &path, out);
            } else {
                assert!(kind.is_file(), "{} is not a regular file", path.display());
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Asserts that the two folders hold the same files with the same bytes.
fn assert_same_files(expected: &Path, actual: &Path) {
    let expected_files = files_under(expected);
    let actual_files = files_under(actual);
    let names = |files: &BTreeMap<String, Vec<u8>>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&actual_files),
        names(&expected_files),
        "{} and {} do not hold the same files",
        actual.display(),
        expected.display()
    );
    for (name, bytes) in &expected_files {
        assert!(
            actual_files[name] == *bytes,
            "{name} differs: {} bytes in {}, {} bytes in {}",
            bytes.len(),
            expected.display(),
            actual_files[name].len(),
            actual.display()
        );
    }
    assert!(!expected_files.is_empty());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

async fn run(program: &str, dir: &Path, args: &[&str]) {
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The decompressed stream of a gzipped archive.
fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[tokio::test]
async fn a_pack_pushed_by_the_oras_sdk_the_documented_way_is_pulled_by_strata() {
    let registry = TestRegistry::start(RegistryOptions::default())
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();

    // The documented way: a copy of the pack folder, `tar -czf <name>-<version>.tar.gz
    // <name>/`, `oras push <ref> <name>-<version>.tar.gz`.
    copy_dir(&sample_pack("istio"), &work.path().join("istio"));
    run(
        "tar",
        work.path(),
        &["-czf", "istio-1.6.2.tar.gz", "istio/"],
    )
    .await;
    let archive = work.path().join("istio-1.6.2.tar.gz");
    let archive_digest = sha256_hex(&std::fs::read(&archive).unwrap());
    let reference = format!("{BASE}/spectro-packs/archive/istio:1.6.2");
    let pushed = sdk(
        &registry,
        "push",
        &[Path::new(&reference), archive.as_path()],
    )
    .await;
    assert_eq!(pushed["status"], 201, "{pushed}");
    assert_eq!(
        pushed["layer_digest"].as_str(),
        Some(archive_digest.as_str())
    );

    // Strata sees it as a pack: the layer, its title, its digest.
    let client = strata_client(&registry);
    assert_eq!(client.versions("istio").await.unwrap(), ["1.6.2"]);
    let listed = client.list().await.unwrap();
    assert_eq!(
        listed.get("istio").map(Vec::as_slice),
        Some(&["1.6.2".to_owned()][..])
    );
    let descriptor = client.resolve("istio", "1.6.2").await.unwrap();
    assert_eq!(descriptor.file_name, "istio-1.6.2.tar.gz");
    assert_eq!(descriptor.layer_digest, archive_digest);
    // No annotation from another tool; the identity is computed from the bytes: the sha256
    // of what tar wrote (its own tar stream, not Strata's canonical one).
    let content_digest = sha256_hex(&gunzip(&std::fs::read(&archive).unwrap()));
    let (inspected, manifest) = client.inspect("istio", "1.6.2", None).await.unwrap();
    assert_eq!(
        inspected.content_digest.as_deref(),
        Some(content_digest.as_str())
    );
    assert_eq!(manifest.name, "istio");
    assert_eq!(manifest.version, "1.6.2");

    // Pulled and validated: Pack::load accepts it, and the files are the source's.
    // pull() creates the pack folder, not its parents.
    std::fs::create_dir_all(work.path().join("pulled")).unwrap();
    let dest = work.path().join("pulled/istio");
    let pulled = client.pull("istio", "1.6.2", &dest, None).await.unwrap();
    assert_eq!(pulled.descriptor.layer_digest, archive_digest);
    assert_eq!(pulled.content_digest, content_digest);
    // And pinned to it, as a revision would, it pulls again.
    let pinned_dest = work.path().join("pulled/istio-pinned");
    let pinned = client
        .pull_pinned("istio", "1.6.2", &content_digest, &pinned_dest, None)
        .await
        .unwrap();
    assert!(!pinned.legacy_pin);
    assert_same_files(&sample_pack("istio"), &pinned_dest);
    let (pack, findings) = Pack::load(&dest);
    let pack = pack.unwrap_or_else(|| panic!("the pulled pack is not valid: {findings:?}"));
    assert_eq!(pack.manifest.name, "istio");
    assert_eq!(pack.manifest.version, "1.6.2");
    assert_same_files(&sample_pack("istio"), &dest);
}

#[tokio::test]
async fn a_pack_pushed_by_strata_is_pulled_by_the_oras_sdk_byte_for_byte() {
    let registry = TestRegistry::start(RegistryOptions::default())
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let client = strata_client(&registry);

    for name in ["istio", "cni-calico"] {
        let source = sample_pack(name);
        let (pack, findings) = Pack::load(&source);
        let pack = pack.unwrap_or_else(|| panic!("{name} is not valid: {findings:?}"));
        let version = pack.manifest.version.clone();
        let pushed = client.push(&pack, false).await.unwrap();
        let file_name = format!("{name}-{version}.tar.gz");
        assert_eq!(pushed.descriptor.file_name, file_name);

        // The SDK writes the layer under its title.
        let outdir = work.path().join(format!("sdk-{name}"));
        let reference = format!("{BASE}/spectro-packs/archive/{name}:{version}");
        let pulled = sdk(
            &registry,
            "pull",
            &[Path::new(&reference), outdir.as_path()],
        )
        .await;
        let files = pulled["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{pulled}");
        assert_eq!(files[0]["name"].as_str(), Some(file_name.as_str()));
        assert_eq!(
            files[0]["digest"].as_str(),
            Some(pushed.descriptor.layer_digest.as_str())
        );
        let archive = outdir.join(&file_name);
        assert!(archive.is_file());

        // Untarred with tar: one top-level folder named after the pack, holding exactly
        // the source folder's files.
        let untarred = work.path().join(format!("untarred-{name}"));
        std::fs::create_dir_all(&untarred).unwrap();
        run("tar", &untarred, &["-xzf", archive.to_str().unwrap()]).await;
        let top: Vec<String> = std::fs::read_dir(&untarred)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(top, [name], "the archive's top level");
        assert_same_files(&source, &untarred.join(name));
    }
}

/// A pack of some size (8 MiB of random data in a chart folder). The SDK's basic-auth
/// push of a blob this large only works with the credentials sent up front (see
/// `oras_interop.py`; without them it fails from about 4 MiB on, when the unauthenticated
/// first PUT no longer fits in the socket buffers before distribution answers 401 and
/// closes the connection). Both directions still match byte for byte.
#[tokio::test]
async fn a_large_pack_round_trips_both_ways() {
    use ring::rand::SecureRandom;

    let registry = TestRegistry::start(RegistryOptions::default())
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("src/istio");
    copy_dir(&sample_pack("istio"), &source);
    let mut random = vec![0u8; 8 << 20];
    ring::rand::SystemRandom::new().fill(&mut random).unwrap();
    let payload = source.join("charts/istio-operator/files/payload.bin");
    std::fs::create_dir_all(payload.parent().unwrap()).unwrap();
    std::fs::write(&payload, &random).unwrap();
    let (pack, findings) = Pack::load(&source);
    let pack = pack.unwrap_or_else(|| panic!("not valid: {findings:?}"));
    let archive_bytes = pack.archive().unwrap();
    assert!(archive_bytes.len() > 8 << 20);

    // SDK push (of Strata's archive for the pack) → Strata pull.
    let archive = work.path().join("sdk-push/istio-1.6.2.tar.gz");
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    std::fs::write(&archive, &archive_bytes).unwrap();
    let reference = format!("{BASE}/spectro-packs/archive/istio:1.6.2");
    let pushed = sdk(
        &registry,
        "push",
        &[Path::new(&reference), archive.as_path()],
    )
    .await;
    assert_eq!(pushed["status"], 201, "{pushed}");
    let client = strata_client(&registry);
    std::fs::create_dir_all(work.path().join("pulled")).unwrap();
    let dest = work.path().join("pulled/istio");
    let pulled = client.pull("istio", "1.6.2", &dest, None).await.unwrap();
    assert_same_files(&source, &dest);
    // Strata's archive pushed by another tool: the same identity as the folder.
    assert_eq!(pulled.content_digest, pack.digest().unwrap());

    // Strata push (another base) → SDK pull.
    let address = format!("{}/other", registry.host()).parse().unwrap();
    let other = PackRegistryClient::new(
        address,
        pack_client::RegistryOptions {
            ca_pem: registry.ca_pem().map(str::to_owned),
            credentials: Credentials::Basic {
                username: registry.username().to_owned(),
                password: registry.password().to_owned(),
            },
            ..pack_client::RegistryOptions::default()
        },
    )
    .unwrap();
    let strata_pushed = other.push(&pack, false).await.unwrap();
    let outdir = work.path().join("sdk-pull");
    let pulled = sdk(
        &registry,
        "pull",
        &[
            Path::new("other/spectro-packs/archive/istio:1.6.2"),
            outdir.as_path(),
        ],
    )
    .await;
    assert_eq!(
        pulled["files"][0]["digest"].as_str(),
        Some(strata_pushed.descriptor.layer_digest.as_str())
    );
    assert_eq!(
        std::fs::read(outdir.join("istio-1.6.2.tar.gz")).unwrap(),
        archive_bytes
    );
}

/// Over bearer tokens (distribution's token auth, the registry's own token server): the
/// SDK pulls what Strata pushed. Its push does not work there, in the pinned version
/// (oras 0.2.43): it checks whether the blob exists first (HEAD, challenge scope
/// `pull`), keeps that pull-only token, and answers the upload's 401 insufficient_scope
/// by retrying with the same token instead of asking for `pull,push`. This test pins that
/// down, so that a version bump that fixes it is noticed (then assert success instead).
#[tokio::test]
async fn over_bearer_tokens_the_oras_sdk_pulls_but_cannot_push() {
    use strata_e2e::registry::TokenAuth;

    let registry = TestRegistry::start(RegistryOptions::token(TokenAuth::default()))
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let client = strata_client(&registry);
    let (pack, findings) = Pack::load(&sample_pack("istio"));
    let pack = pack.unwrap_or_else(|| panic!("istio is not valid: {findings:?}"));
    let pushed = client.push(&pack, false).await.unwrap();

    let outdir = work.path().join("sdk");
    let reference = format!("{BASE}/spectro-packs/archive/istio:1.6.2");
    let pulled = sdk(
        &registry,
        "pull",
        &[Path::new(&reference), outdir.as_path()],
    )
    .await;
    assert_eq!(
        pulled["files"][0]["digest"].as_str(),
        Some(pushed.descriptor.layer_digest.as_str()),
        "{pulled}"
    );

    let archive = outdir.join("istio-1.6.2.tar.gz");
    let copy = format!("{BASE}/spectro-packs/archive/istio-copy:1.6.2");
    let output = sdk_output(&registry, "push", &[Path::new(&copy), archive.as_path()]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("UNAUTHORIZED"),
        "the ORAS SDK's push over bearer tokens failed in oras 0.2.43 (a pull-only token \
         reused for the upload); now: {} {stderr}",
        output.status
    );
    let requests = registry.token_server().unwrap().requests();
    let sdk_scopes: Vec<String> = requests
        .iter()
        .flat_map(|r| r.requested.iter().map(ToString::to_string))
        .filter(|scope| scope.contains("istio-copy"))
        .collect();
    assert_eq!(
        sdk_scopes,
        ["repository:strata/spectro-packs/archive/istio-copy:pull"],
        "{requests:?}"
    );
}
