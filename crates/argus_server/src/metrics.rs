//! Prometheus metrics (the `metrics` facade with its Prometheus exporter): names in one place, and
//! small helpers so that call sites stay one line.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const HTTP_REQUESTS: &str = "argus_http_requests_total";
pub const HTTP_SECONDS: &str = "argus_http_request_duration_seconds";
pub const EVENTS: &str = "argus_events_total";
pub const DECISIONS: &str = "argus_decisions_total";
pub const RULE_HITS: &str = "argus_rule_hits_total";
pub const DECISION_SECONDS: &str = "argus_decision_eval_seconds";
pub const QUEUE_DEPTH: &str = "argus_queue_depth";
pub const REJECTED_OVERLOAD: &str = "argus_overload_rejections_total";
/// Log records that would have opened or updated a case but found the intake queue full.
pub const CASE_INTAKE_DROPPED: &str = "argus_case_intake_dropped_total";
/// Log records case intake took after reading them again from the event log (its full queue had
/// left them out).
pub const CASE_INTAKE_REREAD: &str = "argus_case_intake_reread_total";
/// Cases opened or updated by intake, and outbox actions delivered or failed, by kind.
pub const CASE_TRIGGERS: &str = "argus_case_triggers_total";
/// Time case intake spends on one log record (routing and the case store's writes).
pub const CASE_INTAKE_SECONDS: &str = "argus_case_intake_seconds";
pub const ACTIONS_DONE: &str = "argus_case_actions_done_total";
pub const ACTIONS_FAILED: &str = "argus_case_action_failures_total";
pub const COMMIT_SECONDS: &str = "argus_log_commit_seconds";
/// In a cluster: time to append one entry to the shared log (JetStream's acknowledgement).
pub const CLUSTER_APPEND_SECONDS: &str = "argus_cluster_append_seconds";
/// In a cluster: appends the shared log did not acknowledge (answered 503, not applied).
pub const CLUSTER_APPEND_FAILURES: &str = "argus_cluster_append_failures_total";
/// In a cluster: events with a `[deadlines]` budget whose append or answer is in flight on this
/// node (answered or not; capped at `[server] queue_depth`).
pub const CLUSTER_BUDGETED_IN_FLIGHT: &str = "argus_cluster_budgeted_in_flight";
/// In a cluster: entries of the shared log no node can apply (undecodable), skipped by all alike.
pub const CLUSTER_ENTRIES_SKIPPED: &str = "argus_cluster_entries_skipped_total";
/// In a cluster: entries of the shared log erased from the stream by erasures on this node.
pub const CLUSTER_ENTRIES_ERASED: &str = "argus_cluster_entries_erased_total";
/// In a cluster: decisions this node did not hold and asked the others for, by `outcome`
/// (`answered`, `none`: no node answered in time, `failed`).
pub const CLUSTER_PEER_DECISIONS: &str = "argus_cluster_peer_decisions_total";
/// Decisions made without a component (by stage): answered by the checkpoint's fail-open setting.
pub const DEGRADED_DECISIONS: &str = "argus_degraded_decisions_total";
/// In a cluster: entries stored after their deadline (their appender had answered 503 or degraded),
/// skipped by every node.
pub const CLUSTER_ENTRIES_EXPIRED: &str = "argus_cluster_entries_expired_total";
/// In a cluster: 1 while this node holds the lease (`lease`: `export` or `duties`), else 0.
pub const CLUSTER_LEASES_HELD: &str = "argus_cluster_leases_held";
/// In a cluster: snapshots this node shared through JetStream's object store for new nodes.
pub const CLUSTER_SNAPSHOTS_SHARED: &str = "argus_cluster_snapshots_shared_total";
/// In a cluster: the shared log's entries this node has handed to its core.
pub const CLUSTER_CURSOR: &str = "argus_cluster_cursor";
/// Sharded: time a node's core waited for other partitions' shares of one event.
pub const SHARD_WAIT_SECONDS: &str = "argus_shard_wait_seconds";
/// Sharded: shares the core read from the bucket by key, found or not, by `when`: `at_once`
/// (before waiting: it is catching up, or announcements are being missed) or `late` (a share not
/// announced 20 ms after it was waited for).
pub const SHARD_SHARE_READS: &str = "argus_shard_share_reads_total";
/// Sharded: partitions this node rebuilt (from a snapshot and its log) on taking them over.
pub const SHARD_REBUILDS: &str = "argus_shard_rebuilds_total";
/// Sharded: time one rebuild took, from its start to the handover of its partitions (one restore
/// for every partition taken over that the same snapshot holds; the restore and most of the
/// replay run on a thread of their own).
pub const SHARD_REBUILD_SECONDS: &str = "argus_shard_rebuild_seconds";
/// Sharded: the part of one rebuild that ran on the core (choosing the snapshot, replaying the
/// last records logged while the thread ran, the events in flight), when every event waits. Events
/// that need the partition's share and that nobody else publishes wait for the whole rebuild
/// (`argus_shard_wait_seconds`).
pub const SHARD_REBUILD_CORE_SECONDS: &str = "argus_shard_rebuild_core_seconds";
/// Sharded: partitions whose feature state this node holds.
pub const SHARD_PARTITIONS_HELD: &str = "argus_shard_partitions_held";
/// Sharded: 1 while this node holds the global stages (it is the graph's worker), else 0.
pub const SHARD_STAGES_HELD: &str = "argus_shard_stages_held";
/// Sharded: the time from the core handing a share over to its storage being acknowledged by the
/// bucket's replicas (the publisher's queue and its announcement, the storer's queue of at most
/// 256 puts in flight, and the put).
pub const SHARD_PUBLISH_SECONDS: &str = "argus_shard_publish_seconds";
/// Sharded: the shares this node announced as their owner (plain NATS, before storing them).
pub const SHARD_OWN_SHARES_ANNOUNCED: &str = "argus_shard_shares_announced_total";
/// Sharded: the messages that carried this node's announced shares, many to a message when
/// several are waiting.
pub const SHARD_ANNOUNCE_MESSAGES: &str = "argus_shard_announce_messages_total";
/// Sharded: shares of held partitions this node did not store because no other node needs them
/// from it (it is catching up before taking part in ownership, or another node owns and holds the
/// partition).
pub const SHARD_SHARES_SKIPPED: &str = "argus_shard_shares_skipped_total";
/// Sharded: shares the core took as they were announced (plain NATS), before their owner
/// confirmed them stored.
pub const SHARD_SHARES_ANNOUNCED: &str = "argus_shard_shares_taken_announced_total";
/// Sharded: shares announced and not stored by their owner within seconds, stored by this node.
pub const SHARD_SHARES_RESTORED: &str = "argus_shard_shares_stored_for_owner_total";
/// Sharded: shares stored in pieces (their encoding took more than a piece: `SHARE_CHUNK`, at most
/// half the servers' `max_payload`).
pub const SHARD_SHARES_IN_PIECES: &str = "argus_shard_shares_in_pieces_total";
/// Sharded: attempts to store a share that failed (each is retried until it is stored).
pub const SHARD_PUBLISH_FAILURES: &str = "argus_shard_publish_failures_total";
/// Sharded: snapshot objects of gone nodes deleted, once, for each of their partitions, a live owner
/// announces holding it and its own snapshot object holds it.
pub const SHARD_SNAPSHOTS_PRUNED: &str = "argus_shard_snapshots_pruned_total";
/// Audit records appended, by kind (`change`, `result`, `reveal`, `system`).
pub const AUDIT_RECORDS: &str = "argus_audit_records_total";
/// Changes refused because their audit record could not be written.
pub const AUDIT_REFUSALS: &str = "argus_audit_refusals_total";
/// Outcome records that could not be written (the change itself was audited and made).
pub const AUDIT_RESULT_FAILURES: &str = "argus_audit_result_failures_total";
/// Reveals of clear personal data (each one audited with its reason).
pub const REVEALS: &str = "argus_reveals_total";
/// Requests refused by an API key's rate limit.
pub const RATE_LIMITED: &str = "argus_rate_limited_total";
/// Subjects erased.
pub const ERASURES: &str = "argus_erasures_total";
pub const FSYNCS: &str = "argus_log_fsyncs_total";
pub const LOG_SEGMENTS: &str = "argus_log_segments";
pub const SNAPSHOT_PAUSE: &str = "argus_snapshot_pause_seconds";
pub const SNAPSHOTS: &str = "argus_snapshots_total";
/// Memory the last snapshot copy held (its index and the records not yet spilled to its file).
pub const SNAPSHOT_COPY_BYTES: &str = "argus_snapshot_copy_bytes";
pub const RELOADS: &str = "argus_reloads_total";
/// Rules the blast-radius guard moved to shadow, by rule.
pub const GUARD_PAUSES: &str = "argus_guard_pauses_total";
/// Rules paused by the guard and not resumed yet.
pub const GUARD_PAUSED: &str = "argus_guard_paused_rules";
pub const GROUP_SECONDS: &str = "argus_core_group_seconds";
pub const HOUSEKEEPING_SECONDS: &str = "argus_core_housekeeping_seconds";
/// Per batched run of events: how long the core waited for the partition workers.
pub const PARTITION_WAIT_SECONDS: &str = "argus_core_partition_wait_seconds";
/// Feature-state treatments that change answers, by `treatment` (exact_cap_evictions,
/// bucket_too_old: since the state began; lifetime_dropped, keys_expired: since the server started).
pub const FEATURE_TREATMENTS: &str = "argus_feature_treatments";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (later calls reuse it) and returns its handle.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005,
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!("metrics recorder not installed: {e}"))
                .ok()?;
            // Histogram samples are buffered until upkeep drains them into the buckets: without a
            // regular drain they would accumulate (8 bytes a sample) between scrapes.
            let h = handle.clone();
            let _ = std::thread::Builder::new()
                .name("argus-metrics".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    h.run_upkeep();
                });
            Some(handle)
        })
        .as_ref()
}

/// The Prometheus text exposition.
pub fn render() -> String {
    match install() {
        Some(h) => {
            h.run_upkeep();
            h.render()
        }
        None => String::new(),
    }
}

pub fn inc(name: &'static str, n: u64) {
    metrics::counter!(name).increment(n);
}

pub fn inc_labeled(name: &'static str, label: &'static str, value: &'static str) {
    metrics::counter!(name, label => value).increment(1);
}

/// The guard paused `rule`.
pub fn guard_pause(rule: &str) {
    metrics::counter!(GUARD_PAUSES, "rule" => rule.to_string()).increment(1);
}

pub fn set_gauge(name: &'static str, v: f64) {
    metrics::gauge!(name).set(v);
}

pub fn set_gauge_labeled(name: &'static str, label: &'static str, value: &'static str, v: f64) {
    metrics::gauge!(name, label => value).set(v);
}

pub fn observe(name: &'static str, seconds: f64) {
    metrics::histogram!(name).record(seconds);
}

pub fn event_outcome(event_type: &str, outcome: &'static str) {
    metrics::counter!(EVENTS, "type" => event_type.to_string(), "outcome" => outcome).increment(1);
}

pub fn request(route: &'static str, method: &axum::http::Method, status: u16, seconds: f64) {
    use axum::http::Method;
    let method: &'static str = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    };
    let status: std::borrow::Cow<'static, str> = match status {
        200 => "200".into(),
        400 => "400".into(),
        404 => "404".into(),
        422 => "422".into(),
        503 => "503".into(),
        s => s.to_string().into(),
    };
    metrics::counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_SECONDS, "route" => route).record(seconds);
}

/// Counter handles the core uses per event, looked up once per (event type, outcome), checkpoint
/// action and rule instead of once per event.
#[derive(Default)]
pub struct CoreMetrics {
    outcomes: std::collections::HashMap<(u16, &'static str), metrics::Counter>,
    actions: std::collections::HashMap<(u16, argus_policy::Action), metrics::Counter>,
    /// Rule name → (enforced hits, shadow hits).
    rules: [std::collections::HashMap<String, metrics::Counter>; 2],
    eval: Option<metrics::Histogram>,
}

impl CoreMetrics {
    pub fn outcome(&mut self, ty: u16, outcome: &'static str, type_name: &str) {
        self.outcomes
            .entry((ty, outcome))
            .or_insert_with(
                || metrics::counter!(EVENTS, "type" => type_name.to_string(), "outcome" => outcome),
            )
            .increment(1);
    }

    pub fn decision(&mut self, ty: u16, d: &argus_policy::Decision, seconds: f64) {
        for (stage, _) in &d.degraded {
            inc_labeled(DEGRADED_DECISIONS, "stage", stage);
        }
        self.actions
            .entry((ty, d.action))
            .or_insert_with(|| metrics::counter!(DECISIONS, "checkpoint" => d.checkpoint.clone(), "action" => d.action.name()))
            .increment(1);
        for (r, shadow) in d
            .fired
            .iter()
            .map(|r| (r, 0))
            .chain(d.shadow.iter().map(|r| (r, 1)))
        {
            // Looked up by the borrowed name; a rule's key is allocated once.
            match self.rules[shadow].get(r.rule.as_str()) {
                Some(c) => c.increment(1),
                None => {
                    let c = metrics::counter!(RULE_HITS, "rule" => r.rule.clone(), "mode" => if shadow == 1 { "shadow" } else { "enforce" });
                    c.increment(1);
                    self.rules[shadow].insert(r.rule.clone(), c);
                }
            }
        }
        self.eval
            .get_or_insert_with(|| metrics::histogram!(DECISION_SECONDS))
            .record(seconds);
    }
}
