//! The erasure floor and the erasure of shares against a real nats-server (JetStream on loopback).

use bytes::Bytes;
use std::time::Duration;

use crate::common;
use common::nats;

/// Two erasures at once each raise the floor to their own entry, in either order: the floor is the
/// higher, and no node snapshot covering less is published. Shares are erased only of the events up
/// to the erasure, and only those holding the needle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_erasure_floor_only_rises_and_shares_are_erased_up_to_the_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, url)) = nats(dir.path()) else {
        return;
    };
    let log = argus_cluster::Log::connect(&argus_cluster::Settings {
        servers: vec![url.clone()],
        stream: "erasuretest".into(),
        replicas: 1,
        ack_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    assert_eq!(log.erasure_floor().await.unwrap(), 0);
    log.raise_erasure_floor(105).await.unwrap();
    log.raise_erasure_floor(100).await.unwrap();
    assert_eq!(
        log.erasure_floor().await.unwrap(),
        105,
        "the later erasure's"
    );
    log.raise_erasure_floor(110).await.unwrap();
    assert_eq!(log.erasure_floor().await.unwrap(), 110);
    let at = |cursor| argus_cluster::SharedSnapshot { cursor, record: 7 };
    assert!(log
        .publish_node_snapshot("n1", at(109), &[0, 1], b"older")
        .await
        .is_err());
    log.publish_node_snapshot("n1", at(110), &[0, 1], b"newer")
        .await
        .unwrap();
    let listed = log.node_snapshots().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].at.cursor, 110);

    let shares = log.shares(Duration::from_secs(60)).await.unwrap();
    for seq in 1..=6u64 {
        let v = if seq % 2 == 0 { "tk_subject" } else { "other" };
        shares
            .put(seq, 3, Bytes::from(format!("share {seq}: {v}")))
            .await
            .unwrap();
    }
    let (read, erased) = shares.erase_holding(&[b"tk_subject"], 4).await.unwrap();
    assert_eq!(
        (read, erased),
        (6, 2),
        "events 2 and 4; not 6, after the erasure"
    );
    let (_, left) = shares.holding(&[b"tk_subject"]).await.unwrap();
    assert_eq!(left.len(), 1);
    assert!(shares.get(6, 3).await.unwrap().is_some());
    assert!(shares.get(4, 3).await.unwrap().is_none());
    assert!(shares.get(5, 3).await.unwrap().is_some());
}

/// A share stored in pieces (a head under the unit's key, its bytes under piece keys) is purged
/// whole when the token lies across two pieces' boundary or inside one piece; a share whose pieces
/// only come near it (the token's start at one piece's end, something else after) is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_in_pieces_is_purged_whole_when_the_token_lies_across_two_pieces() {
    use argus_cluster::piece_key;
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, url)) = nats(dir.path()) else {
        return;
    };
    let log = argus_cluster::Log::connect(&argus_cluster::Settings {
        servers: vec![url.clone()],
        stream: "piecestest".into(),
        replicas: 1,
        ack_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    let shares = log.shares(Duration::from_secs(60)).await.unwrap();
    // (event, unit, pieces): the head first, then the pieces, as a node stores them.
    let stored: [(u64, u32, &[&str]); 3] = [
        (7, 2, &["aaaa", "bbbb tk_su", "bject cccc", "dddd"]),
        (8, 2, &["aaaa", "bbbb tk_su", "nny cccc", "dddd"]),
        (9, 5, &["aaaa", "b tk_subject b", "cccc"]),
    ];
    for (seq, unit, pieces) in stored {
        shares
            .put(seq, unit, Bytes::from_static(b"head"))
            .await
            .unwrap();
        for (i, piece) in pieces.iter().enumerate() {
            shares
                .put(
                    seq,
                    piece_key(unit, i as u32),
                    Bytes::from(piece.to_string()),
                )
                .await
                .unwrap();
        }
    }
    let (read, purged) = shares.erase_holding(&[b"tk_subject"], 9).await.unwrap();
    assert_eq!(
        (read, purged),
        (14, 9),
        "every value read; event 7's head and 4 pieces, event 9's head and 3 pieces purged"
    );
    for (seq, unit, pieces) in stored {
        let gone = seq != 8;
        assert_eq!(
            shares.get(seq, unit).await.unwrap().is_none(),
            gone,
            "event {seq}'s head"
        );
        for i in 0..pieces.len() as u32 {
            assert_eq!(
                shares.get(seq, piece_key(unit, i)).await.unwrap().is_none(),
                gone,
                "event {seq}'s piece {i}"
            );
        }
    }
}
