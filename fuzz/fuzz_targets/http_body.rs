//! Any bytes as the body of `POST /v1/events`, `/v1/events/batch` (JSON and NDJSON) and `/v1/labels`,
//! through the real router and core (starter configuration and policies, a temporary data directory).
//! Must hold: no panic; every answer is JSON, and every non-200 answer has the one error shape.
#![no_main]

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

struct World {
    rt: tokio::runtime::Runtime,
    server: argus_server::Server,
    _dir: PathBuf,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = std::env::temp_dir().join(format!("argus-fuzz-http-{}", std::process::id()));
        let settings = argus_server::Settings { data_dir: dir.clone(), fsync: argus_server::wal::Fsync::Never, max_body: 64 << 10, ..Default::default() };
        let (config, policies) = (repo.join("examples/starter/argus.toml"), repo.join("policies"));
        let loader: argus_server::Loader = Arc::new(move || {
            let cfg = argus_engine::Config::load(&config)?;
            let p = argus_policy::load_dir(&policies, &cfg.schema, &cfg.features, &cfg.pseudonymizer).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok((cfg, Some(p)))
        });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let server = argus_server::Server::start(settings, loader).expect("server starts");
        World { rt, server, _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    for (uri, ct) in [("/v1/events", "application/json"), ("/v1/events/batch", "application/json"), ("/v1/events/batch", "application/x-ndjson"), ("/v1/labels", "application/json")] {
        let req = Request::post(uri).header("content-type", ct).body(Body::from(data.to_vec())).unwrap();
        let (status, body) = w.rt.block_on(async {
            let resp = w.server.router.clone().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.into_body().collect().await.unwrap().to_bytes())
        });
        let v: serde_json::Value = serde_json::from_slice(&body).expect("every answer is JSON");
        if status != 200 {
            assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{status}: {v}");
        }
    }
});
