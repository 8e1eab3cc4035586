//! NDJSON streams through the starter configuration with an entity graph: decoding, lateness,
//! duplicates, labels, features and the graph detectors must never panic, and a snapshot must restore.
#![no_main]

use argus_engine::{replay, Config, Engine, Format};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// Short windows and refreshes, so that rebuilds and re-peels happen within a fuzz input.
const GRAPH: &str = r#"
[graph]
window = "1h"
refresh_every = "1m"
rebuild_every = "5m"
max_share = 3
min_cluster = 2
[[graph.links]]
field = "device"
[[graph.confirmed]]
event = "fraud.confirmed"
field = "subject"
[[graph.blocks]]
name = "orders"
events = ["order.create"]
column = "seller"
weight = "amount"
window = "10m"
min_density = 0.1
min_rows = 1
batch = 2
[[graph.blocks]]
name = "clicks"
events = ["item.click"]
column = "item"
repeats = "once"
window = "2m"
weighting = "log"
min_density = 0.1
min_rows = 1
"#;

fuzz_target!(|data: &[u8]| {
    let text = format!("{}\n{}", include_str!("../../examples/starter/argus.toml"), GRAPH);
    let cfg = Config::from_str(&text, Path::new(".")).expect("starter config with a graph is valid");
    let mut e = Engine::new(cfg.clone());
    let _ = replay(&mut e, data, Format::Ndjson, &mut [], None, &mut |_| {});
    let snap = e.snapshot();
    Engine::restore(cfg, &snap).expect("a snapshot restores");
});
