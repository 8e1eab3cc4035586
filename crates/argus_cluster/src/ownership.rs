//! Partition ownership: which node owns which of the engine's partitions, as leases in JetStream's
//! key-value store (the design of P3.5: "partition ownership is a lease in the engine's own
//! primitives, not in code of Argus's"). A sharded node of `argus serve` (`[cluster] partitions`)
//! runs it (`argus_server::shard`); docs/cluster.md, "Sharded apply".
//!
//! The bucket `<stream>-owners` holds two kinds of keys, all with the bucket's `max_age` as their
//! time to live:
//! - `member.<node>`: a node's heartbeat, written again at every [`Ownership::step`];
//! - `p.<n>`: the lease of partition `n`, whose value is its owner. It is created only if absent
//!   and renewed by revision, so two nodes can never both hold it.
//!
//! Every node computes the same wanted owner for each partition from the live members, by
//! rendezvous hashing (the member with the highest hash of (member, partition) wins): a node that
//! joins takes only the partitions it wins, about `1/(n+1)` of them, and a node that leaves gives up
//! only its own. At each step a node renews its membership and its leases, releases the leases it
//! holds but no longer wins (rebalancing after a join), and takes the free partitions it wins. A
//! dead node's membership and leases expire after the time to live and the survivors take its
//! partitions; [`Ownership::drain`] releases them at once. A node counts a partition as its own only
//! while its last renewal is younger than two thirds of the time to live, so it stops before the
//! lease could pass to another node.

use crate::Error;
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// One node's side of partition ownership (see the module documentation).
pub struct Ownership {
    kv: kv::Store,
    node: String,
    partitions: u32,
    ttl: Duration,
    /// Partition → (lease revision, when it was last renewed).
    held: BTreeMap<u32, (u64, Instant)>,
    draining: bool,
    /// The partitions this node declines (it cannot rebuild them): announced as
    /// `declines.<node>`, so that every node wants another member for them.
    declined: BTreeSet<u32>,
    /// Whether `declines.<node>` is in the bucket (to delete it when nothing is declined).
    declines_out: bool,
}

/// Key of partition `p`'s lease.
fn lease_key(p: u32) -> String {
    format!("p.{p}")
}

/// The member that wants partition `p`: the highest hash of (member, partition), ties to the
/// smaller name (names are distinct, so only a hash collision ties).
pub fn wanted_owner(members: &BTreeSet<String>, p: u32) -> Option<&str> {
    members
        .iter()
        .map(|m| {
            let mut bytes = m.as_bytes().to_vec();
            bytes.push(0);
            bytes.extend_from_slice(&p.to_le_bytes());
            (rendezvous_hash(&bytes), m.as_str())
        })
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(a.1)))
        .map(|(_, m)| m)
}

/// [`wanted_owner`] among the members that do not decline partition `p` (`declines`: member →
/// the partitions it declines); among all of them when every member declines it, so that a
/// partition always has a wanted owner while there is a member.
pub fn wanted_owner_declining<'a>(
    members: &'a BTreeSet<String>,
    declines: &BTreeMap<String, BTreeSet<u32>>,
    p: u32,
) -> Option<&'a str> {
    let willing: BTreeSet<String> = members
        .iter()
        .filter(|m| !declines.get(*m).is_some_and(|d| d.contains(&p)))
        .cloned()
        .collect();
    let from = if willing.is_empty() {
        members
    } else {
        &willing
    };
    let w = wanted_owner(from, p)?;
    members.get(w).map(String::as_str)
}

/// FNV-1a, then a 64-bit finalizer (SplitMix64's): stable across machines and releases.
fn rendezvous_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

impl crate::Log {
    /// Partition ownership for `node` over `partitions` partitions, with leases and memberships
    /// lasting `ttl` past their last renewal (the bucket `<stream>-owners`, created when absent).
    pub async fn ownership(
        &self,
        node: &str,
        partitions: u32,
        ttl: Duration,
    ) -> Result<Ownership, Error> {
        let kv = self
            .ttl_bucket(
                "owners",
                "Argus partition ownership: members and partition leases",
                ttl,
            )
            .await?;
        Ok(Ownership {
            kv,
            node: node.to_string(),
            partitions,
            ttl,
            held: BTreeMap::new(),
            draining: false,
            declined: BTreeSet::new(),
            // A node restarted under the same name within the time to live may have left one:
            // deleted at the first step.
            declines_out: true,
        })
    }
}

impl Ownership {
    /// How often [`step`](Self::step) should run: a third of the time to live.
    pub fn step_every(&self) -> Duration {
        self.ttl / 3
    }

    /// The partitions this node owns now: those whose lease it renewed less than two thirds of the
    /// time to live ago.
    pub fn owned(&self) -> BTreeSet<u32> {
        let fresh = self.ttl * 2 / 3;
        self.held
            .iter()
            .filter(|(_, (_, at))| at.elapsed() < fresh)
            .map(|(&p, _)| p)
            .collect()
    }

    /// The live members (their heartbeats not expired), this node included unless it drains.
    pub async fn members(&self) -> Result<BTreeSet<String>, Error> {
        let mut out = BTreeSet::new();
        let mut keys = self.kv.keys().await.map_err(|e| self.err(e))?;
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| self.err(e))?;
            if let Some(m) = k.strip_prefix("member.") {
                out.insert(m.to_string());
            }
        }
        Ok(out)
    }

    /// Declines `partitions` from the next step on (replacing what was declined): this node cannot
    /// serve them now (a sharded node that cannot rebuild one), so the others want another member
    /// for them, and this node releases their leases. An empty set withdraws every decline.
    pub fn set_declined(&mut self, partitions: BTreeSet<u32>) {
        self.declined = partitions;
    }

    /// The live members (as [`members`](Self::members)) and what each declines
    /// (`declines.<member>`; absent: nothing), from one listing of the bucket.
    pub async fn members_and_declines(
        &self,
    ) -> Result<(BTreeSet<String>, BTreeMap<String, BTreeSet<u32>>), Error> {
        let mut members = BTreeSet::new();
        let mut declining = Vec::new();
        let mut keys = self.kv.keys().await.map_err(|e| self.err(e))?;
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| self.err(e))?;
            if let Some(m) = k.strip_prefix("member.") {
                members.insert(m.to_string());
            } else if let Some(m) = k.strip_prefix("declines.") {
                declining.push((m.to_string(), k.clone()));
            }
        }
        let mut out = BTreeMap::new();
        for (m, k) in declining.into_iter().filter(|(m, _)| members.contains(m)) {
            if let Some(v) = self.kv.get(&k).await.map_err(|e| self.err(e))? {
                let set: BTreeSet<u32> = String::from_utf8_lossy(&v)
                    .split(',')
                    .filter_map(|x| x.parse().ok())
                    .collect();
                if !set.is_empty() {
                    out.insert(m, set);
                }
            }
        }
        Ok((members, out))
    }

    /// Every partition's owner as the bucket says (absent: no owner now).
    pub async fn owners(&self) -> Result<BTreeMap<u32, String>, Error> {
        let mut out = BTreeMap::new();
        for p in 0..self.partitions {
            if let Some(v) = self.kv.get(lease_key(p)).await.map_err(|e| self.err(e))? {
                out.insert(p, String::from_utf8_lossy(&v).into_owned());
            }
        }
        Ok(out)
    }

    /// One round: renew this node's membership and leases, release what it holds but no longer
    /// wins, take the free partitions it wins. Returns the partitions it owns afterwards. A lease
    /// whose renewal fails is dropped at once (another node may have it next).
    pub async fn step(&mut self) -> Result<BTreeSet<u32>, Error> {
        if !self.draining {
            self.kv
                .put(self.member_key(), Bytes::from(self.node.clone()))
                .await
                .map_err(|e| self.err(e))?;
        }
        let me = Bytes::from(self.node.clone());
        let held: Vec<(u32, u64)> = self.held.iter().map(|(&p, &(r, _))| (p, r)).collect();
        for (p, rev) in held {
            match self.kv.update(lease_key(p), me.clone(), rev).await {
                Ok(r) => {
                    self.held.insert(p, (r, Instant::now()));
                }
                Err(_) => {
                    self.held.remove(&p);
                }
            }
        }
        if !self.declined.is_empty() && !self.draining {
            let list: Vec<String> = self.declined.iter().map(u32::to_string).collect();
            self.kv
                .put(
                    format!("declines.{}", self.node),
                    Bytes::from(list.join(",")),
                )
                .await
                .map_err(|e| self.err(e))?;
            self.declines_out = true;
        } else if self.declines_out {
            self.kv
                .delete(format!("declines.{}", self.node))
                .await
                .map_err(|e| self.err(e))?;
            self.declines_out = false;
        }
        let (members, declines) = self.members_and_declines().await?;
        for p in 0..self.partitions {
            let mine = !self.draining
                && wanted_owner_declining(&members, &declines, p) == Some(self.node.as_str());
            match (self.held.get(&p).copied(), mine) {
                (Some((rev, _)), false) => {
                    // Rebalancing: the partition's wanted owner is another node now.
                    self.held.remove(&p);
                    let _ = self
                        .kv
                        .delete_expect_revision(lease_key(p), Some(rev))
                        .await;
                }
                (None, true) => {
                    if let Ok(r) = self.kv.create(lease_key(p), me.clone()).await {
                        self.held.insert(p, (r, Instant::now()));
                    }
                }
                _ => {}
            }
        }
        Ok(self.owned())
    }

    /// Announces which partitions this node's state holds now (the key `holds.<node>`, expiring
    /// with the bucket's time to live unless announced again). A sharded node keeps a partition it
    /// no longer owns until its owner announces holding it ([`held_elsewhere`](Self::held_elsewhere)),
    /// so that a partition's state never exists nowhere.
    pub async fn announce(&self, held: &[u32]) -> Result<(), Error> {
        let list: Vec<String> = held.iter().map(u32::to_string).collect();
        self.kv
            .put(self.holds_key(&self.node), Bytes::from(list.join(",")))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The partitions another node both owns (its lease) and announces holding.
    pub async fn held_elsewhere(&self) -> Result<BTreeSet<u32>, Error> {
        Ok(self
            .held_by_owners()
            .await?
            .into_iter()
            .filter(|(_, owner)| *owner != self.node)
            .map(|(p, _)| p)
            .collect())
    }

    /// The partitions whose owner (its lease) announces holding them, with that owner (this node
    /// among them).
    pub async fn held_by_owners(&self) -> Result<BTreeMap<u32, String>, Error> {
        let owners = self.owners().await?;
        let mut holds: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for (p, owner) in owners {
            if !holds.contains_key(&owner) {
                let v = self
                    .kv
                    .get(self.holds_key(&owner))
                    .await
                    .map_err(|e| self.err(e))?;
                let set = v
                    .map(|b| {
                        String::from_utf8_lossy(&b)
                            .split(',')
                            .filter_map(|x| x.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                holds.insert(owner.clone(), set);
            }
            if holds.get(&owner).is_some_and(|s| s.contains(&p)) {
                out.insert(p, owner);
            }
        }
        Ok(out)
    }

    fn holds_key(&self, node: &str) -> String {
        format!("holds.{node}")
    }

    /// Leaves: releases every lease and the membership at once, so the others take the partitions
    /// at their next step instead of after the time to live. Further steps own nothing.
    pub async fn drain(&mut self) -> Result<(), Error> {
        self.draining = true;
        let held = std::mem::take(&mut self.held);
        for (p, (rev, _)) in held {
            let _ = self
                .kv
                .delete_expect_revision(lease_key(p), Some(rev))
                .await;
        }
        let _ = self.kv.delete(self.holds_key(&self.node)).await;
        let _ = self.kv.delete(format!("declines.{}", self.node)).await;
        self.kv
            .delete(self.member_key())
            .await
            .map_err(|e| self.err(e))
    }

    fn member_key(&self) -> String {
        format!("member.{}", self.node)
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Stream {
            stream: self.kv.name.clone(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendezvous_spreads_partitions_and_a_join_moves_only_what_the_newcomer_wins() {
        let three: BTreeSet<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        let mut four = three.clone();
        four.insert("n4".into());
        let (mut moved, mut to_new) = (0, 0);
        let mut count = BTreeMap::new();
        for p in 0..256 {
            let a = wanted_owner(&three, p).unwrap();
            let b = wanted_owner(&four, p).unwrap();
            *count.entry(a).or_insert(0) += 1;
            if a != b {
                moved += 1;
                to_new += usize::from(b == "n4");
            }
        }
        // Every partition that moved went to the newcomer.
        assert_eq!(moved, to_new);
        assert!(moved > 30 && moved < 110, "{moved} of 256 moved");
        assert!(count.values().all(|&c| c > 50), "{count:?}");
        assert_eq!(wanted_owner(&BTreeSet::new(), 0), None);
    }

    #[test]
    fn a_declined_partition_goes_to_the_next_member_unless_every_member_declines_it() {
        let members: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        for p in 0..24u32 {
            let first = wanted_owner(&members, p).unwrap().to_string();
            let none = BTreeMap::new();
            assert_eq!(
                wanted_owner_declining(&members, &none, p),
                Some(first.as_str())
            );
            let one: BTreeMap<String, BTreeSet<u32>> =
                [(first.clone(), [p].into())].into_iter().collect();
            let rest: BTreeSet<String> = members.iter().filter(|m| **m != first).cloned().collect();
            assert_eq!(
                wanted_owner_declining(&members, &one, p),
                wanted_owner(&rest, p),
                "partition {p}"
            );
            // Declining another partition changes nothing for this one.
            let other: BTreeMap<String, BTreeSet<u32>> =
                [(first.clone(), [p + 1].into())].into_iter().collect();
            assert_eq!(
                wanted_owner_declining(&members, &other, p),
                Some(first.as_str())
            );
            let all: BTreeMap<String, BTreeSet<u32>> =
                members.iter().map(|m| (m.clone(), [p].into())).collect();
            assert_eq!(
                wanted_owner_declining(&members, &all, p),
                Some(first.as_str())
            );
        }
    }
}
