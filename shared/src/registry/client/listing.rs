//! Listing: the catalog (which packs there are) and tag lists (which versions), page by
//! page, each page and the whole list bounded.
//!
//! The catalog is asked for with the token scope `registry:catalog:*`, the one
//! distribution grants it for (a repository's pull scope gets 401 from every token
//! registry).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use oci_client::Reference;
use tracing::debug;

use super::{PackRegistryClient, RegistryError};
use crate::registry::failure::Failure;
use crate::registry::transport::Scope;
use crate::version::PackVersion;

/// Catalog and tag list page size; small enough that no registry refuses it.
const PAGE_SIZE: usize = 100;

impl PackRegistryClient {
    pub(super) async fn versions_inner(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        let reference = self.address.reference(name, "latest")?;
        match self.tags(&reference).await {
            Ok(tags) if !tags.is_empty() => Ok(sort_versions(tags)),
            Ok(_) | Err(Failure::NotFound(_)) => Err(self.unknown_pack(name).await),
            Err(failure) => Err(self.context(&reference).error(failure)),
        }
    }

    pub(super) async fn list_inner(&self) -> Result<BTreeMap<String, Vec<String>>, RegistryError> {
        let mut packs = BTreeMap::new();
        for name in self.pack_names().await? {
            let reference = self.address.reference(&name, "latest")?;
            match self.tags(&reference).await {
                Ok(tags) if !tags.is_empty() => {
                    packs.insert(name, sort_versions(tags));
                }
                // Deleted since the catalog was read, or every tag deleted.
                Ok(_) | Err(Failure::NotFound(_)) => {}
                Err(failure) => return Err(self.context(&reference).error(failure)),
            }
        }
        Ok(packs)
    }

    /// Names of the packs in the catalog (sorted).
    async fn pack_names(&self) -> Result<Vec<String>, RegistryError> {
        let prefix = format!("{}/", self.address.archive_prefix());
        let context = self.context_of(
            format!("{}/v2/_catalog", self.address.host),
            "the catalog".to_owned(),
        );
        let repositories = self
            .paginate("catalog", &context.reference, |last| async move {
                self.page("/v2/_catalog", "repositories", Scope::Catalog, last)
                    .await
            })
            .await
            .map_err(|failure| match failure {
                Failure::NotFound(message) => RegistryError::Protocol {
                    reference: context.reference.clone(),
                    message: format!(
                        "the registry does not offer the catalog API, so packs cannot be \
                         listed ({message})"
                    ),
                },
                other => context.error(other),
            })?;
        Ok(repositories
            .into_iter()
            .filter_map(|repository| {
                let name = repository.strip_prefix(&prefix)?;
                (!name.contains('/')).then(|| name.to_owned())
            })
            .collect())
    }

    /// Every tag of `reference`'s repository.
    pub(super) async fn tags(&self, reference: &Reference) -> Result<BTreeSet<String>, Failure> {
        let repository = reference.repository();
        let path = format!("/v2/{repository}/tags/list");
        let listed = format!("{}/{repository}", self.address.host);
        self.paginate("tag list", &listed, |last| {
            let path = &path;
            async move { self.page(path, "tags", Scope::Pull(repository), last).await }
        })
        .await
    }

    /// One page of a list: the strings in the answer's `field` (`null` is none).
    async fn page(
        &self,
        path: &str,
        field: &str,
        scope: Scope<'_>,
        last: Option<String>,
    ) -> Result<Vec<String>, Failure> {
        let mut query = vec![("n", PAGE_SIZE.to_string())];
        if let Some(last) = last {
            query.push(("last", last));
        }
        let response = self.transport.get(path, &query, None, scope, true).await?;
        let reference = self.transport.url(path);
        let what = if field == "tags" {
            "tag list page"
        } else {
            "catalog page"
        };
        let body = self
            .transport
            .read_limited(
                response,
                self.options.limits.list_page_bytes,
                what,
                &reference,
            )
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Failure::Protocol(format!("{reference}: the answer is not JSON: {e}")))?;
        match answer.get(field) {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(serde_json::Value::Array(items)) => Ok(items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()),
            Some(_) => Err(Failure::Protocol(format!(
                "{reference}: {field:?} in the answer is not a list"
            ))),
        }
    }

    /// Collects pages until one is empty or adds nothing new (a registry that ignores
    /// `last` answers the same page again), each page retried on its own, and refuses a
    /// list longer than the limit.
    async fn paginate<F, Fut>(
        &self,
        what: &'static str,
        listed: &str,
        mut page: F,
    ) -> Result<BTreeSet<String>, Failure>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: Future<Output = Result<Vec<String>, Failure>>,
    {
        let limit = self.options.limits.list_entries;
        let mut all = BTreeSet::new();
        let mut last: Option<String> = None;
        loop {
            let items = self.retrying(what, || page(last.clone())).await?;
            let before = all.len();
            let page_last = items.last().cloned();
            all.extend(items);
            if all.len() > limit {
                return Err(Failure::final_error(RegistryError::ListTooLong {
                    registry: self.address.host.clone(),
                    what,
                    reference: listed.to_owned(),
                    limit,
                }));
            }
            if all.len() == before {
                break;
            }
            last = page_last;
        }
        Ok(all)
    }

    /// UnknownPack listing what exists; the list is best effort (some registries refuse
    /// the catalog), the error is what matters.
    pub(super) async fn unknown_pack(&self, name: &str) -> RegistryError {
        let available = match self.pack_names().await {
            Ok(names) => names,
            Err(error) => {
                debug!(%error, "cannot list the packs for the error message");
                Vec::new()
            }
        };
        RegistryError::UnknownPack {
            registry: self.address.to_string(),
            name: name.to_owned(),
            available,
        }
    }

    /// The error for a manifest that is not there: which of name and version is unknown.
    pub(super) async fn unknown(
        &self,
        name: &str,
        version: &str,
        reference: &Reference,
    ) -> RegistryError {
        match self.tags(reference).await {
            Ok(tags) if !tags.is_empty() => RegistryError::UnknownVersion {
                registry: self.address.to_string(),
                name: name.to_owned(),
                version: version.to_owned(),
                available: sort_versions(tags),
            },
            Ok(_) | Err(Failure::NotFound(_)) => self.unknown_pack(name).await,
            Err(failure) => self.context(reference).error(failure),
        }
    }
}

/// Tags that are versions, oldest first (equal versions such as `1.28` and `1.28.0` by
/// text).
pub(super) fn sort_versions(tags: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut versions: Vec<(PackVersion, String)> = tags
        .into_iter()
        .filter_map(|tag| match PackVersion::parse(&tag) {
            Ok(version) => Some((version, tag)),
            Err(_) => {
                debug!(tag, "ignoring a tag that is not a version");
                None
            }
        })
        .collect();
    versions.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    versions.into_iter().map(|(_, tag)| tag).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn sorts_versions_numerically_and_drops_other_tags() {
        let tags = [
            "1.10.0",
            "latest",
            "1.9.0",
            "1.28",
            "1.28.0",
            "v1.2.0",
            "1.3.0-rc.1",
            "1.3.0",
        ];
        assert_eq!(
            sort_versions(tags.iter().map(|t| (*t).to_owned())),
            vec![
                "v1.2.0",
                "1.3.0-rc.1",
                "1.3.0",
                "1.9.0",
                "1.10.0",
                "1.28",
                "1.28.0"
            ]
        );
    }
}
