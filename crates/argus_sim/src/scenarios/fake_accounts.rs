//! Fake-account farm (account integrity): a script registers accounts in bulk from emulators and a few
//! networks, with sequential SIM-farm phone numbers, to age them for later abuse or resale.
//! `size` = accounts per campaign. Camouflage spreads the registrations over days, gives each account
//! more emulator instances and residential proxies, uses common mail providers and a real browser
//! string, and keeps the accounts busy with ordinary browsing.

use super::*;

pub fn run(cx: &mut Ctx<'_>) {
    for _ in 0..cx.count {
        cx.begin();
        let n = cx.size();
        let c = cx.k.camouflage;
        let start = cx.start(3 * DAY);
        let span =
            (HOUR as f64 * (1.0 + 47.0 * c) * n as f64 / 40.0 / cx.k.intensity.max(0.05)) as i64;
        let country = cx.w.country_pick.sample(&mut cx.rng) as u8;
        let n_dev = ((n as f64 * (0.08 + 0.9 * c)).round() as u32).max(1);
        let devices: Vec<u32> = (0..n_dev).map(|_| cx.w.new_device()).collect();
        let dc: Vec<u32> = (0..3).map(|_| cx.datacenter_ip()).collect();
        let phone0 = cx.rng.below(90_000_000);
        for i in 0..n {
            let t = start + span * i as i64 / n as i64 + cx.rng.range(0, 5 * MIN);
            let ip = if cx.camo() {
                cx.proxy_ip(country)
            } else {
                dc[cx.rng.index(dc.len())]
            };
            let domain = cx.email_domain((1.0 - c) * 0.7);
            let ua = cx.ua((1.0 - c) * 0.3);
            let device = devices[i as usize % devices.len()];
            let acct = cx.register(Role::FakeAccount, t, country, device, ip, ua, domain);
            // SIM farm: consecutive numbers.
            cx.w.users[acct as usize].phone = ((country as u64) << 32) | (phone0 + i as u64);
            cx.w.users[acct as usize].devices[0] = device;
            cx.w.users[acct as usize].home_ip = ip;
            if cx.rng.chance(0.5 + 0.5 * c) {
                let sessions = cx.rng.range(1, 2 + (6.0 * c) as i64) as u32;
                cx.normal_activity(Role::FakeAccount, acct, t + HOUR, t + 10 * DAY, sessions);
            }
        }
        cx.end();
    }
}
