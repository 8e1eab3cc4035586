//! What a sharded cluster's nodes exchange besides the log: each partition owner's *share* of an
//! event (the values its keys read as of that event), and the node snapshots a new owner rebuilds a
//! partition from.
//!
//! - **Shares** live in the key-value bucket `<stream>-shares` under the key `<seq>.<partition>`
//!   (`seq`: the event's sequence number, the same on every node that applies the same log), kept
//!   for `keep`. Their owner sends them on plain NATS before it stores them, many to a message
//!   ([`Shares::announce_many`]),
//!   and says which it has stored once they are ([`Shares::confirm`]); a node takes them as they
//!   are announced ([`Shares::follow_announced`]) and, when it missed one or is behind (catching
//!   up after a restart), by key ([`Shares::get`]). Two owners of one partition (a lease changing
//!   hands) write the same bytes: the values are a function of the log.
//! - **Node snapshots** are objects `node.<name>` in the bucket `<stream>-snapshots`, described by
//!   the log entry and node-log record they cover and the partitions the node held.

use crate::{Error, Log, SharedSnapshot};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(node: &str, record: u64, held: &[u32]) -> NodeSnapshot {
        NodeSnapshot {
            object: format!("node.{node}"),
            at: SharedSnapshot {
                cursor: record,
                record,
            },
            held: held.to_vec(),
        }
    }

    /// A batch of announced shares reads back as the shares it was made of, cut into messages of at
    /// most `max` bytes (a larger share alone); a message cut short, or whose length passes its
    /// end, yields the shares before that and never panics.
    #[test]
    fn announced_shares_read_back_in_batches_and_a_cut_loses_only_what_follows_it() {
        let shares: Vec<(u64, u32, Bytes)> = vec![
            (7, 3, Bytes::from_static(b"seven")),
            (7, 24, Bytes::from_static(b"")),
            (8, 3, Bytes::from(vec![b'x'; 100])),
            (u64::MAX, u32::MAX, Bytes::from_static(b"last")),
        ];
        let one = announcements(&shares, 1 << 20);
        assert_eq!(one.len(), 1);
        assert_eq!(announced(&Bytes::from(one[0].clone())), shares);
        // 16 + 5 + 16 + 0 = 37 bytes fit in 40; the 116-byte share goes alone; then the last.
        let msgs = announcements(&shares, 40);
        assert_eq!(
            msgs.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![37, 116, 20]
        );
        let back: Vec<_> = msgs
            .iter()
            .flat_map(|m| announced(&Bytes::from(m.clone())))
            .collect();
        assert_eq!(back, shares);
        assert!(announcements(&[], 40).is_empty());
        let whole = Bytes::from(one[0].clone());
        for cut in 0..whole.len() {
            let got = announced(&whole.slice(..cut));
            assert!(got.len() <= shares.len());
            assert_eq!(got[..], shares[..got.len()], "cut at {cut}");
        }
        // A length past the end: the share and the rest are dropped, nothing before them.
        let mut bad = one[0].clone();
        bad[16 + 5 + 12..16 + 5 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(announced(&Bytes::from(bad)), shares[..1].to_vec());
    }

    #[test]
    fn a_confirmation_reads_back_as_the_pairs_it_was_made_of() {
        let pairs = [(1, 0), (u64::MAX, u32::MAX), (42, 1 << 20)];
        let b = confirmation(&pairs);
        assert_eq!(b.len(), 36);
        assert_eq!(confirmed(&b), pairs);
        // A damaged message gives its whole pairs, never a made-up one.
        assert_eq!(confirmed(&b[..30]), pairs[..2]);
        assert!(confirmed(&[]).is_empty());
    }

    #[test]
    fn only_a_gone_nodes_snapshot_whose_partitions_live_owners_hold_is_stale() {
        let members = ["a", "b"].iter().map(|s| s.to_string()).collect();
        // Owners announcing holding: 0, 1, 4 by a; 2, 3 by b; 6 by b, whose object does not hold
        // it yet (its announcement is a round ahead of the listing); 7 by c, which is gone.
        let owners: std::collections::BTreeMap<u32, String> = [
            (0, "a"),
            (1, "a"),
            (4, "a"),
            (2, "b"),
            (3, "b"),
            (6, "b"),
            (7, "c"),
        ]
        .into_iter()
        .map(|(p, o)| (p, o.to_string()))
        .collect();
        let listed = [
            // Members: never stale.
            snap("a", 100, &[0, 1, 4]),
            snap("b", 90, &[2, 3, 9]),
            // Gone; its partitions are held by live owners.
            snap("c", 80, &[1, 2]),
            // Gone; partition 5 is nobody's now (a handover in flight, or its owner died too): its
            // rebuild may need this one.
            snap("d", 95, &[3, 5]),
            snap("e", 96, &[5]),
            // Gone; 6's owner's snapshot does not hold it, 7's owner is not a member.
            snap("g", 97, &[6]),
            snap("h", 98, &[7]),
            // Gone, held nothing.
            snap("f", 50, &[]),
        ];
        assert_eq!(
            stale_node_snapshots(&listed, &members, &owners),
            vec!["node.c".to_string(), "node.f".to_string()]
        );
    }
}

/// The shares bucket.
#[derive(Clone)]
pub struct Shares {
    kv: kv::Store,
    js: jetstream::Context,
}

/// A node snapshot in the object store: whose, what it covers, which partitions it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSnapshot {
    pub object: String,
    pub at: SharedSnapshot,
    pub held: Vec<u32>,
}

/// The prefix of the objects holding the erasure floor ([`Log::erasure_floor`]).
const ERASURE_FLOOR: &str = "erasure-floor";

/// The key of partition `p`'s share of the event numbered `seq`.
pub fn share_key(seq: u64, p: u32) -> String {
    format!("{seq}.{p}")
}

/// A piece's first and last bytes, as many as a needle across its boundary may have on its side.
type Edges = (Vec<u8>, Vec<u8>);

/// The most pieces a share is stored in: a larger share is cut in larger pieces (which servers
/// whose `max_payload` they pass refuse, and the share is retried for ever, logged). A head
/// announcing more does not fit.
pub const MAX_PIECES: u32 = 16_384;

/// Keys of pieces: piece `i` of unit `u`'s share is stored under `<seq>.<PIECE_KEYS + u *
/// MAX_PIECES + i>`, beyond every unit's own key (at most 257 units). The share's own key
/// (`<seq>.<u>`) holds its head (how many pieces; `argus_server::shard::stored_form`).
pub const PIECE_KEYS: u32 = 1 << 20;

/// The key of piece `i` of unit `unit`'s share.
pub fn piece_key(unit: u32, i: u32) -> u32 {
    PIECE_KEYS + unit * MAX_PIECES + i
}

/// The unit and the piece's index of a piece's key; `None` for a unit's own key.
pub fn piece_of(key: u32) -> Option<(u32, u32)> {
    let k = key.checked_sub(PIECE_KEYS)?;
    Some((k / MAX_PIECES, k % MAX_PIECES))
}

impl Log {
    /// The shares bucket, created when absent with values kept for `keep`, on file storage with
    /// the log's replica count.
    ///
    /// `ARGUS_SHARD_TEST_SHARES_STORAGE`, for measurements only (`bench/cluster.sh`'s `SH_SHARES`),
    /// creates it otherwise: `r1` on file storage with one replica, `memory` in memory with one
    /// replica: what the shares' replicated store costs the NATS servers. Either loses shares
    /// with a server, which the cluster's guarantees do not allow for.
    pub async fn shares(&self, keep: Duration) -> Result<Shares, Error> {
        let unreplicated = |storage| {
            tracing::warn!("ARGUS_SHARD_TEST_SHARES_STORAGE: the shares' bucket, if created now, has one replica on {storage:?} storage (measurements only: a server lost loses shares)");
            (1, storage)
        };
        let (replicas, storage) = match std::env::var("ARGUS_SHARD_TEST_SHARES_STORAGE").as_deref()
        {
            Ok("r1") => unreplicated(jetstream::stream::StorageType::File),
            Ok("memory") => unreplicated(jetstream::stream::StorageType::Memory),
            Ok(v) => {
                tracing::warn!(
                    "ARGUS_SHARD_TEST_SHARES_STORAGE={v} is neither r1 nor memory: ignored"
                );
                (self.replicas, jetstream::stream::StorageType::File)
            }
            Err(_) => (self.replicas, jetstream::stream::StorageType::File),
        };
        let kv = self
            .ttl_bucket_in(
                "shares",
                "Argus partition owners' shares of each event (sharded apply)",
                keep,
                replicas,
                storage,
            )
            .await?;
        Ok(Shares {
            kv,
            js: self.js.clone(),
        })
    }

    /// Publishes this node's snapshot as `node.<node>` (replacing its earlier one), described by
    /// what it covers and the partitions it holds.
    pub async fn publish_node_snapshot(
        &self,
        node: &str,
        at: SharedSnapshot,
        held: &[u32],
        bytes: &[u8],
    ) -> Result<(), Error> {
        let store = self.snapshots().await?;
        let floor = self.erasure_floor().await?;
        if at.cursor < floor {
            return Err(Error::Append(format!(
                "this node's snapshot covers entry {}, before the erasure at entry {floor}: not shared (it may hold the erased subject)",
                at.cursor
            )));
        }
        let held: Vec<String> = held.iter().map(u32::to_string).collect();
        let mut reader = bytes;
        store
            .put(
                jetstream::object_store::ObjectMetadata {
                    name: format!("node.{node}"),
                    description: Some(format!("{} {} {}", at.cursor, at.record, held.join(","))),
                    chunk_size: self.object_chunk(),
                    ..Default::default()
                },
                &mut reader,
            )
            .await
            .map_err(|e| Error::Append(e.to_string()))?;
        Ok(())
    }

    /// The shared-log entry of the latest erasure in a sharded cluster (0: none): no node
    /// snapshot covering less is published from then on. One object per erasure,
    /// `erasure-floor.<entry>`, and the floor is the highest: two erasures at once each write their
    /// own, so neither can lower the other's (a compare-and-set the object store does not have).
    pub async fn erasure_floor(&self) -> Result<u64, Error> {
        Ok(self.erasure_floors().await?.into_iter().max().unwrap_or(0))
    }

    /// The entries of the `erasure-floor.<entry>` objects there.
    async fn erasure_floors(&self) -> Result<Vec<u64>, Error> {
        let store = self.snapshots().await?;
        let mut list = store.list().await.map_err(|e| Error::Read(e.to_string()))?;
        let mut out = Vec::new();
        while let Some(info) = list.next().await {
            let info = info.map_err(|e| Error::Read(e.to_string()))?;
            if info.deleted {
                continue;
            }
            if let Some(e) = info
                .name
                .strip_prefix(ERASURE_FLOOR)
                .and_then(|n| n.strip_prefix('.'))
                .and_then(|n| n.parse().ok())
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Raises the erasure floor ([`erasure_floor`](Self::erasure_floor)) to `entry`, and deletes
    /// the lower floors' objects (the highest is the floor).
    pub async fn raise_erasure_floor(&self, entry: u64) -> Result<(), Error> {
        let store = self.snapshots().await?;
        let mut empty: &[u8] = &[];
        store
            .put(
                jetstream::object_store::ObjectMetadata {
                    name: format!("{ERASURE_FLOOR}.{entry}"),
                    ..Default::default()
                },
                &mut empty,
            )
            .await
            .map_err(|e| Error::Append(e.to_string()))?;
        for lower in self.erasure_floors().await? {
            if lower < entry {
                self.delete_object(&format!("{ERASURE_FLOOR}.{lower}"))
                    .await?;
            }
        }
        Ok(())
    }

    /// Checks this node's `shape` (partition count and configuration fingerprints) against the
    /// cluster's, recorded by the first sharded node in the object store (object `shape`): a node
    /// that would split keys or compute shares otherwise is refused before it takes part.
    pub async fn check_shape(&self, shape: &str) -> Result<(), Error> {
        let store = self.snapshots().await?;
        match store.info("shape").await {
            Ok(info) => match info.description.as_deref() {
                Some(d) if d == shape => Ok(()),
                other => Err(Error::Stream {
                    stream: format!("{}-snapshots", self.stream),
                    message: format!(
                        "this sharded cluster's shape is `{}`, this node's `{shape}`: every node must run with the same [cluster] partitions and the same schema and feature definitions",
                        other.unwrap_or("?")
                    ),
                }),
            },
            Err(e) if e.kind() == jetstream::object_store::InfoErrorKind::NotFound => {
                let mut empty: &[u8] = &[];
                store
                    .put(
                        jetstream::object_store::ObjectMetadata {
                            name: "shape".into(),
                            description: Some(shape.to_string()),
                            ..Default::default()
                        },
                        &mut empty,
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| Error::Append(e.to_string()))
            }
            Err(e) => Err(Error::Read(e.to_string())),
        }
    }

    /// Every node snapshot in the object store (not their bytes).
    pub async fn node_snapshots(&self) -> Result<Vec<NodeSnapshot>, Error> {
        let store = self.snapshots().await?;
        let mut list = store.list().await.map_err(|e| Error::Read(e.to_string()))?;
        let mut out = Vec::new();
        while let Some(info) = list.next().await {
            let info = info.map_err(|e| Error::Read(e.to_string()))?;
            if !info.name.starts_with("node.") || info.deleted {
                continue;
            }
            let Some(d) = info.description.as_deref() else {
                continue;
            };
            let mut it = d.splitn(3, ' ');
            let (Some(c), Some(r)) = (it.next(), it.next()) else {
                continue;
            };
            let (Ok(cursor), Ok(record)) = (c.parse(), r.parse()) else {
                continue;
            };
            let held = it
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(|p| p.parse().ok())
                .collect();
            out.push(NodeSnapshot {
                object: info.name.clone(),
                at: SharedSnapshot { cursor, record },
                held,
            });
        }
        Ok(out)
    }

    /// Whether the object `name` is in the snapshots bucket.
    pub async fn object_exists(&self, name: &str) -> Result<bool, Error> {
        let store = self.snapshots().await?;
        match store.info(name).await {
            Ok(info) => Ok(!info.deleted),
            Err(e) if e.kind() == jetstream::object_store::InfoErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::Read(e.to_string())),
        }
    }

    /// Deletes the object `name` from the snapshots bucket (absent: nothing to do).
    pub async fn delete_object(&self, name: &str) -> Result<(), Error> {
        let store = self.snapshots().await?;
        match store.delete(name).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == jetstream::object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Append(e.to_string())),
        }
    }

    /// The bytes of the object `name` in the snapshots bucket, if it is there. Given up when no
    /// bytes came for `idle`, or when the whole took longer than `idle` plus a second per MiB (a
    /// fetch that trickles).
    pub async fn fetch_object(&self, name: &str, idle: Duration) -> Result<Option<Vec<u8>>, Error> {
        match open_object(self.snapshots(), name, idle).await? {
            Some(mut obj) => read_object(&mut obj, name, idle).await.map(Some),
            None => Ok(None),
        }
    }
}

/// The object `name` of the bucket `store` opens (`None`: not there), each step given up after
/// `idle`: the start of a read by [`read_object`].
pub(crate) async fn open_object(
    store: impl std::future::Future<Output = Result<jetstream::object_store::ObjectStore, Error>>,
    name: &str,
    idle: Duration,
) -> Result<Option<jetstream::object_store::Object>, Error> {
    let stalled = || Error::Read(format!("fetching {name}: nothing came for {idle:?}"));
    let store = tokio::time::timeout(idle, store)
        .await
        .map_err(|_| stalled())??;
    match tokio::time::timeout(idle, store.get(name)).await {
        Err(_) => Err(stalled()),
        Ok(Ok(o)) => Ok(Some(o)),
        Ok(Err(e)) if e.kind() == jetstream::object_store::GetErrorKind::NotFound => Ok(None),
        Ok(Err(e)) => Err(Error::Read(e.to_string())),
    }
}

/// The bytes of an object being read: given up when no bytes came for `idle`, or when the whole
/// took longer than `idle` plus a second per MiB (a read that trickles). An object replaced while
/// it is read has its chunks purged under the reader, which then waits for them for good
/// (a node starting from the shared snapshot at the moment another node replaced it never
/// started: the cluster suite waited on it for over 8 minutes).
pub async fn read_object(
    obj: &mut jetstream::object_store::Object,
    name: &str,
    idle: Duration,
) -> Result<Vec<u8>, Error> {
    let stalled = || Error::Read(format!("fetching {name}: nothing came for {idle:?}"));
    let size = obj.info().size;
    let deadline = std::time::Instant::now() + idle + Duration::from_secs((size >> 20) as u64);
    let mut bytes = Vec::with_capacity(size.min(1 << 30));
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        if std::time::Instant::now() > deadline {
            return Err(Error::Read(format!(
                "fetching {name}: {} of {size} bytes after {:?}",
                bytes.len(),
                idle + Duration::from_secs((size >> 20) as u64)
            )));
        }
        let n = tokio::time::timeout(idle, tokio::io::AsyncReadExt::read(obj, &mut chunk))
            .await
            .map_err(|_| stalled())?
            .map_err(|e| Error::Read(e.to_string()))?;
        if n == 0 {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// The node snapshots no rebuild needs any more: those of nodes that are not `members` (dead or
/// drained) whose every partition `p` is covered — `owners` (partition → a live owner announcing
/// holding it) names a member whose own snapshot object, in this same listing, holds `p`. An owner
/// releases a partition only once its next owner's snapshot holds it, so a partition of a pruned
/// snapshot stays in some live node's shared snapshot. A node that comes back shares a new one.
pub fn stale_node_snapshots(
    listed: &[NodeSnapshot],
    members: &std::collections::BTreeSet<String>,
    owners: &std::collections::BTreeMap<u32, String>,
) -> Vec<String> {
    let covered = |p: &u32| {
        owners.get(p).is_some_and(|o| {
            members.contains(o)
                && listed
                    .iter()
                    .any(|s| s.object.strip_prefix("node.") == Some(o) && s.held.contains(p))
        })
    };
    listed
        .iter()
        .filter(|s| {
            s.object
                .strip_prefix("node.")
                .is_some_and(|n| !members.contains(n))
        })
        .filter(|s| s.held.iter().all(covered))
        .map(|s| s.object.clone())
        .collect()
}

impl Shares {
    /// The bucket's stream.
    async fn stream(&self) -> Result<jetstream::stream::Stream, Error> {
        self.js
            .get_stream(format!("KV_{}", self.kv.name))
            .await
            .map_err(|e| Error::Read(e.to_string()))
    }

    /// The event of the oldest share the bucket still holds (`None`: it holds none): the shares
    /// of earlier events are gone (expired, or purged).
    pub async fn oldest(&self) -> Result<Option<u64>, Error> {
        let mut st = self.stream().await?;
        let info = st.info().await.map_err(|e| Error::Read(e.to_string()))?;
        if info.state.messages == 0 {
            return Ok(None);
        }
        let first = info.state.first_sequence;
        let m = st
            .get_raw_message(first)
            .await
            .map_err(|e| Error::Read(e.to_string()))?;
        let prefix = format!("$KV.{}.", self.kv.name);
        Ok(m.subject
            .as_str()
            .strip_prefix(&prefix)
            .and_then(|k| k.split_once('.'))
            .and_then(|(s, _)| s.parse().ok()))
    }

    /// Erasure: purges every share of the events numbered up to `upto_event` that the bucket
    /// holds and whose bytes hold one of `needles` (later events' shares are the value's new
    /// history). A share stored in pieces is purged whole (its head and every piece) when a piece
    /// holds a needle, two consecutive pieces hold one across their boundary, or a piece is
    /// missing (a needle of at least a piece's size and 2 bytes, across three pieces, is not
    /// seen). A key-value
    /// bucket's stream denies deleting a message by number, and that cannot be changed once the
    /// bucket exists: each key is purged instead, which removes its value from the stream
    /// (JetStream does not overwrite a purged value's bytes on disk, as it does a deleted
    /// message's: they go when the servers compact the stream's blocks). Returns the shares read
    /// (values: heads and pieces count one each) and the keys purged. Reads the whole bucket
    /// (`share_retention` of every event's shares).
    pub async fn erase_holding(
        &self,
        needles: &[&[u8]],
        upto_event: u64,
    ) -> Result<(u64, u64), Error> {
        let mut st = self.stream().await?;
        let prefix = format!("$KV.{}.", self.kv.name);
        // A needle across a boundary has at most `span` bytes on either side of it.
        let span = needles
            .iter()
            .map(|n| n.len())
            .max()
            .unwrap_or(0)
            .saturating_sub(1);
        // Every key of the events up to the erasure that holds a needle whole; and per share in
        // pieces, each piece's edges (its first and last `span` bytes) by index.
        let mut whole: BTreeSet<(u64, u32)> = BTreeSet::new();
        let mut pieced: HashMap<(u64, u32), BTreeMap<u32, Edges>> = HashMap::new();
        let read = crate::scan_messages(&mut st, String::new(), u64::MAX, |_, subject, payload| {
            let Some((seq, key)) = subject.strip_prefix(&prefix).and_then(|k| {
                let (s, p) = k.split_once('.')?;
                Some((s.parse::<u64>().ok()?, p.parse::<u32>().ok()?))
            }) else {
                return;
            };
            if seq > upto_event {
                return;
            }
            let holds = crate::holds_any(payload, needles);
            match piece_of(key) {
                Some((unit, i)) => {
                    let n = span.min(payload.len());
                    pieced.entry((seq, unit)).or_default().insert(
                        i,
                        (payload[..n].to_vec(), payload[payload.len() - n..].to_vec()),
                    );
                    if holds {
                        whole.insert((seq, unit));
                    }
                }
                None if holds => {
                    whole.insert((seq, key));
                }
                None => {}
            }
        })
        .await?;
        for (&share, pieces) in &pieced {
            // A share whose pieces do not run from 0 without a gap cannot be read, and may be
            // what an earlier erasure left when it stopped part-way (the pieces are purged in
            // order): a needle across the boundary with a purged piece would go unseen. Purged
            // whole.
            if pieces.keys().copied().ne(0..pieces.len() as u32) {
                whole.insert(share);
                continue;
            }
            // A needle across the boundary of two consecutive pieces.
            let mut it = pieces.values().peekable();
            while let Some((_, last)) = it.next() {
                if let Some((first, _)) = it.peek() {
                    if crate::holds_any(&[last.as_slice(), first].concat(), needles) {
                        whole.insert(share);
                    }
                }
            }
        }
        let mut purged = 0;
        for (seq, unit) in whole {
            // The pieces in order, then the share's own key (whole, or its head): an erasure
            // stopped part-way leaves a share that the next one purges whole (above).
            let mut keys: Vec<String> = pieced
                .get(&(seq, unit))
                .into_iter()
                .flat_map(|p| p.keys())
                .map(|&i| share_key(seq, piece_key(unit, i)))
                .collect();
            keys.push(share_key(seq, unit));
            for k in keys {
                self.kv
                    .purge(&k)
                    .await
                    .map_err(|e| Error::Append(format!("purging the share {k}: {e}")))?;
                purged += 1;
            }
        }
        Ok((read, purged))
    }

    /// The shares the bucket holds whose bytes hold one of `needles`: how many were read, and the
    /// bucket stream's sequence numbers of those holding one (read only).
    pub async fn holding(&self, needles: &[&[u8]]) -> Result<(u64, Vec<u64>), Error> {
        let mut st = self.stream().await?;
        let (read, holding) =
            crate::messages_holding(&mut st, String::new(), u64::MAX, needles, &|_| true).await?;
        Ok((read, holding.into_iter().map(|(seq, _)| seq).collect()))
    }

    /// How long the bucket keeps values: what the node that created it asked for (or an
    /// operator set since), whatever this node's configuration says.
    pub async fn retention(&self) -> Result<Duration, Error> {
        self.kv
            .status()
            .await
            .map(|s| s.max_age())
            .map_err(|e| Error::Read(e.to_string()))
    }

    /// Stores partition `p`'s share of event `seq` (on the bucket's replicas).
    pub async fn put(&self, seq: u64, p: u32, value: impl Into<Bytes>) -> Result<(), Error> {
        self.kv
            .put(share_key(seq, p), value.into())
            .await
            .map(|_| ())
            .map_err(|e| Error::Append(e.to_string()))
    }

    /// Stores partition `p`'s share of event `seq` unless it is stored already: `true` when this
    /// call stored it.
    pub async fn create(&self, seq: u64, p: u32, value: Bytes) -> Result<bool, Error> {
        match self.kv.create(share_key(seq, p), value).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::Append(e.to_string())),
        }
    }

    /// Partition `p`'s share of event `seq`, if stored (and not yet expired).
    pub async fn get(&self, seq: u64, p: u32) -> Result<Option<Vec<u8>>, Error> {
        self.kv
            .get(share_key(seq, p))
            .await
            .map(|v| v.map(|b| b.to_vec()))
            .map_err(|e| Error::Read(e.to_string()))
    }

    /// The plain NATS subject of partition `p`'s share of event `seq`, one share a message (what
    /// releases before batched announcements sent; still taken, for a rolling upgrade).
    fn fast_subject(&self, seq: u64, p: u32) -> String {
        format!("_ARGUS_SHARES.{}.{seq}.{p}", self.kv.name)
    }

    /// Sends partition `p`'s share of event `seq` to the nodes listening now, before it is stored:
    /// plain NATS, at most once, not replicated, one message for this share alone (as releases
    /// before [`announce_many`](Self::announce_many) did; kept for tests of a rolling upgrade).
    pub async fn announce(&self, seq: u64, p: u32, value: Bytes) -> Result<(), Error> {
        self.js
            .client()
            .publish(self.fast_subject(seq, p), value)
            .await
            .map_err(|e| Error::Append(e.to_string()))
    }

    /// Sends `shares` (event, key, bytes) to the nodes listening now, before they are stored: plain
    /// NATS, at most once, not replicated, as few messages as hold them at `max` bytes each (a share
    /// larger than that goes alone). A waiting node takes each as it takes a stored one, a round
    /// trip to the bucket's replicas sooner; what it misses it reads from the bucket. Nodes may
    /// decide with a share before it is stored, so the receivers keep it until its owner
    /// [confirms](Self::confirm) it stored, and store it themselves when no confirmation comes
    /// (`create`; the server's `Shard::store_unconfirmed`). One message for many: every NATS
    /// server routes, and every node receives, parses and wakes for, one message per batch rather
    /// than per share (BENCHMARKS.md, "Announcements in batches").
    /// Every message is tried, one failing (a share too large for the server) or not: returns
    /// the number sent, and the first error after trying them all.
    pub async fn announce_many(
        &self,
        shares: &[(u64, u32, Bytes)],
        max: usize,
    ) -> (usize, Option<Error>) {
        let subject = format!("_ARGUS_SHARES.{}.many", self.kv.name);
        let (mut sent, mut failed) = (0, None);
        for msg in announcements(shares, max) {
            match self.js.client().publish(subject.clone(), msg.into()).await {
                Ok(()) => sent += 1,
                Err(e) => {
                    failed.get_or_insert(Error::Append(e.to_string()));
                }
            }
        }
        (sent, failed)
    }

    /// Tells the nodes listening now that the shares `stored` (event, key) are stored in the
    /// bucket: plain NATS, at most once, one message for many (12 bytes each).
    pub async fn confirm(&self, stored: &[(u64, u32)]) -> Result<(), Error> {
        self.js
            .client()
            .publish(
                format!("_ARGUS_SHARES.{}.stored", self.kv.name),
                confirmation(stored).into(),
            )
            .await
            .map_err(|e| Error::Append(e.to_string()))
    }

    /// Hands the shares announced from now on to `f` as they arrive, a message's at a time (as
    /// slices of its payload, not copied),
    /// and every confirmation that shares are stored to `stored`, for ever (resubscribing after
    /// an error, reported to `failed`: what was announced meanwhile is missed).
    pub async fn follow_announced(
        &self,
        mut f: impl FnMut(Vec<(u64, u32, Bytes)>),
        mut stored: impl FnMut(&[(u64, u32)]),
        mut failed: impl FnMut(&Error),
    ) {
        let prefix = format!("_ARGUS_SHARES.{}.", self.kv.name);
        loop {
            match self.js.client().subscribe(format!("{prefix}>")).await {
                Ok(mut sub) => {
                    while let Some(m) = sub.next().await {
                        let Some(rest) = m.subject.as_str().strip_prefix(&prefix) else {
                            continue;
                        };
                        if rest == "stored" {
                            stored(&confirmed(&m.payload));
                            continue;
                        }
                        if rest == "many" {
                            f(announced(&m.payload));
                            continue;
                        }
                        let key = rest
                            .split_once('.')
                            .and_then(|(s, p)| Some((s.parse().ok()?, p.parse().ok()?)));
                        if let Some((s, p)) = key {
                            f(vec![(s, p, m.payload)]);
                        }
                    }
                    failed(&Error::Read(
                        "the announced shares' subscription ended".into(),
                    ));
                }
                Err(e) => failed(&Error::Read(e.to_string())),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Bytes before each share of an [`Shares::announce_many`] message: its event (8), key (4) and
/// length (4), little-endian.
const ANNOUNCED_HEAD: usize = 16;

/// The [`Shares::announce_many`] messages of `shares`: each share as its head and its bytes, as
/// many to a message as keep it within `max` bytes (a share whose own size passes `max` alone).
fn announcements(shares: &[(u64, u32, Bytes)], max: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for (seq, p, b) in shares {
        let n = ANNOUNCED_HEAD + b.len();
        if !cur.is_empty() && cur.len() + n > max {
            out.push(std::mem::take(&mut cur));
        }
        cur.reserve(n);
        cur.extend_from_slice(&seq.to_le_bytes());
        cur.extend_from_slice(&p.to_le_bytes());
        cur.extend_from_slice(&(b.len() as u32).to_le_bytes());
        cur.extend_from_slice(b);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The shares of an [`Shares::announce_many`] message, each a slice of it (not copied). A message
/// cut short yields the shares before the cut, and never panics: the rest are read from the
/// bucket, as any missed announcement. (NATS over TCP does not garble a message; a length changed
/// in flight would cut the shares after it at wrong places, which is why none is.)
fn announced(b: &Bytes) -> Vec<(u64, u32, Bytes)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while b.len() - at >= ANNOUNCED_HEAD {
        let h = &b[at..at + ANNOUNCED_HEAD];
        let seq = u64::from_le_bytes(h[..8].try_into().unwrap_or_default());
        let p = u32::from_le_bytes(h[8..12].try_into().unwrap_or_default());
        let n = u32::from_le_bytes(h[12..16].try_into().unwrap_or_default()) as usize;
        let start = at + ANNOUNCED_HEAD;
        let Some(end) = start.checked_add(n).filter(|&e| e <= b.len()) else {
            break;
        };
        out.push((seq, p, b.slice(start..end)));
        at = end;
    }
    out
}

/// A [`Shares::confirm`] message: each (event, key) as 8 + 4 bytes, little-endian.
fn confirmation(stored: &[(u64, u32)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(stored.len() * 12);
    for (seq, p) in stored {
        b.extend_from_slice(&seq.to_le_bytes());
        b.extend_from_slice(&p.to_le_bytes());
    }
    b
}

/// The (event, key) pairs of a [`Shares::confirm`] message (a trailing fragment is ignored).
fn confirmed(b: &[u8]) -> Vec<(u64, u32)> {
    b.chunks_exact(12)
        .map(|c| {
            let (s, p) = c.split_at(8);
            (
                u64::from_le_bytes(s.try_into().unwrap_or_default()),
                u32::from_le_bytes(p.try_into().unwrap_or_default()),
            )
        })
        .collect()
}
