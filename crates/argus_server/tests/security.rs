//! Security checks over the whole API (P3.6): the authorization matrix — every route × every role,
//! and no key — and the per-key rate limit.

use crate::common;
use argus_server::settings::{ApiKey, Perm, RateLimit, Role};
use axum::body::Body;
use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

/// The four built-in roles and, for each permission, a role of the deployment's with only it.
fn principals() -> Vec<(Role, String)> {
    let mut v: Vec<(Role, String)> = ["ingest", "analyst", "investigator", "admin"]
        .into_iter()
        .map(|n| (Role::preset(n).unwrap(), format!("{n}-key-0123456789")))
        .collect();
    for p in Perm::ALL {
        v.push((
            Role {
                name: format!("only-{}", p.name()),
                permissions: argus_server::settings::Perms::of(&[p]),
                inboxes: None,
            },
            format!("only-{}-key-0123456789", p.name()),
        ));
    }
    v
}

/// Written out by hand, apart from the route table: who may use the routes that matter most.
const SENSITIVE: &[(&str, &str, &[&str])] = &[
    ("POST", "/v1/events", &["ingest", "admin", "only-ingest"]),
    ("POST", "/v1/erasure", &["admin", "only-admin"]),
    ("GET", "/v1/audit", &["admin", "only-admin"]),
    ("PUT", "/v1/users/blocked_devices", &["admin", "only-admin"]),
    (
        "POST",
        "/v1/decisions/x/reveal",
        &["investigator", "admin", "only-reveal"],
    ),
    (
        "POST",
        "/v1/versions/x/approve",
        &["investigator", "admin", "only-approve"],
    ),
    (
        "POST",
        "/v1/rollout",
        &["investigator", "admin", "only-approve"],
    ),
    (
        "POST",
        "/v1/versions",
        &["analyst", "investigator", "admin", "only-rules"],
    ),
    (
        "PUT",
        "/v1/lists/blocked_devices/items/x",
        &["analyst", "investigator", "admin", "only-rules"],
    ),
    (
        "POST",
        "/v1/cases/x/verdict",
        &["analyst", "investigator", "admin", "only-cases"],
    ),
    (
        "POST",
        "/v1/bulk",
        &["investigator", "admin", "only-investigate"],
    ),
    (
        "GET",
        "/v1/decisions/x",
        &["analyst", "investigator", "admin", "only-read"],
    ),
];

/// Every route × every role (the built-in ones and one role per permission): a role without the
/// route's permission is refused (403 `forbidden`) before the handler runs, no key is 401 on every
/// secured route, and a role with it is let through (whatever the handler then says of the empty
/// request, it is not 401 or 403 `forbidden`). The sensitive routes are also checked against a
/// table written by hand.
#[tokio::test]
async fn every_route_answers_every_role_as_the_route_table_says() {
    let d = tempfile::tempdir().unwrap();
    let mut settings = settings(d.path());
    settings.api_keys.clear();
    for (role, key) in principals() {
        if role.name.starts_with("only-") {
            settings.roles.insert(role.clone());
        }
        settings.api_keys.push(ApiKey {
            name: role.name.clone(),
            role: role.into(),
            key,
        });
    }
    let s = argus_server::Server::start(
        settings,
        loader(
            repo().join("examples/starter/argus.toml"),
            repo().join("policies"),
        ),
    )
    .unwrap();
    let mut table = format!("{:<45}", "route");
    for (r, _) in principals() {
        table.push_str(&format!(" {}", r.name));
    }
    table.push('\n');
    let mut checked = 0;
    let mut allowed_by_hand = std::collections::HashMap::new();
    for (m, p, needed) in argus_server::api::ROUTES {
        let uri = p
            .replace("{id}", "x")
            .replace("{kind}", "user")
            .replace("{name}", "blocked_devices")
            .replace("{value}", "x")
            .replace("{file}", "app.js");
        let method = m.to_uppercase();
        let mut row = format!("{:<45}", format!("{method} {p}"));
        let (st, _) = call(&s, &method, &uri, None, Body::empty()).await;
        match needed {
            Some(_) => assert_eq!(st, StatusCode::UNAUTHORIZED, "{method} {uri} without a key"),
            None => assert_ne!(st, StatusCode::UNAUTHORIZED, "{method} {uri} is open"),
        }
        for (role, key) in principals() {
            let (st, v) = call(&s, &method, &uri, Some(&key), Body::empty()).await;
            let code = v
                .get("error")
                .and_then(|e| e["code"].as_str())
                .unwrap_or("")
                .to_string();
            let any_role = *p == "/v1/session";
            let allowed = needed.is_none_or(|n| any_role || role.allows(n));
            if allowed {
                assert!(
                    st != StatusCode::UNAUTHORIZED && code != "forbidden",
                    "{method} {uri} as {}: {st} {v}",
                    role.name
                );
            } else {
                assert_eq!(
                    (st, code.as_str()),
                    (StatusCode::FORBIDDEN, "forbidden"),
                    "{method} {uri} as {}",
                    role.name
                );
            }
            if allowed {
                allowed_by_hand
                    .entry(format!("{method} {uri}"))
                    .or_insert_with(Vec::new)
                    .push(role.name.clone());
            }
            row.push_str(&format!(
                " {:>w$}",
                if allowed { "yes" } else { "403" },
                w = role.name.len()
            ));
            checked += 1;
        }
        table.push_str(&row);
        table.push('\n');
    }
    eprintln!("{table}");
    assert_eq!(
        checked,
        argus_server::api::ROUTES.len() * principals().len()
    );
    for (m, uri, who) in SENSITIVE {
        let got = allowed_by_hand
            .get(&format!("{m} {uri}"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(got, *who, "{m} {uri}");
    }
    s.shutdown().await;
}

async fn jcall(
    s: &argus_server::Server,
    method: &str,
    uri: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let b = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    call(s, method, uri, Some(key), b).await
}

/// A role scoped to some inboxes sees and works only their cases: the list, the inboxes, a case by
/// id (another inbox's is "not found", like one that does not exist), claiming, notes, verdicts,
/// opening a case and bulk targets; the outbox, which spans every inbox, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_scoped_to_inboxes_sees_and_works_only_their_cases() {
    let d = tempfile::tempdir().unwrap();
    let mut settings = settings(d.path());
    settings.cases = argus_server::settings::cases(
        &toml::from_str(
            "[[inboxes]]\nname = \"apac-sg\"\n[[inboxes]]\nname = \"emea\"\n[[routes]]\ninbox = \"emea\"",
        )
        .unwrap(),
        |_| None,
    )
    .unwrap();
    let apac = Role {
        name: "apac-reviewer".into(),
        permissions: argus_server::settings::Perms::of(&[
            Perm::Read,
            Perm::Cases,
            Perm::Investigate,
        ]),
        inboxes: Some(vec!["apac-*".into()]),
    };
    settings.roles.insert(apac.clone());
    const APAC: &str = "apac-key-0123456789";
    settings.api_keys.push(ApiKey {
        name: "apac".into(),
        role: apac.into(),
        key: APAC.into(),
    });
    let s = argus_server::Server::start(
        settings,
        loader(
            repo().join("examples/starter/argus.toml"),
            repo().join("policies"),
        ),
    )
    .unwrap();
    // The case store opens in the background.
    let t = std::time::Instant::now();
    while call(&s, "GET", "/v1/inboxes", Some(ADMIN), Body::empty())
        .await
        .0
        != 200
    {
        assert!(t.elapsed() < std::time::Duration::from_secs(30));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let open = |inbox: &str, id: &str| json!({"subject": {"kind": "user", "id": id}, "inbox": inbox, "note": "manual"});
    let (st, sg) = jcall(&s, "POST", "/v1/cases", ADMIN, open("apac-sg", "u-sg")).await;
    assert_eq!(st, 200, "{sg}");
    let (st, eu) = jcall(&s, "POST", "/v1/cases", ADMIN, open("emea", "u-eu")).await;
    assert_eq!(st, 200, "{eu}");
    let (sg, eu) = (sg["id"].as_str().unwrap(), eu["id"].as_str().unwrap());

    // What the scoped role sees.
    let (_, v) = jcall(&s, "GET", "/v1/inboxes", APAC, Value::Null).await;
    let names: Vec<&str> = v["inboxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["apac-sg"]);
    let ids = |v: &Value| -> Vec<String> {
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, v) = jcall(&s, "GET", "/v1/cases", APAC, Value::Null).await;
    assert_eq!(ids(&v), [sg]);
    let (_, v) = jcall(&s, "GET", "/v1/cases?inbox=emea", APAC, Value::Null).await;
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = jcall(&s, "GET", "/v1/cases", ADMIN, Value::Null).await;
    assert_eq!(ids(&v).len(), 2, "an unscoped role sees both");
    let (_, v) = jcall(&s, "GET", "/v1/entities/user/u-eu/cases", APAC, Value::Null).await;
    assert!(v["cases"].as_array().unwrap().is_empty(), "{v}");

    // Another inbox's case is not found, whatever is asked of it.
    let (st, v) = jcall(&s, "GET", &format!("/v1/cases/{eu}"), APAC, Value::Null).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    for (m, path, body) in [
        ("POST", "claim", Value::Null),
        ("POST", "notes", json!({"text": "looked"})),
        (
            "POST",
            "verdict",
            json!({"disposition": "legitimate", "reason": "fine"}),
        ),
        ("POST", "reopen", json!({"reason": "again"})),
    ] {
        let (st, v) = jcall(&s, m, &format!("/v1/cases/{eu}/{path}"), APAC, body).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    let (st, _) = jcall(&s, "POST", "/v1/cases/next", APAC, json!({"inbox": "emea"})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = jcall(&s, "POST", "/v1/cases", APAC, open("emea", "u-x")).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("out_of_scope"))
    );
    let (st, v) = jcall(
        &s,
        "POST",
        "/v1/bulk/preview",
        APAC,
        json!({"target": {"filter": {"status": "open"}}, "action": "ban"}),
    )
    .await;
    assert_eq!((st, v["cases"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
    let (st, _) = jcall(
        &s,
        "POST",
        "/v1/bulk/preview",
        APAC,
        json!({"target": {"case": eu}, "action": "ban"}),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = jcall(&s, "GET", "/v1/outbox", APAC, Value::Null).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("out_of_scope"))
    );

    // A verdict that would put a value on a list or snooze a rule changes rules: `rules` needed.
    let (st, v) = jcall(&s, "POST", &format!("/v1/cases/{sg}/verdict"), APAC, json!({"disposition": "legitimate", "reason": "fine", "snooze": {"rules": ["x"], "ttl": "1d"}})).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{v}"
    );
    // Its own inbox's case: worked as usual, and the session says the scope.
    let (st, v) = jcall(
        &s,
        "POST",
        &format!("/v1/cases/{sg}/claim"),
        APAC,
        Value::Null,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = jcall(
        &s,
        "POST",
        &format!("/v1/cases/{sg}/verdict"),
        APAC,
        json!({"disposition": "legitimate", "reason": "known customer"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, v) = jcall(&s, "GET", "/v1/session", APAC, Value::Null).await;
    assert_eq!(v["role"], "apac-reviewer");
    assert_eq!(v["permissions"], json!(["read", "cases", "investigate"]));
    assert_eq!(v["inboxes"], json!(["apac-*"]));

    // A console user gets a configured role by name, and logs in with its scope.
    let (st, v) = jcall(
        &s,
        "PUT",
        "/v1/users/mei",
        ADMIN,
        json!({"role": "apac-reviewer", "password": "a long enough password"}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = jcall(
        &s,
        "PUT",
        "/v1/users/bob",
        ADMIN,
        json!({"role": "superuser", "password": "a long enough password"}),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_role"))
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("apac-reviewer"),
        "{v}"
    );
    let (st, v) = call(
        &s,
        "POST",
        "/v1/session",
        None,
        Body::from(json!({"username": "mei", "password": "a long enough password"}).to_string()),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["role"], "apac-reviewer");
    assert_eq!(v["inboxes"], json!(["apac-*"]));
    s.shutdown().await;
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after_and_others_do_not() {
    let d = tempfile::tempdir().unwrap();
    let mut settings = settings(d.path());
    settings
        .rate_limits
        .insert("analyst".into(), RateLimit::parse("5/min").unwrap());
    assert!(RateLimit::parse("5/fortnight").is_none());
    assert!(RateLimit::parse("-1/s").is_none());
    let s = argus_server::Server::start(
        settings,
        loader(
            repo().join("examples/starter/argus.toml"),
            repo().join("policies"),
        ),
    )
    .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (st, v) = call(
            &s,
            "GET",
            "/v1/lists/blocked_devices",
            Some(ANALYST),
            Body::empty(),
        )
        .await;
        if st == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(err_code(&v), "rate_limited");
        }
        statuses.push(st.as_u16());
    }
    // A bucket of 5 (one minute's worth), refilled at one every 12 s.
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    let resp = tower::ServiceExt::oneshot(
        s.router.clone(),
        axum::http::Request::builder()
            .uri("/v1/lists/blocked_devices")
            .header("authorization", format!("Bearer {ANALYST}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&wait), "{wait}");
    // Another key has its own bucket (none here).
    let (st, _) = call(
        &s,
        "GET",
        "/v1/lists/blocked_devices",
        Some(ADMIN),
        Body::empty(),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    s.shutdown().await;
}
