//! Diagnostics: a stable code, a message, a source span and an optional hint, rendered like a compiler's.

use crate::span::Span;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable, machine-readable: `syntax_error`, `unknown_name`, `type_mismatch`, `unknown_function`,
    /// `wrong_arity`, `unknown_list`, `too_deep`, `unsupported`, `not_boolean`.
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(code: &'static str, message: String, span: Span) -> Self {
        Diagnostic {
            code,
            message,
            span,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        let h = hint.into();
        if !h.is_empty() {
            self.hint = Some(h);
        }
        self
    }

    /// Renders against the source it refers to, e.g.
    ///
    /// ```text
    /// error[unknown_name]: unknown name `event.amont`
    ///  --> payments.toml: rule `big_order`, line 1, column 1
    ///   |
    /// 1 | event.amont > 100
    ///   | ^^^^^^^^^^^
    ///   = hint: did you mean `event.amount`?
    /// ```
    pub fn render(&self, source: &str, origin: &str) -> String {
        let mut start = (self.span.start as usize).min(source.len());
        while !source.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (self.span.end as usize).clamp(start, source.len());
        while !source.is_char_boundary(end) {
            end -= 1;
        }
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_no = source[..start].matches('\n').count() + 1;
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line = &source[line_start..line_end];
        let col = source[line_start..start].chars().count() + 1;
        let width = source[start..end.min(line_end)].chars().count().max(1);
        let gutter = line_no.to_string().len();
        let pad = " ".repeat(gutter);
        let mut out = String::new();
        let _ = writeln!(out, "error[{}]: {}", self.code, self.message);
        let _ = writeln!(out, "{pad}--> {origin}, line {line_no}, column {col}");
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line_no} | {line}");
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(width));
        if let Some(h) = &self.hint {
            let _ = writeln!(out, "{pad} = hint: {h}");
        }
        out
    }
}

pub use argus_suggest::did_you_mean;
