//! Brushing ring: a seller places fake orders on its own cheap items through buyer accounts it
//! controls, then posts five-star reviews after "delivery". `size` = buyer accounts; `intensity`
//! scales orders per buyer. Camouflage uses aged accounts bought on the market, varies prices and
//! ratings, ships to the buyers' own addresses, spreads devices and networks, and has the buyers shop
//! normally elsewhere too.

use super::*;

pub fn run(cx: &mut Ctx<'_>) {
    for _ in 0..cx.count {
        cx.begin();
        let n = cx.size();
        let c = cx.k.camouflage;
        let span = ((3.0 + 10.0 * cx.k.intensity.min(3.0)) * DAY as f64) as i64;
        let start = cx.start(span.min(20 * DAY));
        let country = cx.w.country_pick.sample(&mut cx.rng) as u8;
        // The seller and its cheap listings.
        let owner =
            cx.w.new_account(country, start - cx.rng.range(30, 400) * DAY, &mut cx.rng);
        let sid = cx.w.sellers.len() as u32;
        let payout = cx.w.new_payout();
        cx.w.sellers.push(Seller {
            owner,
            staff: vec![owner],
            items: Vec::new(),
            payout,
        });
        let (lo, hi) = if cx.rng.chance(c) {
            (800, 2500)
        } else {
            (100, 800)
        };
        for _ in 0..cx.rng.range(2, 4) {
            let price = cx.rng.range(lo, hi);
            let id = cx.w.items.len() as u32;
            cx.w.items.push(Item { seller: sid, price });
            cx.w.sellers[sid as usize].items.push(id);
        }
        let items = cx.w.sellers[sid as usize].items.clone();
        if cx.w.text {
            // The shop's listings, from a listing kit every brushing seller shares (copies, or
            // paraphrases when camouflaged), an hour apart before the campaign starts. Not drawn
            // from the campaign's random stream, and the owner is not noted for labels: the rest of
            // the world is the same with or without text.
            let owner_ev = {
                let u = &cx.w.users[owner as usize];
                (u.devices[0], u.home_ip)
            };
            let kind = if c >= 0.5 {
                crate::text::PARAPHRASE
            } else {
                crate::text::NAIVE
            };
            for (i, &item) in items.iter().enumerate() {
                cx.out(Role::Fraudster).emit(Ev {
                    t: start - (i as i64 + 1) * HOUR,
                    kind: Kind::Listing,
                    actor: owner,
                    device: owner_ev.0,
                    ip: owner_ev.1,
                    seller: sid,
                    item,
                    aux2: kind,
                    ..Default::default()
                });
            }
        }
        let drop = cx.w.new_address(country, &mut cx.rng);
        let n_dev = ((n as f64 * (0.2 + 0.8 * c)).round() as u32).max(1);
        let devices: Vec<u32> = (0..n_dev).map(|_| cx.w.new_device()).collect();
        let ops_ip = cx.proxy_ip(country);
        let orders_each = (4.0 * cx.k.intensity).max(1.0);
        for i in 0..n {
            let aged = cx.camo();
            let device = devices[i as usize % devices.len()];
            let ip = if cx.camo() {
                cx.proxy_ip(country)
            } else {
                ops_ip
            };
            let mut active_from = start - 2 * DAY;
            let acct = if aged {
                let a =
                    cx.w.new_account(country, start - cx.rng.range(60, 900) * DAY, &mut cx.rng);
                cx.w.users[a as usize].devices[0] = device;
                cx.w.users[a as usize].home_ip = ip;
                a
            } else {
                let t = start - cx.rng.range(HOUR, 3 * DAY);
                active_from = active_from.max(t + HOUR);
                let domain = cx.rng.index(4);
                cx.register(Role::BrushBuyer, t, country, device, ip, 1, domain)
            };
            if aged || cx.camo() {
                let sessions = cx.rng.range(2, 8) as u32;
                cx.normal_activity(Role::BrushBuyer, acct, active_from, start + span, sessions);
            }
            let card = cx.w.users[acct as usize].cards[0];
            let address = if cx.camo() {
                cx.w.users[acct as usize].address
            } else {
                drop
            };
            let k = 1 + cx.rng.poisson(orders_each - 1.0);
            for _ in 0..k {
                let t = start + cx.rng.range(0, span);
                let item = items[cx.rng.index(items.len())];
                let base = Ev {
                    actor: acct,
                    device,
                    ip,
                    ..Default::default()
                };
                let tc = t - cx.rng.range(30 * SEC, 10 * MIN);
                cx.emit(
                    Role::BrushBuyer,
                    Ev {
                        t: tc,
                        kind: Kind::Click,
                        item,
                        seller: sid,
                        flag: 2 << 2,
                        ..base
                    },
                );
                let r = cx.checkout(
                    Role::BrushBuyer,
                    Checkout {
                        actor: acct,
                        t,
                        item,
                        qty: 1,
                        card,
                        address,
                        billing: address,
                        device,
                        ip,
                        coupon: 0,
                        email: 0,
                        decline: 0.01,
                        money_at_risk: false,
                    },
                );
                if cx.rng.chance(0.9) {
                    let rating = if cx.rng.chance(c * 0.4) { 4 } else { 5 };
                    // A camouflaged review is as long as an honest one, and (with `--text`) a
                    // paraphrase of the ring's template rather than a copy.
                    let camo_text = cx.rng.chance(c);
                    let len = if camo_text {
                        cx.rng.lognormal(120.0, 0.9) as u32
                    } else {
                        cx.rng.range(10, 60) as u32
                    };
                    let tr = r.t + cx.rng.range(2 * DAY, 5 * DAY);
                    cx.emit(
                        Role::BrushBuyer,
                        Ev {
                            t: tr,
                            kind: Kind::Review,
                            item,
                            seller: sid,
                            order: r.order,
                            flag: rating,
                            aux: len,
                            aux2: if camo_text {
                                crate::text::PARAPHRASE
                            } else {
                                crate::text::NAIVE
                            },
                            ..base
                        },
                    );
                }
            }
        }
        cx.end();
    }
}
