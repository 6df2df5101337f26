//! A pack pulled by the digest a revision pins, through the site's registries and its pack
//! cache, unpacked into a work folder of its own and loaded: what a layer and a provider
//! are installed from.

use strata_shared::pack::Pack;
use strata_shared::registry::site_access::SiteRegistries;

use super::LayerSetup;

/// Which pack: its name, version, pinned digest and the PackRegistry it comes from (the
/// default one when `None`).
pub struct PackPin<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub digest: &'a str,
    pub registry: Option<&'a str>,
}

/// A pulled pack and the work folder it lives in (removed when dropped).
pub struct PinnedPack {
    pub pack: Pack,
    pub work: tempfile::TempDir,
    pub from_cache: bool,
}

/// Pulls and loads `pin` into a new work folder named `prefix…`. Err: why not, naming the
/// pack, the registry or the folder.
pub async fn pull(
    setup: &LayerSetup,
    registries: &SiteRegistries,
    pin: &PackPin<'_>,
    prefix: &str,
) -> Result<PinnedPack, String> {
    let (registry_name, registry) = registries
        .for_layer(pin.name, pin.registry)
        .map_err(|e| e.to_string())?;
    let client = registry.client(registry_name).map_err(|e| e.to_string())?;
    let work = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&setup.work_dir)
        .map_err(|e| {
            format!(
                "cannot make a work folder in {}: {e}",
                setup.work_dir.display()
            )
        })?;
    let pulled = client
        .pull_pinned(
            pin.name,
            pin.version,
            pin.digest,
            &work.path().join(pin.name),
            Some(&setup.cache),
        )
        .await
        .map_err(|e| {
            format!(
                "pack {}:{} from registry {registry_name} ({registry}): {e}",
                pin.name, pin.version
            )
        })?;
    let (pack, findings) = Pack::load(&pulled.dir);
    let pack = pack.ok_or_else(|| {
        format!(
            "pack {}:{} ({}) is not a valid pack: {}",
            pin.name,
            pin.version,
            pin.digest,
            findings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    Ok(PinnedPack {
        pack,
        work,
        from_cache: pulled.from_cache,
    })
}
