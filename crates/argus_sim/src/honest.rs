//! Honest activity, one user-day at a time: heavy-tailed session rates, diurnal and weekly cycles,
//! households sharing devices and networks, mobile carrier NAT, travellers, first-time buyers with their
//! welcome coupon, flash sales, declines and retries, refunds, reviews after delivery, seller staff
//! processing orders, and seller payouts.
//!
//! Each user-day draws from its own random stream (seed, user, day), so a user's behaviour does not
//! depend on anyone else's and the world is the same whatever else is switched on.

use crate::event::*;
use crate::rng::{name_label, Rng, Weighted};
use crate::world::*;
use argus_event::time::{weekday, DAY, HOUR, MIN, SEC};

/// Share of sessions starting in each hour (UTC, the marketplace's main time zone).
const HOURS: [f64; 24] = [
    0.6, 0.35, 0.2, 0.15, 0.15, 0.3, 0.8, 1.5, 2.0, 2.2, 2.3, 2.5, 2.7, 2.5, 2.3, 2.3, 2.5, 3.0,
    3.6, 4.2, 4.5, 4.0, 2.8, 1.4,
];

pub struct Honest {
    hours: Weighted,
    stream: u64,
}

impl Default for Honest {
    fn default() -> Self {
        Honest {
            hours: Weighted::new(HOURS),
            stream: name_label("honest"),
        }
    }
}

fn honest_out(b: &mut Buckets, role: Role) -> Out<'_> {
    Out {
        buckets: b,
        truth: Truth {
            scenario: Scenario::Honest,
            role,
            campaign: 0,
            money: 0,
            money_key: 0,
            warmup: false,
        },
    }
}

impl Honest {
    /// Generates the day starting at `day0` for every honest user (events may land on later days:
    /// reviews, refunds).
    pub fn day(&self, w: &mut World, b: &mut Buckets, day0: i64) {
        let d = (day0 - w.start).div_euclid(DAY) + 1_000_000;
        for u in 1..w.people {
            let mut rng = Rng::new(w.seed, &[self.stream, u as u64, d as u64]);
            self.user_day(w, b, u, day0, &mut rng);
        }
        self.seller_payouts(w, b, d, day0);
        if w.text {
            self.seller_listings(w, b, d, day0);
        }
    }

    /// Honest sellers list items now and then (worlds with text only), each description their own.
    /// A stream of its own: the rest of the world is the same with or without text.
    fn seller_listings(&self, w: &mut World, b: &mut Buckets, d: i64, day0: i64) {
        let mut out = honest_out(b, Role::Staff);
        for s in 1..w.honest_sellers as usize {
            let mut rng = Rng::new(w.seed, &[self.stream, 0x11571, s as u64, d as u64]);
            let seller = &w.sellers[s];
            if seller.items.is_empty() || !rng.chance(0.1) {
                continue;
            }
            let owner = &w.users[seller.owner as usize];
            let item = seller.items[rng.index(seller.items.len())];
            let t = business_hours(day0 + rng.range(0, DAY), &mut rng);
            out.emit(Ev {
                t,
                kind: Kind::Listing,
                actor: seller.owner,
                device: owner.devices[0],
                ip: owner.home_ip,
                seller: s as u32,
                item,
                ..Default::default()
            });
        }
    }

    fn user_day(&self, w: &mut World, b: &mut Buckets, u: u32, day0: i64, rng: &mut Rng) {
        let user = w.users[u as usize].clone();
        if user.registered >= day0 + DAY {
            return;
        }
        if user.registered >= day0 {
            self.signup(w, b, u, rng);
        }
        let wd = weekday(day0, 0);
        let mut lambda = user.rate as f64
            * if wd >= 5 {
                1.25
            } else if wd == 0 {
                0.9
            } else {
                1.0
            };
        let flash = w
            .flash
            .iter()
            .copied()
            .find(|&(a, _)| a >= day0 && a < day0 + DAY);
        if flash.is_some() {
            lambda *= 1.6;
        }
        let n = rng.poisson(lambda);
        let mut times: Vec<i64> = (0..n)
            .map(|_| match flash {
                Some((a, e)) if rng.chance(0.5) => rng.range(a, e - 1),
                _ => day0 + self.hours.sample(rng) as i64 * HOUR + rng.range(0, HOUR - 1),
            })
            .filter(|&t| t > user.registered + 10 * MIN)
            .collect();
        times.sort_unstable();
        // A coupon is claimed once per user: the shop refuses a second claim of the same code.
        let mut flash_claimed = false;
        for t in times {
            self.session(w, b, u, t, rng, &mut flash_claimed);
        }
    }

    /// A first-time buyer: registration, then usually the welcome coupon and a first order with it.
    fn signup(&self, w: &mut World, b: &mut Buckets, u: u32, rng: &mut Rng) {
        let user = w.users[u as usize].clone();
        let mut out = honest_out(b, Role::Buyer);
        let t = user.registered;
        let device = user.devices[0];
        let ip = if user.mobile {
            w.mobile_ip(user.country, rng)
        } else {
            user.home_ip
        };
        let referrer = if rng.chance(0.1) {
            w.pick_honest(rng)
        } else {
            0
        };
        let base = Ev {
            actor: u,
            device,
            ip,
            ..Default::default()
        };
        out.emit(Ev {
            t,
            kind: Kind::Register,
            email: user.email,
            phone: user.phone,
            ua: user.ua,
            country: user.country + 1,
            aux: referrer,
            flag: rng.below(3) as u8,
            ..base
        });
        out.emit(Ev {
            t: t + rng.range(2 * SEC, 30 * SEC),
            kind: Kind::Login,
            flag: 1,
            ua: user.ua,
            country: user.country + 1,
            ..base
        });
        if rng.chance(0.6) {
            let tc = t + if rng.chance(0.5) {
                rng.range(MIN, 20 * MIN)
            } else {
                rng.range(HOUR, 3 * DAY)
            };
            out.emit(Ev {
                t: tc,
                kind: Kind::CouponClaim,
                coupon: COUPON_WELCOME,
                ..base
            });
            if rng.chance(0.6) {
                let item = w.pick_item(rng);
                let to = tc + rng.range(2 * MIN, 2 * HOUR);
                out.emit(Ev {
                    t: tc + (to - tc) / 2,
                    kind: Kind::Click,
                    item,
                    seller: w.items[item as usize].seller,
                    ..base
                });
                let r = checkout(
                    w,
                    &mut out,
                    rng,
                    Checkout {
                        actor: u,
                        t: to,
                        item,
                        qty: 1,
                        card: user.cards[0],
                        address: user.address,
                        billing: user.address,
                        device,
                        ip,
                        coupon: COUPON_WELCOME,
                        email: 0,
                        decline: 0.05,
                        money_at_risk: false,
                    },
                );
                self.after_order(w, b, u, item, r, rng);
            }
        }
    }

    fn session(
        &self,
        w: &mut World,
        b: &mut Buckets,
        u: u32,
        t0: i64,
        rng: &mut Rng,
        flash_claimed: &mut bool,
    ) {
        let user = w.users[u as usize].clone();
        let day = (t0 - w.start).div_euclid(DAY);
        let travel = user
            .travel
            .filter(|tr| day >= tr.start as i64 && day < tr.end as i64);
        let country = travel.map_or(user.country, |tr| tr.country);
        let device = if user.shared_device != 0 && rng.chance(0.3) {
            user.shared_device
        } else {
            user.devices[rng.index(user.n_devices.max(1) as usize)]
        };
        let ip = match travel {
            Some(tr) => w.residential_ip(
                tr.country,
                &mut Rng::new(w.seed, &[u as u64, tr.start as u64]),
            ),
            None if user.mobile && device == user.devices[0] && rng.chance(0.7) => {
                w.mobile_ip(user.country, rng)
            }
            None => user.home_ip,
        };
        let base = Ev {
            actor: u,
            device,
            ip,
            ..Default::default()
        };
        let mut out = honest_out(
            b,
            if user.staff_of != 0 {
                Role::Staff
            } else {
                Role::Buyer
            },
        );
        let mut t = t0;
        if travel.is_some() || rng.chance(0.35) {
            if rng.chance(0.015) {
                out.emit(Ev {
                    t,
                    kind: Kind::Login,
                    flag: 0,
                    ua: user.ua,
                    country: country + 1,
                    ..base
                });
                t += rng.range(5 * SEC, 40 * SEC);
            }
            if rng.chance(0.002) {
                // Forgot the password: a few failures, then a reset.
                for _ in 0..rng.range(2, 4) {
                    out.emit(Ev {
                        t,
                        kind: Kind::Login,
                        flag: 0,
                        ua: user.ua,
                        country: country + 1,
                        ..base
                    });
                    t += rng.range(5 * SEC, 40 * SEC);
                }
                t += rng.range(MIN, 10 * MIN);
                out.emit(Ev {
                    t,
                    kind: Kind::Update,
                    flag: CHANGE_PASSWORD,
                    ..base
                });
                t += rng.range(10 * SEC, MIN);
            }
            out.emit(Ev {
                t,
                kind: Kind::Login,
                flag: 1,
                ua: user.ua,
                country: country + 1,
                ..base
            });
            t += rng.range(3 * SEC, 30 * SEC);
        }
        let in_flash = w.in_flash(t0);
        let clicks = rng.geometric(4.0);
        let mut item = 0;
        for _ in 0..clicks {
            let promo = in_flash && rng.chance(0.4);
            item = if promo {
                *rng.pick(&w.promoted)
            } else {
                w.pick_item(rng)
            };
            let action = if rng.chance(0.75) {
                0
            } else if rng.chance(0.6) {
                1
            } else {
                2
            };
            let source = if promo { 2 } else { rng.below(4) as u8 & 0b11 };
            out.emit(Ev {
                t,
                kind: Kind::Click,
                item,
                seller: w.items[item as usize].seller,
                flag: action | source << 2,
                ..base
            });
            t += rng.range(4 * SEC, 90 * SEC);
        }
        let mut coupon = 0;
        if in_flash && !*flash_claimed && rng.chance(0.35) {
            *flash_claimed = true;
            out.emit(Ev {
                t,
                kind: Kind::CouponClaim,
                coupon: COUPON_FLASH,
                ..base
            });
            coupon = COUPON_FLASH;
            t += rng.range(10 * SEC, 2 * MIN);
        } else if rng.chance(0.01) {
            let c = if rng.chance(0.5) {
                COUPON_FREESHIP
            } else {
                COUPON_CASHBACK
            };
            out.emit(Ev {
                t,
                kind: Kind::CouponClaim,
                coupon: c,
                ..base
            });
            t += rng.range(10 * SEC, 2 * MIN);
        }
        if rng.chance(if in_flash { 0.35 } else { 0.22 }) {
            let qty = if rng.chance(0.1) {
                rng.range(2, 3) as u16
            } else {
                1
            };
            out.emit(Ev {
                t,
                kind: Kind::CartAdd,
                item,
                seller: w.items[item as usize].seller,
                qty,
                amount: w.items[item as usize].price,
                ..base
            });
            t += rng.range(20 * SEC, 10 * MIN);
            if rng.chance(0.5) {
                let mut card = user.cards[rng.index(user.n_cards.max(1) as usize)];
                let c = Checkout {
                    actor: u,
                    t,
                    item,
                    qty,
                    card,
                    address: user.address,
                    billing: user.address,
                    device,
                    ip,
                    coupon,
                    email: 0,
                    decline: 0.04,
                    money_at_risk: false,
                };
                let mut r = checkout(w, &mut out, rng, c);
                if !r.approved && rng.chance(0.7) {
                    // Retry: the other card, or the same one a little later.
                    if user.n_cards == 2 {
                        card = if card == user.cards[0] {
                            user.cards[1]
                        } else {
                            user.cards[0]
                        };
                    }
                    let c = Checkout {
                        actor: u,
                        t: r.t + rng.range(30 * SEC, 3 * MIN),
                        item,
                        qty,
                        card,
                        address: user.address,
                        billing: user.address,
                        device,
                        ip,
                        coupon,
                        email: 0,
                        decline: 0.3,
                        money_at_risk: false,
                    };
                    r = checkout(w, &mut out, rng, c);
                }
                if r.approved {
                    t = r.t;
                    self.after_order(w, b, u, item, r, rng);
                    out = honest_out(
                        b,
                        if user.staff_of != 0 {
                            Role::Staff
                        } else {
                            Role::Buyer
                        },
                    );
                }
            }
        }
        if rng.chance(0.004) {
            let change = *rng.pick(&[
                CHANGE_PASSWORD,
                CHANGE_PASSWORD,
                CHANGE_ADDRESS,
                CHANGE_PHONE,
                CHANGE_EMAIL,
            ]);
            let mut ev = Ev {
                t,
                kind: Kind::Update,
                flag: change,
                ..base
            };
            match change {
                CHANGE_ADDRESS => {
                    let a = w.new_address(user.country, rng);
                    w.users[u as usize].address = a;
                    ev.address = a;
                }
                CHANGE_PHONE => {
                    ev.phone = ((user.country as u64) << 32) | rng.below(100_000_000);
                    w.users[u as usize].phone = ev.phone;
                }
                CHANGE_EMAIL => {
                    ev.email = ((rng.index(DOMAINS_COMMON) as u64) << 32)
                        | (user.email & 0xffff_ffff) ^ 0x5555;
                    w.users[u as usize].email = ev.email;
                }
                _ => {}
            }
            out.emit(ev);
        }
        if user.staff_of == 0 && rng.chance(0.003) {
            // Withdrawing cash-back to a bank account the user has had for long.
            if user.payout == 0 {
                w.users[u as usize].payout = w.new_payout();
            }
            let payout = w.users[u as usize].payout;
            out.emit(Ev {
                t: t + rng.range(10 * SEC, MIN),
                kind: Kind::Payout,
                payout,
                amount: rng.range(500, 4000),
                ..base
            });
        }
    }

    /// What follows an approved order: the seller's staff open the buyer's address to ship it, the
    /// buyer sometimes reviews after delivery or asks for a refund.
    fn after_order(
        &self,
        w: &mut World,
        b: &mut Buckets,
        u: u32,
        item: u32,
        r: CheckoutResult,
        rng: &mut Rng,
    ) {
        let seller = w.items[item as usize].seller;
        if rng.chance(0.7) {
            let s = &w.sellers[seller as usize];
            let staff = *rng.pick(&s.staff);
            let st = &w.users[staff as usize];
            let t = business_hours(r.t + rng.range(10 * MIN, 6 * HOUR), rng);
            let ev = Ev {
                t,
                kind: Kind::DataAccess,
                actor: staff,
                device: st.devices[0],
                ip: st.home_ip,
                flag: 0,
                order: r.order,
                aux: u,
                seller,
                ..Default::default()
            };
            honest_out(b, Role::Staff).emit(ev);
        }
        let user = &w.users[u as usize];
        let base = Ev {
            actor: u,
            device: user.devices[0],
            ip: user.home_ip,
            ..Default::default()
        };
        let mut out = honest_out(b, Role::Buyer);
        if rng.chance(0.12) {
            let rating = *rng.pick(&[5, 5, 5, 5, 5, 5, 4, 4, 4, 3, 2, 1]);
            let len = rng.lognormal(120.0, 0.9).min(4000.0) as u32;
            out.emit(Ev {
                t: r.t + rng.range(3 * DAY, 12 * DAY),
                kind: Kind::Review,
                item,
                seller,
                order: r.order,
                flag: rating,
                aux: len,
                ..base
            });
        }
        if rng.chance(0.03) {
            out.emit(Ev {
                t: r.t + rng.range(2 * DAY, 20 * DAY),
                kind: Kind::Refund,
                order: r.order,
                amount: r.amount,
                seller,
                flag: rng.below(3) as u8,
                ..base
            });
        }
        if rng.chance(0.002) {
            out.emit(Ev {
                t: r.t + rng.range(DAY, 5 * DAY),
                kind: Kind::LegitConfirmed,
                aux2: r.attempt,
                actor: u,
                ..Default::default()
            });
        }
    }

    /// Sellers' owners withdraw their takings on Monday mornings.
    fn seller_payouts(&self, w: &mut World, b: &mut Buckets, d: i64, day0: i64) {
        if weekday(day0, 0) != 0 {
            return;
        }
        let mut out = honest_out(b, Role::Staff);
        for s in 1..w.sellers.len() {
            let mut rng = Rng::new(w.seed, &[self.stream, 0x5e11e5, s as u64, d as u64]);
            let seller = &w.sellers[s];
            if seller.items.is_empty() || !rng.chance(0.8) {
                continue;
            }
            let owner = &w.users[seller.owner as usize];
            let amount = rng.lognormal(20_000.0 * (seller.items.len() as f64).sqrt(), 0.6) as i64;
            let t = day0 + rng.range(8 * HOUR, 12 * HOUR);
            out.emit(Ev {
                t,
                kind: Kind::Payout,
                actor: seller.owner,
                device: owner.devices[0],
                ip: owner.home_ip,
                payout: seller.payout,
                amount,
                ..Default::default()
            });
        }
    }
}

/// Moves a time to the next working hour (09:00–18:00, Monday to Saturday).
pub fn business_hours(t: i64, rng: &mut Rng) -> i64 {
    let mut t = t;
    for _ in 0..3 {
        let h = t.rem_euclid(DAY) / HOUR;
        if (9..18).contains(&h) && weekday(t, 0) != 6 {
            return t;
        }
        let day = t.div_euclid(DAY) + if h >= 18 || weekday(t, 0) == 6 { 1 } else { 0 };
        t = day * DAY + 9 * HOUR + rng.range(0, 2 * HOUR);
    }
    t
}
