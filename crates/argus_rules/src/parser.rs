//! A recursive-descent parser with CEL's precedence:
//! `?:` < `||` < `&&` < relations (`== != < <= > >= in`) < `+ -` < `* / %` < unary `! -` < member, index, call.
//! It never panics and reports the first syntax error with its span; nesting is limited.

use crate::ast::{BinOp, Expr, ExprKind, Lit, UnOp};
use crate::diag::Diagnostic;
use crate::lexer::{lex, Tok, Token};
use crate::span::Span;

/// Deepest nesting accepted (CEL requires at least 12 levels of parentheses; 100 is plenty).
pub const MAX_DEPTH: usize = 100;

/// Most operators, member accesses, indexes and calls in one expression. Chains (`a || b || …`) build
/// trees as deep as they are long, and checking, compiling and evaluating recurse over them: this bounds
/// that depth too.
pub const MAX_NODES: usize = 300;

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    nodes: usize,
}

/// Parses one expression.
pub fn parse(src: &str) -> Result<Expr, Diagnostic> {
    let mut p = Parser {
        toks: lex(src),
        pos: 0,
        depth: 0,
        nodes: 0,
    };
    let e = p.expr()?;
    match &p.peek().tok {
        Tok::Eof => Ok(e),
        _ => Err(p.unexpected("end of expression")),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, want: &str) -> Diagnostic {
        let t = self.peek();
        match &t.tok {
            Tok::Error(m) => Diagnostic::new("syntax_error", m.clone(), t.span),
            Tok::Eof => Diagnostic::new(
                "syntax_error",
                format!("expected {want}, found the end of the expression"),
                t.span,
            ),
            other => Diagnostic::new(
                "syntax_error",
                format!("expected {want}, found {}", describe(other)),
                t.span,
            ),
        }
    }

    fn expect(&mut self, tok: Tok, want: &str) -> Result<Span, Diagnostic> {
        if self.peek().tok == tok {
            Ok(self.bump().span)
        } else {
            Err(self.unexpected(want))
        }
    }

    /// Counts one more operator node.
    fn node(&mut self) -> Result<(), Diagnostic> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Diagnostic::new(
                "too_deep",
                format!(
                    "expression has more than {MAX_NODES} operators; split it into several rules"
                ),
                self.peek().span,
            ));
        }
        Ok(())
    }

    fn enter(&mut self) -> Result<(), Diagnostic> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Diagnostic::new(
                "too_deep",
                format!("expression nests deeper than {MAX_DEPTH} levels"),
                self.peek().span,
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, Diagnostic> {
        self.enter()?;
        let c = self.or()?;
        let r = if self.peek().tok == Tok::Question {
            self.bump();
            let t = self.expr()?;
            self.expect(Tok::Colon, "`:` of the conditional")?;
            let f = self.expr()?;
            let span = c.span.to(f.span);
            Expr {
                kind: ExprKind::Cond(Box::new(c), Box::new(t), Box::new(f)),
                span,
            }
        } else {
            c
        };
        self.depth -= 1;
        Ok(r)
    }

    fn or(&mut self) -> Result<Expr, Diagnostic> {
        let mut l = self.and()?;
        while self.peek().tok == Tok::OrOr {
            self.bump();
            self.node()?;
            let r = self.and()?;
            l = bin(BinOp::Or, l, r);
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, Diagnostic> {
        let mut l = self.relation()?;
        while self.peek().tok == Tok::AndAnd {
            self.bump();
            self.node()?;
            let r = self.relation()?;
            l = bin(BinOp::And, l, r);
        }
        Ok(l)
    }

    fn relation(&mut self) -> Result<Expr, Diagnostic> {
        let mut l = self.addition()?;
        loop {
            let op = match self.peek().tok {
                Tok::EqEq => BinOp::Eq,
                Tok::NotEq => BinOp::Ne,
                Tok::Lt => BinOp::Lt,
                Tok::Le => BinOp::Le,
                Tok::Gt => BinOp::Gt,
                Tok::Ge => BinOp::Ge,
                Tok::In => BinOp::In,
                _ => return Ok(l),
            };
            self.bump();
            self.node()?;
            let r = self.addition()?;
            l = bin(op, l, r);
        }
    }

    fn addition(&mut self) -> Result<Expr, Diagnostic> {
        let mut l = self.multiplication()?;
        loop {
            let op = match self.peek().tok {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(l),
            };
            self.bump();
            self.node()?;
            let r = self.multiplication()?;
            l = bin(op, l, r);
        }
    }

    fn multiplication(&mut self) -> Result<Expr, Diagnostic> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::Percent => BinOp::Rem,
                _ => return Ok(l),
            };
            self.bump();
            self.node()?;
            let r = self.unary()?;
            l = bin(op, l, r);
        }
    }

    fn unary(&mut self) -> Result<Expr, Diagnostic> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Bang | Tok::Minus => {
                self.bump();
                self.enter()?;
                // `-9223372036854775808` is the one literal that only exists negated.
                if t.tok == Tok::Minus {
                    if let Tok::IntMinAbs = self.peek().tok {
                        if self.toks.get(self.pos + 1).is_some_and(|n| {
                            !matches!(n.tok, Tok::Dot | Tok::LBracket | Tok::LParen)
                        }) {
                            let s = self.bump().span;
                            self.depth -= 1;
                            return Ok(Expr {
                                kind: ExprKind::Lit(Lit::Int(i64::MIN)),
                                span: t.span.to(s),
                            });
                        }
                    }
                }
                let e = self.unary()?;
                self.depth -= 1;
                let op = if t.tok == Tok::Bang {
                    UnOp::Not
                } else {
                    UnOp::Neg
                };
                let span = t.span.to(e.span);
                Ok(Expr {
                    kind: ExprKind::Unary(op, Box::new(e)),
                    span,
                })
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Expr, Diagnostic> {
        let mut e = self.primary()?;
        // `Name{…}` constructs a message.
        if self.peek().tok == Tok::LBrace {
            if let Some(name) = e.dotted() {
                return self.message(name, e.span);
            }
        }
        loop {
            if matches!(self.peek().tok, Tok::Dot | Tok::LBracket) {
                self.node()?;
            }
            match self.peek().tok {
                Tok::LBrace if e.dotted().is_some() => {
                    let name = e.dotted().unwrap_or_default();
                    return self.message(name, e.span);
                }
                Tok::Dot => {
                    self.bump();
                    let Tok::Ident(name) = self.peek().tok.clone() else {
                        return Err(self.unexpected("a field or method name after `.`"));
                    };
                    let t = self.bump();
                    if self.peek().tok == Tok::LParen {
                        let (args, end) = self.args()?;
                        let span = e.span.to(end);
                        e = Expr {
                            kind: ExprKind::Call {
                                target: Some(Box::new(e)),
                                name,
                                args,
                            },
                            span,
                        };
                    } else {
                        let span = e.span.to(t.span);
                        e = Expr {
                            kind: ExprKind::Member(Box::new(e), name),
                            span,
                        };
                    }
                }
                Tok::LBracket => {
                    self.bump();
                    self.enter()?;
                    let i = self.expr()?;
                    self.depth -= 1;
                    let end = self.expect(Tok::RBracket, "`]`")?;
                    let span = e.span.to(end);
                    e = Expr {
                        kind: ExprKind::Index(Box::new(e), Box::new(i)),
                        span,
                    };
                }
                _ => return Ok(e),
            }
        }
    }

    fn message(&mut self, name: String, start: Span) -> Result<Expr, Diagnostic> {
        self.expect(Tok::LBrace, "`{`")?;
        self.enter()?;
        let mut fields = Vec::new();
        while self.peek().tok != Tok::RBrace {
            let Tok::Ident(f) = self.peek().tok.clone() else {
                return Err(self.unexpected("a field name"));
            };
            self.bump();
            self.expect(Tok::Colon, "`:` after a field name")?;
            fields.push((f, self.expr()?));
            match self.peek().tok {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RBrace => {}
                _ => return Err(self.unexpected("`,` or `}`")),
            }
        }
        let end = self.expect(Tok::RBrace, "`}`")?;
        self.depth -= 1;
        Ok(Expr {
            kind: ExprKind::Message(name, fields),
            span: start.to(end),
        })
    }

    fn args(&mut self) -> Result<(Vec<Expr>, Span), Diagnostic> {
        self.expect(Tok::LParen, "`(`")?;
        let mut args = Vec::new();
        if self.peek().tok == Tok::RParen {
            return Ok((args, self.bump().span));
        }
        loop {
            args.push(self.expr()?);
            match self.peek().tok {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => return Ok((args, self.bump().span)),
                _ => return Err(self.unexpected("`,` or `)`")),
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, Diagnostic> {
        let t = self.peek().clone();
        let lit = |l: Lit| Expr {
            kind: ExprKind::Lit(l),
            span: t.span,
        };
        match t.tok {
            Tok::Int(i) => {
                self.bump();
                Ok(lit(Lit::Int(i)))
            }
            Tok::UInt(u) => {
                self.bump();
                Ok(lit(Lit::UInt(u)))
            }
            Tok::IntMinAbs => Err(Diagnostic::new(
                "syntax_error",
                "integer literal out of range (the largest int is 9223372036854775807)".into(),
                t.span,
            )),
            Tok::Double(d) => {
                self.bump();
                Ok(lit(Lit::Double(d)))
            }
            Tok::Str(ref s) => {
                self.bump();
                Ok(lit(Lit::Str(s.clone())))
            }
            Tok::Bytes(ref v) => {
                self.bump();
                Ok(lit(Lit::Bytes(v.clone())))
            }
            Tok::True => {
                self.bump();
                Ok(lit(Lit::Bool(true)))
            }
            Tok::False => {
                self.bump();
                Ok(lit(Lit::Bool(false)))
            }
            Tok::Null => {
                self.bump();
                Ok(lit(Lit::Null))
            }
            Tok::ListRef(ref n) => {
                self.bump();
                Ok(Expr {
                    kind: ExprKind::ListRef(n.clone()),
                    span: t.span,
                })
            }
            Tok::Ident(ref n) => {
                self.bump();
                if self.peek().tok == Tok::LParen {
                    let (args, end) = self.args()?;
                    return Ok(Expr {
                        kind: ExprKind::Call {
                            target: None,
                            name: n.clone(),
                            args,
                        },
                        span: t.span.to(end),
                    });
                }
                Ok(Expr {
                    kind: ExprKind::Ident(n.clone()),
                    span: t.span,
                })
            }
            Tok::LParen => {
                self.bump();
                let e = self.expr()?;
                self.expect(Tok::RParen, "`)`")?;
                Ok(e)
            }
            Tok::LBracket => {
                self.bump();
                self.enter()?;
                let mut items = Vec::new();
                if self.peek().tok != Tok::RBracket {
                    loop {
                        items.push(self.expr()?);
                        match self.peek().tok {
                            Tok::Comma => {
                                self.bump();
                                if self.peek().tok == Tok::RBracket {
                                    break;
                                }
                            }
                            Tok::RBracket => break,
                            _ => return Err(self.unexpected("`,` or `]`")),
                        }
                    }
                }
                let end = self.expect(Tok::RBracket, "`]`")?;
                self.depth -= 1;
                Ok(Expr {
                    kind: ExprKind::List(items),
                    span: t.span.to(end),
                })
            }
            Tok::LBrace => {
                self.bump();
                self.enter()?;
                let mut entries = Vec::new();
                if self.peek().tok != Tok::RBrace {
                    loop {
                        let k = self.expr()?;
                        self.expect(Tok::Colon, "`:` between a map key and its value")?;
                        let v = self.expr()?;
                        entries.push((k, v));
                        match self.peek().tok {
                            Tok::Comma => {
                                self.bump();
                                if self.peek().tok == Tok::RBrace {
                                    break;
                                }
                            }
                            Tok::RBrace => break,
                            _ => return Err(self.unexpected("`,` or `}`")),
                        }
                    }
                }
                let end = self.expect(Tok::RBrace, "`}`")?;
                self.depth -= 1;
                Ok(Expr {
                    kind: ExprKind::Map(entries),
                    span: t.span.to(end),
                })
            }
            _ => Err(self.unexpected("a value, a name or `(`")),
        }
    }
}

fn bin(op: BinOp, l: Expr, r: Expr) -> Expr {
    let span = l.span.to(r.span);
    Expr {
        kind: ExprKind::Binary(op, Box::new(l), Box::new(r)),
        span,
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Int(i) => format!("the number `{i}`"),
        Tok::UInt(u) => format!("the number `{u}u`"),
        Tok::IntMinAbs => "the number `9223372036854775808`".into(),
        Tok::Double(d) => format!("the number `{d}`"),
        Tok::Str(_) => "a string".into(),
        Tok::Bytes(_) => "a byte string".into(),
        Tok::Ident(n) => format!("`{n}`"),
        Tok::ListRef(n) => format!("`@{n}`"),
        Tok::True => "`true`".into(),
        Tok::False => "`false`".into(),
        Tok::Null => "`null`".into(),
        Tok::In => "`in`".into(),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::LBrace => "`{`".into(),
        Tok::RBrace => "`}`".into(),
        Tok::Dot => "`.`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Question => "`?`".into(),
        Tok::Colon => "`:`".into(),
        Tok::Plus => "`+`".into(),
        Tok::Minus => "`-`".into(),
        Tok::Star => "`*`".into(),
        Tok::Slash => "`/`".into(),
        Tok::Percent => "`%`".into(),
        Tok::Bang => "`!`".into(),
        Tok::EqEq => "`==`".into(),
        Tok::NotEq => "`!=`".into(),
        Tok::Lt => "`<`".into(),
        Tok::Le => "`<=`".into(),
        Tok::Gt => "`>`".into(),
        Tok::Ge => "`>=`".into(),
        Tok::AndAnd => "`&&`".into(),
        Tok::OrOr => "`||`".into(),
        Tok::Error(m) => m.clone(),
        Tok::Eof => "the end".into(),
    }
}
