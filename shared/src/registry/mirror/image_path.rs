//! Where a mirror puts an image a pack lists: `<target>/<base>/<host>/<path>`, the image's
//! own registry host (lowercase, a port joined with `-`) followed by its repository, with
//! its tag and digest unchanged. `docker.io/library/nginx:1.25` mirrored to
//! `mirror.local/edge` becomes `mirror.local/edge/docker.io/library/nginx:1.25`;
//! `registry.local:5000/team/app@sha256:…` becomes
//! `mirror.local/edge/registry.local-5000/team/app@sha256:…`.
//!
//! Docker's short forms are spelled out first, as every container runtime reads them: no
//! host is Docker Hub (`docker.io`, also for the legacy `index.docker.io`), a one-part Hub
//! path is under `library/`, no tag and no digest is `:latest`. So `nginx`,
//! `docker.io/nginx` and `index.docker.io/library/nginx:latest` are one image and one
//! mirror path.
//!
//! The host becomes one path component: two hosts differing only by case or by `:` versus
//! `-` (`a.io:5000`, `a.io-5000`) would share a path; real registries do not clash like
//! that. An IPv6 literal host cannot become a path component and is refused.

use crate::pack::image_ref::{ImageReferenceError, check_image_reference};
use crate::pack::manifest::is_oci_path_component;

/// Docker Hub's canonical name in references.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// Where Docker Hub's registry API answers.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const DOCKER_HUB_OFFICIAL: &str = "library";
const DEFAULT_TAG: &str = "latest";
/// distribution's limit on a repository name.
const REPOSITORY_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImagePathError {
    #[error("image {image:?} is not a valid image reference: {source}")]
    Invalid {
        image: String,
        #[source]
        source: ImageReferenceError,
    },
    #[error(
        "image {image:?}: its registry host {host:?} cannot be a path component of the \
         mirror (an IPv6 address, or characters a repository path may not hold)"
    )]
    Host { image: String, host: String },
    #[error(
        "image {image:?}: its mirror repository {repository:?} is {length} characters, over \
         the {REPOSITORY_MAX} a registry accepts"
    )]
    TooLong {
        image: String,
        repository: String,
        length: usize,
    },
}

/// An image reference with Docker's short forms spelled out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageName {
    /// `host[:port]` as the reference names it; `docker.io` for Docker Hub.
    pub host: String,
    /// The repository below the host (`library/nginx`).
    pub repository: String,
    /// None only when a digest is given without a tag.
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageName {
    /// The host to send registry API requests to (Docker Hub's API has its own).
    pub fn api_host(&self) -> &str {
        if self.host == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.host
        }
    }

    /// `host/repository[:tag][@digest]`, the image's full name.
    pub fn canonical(&self) -> String {
        let mut text = format!("{}/{}", self.host, self.repository);
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest);
        }
        text
    }

    /// The path the image gets below a mirror's base: `<host component>/<repository>`.
    pub fn mirror_path(&self) -> Result<String, ImagePathError> {
        let component = self.host.to_ascii_lowercase().replace(':', "-");
        if !is_oci_path_component(&component) {
            return Err(ImagePathError::Host {
                image: self.canonical(),
                host: self.host.clone(),
            });
        }
        Ok(format!("{component}/{}", self.repository))
    }

    /// The repository the image gets in a mirror whose base path is `base` (may be
    /// empty).
    pub fn mirror_repository(&self, base: &str) -> Result<String, ImagePathError> {
        let path = self.mirror_path()?;
        let repository = if base.is_empty() {
            path
        } else {
            format!("{base}/{path}")
        };
        if repository.len() > REPOSITORY_MAX {
            return Err(ImagePathError::TooLong {
                image: self.canonical(),
                length: repository.len(),
                repository,
            });
        }
        Ok(repository)
    }
}

/// Reads an image reference as a pack lists it, checked with the grammar pack validation
/// uses (no regular expression).
pub fn parse_image(image: &str) -> Result<ImageName, ImagePathError> {
    check_image_reference(image).map_err(|source| ImagePathError::Invalid {
        image: image.to_owned(),
        source,
    })?;
    let (name_and_tag, digest) = match image.split_once('@') {
        Some((before, after)) => (before, Some(after.to_owned())),
        None => (image, None),
    };
    // A ':' after the last '/' starts the tag; an earlier one is the registry's port.
    let after_last_slash = name_and_tag.rfind('/').map_or(0, |slash| slash + 1);
    let (name, tag) = match name_and_tag[after_last_slash..].rfind(':') {
        Some(colon) => {
            let colon = after_last_slash + colon;
            (
                &name_and_tag[..colon],
                Some(name_and_tag[colon + 1..].to_owned()),
            )
        }
        None => (name_and_tag, None),
    };
    let (host, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => (DOCKER_HUB, name),
    };
    let host = if host == DOCKER_HUB_LEGACY {
        DOCKER_HUB
    } else {
        host
    };
    let repository = if host == DOCKER_HUB && !path.contains('/') {
        format!("{DOCKER_HUB_OFFICIAL}/{path}")
    } else {
        path.to_owned()
    };
    let tag = match (tag, &digest) {
        (None, None) => Some(DEFAULT_TAG.to_owned()),
        (tag, _) => tag,
    };
    Ok(ImageName {
        host: host.to_owned(),
        repository,
        tag,
        digest,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn mapped(image: &str, base: &str) -> String {
        parse_image(image).unwrap().mirror_repository(base).unwrap()
    }

    #[test]
    fn docker_short_forms_are_one_image() {
        let long = parse_image("docker.io/library/nginx:latest").unwrap();
        for short in [
            "nginx",
            "nginx:latest",
            "docker.io/nginx",
            "index.docker.io/library/nginx",
        ] {
            assert_eq!(parse_image(short).unwrap(), long, "{short}");
        }
        assert_eq!(long.host, "docker.io");
        assert_eq!(long.api_host(), "registry-1.docker.io");
        assert_eq!(long.repository, "library/nginx");
        assert_eq!(long.tag.as_deref(), Some("latest"));
        assert_eq!(long.canonical(), "docker.io/library/nginx:latest");
        // A Hub path with a namespace keeps it.
        assert_eq!(
            parse_image("calico/node:v3.19.0").unwrap().repository,
            "calico/node"
        );
    }

    #[test]
    fn maps_below_the_base_by_host_and_path() {
        assert_eq!(
            mapped("docker.io/library/nginx:1.25", "edge"),
            "edge/docker.io/library/nginx"
        );
        assert_eq!(mapped("nginx:1.25", ""), "docker.io/library/nginx");
        assert_eq!(
            mapped("ghcr.io/spectrocloud/hello-universe:1.1.0", "a/b"),
            "a/b/ghcr.io/spectrocloud/hello-universe"
        );
        assert_eq!(
            mapped("registry.local:5000/team/app:v1", "m"),
            "m/registry.local-5000/team/app"
        );
        assert_eq!(mapped("localhost/x", "m"), "m/localhost/x");
        assert_eq!(
            mapped("Registry.Example.com/team/app:1", "m"),
            "m/registry.example.com/team/app"
        );
        assert_eq!(mapped("127.0.0.1:5000/a:1", ""), "127.0.0.1-5000/a");
    }

    #[test]
    fn keeps_tag_and_digest() {
        let pinned = parse_image(&format!("registry.k8s.io/pause@{DIGEST}")).unwrap();
        assert_eq!(pinned.tag, None);
        assert_eq!(pinned.digest.as_deref(), Some(DIGEST));
        assert_eq!(pinned.host, "registry.k8s.io");
        assert_eq!(pinned.api_host(), "registry.k8s.io");
        assert_eq!(
            pinned.canonical(),
            format!("registry.k8s.io/pause@{DIGEST}")
        );

        let both = parse_image(&format!("registry.local:5000/pause:3.9@{DIGEST}")).unwrap();
        assert_eq!(both.tag.as_deref(), Some("3.9"));
        assert_eq!(both.digest.as_deref(), Some(DIGEST));
        assert_eq!(both.host, "registry.local:5000");
    }

    #[test]
    fn refuses_what_cannot_be_mapped() {
        assert!(matches!(
            parse_image("nginx::1"),
            Err(ImagePathError::Invalid { .. })
        ));
        let error = parse_image("").unwrap_err();
        assert!(
            error.to_string().contains("not a valid image reference"),
            "{error}"
        );

        let ipv6 = ImageName {
            host: "[::1]:5000".into(),
            repository: "a".into(),
            tag: Some("1".into()),
            digest: None,
        };
        let error = ipv6.mirror_path().unwrap_err();
        assert!(error.to_string().contains("[::1]:5000"), "{error}");

        let long = parse_image(&format!("example.com/{}:1", "a".repeat(240))).unwrap();
        let error = long.mirror_repository("base").unwrap_err();
        assert!(matches!(error, ImagePathError::TooLong { .. }), "{error}");
    }
}
