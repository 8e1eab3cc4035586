//! Golden diagnostics: each `diagnostics/<name>.rule` is checked against a fixed environment, and the
//! rendered diagnostics must equal `diagnostics/<name>.out` byte for byte. Regenerate after an intended
//! change with `UPDATE_GOLDEN=1 cargo test -p argus_rules --test all diagnostics::`, and review the diff.

use argus_rules::{compile_condition, Env, Type};
use std::path::Path;

fn env() -> Env {
    let mut e = Env::new();
    e.var("event.amount", Type::Double);
    e.var("event.country", Type::String);
    e.var("event.ip_country", Type::String);
    e.var("event.email_domain", Type::String);
    e.var("event.device", Type::String);
    e.var("event.time", Type::Timestamp);
    e.var("features.orders_1h", Type::Int);
    e.var("features.device_accounts_7d", Type::Int);
    e.list("blocked_devices", Type::String);
    e
}

#[test]
fn golden_diagnostics() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/diagnostics");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rule"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the golden files in {}",
        dir.display()
    );
    let env = env();
    let mut failures = Vec::new();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        let src = src.trim_end_matches('\n');
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let rendered = match compile_condition(src, &env) {
            Ok(_) => "ok\n".to_string(),
            Err(ds) => ds
                .iter()
                .map(|d| d.render(src, &name))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        let out = f.with_extension("out");
        if update {
            std::fs::write(&out, &rendered).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&out).unwrap_or_default();
        if want != rendered {
            failures.push(format!("{name}:\n--- want\n{want}--- got\n{rendered}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
