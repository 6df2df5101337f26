//! The `strata pack push | pull | list | inspect` and `strata profile … --registry`
//! commands against the real registry of the substrate (TLS and htpasswd).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use strata_e2e::cli_run::describe_output as describe;

use strata_e2e::cli_run::run_with_input;
use strata_e2e::registry::{RegistryOptions, TestRegistry};

fn strata_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("strata");
    assert!(
        path.is_file(),
        "build strata first: cargo build -p strata-management ({})",
        path.display()
    );
    path
}

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/samples")
}

/// Runs strata with the registry flags and the password on standard input.
struct Cli<'a> {
    registry: &'a TestRegistry,
    base: &'a str,
    home: tempfile::TempDir,
}

impl<'a> Cli<'a> {
    fn new(registry: &'a TestRegistry, base: &'a str) -> Self {
        Cli {
            registry,
            base,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn address(&self) -> String {
        format!("{}/{}", self.registry.host(), self.base)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(strata_binary());
        command
            .args(args)
            // Keep the user's Docker config and cache out of the tests.
            .env("HOME", self.home.path())
            .env_remove("DOCKER_CONFIG")
            .env("STRATA_CACHE_DIR", self.home.path().join("cache"));
        command
    }

    fn run_with_password(&self, args: &[&str], password: &str) -> Output {
        let ca = self.registry.ca_file().unwrap().display().to_string();
        let address = self.address();
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--registry",
            &address,
            "--ca-file",
            &ca,
            "--username",
            self.registry.username(),
            "--password-stdin",
        ]);
        run_with_input(&mut self.command(&all), &format!("{password}\n"))
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_password(args, self.registry.password())
    }
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

#[tokio::test]
async fn push_list_inspect_pull_and_force() {
    let registry = TestRegistry::start(RegistryOptions::default())
        .await
        .unwrap();
    let cli = Cli::new(&registry, "platform");
    let istio = samples().join("packs/istio");

    let pushed = cli.run(&["pack", "push", istio.to_str().unwrap()]);
    assert_eq!(pushed.status.code(), Some(0), "{}", describe(&pushed));
    let out = text(&pushed.stdout);
    assert!(
        out.contains(&format!(
            "pushed {}/platform/spectro-packs/archive/istio:1.6.2",
            registry.host()
        )),
        "{out}"
    );
    let inspect_local = cli
        .command(&["pack", "inspect", istio.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    let local: serde_json::Value = serde_json::from_slice(&inspect_local.stdout).unwrap();
    assert!(
        out.contains(&format!(
            "pack digest: {}",
            local["digest"].as_str().unwrap()
        )),
        "the registry holds the pack the folder is (its content digest):\n{out}"
    );
    assert!(out.contains("layer digest: sha256:"), "{out}");

    let again = cli.run(&["pack", "push", istio.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1), "{}", describe(&again));
    assert!(
        text(&again.stderr).contains("already exists"),
        "{}",
        describe(&again)
    );

    let changed = tempfile::tempdir().unwrap();
    let changed_pack = changed.path().join("istio");
    copy_dir(&istio, &changed_pack);
    std::fs::write(changed_pack.join("README.md"), "changed\n").unwrap();
    let forced = cli.run(&["pack", "push", changed_pack.to_str().unwrap(), "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", describe(&forced));
    assert!(
        text(&forced.stdout).starts_with("replaced "),
        "{}",
        describe(&forced)
    );

    let kubeflow = samples().join("packs/kubeflow");
    assert_eq!(
        cli.run(&["pack", "push", kubeflow.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let list = cli.run(&["pack", "list", "-o", "json"]);
    let packs: serde_json::Value =
        serde_json::from_slice(&list.stdout).unwrap_or_else(|_| panic!("{}", describe(&list)));
    assert_eq!(packs["istio"], serde_json::json!(["1.6.2"]));
    assert_eq!(packs["kubeflow"], serde_json::json!(["1.2.0"]));

    let inspected = cli.run(&["pack", "inspect", "kubeflow:1.2.0", "-o", "json"]);
    let remote: serde_json::Value = serde_json::from_slice(&inspected.stdout)
        .unwrap_or_else(|_| panic!("{}", describe(&inspected)));
    assert_eq!(remote["pack"]["name"], "kubeflow");
    assert_eq!(remote["pack"]["layer"], "addon");
    assert!(remote["digest"].as_str().unwrap().starts_with("sha256:"));

    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("istio");
    let pulled = cli.run(&[
        "pack",
        "pull",
        "istio:1.6.2",
        "--output",
        target.to_str().unwrap(),
    ]);
    assert_eq!(pulled.status.code(), Some(0), "{}", describe(&pulled));
    assert_eq!(
        std::fs::read_to_string(target.join("README.md")).unwrap(),
        "changed\n",
        "the forced version"
    );
    assert_eq!(
        std::fs::read(target.join("charts/istio-operator.tgz")).unwrap(),
        std::fs::read(istio.join("charts/istio-operator.tgz")).unwrap()
    );

    let missing = cli.run(&[
        "pack",
        "pull",
        "istio:9.9.9",
        "--output",
        out_dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(missing.status.code(), Some(1));
    let message = text(&missing.stderr);
    assert!(
        message.contains("9.9.9") && message.contains("1.6.2"),
        "lists the versions that exist: {message}"
    );
    assert!(!out_dir.path().join("x").exists());
}

#[tokio::test]
async fn credentials_and_refusals() {
    let registry = TestRegistry::start(RegistryOptions::default())
        .await
        .unwrap();
    let cli = Cli::new(&registry, "team");
    let pack = samples().join("packs/kubernetes");

    let wrong = cli.run_with_password(
        &["pack", "push", pack.to_str().unwrap()],
        "not-the-password",
    );
    assert_eq!(wrong.status.code(), Some(1));
    let message = text(&wrong.stderr);
    assert!(
        message.contains("wrong or missing credentials"),
        "{message}"
    );
    assert!(
        !message.contains("not-the-password"),
        "the password is never printed"
    );

    // Anonymous: no flags and no Docker config.
    let ca = registry.ca_file().unwrap().display().to_string();
    let anonymous = cli
        .command(&[
            "pack",
            "list",
            "--registry",
            &cli.address(),
            "--ca-file",
            &ca,
        ])
        .output()
        .unwrap();
    assert_eq!(anonymous.status.code(), Some(1), "{}", describe(&anonymous));
    assert!(
        text(&anonymous.stderr).contains("wrong or missing credentials"),
        "{}",
        describe(&anonymous)
    );

    // Credentials from the Docker config file.
    let docker = cli.home.path().join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::write(docker.join("config.json"), registry.docker_config_json()).unwrap();
    let from_config = cli
        .command(&[
            "pack",
            "push",
            pack.to_str().unwrap(),
            "--registry",
            &cli.address(),
            "--ca-file",
            &ca,
        ])
        .output()
        .unwrap();
    assert_eq!(
        from_config.status.code(),
        Some(0),
        "{}",
        describe(&from_config)
    );

    // No CA: the registry's certificate is not trusted.
    let untrusted = cli
        .command(&["pack", "list", "--registry", &cli.address()])
        .output()
        .unwrap();
    assert_eq!(untrusted.status.code(), Some(1));
    assert!(
        text(&untrusted.stderr)
            .to_lowercase()
            .contains("certificate"),
        "{}",
        describe(&untrusted)
    );

    // A scheme in --registry is refused with a hint.
    let scheme = cli
        .command(&[
            "pack",
            "list",
            "--registry",
            &format!("https://{}", cli.address()),
        ])
        .output()
        .unwrap();
    assert_eq!(scheme.status.code(), Some(1));
    assert!(
        text(&scheme.stderr).contains("--plain-http"),
        "{}",
        describe(&scheme)
    );

    // Usage errors exit 2: a password without a user, and push without --registry.
    let usage = cli
        .command(&["pack", "push", pack.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let usage = cli
        .command(&["pack", "list", "--registry", "x", "--password-stdin"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test]
async fn profiles_validate_and_render_from_a_registry() {
    let registry = TestRegistry::start(RegistryOptions::default())
        .await
        .unwrap();
    let cli = Cli::new(&registry, "packs");
    for pack in [
        "golden-centos-aws",
        "kubernetes",
        "cni-calico",
        "csi-hostpath",
        "istio",
        "kubeflow",
    ] {
        let pushed = cli.run(&[
            "pack",
            "push",
            samples().join("packs").join(pack).to_str().unwrap(),
        ]);
        assert_eq!(pushed.status.code(), Some(0), "{}", describe(&pushed));
    }
    let profiles = samples().join("profiles");
    let aws = profiles.join("aws-infra.yaml");
    let addons = profiles.join("ml-addons.yaml");
    let validated = cli.run(&[
        "profile",
        "validate",
        aws.to_str().unwrap(),
        addons.to_str().unwrap(),
    ]);
    assert_eq!(validated.status.code(), Some(0), "{}", describe(&validated));

    let cluster = samples().join("clusters/aws-ml.yaml");
    let rendered = cli.run(&[
        "profile",
        "render",
        "--profile",
        aws.to_str().unwrap(),
        "--profile",
        addons.to_str().unwrap(),
        "--cluster",
        cluster.to_str().unwrap(),
    ]);
    assert_eq!(rendered.status.code(), Some(0), "{}", describe(&rendered));
    let from_registry: serde_yaml::Value = serde_yaml::from_slice(&rendered.stdout).unwrap();
    let from_folder = cli
        .command(&[
            "profile",
            "render",
            "--profile",
            aws.to_str().unwrap(),
            "--profile",
            addons.to_str().unwrap(),
            "--cluster",
            cluster.to_str().unwrap(),
            "--packs",
            samples().join("packs").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let from_folder: serde_yaml::Value = serde_yaml::from_slice(&from_folder.stdout).unwrap();
    assert_eq!(
        from_registry, from_folder,
        "the same stack, digests and values either way"
    );

    // The vSphere profile names a pack this registry does not have.
    let vsphere = profiles.join("vsphere-full.yaml");
    let missing = cli.run(&["profile", "validate", vsphere.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
    let message = text(&missing.stderr);
    assert!(message.contains("golden-centos-vsphere"), "{message}");
}
