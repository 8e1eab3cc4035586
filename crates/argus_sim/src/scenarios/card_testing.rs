//! Card testing: a bot checks which stolen card numbers are live with small authorisations, one after
//! another, most of them declined. `size` = cards tried per campaign. Camouflage uses test amounts that
//! look like purchases, cards from many issuers instead of one BIN range, more accounts and devices,
//! residential proxies, and minutes instead of seconds between tries.

use super::*;

pub fn run(cx: &mut Ctx<'_>) {
    for _ in 0..cx.count {
        cx.begin();
        let n = cx.size();
        let c = cx.k.camouflage;
        let start = cx.start(2 * DAY);
        let country = cx.w.country_pick.sample(&mut cx.rng) as u8;
        let n_acc = 1 + (5.0 * c).round() as u32;
        let n_dev = 1 + (10.0 * c).round() as u32;
        let devices: Vec<u32> = (0..n_dev).map(|_| cx.w.new_device()).collect();
        let dc: Vec<u32> = (0..2).map(|_| cx.datacenter_ip()).collect();
        let mut accounts = Vec::new();
        for i in 0..n_acc {
            let t = start
                - if cx.camo() {
                    cx.rng.range(2 * DAY, 20 * DAY)
                } else {
                    cx.rng.range(MIN, HOUR)
                };
            let ip = dc[i as usize % dc.len()];
            let (ua, domain) = (cx.ua((1.0 - c) * 0.5), cx.email_domain((1.0 - c) * 0.5));
            accounts.push(cx.register(
                Role::CardTester,
                t,
                country,
                devices[i as usize % devices.len()],
                ip,
                ua,
                domain,
            ));
        }
        let bin_attack = !cx.camo();
        let bin = 400_000 + cx.rng.below(90_000) as u32;
        let first = cx.rng.below(9_000_000_000);
        let gap = (cx.rng.range(5 * SEC, 20 * SEC) as f64 * (1.0 + 60.0 * c)
            / cx.k.intensity.max(0.05)) as i64;
        let mut t = start;
        for i in 0..n {
            let cc = cx.rng.index(COUNTRIES.len()) as u8;
            let card = if bin_attack {
                cx.w.card_in_bin(bin, first + i as u64 * 7, cc)
            } else {
                cx.w.new_card(cc, &mut cx.rng)
            };
            let acct = accounts[i as usize % accounts.len()];
            let device = devices[(i as usize / 3) % devices.len()];
            let ip = if cx.camo() {
                cx.proxy_ip(country)
            } else {
                dc[cx.rng.index(dc.len())]
            };
            let amount = if cx.camo() {
                cx.rng.range(300, 1500)
            } else {
                cx.rng.range(50, 199)
            };
            t += gap + cx.rng.range(0, gap);
            let base = Ev {
                actor: acct,
                device,
                ip,
                ..Default::default()
            };
            cx.emit(
                Role::CardTester,
                Ev {
                    t,
                    kind: Kind::PaymentAttempt,
                    amount,
                    card,
                    ..base
                },
            );
            let declined = cx.rng.chance(0.75);
            let flag = if declined {
                *cx.rng.pick(&[2u8, 3, 3])
            } else {
                0
            };
            let tr = t + cx.rng.range(300, 3000);
            cx.emit(
                Role::CardTester,
                Ev {
                    t: tr,
                    kind: Kind::PaymentResult,
                    amount,
                    card,
                    flag,
                    actor: acct,
                    ..Default::default()
                },
            );
        }
        cx.end();
    }
}
