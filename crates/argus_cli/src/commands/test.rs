//! `argus test`: run the test cases that policy files carry — prior events, the event under test, the
//! expected action and rules — each in a fresh engine.

use anyhow::Context;
use argus_engine::Engine;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    setup: super::Setup,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    use std::io::Write;
    let (cfg, loaded) = a.setup.load()?;
    let loaded = loaded.context("no policies: give --policies DIR")?;
    let set = Arc::new(loaded.policies);
    let mut out = std::io::stdout().lock();
    let (mut passed, mut failed) = (0, 0);
    for t in &loaded.tests {
        let mut engine = Engine::new(cfg.clone());
        engine.set_policies(set.clone());
        let mut problems = Vec::new();
        let mut time = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z, one second per event by default
        let mut decision = None;
        let n = t.prior.len();
        for (i, raw) in t.prior.iter().chain(std::iter::once(&t.event)).enumerate() {
            let mut v = raw.clone();
            if let Some(o) = v.as_object_mut() {
                o.entry("id")
                    .or_insert_with(|| format!("{}-{i}", t.name).into());
                match o.get("time") {
                    Some(tv) => {
                        if let Ok(ms) = argus_event::decode::parse_time(argus_event::Raw::Json(tv))
                        {
                            time = ms;
                        }
                    }
                    None => {
                        o.insert("time".into(), time.into());
                    }
                }
                time += 1000;
            }
            let ev = match engine.decoder().decode_json(&v) {
                Ok(e) => e,
                Err(r) => {
                    problems.push(format!("event {i} is invalid: {r}"));
                    break;
                }
            };
            match engine.process(&ev) {
                Ok(p) if i == n => decision = p.decision,
                Ok(_) => {}
                Err(e) => {
                    problems.push(format!("event {i} was not processed: {e}"));
                    break;
                }
            }
        }
        match (&decision, problems.is_empty()) {
            (None, true) => problems.push(
                "no policy decided the event under test (is its type a policy checkpoint?)".into(),
            ),
            (Some(d), true) => {
                if let Some(want) = t.expect_action {
                    if d.action != want {
                        problems.push(format!(
                            "action {} (decided by {}), expected {}",
                            d.action.name(),
                            d.decided_by,
                            want.name()
                        ));
                    }
                }
                let fired: Vec<&str> = d
                    .fired
                    .iter()
                    .chain(d.shadow.iter())
                    .map(|f| f.rule.as_str())
                    .collect();
                for r in &t.expect_rules {
                    if !fired.contains(&r.as_str()) {
                        problems.push(format!(
                            "rule `{r}` did not fire (fired: {fired:?}; errors: {:?})",
                            d.errors
                        ));
                    }
                }
                for r in &t.expect_not_rules {
                    if fired.contains(&r.as_str()) {
                        problems.push(format!("rule `{r}` fired"));
                    }
                }
            }
            _ => {}
        }
        if problems.is_empty() {
            passed += 1;
            writeln!(out, "ok     {} :: {}", t.file, t.name)?;
        } else {
            failed += 1;
            writeln!(out, "FAILED {} :: {}", t.file, t.name)?;
            for p in problems {
                writeln!(out, "         {p}")?;
            }
        }
    }
    writeln!(out, "policy tests: {passed} passed, {failed} failed")?;
    if failed > 0 {
        anyhow::bail!("{failed} policy test(s) failed");
    }
    Ok(())
}
