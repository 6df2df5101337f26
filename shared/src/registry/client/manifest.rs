//! Manifests: read up to a size limit, their digest computed from the bytes read, and
//! checked to be one pack manifest.

use oci_client::Reference;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest,
};

use super::{PackRegistryClient, TITLE_ANNOTATION};
use crate::pack::archive::sha256_digest;
use crate::registry::failure::Failure;
use crate::registry::transport::Scope;

/// What a manifest request accepts: OCI and Docker manifests and their lists (a list is
/// reported as "not a pack" rather than refused by the registry as not acceptable).
pub(super) const ACCEPTED: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";
const DIGEST_HEADER: &str = "docker-content-digest";

/// The tag of a reference Strata built (every one has a tag).
pub(super) fn tag_of(reference: &Reference) -> &str {
    reference.tag().unwrap_or_default()
}

impl PackRegistryClient {
    /// The manifest `reference` names, as read, and its digest (one attempt).
    pub(super) async fn manifest_once(
        &self,
        reference: &Reference,
    ) -> Result<(Vec<u8>, String), Failure> {
        let repository = reference.repository();
        let path = format!("/v2/{repository}/manifests/{}", tag_of(reference));
        let response = self
            .transport
            .get(&path, &[], Some(ACCEPTED), Scope::Pull(repository), true)
            .await?;
        let announced = response
            .headers()
            .get(DIGEST_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = self
            .transport
            .read_limited(
                response,
                self.options.limits.manifest_bytes,
                "manifest",
                &reference.whole(),
            )
            .await?;
        let digest = sha256_digest(&body);
        if let Some(announced) = announced
            && announced.starts_with("sha256:")
            && announced != digest
        {
            return Err(Failure::Mismatch {
                expected: announced,
                found: digest,
            });
        }
        Ok((body, digest))
    }
}

/// The image manifest in `body`, or why it is not one pack manifest.
pub(super) fn parse_pack_manifest(body: &[u8]) -> Result<OciImageManifest, Failure> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Failure::Protocol(format!("the manifest is not JSON: {e}")))?;
    match value
        .get("schemaVersion")
        .and_then(serde_json::Value::as_u64)
    {
        Some(2) => {}
        Some(version) => {
            return Err(Failure::NotAPack(format!(
                "its manifest has schema version {version}; expected 2"
            )));
        }
        None => {
            return Err(Failure::Protocol(
                "the manifest has no numeric schemaVersion".to_owned(),
            ));
        }
    }
    let media_type = value.get("mediaType").and_then(serde_json::Value::as_str);
    let is_index = match media_type {
        Some(IMAGE_MANIFEST_LIST_MEDIA_TYPE | OCI_IMAGE_INDEX_MEDIA_TYPE) => true,
        Some(IMAGE_MANIFEST_MEDIA_TYPE | OCI_IMAGE_MEDIA_TYPE) => false,
        Some(other) => {
            return Err(Failure::NotAPack(format!(
                "its manifest has media type {other:?}; expected an OCI image manifest"
            )));
        }
        None => value.get("manifests").is_some() && value.get("layers").is_none(),
    };
    if is_index {
        return Err(Failure::NotAPack(
            "it is an image index (a list of manifests); expected one pack manifest".to_owned(),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| Failure::Protocol(format!("the manifest cannot be read: {e}")))
}

/// Why a manifest holds no usable pack layer; put after the reference in
/// [`super::RegistryError::NotAPack`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum PackLayerError {
    #[error("its manifest has no layers")]
    NoLayers,
    #[error(
        "none of its {count} layers is titled *.tar.gz (titles: {}); expected one pack archive",
        titles.join(", ")
    )]
    NoneTitled { count: usize, titles: Vec<String> },
    #[error(
        "{} layers are titled *.tar.gz ({}); expected exactly one pack archive",
        titles.len(),
        titles.join(", ")
    )]
    SeveralTitled { titles: Vec<String> },
    #[error("its pack layer digest {digest:?} is not sha256:<64 hex digits>")]
    DigestNotSha256 { digest: String },
    #[error("its pack layer has a negative size {size}")]
    NegativeSize { size: i64 },
}

/// The pack layer of a manifest and its file name: the layer titled `*.tar.gz`, or the
/// only layer.
pub(super) fn pack_layer(
    manifest: &OciImageManifest,
) -> Result<(&OciDescriptor, String), PackLayerError> {
    let title = |layer: &OciDescriptor| {
        layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(TITLE_ANNOTATION))
            .cloned()
    };
    let candidates: Vec<&OciDescriptor> = manifest
        .layers
        .iter()
        .filter(|layer| title(layer).is_some_and(|t| t.ends_with(".tar.gz")))
        .collect();
    let layer = match (candidates.as_slice(), manifest.layers.as_slice()) {
        ([only], _) => *only,
        ([], []) => return Err(PackLayerError::NoLayers),
        ([], [only]) => only,
        ([], layers) => {
            let titles: Vec<String> = layers
                .iter()
                .map(|l| title(l).unwrap_or_else(|| "(untitled)".to_owned()))
                .collect();
            return Err(PackLayerError::NoneTitled {
                count: layers.len(),
                titles,
            });
        }
        (several, _) => {
            let titles: Vec<String> = several.iter().filter_map(|l| title(l)).collect();
            return Err(PackLayerError::SeveralTitled { titles });
        }
    };
    if !is_sha256_digest(&layer.digest) {
        return Err(PackLayerError::DigestNotSha256 {
            digest: layer.digest.clone(),
        });
    }
    if layer.size < 0 {
        return Err(PackLayerError::NegativeSize { size: layer.size });
    }
    let file_name = title(layer).unwrap_or_else(|| format!("{}.tar.gz", layer.digest));
    Ok((layer, file_name))
}

pub(super) fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;

    use super::*;
    use crate::registry::client::PACK_LAYER_MEDIA_TYPE;

    fn descriptor(title: Option<&str>, digest_byte: char) -> OciDescriptor {
        OciDescriptor {
            media_type: PACK_LAYER_MEDIA_TYPE.into(),
            digest: format!("sha256:{}", digest_byte.to_string().repeat(64)),
            size: 10,
            annotations: title
                .map(|t| BTreeMap::from([(TITLE_ANNOTATION.to_owned(), t.to_owned())])),
            ..OciDescriptor::default()
        }
    }

    fn manifest(layers: Vec<OciDescriptor>) -> OciImageManifest {
        OciImageManifest {
            schema_version: 2,
            media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
            config: OciDescriptor::default(),
            layers,
            subject: None,
            artifact_type: None,
            annotations: None,
        }
    }

    #[test]
    fn picks_the_pack_layer() {
        let m = manifest(vec![
            descriptor(Some("README.md"), 'a'),
            descriptor(Some("p-1.tar.gz"), 'b'),
        ]);
        let (layer, name) = pack_layer(&m).unwrap();
        assert!(layer.digest.ends_with('b'));
        assert_eq!(name, "p-1.tar.gz");

        let m = manifest(vec![descriptor(None, 'c')]);
        let (layer, name) = pack_layer(&m).unwrap();
        assert!(layer.digest.ends_with('c'));
        assert!(name.ends_with(".tar.gz"));

        let m = manifest(vec![
            descriptor(Some("a.tar.gz"), 'a'),
            descriptor(Some("b.tar.gz"), 'b'),
        ]);
        let reason = pack_layer(&m).unwrap_err();
        assert!(
            reason.to_string().contains("2 layers are titled"),
            "{reason}"
        );

        let m = manifest(vec![descriptor(Some("a.txt"), 'a'), descriptor(None, 'b')]);
        let reason = pack_layer(&m).unwrap_err();
        assert!(
            reason.to_string().contains("none of its 2 layers"),
            "{reason}"
        );

        let reason = pack_layer(&manifest(vec![])).unwrap_err();
        assert!(reason.to_string().contains("no layers"), "{reason}");

        let mut bad = descriptor(Some("p.tar.gz"), 'a');
        bad.digest = "sha512:00".into();
        let reason = pack_layer(&manifest(vec![bad])).unwrap_err();
        assert!(reason.to_string().contains("not sha256"), "{reason}");
    }

    #[test]
    fn parses_pack_manifests_and_names_what_else_it_found() {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": {"mediaType": "application/vnd.unknown.config.v1+json", "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
            "layers": [],
        });
        let parsed = parse_pack_manifest(manifest.to_string().as_bytes()).unwrap();
        assert!(parsed.layers.is_empty());

        let not_a_pack =
            |body: serde_json::Value| match parse_pack_manifest(body.to_string().as_bytes()) {
                Err(Failure::NotAPack(reason)) => reason,
                other => panic!("expected NotAPack, got {other:?}"),
            };
        assert!(not_a_pack(serde_json::json!({"schemaVersion": 2, "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE, "manifests": []})).contains("index"));
        assert!(
            not_a_pack(serde_json::json!({"schemaVersion": 2, "manifests": []})).contains("index")
        );
        assert!(
            not_a_pack(serde_json::json!({"schemaVersion": 1, "fsLayers": []}))
                .contains("schema version 1")
        );
        assert!(
            not_a_pack(serde_json::json!({"schemaVersion": 2, "mediaType": "text/plain"}))
                .contains("text/plain")
        );
        assert!(matches!(
            parse_pack_manifest(b"<html>"),
            Err(Failure::Protocol(_))
        ));
    }
}
