//! The agent's way to the management cluster: the `strata-management` Secret mounted
//! as files, read again for every connection so a renewed token is picked up.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

#[derive(Debug, thiserror::Error)]
#[error("the management access in {path} is not usable: {reason}")]
pub struct LinkError {
    pub path: PathBuf,
    pub reason: String,
}

/// Where this cluster's objects are in the management cluster.
#[derive(Debug, Clone)]
pub struct ManagementLink {
    kubeconfig: PathBuf,
    /// The WorkloadCluster's (and CAPI Cluster's) name.
    pub cluster: String,
    /// The WorkloadCluster's namespace.
    pub cluster_namespace: String,
    /// The namespace holding its CAPI objects and revisions.
    pub objects_namespace: String,
}

fn read(dir: &Path, key: &str) -> Result<String, LinkError> {
    let path = dir.join(key);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| LinkError {
            path: path.clone(),
            reason: e.to_string(),
        })
}

impl ManagementLink {
    /// From the kubeconfig file of the mounted Secret; its sibling files name the cluster.
    pub fn from_kubeconfig_file(kubeconfig: &Path) -> Result<ManagementLink, LinkError> {
        let dir = kubeconfig.parent().unwrap_or(Path::new("."));
        Ok(ManagementLink {
            kubeconfig: kubeconfig.to_path_buf(),
            cluster: read(dir, "cluster")?,
            cluster_namespace: read(dir, "clusterNamespace")?,
            objects_namespace: read(dir, "namespace")?,
        })
    }

    pub async fn client(&self) -> Result<Client, LinkError> {
        let failed = |reason: String| LinkError {
            path: self.kubeconfig.clone(),
            reason,
        };
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).map_err(|e| failed(e.to_string()))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| failed(e.to_string()))?;
        Client::try_from(config).map_err(|e| failed(e.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_of_the_mounted_secret_is_named() {
        let dir = std::env::temp_dir().join(format!("strata-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (key, value) in [
            ("kubeconfig", "apiVersion: v1\n"),
            ("cluster", "edge\n"),
            ("namespace", "team-a-edge"),
        ] {
            std::fs::write(dir.join(key), value).unwrap();
        }
        let error = ManagementLink::from_kubeconfig_file(&dir.join("kubeconfig")).unwrap_err();
        assert_eq!(error.path, dir.join("clusterNamespace"));
        assert!(error.to_string().contains("clusterNamespace"), "{error}");
        std::fs::write(dir.join("clusterNamespace"), "team-a\n").unwrap();
        let link = ManagementLink::from_kubeconfig_file(&dir.join("kubeconfig")).unwrap();
        assert_eq!(
            (
                link.cluster.as_str(),
                link.cluster_namespace.as_str(),
                link.objects_namespace.as_str()
            ),
            ("edge", "team-a", "team-a-edge")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
