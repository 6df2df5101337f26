//! What `helm list -A` needs that the engine library does not offer: the namespaces
//! holding releases. The engine lists the one namespace its configuration was made for
//! (its `list` has no all-namespaces option), so the executable lists each namespace
//! found here; helm itself lists its storage records cluster-wide.

use std::collections::BTreeSet;
use std::path::PathBuf;

use std::io::{Read, Write};

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot start the Kubernetes client's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot configure a Kubernetes client: {0}")]
    Config(String),
    // kube::Error is large; boxed so every Result here stays small.
    #[error("cannot create a Kubernetes client: {0}")]
    Client(#[source] Box<kube::Error>),
    #[error("cannot list helm's release records across namespaces: {0}")]
    ListReleases(#[source] Box<kube::Error>),
    #[error("--all-namespaces is not supported with HELM_DRIVER={0:?} (only secret and configmap)")]
    Driver(String),
    #[error("cannot read helm's release record {name}: {reason}")]
    ReadRecord { name: String, reason: String },
    #[error("cannot write helm's release record {name}: {source}")]
    WriteRecord {
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// How to reach the cluster: the same kubeconfig and context the engine was given.
pub struct Cluster {
    pub kubeconfig: Option<PathBuf>,
    pub kube_context: Option<String>,
}

impl Cluster {
    fn runtime() -> Result<tokio::runtime::Runtime, ClusterError> {
        // A current-thread runtime keeps everything on the calling (main) thread.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClusterError::Runtime)
    }

    async fn client(&self) -> Result<kube::Client, ClusterError> {
        let options = KubeConfigOptions {
            context: self.kube_context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|source| ClusterError::Kubeconfig {
                        path: path.clone(),
                        source,
                    })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| ClusterError::Config(e.to_string()))?
            }
            None if self.kube_context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| ClusterError::Config(e.to_string()))?,
            None => kube::Config::infer()
                .await
                .map_err(|e| ClusterError::Config(e.to_string()))?,
        };
        kube::Client::try_from(config).map_err(|e| ClusterError::Client(Box::new(e)))
    }

    /// The namespaces holding helm release records, found as helm's storage drivers
    /// label them (`owner=helm`), sorted.
    pub fn release_namespaces(&self) -> Result<Vec<String>, ClusterError> {
        Self::runtime()?.block_on(async {
            let client = self.client().await?;
            let params = ListParams::default().labels("owner=helm");
            let driver = std::env::var("HELM_DRIVER").unwrap_or_default();
            let namespaces: Vec<Option<String>> = match driver.as_str() {
                "" | "secret" | "secrets" => Api::<Secret>::all(client)
                    .list_metadata(&params)
                    .await
                    .map_err(|e| ClusterError::ListReleases(Box::new(e)))?
                    .items
                    .into_iter()
                    .map(|s| s.metadata.namespace)
                    .collect(),
                "configmap" | "configmaps" => Api::<ConfigMap>::all(client)
                    .list_metadata(&params)
                    .await
                    .map_err(|e| ClusterError::ListReleases(Box::new(e)))?
                    .items
                    .into_iter()
                    .map(|c| c.metadata.namespace)
                    .collect(),
                other => return Err(ClusterError::Driver(other.to_string())),
            };
            let unique: BTreeSet<String> = namespaces.into_iter().flatten().collect();
            Ok(unique.into_iter().collect())
        })
    }

    /// Marks the release's revision `revision`, left `pending-*` by a helm that was
    /// stopped mid-operation, as `superseded`, as helm's own rollback does with the
    /// release it rolls back from (the engine's upgrade, which this executable's rollback
    /// goes through, refuses a release whose latest revision is pending). Secret driver
    /// only: the record is `sh.helm.release.v1.<release>.v<revision>`, its `release` key
    /// base64 of gzip of the release's JSON.
    pub fn supersede_pending(
        &self,
        namespace: &str,
        release: &str,
        revision: i64,
    ) -> Result<(), ClusterError> {
        let name = format!("sh.helm.release.v1.{release}.v{revision}");
        let unreadable = |reason: String| ClusterError::ReadRecord {
            name: name.clone(),
            reason,
        };
        Self::runtime()?.block_on(async {
            let api: Api<Secret> = Api::namespaced(self.client().await?, namespace);
            let mut secret = api
                .get(&name)
                .await
                .map_err(|e| unreadable(e.to_string()))?;
            let encoded = secret
                .data
                .as_ref()
                .and_then(|data| data.get("release"))
                .ok_or_else(|| unreadable("it has no release key".into()))?;
            let gzipped = base64::engine::general_purpose::STANDARD
                .decode(&encoded.0)
                .map_err(|e| unreadable(e.to_string()))?;
            let mut json = Vec::new();
            flate2::read::GzDecoder::new(gzipped.as_slice())
                .read_to_end(&mut json)
                .map_err(|e| unreadable(e.to_string()))?;
            let mut record: serde_json::Value =
                serde_json::from_slice(&json).map_err(|e| unreadable(e.to_string()))?;
            record["info"]["status"] = "superseded".into();
            let json = serde_json::to_vec(&record).map_err(|e| unreadable(e.to_string()))?;
            let mut gzip =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gzip.write_all(&json)
                .map_err(|e| unreadable(e.to_string()))?;
            let gzipped = gzip.finish().map_err(|e| unreadable(e.to_string()))?;
            let encoded = base64::engine::general_purpose::STANDARD.encode(gzipped);
            secret
                .data
                .get_or_insert_with(Default::default)
                .insert("release".into(), ByteString(encoded.into_bytes()));
            secret
                .metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert("status".into(), "superseded".into());
            api.replace(&name, &PostParams::default(), &secret)
                .await
                .map_err(|e| ClusterError::WriteRecord {
                    name: name.clone(),
                    source: Box::new(e),
                })?;
            Ok(())
        })
    }
}
