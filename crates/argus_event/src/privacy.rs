//! Pseudonymization at ingest: personal data becomes a keyed-hash token (HMAC-SHA256), after the
//! non-identifying attributes that rules need (email domain, card BIN, IP prefix, address city …) are derived.

use crate::schema::{Derivation, FieldType};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::IpAddr;

/// Secret used when none is configured. Deterministic so that replays are reproducible; a production
/// deployment must set its own (`privacy.secret` / `ARGUS_PII_SECRET`), see docs/privacy.md.
pub const DEV_SECRET: &str = "argus-development-secret-change-me";

/// Turns normalized personal data into tokens `tk_<32 hex>`.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<secret>)")
    }
}

impl Pseudonymizer {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length; this cannot fail.
        let mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
        Pseudonymizer { mac }
    }

    /// Token of a value of an entity kind. The kind is part of the MAC input, so the same string as an
    /// email and as a phone gives different tokens.
    pub fn token(&self, kind: &str, normalized: &str) -> String {
        let mut m = self.mac.clone();
        m.update(kind.as_bytes());
        m.update(&[0]);
        m.update(normalized.as_bytes());
        let out = m.finalize().into_bytes();
        let mut s = String::with_capacity(35);
        s.push_str("tk_");
        for b in &out[..16] {
            s.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
            s.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
        }
        s
    }
}

/// A personal-data value as received: a string, or an address object.
#[derive(Debug, Clone, Default)]
pub struct Personal {
    pub text: String,
    pub city: Option<String>,
    pub postcode: Option<String>,
    pub country: Option<String>,
}

/// An email address: one `@`; a local part of 1 to 64 characters without spaces, control characters
/// or quotes; a domain of at least two non-empty labels of letters, digits and hyphens.
pub fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && !local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '@');
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

/// The Luhn (mod 10) check of a card number's digits.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(c.wrapping_sub(b'0'));
        if d > 9 {
            return false;
        }
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// Normalizes a personal-data value so that trivially different spellings give the same token.
/// Returns an error message when the value is not of the declared type.
pub fn normalize(ty: FieldType, p: &Personal) -> Result<String, String> {
    let raw = p.text.trim();
    match ty {
        FieldType::Email => {
            let v = raw.to_lowercase();
            if is_email(&v) {
                Ok(v)
            } else {
                Err("not an email address (the value is not repeated: it is personal data)".into())
            }
        }
        FieldType::Phone => {
            let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
            if digits.len() < 6
                || raw
                    .chars()
                    .any(|c| !(c.is_ascii_digit() || " +-().".contains(c)))
            {
                return Err(
                    "not a phone number (the value is not repeated: it is personal data)".into(),
                );
            }
            Ok(if raw.starts_with('+') {
                format!("+{digits}")
            } else {
                digits
            })
        }
        FieldType::Ip => raw.parse::<IpAddr>().map(|ip| ip.to_string()).map_err(|_| {
            "not an IP address (the value is not repeated: it is personal data)".to_string()
        }),
        FieldType::CardNumber => {
            let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
            if !(12..=19).contains(&digits.len())
                || raw
                    .chars()
                    .any(|c| !(c.is_ascii_digit() || c == ' ' || c == '-'))
            {
                return Err("not a card number (12 to 19 digits)".into());
            }
            if !luhn_valid(&digits) {
                return Err("not a card number (the Luhn check digit does not match)".into());
            }
            Ok(digits)
        }
        FieldType::Address => {
            let mut parts = vec![raw.to_lowercase()];
            for x in [&p.postcode, &p.city, &p.country].into_iter().flatten() {
                parts.push(x.trim().to_lowercase());
            }
            let joined = parts.join("|");
            Ok(joined.split_whitespace().collect::<Vec<_>>().join(" "))
        }
        _ => Ok(raw.to_string()),
    }
}

/// The non-identifying attribute `d` of a normalized value (see [`normalize`]).
pub fn derive(d: Derivation, normalized: &str, p: &Personal) -> Option<String> {
    match d {
        Derivation::EmailDomain => normalized.rsplit_once('@').map(|(_, dom)| dom.to_string()),
        Derivation::CardBin => Some(normalized[..6].to_string()),
        Derivation::CardLast4 => Some(normalized[normalized.len() - 4..].to_string()),
        Derivation::IpPrefix => match normalized.parse::<IpAddr>().ok()? {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                Some(format!("{}.{}.{}.0/24", o[0], o[1], o[2]))
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
            }
        },
        Derivation::PhonePrefix => Some(normalized.chars().take(5).collect()),
        Derivation::AddressCity => p.city.as_ref().map(|c| c.trim().to_lowercase()),
        Derivation::AddressPostcode => p
            .postcode
            .as_ref()
            .map(|c| c.trim().to_uppercase().replace(' ', "")),
        Derivation::AddressCountry => p.country.as_ref().map(|c| c.trim().to_uppercase()),
        // Read by the decoder from its lookup tables.
        Derivation::Lookup { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Personal {
        Personal {
            text: s.into(),
            ..Default::default()
        }
    }

    #[test]
    fn tokens_are_keyed_stable_and_normalized() {
        let p = Pseudonymizer::new(b"k1");
        let a = p.token(
            "email",
            &normalize(FieldType::Email, &text(" Bob@Example.com ")).unwrap(),
        );
        let b = p.token(
            "email",
            &normalize(FieldType::Email, &text("bob@example.com")).unwrap(),
        );
        assert_eq!(a, b);
        assert!(a.starts_with("tk_") && a.len() == 35);
        assert_ne!(
            a,
            Pseudonymizer::new(b"k2").token("email", "bob@example.com")
        );
        assert_ne!(a, p.token("phone", "bob@example.com"));
    }

    #[test]
    fn derivations() {
        let n = normalize(FieldType::CardNumber, &text("4111 1111 1111 1236")).unwrap();
        assert_eq!(
            derive(Derivation::CardBin, &n, &text("")).unwrap(),
            "411111"
        );
        assert_eq!(
            derive(Derivation::CardLast4, &n, &text("")).unwrap(),
            "1236"
        );
        assert!(
            normalize(FieldType::CardNumber, &text("4111 1111 1111 1234")).is_err(),
            "fails the Luhn check"
        );
        assert!(
            normalize(FieldType::Email, &text("a@b")).is_err()
                && normalize(FieldType::Email, &text("a b@c.com")).is_err()
                && normalize(FieldType::Email, &text("x@mail.example.co")).is_ok()
        );
        let ip = normalize(FieldType::Ip, &text("10.1.2.3")).unwrap();
        assert_eq!(
            derive(Derivation::IpPrefix, &ip, &text("")).unwrap(),
            "10.1.2.0/24"
        );
        let e = normalize(FieldType::Email, &text("x@Mail.COM")).unwrap();
        assert_eq!(
            derive(Derivation::EmailDomain, &e, &text("")).unwrap(),
            "mail.com"
        );
        assert!(normalize(FieldType::Email, &text("nope")).is_err());
        assert!(normalize(FieldType::Ip, &text("300.1.1.1")).is_err());
        assert!(normalize(FieldType::CardNumber, &text("12")).is_err());
        assert!(normalize(FieldType::Phone, &text("call me")).is_err());
    }
}
