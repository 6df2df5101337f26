//! The client the CLI's commands that read or write the management cluster use.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::CommandError;

/// A client from the kubeconfig at `path`, else `$KUBECONFIG` or `~/.kube/config`; `what`
/// names the cluster in errors ("the management cluster's kubeconfig").
pub async fn client_from(path: Option<&Path>, what: &str) -> Result<Client, CommandError> {
    let failed = |message: String| CommandError::Failed(message);
    let config = match path {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| failed(format!("{what} {}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| failed(format!("{what} {}: {e}", path.display())))?
        }
        None => Config::infer()
            .await
            .map_err(|e| failed(format!("{what}: no kubeconfig found: {e}")))?,
    };
    Client::try_from(config).map_err(|e| failed(format!("{what}: {e}")))
}

/// A runtime for one command.
pub fn command_runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Failed(format!("cannot start the async runtime: {e}")))
}
