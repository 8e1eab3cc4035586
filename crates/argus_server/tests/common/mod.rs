//! Helpers shared by the server's integration tests: a server over a configuration and a policy
//! directory, and calls through its router in-process.
#![allow(dead_code)]

use argus_server::settings::{ApiKey, Role};
use argus_server::{Loader, Server, Settings};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;

pub const INGEST: &str = "ingest-key-0123456789";
pub const ANALYST: &str = "analyst-key-0123456789";
pub const ADMIN: &str = "admin-key-0123456789";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A loader over a configuration file and a policy directory (re-read on every reload).
pub fn loader(config: PathBuf, policies: PathBuf) -> Loader {
    Arc::new(move || {
        let cfg = argus_engine::Config::load(&config)?;
        let loaded =
            argus_policy::load_dir(&policies, &cfg.schema, &cfg.features, &cfg.pseudonymizer)
                .map_err(|e| anyhow::anyhow!("invalid policies:\n{e}"))?;
        Ok((cfg, Some(loaded)))
    })
}

pub fn settings(dir: &Path) -> Settings {
    Settings {
        data_dir: dir.to_path_buf(),
        fsync: argus_server::wal::Fsync::Never,
        max_body: 64 << 10,
        max_batch: 50,
        api_keys: vec![
            ApiKey {
                name: "checkout".into(),
                role: Role::preset("ingest").unwrap().into(),
                key: INGEST.into(),
            },
            ApiKey {
                name: "analyst".into(),
                role: Role::preset("analyst").unwrap().into(),
                key: ANALYST.into(),
            },
            ApiKey {
                name: "ops".into(),
                role: Role::preset("admin").unwrap().into(),
                key: ADMIN.into(),
            },
        ],
        ..Settings::default()
    }
}

pub fn starter(dir: &Path) -> Server {
    Server::start(
        settings(dir),
        loader(
            repo().join("examples/starter/argus.toml"),
            repo().join("policies"),
        ),
    )
    .expect("server starts")
}

pub async fn call(
    s: &Server,
    method: &str,
    uri: &str,
    key: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = s
        .router
        .clone()
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

/// Asserts the one error shape and returns the code.
pub fn err_code(v: &Value) -> &str {
    let e = v
        .get("error")
        .unwrap_or_else(|| panic!("not the error shape: {v}"));
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without a message: {v}"
    );
    e["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error without a code: {v}"))
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
