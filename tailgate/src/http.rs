//! The HTTP side: the page, the `/ws` upgrade, the JSON API and `/metrics`, all under
//! `--base-path`, with the token, Host and Origin checks.
//!
//! The Host check defeats DNS rebinding: a page on `evil.example` whose name is re-pointed at
//! 127.0.0.1 reaches tailgate as same-origin, but with `Host: evil.example`. So every
//! request's Host must be an IP literal, `localhost`, or a name the operator listed.
//!
//! The token guards everything that carries log data or counts (`/ws`, `/api/*`,
//! `/metrics`); the page itself holds no data and is served to anyone, and reads the token
//! from its own URL (`?token=`) once, then sends it in headers: `Authorization` on fetches,
//! a `bearer.<base64url>` subprotocol on the websocket. Tokens are compared in constant time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::{self, ConnOptions, RawRequest, MAX_REQUEST};
use crate::hub::Hub;

/// The page: `page/index.html` with its stylesheet and scripts put in place, once. They are
/// separate files only to keep each readable; the page is one response, inline, so its
/// Content-Security-Policy needs no `'self'` scripts.
static PAGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    const JS: [&str; 4] = [
        include_str!("page/text.js"),
        include_str!("page/render.js"),
        include_str!("page/pane.js"),
        include_str!("page/app.js"),
    ];
    include_str!("page/index.html")
        .replacen("/*CSS*/", include_str!("page/page.css"), 1)
        .replacen("/*JS*/", &JS.join("\n"), 1)
});

pub struct HttpState {
    pub hub: Arc<Hub>,
    pub token: Option<String>,
    /// Origins allowed besides the page's own (exact `scheme://host[:port]` strings).
    pub allow_origins: Vec<String>,
    /// Host names accepted besides IP literals and localhost (lowercase, no port).
    pub allow_hosts: Vec<String>,
    pub slots: Arc<Semaphore>,
    pub conn: ConnOptions,
    pub shutdown: CancellationToken,
    /// Websocket sessions, so shutdown can wait for their close frames to go out (upgraded
    /// connections are no longer hyper's, so graceful HTTP shutdown does not wait for them).
    pub sessions: TaskTracker,
    /// `/api/history` over the data dir's archive (`None` without `--data-dir`).
    pub history: Option<crate::history::History>,
}

/// Normalizes `--base-path` to `""` or `/a/b` (leading slash, no trailing one).
pub fn normalize_base(base: &str) -> String {
    let t = base.trim_matches('/');
    if t.is_empty() {
        String::new()
    } else {
        format!("/{t}")
    }
}

pub fn router(state: Arc<HttpState>, base: &str) -> Router {
    let mut r = Router::new()
        .route(&format!("{base}/"), get(page))
        .route(&format!("{base}/ws"), get(ws))
        .route(&format!("{base}/api/categories"), get(categories))
        .route(&format!("{base}/api/tail/{{category}}"), get(tail))
        .route(&format!("{base}/api/history/{{category}}"), get(history))
        .route(&format!("{base}/metrics"), get(metrics))
        .route(&format!("{base}/health"), get(|| async { "ok\n" }));
    if !base.is_empty() {
        let to = format!("{base}/");
        r = r.route(base, get(move || async move { Redirect::permanent(&to) }));
    }
    r.layer(middleware::from_fn_with_state(state.clone(), check_host))
        .with_state(state)
}

/// `--allow-host` names plus the hosts of `--allow-origin`, lowercased, without ports.
pub fn allowed_hosts(hosts: &[String], origins: &[String]) -> Vec<String> {
    let from_origins = origins.iter().filter_map(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    });
    hosts
        .iter()
        .map(String::as_str)
        .chain(from_origins)
        .map(|h| host_name(h).to_ascii_lowercase())
        .collect()
}

/// `host[:port]` without the port; `[v6]` keeps its brackets.
fn host_name(h: &str) -> &str {
    if let Some(end) = h.strip_prefix('[').and_then(|r| r.find(']')) {
        return &h[..end + 2];
    }
    match h.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => h,
    }
}

fn host_allowed(st: &HttpState, host: &str) -> bool {
    let name = host_name(host).to_ascii_lowercase();
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || st.allow_hosts.iter().any(|a| a == "*" || *a == name)
}

async fn check_host(State(st): State<Arc<HttpState>>, req: Request, next: Next) -> Response {
    // No Host at all is an HTTP/1.0 script, not a browser (browsers always send one).
    let ok = match req.headers().get(header::HOST) {
        None => true,
        Some(h) => h.to_str().is_ok_and(|h| host_allowed(&st, h)),
    };
    if ok {
        next.run(req).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "unknown Host (list it with --allow-host)\n",
        )
            .into_response()
    }
}

fn authorized(st: &HttpState, headers: &HeaderMap, query: &HashMap<String, String>) -> bool {
    let Some(want) = &st.token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(|t| t.as_bytes().to_vec())
        .or_else(|| subprotocol_token(headers))
        .or_else(|| query.get("token").map(|t| t.as_bytes().to_vec()));
    given.is_some_and(|g| bool::from(g.ct_eq(want.as_bytes())))
}

/// The token of an `Authorization` value: the scheme is case-insensitive (RFC 9110 §11.1),
/// so `bearer T` and `BEARER T` are accepted as well as `Bearer T`.
fn bearer(v: &str) -> Option<&str> {
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// The websocket subprotocol the page asks for; the upgrade answers with it.
pub const SUBPROTOCOL: &str = "tailgate.v1";
/// A browser cannot set `Authorization` on a websocket, so the page sends its token as a
/// second subprotocol, `bearer.<base64url of the token, unpadded>`: a header, so it stays
/// out of URLs (proxy logs, shared links). Never selected, only read.
const SUBPROTOCOL_TOKEN: &str = "bearer.";

fn subprotocol_token(headers: &HeaderMap) -> Option<Vec<u8>> {
    use base64::Engine;
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(SUBPROTOCOL_TOKEN))
        .and_then(|t| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
        })
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "token required: missing or wrong token (Authorization: Bearer <token>, or ?token=)\n",
    )
        .into_response()
}

/// Browsers always send `Origin` on a websocket upgrade; other clients usually do not, and
/// are not the cross-site risk this guards against. An Origin must be this server's own
/// (same host as the `Host` header, which [`check_host`] has vetted) or in the allow list.
fn origin_allowed(st: &HttpState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    // An Origin that is not even text is refused, not taken for absent.
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if st.allow_origins.iter().any(|a| a == origin) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

async fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                     connect-src 'self'; img-src data:; worker-src blob:; base-uri 'none'; \
                     form-action 'none'",
                ),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        PAGE.as_str(),
    )
        .into_response()
}

async fn ws(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !authorized(&st, &headers, &q) {
        return unauthorized();
    }
    if !origin_allowed(&st, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "websocket from a foreign Origin refused\n",
        )
            .into_response();
    }
    let raw = match q.get("raw").map(String::as_str) {
        None | Some("0") | Some("false") => None,
        Some(_) => {
            let Some(category) = q.get("category").cloned() else {
                return (StatusCode::BAD_REQUEST, "raw mode needs ?category=\n").into_response();
            };
            let backlog = match q.get("backlog").map(|b| b.parse::<usize>()) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    return (StatusCode::BAD_REQUEST, "backlog must be a number\n").into_response()
                }
            };
            Some(RawRequest {
                category,
                filter: q.get("filter").cloned(),
                backlog,
            })
        }
    };
    let Ok(permit) = st.slots.clone().try_acquire_owned() else {
        st.hub
            .metrics
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "connection limit reached\n",
        )
            .into_response();
    };
    let hub = st.hub.clone();
    let opts = st.conn.clone();
    let shutdown = st.shutdown.clone();
    let session = st.sessions.token();
    // The transport allows twice the protocol's limit, so a request a little over it gets
    // an `error` reply from the protocol check rather than a reset connection.
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(2 * MAX_REQUEST)
        .max_frame_size(2 * MAX_REQUEST)
        // tungstenite zero-fills its free read buffer before every read attempt, and the
        // session polls for requests at every turn of its loop: with the 128 KiB default
        // that memset was 11% of a busy fan-out's CPU. Requests are small; a bigger frame
        // still grows the buffer as it needs.
        .read_buffer_size(4 << 10)
        .on_upgrade(move |socket| async move {
            connection::serve(socket, hub, opts, raw, shutdown).await;
            drop(permit);
            drop(session);
        })
}

async fn categories(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&st, &headers, &q) {
        return unauthorized();
    }
    axum::Json(serde_json::json!({ "categories": st.hub.infos() })).into_response()
}

async fn tail(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(category): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&st, &headers, &q) {
        return unauthorized();
    }
    let n = match q.get("n").map(|n| n.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) => n,
        Some(Err(_)) => return (StatusCode::BAD_REQUEST, "n must be a number\n").into_response(),
    };
    let Some(lines) = st.hub.tail(&category, n) else {
        return (StatusCode::NOT_FOUND, "no such category\n").into_response();
    };
    let json = q.get("format").map(String::as_str) == Some("json")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
    if json {
        let first = lines.first().map_or(0, |(s, _)| *s);
        let last = lines.last().map_or(0, |(s, _)| *s);
        let body = serde_json::json!({
            "category": category,
            "seq": first,
            "last_seq": last,
            "lines": lines.iter().map(|(_, l)| crate::protocol::LineOut::new(l)).collect::<Vec<_>>(),
        });
        axum::Json(body).into_response()
    } else {
        // The exact bytes, one line per `\n`.
        let mut body = Vec::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
        for (_, l) in &lines {
            body.extend_from_slice(l);
            body.push(b'\n');
        }
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
    }
}

/// `GET /api/history/<cat>?before_seq=S|skip=N[&limit=M][&filter=RE][&exclude=RE]`: a page of
/// older lines from the archive ([`crate::history`]), as JSON.
async fn history(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Path(category): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&st, &headers, &q) {
        return unauthorized();
    }
    let Some(h) = &st.history else {
        return (
            StatusCode::NOT_FOUND,
            "no history: tailgate has no --data-dir\n",
        )
            .into_response();
    };
    let num = |k: &str| q.get(k).map(|v| v.parse::<u64>());
    let skip = match (num("skip"), num("before_seq")) {
        (Some(Ok(n)), _) => n,
        // The ring ends where the archive ends: the line `before_seq` is this far back.
        (None, Some(Ok(s))) => {
            let last = st
                .hub
                .infos()
                .into_iter()
                .find(|i| i.name == category)
                .map_or(0, |i| i.last_seq);
            (last + 1).saturating_sub(s)
        }
        (None, None) => 0,
        _ => return (StatusCode::BAD_REQUEST, "skip and before_seq are numbers\n").into_response(),
    };
    let limit = match num("limit") {
        None => 500,
        Some(Ok(n)) => usize::try_from(n).unwrap_or(usize::MAX),
        Some(Err(_)) => return (StatusCode::BAD_REQUEST, "limit is a number\n").into_response(),
    };
    let (include, exclude) = match (
        crate::filter::compile("filter", q.get("filter").cloned()),
        crate::filter::compile("exclude", q.get("exclude").cloned()),
    ) {
        (Ok(i), Ok(e)) => (i, e),
        (Err(e), _) | (_, Err(e)) => return (StatusCode::BAD_REQUEST, e + "\n").into_response(),
    };
    let Ok(_slot) = h.slots.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "history busy; try again\n").into_response();
    };
    let data_dir = h.data_dir.clone();
    let cat = category.clone();
    let page = tokio::task::spawn_blocking(move || {
        let keep = crate::history::keeper(include, exclude);
        crate::history::read(&data_dir, &cat, skip, limit, &keep)
    })
    .await;
    match page {
        Ok(Ok(p)) => axum::Json(serde_json::json!({
            "category": category,
            "skip": skip,
            "scanned": p.scanned,
            "next_skip": p.next_skip,
            "more": p.more,
            "lines": p.lines.iter().map(crate::protocol::LineOut::new).collect::<Vec<_>>(),
        }))
        .into_response(),
        Ok(Err(crate::history::HistoryError::BadCategory(e))) => {
            (StatusCode::BAD_REQUEST, e + "\n").into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!("history of {category}: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("history task: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(
    State(st): State<Arc<HttpState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !authorized(&st, &headers, &q) {
        return unauthorized();
    }
    let m = &st.hub.metrics;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    // (name, type, help, value): one table, so a new metric is one line.
    let series: [(&str, &str, &str, u64); 13] = [
        ("tailgate_clients", "gauge", "Connected websocket clients.", load(&m.clients)),
        ("tailgate_subscriptions", "gauge", "Active subscriptions.", load(&m.subscriptions)),
        ("tailgate_categories", "gauge", "Known categories.", st.hub.category_names().len() as u64),
        ("tailgate_lines_in_total", "counter", "Lines received from sources.", load(&m.lines_in)),
        ("tailgate_bytes_in_total", "counter", "Line bytes received from sources.", load(&m.bytes_in)),
        ("tailgate_lines_refused_total", "counter", "Lines refused (bad category or category limit).", load(&m.lines_refused)),
        ("tailgate_lines_sent_total", "counter", "Lines sent to clients.", load(&m.lines_sent)),
        ("tailgate_lines_dropped_total", "counter", "Lines dropped for clients that fell behind.", load(&m.lines_dropped)),
        ("tailgate_source_gaps_total", "counter", "Gaps sources published: lines they could not read (files removed before they were read, overlong lines, corrupt .gz).", load(&m.source_gaps)),
        ("tailgate_connections_refused_total", "counter", "Websocket connections refused at the connection limit.", load(&m.connections_refused)),
        ("tailgate_send_timeouts_total", "counter", "Websocket clients closed because they took no message within the send timeout.", load(&m.send_timeouts)),
        ("tailgate_kafka_read_backs_total", "counter", "Partitions of resumes by offsets read back from Kafka (older than the ring).", load(&m.read_backs)),
        ("tailgate_kafka_lines_read_back_total", "counter", "Lines read back from Kafka for resumes by offsets.", load(&m.lines_read_back)),
    ];
    let mut out = String::new();
    for (name, kind, help, v) in series {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn token_in_a_subprotocol() {
        let mut h = HeaderMap::new();
        // "s3cret" in base64url without padding.
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("tailgate.v1, bearer.czNjcmV0"),
        );
        assert_eq!(subprotocol_token(&h).as_deref(), Some(&b"s3cret"[..]));
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("tailgate.v1, bearer.!!"),
        );
        assert_eq!(subprotocol_token(&h), None);
    }
}
