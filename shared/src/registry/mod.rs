//! Pack registries over OCI, in the layout existing pack registries use:
//! `<host>/<base>/spectro-packs/archive/<name>:<version>`, one layer
//! `<name>-<version>.tar.gz` holding the pack folder, pushed the way `oras push` does it
//! (layer media type `application/vnd.oci.image.layer.v1.tar` although the blob is
//! gzipped; the file name in the `org.opencontainers.image.title` annotation).
//!
//! A pack's identity is the sha256 of its archive (the layer digest), the same digest
//! `strata pack inspect` computes for a folder. Blobs go through a content-addressed
//! [`cache::PackCache`] shared by the controller and the agent.

pub mod address;
pub mod cache;
mod challenge;
pub mod client;
pub mod credentials;
pub mod error;
mod failure;
pub mod mirror;
pub mod options;
pub mod resolver;
pub mod site_access;
mod transport;
