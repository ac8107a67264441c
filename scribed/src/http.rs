//! The status endpoint (default `127.0.0.1:1464`):
//!
//! - `GET /metrics` — Prometheus text format: per-category counters and per-store gauges.
//! - `GET /health` — `200 ok` while serving; `503` during shutdown, when a failed reload left
//!   no stores in service, or `503 degraded` while a store refuses writes (its last write
//!   failed: a full disk, an upstream down with no spool, a full spool), naming each such store
//!   and why, until a write to it succeeds again.
//! - `GET /ready` — `200 ready` when batches can be acknowledged; `503 not ready` and why
//!   otherwise (the same conditions): for load balancers, to send clients elsewhere.
//! - `GET /status` — JSON: version, uptime, fb303 status, stores, counters.
//!
//! With `status_token_file`, `/metrics` and `/status` answer `401` unless the request carries
//! `Authorization: Bearer <token>`; `/health` and `/ready` stay open for probes (they say
//! only whether scribed can take batches).
//!
//! The exposition format is written by hand: the counters already live in one map with
//! Scribe's names, and turning them into `name{label="v"} value` lines is a few lines; a
//! metrics registry crate would duplicate every counter for no gain.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::counters::OVERALL;
use crate::Server;

/// Serves the status endpoint on `listener` until shutdown.
pub async fn serve(listener: TcpListener, server: Arc<Server>) {
    let shutdown = server.shutdown.clone();
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .with_state(server);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!("status endpoint failed: {e}");
    }
}

/// Why scribed cannot acknowledge batches now, if it cannot.
async fn trouble(server: &Server) -> Option<String> {
    if server.shutdown.is_cancelled() {
        return Some("stopping".into());
    }
    if let Some(why) = server.unserviceable() {
        return Some(why);
    }
    let refusing = server.routing.read().await.refusing();
    if refusing.is_empty() {
        return None;
    }
    let lines: Vec<String> = refusing
        .into_iter()
        .map(|(name, why)| {
            // A store error usually begins with the store's own name already.
            let why = why.strip_prefix(&format!("{name}: ")).unwrap_or(&why);
            format!("{name} refuses writes: {why}")
        })
        .collect();
    Some(format!("degraded\n{}", lines.join("\n")))
}

async fn health(State(server): State<Arc<Server>>) -> impl IntoResponse {
    match trouble(&server).await {
        None => (StatusCode::OK, "ok\n".to_string()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn ready(State(server): State<Arc<Server>>) -> impl IntoResponse {
    match trouble(&server).await {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// `401` unless the request has the status token (when one is configured).
fn unauthorized(server_rules: &crate::auth::Rules, headers: &HeaderMap) -> Option<Response> {
    let token = server_rules.status_token()?;
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match offered {
        Some(t) if token.matches(t.as_bytes()) => None,
        _ => Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "token required: Authorization: Bearer <status_token_file's token>\n",
            )
                .into_response(),
        ),
    }
}

async fn status(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let routing = server.routing.read().await.clone();
    if let Some(r) = unauthorized(&routing.rules, &headers) {
        return r;
    }
    let body = serde_json::json!({
        "name": "scribed",
        "version": env!("CARGO_PKG_VERSION"),
        "alive_since": server.alive_since,
        "status": format!("{:?}", server.status().await).to_uppercase(),
        "config": routing.settings.config_path,
        "queued_bytes": routing.caps.total_queued(),
        "stores": routing.status(),
        "refusing": routing
            .refusing()
            .into_iter()
            .map(|(store, error)| serde_json::json!({ "store": store, "error": error }))
            .collect::<Vec<_>>(),
        "counters": server.counters.snapshot(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// How `metrics` writes one gauge family: (out, name, help, the value of a store).
type Gauge<'a> =
    &'a dyn Fn(&mut String, &str, &str, &dyn Fn(&crate::stores::StoreStatus) -> Option<u64>);

/// File stores' uploads to object stores (`[store.s3]`): backlog and progress.
fn upload_metrics(out: &mut String, stores: &[crate::stores::StoreStatus], gauge: Gauge<'_>) {
    if stores.iter().all(|s| s.upload.is_none()) {
        return;
    }
    type Field = fn(&crate::stores::upload::UploadState) -> u64;
    let rows: [(&str, &str, Field); 7] = [
        (
            "scribed_upload_backlog_files",
            "Closed files awaiting upload.",
            |u| u.backlog_files,
        ),
        (
            "scribed_upload_backlog_bytes",
            "Bytes of closed files awaiting upload.",
            |u| u.backlog_bytes,
        ),
        (
            "scribed_upload_backlog_oldest_seconds",
            "Age of the oldest file awaiting upload.",
            |u| u.oldest_backlog_seconds,
        ),
        (
            "scribed_uploaded_files",
            "Files uploaded since start.",
            |u| u.uploaded_files,
        ),
        (
            "scribed_uploaded_bytes",
            "Bytes uploaded since start.",
            |u| u.uploaded_bytes,
        ),
        (
            "scribed_upload_already_present",
            "Files found already uploaded (retries after a restart).",
            |u| u.already_present,
        ),
        (
            "scribed_upload_failures",
            "Failed upload passes since start (each retried with backoff).",
            |u| u.failures,
        ),
    ];
    for (name, help, f) in rows {
        gauge(out, name, help, &|s| s.upload.as_ref().map(f));
    }
}

async fn metrics(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let routing = server.routing.read().await.clone();
    if let Some(r) = unauthorized(&routing.rules, &headers) {
        return r;
    }
    let mut out = String::with_capacity(4096);
    // Per-category counters: `<category>:<name>` becomes
    // `scribed_<name>_total{category="<category>"}`; overall-only ones have no label.
    let mut families: std::collections::BTreeMap<String, Vec<(Option<String>, i64)>> =
        Default::default();
    for (key, value) in server.counters.snapshot() {
        let Some((cat, name)) = key.rsplit_once(':') else {
            continue;
        };
        let metric = format!("scribed_{}_total", name.replace(' ', "_"));
        let label = (cat != OVERALL).then(|| cat.to_string());
        families.entry(metric).or_default().push((label, value));
    }
    for (metric, samples) in &families {
        let has_categories = samples.iter().any(|(l, _)| l.is_some());
        let _ = writeln!(out, "# TYPE {metric} counter");
        for (label, value) in samples {
            match label {
                Some(c) => {
                    let _ = writeln!(out, "{metric}{{category=\"{}\"}} {value}", escape(c));
                }
                // With per-category samples the overall one is their sum: leave it out.
                None if !has_categories => {
                    let _ = writeln!(out, "{metric} {value}");
                }
                None => {}
            }
        }
    }
    let stores = routing.status();
    let gauge = |out: &mut String,
                 name: &str,
                 help: &str,
                 f: &dyn Fn(&crate::stores::StoreStatus) -> Option<u64>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in &stores {
            if let Some(v) = f(s) {
                let _ = writeln!(
                    out,
                    "{name}{{store=\"{}\",type=\"{}\"}} {v}",
                    escape(&s.name),
                    s.kind
                );
            }
        }
    };
    gauge(
        &mut out,
        "scribed_store_queue_bytes",
        "Bytes waiting to be written.",
        &|s| Some(s.queue_bytes),
    );
    gauge(
        &mut out,
        "scribed_store_spool_bytes",
        "Bytes in the disk spool.",
        &|s| (s.kind == "buffer").then_some(s.spool_bytes),
    );
    gauge(
        &mut out,
        "scribed_store_upstream_connected",
        "1 when the upstream connection is up.",
        &|s| s.upstream_connected.map(u64::from),
    );
    gauge(
        &mut out,
        "scribed_store_ok",
        "1 when the store reports no problem.",
        &|s| Some(u64::from(s.problem.is_none())),
    );
    upload_metrics(&mut out, &stores, &gauge);
    let _ = writeln!(out, "# HELP scribed_store_state Current state (label) of each store.\n# TYPE scribed_store_state gauge");
    for s in &stores {
        let _ = writeln!(
            out,
            "scribed_store_state{{store=\"{}\",type=\"{}\",state=\"{}\"}} 1",
            escape(&s.name),
            s.kind,
            escape(&s.state)
        );
    }
    let _ = writeln!(
        out,
        "# HELP scribed_refusing_stores Store blocks whose last write was refused.\n\
         # TYPE scribed_refusing_stores gauge\nscribed_refusing_stores {}",
        routing.refusing().len()
    );
    let _ = writeln!(
        out,
        "# TYPE scribed_queued_bytes gauge\nscribed_queued_bytes {}",
        routing.caps.total_queued()
    );
    server.inputs.write_metrics(&mut out);
    let _ = writeln!(
        out,
        "# TYPE scribed_alive_since_seconds gauge\nscribed_alive_since_seconds {}",
        server.alive_since
    );
    auth_metrics(&mut out, &server);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Refusals per client (`anonymous` for clients without an identity) and failed TLS
/// handshakes and unknown tokens per listener.
fn auth_metrics(out: &mut String, server: &Server) {
    let mut last = "";
    for (what, who, n) in server.auth_counters.snapshot() {
        let label = if what == crate::auth::TLS_FAILURES || what == crate::auth::UNKNOWN_TOKENS {
            "listener"
        } else {
            "client"
        };
        let metric = format!("scribed_{what}_total");
        if what != last {
            let _ = writeln!(out, "# TYPE {metric} counter");
            last = what;
        }
        let _ = writeln!(out, "{metric}{{{label}=\"{}\"}} {n}", escape(&who));
    }
}

/// Escapes a Prometheus label value.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
