//! What goes into the two images: the program(s) in `/usr/local/bin`, the shared
//! libraries they load, a user database with `nonroot` (65532), a CA bundle, the folders
//! a non-root process needs to write, and the configuration (entrypoint, user,
//! environment, OCI labels).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::elf::{self, Arch, ElfError};
use crate::layout::{self, LayoutError, WrittenImage};
use crate::ldd::{self, LddError};
use crate::rootfs::{Content, Owner, RootFs, RootFsError};

/// The user the images run as (distroless' `nonroot`): the chart's `runAsUser` too.
pub const NONROOT: Owner = Owner {
    uid: 65532,
    gid: 65532,
};
pub const USER: &str = "65532:65532";
pub const BIN_DIR: &str = "/usr/local/bin";
pub const HOME: &str = "/home/nonroot";
/// The controller's `STRATA_CACHE_DIR`, as the chart sets it (an emptyDir is mounted there).
pub const CACHE_DIR: &str = "/var/cache/strata";
/// Where Debian and most others keep the CA bundle; the images keep it there too.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const LICENSE: &str = "Apache-2.0";
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
    nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";
/// Files only for users and groups; `dns` for host names (glibc 2.34 and later have it
/// in libc itself, so it needs no library of its own).
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image {image} needs {role}: {source}")]
    Program {
        image: &'static str,
        role: String,
        #[source]
        source: ElfError,
    },
    #[error(
        "image {image}: {path} is built for {found}, but images are built for the build \
         machine's {expected}"
    )]
    WrongArch {
        image: &'static str,
        path: PathBuf,
        found: &'static str,
        expected: &'static str,
    },
    #[error("image {image}: {source}")]
    Libraries {
        image: &'static str,
        #[source]
        source: LddError,
    },
    #[error("image {image}: {source}")]
    Tree {
        image: &'static str,
        #[source]
        source: RootFsError,
    },
    #[error("image {image}: {source}")]
    Layout {
        image: &'static str,
        #[source]
        source: LayoutError,
    },
}

/// One of the two images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    Strata,
    StrataAgent,
}

impl Image {
    pub const ALL: [Image; 2] = [Image::Strata, Image::StrataAgent];

    /// The image's name (the last part of its repository) and its entrypoint's.
    pub fn name(self) -> &'static str {
        match self {
            Image::Strata => "strata",
            Image::StrataAgent => "strata-agent",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Image::Strata => "Strata's management controller and operator CLI",
            Image::StrataAgent => {
                "Strata's in-cluster agent, with the helm CLI it runs to install layers"
            }
        }
    }

    pub fn entrypoint(self) -> String {
        format!("{BIN_DIR}/{}", self.name())
    }
}

/// What both images are built from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Holds `strata` and `strata-agent`.
    pub binaries: PathBuf,
    pub helm: PathBuf,
    pub version: String,
    pub revision: Option<String>,
    pub source: String,
    /// Whole seconds: the `created` field, the label and every time stamp of the layer.
    pub created: jiff::Timestamp,
    /// The build machine's CA bundle, when it has one.
    pub ca_bundle: Option<PathBuf>,
}

impl Inputs {
    fn created_text(&self) -> String {
        self.created.to_string()
    }
}

/// A program of an image: where it is on the build machine and its name in `BIN_DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub host: PathBuf,
    pub name: &'static str,
    pub role: String,
}

pub fn programs(image: Image, inputs: &Inputs) -> Vec<Program> {
    let own = |name: &'static str| Program {
        host: inputs.binaries.join(name),
        name,
        role: format!("the {name} binary (from --binaries)"),
    };
    match image {
        Image::Strata => vec![own("strata")],
        Image::StrataAgent => vec![
            own("strata-agent"),
            Program {
                host: inputs.helm.clone(),
                name: "helm",
                role: "the helm CLI (from --helm)".into(),
            },
        ],
    }
}

/// The image's file tree, after checking each program and asking `ldd` what it loads.
pub fn rootfs(image: Image, inputs: &Inputs, arch: Arch) -> Result<RootFs, ImageError> {
    let tree_error = |source| ImageError::Tree {
        image: image.name(),
        source,
    };
    let mut tree = base_tree(image, inputs.ca_bundle.as_deref()).map_err(tree_error)?;
    for program in programs(image, inputs) {
        let executable = elf::inspect(&program.host).map_err(|source| ImageError::Program {
            image: image.name(),
            role: program.role.clone(),
            source,
        })?;
        if executable.arch != arch {
            return Err(ImageError::WrongArch {
                image: image.name(),
                path: program.host,
                found: executable.arch.oci_name(),
                expected: arch.oci_name(),
            });
        }
        tree.file(
            &format!("{BIN_DIR}/{}", program.name),
            Content::Host(program.host.clone()),
            0o755,
        )
        .map_err(tree_error)?;
        if let Some(loader) = &executable.interpreter {
            tree.copy_from_host(loader).map_err(tree_error)?;
            let libraries =
                ldd::shared_libraries(&program.host).map_err(|source| ImageError::Libraries {
                    image: image.name(),
                    source,
                })?;
            for library in libraries {
                tree.copy_from_host(&library).map_err(tree_error)?;
            }
        }
    }
    Ok(tree)
}

/// Everything but the programs and their libraries.
fn base_tree(image: Image, ca_bundle: Option<&Path>) -> Result<RootFs, RootFsError> {
    let mut tree = RootFs::new();
    let text = |s: &str| Content::Bytes(s.as_bytes().to_vec());
    tree.file("/etc/passwd", text(PASSWD), 0o644)?;
    tree.file("/etc/group", text(GROUP), 0o644)?;
    tree.file("/etc/nsswitch.conf", text(NSSWITCH), 0o644)?;
    if let Some(bundle) = ca_bundle {
        tree.file(CA_BUNDLE, Content::Host(bundle.to_path_buf()), 0o644)?;
    }
    tree.dir("/root", 0o700, Owner::ROOT)?;
    tree.dir("/tmp", 0o1777, Owner::ROOT)?;
    tree.dir(HOME, 0o755, NONROOT)?;
    tree.dir(BIN_DIR, 0o755, Owner::ROOT)?;
    if image == Image::Strata {
        tree.dir(CACHE_DIR, 0o755, NONROOT)?;
    }
    Ok(tree)
}

/// The OCI labels of the image (also its manifest's annotations).
pub fn labels(image: Image, inputs: &Inputs) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut put = |key: &str, value: &str| {
        labels.insert(format!("org.opencontainers.image.{key}"), value.to_owned());
    };
    put("title", image.name());
    put("description", image.description());
    put("version", &inputs.version);
    if let Some(revision) = &inputs.revision {
        put("revision", revision);
    }
    put("source", &inputs.source);
    put("licenses", LICENSE);
    put("created", &inputs.created_text());
    labels
}

pub fn env(image: Image, with_ca_bundle: bool) -> Vec<String> {
    let mut env = vec![format!("PATH={PATH}"), format!("HOME={HOME}")];
    if with_ca_bundle {
        env.push(format!("SSL_CERT_FILE={CA_BUNDLE}"));
    }
    if image == Image::Strata {
        env.push(format!("STRATA_CACHE_DIR={CACHE_DIR}"));
    }
    env
}

#[derive(Serialize)]
struct Config<'a> {
    created: &'a str,
    architecture: &'a str,
    os: &'a str,
    config: RunConfig<'a>,
    rootfs: RootFsConfig<'a>,
    history: [History<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig<'a> {
    user: &'a str,
    env: Vec<String>,
    entrypoint: [String; 1],
    working_dir: &'a str,
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RootFsConfig<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    diff_ids: [&'a str; 1],
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: String,
}

/// The image configuration, for the layer whose uncompressed digest is `diff_id`.
pub fn config_json(
    image: Image,
    inputs: &Inputs,
    arch: Arch,
    diff_id: &str,
) -> Result<Vec<u8>, serde_json::Error> {
    let created = inputs.created_text();
    let labels = labels(image, inputs);
    let config = Config {
        created: &created,
        architecture: arch.oci_name(),
        os: "linux",
        config: RunConfig {
            user: USER,
            env: env(image, inputs.ca_bundle.is_some()),
            entrypoint: [image.entrypoint()],
            working_dir: "/",
            labels: &labels,
        },
        rootfs: RootFsConfig {
            kind: "layers",
            diff_ids: [diff_id],
        },
        history: [History {
            created: &created,
            created_by: format!("strata-image build {}", inputs.version),
        }],
    };
    serde_json::to_vec(&config)
}

/// Writes `tree` as the image layout `<layout_dir>/<name>`.
pub fn write(
    image: Image,
    tree: &RootFs,
    inputs: &Inputs,
    arch: Arch,
    layout_dir: &Path,
) -> Result<WrittenImage, ImageError> {
    // Before the epoch is refused when the time is read; 0 is only a fallback.
    let mtime = u64::try_from(inputs.created.as_second()).unwrap_or(0);
    layout::write_image(
        &layout_dir.join(image.name()),
        tree,
        mtime,
        |diff_id| config_json(image, inputs, arch, diff_id),
        &labels(image, inputs),
        &inputs.version,
        arch,
    )
    .map_err(|source| ImageError::Layout {
        image: image.name(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::rootfs::Node;
    use serde_json::Value;

    fn inputs(binaries: &Path) -> Inputs {
        Inputs {
            binaries: binaries.to_path_buf(),
            helm: binaries.join("helm"),
            version: "1.2.3".into(),
            revision: Some("0123abcd".into()),
            source: "https://example.invalid/strata".into(),
            created: "2025-01-02T03:04:05Z".parse().unwrap(),
            ca_bundle: Some(PathBuf::from(CA_BUNDLE)),
        }
    }

    #[test]
    fn config_has_user_entrypoint_env_labels_and_the_diff_id() {
        let inputs = inputs(Path::new("/bin-dir"));
        let bytes = config_json(Image::StrataAgent, &inputs, Arch::Arm64, "sha256:abc").unwrap();
        let config: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["created"], "2025-01-02T03:04:05Z");
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(
            config["rootfs"]["diff_ids"],
            serde_json::json!(["sha256:abc"])
        );
        let run = &config["config"];
        assert_eq!(run["User"], "65532:65532");
        assert_eq!(
            run["Entrypoint"],
            serde_json::json!(["/usr/local/bin/strata-agent"])
        );
        assert_eq!(run["WorkingDir"], "/");
        assert_eq!(
            run["Env"],
            serde_json::json!([
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "HOME=/home/nonroot",
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            ])
        );
        let labels = &run["Labels"];
        let expected = [
            ("title", "strata-agent"),
            ("version", "1.2.3"),
            ("revision", "0123abcd"),
            ("source", "https://example.invalid/strata"),
            ("licenses", "Apache-2.0"),
            ("created", "2025-01-02T03:04:05Z"),
        ];
        for (key, value) in expected {
            assert_eq!(
                labels[format!("org.opencontainers.image.{key}")],
                value,
                "{key}"
            );
        }
        assert!(
            labels["org.opencontainers.image.description"]
                .as_str()
                .unwrap()
                .contains("helm")
        );
        assert_eq!(labels.as_object().unwrap().len(), 7);
        // The same inputs, the same bytes.
        assert_eq!(
            bytes,
            config_json(Image::StrataAgent, &inputs, Arch::Arm64, "sha256:abc").unwrap()
        );
    }

    #[test]
    fn the_controller_image_names_its_cache_and_no_revision_means_no_label() {
        let mut inputs = inputs(Path::new("/bin-dir"));
        inputs.revision = None;
        inputs.ca_bundle = None;
        let config: Value = serde_json::from_slice(
            &config_json(Image::Strata, &inputs, Arch::Amd64, "sha256:abc").unwrap(),
        )
        .unwrap();
        let run = &config["config"];
        assert_eq!(
            run["Entrypoint"],
            serde_json::json!(["/usr/local/bin/strata"])
        );
        assert_eq!(
            run["Env"],
            serde_json::json!([
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "HOME=/home/nonroot",
                "STRATA_CACHE_DIR=/var/cache/strata",
            ])
        );
        assert!(
            run["Labels"]
                .get("org.opencontainers.image.revision")
                .is_none()
        );
    }

    #[test]
    fn base_tree_has_the_nonroot_user_and_its_writable_folders() {
        let tree = base_tree(Image::Strata, None).unwrap();
        let entries = tree.entries();
        let Some(Node::File {
            content: Content::Bytes(passwd),
            ..
        }) = entries.get("etc/passwd")
        else {
            panic!("no /etc/passwd");
        };
        assert!(String::from_utf8_lossy(passwd).contains("nonroot:x:65532:65532:"));
        assert_eq!(
            entries.get("tmp"),
            Some(&Node::Dir {
                mode: 0o1777,
                owner: Owner::ROOT
            })
        );
        for dir in ["home/nonroot", "var/cache/strata"] {
            assert_eq!(
                entries.get(dir),
                Some(&Node::Dir {
                    mode: 0o755,
                    owner: NONROOT
                }),
                "{dir}"
            );
        }
        assert!(!entries.contains_key("etc/ssl/certs/ca-certificates.crt"));
        let agent = base_tree(Image::StrataAgent, Some(Path::new("/x/ca.crt"))).unwrap();
        assert!(!agent.entries().contains_key("var/cache/strata"));
        assert!(
            agent
                .entries()
                .contains_key("etc/ssl/certs/ca-certificates.crt")
        );
    }

    #[test]
    fn a_missing_program_is_refused_naming_the_file_and_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = inputs(dir.path());
        let arch = Arch::of_build_machine().unwrap();
        let message = rootfs(Image::Strata, &inputs, arch)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            format!(
                "image strata needs the strata binary (from --binaries): {}: no such file",
                dir.path().join("strata").display()
            )
        );
        // The agent is checked before helm: a real copy of this test program stands in.
        std::fs::copy(
            std::env::current_exe().unwrap(),
            dir.path().join("strata-agent"),
        )
        .unwrap();
        let message = rootfs(Image::StrataAgent, &inputs, arch)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("image strata-agent needs the helm CLI (from --helm): "),
            "{message}"
        );
        assert!(message.ends_with("helm: no such file"), "{message}");
    }

    #[test]
    fn a_program_for_another_machine_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(std::env::current_exe().unwrap(), dir.path().join("strata")).unwrap();
        let inputs = inputs(dir.path());
        let other = match Arch::of_build_machine().unwrap() {
            Arch::Amd64 => Arch::Arm64,
            Arch::Arm64 => Arch::Amd64,
        };
        let message = rootfs(Image::Strata, &inputs, other)
            .unwrap_err()
            .to_string();
        assert!(message.contains("is built for"), "{message}");
    }

    #[test]
    fn a_real_program_brings_its_loader_and_libraries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(std::env::current_exe().unwrap(), dir.path().join("strata")).unwrap();
        let inputs = inputs(dir.path());
        let tree = rootfs(Image::Strata, &inputs, Arch::of_build_machine().unwrap()).unwrap();
        let entries = tree.entries();
        assert!(matches!(
            entries.get("usr/local/bin/strata"),
            Some(Node::File { mode: 0o755, .. })
        ));
        let me = elf::inspect(&std::env::current_exe().unwrap()).unwrap();
        let Some(loader) = me.interpreter else {
            return; // A static test program needs nothing.
        };
        // The loader's path resolves, through the links copied from the host, to a file.
        assert!(
            matches!(resolve(entries, &loader), Some(Node::File { .. })),
            "{} does not resolve to a file in {:?}",
            loader.display(),
            entries.keys().collect::<Vec<_>>()
        );
        let libc = ldd::shared_libraries(&std::env::current_exe().unwrap())
            .unwrap()
            .into_iter()
            .find(|l| l.to_string_lossy().contains("libc.so"))
            .unwrap();
        assert!(matches!(resolve(entries, &libc), Some(Node::File { .. })));
    }

    /// The node `path` leads to in the tree, following its links as the kernel would.
    fn resolve<'a>(entries: &'a BTreeMap<String, Node>, path: &Path) -> Option<&'a Node> {
        let mut pending: Vec<String> = components(path);
        let mut done: Vec<String> = Vec::new();
        for _ in 0..40 {
            let mut node = None;
            let mut restarted = false;
            while !pending.is_empty() {
                let name = pending.remove(0);
                if name == ".." {
                    done.pop();
                    continue;
                }
                done.push(name);
                node = entries.get(&done.join("/"));
                if let Some(Node::Symlink { target }) = node {
                    let mut next = if target.is_absolute() {
                        Vec::new()
                    } else {
                        done[..done.len() - 1].to_vec()
                    };
                    next.extend(components(target));
                    next.append(&mut pending);
                    pending = next;
                    done.clear();
                    restarted = true;
                    break;
                }
            }
            if !restarted {
                return node;
            }
        }
        None
    }

    fn components(path: &Path) -> Vec<String> {
        path.components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                std::path::Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect()
    }
}
