//! Type checking: resolves names against the [`Env`], picks function overloads, and produces a typed
//! intermediate form. Every problem is collected (checking continues with `dyn` where a type is unknown).

use crate::ast::{BinOp, Expr, ExprKind, Lit, UnOp};
use crate::diag::{did_you_mean, Diagnostic};
use crate::env::Env;
use crate::types::Type;
use crate::value::Val;
use std::sync::Arc;

/// The typed intermediate form the compiler turns into closures.
#[derive(Debug, Clone)]
pub enum Ir {
    Const(Val),
    /// A variable by index, with its name for error messages.
    Var(usize, Arc<str>),
    /// Presence test (`has(x)`, `x != null`); negated for `x == null`.
    Present(usize, bool),
    List(Vec<Ir>),
    Map(Vec<(Ir, Ir)>),
    Not(Box<Ir>),
    Neg(Box<Ir>),
    And(Box<Ir>, Box<Ir>),
    Or(Box<Ir>, Box<Ir>),
    Cond(Box<Ir>, Box<Ir>, Box<Ir>),
    Binary(BinOp, Box<Ir>, Box<Ir>),
    InList(Box<Ir>, usize),
    Index(Box<Ir>, Box<Ir>),
    /// Function overload index in `Env::functions`, arguments (receiver first for methods).
    Call(usize, Vec<Ir>),
    /// `type(x)`: the CEL type of the value.
    TypeOf(Box<Ir>),
    /// Dynamic mode only: what static checking would have refused, as a run-time error.
    Error(Arc<str>),
    /// A list macro: `list.all(x, p)`, `exists`, `exists_one`, `map(x, f)` / `map(x, p, f)`, `filter(x, p)`.
    /// The element is bound to variable slot `var` while `body` (and `filter`) evaluate.
    Macro {
        kind: Macro,
        list: Box<Ir>,
        var: usize,
        filter: Option<Box<Ir>>,
        body: Box<Ir>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Macro {
    All,
    Exists,
    ExistsOne,
    Map,
    Filter,
}

pub struct Checker<'e> {
    env: &'e Env,
    /// Dynamic mode (CEL with checking disabled): unknown names and functions become run-time errors and
    /// operand types are not enforced; the evaluator's own checks apply instead.
    pub dynamic: bool,
    pub diags: Vec<Diagnostic>,
    /// Variables the expression reads (for explanations: "the feature values they read").
    pub reads: Vec<usize>,
}

impl<'e> Checker<'e> {
    pub fn new(env: &'e Env) -> Self {
        Checker {
            env,
            dynamic: false,
            diags: Vec::new(),
            reads: Vec::new(),
        }
    }

    fn err(&mut self, d: Diagnostic) -> (Ir, Type) {
        if self.dynamic && d.code != "syntax_error" && d.code != "too_deep" {
            return (Ir::Error(Arc::from(d.message.as_str())), Type::Dyn);
        }
        self.diags.push(d);
        (Ir::Const(Val::Null), Type::Dyn)
    }

    /// A type problem that dynamic mode leaves to run time (with `ir` evaluated as built).
    fn soft(&mut self, d: Diagnostic) {
        if !self.dynamic {
            self.diags.push(d);
        }
    }

    pub fn check(&mut self, e: &Expr) -> (Ir, Type) {
        match &e.kind {
            ExprKind::Lit(l) => match l {
                Lit::Null => (Ir::Const(Val::Null), Type::Null),
                Lit::Bool(b) => (Ir::Const(Val::Bool(*b)), Type::Bool),
                Lit::Int(i) => (Ir::Const(Val::Int(*i)), Type::Int),
                Lit::UInt(u) => (Ir::Const(Val::UInt(*u)), Type::UInt),
                Lit::Double(d) => (Ir::Const(Val::Double(*d)), Type::Double),
                Lit::Str(s) => (Ir::Const(Val::str(s)), Type::String),
                Lit::Bytes(b) => (Ir::Const(Val::Bytes(b.as_slice().into())), Type::Bytes),
            },
            ExprKind::Ident(_) | ExprKind::Member(..) => self.name(e),
            ExprKind::ListRef(n) => self.err(
                Diagnostic::new("unsupported", format!("`@{n}` is a value list: use it on the right of `in`, e.g. `event.device in @{n}`"), e.span),
            ),
            ExprKind::List(items) => {
                let mut irs = Vec::new();
                let mut elem: Option<Type> = None;
                for it in items {
                    let (ir, t) = self.check(it);
                    elem = Some(match elem {
                        None => t,
                        Some(p) if p == t => p,
                        Some(p) if p.is_numeric() && t.is_numeric() => Type::Dyn,
                        Some(_) => Type::Dyn,
                    });
                    irs.push(ir);
                }
                let ty = Type::List(Box::new(elem.unwrap_or(Type::Dyn)));
                // A list of constants is itself a constant: built once, at compile time.
                if irs.iter().all(|i| matches!(i, Ir::Const(_))) {
                    let vals: Vec<Val> = irs.into_iter().map(|i| if let Ir::Const(v) = i { v } else { Val::Null }).collect();
                    return (Ir::Const(Val::List(vals.into())), ty);
                }
                (Ir::List(irs), ty)
            }
            ExprKind::Map(entries) => {
                let mut irs = Vec::new();
                let (mut kt, mut vt): (Option<Type>, Option<Type>) = (None, None);
                for (k, v) in entries {
                    let (ki, kty) = self.check(k);
                    let (vi, vty) = self.check(v);
                    if !matches!(kty, Type::Int | Type::UInt | Type::Bool | Type::String | Type::Dyn) {
                        self.soft(Diagnostic::new("type_mismatch", format!("map keys are int, uint, bool or string, found {kty}"), k.span));
                    }
                    kt = Some(match kt {
                        Some(p) if p != kty => Type::Dyn,
                        _ => kty,
                    });
                    vt = Some(match vt {
                        Some(p) if p != vty => Type::Dyn,
                        _ => vty,
                    });
                    irs.push((ki, vi));
                }
                (Ir::Map(irs), Type::Map(Box::new(kt.unwrap_or(Type::Dyn)), Box::new(vt.unwrap_or(Type::Dyn))))
            }
            ExprKind::Message(name, fields) => self.message(e, name, fields),
            ExprKind::Unary(op, x) => {
                let (ir, t) = self.check(x);
                match (op, &t) {
                    (UnOp::Not, Type::Bool | Type::Dyn) => (Ir::Not(Box::new(ir)), Type::Bool),
                    (UnOp::Neg, Type::Int | Type::Double | Type::Duration | Type::Dyn) => (Ir::Neg(Box::new(ir)), t),
                    (UnOp::Not, _) => self.err(Diagnostic::new("type_mismatch", format!("`!` needs a bool, found {t}"), e.span)),
                    (UnOp::Neg, _) => self.err(Diagnostic::new("type_mismatch", format!("`-` needs an int, double or duration, found {t}"), e.span)),
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(e, *op, l, r),
            ExprKind::Cond(c, t, f) => {
                let (ci, ct) = self.check(c);
                if !matches!(ct, Type::Bool | Type::Dyn) {
                    self.soft(Diagnostic::new("type_mismatch", format!("the condition of `? :` must be a bool, found {ct}"), c.span));
                }
                let (ti, tt) = self.check(t);
                let (fi, ft) = self.check(f);
                let ty = if tt == ft || ft == Type::Null {
                    tt
                } else if tt == Type::Null {
                    ft
                } else if tt == Type::Dyn || ft == Type::Dyn || self.dynamic {
                    Type::Dyn
                } else {
                    return self.err(Diagnostic::new("type_mismatch", format!("the branches of `? :` have different types: {tt} and {ft}"), e.span));
                };
                (Ir::Cond(Box::new(ci), Box::new(ti), Box::new(fi)), ty)
            }
            ExprKind::Index(x, i) => {
                let (xi, xt) = self.check(x);
                let (ii, it) = self.check(i);
                match xt {
                    Type::List(el) if matches!(it, Type::Int | Type::UInt | Type::Dyn) => (Ir::Index(Box::new(xi), Box::new(ii)), *el),
                    Type::Map(kt, vt) if kt.accepts(&it) || it.accepts(&kt) || (kt.is_numeric() && it.is_numeric()) => (Ir::Index(Box::new(xi), Box::new(ii)), *vt),
                    Type::Dyn => (Ir::Index(Box::new(xi), Box::new(ii)), Type::Dyn),
                    Type::List(_) => self.err(Diagnostic::new("type_mismatch", format!("a list index must be an int, found {it}"), i.span)),
                    t => self.err(Diagnostic::new("type_mismatch", format!("{t} cannot be indexed"), x.span)),
                }
            }
            ExprKind::Call { target, name, args } => self.call(e, target.as_deref(), name, args),
        }
    }

    /// A dotted name: a declared variable.
    fn name(&mut self, e: &Expr) -> (Ir, Type) {
        let Some(name) = e.dotted().filter(|n| {
            self.env.lookup(n).is_some()
                || !matches!(&e.kind, ExprKind::Member(t, _) if self.map_typed(t))
        }) else {
            // `m.key` on a map value selects the key.
            if let ExprKind::Member(t, field) = &e.kind {
                let (ti, tt) = self.check(t);
                return match tt {
                    Type::Map(_, vt) => (
                        Ir::Index(Box::new(ti), Box::new(Ir::Const(Val::str(field)))),
                        *vt,
                    ),
                    Type::Dyn => (
                        Ir::Index(Box::new(ti), Box::new(Ir::Const(Val::str(field)))),
                        Type::Dyn,
                    ),
                    t => self.err(Diagnostic::new(
                        "unsupported",
                        format!("`.{field}` on a {t}: field access is for declared names and maps"),
                        e.span,
                    )),
                };
            }
            return self.err(Diagnostic::new(
                "unsupported",
                "field access is only supported on declared names such as `event.amount`".into(),
                e.span,
            ));
        };
        // Type denotations (`int`, `google.protobuf.Timestamp`) where no variable has that name.
        if self.env.lookup(&name).is_none() && TYPE_NAMES.contains(&name.as_str()) {
            return (Ir::Const(Val::Type(Arc::from(name.as_str()))), Type::TypeT);
        }
        match self.env.lookup(&name) {
            Some((i, t)) => {
                self.reads.push(i);
                (Ir::Var(i, Arc::from(name.as_str())), t.clone())
            }
            None => {
                let hint = did_you_mean(&name, self.env.var_names());
                let prefix_hint = if hint.is_empty() && !name.contains('.') {
                    "names are qualified: `event.<field>`, `features.<name>`".to_string()
                } else {
                    hint
                };
                self.err(
                    Diagnostic::new("unknown_name", format!("unknown name `{name}`"), e.span)
                        .with_hint(prefix_hint),
                )
            }
        }
    }

    fn binary(&mut self, e: &Expr, op: BinOp, l: &Expr, r: &Expr) -> (Ir, Type) {
        // `x in @list`
        if op == BinOp::In {
            if let ExprKind::ListRef(name) = &r.kind {
                let (li, lt) = self.check(l);
                return match self.env.lookup_list(name) {
                    Some((idx, et)) => {
                        if !(et.accepts(&lt) || (et.is_numeric() && lt.is_numeric())) {
                            self.diags.push(Diagnostic::new(
                                "type_mismatch",
                                format!("`@{name}` holds {et} values, the left side is {lt}"),
                                l.span,
                            ));
                        }
                        (Ir::InList(Box::new(li), idx), Type::Bool)
                    }
                    None => {
                        let hint = did_you_mean(name, self.env.list_names());
                        self.err(
                            Diagnostic::new(
                                "unknown_list",
                                format!("unknown value list `@{name}`"),
                                r.span,
                            )
                            .with_hint(hint),
                        )
                    }
                };
            }
        }
        // `x == null` / `x != null` on a variable is a presence test.
        if matches!(op, BinOp::Eq | BinOp::Ne) {
            let (var, other) = match (&l.kind, &r.kind) {
                (_, ExprKind::Lit(Lit::Null)) => (l, true),
                (ExprKind::Lit(Lit::Null), _) => (r, true),
                _ => (l, false),
            };
            if other {
                if let Some((i, _)) = var.dotted().and_then(|n| self.env.lookup(&n)) {
                    self.reads.push(i);
                    return (Ir::Present(i, op == BinOp::Ne), Type::Bool);
                }
            }
        }
        let (li, lt) = self.check(l);
        let (ri, rt) = self.check(r);
        let ty = match op {
            BinOp::And | BinOp::Or => {
                for (t, s) in [(&lt, l.span), (&rt, r.span)] {
                    if !matches!(t, Type::Bool | Type::Dyn) {
                        self.soft(Diagnostic::new(
                            "type_mismatch",
                            format!("`{}` needs bools, found {t}", op.symbol()),
                            s,
                        ));
                    }
                }
                let ir = if op == BinOp::And {
                    Ir::And(Box::new(li), Box::new(ri))
                } else {
                    Ir::Or(Box::new(li), Box::new(ri))
                };
                return (ir, Type::Bool);
            }
            BinOp::Eq | BinOp::Ne => {
                if !comparable(&lt, &rt) {
                    return self.mismatch(e, op, &lt, &rt);
                }
                Type::Bool
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let ok = (lt.is_numeric() && rt.is_numeric())
                    || (lt == rt
                        && matches!(
                            lt,
                            Type::String
                                | Type::Bytes
                                | Type::Bool
                                | Type::Timestamp
                                | Type::Duration
                        ))
                    || lt == Type::Dyn
                    || rt == Type::Dyn;
                if !ok {
                    return self.mismatch(e, op, &lt, &rt);
                }
                Type::Bool
            }
            BinOp::In => match &rt {
                Type::List(el) if comparable(el, &lt) => Type::Bool,
                Type::Map(kt, _) if comparable(kt, &lt) => Type::Bool,
                Type::Dyn => Type::Bool,
                _ => return self.mismatch(e, op, &lt, &rt),
            },
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                match arith_type(op, &lt, &rt) {
                    Some(t) => t,
                    None => return self.mismatch(e, op, &lt, &rt),
                }
            }
        };
        (Ir::Binary(op, Box::new(li), Box::new(ri)), ty)
    }

    fn mismatch(&mut self, e: &Expr, op: BinOp, lt: &Type, rt: &Type) -> (Ir, Type) {
        if self.dynamic {
            // Re-check the operands to build the operation; the evaluator reports what does not fit.
            if let ExprKind::Binary(_, l, r) = &e.kind {
                let (li, _) = self.check(l);
                let (ri, _) = self.check(r);
                return (Ir::Binary(op, Box::new(li), Box::new(ri)), Type::Dyn);
            }
        }
        let hint = if lt.is_numeric() && rt.is_numeric() {
            "CEL does not mix int, uint and double in arithmetic: convert one side, e.g. `double(x)`"
        } else if matches!((lt, rt), (Type::String, t) | (t, Type::String) if t.is_numeric()) {
            "convert with `string(x)` or `int(s)` / `double(s)`"
        } else {
            ""
        };
        self.err(
            Diagnostic::new(
                "type_mismatch",
                format!("`{}` cannot combine {lt} and {rt}", op.symbol()),
                e.span,
            )
            .with_hint(hint),
        )
    }

    fn call(&mut self, e: &Expr, target: Option<&Expr>, name: &str, args: &[Expr]) -> (Ir, Type) {
        if name == "type" && target.is_none() && args.len() == 1 {
            let (ir, _) = self.check(&args[0]);
            return (Ir::TypeOf(Box::new(ir)), Type::TypeT);
        }
        if name == "dyn" && target.is_none() && args.len() == 1 {
            let (ir, _) = self.check(&args[0]);
            return (ir, Type::Dyn);
        }
        if let (Some(t), Some(kind)) = (target, macro_kind(name, args.len())) {
            return self.list_macro(e, t, kind, args);
        }
        if name == "has" && target.is_none() {
            return match args {
                [a] => match self.check(a) {
                    (Ir::Var(i, _), _) => (Ir::Present(i, true), Type::Bool),
                    (Ir::Index(m, k), _) => (Ir::Binary(BinOp::In, k, m), Type::Bool),
                    _ => self.err(Diagnostic::new(
                        "type_mismatch",
                        "`has` takes a field, e.g. `has(event.email)`".into(),
                        a.span,
                    )),
                },
                _ => self.err(Diagnostic::new(
                    "wrong_arity",
                    format!("`has` takes 1 argument, found {}", args.len()),
                    e.span,
                )),
            };
        }
        let mut irs = Vec::new();
        let mut tys = Vec::new();
        if let Some(t) = target {
            let (i, ty) = self.check(t);
            irs.push(i);
            tys.push(ty);
        }
        for a in args {
            let (i, ty) = self.check(a);
            irs.push(i);
            tys.push(ty);
        }
        let method = target.is_some();
        let named: Vec<(usize, &crate::functions::FunctionDef)> = self
            .env
            .functions
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name == name && f.method == method)
            .collect();
        if named.is_empty() {
            let other_style = self.env.functions.iter().any(|f| f.name == name);
            let hint = if other_style {
                if method {
                    format!("call it as `{name}(x, …)`")
                } else {
                    format!("call it as a method: `x.{name}(…)`")
                }
            } else {
                let mut names: Vec<&str> = self.env.functions.iter().map(|f| f.name).collect();
                names.dedup();
                did_you_mean(name, names.into_iter())
            };
            return self.err(
                Diagnostic::new(
                    "unknown_function",
                    format!("unknown function `{name}`"),
                    e.span,
                )
                .with_hint(hint),
            );
        }
        if !named.iter().any(|(_, f)| f.params.len() == tys.len()) {
            let mut arities: Vec<String> = named
                .iter()
                .map(|(_, f)| (f.params.len() - method as usize).to_string())
                .collect();
            arities.dedup();
            return self.err(Diagnostic::new(
                "wrong_arity",
                format!(
                    "`{name}` takes {} argument(s), found {}",
                    arities.join(" or "),
                    tys.len() - method as usize
                ),
                e.span,
            ));
        }
        for (idx, f) in &named {
            if f.params.len() == tys.len()
                && f.params.iter().zip(&tys).all(|(p, t)| {
                    p.accepts(t) || (matches!(p, Type::List(_)) && matches!(t, Type::List(_)))
                })
            {
                return (Ir::Call(*idx, irs), f.ret.clone());
            }
        }
        let found: Vec<String> = tys.iter().map(|t| t.to_string()).collect();
        let wants: Vec<String> = named
            .iter()
            .map(|(_, f)| {
                format!(
                    "({})",
                    f.params
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        self.err(
            Diagnostic::new(
                "type_mismatch",
                format!("no overload of `{name}` takes ({})", found.join(", ")),
                e.span,
            )
            .with_hint(format!("`{name}` takes {}", wants.join(" or "))),
        )
    }
}

impl Checker<'_> {
    /// Whether `e` is (statically) a map: a map literal, or a declared map variable.
    fn map_typed(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Map(_) => true,
            ExprKind::Member(t, _) => self.map_typed(t),
            _ => e
                .dotted()
                .and_then(|n| self.env.lookup(&n))
                .is_some_and(|(_, t)| matches!(t, Type::Map(..) | Type::Dyn)),
        }
    }
}

fn macro_kind(name: &str, nargs: usize) -> Option<Macro> {
    Some(match (name, nargs) {
        ("all", 2) => Macro::All,
        ("exists", 2) => Macro::Exists,
        ("exists_one", 2) => Macro::ExistsOne,
        ("map", 2 | 3) => Macro::Map,
        ("filter", 2) => Macro::Filter,
        _ => return None,
    })
}

impl Checker<'_> {
    fn list_macro(&mut self, e: &Expr, target: &Expr, kind: Macro, args: &[Expr]) -> (Ir, Type) {
        let ExprKind::Ident(var) = &args[0].kind else {
            return self.err(Diagnostic::new(
                "type_mismatch",
                "the first argument of a list macro is the element's name, e.g. `xs.all(x, x > 0)`"
                    .into(),
                args[0].span,
            ));
        };
        let (li, lt) = self.check(target);
        let elem = match lt {
            Type::List(el) => *el,
            Type::Map(kt, _) => *kt,
            Type::Dyn => Type::Dyn,
            t => {
                return self.err(Diagnostic::new(
                    "type_mismatch",
                    format!("list macros need a list, found {t}"),
                    target.span,
                ))
            }
        };
        // The element is a new variable, visible only inside the macro's arguments.
        let mut scoped = self.env.clone();
        let slot = scoped.vars().len();
        if scoped.lookup(var).is_some() {
            return self.err(Diagnostic::new(
                "unsupported",
                format!("`{var}` is already a name here; pick another element name"),
                args[0].span,
            ));
        }
        scoped.var(var, elem.clone());
        let mut inner = Checker {
            env: &scoped,
            dynamic: self.dynamic,
            diags: Vec::new(),
            reads: Vec::new(),
        };
        let mut parts: Vec<(Ir, Type)> = args[1..].iter().map(|a| inner.check(a)).collect();
        self.diags.append(&mut inner.diags);
        self.reads
            .extend(inner.reads.into_iter().filter(|&r| r != slot));
        let (body, bt) = parts.pop().unwrap_or((Ir::Const(Val::Null), Type::Dyn));
        let filter = parts.pop().map(|(f, ft)| {
            if !matches!(ft, Type::Bool | Type::Dyn) {
                self.soft(Diagnostic::new(
                    "type_mismatch",
                    format!("a macro predicate must be a bool, found {ft}"),
                    e.span,
                ));
            }
            Box::new(f)
        });
        let ty = match kind {
            Macro::All | Macro::Exists | Macro::ExistsOne | Macro::Filter => {
                if !matches!(bt, Type::Bool | Type::Dyn) {
                    self.soft(Diagnostic::new(
                        "type_mismatch",
                        format!("a macro predicate must be a bool, found {bt}"),
                        e.span,
                    ));
                }
                if kind == Macro::Filter {
                    Type::List(Box::new(elem))
                } else {
                    Type::Bool
                }
            }
            Macro::Map => Type::List(Box::new(bt)),
        };
        (
            Ir::Macro {
                kind,
                list: Box::new(li),
                var: slot,
                filter,
                body: Box::new(body),
            },
            ty,
        )
    }
}

impl Checker<'_> {
    /// Well-known protobuf wrappers construct their plain value (`google.protobuf.Int64Value{value: 3}`
    /// is `3`, `{}` the type's zero); `google.protobuf.Value{}` is null. Other messages are unsupported.
    fn message(&mut self, e: &Expr, name: &str, fields: &[(String, Expr)]) -> (Ir, Type) {
        let short = name.strip_prefix("google.protobuf.").unwrap_or("");
        let (zero, ty) = match short {
            "BoolValue" => (Val::Bool(false), Type::Bool),
            "BytesValue" => (Val::Bytes(Vec::new().into()), Type::Bytes),
            "DoubleValue" | "FloatValue" => (Val::Double(0.0), Type::Double),
            "Int32Value" | "Int64Value" => (Val::Int(0), Type::Int),
            "UInt32Value" | "UInt64Value" => (Val::UInt(0), Type::UInt),
            "StringValue" => (Val::str(""), Type::String),
            "Value" if fields.is_empty() => return (Ir::Const(Val::Null), Type::Null),
            _ => {
                return self.err(Diagnostic::new(
                    "unsupported",
                    format!("protobuf message `{name}` is not supported in Argus rules"),
                    e.span,
                ))
            }
        };
        match fields {
            [] => (Ir::Const(zero), ty),
            [(f, v)] if f == "value" => {
                let (ir, vt) = self.check(v);
                if !(ty.accepts(&vt) || (ty.is_numeric() && vt.is_numeric())) {
                    self.soft(Diagnostic::new(
                        "type_mismatch",
                        format!("`{name}` holds {ty}, found {vt}"),
                        v.span,
                    ));
                }
                // A numeric value of another kind is converted, so the result has the wrapper's type.
                if ty.is_numeric() && vt.is_numeric() && vt != ty {
                    let conv = match ty {
                        Type::Double => "double",
                        Type::UInt => "uint",
                        _ => "int",
                    };
                    if let Some(f) =
                        self.env.functions.iter().position(|f| {
                            f.name == conv && !f.method && f.params.first() == Some(&vt)
                        })
                    {
                        return (Ir::Call(f, vec![ir]), ty);
                    }
                }
                (ir, ty)
            }
            _ => self.err(Diagnostic::new(
                "unsupported",
                format!("`{name}` has one field, `value`"),
                e.span,
            )),
        }
    }
}

/// CEL type names usable as values.
const TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "google.protobuf.Timestamp",
    "google.protobuf.Duration",
];

fn comparable(a: &Type, b: &Type) -> bool {
    a.accepts(b) || b.accepts(a) || (a.is_numeric() && b.is_numeric())
}

fn arith_type(op: BinOp, l: &Type, r: &Type) -> Option<Type> {
    use Type::*;
    Some(match (op, l, r) {
        (_, Dyn, _) | (_, _, Dyn) => Dyn,
        (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem, Int, Int) => Int,
        (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem, UInt, UInt) => UInt,
        (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div, Double, Double) => Double,
        (BinOp::Add, String, String) => String,
        (BinOp::Add, Bytes, Bytes) => Bytes,
        (BinOp::Add, List(a), List(b)) => List(Box::new(if a == b { (**a).clone() } else { Dyn })),
        (BinOp::Add, Timestamp, Duration)
        | (BinOp::Add, Duration, Timestamp)
        | (BinOp::Sub, Timestamp, Duration) => Timestamp,
        (BinOp::Sub, Timestamp, Timestamp) | (BinOp::Add | BinOp::Sub, Duration, Duration) => {
            Duration
        }
        _ => return None,
    })
}
