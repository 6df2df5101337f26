//! The move journal's store against a real apiserver, with journals too large for one
//! ConfigMap: a save split across parts reads back whole; a save interrupted between any
//! two of its writes leaves the last complete journal readable, and what it left behind is
//! swept by the next save; an earlier round's journal kept aside keeps its parts; a part
//! lost is named, never read around.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use strata_e2e::control_plane::{ControlPlane, ControlPlaneOptions};
use strata_e2e::management::ensure_namespace;
use strata_shared::contracts::labels::JOURNAL_PART_ROUND_LABEL;
use strata_shared::journal_maps::{JournalMaps, read_journal};
use strata_shared::kube_writer::KubeWriter;
use strata_shared::pivot::journal::{Direction, JournalEntry, MoveJournal, MovePhase, ObjectState};
use strata_shared::pivot::journal_parts::{RecordLimits, index_of, parts_selector};

const NAMESPACE: &str = "strata-system";
const JOURNAL: &str = "strata-move-edge-pivot";

/// Small maps, so a journal of a few dozen machines takes several.
const SMALL: RecordLimits = RecordLimits {
    whole_bytes: 8192,
    part_bytes: 4096,
    max_maps: 16,
};

fn hex(seed: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, seed.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A journal of `machines` machines (four objects each), the first `copied` of them
/// recorded as created in the target. UIDs and hashes are as random as in life, so they
/// compress as little.
fn journal_of(machines: usize, copied: usize) -> MoveJournal {
    let mut journal = MoveJournal {
        cluster: "edge".into(),
        direction: Direction::Pivot,
        source_namespace: "team-a-edge".into(),
        target_namespace: "team-a-edge".into(),
        phase: if copied > 0 {
            MovePhase::Paused
        } else {
            MovePhase::Planned
        },
        groups: Vec::new(),
        objects: Default::default(),
        paused_by_move: copied > 0,
    };
    let mut group = Vec::new();
    for i in 0..machines {
        for kind in ["Machine", "SimMachine", "KubeadmConfig", "Secret"] {
            let source = hex(&format!("source {kind} {i}"))[..36].to_string();
            group.push(source.clone());
            journal.objects.insert(
                source.clone(),
                JournalEntry {
                    api_version: "cluster.x-k8s.io/v1beta2".into(),
                    kind: kind.into(),
                    namespace: Some("team-a-edge".into()),
                    name: format!("edge-md-0-{i:05}"),
                    source_uid: source,
                    target_uid: (i < copied)
                        .then(|| hex(&format!("target {kind} {i}"))[..36].into()),
                    content_hash: format!("sha256:{}", hex(&format!("content {kind} {i}"))),
                    has_status: kind != "Secret",
                    global: false,
                    state: if i < copied {
                        ObjectState::Created
                    } else {
                        ObjectState::Pending
                    },
                },
            );
        }
    }
    journal.groups.push(group);
    journal
}

fn same(a: &MoveJournal, b: &MoveJournal) -> bool {
    serde_json::to_value(a).unwrap() == serde_json::to_value(b).unwrap()
}

struct Site {
    writer: KubeWriter,
    maps: Api<ConfigMap>,
}

impl Site {
    fn store(&self, name: &str, round: u32, limits: RecordLimits) -> JournalMaps {
        JournalMaps::new(self.writer.namespaced(NAMESPACE), NAMESPACE, name)
            .in_round(round)
            .with_limits(limits)
    }

    /// The parts of `name`'s `round` in the cluster.
    async fn parts(&self, name: &str, round: u32) -> BTreeSet<String> {
        let params = ListParams::default().labels(&parts_selector(name, round));
        self.maps
            .list_metadata(&params)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|m| m.metadata.name)
            .collect()
    }

    /// The parts the main map `name` names.
    async fn named(&self, name: &str) -> BTreeSet<String> {
        let main = self.maps.get(name).await.unwrap();
        index_of(&main)
            .unwrap()
            .map(|i| i.parts.into_iter().map(|p| p.name).collect())
            .unwrap_or_default()
    }

    async fn load(&self, store: &JournalMaps) -> (MoveJournal, String) {
        let loaded = store.load().await.unwrap().expect("a journal");
        (loaded.journal, loaded.version)
    }
}

async fn site() -> (ControlPlane, Site) {
    let cp = ControlPlane::start(ControlPlaneOptions {
        controller_manager: false,
        ..ControlPlaneOptions::named("journal-split")
    })
    .await
    .expect("the control plane starts");
    let client = cp.client();
    ensure_namespace(&client, NAMESPACE).await.unwrap();
    let site = Site {
        writer: KubeWriter::new(
            client.clone(),
            "strata-e2e-journal",
            Duration::from_secs(60),
        ),
        maps: Api::namespaced(client, NAMESPACE),
    };
    (cp, site)
}

#[tokio::test]
async fn a_split_journal_survives_a_crash_between_any_two_writes() {
    let (_cp, site) = site().await;

    // A small journal is one map, as ever: no index, no parts.
    let small = site.store("strata-move-small-pivot", 1, RecordLimits::DEFAULT);
    let version = small.save(&journal_of(3, 0), None).await.unwrap();
    let map = site.maps.get("strata-move-small-pivot").await.unwrap();
    assert_eq!(map.data, None);
    assert_eq!(
        map.binary_data.unwrap().keys().collect::<Vec<_>>(),
        ["journal.json.gz"]
    );
    assert!(site.parts("strata-move-small-pivot", 1).await.is_empty());
    small.save(&journal_of(3, 3), Some(&version)).await.unwrap();

    let store = site.store(JOURNAL, 1, SMALL);
    let first = journal_of(40, 0);
    let v1 = store.save(&first, None).await.unwrap();
    let named_v1 = site.named(JOURNAL).await;
    assert!(
        named_v1.len() >= 3,
        "{named_v1:?}: not split in three parts or more"
    );
    assert_eq!(site.parts(JOURNAL, 1).await, named_v1);
    let (read, version) = site.load(&store).await;
    assert!(same(&read, &first));
    assert_eq!(version, v1);

    // A crash after the parts of the next save, before its main map: the last complete
    // journal is read, and the parts nothing names are left.
    let second = journal_of(40, 10);
    let crashed = store.prepare(&second, Some(&v1)).unwrap();
    store.write_parts(&crashed).await.unwrap();
    let (read, version) = site.load(&store).await;
    assert!(same(&read, &first), "the crashed save is not seen");
    assert_eq!(version, v1);
    let orphans: BTreeSet<String> = crashed.part_names().into_iter().collect();
    assert!(orphans.is_disjoint(&named_v1));
    assert!(site.parts(JOURNAL, 1).await.is_superset(&orphans));

    // The next process redoes the step and saves; its save sweeps the crashed one's parts
    // and the replaced version's.
    let v2 = store.save(&second, Some(&v1)).await.unwrap();
    let named_v2 = site.named(JOURNAL).await;
    assert_eq!(site.parts(JOURNAL, 1).await, named_v2);
    let (read, version) = site.load(&store).await;
    assert!(same(&read, &second));
    assert_eq!(version, v2);

    // A crash after the main map, before the sweep: the new journal is read, the replaced
    // version's parts linger until the next save.
    let third = journal_of(40, 25);
    let interrupted = store.prepare(&third, Some(&v2)).unwrap();
    store.write_parts(&interrupted).await.unwrap();
    let v3 = store.write_main(&interrupted).await.unwrap();
    let (read, version) = site.load(&store).await;
    assert!(same(&read, &third));
    assert_eq!(version, v3);
    let named_v3 = site.named(JOURNAL).await;
    assert_eq!(site.parts(JOURNAL, 1).await, &named_v2 | &named_v3);
    let fourth = journal_of(40, 40);
    let v4 = store.save(&fourth, Some(&v3)).await.unwrap();
    assert_eq!(site.parts(JOURNAL, 1).await, site.named(JOURNAL).await);

    // A writer that read the committed version may still be creating its parts: a sweep
    // leaves them, and its commit names parts that exist.
    let fifth = {
        let mut j = journal_of(40, 40);
        j.phase = MovePhase::Created;
        j
    };
    let racing = store.prepare(&fifth, Some(&v4)).unwrap();
    store.write_parts(&racing).await.unwrap();
    assert_eq!(store.sweep(&v4).await.unwrap(), 0);
    let v5 = store.write_main(&racing).await.unwrap();
    assert!(same(&site.load(&store).await.0, &fifth));
    // A stale writer (it read v4) fails at the main map and sweeps nothing.
    let stale = store.prepare(&fourth, Some(&v4)).unwrap();
    store.write_parts(&stale).await.unwrap();
    let err = store.write_main(&stale).await.unwrap_err().to_string();
    assert!(err.contains("answered 409"), "{err}");
    assert_eq!(store.sweep(&v4).await.unwrap(), 0, "the journal moved on");
    assert!(same(&site.load(&store).await.0, &fifth));
    let _ = v5;

    // A part lost is named; the journal is not read around it.
    let lost = site.named(JOURNAL).await.into_iter().nth(1).unwrap();
    site.maps.delete(&lost, &Default::default()).await.unwrap();
    let err = store
        .load()
        .await
        .err()
        .expect("a journal with a part lost is refused")
        .to_string();
    assert!(
        err.contains(&format!("names the journal part {lost}, which is gone"))
            && err.starts_with(
                "the move journal strata-system/strata-move-edge-pivot cannot be read"
            ),
        "{err}"
    );
}

#[tokio::test]
async fn a_journal_kept_aside_keeps_its_parts_through_the_next_rounds_saves() {
    let (_cp, site) = site().await;
    let round_1 = site.store(JOURNAL, 1, SMALL);
    let done = {
        let mut j = journal_of(40, 40);
        j.phase = MovePhase::Done;
        j
    };
    let v = round_1.save(&journal_of(40, 0), None).await.unwrap();
    round_1.save(&done, Some(&v)).await.unwrap();
    let parts_1 = site.parts(JOURNAL, 1).await;
    assert!(!parts_1.is_empty());

    let round_2 = site.store(JOURNAL, 2, SMALL);
    let kept = round_2.retire_earlier_round().await.unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("strata-system/strata-move-edge-pivot-round-1")
    );
    assert!(round_2.load().await.unwrap().is_none());
    let mut version = round_2.save(&journal_of(45, 0), None).await.unwrap();
    for copied in [20, 45] {
        version = round_2
            .save(&journal_of(45, copied), Some(&version))
            .await
            .unwrap();
    }
    assert_eq!(
        site.parts(JOURNAL, 1).await,
        parts_1,
        "round 1's parts stay"
    );
    assert_eq!(site.parts(JOURNAL, 2).await, site.named(JOURNAL).await);
    let round_2_parts = site
        .maps
        .list_metadata(&ListParams::default().labels(&format!("{JOURNAL_PART_ROUND_LABEL}=2")))
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(round_2_parts, site.parts(JOURNAL, 2).await.len());

    let kept = site
        .maps
        .get("strata-move-edge-pivot-round-1")
        .await
        .unwrap();
    let read = read_journal(&site.writer.namespaced(NAMESPACE), &kept)
        .await
        .unwrap();
    assert!(same(&read, &done), "the kept journal reads back whole");
}

#[tokio::test]
async fn a_journal_of_5000_machines_is_saved_in_full_size_maps() {
    let (_cp, site) = site().await;
    let store = site.store(JOURNAL, 1, RecordLimits::DEFAULT);
    let planned = journal_of(5000, 0);
    let v1 = store.save(&planned, None).await.unwrap();
    let copied = journal_of(5000, 5000);
    let prepared = store.prepare(&copied, Some(&v1)).unwrap();
    assert!(
        prepared.part_names().len() >= 2,
        "{} bytes: the test no longer needs parts",
        prepared.bytes()
    );
    let v2 = store.save(&copied, Some(&v1)).await.unwrap();
    let (read, version) = site.load(&store).await;
    assert!(same(&read, &copied));
    assert_eq!(version, v2);
    assert_eq!(site.parts(JOURNAL, 1).await, site.named(JOURNAL).await);
    eprintln!(
        "a journal of 5000 machines: {} bytes compressed, in the main map and {} parts",
        prepared.bytes(),
        prepared.part_names().len()
    );
}
