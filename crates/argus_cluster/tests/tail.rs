//! The log's tail against a real nats-server (JetStream on loopback).

use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;

use crate::common;
use common::nats;

/// When the client recreates its ordered consumer before the tail saw its first entry (the
/// consumer lost, a server failed over), the new consumer starts at the log's first entry, not at
/// the tail's. That is not a gap in the log: the tail says so with a read error, the caller reopens
/// at the same position and gets the entry it was waiting for. (It used to report a gap, and a node
/// that had just started from a shared snapshot stopped applying the log.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_restarted_before_its_first_entry_is_not_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, url)) = nats(dir.path()) else {
        return;
    };
    let log = common::log_on(&url, "tailtest").await;
    for i in 1..=3u8 {
        let seq = log
            .append("events", &format!("t/{i}"), None, Bytes::from(vec![i]))
            .await
            .unwrap();
        assert_eq!(seq, u64::from(i));
    }
    let mut tail = log.tail(4).await.unwrap();

    // Delete the tail's consumer on the server before any entry reached it: the client recreates it.
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let stream = js.get_stream("tailtest").await.unwrap();
    let names: Vec<String> = stream.consumer_names().map(|n| n.unwrap()).collect().await;
    assert_eq!(names.len(), 1, "{names:?}");
    stream.delete_consumer(&names[0]).await.unwrap();
    log.append("events", "t/4", None, Bytes::from_static(&[4]))
        .await
        .unwrap();

    let mut reopened = 0;
    let entry = loop {
        match tokio::time::timeout(Duration::from_secs(60), tail.next()).await {
            Ok(Ok(e)) => break e,
            Ok(Err(argus_cluster::Error::Read(_))) if reopened < 5 => {
                reopened += 1;
                assert_eq!(tail.position(), 4);
                tail = log.tail(tail.position()).await.unwrap();
            }
            Ok(Err(e)) => panic!("the tail failed: {e}"),
            Err(_) => panic!("no entry within 60 s"),
        }
    };
    assert_eq!(entry.seq, 4);
    assert_eq!(&entry.payload[..], &[4]);
    // Each entry once, in order, from there.
    log.append("events", "t/5", None, Bytes::from_static(&[5]))
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(30), tail.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.seq, 5);
}

/// A node reading the shared snapshot while another node replaces it: the replacement purges the
/// old object's chunks under the reader, which used to wait for them for good (a node starting
/// from the shared snapshot at that moment never started; the cluster suite hung on it for over
/// 8 minutes). The premise is checked first: a plain read of an object replaced part-way through
/// it does not end. Then `read_object`, which `Log::fetch_snapshot` reads with, gives up within
/// its idle limit, and a fetch after it gets the new snapshot whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_snapshot_replaced_while_it_is_read_fails_the_read_instead_of_hanging_it() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, url)) = nats(dir.path()) else {
        return;
    };
    let log = common::log_on(&url, "snaptest").await;
    // Snapshot `i`: 32 MiB of the byte `i`, covering entry `i`.
    let snapshot = |i: u64| vec![i as u8; 32 << 20];
    let at = |i: u64| argus_cluster::SharedSnapshot {
        cursor: i,
        record: i,
    };
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    // Opens the shared snapshot object and reads its first 256 KiB, as a fetch would have.
    let opened = |js: async_nats::jetstream::Context| async move {
        let store = js.get_object_store("snaptest-snapshots").await.unwrap();
        let mut obj = store.get("snapshot").await.unwrap();
        let mut first = vec![0u8; 256 << 10];
        obj.read_exact(&mut first).await.unwrap();
        obj
    };
    assert!(log.publish_snapshot(at(1), &snapshot(1)).await.unwrap());
    let mut obj = opened(js.clone()).await;
    assert!(log.publish_snapshot(at(2), &snapshot(2)).await.unwrap());
    let mut rest = Vec::new();
    let plain = tokio::time::timeout(Duration::from_secs(5), obj.read_to_end(&mut rest)).await;
    assert!(
        plain.is_err(),
        "the premise: a plain read of a replaced object waits for good (it ended: {plain:?}, {} bytes)",
        rest.len()
    );
    let mut obj = opened(js.clone()).await;
    assert!(log.publish_snapshot(at(3), &snapshot(3)).await.unwrap());
    let t = std::time::Instant::now();
    let read = tokio::time::timeout(
        Duration::from_secs(30),
        argus_cluster::read_object(&mut obj, "snapshot", Duration::from_secs(2)),
    )
    .await
    .expect("read_object gives up within its idle limit");
    assert!(read.is_err(), "a replaced object is not read whole");
    eprintln!(
        "a replaced object's read given up after {:?}: {:?}",
        t.elapsed(),
        read.err()
    );
    let (pos, bytes) = log.fetch_snapshot().await.unwrap().unwrap();
    assert_eq!((pos.cursor, pos.record, bytes.len()), (3, 3, 32 << 20));
    assert!(bytes.iter().all(|b| *b == 3));
}
