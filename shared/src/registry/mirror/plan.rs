//! What a mirror copies, decided before anything is copied: every pack of the profiles
//! (each once, pinned to the manifest digest it was resolved to) and every image their
//! packs list (each once, however many packs list it), each with where it is read from and
//! where it goes. Pure: the registries are only asked when the plan is carried out.

use crate::registry::address::{AddressError, RegistryAddress};
use crate::registry::mirror::image_path::{ImageName, ImagePathError, parse_image};

/// A pack as resolved in the source registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPackInput {
    pub name: String,
    pub version: String,
    /// The manifest digest the tag pointed to when the pack was resolved and validated.
    pub manifest_digest: String,
    /// `pack.content.images`.
    pub images: Vec<String>,
}

/// Where the images come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageOrigin {
    /// Each from the registry its reference names.
    OwnRegistries,
    /// All from one registry holding them under their mirror paths below its base (another
    /// mirror, or a staging registry).
    Registry(RegistryAddress),
}

/// One pack to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackCopy {
    pub name: String,
    pub version: String,
    pub source_repository: String,
    /// The tag, the same at both ends (the version, as a tag).
    pub tag: String,
    pub manifest_digest: String,
    pub target_repository: String,
}

/// One image to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCopy {
    /// As the first pack listing it spells it.
    pub listed_as: String,
    pub image: ImageName,
    /// `name:version` of every pack listing it.
    pub listed_by: Vec<String>,
    /// `host[:port]` to read it from.
    pub source_host: String,
    pub source_repository: String,
    pub target_repository: String,
}

impl ImageCopy {
    /// What to ask the source for: the digest when the image is pinned, else its tag.
    pub fn source_reference(&self) -> &str {
        self.image
            .digest
            .as_deref()
            .or(self.image.tag.as_deref())
            .unwrap_or("latest")
    }

    /// What the target holds it under: its tag, else (pinned only) its digest.
    pub fn target_reference(&self) -> &str {
        self.image
            .tag
            .as_deref()
            .or(self.image.digest.as_deref())
            .unwrap_or("latest")
    }
}

/// Everything a mirror copies, in the order it copies it: packs in profile order, then
/// images in the order the packs list them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MirrorPlan {
    pub packs: Vec<PackCopy>,
    pub images: Vec<ImageCopy>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("pack {name}:{version} cannot be mirrored: {source}")]
    Pack {
        name: String,
        version: String,
        #[source]
        source: Box<AddressError>,
    },
    #[error("pack {pack} lists an image that cannot be mirrored: {source}")]
    Image {
        pack: String,
        #[source]
        source: Box<ImagePathError>,
    },
}

/// The plan for `packs`, read from `source` and copied to `target`.
pub fn plan(
    packs: &[ResolvedPackInput],
    source: &RegistryAddress,
    target: &RegistryAddress,
    images: &ImageOrigin,
) -> Result<MirrorPlan, PlanError> {
    let mut plan = MirrorPlan::default();
    for pack in packs {
        let key = format!("{}:{}", pack.name, pack.version);
        let pack_error = |source| PlanError::Pack {
            name: pack.name.clone(),
            version: pack.version.clone(),
            source: Box::new(source),
        };
        if !plan
            .packs
            .iter()
            .any(|p| p.name == pack.name && p.version == pack.version)
        {
            let from = source
                .reference(&pack.name, &pack.version)
                .map_err(pack_error)?;
            let to = target
                .reference(&pack.name, &pack.version)
                .map_err(pack_error)?;
            plan.packs.push(PackCopy {
                name: pack.name.clone(),
                version: pack.version.clone(),
                source_repository: from.repository().to_owned(),
                tag: to.tag().unwrap_or(&pack.version).to_owned(),
                manifest_digest: pack.manifest_digest.clone(),
                target_repository: to.repository().to_owned(),
            });
        }
        for listed in &pack.images {
            let image_error = |source| PlanError::Image {
                pack: key.clone(),
                source: Box::new(source),
            };
            let image = parse_image(listed).map_err(image_error)?;
            let target_repository = image.mirror_repository(&target.base).map_err(image_error)?;
            if let Some(known) = plan.images.iter_mut().find(|known| {
                known.target_repository == target_repository
                    && known.image.tag == image.tag
                    && known.image.digest == image.digest
            }) {
                if !known.listed_by.contains(&key) {
                    known.listed_by.push(key.clone());
                }
                continue;
            }
            let (source_host, source_repository) = match images {
                ImageOrigin::OwnRegistries => {
                    (image.api_host().to_owned(), image.repository.clone())
                }
                ImageOrigin::Registry(from) => (
                    from.host.clone(),
                    image.mirror_repository(&from.base).map_err(image_error)?,
                ),
            };
            plan.images.push(ImageCopy {
                listed_as: listed.clone(),
                image,
                listed_by: vec![key.clone()],
                source_host,
                source_repository,
                target_repository,
            });
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn pack(name: &str, version: &str, images: &[&str]) -> ResolvedPackInput {
        ResolvedPackInput {
            name: name.into(),
            version: version.into(),
            manifest_digest: format!("sha256:{}", "f".repeat(64)),
            images: images.iter().map(|i| (*i).to_owned()).collect(),
        }
    }

    fn address(text: &str) -> RegistryAddress {
        text.parse().unwrap()
    }

    #[test]
    fn packs_once_in_profile_order_then_images_once() {
        let pinned = format!("registry.k8s.io/pause@{DIGEST}");
        let packs = [
            pack("kubernetes", "1.20.2", &[]),
            pack(
                "hello-chart",
                "0.3.0",
                &["docker.io/library/nginx:1.25", &pinned],
            ),
            // The same pack again (two profiles), and the same image spelled shorter.
            pack("hello-chart", "0.3.0", &["nginx:1.25"]),
            pack("other", "1.0.0", &["nginx:1.25", "nginx:1.26"]),
        ];
        let plan = plan(
            &packs,
            &address("src.example:5000/team"),
            &address("mirror.local/edge"),
            &ImageOrigin::OwnRegistries,
        )
        .unwrap();
        let names: Vec<String> = plan
            .packs
            .iter()
            .map(|p| format!("{}:{}", p.name, p.version))
            .collect();
        assert_eq!(
            names,
            ["kubernetes:1.20.2", "hello-chart:0.3.0", "other:1.0.0"]
        );
        let kubernetes = &plan.packs[0];
        assert_eq!(
            kubernetes.source_repository,
            "team/spectro-packs/archive/kubernetes"
        );
        assert_eq!(
            kubernetes.target_repository,
            "edge/spectro-packs/archive/kubernetes"
        );
        assert_eq!(kubernetes.tag, "1.20.2");

        let images: Vec<(&str, &str, &str)> = plan
            .images
            .iter()
            .map(|i| {
                (
                    i.target_repository.as_str(),
                    i.source_reference(),
                    i.target_reference(),
                )
            })
            .collect();
        assert_eq!(
            images,
            [
                ("edge/docker.io/library/nginx", "1.25", "1.25"),
                ("edge/registry.k8s.io/pause", DIGEST, DIGEST),
                ("edge/docker.io/library/nginx", "1.26", "1.26"),
            ]
        );
        let nginx = &plan.images[0];
        assert_eq!(nginx.listed_as, "docker.io/library/nginx:1.25");
        assert_eq!(nginx.listed_by, ["hello-chart:0.3.0", "other:1.0.0"]);
        assert_eq!(nginx.source_host, "registry-1.docker.io");
        assert_eq!(nginx.source_repository, "library/nginx");
    }

    #[test]
    fn images_from_another_registry_come_from_their_mirror_paths() {
        let packs = [pack(
            "hello-chart",
            "0.3.0",
            &[&format!("registry.k8s.io/pause:3.9@{DIGEST}")],
        )];
        let plan = plan(
            &packs,
            &address("src:5000/packs"),
            &address("dst:5000"),
            &ImageOrigin::Registry(address("staging:443/images")),
        )
        .unwrap();
        let pause = &plan.images[0];
        assert_eq!(pause.source_host, "staging:443");
        assert_eq!(pause.source_repository, "images/registry.k8s.io/pause");
        assert_eq!(pause.target_repository, "registry.k8s.io/pause");
        // Pinned: read by digest, kept under its tag.
        assert_eq!(pause.source_reference(), DIGEST);
        assert_eq!(pause.target_reference(), "3.9");
    }

    #[test]
    fn names_the_pack_of_a_bad_image() {
        let error = plan(
            &[pack("p", "1.0.0", &["nginx::1"])],
            &address("a:1"),
            &address("b:1"),
            &ImageOrigin::OwnRegistries,
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("pack p:1.0.0") && text.contains("nginx::1"),
            "{text}"
        );

        let error = plan(
            &[pack("p", "not a tag", &[])],
            &address("a:1"),
            &address("b:1"),
            &ImageOrigin::OwnRegistries,
        )
        .unwrap_err();
        assert!(error.to_string().contains("pack p:not a tag"), "{error}");
    }
}
