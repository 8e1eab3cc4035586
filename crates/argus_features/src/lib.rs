//! `argus_features` — streaming features declared in configuration.
//!
//! A feature is a named aggregate (count, sum, avg, min, max, distinct, first/last seen, age, last value,
//! ratio, calendar parts) over the events of some types, keyed by one or more fields, in an exact or
//! bucketed sliding window (optionally offset into the past) or over a key's lifetime. Features with the
//! same source share one *series* of observations per key.
//!
//! All arithmetic on values is fixed-point (micro-units), so results do not depend on arrival order and
//! snapshots restore byte-identical state. Time is event time only; this crate knows no clock, no I/O,
//! no rules and no HTTP.

pub mod bucketed;
pub mod config;
pub mod exact;
pub mod filter;
pub mod lifetime;
pub mod sketch;
pub mod state;

pub use config::{ConfigError, ConfigErrors, FeatureDef, FeatureSet, FeaturesConfig, Out};
pub use state::{out_value, EntityMemory, FeatureState, KeyRecord, StateStats};
