//! Console sign-in through an OpenID Connect provider (`[server.oidc]`): the authorization code
//! flow with PKCE (RFC 7636), `state` bound to the browser by a cookie, and `nonce` bound to the ID
//! token.
//!
//! 1. `GET /v1/session/oidc` redirects the browser to the provider's authorization endpoint, with a
//!    fresh `state`, `nonce` and PKCE challenge (kept here for ten minutes, single use).
//! 2. The provider signs the user in and redirects back to `GET /v1/session/oidc/callback` with a
//!    code. The server exchanges it at the token endpoint (client secret, PKCE verifier), verifies the
//!    ID token (signature by the provider's published keys, issuer, audience, expiry, nonce; `jsonwebtoken`),
//!    merges the user-info claims when the provider has that endpoint, maps the role claim to an
//!    Argus role, and opens a console session like a password sign-in.
//!
//! The provider's metadata and keys are fetched when first needed (the provider may start after
//! Argus); the keys again when a token names a key not seen yet (key rotation).

use crate::api::{respond, AppState};
use crate::core::{error, Failure};
use crate::outbound;
use crate::settings::OidcConfig;
use argus_cases::CaseError;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a sign-in may take at the provider.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// Sign-ins in progress at most (older ones are dropped first).
const MAX_PENDING: usize = 10_000;
/// Requests to the provider: deadline and largest answer.
const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ANSWER: usize = 1 << 20;
/// The cookie that binds a sign-in's `state` to the browser that began it.
const STATE_COOKIE: &str = "argus_oidc_state";
/// Clock skew allowed on the ID token's times.
const LEEWAY_S: u64 = 60;

/// What the provider publishes at `/.well-known/openid-configuration`.
#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
}

struct Pending {
    nonce: String,
    verifier: String,
    at: Instant,
}

/// The provider as this server knows it, and the sign-ins in progress.
pub struct Oidc {
    pub config: OidcConfig,
    metadata: tokio::sync::OnceCell<Metadata>,
    keys: tokio::sync::Mutex<Vec<jsonwebtoken::jwk::Jwk>>,
    pending: Mutex<HashMap<String, Pending>>,
}

/// A failed sign-in: the status, a code and what to tell the user.
type Failed = (StatusCode, &'static str, String);

/// `n` random bytes from the system's generator, Base64url; a sign-in fails rather than use
/// predictable values when the generator does.
fn random_b64(n: usize) -> Result<String, Failed> {
    let mut b = vec![0u8; n];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).map_err(|_| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the system's random number generator failed".to_string(),
        )
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Whether `url` is https, or http on this machine (where the configured issuer may be).
fn secure(url: &str) -> bool {
    url.parse::<axum::http::Uri>().is_ok_and(|u| {
        u.scheme_str() == Some("https")
            || (u.scheme_str() == Some("http") && u.host().is_some_and(outbound::is_loopback))
    })
}

fn provider_error(what: &str, e: impl std::fmt::Display) -> Failed {
    (
        StatusCode::BAD_GATEWAY,
        "oidc_provider",
        format!("the identity provider: {what}: {e}"),
    )
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Oidc {
        Oidc {
            config,
            metadata: tokio::sync::OnceCell::new(),
            keys: tokio::sync::Mutex::new(Vec::new()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    async fn get_json(&self, url: &str) -> Result<Json, Failed> {
        let a = outbound::request(Method::GET, url, &[], None, TIMEOUT, MAX_ANSWER)
            .await
            .map_err(|e| provider_error(url, e))?;
        if !a.status.is_success() {
            return Err(provider_error(url, format!("HTTP {}", a.status)));
        }
        serde_json::from_slice(&a.body).map_err(|e| provider_error(url, e))
    }

    /// The provider's metadata, fetched once; its `issuer` must be the configured one.
    async fn metadata(&self) -> Result<&Metadata, Failed> {
        self.metadata
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.config.issuer);
                let m: Metadata = serde_json::from_value(self.get_json(&url).await?)
                    .map_err(|e| provider_error(&url, e))?;
                // The client secret and the tokens go to these: https (http on loopback only).
                for (what, u) in [
                    ("authorization_endpoint", Some(&m.authorization_endpoint)),
                    ("token_endpoint", Some(&m.token_endpoint)),
                    ("jwks_uri", Some(&m.jwks_uri)),
                    ("userinfo_endpoint", m.userinfo_endpoint.as_ref()),
                ] {
                    if let Some(u) = u.filter(|u| !secure(u)) {
                        return Err(provider_error(
                            &url,
                            format!("its {what} `{u}` is not https"),
                        ));
                    }
                }
                if m.issuer.trim_end_matches('/') != self.config.issuer {
                    return Err(provider_error(
                        &url,
                        format!(
                            "it says its issuer is `{}`, not `{}`",
                            m.issuer, self.config.issuer
                        ),
                    ));
                }
                Ok(m)
            })
            .await
    }

    /// The signing key `kid` (or the only signing key when the token names none), fetching the
    /// provider's keys again once when it is not known.
    async fn key(&self, kid: Option<&str>) -> Result<jsonwebtoken::jwk::Jwk, Failed> {
        let find = |keys: &[jsonwebtoken::jwk::Jwk]| -> Option<jsonwebtoken::jwk::Jwk> {
            match kid {
                Some(k) => keys
                    .iter()
                    .find(|j| j.common.key_id.as_deref() == Some(k))
                    .cloned(),
                None if keys.len() == 1 => keys.first().cloned(),
                None => None,
            }
        };
        let mut keys = self.keys.lock().await;
        if let Some(k) = find(&keys) {
            return Ok(k);
        }
        let m = self.metadata().await?;
        let set = self.get_json(&m.jwks_uri).await?;
        // Keys this crate cannot read (another type, encryption keys) are left out, not fatal.
        *keys = set["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|k| k["use"].as_str() != Some("enc"))
                    .filter_map(|k| serde_json::from_value(k.clone()).ok())
                    .collect()
            })
            .unwrap_or_default();
        find(&keys).ok_or_else(|| {
            provider_error(
                &m.jwks_uri,
                format!(
                    "no signing key {} among the {} it publishes",
                    kid.unwrap_or("(unnamed)"),
                    keys.len()
                ),
            )
        })
    }

    /// Step 1: where to send the browser, and the `state` to bind to it.
    async fn begin(&self) -> Result<(String, String), Failed> {
        let m = self.metadata().await?;
        let state = random_b64(32)?;
        let nonce = random_b64(32)?;
        let verifier = random_b64(32)?;
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        {
            let mut p = self.pending.lock().map_err(|_| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "sign-in state".into(),
                )
            })?;
            p.retain(|_, x| x.at.elapsed() < PENDING_TTL);
            if p.len() >= MAX_PENDING {
                if let Some(oldest) = p.iter().min_by_key(|(_, x)| x.at).map(|(k, _)| k.clone()) {
                    p.remove(&oldest);
                }
            }
            p.insert(
                state.clone(),
                Pending {
                    nonce: nonce.clone(),
                    verifier,
                    at: Instant::now(),
                },
            );
        }
        let c = &self.config;
        let q = [
            ("response_type", "code"),
            ("client_id", &c.client_id),
            ("redirect_uri", &c.redirect_url),
            ("scope", &c.scopes.join(" ")),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        let sep = if m.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok((
            format!("{}{sep}{}", m.authorization_endpoint, form(&q)),
            state,
        ))
    }

    /// Step 2: the code for a user name and an Argus role.
    async fn finish(&self, code: &str, state: &str) -> Result<(String, String), Failed> {
        let pending = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(state))
            .filter(|p| p.at.elapsed() < PENDING_TTL)
            .ok_or((
                StatusCode::BAD_REQUEST,
                "invalid_state",
                "this sign-in is unknown or expired (ten minutes, one use): start again".into(),
            ))?;
        let m = self.metadata().await?;
        let c = &self.config;
        let basic =
            base64::engine::general_purpose::STANDARD.format_basic(&c.client_id, &c.client_secret);
        let body = form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &c.redirect_url),
            ("code_verifier", &pending.verifier),
        ]);
        let a = outbound::request(
            Method::POST,
            &m.token_endpoint,
            &[
                (header::AUTHORIZATION, basic),
                (header::ACCEPT, "application/json".into()),
            ],
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
            TIMEOUT,
            MAX_ANSWER,
        )
        .await
        .map_err(|e| provider_error("the token endpoint", e))?;
        let tokens: Json =
            serde_json::from_slice(&a.body).map_err(|e| provider_error("the token endpoint", e))?;
        if !a.status.is_success() {
            return Err((
                StatusCode::UNAUTHORIZED,
                "oidc_refused",
                format!(
                    "the identity provider refused the code: {} {}",
                    tokens["error"].as_str().unwrap_or(""),
                    tokens["error_description"].as_str().unwrap_or("")
                ),
            ));
        }
        let id_token = tokens["id_token"]
            .as_str()
            .ok_or_else(|| provider_error("the token endpoint", "no id_token in its answer"))?;
        let mut claims = self.verify(id_token, &m.issuer, &pending.nonce).await?;
        // Providers often keep groups and profile claims for the user-info endpoint.
        if let (Some(url), Some(access)) = (&m.userinfo_endpoint, tokens["access_token"].as_str()) {
            let a = outbound::request(
                Method::GET,
                url,
                &[(header::AUTHORIZATION, format!("Bearer {access}"))],
                None,
                TIMEOUT,
                MAX_ANSWER,
            )
            .await
            .map_err(|e| provider_error("the user-info endpoint", e))?;
            if a.status.is_success() {
                let info: Map<String, Json> = serde_json::from_slice(&a.body)
                    .map_err(|e| provider_error("the user-info endpoint", e))?;
                // Its `sub` must be the ID token's (OpenID Connect Core §5.3.2).
                if info.get("sub") != claims.get("sub") {
                    return Err(provider_error(
                        "the user-info endpoint",
                        "its `sub` is not the ID token's",
                    ));
                }
                for (k, v) in info {
                    claims.entry(k).or_insert(v);
                }
            }
        }
        // An email names the user only when the provider verified it.
        let verified = claims.get("email_verified").and_then(Json::as_bool) == Some(true);
        let user = [
            c.username_claim.as_str(),
            "preferred_username",
            "email",
            "sub",
        ]
        .iter()
        .filter(|k| **k != "email" || verified)
        .find_map(|k| claims.get(*k).and_then(Json::as_str))
        .ok_or_else(|| provider_error("the ID token", "no user name claim"))?
        .to_string();
        let values: Vec<&str> = match claims.get(&c.role_claim) {
            Some(Json::String(s)) => vec![s.as_str()],
            Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        };
        let role = c
            .roles
            .iter()
            .find(|(claim, _)| values.contains(&claim.as_str()))
            .map(|(_, role)| role.clone())
            .or_else(|| c.default_role.clone())
            .ok_or((
                StatusCode::FORBIDDEN,
                "no_role",
                format!(
                    "`{user}` signed in, but none of their `{}` ({}) gives an Argus role",
                    c.role_claim,
                    if values.is_empty() {
                        "none".to_string()
                    } else {
                        values.join(", ")
                    }
                ),
            ))?;
        Ok((user, role))
    }

    /// The ID token's claims, once its signature, issuer, audience, times and nonce are checked.
    async fn verify(
        &self,
        token: &str,
        issuer: &str,
        nonce: &str,
    ) -> Result<Map<String, Json>, Failed> {
        use jsonwebtoken::Algorithm::*;
        let bad = |e: String| {
            (
                StatusCode::UNAUTHORIZED,
                "invalid_id_token",
                format!("the ID token is not valid: {e}"),
            )
        };
        let h = jsonwebtoken::decode_header(token).map_err(|e| bad(e.to_string()))?;
        // Public-key signatures only: a shared-secret (HS*) token could be forged by anyone holding
        // the client secret.
        if !matches!(
            h.alg,
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA
        ) {
            return Err(bad(format!("algorithm {:?} is not accepted", h.alg)));
        }
        let jwk = self.key(h.kid.as_deref()).await?;
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| bad(e.to_string()))?;
        let mut v = jsonwebtoken::Validation::new(h.alg);
        v.set_issuer(&[issuer]);
        v.set_audience(&[&self.config.client_id]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = LEEWAY_S;
        let data = jsonwebtoken::decode::<Map<String, Json>>(token, &key, &v)
            .map_err(|e| bad(e.to_string()))?;
        if data.claims.get("nonce").and_then(Json::as_str) != Some(nonce) {
            return Err(bad("its nonce is not this sign-in's".into()));
        }
        Ok(data.claims)
    }
}

/// `application/x-www-form-urlencoded`.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

trait BasicAuth {
    fn format_basic(&self, id: &str, secret: &str) -> String;
}

impl<E: base64::Engine> BasicAuth for E {
    /// `client_secret_basic` (RFC 6749 §2.3.1): the id and secret form-encoded, then Base64.
    fn format_basic(&self, id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            self.encode(format!("{}:{}", enc(id), enc(secret)))
        )
    }
}

fn failed((status, code, message): Failed) -> Response {
    if status.is_server_error() {
        tracing::warn!("single sign-on: {message}");
    }
    let kind = match status {
        StatusCode::BAD_REQUEST => Failure::Invalid,
        StatusCode::UNAUTHORIZED => Failure::Unauthorized,
        StatusCode::FORBIDDEN => Failure::Forbidden,
        StatusCode::CONFLICT => Failure::Conflict,
        StatusCode::NOT_FOUND => Failure::NotFound,
        StatusCode::BAD_GATEWAY => Failure::BadGateway,
        _ => Failure::Internal,
    };
    respond(error(kind, code, message))
}

fn off() -> Response {
    respond(error(
        Failure::NotFound,
        "oidc_off",
        "single sign-on is not configured ([server.oidc])",
    ))
}

/// `GET /v1/session/methods`: how the console may sign in.
pub async fn methods(State(st): State<AppState>) -> Response {
    respond(crate::core::ok(json!({
        "password": st.cases.is_some(),
        "oidc": st.oidc.as_ref().map(|o| json!({"label": o.config.label, "url": "/v1/session/oidc"})),
    })))
}

/// `GET /v1/session/oidc`: off to the provider.
pub async fn start(State(st): State<AppState>) -> Response {
    let Some(o) = &st.oidc else { return off() };
    if st.cases.is_none() {
        return off();
    }
    match o.begin().await {
        Ok((url, state)) => {
            let mut r = (StatusCode::FOUND, [(header::LOCATION, url)]).into_response();
            // Lax, not Strict: the provider's redirect back is a cross-site navigation.
            let cookie = format!(
                "{STATE_COOKIE}={state}; HttpOnly; SameSite=Lax; Path=/v1/session/oidc; Max-Age={}",
                PENDING_TTL.as_secs()
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(f) => failed(f),
    }
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /v1/session/oidc/callback`: back from the provider; a session, then the console.
pub async fn callback(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(o) = &st.oidc else { return off() };
    let Some(svc) = &st.cases else { return off() };
    let q = match q {
        Ok(q) => q.0,
        Err(e) => return crate::cases::query_error(e),
    };
    if let Some(e) = q.error {
        return failed((
            StatusCode::UNAUTHORIZED,
            "oidc_refused",
            format!(
                "the identity provider did not sign you in: {e} {}",
                q.error_description.unwrap_or_default()
            ),
        ));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return failed((
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "expected `code` and `state` from the identity provider".into(),
        ));
    };
    // The state must be the one this browser was given (a sign-in begun elsewhere and finished
    // here would sign this browser in as someone else).
    let bound = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(STATE_COOKIE)?.strip_prefix('='))
        .any(|v| crate::api::constant_time_eq(v.as_bytes(), state.as_bytes()));
    if !bound {
        return failed((
            StatusCode::BAD_REQUEST,
            "invalid_state",
            "this sign-in was not begun in this browser: start again".into(),
        ));
    }
    let (user, role) = match o.finish(&code, &state).await {
        Ok(x) => x,
        Err(f) => return failed(f),
    };
    let Some(store) = svc.store.get() else {
        return failed((
            StatusCode::SERVICE_UNAVAILABLE,
            "cases_unavailable",
            "the case store is not open yet".into(),
        ));
    };
    let (token, _session) = match store
        .sso_login(
            &user,
            &role,
            crate::cases::SESSION_MS,
            crate::core::now_ms(),
        )
        .await
    {
        Ok(x) => x,
        Err(CaseError::Conflict(m)) => return failed((StatusCode::CONFLICT, "conflict", m)),
        Err(CaseError::Unauthorized(m)) => return failed((StatusCode::FORBIDDEN, "forbidden", m)),
        Err(CaseError::Invalid(m)) => return failed((StatusCode::BAD_REQUEST, "invalid", m)),
        Err(e) => {
            return failed((
                StatusCode::SERVICE_UNAVAILABLE,
                "cases_unavailable",
                e.to_string(),
            ))
        }
    };
    tracing::info!(user, role, "single sign-on");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/console/")]).into_response();
    let h = r.headers_mut();
    for c in [
        crate::cases::session_cookie(&token),
        format!("{STATE_COOKIE}=; HttpOnly; SameSite=Lax; Path=/v1/session/oidc; Max-Age=0"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_and_basic_auth() {
        assert_eq!(
            form(&[("a b", "x/y?z=1&é")]),
            "a%20b=x%2Fy%3Fz%3D1%26%C3%A9"
        );
        assert_eq!(
            base64::engine::general_purpose::STANDARD.format_basic("argus", "s:c"),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("argus:s%3Ac")
            )
        );
        let a = random_b64(32).unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_b64(32).unwrap());
        assert!(secure("https://idp.example.com/token") && secure("http://127.0.0.1:9/t"));
        assert!(!secure("http://idp.example.com/token") && !secure("ftp://x"));
    }
}
