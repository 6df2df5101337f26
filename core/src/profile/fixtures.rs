//! Test fixtures: an in-memory pack source and builders for profiles and clusters, so
//! rule and composition tests state their inputs in a few lines.

use std::collections::BTreeMap;

use crate::catalog::{PackSource, ResolveError, ResolvedPack};
use crate::cluster::{
    ClusterCloud, ControlPlanePool, LayerOverride, MachineShape, NodePools, ProfileRef, WorkerPool,
    WorkloadCluster, WorkloadClusterSpec,
};
use crate::pack::manifest::parse_manifest;
use crate::pack::presets::{enabled_presets_annotation, parse_presets};
use crate::pack::values_schema::parse_schema;
use crate::pack::{PackContent, ValueRules};
use crate::profile::{ClusterProfile, ClusterProfileSpec, ProfileCloud, ProfileLayer, ProfileType};

/// Packs keyed by `name:version`.
#[derive(Default)]
pub struct MemorySource {
    packs: BTreeMap<String, ResolvedPack>,
}

impl MemorySource {
    /// Adds a pack from pack.json text and values.yaml text.
    pub fn with(self, pack_json: &str, values: &str) -> Self {
        self.insert(pack_json, values, ValueRules::default())
    }

    fn insert(mut self, pack_json: &str, values: &str, rules: ValueRules) -> Self {
        let (manifest, findings) = parse_manifest(pack_json);
        let Some(manifest) = manifest else {
            panic!("fixture pack.json is invalid: {findings:?}\n{pack_json}");
        };
        let values: serde_yaml::Value =
            serde_yaml::from_str(values).unwrap_or_else(|e| panic!("fixture values: {e}"));
        let key = format!("{}:{}", manifest.name, manifest.version);
        self.packs.insert(
            key.clone(),
            ResolvedPack {
                manifest,
                values,
                rules,
                digest: format!("sha256:{key}"),
                content: PackContent::Manifests,
                origin: "memory".into(),
            },
        );
        self
    }

    /// Adds a pack with a schema.yaml and a presets.yaml; the presets its values enable
    /// come from the values' opening `enabled-presets` comment.
    pub fn with_rules(self, pack_json: &str, values: &str, schema: &str, presets: &str) -> Self {
        let (schema, findings) = parse_schema(schema);
        assert!(!findings.has_errors(), "fixture schema.yaml: {findings:?}");
        let (presets, findings) = parse_presets(presets);
        assert!(!findings.has_errors(), "fixture presets.yaml: {findings:?}");
        let enabled_presets = enabled_presets_annotation(values)
            .map(|a| a.presets)
            .unwrap_or_default();
        let rules = ValueRules {
            schema,
            presets,
            enabled_presets,
        };
        self.insert(pack_json, values, rules)
    }

    /// Adds a pack loaded from a folder, as a local catalog would resolve it.
    pub fn loaded(mut self, pack: &crate::pack::Pack) -> Self {
        let key = pack.reference();
        let resolved = ResolvedPack::of(
            pack,
            format!("sha256:{key}"),
            pack.dir.display().to_string(),
        );
        self.packs.insert(key, resolved);
        self
    }

    /// Adds a pack with just a name, version, layer and extra pack.json fields.
    pub fn pack(self, name: &str, version: &str, layer: &str, extra: &str) -> Self {
        let addon = if layer == "addon" {
            r#", "addonType": "system app""#
        } else {
            ""
        };
        let json = format!(
            r#"{{"name": "{name}", "displayName": "{name}", "version": "{version}", "layer": "{layer}"{addon}{extra}}}"#
        );
        self.with(&json, "{}")
    }

    /// The four core layers, for every cloud.
    pub fn core() -> Self {
        MemorySource::default()
            .pack("ubuntu", "22.04", "os", r#", "cloudTypes": ["all"]"#)
            .pack("kubernetes", "1.20.2", "k8s", "")
            .pack("calico", "3.19.0", "cni", "")
            .pack("hostpath", "1.7.3", "csi", "")
    }
}

impl PackSource for MemorySource {
    fn resolve(
        &self,
        name: &str,
        version: &str,
        _registry: Option<&str>,
    ) -> Result<ResolvedPack, ResolveError> {
        self.packs
            .get(&format!("{name}:{version}"))
            .cloned()
            .ok_or_else(|| ResolveError::UnknownVersion {
                name: name.into(),
                version: version.into(),
                source_name: "memory".into(),
                available: self.packs.keys().cloned().collect(),
            })
    }
}

pub fn layer(reference: &str) -> ProfileLayer {
    let (name, version) = reference.split_once(':').unwrap_or((reference, "1.0.0"));
    ProfileLayer {
        name: name.into(),
        version: version.into(),
        registry: None,
        values: None,
        presets: None,
        priority: None,
    }
}

pub fn profile(
    name: &str,
    profile_type: ProfileType,
    cloud: ProfileCloud,
    layers: Vec<ProfileLayer>,
) -> ClusterProfile {
    ClusterProfile::new(
        name,
        ClusterProfileSpec {
            name: None,
            profile_type,
            version: "1.0.0".into(),
            cloud_type: cloud,
            description: None,
            layers,
            rollout: None,
        },
    )
}

pub fn core_layers() -> Vec<ProfileLayer> {
    vec![
        layer("ubuntu:22.04"),
        layer("kubernetes:1.20.2"),
        layer("calico:3.19.0"),
        layer("hostpath:1.7.3"),
    ]
}

pub fn machine(cpus: u32, memory_mib: u64, disk_gib: u64) -> MachineShape {
    MachineShape {
        cpus: Some(cpus),
        memory_mib: Some(memory_mib),
        disk_gib: Some(disk_gib),
        ..MachineShape::default()
    }
}

pub fn cluster(cloud: ClusterCloud, profiles: &[&str]) -> WorkloadCluster {
    WorkloadCluster::new(
        "demo",
        WorkloadClusterSpec {
            cloud_type: cloud,
            profiles: profiles
                .iter()
                .map(|name| ProfileRef {
                    name: (*name).into(),
                    version: "1.0.0".into(),
                })
                .collect(),
            node_pools: NodePools {
                control_plane: ControlPlanePool {
                    count: 1,
                    machine: machine(4, 8192, 80),
                    health_check: None,
                    remediation: None,
                },
                workers: vec![WorkerPool {
                    name: "general".into(),
                    count: 2,
                    machine: machine(8, 16384, 100),
                    health_check: None,
                    rollout: None,
                }],
            },
            overrides: Vec::<LayerOverride>::new(),
            certificates_expiry_days: None,
            deletion_policy: Default::default(),
            rollback_to: None,
            cloud_account_ref: None,
            cluster_network: None,
            vsphere: None,
            aws: None,
            azure: None,
        },
    )
}
