//! The simulator's event record, its ground truth, and the NDJSON writer for both streams.
//!
//! Generators fill a compact, `Copy` [`Ev`] (numbers, not strings); the writer turns it into the event
//! JSON the engine reads and, separately, one truth line the engine never sees.

use crate::world::Tables;
use serde::Serialize;

/// How an [`Ev::id`] is written: `e<n>`, or `l<n>` for a listing (listings are numbered apart:
/// [`crate::world::LISTING_ID`]).
pub fn id_parts(id: u64) -> (u8, u64) {
    if id & crate::world::LISTING_ID != 0 {
        (b'l', id & !crate::world::LISTING_ID)
    } else {
        (b'e', id)
    }
}

/// An [`Ev::id`] as the event's `id` string.
pub fn event_id(id: u64) -> String {
    let (prefix, n) = id_parts(id);
    format!("{}{n}", prefix as char)
}

/// Built-in event types the world produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum Kind {
    Register,
    #[default]
    Login,
    Update,
    CouponClaim,
    CouponRedeem,
    CartAdd,
    Order,
    PaymentAttempt,
    PaymentResult,
    Refund,
    Review,
    Click,
    DataAccess,
    Payout,
    Chargeback,
    FraudConfirmed,
    LegitConfirmed,
    /// A seller lists an item (only in worlds with text: the built-in schema has no such type).
    Listing,
}

impl Kind {
    pub const ALL: [Kind; 18] = [
        Kind::Register,
        Kind::Login,
        Kind::Update,
        Kind::CouponClaim,
        Kind::CouponRedeem,
        Kind::CartAdd,
        Kind::Order,
        Kind::PaymentAttempt,
        Kind::PaymentResult,
        Kind::Refund,
        Kind::Review,
        Kind::Click,
        Kind::DataAccess,
        Kind::Payout,
        Kind::Chargeback,
        Kind::FraudConfirmed,
        Kind::LegitConfirmed,
        Kind::Listing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Register => "account.register",
            Kind::Login => "account.login",
            Kind::Update => "account.update",
            Kind::CouponClaim => "coupon.claim",
            Kind::CouponRedeem => "coupon.redeem",
            Kind::CartAdd => "cart.add",
            Kind::Order => "order.create",
            Kind::PaymentAttempt => "payment.attempt",
            Kind::PaymentResult => "payment.result",
            Kind::Refund => "refund.request",
            Kind::Review => "review.create",
            Kind::Click => "item.click",
            Kind::DataAccess => "data.access",
            Kind::Payout => "payout.request",
            Kind::Chargeback => "chargeback",
            Kind::FraudConfirmed => "fraud.confirmed",
            Kind::LegitConfirmed => "legit.confirmed",
            Kind::Listing => "listing.create",
        }
    }
}

/// Who generated an event: honest activity or one attack scenario (PRODUCT.md §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    #[default]
    Honest,
    FakeAccounts,
    CouponRing,
    Brushing,
    ClickFarm,
    CardTesting,
    StolenCard,
    AccountTakeover,
    DataHarvest,
    CheckoutBot,
}

impl Scenario {
    pub const ATTACKS: [Scenario; 9] = [
        Scenario::FakeAccounts,
        Scenario::CouponRing,
        Scenario::Brushing,
        Scenario::ClickFarm,
        Scenario::CardTesting,
        Scenario::StolenCard,
        Scenario::AccountTakeover,
        Scenario::DataHarvest,
        Scenario::CheckoutBot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Honest => "honest",
            Scenario::FakeAccounts => "fake_accounts",
            Scenario::CouponRing => "coupon_ring",
            Scenario::Brushing => "brushing",
            Scenario::ClickFarm => "click_farm",
            Scenario::CardTesting => "card_testing",
            Scenario::StolenCard => "stolen_card",
            Scenario::AccountTakeover => "account_takeover",
            Scenario::DataHarvest => "data_harvest",
            Scenario::CheckoutBot => "checkout_bot",
        }
    }

    pub fn from_name(s: &str) -> Option<Scenario> {
        std::iter::once(Scenario::Honest)
            .chain(Scenario::ATTACKS)
            .find(|x| x.name() == s)
    }

    /// The risk area of PRODUCT.md §1 the scenario belongs to (also the tag the starter pack's rules carry).
    pub fn area(self) -> &'static str {
        match self {
            Scenario::Honest => "none",
            Scenario::FakeAccounts => "account_integrity",
            Scenario::CouponRing => "incentive_abuse",
            Scenario::Brushing => "brushing",
            Scenario::ClickFarm => "click_farm",
            Scenario::CardTesting | Scenario::StolenCard => "payment_fraud",
            Scenario::AccountTakeover => "account_takeover",
            Scenario::DataHarvest => "information_leakage",
            Scenario::CheckoutBot => "bots",
        }
    }
}

/// The part an actor plays in an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An honest shopper.
    #[default]
    Buyer,
    /// Honest seller staff (order processing, payouts).
    Staff,
    /// An account registered in bulk by a farm.
    FakeAccount,
    /// One of the accounts a coupon-ring operator controls.
    RingAccount,
    /// A buyer account controlled by a brushing seller.
    BrushBuyer,
    /// An account of a click farm.
    Clicker,
    /// The account a card tester works from.
    CardTester,
    /// A fraudster checking out with stolen cards.
    Fraudster,
    /// A credential-stuffing attempt on someone else's account (the actor is the targeted account).
    Stuffing,
    /// The attacker acting inside a taken-over account (the actor is the victim).
    Hijacker,
    /// A staff account harvesting buyers' personal data.
    Harvester,
    /// An automated checkout account.
    Bot,
    /// A delayed business label (chargeback, confirmed abuse or legitimacy).
    Label,
}

impl Role {
    pub const ALL: [Role; 13] = [
        Role::Buyer,
        Role::Staff,
        Role::FakeAccount,
        Role::RingAccount,
        Role::BrushBuyer,
        Role::Clicker,
        Role::CardTester,
        Role::Fraudster,
        Role::Stuffing,
        Role::Hijacker,
        Role::Harvester,
        Role::Bot,
        Role::Label,
    ];

    pub fn from_name(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Buyer => "buyer",
            Role::Staff => "staff",
            Role::FakeAccount => "fake_account",
            Role::RingAccount => "ring_account",
            Role::BrushBuyer => "brush_buyer",
            Role::Clicker => "clicker",
            Role::CardTester => "card_tester",
            Role::Fraudster => "fraudster",
            Role::Stuffing => "stuffing",
            Role::Hijacker => "hijacker",
            Role::Harvester => "harvester",
            Role::Bot => "bot",
            Role::Label => "label",
        }
    }

    /// Whether the actor of such an event is an account the attack owns or controls (counted in
    /// account recall). Stuffing targets mostly stay untouched; labels are not behaviour.
    pub fn is_attack_account(self) -> bool {
        !matches!(
            self,
            Role::Buyer | Role::Staff | Role::Stuffing | Role::Label
        )
    }
}

/// Ground truth of one event.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Truth {
    pub scenario: Scenario,
    pub role: Role,
    /// Campaign number, unique in the world; 0 for honest activity.
    pub campaign: u32,
    /// Money the event puts at stake (cents), counted once per attack: orders, payouts, coupon values.
    /// 0 elsewhere.
    pub money: i64,
    /// What the money belongs to (an order number), so that the order and its payment count it once;
    /// 0 = this event alone.
    pub money_key: u32,
    /// Warm-up history before the measured period (honest only; the report skips it).
    pub warmup: bool,
}

/// One generated event. Identifiers are numbers rendered with a prefix (`u12`, `d7`, `o99`); 0 means
/// absent. `flag` and `aux` carry the type-specific small fields (see [`write_event`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ev {
    pub t: i64,
    pub id: u64,
    pub kind: Kind,
    pub actor: u32,
    pub device: u32,
    pub ip: u32,
    pub ua: u8,
    pub country: u8,
    pub item: u32,
    pub seller: u32,
    pub order: u32,
    pub coupon: u8,
    pub card: u32,
    pub address: u32,
    pub payout: u32,
    /// `(domain index << 32) | local number`.
    pub email: u64,
    /// `(country index << 32) | subscriber number`.
    pub phone: u64,
    pub amount: i64,
    pub qty: u16,
    pub flag: u8,
    pub aux: u32,
    pub aux2: u64,
    pub truth: Truth,
}

pub const COUNTRIES: [&str; 10] = ["DE", "FR", "GB", "ES", "IT", "NL", "PL", "SE", "US", "RO"];
pub const DIAL: [&str; 10] = [
    "+49", "+33", "+44", "+34", "+39", "+31", "+48", "+46", "+1", "+40",
];
pub const CITIES: [&str; 10] = [
    "Berlin",
    "Paris",
    "London",
    "Madrid",
    "Milano",
    "Amsterdam",
    "Warszawa",
    "Stockholm",
    "Chicago",
    "Bucuresti",
];
pub const STREETS: [&str; 12] = [
    "High St",
    "Station Rd",
    "Church Ln",
    "Park Ave",
    "Mill Rd",
    "Market Sq",
    "Oak Way",
    "Bridge St",
    "King St",
    "Rose Ct",
    "Elm Rd",
    "Lake View",
];

/// User agents: 0 = none, the last two are automation tells.
pub const UAS: [&str; 9] = [
    "",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "ShopApp/7.4 (iOS 18.1)",
    "ShopApp/7.4 (Android 14)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0 Safari/537.36",
    "python-requests/2.32 selenium/4.25",
];
pub const UA_HEADLESS: u8 = 7;
pub const UA_SCRIPT: u8 = 8;
/// Browsers and apps an honest user (or a camouflaged bot) shows.
pub const UA_NORMAL: std::ops::RangeInclusive<u8> = 1..=6;

/// Email domains: the first six are common, then regional providers, then disposable services.
pub const EMAIL_DOMAINS: [&str; 14] = [
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "gmx.de",
    "orange.fr",
    "web.de",
    "libero.it",
    "wp.pl",
    "proton.me",
    "mailinator.com",
    "yopmail.com",
    "guerrillamail.net",
    "maildrop.cc",
];
pub const DOMAINS_COMMON: usize = 10;
pub const DOMAIN_DISPOSABLE: std::ops::Range<usize> = 10..14;

/// Coupons: (code, campaign, value in cents).
pub const COUPONS: [(&str, &str, i64); 5] = [
    ("", "", 0),
    ("WELCOME10", "new-user", 1000),
    ("FLASH20", "flash-sale", 2000),
    ("CASHBACK5", "cash-back", 500),
    ("FREESHIP", "shipping", 399),
];
pub const COUPON_WELCOME: u8 = 1;
pub const COUPON_FLASH: u8 = 2;
pub const COUPON_CASHBACK: u8 = 3;
pub const COUPON_FREESHIP: u8 = 4;

pub const CHANGES: [&str; 5] = ["password", "email", "phone", "address", "payout_account"];
pub const CHANGE_PASSWORD: u8 = 0;
pub const CHANGE_EMAIL: u8 = 1;
pub const CHANGE_PHONE: u8 = 2;
pub const CHANGE_ADDRESS: u8 = 3;
pub const CHANGE_PAYOUT: u8 = 4;

pub const CLICK_ACTIONS: [&str; 4] = ["view", "click", "like", "follow"];
pub const CLICK_SOURCES: [&str; 4] = ["search", "home", "promo", "direct"];
pub const OBJECT_KINDS: [&str; 3] = ["address", "phone", "order"];
pub const DECLINES: [&str; 4] = ["", "insufficient_funds", "do_not_honor", "invalid_card"];

/// Appends JSON for events and truth lines to a byte buffer, without allocating per event.
pub struct Writer<'t> {
    pub buf: Vec<u8>,
    /// Write the `fraud` label column on orders (see `SimConfig::labels`).
    pub labels: bool,
    /// Write review text (see `SimConfig::text`).
    pub text: bool,
    tables: &'t Tables,
    /// Cached `YYYY-MM-DDT` prefix of the current day.
    day: i64,
    day_prefix: [u8; 11],
}

impl<'t> Writer<'t> {
    pub fn new(tables: &'t Tables) -> Writer<'t> {
        Writer {
            buf: Vec::with_capacity(1 << 20),
            labels: false,
            text: false,
            tables,
            day: i64::MIN,
            day_prefix: [0; 11],
        }
    }

    fn raw(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn num(&mut self, n: u64) {
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    fn key(&mut self, k: &str) {
        self.buf.extend_from_slice(b",\"");
        self.raw(k);
        self.buf.extend_from_slice(b"\":");
    }

    /// `,"k":"<prefix><n>"`
    fn id(&mut self, k: &str, prefix: &str, n: u64) {
        self.key(k);
        self.buf.push(b'"');
        self.raw(prefix);
        self.num(n);
        self.buf.push(b'"');
    }

    /// `,"k":"v"` — `v` never needs escaping (the simulator's own constants).
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.buf.push(b'"');
        self.raw(v);
        self.buf.push(b'"');
    }

    fn int(&mut self, k: &str, n: i64) {
        self.key(k);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    /// Cents as a decimal string: `,"k":"12.50"`.
    fn money(&mut self, k: &str, cents: i64) {
        self.key(k);
        self.buf.push(b'"');
        if cents < 0 {
            self.buf.push(b'-');
        }
        let c = cents.unsigned_abs();
        self.num(c / 100);
        self.buf.push(b'.');
        self.buf.push(b'0' + (c % 100 / 10) as u8);
        self.buf.push(b'0' + (c % 10) as u8);
        self.buf.push(b'"');
    }

    fn time(&mut self, ms: i64) {
        let day = ms.div_euclid(argus_event::time::DAY);
        if day != self.day {
            let (y, m, d) = argus_event::time::civil_from_days(day);
            let s = format!("{y:04}-{m:02}-{d:02}T");
            self.day_prefix.copy_from_slice(&s.as_bytes()[..11]);
            self.day = day;
        }
        let rem = ms.rem_euclid(argus_event::time::DAY);
        self.buf.push(b'"');
        self.buf.extend_from_slice(&self.day_prefix);
        let two = |b: &mut Vec<u8>, v: i64| {
            b.push(b'0' + (v / 10) as u8);
            b.push(b'0' + (v % 10) as u8);
        };
        two(&mut self.buf, rem / 3_600_000);
        self.buf.push(b':');
        two(&mut self.buf, rem / 60_000 % 60);
        self.buf.push(b':');
        two(&mut self.buf, rem / 1000 % 60);
        self.buf.push(b'.');
        let ms3 = rem % 1000;
        self.buf.push(b'0' + (ms3 / 100) as u8);
        two(&mut self.buf, ms3 % 100);
        self.buf.extend_from_slice(b"Z\"");
    }

    fn ip(&mut self, k: &str, ip: u32) {
        self.key(k);
        self.buf.push(b'"');
        for (i, b) in ip.to_be_bytes().iter().enumerate() {
            if i > 0 {
                self.buf.push(b'.');
            }
            self.num(*b as u64);
        }
        self.buf.push(b'"');
    }

    fn email(&mut self, k: &str, e: u64) {
        const NAMES: [&str; 8] = ["anna", "ben", "chris", "dana", "eli", "fay", "gus", "hana"];
        let domain = EMAIL_DOMAINS[(e >> 32) as usize % EMAIL_DOMAINS.len()];
        let local = e & 0xffff_ffff;
        self.key(k);
        self.buf.push(b'"');
        self.raw(NAMES[(local % 8) as usize]);
        self.buf.push(b'.');
        self.num(local);
        self.buf.push(b'@');
        self.raw(domain);
        self.buf.push(b'"');
    }

    fn phone(&mut self, k: &str, p: u64) {
        self.key(k);
        self.buf.push(b'"');
        self.raw(DIAL[(p >> 32) as usize % DIAL.len()]);
        self.raw(" 7");
        let n = (p & 0xffff_ffff) % 100_000_000;
        let s = itoa::Buffer::new().format(n + 100_000_000).as_bytes()[1..].to_vec();
        self.buf.extend_from_slice(&s);
        self.buf.push(b'"');
    }

    fn address(&mut self, k: &str, a: u32) {
        let ad = self.tables.addresses[a as usize];
        self.key(k);
        self.buf.extend_from_slice(b"{\"line1\":\"");
        self.num(ad.number as u64);
        self.buf.push(b' ');
        self.raw(STREETS[ad.street as usize % STREETS.len()]);
        self.buf.push(b'"');
        if ad.flat > 0 {
            self.buf.extend_from_slice(b",\"line2\":\"Flat ");
            self.num(ad.flat as u64);
            self.buf.push(b'"');
        }
        self.buf.extend_from_slice(b",\"city\":\"");
        self.raw(CITIES[ad.country as usize % CITIES.len()]);
        self.buf.extend_from_slice(b"\",\"postcode\":\"");
        self.num(10_000 + ad.postcode as u64);
        self.buf.extend_from_slice(b"\",\"country\":\"");
        self.raw(COUNTRIES[ad.country as usize % COUNTRIES.len()]);
        self.buf.extend_from_slice(b"\"}");
    }

    fn card(&mut self, k: &str, c: u32) {
        let card = self.tables.cards[c as usize];
        self.key(k);
        self.buf.push(b'"');
        // 17 digits: the 6-digit BIN, 10 of the account, and the Luhn check digit (cards are validated).
        let digits = itoa::Buffer::new()
            .format(with_luhn_digit(
                card.bin as u64 * 10_000_000_000 + card.account % 10_000_000_000,
            ))
            .as_bytes()
            .to_vec();
        self.buf.extend_from_slice(&digits);
        self.buf.push(b'"');
    }

    /// `order` (when set), `amount`, `currency`, `card` (when set): what a payment result and a
    /// chargeback say about the payment.
    fn order_amount_card(&mut self, e: &Ev) {
        if e.order != 0 {
            self.id("order", "o", e.order as u64);
        }
        self.money("amount", e.amount);
        self.str("currency", "EUR");
        if e.card != 0 {
            self.card("card", e.card);
        }
    }

    fn common(&mut self, e: &Ev) {
        if e.device != 0 {
            self.id("device", "d", e.device as u64);
        }
        if e.ip != 0 {
            self.ip("ip", e.ip);
        }
    }

    /// An event's id as written ([`id_parts`]).
    fn event_id(&mut self, id: u64) {
        let (prefix, n) = id_parts(id);
        self.buf.push(prefix);
        self.num(n);
    }

    /// One event line: `{"id","type","time","actor","data":{…}}\n`.
    pub fn write_event(&mut self, e: &Ev) {
        self.buf.extend_from_slice(b"{\"id\":\"");
        self.event_id(e.id);
        self.buf.extend_from_slice(b"\",\"type\":\"");
        self.raw(e.kind.name());
        self.buf.extend_from_slice(b"\",\"time\":");
        self.time(e.t);
        self.id("actor", "u", e.actor as u64);
        self.buf.extend_from_slice(b",\"data\":{\"_\":0");
        let start = self.buf.len() - 5;
        match e.kind {
            Kind::Register => {
                if e.email != 0 {
                    self.email("email", e.email);
                }
                if e.phone != 0 {
                    self.phone("phone", e.phone);
                }
                self.common(e);
                if e.ua != 0 {
                    self.str("user_agent", UAS[e.ua as usize]);
                }
                if e.country != 0 {
                    self.str("country", COUNTRIES[e.country as usize - 1]);
                }
                if e.aux != 0 {
                    self.id("referrer", "u", e.aux as u64);
                }
                self.str(
                    "signup_method",
                    ["email", "phone", "google"][e.flag as usize % 3],
                );
            }
            Kind::Login => {
                self.key("success");
                self.raw(if e.flag & 1 == 1 { "true" } else { "false" });
                if e.flag & 1 == 0 {
                    self.str("failure_reason", "bad_password");
                }
                self.common(e);
                if e.ua != 0 {
                    self.str("user_agent", UAS[e.ua as usize]);
                }
                if e.country != 0 {
                    self.str("country", COUNTRIES[e.country as usize - 1]);
                }
            }
            Kind::Update => {
                self.str("change", CHANGES[e.flag as usize % CHANGES.len()]);
                if e.email != 0 {
                    self.email("email", e.email);
                }
                if e.phone != 0 {
                    self.phone("phone", e.phone);
                }
                if e.address != 0 {
                    self.address("address", e.address);
                }
                if e.payout != 0 {
                    self.id("payout_account", "p", e.payout as u64);
                }
                self.common(e);
            }
            Kind::CouponClaim | Kind::CouponRedeem => {
                let (code, campaign, value) = COUPONS[e.coupon as usize % COUPONS.len()];
                self.str("coupon", code);
                if e.kind == Kind::CouponClaim {
                    self.str("campaign", campaign);
                } else if e.order != 0 {
                    self.id("order", "o", e.order as u64);
                }
                self.money("value", value);
                self.str("currency", "EUR");
                self.common(e);
            }
            Kind::CartAdd => {
                self.id("item", "i", e.item as u64);
                self.id("seller", "s", e.seller as u64);
                self.int("quantity", e.qty.max(1) as i64);
                self.money("price", e.amount);
                self.str("currency", "EUR");
                self.common(e);
            }
            Kind::Order => {
                self.id("order", "o", e.order as u64);
                self.id("seller", "s", e.seller as u64);
                self.id("item", "i", e.item as u64);
                self.int("item_count", e.qty.max(1) as i64);
                self.money("amount", e.amount);
                self.str("currency", "EUR");
                if e.coupon != 0 {
                    self.str("coupon", COUPONS[e.coupon as usize % COUPONS.len()].0);
                }
                if e.address != 0 {
                    self.address("shipping_address", e.address);
                }
                if e.card != 0 {
                    self.card("card", e.card);
                    self.str("payment_method", "card");
                }
                if e.email != 0 {
                    self.email("email", e.email);
                }
                self.common(e);
                if self.labels {
                    self.int("fraud", i64::from(e.truth.scenario != Scenario::Honest));
                }
            }
            Kind::PaymentAttempt => {
                if e.order != 0 {
                    self.id("order", "o", e.order as u64);
                }
                self.money("amount", e.amount);
                self.str("currency", "EUR");
                if e.card != 0 {
                    self.card("card", e.card);
                    let cc = self.tables.cards[e.card as usize].country;
                    self.str("card_country", COUNTRIES[cc as usize % COUNTRIES.len()]);
                }
                self.str("payment_method", "card");
                if e.address != 0 {
                    self.address("billing_address", e.address);
                }
                self.common(e);
            }
            Kind::PaymentResult => {
                self.order_amount_card(e);
                if e.flag == 0 {
                    self.str("status", "approved");
                } else {
                    self.str("status", "declined");
                    self.str("decline_code", DECLINES[e.flag as usize % DECLINES.len()]);
                }
            }
            Kind::Refund => {
                self.id("order", "o", e.order as u64);
                self.money("amount", e.amount);
                self.str("currency", "EUR");
                self.str(
                    "reason",
                    ["not_received", "damaged", "not_as_described"][e.flag as usize % 3],
                );
                self.id("seller", "s", e.seller as u64);
            }
            Kind::Review => {
                self.id("item", "i", e.item as u64);
                self.id("seller", "s", e.seller as u64);
                if e.order != 0 {
                    self.id("order", "o", e.order as u64);
                }
                self.int("rating", e.flag as i64);
                self.int("text_length", e.aux as i64);
                if self.text {
                    let t = crate::text::review(e.aux2, e.id, e.seller, e.item, e.flag);
                    self.str("text", &t);
                    // With labels too: the review's ground truth, for training a text classifier
                    // (examples/simulator/text.toml declares it).
                    if self.labels {
                        self.int("fraud", i64::from(e.truth.scenario != Scenario::Honest));
                    }
                }
                self.common(e);
            }
            Kind::Listing => {
                self.id("item", "i", e.item as u64);
                self.id("seller", "s", e.seller as u64);
                let t = crate::text::listing(e.aux2, e.id, e.seller, e.item);
                self.str("text", &t);
                if self.labels {
                    self.int("fraud", i64::from(e.truth.scenario != Scenario::Honest));
                }
                self.common(e);
            }
            Kind::Click => {
                self.id("item", "i", e.item as u64);
                self.id("seller", "s", e.seller as u64);
                self.str("action", CLICK_ACTIONS[(e.flag & 3) as usize]);
                self.str("source", CLICK_SOURCES[(e.flag >> 2 & 3) as usize]);
                self.common(e);
            }
            Kind::DataAccess => {
                self.str(
                    "object_kind",
                    OBJECT_KINDS[e.flag as usize % OBJECT_KINDS.len()],
                );
                if e.order != 0 {
                    self.id("object", "o", e.order as u64);
                }
                self.id("buyer", "u", e.aux as u64);
                self.id("seller", "s", e.seller as u64);
                self.common(e);
            }
            Kind::Payout => {
                self.id("payout_account", "p", e.payout as u64);
                self.money("amount", e.amount);
                self.str("currency", "EUR");
                self.common(e);
            }
            Kind::Chargeback => {
                self.order_amount_card(e);
                self.str("reason", "fraud");
                self.id("original_event", "e", e.aux2);
            }
            Kind::FraudConfirmed | Kind::LegitConfirmed => {
                self.str("subject_kind", "user");
                self.id("subject", "u", e.actor as u64);
                self.str(
                    "reason",
                    if e.kind == Kind::FraudConfirmed {
                        "confirmed_abuse"
                    } else {
                        "confirmed_legitimate"
                    },
                );
                if e.aux2 != 0 {
                    self.id("original_event", "e", e.aux2);
                }
            }
        }
        // Drop the placeholder `"_":0` and the comma after it.
        let tail = self.buf.len();
        self.buf
            .drain(start..start + 5 + usize::from(tail > start + 5));
        self.buf.extend_from_slice(b"}}\n");
    }

    /// One truth line: `{"id","actor","scenario","area","campaign","role","money"}\n`.
    pub fn write_truth(&mut self, e: &Ev) {
        self.buf.extend_from_slice(b"{\"id\":\"");
        self.event_id(e.id);
        self.buf.push(b'"');
        self.id("actor", "u", e.actor as u64);
        self.str("scenario", e.truth.scenario.name());
        self.str("area", e.truth.scenario.area());
        self.int("campaign", e.truth.campaign as i64);
        self.str("role", e.truth.role.name());
        if e.truth.money != 0 {
            self.money("money", e.truth.money);
            if e.truth.money_key != 0 {
                self.id("money_key", "o", e.truth.money_key as u64);
            }
        }
        if e.truth.warmup {
            self.buf.extend_from_slice(b",\"warmup\":true");
        }
        self.buf.extend_from_slice(b"}\n");
    }
}

/// `body` followed by its Luhn check digit.
fn with_luhn_digit(body: u64) -> u64 {
    let mut sum = 0u64;
    let mut n = body;
    let mut double = true;
    while n > 0 {
        let mut d = n % 10;
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
        n /= 10;
    }
    body * 10 + (10 - sum % 10) % 10
}

#[cfg(test)]
mod luhn_tests {
    #[test]
    fn check_digit() {
        assert_eq!(super::with_luhn_digit(411111111111111), 4111111111111111);
        assert_eq!(super::with_luhn_digit(7992739871), 79927398713);
    }
}
