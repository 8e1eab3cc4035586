//! Announced shares between two connections (two nodes) on a real nats-server: in batches, and one
//! at a time as releases before batches sent them (a rolling upgrade).

use bytes::Bytes;
use std::time::Duration;

use crate::common;
use common::nats;

async fn node(url: &str) -> argus_cluster::Shares {
    let log = common::log_on(url, "sharestest").await;
    log.shares(Duration::from_secs(60)).await.unwrap()
}

/// 3,000 shares announced in batches of at most 4 KiB each reach the other node whole and in
/// order, as do one announced alone (the older form) and the owner's confirmation; the sender
/// counts the messages it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_announced_in_batches_reach_the_other_node_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, url)) = nats(dir.path()) else {
        return;
    };
    let (owner, other) = (node(&url).await, node(&url).await);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (ctx, mut crx) = tokio::sync::mpsc::unbounded_channel();
    let follower = other.clone();
    tokio::spawn(async move {
        follower
            .follow_announced(
                move |many| {
                    for s in many {
                        let _ = tx.send(s);
                    }
                },
                move |pairs| {
                    let _ = ctx.send(pairs.to_vec());
                },
                |e| panic!("{e}"),
            )
            .await
    });
    // Until the other node listens: a probe, announced again until it comes.
    let probe = (0u64, 0u32, Bytes::from_static(b"probe"));
    loop {
        let (sent, failed) = owner
            .announce_many(std::slice::from_ref(&probe), 4096)
            .await;
        assert_eq!((sent, failed.map(|e| e.to_string())), (1, None));
        if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            assert_eq!(got, probe);
            break;
        }
    }
    while rx.try_recv().is_ok() {}
    let sent: Vec<(u64, u32, Bytes)> = (1..=3_000u64)
        .map(|seq| {
            let p = (seq % 24) as u32;
            (
                seq,
                p,
                Bytes::from(format!(
                    "share of {seq} in {p}: {}",
                    "v".repeat((seq % 90) as usize)
                )),
            )
        })
        .collect();
    let (msgs, failed) = owner.announce_many(&sent, 4096).await;
    assert!(failed.is_none(), "{failed:?}");
    let bytes: usize = sent.iter().map(|s| 16 + s.2.len()).sum();
    assert!(
        msgs >= bytes.div_ceil(4096) && msgs < sent.len() / 10,
        "{msgs} messages for {} shares of {bytes} bytes",
        sent.len()
    );
    owner
        .announce(3_001, 5, Bytes::from_static(b"alone"))
        .await
        .unwrap();
    owner.confirm(&[(1, 1), (3_001, 5)]).await.unwrap();
    let mut got = Vec::new();
    while got.len() < sent.len() + 1 {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(s)) => got.push(s),
            _ => panic!("{} of {} shares came", got.len(), sent.len() + 1),
        }
    }
    assert_eq!(got[..sent.len()], sent[..]);
    assert_eq!(got[sent.len()], (3_001, 5, Bytes::from_static(b"alone")));
    let confirmed = tokio::time::timeout(Duration::from_secs(10), crx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(confirmed, vec![(1, 1), (3_001, 5)]);
}
