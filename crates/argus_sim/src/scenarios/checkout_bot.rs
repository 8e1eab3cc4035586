//! Checkout bots (malicious automation): at a flash sale's drop, bot accounts add the promoted items to
//! their carts and check out within seconds, again and again, hoarding stock for resale. `size` = bot
//! accounts per sale; `intensity` scales orders per bot; campaigns = flash sales attacked (at most one
//! per sale). Camouflage shows real browsers, residential networks, one device per bot, and human
//! pauses between cart and checkout.

use super::*;

pub fn run(cx: &mut Ctx<'_>) {
    let sales = cx.w.flash.clone();
    for &(drop_t, end) in sales.iter().take(cx.count as usize) {
        cx.begin();
        let n = cx.size();
        let c = cx.k.camouflage;
        let country = cx.w.country_pick.sample(&mut cx.rng) as u8;
        let shared: Vec<u32> = (0..2).map(|_| cx.w.new_device()).collect();
        let mut bots = Vec::new();
        for i in 0..n {
            let careful = cx.camo();
            let device = if careful {
                cx.w.new_device()
            } else {
                shared[i as usize % 2]
            };
            let ip = if careful {
                cx.proxy_ip(country)
            } else {
                cx.datacenter_ip()
            };
            let ua = cx.ua(if careful { 0.0 } else { 0.6 });
            let reg = drop_t - cx.rng.range(HOUR, 10 * DAY);
            let domain = cx.email_domain((1.0 - c) * 0.3);
            let acct = cx.register(Role::Bot, reg, country, device, ip, ua, domain);
            bots.push((acct, device, ip, ua, careful));
        }
        let promoted = cx.w.promoted.clone();
        let orders = (6.0 * cx.k.intensity).round().max(1.0) as u32;
        for (acct, device, ip, ua, careful) in bots {
            let card = cx.w.users[acct as usize].cards[0];
            let address = cx.w.users[acct as usize].address;
            let mut t = drop_t
                + if careful {
                    cx.rng.range(10 * SEC, 10 * MIN)
                } else {
                    cx.rng.range(200, 5 * SEC)
                };
            let base = Ev {
                actor: acct,
                device,
                ip,
                ..Default::default()
            };
            cx.emit(
                Role::Bot,
                Ev {
                    t,
                    kind: Kind::Login,
                    flag: 1,
                    ua,
                    country: country + 1,
                    ..base
                },
            );
            for _ in 0..orders {
                let item = promoted[cx.rng.index(promoted.len())];
                let qty = cx.rng.range(2, 5) as u16;
                t += if careful {
                    cx.rng.range(20 * SEC, 3 * MIN)
                } else {
                    cx.rng.range(300, 3 * SEC)
                };
                let seller = cx.w.items[item as usize].seller;
                cx.emit(
                    Role::Bot,
                    Ev {
                        t,
                        kind: Kind::CartAdd,
                        item,
                        seller,
                        qty,
                        amount: cx.w.items[item as usize].price,
                        ..base
                    },
                );
                t += if careful {
                    cx.rng.range(15 * SEC, 2 * MIN)
                } else {
                    cx.rng.range(200, 2 * SEC)
                };
                if t >= end {
                    break;
                }
                let r = cx.checkout(
                    Role::Bot,
                    Checkout {
                        actor: acct,
                        t,
                        item,
                        qty,
                        card,
                        address,
                        billing: address,
                        device,
                        ip,
                        coupon: 0,
                        email: 0,
                        decline: 0.02,
                        money_at_risk: false,
                    },
                );
                t = r.t;
            }
        }
        cx.end();
    }
}
