//! Credential stuffing, then account takeover: a botnet tries leaked credentials on many accounts; on
//! the few that work the attacker logs in from a new device, changes the password, email and address,
//! and cashes out with a high-value order on the stored card or a payout to a new bank account.
//! `size` = credentials tried per wave. Camouflage spreads the wave over many residential proxies and
//! two days, uses ordinary browsers, logs in from the victim's country, changes less, and waits longer
//! before spending.

use super::*;

pub fn run(cx: &mut Ctx<'_>) {
    for _ in 0..cx.count {
        cx.begin();
        let n = cx.size();
        let c = cx.k.camouflage;
        let start = cx.start(4 * DAY);
        let n_ip = 5 + (300.0 * c).round() as usize;
        let ips: Vec<u32> = (0..n_ip)
            .map(|_| {
                if cx.camo() {
                    let cc = cx.rng.index(COUNTRIES.len()) as u8;
                    cx.proxy_ip(cc)
                } else {
                    cx.datacenter_ip()
                }
            })
            .collect();
        // Spoofed device fingerprints: one for the whole wave, or a fresh one for most tries.
        let n_dev = 1 + (n as f64 * c).round() as usize;
        let bot_devices: Vec<u32> = (0..n_dev).map(|_| cx.w.new_device()).collect();
        let span = ((HOUR as f64) * (0.5 + 47.5 * c) / cx.k.intensity.max(0.05)) as i64;
        let ua = cx.ua(1.0 - c);
        let mut victims = Vec::new();
        for i in 0..n {
            let t = start + span * i as i64 / n as i64 + cx.rng.range(0, 30 * SEC);
            let ip = ips[i as usize % ips.len()];
            let (acct, hit) = if cx.rng.chance(0.85) {
                (cx.w.pick_honest(&mut cx.rng), cx.rng.chance(0.04))
            } else {
                // A leaked login that has no account here: an id the marketplace never issued.
                cx.w.users.push(User::default());
                (cx.w.users.len() as u32 - 1, false)
            };
            let base = Ev {
                actor: acct,
                device: bot_devices[i as usize % n_dev],
                ip,
                ua,
                ..Default::default()
            };
            if hit {
                cx.emit(
                    Role::Hijacker,
                    Ev {
                        t,
                        kind: Kind::Login,
                        flag: 1,
                        ..base
                    },
                );
                victims.push((acct, t));
            } else {
                cx.emit(
                    Role::Stuffing,
                    Ev {
                        t,
                        kind: Kind::Login,
                        flag: 0,
                        ..base
                    },
                );
            }
        }
        let payout = cx.w.new_payout();
        for (v, t_hit) in victims {
            let careful = cx.camo();
            let user = cx.w.users[v as usize].clone();
            let device = cx.w.new_device();
            let ip = if careful {
                cx.proxy_ip(user.country)
            } else {
                ips[cx.rng.index(ips.len())]
            };
            let country = if careful {
                user.country
            } else {
                cx.rng.index(COUNTRIES.len()) as u8
            };
            let mut t = t_hit
                + if careful {
                    cx.rng.range(6 * HOUR, 3 * DAY)
                } else {
                    cx.rng.range(10 * MIN, 3 * HOUR)
                };
            let base = Ev {
                actor: v,
                device,
                ip,
                ..Default::default()
            };
            let ua = cx.ua(0.0);
            cx.emit(
                Role::Hijacker,
                Ev {
                    t,
                    kind: Kind::Login,
                    flag: 1,
                    ua,
                    country: country + 1,
                    ..base
                },
            );
            let p = |x: f64| x * (1.0 - 0.5 * c);
            let drop = cx.w.new_address(user.country, &mut cx.rng);
            for (change, prob) in [
                (CHANGE_PASSWORD, p(1.0)),
                (CHANGE_EMAIL, p(0.8)),
                (CHANGE_PHONE, p(0.3)),
                (CHANGE_ADDRESS, 0.9),
            ] {
                if !cx.rng.chance(prob) {
                    continue;
                }
                t += cx.rng.range(20 * SEC, 5 * MIN);
                let mut ev = Ev {
                    t,
                    kind: Kind::Update,
                    flag: change,
                    ..base
                };
                match change {
                    CHANGE_EMAIL => {
                        ev.email = (((DOMAIN_DISPOSABLE.start + cx.rng.index(4)) as u64) << 32)
                            | cx.rng.below(1 << 30)
                    }
                    CHANGE_PHONE => ev.phone = ((country as u64) << 32) | cx.rng.below(100_000_000),
                    CHANGE_ADDRESS => ev.address = drop,
                    _ => {}
                }
                cx.emit(Role::Hijacker, ev);
            }
            t += if careful {
                cx.rng.range(2 * HOUR, 2 * DAY)
            } else {
                cx.rng.range(2 * MIN, 30 * MIN)
            };
            if cx.rng.chance(0.6) {
                let item = cx.item_above(30_000);
                let card = user.cards[0];
                cx.checkout(
                    Role::Hijacker,
                    Checkout {
                        actor: v,
                        t,
                        item,
                        qty: 1,
                        card,
                        address: drop,
                        billing: user.address,
                        device,
                        ip,
                        coupon: 0,
                        email: 0,
                        decline: 0.05,
                        money_at_risk: true,
                    },
                );
            } else {
                cx.emit(
                    Role::Hijacker,
                    Ev {
                        t,
                        kind: Kind::Update,
                        flag: CHANGE_PAYOUT,
                        payout,
                        ..base
                    },
                );
                let amount = cx.rng.range(20_000, 200_000);
                let ev = Ev {
                    t: t + cx.rng.range(MIN, HOUR),
                    kind: Kind::Payout,
                    payout,
                    amount,
                    truth: Truth {
                        money: amount,
                        ..Default::default()
                    },
                    ..base
                };
                cx.emit(Role::Hijacker, ev);
            }
        }
        cx.end();
    }
}
