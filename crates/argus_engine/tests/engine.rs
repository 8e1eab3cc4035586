//! The engine's defined treatments: idempotency, lateness, point-in-time label release, privacy,
//! determinism, and snapshot/restore giving byte-identical results.

use crate::common;

use argus_engine::{replay, Config, CsvTable, Engine, Format, ParquetTable, ProcessError};
use argus_event::Value;
use serde_json::json;
use std::path::Path;

const CONFIG: &str = r#"
[entities]
kinds = ["terminal"]

[[event_types]]
name = "payment.attempt"
[event_types.fields]
terminal = { type = "id", entity = "terminal" }
fraud = { type = "int", label = { name = "fraud", delay = "7d" } }

[settings]
allowed_lateness = "1m"

[[features]]
name = "user_payments_1d"
kind = "count"
events = ["payment.attempt"]
key = ["actor"]
window = "1d"

[[features]]
name = "terminal_frauds_30d"
kind = "sum"
events = ["label.fraud"]
key = ["terminal"]
value = "value"
window = "30d"

[[features]]
name = "card_users_7d"
kind = "distinct"
events = ["payment.attempt"]
key = ["card"]
value = "actor"
window = "7d"
"#;

fn engine() -> Engine {
    Engine::new(Config::from_str(CONFIG, Path::new(".")).expect("test config is valid"))
}

fn pay(e: &Engine, id: &str, time: &str, user: &str, fraud: Option<i64>) -> argus_event::Event {
    let mut data = json!({"amount": "10.00", "terminal": "T1", "card": "4111 1111 1111 1111"});
    if let Some(f) = fraud {
        data["fraud"] = json!(f);
    }
    e.decoder().decode_json(&json!({"id": id, "type": "payment.attempt", "time": time, "actor": user, "data": data})).expect("valid event")
}

#[test]
fn duplicate_ids_are_recognised_and_change_nothing() {
    let mut e = engine();
    let a = pay(&e, "p1", "2026-01-01T00:00:00Z", "u1", None);
    assert_eq!(e.process(&a).unwrap().features[0], Value::Int(1));
    let before = e.snapshot();
    let again = pay(&e, "p1", "2026-01-01T00:00:01Z", "u1", None);
    assert_eq!(
        e.process(&again).unwrap_err(),
        ProcessError::Duplicate("p1".into())
    );
    assert_eq!(e.counters().duplicates, 1);
    // Only the counter moved.
    let b = pay(&e, "p2", "2026-01-01T00:00:02Z", "u1", None);
    assert_eq!(e.process(&b).unwrap().features[0], Value::Int(2));
    assert_ne!(before, e.snapshot());
}

#[test]
fn late_events_within_lateness_are_placed_and_later_ones_refused() {
    let mut e = engine();
    let a = pay(&e, "a", "2026-01-01T12:00:00Z", "u1", None);
    e.process(&a).unwrap();
    // 30 s late: accepted, sees itself and the later event? No: only events at or before its own time.
    let late = pay(&e, "b", "2026-01-01T11:59:30Z", "u1", None);
    assert_eq!(e.process(&late).unwrap().features[0], Value::Int(1));
    // 2 min late: beyond the 1 min allowance.
    let too_late = pay(&e, "c", "2026-01-01T11:58:00Z", "u1", None);
    assert!(matches!(
        e.process(&too_late),
        Err(ProcessError::TooLate { .. })
    ));
    assert_eq!(e.counters().too_late, 1);
    let next = pay(&e, "d", "2026-01-01T12:00:10Z", "u1", None);
    assert_eq!(e.process(&next).unwrap().features[0], Value::Int(3));
}

#[test]
fn a_delayed_label_is_invisible_until_it_becomes_known() {
    let mut e = engine();
    let fraud = pay(&e, "f", "2026-01-01T00:00:00Z", "u1", Some(1));
    let kept = fraud.clone();
    let p = e.process(&fraud).unwrap();
    assert_eq!(
        p.features[1],
        Value::Int(0),
        "an event never sees its own label"
    );
    assert!(
        p.event.fields.iter().all(|v| *v != Value::Int(1)),
        "rules see the event without its label column"
    );
    assert_eq!(p.labels.len(), 1, "{:?}", p.labels);
    assert_eq!(p.labels[0].value, Value::Int(1));
    assert_eq!(
        p.labels[0].release_at,
        fraud.time + 7 * 86_400_000,
        "released 7 days later"
    );
    assert_eq!(fraud, kept, "the caller's event is not changed");
    let before = pay(&e, "g", "2026-01-07T23:59:59.999Z", "u2", None);
    assert_eq!(
        e.process(&before).unwrap().features[1],
        Value::Int(0),
        "1 ms before the label is known"
    );
    let at = pay(&e, "h", "2026-01-08T00:00:00Z", "u3", None);
    assert_eq!(
        e.process(&at).unwrap().features[1],
        Value::Int(1),
        "known exactly 7 days later"
    );
    assert_eq!(e.counters().labels_released, 1);
}

#[test]
fn personal_data_never_reaches_state_or_tables() {
    let mut e = engine();
    let ev = pay(&e, "p", "2026-01-01T00:00:00Z", "u1", Some(0));
    e.process(&ev).unwrap();
    let snap = e.snapshot();
    let needle = b"4111111111111111";
    assert!(
        !snap.windows(needle.len()).any(|w| w == needle),
        "card number in the snapshot"
    );
    assert!(format!("{ev:?}").contains("tk_"), "the card is a token");
}

#[test]
fn snapshot_at_any_point_then_replay_gives_identical_bytes() {
    let events =
        std::fs::read_to_string(common::root().join("examples/starter/events.ndjson")).unwrap();
    let cfg_path = common::root().join("examples/starter/argus.toml");
    let table = |e: &mut Engine, input: &str| -> Vec<u8> {
        let mut sink =
            CsvTable::new(Vec::new(), e.schema().clone(), &e.features().clone()).unwrap();
        replay(
            e,
            input.as_bytes(),
            Format::Ndjson,
            &mut [&mut sink],
            None,
            &mut |_| {},
        )
        .unwrap();
        sink.into_inner().unwrap()
    };
    let mut straight = Engine::new(Config::load(&cfg_path).unwrap());
    let full = table(&mut straight, &events);
    let mut again = Engine::new(Config::load(&cfg_path).unwrap());
    assert_eq!(
        full,
        table(&mut again, &events),
        "same input twice ⇒ identical bytes"
    );
    let lines: Vec<&str> = events.lines().collect();
    for cut in [0, 1, 7, 20, lines.len() - 1, lines.len()] {
        let (a, b) = (lines[..cut].join("\n"), lines[cut..].join("\n"));
        let mut first = Engine::new(Config::load(&cfg_path).unwrap());
        let head = table(&mut first, &a);
        let mut restored =
            Engine::restore(Config::load(&cfg_path).unwrap(), &first.snapshot()).unwrap();
        let tail = table(&mut restored, &b);
        let header_len = full.iter().position(|&c| c == b'\n').unwrap() + 1;
        let mut joined = head.clone();
        joined.extend_from_slice(&tail[header_len..]);
        assert_eq!(
            String::from_utf8(joined).unwrap(),
            String::from_utf8(full.clone()).unwrap(),
            "cut at {cut}"
        );
        assert_eq!(
            restored.snapshot(),
            straight.snapshot(),
            "state after cut at {cut}"
        );
    }
}

#[test]
fn snapshots_refuse_corruption_and_other_configurations() {
    let mut e = engine();
    let ev = pay(&e, "p", "2026-01-01T00:00:00Z", "u1", None);
    e.process(&ev).unwrap();
    let mut snap = e.snapshot();
    let other = Config::from_str(
        &CONFIG.replace("window = \"1d\"", "window = \"2d\""),
        Path::new("."),
    )
    .unwrap();
    assert!(matches!(
        Engine::restore(other, &snap),
        Err(argus_engine::SnapshotError::Incompatible(_))
    ));
    let n = snap.len();
    snap[n / 2] ^= 1;
    let cfg = Config::from_str(CONFIG, Path::new(".")).unwrap();
    assert!(matches!(
        Engine::restore(cfg.clone(), &snap),
        Err(argus_engine::SnapshotError::Corrupt(_))
    ));
    assert!(matches!(
        Engine::restore(cfg, b"nonsense"),
        Err(argus_engine::SnapshotError::Corrupt(_))
    ));
}

#[test]
fn bad_records_are_reported_and_never_half_applied() {
    let good = r#"{"id":"1","type":"payment.attempt","time":"2026-01-01T00:00:00Z","actor":"u1","data":{"amount":"5","terminal":"T1"}}
{"id":"2","type":"payment.attempt","time":"2026-01-01T00:00:01Z","actor":"u1","data":{"amount":"5","terminal":"T1"}}
"#;
    let with_bad = r#"{"id":"1","type":"payment.attempt","time":"2026-01-01T00:00:00Z","actor":"u1","data":{"amount":"5","terminal":"T1"}}
{"id":"x","type":"payment.attempt","time":"2026-01-01T00:00:00Z","actor":"u1","data":{"amount":"five","terminal":"T1"}}
not json at all
{"id":"y","type":"payment.attempt","time":"2026-01-01T00:00:00Z","actor":"u1","data":{"amount":"5","terminal":"T1","card":"12"}}
{"id":"2","type":"payment.attempt","time":"2026-01-01T00:00:01Z","actor":"u1","data":{"amount":"5","terminal":"T1"}}
"#;
    let mut a = engine();
    replay(
        &mut a,
        good.as_bytes(),
        Format::Ndjson,
        &mut [],
        None,
        &mut |_| {},
    )
    .unwrap();
    let mut b = engine();
    let mut rejects = Vec::new();
    let stats = replay(
        &mut b,
        with_bad.as_bytes(),
        Format::Ndjson,
        &mut [],
        Some(&mut rejects),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(stats.rejected_total(), 3);
    assert_eq!(
        a.snapshot(),
        b.snapshot(),
        "refused records leave no trace in state"
    );
    let rejects = String::from_utf8(rejects).unwrap();
    assert!(
        rejects.contains("/data/amount")
            && rejects.contains("invalid_json")
            && rejects.contains("/data/card"),
        "{rejects}"
    );
}

#[test]
fn parquet_table_reads_back() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::RowAccessor;
    let events =
        std::fs::read_to_string(common::root().join("examples/starter/events.ndjson")).unwrap();
    let mut e =
        Engine::new(Config::load(&common::root().join("examples/starter/argus.toml")).unwrap());
    let dir = std::env::temp_dir().join(format!("argus-pq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.parquet");
    let mut sink = ParquetTable::new(
        std::fs::File::create(&path).unwrap(),
        e.schema().clone(),
        &e.features().clone(),
    )
    .unwrap();
    let stats = replay(
        &mut e,
        events.as_bytes(),
        Format::Ndjson,
        &mut [&mut sink],
        None,
        &mut |_| {},
    )
    .unwrap();
    let r = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(
        r.metadata().file_metadata().num_rows() as u64,
        stats.accepted
    );
    let names: Vec<String> = r
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(names.len(), 3 + e.features().features.len());
    let first = r.get_row_iter(None).unwrap().next().unwrap().unwrap();
    assert_eq!(first.get_string(0).unwrap(), "evt-0001");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_count_never_rides_on_a_series_of_an_optional_value() {
    // `item_count` is optional on order.create: the sum sees only orders that carry it, the count all.
    let cfg = Config::from_str(
        r#"
[[features]]
name = "orders_1h"
kind = "count"
events = ["order.create"]
window = "1h"
[[features]]
name = "items_1h"
kind = "sum"
events = ["order.create"]
value = "item_count"
window = "1h"
"#,
        Path::new("."),
    )
    .unwrap();
    let mut e = Engine::new(cfg);
    let mut last = vec![];
    for (i, items) in [Some(2), None, None].into_iter().enumerate() {
        let mut data = json!({"order": format!("o{i}"), "amount": "1"});
        if let Some(n) = items {
            data["item_count"] = json!(n);
        }
        let ev = e.decoder().decode_json(&json!({"id": format!("{i}"), "type": "order.create", "time": 1_000 + i as i64, "actor": "u", "data": data})).unwrap();
        last = e.process(&ev).unwrap().features.to_vec();
    }
    assert_eq!(last, vec![Value::Int(3), Value::Int(2)]);
}

#[test]
fn the_same_id_of_two_entity_kinds_is_two_keys() {
    // `actor` is a user on order.create and (declared here) a seller on a custom type.
    let cfg = Config::from_str(
        r#"
[[event_types]]
name = "listing.create"
actor = "seller"
[event_types.fields]
item = { type = "id", entity = "item" }

[[features]]
name = "actor_events_1h"
kind = "count"
events = ["order.create", "listing.create"]
window = "1h"
"#,
        Path::new("."),
    )
    .unwrap();
    let mut e = Engine::new(cfg);
    let a = e.decoder().decode_json(&json!({"id": "1", "type": "order.create", "time": 1000, "actor": "s1", "data": {"order": "o", "amount": 1}})).unwrap();
    assert_eq!(e.process(&a).unwrap().features[0], Value::Int(1));
    let b = e.decoder().decode_json(&json!({"id": "2", "type": "listing.create", "time": 2000, "actor": "s1", "data": {"item": "i"}})).unwrap();
    assert_eq!(
        e.process(&b).unwrap().features[0],
        Value::Int(1),
        "seller s1 is not user s1"
    );
}

#[test]
fn a_null_required_field_is_missing() {
    let e = engine();
    let r = e
        .decoder()
        .decode_json(&json!({"id": "1", "type": "payment.attempt", "time": 0, "actor": null, "data": {"amount": null}}))
        .unwrap_err();
    let paths: Vec<(&str, &str)> = r.errors.iter().map(|x| (x.path.as_str(), x.code)).collect();
    assert!(
        paths.contains(&("/actor", "missing_field"))
            && paths.contains(&("/data/amount", "missing_field")),
        "{paths:?}"
    );
}

#[test]
fn a_snapshot_is_refused_under_another_pseudonymization_secret() {
    let mut e = engine();
    let ev = pay(&e, "p", "2026-01-01T00:00:00Z", "u1", None);
    e.process(&ev).unwrap();
    let other = Config::from_str(
        &format!("[privacy]\nsecret = \"another\"\n{CONFIG}"),
        Path::new("."),
    )
    .unwrap();
    assert!(
        matches!(Engine::restore(other, &e.snapshot()), Err(argus_engine::SnapshotError::Incompatible(m)) if m.contains("secret"))
    );
}

/// The server snapshots while events keep arriving: an incremental copy, interleaved with events in
/// small steps, must equal the state at the moment it finishes (same bytes as `snapshot()`). Keys that
/// expire (leave memory) during a copy are copied as removed; no copy has to start again.
#[test]
fn an_incremental_copy_taken_while_events_arrive_equals_the_snapshot_at_its_end() {
    let mut e = engine();
    // The copies spill their records to an unlinked file here.
    let spill = tempfile::tempdir().unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut t = 1_767_225_600_000i64; // 2026-01-01
    let (mut made, mut aborted) = (0, 0);
    let mut copy: Option<argus_engine::EngineCopy> = None;
    for i in 0..12_000u64 {
        t += next(90_000) as i64;
        let fraud = (next(10) == 0).then(|| next(2) as i64);
        let ev = pay(
            &e,
            &format!("e{i}"),
            &argus_event::time::format_rfc3339(t),
            &format!("u{}", next(300)),
            fraud,
        );
        e.process(&ev).unwrap();
        copy = match copy.take() {
            None if i % 400 == 0 => Some(e.begin_copy(Some(spill.path()))),
            None => None,
            Some(mut c) => match e.copy_step(&mut c, 5) {
                Ok(false) => Some(c),
                Ok(true) => {
                    let pending = e.finish_copy(c).unwrap();
                    assert_eq!(
                        pending.encode(),
                        e.snapshot(),
                        "copy finished after event {i}"
                    );
                    made += 1;
                    None
                }
                Err(_) => {
                    aborted += 1;
                    None
                }
            },
        };
    }
    assert!(made >= 25, "{made} copies finished");
    assert_eq!(aborted, 0, "expiry is incremental: nothing aborts a copy");
    assert!(
        e.feature_state().stats().keys_expired > 0,
        "the run must expire keys (during copies) to test anything"
    );
    // A copy finished early (in one step) is equal too, and holds the records encoded: less memory
    // than the state it copies.
    let c = e.begin_copy(Some(spill.path()));
    let pending = e.finish_copy(c).unwrap();
    let state: usize = e
        .feature_state()
        .partition_memory()
        .iter()
        .map(|p| p.bytes)
        .sum();
    assert!(pending.spilled_bytes() > 0 && pending.spill_error().is_none());
    assert!(
        pending.state_bytes() * 4 < state,
        "the copy holds {} bytes in memory, the state {state}",
        pending.state_bytes()
    );
    assert!(
        std::fs::read_dir(spill.path()).unwrap().next().is_none(),
        "the spill file is unlinked"
    );
    assert_eq!(pending.encode(), e.snapshot());
}

/// `[engine] dedupe_max_ids` bounds the idempotency ids whatever the TTL: the oldest are forgotten,
/// deterministically, and an incremental copy taken while ids are forgotten still equals the
/// snapshot at its end. A forced copy (`usize::MAX` budget, the server's shutdown) does not overflow.
#[test]
fn idempotency_ids_are_capped_and_copies_skip_the_forgotten_ones() {
    let cfg = CONFIG.replacen("[engine]", "[engine]\ndedupe_max_ids = 300", 1);
    let cfg = if cfg.contains("dedupe_max_ids") {
        cfg
    } else {
        format!("{CONFIG}\n[engine]\ndedupe_max_ids = 300\n")
    };
    let mut e = Engine::new(Config::from_str(&cfg, Path::new(".")).expect("valid"));
    let mut t = 1_767_225_600_000i64;
    let mut copy: Option<argus_engine::EngineCopy> = None;
    let mut made = 0;
    for i in 0..5_000u64 {
        t += 1_000;
        let ev = pay(
            &e,
            &format!("e{i}"),
            &argus_event::time::format_rfc3339(t),
            &format!("u{}", i % 40),
            None,
        );
        e.process(&ev).unwrap();
        assert!(e.idempotency_ids() <= 300);
        copy = match copy.take() {
            None if i % 97 == 0 => Some(e.begin_copy(None)),
            None => None,
            Some(mut c) => match e.copy_step(&mut c, 3) {
                Ok(false) => Some(c),
                Ok(true) => {
                    assert_eq!(
                        e.finish_copy(c).unwrap().encode(),
                        e.snapshot(),
                        "copy finished after event {i}"
                    );
                    made += 1;
                    None
                }
                Err(_) => None,
            },
        };
    }
    assert!(made >= 10, "{made} copies finished");
    assert_eq!(e.idempotency_ids(), 300);
    // The newest ids are still known; the oldest are forgotten (a resent old id is applied again).
    let recent = pay(&e, "e4999", "2026-01-01T02:00:00Z", "u1", None);
    assert!(matches!(
        e.process(&recent),
        Err(argus_engine::ProcessError::Duplicate(_))
    ));
    // A forced copy in one step, with ids present (it used to overflow: `slice index starts at …`).
    let mut c = e.begin_copy(None);
    assert!(e.copy_step(&mut c, usize::MAX).unwrap());
    assert_eq!(e.finish_copy(c).unwrap().encode(), e.snapshot());
}

/// Snapshot fingerprints come from a canonical encoding of the definitions, not from `Debug`: the
/// starter configuration's is pinned here (a change to it is a change to every deployment's
/// snapshots, and must be deliberate). A snapshot under other feature definitions, and one written by
/// an earlier format (`ARGUSSN3`, before partitions), are refused with what to do.
#[test]
fn feature_fingerprints_are_canonical_and_other_snapshots_are_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cfg = Config::load(&root.join("examples/starter/argus.toml")).unwrap();
    let again = Config::load(&root.join("examples/starter/argus.toml")).unwrap();
    assert_eq!(cfg.features.fingerprint(), again.features.fingerprint());
    assert_eq!(
        format!("{:016x}", cfg.features.fingerprint()),
        "c913af2787f81c31",
        "the canonical fingerprint of the starter features changed"
    );
    // `magic | schema_fp | features_fp | … | crc32`: another features fingerprint.
    let e = engine();
    let mut snap = e.snapshot();
    let n = snap.len();
    snap[16..24].copy_from_slice(&12345u64.to_le_bytes());
    let crc = crc32fast::hash(&snap[8..n - 4]);
    snap[n - 4..].copy_from_slice(&crc.to_le_bytes());
    let cfg = Config::from_str(CONFIG, Path::new(".")).unwrap();
    assert!(matches!(
        Engine::restore(cfg.clone(), &snap),
        Err(argus_engine::SnapshotError::Incompatible(m)) if m.contains("feature definitions")
    ));
    let mut old = e.snapshot();
    old[..8].copy_from_slice(b"ARGUSSN3");
    assert!(matches!(
        Engine::restore(cfg, &old),
        Err(argus_engine::SnapshotError::Incompatible(m)) if m.contains("another version")
    ));
}
