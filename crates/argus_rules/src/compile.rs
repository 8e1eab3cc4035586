//! Compilation of the typed form into closures: no parsing, no name lookup and no allocation for
//! numeric and boolean work at evaluation time; variables are slots, constant patterns are pre-built.

use crate::ast::BinOp;
use crate::check::Ir;
use crate::env::{Activation, Env};
use crate::value::{EvalError, Val};
use std::cmp::Ordering;
use std::sync::Arc;

/// A compiled expression.
pub type Eval = Box<dyn Fn(&Activation<'_>) -> Result<Val, EvalError> + Send + Sync>;

pub fn compile(ir: Ir, env: &Env) -> Eval {
    match ir {
        Ir::Const(v) => Box::new(move |_| Ok(v.clone())),
        Ir::Var(i, name) => Box::new(move |a| var(a, i, &name).cloned()),
        Ir::Present(i, want) => Box::new(move |a| {
            Ok(Val::Bool(
                a.vars.get(i).is_some_and(|v| *v != Val::Null) == want,
            ))
        }),
        Ir::List(items) => {
            let items: Vec<Eval> = items.into_iter().map(|x| compile(x, env)).collect();
            Box::new(move |a| {
                Ok(Val::List(
                    items
                        .iter()
                        .map(|f| f(a))
                        .collect::<Result<Vec<_>, _>>()?
                        .into(),
                ))
            })
        }
        Ir::Map(entries) => {
            let entries: Vec<(Eval, Eval)> = entries
                .into_iter()
                .map(|(k, v)| (compile(k, env), compile(v, env)))
                .collect();
            Box::new(move |a| {
                let mut out: Vec<(Val, Val)> = Vec::with_capacity(entries.len());
                for (k, v) in &entries {
                    let key = k(a)?;
                    if !matches!(key, Val::Int(_) | Val::UInt(_) | Val::Bool(_) | Val::Str(_)) {
                        return Err(EvalError::NoOverload(format!(
                            "a {} as a map key",
                            key.type_name()
                        )));
                    }
                    if out.iter().any(|(x, _)| val_eq(x, &key)) {
                        return Err(EvalError::Invalid(format!("repeated map key {key:?}")));
                    }
                    out.push((key, v(a)?));
                }
                Ok(Val::Map(out.into()))
            })
        }
        Ir::Not(x) => {
            let x = compile(*x, env);
            Box::new(move |a| match x(a)? {
                Val::Bool(b) => Ok(Val::Bool(!b)),
                o => Err(EvalError::NoOverload(format!("!{}", o.type_name()))),
            })
        }
        Ir::Neg(x) => {
            let x = compile(*x, env);
            Box::new(move |a| match x(a)? {
                Val::Int(i) => i.checked_neg().map(Val::Int).ok_or(EvalError::Overflow),
                Val::Double(d) => Ok(Val::Double(-d)),
                Val::Duration(d) => Ok(Val::Duration(-d)),
                o => Err(EvalError::NoOverload(format!("-{}", o.type_name()))),
            })
        }
        // CEL's commutative logic: an error on one side is absorbed when the other side decides.
        Ir::And(l, r) => {
            let (l, r) = (compile(*l, env), compile(*r, env));
            Box::new(move |a| match l(a) {
                Ok(Val::Bool(false)) => Ok(Val::Bool(false)),
                Ok(Val::Bool(true)) => truth(r(a)),
                left => match r(a) {
                    Ok(Val::Bool(false)) => Ok(Val::Bool(false)),
                    _ => truth(left),
                },
            })
        }
        Ir::Or(l, r) => {
            let (l, r) = (compile(*l, env), compile(*r, env));
            Box::new(move |a| match l(a) {
                Ok(Val::Bool(true)) => Ok(Val::Bool(true)),
                Ok(Val::Bool(false)) => truth(r(a)),
                left => match r(a) {
                    Ok(Val::Bool(true)) => Ok(Val::Bool(true)),
                    _ => truth(left),
                },
            })
        }
        Ir::Cond(c, t, f) => {
            let (c, t, f) = (compile(*c, env), compile(*t, env), compile(*f, env));
            Box::new(move |a| match c(a)? {
                Val::Bool(true) => t(a),
                Val::Bool(false) => f(a),
                o => Err(EvalError::NoOverload(format!("{} ? _ : _", o.type_name()))),
            })
        }
        Ir::InList(x, list) => {
            let x = compile(*x, env);
            Box::new(move |a| Ok(Val::Bool(a.lists.contains(list, &x(a)?))))
        }
        Ir::Index(x, i) => {
            let (x, i) = (compile(*x, env), compile(*i, env));
            Box::new(move |a| match (x(a)?, i(a)?) {
                (Val::List(l), Val::Int(i)) => usize::try_from(i)
                    .ok()
                    .and_then(|i| l.get(i).cloned())
                    .ok_or(EvalError::IndexOutOfRange),
                (Val::List(l), Val::UInt(i)) => usize::try_from(i)
                    .ok()
                    .and_then(|i| l.get(i).cloned())
                    .ok_or(EvalError::IndexOutOfRange),
                (Val::List(l), Val::Double(d))
                    if d.fract() == 0.0 && d >= 0.0 && d < l.len() as f64 =>
                {
                    Ok(l[d as usize].clone())
                }
                (Val::Map(m), k) => m
                    .iter()
                    .find(|(x, _)| val_eq(x, &k))
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| EvalError::NoSuchKey(format!("{k:?}"))),
                (x, i) => Err(EvalError::NoOverload(format!(
                    "{}[{}]",
                    x.type_name(),
                    i.type_name()
                ))),
            })
        }
        Ir::Binary(op, l, r) => binary(op, *l, *r, env),
        Ir::Call(f, args) => call(f, args, env),
        Ir::Error(m) => Box::new(move |_| Err(EvalError::Invalid(m.to_string()))),
        Ir::TypeOf(x) => {
            let x = compile(*x, env);
            Box::new(move |a| Ok(Val::Type(Arc::from(x(a)?.cel_type()))))
        }
        Ir::Macro {
            kind,
            list,
            var,
            filter,
            body,
        } => list_macro(
            kind,
            compile(*list, env),
            var,
            filter.map(|f| compile(*f, env)),
            compile(*body, env),
        ),
    }
}

/// List macros with CEL's error semantics: `all` is false if any element is false (else an error if
/// any erred), `exists` true if any is true (else an error if any erred).
fn list_macro(
    kind: crate::check::Macro,
    list: Eval,
    var: usize,
    filter: Option<Eval>,
    body: Eval,
) -> Eval {
    use crate::check::Macro;
    Box::new(move |a| {
        let items = match list(a)? {
            Val::List(l) => l,
            Val::Map(m) => m.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>().into(),
            o => {
                return Err(EvalError::NoOverload(format!(
                    "a list macro on {}",
                    o.type_name()
                )))
            }
        };
        let mut vars: Vec<Val> = a.vars.to_vec();
        if vars.len() <= var {
            vars.resize(var + 1, Val::Null);
        }
        let mut err: Option<EvalError> = None;
        let (mut found, mut count) = (false, 0usize);
        let mut out = Vec::new();
        for item in items.iter() {
            vars[var] = item.clone();
            let act = Activation {
                vars: &vars,
                lists: a.lists,
            };
            if let Some(f) = &filter {
                match f(&act)? {
                    Val::Bool(true) => {}
                    Val::Bool(false) => continue,
                    o => {
                        return Err(EvalError::NoOverload(format!(
                            "a macro predicate evaluated to {}",
                            o.type_name()
                        )))
                    }
                }
            }
            let r = body(&act);
            match kind {
                Macro::All => match r {
                    Ok(Val::Bool(false)) => return Ok(Val::Bool(false)),
                    Ok(Val::Bool(true)) => {}
                    Ok(o) => {
                        err = Some(EvalError::NoOverload(format!(
                            "all() predicate gave {}",
                            o.type_name()
                        )))
                    }
                    Err(e) => err = Some(e),
                },
                Macro::Exists => match r {
                    Ok(Val::Bool(true)) => {
                        found = true;
                        break;
                    }
                    Ok(Val::Bool(false)) => {}
                    Ok(o) => {
                        err = Some(EvalError::NoOverload(format!(
                            "exists() predicate gave {}",
                            o.type_name()
                        )))
                    }
                    Err(e) => err = Some(e),
                },
                Macro::ExistsOne => match r? {
                    Val::Bool(true) => count += 1,
                    Val::Bool(false) => {}
                    o => {
                        return Err(EvalError::NoOverload(format!(
                            "exists_one() predicate gave {}",
                            o.type_name()
                        )))
                    }
                },
                Macro::Map => out.push(r?),
                Macro::Filter => match r? {
                    Val::Bool(true) => out.push(item.clone()),
                    Val::Bool(false) => {}
                    o => {
                        return Err(EvalError::NoOverload(format!(
                            "filter() predicate gave {}",
                            o.type_name()
                        )))
                    }
                },
            }
        }
        match kind {
            Macro::All => err.map_or(Ok(Val::Bool(true)), Err),
            Macro::Exists if found => Ok(Val::Bool(true)),
            Macro::Exists => err.map_or(Ok(Val::Bool(false)), Err),
            Macro::ExistsOne => Ok(Val::Bool(count == 1)),
            Macro::Map | Macro::Filter => Ok(Val::List(out.into())),
        }
    })
}

fn truth(r: Result<Val, EvalError>) -> Result<Val, EvalError> {
    match r? {
        Val::Bool(b) => Ok(Val::Bool(b)),
        o => Err(EvalError::NoOverload(format!(
            "a {} in a logical operator",
            o.type_name()
        ))),
    }
}

#[inline]
fn var<'a>(a: &'a Activation<'_>, i: usize, name: &str) -> Result<&'a Val, EvalError> {
    match a.vars.get(i) {
        Some(Val::Null) | None => Err(EvalError::Absent(name.to_string())),
        Some(v) => Ok(v),
    }
}

fn binary(op: BinOp, l: Ir, r: Ir, env: &Env) -> Eval {
    // Fast paths: a variable against a constant, compared or combined by reference (no clone).
    if let (Ir::Var(i, name), Ir::Const(c)) = (&l, &r) {
        let (i, name, c) = (*i, name.clone(), c.clone());
        return Box::new(move |a| apply(op, var(a, i, &name)?, &c));
    }
    if let (Ir::Var(i, ni), Ir::Var(j, nj)) = (&l, &r) {
        let (i, ni, j, nj) = (*i, ni.clone(), *j, nj.clone());
        return Box::new(move |a| apply(op, var(a, i, &ni)?, var(a, j, &nj)?));
    }
    let (l, r) = (compile(l, env), compile(r, env));
    Box::new(move |a| apply(op, &l(a)?, &r(a)?))
}

fn call(f: usize, args: Vec<Ir>, env: &Env) -> Eval {
    let def = env.functions[f].clone();
    // A constant regular expression is compiled once, here.
    if def.name == "matches" {
        if let [x, Ir::Const(Val::Str(p))] = args.as_slice() {
            if let Ok(re) = crate::functions::matches_compile(p) {
                let x = compile(x.clone(), env);
                return Box::new(move |a| match x(a)? {
                    Val::Str(s) => Ok(Val::Bool(re.is_match(&s))),
                    o => Err(EvalError::NoOverload(format!("matches({})", o.type_name()))),
                });
            }
        }
    }
    // String methods on a variable with a constant argument: by reference.
    if let ([Ir::Var(i, name), Ir::Const(Val::Str(k))], "startsWith" | "endsWith" | "contains") =
        (args.as_slice(), def.name)
    {
        let (i, name, k) = (*i, name.clone(), k.clone());
        let op: fn(&str, &str) -> bool = match def.name {
            "startsWith" => |s, k| s.starts_with(k),
            "endsWith" => |s, k| s.ends_with(k),
            _ => |s, k| s.contains(k),
        };
        return Box::new(move |a| match var(a, i, &name)? {
            Val::Str(s) => Ok(Val::Bool(op(s, &k))),
            o => Err(EvalError::NoOverload(format!(
                "{}.{}",
                o.type_name(),
                "string method"
            ))),
        });
    }
    let args: Vec<Eval> = args.into_iter().map(|x| compile(x, env)).collect();
    let eval = def.eval;
    Box::new(move |a| {
        let vals = args.iter().map(|f| f(a)).collect::<Result<Vec<_>, _>>()?;
        eval(&vals)
    })
}

/// Numeric comparison across int, uint and double, by value (CEL's heterogeneous ordering).
fn num_cmp(a: &Val, b: &Val) -> Option<Ordering> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::UInt(x), Val::UInt(y)) => Some(x.cmp(y)),
        (Val::Double(x), Val::Double(y)) => x.partial_cmp(y),
        (Val::Int(x), Val::UInt(y)) => Some(if *x < 0 {
            Ordering::Less
        } else {
            (*x as u64).cmp(y)
        }),
        (Val::UInt(x), Val::Int(y)) => Some(if *y < 0 {
            Ordering::Greater
        } else {
            x.cmp(&(*y as u64))
        }),
        (Val::Int(x), Val::Double(y)) => int_double(*x as i128, *y),
        (Val::Double(x), Val::Int(y)) => int_double(*y as i128, *x).map(Ordering::reverse),
        (Val::UInt(x), Val::Double(y)) => int_double(*x as i128, *y),
        (Val::Double(x), Val::UInt(y)) => int_double(*y as i128, *x).map(Ordering::reverse),
        _ => None,
    }
}

/// CEL compares an integer with a double by converting the integer to a double (so `2^63 - 1` and
/// `2^63` compare equal, as the conformance suite's "lossy" cases expect).
fn int_double(i: i128, d: f64) -> Option<Ordering> {
    (i as f64).partial_cmp(&d)
}

pub fn val_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::List(x), Val::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| val_eq(p, q))
        }
        (Val::Map(x), Val::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| val_eq(k, k2) && val_eq(v, v2)))
        }
        (Val::Double(x), Val::Double(y)) => x == y,
        _ => match num_cmp(a, b) {
            Some(o) => o == Ordering::Equal,
            None => a == b,
        },
    }
}

/// CEL's timestamp range: years 0001 to 9999.
fn time_in_range(t: Option<i64>) -> Result<i64, EvalError> {
    t.filter(|t| (crate::time::MIN_TIME..=crate::time::MAX_TIME).contains(t))
        .ok_or(EvalError::Overflow)
}

/// CEL's duration range: ±10,000 years (315,576,000,000 s).
fn duration_in_range(d: Option<i64>) -> Result<i64, EvalError> {
    d.filter(|d| d.unsigned_abs() <= crate::time::MAX_DURATION)
        .ok_or(EvalError::Overflow)
}

/// Applies a (non-logical) binary operator.
pub fn apply(op: BinOp, a: &Val, b: &Val) -> Result<Val, EvalError> {
    use Val::*;
    let no = || {
        EvalError::NoOverload(format!(
            "{} {} {}",
            a.type_name(),
            op.symbol(),
            b.type_name()
        ))
    };
    Ok(match op {
        BinOp::Eq => Bool(val_eq(a, b)),
        BinOp::Ne => Bool(!val_eq(a, b)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let o = match (a, b) {
                (Str(x), Str(y)) => Some(x.cmp(y)),
                (Bytes(x), Bytes(y)) => Some(x.cmp(y)),
                (Bool(x), Bool(y)) => Some(x.cmp(y)),
                (Time(x), Time(y)) | (Duration(x), Duration(y)) => Some(x.cmp(y)),
                _ => num_cmp(a, b),
            };
            let Some(o) = o else {
                // NaN compares false; mismatched kinds are errors.
                if matches!((a, b), (Double(_), _) | (_, Double(_)))
                    && num_cmp(a, b).is_none()
                    && matches!(a, Int(_) | UInt(_) | Double(_))
                    && matches!(b, Int(_) | UInt(_) | Double(_))
                {
                    return Ok(Bool(false));
                }
                return Err(no());
            };
            Bool(match op {
                BinOp::Lt => o == Ordering::Less,
                BinOp::Le => o != Ordering::Greater,
                BinOp::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            })
        }
        BinOp::In => match b {
            List(l) => Bool(l.iter().any(|x| val_eq(a, x))),
            Map(m) => Bool(m.iter().any(|(k, _)| val_eq(a, k))),
            _ => return Err(no()),
        },
        BinOp::Add => match (a, b) {
            (Int(x), Int(y)) => Int(x.checked_add(*y).ok_or(EvalError::Overflow)?),
            (UInt(x), UInt(y)) => UInt(x.checked_add(*y).ok_or(EvalError::Overflow)?),
            (Double(x), Double(y)) => Double(x + y),
            (Str(x), Str(y)) => Str(Arc::from(format!("{x}{y}").as_str())),
            (Bytes(x), Bytes(y)) => Bytes(
                x.iter()
                    .chain(y.iter())
                    .copied()
                    .collect::<Vec<u8>>()
                    .into(),
            ),
            (List(x), List(y)) => {
                List(x.iter().chain(y.iter()).cloned().collect::<Vec<_>>().into())
            }
            (Time(t), Duration(d)) | (Duration(d), Time(t)) => {
                Time(time_in_range(t.checked_add(*d))?)
            }
            (Duration(x), Duration(y)) => Duration(duration_in_range(x.checked_add(*y))?),
            _ => return Err(no()),
        },
        BinOp::Sub => match (a, b) {
            (Int(x), Int(y)) => Int(x.checked_sub(*y).ok_or(EvalError::Overflow)?),
            (UInt(x), UInt(y)) => UInt(x.checked_sub(*y).ok_or(EvalError::Overflow)?),
            (Double(x), Double(y)) => Double(x - y),
            (Time(x), Time(y)) => Duration(duration_in_range(x.checked_sub(*y))?),
            (Time(t), Duration(d)) => Time(time_in_range(t.checked_sub(*d))?),
            (Duration(x), Duration(y)) => Duration(duration_in_range(x.checked_sub(*y))?),
            _ => return Err(no()),
        },
        BinOp::Mul => match (a, b) {
            (Int(x), Int(y)) => Int(x.checked_mul(*y).ok_or(EvalError::Overflow)?),
            (UInt(x), UInt(y)) => UInt(x.checked_mul(*y).ok_or(EvalError::Overflow)?),
            (Double(x), Double(y)) => Double(x * y),
            _ => return Err(no()),
        },
        BinOp::Div => match (a, b) {
            (Int(_), Int(0)) | (UInt(_), UInt(0)) => return Err(EvalError::DivisionByZero),
            (Int(x), Int(y)) => Int(x.checked_div(*y).ok_or(EvalError::Overflow)?),
            (UInt(x), UInt(y)) => UInt(x / y),
            (Double(x), Double(y)) => Double(x / y),
            _ => return Err(no()),
        },
        BinOp::Rem => match (a, b) {
            (Int(_), Int(0)) | (UInt(_), UInt(0)) => return Err(EvalError::DivisionByZero),
            (Int(x), Int(y)) => Int(x.checked_rem(*y).ok_or(EvalError::Overflow)?),
            (UInt(x), UInt(y)) => UInt(x % y),
            _ => return Err(no()),
        },
        BinOp::And | BinOp::Or => return Err(no()),
    })
}

/// The fast form of a condition: `Some(result)`, or `None` when evaluation errs (or takes a shape the
/// fast form does not cover); the caller then runs the general evaluator, which has the same semantics
/// and produces the precise error. No `Val` is built on the fast path and errors cost nothing until
/// they happen.
pub type FastBool = Box<dyn Fn(&Activation<'_>) -> Option<bool> + Send + Sync>;
type FastF64 = Box<dyn Fn(&Activation<'_>) -> Option<f64> + Send + Sync>;

pub fn fast_bool(ir: Ir, env: &Env) -> FastBool {
    match ir {
        Ir::Const(Val::Bool(b)) => Box::new(move |_| Some(b)),
        Ir::Present(i, want) => {
            Box::new(move |a| Some(a.vars.get(i).is_some_and(|v| *v != Val::Null) == want))
        }
        Ir::Not(x) => {
            let x = fast_bool(*x, env);
            Box::new(move |a| x(a).map(|b| !b))
        }
        // CEL's commutative logic: an error (None) is absorbed when the other side decides.
        Ir::And(l, r) => {
            let (l, r) = (fast_bool(*l, env), fast_bool(*r, env));
            Box::new(move |a| match l(a) {
                Some(false) => Some(false),
                Some(true) => r(a),
                None => match r(a) {
                    Some(false) => Some(false),
                    _ => None,
                },
            })
        }
        Ir::Or(l, r) => {
            let (l, r) = (fast_bool(*l, env), fast_bool(*r, env));
            Box::new(move |a| match l(a) {
                Some(true) => Some(true),
                Some(false) => r(a),
                None => match r(a) {
                    Some(true) => Some(true),
                    _ => None,
                },
            })
        }
        Ir::Cond(c, t, f) if is_bool(&t, env) && is_bool(&f, env) => {
            let (c, t, f) = (fast_bool(*c, env), fast_bool(*t, env), fast_bool(*f, env));
            Box::new(move |a| if c(a)? { t(a) } else { f(a) })
        }
        Ir::Binary(
            op @ (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne),
            l,
            r,
        ) if is_f64(&l, env) && is_f64(&r, env) => match (*l, *r) {
            (Ir::Var(i, _), Ir::Const(Val::Double(c))) => {
                Box::new(move |a| match a.vars.get(i)? {
                    Val::Double(d) => Some(cmp_f64(op, *d, c)),
                    _ => None,
                })
            }
            (l, Ir::Const(Val::Double(c))) => {
                let l = fast_f64(l);
                Box::new(move |a| Some(cmp_f64(op, l(a)?, c)))
            }
            (l, r) => {
                let (l, r) = (fast_f64(l), fast_f64(r));
                Box::new(move |a| Some(cmp_f64(op, l(a)?, r(a)?)))
            }
        },
        Ir::Call(f, args)
            if matches!(
                env.functions.get(f).map(|d| d.name),
                Some("startsWith" | "endsWith" | "contains")
            ) && matches!(args.as_slice(), [Ir::Var(..), Ir::Const(Val::Str(_))]) =>
        {
            let name = env.functions[f].name;
            let (i, k) = match args.as_slice() {
                [Ir::Var(i, _), Ir::Const(Val::Str(k))] => (*i, k.clone()),
                _ => unreachable!("matched above"),
            };
            let op: fn(&str, &str) -> bool = match name {
                "startsWith" => |s, k| s.starts_with(k),
                "endsWith" => |s, k| s.ends_with(k),
                _ => |s, k| s.contains(k),
            };
            Box::new(move |a| match a.vars.get(i)? {
                Val::Str(s) => Some(op(s, &k)),
                _ => None,
            })
        }
        Ir::Binary(
            op @ (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne),
            l,
            r,
        ) if matches!(&*l, Ir::Var(..))
            && matches!(&*r, Ir::Const(Val::Int(c)) if c.unsigned_abs() < (1 << 53)) =>
        {
            let (Ir::Var(i, _), Ir::Const(Val::Int(c))) = (*l, *r) else {
                unreachable!("matched above")
            };
            let c = c as f64;
            // Ints within ±2^53 are exact as doubles, and so is the comparison.
            Box::new(move |a| match a.vars.get(i)? {
                Val::Int(n) if n.unsigned_abs() < (1 << 53) => Some(cmp_f64(op, *n as f64, c)),
                Val::Double(d) => Some(cmp_f64(op, *d, c)),
                _ => None,
            })
        }
        Ir::Binary(op @ (BinOp::Eq | BinOp::Ne), l, r)
            if matches!(
                (&*l, &*r),
                (Ir::Var(..), Ir::Var(..) | Ir::Const(Val::Str(_)))
            ) =>
        {
            let eq = op == BinOp::Eq;
            match (*l, *r) {
                (Ir::Var(i, _), Ir::Const(Val::Str(k))) => {
                    Box::new(move |a| match a.vars.get(i)? {
                        Val::Str(s) => Some((**s == *k) == eq),
                        _ => None,
                    })
                }
                (Ir::Var(i, _), Ir::Var(j, _)) => {
                    Box::new(move |a| match (a.vars.get(i)?, a.vars.get(j)?) {
                        (Val::Str(x), Val::Str(y)) => Some((x == y) == eq),
                        (Val::Null, _) | (_, Val::Null) => None,
                        (x, y) => Some(val_eq(x, y) == eq),
                    })
                }
                _ => unreachable!("matched above"),
            }
        }
        Ir::Binary(BinOp::In, l, r)
            if matches!((&*l, &*r), (Ir::Var(..), Ir::Const(Val::List(_)))) =>
        {
            let (Ir::Var(i, _), Ir::Const(Val::List(items))) = (*l, *r) else {
                unreachable!("matched above")
            };
            let strings: Option<Vec<Arc<str>>> = items
                .iter()
                .map(|v| {
                    if let Val::Str(s) = v {
                        Some(s.clone())
                    } else {
                        None
                    }
                })
                .collect();
            match strings {
                Some(mut strs) => {
                    strs.sort();
                    // Short lists: a length check rejects most candidates without touching bytes.
                    let linear = strs.len() <= 16;
                    Box::new(move |a| match a.vars.get(i)? {
                        Val::Str(s) if linear => Some(
                            strs.iter()
                                .any(|k| k.len() == s.len() && k.as_bytes() == s.as_bytes()),
                        ),
                        Val::Str(s) => Some(strs.binary_search(s).is_ok()),
                        Val::Null => None,
                        v => Some(items_contain(&[], v)),
                    })
                }
                None => Box::new(move |a| match a.vars.get(i)? {
                    Val::Null => None,
                    v => Some(items_contain(&items, v)),
                }),
            }
        }
        other => {
            let f = compile(other, env);
            Box::new(move |a| match f(a) {
                Ok(Val::Bool(b)) => Some(b),
                _ => None,
            })
        }
    }
}

fn items_contain(items: &[Val], v: &Val) -> bool {
    items.iter().any(|x| val_eq(v, x))
}

fn cmp_f64(op: BinOp, x: f64, y: f64) -> bool {
    match op {
        BinOp::Lt => x < y,
        BinOp::Le => x <= y,
        BinOp::Gt => x > y,
        BinOp::Ge => x >= y,
        BinOp::Eq => x == y,
        _ => x != y,
    }
}

/// Whether `ir` has a bool type (so a fast boolean form exists for it).
fn is_bool(ir: &Ir, env: &Env) -> bool {
    match ir {
        Ir::Const(Val::Bool(_))
        | Ir::Present(..)
        | Ir::Not(_)
        | Ir::And(..)
        | Ir::Or(..)
        | Ir::InList(..) => true,
        Ir::Binary(op, ..) => matches!(
            op,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne | BinOp::In
        ),
        Ir::Var(i, _) => env
            .vars()
            .get(*i)
            .is_some_and(|v| v.ty == crate::types::Type::Bool),
        Ir::Cond(_, t, f) => is_bool(t, env) && is_bool(f, env),
        Ir::Call(f, _) => env
            .functions
            .get(*f)
            .is_some_and(|d| d.ret == crate::types::Type::Bool),
        _ => false,
    }
}

/// Whether `ir` is double arithmetic over double variables and constants (no int/uint: those keep their
/// overflow checks on the general path).
fn is_f64(ir: &Ir, env: &Env) -> bool {
    match ir {
        Ir::Const(Val::Double(_)) => true,
        Ir::Var(i, _) => env
            .vars()
            .get(*i)
            .is_some_and(|v| v.ty == crate::types::Type::Double),
        Ir::Neg(x) => is_f64(x, env),
        Ir::Binary(BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div, l, r) => {
            is_f64(l, env) && is_f64(r, env)
        }
        _ => false,
    }
}

/// Double arithmetic without building values (IEEE semantics, as CEL's doubles).
fn fast_f64(ir: Ir) -> FastF64 {
    match ir {
        Ir::Const(Val::Double(d)) => Box::new(move |_| Some(d)),
        Ir::Var(i, _) => Box::new(move |a| match a.vars.get(i)? {
            Val::Double(d) => Some(*d),
            _ => None,
        }),
        Ir::Neg(x) => {
            let x = fast_f64(*x);
            Box::new(move |a| Some(-x(a)?))
        }
        Ir::Binary(op, l, r) if matches!((&*l, &*r), (Ir::Var(..), Ir::Const(Val::Double(_)))) => {
            let (Ir::Var(i, _), Ir::Const(Val::Double(c))) = (*l, *r) else {
                unreachable!("matched above")
            };
            let var = move |a: &Activation<'_>| match a.vars.get(i)? {
                Val::Double(d) => Some(*d),
                _ => None,
            };
            match op {
                BinOp::Add => Box::new(move |a| Some(var(a)? + c)),
                BinOp::Sub => Box::new(move |a| Some(var(a)? - c)),
                BinOp::Mul => Box::new(move |a| Some(var(a)? * c)),
                _ => Box::new(move |a| Some(var(a)? / c)),
            }
        }
        Ir::Binary(op, l, r) if matches!(*r, Ir::Const(Val::Double(_))) => {
            let Ir::Const(Val::Double(c)) = *r else {
                unreachable!("matched above")
            };
            let l = fast_f64(*l);
            match op {
                BinOp::Add => Box::new(move |a| Some(l(a)? + c)),
                BinOp::Sub => Box::new(move |a| Some(l(a)? - c)),
                BinOp::Mul => Box::new(move |a| Some(l(a)? * c)),
                _ => Box::new(move |a| Some(l(a)? / c)),
            }
        }
        Ir::Binary(op, l, r) => {
            let (l, r) = (fast_f64(*l), fast_f64(*r));
            match op {
                BinOp::Add => Box::new(move |a| Some(l(a)? + r(a)?)),
                BinOp::Sub => Box::new(move |a| Some(l(a)? - r(a)?)),
                BinOp::Mul => Box::new(move |a| Some(l(a)? * r(a)?)),
                _ => Box::new(move |a| Some(l(a)? / r(a)?)),
            }
        }
        _ => Box::new(|_| None),
    }
}
