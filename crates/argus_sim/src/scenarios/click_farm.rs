//! Click farm: many accounts view, like and follow the same target items in lockstep waves to push
//! them up the rankings. `size` = accounts; `intensity` scales the number of waves. Camouflage widens
//! each wave from a minute to an hour, rotates networks, gives each phone its own device and mixes in
//! clicks on ordinary popular items.

use super::*;

pub fn run(cx: &mut Ctx<'_>) {
    for _ in 0..cx.count {
        cx.begin();
        let n = cx.size();
        let c = cx.k.camouflage;
        let start = cx.start(6 * DAY);
        let country = cx.w.country_pick.sample(&mut cx.rng) as u8;
        // The customer's items: mid-popularity listings of one seller.
        let seller = loop {
            let s = cx.rng.range(1, cx.w.sellers.len() as i64 - 1) as u32;
            if !cx.w.sellers[s as usize].items.is_empty() {
                break s;
            }
        };
        let mut pool = cx.w.sellers[seller as usize].items.clone();
        let mut targets = Vec::new();
        while targets.len() < 3 && !pool.is_empty() {
            targets.push(pool.swap_remove(cx.rng.index(pool.len())));
        }
        let net = cx.w.datacenter_ip(&mut cx.rng) & 0xffff_ff00;
        let n_dev = ((n as f64 * (0.2 + 0.8 * c)).round() as u32).max(1);
        let devices: Vec<u32> = (0..n_dev).map(|_| cx.w.new_device()).collect();
        let mut accounts = Vec::new();
        for i in 0..n {
            let device = devices[i as usize % devices.len()];
            let ip = if cx.camo() {
                cx.proxy_ip(country)
            } else {
                net | (cx.rng.below(250) as u32 + 2)
            };
            let t = start - cx.rng.range(HOUR, 20 * DAY);
            let (ua, domain) = (cx.ua((1.0 - c) * 0.2), cx.email_domain((1.0 - c) * 0.4));
            let acct = cx.register(Role::Clicker, t, country, device, ip, ua, domain);
            cx.w.users[acct as usize].devices[0] = device;
            cx.w.users[acct as usize].home_ip = ip;
            accounts.push((acct, device, ip));
        }
        let waves = ((8.0 * cx.k.intensity).round() as u32).max(1);
        let spread = (MIN as f64 * (1.0 + 59.0 * c)) as i64;
        for wv in 0..waves {
            let t0 = start + wv as i64 * cx.rng.range(3 * HOUR, 14 * HOUR);
            for &(acct, device, ip) in &accounts {
                if !cx.rng.chance(0.9) {
                    continue;
                }
                let base = Ev {
                    actor: acct,
                    device,
                    ip,
                    ..Default::default()
                };
                let mut t = t0 + cx.rng.range(0, spread);
                for &item in &targets {
                    let action = *cx.rng.pick(&[0u8, 2, 2, 3]);
                    cx.emit(
                        Role::Clicker,
                        Ev {
                            t,
                            kind: Kind::Click,
                            item,
                            seller,
                            flag: action,
                            ..base
                        },
                    );
                    t += cx.rng.range(2 * SEC, 20 * SEC);
                }
                if cx.camo() {
                    for _ in 0..cx.rng.range(1, 5) {
                        let item = cx.w.pick_item(&mut cx.rng);
                        let s = cx.w.items[item as usize].seller;
                        t += cx.rng.range(5 * SEC, 2 * MIN);
                        cx.emit(
                            Role::Clicker,
                            Ev {
                                t,
                                kind: Kind::Click,
                                item,
                                seller: s,
                                ..base
                            },
                        );
                    }
                }
            }
        }
        cx.end();
    }
}
