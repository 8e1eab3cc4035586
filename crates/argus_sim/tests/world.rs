//! The simulated world: determinism, label integrity, and each scenario producing its pattern (and
//! less of it under camouflage).

use argus_sim::event::*;
use argus_sim::{generate, Generator, KnobsPatch, Role, Scenario, SimConfig, SCENARIOS};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

fn small(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        days: 10,
        users: 3000,
        warmup_days: 2,
        ..SimConfig::default()
    }
}

/// Only `s` enabled, several campaigns, with the given camouflage.
fn only(s: Scenario, camouflage: f64) -> SimConfig {
    let mut cfg = small(11);
    cfg.camouflage = Some(camouflage);
    cfg.attack_scale = 4.0;
    for (x, _, _) in SCENARIOS {
        cfg.scenarios.insert(
            x.name().into(),
            KnobsPatch {
                enabled: Some(x == s),
                ..Default::default()
            },
        );
    }
    cfg
}

fn events(cfg: &SimConfig) -> Vec<Ev> {
    let mut g = Generator::new(cfg).unwrap();
    let mut all = Vec::new();
    while let Some(d) = g.next_day() {
        all.extend(d);
    }
    all
}

fn bytes(cfg: &SimConfig) -> (Vec<u8>, Vec<u8>) {
    let (mut e, mut t) = (Vec::new(), Vec::new());
    generate(cfg, &mut e, Some(&mut t)).unwrap();
    (e, t)
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let a = bytes(&small(5));
    let b = bytes(&small(5));
    assert!(
        a.0.len() > 1_000_000,
        "a 3,000-user world over 12 days has substance: {} bytes",
        a.0.len()
    );
    assert!(
        a == b,
        "same configuration and seed must give the same bytes"
    );
    let c = bytes(&small(6));
    assert!(a.0 != c.0);
    // Switching a scenario off leaves honest activity exactly as it was.
    let mut cfg = small(5);
    cfg.scenarios.insert(
        "click_farm".into(),
        KnobsPatch {
            enabled: Some(false),
            ..Default::default()
        },
    );
    let honest = |evs: Vec<Ev>| {
        evs.into_iter()
            .filter(|e| e.truth.scenario == Scenario::Honest)
            .map(|e| (e.t, e.kind, e.actor, e.item))
            .collect::<Vec<_>>()
    };
    assert_eq!(honest(events(&small(5))), honest(events(&cfg)));
}

#[test]
fn every_event_has_its_truth_and_labels_point_back() {
    let cfg = small(3);
    let (ev, tr) = bytes(&cfg);
    let ev: Vec<serde_json::Value> = ev
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let tr: Vec<serde_json::Value> = tr
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(ev.len(), tr.len());
    let start = argus_event::time::parse_datetime("2026-10-01T00:00:00Z").unwrap();
    let mut seen = HashSet::new();
    let mut last_time = i64::MIN;
    let mut by_id: HashMap<String, &serde_json::Value> = HashMap::new();
    let mut scenarios = BTreeSet::new();
    for (e, t) in ev.iter().zip(&tr) {
        assert_eq!(e["id"], t["id"], "truth is in event order");
        assert_eq!(e["actor"], t["actor"]);
        let id = e["id"].as_str().unwrap().to_string();
        assert!(seen.insert(id.clone()), "duplicate id {id}");
        let time = argus_event::time::parse_datetime(e["time"].as_str().unwrap()).unwrap();
        assert!(time >= last_time, "events are in time order");
        last_time = time;
        let scenario = t["scenario"].as_str().unwrap();
        scenarios.insert(scenario.to_string());
        let campaign = t["campaign"].as_u64().unwrap();
        assert_eq!(scenario == "honest", campaign == 0, "{t}");
        assert_eq!(
            Scenario::from_name(scenario).unwrap().area(),
            t["area"].as_str().unwrap()
        );
        if t["warmup"] == true {
            assert!(
                time < start && scenario == "honest",
                "warm-up is honest history before the start: {t}"
            );
        } else if scenario == "honest" {
            assert!(time >= start, "{t}");
        }
        // The engine never sees the truth: no truth key leaks into the event.
        for k in ["scenario", "role", "area", "warmup"] {
            assert!(e.get(k).is_none() && e["data"].get(k).is_none());
        }
        let ty = e["type"].as_str().unwrap();
        if let Some(orig) = e["data"].get("original_event").and_then(|v| v.as_str()) {
            let o = by_id
                .get(orig)
                .unwrap_or_else(|| panic!("{ty} {id} points to {orig}, not an earlier event"));
            assert_eq!(
                o["actor"], e["actor"],
                "a label is about the original event's actor"
            );
            if scenario != "honest" {
                assert_eq!(t["role"], "label");
            }
        }
        if ["chargeback", "fraud.confirmed"].contains(&ty) {
            assert_ne!(
                scenario, "honest",
                "only attacks get chargebacks and confirmations here"
            );
        }
        by_id.insert(id, e);
    }
    let want: BTreeSet<String> = std::iter::once("honest")
        .chain(Scenario::ATTACKS.iter().map(|s| s.name()))
        .map(String::from)
        .collect();
    assert_eq!(scenarios, want, "every scenario is in the default world");
}

#[test]
fn every_event_is_accepted_by_the_engine() {
    let (ev, _) = bytes(&small(4));
    let cfg = argus_engine::Config::from_str(
        include_str!("../../../examples/starter/argus.toml"),
        std::path::Path::new("."),
    )
    .unwrap();
    let mut engine = argus_engine::Engine::new(cfg);
    let mut rejects = Vec::new();
    let stats = argus_engine::replay(
        &mut engine,
        &ev[..],
        argus_engine::Format::Ndjson,
        &mut [],
        Some(&mut rejects),
        &mut |_| {},
    )
    .unwrap();
    assert!(stats.records > 50_000, "{}", stats.records);
    assert_eq!(
        stats.accepted,
        stats.records,
        "rejects: {}",
        String::from_utf8_lossy(&rejects[..rejects.len().min(2000)])
    );
}

fn attack(evs: &[Ev]) -> Vec<&Ev> {
    evs.iter()
        .filter(|e| e.truth.scenario != Scenario::Honest && e.truth.role != Role::Label)
        .collect()
}

/// Mean over campaigns of `f(campaign events)`.
fn per_campaign(evs: &[&Ev], f: impl Fn(&[&Ev]) -> f64) -> f64 {
    let mut by: BTreeMap<u32, Vec<&Ev>> = BTreeMap::new();
    for e in evs {
        by.entry(e.truth.campaign).or_default().push(e);
    }
    assert!(!by.is_empty());
    by.values().map(|v| f(v)).sum::<f64>() / by.len() as f64
}

fn accounts_per_device(evs: &[&Ev]) -> f64 {
    let regs: Vec<_> = evs.iter().filter(|e| e.kind == Kind::Register).collect();
    let devices: HashSet<u32> = regs.iter().map(|e| e.device).collect();
    regs.len() as f64 / devices.len().max(1) as f64
}

#[test]
fn fake_account_farm_shares_devices_unless_camouflaged() {
    let naive = events(&only(Scenario::FakeAccounts, 0.0));
    let careful = events(&only(Scenario::FakeAccounts, 1.0));
    let a = per_campaign(&attack(&naive), accounts_per_device);
    let b = per_campaign(&attack(&careful), accounts_per_device);
    assert!(
        a >= 8.0,
        "naive farms put many accounts on each emulator: {a}"
    );
    assert!(
        b < 1.5,
        "careful farms give nearly every account its own device: {b}"
    );
    let disposable = |evs: &[Ev]| {
        let r: Vec<_> = attack(evs)
            .into_iter()
            .filter(|e| e.kind == Kind::Register)
            .collect();
        r.iter()
            .filter(|e| DOMAIN_DISPOSABLE.contains(&((e.email >> 32) as usize)))
            .count() as f64
            / r.len() as f64
    };
    assert!(disposable(&naive) > 0.5 && disposable(&careful) == 0.0);
}

#[test]
fn coupon_ring_is_one_person_behind_many_accounts() {
    let evs = events(&only(Scenario::CouponRing, 0.0));
    let att = attack(&evs);
    per_campaign(&att, |c| {
        let accounts: HashSet<u32> = c.iter().map(|e| e.actor).collect();
        let claims: HashSet<u32> = c
            .iter()
            .filter(|e| e.kind == Kind::CouponClaim && e.coupon == COUPON_WELCOME)
            .map(|e| e.actor)
            .collect();
        let addresses: HashSet<u32> = c
            .iter()
            .filter(|e| e.kind == Kind::Order)
            .map(|e| e.address)
            .collect();
        let devices: HashSet<u32> = c.iter().map(|e| e.device).collect();
        let payouts: HashSet<u32> = c
            .iter()
            .filter(|e| e.kind == Kind::Payout)
            .map(|e| e.payout)
            .collect();
        assert!(accounts.len() >= 6, "{}", accounts.len());
        assert_eq!(
            claims, accounts,
            "every ring account claims the welcome coupon"
        );
        assert_eq!(addresses.len(), 1, "one door");
        assert!(devices.len() <= 2 && payouts.len() <= 1);
        0.0
    });
    // Camouflaged rings vary the flat number: one door, many address tokens.
    let careful = events(&only(Scenario::CouponRing, 1.0));
    let addrs = per_campaign(&attack(&careful), |c| {
        c.iter()
            .filter(|e| e.kind == Kind::Order)
            .map(|e| e.address)
            .collect::<HashSet<_>>()
            .len() as f64
    });
    assert!(addrs > 5.0, "{addrs}");
}

#[test]
fn brushing_repeats_cheap_orders_with_five_star_reviews() {
    let mut cfg = only(Scenario::Brushing, 0.0);
    cfg.days = 30;
    let evs = events(&cfg);
    let att = attack(&evs);
    let orders: Vec<_> = att.iter().filter(|e| e.kind == Kind::Order).collect();
    assert!(orders.iter().all(|e| e.amount < 1000), "cheap items");
    let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
    for o in &orders {
        *pairs.entry((o.actor, o.seller)).or_default() += 1;
    }
    let repeat = pairs.values().filter(|&&n| n >= 2).count() as f64 / pairs.len() as f64;
    assert!(repeat > 0.6, "most buyer–seller pairs repeat: {repeat}");
    let order_time: HashMap<u32, i64> = orders.iter().map(|o| (o.order, o.t)).collect();
    let reviews: Vec<_> = att.iter().filter(|e| e.kind == Kind::Review).collect();
    assert!(reviews.len() as f64 > 0.7 * orders.len() as f64);
    for r in reviews {
        assert_eq!(r.flag, 5, "naive brushing gives five stars");
        let ot = order_time.get(&r.order).copied().unwrap_or(i64::MIN);
        // Reviews past the world's end are dropped; those kept come after "delivery".
        assert!(
            r.t - ot >= 2 * argus_event::time::DAY,
            "review after delivery"
        );
    }
}

/// Share of each target-item wave's clicks that fall within `window` ms of the wave's first click.
fn lockstep(evs: &[&Ev], window: i64) -> f64 {
    let mut by: BTreeMap<(u32, u32), Vec<i64>> = BTreeMap::new();
    for e in evs.iter().filter(|e| e.kind == Kind::Click) {
        by.entry((e.truth.campaign, e.item)).or_default().push(e.t);
    }
    let (mut near, mut all) = (0, 0);
    for ts in by.values_mut().filter(|v| v.len() > 50) {
        ts.sort_unstable();
        // Waves: clusters separated by ≥ 2 h.
        let mut start = ts[0];
        for &t in ts.iter() {
            if t - start > 2 * argus_event::time::HOUR {
                start = t;
            }
            near += usize::from(t - start <= window);
            all += 1;
        }
    }
    near as f64 / all.max(1) as f64
}

#[test]
fn click_farm_clicks_in_lockstep() {
    let naive = events(&only(Scenario::ClickFarm, 0.0));
    let careful = events(&only(Scenario::ClickFarm, 1.0));
    let a = lockstep(&attack(&naive), 3 * argus_event::time::MIN);
    let b = lockstep(&attack(&careful), 3 * argus_event::time::MIN);
    assert!(a > 0.9, "naive waves land within minutes: {a}");
    assert!(b < 0.3, "camouflaged waves spread over an hour: {b}");
}

#[test]
fn card_testing_tries_many_cards_with_tiny_amounts() {
    let evs = events(&only(Scenario::CardTesting, 0.0));
    let att = attack(&evs);
    per_campaign(&att, |c| {
        let attempts: Vec<_> = c
            .iter()
            .filter(|e| e.kind == Kind::PaymentAttempt)
            .collect();
        let cards: HashSet<u32> = attempts.iter().map(|e| e.card).collect();
        let devices: HashSet<u32> = attempts.iter().map(|e| e.device).collect();
        assert!(
            cards.len() >= 40 && devices.len() == 1,
            "{} cards from {} devices",
            cards.len(),
            devices.len()
        );
        assert!(attempts.iter().all(|e| e.amount < 200));
        let declined = c
            .iter()
            .filter(|e| e.kind == Kind::PaymentResult && e.flag != 0)
            .count() as f64
            / attempts.len() as f64;
        assert!(declined > 0.5, "{declined}");
        0.0
    });
    let careful = events(&only(Scenario::CardTesting, 1.0));
    assert!(
        attack(&careful)
            .iter()
            .filter(|e| e.kind == Kind::PaymentAttempt)
            .all(|e| e.amount >= 300),
        "camouflaged tests look like purchases"
    );
}

#[test]
fn stolen_cards_buy_expensive_goods_and_come_back_as_chargebacks() {
    let mut cfg = only(Scenario::StolenCard, 0.0);
    cfg.days = 40;
    let evs = events(&cfg);
    let att = attack(&evs);
    let orders: Vec<_> = att.iter().filter(|e| e.kind == Kind::Order).collect();
    assert!(!orders.is_empty() && orders.iter().all(|e| e.amount >= 15_000));
    // Money is at stake on approved orders only, on the order and its payment, keyed by the order.
    let approved: HashSet<u32> = evs
        .iter()
        .filter(|e| e.kind == Kind::PaymentResult && e.flag == 0)
        .map(|e| e.order)
        .collect();
    for o in &orders {
        let want = if approved.contains(&o.order) {
            o.amount
        } else {
            0
        };
        assert_eq!(
            (o.truth.money, o.truth.money_key),
            (want, if want > 0 { o.order } else { 0 })
        );
        let pay = att
            .iter()
            .find(|e| e.kind == Kind::PaymentAttempt && e.order == o.order)
            .unwrap();
        assert_eq!(pay.truth.money, want);
    }
    let attempts: HashMap<u64, &Ev> = evs
        .iter()
        .filter(|e| e.kind == Kind::PaymentAttempt)
        .map(|e| (e.id, e))
        .collect();
    let cbs: Vec<_> = evs.iter().filter(|e| e.kind == Kind::Chargeback).collect();
    assert!(!cbs.is_empty());
    for cb in cbs {
        let a = attempts[&cb.aux2];
        assert_eq!((a.actor, a.card, a.order), (cb.actor, cb.card, cb.order));
        assert!(
            cb.t - a.t >= 10 * argus_event::time::DAY,
            "chargebacks arrive weeks later"
        );
    }
}

#[test]
fn credential_stuffing_then_takeover() {
    let evs = events(&only(Scenario::AccountTakeover, 0.0));
    let att = attack(&evs);
    let stuffing: Vec<_> = evs
        .iter()
        .filter(|e| e.truth.role == Role::Stuffing)
        .collect();
    assert!(stuffing
        .iter()
        .all(|e| e.kind == Kind::Login && e.flag == 0));
    let targets: HashSet<u32> = stuffing.iter().map(|e| e.actor).collect();
    assert!(
        targets.len() > 300,
        "many accounts tried: {}",
        targets.len()
    );
    let victims: HashSet<u32> = att
        .iter()
        .filter(|e| e.truth.role == Role::Hijacker)
        .map(|e| e.actor)
        .collect();
    assert!(!victims.is_empty());
    // The victims keep shopping honestly: those events stay honest.
    assert!(victims.iter().any(|&v| evs
        .iter()
        .any(|e| e.actor == v && e.truth.scenario == Scenario::Honest)));
    for v in victims {
        let mine: Vec<_> = att
            .iter()
            .filter(|e| e.actor == v && e.truth.role == Role::Hijacker)
            .collect();
        assert!(
            mine.iter()
                .any(|e| e.kind == Kind::Update && e.flag == CHANGE_ADDRESS)
                || mine.iter().any(|e| e.kind == Kind::Update),
            "sensitive changes"
        );
        assert!(
            mine.iter()
                .any(|e| e.kind == Kind::Order || e.kind == Kind::Payout),
            "then the cash-out"
        );
        let first_update = mine
            .iter()
            .filter(|e| e.kind == Kind::Update)
            .map(|e| e.t)
            .min()
            .unwrap_or(i64::MAX);
        let cash = mine
            .iter()
            .filter(|e| e.kind == Kind::Order || e.kind == Kind::Payout)
            .map(|e| e.t)
            .max()
            .unwrap();
        assert!(first_update < cash);
    }
}

#[test]
fn insiders_harvest_buyer_data_fast_unless_careful() {
    let per_hour = |evs: &[Ev]| {
        per_campaign(&attack(evs), |c| {
            let ts: Vec<i64> = c.iter().map(|e| e.t).collect();
            let span = (ts.iter().max().unwrap() - ts.iter().min().unwrap()).max(1) as f64
                / argus_event::time::HOUR as f64;
            let buyers: HashSet<u32> = c.iter().map(|e| e.aux).collect();
            assert!(
                buyers.len() as f64 > 0.5 * c.len() as f64,
                "distinct buyers"
            );
            c.len() as f64 / span
        })
    };
    let a = per_hour(&events(&only(Scenario::DataHarvest, 0.0)));
    let b = per_hour(&events(&only(Scenario::DataHarvest, 1.0)));
    assert!(a > 100.0 && b < 40.0, "{a} vs {b} records per hour");
}

#[test]
fn checkout_bots_buy_the_drop_within_seconds() {
    let evs = events(&only(Scenario::CheckoutBot, 0.0));
    let att = attack(&evs);
    let orders: Vec<_> = att.iter().filter(|e| e.kind == Kind::Order).collect();
    assert!(orders.len() >= 10);
    let carts: Vec<_> = att.iter().filter(|e| e.kind == Kind::CartAdd).collect();
    for o in &orders {
        let cart = carts
            .iter()
            .filter(|c| c.actor == o.actor && c.t <= o.t)
            .map(|c| c.t)
            .max()
            .unwrap();
        assert!(o.t - cart <= 2_000, "cart to order in about a second");
    }
    let first = orders.iter().map(|o| o.t).min().unwrap();
    let ms_into_hour = first.rem_euclid(argus_event::time::HOUR);
    assert!(
        ms_into_hour < 60_000,
        "bots buy within a minute of the 18:00 drop"
    );
}

#[test]
fn honest_world_has_its_textures() {
    let evs = events(&only(Scenario::Honest, 0.0));
    assert!(attack(&evs).is_empty());
    // Shared household devices: some devices serve several honest accounts.
    let mut dev: HashMap<u32, HashSet<u32>> = HashMap::new();
    for e in evs.iter().filter(|e| e.device != 0) {
        dev.entry(e.device).or_default().insert(e.actor);
    }
    assert!(dev.values().filter(|s| s.len() >= 2).count() > 50);
    // Carrier NAT: some IPs carry more users than any household has members (at most 4).
    let mut ip: HashMap<u32, HashSet<u32>> = HashMap::new();
    for e in evs.iter().filter(|e| e.ip != 0) {
        ip.entry(e.ip).or_default().insert(e.actor);
    }
    assert!(ip.values().filter(|s| s.len() > 4).count() > 20);
    // Diurnal cycle: evenings busier than nights.
    let hour = |h: i64| {
        evs.iter()
            .filter(|e| e.t.rem_euclid(argus_event::time::DAY) / argus_event::time::HOUR == h)
            .count()
    };
    assert!(hour(20) > 5 * hour(3));
    // Heavy tail: the busiest 1 % of users produce far more than 1 % of events.
    let mut per: HashMap<u32, usize> = HashMap::new();
    for e in &evs {
        *per.entry(e.actor).or_default() += 1;
    }
    let mut counts: Vec<usize> = per.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = counts[..counts.len() / 100].iter().sum();
    assert!(top as f64 > 0.08 * evs.len() as f64);
    // Travellers, declines, refunds, first-time buyers with the welcome coupon, flash-sale claims.
    assert!(evs.iter().any(|e| e.kind == Kind::Login && e.country != 0));
    assert!(evs
        .iter()
        .any(|e| e.kind == Kind::PaymentResult && e.flag != 0));
    assert!(evs.iter().any(|e| e.kind == Kind::Refund));
    assert!(evs.iter().filter(|e| e.kind == Kind::Register).count() > 100);
    assert!(evs
        .iter()
        .any(|e| e.kind == Kind::CouponClaim && e.coupon == COUPON_WELCOME));
    assert!(
        evs.iter()
            .filter(|e| e.kind == Kind::CouponClaim && e.coupon == COUPON_FLASH)
            .count()
            > 100
    );
}

#[test]
fn bad_configurations_are_refused() {
    let mut c = small(1);
    c.days = 0;
    assert!(Generator::new(&c).is_err());
    let mut c = small(1);
    c.scenarios.insert("nope".into(), KnobsPatch::default());
    assert!(Generator::new(&c)
        .err()
        .unwrap()
        .to_string()
        .contains("scenario `nope`: unknown"));
    let mut c = small(1);
    c.scenarios.insert(
        "coupon_ring".into(),
        KnobsPatch {
            size: Some(u32::MAX),
            ..Default::default()
        },
    );
    assert!(Generator::new(&c).is_err(), "sizes are bounded");
    let mut c = small(1);
    c.attack_scale = 1e9;
    assert!(Generator::new(&c).is_err(), "campaign counts are bounded");
    let mut c = small(1);
    c.start = "8999-12-28".into();
    assert!(
        Generator::new(&c).is_err(),
        "times stay within four-digit years"
    );
    let mut c = small(1);
    c.camouflage = Some(1.5);
    assert!(Generator::new(&c).is_err());
    let mut c = small(1);
    c.start = "yesterday".into();
    assert!(Generator::new(&c).is_err());
}

#[test]
fn attack_scale_zero_is_an_honest_world() {
    let mut cfg = small(2);
    cfg.attack_scale = 0.0;
    let g = Generator::new(&cfg).unwrap();
    assert!(
        g.summary.campaigns.values().all(|&n| n == 0),
        "{:?}",
        g.summary.campaigns
    );
    assert!(attack(&events(&cfg)).is_empty());
}
