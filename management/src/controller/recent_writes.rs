//! What this controller wrote lately, so that a pass can leave out a write that would send
//! the same content again.
//!
//! Every pass used to apply all of a cluster's objects again. Server-side apply of an
//! unchanged object changes nothing, but it is a request the apiserver decodes, merges and
//! compares; a pass woken because CAPI got on with provisioning sent eleven of them for
//! nothing. A write is left out when the same content was written to the same object, by
//! this process, less than the resync interval ago, and (for the CAPI objects) the CAPI
//! Cluster is still the one written, at the generation the write left it (an edit of its
//! spec is set back at once). An edit of another object by someone else is set back at
//! the latest one resync interval later, when the entry has expired, and whenever the
//! controller starts. A failed write records nothing, and a pass that fails forgets the
//! cluster's entries.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The content of a write, and what it must still find to count as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Written {
    content: u64,
    /// What the write left behind that a later read can compare: for the CAPI objects, the
    /// CAPI Cluster's uid and generation after the write.
    left: u64,
}

impl Written {
    /// `content`: what was sent, in the form it was sent.
    pub fn of<T: serde::Serialize + ?Sized>(content: &T) -> Written {
        Written {
            content: fingerprint(content),
            left: 0,
        }
    }

    /// What the write left, as a later read will see it.
    pub fn leaving<T: Hash>(mut self, left: T) -> Written {
        let mut hasher = DefaultHasher::new();
        left.hash(&mut hasher);
        self.left = hasher.finish();
        self
    }
}

/// Serialized then hashed: the objects written are JSON, and not all of their types hash.
fn fingerprint<T: serde::Serialize + ?Sized>(content: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    match serde_json::to_vec(content) {
        Ok(bytes) => bytes.hash(&mut hasher),
        // Never for the types written; a content that cannot be told apart is never skipped.
        Err(_) => Instant::now().hash(&mut hasher),
    }
    hasher.finish()
}

/// Each object's last write, keyed by the cluster's objects namespace (`scope`) and what
/// was written.
pub struct RecentWrites {
    ttl: Duration,
    entries: Mutex<HashMap<(String, String), (Written, Instant)>>,
}

impl RecentWrites {
    /// Entries count for `ttl` (the controller's resync interval).
    pub fn new(ttl: Duration) -> Self {
        RecentWrites {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (Written, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `what` of `scope` was written as `written` less than the interval ago.
    pub fn done(&self, scope: &str, what: &str, written: Written) -> bool {
        self.entries()
            .get(&(scope.to_string(), what.to_string()))
            .is_some_and(|(last, at)| *last == written && at.elapsed() < self.ttl)
    }

    /// Records that `what` of `scope` was written as `written`, now.
    pub fn wrote(&self, scope: &str, what: &str, written: Written) {
        self.entries().insert(
            (scope.to_string(), what.to_string()),
            (written, Instant::now()),
        );
    }

    /// Forgets every write of `scope`: its next pass writes everything again. Expired
    /// entries of every cluster go too, so that deleted clusters do not stay.
    pub fn forget(&self, scope: &str) {
        let ttl = self.ttl;
        self.entries()
            .retain(|(s, _), (_, at)| s != scope && at.elapsed() < ttl);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_same_content_is_done_until_it_expires() {
        let writes = RecentWrites::new(Duration::from_millis(50));
        let object = json!({ "kind": "RoleBinding", "metadata": { "name": "a" } });
        assert!(!writes.done("team/c1", "binding", Written::of(&object)));
        writes.wrote("team/c1", "binding", Written::of(&object));
        assert!(writes.done("team/c1", "binding", Written::of(&object)));
        assert!(
            !writes.done("team/c2", "binding", Written::of(&object)),
            "another cluster's write counted"
        );
        assert!(
            !writes.done("team/c1", "identities", Written::of(&object)),
            "another object's write counted"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(!writes.done("team/c1", "binding", Written::of(&object)));
        writes.forget("team/other");
        assert!(writes.entries().is_empty(), "an expired entry stayed");
    }

    #[test]
    fn other_content_or_another_state_left_is_not_done() {
        let writes = RecentWrites::new(Duration::from_secs(60));
        let objects = json!([{ "kind": "Cluster", "spec": { "paused": false } }]);
        writes.wrote(
            "team/c1",
            "capi",
            Written::of(&objects).leaving(("uid-1", 2)),
        );
        assert!(writes.done(
            "team/c1",
            "capi",
            Written::of(&objects).leaving(("uid-1", 2))
        ));
        let changed = json!([{ "kind": "Cluster", "spec": { "paused": true } }]);
        assert!(!writes.done(
            "team/c1",
            "capi",
            Written::of(&changed).leaving(("uid-1", 2))
        ));
        assert!(
            !writes.done(
                "team/c1",
                "capi",
                Written::of(&objects).leaving(("uid-1", 3))
            ),
            "an edited CAPI Cluster counted as written"
        );
        assert!(
            !writes.done(
                "team/c1",
                "capi",
                Written::of(&objects).leaving(("uid-2", 2))
            ),
            "a CAPI Cluster made again counted as written"
        );
    }

    #[test]
    fn a_forgotten_cluster_writes_everything_again() {
        let writes = RecentWrites::new(Duration::from_secs(60));
        let object = json!({ "a": 1 });
        writes.wrote("team/c1", "binding", Written::of(&object));
        writes.wrote("team/c1", "capi", Written::of(&object));
        writes.wrote("team/c2", "capi", Written::of(&object));
        writes.forget("team/c1");
        assert!(!writes.done("team/c1", "binding", Written::of(&object)));
        assert!(!writes.done("team/c1", "capi", Written::of(&object)));
        assert!(writes.done("team/c2", "capi", Written::of(&object)));
    }
}
