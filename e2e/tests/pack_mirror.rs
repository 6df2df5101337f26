//! `strata pack mirror` between two real registries (distribution 2.8, TLS from their own
//! CAs and htpasswd on both sides): a profile's packs and the images they list are copied
//! by digest, a rerun copies nothing, an interrupted mirror resumes, and bad input (an
//! unknown profile file, an image the source lacks, a pinned digest it lacks, a source
//! serving other bytes than their digest, a target refusing pushes) is an error naming the
//! object. No Kubernetes control plane is started.
//!
//! The images live in the source registry under the paths the mirror gives them
//! (`images/<host>/<path>`) and are read from there with `--images-from`: the test cannot
//! reach the registries their references name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use strata_e2e::cli_run::describe_output as describe;
use strata_e2e::provider_packs::{simulated_providers, write_pack};
use strata_shared::provider::ProviderKind;

use serde_json::Value;
use strata_e2e::fault_proxy::FaultProxy;
use strata_e2e::management::strata_binary;
use strata_e2e::oci_images::{ImageFormat, OciImages, PushedImage};
use strata_e2e::registry::{
    RegistryOptions, RegistryUser, TestRegistry, TokenAuth, random_password,
};
use strata_e2e::token_server::AccessRule;

const PACKS: &str = "packs";
const IMAGES: &str = "images";
const MIRROR: &str = "mirror";

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A pack made from the hello-manifests sample, named `name`, listing `images` in
/// `pack.content.images`.
fn image_pack(root: &Path, name: &str, version: &str, images: &[&str]) -> PathBuf {
    let dir = root.join(name);
    copy_dir(&samples().join("packs/hello-manifests"), &dir);
    let manifest = std::fs::read_to_string(dir.join("pack.json"))
        .unwrap()
        .replace(
            "\"name\": \"hello-manifests\"",
            &format!("\"name\": \"{name}\""),
        )
        .replace(
            "\"version\": \"1.0.0\"",
            &format!("\"version\": \"{version}\""),
        );
    std::fs::write(dir.join("pack.json"), manifest).unwrap();
    let listed: String = images.iter().map(|i| format!("      - {i}\n")).collect();
    let values = std::fs::read_to_string(dir.join("values.yaml"))
        .unwrap()
        .replacen(
            "      - ghcr.io/spectrocloud/hello-universe:1.1.0\n",
            &listed,
            1,
        );
    std::fs::write(dir.join("values.yaml"), values).unwrap();
    dir
}

/// An add-on profile of `layers` in `dir`.
fn profile(dir: &Path, name: &str, layers: &[(&str, &str)]) -> PathBuf {
    let mut yaml = format!(
        "apiVersion: strata.dev/v1alpha1\nkind: ClusterProfile\nmetadata:\n  name: {name}\n\
         spec:\n  type: add-on\n  version: 1.0.0\n  cloudType: all\n  layers:\n"
    );
    for (pack, version) in layers {
        yaml.push_str(&format!("    - name: {pack}\n      version: {version}\n"));
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs strata in its own home (no docker config, its own pack cache), `stdin` on its
/// standard input.
struct Strata {
    home: tempfile::TempDir,
}

impl Strata {
    fn new() -> Self {
        Strata {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(strata_binary());
        command
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("DOCKER_CONFIG")
            .env("STRATA_CACHE_DIR", self.home.path().join("cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn spawn(&self, args: &[String], stdin: &str) -> std::process::Child {
        let mut child = self.command(args).spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child
    }

    fn run(&self, args: &[String], stdin: &str) -> Output {
        self.spawn(args, stdin).wait_with_output().unwrap()
    }

    /// `strata pack push DIR` to `registry`/`base`.
    fn push_pack(&self, registry: &TestRegistry, base: &str, dir: &Path) {
        let args = strings(&["pack", "push", dir.to_str().unwrap()])
            .into_iter()
            .chain(registry_flags(registry, base))
            .collect::<Vec<_>>();
        let pushed = self.run(&args, &format!("{}\n", registry.password()));
        assert_eq!(pushed.status.code(), Some(0), "{}", describe(&pushed));
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn registry_flags(registry: &TestRegistry, base: &str) -> Vec<String> {
    vec![
        "--registry".into(),
        format!("{}/{base}", registry.host()),
        "--ca-file".into(),
        registry.ca_file().unwrap().display().to_string(),
        "--username".into(),
        registry.username().into(),
        "--password-stdin".into(),
    ]
}

/// `strata pack mirror PROFILES…` from `source` (packs under `packs`, images under
/// `images`) to `to`/`mirror` (`to` may be a proxy's address for the target's CA), JSON out;
/// both passwords on standard input.
fn mirror_args(
    profiles: &[&Path],
    source: &TestRegistry,
    to: &str,
    target: &TestRegistry,
    user: &str,
) -> Vec<String> {
    let mut args = strings(&["pack", "mirror"]);
    args.extend(profiles.iter().map(|p| p.display().to_string()));
    args.extend(registry_flags(source, PACKS));
    args.extend([
        "--to".into(),
        format!("{to}/{MIRROR}"),
        "--to-ca-file".into(),
        target.ca_file().unwrap().display().to_string(),
        "--to-username".into(),
        user.into(),
        "--to-password-stdin".into(),
        "--images-from".into(),
        format!("{}/{IMAGES}", source.host()),
        "-o".into(),
        "json".into(),
    ]);
    args
}

fn passwords(source: &TestRegistry, target_password: &str) -> String {
    format!("{}\n{target_password}\n", source.password())
}

fn report(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "{}", describe(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| panic!("{}", describe(output)))
}

fn pack_repository(base: &str, name: &str) -> String {
    format!("{base}/spectro-packs/archive/{name}")
}

/// Bytes that do not compress, from a seed: an image layer of `size` bytes.
fn noise(seed: u64, size: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2).wrapping_add(1);
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

async fn two_registries() -> (TestRegistry, TestRegistry) {
    let (source, target) = tokio::join!(
        TestRegistry::start(RegistryOptions::default()),
        TestRegistry::start(RegistryOptions::default())
    );
    (source.unwrap(), target.unwrap())
}

#[tokio::test]
async fn mirrors_packs_and_listed_images_by_digest_and_a_rerun_copies_nothing() {
    let (source, target) = two_registries().await;
    let strata = Strata::new();
    let work = tempfile::tempdir().unwrap();
    let images = OciImages::new(&source).unwrap();

    // nginx:1.25 is a two-platform index whose images share a layer; hello-universe a
    // Docker image; pause an image known only by its digest.
    let nginx_repo = format!("{IMAGES}/docker.io/library/nginx");
    let shared = noise(1, 300_000);
    let amd64 = images
        .push_image(
            &nginx_repo,
            None,
            ImageFormat::Oci,
            "amd64",
            &[&shared, &noise(2, 200_000)],
        )
        .await
        .unwrap();
    let arm64 = images
        .push_image(
            &nginx_repo,
            None,
            ImageFormat::Oci,
            "arm64",
            &[&shared, &noise(3, 200_000)],
        )
        .await
        .unwrap();
    let nginx = images
        .push_index(&nginx_repo, "1.25", &[(&amd64, "amd64"), (&arm64, "arm64")])
        .await
        .unwrap();
    let universe_repo = format!("{IMAGES}/ghcr.io/spectrocloud/hello-universe");
    let universe = images
        .push_image(
            &universe_repo,
            Some("1.1.0"),
            ImageFormat::Docker,
            "amd64",
            &[&noise(4, 100_000)],
        )
        .await
        .unwrap();
    let pause_repo = format!("{IMAGES}/registry.k8s.io/pause");
    let pause = images
        .push_image(
            &pause_repo,
            None,
            ImageFormat::Oci,
            "amd64",
            &[&noise(5, 1000)],
        )
        .await
        .unwrap();

    // Packs: the samples of the sim-addons profile, and one listing the pinned pause and
    // nginx again (copied once).
    for pack in ["hello-chart", "hello-manifests"] {
        strata.push_pack(&source, PACKS, &samples().join("packs").join(pack));
    }
    let pinned_image = format!("registry.k8s.io/pause@{}", pause.digest);
    let pinned_pack = image_pack(
        work.path(),
        "pause-pinned",
        "1.0.0",
        &[&pinned_image, "nginx:1.25"],
    );
    strata.push_pack(&source, PACKS, &pinned_pack);
    let sim_addons = samples().join("profiles/sim-addons.yaml");
    let pinned_profile = profile(
        work.path(),
        "pinned",
        &[("pause-pinned", "1.0.0"), ("hello-chart", "0.3.0")],
    );

    let args = mirror_args(
        &[&sim_addons, &pinned_profile],
        &source,
        target.host(),
        &target,
        target.username(),
    );
    let started = Instant::now();
    let output = strata.run(&args, &passwords(&source, target.password()));
    let first_seconds = started.elapsed().as_secs_f64();
    let first = report(&output);
    let progress = text(&output.stderr);
    assert!(
        progress.contains("[1/6] pack hello-chart:0.3.0")
            && progress.contains("image docker.io/library/nginx:1.25")
            && progress.contains("copied as :1.25"),
        "progress on stderr:\n{progress}"
    );

    // Every pack and image, at the target with the source's digest.
    let objects = first["objects"].as_array().unwrap();
    let names: Vec<&str> = objects
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "hello-chart:0.3.0",
            "hello-manifests:1.0.0",
            "pause-pinned:1.0.0",
            "docker.io/library/nginx:1.25",
            "ghcr.io/spectrocloud/hello-universe:1.1.0",
            pinned_image.as_str(),
        ]
    );
    let mirrored = OciImages::new(&target).unwrap();
    for (name, tag) in [
        ("hello-chart", "0.3.0"),
        ("hello-manifests", "1.0.0"),
        ("pause-pinned", "1.0.0"),
    ] {
        let at_source = images
            .manifest_digest(&pack_repository(PACKS, name), tag)
            .await
            .unwrap()
            .unwrap();
        let at_target = mirrored
            .manifest_digest(&pack_repository(MIRROR, name), tag)
            .await
            .unwrap();
        assert_eq!(at_target.as_ref(), Some(&at_source), "pack {name}:{tag}");
        let object = objects
            .iter()
            .find(|o| o["name"] == format!("{name}:{tag}"))
            .unwrap();
        assert_eq!(object["digest"], at_source.as_str());
    }
    let in_mirror = |path: &str| format!("{MIRROR}/{path}");
    assert_eq!(
        mirrored
            .manifest_digest(&in_mirror("docker.io/library/nginx"), "1.25")
            .await
            .unwrap(),
        Some(nginx.clone()),
        "the index, byte for byte"
    );
    for child in [&amd64, &arm64] {
        assert_eq!(
            mirrored
                .manifest_digest(&in_mirror("docker.io/library/nginx"), &child.digest)
                .await
                .unwrap(),
            Some(child.digest.clone())
        );
        for blob in &child.blobs {
            assert!(
                mirrored
                    .has_blob(&in_mirror("docker.io/library/nginx"), blob)
                    .await
                    .unwrap()
            );
        }
    }
    assert_eq!(
        mirrored
            .manifest_digest(&in_mirror("ghcr.io/spectrocloud/hello-universe"), "1.1.0")
            .await
            .unwrap(),
        Some(universe.digest.clone()),
        "a Docker manifest keeps its media type and digest"
    );
    assert_eq!(
        mirrored
            .manifest_digest(&in_mirror("registry.k8s.io/pause"), &pause.digest)
            .await
            .unwrap(),
        Some(pause.digest.clone()),
        "a pinned image is there by its digest"
    );

    // Counted: 3 packs (manifest, {} config, archive), nginx (index, 2 manifests, 2
    // configs, the shared layer once and a layer each), hello-universe and pause (manifest,
    // config, layer).
    let total = &first["total"];
    assert_eq!(total["manifestsCopied"], 3 + 3 + 1 + 1, "{total}");
    assert_eq!(total["blobsCopied"], 3 * 2 + 5 + 2 + 2, "{total}");
    assert_eq!(
        total["blobsSkipped"], 1,
        "the shared layer, second time: {total}"
    );
    assert_eq!(total["manifestsSkipped"], 0, "{total}");
    let bytes_copied = total["bytesCopied"].as_u64().unwrap();
    // The image layers alone are 801,000 bytes; the rest is packs, configs and manifests.
    assert!(bytes_copied > 801_000, "{total}");
    assert_eq!(total["bytesSkipped"], 300_000, "the shared layer: {total}");

    // Strata reads the mirrored pack from the mirror, with the same pack digest.
    let inspect = |registry: &TestRegistry, base: &str| {
        let mut args = strings(&["pack", "inspect", "hello-chart:0.3.0", "-o", "json"]);
        args.extend(registry_flags(registry, base));
        let output = strata.run(&args, &format!("{}\n", registry.password()));
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
        let value: Value = serde_json::from_slice(&output.stdout).unwrap();
        (
            value["packDigest"].as_str().unwrap().to_owned(),
            value["layerDigest"].as_str().unwrap().to_owned(),
        )
    };
    // The same content digest (what revisions pin) and the same layer: the blob is copied
    // as it is.
    assert_eq!(inspect(&target, MIRROR), inspect(&source, PACKS));

    // Again, the credentials from a docker configuration this time: nothing to copy.
    let docker = tempfile::tempdir().unwrap();
    let mut auths: Value = serde_json::from_str(&source.docker_config_json()).unwrap();
    let target_auths: Value = serde_json::from_str(&target.docker_config_json()).unwrap();
    auths["auths"][target.host()] = target_auths["auths"][target.host()].clone();
    std::fs::write(docker.path().join("config.json"), auths.to_string()).unwrap();
    let without_passwords: Vec<String> = {
        let mut kept = Vec::new();
        let mut skip_next = false;
        for arg in &args {
            if skip_next {
                skip_next = false;
                continue;
            }
            match arg.as_str() {
                "--username" | "--to-username" => skip_next = true,
                "--password-stdin" | "--to-password-stdin" => {}
                _ => kept.push(arg.clone()),
            }
        }
        kept
    };
    let started = Instant::now();
    let rerun = strata
        .command(&without_passwords)
        .env("DOCKER_CONFIG", docker.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let rerun_seconds = started.elapsed().as_secs_f64();
    let again = report(&rerun);
    let total = &again["total"];
    assert_eq!(total["manifestsCopied"], 0, "{total}");
    assert_eq!(total["blobsCopied"], 0, "{total}");
    assert_eq!(total["bytesCopied"], 0, "{total}");
    assert_eq!(
        total["manifestsSkipped"], 6,
        "one per pack and image: {total}"
    );
    for (before, after) in objects.iter().zip(again["objects"].as_array().unwrap()) {
        assert_eq!(before["digest"], after["digest"]);
    }
    eprintln!(
        "figures: first mirror {first_seconds:.2} s, {bytes_copied} bytes, {}; rerun {rerun_seconds:.2} s, {}",
        first["total"], again["total"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_mirror_resumes_and_skips_what_arrived() {
    let (source, target) = two_registries().await;
    let strata = Strata::new();
    let work = tempfile::tempdir().unwrap();
    let images = OciImages::new(&source).unwrap();
    // Larger than what strata holds at any time, so that holding it whole would show.
    const LAYER: usize = 64 << 20;
    let layer = noise(7, LAYER);
    let big = images
        .push_image(
            &format!("{IMAGES}/docker.io/library/big"),
            Some("1.0"),
            ImageFormat::Oci,
            "amd64",
            &[&layer],
        )
        .await
        .unwrap();
    let pack = image_pack(
        work.path(),
        "big-image",
        "1.0.0",
        &["docker.io/library/big:1.0"],
    );
    strata.push_pack(&source, PACKS, &pack);
    let profile = profile(work.path(), "big", &[("big-image", "1.0.0")]);

    // The target behind a proxy that is slow enough to be cut in the middle of the layer.
    let proxy = FaultProxy::start(target.addr()).await.unwrap();
    proxy.slow(Duration::from_millis(3));
    let to = proxy.addr().to_string();
    let args = mirror_args(&[&profile], &source, &to, &target, target.username());
    let child = strata.spawn(&args, &passwords(&source, target.password()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.stats().bytes_to_upstream < 6 << 20 {
        assert!(
            Instant::now() < deadline,
            "the copy did not get going: {:?}",
            proxy.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The layer is streamed: the source is not slowed down, yet strata holds only what the
    // slow target has not taken yet, not the whole layer.
    let peak = peak_memory_kib(child.id());
    assert!(
        peak < (LAYER / 1024) as u64,
        "strata held {peak} KiB while copying a layer of {LAYER} bytes"
    );
    proxy.cut();
    let cut_at = proxy.stats().bytes_to_upstream;
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let message = text(&output.stderr);
    assert!(
        message.contains("image docker.io/library/big:1.0")
            && message.contains("(2 of 2)")
            && message.contains("1 of the 2 packs and images were mirrored completely before it")
            && message.contains("running the same command again resumes"),
        "{message}"
    );

    // What arrived: the pack and the image's config; not the layer, nor the image.
    let mirrored = OciImages::new(&target).unwrap();
    let big_repo = format!("{MIRROR}/docker.io/library/big");
    assert!(
        mirrored
            .manifest_digest(&pack_repository(MIRROR, "big-image"), "1.0.0")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        mirrored.has_blob(&big_repo, &big.blobs[0]).await.unwrap(),
        "the config"
    );
    assert!(
        !mirrored.has_blob(&big_repo, &big.blobs[1]).await.unwrap(),
        "no half layer"
    );
    assert_eq!(
        mirrored.manifest_digest(&big_repo, "1.0").await.unwrap(),
        None
    );

    proxy.restore();
    let started = Instant::now();
    // Waited for off the runtime, which runs the proxy.
    let child = strata.spawn(&args, &passwords(&source, target.password()));
    let resumed = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let resumed = report(&resumed);
    let resume_seconds = started.elapsed().as_secs_f64();
    let objects = resumed["objects"].as_array().unwrap();
    assert_eq!(
        objects[0]["manifestsSkipped"], 1,
        "the pack was there: {}",
        objects[0]
    );
    assert_eq!(objects[0]["blobsCopied"], 0);
    assert_eq!(
        objects[1]["blobsSkipped"], 1,
        "the config was there: {}",
        objects[1]
    );
    assert_eq!(objects[1]["blobsCopied"], 1, "the layer: {}", objects[1]);
    assert_eq!(
        objects[1]["bytesCopied"].as_u64().unwrap(),
        (LAYER + big.size) as u64,
        "the layer and the manifest"
    );
    assert_eq!(
        mirrored.manifest_digest(&big_repo, "1.0").await.unwrap(),
        Some(big.digest.clone())
    );
    eprintln!(
        "figures: cut after {cut_at} bytes to the target, strata's peak memory then {peak} KiB; the resumed mirror took {resume_seconds:.2} s through a 3 ms/16 KiB proxy: {}",
        resumed["total"]
    );
}

/// The most memory process `pid` has held (`VmHWM`), in KiB.
fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A pack listing `image`, pushed to `source`, and a profile of it.
fn one_image_profile(
    strata: &Strata,
    source: &TestRegistry,
    work: &Path,
    pack: &str,
    image: &str,
) -> PathBuf {
    let dir = image_pack(work, pack, "1.0.0", &[image]);
    strata.push_pack(source, PACKS, &dir);
    profile(work, pack, &[(pack, "1.0.0")])
}

#[tokio::test]
async fn a_pack_no_profile_names_is_mirrored_by_name() {
    let (source, target) = two_registries().await;
    let strata = Strata::new();
    let work = tempfile::tempdir().unwrap();
    // A provider pack (docs/providers.md), which no profile names.
    let core = simulated_providers()
        .into_iter()
        .find(|p| p.kind == ProviderKind::CoreProvider)
        .unwrap();
    let provider = work.path().join("capi-provider-cluster-api");
    write_pack(&core, &[], "fast", &provider).unwrap();
    strata.push_pack(&source, PACKS, &provider);
    let mut args = mirror_args(&[], &source, target.host(), &target, target.username());
    args.extend(strings(&["--pack", "capi-provider-cluster-api:1.11.0"]));
    let output = strata.run(&args, &passwords(&source, target.password()));
    let mirrored = report(&output);
    let names: Vec<&str> = mirrored["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["capi-provider-cluster-api:1.11.0"]);
    let at_source = OciImages::new(&source)
        .unwrap()
        .manifest_digest(
            &pack_repository(PACKS, "capi-provider-cluster-api"),
            "1.11.0",
        )
        .await
        .unwrap()
        .unwrap();
    let at_target = OciImages::new(&target)
        .unwrap()
        .manifest_digest(
            &pack_repository(MIRROR, "capi-provider-cluster-api"),
            "1.11.0",
        )
        .await
        .unwrap();
    assert_eq!(at_target, Some(at_source));

    // A --pack that is not NAME:VERSION copies nothing and says what was expected.
    let mut args = mirror_args(&[], &source, target.host(), &target, target.username());
    args.extend(strings(&["--pack", "capi-provider-cluster-api"]));
    let message = failed(&strata.run(&args, &passwords(&source, target.password())));
    assert!(
        message.contains("--pack \"capi-provider-cluster-api\": expected NAME:VERSION"),
        "{message}"
    );
}

fn failed(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", describe(output));
    let message = text(&output.stderr);
    eprintln!("strata said:\n{message}");
    message
}

#[tokio::test]
async fn bad_input_is_an_error_naming_the_object() {
    let (source, target) = two_registries().await;
    let strata = Strata::new();
    let work = tempfile::tempdir().unwrap();
    let run = |profile: &Path| {
        let args = mirror_args(
            &[profile],
            &source,
            target.host(),
            &target,
            target.username(),
        );
        strata.run(&args, &passwords(&source, target.password()))
    };

    // An unknown profile file.
    let missing_file = work.path().join("no-such-profile.yaml");
    let message = failed(&run(&missing_file));
    assert!(
        message.contains("no-such-profile.yaml") && message.contains("nothing was mirrored"),
        "{message}"
    );

    // A pack of the profile that is not in the source.
    let unknown_pack = profile(work.path(), "unknown", &[("not-pushed", "1.0.0")]);
    let message = failed(&run(&unknown_pack));
    assert!(
        message.contains("nothing was copied") && message.contains("not-pushed:1.0.0"),
        "{message}"
    );

    // An image the source lacks: the pack before it is mirrored, and the error says so.
    let lacking = one_image_profile(
        &strata,
        &source,
        work.path(),
        "absent-image",
        "docker.io/library/absent:1.0",
    );
    let message = failed(&run(&lacking));
    assert!(
        message.contains("image docker.io/library/absent:1.0:")
            && message.contains(&format!("{} has no 1.0", source.host()))
            && message.contains("images/docker.io/library/absent")
            && message.contains("1 of the 2 packs and images were mirrored completely before it"),
        "{message}"
    );

    // A pinned digest the source does not have.
    let images = OciImages::new(&source).unwrap();
    // The source has pause:3.9, under another digest than the one pinned.
    images
        .push_image(
            &format!("{IMAGES}/registry.k8s.io/pause"),
            Some("3.9"),
            ImageFormat::Oci,
            "amd64",
            &[&noise(9, 500)],
        )
        .await
        .unwrap();
    let other_digest = format!("sha256:{}", "0".repeat(64));
    let wrong_pin = format!("registry.k8s.io/pause:3.9@{other_digest}");
    let pinned = one_image_profile(&strata, &source, work.path(), "wrong-pin", &wrong_pin);
    let message = failed(&run(&pinned));
    assert!(
        message.contains(&format!("image {wrong_pin}:"))
            && message.contains(&format!("has no {other_digest}")),
        "{message}"
    );
    let mirrored = OciImages::new(&target).unwrap();
    assert_eq!(
        mirrored
            .manifest_digest(&format!("{MIRROR}/registry.k8s.io/pause"), "3.9")
            .await
            .unwrap(),
        None,
        "the tag was not copied from another digest"
    );

    // A source serving other bytes than the digest names (its storage corrupted).
    let corrupt_repo = format!("{IMAGES}/docker.io/library/corrupt");
    let corrupt: PushedImage = images
        .push_image(
            &corrupt_repo,
            Some("1.0"),
            ImageFormat::Oci,
            "amd64",
            &[&noise(10, 70_000)],
        )
        .await
        .unwrap();
    let layer_digest = corrupt.blobs[1].clone();
    let hex = layer_digest.strip_prefix("sha256:").unwrap();
    let data = source
        .dir()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let corrupted = one_image_profile(
        &strata,
        &source,
        work.path(),
        "corrupt-image",
        "docker.io/library/corrupt:1.0",
    );
    let message = failed(&run(&corrupted));
    assert!(
        message.contains("image docker.io/library/corrupt:1.0:")
            && message.contains(&format!(
                "serves bytes for the blob {layer_digest} that hash to sha256:"
            ))
            && message.contains("nothing of it was written to the target"),
        "{message}"
    );
    let target_repo = format!("{MIRROR}/docker.io/library/corrupt");
    assert!(
        !mirrored
            .has_blob(&target_repo, &layer_digest)
            .await
            .unwrap(),
        "no bad blob at the target"
    );
    assert_eq!(
        mirrored.manifest_digest(&target_repo, "1.0").await.unwrap(),
        None
    );

    // A target that refuses pushes: a token registry whose user may only pull.
    let reader = RegistryUser::new("reader", random_password());
    let read_only = TestRegistry::start(RegistryOptions {
        users: vec![
            RegistryUser::new("strata", random_password()),
            reader.clone(),
        ],
        ..RegistryOptions::token(TokenAuth::default().grant("reader", vec![AccessRule::pull("*")]))
    })
    .await
    .unwrap();
    let hello = profile(work.path(), "hello", &[("hello-chart", "0.3.0")]);
    strata.push_pack(&source, PACKS, &samples().join("packs/hello-chart"));
    let args = mirror_args(
        &[&hello],
        &source,
        read_only.host(),
        &read_only,
        &reader.name,
    );
    let message = failed(&strata.run(&args, &passwords(&source, &reader.password)));
    assert!(
        message.contains("pack hello-chart:0.3.0:")
            && message.contains("pushing the blob sha256:")
            && message.contains(&format!(
                "at the target {} failed (HTTP 401)",
                read_only.host()
            ))
            && message.contains("may not access"),
        "{message}"
    );
}
