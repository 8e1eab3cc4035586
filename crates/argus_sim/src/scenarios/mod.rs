//! Attack scenarios, one file each (PRODUCT.md §1). Each is a function of a [`Ctx`]: the world to act
//! in, its own random stream, and the knobs — how many campaigns, their size, their intensity, and how
//! much **camouflage** the attackers use (0 = naive, 1 = careful: they rotate devices and networks,
//! pace themselves, use aged accounts and also behave normally).

mod account_takeover;
mod brushing;
mod card_testing;
mod checkout_bot;
mod click_farm;
mod coupon_ring;
mod data_harvest;
mod fake_accounts;
mod stolen_card;

use crate::event::*;
use crate::rng::{name_label, Rng};
use crate::world::*;
use argus_event::time::{DAY, HOUR, MIN, SEC};
use serde::{Deserialize, Serialize};

/// Knobs of one scenario. `campaigns` is per 20,000 honest users and 30 days (scaled to the world).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Knobs {
    pub enabled: bool,
    pub campaigns: f64,
    /// Accounts (or cards, attempts, records) per campaign; each scenario says which.
    pub size: u32,
    /// Activity multiplier: orders per account, waves, attempts per hour …
    pub intensity: f64,
    /// 0 = naive attackers, 1 = careful ones.
    pub camouflage: f64,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            enabled: true,
            campaigns: 4.0,
            size: 10,
            intensity: 1.0,
            camouflage: 0.2,
        }
    }
}

type Run = fn(&mut Ctx<'_>);

/// Every scenario: its generator and its default knobs (one line each).
pub const SCENARIOS: [(Scenario, Run, Knobs); 9] = [
    (
        Scenario::FakeAccounts,
        fake_accounts::run,
        Knobs {
            enabled: true,
            campaigns: 6.0,
            size: 40,
            intensity: 1.0,
            camouflage: 0.2,
        },
    ),
    (
        Scenario::CouponRing,
        coupon_ring::run,
        Knobs {
            enabled: true,
            campaigns: 8.0,
            size: 12,
            intensity: 1.0,
            camouflage: 0.2,
        },
    ),
    (
        Scenario::Brushing,
        brushing::run,
        Knobs {
            enabled: true,
            campaigns: 4.0,
            size: 15,
            intensity: 1.0,
            camouflage: 0.2,
        },
    ),
    (
        Scenario::ClickFarm,
        click_farm::run,
        Knobs {
            enabled: true,
            campaigns: 3.0,
            size: 50,
            intensity: 1.0,
            camouflage: 0.2,
        },
    ),
    (
        Scenario::CardTesting,
        card_testing::run,
        Knobs {
            enabled: true,
            campaigns: 5.0,
            size: 60,
            intensity: 1.0,
            camouflage: 0.2,
        },
    ),
    (
        Scenario::StolenCard,
        stolen_card::run,
        Knobs {
            enabled: true,
            campaigns: 6.0,
            size: 8,
            intensity: 1.0,
            camouflage: 0.2,
        },
    ),
    (
        Scenario::AccountTakeover,
        account_takeover::run,
        Knobs {
            enabled: true,
            campaigns: 3.0,
            size: 600,
            intensity: 1.0,
            camouflage: 0.2,
        },
    ),
    (
        Scenario::DataHarvest,
        data_harvest::run,
        Knobs {
            enabled: true,
            campaigns: 4.0,
            size: 1200,
            intensity: 1.0,
            camouflage: 0.2,
        },
    ),
    (
        Scenario::CheckoutBot,
        checkout_bot::run,
        Knobs {
            enabled: true,
            campaigns: 1.0,
            size: 10,
            intensity: 1.0,
            camouflage: 0.2,
        },
    ),
];

/// What a scenario generator works with.
pub struct Ctx<'a> {
    pub w: &'a mut World,
    pub b: &'a mut Buckets,
    pub rng: Rng,
    pub k: Knobs,
    pub scenario: Scenario,
    /// Campaigns to run in this world (knob × world size × days × attack scale).
    pub count: u32,
    /// The `referrer` of the next [`Ctx::register`] (0 = none); consumed by it.
    pub referrer: u32,
    campaign: u32,
    /// (account, first event id, last event time) of the current campaign's accounts.
    accounts: Vec<(u32, u64, i64)>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        w: &'a mut World,
        b: &'a mut Buckets,
        scenario: Scenario,
        k: Knobs,
        scale: f64,
    ) -> Ctx<'a> {
        let rng = Rng::new(w.seed, &[name_label(scenario.name())]);
        let people = w.honest as f64 / 20_000.0;
        // At least one campaign when the scenario is on at all (a small world still shows every attack).
        let raw = k.campaigns * people * w.days as f64 / 30.0 * scale;
        let count = if k.enabled && raw > 0.0 {
            raw.round().max(1.0) as u32
        } else {
            0
        };
        Ctx {
            w,
            b,
            rng,
            k,
            scenario,
            count,
            referrer: 0,
            campaign: 0,
            accounts: Vec::new(),
        }
    }

    /// Whether this attacker, this time, takes the careful route.
    pub fn camo(&mut self) -> bool {
        self.rng.chance(self.k.camouflage)
    }

    /// `size` varied by ±25 %.
    pub fn size(&mut self) -> u32 {
        let s = self.k.size.max(1) as f64;
        (s * self.rng.uniform(0.75, 1.25)).round().max(1.0) as u32
    }

    /// Starts a campaign; returns its number.
    pub fn begin(&mut self) -> u32 {
        self.campaign = self.w.new_campaign();
        self.accounts.clear();
        self.campaign
    }

    pub fn out(&mut self, role: Role) -> Out<'_> {
        Out {
            buckets: self.b,
            truth: Truth {
                scenario: self.scenario,
                role,
                campaign: self.campaign,
                money: 0,
                money_key: 0,
                warmup: false,
            },
        }
    }

    /// Files an attack event; returns its id.
    pub fn emit(&mut self, role: Role, ev: Ev) -> u64 {
        let id = self.out(role).emit(ev);
        self.note(role, ev.actor, id, ev.t);
        id
    }

    fn note(&mut self, role: Role, actor: u32, id: u64, t: i64) {
        let kept = t >= self.b.start && t < self.b.start + self.b.days.len() as i64 * DAY;
        // A hijacked account belongs to an honest victim: the platform does not label the victim.
        if !role.is_attack_account() || role == Role::Hijacker || !kept {
            return;
        }
        match self.accounts.iter_mut().find(|a| a.0 == actor) {
            Some(a) => a.2 = a.2.max(t),
            None => self.accounts.push((actor, id, t)),
        }
    }

    pub fn checkout(&mut self, role: Role, c: Checkout) -> CheckoutResult {
        let (actor, t) = (c.actor, c.t);
        let mut out = Out {
            buckets: self.b,
            truth: Truth {
                scenario: self.scenario,
                role,
                campaign: self.campaign,
                money: 0,
                money_key: 0,
                warmup: false,
            },
        };
        let first = out.buckets.next_event + 1;
        let r = checkout(self.w, &mut out, &mut self.rng, c);
        self.note(role, actor, first, t);
        r
    }

    /// Ends a campaign: the platform's own review confirms part of the campaigns, days later, with a
    /// `fraud.confirmed` label per confirmed account (the delayed business label).
    pub fn end(&mut self) {
        if !self.rng.chance(0.5) {
            return;
        }
        let accounts = std::mem::take(&mut self.accounts);
        for &(acct, first, last) in &accounts {
            if self.rng.chance(0.7) {
                let t = last + self.rng.range(2 * DAY, 10 * DAY);
                self.emit(
                    Role::Label,
                    Ev {
                        t,
                        kind: Kind::FraudConfirmed,
                        actor: acct,
                        aux2: first,
                        ..Default::default()
                    },
                );
            }
        }
    }

    /// A random time for a campaign start, leaving `tail` for it to unfold.
    pub fn start(&mut self, tail: i64) -> i64 {
        self.w.some_time(&mut self.rng, tail)
    }

    /// A fresh account registered at `t` (with its `account.register` and first login when `t` is in
    /// the world), from `device`/`ip`.
    #[allow(clippy::too_many_arguments)] // one call per account; a struct would only rename them
    pub fn register(
        &mut self,
        role: Role,
        t: i64,
        country: u8,
        device: u32,
        ip: u32,
        ua: u8,
        email_domain: usize,
    ) -> u32 {
        let acct = self.w.new_account(country, t, &mut self.rng);
        let local = self.rng.below(4_000_000_000);
        let email = ((email_domain as u64) << 32) | local;
        self.w.users[acct as usize].email = email;
        let phone = self.w.users[acct as usize].phone;
        let base = Ev {
            actor: acct,
            device,
            ip,
            ua,
            country: country + 1,
            ..Default::default()
        };
        let aux = std::mem::take(&mut self.referrer);
        let flag = self.rng.below(3) as u8;
        self.emit(
            role,
            Ev {
                t,
                kind: Kind::Register,
                email,
                phone,
                flag,
                aux,
                ..base
            },
        );
        let tl = t + self.rng.range(5 * SEC, 2 * MIN);
        self.emit(
            role,
            Ev {
                t: tl,
                kind: Kind::Login,
                flag: 1,
                ..base
            },
        );
        acct
    }

    /// An email domain: disposable with probability `p_disposable`, else a common provider.
    pub fn email_domain(&mut self, p_disposable: f64) -> usize {
        if self.rng.chance(p_disposable) {
            DOMAIN_DISPOSABLE.start + self.rng.index(DOMAIN_DISPOSABLE.len())
        } else {
            self.rng.index(4)
        }
    }

    /// A residential proxy: an address in an ordinary home network of `country`.
    pub fn proxy_ip(&mut self, country: u8) -> u32 {
        self.w.residential_ip(country, &mut self.rng)
    }

    pub fn datacenter_ip(&mut self) -> u32 {
        self.w.datacenter_ip(&mut self.rng)
    }

    pub fn ua(&mut self, p_automation: f64) -> u8 {
        if self.rng.chance(p_automation) {
            if self.rng.chance(0.5) {
                UA_HEADLESS
            } else {
                UA_SCRIPT
            }
        } else {
            self.rng
                .range(*UA_NORMAL.start() as i64, *UA_NORMAL.end() as i64) as u8
        }
    }

    /// Cover traffic: `sessions` honest-looking sessions (a login now and then, a few clicks on popular
    /// items) between `from` and `to`, on the account's own device and network.
    pub fn normal_activity(&mut self, role: Role, acct: u32, from: i64, to: i64, sessions: u32) {
        let u = self.w.users[acct as usize].clone();
        for _ in 0..sessions {
            let mut t = self.rng.range(from, to.max(from + 1));
            let base = Ev {
                actor: acct,
                device: u.devices[0],
                ip: u.home_ip,
                ..Default::default()
            };
            if self.rng.chance(0.4) {
                self.emit(
                    role,
                    Ev {
                        t,
                        kind: Kind::Login,
                        flag: 1,
                        ua: u.ua,
                        country: u.country + 1,
                        ..base
                    },
                );
            }
            for _ in 0..self.rng.geometric(4.0) {
                t += self.rng.range(5 * SEC, 80 * SEC);
                let item = self.w.pick_item(&mut self.rng);
                let seller = self.w.items[item as usize].seller;
                self.emit(
                    role,
                    Ev {
                        t,
                        kind: Kind::Click,
                        item,
                        seller,
                        ..base
                    },
                );
            }
        }
    }

    /// An item of the catalogue priced in `lo..=hi` cents, uniformly among those; when there is none,
    /// a new listing at such a price (never one of the honest catalogue's prices changed).
    pub fn item_priced(&mut self, lo: i64, hi: i64) -> u32 {
        let fits: Vec<u32> = (1..self.w.items.len() as u32)
            .filter(|&i| (lo..=hi).contains(&self.w.items[i as usize].price))
            .collect();
        if !fits.is_empty() {
            return fits[self.rng.index(fits.len())];
        }
        let seller = self.rng.range(1, self.w.sellers.len() as i64 - 1) as u32;
        let price = self.rng.range(lo, hi);
        self.w.items.push(Item { seller, price });
        let id = self.w.items.len() as u32 - 1;
        self.w.sellers[seller as usize].items.push(id);
        id
    }

    /// An item costing at least `min` cents.
    pub fn item_above(&mut self, min: i64) -> u32 {
        self.item_priced(min, i64::MAX / 4)
    }
}
