//! The references in an object's spec to objects it does not own: machine templates,
//! bootstrap config templates, the infrastructure cluster, identities and their Secrets.
//! Owner references alone miss them (a template is referenced by its MachineDeployment,
//! not owned), and a cluster moved without them could not create a single machine.

use serde_json::Value;

use super::objects::{SourceObject, group_of};
use crate::contracts::capi::{
    AWS_CLUSTER_STATIC_IDENTITY, CLUSTER_CLASS, VSPHERE_CLUSTER_IDENTITY,
};
use crate::contracts::labels::SECRET_NAMESPACE_ANNOTATION;

/// A reference read from a spec, not yet resolved to an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SpecRef {
    /// Where it was found, e.g. `spec.infrastructureRef`.
    pub field: &'static str,
    pub group: String,
    pub kind: String,
    pub name: String,
    /// Only when the reference names a namespace explicitly.
    pub namespace: Option<String>,
    /// Identities may be cluster-scoped (`AWSClusterStaticIdentity`,
    /// `VSphereClusterIdentity`); other references stay within the namespace.
    pub may_be_cluster_scoped: bool,
    /// The reference names the provider identity the referrer uses.
    pub identity: bool,
    /// The Secret of a cluster-scoped identity, in the provider's namespace: the one
    /// reference that may lead out of the namespace being moved.
    pub crosses_namespace: bool,
}

struct RefField {
    pointer: &'static str,
    field: &'static str,
    /// Group and kind of fields that hold only a name (and maybe a namespace).
    implied: Option<(&'static str, &'static str)>,
    may_be_cluster_scoped: bool,
    identity: bool,
    /// Read only on objects of these kinds (fields whose meaning depends on the kind).
    only_on: &'static [&'static str],
    /// A Secret in the namespace the referrer's [`SECRET_NAMESPACE_ANNOTATION`] names.
    provider_secret: bool,
}

const fn field(pointer: &'static str, field: &'static str) -> RefField {
    RefField {
        pointer,
        field,
        implied: None,
        may_be_cluster_scoped: false,
        identity: false,
        only_on: &[],
        provider_secret: false,
    }
}

const fn named(
    pointer: &'static str,
    field: &'static str,
    group: &'static str,
    kind: &'static str,
) -> RefField {
    RefField {
        implied: Some((group, kind)),
        ..self::field(pointer, field)
    }
}

const REF_FIELDS: &[RefField] = &[
    field("/spec/infrastructureRef", "spec.infrastructureRef"),
    field("/spec/controlPlaneRef", "spec.controlPlaneRef"),
    // KubeadmControlPlane: v1beta2 nests the ref one level deeper than v1beta1.
    field(
        "/spec/machineTemplate/spec/infrastructureRef",
        "spec.machineTemplate.spec.infrastructureRef",
    ),
    field(
        "/spec/machineTemplate/infrastructureRef",
        "spec.machineTemplate.infrastructureRef",
    ),
    field(
        "/spec/template/spec/infrastructureRef",
        "spec.template.spec.infrastructureRef",
    ),
    field(
        "/spec/template/spec/bootstrap/configRef",
        "spec.template.spec.bootstrap.configRef",
    ),
    field("/spec/bootstrap/configRef", "spec.bootstrap.configRef"),
    named(
        "/spec/bootstrap/dataSecretName",
        "spec.bootstrap.dataSecretName",
        "",
        "Secret",
    ),
    RefField {
        may_be_cluster_scoped: true,
        identity: true,
        ..field("/spec/identityRef", "spec.identityRef")
    },
    // The Secrets of cluster-scoped identities, a name in the provider's namespace.
    RefField {
        only_on: &[VSPHERE_CLUSTER_IDENTITY.kind],
        provider_secret: true,
        ..named("/spec/secretName", "spec.secretName", "", "Secret")
    },
    RefField {
        only_on: &[AWS_CLUSTER_STATIC_IDENTITY.kind],
        provider_secret: true,
        ..named("/spec/secretRef", "spec.secretRef", "", "Secret")
    },
    // AzureClusterIdentity's credentials: without them the identity is useless.
    named("/spec/clientSecret", "spec.clientSecret", "", "Secret"),
    // A topology-managed Cluster needs its ClusterClass (v1beta2 `classRef`, v1beta1 `class`).
    named(
        "/spec/topology/classRef",
        "spec.topology.classRef",
        CLUSTER_CLASS.group,
        CLUSTER_CLASS.kind,
    ),
    named(
        "/spec/topology/class",
        "spec.topology.class",
        CLUSTER_CLASS.group,
        CLUSTER_CLASS.kind,
    ),
];

/// Every reference in `object`'s spec at the fields Cluster API and its providers use.
pub(super) fn spec_refs(object: &SourceObject) -> Vec<SpecRef> {
    REF_FIELDS
        .iter()
        .filter(|ref_field| {
            ref_field.only_on.is_empty() || ref_field.only_on.contains(&object.kind.kind.as_str())
        })
        .filter_map(|ref_field| {
            let value = object.json.pointer(ref_field.pointer)?;
            read_ref(ref_field, value, object)
        })
        .collect()
}

fn read_ref(ref_field: &RefField, value: &Value, referrer: &SourceObject) -> Option<SpecRef> {
    let make = |group: &str, kind: &str, name: &str, namespace: Option<&str>| SpecRef {
        field: ref_field.field,
        group: group.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
        may_be_cluster_scoped: ref_field.may_be_cluster_scoped,
        identity: ref_field.identity,
        crosses_namespace: ref_field.provider_secret,
    };
    if let Some(name) = value.as_str() {
        let (group, kind) = ref_field.implied?;
        // Without the annotation the Secret's namespace is unknown: the reference is kept
        // without one, so that the plan reports it instead of guessing.
        let namespace = ref_field
            .provider_secret
            .then(|| referrer.annotation(SECRET_NAMESPACE_ANNOTATION))
            .flatten();
        return (!name.is_empty()).then(|| make(group, kind, name, namespace));
    }
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    let name = text("name").filter(|name| !name.is_empty())?;
    let namespace = text("namespace").filter(|namespace| !namespace.is_empty());
    let (implied_group, implied_kind) = ref_field.implied.unzip();
    let kind = text("kind").or(implied_kind)?;
    // v1beta2 refs carry `apiGroup`, v1beta1 refs `apiVersion`; a v1beta2 identityRef
    // carries neither and means the referrer's own (infrastructure) group.
    let group = text("apiGroup")
        .or_else(|| text("apiVersion").map(group_of))
        .or(implied_group)
        .unwrap_or(referrer.kind.group());
    Some(make(group, kind, name, namespace))
}
