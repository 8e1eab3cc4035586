//! New-user coupon abuse ring (incentive abuse): one person opens many accounts, claims the welcome
//! coupon with each, orders to the same door and collects cash-back on one payout account.
//! `size` = accounts per ring. Camouflage gives accounts their own devices and proxies, paces signups
//! over days, writes a different flat number on the same address, and spreads the payouts.

use super::*;

pub fn run(cx: &mut Ctx<'_>) {
    for _ in 0..cx.count {
        cx.begin();
        let n = cx.size();
        let c = cx.k.camouflage;
        let start = cx.start(5 * DAY);
        let country = cx.w.country_pick.sample(&mut cx.rng) as u8;
        let home = cx.w.new_address(country, &mut cx.rng);
        let home_ip = cx.proxy_ip(country);
        let n_dev = ((n as f64 * 0.8 * c).round() as u32).max(1 + cx.rng.below(2) as u32);
        let devices: Vec<u32> = (0..n_dev).map(|_| cx.w.new_device()).collect();
        let payouts: Vec<u32> = (0..1 + (3.0 * c).round() as u32)
            .map(|_| cx.w.new_payout())
            .collect();
        let shared_card = cx.w.new_card(country, &mut cx.rng);
        let gap = (cx.rng.range(5 * MIN, 30 * MIN) as f64 * (1.0 + 30.0 * c)
            / cx.k.intensity.max(0.05)) as i64;
        let mut prev = 0;
        let mut t = start;
        for i in 0..n {
            t += gap + cx.rng.range(0, gap / 2);
            let device = devices[i as usize % devices.len()];
            let ip = if cx.camo() {
                cx.proxy_ip(country)
            } else {
                home_ip
            };
            let domain = cx.email_domain((1.0 - c) * 0.3);
            // The referral bonus as well: the previous account often "invited" this one.
            cx.referrer = if cx.rng.chance(0.5) { prev } else { 0 };
            let ua = cx.ua(0.0);
            let acct = cx.register(Role::RingAccount, t, country, device, ip, ua, domain);
            prev = acct;
            let base = Ev {
                actor: acct,
                device,
                ip,
                ..Default::default()
            };
            let mut tc = t + if cx.camo() {
                cx.rng.range(HOUR, 2 * DAY)
            } else {
                cx.rng.range(3 * MIN, 12 * MIN)
            };
            let claim = Ev {
                t: tc,
                kind: Kind::CouponClaim,
                coupon: COUPON_WELCOME,
                truth: Truth {
                    money: COUPONS[COUPON_WELCOME as usize].2,
                    ..Default::default()
                },
                ..base
            };
            cx.emit(Role::RingAccount, claim);
            tc += cx.rng.range(2 * MIN, 30 * MIN);
            let item = cx.item_priced(1000, 3000);
            let address = if cx.camo() {
                cx.w.address_variant(home, i as u16)
            } else {
                home
            };
            let card = if cx.camo() {
                cx.w.new_card(country, &mut cx.rng)
            } else {
                shared_card
            };
            let seller = cx.w.items[item as usize].seller;
            let tk = tc - cx.rng.range(20 * SEC, 3 * MIN);
            cx.emit(
                Role::RingAccount,
                Ev {
                    t: tk,
                    kind: Kind::Click,
                    item,
                    seller,
                    ..base
                },
            );
            let r = cx.checkout(
                Role::RingAccount,
                Checkout {
                    actor: acct,
                    t: tc,
                    item,
                    qty: 1,
                    card,
                    address,
                    billing: address,
                    device,
                    ip,
                    coupon: COUPON_WELCOME,
                    email: 0,
                    decline: 0.03,
                    money_at_risk: false,
                },
            );
            if cx.rng.chance(0.6) {
                // Cash-back to the operator's account.
                let payout = payouts[cx.rng.index(payouts.len())];
                let tp = r.t + cx.rng.range(HOUR, 3 * DAY);
                cx.emit(
                    Role::RingAccount,
                    Ev {
                        t: tp,
                        kind: Kind::Update,
                        flag: CHANGE_PAYOUT,
                        payout,
                        ..base
                    },
                );
                let amount = cx.rng.range(300, 800);
                let tq = tp + cx.rng.range(MIN, HOUR);
                cx.emit(
                    Role::RingAccount,
                    Ev {
                        t: tq,
                        kind: Kind::Payout,
                        payout,
                        amount,
                        truth: Truth {
                            money: amount,
                            ..Default::default()
                        },
                        ..base
                    },
                );
            }
        }
        cx.end();
    }
}
