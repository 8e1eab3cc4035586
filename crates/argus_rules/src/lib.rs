//! `argus_rules` — the rule language of Argus.
//!
//! CEL's syntax and semantics for the subset Argus supports (literals, arithmetic, comparison, `&&` `||`
//! `!`, `? :`, `in` over lists and value lists, string functions, `size`, presence tests, timestamps and
//! durations, conversions) plus a standard library of risk functions (one file each in `functions/`).
//! An expression is parsed (with spans), type-checked against an [`Env`] that the host declares
//! (variables with types, value lists), reporting every problem as a [`Diagnostic`], and compiled into a
//! closure over pre-resolved variable slots.
//!
//! This crate stands alone: it knows nothing of events, features, policies, the engine or HTTP.

pub mod ast;
pub mod check;
pub mod compile;
pub mod diag;
pub mod env;
pub mod functions;
pub mod lexer;
pub mod parser;
pub mod span;
pub mod time;
pub mod types;
pub mod value;

pub use diag::Diagnostic;
pub use env::{Activation, Env, ListLookup, NoLists};
pub use types::Type;
pub use value::{EvalError, Val};

/// A checked and compiled expression.
pub struct Program {
    eval: compile::Eval,
    /// The same expression's fast boolean form, for [`Program::eval_bool`].
    cond: Option<compile::FastBool>,
    /// Type of the result.
    pub ty: Type,
    /// Indexes of the variables it reads, deduplicated, in first-use order.
    pub reads: Vec<usize>,
    /// The value, when the expression is a constant (e.g. `false`: a rule that can never fire).
    pub constant: Option<Val>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("ty", &self.ty)
            .field("reads", &self.reads)
            .finish()
    }
}

impl Program {
    pub fn eval(&self, a: &Activation<'_>) -> Result<Val, EvalError> {
        (self.eval)(a)
    }

    /// Evaluates a condition: `Ok(true)` fires; errors (an absent field, overflow…) do not fire.
    pub fn eval_bool(&self, a: &Activation<'_>) -> Result<bool, EvalError> {
        if let Some(b) = self.cond.as_ref().and_then(|c| c(a)) {
            return Ok(b);
        }
        match (self.eval)(a)? {
            Val::Bool(b) => Ok(b),
            o => Err(EvalError::NoOverload(format!(
                "a condition evaluated to {}",
                o.type_name()
            ))),
        }
    }
}

/// Parses, checks and compiles `src` against `env`. All diagnostics are returned at once.
pub fn compile(src: &str, env: &Env) -> Result<Program, Vec<Diagnostic>> {
    compile_with(src, env, false)
}

/// Compiles without static type checking (CEL's "check disabled" mode, used by the conformance runner
/// for the tests that ask for it): names, functions and operand types unknown statically become
/// run-time errors. Policies always use [`compile`].
pub fn compile_dynamic(src: &str, env: &Env) -> Result<Program, Vec<Diagnostic>> {
    compile_with(src, env, true)
}

fn compile_with(src: &str, env: &Env, dynamic: bool) -> Result<Program, Vec<Diagnostic>> {
    let ast = parser::parse(src).map_err(|d| vec![d])?;
    let mut c = check::Checker::new(env);
    c.dynamic = dynamic;
    let (ir, ty) = c.check(&ast);
    if !c.diags.is_empty() {
        return Err(c.diags);
    }
    let mut reads = Vec::new();
    for r in c.reads {
        if !reads.contains(&r) {
            reads.push(r);
        }
    }
    let constant = match &ir {
        check::Ir::Const(v) => Some(v.clone()),
        _ => None,
    };
    // Conditions take the fast boolean form first, and the general evaluator when it declines.
    let cond = (ty == Type::Bool).then(|| compile::fast_bool(ir.clone(), env));
    Ok(Program {
        eval: compile::compile(ir, env),
        cond,
        ty,
        reads,
        constant,
    })
}

/// Like [`compile`], and the result must be a bool (a rule condition).
pub fn compile_condition(src: &str, env: &Env) -> Result<Program, Vec<Diagnostic>> {
    let p = compile(src, env)?;
    if !matches!(p.ty, Type::Bool | Type::Dyn) {
        return Err(vec![Diagnostic::new(
            "not_boolean",
            format!("a condition must be a bool, this is {}", p.ty),
            span::Span::new(0, src.len()),
        )]);
    }
    Ok(p)
}
