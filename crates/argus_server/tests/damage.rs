//! The damage suite: every kind of damage to a data directory that an operator, a disk or a crash can
//! cause, and the one outcome each must have (docs/server.md, "Damage to the data directory"):
//!
//! - **recovered**: the server starts, every acknowledged event answers with its decision, and the
//!   state digest equals that of the undamaged directory;
//! - **refused**: the server does not start, and its message names the damaged file (and the byte
//!   offset where there is one).
//!
//! A torn tail (a crash part-way through the last write) is the only damage that may be cut, because
//! the records in it were never acknowledged.

use argus_server::{Loader, Server, Settings};
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn loader() -> Loader {
    let config = repo().join("examples/starter/argus.toml");
    let policies = repo().join("policies");
    Arc::new(move || {
        let cfg = argus_engine::Config::load(&config)?;
        let loaded =
            argus_policy::load_dir(&policies, &cfg.schema, &cfg.features, &cfg.pseudonymizer)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok((cfg, Some(loaded)))
    })
}

fn settings(dir: &Path) -> Settings {
    let mut s = Settings {
        data_dir: dir.to_path_buf(),
        fsync: argus_server::wal::Fsync::Never,
        segment_bytes: 4096,
        snapshot_every_events: 40,
        ..Settings::default()
    };
    // These events fire the same rules on almost every event, which the blast-radius guard would
    // pause part-way: the decisions' sizes, and so the segments' layout this suite relies on (records
    // after a damaged one in the newest segment), would then depend on it. Damage is about the log.
    s.lifecycle.guard.enabled = false;
    s
}

async fn call(s: &Server, method: &str, uri: &str, body: String) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .unwrap();
    let resp = s.router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn event(i: usize) -> String {
    let t = format!("2026-11-20T09:{:02}:{:02}Z", i / 60, i % 60);
    match i % 3 {
        0 => json!({"id": format!("e{i}"), "type": "account.register", "time": t, "actor": format!("u{}", i % 17),
                    "data": {"email": format!("u{i}@example.com"), "device": format!("d{}", i % 5), "ip": "81.2.69.10", "country": "GB"}}),
        1 => json!({"id": format!("e{i}"), "type": "account.login", "time": t, "actor": format!("u{}", i % 17),
                    "data": {"success": !i.is_multiple_of(4), "device": format!("d{}", i % 5), "ip": "81.2.69.11", "country": "GB"}}),
        _ => json!({"id": format!("e{i}"), "type": "cart.add", "time": t, "actor": format!("u{}", i % 17), "data": {"item": "i1", "seller": "s1"}}),
    }
    .to_string()
}

const EVENTS: usize = 120;

/// A data directory with many segments and snapshots, every event acknowledged.
async fn build(dir: &Path) {
    let s = Server::start(settings(dir), loader()).expect("starts");
    for i in 0..EVENTS {
        let (st, v) = call(&s, "POST", "/v1/events", event(i)).await;
        assert_eq!(st, 200, "{v}");
        // Let a snapshot or two finish along the way.
        if i % 40 == 39 {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }
    s.shutdown().await;
}

/// Starts on `dir` and checks everything acknowledged is there; returns the state digest.
async fn recovered(dir: &Path, case: &str) -> String {
    let s = match Server::start(settings(dir), loader()) {
        Ok(s) => s,
        Err(e) => panic!("{case}: expected recovery, got: {e}"),
    };
    for i in 0..EVENTS {
        let (st, v) = call(&s, "GET", &format!("/v1/decisions/e{i}"), String::new()).await;
        assert_eq!(st, 200, "{case}: acknowledged event e{i} lost: {v}");
    }
    // The log goes on after the last acknowledged record.
    let (st, v) = call(&s, "POST", "/v1/events", event(EVENTS)).await;
    assert_eq!(
        (st, v["seq"].as_u64()),
        (200, Some(EVENTS as u64 + 1)),
        "{case}: {v}"
    );
    let (_, d) = call(&s, "GET", "/v1/admin/digest", String::new()).await;
    s.shutdown().await;
    d["state_digest"].as_str().unwrap_or_default().to_string()
}

fn refused(dir: &Path, case: &str, names: &str, offset: Option<u64>) {
    let e = match Server::start(settings(dir), loader()) {
        Ok(s) => {
            drop(s);
            panic!("{case}: expected a refusal, the server started");
        }
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(names),
        "{case}: the message must name `{names}`: {e}"
    );
    if let Some(o) = offset {
        assert!(
            e.contains(&format!("at byte {o}")),
            "{case}: the message must give byte {o}: {e}"
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &p);
        } else {
            std::fs::copy(e.path(), p).unwrap();
        }
    }
}

fn segments(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

fn snapshot_files(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Byte offsets of the records of a segment.
fn record_offsets(seg: &Path) -> Vec<usize> {
    let b = std::fs::read(seg).unwrap();
    let mut offs = Vec::new();
    let mut off = 0;
    while off + 8 <= b.len() {
        offs.push(off);
        off += 8 + u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
    }
    offs
}

fn flip(path: &Path, at: usize, mask: u8) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= mask;
    std::fs::write(path, b).unwrap();
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[tokio::test]
async fn every_kind_of_damage_is_recovered_or_refused() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    build(&base).await;
    let segs = segments(&base);
    assert!(segs.len() >= 6, "the suite needs many segments: {segs:?}");
    assert!(!snapshot_files(&base).is_empty(), "and snapshots");
    let baseline = {
        let d = root.path().join("undamaged");
        copy_dir(&base, &d);
        let digest = recovered(&d, "undamaged").await;
        assert!(!digest.is_empty());
        digest
    };
    // Each case recovers on its own copy of the data directory after the digest run above, which
    // appended one event: compare digests against a baseline that did the same.
    let mut n = 0;
    let case = |n: &mut usize| {
        *n += 1;
        let d = root.path().join(format!("case{n}"));
        copy_dir(&base, &d);
        d
    };
    let newest = |d: &Path| segments(d).last().unwrap().clone();
    let middle = |d: &Path| segments(d)[segments(d).len() / 2].clone();

    // ---- recovered ----
    // A torn tail: part of a record after the last acknowledged one (a crash mid-write).
    let d = case(&mut n);
    let seg = newest(&d);
    let last = *record_offsets(&seg).last().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let mut torn = bytes.clone();
    torn.extend_from_slice(&bytes[last..last + (bytes.len() - last) / 2]);
    std::fs::write(&seg, torn).unwrap();
    assert_eq!(recovered(&d, "torn tail").await, baseline, "torn tail");

    // A tail the file system filled with zeros.
    let d = case(&mut n);
    let seg = newest(&d);
    let mut b = std::fs::read(&seg).unwrap();
    b.extend(std::iter::repeat_n(0u8, 4096));
    std::fs::write(&seg, b).unwrap();
    assert_eq!(recovered(&d, "zero-filled tail").await, baseline);

    // A new segment whose first write was torn (named right after the newest, holding garbage).
    let d = case(&mut n);
    let next = EVENTS as u64 + 1;
    std::fs::write(
        d.join("log").join(format!("wal-{next:020}.log")),
        b"\x07\x00\x00\x00garbage",
    )
    .unwrap();
    assert_eq!(
        recovered(&d, "torn first write of a new segment").await,
        baseline
    );

    // Snapshots: damaged, truncated, zero-filled, deleted, renamed, or an extra one of random bytes.
    // The log still reaches back, so the state is rebuilt from an older snapshot or from the start.
    for (what, damage) in [
        ("newest snapshot flipped", 0),
        ("every snapshot truncated", 1),
        ("newest snapshot zero-filled", 2),
        ("every snapshot deleted", 3),
        ("snapshot renamed", 4),
        ("extra snapshot of random bytes", 5),
    ] {
        let d = case(&mut n);
        let snaps = snapshot_files(&d);
        let newest_snap = snaps.last().unwrap().clone();
        match damage {
            0 => flip(
                &newest_snap,
                std::fs::read(&newest_snap).unwrap().len() / 2,
                0x10,
            ),
            1 => snaps.iter().for_each(|s| {
                let b = std::fs::read(s).unwrap();
                std::fs::write(s, &b[..b.len() / 3]).unwrap();
            }),
            2 => {
                let len = std::fs::read(&newest_snap).unwrap().len();
                std::fs::write(&newest_snap, vec![0u8; len]).unwrap();
            }
            3 => snaps.iter().for_each(|s| std::fs::remove_file(s).unwrap()),
            4 => std::fs::rename(
                &newest_snap,
                d.join("snapshots").join(format!("snap-{:020}.bin", 3)),
            )
            .unwrap(),
            _ => std::fs::write(
                d.join("snapshots").join(format!("snap-{:020}.bin", 10_000)),
                (0..5000u32)
                    .map(|i| (i * 7919 % 251) as u8)
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
        }
        assert_eq!(recovered(&d, what).await, baseline, "{what}");
    }

    // ---- refused ----
    // A flipped byte in a record's length, checksum or payload in the middle of the newest segment:
    // valid records follow, so it is corruption, not a torn tail (it was cut before, losing records
    // and reusing their sequence numbers).
    for (what, field) in [("length", 1usize), ("checksum", 5), ("payload", 30)] {
        let d = case(&mut n);
        let seg = newest(&d);
        let offs = record_offsets(&seg);
        assert!(
            offs.len() >= 3,
            "the newest segment needs records after the damaged one"
        );
        let at = offs[offs.len() / 2];
        flip(&seg, at + field, 0x40);
        let b = std::fs::read(&seg).unwrap();
        refused(
            &d,
            &format!("{what} flipped mid newest segment"),
            &name(&seg),
            Some(at as u64),
        );
        assert_eq!(
            std::fs::read(&seg).unwrap(),
            b,
            "a refused segment is not cut"
        );
    }
    // The newest segment's last record damaged (a flipped byte, or cut mid-record) while the
    // snapshot written at shutdown covers it: an acknowledged event, not a torn write. Before,
    // the record was cut off the file as a torn tail and only then was the start refused (the
    // snapshot beyond the log's end): the refusal had changed the file, and named neither it nor
    // the byte.
    // And with that snapshot damaged too (so an older one is restored): its name still shows the
    // record was logged.
    for (what, cut, snap_flipped) in [
        ("flipped", false, false),
        ("cut mid-record", true, false),
        (
            "flipped, and the snapshot covering it flipped too",
            false,
            true,
        ),
    ] {
        let d = case(&mut n);
        let seg = newest(&d);
        let last = *record_offsets(&seg).last().unwrap();
        let b = std::fs::read(&seg).unwrap();
        let snap = snapshot_files(&d).last().unwrap().clone();
        assert_eq!(
            name(&snap),
            format!("snap-{EVENTS:020}.bin"),
            "the premise: the shutdown's snapshot covers the last record"
        );
        if snap_flipped {
            flip(&snap, std::fs::read(&snap).unwrap().len() / 2, 0x10);
        }
        if cut {
            std::fs::write(&seg, &b[..last + (b.len() - last) / 2]).unwrap();
        } else {
            flip(&seg, last + 30, 0x40);
        }
        let damaged = std::fs::read(&seg).unwrap();
        refused(
            &d,
            &format!("the last record {what}, covered by a snapshot"),
            &name(&seg),
            Some(last as u64),
        );
        assert_eq!(
            std::fs::read(&seg).unwrap(),
            damaged,
            "a refused segment is not cut"
        );
    }
    // The same damage in an older segment.
    for (what, field) in [("header", 2usize), ("payload", 40)] {
        let d = case(&mut n);
        let seg = segments(&d)[1].clone();
        flip(&seg, field, 0x08);
        refused(
            &d,
            &format!("{what} flipped in an older segment"),
            &name(&seg),
            Some(0),
        );
    }
    // An older segment truncated (mid-record, and at a record boundary).
    for (what, mid) in [("mid-record", true), ("at a record boundary", false)] {
        let d = case(&mut n);
        let seg = middle(&d);
        let offs = record_offsets(&seg);
        let cut = offs[offs.len() / 2] + if mid { 5 } else { 0 };
        let b = std::fs::read(&seg).unwrap();
        std::fs::write(&seg, &b[..cut]).unwrap();
        let following = segments(&d).into_iter().find(|s| s > &seg).unwrap();
        refused(
            &d,
            &format!("older segment truncated {what}"),
            &name(if mid { &seg } else { &following }),
            None,
        );
    }
    // Zeros over the middle of an older segment.
    let d = case(&mut n);
    let seg = middle(&d);
    let mut b = std::fs::read(&seg).unwrap();
    let l = b.len();
    b[l / 3..l / 2].fill(0);
    std::fs::write(&seg, b).unwrap();
    refused(&d, "zeros in an older segment", &name(&seg), None);
    // A segment deleted from the middle: acknowledged events gone (this went unnoticed before).
    let d = case(&mut n);
    let seg = middle(&d);
    std::fs::remove_file(&seg).unwrap();
    let following = segments(&d).into_iter().find(|s| s > &seg).unwrap();
    refused(&d, "middle segment deleted", &name(&following), None);
    // The newest segment deleted.
    let d = case(&mut n);
    let seg = newest(&d);
    std::fs::remove_file(&seg).unwrap();
    refused(&d, "newest segment deleted", &name(&seg), None);
    // The oldest segment deleted, with no snapshot to rebuild the state from.
    let d = case(&mut n);
    std::fs::remove_file(&segments(&d)[0]).unwrap();
    snapshot_files(&d)
        .iter()
        .for_each(|s| std::fs::remove_file(s).unwrap());
    refused(
        &d,
        "oldest segment deleted without a snapshot",
        "restore the missing snapshot or log segments",
        None,
    );
    // A segment renamed: its name no longer matches its first record.
    let d = case(&mut n);
    let seg = middle(&d);
    let renamed = seg.with_file_name("wal-00000000000000099999.log");
    std::fs::rename(&seg, &renamed).unwrap();
    refused(&d, "segment renamed", "wal-", None);
    // An extra segment of random bytes under a name that leaves a gap.
    let d = case(&mut n);
    let stray = d.join("log").join(format!("wal-{:020}.log", EVENTS + 500));
    std::fs::write(
        &stray,
        (0..3000u32)
            .map(|i| (i * 31 % 253) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    refused(&d, "extra segment of random bytes", &name(&stray), None);
    // A file named like a segment but not one of Argus's names.
    let d = case(&mut n);
    let stray = d.join("log").join("wal-copy.log");
    std::fs::write(&stray, b"x").unwrap();
    refused(&d, "stray segment-like file", "wal-copy.log", None);
    // The log's HEAD file (the newest segment's name) damaged.
    let d = case(&mut n);
    std::fs::write(d.join("log").join("HEAD"), b"not a number").unwrap();
    refused(&d, "HEAD damaged", "HEAD", None);
    // A cluster node's erasure interrupted (by a crash, or a failure it stopped at): its log and
    // state may disagree and still hold the subject, so it must be started empty.
    let d = case(&mut n);
    std::fs::write(d.join("erasing"), b"42").unwrap();
    refused(&d, "erasure interrupted", "the shared log's entry 42", None);
}

#[tokio::test]
async fn a_refused_directory_is_left_as_it_was() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("data");
    build(&d).await;
    let seg = segments(&d)[2].clone();
    flip(&seg, 3, 0x01);
    let before: Vec<(PathBuf, Vec<u8>)> = segments(&d)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(Server::start(settings(&d), loader()).is_err());
    let after: Vec<(PathBuf, Vec<u8>)> = segments(&d)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert_eq!(before, after, "nothing cut, renamed or appended");
}

/// Erasure deletes the subject's keys at a point of the log and says so there (a `KIND_ERASURE`
/// record, which keeps only the pseudonym and its keys once the log is renamed): a recovery that
/// replays the renamed log from its first record — every snapshot gone — deletes the same keys at
/// the same point and ends in the live state. (Without the record, the replay built the pseudonym's
/// keys from the renamed events and kept them: another state.)
#[tokio::test]
async fn an_erasure_replays_from_the_renamed_log_to_the_live_state() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    let config = dir.path().join("argus.toml");
    std::fs::write(
        &config,
        format!(
            "include = [\"{}\"]\n[[features]]\nname = \"email_events_30d\"\nkind = \"count\"\nevents = [\"account.register\"]\nkey = [\"email\"]\nwindow = \"30d\"\n\n[[features]]\nname = \"email_device_events_30d\"\nkind = \"count\"\nevents = [\"account.register\"]\nkey = [\"email\", \"device\"]\nwindow = \"30d\"\n",
            repo().join("examples/starter/argus.toml").display()
        ),
    )
    .unwrap();
    let load: Loader = Arc::new(move || {
        let cfg = argus_engine::Config::load(&config)?;
        let loaded = argus_policy::load_dir(
            &repo().join("policies"),
            &cfg.schema,
            &cfg.features,
            &cfg.pseudonymizer,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok((cfg, Some(loaded)))
    });
    let digest = |s: &Server| {
        let s = s.router.clone();
        async move {
            let req = Request::builder()
                .uri("/v1/admin/digest")
                .body(Body::empty())
                .unwrap();
            let resp = s.oneshot(req).await.unwrap();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()["state_digest"].clone()
        }
    };
    let s = Server::start(settings(&d), load.clone()).expect("starts");
    // The subject registers twice, from two devices (its own key, and two keys with a device).
    let again = json!({"id": "again", "type": "account.register", "time": "2026-11-20T09:05:00Z", "actor": "u3",
                       "data": {"email": "u3@example.com", "device": "d9", "ip": "81.2.69.10", "country": "GB"}});
    for e in (0..60).map(event).chain([again.to_string()]) {
        assert_eq!(call(&s, "POST", "/v1/events", e).await.0, 200);
    }
    let (st, v) = call(
        &s,
        "POST",
        "/v1/erasure",
        json!({"kind": "email", "value": "u3@example.com", "reason": "replay test"}).to_string(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["found"]["state_keys"], 3, "{v}");
    for e in (60..90).map(event) {
        assert_eq!(call(&s, "POST", "/v1/events", e).await.0, 200);
    }
    let live = digest(&s).await;
    drop(s);
    for f in snapshot_files(&d) {
        std::fs::remove_file(f).unwrap();
    }
    let s = Server::start(settings(&d), load).expect("recovers from the log alone");
    assert_eq!(digest(&s).await, live, "the replayed state is the live one");
}

/// An address sent as an object (as events carry it) is erased by the same object: its token is
/// the object's, which no natural spelling of it as one string reproduces. Before, the erasure
/// refused an object (`400 invalid_body: expected a string`), and every natural string spelling
/// answered 200 with nothing found, which reads like a done erasure.
#[tokio::test]
async fn an_address_sent_as_an_object_is_erased_in_that_form() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    let s = Server::start(settings(&d), loader()).expect("starts");
    let address = json!({"line1": "17 Qwertyuiop Lane", "city": "London", "postcode": "N1 9GU", "country": "GB"});
    let order = json!({"id": "addr-1", "type": "order.create", "time": "2026-11-20T09:00:00Z", "actor": "adu",
                       "data": {"order": "ao", "amount": "5", "currency": "EUR", "shipping_address": address}});
    let (st, v) = call(&s, "POST", "/v1/events", order.to_string()).await;
    assert_eq!(st, 200, "{v}");
    let erase = |value: Value| {
        json!({"kind": "address", "value": value, "reason": "GDPR request 123"}).to_string()
    };
    // A spelling as one string is another subject: nothing found.
    let (st, v) = call(
        &s,
        "POST",
        "/v1/erasure",
        erase(json!("17 Qwertyuiop Lane, N1 9GU London, GB")),
    )
    .await;
    assert_eq!((st, &v["found"]["events"]), (200, &json!(0)), "{v}");
    let (st, v) = call(&s, "POST", "/v1/erasure", erase(address.clone())).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["found"]["events"], 1, "the order's address: {v}");
    // Its token is gone from the log: the same request finds nothing more.
    let (st, v) = call(&s, "POST", "/v1/erasure", erase(address)).await;
    assert_eq!((st, &v["found"]["events"]), (200, &json!(0)), "{v}");
    // Neither a string nor an object: refused.
    let (st, v) = call(&s, "POST", "/v1/erasure", erase(json!(17))).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{v}"
    );
}
