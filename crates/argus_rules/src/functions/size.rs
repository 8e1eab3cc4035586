//! `size`: the number of code points of a string, or of elements of a list.

use super::FunctionDef;
use crate::types::Type;
use crate::value::{EvalError, Val};

pub fn defs() -> Vec<FunctionDef> {
    let doc = "`size(x)` / `x.size()`: code points of a string, elements of a list.";
    let mut v = Vec::new();
    for method in [false, true] {
        v.push(FunctionDef {
            name: "size",
            method,
            params: vec![Type::Bytes],
            ret: Type::Int,
            doc,
            examples: &[],
            eval,
        });
        v.push(FunctionDef {
            name: "size",
            method,
            params: vec![Type::String],
            ret: Type::Int,
            doc,
            examples: if method {
                &[]
            } else {
                &[("size('héllo')", "5")]
            },
            eval,
        });
        v.push(FunctionDef {
            name: "size",
            method,
            params: vec![Type::List(Box::new(Type::Dyn))],
            ret: Type::Int,
            doc,
            examples: if method {
                &[("[1, 2, 3].size()", "3")]
            } else {
                &[]
            },
            eval,
        });
        v.push(FunctionDef {
            name: "size",
            method,
            params: vec![Type::Map(Box::new(Type::Dyn), Box::new(Type::Dyn))],
            ret: Type::Int,
            doc,
            examples: if method {
                &[]
            } else {
                &[("size({'a': 1, 'b': 2})", "2")]
            },
            eval,
        });
    }
    v
}

fn eval(a: &[Val]) -> Result<Val, EvalError> {
    match &a[0] {
        Val::Str(s) => Ok(Val::Int(s.chars().count() as i64)),
        Val::List(l) => Ok(Val::Int(l.len() as i64)),
        Val::Map(m) => Ok(Val::Int(m.len() as i64)),
        Val::Bytes(b) => Ok(Val::Int(b.len() as i64)),
        Val::Null => Err(EvalError::Absent("size argument".into())),
        o => Err(EvalError::NoOverload(format!("size({})", o.type_name()))),
    }
}
