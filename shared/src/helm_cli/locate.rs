//! Which helm binary renders: `$STRATA_HELM` when set, else `helm` on `PATH`, else none.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::Helm;

/// The variable naming the helm binary, ahead of `PATH`.
pub const HELM_ENV: &str = "STRATA_HELM";

/// `$STRATA_HELM` names something that cannot be run. Unlike no helm at all, this is a
/// mistake to report, not a reason to skip rendering.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LocateError {
    #[error("{HELM_ENV} is {path}, which {problem}; point it at a helm binary or unset it")]
    NotExecutable {
        path: PathBuf,
        problem: &'static str,
    },
}

impl Helm {
    /// The helm binary of this process's environment; `Ok(None)` when there is none.
    pub fn locate() -> Result<Option<Helm>, LocateError> {
        locate_in(
            std::env::var_os(HELM_ENV).as_deref(),
            std::env::var_os("PATH").as_deref(),
        )
        .map(|binary| binary.map(Helm::new))
    }
}

/// [`Helm::locate`] on given values of `STRATA_HELM` and `PATH`. An empty `STRATA_HELM`
/// counts as unset.
pub fn locate_in(
    strata_helm: Option<&OsStr>,
    path: Option<&OsStr>,
) -> Result<Option<PathBuf>, LocateError> {
    if let Some(named) = strata_helm.filter(|value| !value.is_empty()) {
        let named = PathBuf::from(named);
        return match problem(&named) {
            None => Ok(Some(named)),
            Some(problem) => Err(LocateError::NotExecutable {
                path: named,
                problem,
            }),
        };
    }
    let Some(path) = path else {
        return Ok(None);
    };
    Ok(std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("helm"))
        .find(|candidate| problem(candidate).is_none()))
}

/// Why a path is not a binary to run, or `None` when it is one.
fn problem(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(_) => Some("does not exist"),
        Ok(meta) if !meta.is_file() => Some("is not a file"),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Some("is not executable"),
        Ok(_) => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::ffi::OsString;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn executable(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn strata_helm_wins_over_path() {
        let temp = tempfile::tempdir().unwrap();
        let named = executable(temp.path(), "my-helm");
        let on_path = temp.path().join("bin");
        fs::create_dir(&on_path).unwrap();
        executable(&on_path, "helm");
        let path = OsString::from(on_path.as_os_str());
        assert_eq!(
            locate_in(Some(named.as_os_str()), Some(&path)).unwrap(),
            Some(named)
        );
        // Unset or empty: PATH decides.
        assert_eq!(
            locate_in(Some(OsStr::new("")), Some(&path)).unwrap(),
            Some(on_path.join("helm"))
        );
    }

    #[test]
    fn path_is_searched_in_order_skipping_what_cannot_run() {
        let temp = tempfile::tempdir().unwrap();
        let first = temp.path().join("a");
        let second = temp.path().join("b");
        let third = temp.path().join("c");
        for dir in [&first, &second, &third] {
            fs::create_dir(dir).unwrap();
        }
        // Not executable, then a folder named helm, then the real one.
        fs::write(first.join("helm"), "x").unwrap();
        fs::create_dir(second.join("helm")).unwrap();
        executable(&third, "helm");
        let path = std::env::join_paths([&first, &second, &third]).unwrap();
        assert_eq!(
            locate_in(None, Some(&path)).unwrap(),
            Some(third.join("helm"))
        );
    }

    #[test]
    fn no_helm_anywhere_is_none() {
        let temp = tempfile::tempdir().unwrap();
        let path = OsString::from(temp.path().as_os_str());
        assert_eq!(locate_in(None, Some(&path)).unwrap(), None);
        assert_eq!(locate_in(None, None).unwrap(), None);
    }

    #[test]
    fn a_strata_helm_that_cannot_run_is_an_error_naming_it() {
        let temp = tempfile::tempdir().unwrap();
        let missing = temp.path().join("nope");
        let error = locate_in(Some(missing.as_os_str()), None).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "STRATA_HELM is {}, which does not exist; point it at a helm binary or unset it",
                missing.display()
            )
        );
        let plain = temp.path().join("plain");
        fs::write(&plain, "x").unwrap();
        assert!(matches!(
            locate_in(Some(plain.as_os_str()), None),
            Err(LocateError::NotExecutable {
                problem: "is not executable",
                ..
            })
        ));
    }
}
