//! Shared-attribute clustering on a simulated world (`argus simulate --out world.ndjson`): accounts
//! linked by shared devices, cards, shipping addresses and payout accounts (not IPs: carrier NAT; not
//! failed logins: stuffing touches thousands of accounts from a few devices), hub
//! values capped; then, per scenario, the share of attack accounts in a cluster of at least `k`
//! accounts, and the share of honest users in one.
//! `cargo run --release -p argus_graph --example sim_rings -- world.ndjson world.truth.ndjson [k] [max_share]`

use argus_graph::{clusters, peel_many, Bipartite, Weighting};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(events), Some(truth)) = (args.get(1), args.get(2)) else {
        return Err(
            "usage: sim_rings WORLD.ndjson WORLD.truth.ndjson [k] [max_share] [blocks]".into(),
        );
    };
    let open = |p: &str| std::fs::File::open(p).map_err(|e| format!("{p}: {e}"));
    let k: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let max_share: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(30);
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut pairs: Vec<(u32, u64)> = Vec::new();
    let mut role: HashMap<u32, (String, bool)> = HashMap::new(); // account → (scenario, is attack account)
                                                                 // Bipartite graphs for dense-block peeling: buyer × seller from orders, user × item from clicks.
    let mut sellers: HashMap<String, u32> = HashMap::new();
    let mut items: HashMap<String, u32> = HashMap::new();
    let mut orders: Vec<(u32, u32)> = Vec::new();
    let mut clicks: Vec<(u32, u32)> = Vec::new();
    let ev = std::io::BufReader::new(open(events)?).lines();
    let tr = std::io::BufReader::new(open(truth)?).lines();
    for (n, (e, t)) in ev.zip(tr).enumerate() {
        let e: serde_json::Value =
            serde_json::from_str(&e?).map_err(|x| format!("{events}:{}: {x}", n + 1))?;
        let t: serde_json::Value =
            serde_json::from_str(&t?).map_err(|x| format!("{truth}:{}: {x}", n + 1))?;
        let actor = e["actor"].as_str().unwrap_or("").to_string();
        let n = ids.len() as u32;
        let a = *ids.entry(actor).or_insert(n);
        let scenario = t["scenario"].as_str().unwrap_or("").to_string();
        let attack_account = !matches!(
            t["role"].as_str(),
            Some("buyer" | "staff" | "stuffing" | "label")
        );
        let r = role.entry(a).or_insert((scenario.clone(), attack_account));
        if attack_account && !r.1 {
            *r = (scenario, true);
        }
        let col = |m: &mut HashMap<String, u32>, v: &serde_json::Value| {
            let n = m.len() as u32;
            *m.entry(v.to_string()).or_insert(n)
        };
        match e["type"].as_str() {
            Some("order.create") if e["data"].get("seller").is_some() => {
                orders.push((a, col(&mut sellers, &e["data"]["seller"])))
            }
            Some("item.click") => clicks.push((a, col(&mut items, &e["data"]["item"]))),
            _ => {}
        }
        // A failed login does not show that the device is the account's (credential stuffing tries
        // thousands of accounts from a few devices): only the account's own activity links.
        if e["type"] == "account.login" && e["data"]["success"] == false {
            continue;
        }
        for f in ["device", "card", "shipping_address", "payout_account"] {
            if let Some(v) = e["data"].get(f) {
                let key = format!("{f}:{v}");
                let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
                });
                pairs.push((a, h));
            }
        }
    }
    let (cs, member) = clusters(ids.len(), &pairs, max_share);
    let in_big = |a: u32| member[a as usize].is_some_and(|c| cs[c as usize].accounts.len() >= k);
    let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut honest = (0usize, 0usize);
    let mut seen = HashSet::new();
    for (&a, (s, attack)) in &role {
        if !seen.insert(a) {
            continue;
        }
        if *attack {
            let e = per.entry(s.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(in_big(a));
        } else if s == "honest" {
            honest.0 += 1;
            honest.1 += usize::from(in_big(a));
        }
    }
    println!(
        "clusters of ≥ {k} accounts (values shared by at most {max_share} accounts link): {}",
        cs.iter().filter(|c| c.accounts.len() >= k).count()
    );
    for (s, (n, c)) in &per {
        println!(
            "  {s:<18} {c:>5} / {n:<5} attack accounts in such a cluster ({:.1} %)",
            100.0 * *c as f64 / *n as f64
        );
    }
    println!(
        "  {:<18} {:>5} / {:<5} honest users in such a cluster ({:.2} %)",
        "honest",
        honest.1,
        honest.0,
        100.0 * honest.1 as f64 / honest.0.max(1) as f64
    );

    // Dense blocks: the first `blocks` blocks of each graph (log weighting, repeat edges weighing their
    // count); accounts among their rows.
    let blocks: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(5);
    for (name, edges) in [
        ("buyer × seller (orders)", &orders),
        ("user × item (clicks)", &clicks),
    ] {
        let g = Bipartite::from_repeated_edges(edges.iter().copied());
        let found = peel_many(&g, Weighting::Log, blocks);
        let rows: HashSet<u32> = found.iter().flat_map(|b| b.rows.iter().copied()).collect();
        let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        let mut honest = (0usize, 0usize);
        let active: HashSet<u32> = edges.iter().map(|&(a, _)| a).collect();
        for &a in &active {
            let Some((s, attack)) = role.get(&a) else {
                continue;
            };
            if *attack {
                let e = per.entry(s.as_str()).or_default();
                e.0 += 1;
                e.1 += usize::from(rows.contains(&a));
            } else if s == "honest" {
                honest.0 += 1;
                honest.1 += usize::from(rows.contains(&a));
            }
        }
        let sizes: Vec<String> = found
            .iter()
            .map(|b| format!("{}×{}", b.rows.len(), b.cols.len()))
            .collect();
        println!(
            "dense blocks of {name}: {} edges, first {blocks} blocks {}",
            g.edges(),
            sizes.join(", ")
        );
        for (s, (n, c)) in &per {
            println!(
                "  {s:<18} {c:>5} / {n:<5} attack accounts in a block ({:.1} %)",
                100.0 * *c as f64 / *n as f64
            );
        }
        println!(
            "  {:<18} {:>5} / {:<5} honest users in a block ({:.2} %)",
            "honest",
            honest.1,
            honest.0,
            100.0 * honest.1 as f64 / honest.0.max(1) as f64
        );
    }
    Ok(())
}
