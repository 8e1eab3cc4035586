//! The marketplace: users, households, devices, networks, cards, addresses, sellers and items, and the
//! day buckets events are generated into. Honest behaviour is in `honest.rs`; attacks in `scenarios/`.

use crate::event::*;
use crate::rng::{Rng, Weighted};
use argus_event::time::{DAY, HOUR, MIN, SEC};

#[derive(Clone, Copy, Debug, Default)]
pub struct Address {
    pub country: u8,
    pub street: u8,
    pub number: u16,
    pub postcode: u16,
    /// A flat number: 0 = none. Rings vary it to make one door look like many addresses.
    pub flat: u16,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Card {
    /// Issuer identification number (6 digits).
    pub bin: u32,
    pub account: u64,
    pub country: u8,
}

/// Entity tables the writer needs to render addresses and card numbers.
#[derive(Default)]
pub struct Tables {
    pub addresses: Vec<Address>,
    pub cards: Vec<Card>,
}

/// Travel: days `[start, end)` spent in another country.
#[derive(Clone, Copy, Debug, Default)]
pub struct Travel {
    pub start: u16,
    pub end: u16,
    pub country: u8,
}

#[derive(Clone, Debug, Default)]
pub struct User {
    pub country: u8,
    /// Personal devices (phone, laptop).
    pub devices: [u32; 2],
    pub n_devices: u8,
    /// A household tablet or family computer shared with the other members, 0 = none.
    pub shared_device: u32,
    pub home_ip: u32,
    /// Whether this user's phone is on a mobile network (carrier-grade NAT addresses).
    pub mobile: bool,
    pub cards: [u32; 2],
    pub n_cards: u8,
    pub address: u32,
    pub email: u64,
    pub phone: u64,
    /// Mean sessions per day (heavy-tailed across users).
    pub rate: f32,
    /// Registration time; before the world starts for established accounts.
    pub registered: i64,
    pub travel: Option<Travel>,
    /// The seller this user works for (0 = a shopper only).
    pub staff_of: u32,
    pub payout: u32,
    pub ua: u8,
}

#[derive(Clone, Debug, Default)]
pub struct Seller {
    pub owner: u32,
    pub staff: Vec<u32>,
    pub items: Vec<u32>,
    pub payout: u32,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Item {
    pub seller: u32,
    pub price: i64,
}

/// Events by day of event time; an event outside the world's days is dropped.
pub struct Buckets {
    pub start: i64,
    pub days: Vec<Vec<Ev>>,
    /// The last event number handed out (ids are `e1`, `e2`, … in generation order).
    pub next_event: u64,
    /// The last listing number handed out: listings (worlds with text only) are numbered apart,
    /// `l1`, `l2`, …, so that every other event keeps its id with or without text.
    pub next_listing: u64,
    /// Start of the measured period (the world's start); earlier days are warm-up history.
    pub measured: i64,
}

impl Buckets {
    pub fn push(&mut self, e: Ev) -> bool {
        let d = (e.t - self.start).div_euclid(DAY);
        match usize::try_from(d).ok().and_then(|d| self.days.get_mut(d)) {
            Some(b) => {
                b.push(e);
                true
            }
            None => false,
        }
    }
}

/// The bit that marks a listing's number (written `l<n>`), apart from the other events' `e<n>`.
pub const LISTING_ID: u64 = 1 << 48;

/// Where a generator writes: the buckets, the id counter, and the truth stamped on each event.
pub struct Out<'a> {
    pub buckets: &'a mut Buckets,
    pub truth: Truth,
}

impl Out<'_> {
    /// Stamps id and truth (keeping `ev.truth.money`) and files the event; returns its id.
    pub fn emit(&mut self, mut ev: Ev) -> u64 {
        ev.id = if ev.kind == Kind::Listing {
            self.buckets.next_listing += 1;
            LISTING_ID | self.buckets.next_listing
        } else {
            self.buckets.next_event += 1;
            self.buckets.next_event
        };
        let (money, key) = (ev.truth.money, ev.truth.money_key);
        ev.truth = self.truth;
        ev.truth.money = money;
        ev.truth.money_key = key;
        ev.truth.warmup = ev.truth.scenario == Scenario::Honest && ev.t < self.buckets.measured;
        self.buckets.push(ev);
        ev.id
    }
}

/// First octets of residential ranges per country (plausible, not real allocations).
const RESIDENTIAL: [u32; 10] = [84, 90, 81, 88, 93, 145, 83, 78, 73, 86];

pub struct World {
    pub seed: u64,
    pub start: i64,
    pub days: u32,
    pub tables: Tables,
    /// Index = user number (0 unused). Honest shoppers are `1..=honest`, then seller staff, then
    /// accounts the attacks create.
    pub users: Vec<User>,
    pub honest: u32,
    pub sellers: Vec<Seller>,
    pub items: Vec<Item>,
    /// Item popularity (index + 1 = item number).
    pub item_pick: Weighted,
    pub country_pick: Weighted,
    /// Flash-sale windows `[start, end)` (legitimate bursts) and the items they promote.
    pub flash: Vec<(i64, i64)>,
    pub promoted: Vec<u32>,
    pub next_device: u32,
    pub next_order: u32,
    pub next_payout: u32,
    pub next_campaign: u32,
    /// Users `1..people` are the honest population (shoppers and seller staff).
    pub people: u32,
    /// Sellers `1..honest_sellers` are the honest ones (the attacks add theirs after).
    pub honest_sellers: u32,
    /// Whether the world has text (`SimConfig::text`): sellers then post `listing.create` events.
    pub text: bool,
}

impl World {
    pub fn new(seed: u64, start: i64, days: u32, users: u32) -> World {
        let mut rng = Rng::new(seed, &[crate::rng::name_label("world")]);
        let mut w = World {
            seed,
            start,
            days,
            tables: Tables {
                addresses: vec![Address::default()],
                cards: vec![Card::default()],
            },
            users: vec![User::default()],
            honest: 0,
            sellers: vec![Seller::default()],
            items: vec![Item::default()],
            item_pick: Weighted::new([]),
            country_pick: Weighted::new([0.22, 0.16, 0.18, 0.1, 0.1, 0.07, 0.07, 0.04, 0.03, 0.03]),
            flash: Vec::new(),
            promoted: Vec::new(),
            next_device: 0,
            next_order: 0,
            next_payout: 0,
            next_campaign: 0,
            people: 0,
            honest_sellers: 0,
            text: false,
        };
        // Households: 1–4 members sharing an address and a home network; some share a tablet and a card.
        while (w.users.len() as u32) <= users {
            let size = *rng.pick(&[1, 1, 1, 2, 2, 3, 4]);
            let country = w.country_pick.sample(&mut rng) as u8;
            let address = w.new_address(country, &mut rng);
            let home_ip = w.residential_ip(country, &mut rng);
            let shared = if size > 1 && rng.chance(0.45) {
                w.new_device()
            } else {
                0
            };
            let family_card = if size > 1 && rng.chance(0.15) {
                w.new_card(country, &mut rng)
            } else {
                0
            };
            for _ in 0..size {
                if (w.users.len() as u32) > users {
                    break;
                }
                let mut u = w.new_person(country, &mut rng);
                u.address = address;
                u.home_ip = home_ip;
                u.shared_device = shared;
                if family_card != 0 {
                    u.cards[u.n_cards as usize - 1] = family_card;
                }
                // Established accounts, except one in seven who signs up during the world.
                u.registered = if rng.chance(1.0 / 7.0) {
                    start + rng.range(0, days as i64 * DAY - 1)
                } else {
                    start - rng.range(30, 2000) * DAY - rng.range(0, DAY)
                };
                if rng.chance(0.03) && days > 4 {
                    let s = rng.range(0, days as i64 - 3) as u16;
                    let len = rng.range(2, 9) as u16;
                    let mut c = w.country_pick.sample(&mut rng) as u8;
                    if c == country {
                        c = (c + 1) % COUNTRIES.len() as u8;
                    }
                    u.travel = Some(Travel {
                        start: s,
                        end: (s + len).min(days as u16),
                        country: c,
                    });
                }
                w.users.push(u);
            }
        }
        w.honest = w.users.len() as u32 - 1;

        // Sellers (one per 25 users), each with an owner and 0–3 staff accounts, and long-tailed catalogues.
        let n_sellers = (users / 25).max(4);
        let seller_size = Weighted::zipf(n_sellers as usize, 1.0);
        for _ in 0..n_sellers {
            let country = w.country_pick.sample(&mut rng) as u8;
            let owner = w.add_staff(country, &mut rng);
            let mut s = Seller {
                owner,
                staff: vec![owner],
                items: Vec::new(),
                payout: w.new_payout(),
            };
            for _ in 0..rng.range(0, 3) {
                s.staff.push(w.add_staff(country, &mut rng));
            }
            let sid = w.sellers.len() as u32;
            for &st in &s.staff {
                w.users[st as usize].staff_of = sid;
            }
            w.sellers.push(s);
        }
        w.honest_sellers = w.sellers.len() as u32;
        // Items: assigned to sellers by their size, prices log-normal around 25 EUR.
        let n_items = (users as usize).max(100);
        for _ in 0..n_items {
            let seller = seller_size.sample(&mut rng) as u32 + 1;
            let price = (rng.lognormal(2500.0, 1.0).clamp(99.0, 250_000.0)) as i64;
            let id = w.items.len() as u32;
            w.items.push(Item { seller, price });
            w.sellers[seller as usize].items.push(id);
        }
        w.item_pick = Weighted::zipf(n_items, 1.05);
        w.people = w.users.len() as u32;

        // Two flash sales (or one in short worlds): 18:00–22:00, promoting ten popular items.
        let n_flash = if days >= 14 { 2 } else { 1 };
        for k in 0..n_flash {
            let d = (days as i64 * (2 * k + 1) / (2 * n_flash)).min(days as i64 - 1);
            w.flash
                .push((start + d * DAY + 18 * HOUR, start + d * DAY + 22 * HOUR));
        }
        for _ in 0..10 {
            let i = w.item_pick.sample(&mut rng) as u32 + 1;
            w.promoted.push(i);
        }
        w
    }

    fn new_person(&mut self, country: u8, rng: &mut Rng) -> User {
        let n = self.users.len() as u64;
        let n_devices = if rng.chance(0.55) { 2 } else { 1 };
        let n_cards = if rng.chance(0.3) { 2 } else { 1 };
        let mut u = User {
            country,
            devices: [
                self.new_device(),
                if n_devices == 2 { self.new_device() } else { 0 },
            ],
            n_devices,
            mobile: rng.chance(0.45),
            cards: [0; 2],
            n_cards,
            email: ((rng.index(DOMAINS_COMMON) as u64) << 32) | (n * 7919 % 4_000_000_000),
            phone: ((country as u64) << 32) | rng.below(100_000_000),
            rate: rng.lognormal(0.25, 1.0).min(12.0) as f32,
            payout: 0,
            ua: rng.range(*UA_NORMAL.start() as i64, *UA_NORMAL.end() as i64) as u8,
            ..Default::default()
        };
        for c in 0..n_cards as usize {
            u.cards[c] = self.new_card(country, rng);
        }
        u
    }

    fn add_staff(&mut self, country: u8, rng: &mut Rng) -> u32 {
        let mut u = self.new_person(country, rng);
        u.address = self.new_address(country, rng);
        u.home_ip = self.residential_ip(country, rng);
        u.registered = self.start - rng.range(60, 2000) * DAY;
        u.rate = u.rate.min(1.0);
        self.users.push(u);
        self.users.len() as u32 - 1
    }

    pub fn new_device(&mut self) -> u32 {
        self.next_device += 1;
        self.next_device
    }

    pub fn new_order(&mut self) -> u32 {
        self.next_order += 1;
        self.next_order
    }

    pub fn new_payout(&mut self) -> u32 {
        self.next_payout += 1;
        self.next_payout
    }

    pub fn new_campaign(&mut self) -> u32 {
        self.next_campaign += 1;
        self.next_campaign
    }

    pub fn new_address(&mut self, country: u8, rng: &mut Rng) -> u32 {
        self.tables.addresses.push(Address {
            country,
            street: rng.index(STREETS.len()) as u8,
            number: rng.range(1, 400) as u16,
            postcode: rng.below(89_999) as u16,
            flat: if rng.chance(0.3) {
                rng.range(1, 60) as u16
            } else {
                0
            },
        });
        self.tables.addresses.len() as u32 - 1
    }

    /// The same door with another flat number: a different address token, the same parcel drop.
    pub fn address_variant(&mut self, a: u32, k: u16) -> u32 {
        let mut ad = self.tables.addresses[a as usize];
        ad.flat = ((ad.flat as u32 + k as u32 * 7 + 1) % 500 + 1) as u16;
        self.tables.addresses.push(ad);
        self.tables.addresses.len() as u32 - 1
    }

    pub fn new_card(&mut self, country: u8, rng: &mut Rng) -> u32 {
        let bin = 400_000 + country as u32 * 9_000 + rng.below(40) as u32 * 17;
        self.tables.cards.push(Card {
            bin,
            account: rng.below(10_000_000_000),
            country,
        });
        self.tables.cards.len() as u32 - 1
    }

    /// A card from one issuer range, numbered consecutively (a BIN attack's list).
    pub fn card_in_bin(&mut self, bin: u32, account: u64, country: u8) -> u32 {
        self.tables.cards.push(Card {
            bin,
            account,
            country,
        });
        self.tables.cards.len() as u32 - 1
    }

    /// A new account created by an attack: its own number, email and phone, no history.
    pub fn new_account(&mut self, country: u8, registered: i64, rng: &mut Rng) -> u32 {
        let mut u = self.new_person(country, rng);
        u.registered = registered;
        u.address = self.new_address(country, rng);
        u.home_ip = self.residential_ip(country, rng);
        self.users.push(u);
        self.users.len() as u32 - 1
    }

    pub fn residential_ip(&self, country: u8, rng: &mut Rng) -> u32 {
        (RESIDENTIAL[country as usize % RESIDENTIAL.len()] << 24) | (rng.below(1 << 24) as u32 | 1)
    }

    /// Carrier-grade NAT: a mobile operator's 128 public addresses shared by all its users.
    pub fn mobile_ip(&self, country: u8, rng: &mut Rng) -> u32 {
        ((RESIDENTIAL[country as usize % RESIDENTIAL.len()] + 1) << 24)
            | (7 << 16)
            | (rng.below(2) as u32) << 8
            | (rng.below(64) as u32 + 2)
    }

    /// Hosting providers: a handful of /24 networks.
    pub fn datacenter_ip(&self, rng: &mut Rng) -> u32 {
        const NETS: [u32; 4] = [
            (185 << 24) | (220 << 16) | (101 << 8),
            (45 << 24) | (134 << 16) | (26 << 8),
            (5 << 24) | (188 << 16) | (62 << 8),
            (104 << 24) | (244 << 16) | (72 << 8),
        ];
        NETS[rng.index(4)] | (rng.below(250) as u32 + 2)
    }

    pub fn end(&self) -> i64 {
        self.start + self.days as i64 * DAY
    }

    /// A uniformly random time in the world leaving `tail` before its end.
    pub fn some_time(&self, rng: &mut Rng, tail: i64) -> i64 {
        self.start + rng.range(0, (self.days as i64 * DAY - tail).max(HOUR))
    }

    pub fn in_flash(&self, t: i64) -> bool {
        self.flash.iter().any(|&(a, b)| t >= a && t < b)
    }

    pub fn pick_item(&self, rng: &mut Rng) -> u32 {
        self.item_pick.sample(rng) as u32 + 1
    }

    /// A random established honest shopper.
    pub fn pick_honest(&self, rng: &mut Rng) -> u32 {
        loop {
            let u = rng.range(1, self.honest as i64) as u32;
            if self.users[u as usize].registered < self.start {
                return u;
            }
        }
    }
}

/// An order with its payment: `order.create`, `payment.attempt`, `payment.result` (and `coupon.redeem`
/// when a coupon is used). Returns (order number, attempt event id, approved, time after the last event).
pub struct Checkout {
    pub actor: u32,
    pub t: i64,
    pub item: u32,
    pub qty: u16,
    pub card: u32,
    pub address: u32,
    pub billing: u32,
    pub device: u32,
    pub ip: u32,
    pub coupon: u8,
    pub email: u64,
    /// Probability the issuer declines.
    pub decline: f64,
    /// Whether the money of this order counts as at risk (attacks): set on the order and its payment
    /// attempt, keyed by the order, when the issuer approves.
    pub money_at_risk: bool,
}

pub struct CheckoutResult {
    pub order: u32,
    pub attempt: u64,
    pub approved: bool,
    pub amount: i64,
    pub t: i64,
}

pub fn checkout(w: &mut World, out: &mut Out<'_>, rng: &mut Rng, c: Checkout) -> CheckoutResult {
    let it = w.items[c.item as usize];
    let order = w.new_order();
    let mut amount = it.price * c.qty.max(1) as i64;
    if c.coupon != 0 {
        amount = (amount - COUPONS[c.coupon as usize].2).max(99);
    }
    let base = Ev {
        actor: c.actor,
        device: c.device,
        ip: c.ip,
        ..Default::default()
    };
    let mut t = c.t;
    // The issuer's answer is drawn first: only an approved order puts money at stake.
    let approved = !rng.chance(c.decline);
    let stake = if c.money_at_risk && approved {
        Truth {
            money: amount,
            money_key: order,
            ..Default::default()
        }
    } else {
        Truth::default()
    };
    let ev = Ev {
        t,
        kind: Kind::Order,
        order,
        seller: it.seller,
        item: c.item,
        qty: c.qty,
        amount,
        coupon: c.coupon,
        address: c.address,
        card: c.card,
        email: c.email,
        truth: stake,
        ..base
    };
    out.emit(ev);
    if c.coupon != 0 {
        t += rng.range(100, 900);
        out.emit(Ev {
            t,
            kind: Kind::CouponRedeem,
            coupon: c.coupon,
            order,
            ..base
        });
    }
    t += rng.range(SEC, 4 * SEC);
    let attempt = out.emit(Ev {
        t,
        kind: Kind::PaymentAttempt,
        order,
        amount,
        card: c.card,
        address: c.billing,
        truth: stake,
        ..base
    });
    t += rng.range(300, 2500);
    let flag = if approved { 0 } else { rng.range(1, 3) as u8 };
    out.emit(Ev {
        t,
        kind: Kind::PaymentResult,
        order,
        amount,
        card: c.card,
        flag,
        actor: c.actor,
        ..Default::default()
    });
    CheckoutResult {
        order,
        attempt,
        approved,
        amount,
        t: t + rng.range(SEC, MIN),
    }
}
