//! Static types of the rule language.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    Null,
    Bool,
    Int,
    UInt,
    Double,
    String,
    Bytes,
    Timestamp,
    Duration,
    List(Box<Type>),
    Map(Box<Type>, Box<Type>),
    /// A type, as a value (`type(x)`, `int`).
    TypeT,
    /// Known only at run time (e.g. a list of mixed literals).
    Dyn,
}

impl Type {
    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::UInt | Type::Double)
    }

    /// Whether a value of type `other` may stand where `self` is expected.
    pub fn accepts(&self, other: &Type) -> bool {
        self == other
            || *self == Type::Dyn
            || *other == Type::Dyn
            || *other == Type::Null
            || matches!((self, other), (Type::List(a), Type::List(b)) if a.accepts(b))
            || matches!((self, other), (Type::Map(a, b), Type::Map(c, d)) if a.accepts(c) && b.accepts(d))
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Null => f.write_str("null"),
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::UInt => f.write_str("uint"),
            Type::Double => f.write_str("double"),
            Type::String => f.write_str("string"),
            Type::Bytes => f.write_str("bytes"),
            Type::TypeT => f.write_str("type"),
            Type::Timestamp => f.write_str("timestamp"),
            Type::Duration => f.write_str("duration"),
            Type::List(t) => write!(f, "list({t})"),
            Type::Map(k, v) => write!(f, "map({k}, {v})"),
            Type::Dyn => f.write_str("dyn"),
        }
    }
}
