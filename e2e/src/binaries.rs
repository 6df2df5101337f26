//! Where the test substrate finds the programs it runs, all installed by
//! `scripts/install-test-deps.sh`:
//!
//! - kube-apiserver, kube-controller-manager, kube-scheduler and kubectl v1.20.2, built
//!   from Debian's `kubernetes` source package by `scripts/kube-binaries.sh` into
//!   `<cache>/kubernetes-v1.20.2/bin/` (override: `STRATA_KUBE_BIN_DIR`; for kubectl
//!   alone: `STRATA_KUBECTL`). Debian's own kubectl 1.20 (`kubernetes-client`) is not
//!   used: built with Go 1.19 and the vendored reflect2, it segfaults when it writes a
//!   kubeconfig;
//! - etcd 3.4 from Debian's `etcd-server` (`/usr/bin/etcd`; override: `STRATA_ETCD`);
//! - the OCI registry from Debian's `docker-registry` (`/usr/bin/docker-registry`;
//!   override: `STRATA_DOCKER_REGISTRY`);
//! - the Helm engine library from `scripts/helm-engine.sh`
//!   (`<cache>/helm-sdkpy/libhelm_sdkpy.so`; override: `STRATA_HELM_LIB`).
//!
//! `<cache>` is [`cache_dir`]: `$STRATA_CACHE_DIR`, or `$HOME/.cache/strata`. An empty
//! variable counts as unset, as in the scripts' `${VAR:-default}`.
//!
//! Each public function reads the process environment through a private twin that takes
//! the lookup as a closure, which is what the unit tests call (changing the process
//! environment is `unsafe` in edition 2024 and races with other tests).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The Kubernetes version of the control-plane binaries.
pub const KUBE_VERSION: &str = "v1.20.2";

/// A tool the tests need is not where it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    #[error(
        "{tool} not found: {problem} at {path} ({origin}); run scripts/install-test-deps.sh \
         to install the test dependencies"
    )]
    NotFound {
        /// The tool, e.g. "kube-apiserver".
        tool: String,
        /// Where it was looked for.
        path: PathBuf,
        /// Why that place: the environment variable that named it, or what should have
        /// installed it there.
        origin: String,
        /// "no such file", "not an executable file"…
        problem: String,
    },
}

impl BinaryError {
    /// The path that was looked at.
    pub fn path(&self) -> &Path {
        match self {
            BinaryError::NotFound { path, .. } => path,
        }
    }
}

/// Reads one environment variable; `None` when unset or empty.
type Lookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn process_env(name: &str) -> Option<OsString> {
    let value = std::env::var_os(name).filter(|v| !v.is_empty());
    if value.is_none() && name == "HOME" {
        // As the C library does: the password database when HOME is not set.
        return std::env::home_dir().map(PathBuf::into_os_string);
    }
    value
}

fn var(env: Lookup<'_>, name: &str) -> Option<PathBuf> {
    env(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Strata's cache of built and downloaded test tools: `$STRATA_CACHE_DIR`, or
/// `$HOME/.cache/strata`.
pub fn cache_dir() -> PathBuf {
    cache_dir_in(&process_env)
}

fn cache_dir_in(env: Lookup<'_>) -> PathBuf {
    if let Some(dir) = var(env, "STRATA_CACHE_DIR") {
        return dir;
    }
    // Without HOME (and no password entry) the path is relative and will not be found;
    // the error then shows where it was looked for.
    var(env, "HOME")
        .unwrap_or_default()
        .join(".cache")
        .join("strata")
}

/// The folder holding kube-apiserver, kube-controller-manager, kube-scheduler and kubectl:
/// `$STRATA_KUBE_BIN_DIR`, or `<cache>/kubernetes-v1.20.2/bin`.
pub fn kube_bin_dir() -> PathBuf {
    kube_bin_dir_in(&process_env).0
}

fn kube_bin_dir_in(env: Lookup<'_>) -> (PathBuf, String) {
    match var(env, "STRATA_KUBE_BIN_DIR") {
        Some(dir) => (dir, "from STRATA_KUBE_BIN_DIR".into()),
        None => (
            cache_dir_in(env)
                .join(format!("kubernetes-{KUBE_VERSION}"))
                .join("bin"),
            "built by scripts/kube-binaries.sh into the cache, $STRATA_CACHE_DIR or \
             $HOME/.cache/strata; STRATA_KUBE_BIN_DIR overrides"
                .to_string(),
        ),
    }
}

/// A Kubernetes binary of version [`KUBE_VERSION`]: "kube-apiserver",
/// "kube-controller-manager", "kube-scheduler" or "kubectl".
pub fn kube_binary(name: &str) -> Result<PathBuf, BinaryError> {
    kube_binary_in(name, &process_env)
}

fn kube_binary_in(name: &str, env: Lookup<'_>) -> Result<PathBuf, BinaryError> {
    let (dir, origin) = kube_bin_dir_in(env);
    executable(name, dir.join(name), origin)
}

/// etcd (3.4, Debian's `etcd-server`): `$STRATA_ETCD`, or `/usr/bin/etcd`.
pub fn etcd() -> Result<PathBuf, BinaryError> {
    etcd_in(&process_env)
}

fn etcd_in(env: Lookup<'_>) -> Result<PathBuf, BinaryError> {
    system_tool("etcd", env, "STRATA_ETCD", "/usr/bin/etcd", "etcd-server")
}

/// kubectl v1.20.2: `$STRATA_KUBECTL`, or kubectl in [`kube_bin_dir`] (built with the
/// control-plane binaries; not `/usr/bin/kubectl`, which is Debian's segfaulting build or,
/// on some machines, the Google Cloud SDK's much newer one).
pub fn kubectl() -> Result<PathBuf, BinaryError> {
    kubectl_in(&process_env)
}

fn kubectl_in(env: Lookup<'_>) -> Result<PathBuf, BinaryError> {
    match var(env, "STRATA_KUBECTL") {
        Some(path) => executable("kubectl", path, "from STRATA_KUBECTL".into()),
        None => kube_binary_in("kubectl", env),
    }
}

/// The OCI registry (distribution 2.8, Debian's `docker-registry`):
/// `$STRATA_DOCKER_REGISTRY`, or `/usr/bin/docker-registry`. Run it as
/// `docker-registry serve <config.yml>`.
pub fn docker_registry() -> Result<PathBuf, BinaryError> {
    docker_registry_in(&process_env)
}

fn docker_registry_in(env: Lookup<'_>) -> Result<PathBuf, BinaryError> {
    system_tool(
        "docker-registry",
        env,
        "STRATA_DOCKER_REGISTRY",
        "/usr/bin/docker-registry",
        "docker-registry",
    )
}

/// The Helm engine, a C-ABI shared library: `$STRATA_HELM_LIB`, or
/// `<cache>/helm-sdkpy/libhelm_sdkpy.so` (installed by `scripts/helm-engine.sh`).
pub fn helm_engine_library() -> Result<PathBuf, BinaryError> {
    helm_engine_library_in(&process_env)
}

fn helm_engine_library_in(env: Lookup<'_>) -> Result<PathBuf, BinaryError> {
    let tool = "the Helm engine library";
    let (path, origin) = match var(env, "STRATA_HELM_LIB") {
        Some(path) => (path, "from STRATA_HELM_LIB".to_string()),
        None => (
            cache_dir_in(env)
                .join("helm-sdkpy")
                .join("libhelm_sdkpy.so"),
            "installed by scripts/helm-engine.sh into the cache, $STRATA_CACHE_DIR or \
             $HOME/.cache/strata; STRATA_HELM_LIB overrides"
                .to_string(),
        ),
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err(not_found(tool, path, origin, "not a file")),
        Err(_) => Err(not_found(tool, path, origin, "no such file")),
    }
}

/// The Python of the ORAS SDK's virtual environment, `<cache>/oras-venv/bin/python`
/// (installed by `scripts/oras-sdk.sh`): the independent peer for registry interop.
pub fn oras_python() -> Result<PathBuf, BinaryError> {
    let path = cache_dir().join("oras-venv").join("bin").join("python");
    if path.is_file() {
        Ok(path)
    } else {
        Err(not_found(
            "the ORAS Python SDK",
            path,
            "installed by scripts/oras-sdk.sh into the cache, $STRATA_CACHE_DIR or $HOME/.cache/strata".to_string(),
            "no such file",
        ))
    }
}

/// A program installed by a Debian package at `default`, unless `$var_name` names another.
fn system_tool(
    tool: &str,
    env: Lookup<'_>,
    var_name: &str,
    default: &str,
    package: &str,
) -> Result<PathBuf, BinaryError> {
    match var(env, var_name) {
        Some(path) => executable(tool, path, format!("from {var_name}")),
        None => executable(
            tool,
            PathBuf::from(default),
            format!("installed by Debian's {package} package; {var_name} overrides"),
        ),
    }
}

fn executable(tool: &str, path: PathBuf, origin: String) -> Result<PathBuf, BinaryError> {
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => Ok(path),
        Ok(_) => Err(not_found(tool, path, origin, "not an executable file")),
        Err(_) => Err(not_found(tool, path, origin, "no such file")),
    }
}

fn not_found(tool: &str, path: PathBuf, origin: String, problem: &str) -> BinaryError {
    BinaryError::NotFound {
        tool: tool.into(),
        path,
        origin,
        problem: problem.into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::fs;

    /// An environment made of the given variables only.
    fn env(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn write(path: &Path, mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn cache_dir_prefers_strata_cache_dir_then_home() {
        let both = env(&[
            ("STRATA_CACHE_DIR", Path::new("/c")),
            ("HOME", Path::new("/h")),
        ]);
        assert_eq!(cache_dir_in(&both), PathBuf::from("/c"));
        let home = env(&[("HOME", Path::new("/h"))]);
        assert_eq!(cache_dir_in(&home), PathBuf::from("/h/.cache/strata"));
        // Empty counts as unset, as with ${STRATA_CACHE_DIR:-…} in the scripts.
        let empty = env(&[
            ("STRATA_CACHE_DIR", Path::new("")),
            ("HOME", Path::new("/h")),
        ]);
        assert_eq!(cache_dir_in(&empty), PathBuf::from("/h/.cache/strata"));
    }

    #[test]
    fn kube_binary_is_found_in_the_cache() {
        let home = tempfile::tempdir().unwrap();
        let bin = home.path().join(".cache/strata/kubernetes-v1.20.2/bin");
        write(&bin.join("kube-apiserver"), 0o755);
        let e = env(&[("HOME", home.path())]);
        assert_eq!(
            kube_binary_in("kube-apiserver", &e).unwrap(),
            bin.join("kube-apiserver")
        );

        let cache = tempfile::tempdir().unwrap();
        let bin = cache.path().join("kubernetes-v1.20.2/bin");
        write(&bin.join("kube-scheduler"), 0o755);
        let e = env(&[("STRATA_CACHE_DIR", cache.path()), ("HOME", home.path())]);
        assert_eq!(
            kube_binary_in("kube-scheduler", &e).unwrap(),
            bin.join("kube-scheduler")
        );
        // The cache dir wins over HOME: HOME's apiserver is not looked at.
        assert!(kube_binary_in("kube-apiserver", &e).is_err());
    }

    #[test]
    fn kube_bin_dir_overrides_the_cache() {
        let cache = tempfile::tempdir().unwrap();
        write(
            &cache.path().join("kubernetes-v1.20.2/bin/kube-apiserver"),
            0o755,
        );
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("kube-controller-manager"), 0o755);
        let e = env(&[
            ("STRATA_CACHE_DIR", cache.path()),
            ("STRATA_KUBE_BIN_DIR", dir.path()),
        ]);
        assert_eq!(
            kube_binary_in("kube-controller-manager", &e).unwrap(),
            dir.path().join("kube-controller-manager")
        );
        let err = kube_binary_in("kube-apiserver", &e).unwrap_err();
        assert_eq!(err.path(), dir.path().join("kube-apiserver"));
        assert!(
            err.to_string().contains("from STRATA_KUBE_BIN_DIR"),
            "{err}"
        );
    }

    #[test]
    fn missing_binary_error_says_what_where_and_what_to_do() {
        let cache = tempfile::tempdir().unwrap();
        let e = env(&[("STRATA_CACHE_DIR", cache.path())]);
        let err = kube_binary_in("kube-apiserver", &e).unwrap_err();
        let path = cache.path().join("kubernetes-v1.20.2/bin/kube-apiserver");
        assert_eq!(err.path(), path);
        let message = err.to_string();
        assert!(
            message.starts_with("kube-apiserver not found: no such file at "),
            "{message}"
        );
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("scripts/kube-binaries.sh"), "{message}");
        assert!(
            message.ends_with("run scripts/install-test-deps.sh to install the test dependencies"),
            "{message}"
        );
    }

    #[test]
    fn non_executable_files_and_folders_are_not_binaries() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("kube-apiserver"), 0o644);
        fs::create_dir(dir.path().join("kube-scheduler")).unwrap();
        let e = env(&[("STRATA_KUBE_BIN_DIR", dir.path())]);
        for name in ["kube-apiserver", "kube-scheduler"] {
            let err = kube_binary_in(name, &e).unwrap_err();
            assert!(err.to_string().contains("not an executable file"), "{err}");
        }
    }

    #[test]
    fn system_tools_take_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let etcd = dir.path().join("my-etcd");
        let kubectl = dir.path().join("my-kubectl");
        let registry = dir.path().join("my-registry");
        for path in [&etcd, &kubectl, &registry] {
            write(path, 0o755);
        }
        let e = env(&[
            ("STRATA_ETCD", &etcd),
            ("STRATA_KUBECTL", &kubectl),
            ("STRATA_DOCKER_REGISTRY", &registry),
        ]);
        assert_eq!(etcd_in(&e).unwrap(), etcd);
        assert_eq!(kubectl_in(&e).unwrap(), kubectl);
        assert_eq!(docker_registry_in(&e).unwrap(), registry);

        let gone = dir.path().join("gone");
        let e = env(&[("STRATA_ETCD", &gone)]);
        let message = etcd_in(&e).unwrap_err().to_string();
        assert!(
            message.starts_with("etcd not found: no such file at "),
            "{message}"
        );
        assert!(message.contains("from STRATA_ETCD"), "{message}");
        assert!(
            message.contains("run scripts/install-test-deps.sh"),
            "{message}"
        );
    }

    #[test]
    fn system_tools_default_to_debian_paths() {
        let e = env(&[]);
        for (result, path, package) in [
            (etcd_in(&e), "/usr/bin/etcd", "etcd-server"),
            (
                docker_registry_in(&e),
                "/usr/bin/docker-registry",
                "docker-registry",
            ),
        ] {
            match result {
                Ok(found) => assert_eq!(found, PathBuf::from(path)),
                Err(err) => {
                    assert_eq!(err.path(), Path::new(path));
                    assert!(err.to_string().contains(package), "{err}");
                }
            }
        }
    }

    #[test]
    fn kubectl_comes_with_the_kube_binaries() {
        let cache = tempfile::tempdir().unwrap();
        let e = env(&[("STRATA_CACHE_DIR", cache.path())]);
        let path = cache.path().join("kubernetes-v1.20.2/bin/kubectl");
        let err = kubectl_in(&e).unwrap_err();
        assert_eq!(err.path(), path);
        assert!(
            err.to_string().contains("scripts/kube-binaries.sh"),
            "{err}"
        );
        write(&path, 0o755);
        assert_eq!(kubectl_in(&e).unwrap(), path);

        // STRATA_KUBE_BIN_DIR moves it along with the others; STRATA_KUBECTL wins.
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("kubectl"), 0o755);
        let e = env(&[
            ("STRATA_CACHE_DIR", cache.path()),
            ("STRATA_KUBE_BIN_DIR", dir.path()),
        ]);
        assert_eq!(kubectl_in(&e).unwrap(), dir.path().join("kubectl"));
        let e = env(&[
            ("STRATA_KUBE_BIN_DIR", dir.path()),
            ("STRATA_KUBECTL", &path),
        ]);
        assert_eq!(kubectl_in(&e).unwrap(), path);
    }

    #[test]
    fn helm_engine_library_from_cache_or_override() {
        let cache = tempfile::tempdir().unwrap();
        let e = env(&[("STRATA_CACHE_DIR", cache.path())]);
        let lib = cache.path().join("helm-sdkpy/libhelm_sdkpy.so");
        let message = helm_engine_library_in(&e).unwrap_err().to_string();
        assert!(
            message.starts_with("the Helm engine library not found"),
            "{message}"
        );
        assert!(message.contains(&lib.display().to_string()), "{message}");
        assert!(message.contains("scripts/helm-engine.sh"), "{message}");

        // A shared library need not be executable.
        write(&lib, 0o644);
        assert_eq!(helm_engine_library_in(&e).unwrap(), lib);

        let other = cache.path().join("elsewhere.so");
        write(&other, 0o644);
        let e = env(&[
            ("STRATA_CACHE_DIR", cache.path()),
            ("STRATA_HELM_LIB", &other),
        ]);
        assert_eq!(helm_engine_library_in(&e).unwrap(), other);
    }
}
