//! `argus_sim`: a seeded, deterministic e-commerce world — honest shoppers, sellers and items, and
//! attackers running every campaign of PRODUCT.md §1 — with ground truth for every event, and the
//! catch report that measures a policy pack against it.
//!
//! Same configuration and seed ⇒ the same bytes. The engine never reads the truth: it is a separate
//! stream (`*.truth.ndjson`), joined to decisions by event id only by the report.

pub mod chart;
pub mod event;
pub mod gen;
pub mod honest;
pub mod report;
pub mod rng;
pub mod scenarios;
pub mod text;
pub mod world;

pub use event::{Ev, Kind, Role, Scenario, Truth};
pub use gen::{generate, GenerateError, Generator, KnobsPatch, SimConfig, SimError, Summary};
pub use report::{CatchReport, Report, TruthReader, TruthRec, TruthSource};
pub use scenarios::{Knobs, SCENARIOS};
