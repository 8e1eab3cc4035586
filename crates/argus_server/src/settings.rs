//! `[server]` in `argus.toml`, layered with `ARGUS_*` environment variables (environment wins).
//! Every key has a documented default (docs/server.md); every problem is reported at once.

use crate::wal::Fsync;
use argus_event::time::parse_duration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// A role an API key or a console user has: a named set of permissions (see [`Perm`]), with the
/// case inboxes it may see. Built in: `ingest`, `analyst`, `investigator`, `admin`
/// ([`Role::preset`]); `[server.roles.<name>]` adds more.
pub use argus_cases::{Perm, Perms, Role};
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyConfig {
    name: String,
    /// A built-in role or one of `[server.roles]`.
    role: String,
    /// The key itself…
    key: Option<String>,
    /// …or the environment variable that holds it (preferred: keeps secrets out of files).
    key_env: Option<String>,
    /// Requests this key may make: `100/s`, `6000/min` (a token bucket holding one second's or one
    /// minute's worth); absent: no limit.
    rate_limit: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    fsync: Option<String>,
    segment_size: Option<String>,
    retention: Option<String>,
    snapshot_every_events: Option<u64>,
    snapshot_interval: Option<String>,
    queue_depth: Option<usize>,
    max_body: Option<String>,
    max_batch: Option<usize>,
    request_timeout: Option<String>,
    label_types: Option<Vec<String>>,
    recent_decisions: Option<usize>,
    max_future: Option<String>,
    max_indexed_events: Option<usize>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    max_connections: Option<usize>,
    shutdown_grace: Option<String>,
    partition_workers: Option<String>,
    export_dir: Option<PathBuf>,
    export_every: Option<String>,
    vault_key_file: Option<PathBuf>,
    export_retention: Option<String>,
    audit_retention: Option<String>,
    #[serde(default)]
    api_keys: Vec<KeyConfig>,
    #[serde(default)]
    roles: std::collections::BTreeMap<String, RoleConfig>,
    oidc: Option<OidcRaw>,
}

/// `[server.oidc]`: console sign-in through an OpenID Connect provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcRaw {
    issuer: String,
    client_id: String,
    client_secret: Option<String>,
    client_secret_env: Option<String>,
    redirect_url: String,
    scopes: Option<Vec<String>>,
    username_claim: Option<String>,
    role_claim: Option<String>,
    #[serde(default)]
    roles: Vec<OidcRoleRaw>,
    default_role: Option<String>,
    /// The button's text on the console's login page.
    label: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcRoleRaw {
    /// A value of the role claim (a group's name, say)…
    claim: String,
    /// …and the Argus role it gives.
    role: String,
}

/// Console sign-in through an OpenID Connect provider (authorization code flow with PKCE).
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The provider's issuer URL: `https`, or `http` on loopback only. Its metadata is read from
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// This server's callback as the provider knows it: `…/v1/session/oidc/callback`.
    pub redirect_url: String,
    pub scopes: Vec<String>,
    /// The claim that names the user (default `preferred_username`, then `email`, then `sub`).
    pub username_claim: String,
    /// The claim whose values give the role (default `groups`): a string or a list of strings.
    pub role_claim: String,
    /// Claim value → Argus role, the first match in this order.
    pub roles: Vec<(String, String)>,
    /// The role of a user none of whose claim values match (absent: such a user is refused).
    pub default_role: Option<String>,
    pub label: String,
}

/// `[server.roles.<name>]`: a role of the deployment's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleConfig {
    /// Of `ingest`, `read`, `cases`, `investigate`, `rules`, `approve`, `reveal`, `admin`.
    permissions: Vec<String>,
    /// The case inboxes it sees: names, or prefixes ending in `*`; absent: all.
    inboxes: Option<Vec<String>>,
}

fn oidc_config(
    o: OidcRaw,
    roles: &Roles,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<OidcConfig, Vec<String>> {
    let mut errors = Vec::new();
    let secure =
        |what: &str, url: &str, errors: &mut Vec<String>| match url.parse::<axum::http::Uri>() {
            Ok(u) if u.scheme_str() == Some("https") => {}
            Ok(u)
                if u.scheme_str() == Some("http")
                    && u.host().is_some_and(crate::outbound::is_loopback) => {}
            _ => errors.push(format!(
                "server.oidc.{what}: `{url}` must be an https URL (http only on loopback)"
            )),
        };
    secure("issuer", &o.issuer, &mut errors);
    if !o.redirect_url.ends_with("/v1/session/oidc/callback") {
        errors.push(format!(
            "server.oidc.redirect_url: `{}` must be this server's `…/v1/session/oidc/callback`",
            o.redirect_url
        ));
    }
    let secret = match (o.client_secret, o.client_secret_env) {
        (Some(s), None) => Some(s),
        (None, Some(var)) => {
            let v = env(&var).filter(|v| !v.is_empty());
            if v.is_none() {
                errors.push(format!(
                    "server.oidc.client_secret_env: environment variable {var} is not set"
                ));
            }
            v
        }
        (None, None) => env("ARGUS_OIDC_CLIENT_SECRET").filter(|v| !v.is_empty()).or_else(|| {
            errors.push("server.oidc: give client_secret_env (or client_secret, or ARGUS_OIDC_CLIENT_SECRET)".into());
            None
        }),
        (Some(_), Some(_)) => {
            errors.push("server.oidc: give one of client_secret and client_secret_env".into());
            None
        }
    };
    let mut map = Vec::new();
    for r in o.roles {
        if roles.get(&r.role).is_none() || r.role == "ingest" {
            errors.push(format!(
                "server.oidc.roles: `{}` gives role `{}`, which is not a console role ({})",
                r.claim,
                r.role,
                roles
                    .names()
                    .into_iter()
                    .filter(|n| n != "ingest")
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        map.push((r.claim, r.role));
    }
    if let Some(d) = &o.default_role {
        if roles.get(d).is_none() || d == "ingest" {
            errors.push(format!(
                "server.oidc.default_role: `{d}` is not a console role"
            ));
        }
    }
    if map.is_empty() && o.default_role.is_none() {
        errors.push(
            "server.oidc: no [[server.oidc.roles]] and no default_role: nobody could sign in"
                .into(),
        );
    }
    let scopes = o
        .scopes
        .unwrap_or_else(|| vec!["openid".into(), "profile".into(), "email".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        errors.push("server.oidc.scopes: must include `openid`".into());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(OidcConfig {
        issuer: o.issuer.trim_end_matches('/').to_string(),
        client_id: o.client_id,
        client_secret: secret.unwrap_or_default(),
        redirect_url: o.redirect_url,
        scopes,
        username_claim: o
            .username_claim
            .unwrap_or_else(|| "preferred_username".into()),
        role_claim: o.role_claim.unwrap_or_else(|| "groups".into()),
        roles: map,
        default_role: o.default_role,
        label: o
            .label
            .unwrap_or_else(|| "Sign in with single sign-on".into()),
    })
}

/// The roles a deployment knows: the built-in ones and `[server.roles]`.
#[derive(Debug, Clone)]
pub struct Roles(std::collections::BTreeMap<String, Arc<Role>>);

impl Default for Roles {
    fn default() -> Roles {
        Roles(
            argus_cases::PRESETS
                .iter()
                .filter_map(|n| Role::preset(n))
                .map(|r| (r.name.clone(), Arc::new(r)))
                .collect(),
        )
    }
}

impl Roles {
    /// The role named `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<Arc<Role>> {
        self.0.get(name).cloned()
    }

    /// Adds (or, for a test, replaces) a role.
    pub fn insert(&mut self, role: Role) {
        self.0.insert(role.name.clone(), Arc::new(role));
    }

    /// The names, built-in first.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = argus_cases::PRESETS.iter().map(|s| s.to_string()).collect();
        let custom: Vec<String> = self.0.keys().filter(|k| !v.contains(k)).cloned().collect();
        v.extend(custom);
        v
    }
}

/// Whether the core runs a run of waiting events through the partition workers (`Engine::run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionWorkers {
    /// When the machine has more than [`PartitionWorkers::AUTO_MIN_CORES`] - 1 cores: on 2 cores,
    /// shared with the HTTP threads, the worker hop cost more than it saved (BENCHMARKS.md, P3.1).
    Auto,
    Always,
    Never,
}

impl PartitionWorkers {
    /// Fewest cores for `auto` to use the workers.
    pub const AUTO_MIN_CORES: usize = 5;

    /// Whether the workers are used on this machine.
    pub fn enabled(self) -> bool {
        match self {
            PartitionWorkers::Always => true,
            PartitionWorkers::Never => false,
            PartitionWorkers::Auto => {
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
                    >= Self::AUTO_MIN_CORES
            }
        }
    }
}

/// One API key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    pub role: Arc<Role>,
    pub key: String,
}

/// Resolved server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub fsync: Fsync,
    pub segment_bytes: u64,
    /// How long closed log segments (and the decisions in them) are kept after a snapshot covers them.
    pub retention: Duration,
    pub snapshot_every_events: u64,
    pub snapshot_interval: Duration,
    pub queue_depth: usize,
    pub max_body: usize,
    pub max_batch: usize,
    pub request_timeout: Duration,
    /// Event types `POST /v1/labels` accepts.
    pub label_types: Vec<String>,
    /// Decisions remembered per actor for the entity API.
    pub recent_decisions: usize,
    /// How far an event's time may be ahead of the server's clock; later events are refused
    /// (`too_far_in_future`), because one far-future time would move the watermark for good.
    pub max_future: Duration,
    /// Events whose decision the server can look up by id (`GET /v1/decisions/{id}`, the original
    /// answer to a duplicate): the newest this many, at most those still in the retained log. Older
    /// duplicates are still refused by the engine's idempotency ids, answered without the decision.
    pub max_indexed_events: usize,
    /// A client must send a request's whole header within this time (also an idle keep-alive limit).
    pub header_timeout: Duration,
    /// …and its whole body within this time.
    pub body_timeout: Duration,
    /// Open connections at most; further connections wait in the listen backlog.
    pub max_connections: usize,
    /// At a graceful stop, how long in-flight requests get before their connections are closed.
    pub shutdown_grace: Duration,
    /// `[server] partition_workers`: `auto` (default), `always` or `never`.
    pub partition_workers: PartitionWorkers,
    /// `[server] export_dir`: the log exported continuously as Hive-partitioned Parquet (events and
    /// decisions; `argus export` adds the feature table), every `export_every`.
    pub export_dir: Option<PathBuf>,
    pub export_every: Duration,
    /// Empty: no authentication (development only; the server warns).
    pub api_keys: Vec<ApiKey>,
    /// The roles keys and users may have: built in, and `[server.roles]`.
    pub roles: Roles,
    /// `[server.oidc]`: console sign-in through an OpenID Connect provider.
    pub oidc: Option<OidcConfig>,
    /// `[cases]`: where cases are stored, inboxes, routing, bans and webhooks.
    pub cases: argus_cases::Routing,
    /// `[lifecycle]`: where policies come from, approvals, the guard.
    pub lifecycle: LifecycleConfig,
    /// `[cluster]`: the shared JetStream log, when this node is one of several (None: one node on
    /// its own log, the embedded default).
    pub cluster: Option<ClusterConfig>,
    /// The vault's AES-256 key (`ARGUS_VAULT_KEY`, or the file `vault_key_file` names): clear
    /// personal data is kept encrypted for a reveal with a reason. `None`: no vault, no reveal.
    pub vault_key: Option<VaultKey>,
    /// How long the continuous export keeps a day's partitions (by event date; None: kept).
    pub export_retention: Option<Duration>,
    /// How long audit records are kept (None: kept); pruned from the start of the chain.
    pub audit_retention: Option<Duration>,
    /// Per API key (by name): requests per second and the burst a bucket holds.
    pub rate_limits: std::collections::HashMap<String, RateLimit>,
}

/// A key's rate limit: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    /// `100/s`, `6000/min`, `360000/h`.
    pub fn parse(s: &str) -> Option<RateLimit> {
        let (n, unit) = s.trim().split_once('/')?;
        let n: f64 = n
            .trim()
            .parse()
            .ok()
            .filter(|n: &f64| *n > 0.0 && n.is_finite())?;
        let secs = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            _ => return None,
        };
        Some(RateLimit {
            per_second: n / secs,
            burst: n.max(1.0),
        })
    }
}

/// A vault key; its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct VaultKey(pub [u8; 32]);

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultKey(<secret>)")
    }
}

/// `[cluster]`: several nodes sharing one ordered, replicated log on NATS JetStream.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS servers of the JetStream cluster (`nats://host:port`).
    pub servers: Vec<String>,
    /// The JetStream stream holding the log.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Servers that store each entry before it is acknowledged (1, 3 or 5).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// How long an append waits for JetStream's acknowledgement (e.g. `2s`).
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: String,
    /// Checkpoints (event types) that fail open when the shared log cannot acknowledge an event:
    /// they get an `allow` marked `degraded` that is neither recorded nor applied (the client knows
    /// from `"status": "degraded"`). Every other checkpoint fails closed: 503 `log_unavailable`,
    /// nothing acknowledged.
    #[serde(default)]
    pub fail_open: Vec<String>,
    /// How long a one-node duty's lease (the continuous export) outlives its holder's last renewal:
    /// how soon another node takes over when the holder dies.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: String,
    /// How long the other nodes leave an erasure's last step (erasing its entries from the stream)
    /// to the node that took the request before the duties-lease holder does it (that node died,
    /// its client left, or its own part failed). Default `60s`.
    #[serde(default = "default_erasure_grace")]
    pub erasure_grace: String,
    /// Sharded apply: the feature state is split into this many partitions, each applied by the one
    /// node that owns it (a lease), which shares its keys' values with the others (docs/cluster.md).
    /// Unset: every node applies every partition (the replicated cluster). The same on every node.
    #[serde(default)]
    pub partitions: Option<usize>,
    /// Sharded: how long the shares of each event are kept in their bucket (`<stream>-shares`),
    /// set when the first node creates it. A node further behind than this cannot catch up from
    /// its own state. Each share is a subject of the bucket's stream, which every NATS server
    /// holds in memory: docs/operations.md sizes it. Default `15m`, at least `10s` (under a few
    /// minutes, a node restarted after a short stop must start empty).
    #[serde(default = "default_share_retention")]
    pub share_retention: String,
}

fn default_share_retention() -> String {
    "15m".into()
}

fn default_lease_ttl() -> String {
    "10s".into()
}

fn default_erasure_grace() -> String {
    "60s".into()
}

fn default_stream() -> String {
    "argus".into()
}
fn default_replicas() -> usize {
    3
}
fn default_ack_timeout() -> String {
    "2s".into()
}

impl ClusterConfig {
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(parse_duration(&self.lease_ttl).unwrap_or(10_000).max(300) as u64)
    }

    pub fn share_retention(&self) -> Duration {
        Duration::from_millis(
            parse_duration(&self.share_retention)
                .unwrap_or(900_000)
                .max(10_000) as u64,
        )
    }

    /// Sharded: what to say when the shares may leave their bucket before a node started empty
    /// catches up: it restores the newest shared snapshot, which may be up to a `snapshot_interval`
    /// old (when every node snapshots that rarely; `snapshot_every_events` makes it younger), and
    /// needs the shares of the events since.
    pub fn share_retention_warning(&self, snapshot_interval: Duration) -> Option<String> {
        (self.partitions.is_some() && self.share_retention() < 2 * snapshot_interval).then(|| {
            format!(
                "[cluster] share_retention ({} s) is less than twice [server] snapshot_interval ({} s): a node started empty restores a shared snapshot up to snapshot_interval old (when every node snapshots that rarely) and needs the shares of the events since, which may be gone; raise share_retention or snapshot more often",
                self.share_retention().as_secs(),
                snapshot_interval.as_secs()
            )
        })
    }

    pub fn erasure_grace(&self) -> Duration {
        Duration::from_millis(
            parse_duration(&self.erasure_grace)
                .unwrap_or(60_000)
                .max(100) as u64,
        )
    }

    pub fn log_settings(&self) -> argus_cluster::Settings {
        argus_cluster::Settings {
            servers: self.servers.clone(),
            stream: self.stream.clone(),
            replicas: self.replicas,
            ack_timeout: Duration::from_millis(
                parse_duration(&self.ack_timeout).unwrap_or(2000).max(1) as u64,
            ),
        }
    }
}

/// `[cluster]` of the configuration, with `ARGUS_CLUSTER` (comma-separated NATS URLs) and
/// `ARGUS_CLUSTER_REPLICAS` from the environment winning over its `servers` and `replicas`. No
/// servers: not a cluster.
pub fn cluster(
    table: &toml::Table,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ClusterConfig>, Vec<String>> {
    let mut table = table.clone();
    if let Some(v) = env("ARGUS_CLUSTER").filter(|v| !v.trim().is_empty()) {
        let servers = v
            .split(',')
            .map(|s| toml::Value::String(s.trim().to_string()))
            .collect();
        table.insert("servers".into(), toml::Value::Array(servers));
    }
    // The durations, as the file would give them (checked below).
    for (var, key) in [
        ("ARGUS_CLUSTER_LEASE_TTL", "lease_ttl"),
        ("ARGUS_CLUSTER_ERASURE_GRACE", "erasure_grace"),
        ("ARGUS_CLUSTER_SHARE_RETENTION", "share_retention"),
    ] {
        if let Some(v) = env(var).filter(|v| !v.trim().is_empty()) {
            table.insert(key.into(), toml::Value::String(v.trim().to_string()));
        }
    }
    if let Some(v) = env("ARGUS_CLUSTER_PARTITIONS").filter(|v| !v.trim().is_empty()) {
        match v.trim().parse::<i64>() {
            Ok(n) => {
                table.insert("partitions".into(), toml::Value::Integer(n));
            }
            Err(_) => {
                return Err(vec![format!(
                    "ARGUS_CLUSTER_PARTITIONS: `{v}` is not a number of partitions"
                )])
            }
        }
    }
    if let Some(v) = env("ARGUS_CLUSTER_REPLICAS").filter(|v| !v.trim().is_empty()) {
        match v.trim().parse::<i64>() {
            Ok(n) => {
                table.insert("replicas".into(), toml::Value::Integer(n));
            }
            Err(_) => {
                return Err(vec![format!(
                    "ARGUS_CLUSTER_REPLICAS: `{v}` is not 1, 3 or 5"
                )])
            }
        }
    }
    if table.is_empty() {
        return Ok(None);
    }
    let c: ClusterConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e| vec![format!("cluster: {e}")])?;
    let mut errors = Vec::new();
    if c.servers.is_empty() {
        errors.push("cluster.servers: name at least one NATS server".to_string());
    }
    if !matches!(c.replicas, 1 | 3 | 5) {
        errors.push(format!(
            "cluster.replicas: {} (JetStream replicates a stream on 1, 3 or 5 servers)",
            c.replicas
        ));
    }
    if parse_duration(&c.lease_ttl).is_none_or(|ms| ms < 300) {
        errors.push(format!(
            "cluster.lease_ttl: `{}` is not a duration of at least 300ms (e.g. `10s`)",
            c.lease_ttl
        ));
    }
    if parse_duration(&c.share_retention).is_none_or(|ms| ms < 10_000) {
        errors.push(format!(
            "cluster.share_retention: `{}` is not a duration of at least 10s (e.g. `15m`)",
            c.share_retention
        ));
    }
    if parse_duration(&c.erasure_grace).is_none_or(|ms| ms < 100) {
        errors.push(format!(
            "cluster.erasure_grace: `{}` is not a duration of at least 100ms (e.g. `60s`)",
            c.erasure_grace
        ));
    }
    if let Some(n) = c.partitions {
        if !(1..=argus_engine::config::MAX_PARTITIONS).contains(&n) {
            errors.push(format!(
                "cluster.partitions: {n} (1 to {} partitions)",
                argus_engine::config::MAX_PARTITIONS
            ));
        }
    }
    if parse_duration(&c.ack_timeout).is_none_or(|ms| ms <= 0) {
        errors.push(format!(
            "cluster.ack_timeout: `{}` is not a duration (e.g. `2s`)",
            c.ack_timeout
        ));
    }
    if c.stream.is_empty()
        || !c
            .stream
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    {
        errors.push(format!(
            "cluster.stream: `{}` (letters, digits, - and _ only)",
            c.stream
        ));
    }
    if errors.is_empty() {
        Ok(Some(c))
    } else {
        Err(errors)
    }
}

/// Where the running policies come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicySource {
    /// The policy files (`--policies`, or the embedded pack): files in git are the source of truth;
    /// each load is recorded as a version, and the console drafts, checks, backtests, approves and
    /// exports, but does not activate.
    #[default]
    Files,
    /// The store's active version: versions made in the console (or the API) are the source of
    /// truth; the files seed the first version and are an export.
    Console,
}

/// `[lifecycle]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    pub source: PolicySource,
    /// Which changes need an approver other than their author.
    pub approval: argus_lifecycle::ApprovalPolicy,
    /// The blast-radius guard.
    pub guard: argus_lifecycle::GuardConfig,
    /// Changed decisions a backtest keeps (the summary counts them all).
    pub backtest_max_changes: usize,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            source: PolicySource::Files,
            approval: Default::default(),
            guard: Default::default(),
            backtest_max_changes: 10_000,
        }
    }
}

/// `[lifecycle]` of the configuration, with `ARGUS_POLICY_SOURCE` (`files` or `console`) from the
/// environment winning over the file.
pub fn lifecycle(
    table: &toml::Table,
    env: impl Fn(&str) -> Option<String>,
) -> Result<LifecycleConfig, Vec<String>> {
    let mut c: LifecycleConfig = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e| vec![format!("lifecycle: {e}")])?;
    match env("ARGUS_POLICY_SOURCE").as_deref() {
        None | Some("") => {}
        Some("files") => c.source = PolicySource::Files,
        Some("console") => c.source = PolicySource::Console,
        Some(x) => {
            return Err(vec![format!(
                "ARGUS_POLICY_SOURCE: `{x}` is not files or console"
            )])
        }
    }
    let errors = c.guard.check();
    if errors.is_empty() {
        Ok(c)
    } else {
        Err(errors)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:7878".into(),
            data_dir: PathBuf::from("argus-data"),
            fsync: Fsync::Always,
            segment_bytes: 64 << 20,
            retention: Duration::from_secs(7 * 86_400),
            snapshot_every_events: 1_000_000,
            snapshot_interval: Duration::from_secs(300),
            queue_depth: 8192,
            max_body: 1 << 20,
            max_batch: 1000,
            request_timeout: Duration::from_secs(5),
            label_types: vec![
                "chargeback".into(),
                "fraud.confirmed".into(),
                "legit.confirmed".into(),
            ],
            recent_decisions: 10,
            max_future: Duration::from_secs(300),
            max_indexed_events: 1_000_000,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            partition_workers: PartitionWorkers::Auto,
            export_dir: None,
            export_every: Duration::from_secs(900),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
            api_keys: Vec::new(),
            roles: Roles::default(),
            oidc: None,
            cases: argus_cases::Routing::default(),
            lifecycle: LifecycleConfig::default(),
            cluster: None,
            vault_key: None,
            rate_limits: Default::default(),
            export_retention: None,
            audit_retention: None,
        }
    }
}

/// `[cases]` of the configuration, with `ARGUS_CASES_DATABASE` (the database URL) from the
/// environment winning over the file.
pub fn cases(
    table: &toml::Table,
    env: impl Fn(&str) -> Option<String>,
) -> Result<argus_cases::Routing, Vec<String>> {
    let mut c: argus_cases::CasesConfig = toml::Value::Table(table.clone())
        .try_into()
        .map_err(|e| vec![format!("cases: {e}")])?;
    if let Some(url) = env("ARGUS_CASES_DATABASE").filter(|u| !u.is_empty()) {
        c.database = Some(url);
    }
    argus_cases::Routing::compile(&c)
}

/// Environment variables that override `[server]` keys, and the key each one sets.
pub const ENV: &[(&str, &str)] = &[
    ("ARGUS_LISTEN", "listen"),
    ("ARGUS_DATA_DIR", "data_dir"),
    ("ARGUS_FSYNC", "fsync"),
    ("ARGUS_SEGMENT_SIZE", "segment_size"),
    ("ARGUS_RETENTION", "retention"),
    ("ARGUS_SNAPSHOT_EVERY_EVENTS", "snapshot_every_events"),
    ("ARGUS_SNAPSHOT_INTERVAL", "snapshot_interval"),
    ("ARGUS_QUEUE_DEPTH", "queue_depth"),
    ("ARGUS_MAX_BODY", "max_body"),
    ("ARGUS_MAX_BATCH", "max_batch"),
    ("ARGUS_REQUEST_TIMEOUT", "request_timeout"),
    ("ARGUS_MAX_FUTURE", "max_future"),
    ("ARGUS_MAX_INDEXED_EVENTS", "max_indexed_events"),
    ("ARGUS_HEADER_TIMEOUT", "header_timeout"),
    ("ARGUS_BODY_TIMEOUT", "body_timeout"),
    ("ARGUS_MAX_CONNECTIONS", "max_connections"),
    ("ARGUS_SHUTDOWN_GRACE", "shutdown_grace"),
    ("ARGUS_PARTITION_WORKERS", "partition_workers"),
    ("ARGUS_EXPORT_DIR", "export_dir"),
    ("ARGUS_EXPORT_EVERY", "export_every"),
    ("ARGUS_VAULT_KEY_FILE", "vault_key_file"),
    ("ARGUS_EXPORT_RETENTION", "export_retention"),
    ("ARGUS_AUDIT_RETENTION", "audit_retention"),
];

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (n, mult) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (s, 1),
        Some((i, _)) => (
            &s[..i],
            match s[i..].trim() {
                "B" | "b" => 1,
                "KiB" | "K" | "k" => 1 << 10,
                "MiB" | "M" => 1 << 20,
                "GiB" | "G" => 1 << 30,
                "kB" | "KB" => 1_000,
                "MB" => 1_000_000,
                "GB" => 1_000_000_000,
                _ => return None,
            },
        ),
    };
    n.parse::<u64>().ok()?.checked_mul(mult)
}

impl Settings {
    /// From the configuration's `[server]` table and the environment (`env` returns a variable's value).
    pub fn resolve(
        table: &toml::Table,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, Vec<String>> {
        let mut table = table.clone();
        let mut errors = Vec::new();
        for (var, key) in ENV {
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                let value = match *key {
                    "snapshot_every_events"
                    | "queue_depth"
                    | "max_batch"
                    | "max_indexed_events"
                    | "max_connections" => match v.parse::<i64>() {
                        Ok(n) => toml::Value::Integer(n),
                        Err(_) => {
                            errors.push(format!("{var}: `{v}` is not a whole number"));
                            continue;
                        }
                    },
                    _ => toml::Value::String(v),
                };
                table.insert(key.to_string(), value);
            }
        }
        let raw: Raw = match toml::Value::Table(table).try_into() {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("server: {}", e.message()));
                return Err(errors);
            }
        };
        let mut s = Settings::default();
        let dur = |errors: &mut Vec<String>, key: &str, v: &Option<String>, d: Duration| match v {
            None => d,
            Some(t) => match parse_duration(t) {
                Some(ms) if ms >= 0 => Duration::from_millis(ms as u64),
                _ => {
                    errors.push(format!(
                        "server.{key}: `{t}` is not a duration (e.g. `500ms`, `5s`, `7d`)"
                    ));
                    d
                }
            },
        };
        let size = |errors: &mut Vec<String>, key: &str, v: &Option<String>, d: u64| match v {
            None => d,
            Some(t) => parse_size(t).filter(|&n| n > 0).unwrap_or_else(|| {
                errors.push(format!(
                    "server.{key}: `{t}` is not a size (e.g. `1MiB`, `64MiB`)"
                ));
                d
            }),
        };
        if let Some(l) = raw.listen {
            s.listen = l;
        }
        if let Some(d) = raw.data_dir {
            s.data_dir = d;
        }
        if let Some(f) = raw.fsync {
            match Fsync::parse(&f) {
                Some(p) => s.fsync = p,
                None => errors.push(format!(
                    "server.fsync: `{f}` is not one of `always`, `every <duration>`, `never`"
                )),
            }
        }
        s.segment_bytes = size(
            &mut errors,
            "segment_size",
            &raw.segment_size,
            s.segment_bytes,
        );
        for (key, v, target) in [
            ("retention", &raw.retention, &mut s.retention),
            (
                "snapshot_interval",
                &raw.snapshot_interval,
                &mut s.snapshot_interval,
            ),
            (
                "request_timeout",
                &raw.request_timeout,
                &mut s.request_timeout,
            ),
            ("max_future", &raw.max_future, &mut s.max_future),
            ("header_timeout", &raw.header_timeout, &mut s.header_timeout),
            ("body_timeout", &raw.body_timeout, &mut s.body_timeout),
            ("shutdown_grace", &raw.shutdown_grace, &mut s.shutdown_grace),
            ("export_every", &raw.export_every, &mut s.export_every),
        ] {
            *target = dur(&mut errors, key, v, *target);
        }
        for (key, v) in [
            ("header_timeout", s.header_timeout),
            ("body_timeout", s.body_timeout),
        ] {
            if v.is_zero() {
                errors.push(format!("server.{key}: must be more than 0"));
            }
        }
        s.max_body = size(&mut errors, "max_body", &raw.max_body, s.max_body as u64)
            .min(usize::MAX as u64) as usize;
        if s.request_timeout.is_zero() {
            errors.push(
                "server.request_timeout: must be more than 0 (every request would time out)".into(),
            );
        }
        s.export_dir = raw.export_dir.clone();
        if let Some(r) = &raw.export_retention {
            let d = dur(
                &mut errors,
                "export_retention",
                &Some(r.clone()),
                Duration::ZERO,
            );
            if d < Duration::from_secs(86_400) && !d.is_zero() {
                errors.push("server.export_retention: at least 1d (partitions are days)".into());
            }
            s.export_retention = Some(d).filter(|d| !d.is_zero());
        }
        if let Some(r) = &raw.audit_retention {
            let d = dur(
                &mut errors,
                "audit_retention",
                &Some(r.clone()),
                Duration::ZERO,
            );
            if d < Duration::from_secs(86_400) {
                errors.push("server.audit_retention: at least 1d".into());
            }
            s.audit_retention = Some(d);
        }
        match (
            env("ARGUS_VAULT_KEY").filter(|k| !k.is_empty()),
            &raw.vault_key_file,
        ) {
            (Some(k), _) => match crate::vault::parse_key(&k) {
                Ok(k) => s.vault_key = Some(VaultKey(k)),
                Err(e) => errors.push(format!("ARGUS_VAULT_KEY: {e}")),
            },
            (None, Some(f)) => match std::fs::read_to_string(f) {
                Ok(text) => match crate::vault::parse_key(&text) {
                    Ok(k) => s.vault_key = Some(VaultKey(k)),
                    Err(e) => errors.push(format!("server.vault_key_file ({}): {e}", f.display())),
                },
                Err(e) => errors.push(format!("server.vault_key_file ({}): {e}", f.display())),
            },
            (None, None) => {}
        }
        if s.export_every < Duration::from_secs(1) {
            errors.push("server.export_every: must be at least 1s".into());
        }
        if s.snapshot_interval < Duration::from_secs(1) {
            errors.push("server.snapshot_interval: must be at least 1s".into());
        }
        for (key, v, target) in [
            ("queue_depth", raw.queue_depth, &mut s.queue_depth),
            ("max_batch", raw.max_batch, &mut s.max_batch),
            (
                "recent_decisions",
                raw.recent_decisions,
                &mut s.recent_decisions,
            ),
            (
                "max_indexed_events",
                raw.max_indexed_events,
                &mut s.max_indexed_events,
            ),
            (
                "max_connections",
                raw.max_connections,
                &mut s.max_connections,
            ),
        ] {
            match v {
                Some(0) if key != "recent_decisions" => {
                    errors.push(format!("server.{key}: must be at least 1"))
                }
                Some(n) => *target = n,
                None => {}
            }
        }
        match raw.snapshot_every_events {
            Some(0) => errors.push("server.snapshot_every_events: must be at least 1".into()),
            Some(n) => s.snapshot_every_events = n,
            None => {}
        }
        if let Some(l) = raw.label_types {
            s.label_types = l;
        }
        match raw.partition_workers.as_deref() {
            None | Some("auto") => {}
            Some("always") => s.partition_workers = PartitionWorkers::Always,
            Some("never") => s.partition_workers = PartitionWorkers::Never,
            Some(other) => errors.push(format!(
                "server.partition_workers: `{other}` is not `auto`, `always` or `never`"
            )),
        }
        for (name, rc) in raw.roles {
            if argus_cases::PRESETS.contains(&name.as_str()) {
                errors.push(format!(
                    "server.roles.{name}: `{name}` is a built-in role; give yours another name"
                ));
                continue;
            }
            let mut perms = Vec::new();
            for p in &rc.permissions {
                match Perm::parse(p) {
                    Some(x) => perms.push(x),
                    None => errors.push(format!(
                        "server.roles.{name}: permission `{p}` is not one of {}",
                        Perm::ALL.map(Perm::name).join(", ")
                    )),
                }
            }
            if rc.permissions.is_empty() {
                errors.push(format!("server.roles.{name}: no permissions"));
            }
            s.roles.insert(Role {
                name,
                permissions: argus_cases::Perms::of(&perms),
                inboxes: rc.inboxes,
            });
        }
        if let Some(o) = raw.oidc {
            match oidc_config(o, &s.roles, &env) {
                Ok(c) => s.oidc = Some(c),
                Err(mut e) => errors.append(&mut e),
            }
        }
        for (i, k) in raw.api_keys.into_iter().enumerate() {
            let role = s.roles.get(&k.role);
            if role.is_none() {
                errors.push(format!(
                    "server.api_keys[{i}] ({}): role `{}` is not one of {}",
                    k.name,
                    k.role,
                    s.roles.names().join(", ")
                ));
            }
            if let Some(r) = &k.rate_limit {
                match RateLimit::parse(r) {
                    Some(l) => {
                        s.rate_limits.insert(k.name.clone(), l);
                    }
                    None => errors.push(format!(
                        "server.api_keys[{i}] ({}): rate_limit `{r}` is not like `100/s` or `6000/min`",
                        k.name
                    )),
                }
            }
            let key = match (k.key, k.key_env) {
                (Some(key), None) => Some(key),
                (None, Some(var)) => match env(&var).filter(|v| !v.is_empty()) {
                    Some(key) => Some(key),
                    None => {
                        errors.push(format!(
                            "server.api_keys[{i}] ({}): environment variable {var} is not set",
                            k.name
                        ));
                        None
                    }
                },
                _ => {
                    errors.push(format!(
                        "server.api_keys[{i}] ({}): give exactly one of `key` and `key_env`",
                        k.name
                    ));
                    None
                }
            };
            if let (Some(key), Some(role)) = (key, role) {
                if key.len() < 16 {
                    errors.push(format!(
                        "server.api_keys[{i}] ({}): a key must be at least 16 characters",
                        k.name
                    ));
                } else {
                    s.api_keys.push(ApiKey {
                        name: k.name,
                        role,
                        key,
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(s)
        } else {
            Err(errors)
        }
    }

    /// Problems that do not stop the server but that an operator must see: one key under two names
    /// or roles (the last one listed wins).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, a) in self.api_keys.iter().enumerate() {
            for b in &self.api_keys[i + 1..] {
                if a.key == b.key {
                    out.push(format!(
                        "API keys `{}` ({}) and `{}` ({}) are the same key: it gets the role of the last one, `{}`; give each client its own key",
                        a.name,
                        a.role.name,
                        b.name,
                        b.role.name,
                        b.role.name
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_erasure_grace_comes_from_the_file_or_the_environment_and_is_checked() {
        let t: toml::Table = toml::from_str(
            r#"servers = ["nats://127.0.0.1:4222"]
erasure_grace = "5s"
"#,
        )
        .unwrap();
        let c = cluster(&t, |_| None).unwrap().unwrap();
        assert_eq!(c.erasure_grace(), Duration::from_secs(5));
        let env = |k: &str| (k == "ARGUS_CLUSTER_ERASURE_GRACE").then(|| "250ms".to_string());
        let c = cluster(&t, env).unwrap().unwrap();
        assert_eq!(c.erasure_grace(), Duration::from_millis(250));
        let t: toml::Table = toml::from_str("servers = [\"nats://a:4222\"]").unwrap();
        assert_eq!(
            cluster(&t, |_| None).unwrap().unwrap().erasure_grace(),
            Duration::from_secs(60)
        );
        let bad = |k: &str| (k == "ARGUS_CLUSTER_ERASURE_GRACE").then(|| "soon".to_string());
        let errors = cluster(&t, bad).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("cluster.erasure_grace")),
            "{errors:?}"
        );
    }

    /// The shares' retention: 15 minutes unless set, from the file or the environment, and at
    /// least 10 seconds.
    #[test]
    fn the_share_retention_comes_from_the_file_or_the_environment_and_is_checked() {
        let t: toml::Table = toml::from_str("servers = [\"nats://a:4222\"]").unwrap();
        let c = cluster(&t, |_| None).unwrap().unwrap();
        assert_eq!(c.share_retention(), Duration::from_secs(900));
        let t: toml::Table =
            toml::from_str("servers = [\"nats://a:4222\"]\nshare_retention = \"1h\"\n").unwrap();
        assert_eq!(
            cluster(&t, |_| None).unwrap().unwrap().share_retention(),
            Duration::from_secs(3600)
        );
        let env = |k: &str| (k == "ARGUS_CLUSTER_SHARE_RETENTION").then(|| "5m".to_string());
        assert_eq!(
            cluster(&t, env).unwrap().unwrap().share_retention(),
            Duration::from_secs(300)
        );
        // A node started empty needs the shares since its snapshot: warned about when every
        // node may snapshot that rarely.
        let c = cluster(&t, env).unwrap().unwrap();
        assert_eq!(c.share_retention_warning(Duration::from_secs(60)), None);
        assert_eq!(c.share_retention_warning(Duration::from_secs(150)), None);
        let sharded = |k: &str| match k {
            "ARGUS_CLUSTER_SHARE_RETENTION" => Some("5m".to_string()),
            "ARGUS_CLUSTER_PARTITIONS" => Some("24".to_string()),
            _ => None,
        };
        let c = cluster(&t, sharded).unwrap().unwrap();
        assert_eq!(c.share_retention_warning(Duration::from_secs(150)), None);
        let w = c.share_retention_warning(Duration::from_secs(151)).unwrap();
        assert!(
            w.contains(
                "share_retention (300 s) is less than twice [server] snapshot_interval (151 s)"
            ),
            "{w}"
        );
        for bad in ["9s", "soon"] {
            let env = |k: &str| (k == "ARGUS_CLUSTER_SHARE_RETENTION").then(|| bad.to_string());
            let errors = cluster(&t, env).unwrap_err();
            assert!(
                errors.iter().any(|e| e.contains("cluster.share_retention")),
                "{bad}: {errors:?}"
            );
        }
    }

    #[test]
    fn defaults_file_and_environment_layer() {
        let t: toml::Table = toml::from_str(
            r#"listen = "0.0.0.0:9000"
fsync = "every 10ms"
max_body = "256KiB"
[[api_keys]]
name = "checkout"
role = "ingest"
key_env = "TEST_KEY"
"#,
        )
        .unwrap();
        let env = |k: &str| match k {
            "ARGUS_LISTEN" => Some("127.0.0.1:1".to_string()),
            "ARGUS_PARTITION_WORKERS" => Some("always".to_string()),
            "TEST_KEY" => Some("k".repeat(20)),
            _ => None,
        };
        let s = Settings::resolve(&t, env).unwrap();
        assert_eq!(s.listen, "127.0.0.1:1", "environment wins");
        assert_eq!(s.fsync, Fsync::Interval(Duration::from_millis(10)));
        assert_eq!(s.max_body, 256 << 10);
        assert_eq!(s.max_batch, 1000, "default kept");
        assert_eq!(s.api_keys[0].role.name, "ingest");
        assert_eq!(s.partition_workers, PartitionWorkers::Always);
        assert_eq!(
            Settings::default().partition_workers,
            PartitionWorkers::Auto
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let t: toml::Table = toml::from_str("fsync = \"sometimes\"\nretention = \"forever\"\nqueue_depth = 0\nrequest_timeout = \"0s\"\npartition_workers = \"maybe\"\n[[api_keys]]\nname = \"x\"\nrole = \"admin\"\nkey = \"short\"").unwrap();
        let e = Settings::resolve(&t, |_| None).unwrap_err();
        assert_eq!(e.len(), 6, "{e:?}");
        assert!(
            e.iter().any(|m| m.contains("partition_workers: `maybe`")),
            "{e:?}"
        );
        assert_eq!(parse_size("2MB"), Some(2_000_000));
        assert_eq!(parse_size("2MiB"), Some(2 << 20));
        let t: toml::Table = toml::from_str("lisen = \"x\"").unwrap();
        let e = Settings::resolve(&t, |_| None).unwrap_err();
        assert!(e[0].contains("unknown field `lisen`"), "{e:?}");
    }

    #[test]
    fn roles_of_the_deployment_are_checked_and_keys_name_them() {
        let t: toml::Table = toml::from_str(
            r#"[roles.apac-reviewer]
permissions = ["read", "cases"]
inboxes = ["apac-*"]
[roles.admin]
permissions = ["read"]
[roles.typo]
permissions = ["raed"]
[[api_keys]]
name = "apac"
role = "apac-reviewer"
key = "0123456789abcdef0123"
[[api_keys]]
name = "ghost"
role = "nobody"
key = "0123456789abcdef0124"
"#,
        )
        .unwrap();
        let e = Settings::resolve(&t, |_| None).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e.iter().any(|m| m.contains("`admin` is a built-in role")));
        assert!(e.iter().any(|m| m.contains("permission `raed`")));
        assert!(e.iter().any(|m| m.contains(
            "role `nobody` is not one of ingest, analyst, investigator, admin, apac-reviewer"
        )));
        let t: toml::Table = toml::from_str(
            "[roles.apac-reviewer]\npermissions = [\"read\", \"cases\"]\ninboxes = [\"apac-*\"]\n[[api_keys]]\nname = \"apac\"\nrole = \"apac-reviewer\"\nkey = \"0123456789abcdef0123\"",
        )
        .unwrap();
        let s = Settings::resolve(&t, |_| None).unwrap();
        let r = &s.api_keys[0].role;
        assert!(r.allows(Perm::Cases) && r.allows(Perm::Read) && !r.allows(Perm::Rules));
        assert!(r.sees_inbox("apac-sg") && !r.sees_inbox("emea"));
    }
}
