//! Partition ownership against a real nats-server (JetStream on loopback): every partition gets
//! exactly one owner, the one rendezvous hashing wants; a node that joins takes its share and only
//! that; a node that stops renewing loses its partitions to the survivors after the time to live;
//! a node that drains gives them up at once. No two nodes ever count one partition as theirs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::common;
use common::nats;

const PARTITIONS: u32 = 24;
const TTL: Duration = Duration::from_millis(3000);

/// Steps every node in `live` once, in turn, and checks that no partition is counted as owned by
/// two nodes; returns the partitions each owns.
async fn round(
    nodes: &mut BTreeMap<String, argus_cluster::Ownership>,
    live: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<u32>> {
    let mut owned = BTreeMap::new();
    for (name, o) in nodes.iter_mut() {
        if live.contains(name) {
            o.step().await.expect("a step");
        }
    }
    // Read after every live node stepped: what each counts as its own now (a stopped node too,
    // until its renewals are too old).
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for (name, o) in nodes.iter() {
        let mine = o.owned();
        for &p in &mine {
            if let Some(other) = seen.insert(p, name) {
                panic!("partition {p} is owned by {other} and {name}");
            }
        }
        owned.insert(name.clone(), mine);
    }
    owned
}

/// Rounds (a third of the time to live apart) until every partition is owned by the node
/// rendezvous hashing wants among `live`; panics after 60 s.
async fn converge(
    nodes: &mut BTreeMap<String, argus_cluster::Ownership>,
    live: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<u32>> {
    let start = Instant::now();
    loop {
        let owned = round(nodes, live).await;
        let want = |p: u32| argus_cluster::wanted_owner(live, p).map(str::to_string);
        let done = (0..PARTITIONS)
            .all(|p| want(p).is_some_and(|w| owned.get(&w).is_some_and(|s| s.contains(&p))))
            && owned
                .iter()
                .filter(|(n, _)| !live.contains(*n))
                .all(|(_, s)| s.is_empty());
        if done {
            return owned;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no convergence among {live:?}: {owned:?}"
        );
        tokio::time::sleep(TTL / 3).await;
    }
}

/// A log on the server at `url` (stream `stream`, one replica) and three owners of it, n1 to n3.
async fn three_owners(
    url: String,
    stream: &str,
) -> (
    argus_cluster::Log,
    BTreeMap<String, argus_cluster::Ownership>,
) {
    let log = argus_cluster::Log::connect(&argus_cluster::Settings {
        servers: vec![url],
        stream: stream.into(),
        replicas: 1,
        ack_timeout: Duration::from_secs(2),
    })
    .await
    .unwrap();
    let mut nodes = BTreeMap::new();
    for n in ["n1", "n2", "n3"] {
        nodes.insert(
            n.to_string(),
            log.ownership(n, PARTITIONS, TTL).await.unwrap(),
        );
    }
    (log, nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_have_one_owner_through_joins_deaths_and_drains() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, url)) = nats(dir.path()) else {
        return;
    };
    let (log, mut nodes) = three_owners(url, "owners").await;
    let mut live: BTreeSet<String> = nodes.keys().cloned().collect();
    let owned = converge(&mut nodes, &live).await;
    // Each of three nodes has a share (rendezvous is not perfectly even on 24 partitions).
    assert!(owned.values().all(|s| s.len() >= 3), "{owned:?}");
    let bucket = nodes["n1"].owners().await.unwrap();
    assert_eq!(bucket.len(), PARTITIONS as usize);
    for (p, o) in &bucket {
        assert!(
            owned[o].contains(p),
            "the bucket says {o} owns {p}: {owned:?}"
        );
    }

    // A fourth node joins: it takes what it wins, and nothing else moves.
    nodes.insert(
        "n4".into(),
        log.ownership("n4", PARTITIONS, TTL).await.unwrap(),
    );
    live.insert("n4".into());
    let after = converge(&mut nodes, &live).await;
    assert!(!after["n4"].is_empty(), "{after:?}");
    for n in ["n1", "n2", "n3"] {
        assert!(
            after[n].is_subset(&owned[n]),
            "{n} gained partitions: {after:?}"
        );
    }

    // n2 dies (stops renewing): after the time to live the others own its partitions.
    live.remove("n2");
    let t = Instant::now();
    let survived = converge(&mut nodes, &live).await;
    assert!(survived["n2"].is_empty());
    eprintln!(
        "n2's {} partitions taken over in {:?} (time to live {TTL:?})",
        after["n2"].len(),
        t.elapsed()
    );

    // n3 drains: its partitions pass at once, without waiting for the time to live.
    let moving = survived["n3"].len();
    nodes.get_mut("n3").unwrap().drain().await.unwrap();
    live.remove("n3");
    let t = Instant::now();
    let drained = converge(&mut nodes, &live).await;
    assert!(drained["n3"].is_empty());
    eprintln!(
        "n3's {moving} partitions passed in {:?} after its drain",
        t.elapsed()
    );
    assert_eq!(
        drained["n1"].len() + drained["n4"].len(),
        PARTITIONS as usize
    );
}

/// A node that declines a partition (a sharded node that cannot rebuild it) gives its lease up,
/// and the member rendezvous hashing wants next among the others takes it; a partition every member
/// declines stays with its first choice; withdrawing the decline brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_partition_passes_to_another_member_and_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_server, url)) = nats(dir.path()) else {
        return;
    };
    let (_log, mut nodes) = three_owners(url, "declines").await;
    let live: BTreeSet<String> = nodes.keys().cloned().collect();
    let owned = converge(&mut nodes, &live).await;
    let p = *owned["n1"].first().expect("n1 owns a partition");
    let others: BTreeSet<String> = ["n2", "n3"].iter().map(|s| s.to_string()).collect();
    let next = argus_cluster::wanted_owner(&others, p).unwrap().to_string();

    // Rounds until `p` is owned by `who` alone (checking one owner at most in every round).
    async fn until_owned_by(
        nodes: &mut BTreeMap<String, argus_cluster::Ownership>,
        live: &BTreeSet<String>,
        p: u32,
        who: &str,
    ) -> Duration {
        let t = Instant::now();
        loop {
            let owned = round(nodes, live).await;
            if owned[who].contains(&p) {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{p} never passed to {who}: {owned:?}"
            );
            tokio::time::sleep(TTL / 3).await;
        }
    }

    nodes
        .get_mut("n1")
        .unwrap()
        .set_declined([p].into_iter().collect());
    let took = until_owned_by(&mut nodes, &live, p, &next).await;
    eprintln!("partition {p} declined by n1 passed to {next} in {took:?}");
    // The rest did not move.
    let after = round(&mut nodes, &live).await;
    for (n, set) in &owned {
        let mut want = set.clone();
        want.remove(&p);
        let mut got = after[n].clone();
        got.remove(&p);
        assert_eq!(got, want, "{n}'s other partitions moved");
    }
    assert!(!after["n1"].contains(&p));

    // Every member declines it: it goes back to its first choice.
    for n in ["n2", "n3"] {
        nodes
            .get_mut(n)
            .unwrap()
            .set_declined([p].into_iter().collect());
    }
    until_owned_by(&mut nodes, &live, p, "n1").await;

    // The declines withdrawn: ownership is the plain rendezvous again.
    for o in nodes.values_mut() {
        o.set_declined(BTreeSet::new());
    }
    let back = converge(&mut nodes, &live).await;
    assert_eq!(back, owned);
}
