//! `argus serve`: the decision API over a durable, checksummed event log.
//!
//! - [`api`]: the HTTP routes (axum), authentication, limits, the one error shape;
//! - [`core`]: the single thread that owns the engine and the log, group-commits and answers;
//! - [`wal`]: the segmented, checksummed append-only log;
//! - [`settings`]: `[server]` in `argus.toml`, layered with `ARGUS_*` environment variables;
//! - [`metrics`]: Prometheus metric names and helpers.

pub mod api;
pub mod audit;
pub mod cases;
pub mod cluster;
pub mod core;
pub mod erasure;
pub mod findings;
pub mod lifecycle;
pub mod metrics;
pub mod oidc;
pub mod outbound;
pub mod settings;
pub mod shard;
pub mod vault;
pub mod wal;

pub use crate::core::{read_log, Answer, Loaded, Loader, Recovery, Shared};
pub use settings::{Role, Settings};

use std::sync::atomic::Ordering;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

/// A running core with its router.
pub struct Server {
    pub router: axum::Router,
    pub recovery: Recovery,
    pub shared: Arc<Shared>,
    state: api::AppState,
    core: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Recovers the state from the data directory and starts the core thread.
    pub fn start(settings: Settings, loader: Loader) -> Result<Server, core::StartError> {
        Self::start_with(settings, loader, None)
    }

    /// As [`start`](Self::start), with the configuration and policies already loaded.
    pub fn start_with(
        settings: Settings,
        loader: Loader,
        initial: Option<Loaded>,
    ) -> Result<Server, core::StartError> {
        Self::start_node(settings, loader, initial, None, None)
    }

    /// As [`start_with`](Self::start_with), as a node of a cluster when `log` is given (the shared
    /// log, already connected): after recovery, the node tails the log from its cursor.
    pub fn start_node(
        settings: Settings,
        loader: Loader,
        initial: Option<Loaded>,
        log: Option<argus_cluster::Log>,
        shard: Option<Arc<shard::Shard>>,
    ) -> Result<Server, core::StartError> {
        metrics::install();
        let shared = Arc::new(Shared::default());
        if let Some(s) = shard {
            let _ = shared.shard.set(s);
        }
        // Cases run as tasks of the caller's tokio runtime; without one (a tool embedding the core),
        // they are off.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let cases_on = settings.cases.enabled && runtime.is_some();
        let (intake, intake_rx) = if cases_on {
            let (tx, rx) = tokio::sync::mpsc::channel(settings.cases.intake_queue);
            (
                Some(core::IntakeSink {
                    tx,
                    filter: core::IntakeFilter::of(&settings.cases),
                }),
                Some(rx),
            )
        } else {
            (None, None)
        };
        let (trips, trips_rx) = if cases_on {
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let mut settings = settings;
        if !cases_on {
            // Versions live in the cases' database: without it the policies come from the files.
            settings.lifecycle.source = settings::PolicySource::Files;
        }
        let (mut core, recovery) = core::Core::open(
            settings.clone(),
            loader,
            initial,
            shared.clone(),
            intake,
            trips,
        )?;
        let config = Arc::new(core.config().clone());
        let replayed = core.take_replay_intake();
        if settings.vault_key.is_some() && settings.api_keys.is_empty() {
            return Err(core::StartError::Config(
                "a vault key is set but no API keys are: without keys every request is allowed, reveals included; configure [[server.api_keys]]".into(),
            ));
        }
        let vault = match &settings.vault_key {
            Some(k) => Some(Arc::new(
                vault::Vault::open(&settings.data_dir, &k.0).map_err(core::StartError::State)?,
            )),
            None => None,
        };
        // The entry decoder hands every personal value it tokenizes to the vault.
        let decoder = Arc::new(match &vault {
            Some(v) => {
                let v = v.clone();
                core.decoder()
                    .with_token_sink(Arc::new(move |kind, value, token| {
                        v.put(kind, value, token)
                    }))
            }
            None => core.decoder(),
        });
        let (tx, rx) = sync_channel(settings.queue_depth);
        let core_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("argus-core".into())
            .spawn(move || {
                // A panic outside the core's guarded steps (its idle work) ends the thread: the
                // node then refuses writes, and a sharded node releases its leases.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.run(rx))).is_err()
                {
                    tracing::error!("the core thread panicked: refusing writes until restart");
                    core_shared.refuse_writes();
                }
            })
            .map_err(|e| core::StartError::State(format!("starting the core thread: {e}")))?;
        let oidc = settings.oidc.clone().map(|c| Arc::new(oidc::Oidc::new(c)));
        let state = api::AppState::new(api::AppParts {
            tx,
            shared: shared.clone(),
            cases: cases_on.then(|| Arc::new(cases::CaseService::new(settings.cases.clone()))),
            lifecycle: cases_on.then(|| {
                Arc::new(lifecycle::LifecycleService::new(
                    settings.lifecycle.clone(),
                    config,
                ))
            }),
            settings: Arc::new(settings),
            decoder,
            // The node's name in entries' origins is this process's own (a restarted node must not
            // take answers meant for its previous process); a sharded node's lease name is stable.
            cluster: log.map(|l| Arc::new(cluster::Node::new(l))),
            audit: Arc::new(audit::AuditService::default()),
            vault,
            oidc,
        });
        if let Some(rt) = &runtime {
            if !cases_on {
                rt.spawn(audit::open(state.clone()));
            }
            rt.spawn(audit::retention(state.clone()));
        }
        if let Some(node) = state.cluster.clone() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(cluster::hold_lease(
                        state.clone(),
                        "duties",
                        node.duties.clone(),
                    ));
                    rt.spawn(cluster::answer_decisions(state.clone(), node.clone()));
                    rt.spawn(cluster::pump(state.clone(), node));
                }
                Err(_) => {
                    return Err(core::StartError::Config(
                        "a cluster node needs a tokio runtime".into(),
                    ))
                }
            }
        }
        if let (Some(rt), Some(rx), Some(svc)) = (runtime, intake_rx, state.cases.clone()) {
            rt.spawn(cases::run(state.clone(), svc, replayed, rx, trips_rx));
        }
        Ok(Server {
            router: api::router(state.clone()),
            recovery,
            shared,
            state,
            core: Some(handle),
        })
    }

    /// Stops accepting work, syncs the log, writes a final snapshot and waits for the core thread.
    /// The shutdown request waits for room in the queue (it is never refused as `overloaded`) and has
    /// no timeout.
    pub async fn shutdown(mut self) {
        self.shared.ready.store(false, Ordering::SeqCst);
        // Events answered `pending` within their budget may still be appending: each is in the
        // log or refused (its deadline is `ack_timeout` after its start) before the node stops.
        if let Some(node) = &self.state.cluster {
            let within = node.log.ack_timeout() + std::time::Duration::from_secs(1);
            if !node.appends_done(within).await {
                tracing::warn!(
                    "cluster: appends still in flight after {within:?}, stopping anyway"
                );
            }
        }
        let shard = self.shared.shard.get().cloned();
        if let Some(s) = shard.clone() {
            // The events in flight finish (the final snapshot needs a core that has not failed);
            // a core still waiting for a share after 10 s gives up (that event is not acknowledged).
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                s.stopping.store(true, Ordering::SeqCst);
            });
        }
        let tx = self.state.tx.clone();
        let core = self.core.take();
        let _ = tokio::task::spawn_blocking(move || {
            let (reply, _rx) = tokio::sync::oneshot::channel();
            let _ = tx.send(core::Msg {
                req: core::Request::Shutdown,
                reply,
            });
            if let Some(h) = core {
                let _ = h.join();
            }
        })
        .await;
        if let Some(s) = shard {
            s.leave(&self.state.settings.data_dir).await;
        }
    }
}

/// Runs the server until SIGINT or SIGTERM: binds, prints `argus: listening on <addr>`, reloads on
/// SIGHUP, and shuts down gracefully (in-flight requests finish, the log is synced, a snapshot is
/// written).
pub async fn serve(
    settings: Settings,
    loader: Loader,
    initial: Option<Loaded>,
) -> anyhow::Result<()> {
    if settings.api_keys.is_empty() {
        tracing::warn!("no API keys configured: every request is allowed (development mode); configure [[server.api_keys]] in production");
    }
    for w in settings.warnings() {
        tracing::warn!("{w}");
    }
    let listen = settings.listen.clone();
    let data = settings.data_dir.clone();
    if let (Some(c), Some(l)) = (&settings.cluster, &initial) {
        let unknown: Vec<&String> = c
            .fail_open
            .iter()
            .filter(|t| l.0.schema.type_id(t).is_none())
            .collect();
        if !unknown.is_empty() {
            anyhow::bail!(
                "invalid [cluster]: fail_open names event types the schema does not have: {unknown:?}"
            );
        }
    }
    if let Some(w) = settings
        .cluster
        .as_ref()
        .and_then(|c| c.share_retention_warning(settings.snapshot_interval))
    {
        tracing::warn!("{w}");
    }
    let mut sharding = None;
    let log = match &settings.cluster {
        Some(c) => {
            let log = argus_cluster::Log::connect(&c.log_settings()).await?;
            if let Some(n) = c.partitions {
                let name = cluster::stable_node_name(&settings.data_dir).map_err(|e| {
                    anyhow::anyhow!("the node's name in {}: {e}", settings.data_dir.display())
                })?;
                let cfg = match &initial {
                    Some(l) => l.0.clone(),
                    None => loader()?.0,
                };
                // The units placed on the nodes: the partitions, and the global stages when
                // they are a unit of their own (one node, their worker, runs them).
                let units = argus_engine::Engine::new({
                    let mut c = cfg.clone();
                    c.partitions = n;
                    c
                })
                .units();
                // (`units=` only when the stages are a unit: a cluster without them keeps the
                // shape of the release before the stages' worker.)
                let units_shape = if units > n {
                    format!(" units={units}")
                } else {
                    String::new()
                };
                let shape = format!(
                    "partitions={n}{units_shape} schema={:016x} features={:016x} secret={:016x}",
                    cfg.schema.fingerprint(),
                    cfg.features.fingerprint(),
                    cfg.secret_fingerprint
                );
                crate::cluster::patiently(&log, "checking the cluster's shape", || {
                    log.check_shape(&shape)
                })
                .await?;
                let s = crate::cluster::patiently(&log, "opening the shares' bucket", || {
                    shard::Shard::connect(log.clone(), name.clone(), n, units, c.share_retention())
                })
                .await?;
                let own = crate::cluster::patiently(&log, "opening the owners' bucket", || {
                    log.ownership(&name, units as u32, c.lease_ttl())
                })
                .await?;
                if units > n {
                    eprintln!("argus: sharded cluster node `{name}`: {n} partitions, and the global stages as unit {n}");
                } else {
                    eprintln!("argus: sharded cluster node `{name}`: {n} partitions");
                }
                sharding = Some((s, own));
            }
            if let Some(at) = cluster::bootstrap(&log, &settings.data_dir)
                .await
                .map_err(|e| anyhow::anyhow!("starting from the shared snapshot: {e}"))?
            {
                eprintln!(
                    "argus: empty data directory: starting from the shared snapshot (record {}, log entry {})",
                    at.record, at.cursor
                );
            }
            eprintln!(
                "argus: cluster log `{}` on {} ({} replicas)",
                c.stream,
                argus_cluster::redact(&c.servers.join(",")),
                c.replicas
            );
            Some(log)
        }
        None => None,
    };
    let export = settings
        .export_dir
        .clone()
        .map(|d| (d, settings.export_every));
    let config = match (&export, &initial) {
        (None, _) => None,
        (Some(_), Some(l)) => Some(l.0.clone()),
        (Some(_), None) => Some(loader()?.0),
    };
    let shard = sharding.as_ref().map(|(s, _)| s.clone());
    let server = Server::start_node(settings, loader, initial, log, shard.clone())?;
    if let Some((s, own)) = sharding {
        s.spawn(own, data.clone());
    }
    if let (Some(node), Ok(rt)) = (
        server.state.cluster.clone(),
        tokio::runtime::Handle::try_current(),
    ) {
        let every = server
            .state
            .settings
            .snapshot_interval
            .min(std::time::Duration::from_secs(60));
        rt.spawn(cluster::share_snapshots(
            node.log.clone(),
            data.clone(),
            every,
        ));
        rt.spawn(cluster::report_applied(server.state.clone()));
    }
    if let (Some((out, every)), Some(config)) = (export, config) {
        // In a cluster every node has the same log: one node at a time exports, under a lease.
        let gate = match (&server.state.cluster, tokio::runtime::Handle::try_current()) {
            (Some(_), Ok(rt)) => {
                let gate = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                rt.spawn(cluster::hold_lease(
                    server.state.clone(),
                    "export",
                    gate.clone(),
                ));
                Some(gate)
            }
            _ => None,
        };
        let keep = server.state.settings.export_retention;
        core::export::spawn_continuous(config, data.clone(), out, every, keep, gate);
    }
    let r = &server.recovery;
    eprintln!(
        "argus: recovered from {} (snapshot at record {}, {} log records replayed, {} events indexed) in {} ms",
        data.display(),
        r.snapshot_seq,
        r.replayed,
        r.indexed,
        r.millis
    );
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    println!("argus: listening on {addr}");
    #[cfg(unix)]
    {
        let state = server.state.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                if !audit::system(&state, "reload (SIGHUP)", "signal").await {
                    tracing::error!("SIGHUP reload refused: its audit record could not be written");
                    continue;
                }
                let a = api::ask(&state, core::Request::Reload).await;
                tracing::info!("SIGHUP reload: {a}");
            }
        });
    }
    let app = server.router.clone();
    serve_connections(listener, app, &server.state.settings, stop_signal()).await;
    eprintln!("argus: stopping: syncing the log and writing a snapshot");
    server.shutdown().await;
    Ok(())
}

/// Accepts connections until SIGINT or SIGTERM, then stops gracefully. Each connection must send a
/// request's header within `header_timeout` (also the limit on an idle keep-alive connection); at
/// most `max_connections` are open at once (further ones wait in the listen backlog); at a stop,
/// in-flight requests get `shutdown_grace`, then the remaining connections are closed.
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    settings: &Settings,
    stop: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(settings.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors, say: wait a little instead of spinning.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
        // Finished connections are reaped as new ones arrive, so the set holds the open ones.
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    let open = settings.max_connections - slots.available_permits();
    if open > 0 {
        eprintln!(
            "argus: waiting up to {} ms for {open} open connection(s)",
            settings.shutdown_grace.as_millis()
        );
    }
    if tokio::time::timeout(settings.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("argus: closing the connections still open after `server.shutdown_grace`");
        connections.abort_all();
    }
}

async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
