//! What installing layers needs of the agent: its client, helm, the pack cache and the
//! work folder packs are unpacked into, a kubeconfig for helm, and the time a layer may take.

use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_shared::helm_cli::Helm;
use strata_shared::registry::cache::PackCache;

/// What installing layers needs of the agent's setup.
#[derive(Clone)]
pub struct LayerSetup {
    pub client: kube::Client,
    pub helm: Option<Helm>,
    pub cache: PackCache,
    /// Where packs are unpacked while a layer installs.
    pub work_dir: PathBuf,
    /// The cluster as helm reaches it.
    pub kubeconfig: PathBuf,
    /// The longest a layer may take to apply and become Ready.
    pub timeout: Duration,
}

/// Why the agent cannot install layers at all.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("--pack-cache {}: {reason}", .path.display())]
    PackCache { path: PathBuf, reason: String },
    #[error(transparent)]
    Helm(#[from] strata_shared::helm_cli::LocateError),
}

impl LayerSetup {
    /// The pack cache and work folder under `pack_cache`, helm (`$STRATA_HELM`, else on
    /// `PATH`) and a kubeconfig for it.
    pub fn new(
        client: &kube::Client,
        pack_cache: &Path,
        timeout: Duration,
    ) -> Result<LayerSetup, SetupError> {
        let unusable = |reason: String| SetupError::PackCache {
            path: pack_cache.to_path_buf(),
            reason,
        };
        let work_dir = pack_cache.join("work");
        std::fs::create_dir_all(&work_dir)
            .map_err(|e| unusable(format!("cannot create {}: {e}", work_dir.display())))?;
        let cache =
            PackCache::open(&pack_cache.join("blobs")).map_err(|e| unusable(e.to_string()))?;
        let kubeconfig = helm_kubeconfig(&work_dir).map_err(|e| unusable(e.to_string()))?;
        let helm = Helm::locate()?;
        if helm.is_none() {
            tracing::warn!(
                "no helm binary (STRATA_HELM or PATH): layers with charts or templates will fail"
            );
        }
        Ok(LayerSetup {
            client: client.clone(),
            helm,
            cache,
            work_dir,
            kubeconfig,
            timeout,
        })
    }
}

/// A kubeconfig for helm: `$KUBECONFIG` when the agent has one, else one written into
/// `dir` for the pod's service account (the in-cluster server, CA and token files).
fn helm_kubeconfig(dir: &Path) -> std::io::Result<PathBuf> {
    if let Some(path) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    const ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: in-cluster\n  cluster:\n    server: https://{host}:{port}\n    certificate-authority: {ACCOUNT}/ca.crt\nusers:\n- name: agent\n  user:\n    tokenFile: {ACCOUNT}/token\ncontexts:\n- name: in-cluster\n  context: {{cluster: in-cluster, user: agent}}\ncurrent-context: in-cluster\n"
    );
    let path = dir.join("helm-kubeconfig");
    std::fs::write(&path, text)?;
    Ok(path)
}
