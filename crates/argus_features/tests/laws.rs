//! Aggregator laws, checked on random streams: exact windows equal a brute-force scan; bucketed windows
//! equal a scan over exactly the bucket-aligned span the docs state; snapshot/restore and expiry change
//! nothing observable; merging the states of two partitions equals processing the whole stream.

use argus_event::schema::Schema;
use argus_event::{Event, Value};
use argus_features::{FeatureSet, FeatureState};
use proptest::prelude::*;

const SCHEMA: &str = r#"
[entities]
kinds = ["acct"]
[[event_types]]
name = "tick"
[event_types.fields]
k = { type = "id", entity = "acct", required = true }
v = { type = "int", required = true }
[[event_types]]
name = "probe"
[event_types.fields]
k = { type = "id", entity = "acct", required = true }
"#;

/// Windows in seconds: 10, 60, 600 (offset 30), and bucketed 60 (6 buckets of 10 s).
const FEATURES: &str = r#"
[settings]
allowed_lateness = "20s"
[[features]]
name = "n10"
kind = "count"
events = ["tick"]
key = ["k"]
window = "10s"
[[features]]
name = "s60"
kind = "sum"
events = ["tick"]
key = ["k"]
value = "v"
window = "60s"
[[features]]
name = "min60"
kind = "min"
events = ["tick"]
key = ["k"]
value = "v"
window = "60s"
[[features]]
name = "max600_off30"
kind = "max"
events = ["tick"]
key = ["k"]
value = "v"
window = "600s"
offset = "30s"
[[features]]
name = "d60"
kind = "distinct"
events = ["tick"]
key = ["k"]
value = "v"
window = "60s"
[[features]]
name = "avg600"
kind = "avg"
events = ["tick"]
key = ["k"]
value = "v"
window = "600s"
[[features]]
name = "bn60"
kind = "count"
events = ["tick"]
key = ["k"]
window = "60s"
mode = "bucketed"
buckets = 6
[[features]]
name = "bs60"
kind = "sum"
events = ["tick"]
key = ["k"]
value = "v"
window = "60s"
mode = "bucketed"
buckets = 6
[[features]]
name = "life_n"
kind = "count"
events = ["tick"]
key = ["k"]
window = "lifetime"
[[features]]
name = "life_d"
kind = "distinct"
events = ["tick"]
key = ["k"]
value = "v"
window = "lifetime"
[[features]]
name = "first"
kind = "first_seen"
events = ["tick"]
key = ["k"]
"#;

fn setup() -> (Schema, FeatureSet) {
    let schema = Schema::load(&[Schema::parse_config(SCHEMA).unwrap()]).unwrap();
    let fs = FeatureSet::from_toml(&schema, FEATURES).unwrap();
    (schema, fs)
}

fn tick(schema: &Schema, k: u8, t: i64, v: i64) -> Event {
    let ty = schema.type_id("tick").unwrap();
    Event {
        id: String::new(),
        ty,
        time: t,
        fields: vec![
            Value::Str("someone".into()),
            Value::Str(format!("a{k}").into()),
            Value::Int(v),
        ],
    }
}

fn probe(schema: &Schema, k: u8, t: i64) -> Event {
    let ty = schema.type_id("probe").unwrap();
    Event {
        id: String::new(),
        ty,
        time: t,
        fields: vec![
            Value::Str("someone".into()),
            Value::Str(format!("a{k}").into()),
        ],
    }
}

/// A stream with bounded disorder: times mostly increase; some step back by up to 20 s (the lateness).
fn stream() -> impl Strategy<Value = Vec<(u8, i64, i64, bool)>> {
    prop::collection::vec(
        (0u8..3, 0i64..15_000, -50i64..50, prop::bool::weighted(0.15)),
        1..300,
    )
    .prop_map(|raw| {
        let mut t = 1_000_000i64;
        let mut max = t;
        raw.into_iter()
            .map(|(k, dt, v, late)| {
                t += dt;
                max = max.max(t);
                let at = if late {
                    (max - 20_000).max(t - dt * 2).max(max - 20_000)
                } else {
                    max
                };
                t = max;
                (k, at, v, late)
            })
            .collect()
    })
}

fn in_order(s: &[(u8, i64, i64, bool)]) -> Vec<(u8, i64, i64, bool)> {
    let mut max = i64::MIN;
    s.iter()
        .map(|&(k, t, v, l)| {
            max = max.max(t);
            (k, max, v, l)
        })
        .collect()
}

fn run(
    schema: &Schema,
    fs: &FeatureSet,
    st: &mut FeatureState,
    s: &[(u8, i64, i64, bool)],
    seq0: u64,
) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    for (i, &(k, t, v, _)) in s.iter().enumerate() {
        let mut o = vec![Value::Null; fs.features.len()];
        st.apply(
            fs,
            &tick(schema, k, t, v),
            seq0 + i as u64 + 1,
            Some(&mut o),
        );
        out.push(o);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn exact_windows_equal_a_brute_force_scan(s in stream()) {
        let (schema, fs) = setup();
        let mut st = FeatureState::new(&fs);
        let got = run(&schema, &fs, &mut st, &s, 0);
        for (i, &(k, t, _, _)) in s.iter().enumerate() {
            let seen: Vec<(i64, i64)> = s[..=i].iter().filter(|e| e.0 == k).map(|e| (e.1, e.2)).collect();
            let win = |w: i64, off: i64| -> Vec<i64> {
                seen.iter().filter(|(x, _)| *x > t - off - w && *x <= t - off).map(|(_, v)| *v).collect()
            };
            prop_assert_eq!(&got[i][0], &Value::Int(win(10_000, 0).len() as i64));
            prop_assert_eq!(&got[i][1], &Value::Int(win(60_000, 0).iter().sum()));
            let w60 = win(60_000, 0);
            prop_assert_eq!(&got[i][2], &w60.iter().min().map_or(Value::Null, |m| Value::Int(*m)));
            let w600 = win(600_000, 30_000);
            prop_assert_eq!(&got[i][3], &w600.iter().max().map_or(Value::Null, |m| Value::Int(*m)));
            let mut d = w60.clone();
            d.sort_unstable();
            d.dedup();
            prop_assert_eq!(&got[i][4], &Value::Int(d.len() as i64));
            let a = win(600_000, 0);
            let avg = if a.is_empty() { Value::Null } else { Value::Float(a.iter().sum::<i64>() as f64 / a.len() as f64) };
            match (&got[i][5], &avg) {
                (Value::Float(x), Value::Float(y)) => prop_assert!((x - y).abs() < 1e-9),
                (x, y) => prop_assert_eq!(x, y),
            }
            prop_assert_eq!(&got[i][8], &Value::Int(seen.len() as i64));
            let mut all: Vec<i64> = seen.iter().map(|e| e.1).collect();
            all.sort_unstable();
            all.dedup();
            // Lifetime distinct: exact up to 64 values, a HyperLogLog estimate (2.3 % standard error) beyond.
            if all.len() <= argus_features::sketch::EXACT_LIMIT {
                prop_assert_eq!(&got[i][9], &Value::Int(all.len() as i64));
            } else {
                let Value::Int(est) = got[i][9] else { unreachable!() };
                prop_assert!((est - all.len() as i64).abs() as f64 <= 0.1 * all.len() as f64);
            }
            prop_assert_eq!(&got[i][10], &Value::Time(seen.iter().map(|e| e.0).min().unwrap()));
        }
    }

    #[test]
    fn bucketed_windows_cover_exactly_the_documented_span(s in stream()) {
        // In-order streams: a bucketed 60 s window of 10 s buckets at time t covers
        // [(floor((t − 60 s) / 10 s) + 1) · 10 s, t].
        let s = in_order(&s);
        let (schema, fs) = setup();
        let mut st = FeatureState::new(&fs);
        let got = run(&schema, &fs, &mut st, &s, 0);
        for (i, &(k, t, _, _)) in s.iter().enumerate() {
            let lo = ((t - 60_000).div_euclid(10_000) + 1) * 10_000;
            let span: Vec<i64> = s[..=i].iter().filter(|e| e.0 == k && e.1 >= lo && e.1 <= t).map(|e| e.2).collect();
            prop_assert_eq!(&got[i][6], &Value::Int(span.len() as i64));
            prop_assert_eq!(&got[i][7], &Value::Int(span.iter().sum()));
            // …and so lies between the exact counts over 50 s and 60 s.
            let n = |w: i64| s[..=i].iter().filter(|e| e.0 == k && e.1 > t - w && e.1 <= t).count() as i64;
            let Value::Int(b) = got[i][6] else { unreachable!() };
            prop_assert!(n(50_000) <= b && b <= n(60_000));
        }
    }

    /// Values near the largest a sum can hold (± 9.2 × 10¹² units): a window's sum is the exact
    /// sum while it fits, and saturates at the bound it passes, never wrapping round to the other
    /// sign. Before, two values of 5 × 10¹² summed to −8.4 × 10¹² (a 24-hour spend read as
    /// negative, and a spend rule did not fire). Bucketed windows: with values of one sign
    /// (a bucket's own sum saturates as it is added to, so mixed signs past the bound depend on
    /// the order within a bucket).
    #[test]
    fn sums_past_the_bound_saturate_instead_of_wrapping(
        s in stream(),
        huge in prop::collection::vec(-9_000_000_000_000i64..9_000_000_000_000, 300),
    ) {
        let s: Vec<_> = s.iter().zip(&huge).map(|(&(k, t, _, l), &v)| (k, t, v, l)).collect();
        let (schema, fs) = setup();
        let mut st = FeatureState::new(&fs);
        let got = run(&schema, &fs, &mut st, &s, 0);
        let clamp = |x: i128| (x.clamp(i64::MIN as i128, i64::MAX as i128) as i64) / 1_000_000;
        for (i, &(k, t, _, _)) in s.iter().enumerate() {
            let exact: i128 = s[..=i].iter()
                .filter(|e| e.0 == k && e.1 > t - 60_000 && e.1 <= t)
                .map(|e| e.2 as i128 * 1_000_000)
                .sum();
            prop_assert_eq!(&got[i][1], &Value::Int(clamp(exact)), "event {}", i);
        }
        // Bucketed, in order, values of one sign.
        let pos: Vec<_> = in_order(&s).into_iter().map(|(k, t, v, l)| (k, t, v.abs(), l)).collect();
        let mut st = FeatureState::new(&fs);
        let got = run(&schema, &fs, &mut st, &pos, 0);
        for (i, &(k, t, _, _)) in pos.iter().enumerate() {
            let lo = ((t - 60_000).div_euclid(10_000) + 1) * 10_000;
            let exact: i128 = pos[..=i].iter()
                .filter(|e| e.0 == k && e.1 >= lo && e.1 <= t)
                .map(|e| e.2 as i128 * 1_000_000)
                .sum();
            prop_assert_eq!(&got[i][7], &Value::Int(clamp(exact)), "event {}", i);
        }
        // The state restores to the same answers (the bound is derived from the entries).
        let bytes = st.snapshot();
        let restored = FeatureState::restore(&fs, &bytes).unwrap();
        prop_assert_eq!(restored.snapshot(), bytes);
    }

    #[test]
    fn snapshot_restore_continues_identically(s in stream(), cut in 0usize..300) {
        let (schema, fs) = setup();
        let cut = cut.min(s.len());
        let mut straight = FeatureState::new(&fs);
        let all = run(&schema, &fs, &mut straight, &s, 0);
        let mut first = FeatureState::new(&fs);
        run(&schema, &fs, &mut first, &s[..cut], 0);
        let bytes = first.snapshot();
        let mut restored = FeatureState::restore(&fs, &bytes).unwrap();
        prop_assert_eq!(restored.snapshot(), bytes);
        let rest = run(&schema, &fs, &mut restored, &s[cut..], cut as u64);
        prop_assert_eq!(&all[cut..], &rest[..]);
        prop_assert_eq!(straight.snapshot(), restored.snapshot());
    }

    #[test]
    fn expiry_changes_no_readable_value(s in stream()) {
        let (schema, fs) = setup();
        let mut a = FeatureState::new(&fs);
        run(&schema, &fs, &mut a, &s, 0);
        let mut b = a.clone();
        let watermark = s.iter().map(|e| e.1).max().unwrap();
        b.expire(&fs, watermark);
        for k in 0..3 {
            for dt in [-20_000i64, 0, 5_000] {
                let p = probe(&schema, k, watermark + dt);
                let (mut oa, mut ob) = (vec![Value::Null; fs.features.len()], vec![Value::Null; fs.features.len()]);
                a.apply(&fs, &p, 1_000_000, Some(&mut oa));
                b.apply(&fs, &p, 1_000_000, Some(&mut ob));
                prop_assert_eq!(oa, ob);
            }
        }
        // Far in the future, expiry drops every windowed key but keeps lifetime state within idle_ttl.
        let mut c = a.clone();
        c.expire(&fs, watermark + 700_000);
        prop_assert!(c.key_count() <= 3);
    }

    #[test]
    fn merging_partitions_equals_processing_the_whole(s in stream(), split in prop::collection::vec(any::<bool>(), 300)) {
        let s = in_order(&s);
        let (schema, fs) = setup();
        let mut whole = FeatureState::new(&fs);
        run(&schema, &fs, &mut whole, &s, 0);
        let (mut a, mut b) = (FeatureState::new(&fs), FeatureState::new(&fs));
        for (i, &(k, t, v, _)) in s.iter().enumerate() {
            let target = if split[i] { &mut a } else { &mut b };
            target.apply(&fs, &tick(&schema, k, t, v), i as u64 + 1, None);
        }
        let mut ab = a.clone();
        ab.merge(&fs, &b);
        let mut ba = b.clone();
        ba.merge(&fs, &a);
        let end = s.iter().map(|e| e.1).max().unwrap();
        for k in 0..3 {
            let p = probe(&schema, k, end);
            let mut ow = vec![Value::Null; fs.features.len()];
            let mut o1 = vec![Value::Null; fs.features.len()];
            let mut o2 = vec![Value::Null; fs.features.len()];
            whole.apply(&fs, &p, 1_000_000, Some(&mut ow));
            ab.apply(&fs, &p, 1_000_000, Some(&mut o1));
            ba.apply(&fs, &p, 1_000_000, Some(&mut o2));
            prop_assert_eq!(&ow, &o1);
            prop_assert_eq!(&o1, &o2);
        }
    }
}

/// Two series of one key fed by different event types (a key can come back with only one of them),
/// and no lifetime series (which never die): every key can die.
const REVIVAL_FEATURES: &str = r#"
[[features]]
name = "ticks_10s"
kind = "count"
events = ["tick"]
key = ["k"]
window = "10s"
[[features]]
name = "probes_60s"
kind = "count"
events = ["probe"]
key = ["k"]
window = "60s"
mode = "bucketed"
buckets = 6
"#;

fn revival_setup() -> (Schema, FeatureSet) {
    let schema = Schema::load(&[Schema::parse_config(SCHEMA).unwrap()]).unwrap();
    let fs = FeatureSet::from_toml(&schema, REVIVAL_FEATURES).unwrap();
    (schema, fs)
}

/// A `tick` (of value 0) or a `probe` of key `a<k>` at `t`.
fn revival_event(schema: &Schema, ty: &str, k: u8, t: i64) -> Event {
    match ty {
        "tick" => tick(schema, k, t, 0),
        _ => probe(schema, k, t),
    }
}

/// Two states of the same events, one with its dead keys still in memory and one without: 99 keys
/// that die first (more than expiry removes in one event), then the `last` events (type, key) at
/// the same time, then an hour later one `tick` of key `live`, when all the others are dead. Also
/// the time of that last event.
fn dead_keys(
    schema: &Schema,
    fs: &FeatureSet,
    last: &[(&str, u8)],
    live: u8,
) -> (FeatureState, FeatureState, i64) {
    let t0 = 1_000_000i64;
    let mut kept = FeatureState::new(fs);
    let evs = (1..100)
        .map(|k| revival_event(schema, "tick", k, t0 - 1_000 + k as i64))
        .chain(last.iter().map(|(ty, k)| revival_event(schema, ty, *k, t0)))
        .chain([revival_event(schema, "tick", live, t0 + 3_600_000)]);
    for (seq, e) in evs.enumerate() {
        kept.apply(fs, &e, seq as u64 + 1, None);
    }
    let mut removed = kept.clone();
    removed.expire(fs, t0 + 3_600_000);
    assert!(
        kept.key_count() > removed.key_count(),
        "the premise: the state keeps dead keys that expiry has not reached yet"
    );
    (kept, removed, t0 + 3_600_000)
}

/// A key whose every series died comes back as a new key, whether or not expiry had removed it from
/// memory yet: the same state (snapshot bytes, partition digests), not only the same answers. Expiry
/// removes a bounded number of dead keys per event, so when it gets to one depends on how many
/// others died with it and on the partition count — different on a sharded cluster's nodes and an
/// embedded node, and on a partition rebuilt from a snapshot (which holds no dead keys). A key kept
/// in memory used to come back with its dead series' old contents (a sharded node's partition digest
/// then differed from the embedded node's, its decisions did not).
#[test]
fn a_dead_key_comes_back_as_a_new_key_whether_or_not_expiry_removed_it() {
    let (schema, fs) = revival_setup();
    let ev = |ty: &str, k: u8, t: i64| revival_event(&schema, ty, k, t);
    let (mut kept, mut removed, later) = dead_keys(&schema, &fs, &[("tick", 0), ("probe", 0)], 250);
    let mut seq = 1_000u64;
    let mut apply = |st: &mut FeatureState, e: &Event| {
        seq += 1;
        let mut o = vec![Value::Null; fs.features.len()];
        st.apply(&fs, e, seq, Some(&mut o));
        o
    };
    // Key 0 comes back through one of its series only.
    let a = apply(&mut kept, &ev("tick", 0, later + 1));
    let b = apply(&mut removed, &ev("tick", 0, later + 1));
    assert_eq!(a, b, "the same answers");
    assert_eq!(
        kept.partition_digests(1),
        removed.partition_digests(1),
        "the same state: {:?} against {:?}",
        kept.partition_records(1, 0),
        removed.partition_records(1, 0)
    );
    assert_eq!(kept.snapshot(), removed.snapshot());
    // And through the other.
    let a = apply(&mut kept, &ev("probe", 0, later + 2));
    let b = apply(&mut removed, &ev("probe", 0, later + 2));
    assert_eq!(a, b);
    assert_eq!(kept.snapshot(), removed.snapshot());
}

/// Erasure's deletion (`forget`) counts the live records it deleted, not the dead ones expiry had
/// not reached yet, and leaves the same state whether or not expiry had removed them; a key of a
/// partition the state does not hold (a sharded node's) has nothing to delete, and the partition
/// stays not held.
#[test]
fn erasure_deletes_the_same_records_whether_or_not_expiry_removed_the_dead_ones() {
    let (schema, fs) = revival_setup();
    let ev = |ty: &str, k: u8, t: i64| revival_event(&schema, ty, k, t);
    let key = |k: u8| {
        let e = ev("tick", k, 0);
        let ep = &fs.plans[e.ty as usize].entities[0];
        argus_features::state::key_digest(&e.fields, &ep.key_slots, ep.seed).unwrap()
    };
    // Keys 0 and 100 die last; key 200 lives.
    let (mut kept, mut removed, _) = dead_keys(&schema, &fs, &[("probe", 0), ("probe", 100)], 200);
    let before = kept.key_count();
    let keys = [(0, key(200)), (0, key(0)), (0, key(100)), (0, key(201))];
    let a = kept.forget(&keys);
    let b = removed.forget(&keys);
    assert_eq!((a, b), (1, 1), "the live record counted, the dead ones not");
    assert_eq!(kept.key_count(), before - 3, "key 201 never had a record");
    assert_eq!(kept.snapshot(), removed.snapshot());
    assert_eq!(kept.partition_digests(1), removed.partition_digests(1));
    // Partitioned in four: where key 250's partition is not held, it has nothing to delete, and
    // the partition stays not held; a restore (which holds every partition) is cut back to it.
    let mut cut = FeatureState::restore_partitioned(&fs, &kept.snapshot(), 4).unwrap();
    let p = argus_features::state::partition_of(key(250), 4);
    cut.apply(&fs, &ev("tick", 250, 5_000_000), 10_000, None);
    // A probe far older than its series' buckets reach back: counted, not applied.
    cut.apply(&fs, &ev("probe", 250, 5_000_000), 10_001, None);
    cut.apply(&fs, &ev("probe", 250, 5_000_000 - 86_400_000), 10_002, None);
    let mut whole = cut.clone();
    cut.release(&fs, p);
    assert_eq!(whole.forget(&[(0, key(250))]), 1);
    assert_eq!(cut.forget(&[(0, key(250))]), 0);
    assert!(!cut.held()[p]);
    let held = cut.held().to_vec();
    let mut again = FeatureState::restore_partitioned(&fs, &cut.snapshot(), 4).unwrap();
    assert!(again.held()[p], "a restore holds every partition");
    let counted = again.stats();
    assert!(
        counted.bucket_too_old > 0,
        "the premise: the snapshot carries a counter: {counted:?}"
    );
    again.hold_only(&fs, &held);
    assert_eq!(again.held(), &held[..]);
    // The counters a restore puts in partition 0 stay when it is released (they were lost).
    again.release(&fs, 0);
    assert_eq!(again.stats(), counted);
}
