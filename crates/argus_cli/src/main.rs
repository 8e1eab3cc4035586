//! `argus` — the command-line entry point. Each subcommand is one module in `commands/`, registered in
//! [`Command`].

mod commands;

/// mimalloc: replay allocates and frees small objects (events, strings) at a high rate.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "argus",
    version,
    about = "Argus: real-time risk control for e-commerce"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the decision API: events in, decisions out, over a durable event log.
    Serve(commands::serve::Args),
    /// Replay recorded events (NDJSON or mapped CSV) into a point-in-time feature table.
    Replay(commands::replay::Args),
    /// Validate a configuration and print every problem.
    Check(commands::check::Args),
    /// Print the event schema (built-in plus configured extensions).
    Schema(commands::schema::Args),
    /// Run the test cases carried by policy files.
    Test(commands::test::Args),
    /// Generate a labelled e-commerce world with every attack scenario (NDJSON events + truth).
    Simulate(commands::simulate::Args),
    /// Train a gradient-boosted tree model on the engine's point-in-time features and delayed labels.
    Train(commands::train::TrainArgs),
    /// Evaluate a model (Argus, XGBoost JSON or LightGBM text) on a time window: AUC, AP, P/R@k, CP@k.
    Eval(commands::train::EvalArgs),
    /// Find dense blocks (rings) in an edge file by greedy peeling (FRAUDAR weightings).
    Rings(commands::rings::Args),
    /// Draft a configuration from a CSV file's columns, saying what was inferred and why.
    Init(commands::init::Args),
    /// Backtest draft policies on a server's event log: the decision diff against the running ones.
    Backtest(commands::backtest::Args),
    /// Policy versions kept by `argus serve`: list them, or export one back to files.
    Versions(commands::versions::Args),
    /// A server's event log as Hive-partitioned Parquet (events, decisions, features; by date and type).
    Export(commands::export::Args),
    /// The audit log: verify its hash chain, or export it as NDJSON.
    Audit(commands::audit::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => commands::serve::run(a),
        Command::Replay(a) => commands::replay::run(a),
        Command::Check(a) => commands::check::run(a),
        Command::Schema(a) => commands::schema::run(a),
        Command::Test(a) => commands::test::run(a),
        Command::Simulate(a) => commands::simulate::run(a),
        Command::Train(a) => commands::train::train(a),
        Command::Eval(a) => commands::train::eval(a),
        Command::Rings(a) => commands::rings::run(a),
        Command::Init(a) => commands::init::run(a),
        Command::Backtest(a) => commands::backtest::run(a),
        Command::Versions(a) => commands::versions::run(a),
        Command::Export(a) => commands::export::run(a),
        Command::Audit(a) => commands::audit::run(a),
    };
    if let Err(e) = result {
        // A closed pipe (`argus schema | head`) is the reader's choice, not an error.
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return;
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
