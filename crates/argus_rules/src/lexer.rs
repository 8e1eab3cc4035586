//! Tokens of the CEL syntax Argus accepts. The lexer never panics: anything it cannot read becomes an
//! `Error` token with a message, and parsing reports it.

use crate::span::Span;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Int(i64),
    UInt(u64),
    /// `9223372036854775808` without `u`: valid only negated, as `i64::MIN`.
    IntMinAbs,
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    Ident(String),
    /// `@name`: a value list.
    ListRef(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Question,
    Colon,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    Error(String),
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub span: Span,
}

/// Reserved words of CEL that cannot be identifiers.
const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

pub fn lex(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let two = |x: u8| b.get(i + 1) == Some(&x);
        let (tok, len) = match c {
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'[' => (Tok::LBracket, 1),
            b']' => (Tok::RBracket, 1),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b',' => (Tok::Comma, 1),
            b'?' => (Tok::Question, 1),
            b':' => (Tok::Colon, 1),
            b'+' => (Tok::Plus, 1),
            b'-' => (Tok::Minus, 1),
            b'*' => (Tok::Star, 1),
            b'/' => (Tok::Slash, 1),
            b'%' => (Tok::Percent, 1),
            b'=' if two(b'=') => (Tok::EqEq, 2),
            b'!' if two(b'=') => (Tok::NotEq, 2),
            b'!' => (Tok::Bang, 1),
            b'<' if two(b'=') => (Tok::Le, 2),
            b'<' => (Tok::Lt, 1),
            b'>' if two(b'=') => (Tok::Ge, 2),
            b'>' => (Tok::Gt, 1),
            b'&' if two(b'&') => (Tok::AndAnd, 2),
            b'|' if two(b'|') => (Tok::OrOr, 2),
            b'=' => (
                Tok::Error("`=` is not an operator; compare with `==`".into()),
                1,
            ),
            b'&' => (Tok::Error("`&` is not an operator; use `&&`".into()), 1),
            b'|' => (Tok::Error("`|` is not an operator; use `||`".into()), 1),
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => number(src, i),
            b'.' => (Tok::Dot, 1),
            b'"' | b'\'' => string(src, i, false, false),
            b'r' | b'R' if matches!(b.get(i + 1), Some(b'"' | b'\'')) => {
                let (t, l) = string(src, i + 1, true, false);
                (t, l + 1)
            }
            b'b' | b'B' if matches!(b.get(i + 1), Some(b'"' | b'\'')) => {
                let (t, l) = string(src, i + 1, false, true);
                (t, l + 1)
            }
            b'b' | b'B' | b'r' | b'R'
                if matches!(b.get(i + 1), Some(b'r' | b'R' | b'b' | b'B'))
                    && !b[i].eq_ignore_ascii_case(&b[i + 1])
                    && matches!(b.get(i + 2), Some(b'"' | b'\'')) =>
            {
                let (t, l) = string(src, i + 2, true, true);
                (t, l + 2)
            }
            b'@' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j == i + 1 {
                    (
                        Tok::Error(
                            "`@` must be followed by a list name, e.g. `@blocked_devices`".into(),
                        ),
                        1,
                    )
                } else {
                    (Tok::ListRef(src[i + 1..j].to_string()), j - i)
                }
            }
            c if c.is_ascii_digit() => number(src, i),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                let w = &src[i..j];
                let t = match w {
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "null" => Tok::Null,
                    "in" => Tok::In,
                    w if RESERVED.contains(&w) => Tok::Error(format!("`{w}` is a reserved word")),
                    w => Tok::Ident(w.to_string()),
                };
                (t, j - i)
            }
            _ => {
                let ch = src[i..].chars().next().map_or(1, char::len_utf8);
                (
                    Tok::Error(format!("unexpected character `{}`", &src[i..i + ch])),
                    ch,
                )
            }
        };
        i += len.max(1);
        // An error token may end inside a multi-byte character: resume at the next character.
        while i < b.len() && !src.is_char_boundary(i) {
            i += 1;
        }
        out.push(Token {
            tok,
            span: Span::new(start, i.min(b.len())),
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        span: Span::new(b.len(), b.len()),
    });
    out
}

fn number(src: &str, i: usize) -> (Tok, usize) {
    let b = src.as_bytes();
    let mut j = i;
    if b[j] == b'0' && matches!(b.get(j + 1), Some(b'x' | b'X')) {
        j += 2;
        let s = j;
        while j < b.len() && b[j].is_ascii_hexdigit() {
            j += 1;
        }
        let unsigned = matches!(b.get(j), Some(b'u' | b'U'));
        let digits = &src[s..j];
        let tok = if unsigned {
            u64::from_str_radix(digits, 16)
                .map(Tok::UInt)
                .unwrap_or_else(|_| Tok::Error("hex literal out of range".into()))
        } else {
            i64::from_str_radix(digits, 16)
                .map(Tok::Int)
                .unwrap_or_else(|_| Tok::Error("hex literal out of range".into()))
        };
        return (tok, j - i + unsigned as usize);
    }
    let mut is_double = false;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j < b.len() && b[j] == b'.' && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
        is_double = true;
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    if j < b.len() && matches!(b[j], b'e' | b'E') {
        let mut k = j + 1;
        if k < b.len() && matches!(b[k], b'+' | b'-') {
            k += 1;
        }
        if k < b.len() && b[k].is_ascii_digit() {
            is_double = true;
            j = k;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
        }
    }
    let text = &src[i..j];
    if is_double {
        return (
            text.parse()
                .map(Tok::Double)
                .unwrap_or_else(|_| Tok::Error("bad number".into())),
            j - i,
        );
    }
    if matches!(b.get(j), Some(b'u' | b'U')) {
        return (
            text.parse()
                .map(Tok::UInt)
                .unwrap_or_else(|_| Tok::Error("unsigned literal out of range".into())),
            j - i + 1,
        );
    }
    // Integers beyond i64 are reported by the parser (so that `-9223372036854775808` works).
    (
        text.parse::<i64>().map(Tok::Int).unwrap_or_else(|_| {
            if text == "9223372036854775808" {
                Tok::IntMinAbs
            } else {
                Tok::Error("integer literal out of range".into())
            }
        }),
        j - i,
    )
}

/// A quoted literal starting at `q`: a string, or with `bytes` a byte string (where `\x..` and octal
/// escapes are raw bytes).
fn string(src: &str, q: usize, raw: bool, bytes: bool) -> (Tok, usize) {
    let b = src.as_bytes();
    let quote = b[q];
    let triple = b.get(q + 1) == Some(&quote) && b.get(q + 2) == Some(&quote);
    let mut j = q + if triple { 3 } else { 1 };
    let mut out = String::new();
    let mut raw_bytes: Vec<u8> = Vec::new();
    // In a byte string, text goes to `raw_bytes` as UTF-8 and byte escapes as themselves.
    let flush = |out: &mut String, raw_bytes: &mut Vec<u8>| {
        raw_bytes.extend_from_slice(out.as_bytes());
        out.clear();
    };
    loop {
        if j >= b.len() {
            return (Tok::Error("unterminated string".into()), j - q);
        }
        if triple {
            if b[j] == quote && b.get(j + 1) == Some(&quote) && b.get(j + 2) == Some(&quote) {
                j += 3;
                break;
            }
        } else if b[j] == quote {
            j += 1;
            break;
        } else if b[j] == b'\n' {
            return (Tok::Error("newline in string".into()), j - q);
        }
        if b[j] == b'\\' && !raw {
            let Some(&e) = b.get(j + 1) else {
                return (Tok::Error("unterminated string".into()), j - q);
            };
            let simple = match e {
                b'n' => Some('\n'),
                b't' => Some('\t'),
                b'r' => Some('\r'),
                b'\\' => Some('\\'),
                b'"' => Some('"'),
                b'\'' => Some('\''),
                b'`' => Some('`'),
                b'?' => Some('?'),
                b'a' => Some('\u{7}'),
                b'b' => Some('\u{8}'),
                b'f' => Some('\u{c}'),
                b'v' => Some('\u{b}'),
                _ => None,
            };
            if let Some(ch) = simple {
                out.push(ch);
                j += 2;
                continue;
            }
            let hex = |s: usize, n: usize| -> Option<u32> {
                src.get(s..s + n)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
            };
            let (code, len) = match e {
                b'x' | b'X' => (hex(j + 2, 2), 4),
                b'u' => (hex(j + 2, 4), 6),
                b'U' => (hex(j + 2, 8), 10),
                b'0'..=b'3' => (
                    src.get(j + 1..j + 4)
                        .filter(|o| o.bytes().all(|c| (b'0'..=b'7').contains(&c)))
                        .and_then(|o| u32::from_str_radix(o, 8).ok()),
                    4,
                ),
                _ => (None, 2),
            };
            if bytes && matches!(e, b'x' | b'X' | b'0'..=b'3') {
                match code {
                    Some(c) if c <= 255 => {
                        flush(&mut out, &mut raw_bytes);
                        raw_bytes.push(c as u8);
                        j += len;
                        continue;
                    }
                    _ => {
                        return (
                            Tok::Error("invalid escape sequence in bytes".into()),
                            (j + len).min(b.len()) - q,
                        )
                    }
                }
            }
            match code.and_then(char::from_u32) {
                Some(ch) => out.push(ch),
                None => {
                    return (
                        Tok::Error("invalid escape sequence in string".into()),
                        (j + len).min(b.len()) - q,
                    )
                }
            }
            j += len;
            continue;
        }
        let ch = src[j..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        j += ch.len_utf8();
    }
    if bytes {
        flush(&mut out, &mut raw_bytes);
        return (Tok::Bytes(raw_bytes), j - q);
    }
    (Tok::Str(out), j - q)
}
