//! `argus_engine` — the engine that live traffic and replay share.
//!
//! It loads `argus.toml` (schema extensions, features, CSV mapping, privacy), and processes events in
//! one code path: idempotency, lateness, delayed-label release, feature update and read. It snapshots and
//! restores its whole state, and replays recorded events into point-in-time feature tables.
//!
//! It must not depend on HTTP or the wall clock: time is event time; the caller measures durations.

pub mod config;
pub mod dataset;
pub mod deadlines;
pub mod engine;
pub mod graph;
pub mod lookups;
pub mod models;
pub mod propagation;
pub mod replay;
pub mod report;
pub(crate) mod sort;
pub mod stages;
pub mod table;
pub mod text;

pub use config::{Config, ConfigLoadError, CsvMapping};
pub use engine::{
    Begun, Counters, Engine, EngineCopy, OwnLabel, PendingSnapshot, ProcessError, Processed,
    RunTimes, SnapshotError, Source,
};
pub use graph::{Finding, GraphSpec};
pub use replay::{replay, Format, ReplayError, ReplayStats};
pub use report::PolicyReport;
pub use table::{CsvTable, DecisionLog, FindingsLog, ParquetTable, RowSink, SummarySink};
