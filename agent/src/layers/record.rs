//! What the agent keeps in its own cluster about the layers, in the ConfigMap
//! `strata-system/strata-layers`: each layer's state (what `status.layers` says, readable
//! at the site with the management cluster unreachable) and what is installed (so that a
//! restarted agent knows what to uninstall when a layer leaves the stack, and which
//! layers it need not install again).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strata_shared::cluster::{LayerPhase, LayerState};
use strata_shared::contracts::names::{AGENT_NAMESPACE, LAYER_STATE_CONFIG_MAP};
use strata_shared::kube_writer::{KubeWriter, WriteError};
use strata_shared::revision::RevisionLayer;

const STATES_KEY: &str = "layers.json";
const INSTALLED_KEY: &str = "installed.json";

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("ConfigMap {AGENT_NAMESPACE}/{LAYER_STATE_CONFIG_MAP}: {0}")]
    Api(#[source] WriteError),
    #[error("ConfigMap {AGENT_NAMESPACE}/{LAYER_STATE_CONFIG_MAP}, key {key:?}: {reason}")]
    Malformed { key: &'static str, reason: String },
}

/// One Helm release of a chart layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum InstalledKind {
    /// Manifests: the layer's ApplySet (`strata-layer-<name>`).
    Manifests,
    /// Charts (and maybe manifests too): the releases.
    Charts { releases: Vec<Release> },
}

/// A layer the agent applied (or started to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledLayer {
    pub name: String,
    pub version: String,
    pub digest: String,
    /// [`install_digest`] of what was installed.
    pub install_digest: String,
    pub kind: InstalledKind,
    /// False from the moment an install starts until it finished: an agent killed in
    /// between installs it again.
    pub complete: bool,
}

/// The pack, its values and its secrets' digest: a layer whose install digest is
/// unchanged need not be installed again.
pub fn install_digest(layer: &RevisionLayer) -> String {
    let mut hash = Sha256::new();
    for part in [
        layer.digest.as_str(),
        layer.values.as_str(),
        layer.secrets_digest.as_deref().unwrap_or_default(),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// What a layer is recorded as while an install that creates or upgrades `releases` runs:
/// every release it had (`before`) and every one it is about to have, so that whichever of
/// them exists when the agent is killed is uninstalled if the layer leaves the stack (an
/// uninstall of one that was never created finds nothing, which is not an error).
pub fn planned_kind(before: Option<&InstalledKind>, releases: &[Release]) -> InstalledKind {
    let mut all = match before {
        Some(InstalledKind::Charts { releases }) => releases.clone(),
        Some(InstalledKind::Manifests) | None => Vec::new(),
    };
    for release in releases {
        if !all.contains(release) {
            all.push(release.clone());
        }
    }
    if all.is_empty() {
        InstalledKind::Manifests
    } else {
        InstalledKind::Charts { releases: all }
    }
}

/// The record as kept in the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerRecord {
    pub states: Vec<LayerState>,
    pub installed: Vec<InstalledLayer>,
}

impl LayerRecord {
    pub fn installed(&self, name: &str) -> Option<&InstalledLayer> {
        self.installed.iter().find(|i| i.name == name)
    }

    /// Sets `layer`'s entry, keeping the order layers were first installed in (uninstall
    /// goes in reverse).
    pub fn set_installed(&mut self, layer: InstalledLayer) {
        match self.installed.iter_mut().find(|i| i.name == layer.name) {
            Some(entry) => *entry = layer,
            None => self.installed.push(layer),
        }
    }

    /// Records that `name` is made of `kind` (its other fields kept); returns whether that
    /// changed the record. A layer not in it is left out.
    pub fn set_kind(&mut self, name: &str, kind: InstalledKind) -> bool {
        match self.installed.iter_mut().find(|i| i.name == name) {
            Some(entry) if entry.kind != kind => {
                entry.kind = kind;
                true
            }
            _ => false,
        }
    }

    pub fn state_of(&self, name: &str) -> Option<LayerPhase> {
        self.states.iter().find(|s| s.name == name).map(|s| s.state)
    }

    pub fn add_corrections(&mut self, name: &str, count: i64) {
        if let Some(state) = self.states.iter_mut().find(|s| s.name == name) {
            state.drift_corrections += count;
        }
    }

    /// Sets a layer's state (its transition time moves only when the phase does); returns
    /// whether anything changed.
    pub fn set_state(
        &mut self,
        layer: &RevisionLayer,
        phase: LayerPhase,
        message: Option<String>,
    ) -> bool {
        let states = &mut self.states;
        let index = match states.iter().position(|s| s.name == layer.name) {
            Some(index) => index,
            None => {
                states.push(LayerState {
                    name: layer.name.clone(),
                    version: layer.version.clone(),
                    digest: Some(layer.digest.clone()),
                    state: phase,
                    message: None,
                    last_transition_time: None,
                    drift_corrections: 0,
                });
                states.len() - 1
            }
        };
        let entry = &mut states[index];
        let before = entry.clone();
        if entry.state != phase || entry.last_transition_time.is_none() {
            entry.last_transition_time = Some(Time(Timestamp::now()));
        }
        entry.state = phase;
        entry.version = layer.version.clone();
        entry.digest = Some(layer.digest.clone());
        entry.message = message;
        *entry != before
    }

    pub fn forget(&mut self, name: &str) {
        self.installed.retain(|i| i.name != name);
    }

    /// Reads it from the cluster; an absent ConfigMap is an empty record. Anyone with
    /// rights in `strata-system` can write it: a key that does not parse is said and
    /// started afresh (the next save rewrites it), rather than holding every layer back.
    pub async fn load(workload: &KubeWriter) -> Result<LayerRecord, RecordError> {
        let found = workload
            .namespaced::<ConfigMap>(AGENT_NAMESPACE)
            .get(LAYER_STATE_CONFIG_MAP)
            .await
            .map_err(RecordError::Api)?;
        Ok(LayerRecord::from_data(
            &found.and_then(|c| c.data).unwrap_or_default(),
        ))
    }

    fn from_data(data: &BTreeMap<String, String>) -> LayerRecord {
        fn or_empty<T: Default>(read: Result<T, RecordError>) -> T {
            read.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the layers' record is not readable; starting it afresh (layers it listed are not uninstalled if they left the stack)");
                T::default()
            })
        }
        LayerRecord {
            states: or_empty(parse(data, STATES_KEY)),
            installed: or_empty(parse(data, INSTALLED_KEY)),
        }
    }

    pub async fn save(&self, workload: &KubeWriter) -> Result<(), RecordError> {
        let map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(LAYER_STATE_CONFIG_MAP.into()),
                namespace: Some(AGENT_NAMESPACE.into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([
                (STATES_KEY.to_string(), json(&self.states)),
                (INSTALLED_KEY.to_string(), json(&self.installed)),
            ])),
            ..ConfigMap::default()
        };
        workload.apply(&map).await.map_err(RecordError::Api)?;
        Ok(())
    }
}

fn parse<T: for<'de> Deserialize<'de> + Default>(
    data: &BTreeMap<String, String>,
    key: &'static str,
) -> Result<T, RecordError> {
    match data.get(key) {
        None => Ok(T::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| RecordError::Malformed {
            key,
            reason: e.to_string(),
        }),
    }
}

/// Lists of plain values always serialize.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn layer(values: &str) -> RevisionLayer {
        RevisionLayer {
            order: 3,
            name: "cni-calico".into(),
            version: "3.19.0".into(),
            layer: "cni".into(),
            registry: None,
            digest: "sha256:aa".into(),
            values: values.into(),
            secrets_digest: None,
        }
    }

    #[test]
    fn the_install_digest_changes_with_the_values_and_the_secrets() {
        let a = install_digest(&layer("a: 1"));
        assert_eq!(a, install_digest(&layer("a: 1")));
        assert_ne!(a, install_digest(&layer("a: 2")));
        let mut secret = layer("a: 1");
        secret.secrets_digest = Some("sha256:bb".into());
        assert_ne!(a, install_digest(&secret));
    }

    #[test]
    fn a_record_that_does_not_parse_is_named_and_started_afresh() {
        let data = BTreeMap::from([
            (STATES_KEY.to_string(), "[{\"name\": 3}]".to_string()),
            (INSTALLED_KEY.to_string(), "[]".to_string()),
        ]);
        let error = parse::<Vec<LayerState>>(&data, STATES_KEY)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "ConfigMap strata-system/strata-layers, key \"layers.json\": invalid type"
            ),
            "{error}"
        );
        assert_eq!(LayerRecord::from_data(&data), LayerRecord::default());
    }

    fn release(namespace: &str, name: &str) -> Release {
        Release {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_chart_layers_releases_are_named_before_they_are_installed() {
        // First install: the record goes from "manifests, nothing yet" to the releases.
        let first = planned_kind(None, &[release("web", "hello-web")]);
        assert_eq!(
            first,
            InstalledKind::Charts {
                releases: vec![release("web", "hello-web")]
            }
        );
        let mut record = LayerRecord::default();
        record.set_installed(InstalledLayer {
            name: "hello".into(),
            version: "1".into(),
            digest: "d".into(),
            install_digest: "i".into(),
            kind: InstalledKind::Manifests,
            complete: false,
        });
        assert!(record.set_kind("hello", first.clone()));
        assert!(!record.set_kind("hello", first.clone()), "unchanged");
        assert!(!record.set_kind("absent", first.clone()));
        // Read back by a restarted agent, the entry still names the release to uninstall.
        let json = serde_json::to_string(&record.installed).unwrap();
        let read: Vec<InstalledLayer> = serde_json::from_str(&json).unwrap();
        assert_eq!(read[0].kind, first);
        assert!(!read[0].complete);
    }

    #[test]
    fn a_new_version_keeps_the_releases_of_the_old_one_recorded_while_it_installs() {
        let before = InstalledKind::Charts {
            releases: vec![release("web", "a"), release("web", "b")],
        };
        assert_eq!(
            planned_kind(Some(&before), &[release("web", "b"), release("api", "c")]),
            InstalledKind::Charts {
                releases: vec![
                    release("web", "a"),
                    release("web", "b"),
                    release("api", "c")
                ]
            }
        );
        // No charts: as it was.
        assert_eq!(planned_kind(Some(&before), &[]), before);
        assert_eq!(
            planned_kind(Some(&InstalledKind::Manifests), &[]),
            InstalledKind::Manifests
        );
        assert_eq!(planned_kind(None, &[]), InstalledKind::Manifests);
    }

    #[test]
    fn installed_layers_keep_their_first_order() {
        let entry = |name: &str, complete| InstalledLayer {
            name: name.into(),
            version: "1".into(),
            digest: "d".into(),
            install_digest: "i".into(),
            kind: InstalledKind::Manifests,
            complete,
        };
        let mut record = LayerRecord::default();
        record.set_installed(entry("cni", false));
        record.set_installed(entry("csi", true));
        record.set_installed(entry("cni", true));
        let names: Vec<_> = record
            .installed
            .iter()
            .map(|i| (i.name.as_str(), i.complete))
            .collect();
        assert_eq!(names, [("cni", true), ("csi", true)]);
        record.forget("cni");
        assert_eq!(record.installed.len(), 1);
        let json = serde_json::to_string(&record.installed).unwrap();
        assert_eq!(
            serde_json::from_str::<Vec<InstalledLayer>>(&json).unwrap(),
            record.installed
        );
    }
}
