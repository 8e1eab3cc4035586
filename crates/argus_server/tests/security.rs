//! Security checks over the whole API (P3.6): the authorization matrix — every route × every role,
//! and no key — and the per-key rate limit.

mod common;
use argus_server::settings::{ApiKey, RateLimit, Role};
use axum::body::Body;
use axum::http::StatusCode;
use common::*;

const INVESTIGATOR: &str = "investigator-key-0123456789";

fn keys() -> [(Role, &'static str); 4] {
    [
        (Role::Ingest, INGEST),
        (Role::Analyst, ANALYST),
        (Role::Investigator, INVESTIGATOR),
        (Role::Admin, ADMIN),
    ]
}

/// Every route × every role: a role below the route's is refused (403 `forbidden`) before the
/// handler runs, no key is 401 on every secured route, and a role at or above it is let through
/// (whatever the handler then says of the empty request, it is not 401 or 403 `forbidden`).
#[tokio::test]
async fn every_route_answers_every_role_as_the_route_table_says() {
    let d = tempfile::tempdir().unwrap();
    let mut settings = settings(d.path());
    settings.api_keys.push(ApiKey {
        name: "ivan".into(),
        role: Role::Investigator,
        key: INVESTIGATOR.into(),
    });
    let s = argus_server::Server::start(
        settings,
        loader(
            repo().join("examples/starter/argus.toml"),
            repo().join("policies"),
        ),
    )
    .unwrap();
    let mut table = String::from(
        "route                                         ingest analyst investigator admin\n",
    );
    let mut checked = 0;
    for (m, p, needed) in argus_server::api::ROUTES {
        // Routes that stop or log out the caller's own session are left to their own tests.
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
        for (role, key) in keys() {
            let (st, v) = call(&s, &method, &uri, Some(key), Body::empty()).await;
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
                    role.name()
                );
            } else {
                assert_eq!(
                    (st, code.as_str()),
                    (StatusCode::FORBIDDEN, "forbidden"),
                    "{method} {uri} as {}",
                    role.name()
                );
            }
            row.push_str(&format!(
                " {:>w$}",
                if allowed { "yes" } else { "403" },
                w = role.name().len()
            ));
            checked += 1;
        }
        table.push_str(&row);
        table.push('\n');
    }
    eprintln!("{table}");
    assert_eq!(checked, argus_server::api::ROUTES.len() * 4);
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
