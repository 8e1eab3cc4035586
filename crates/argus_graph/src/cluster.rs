//! Shared-attribute clustering: accounts linked by the attribute values they share (devices, cards,
//! addresses, payout accounts, phones), grouped into connected components — one person behind many
//! accounts shows up as one component. Hub values shared by very many accounts (a carrier-NAT address, a
//! family tablet in a big household, a marketplace's own pickup point) would chain unrelated people
//! together, so a value links accounts only while it is shared by at most `max_share` of them, and each
//! link carries the weight `1 / ln(e + accounts sharing it)`: a component's `strength` is the sum of its
//! links' weights, high for many rarely shared values.

use std::collections::HashMap;

/// Union-find with path halving and union by size.
#[derive(Clone, Debug)]
struct Dsu {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl Dsu {
    fn new(n: usize) -> Dsu {
        Dsu {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }
    fn union(&mut self, a: u32, b: u32) -> u32 {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return a;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
        a
    }
}

/// One cluster: its accounts (indices), the attribute values linking them, and its strength.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    pub accounts: Vec<u32>,
    pub links: usize,
    pub strength: f64,
}

/// Clusters of `accounts` accounts from `(account, attribute value)` pairs (an attribute value is any
/// `u64`, e.g. a hash of `device:d7`). Values shared by more than `max_share` accounts do not link.
/// Returns every cluster of two or more accounts, largest first, and each account's cluster index
/// (`None` when alone).
pub fn clusters(
    accounts: usize,
    pairs: &[(u32, u64)],
    max_share: usize,
) -> (Vec<Cluster>, Vec<Option<u32>>) {
    let mut by_value: HashMap<u64, Vec<u32>> = HashMap::new();
    for &(a, v) in pairs {
        let e = by_value.entry(v).or_default();
        if e.last() != Some(&a) && !e.contains(&a) {
            e.push(a);
        }
    }
    let mut values: Vec<(u64, Vec<u32>)> = by_value
        .into_iter()
        .filter(|(_, a)| a.len() >= 2 && a.len() <= max_share)
        .collect();
    // Deterministic order whatever the hashing.
    values.sort_unstable_by_key(|(v, _)| *v);
    let mut dsu = Dsu::new(accounts);
    for (_, accs) in &values {
        for w in accs.windows(2) {
            dsu.union(w[0], w[1]);
        }
    }
    let mut index: HashMap<u32, usize> = HashMap::new();
    let mut out: Vec<Cluster> = Vec::new();
    for a in 0..accounts as u32 {
        let r = dsu.find(a);
        if dsu.size[r as usize] < 2 {
            continue;
        }
        let i = *index.entry(r).or_insert_with(|| {
            out.push(Cluster {
                accounts: Vec::new(),
                links: 0,
                strength: 0.0,
            });
            out.len() - 1
        });
        out[i].accounts.push(a);
    }
    for (_, accs) in &values {
        let r = dsu.find(accs[0]);
        if let Some(&i) = index.get(&r) {
            out[i].links += 1;
            out[i].strength +=
                (accs.len() - 1) as f64 / (std::f64::consts::E + accs.len() as f64).ln();
        }
    }
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&x, &y| {
        out[y]
            .accounts
            .len()
            .cmp(&out[x].accounts.len())
            .then(out[x].accounts[0].cmp(&out[y].accounts[0]))
    });
    let mut member = vec![None; accounts];
    let sorted: Vec<Cluster> = order.iter().map(|&i| out[i].clone()).collect();
    for (ci, c) in sorted.iter().enumerate() {
        for &a in &c.accounts {
            member[a as usize] = Some(ci as u32);
        }
    }
    (sorted, member)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_person_many_accounts_is_one_cluster_and_hubs_do_not_chain() {
        // Accounts 0–4 share devices and an address in a chain; 5–6 share a card; everyone (0–9) shares
        // a carrier-NAT address (a hub).
        let mut pairs = vec![
            (0, 100),
            (1, 100),
            (1, 101),
            (2, 101),
            (2, 102),
            (3, 102),
            (3, 103),
            (4, 103),
            (5, 200),
            (6, 200),
        ];
        pairs.extend((0..10).map(|a| (a, 999)));
        let (cs, member) = clusters(10, &pairs, 5);
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].accounts, vec![0, 1, 2, 3, 4]);
        assert_eq!(cs[0].links, 4);
        assert_eq!(cs[1].accounts, vec![5, 6]);
        assert_eq!(member[7], None, "the hub links nobody");
        assert_eq!(member[3], Some(0));
        // Without the cap the hub chains everyone together.
        let (all, _) = clusters(10, &pairs, 100);
        assert_eq!(all[0].accounts.len(), 10);
    }
}
