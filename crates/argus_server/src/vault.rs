//! The vault (P3.6): clear personal data, encrypted, for a reveal with a reason.
//!
//! The engine only ever sees tokens (HMAC-SHA256 of the normalized value). When a vault key is
//! configured (`ARGUS_VAULT_KEY`, 64 hex digits, or `[server] vault_key_file`), the entry node's
//! decoder hands each personal value it tokenizes to the vault, which keeps it under its token,
//! encrypted with AES-256-GCM (ring's AEAD; a random 96-bit nonce per value, the token as
//! associated data, so a ciphertext cannot be moved to another token). Nothing else stores a clear
//! value: the event log, snapshots, findings, cases and exports hold tokens.
//!
//! File: `<data>/vault/values.log`, records `len: u32 LE | crc32(body): u32 LE | body`, body =
//! `token_len: u16 LE | token | nonce (12) | ciphertext + tag`, the plaintext `kind \0 value`.
//! Appends are not synced one by one: a value written just before a power cut may be lost, and is
//! then stored again the next time an event carries it (the index has no entry for it). A damaged
//! record (bad CRC, cut length) refuses the vault at start, like the log: nothing is silently cut.
//! Erasure rewrites the file without the subject's tokens (temporary file, fsync, rename).

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

pub struct Vault {
    key: LessSafeKey,
    rng: SystemRandom,
    /// Token → nonce and ciphertext.
    index: RwLock<HashMap<String, Vec<u8>>>,
    file: Mutex<std::fs::File>,
    path: PathBuf,
}

/// Parses a vault key: 64 hex digits (32 bytes).
pub fn parse_key(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("a vault key is 64 hex digits (32 bytes; e.g. `openssl rand -hex 32`)".into());
    }
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(k)
}

const NONCE: usize = 12;

/// A token and its value as stored: nonce, ciphertext and tag.
type Sealed = (String, Vec<u8>);

fn encode_record(token: &str, sealed: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(2 + token.len() + sealed.len());
    body.extend_from_slice(&(token.len() as u16).to_le_bytes());
    body.extend_from_slice(token.as_bytes());
    body.extend_from_slice(sealed);
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Every record of a vault file, in order, and the length of its whole records. A damaged last
/// record (an append cut by a crash: appends are not synced) ends the records there; damage before
/// the last record is an error naming it.
fn read_records(bytes: &[u8]) -> Result<(Vec<Sealed>, usize), String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let damaged = |what: &str| format!("the vault file is damaged at byte {at}: {what}");
        if bytes.len() - at < 8 {
            break;
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4])) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap_or([0; 4]));
        let Some(body) = bytes.get(at + 8..(at + 8).saturating_add(len)) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            if at + 8 + len == bytes.len() {
                break;
            }
            return Err(damaged("a record's checksum does not match"));
        }
        let tl = u16::from_le_bytes([
            body.first().copied().unwrap_or(0),
            body.get(1).copied().unwrap_or(0),
        ]) as usize;
        let token = body
            .get(2..2 + tl)
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or_else(|| damaged("a token is unreadable"))?;
        let sealed = body[(2 + tl).min(body.len())..].to_vec();
        if sealed.len() < NONCE + AES_256_GCM.tag_len() {
            return Err(damaged("a value is cut"));
        }
        out.push((token.to_string(), sealed));
        at += 8 + len;
    }
    Ok((out, at))
}

impl Vault {
    /// Opens (or creates) the vault in `<data>/vault/`.
    pub fn open(data_dir: &Path, key: &[u8; 32]) -> Result<Vault, String> {
        let dir = data_dir.join("vault");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        let path = dir.join("values.log");
        let mut bytes = Vec::new();
        if path.exists() {
            std::fs::File::open(&path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
        }
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key).map_err(|_| "the vault key is not usable")?,
        );
        let mut index = HashMap::new();
        let (records, whole) =
            read_records(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        for (token, sealed) in records {
            index.insert(token, sealed);
        }
        if whole < bytes.len() {
            // A torn last append: cut (its value is stored again when an event carries it).
            tracing::warn!(
                "{}: cutting {} bytes of a torn last record",
                path.display(),
                bytes.len() - whole
            );
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(whole as u64).and_then(|_| f.sync_all()))
                .map_err(|e| format!("cutting {}: {e}", path.display()))?;
        }
        let file =
            argus_engine::engine::owner_only(std::fs::OpenOptions::new().create(true).append(true))
                .open(&path)
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
        let v = Vault {
            key,
            rng: SystemRandom::new(),
            index: RwLock::new(index),
            file: Mutex::new(file),
            path,
        };
        // A key other than the one the values were sealed with is refused now, not at a reveal.
        if let Some(token) = v.index.read().ok().and_then(|i| i.keys().next().cloned()) {
            if v.reveal(&token).is_none() {
                return Err(format!(
                    "{}: the vault key does not open the stored values (another key?)",
                    v.path.display()
                ));
            }
        }
        Ok(v)
    }

    /// Keeps `value` (of `kind`) under `token`, once.
    pub fn put(&self, kind: &str, value: &str, token: &str) {
        if self.index.read().is_ok_and(|i| i.contains_key(token)) {
            return;
        }
        let mut nonce = [0u8; NONCE];
        if self.rng.fill(&mut nonce).is_err() {
            tracing::error!("vault: no randomness for a nonce; value not kept");
            return;
        }
        let mut sealed = Vec::with_capacity(kind.len() + 1 + value.len() + 16);
        sealed.extend_from_slice(kind.as_bytes());
        sealed.push(0);
        sealed.extend_from_slice(value.as_bytes());
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(token.as_bytes()),
                &mut sealed,
            )
            .is_err()
        {
            return;
        }
        let mut stored = nonce.to_vec();
        stored.extend_from_slice(&sealed);
        let Ok(mut index) = self.index.write() else {
            return;
        };
        if index.contains_key(token) {
            return;
        }
        let rec = encode_record(token, &stored);
        match self.file.lock() {
            Ok(mut f) => {
                if let Err(e) = f.write_all(&rec) {
                    tracing::error!("vault: writing {}: {e}", self.path.display());
                    return;
                }
            }
            Err(_) => return,
        }
        index.insert(token.to_string(), stored);
    }

    /// The kind and clear value kept under `token`.
    pub fn reveal(&self, token: &str) -> Option<(String, String)> {
        let stored = self.index.read().ok()?.get(token)?.clone();
        let (nonce, sealed) = stored.split_at(NONCE);
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(token.as_bytes()),
                &mut buf,
            )
            .ok()?;
        let s = std::str::from_utf8(plain).ok()?;
        let (kind, value) = s.split_once('\0')?;
        Some((kind.to_string(), value.to_string()))
    }

    /// Whether a value is kept under `token`.
    pub fn contains(&self, token: &str) -> bool {
        self.index.read().is_ok_and(|i| i.contains_key(token))
    }

    /// Removes the values kept under `tokens`: the file is rewritten without them (temporary file,
    /// fsync, rename, directory fsync). The number removed.
    pub fn erase(&self, tokens: &[String]) -> Result<usize, String> {
        let mut index = self.index.write().map_err(|_| "vault lock poisoned")?;
        let mut file = self.file.lock().map_err(|_| "vault lock poisoned")?;
        let removed = tokens.iter().filter(|t| index.contains_key(*t)).count();
        if removed == 0 {
            return Ok(0);
        }
        let tmp = self.path.with_extension("tmp");
        let mut out = Vec::new();
        for (t, s) in index.iter().filter(|(t, _)| !tokens.contains(t)) {
            out.extend_from_slice(&encode_record(t, s));
        }
        let io = |e: std::io::Error| format!("rewriting {}: {e}", self.path.display());
        {
            let mut f = argus_engine::engine::private_file(&tmp).map_err(io)?;
            f.write_all(&out).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(d) = self.path.parent() {
            std::fs::File::open(d)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        *file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        // Only now: a rewrite that failed leaves the values in place, and a repeat erases them.
        for t in tokens {
            index.remove(t);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_sealed_revealed_erased_and_damage_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let key = parse_key(&"ab".repeat(32)).unwrap();
        {
            let v = Vault::open(d.path(), &key).unwrap();
            v.put("email", "ana@example.com", "tk_1");
            v.put("email", "ana@example.com", "tk_1");
            v.put("phone", "+447700900123", "tk_2");
            assert_eq!(
                v.reveal("tk_1"),
                Some(("email".into(), "ana@example.com".into()))
            );
            assert_eq!(v.reveal("tk_9"), None);
        }
        let file = d.path().join("vault/values.log");
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(7).any(|w| w == b"example"),
            "sealed, not clear"
        );
        let v = Vault::open(d.path(), &key).unwrap();
        assert_eq!(v.reveal("tk_2").unwrap().1, "+447700900123");
        assert!(Vault::open(d.path(), &parse_key(&"cd".repeat(32)).unwrap()).is_err());
        assert_eq!(v.erase(&["tk_1".into(), "tk_7".into()]).unwrap(), 1);
        assert_eq!(v.reveal("tk_1"), None);
        v.put("email", "bo@example.com", "tk_3");
        drop(v);
        let v = Vault::open(d.path(), &key).unwrap();
        assert!(!v.contains("tk_1") && v.contains("tk_2") && v.contains("tk_3"));
        drop(v);
        // A torn last record (a crash mid-append) is cut; the others stay.
        let whole = std::fs::read(&file).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(&whole[..20]);
        std::fs::write(&file, &torn).unwrap();
        let v = Vault::open(d.path(), &key).unwrap();
        assert!(v.contains("tk_2") && v.contains("tk_3"));
        drop(v);
        assert_eq!(std::fs::read(&file).unwrap(), whole);
        // Damage before the last record is refused.
        let mut bytes = whole.clone();
        bytes[10] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let e = Vault::open(d.path(), &key).err().unwrap();
        assert!(e.contains("damaged"), "{e}");
        assert!(parse_key("xyz").is_err());
    }
}

/// The shortest reason a reveal accepts (characters, trimmed).
pub const MIN_REASON: usize = 10;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevealBody {
    reason: Option<String>,
}

/// The reason a reveal or an erasure gives: the `Argus-Reason` header, else the body's `reason` (as
/// the audit log reads it); refused when shorter than [`MIN_REASON`].
pub fn reason_given(
    body: Option<&str>,
    headers: &axum::http::HeaderMap,
    what: &str,
) -> Result<String, crate::core::Answer> {
    // As the audit log reads it: the header first, then the body.
    let r = headers
        .get("argus-reason")
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.trim().is_empty())
        .map(str::to_string)
        .or_else(|| body.map(str::to_string))
        .unwrap_or_default();
    let r = r.trim().to_string();
    if r.chars().count() < MIN_REASON {
        return Err(crate::core::error(
            crate::core::Failure::Invalid,
            "reason_required",
            format!(
                "{what} needs a reason of at least {MIN_REASON} characters, in the body's `reason` or the Argus-Reason header (it is audited)"
            ),
        ));
    }
    Ok(r)
}

/// `POST /v1/decisions/{id}/reveal`: the clear personal data of a logged event, for a typed reason.
/// The audit middleware records the request (who, the event, the reason) before this runs, and a
/// reveal whose record cannot be written does not happen.
pub async fn reveal(
    axum::extract::State(st): axum::extract::State<crate::api::AppState>,
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use crate::api::respond;
    use crate::core::{error, ok, Answer, Failure, Request};
    let Ok(axum::extract::Path(id)) = path else {
        return respond(error(
            Failure::Invalid,
            "invalid_path",
            "the event id is invalid",
        ));
    };
    let Some(vault) = &st.vault else {
        return respond(error(
            Failure::NotFound,
            "vault_off",
            "no vault key is configured (ARGUS_VAULT_KEY or [server] vault_key_file): clear values are not kept",
        ));
    };
    let given = if body.iter().all(u8::is_ascii_whitespace) {
        RevealBody { reason: None }
    } else {
        match serde_json::from_slice::<RevealBody>(&body) {
            Ok(b) => b,
            Err(e) => {
                return respond(error(
                    Failure::Invalid,
                    "invalid_body",
                    format!("expected {{\"reason\": \"…\"}}: {e}"),
                ))
            }
        }
    };
    let reason = match reason_given(given.reason.as_deref(), &headers, "a reveal") {
        Ok(r) => r,
        Err(a) => return respond(a),
    };
    let fields = match crate::api::ask(&st, Request::EventFields { id: id.clone() }).await {
        Answer::Done { body, .. } => body,
        other => return respond(other),
    };
    let mut revealed = serde_json::Map::new();
    let mut not_kept = Vec::new();
    if let Some(f) = fields["fields"].as_object() {
        for (name, v) in f {
            let Some(token) = v.as_str().filter(|s| s.starts_with("tk_")) else {
                continue;
            };
            match vault.reveal(token) {
                Some((kind, value)) => {
                    revealed.insert(
                        name.clone(),
                        serde_json::json!({"kind": kind, "token": token, "value": value}),
                    );
                }
                None => not_kept.push(name.clone()),
            }
        }
    }
    crate::metrics::inc(crate::metrics::REVEALS, 1);
    respond(ok(serde_json::json!({
        "id": id,
        "type": fields["type"],
        "reason": reason,
        "revealed": revealed,
        "not_kept": not_kept,
    })))
}
