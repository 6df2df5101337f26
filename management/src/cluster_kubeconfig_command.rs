//! `strata cluster kubeconfig`: the workload cluster's admin kubeconfig, from the management
//! side, before and after the pivot.
//!
//! While CAPI's Secret `<name>-kubeconfig` is in the cluster's objects namespace (before the
//! pivot, during the move, after a reclaim) it is read there. After the pivot that Secret
//! lives in the workload cluster, so it is read from the site's export. Either way it is held to what the controller pinned
//! when it first used the cluster (its API server and the SHA-256 of its CA) and to what
//! Strata takes as a kubeconfig at all (a server, CA data and inline credentials): a site
//! that writes its export cannot point the operator at another server, or at one with
//! another CA. What it can choose is the credential to its own API server, which it controls
//! anyway.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;
use strata_shared::cluster::ledger::WorkloadPin;
use strata_shared::contracts::field_managers::CLI_FIELD_MANAGER;
use strata_shared::contracts::names::ClusterLocation;
use strata_shared::kube_writer::KubeWriter;
use strata_shared::site_export_fetch::{export_backup, export_secret_shown, fetch_export};
use strata_shared::workload_kubeconfig::parse_bytes;

use crate::cluster_commands::{cluster_and_ledger, parse_cluster};
use crate::controller::ledger;
use crate::management_client::{client_from, command_runtime};
use crate::{CommandError, ExitStatus};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(clap::Args, Debug)]
pub struct KubeconfigArgs {
    /// The WorkloadCluster, NAMESPACE/NAME.
    #[arg(value_name = "NAMESPACE/NAME")]
    pub cluster: String,
    /// The management cluster's kubeconfig; else $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Write it to FILE (created with mode 0600, replaced whole) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

fn failed(message: impl Into<String>) -> CommandError {
    CommandError::Failed(message.into())
}

/// Where the kubeconfig was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    CapiSecret,
    SiteExport,
}

/// Holds `bytes` (from `shown`) to the pin: Ok with the bytes when it is a kubeconfig
/// Strata uses for the pinned server and CA.
fn checked<'a>(bytes: &'a [u8], shown: &str, pin: &WorkloadPin) -> Result<&'a [u8], String> {
    let access = parse_bytes(bytes).map_err(|e| {
        format!("the kubeconfig in {shown} is not one Strata uses ({e}); nothing was written")
    })?;
    let seen = WorkloadPin {
        server: access.server().to_string(),
        ca_sha256: access.ca_fingerprint(),
    };
    if &seen != pin {
        return Err(format!(
            "the kubeconfig in {shown} names server {} with CA sha256 {}, but the cluster was pinned to server {} with CA sha256 {} when the controller first used it; nothing was written",
            seen.server, seen.ca_sha256, pin.server, pin.ca_sha256
        ));
    }
    Ok(bytes)
}

/// The value of Secret `name`'s key `value` in an object of a backup, as JSON.
fn kubeconfig_in_object(object: &Value) -> Option<Vec<u8>> {
    let encoded = object.pointer("/data/value")?.as_str()?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

pub fn kubeconfig(args: &KubeconfigArgs) -> Result<ExitStatus, CommandError> {
    command_runtime()?.block_on(kubeconfig_async(args))
}

async fn kubeconfig_async(args: &KubeconfigArgs) -> Result<ExitStatus, CommandError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (namespace, name) = parse_cluster(&args.cluster)?;
    let shown = format!("WorkloadCluster {namespace}/{name}");
    let client = client_from(args.kubeconfig.as_deref(), "--kubeconfig").await?;
    let writer = KubeWriter::new(client, CLI_FIELD_MANAGER, CALL_TIMEOUT);
    let (_, location, objects_namespace) = cluster_and_ledger(&writer, &namespace, &name).await?;
    let objects = &location.objects_namespace;
    let recorded = ledger::of(Some(&objects_namespace));
    let pin = recorded.pin.clone().ok_or_else(|| {
        failed(format!(
            "the controller has not used {shown}'s kubeconfig yet (nothing is pinned in namespace {objects}): its first control-plane node is not up, or CAPI has not written the kubeconfig"
        ))
    })?;
    // CAPI's Secret while it is in the management cluster (before the pivot, during the
    // move, after a reclaim); the site's export once the move took it away.
    let (source, bytes) = match from_capi_secret(&writer, &location).await? {
        Some(bytes) => (Source::CapiSecret, bytes),
        None if recorded.agent_holds_the_objects() => {
            (Source::SiteExport, from_export(&writer, &location).await?)
        }
        None => {
            return Err(failed(format!(
                "Secret {objects}/{name}-kubeconfig does not exist: CAPI has not written it yet"
            )));
        }
    };
    let origin = match source {
        Source::CapiSecret => format!("Secret {objects}/{name}-kubeconfig"),
        Source::SiteExport => format!(
            "{} (the site's export: the cluster holds its own objects)",
            export_secret_shown(&location)
        ),
    };
    let bytes = checked(&bytes, &origin, &pin).map_err(failed)?;
    match &args.output {
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(bytes)
                .and_then(|()| stdout.flush())
                .map_err(|e| failed(format!("cannot write the kubeconfig to stdout: {e}")))?;
        }
        Some(path) => write_private(path, bytes)?,
    }
    eprintln!(
        "the admin kubeconfig of {shown} (server {}), from {origin}, checked against the server and CA the controller pinned",
        pin.server
    );
    Ok(ExitStatus::Success)
}

/// CAPI's kubeconfig Secret in the objects namespace, if it is there.
async fn from_capi_secret(
    writer: &KubeWriter,
    location: &ClusterLocation,
) -> Result<Option<Vec<u8>>, CommandError> {
    let name = format!("{}-kubeconfig", location.cluster);
    let shown = format!("Secret {}/{name}", location.objects_namespace);
    let Some(secret) = writer
        .namespaced::<Secret>(&location.objects_namespace)
        .get(&name)
        .await
        .map_err(|e| failed(format!("cannot read {shown}: {e}")))?
    else {
        return Ok(None);
    };
    secret
        .data
        .and_then(|mut d| d.remove("value"))
        .map(|v| Some(v.0))
        .ok_or_else(|| failed(format!("{shown} has no key value")))
}

async fn from_export(
    writer: &KubeWriter,
    location: &ClusterLocation,
) -> Result<Vec<u8>, CommandError> {
    let shown = export_secret_shown(location);
    let bytes = fetch_export(writer, location)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let backup = export_backup(&bytes, location, &shown).map_err(|e| failed(e.to_string()))?;
    let name = format!("{}-kubeconfig", location.cluster);
    backup
        .objects
        .iter()
        .find(|(entry, _)| entry.kind == "Secret" && entry.name == name)
        .and_then(|(_, object)| kubeconfig_in_object(&object.json))
        .ok_or_else(|| failed(format!("{shown} holds no Secret {name} with a key value")))
}

/// Writes `bytes` to `path` with mode 0600, whole or not at all.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CommandError> {
    let io = |action: &'static str| {
        move |source| CommandError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".kubeconfig-")
        .tempfile_in(directory)
        .map_err(io("create a temporary file beside"))?;
    file.write_all(bytes).map_err(io("write"))?;
    // tempfile creates it 0600 already; said here because the kubeconfig is a credential.
    file.persist(path).map_err(|e| io("replace")(e.error))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_object_of_the_export_gives_its_value() {
        let object = json!({ "data": { "value": "YXBpVmVyc2lvbjogdjE=" } });
        assert_eq!(kubeconfig_in_object(&object).unwrap(), b"apiVersion: v1");
        assert!(kubeconfig_in_object(&json!({ "data": {} })).is_none());
        assert!(kubeconfig_in_object(&json!({ "data": { "value": "%%%" } })).is_none());
    }

    #[test]
    fn what_is_not_a_kubeconfig_strata_uses_is_refused_naming_where_it_came_from() {
        let pin = WorkloadPin {
            server: "https://10.0.0.1:6443".into(),
            ca_sha256: "ab".into(),
        };
        let error = checked(b"not: [a kubeconfig", "Secret ns/demo-kubeconfig", &pin).unwrap_err();
        assert!(
            error.starts_with("the kubeconfig in Secret ns/demo-kubeconfig is not one Strata uses")
                && error.ends_with("nothing was written"),
            "{error}"
        );
    }

    /// A kubeconfig as CAPI writes it, for `server`, with a new CA and a token.
    fn kubeconfig(server: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: site\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: admin\n  user:\n    token: abc.def.ghi\ncontexts:\n- name: admin@site\n  context:\n    cluster: site\n    user: admin\ncurrent-context: admin@site\n",
            b64(&ca.pem())
        );
        let fingerprint = parse_bytes(text.as_bytes()).unwrap().ca_fingerprint();
        (text, fingerprint)
    }

    #[test]
    fn a_kubeconfig_naming_another_server_or_ca_than_the_pin_is_refused() {
        let (site, ca) = kubeconfig("https://10.0.0.5:6443");
        let pin = WorkloadPin {
            server: "https://10.0.0.5:6443".into(),
            ca_sha256: ca.clone(),
        };
        assert_eq!(
            checked(site.as_bytes(), "the export", &pin).unwrap(),
            site.as_bytes()
        );
        // A hostile site's export: its own server, or its own CA for the pinned server.
        let (elsewhere, _) = kubeconfig("https://attacker.example:6443");
        let error = checked(elsewhere.as_bytes(), "the export", &pin).unwrap_err();
        assert!(
            error.contains("names server https://attacker.example:6443")
                && error.contains("pinned to server https://10.0.0.5:6443")
                && error.ends_with("nothing was written"),
            "{error}"
        );
        let (other_ca, _) = kubeconfig("https://10.0.0.5:6443");
        let error = checked(other_ca.as_bytes(), "the export", &pin).unwrap_err();
        assert!(
            error.contains(&format!(
                "pinned to server https://10.0.0.5:6443 with CA sha256 {ca}"
            )),
            "{error}"
        );
    }

    #[test]
    fn the_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wl.kubeconfig");
        std::fs::write(&path, "old").unwrap();
        write_private(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
