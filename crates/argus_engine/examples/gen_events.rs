//! Writes generated benchmark events as NDJSON to stdout: `cargo run --release -p argus_engine --example
//! gen_events -- 1000000 > target/bench40.ndjson`.

#[path = "support/synth.rs"]
mod synth;

use std::io::Write;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in synth::events(n, seed) {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}
