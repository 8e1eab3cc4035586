//! A small deterministic generator of e-commerce events for benchmarks (not the simulator: no attacks,
//! no labels). Heavy-tailed users, items and sellers; devices, IPs and cards mostly sticky per user.
//! Shared by `benches/replay.rs` and `examples/gen_events.rs` (a folder without `main.rs`, so Cargo does not
//! build it as an example of its own).
#![allow(dead_code)]

/// SplitMix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Heavy-tailed index in 0..n (small indexes are popular).
    pub fn skewed(&mut self, n: u64) -> u64 {
        let u = self.unit();
        ((u * u * u) * n as f64) as u64 % n
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn mix(x: u64, salt: u64) -> u64 {
    let mut r = Rng::new(x.wrapping_mul(31).wrapping_add(salt));
    r.next_u64()
}

/// `n` NDJSON event lines, in time order, starting 2026-01-01, about one event per 0.86 s of event time
/// per million (1M events span about ten days).
pub fn events(n: usize, seed: u64) -> Vec<String> {
    let mut r = Rng::new(seed);
    let mut t: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        t += r.below(1_728) as i64;
        let user = r.skewed(50_000);
        let device = if r.below(20) == 0 {
            r.below(60_000)
        } else {
            mix(user, 1) % 60_000
        };
        let ip = if r.below(10) == 0 {
            r.below(30_000)
        } else {
            mix(user, 2) % 30_000
        };
        let card = if r.below(25) == 0 {
            r.below(55_000)
        } else {
            mix(user, 3) % 55_000
        };
        let item = r.skewed(20_000);
        let seller = item % 2_000;
        let card = luhn(&format!("4{card:014}"));
        let ipaddr = format!("10.{}.{}.{}", ip >> 16, (ip >> 8) & 255, ip & 255);
        let amount = format!("{:.2}", (5.0f64 * (100.0f64).powf(r.unit())).min(9_999.0));
        let roll = r.below(100);
        let (ty, data) = if roll < 30 {
            let ok = r.below(10) != 0;
            (
                "account.login",
                format!(r#"{{"success":{ok},"device":"d{device}","ip":"{ipaddr}"}}"#),
            )
        } else if roll < 70 {
            (
                "item.click",
                format!(
                    r#"{{"item":"i{item}","seller":"s{seller}","device":"d{device}","ip":"{ipaddr}"}}"#
                ),
            )
        } else if roll < 85 {
            (
                "order.create",
                format!(
                    r#"{{"order":"o{i}","seller":"s{seller}","item":"i{item}","amount":"{amount}","currency":"EUR","card":"{card}","device":"d{device}","ip":"{ipaddr}"}}"#
                ),
            )
        } else {
            (
                "payment.attempt",
                format!(
                    r#"{{"order":"o{i}","amount":"{amount}","currency":"EUR","card":"{card}","device":"d{device}","ip":"{ipaddr}"}}"#
                ),
            )
        };
        out.push(format!(
            r#"{{"id":"e{i}","type":"{ty}","time":{t},"actor":"u{user}","data":{data}}}"#
        ));
    }
    out
}

/// `body` with its Luhn check digit appended (the decoder refuses card numbers without one).
fn luhn(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}
