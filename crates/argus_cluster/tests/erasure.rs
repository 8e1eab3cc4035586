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
    let log = common::log_on(&url, "erasuretest").await;
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

/// A share stored in pieces (a head under the unit's key, its bytes under piece keys, stored here
/// in any order) is purged whole when the token lies across two pieces' boundary (however it is
/// split) or inside one piece, and so is one whose pieces have a gap (what an erasure stopped
/// part-way leaves: it purges the pieces in order); a share whose pieces only come near the token
/// (its start at one piece's end, something else after), and one of a later event, are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_in_pieces_is_purged_whole_when_the_token_lies_across_two_pieces() {
    use argus_cluster::piece_key;
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, url)) = nats(dir.path()) else {
        return;
    };
    let log = common::log_on(&url, "piecestest").await;
    let shares = log.shares(Duration::from_secs(60)).await.unwrap();
    // (event, unit, pieces by index, in the order stored, whether the erasure up to event 9
    // purges it): the head is stored first.
    type Stored = (u64, u32, &'static [(u32, &'static str)], bool);
    let stored: [Stored; 5] = [
        (
            7,
            2,
            &[
                (3, "dddd"),
                (1, "bbbb tk_subjec"),
                (0, "aaaa"),
                (2, "t cccc"),
            ],
            true,
        ),
        (
            8,
            2,
            &[(0, "aaaa"), (1, "bbbb tk_su"), (2, "nny cccc"), (3, "dddd")],
            false,
        ),
        (
            9,
            5,
            &[(0, "aaaa"), (1, "b tk_subject b"), (2, "cccc")],
            true,
        ),
        (10, 2, &[(0, "xx tk_sub"), (1, "ject yy")], false),
        (6, 3, &[(1, "bbbb"), (2, "cccc")], true),
    ];
    for (seq, unit, pieces, _) in stored {
        shares
            .put(seq, unit, Bytes::from_static(b"head"))
            .await
            .unwrap();
        for (i, piece) in pieces {
            shares
                .put(seq, piece_key(unit, *i), Bytes::from(piece.to_string()))
                .await
                .unwrap();
        }
    }
    let (read, purged) = shares.erase_holding(&[b"tk_subject"], 9).await.unwrap();
    assert_eq!(
        (read, purged),
        (20, 12),
        "every value read; events 7 (its head and 4 pieces), 9 (its head and 3) and 6 (its head and 2) purged"
    );
    for (seq, unit, pieces, gone) in stored {
        assert_eq!(
            shares.get(seq, unit).await.unwrap().is_none(),
            gone,
            "event {seq}'s head"
        );
        for (i, _) in pieces {
            assert_eq!(
                shares
                    .get(seq, piece_key(unit, *i))
                    .await
                    .unwrap()
                    .is_none(),
                gone,
                "event {seq}'s piece {i}"
            );
        }
    }
}
