//! Runtime values and evaluation errors.

use std::sync::Arc;

/// A value during evaluation. Times and durations are milliseconds (Argus's event-time unit).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(Arc<str>),
    Bytes(Arc<[u8]>),
    Time(i64),
    Duration(i64),
    List(Arc<[Val]>),
    /// Entries in literal order; keys are unique (by value equality).
    Map(Arc<[(Val, Val)]>),
    /// A type as a value: its CEL name (`int`, `google.protobuf.Timestamp`, …).
    Type(Arc<str>),
}

impl Val {
    /// CEL's name of this value's type, as `type(x)` returns it.
    pub fn cel_type(&self) -> &'static str {
        match self {
            Val::Null => "null_type",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::UInt(_) => "uint",
            Val::Double(_) => "double",
            Val::Str(_) => "string",
            Val::Bytes(_) => "bytes",
            Val::Time(_) => "google.protobuf.Timestamp",
            Val::Duration(_) => "google.protobuf.Duration",
            Val::List(_) => "list",
            Val::Map(_) => "map",
            Val::Type(_) => "type",
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::UInt(_) => "uint",
            Val::Double(_) => "double",
            Val::Str(_) => "string",
            Val::Bytes(_) => "bytes",
            Val::Type(_) => "type",
            Val::Time(_) => "timestamp",
            Val::Duration(_) => "duration",
            Val::List(_) => "list",
            Val::Map(_) => "map",
        }
    }

    pub fn str(s: &str) -> Val {
        Val::Str(Arc::from(s))
    }
}

/// Why an expression has no value. A rule whose condition errs does not fire; the error is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("integer overflow")]
    Overflow,
    #[error("division by zero")]
    DivisionByZero,
    #[error("`{0}` is absent from this event")]
    Absent(String),
    #[error("no such overload for {0}")]
    NoOverload(String),
    #[error("index out of range")]
    IndexOutOfRange,
    #[error("no such key: {0}")]
    NoSuchKey(String),
    #[error("{0}")]
    Invalid(String),
}
