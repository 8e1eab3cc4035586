//! NDJSON streams through the starter configuration: decoding, lateness, duplicates, labels and features
//! must never panic, and a snapshot must restore.
#![no_main]

use argus_engine::{replay, Config, Engine, Format};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = include_str!("../../examples/starter/argus.toml");
    let cfg = Config::from_str(text, Path::new(".")).expect("starter config is valid");
    let mut e = Engine::new(cfg.clone());
    let _ = replay(&mut e, data, Format::Ndjson, &mut [], None, &mut |_| {});
    let snap = e.snapshot();
    Engine::restore(cfg, &snap).expect("a snapshot restores");
});
