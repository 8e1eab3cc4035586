//! Every route, driven in-process with `tower::ServiceExt::oneshot`: good requests and the bad ones a
//! real client sends (malformed JSON, wrong types, oversized bodies, unknown types, duplicates, missing
//! or wrong keys). Each error must have the one error shape.

use argus_server::settings::{ApiKey, Perm, Role};
use argus_server::{Server, Settings};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;

use crate::common;
use common::*;

fn register(id: &str, actor: &str, device: &str) -> String {
    json!({"id": id, "type": "account.register", "time": "2026-11-20T09:00:00Z", "actor": actor,
           "data": {"email": format!("{actor}@example.com"), "device": device, "ip": "81.2.69.10", "country": "GB"}})
    .to_string()
}

#[tokio::test]
async fn events_decisions_duplicates_and_bad_input() {
    let d = tempfile::tempdir().unwrap();
    let s = starter(d.path());
    let (st, v) = call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        register("e1", "u1", "d1"),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "accepted");
    assert_eq!(v["seq"], 1);
    assert_eq!(v["decision"]["checkpoint"], "account.register");
    assert!(
        v["decision"]["eval_us"].as_f64().is_some(),
        "decisions carry their evaluation time"
    );
    let first = v["decision"].clone();

    // Duplicate id: the original decision, not a second one.
    let (st, v) = call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        register("e1", "u1", "d-other"),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["status"], "duplicate");
    assert_eq!(v["decision"], first);

    // A non-checkpoint event is acknowledged without a decision.
    let click = json!({"id": "c1", "type": "cart.add", "time": "2026-11-20T09:00:01Z", "actor": "u1", "data": {"item": "i1", "seller": "s1"}});
    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), click.to_string()).await;
    assert_eq!(st, 200, "{v}");
    assert!(v["decision"].is_null());

    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), "{\"id\": \"x\", ").await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), "[1, 2]").await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_event")
    );
    let wrong = json!({"id": "p1", "type": "payment.attempt", "time": "2026-11-20T09:00:00Z", "actor": "u1", "data": {"amount": "lots", "card": "4111 1111 1111 1111"}});
    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), wrong.to_string()).await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/data/amount"),
        "{v}"
    );
    let unknown = json!({"id": "q1", "type": "acount.register", "time": "2026-11-20T09:00:00Z", "actor": "u1", "data": {}});
    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), unknown.to_string()).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_event_type")
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("account.register"),
        "did you mean: {v}"
    );
    let internal = json!({"id": "q2", "type": "label.anything", "time": "2026-11-20T09:00:00Z", "actor": "u1", "data": {}});
    let (st, _) = call(&s, "POST", "/v1/events", Some(INGEST), internal.to_string()).await;
    assert_eq!(st, 422);
    let big = format!("{{\"id\": \"big\", \"pad\": \"{}\"}}", "x".repeat(70 << 10));
    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), big).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let long_id = register(&"i".repeat(500), "u1", "d1");
    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), long_id).await;
    assert_eq!((st, err_code(&v)), (StatusCode::BAD_REQUEST, "too_long"));
    // Far behind the newest event time: refused, not silently applied.
    let late = json!({"id": "late", "type": "item.click", "time": "2020-01-01T00:00:00Z", "actor": "u1", "data": {"item": "i1"}});
    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), late.to_string()).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "too_late")
    );

    // Decisions by id.
    let (st, v) = call(&s, "GET", "/v1/decisions/e1", Some(ANALYST), Body::empty()).await;
    assert_eq!(st, 200);
    assert_eq!(v["decision"], first);
    let (st, v) = call(
        &s,
        "GET",
        "/v1/decisions/nope",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!((st, err_code(&v)), (StatusCode::NOT_FOUND, "unknown_event"));
    s.shutdown().await;
}

#[tokio::test]
async fn authentication_and_roles() {
    let d = tempfile::tempdir().unwrap();
    let s = starter(d.path());
    let ev = register("a1", "u1", "d1");
    let (st, v) = call(&s, "POST", "/v1/events", None, ev.clone()).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let (st, v) = call(
        &s,
        "POST",
        "/v1/events",
        Some("not-a-key-at-all-0000"),
        ev.clone(),
    )
    .await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let (st, v) = call(&s, "POST", "/v1/events", Some(ANALYST), ev.clone()).await;
    assert_eq!((st, err_code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (st, v) = call(&s, "GET", "/v1/decisions/a1", Some(INGEST), Body::empty()).await;
    assert_eq!((st, err_code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (st, v) = call(&s, "POST", "/v1/admin/reload", Some(ANALYST), Body::empty()).await;
    assert_eq!((st, err_code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    // X-Api-Key works too; admin may do everything.
    let req = Request::post("/v1/events")
        .header("x-api-key", ADMIN)
        .body(Body::from(ev))
        .unwrap();
    assert_eq!(s.router.clone().oneshot(req).await.unwrap().status(), 200);
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            call(&s, "GET", open, None, Body::empty()).await.0,
            200,
            "{open} needs no key"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn batches_json_and_ndjson_with_per_item_results() {
    let d = tempfile::tempdir().unwrap();
    let s = starter(d.path());
    let arr = format!(
        "[{}, {}, {{\"id\": \"bad\"}}]",
        register("b1", "u1", "d1"),
        register("b2", "u2", "d2")
    );
    let (st, v) = call(&s, "POST", "/v1/events/batch", Some(INGEST), arr).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["accepted"].as_u64(), v["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    let r = v["results"].as_array().unwrap();
    assert_eq!(r[0]["status"], "accepted");
    assert_eq!(r[2]["http_status"], 400);
    assert_eq!(r[2]["index"], 2);
    assert!(r[2]["error"]["code"].is_string());

    let nd = format!(
        "{}\n\n{}\n",
        register("b3", "u3", "d3"),
        register("b1", "u1", "d1")
    );
    let req = Request::post("/v1/events/batch")
        .header("authorization", format!("Bearer {INGEST}"))
        .header("content-type", "application/x-ndjson")
        .body(Body::from(nd))
        .unwrap();
    let resp = s.router.clone().oneshot(req).await.unwrap();
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["results"][0]["status"], "accepted");
    assert_eq!(v["results"][1]["status"], "duplicate");

    let (st, v) = call(&s, "POST", "/v1/events/batch", Some(INGEST), "[]").await;
    assert_eq!((st, err_code(&v)), (StatusCode::BAD_REQUEST, "empty_batch"));
    let many = format!(
        "[{}]",
        (0..51)
            .map(|i| register(&format!("m{i}"), "u9", "d9"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let (st, v) = call(&s, "POST", "/v1/events/batch", Some(INGEST), many).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_many_items")
    );
    let (st, v) = call(
        &s,
        "POST",
        "/v1/events/batch",
        Some(INGEST),
        "{\"id\": 1}\nnot json\n",
    )
    .await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("line 2"),
        "{v}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn entities_labels_and_lists() {
    let d = tempfile::tempdir().unwrap();
    let s = starter(d.path());
    for (i, dev) in ["d1", "d1", "d1"].iter().enumerate() {
        let (st, v) = call(
            &s,
            "POST",
            "/v1/events",
            Some(INGEST),
            register(&format!("r{i}"), &format!("u{i}"), dev),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, v) = call(
        &s,
        "GET",
        "/v1/entities/device/d1",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let feats = v["features"].as_object().unwrap();
    assert!(!feats.is_empty(), "{v}");
    assert!(
        feats
            .values()
            .any(|x| x.as_i64() == Some(3) || x.as_f64() == Some(3.0)),
        "three registrations on d1 show: {v}"
    );
    let (st, v) = call(
        &s,
        "GET",
        "/v1/entities/user/u0",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["recent_decisions"][0]["event_id"], "r0", "{v}");
    let (st, v) = call(
        &s,
        "GET",
        "/v1/entities/devise/d1",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::NOT_FOUND, "unknown_entity_kind")
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("device"));
    // Personal data is looked up by its token: the raw email never appears in the answer.
    let (st, v) = call(
        &s,
        "GET",
        "/v1/entities/email/u0@example.com",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["key"].as_str().unwrap().starts_with("tk_"), "{v}");

    // Labels: a chargeback naming the original event takes its actor.
    let cb = json!({"id": "cb1", "type": "chargeback", "time": "2026-11-20T09:01:00Z", "data": {"original_event": "r0", "amount": "10.00"}});
    let (st, v) = call(&s, "POST", "/v1/labels", Some(INGEST), cb.to_string()).await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = call(
        &s,
        "GET",
        "/v1/entities/user/u0",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(v["features"]["user_chargebacks"], 1, "{v}");
    let (st, v) = call(
        &s,
        "POST",
        "/v1/labels",
        Some(INGEST),
        register("r9", "u9", "d9"),
    )
    .await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_a_label")
    );
    let orphan = json!({"id": "cb2", "type": "chargeback", "time": "2026-11-20T09:01:00Z", "data": {"original_event": "nope"}});
    let (st, v) = call(&s, "POST", "/v1/labels", Some(INGEST), orphan.to_string()).await;
    assert_eq!((st, err_code(&v)), (StatusCode::NOT_FOUND, "unknown_event"));

    // Lists: add a device with a TTL; the next registration from it is blocked; remove it again.
    let (st, v) = call(
        &s,
        "PUT",
        "/v1/lists/blocked_devices/items/d-evil",
        Some(ANALYST),
        json!({"reason": "case 42", "ttl": "30d"}).to_string(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = call(
        &s,
        "GET",
        "/v1/lists/blocked_devices",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["value"] == "d-evil" && i["reason"] == "case 42"),
        "{v}"
    );
    let (_, v) = call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        register("r20", "u20", "d-evil"),
    )
    .await;
    assert_eq!(v["decision"]["action"], "block", "{v}");
    assert!(v["decision"]["fired"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule"] == "register_blocked_device"));
    let (st, _) = call(
        &s,
        "DELETE",
        "/v1/lists/blocked_devices/d-evil",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(st, 404, "a list route without /items is not a route");
    let (st, v) = call(
        &s,
        "DELETE",
        "/v1/lists/blocked_devices/items/d-evil",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        register("r21", "u21", "d-evil"),
    )
    .await;
    assert_ne!(v["decision"]["action"], "block", "{v}");
    let (st, v) = call(
        &s,
        "DELETE",
        "/v1/lists/blocked_devices/items/d-evil",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!((st, err_code(&v)), (StatusCode::NOT_FOUND, "unknown_item"));
    let (st, v) = call(
        &s,
        "PUT",
        "/v1/lists/blocked_devise/items/x",
        Some(ANALYST),
        json!({"reason": "r"}).to_string(),
    )
    .await;
    assert_eq!((st, err_code(&v)), (StatusCode::NOT_FOUND, "unknown_list"));
    let (st, v) = call(
        &s,
        "PUT",
        "/v1/lists/blocked_devices/items/x",
        Some(ANALYST),
        json!({"reason": "r", "ttl": "soon"}).to_string(),
    )
    .await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_expiry")
    );
    let (st, v) = call(
        &s,
        "PUT",
        "/v1/lists/blocked_devices/items/x",
        Some(ANALYST),
        json!({"why": "r"}).to_string(),
    )
    .await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_body")
    );
    let (st, v) = call(
        &s,
        "PUT",
        "/v1/lists/blocked_devices/items/x",
        Some(ANALYST),
        json!({"reason": " "}).to_string(),
    )
    .await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_reason")
    );
    s.shutdown().await;
}

#[tokio::test]
async fn probes_metrics_openapi_and_unknown_routes() {
    let d = tempfile::tempdir().unwrap();
    let s = starter(d.path());
    call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        register("p1", "u1", "d1"),
    )
    .await;
    let (st, v) = call(&s, "GET", "/healthz", None, Body::empty()).await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (st, v) = call(&s, "GET", "/readyz", None, Body::empty()).await;
    assert_eq!(st, 200);
    assert!(
        v["policy_version"].as_str().unwrap().starts_with("2026"),
        "{v}"
    );
    let (st, v) = call(&s, "GET", "/metrics", None, Body::empty()).await;
    assert_eq!(st, 200);
    let text = v.as_str().unwrap();
    for name in [
        "argus_decisions_total",
        "argus_http_requests_total",
        "argus_http_request_duration_seconds_bucket",
        "argus_events_total",
        "argus_decision_eval_seconds",
        "argus_feature_treatments{treatment=\"lifetime_dropped\"} 0",
        "argus_feature_treatments{treatment=\"exact_cap_evictions\"} 0",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }
    let (st, v) = call(&s, "GET", "/v1/admin/status", Some(ADMIN), Body::empty()).await;
    assert_eq!(st, 200);
    assert_eq!(v["log_last_seq"], 1);
    let (st, v) = call(&s, "GET", "/nowhere", None, Body::empty()).await;
    assert_eq!((st, err_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (st, v) = call(&s, "GET", "/v1/events", Some(INGEST), Body::empty()).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );

    // The OpenAPI document lists exactly the routes the router serves, with the right methods.
    let (st, doc) = call(&s, "GET", "/openapi.json", None, Body::empty()).await;
    assert_eq!(st, 200);
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    let mut served: Vec<(String, String)> = argus_server::api::ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    // Every served route answers something other than 404/405 for its documented method.
    for (m, p, role) in argus_server::api::ROUTES {
        let uri = p
            .replace("{id}", "x")
            .replace("{kind}", "user")
            .replace("{name}", "blocked_devices")
            .replace("{value}", "x");
        let key = role.map(|_| ADMIN);
        let (st, v) = call(&s, &m.to_uppercase(), &uri, key, Body::empty()).await;
        // A route may answer 404 about what it looked up (`unknown_event`, `unknown_list`, …), never
        // the router's own `not_found` (no such route) or 405.
        let code = v
            .get("error")
            .and_then(|e| e["code"].as_str())
            .unwrap_or("");
        let no_route = code == "not_found"
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no such route"));
        assert!(
            st != 405 && !no_route && code != "method_not_allowed",
            "{m} {uri} → {st} {v}"
        );
    }
    // Every route that needs a role refuses a request without a key, and one with a key of too
    // small a role, before it reads anything (the role is written once, in the route table).
    for (m, p, role) in argus_server::api::ROUTES {
        let Some(role) = role else { continue };
        let uri = p
            .replace("{id}", "x")
            .replace("{kind}", "user")
            .replace("{name}", "blocked_devices")
            .replace("{value}", "x");
        let (st, v) = call(&s, &m.to_uppercase(), &uri, None, Body::empty()).await;
        assert_eq!(
            (st, err_code(&v)),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{m} {uri}"
        );
        if *m == "get" {
            // HEAD runs the GET handler: it needs the same key (it did not, for a while).
            let (st, _) = call(&s, "HEAD", &uri, None, Body::empty()).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "HEAD {uri}");
        }
        if *role != Perm::Ingest {
            let (st, v) = call(&s, &m.to_uppercase(), &uri, Some(INGEST), Body::empty()).await;
            assert_eq!(
                (st, err_code(&v)),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{m} {uri}"
            );
        }
    }
    // Secured operations say so in the document.
    for (m, p, role) in argus_server::api::ROUTES {
        let sec = &paths[*p][*m]["security"];
        assert_eq!(
            sec.as_array().is_some_and(|a| !a.is_empty()),
            role.is_some(),
            "{m} {p}: security {sec}"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn reload_validates_then_swaps_and_refuses_feature_changes() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("conf");
    std::fs::create_dir_all(conf.join("policies/lists")).unwrap();
    std::fs::copy(
        repo().join("examples/starter/argus.toml"),
        conf.join("argus.toml"),
    )
    .unwrap();
    for dir in ["", "lists"] {
        for e in std::fs::read_dir(repo().join("policies").join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                std::fs::copy(
                    &p,
                    conf.join("policies").join(dir).join(p.file_name().unwrap()),
                )
                .unwrap();
            }
        }
    }
    let s = Server::start(
        settings(&d.path().join("data")),
        loader(conf.join("argus.toml"), conf.join("policies")),
    )
    .unwrap();
    let (_, v) = call(&s, "GET", "/readyz", None, Body::empty()).await;
    let v0 = v["policy_version"].as_str().unwrap().to_string();
    let pol = conf.join("policies/account_integrity.toml");
    let original = std::fs::read_to_string(&pol).unwrap();

    // A broken policy: refused with diagnostics, the running version kept.
    std::fs::write(
        &pol,
        original.replace(
            "event.device in @blocked_devices",
            "event.devise in @blocked_devices",
        ),
    )
    .unwrap();
    let (st, v) = call(&s, "POST", "/v1/admin/reload", Some(ADMIN), Body::empty()).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_reload")
    );
    assert!(v["error"]["details"].to_string().contains("devise"), "{v}");
    let (_, v) = call(&s, "GET", "/readyz", None, Body::empty()).await;
    assert_eq!(v["policy_version"], v0.as_str());

    // A valid change: swapped in; the new rule decides the next event.
    std::fs::write(&pol, original.replace("score = 100\nreason = \"Registration from a device on the deny list\"", "score = 100\nreason = \"Registration from a device on the deny list\"\n\n[[rules]]\nname = \"register_device_d666\"\nwhen = \"event.device == 'd666'\"\naction = \"review\"\nscore = 1\nreason = \"test rule\"")).unwrap();
    let (st, v) = call(&s, "POST", "/v1/admin/reload", Some(ADMIN), Body::empty()).await;
    assert_eq!(st, 200, "{v}");
    assert_ne!(v["policy_version"], v0.as_str());
    let (_, v) = call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        register("x1", "u1", "d666"),
    )
    .await;
    assert!(
        v["decision"]["fired"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "register_device_d666"),
        "{v}"
    );

    // A feature definition change cannot be applied to running state: refused, nothing swapped.
    let cfg = std::fs::read_to_string(conf.join("argus.toml")).unwrap();
    std::fs::write(
        conf.join("argus.toml"),
        cfg.replacen("window = \"1h\"", "window = \"2h\"", 1),
    )
    .unwrap();
    let (st, v) = call(&s, "POST", "/v1/admin/reload", Some(ADMIN), Body::empty()).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::CONFLICT, "restart_required"),
        "{v}"
    );
    // So is a feature added over existing series (policies read features by position).
    let extra = "\n[[features]]\nname = \"zz_is_weekend\"\nkind = \"is_weekend\"\n";
    std::fs::write(conf.join("argus.toml"), format!("{cfg}{extra}")).unwrap();
    let (st, v) = call(&s, "POST", "/v1/admin/reload", Some(ADMIN), Body::empty()).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::CONFLICT, "restart_required"),
        "{v}"
    );
    // Back to the running definitions: reloads again.
    std::fs::write(conf.join("argus.toml"), &cfg).unwrap();
    assert_eq!(
        call(&s, "POST", "/v1/admin/reload", Some(ADMIN), Body::empty())
            .await
            .0,
        200
    );
    s.shutdown().await;
}

#[tokio::test]
async fn restart_recovers_state_decisions_lists_and_idempotency() {
    let d = tempfile::tempdir().unwrap();
    let mut set = settings(d.path());
    set.snapshot_every_events = 7; // snapshots in between, and a log tail after the last one
    let load = || {
        loader(
            repo().join("examples/starter/argus.toml"),
            repo().join("policies"),
        )
    };
    let s = Server::start(set.clone(), load()).unwrap();
    let lines: Vec<String> = std::fs::read_to_string(repo().join("examples/starter/events.ndjson"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut decisions = Vec::new();
    for l in &lines {
        let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), l.clone()).await;
        if st == 200 {
            decisions.push((v["id"].as_str().unwrap().to_string(), v["decision"].clone()));
        }
    }
    call(
        &s,
        "PUT",
        "/v1/lists/blocked_devices/items/d-late",
        Some(ANALYST),
        json!({"reason": "r"}).to_string(),
    )
    .await;
    let (_, before) = call(&s, "GET", "/v1/admin/status", Some(ADMIN), Body::empty()).await;
    let (_, digest_before) = call(&s, "GET", "/v1/admin/digest", Some(ADMIN), Body::empty()).await;
    assert!(digest_before["state_digest"].is_string(), "{digest_before}");
    // Graceful here (the crash test kills a real process): the final snapshot covers the whole log.
    s.shutdown().await;
    let s = Server::start(set, load()).unwrap();
    assert_eq!(
        s.recovery.snapshot_seq,
        before["log_last_seq"].as_u64().unwrap(),
        "{:?}",
        s.recovery
    );
    let (_, after) = call(&s, "GET", "/v1/admin/status", Some(ADMIN), Body::empty()).await;
    let (_, digest_after) = call(&s, "GET", "/v1/admin/digest", Some(ADMIN), Body::empty()).await;
    assert_eq!(digest_after["state_digest"], digest_before["state_digest"]);
    assert_eq!(after["log_last_seq"], before["log_last_seq"]);
    for (id, d) in &decisions {
        let (_, v) = call(
            &s,
            "GET",
            &format!("/v1/decisions/{id}"),
            Some(ANALYST),
            Body::empty(),
        )
        .await;
        assert_eq!(&v["decision"], d, "{id}");
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("\"{id}\"")))
            .unwrap();
        let (_, v) = call(&s, "POST", "/v1/events", Some(INGEST), line.clone()).await;
        assert_eq!(v["status"], "duplicate", "{id}");
    }
    let (_, v) = call(
        &s,
        "GET",
        "/v1/lists/blocked_devices",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert!(
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["value"] == "d-late"),
        "list changes survive: {v}"
    );
    s.shutdown().await;

    // Personal data never reaches the disk: the log and snapshots hold tokens, not emails or cards.
    let mut files = vec![];
    for sub in ["log", "snapshots"] {
        files.extend(
            std::fs::read_dir(d.path().join(sub))
                .unwrap()
                .map(|e| e.unwrap().path()),
        );
    }
    assert!(files.len() >= 2);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for pii in [
            "alice@example.com",
            "4111 1111 1111 1111",
            "4111111111111111",
            "+44 7700 900001",
            "81.2.69.10",
        ] {
            assert!(!text.contains(pii), "{} holds `{pii}`", f.display());
        }
    }
}

/// Arbitrary JSON values, for envelope fields of every wrong type.
fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z0-9@.:+ -]{0,24}".prop_map(Value::from),
        Just(Value::from("2026-11-20T09:00:00Z")),
        Just(Value::from("account.register")),
        Just(Value::from("payment.attempt")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The HTTP body harness that CI runs on every commit (the cargo-fuzz target `http_body` covers the same
/// ground for longer): random bytes, one-character mutations of a valid event, and envelopes whose
/// fields have random types, on the event, batch and label routes. Every answer must be JSON, and every
/// refusal must have the one error shape; the server must go on answering.
#[test]
fn any_body_gets_a_json_answer_and_errors_have_the_one_shape() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    let s = starter(d.path());
    let valid = register("seed", "u1", "d1");
    let n = valid.len();
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        (0..n, any::<char>()).prop_map(move |(i, c)| {
            let mut v: Vec<char> = register("seed", "u1", "d1").chars().collect();
            v[i] = c;
            v.into_iter().collect::<String>().into_bytes()
        }),
        (json_value(), json_value(), json_value(), json_value(), "[a-z_]{1,12}", json_value()).prop_map(|(id, ty, time, actor, k, v)| {
            json!({"id": id, "type": ty, "time": time, "actor": actor, "data": {k: v}}).to_string().into_bytes()
        }),
        (json_value(), "[a-z_]{1,12}", json_value()).prop_map(|(id, k, v)| {
            json!({"id": id, "type": "payment.attempt", "time": "2026-11-20T09:00:00Z", "actor": "u1", "data": {k: v, "amount": "1.00"}}).to_string().into_bytes()
        }),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 400,
        failure_persistence: None,
        ..Default::default()
    });
    runner
        .run(&(body, 0usize..4), |(body, route)| {
            let uri = [
                "/v1/events",
                "/v1/events/batch",
                "/v1/labels",
                "/v1/events/batch",
            ][route];
            let (st, v) = rt.block_on(async {
                let mut req =
                    Request::post(uri).header("authorization", format!("Bearer {INGEST}"));
                if route == 3 {
                    req = req.header("content-type", "application/x-ndjson");
                }
                let resp = s
                    .router
                    .clone()
                    .oneshot(req.body(Body::from(body.clone())).unwrap())
                    .await
                    .unwrap();
                let st = resp.status();
                let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                (st, serde_json::from_slice::<Value>(&bytes))
            });
            let v = v.map_err(|e| TestCaseError::fail(format!("{st}: answer is not JSON: {e}")))?;
            prop_assert!(st != StatusCode::INTERNAL_SERVER_ERROR, "{v}");
            if st != StatusCode::OK {
                prop_assert!(
                    v["error"]["code"].is_string() && v["error"]["message"].is_string(),
                    "{st}: {v}"
                );
            }
            Ok(())
        })
        .unwrap();
    let (st, _) = rt.block_on(call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        register("after", "u1", "d1"),
    ));
    assert_eq!(st, 200, "the server still answers");
    rt.block_on(s.shutdown());
}

/// Retention: once two snapshots cover a closed segment (and `retention` has passed), it is deleted,
/// its events leave the decision index, and a restart still recovers from the remaining log.
#[tokio::test]
async fn retention_deletes_covered_segments_and_their_decisions() {
    let d = tempfile::tempdir().unwrap();
    let mut set = settings(d.path());
    set.segment_bytes = 4 << 10;
    set.snapshot_every_events = 20;
    set.retention = std::time::Duration::ZERO;
    let load = || {
        loader(
            repo().join("examples/starter/argus.toml"),
            repo().join("policies"),
        )
    };
    let s = Server::start(set.clone(), load()).unwrap();
    let ev = |i: usize| {
        json!({"id": format!("k{i}"), "type": "account.login", "time": "2026-11-20T09:00:00Z", "actor": format!("u{}", i % 7),
               "data": {"success": true, "device": "d1", "ip": "81.2.69.10", "country": "GB"}})
        .to_string()
    };
    for i in 0..400 {
        let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), ev(i)).await;
        assert_eq!(st, 200, "{v}");
        if i % 50 == 49 {
            // Let background snapshots finish, and the core drop deleted segments' events.
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
    }
    // Background snapshots finish on their own time: wait (up to 20 s) for retention to have acted.
    let mut status = Value::Null;
    for _ in 0..200 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = call(&s, "GET", "/v1/admin/status", Some(ADMIN), Body::empty())
            .await
            .1;
        if status["log_first_seq"].as_u64().unwrap() > 1
            && status["indexed_events"].as_u64().unwrap() < 400
        {
            break;
        }
    }
    assert!(
        status["log_first_seq"].as_u64().unwrap() > 1,
        "old segments deleted: {status}"
    );
    assert!(status["indexed_events"].as_u64().unwrap() < 400, "{status}");
    let (st, v) = call(&s, "GET", "/v1/decisions/k0", Some(ANALYST), Body::empty()).await;
    assert_eq!((st, err_code(&v)), (StatusCode::NOT_FOUND, "unknown_event"));
    let (st, _) = call(
        &s,
        "GET",
        "/v1/decisions/k399",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(st, 200);
    // Recent decisions skip the deleted records instead of failing.
    let (st, v) = call(
        &s,
        "GET",
        "/v1/entities/user/u0",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        v["recent_decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["event_id"].is_string()),
        "{v}"
    );
    let digest = call(&s, "GET", "/v1/admin/digest", Some(ADMIN), Body::empty())
        .await
        .1["state_digest"]
        .clone();
    assert!(digest.is_string(), "{digest}");
    s.shutdown().await;
    let s = Server::start(set, load()).unwrap();
    let (_, after) = call(&s, "GET", "/v1/admin/digest", Some(ADMIN), Body::empty()).await;
    assert_eq!(
        after["state_digest"], digest,
        "recovered from the retained log"
    );
    s.shutdown().await;
}

/// Overload and timeouts, against a core that does not answer (its queue is never read): the queue
/// holds `queue_depth` requests; the next gets `503 overloaded` with `Retry-After` at once, and a
/// queued one gets `503 timeout` after `request_timeout`. Every 503 keeps the error shape.
#[tokio::test]
async fn a_full_queue_is_503_overloaded_and_a_slow_core_is_503_timeout() {
    let (tx, _rx) = std::sync::mpsc::sync_channel(1);
    let shared = Arc::new(argus_server::Shared::default());
    let st = argus_server::api::AppState::new(argus_server::api::AppParts {
        tx,
        shared: shared.clone(),
        settings: Arc::new(Settings {
            request_timeout: std::time::Duration::from_millis(200),
            ..Settings::default()
        }),
        decoder: Arc::new(
            argus_engine::Engine::new(argus_engine::Config::builtin())
                .decoder()
                .clone(),
        ),
        cases: None,
        cluster: None,
        lifecycle: None,
        audit: Default::default(),
        vault: None,
        oidc: None,
    });
    let app = argus_server::api::router(st);
    let post = || {
        Request::post("/v1/events")
            .body(Body::from(register("o1", "u1", "d1")))
            .unwrap()
    };
    // The first request takes the only place in the queue and waits for an answer that never comes.
    let first = tokio::spawn(app.clone().oneshot(post()));
    while shared.queued.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let resp = app.clone().oneshot(post()).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(err_code(&v), "overloaded");
    let resp = first.await.unwrap().unwrap();
    assert_eq!(resp.status(), 503);
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(err_code(&v), "timeout");
    // Probes still answer; readiness says the core is not ready.
    assert_eq!(
        app.clone()
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status(),
        503
    );
}

/// `GET /v1/findings`: with `[graph]`, a cluster of accounts sharing a device is found at the hourly
/// refresh and served; after a restart (snapshot-less: the log is replayed) it is there exactly once.
/// Without `[graph]`, 404 `no_graph`.
#[tokio::test]
async fn findings_are_served_and_survive_a_restart_once() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("argus.toml");
    std::fs::write(
        &cfg,
        format!(
            "include = [\"{}\"]\n[graph]\nmin_cluster = 3\n[[graph.links]]\nfield = \"device\"\n",
            repo().join("examples/starter/argus.toml").display()
        ),
    )
    .unwrap();
    let data = d.path().join("data");
    let start = || {
        Server::start(
            settings(&data),
            loader(cfg.clone(), repo().join("policies")),
        )
        .expect("server starts")
    };
    let s = start();
    let reg = |id: &str, actor: &str, device: &str, time: &str| {
        json!({"id": id, "type": "account.register", "time": time, "actor": actor,
               "data": {"email": format!("{actor}@example.com"), "device": device, "ip": "81.2.69.10", "country": "GB"}})
        .to_string()
    };
    for (i, u) in ["u1", "u2", "u3"].iter().enumerate() {
        let (st, v) = call(
            &s,
            "POST",
            "/v1/events",
            Some(INGEST),
            reg(&format!("e{i}"), u, "shared-phone", "2026-11-20T09:00:00Z"),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    // An event an hour later runs the refresh.
    call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        reg("e9", "u9", "own-phone", "2026-11-20T10:30:00Z"),
    )
    .await;
    let (st, v) = call(&s, "GET", "/v1/findings", Some(ANALYST), Body::empty()).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 1);
    assert_eq!(v["findings"][0]["detector"], "cluster");
    assert_eq!(v["findings"][0]["accounts"], json!(["u1", "u2", "u3"]));
    let (_, v) = call(
        &s,
        "GET",
        "/v1/findings?account=u9",
        Some(ANALYST),
        Body::empty(),
    )
    .await;
    assert_eq!(v["findings"], json!([]));
    let (st, _) = call(&s, "GET", "/v1/findings", Some(INGEST), Body::empty()).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (_, v) = call(&s, "GET", "/v1/admin/status", Some(ADMIN), Body::empty()).await;
    assert_eq!(v["graph"]["findings"], 1, "{v}");
    s.shutdown().await;
    // Restart: the snapshot written at shutdown, or the log's replay, must not store it twice.
    let _ = std::fs::remove_dir_all(data.join("snapshots"));
    let s = start();
    let (_, v) = call(&s, "GET", "/v1/findings", Some(ANALYST), Body::empty()).await;
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read_to_string(data.join("findings.ndjson"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    s.shutdown().await;
    // The starter configuration has no graph.
    let s = starter(&d.path().join("plain"));
    let (st, v) = call(&s, "GET", "/v1/findings", Some(ANALYST), Body::empty()).await;
    assert_eq!((st, err_code(&v)), (StatusCode::NOT_FOUND, "no_graph"));
    s.shutdown().await;
}

/// Defects an outside reliability test found (P3.0), each with the request that showed it.
#[tokio::test]
async fn hostile_inputs_found_by_the_outside_test() {
    let d = tempfile::tempdir().unwrap();
    let s = starter(d.path());
    // One far-future event would move the watermark for good: every later event `too_late`.
    let future = json!({"id": "f1", "type": "account.register", "time": "9999-12-31T00:00:00Z", "actor": "u9",
                        "data": {"email": "u9@example.com", "device": "d9", "ip": "81.2.69.10", "country": "GB"}});
    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), future.to_string()).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "too_far_in_future"),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("9999-12-31"),
        "the message shows the value: {v}"
    );
    let (st, v) = call(
        &s,
        "POST",
        "/v1/events",
        Some(INGEST),
        register("after-future", "u1", "d1"),
    )
    .await;
    assert_eq!(
        (st, v["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{v}"
    );
    // A year ahead (a sender's clock that is wrong) is refused the same way.
    let year = argus_event::time::format_rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            + 365 * 86_400_000,
    );
    let ahead = json!({"id": "f2", "type": "account.login", "time": year, "actor": "u1", "data": {"success": true, "device": "d1", "ip": "81.2.69.10"}});
    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), ahead.to_string()).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "too_far_in_future")
    );

    // Duplicate JSON keys: which one counts would change the decision.
    let dup = r#"{"id":"k1","type":"account.login","time":"2026-11-20T09:00:00Z","actor":"u1","data":{"success":true,"success":false,"device":"d1","ip":"81.2.69.10"}}"#;
    let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), dup).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::BAD_REQUEST, "duplicate_key"),
        "{v}"
    );
    assert!(v["error"]["details"][0]["path"] == "/data/success", "{v}");
    let (st, v) = call(
        &s,
        "POST",
        "/v1/events/batch",
        Some(INGEST),
        format!("[{dup}]"),
    )
    .await;
    assert_eq!(
        (st, v["results"][0]["error"]["code"].as_str()),
        (StatusCode::OK, Some("duplicate_key")),
        "{v}"
    );
    // A label without an actor (filled in from the original event) is checked before it is rewritten.
    let label = r#"{"id":"l1","type":"chargeback","time":"2026-11-20T09:00:00Z","data":{"original_event":"after-future","original_event":"x"}}"#;
    let (st, v) = call(&s, "POST", "/v1/labels", Some(INGEST), label).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::BAD_REQUEST, "duplicate_key"),
        "{v}"
    );

    // Card numbers failing the Luhn check, malformed emails, control characters in ids.
    for (field, value, want) in [
        ("card", "4111 1111 1111 1112", "/data/card"),
        ("email", "a@@b", "/data/email"),
        ("email", "a@b", "/data/email"),
        ("device", "d\u{7}1", "/data/device"),
    ] {
        let mut data =
            json!({"email": "ok@example.com", "device": "d1", "ip": "81.2.69.10", "country": "GB"});
        let ty = if field == "card" {
            "payment.attempt"
        } else {
            "account.register"
        };
        if field == "card" {
            data = json!({"order": "o1", "amount": "10.00", "currency": "EUR", "device": "d1", "ip": "81.2.69.10"});
        }
        data[field] = json!(value);
        let ev = json!({"id": format!("bad-{field}-{}", value.len()), "type": ty, "time": "2026-11-20T09:00:00Z", "actor": "u1", "data": data});
        let (st, v) = call(&s, "POST", "/v1/events", Some(INGEST), ev.to_string()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{field} {value:?}: {v}");
        assert!(
            v["error"]["details"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["path"] == want),
            "{field}: {v}"
        );
    }
    let ev = json!({"id": "ctl\u{1}", "type": "account.login", "time": "2026-11-20T09:00:00Z", "actor": "u1", "data": {"success": true}});
    let (st, _) = call(&s, "POST", "/v1/events", Some(INGEST), ev.to_string()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // The entity API validates the id as the field of that kind would be.
    let (st, v) = call(
        &s,
        "GET",
        "/v1/entities/email/not-an-email",
        Some(ANALYST),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    err_code(&v);
    let (st, _) = call(
        &s,
        "GET",
        "/v1/entities/email/u1@example.com",
        Some(ANALYST),
        "",
    )
    .await;
    assert_eq!(st, StatusCode::OK);

    // Error answers that bypassed the one error shape.
    let (st, v) = call(&s, "GET", "/v1/findings?limit=abc", Some(ANALYST), "").await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    let (st, v) = call(&s, "GET", "/v1/decisions/%FF%FE", Some(ANALYST), "").await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_path")
    );
    let long = format!("/v1/decisions/{}", "x".repeat(argus_server::api::MAX_URI));
    let (st, v) = call(&s, "GET", &long, Some(ANALYST), "").await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::URI_TOO_LONG, "uri_too_long")
    );

    // The bearer scheme is case-insensitive.
    let req = Request::builder()
        .method("GET")
        .uri("/v1/admin/status")
        .header("authorization", format!("bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        s.router.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );

    // Status is cheap (no full-state digest); the digest has its own route and is stable.
    let (st, v) = call(&s, "GET", "/v1/admin/status", Some(ADMIN), "").await;
    assert_eq!(st, 200);
    assert!(
        v.get("state_digest").is_none()
            && v["keys"].as_u64().is_some()
            && v["idempotency_ids"].as_u64().is_some(),
        "{v}"
    );
    let (_, a) = call(&s, "GET", "/v1/admin/digest", Some(ADMIN), "").await;
    let (_, b) = call(&s, "GET", "/v1/admin/digest", Some(ADMIN), "").await;
    assert_eq!(a["state_digest"], b["state_digest"]);
    assert_eq!(a["state_digest"].as_str().map(str::len), Some(16), "{a}");
    s.shutdown().await;

    // Data files are readable by their owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(d.path()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for e in std::fs::read_dir(d.path().join("log"))
            .unwrap()
            .chain(std::fs::read_dir(d.path().join("snapshots")).unwrap())
        {
            let p = e.unwrap().path();
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o077,
                0,
                "{} is readable by others",
                p.display()
            );
        }
    }
}

#[tokio::test]
async fn a_reload_with_an_invalid_server_section_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("argus.toml");
    let starter_cfg = std::fs::read_to_string(repo().join("examples/starter/argus.toml")).unwrap();
    std::fs::write(&cfg, &starter_cfg).unwrap();
    let data = d.path().join("data");
    let s = Server::start(
        settings(&data),
        loader(cfg.clone(), repo().join("policies")),
    )
    .unwrap();
    std::fs::write(
        &cfg,
        format!("{starter_cfg}\n[server]\nfsync = \"sometimes\"\n"),
    )
    .unwrap();
    let (st, v) = call(&s, "POST", "/v1/admin/reload", Some(ADMIN), "").await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_reload"),
        "{v}"
    );
    assert!(
        v["error"]["details"].to_string().contains("server.fsync"),
        "{v}"
    );
    s.shutdown().await;
}

#[test]
fn one_key_under_two_roles_is_warned_about() {
    let mut s = settings(Path::new("unused"));
    s.api_keys.push(ApiKey {
        name: "copy".into(),
        role: Role::preset("admin").unwrap().into(),
        key: INGEST.into(),
    });
    let w = s.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("checkout") && w[0].contains("copy"), "{w:?}");
}

/// Snapshots keep up with ingestion: a copy that began with K keys finishes within about K/2
/// records, however fast batches arrive (each step copies at least twice the records applied since
/// the last). Before, steps were paced by the clock alone, and a snapshot under sustained batches
/// finished only after about as many records as keys, or never.
#[tokio::test]
async fn snapshots_keep_up_with_sustained_batches() {
    let d = tempfile::tempdir().unwrap();
    let set = Settings {
        snapshot_every_events: 4000,
        max_batch: 1000,
        max_body: 1 << 20,
        ..settings(d.path())
    };
    let s = Server::start(
        set,
        loader(
            repo().join("examples/starter/argus.toml"),
            repo().join("policies"),
        ),
    )
    .unwrap();
    // Bodies built first, then sent by three clients at once, so that a batch is always waiting and
    // the core is never idle (idle time is spent on the copy, which would hide the problem).
    let bodies: Vec<String> = (0..120u64)
        .map(|b| {
            let batch: Vec<Value> = (0..500u64)
                .map(|i| {
                    let n = b * 500 + i;
                    serde_json::from_str(&register(
                        &format!("s{n}"),
                        &format!("su{n}"),
                        &format!("sd{n}"),
                    ))
                    .unwrap()
                })
                .collect();
            Value::Array(batch).to_string()
        })
        .collect();
    let bodies = Arc::new(std::sync::Mutex::new(bodies));
    let s = Arc::new(s);
    let senders: Vec<_> = (0..3)
        .map(|_| {
            let (s, bodies) = (s.clone(), bodies.clone());
            tokio::spawn(async move {
                loop {
                    let Some(body) = bodies.lock().unwrap().pop() else {
                        break;
                    };
                    let (st, v) = call(&s, "POST", "/v1/events/batch", Some(INGEST), body).await;
                    assert_eq!(
                        (st, v["accepted"].as_u64()),
                        (StatusCode::OK, Some(500)),
                        "{v}"
                    );
                }
            })
        })
        .collect();
    let mut copy: Option<(u64, u64)> = None;
    let mut checked = 0;
    // Polled while the load runs, and after it until the copy seen last has landed: its snapshot
    // records the record at which the copy finished, whenever its file is written (the status
    // requests wait behind whole batches in the core's queue, so polls are sparse under load).
    let mut after = 0;
    let mut busy = true;
    while senders.iter().any(|t| !t.is_finished()) || (copy.is_some() && busy && after < 500) {
        if senders.iter().all(|t| t.is_finished()) {
            after += 1;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let (_, st) = call(&s, "GET", "/v1/admin/status", Some(ADMIN), "").await;
        busy = st["snapshot_in_progress"] == true;
        if let Some((from, keys)) = copy {
            let snap = st["snapshot_seq"].as_u64().unwrap();
            if snap > from {
                assert!(snap - from <= keys / 2 + 1500, "a copy of {keys} keys began after record {from} and finished only at record {snap}");
                checked += 1;
                copy = None;
            }
        }
        if copy.is_none() {
            if let Some(c) = st["snapshot_copy"].as_object() {
                copy = Some((c["from_seq"].as_u64().unwrap(), c["keys"].as_u64().unwrap()));
            }
        }
    }
    for t in senders {
        t.await.unwrap();
    }
    // At least one whole copy is seen under load (the first, of about 12,000 keys, or the second).
    assert!(checked >= 1, "{checked} snapshots measured");
    let Ok(s) = Arc::try_unwrap(s) else {
        panic!("the server is still shared")
    };
    s.shutdown().await;
}

/// A reload that changes `[text]` (here only a threshold: no feature added or removed) cannot be
/// applied to the running stage: refused, naming the section, like `[graph]`.
#[tokio::test]
async fn a_reload_refuses_a_changed_text_section() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let text = |threshold: &str| {
        format!(
            "include = [\"{}\"]\n[[event_types]]\nname = \"review.create\"\n[event_types.fields]\ntext = {{ type = \"string\" }}\n[[text.duplicates]]\nname = \"review\"\nevents = [\"review.create\"]\nfield = \"text\"\nthreshold = {threshold}\n",
            repo().join("examples/starter/argus.toml").display()
        )
    };
    std::fs::write(conf.join("argus.toml"), text("0.6")).unwrap();
    let s = Server::start(
        settings(&d.path().join("data")),
        loader(conf.join("argus.toml"), repo().join("policies")),
    )
    .unwrap();
    let (st, _) = call(&s, "POST", "/v1/admin/reload", Some(ADMIN), Body::empty()).await;
    assert_eq!(st, StatusCode::OK, "the same configuration reloads");
    std::fs::write(conf.join("argus.toml"), text("0.8")).unwrap();
    let (st, v) = call(&s, "POST", "/v1/admin/reload", Some(ADMIN), Body::empty()).await;
    assert_eq!(
        (st, err_code(&v)),
        (StatusCode::CONFLICT, "restart_required"),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("[text]"),
        "{v}"
    );
    s.shutdown().await;
}
