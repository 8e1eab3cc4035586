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
    let log = argus_cluster::Log::connect(&argus_cluster::Settings {
        servers: vec![url.clone()],
        stream: "tailtest".into(),
        replicas: 1,
        ack_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
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
