//! Tests of how a journal is recorded: whole in one ConfigMap as before, or split across
//! parts that are read back whole or not at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::pivot::journal::{Direction, JournalEntry, MovePhase, ObjectState};
use crate::pivot::journal_parts::{journal_from, recorded_bytes};
use crate::pivot::journal_record::JournalRecordError;

const NAMESPACE: &str = "strata-system";
const JOURNAL: &str = "strata-move-edge-pivot";

/// UIDs and hashes are random in life, so they compress as little as random hex does.
fn random_hex(seed: &str) -> String {
    hex(seed.as_bytes())
}

fn uid(seed: &str) -> String {
    let hex = random_hex(seed);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A journal of `machines` machines, each with its infrastructure machine, bootstrap
/// config and secret; `copied` when the copies' UIDs are recorded.
fn journal_of(machines: usize, copied: bool) -> MoveJournal {
    let mut objects = BTreeMap::new();
    let kinds = ["Machine", "SimMachine", "KubeadmConfig", "Secret"];
    for i in 0..machines {
        for kind in kinds {
            let source = uid(&format!("source {kind} {i}"));
            let entry = JournalEntry {
                api_version: "cluster.x-k8s.io/v1beta2".into(),
                kind: kind.into(),
                namespace: Some("team-a-edge".into()),
                name: format!("edge-md-0-7f9c4-{i:05}"),
                source_uid: source.clone(),
                target_uid: copied.then(|| uid(&format!("target {kind} {i}"))),
                content_hash: format!("sha256:{}", random_hex(&format!("content {kind} {i}"))),
                has_status: kind != "Secret",
                global: false,
                state: if copied {
                    ObjectState::Created
                } else {
                    ObjectState::Pending
                },
            };
            objects.insert(source, entry);
        }
    }
    MoveJournal {
        cluster: "edge".into(),
        direction: Direction::Pivot,
        source_namespace: "team-a-edge".into(),
        target_namespace: "team-a-edge".into(),
        phase: if copied {
            MovePhase::Paused
        } else {
            MovePhase::Planned
        },
        groups: vec![objects.keys().cloned().collect()],
        objects,
        paused_by_move: copied,
    }
}

/// Small maps, so a test journal of a few dozen machines takes several.
const SMALL: RecordLimits = RecordLimits {
    whole_bytes: 8192,
    part_bytes: 4096,
    max_maps: 8,
};

fn naming(base: Option<&str>) -> PartNaming<'_> {
    PartNaming {
        journal: JOURNAL,
        round: 1,
        base,
    }
}

/// The main map and part maps a record is written as.
fn written(record: &JournalRecord, base: Option<&str>) -> (ConfigMap, BTreeMap<String, ConfigMap>) {
    let (data, binary_data) = record.main_contents().unwrap();
    let main = ConfigMap {
        metadata: ObjectMeta {
            name: Some(JOURNAL.into()),
            namespace: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        data,
        binary_data: Some(binary_data),
        ..ConfigMap::default()
    };
    let parts = record
        .parts()
        .iter()
        .map(|p| (p.name.clone(), part_map(p, naming(base), NAMESPACE)))
        .collect();
    (main, parts)
}

fn same(a: &MoveJournal, b: &MoveJournal) -> bool {
    serde_json::to_value(a).unwrap() == serde_json::to_value(b).unwrap()
}

/// A journal of 30 machines, split across the main map and three parts.
fn split_in_four() -> (MoveJournal, JournalRecord) {
    let journal = journal_of(30, true);
    let record = record(&journal, false, naming(Some("41")), SMALL).unwrap();
    let bytes = record.bytes();
    assert!(
        bytes > 3 * SMALL.part_bytes && bytes <= 4 * SMALL.part_bytes,
        "{bytes} bytes: not four chunks"
    );
    (journal, record)
}

#[test]
fn a_small_journal_stays_whole_in_one_map_with_no_index() {
    let journal = journal_of(3, true);
    let record = record(&journal, true, naming(None), RecordLimits::DEFAULT).unwrap();
    assert!(matches!(record, JournalRecord::Whole(_)));
    assert!(record.parts().is_empty());
    let (main, parts) = written(&record, None);
    assert!(parts.is_empty());
    assert_eq!(main.data, None, "no index");
    assert_eq!(
        main.binary_data
            .as_ref()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["journal.json.gz"]
    );
    assert!(same(&journal_from(&main).unwrap(), &journal));
    assert_eq!(recorded_bytes(&main), record.bytes());
}

#[test]
fn a_journal_split_across_three_parts_reads_back_the_same() {
    let (journal, record) = split_in_four();
    let (main, parts) = written(&record, Some("41"));
    let index = index_of(&main).unwrap().expect("an index");
    assert_eq!(index.parts.len(), 3);
    assert_eq!(index.first, SMALL.part_bytes);
    for (i, part) in index.parts.iter().enumerate() {
        assert!(
            part.name.starts_with("strata-move-edge-pivot-part-"),
            "{}",
            part.name
        );
        assert!(part.name.ends_with(&format!("-{}", i + 1)), "{}", part.name);
        let map = &parts[&part.name];
        assert_eq!(map.immutable, Some(true));
        let labels = map.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[JOURNAL_PART_OF_LABEL], JOURNAL);
        assert_eq!(labels[JOURNAL_PART_ROUND_LABEL], "1");
        assert_eq!(labels[JOURNAL_PART_BASE_LABEL], base_label(Some("41")));
    }
    assert!(same(
        &journal_from_parts(&main, &index, &parts).unwrap(),
        &journal
    ));
    assert_eq!(recorded_bytes(&main), record.bytes());
    // Read alone, the main map says what it is rather than yield a piece of a journal.
    assert_eq!(
        journal_from(&main).unwrap_err().to_string(),
        "ConfigMap strata-system/strata-move-edge-pivot holds a journal split across 3 more ConfigMaps; it can only be read with them"
    );
}

#[test]
fn a_missing_part_is_named() {
    let (_, record) = split_in_four();
    let (main, mut parts) = written(&record, Some("41"));
    let index = index_of(&main).unwrap().unwrap();
    let gone = index.parts[1].name.clone();
    parts.remove(&gone);
    let err = journal_from_parts(&main, &index, &parts).unwrap_err();
    assert!(
        matches!(err, JournalRecordError::PartMissing { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "ConfigMap strata-system/strata-move-edge-pivot names the journal part {gone}, which is gone"
        )
    );
}

#[test]
fn a_truncated_part_is_named_with_its_size() {
    let (_, record) = split_in_four();
    let (main, mut parts) = written(&record, Some("41"));
    let index = index_of(&main).unwrap().unwrap();
    let cut = index.parts[2].name.clone();
    let data = parts.get_mut(&cut).unwrap().binary_data.as_mut().unwrap();
    let chunk = data.get_mut(CHUNK_KEY).unwrap();
    let expected = chunk.0.len();
    chunk.0.truncate(100);
    let err = journal_from_parts(&main, &index, &parts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the journal part {cut} named by ConfigMap strata-system/strata-move-edge-pivot holds 100 bytes where the index says {expected}"
        )
    );
    // A part emptied of its chunk is as short.
    parts.get_mut(&cut).unwrap().binary_data = None;
    let err = journal_from_parts(&main, &index, &parts).unwrap_err();
    assert!(
        matches!(err, JournalRecordError::PartWrongSize { bytes: 0, .. }),
        "{err}"
    );
}

#[test]
fn a_changed_part_is_refused_by_the_digest() {
    let (_, record) = split_in_four();
    let (main, mut parts) = written(&record, Some("41"));
    let index = index_of(&main).unwrap().unwrap();
    let changed = index.parts[0].name.clone();
    let data = parts
        .get_mut(&changed)
        .unwrap()
        .binary_data
        .as_mut()
        .unwrap();
    data.get_mut(CHUNK_KEY).unwrap().0[10] ^= 0xff;
    let err = journal_from_parts(&main, &index, &parts).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, JournalRecordError::DigestMismatch { .. }),
        "{message}"
    );
    assert!(
        message.starts_with("the journal of ConfigMap strata-system/strata-move-edge-pivot, put together from its parts ("),
        "{message}"
    );
    assert!(message.contains(&changed), "{message}");
    assert!(message.contains(&index.digest), "{message}");
}

#[test]
fn parts_of_the_same_save_are_named_the_same_and_of_another_save_not() {
    let journal = journal_of(40, true);
    let names = |round: u32, base: Option<&str>| -> Vec<String> {
        let naming = PartNaming {
            journal: JOURNAL,
            round,
            base,
        };
        let record = record(&journal, false, naming, SMALL).unwrap();
        record.parts().iter().map(|p| p.name.clone()).collect()
    };
    assert_eq!(
        names(1, Some("41")),
        names(1, Some("41")),
        "a repeated save adopts its parts"
    );
    assert_ne!(names(1, Some("41")), names(1, Some("42")));
    assert_ne!(names(1, Some("41")), names(1, None));
    assert_ne!(names(1, Some("41")), names(2, Some("41")));
}

#[test]
fn a_long_journal_name_still_makes_valid_part_names_and_labels() {
    let cluster = "c".repeat(63);
    let journal_name = format!("strata-move-{cluster}-reverse");
    let naming = PartNaming {
        journal: &journal_name,
        round: 12,
        base: Some("123456789"),
    };
    let record = record(&journal_of(40, true), false, naming, SMALL).unwrap();
    for part in record.parts() {
        assert!(part.name.len() <= 253, "{}", part.name);
        let map = part_map(part, naming, NAMESPACE);
        for value in map.metadata.labels.unwrap().values() {
            assert!(value.len() <= 63, "{value}");
            assert!(
                value.ends_with(|c: char| c.is_ascii_alphanumeric()),
                "{value}"
            );
        }
    }
    let selector = parts_selector(&journal_name, 12);
    assert!(
        selector.ends_with(",strata.dev/journal-round=12"),
        "{selector}"
    );
    // Another long name of the same start is another label.
    let other = format!("strata-move-{cluster}-pivot");
    assert_ne!(parts_selector(&other, 12), selector);
}

#[test]
fn only_parts_no_save_can_name_any_more_are_dead() {
    let (_, record) = split_in_four();
    let index = record.index().unwrap();
    let meta = |name: &str, base: Option<&str>| ObjectMeta {
        name: Some(name.into()),
        labels: Some(BTreeMap::from([(
            JOURNAL_PART_BASE_LABEL.to_string(),
            base_label(base),
        )])),
        ..ObjectMeta::default()
    };
    let parts = vec![
        // Named by the committed index (written over version 41, committed as 42).
        meta(&index.parts[0].name, Some("41")),
        // Of the index the commit replaced, and of a save that crashed over version 40.
        meta("strata-move-edge-pivot-part-aaaa-1", Some("40")),
        meta("strata-move-edge-pivot-part-bbbb-1", None),
        // Of a writer that read version 42 and may still commit over it.
        meta("strata-move-edge-pivot-part-cccc-1", Some("42")),
    ];
    assert_eq!(
        dead_parts(Some(index), "42", &parts),
        [
            "strata-move-edge-pivot-part-aaaa-1",
            "strata-move-edge-pivot-part-bbbb-1"
        ]
    );
}

#[test]
fn an_index_that_is_not_one_is_refused() {
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(JOURNAL.into()),
            namespace: Some(NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(INDEX_KEY.to_string(), "[1]".to_string())])),
        binary_data: Some(BTreeMap::from([(
            CHUNK_KEY.to_string(),
            ByteString(vec![1, 2, 3]),
        )])),
        ..ConfigMap::default()
    };
    let err = index_of(&map).unwrap_err().to_string();
    assert!(
        err.starts_with("ConfigMap strata-system/strata-move-edge-pivot has an index of journal parts that cannot be read"),
        "{err}"
    );
    assert_eq!(journal_from(&map).unwrap_err().to_string(), err);
}

#[test]
fn a_record_that_is_not_a_journal_is_refused_with_what_is_wrong() {
    let empty = ConfigMap::default();
    assert_eq!(
        journal_from(&empty).unwrap_err().to_string(),
        "it holds no journal.json.gz"
    );
    let garbage = ConfigMap {
        binary_data: Some(BTreeMap::from([(
            JOURNAL_KEY.to_string(),
            ByteString(b"{\"cluster\": 1}".to_vec()),
        )])),
        ..Default::default()
    };
    let err = journal_from(&garbage).unwrap_err().to_string();
    assert!(
        err.starts_with("its journal.json.gz is not a gzip-compressed journal"),
        "{err}"
    );
}

#[test]
fn a_new_journal_must_leave_room_for_the_copies_uids() {
    let journal = journal_of(40, false);
    let bytes = compressed(&journal).unwrap().len();
    let limits = RecordLimits {
        max_maps: 4,
        ..SMALL
    };
    assert!(
        bytes > limits.limit(true) && bytes <= limits.limit(false),
        "{bytes}"
    );
    let err = record(&journal, true, naming(None), limits).unwrap_err();
    assert!(
        matches!(&err, JournalRecordError::TooLarge { cluster, bytes: b, limit }
            if cluster == "edge" && *b == bytes && *limit == 4 * 4096 / 2),
        "{err}"
    );
    assert!(err.to_string().ends_with("nothing was moved"), "{err}");
    // The same journal, once started, may use every map.
    record(&journal, false, naming(Some("7")), limits).unwrap();
    // Grown past every map, it is refused, naming the cluster, its size and the limit.
    let grown = journal_of(60, true);
    let err = record(&grown, false, naming(Some("8")), limits)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("the journal of the move of cluster edge takes ")
            && err.contains(" bytes compressed, more than the 16384 its ConfigMaps leave it"),
        "{err}"
    );
}

#[test]
fn the_journal_of_a_cluster_of_5000_machines_fits_with_room() {
    let limits = RecordLimits::DEFAULT;
    let new = journal_of(5000, false);
    let new_record = record(&new, true, naming(None), limits).unwrap();
    let done = journal_of(5000, true);
    let done_record = record(&done, false, naming(Some("1")), limits).unwrap();
    let plain = serde_json::to_vec(&done).unwrap().len();
    assert!(
        plain > 8 * CONFIG_MAP_LIMIT,
        "{plain} bytes: not a test of the limit"
    );
    for record in [&new_record, &done_record] {
        assert!(
            record.bytes() <= limits.limit(true),
            "{} bytes",
            record.bytes()
        );
        let (main, parts) = written(record, Some("1"));
        // Each map's data (keys and values, as the apiserver counts them) fits.
        for map in std::iter::once(&main).chain(parts.values()) {
            let size: usize = map
                .binary_data
                .iter()
                .flatten()
                .map(|(k, v)| k.len() + v.0.len())
                .chain(map.data.iter().flatten().map(|(k, v)| k.len() + v.len()))
                .sum();
            assert!(size < CONFIG_MAP_LIMIT, "{size} bytes in one map");
        }
    }
    assert!(
        done_record.parts().len() >= 2,
        "{} bytes: the test no longer needs parts",
        done_record.bytes()
    );
}
