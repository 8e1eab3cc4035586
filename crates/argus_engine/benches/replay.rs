//! Engine throughput on one core, events already decoded (the decode cost is measured separately):
//! `cargo bench -p argus_engine`. Figures are quoted in BENCHMARKS.md.

#[path = "../examples/support/synth.rs"]
mod synth;

use argus_engine::{Config, Engine};
use argus_event::Event;
use divan::counter::ItemsCount;
use divan::Bencher;
use std::path::{Path, PathBuf};

const N: usize = 200_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn decode_all(cfg: &Config, lines: &[String]) -> Vec<Event> {
    let e = Engine::new(cfg.clone());
    lines
        .iter()
        .map(|l| {
            e.decoder()
                .decode_bytes(l.as_bytes())
                .expect("generated events are valid")
        })
        .collect()
}

fn handbook_events(cfg: &Config) -> Option<Vec<Event>> {
    use std::io::BufRead;
    let path = root().join("../shared/data/fraud-handbook/transactions.csv.gz");
    let f = std::fs::File::open(path).ok()?;
    let r = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(f));
    let e = Engine::new(cfg.clone());
    let ty = e.schema().type_id("payment.attempt")?;
    let et = e.schema().get(ty);
    let (amount, terminal, fraud) = (et.slot("amount")?, et.slot("terminal")?, et.slot("fraud")?);
    let mut out = Vec::with_capacity(N);
    for line in r.lines().skip(1).take(N) {
        let line = line.ok()?;
        let c: Vec<&str> = line.split(',').collect();
        let ev = e
            .decoder()
            .decode_text(
                ty,
                c[0],
                c[1],
                &[
                    (0, "CUSTOMER_ID", c[2]),
                    (terminal, "TERMINAL_ID", c[3]),
                    (amount, "TX_AMOUNT", c[4]),
                    (fraud, "TX_FRAUD", c[7]),
                ],
            )
            .ok()?;
        out.push(ev);
    }
    Some(out)
}

fn run(bencher: Bencher, cfg: Config, events: Vec<Event>) {
    bencher
        .counter(ItemsCount::new(events.len()))
        .with_inputs(|| Engine::new(cfg.clone()))
        .bench_local_values(|mut engine| {
            // The events are read, never changed: no copy per run.
            for ev in &events {
                let _ = divan::black_box(engine.process(ev).map(|p| p.features.len()));
            }
            engine
        });
}

/// The handbook's 15 features on its first 200,000 transactions.
#[divan::bench(sample_count = 10)]
fn engine_handbook(bencher: Bencher) {
    let cfg = Config::load(&root().join("examples/handbook/argus.toml")).expect("handbook config");
    match handbook_events(&cfg) {
        Some(evs) => run(bencher, cfg, evs),
        None => {
            assert!(
                std::env::var_os("ARGUS_REQUIRE_DATA").is_none(),
                "ARGUS_REQUIRE_DATA is set: ../shared/data is missing, and a missing input is a failure, not a skip"
            );
            eprintln!("SKIPPED engine_handbook: ../shared/data not found (ARGUS_REQUIRE_DATA=1 makes this a failure)")
        }
    }
}

/// 40 features over 6 entity kinds on 200,000 generated events.
#[divan::bench(sample_count = 10)]
fn engine_bench40(bencher: Bencher) {
    let cfg = Config::load(&root().join("examples/bench40/argus.toml")).expect("bench40 config");
    let evs = decode_all(&cfg, &synth::events(N, 42));
    run(bencher, cfg, evs);
}

/// The semi-supervised graph signals' cost per event (P4.1): bench40's 200,000 events with and without
/// `[graph.propagation]` over its orders (buyer → seller, weighted by amount), and a fraud label for
/// a seller every 500 events in both runs.
#[divan::bench(args = ["without", "with"], sample_count = 10)]
fn engine_propagation(bencher: Bencher, mode: &str) {
    let base = root().join("examples/bench40/argus.toml");
    let prop = "[graph.propagation]\nevents = [\"order.create\"]\ncolumn = \"seller\"\nattribute = \"amount\"\nscale = 100\nhalf_life = \"30d\"\nmax_neighbors = 32\n[[graph.confirmed]]\nevent = \"fraud.confirmed\"\nfield = \"subject\"\n";
    let mut text = std::fs::read_to_string(&base).expect("bench40 config");
    if mode == "with" {
        text.push_str(prop);
    }
    let cfg = Config::from_str(&text, base.parent().expect("a folder")).expect("config");
    let e = Engine::new(cfg.clone());
    let mut evs = Vec::with_capacity(N + N / 500);
    for (i, ev) in decode_all(&cfg, &synth::events(N, 42))
        .into_iter()
        .enumerate()
    {
        let t = ev.time;
        evs.push(ev);
        if i % 500 == 499 {
            let label = format!(
                r#"{{"id":"l{i}","type":"fraud.confirmed","time":{t},"actor":"ops","data":{{"subject_kind":"user","subject":"s{}"}}}}"#,
                (i * 7919) % 2_000
            );
            evs.push(
                e.decoder()
                    .decode_bytes(label.as_bytes())
                    .expect("a valid label"),
            );
        }
    }
    if mode == "with" {
        assert!(cfg.propagation.is_some());
    }
    run(bencher, cfg, evs);
}

/// The text stage's work on one review of about 45 words (P4.1): words, the MinHash signature over
/// three-word shingles, and the 64 hashed word n-gram features.
#[divan::bench(args = ["signature", "hashed"])]
fn text_review(bencher: Bencher, what: &str) {
    let text = "Bought it after reading a few reviews. the backpack is solid and I have had it for 5 weeks. \
                honestly the material feels sturdy and the stitching is neat which I did not expect. \
                on the downside the size runs small so order one up at least in my case. Would buy again.";
    let words = argus_engine::text::words(text);
    assert!(words.len() > 40);
    match what {
        "signature" => bencher.bench(|| {
            argus_engine::text::signature_of(&argus_engine::text::words(divan::black_box(text)), 3)
        }),
        _ => {
            let mut out = vec![0.0; 64];
            bencher
                .bench_local(|| argus_engine::text::hashed(divan::black_box(&words), 2, &mut out))
        }
    }
}

/// Validation + pseudonymization of generated NDJSON events (4 to 6 personal-data fields each).
#[divan::bench(sample_count = 10)]
fn decode_ndjson(bencher: Bencher) {
    let cfg = Config::from_str("", Path::new(".")).expect("empty config");
    let lines = synth::events(50_000, 7);
    let e = Engine::new(cfg);
    bencher
        .counter(ItemsCount::new(lines.len()))
        .bench_local(|| {
            for l in &lines {
                let _ = divan::black_box(e.decoder().decode_bytes(l.as_bytes()));
            }
        });
}

/// An engine with `policies`, 20,000 generated events of history, and the last generated event of
/// type `checkpoint` processed again (under a new id) as the event to decide, with its features.
fn decided_engine(
    cfg: Config,
    policies: argus_policy::PolicySet,
    checkpoint: &str,
) -> (Engine, Event, Vec<argus_event::Value>) {
    let mut engine = Engine::new(cfg);
    engine.set_policies(std::sync::Arc::new(policies));
    let lines = synth::events(20_000, 9);
    for l in &lines {
        if let Ok(ev) = engine.decoder().decode_bytes(l.as_bytes()) {
            let _ = engine.process(&ev);
        }
    }
    let last = lines
        .iter()
        .rev()
        .find(|l| {
            l.contains(&format!("\"type\":\"{checkpoint}\""))
                && engine.decoder().decode_bytes(l.as_bytes()).is_ok()
        })
        .expect("an event of that type");
    let mut ev = engine
        .decoder()
        .decode_bytes(last.as_bytes())
        .expect("valid");
    ev.id.push_str("-bench");
    let p = engine.process(&ev).expect("accepted");
    assert!(p.decision.is_some(), "{checkpoint} has a policy");
    let (seen, features) = (p.event.clone(), p.features.to_vec());
    (engine, seen, features)
}

/// A full decision (every rule of the checkpoint, starter pack), features already computed: the
/// policy's share of a checkpoint's latency.
#[divan::bench(args = ["order.create", "payment.attempt", "account.login"])]
fn decide_starter(bencher: Bencher, checkpoint: &str) {
    let cfg = Config::load(&root().join("examples/starter/argus.toml")).expect("starter config");
    let loaded = argus_policy::load_dir(
        &root().join("policies"),
        &cfg.schema,
        &cfg.features,
        &cfg.pseudonymizer,
    )
    .expect("starter policies");
    let (engine, ev, features) = decided_engine(cfg, loaded.policies, checkpoint);
    bencher.bench_local(|| engine.decide_with(divan::black_box(&ev), &features));
}

/// A checkpoint with 50 rules: the order rules of the starter pack, five times over (renamed), so
/// that the decision evaluates 50 conditions.
#[divan::bench]
fn decide_50_rules(bencher: Bencher) {
    let cfg = Config::load(&root().join("examples/starter/argus.toml")).expect("starter config");
    let (policies, lists) = argus_policy::read_dir(&root().join("policies")).expect("starter pack");
    let orders = policies
        .iter()
        .find(|(n, _)| n.ends_with("marketplace_integrity.toml"))
        .expect("order policy")
        .1
        .clone();
    let copies: Vec<(String, String)> = (0..5)
        .map(|k| {
            let mut t = orders.replace("name = \"", &format!("name = \"r{k}_"));
            if k > 0 {
                t = t
                    .lines()
                    .filter(|l| !l.starts_with("thresholds"))
                    .collect::<Vec<_>>()
                    .join("\n");
            }
            (format!("orders{k}.toml"), t)
        })
        .collect();
    let loaded = argus_policy::load_sources(
        &copies,
        &lists,
        &cfg.schema,
        &cfg.features,
        &cfg.pseudonymizer,
    )
    .expect("50-rule policy");
    let ty = cfg.schema.type_id("order.create").expect("order type");
    assert_eq!(
        loaded.policies.by_type[ty as usize]
            .as_ref()
            .map_or(0, |p| p.rules.len()),
        50
    );
    let (engine, ev, features) = decided_engine(cfg, loaded.policies, "order.create");
    bencher.bench_local(|| engine.decide_with(divan::black_box(&ev), &features));
}

/// An order decided with the simulator's order model (200 trees) and the starter pack plus the
/// model's rule, the way the server decides live: `inline` without a budget (the model scored on the
/// core thread), `budget` under `[deadlines] budget = "50ms"` (the model scored on the worker thread
/// and waited for): the price of being able to leave a late model out.
#[divan::bench(args = ["inline", "budget"])]
fn decide_model(bencher: Bencher, mode: &str) {
    let sim = root().join("examples/simulator");
    let text = format!(
        "include = [\"{}\"]\n{}",
        sim.join("argus.toml").display(),
        if mode == "budget" {
            "[deadlines]\nbudget = \"50ms\"\n"
        } else {
            ""
        }
    );
    let cfg = Config::from_str(&text, &sim).expect("simulator config");
    let (mut policies, mut lists) =
        argus_policy::read_dir(&root().join("policies")).expect("starter pack");
    let (p2, l2) = argus_policy::read_dir(&sim.join("policies")).expect("model policy");
    policies.extend(p2);
    lists.extend(l2);
    let loaded = argus_policy::load_sources(
        &policies,
        &lists,
        &cfg.schema,
        &cfg.features,
        &cfg.pseudonymizer,
    )
    .expect("policies");
    let (mut engine, ev, features) = decided_engine(cfg, loaded.policies, "order.create");
    engine.set_live_deadlines(true);
    let d = engine.decide_live(&ev, &features).expect("a decision");
    assert_eq!(d.models.len(), 1, "the model scored");
    assert!(d.degraded.is_empty(), "in time: {:?}", d.degraded);
    bencher.bench_local(|| engine.decide_live(divan::black_box(&ev), &features));
}

fn main() {
    divan::main();
}
