//! `argus_event` — the event model of Argus.
//!
//! An event is an envelope (`id`, `type`, `time`, `actor`) plus typed fields. This crate owns the
//! schema (the built-in e-commerce types and the operator's configured extensions), validation with
//! JSON-pointer paths, and pseudonymization of personal data at ingest.
//!
//! It must not depend on features, rules, storage, HTTP or the wall clock: it is pure data in, data out.

pub mod decode;
pub mod lookup;
pub mod privacy;
pub mod schema;
pub mod time;
pub mod value;

pub use decode::{Decoder, FieldError, Raw, Rejection};
pub use privacy::Pseudonymizer;
pub use schema::{EventType, Field, FieldType, Schema, SchemaConfig, TypeId, ACTOR_SLOT};
pub use value::Value;

/// A validated event. Fields are indexed by the slots of its [`EventType`]; slot 0 is the actor.
/// Personal data in it is already pseudonymized.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub id: String,
    pub ty: TypeId,
    /// Event time, milliseconds since the Unix epoch (UTC).
    pub time: i64,
    pub fields: Vec<Value>,
}
