//! Stolen-card checkout (payment fraud): a crew with validated stolen cards buys high-value goods to a
//! reshipping drop; the real card holders' chargebacks arrive weeks later. `size` = accounts per crew;
//! `intensity` scales orders per account. Camouflage uses accounts opened weeks earlier and used
//! normally, one device each, proxies in the card's country, a billing address matching the card, a
//! fresh card per order and ordinary mail providers.

use super::*;

pub fn run(cx: &mut Ctx<'_>) {
    for _ in 0..cx.count {
        cx.begin();
        let n = cx.size();
        let start = cx.start(3 * DAY);
        let home = cx.w.country_pick.sample(&mut cx.rng) as u8;
        let drop = cx.w.new_address(home, &mut cx.rng);
        let crew_devices: Vec<u32> = (0..2).map(|_| cx.w.new_device()).collect();
        let vpn = cx.datacenter_ip();
        for i in 0..n {
            let card_country = cx.rng.index(COUNTRIES.len()) as u8;
            let careful = cx.camo();
            let device = if careful {
                cx.w.new_device()
            } else {
                crew_devices[i as usize % 2]
            };
            let ip = if careful {
                cx.proxy_ip(card_country)
            } else {
                vpn
            };
            let t0 = start + cx.rng.range(0, 2 * DAY);
            let acct = if careful {
                let reg = t0 - cx.rng.range(5 * DAY, 25 * DAY);
                let (ua, domain) = (cx.ua(0.0), cx.email_domain(0.0));
                let a = cx.register(Role::Fraudster, reg, home, device, ip, ua, domain);
                let sessions = cx.rng.range(2, 6) as u32;
                cx.normal_activity(Role::Fraudster, a, reg + HOUR, t0, sessions);
                a
            } else {
                let (tr, ua, domain) = (
                    t0 - cx.rng.range(15 * MIN, 60 * MIN),
                    cx.ua(0.1),
                    cx.email_domain(0.3),
                );
                cx.register(Role::Fraudster, tr, home, device, ip, ua, domain)
            };
            let orders = 1 + cx.rng.poisson((1.5 * cx.k.intensity - 1.0).max(0.0));
            let mut card = cx.w.new_card(card_country, &mut cx.rng);
            let mut t = t0;
            for _ in 0..orders {
                if careful {
                    card = cx.w.new_card(card_country, &mut cx.rng);
                }
                let item = cx.item_above(15_000);
                let qty = if careful {
                    1
                } else {
                    cx.rng.range(1, 3) as u16
                };
                let billing = if careful {
                    cx.w.new_address(card_country, &mut cx.rng)
                } else {
                    drop
                };
                let address = if careful {
                    cx.w.address_variant(drop, i as u16)
                } else {
                    drop
                };
                let email = if careful {
                    0
                } else {
                    (((DOMAIN_DISPOSABLE.start + cx.rng.index(4)) as u64) << 32)
                        | cx.rng.below(1 << 30)
                };
                let seller = cx.w.items[item as usize].seller;
                let tk = t - cx.rng.range(MIN, 10 * MIN);
                cx.emit(
                    Role::Fraudster,
                    Ev {
                        t: tk,
                        kind: Kind::Click,
                        item,
                        seller,
                        actor: acct,
                        device,
                        ip,
                        ..Default::default()
                    },
                );
                let r = cx.checkout(
                    Role::Fraudster,
                    Checkout {
                        actor: acct,
                        t,
                        item,
                        qty,
                        card,
                        address,
                        billing,
                        device,
                        ip,
                        coupon: 0,
                        email,
                        decline: 0.15,
                        money_at_risk: true,
                    },
                );
                if r.approved {
                    // The card holder disputes the charge 10–45 days later.
                    let tc = r.t + cx.rng.range(10 * DAY, 45 * DAY);
                    let ev = Ev {
                        t: tc,
                        kind: Kind::Chargeback,
                        actor: acct,
                        order: r.order,
                        amount: r.amount,
                        card,
                        aux2: r.attempt,
                        ..Default::default()
                    };
                    cx.emit(Role::Label, ev);
                }
                t = r.t
                    + if careful {
                        cx.rng.range(6 * HOUR, 3 * DAY)
                    } else {
                        cx.rng.range(2 * MIN, 30 * MIN)
                    };
            }
        }
        cx.end();
    }
}
