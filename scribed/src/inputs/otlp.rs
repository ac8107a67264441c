//! OpenTelemetry logs over HTTP (OTLP/HTTP): `POST /v1/logs` with a protobuf
//! (`application/x-protobuf`) or JSON (`application/json`) `ExportLogsServiceRequest`,
//! optionally gzip-encoded. The message types are `opentelemetry-proto`'s (prost, and its
//! serde mapping of OTLP/JSON).
//!
//! Answers, as the OTLP specification asks:
//! - `200` with an `ExportLogsServiceResponse` once every accepted record is durable by its
//!   stores' policy (the same [`handler::log`] as a Thrift `Log`); records whose category no
//!   store takes are listed as rejected in `partial_success`.
//! - `429` (queues or the rate limit) or `503` (a store refuses writes, or shutdown) with
//!   `Retry-After`, when the stores answer `TRY_LATER`: nothing of the request was written.
//! - `400` for a body that does not decode, `413` for a body (or its decompressed size) over
//!   `max_body`, `415` for another content type or encoding, `408` for a body slower than
//!   30 s. These are not retryable.
//!
//! Memory: a request holds at most `max_body` (twice that with gzip) from a 256 MiB budget per
//! listener; past it, requests wait for earlier ones to finish.
//!
//! Each record is stored as one JSON object on one line ([`record_json`]).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message as _;
use scribe_archive::Category;
use scribe_protocol::ResultCode;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use super::InputStats;
use crate::config::inputs::OtlpInput;
use crate::{handler, Server};

/// Seconds a client is asked to wait after `429`/`503`.
const RETRY_AFTER: &str = "1";
/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes all requests of one listener may hold at once (a body and what it decompresses to):
/// many slow clients cannot add up to more than this; further requests wait.
const MEMORY_BUDGET: usize = 256 << 20;

struct Otlp {
    input: OtlpInput,
    stats: Arc<InputStats>,
    server: Arc<Server>,
    memory: tokio::sync::Semaphore,
}

/// Serves `POST /v1/logs` on `listener` until shutdown.
pub async fn serve(
    listener: TcpListener,
    input: OtlpInput,
    stats: Arc<InputStats>,
    server: Arc<Server>,
) {
    let shutdown = server.shutdown.clone();
    let name = input.name.clone();
    let app = axum::Router::new()
        .route("/v1/logs", post(export))
        .with_state(Arc::new(Otlp {
            input,
            stats,
            server,
            memory: tokio::sync::Semaphore::new(MEMORY_BUDGET),
        }));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!("{name}: OTLP endpoint failed: {e}");
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

fn plain(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

async fn export(State(o): State<Arc<Otlp>>, headers: HeaderMap, body: Body) -> Response {
    let bad = |status: StatusCode, text: String| {
        InputStats::add(&o.stats.bad_input, 1);
        o.server
            .bad_frame_warn
            .warn(|| format!("{}: {} {text}", o.input.name, status.as_u16()));
        plain(status, text)
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let encoding = match content_type.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return bad(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content type {other:?}: expected application/x-protobuf or application/json"
                ),
            )
        }
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(HeaderValue::to_str)
    {
        None => false,
        Some(Ok(e)) if e.eq_ignore_ascii_case("identity") => false,
        Some(Ok(e)) if e.eq_ignore_ascii_case("gzip") => true,
        Some(e) => {
            return bad(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content encoding {e:?}: expected gzip or none"),
            )
        }
    };
    let max = o.input.max_body;
    // Room for the body and its decompressed form, from the listener's budget.
    let want = max
        .saturating_mul(if gzip { 2 } else { 1 })
        .min(MEMORY_BUDGET) as u32;
    let Ok(_memory) = o.memory.acquire_many(want).await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    };
    let raw = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, max)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            InputStats::add(&o.stats.oversize, 1);
            return bad(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body: {e} (max_body {max})"),
            );
        }
        Err(_) => {
            return bad(
                StatusCode::REQUEST_TIMEOUT,
                format!("body not received within {BODY_TIMEOUT:?}"),
            )
        }
    };
    let body = if gzip {
        match gunzip(&raw, max) {
            Ok(b) => Bytes::from(b),
            Err(Gunzip::TooLarge) => {
                InputStats::add(&o.stats.oversize, 1);
                return bad(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("gzip body decompresses to more than max_body ({max} bytes)"),
                );
            }
            Err(Gunzip::Bad(e)) => return bad(StatusCode::BAD_REQUEST, format!("gzip body: {e}")),
        }
    } else {
        raw
    };
    let request = match encoding {
        Encoding::Protobuf => {
            ExportLogsServiceRequest::decode(&body[..]).map_err(|e| e.to_string())
        }
        Encoding::Json => {
            serde_json::from_slice::<ExportLogsServiceRequest>(&body).map_err(|e| e.to_string())
        }
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            return bad(
                StatusCode::BAD_REQUEST,
                format!("not an ExportLogsServiceRequest: {e}"),
            )
        }
    };
    let (entries, rejected) = entries(&o, request).await;
    let (n, bytes) = (
        entries.len() as u64,
        entries.iter().map(|e| e.1.len() as u64).sum(),
    );
    if !entries.is_empty() {
        let peer = crate::auth::Peer::input("otlp");
        if handler::log(&o.server, &peer, entries.into_iter()).await != Ok(ResultCode::Ok) {
            InputStats::add(&o.stats.refused, 1);
            let unavailable = o.server.shutdown.is_cancelled()
                || o.server.unserviceable().is_some()
                || !o.server.routing.read().await.refusing().is_empty();
            let status = if unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::TOO_MANY_REQUESTS
            };
            let mut r = plain(
                status,
                "stores are not accepting records now; retry\n".into(),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
            return r;
        }
        InputStats::add(&o.stats.messages, n);
        InputStats::add(&o.stats.bytes, bytes);
    }
    InputStats::add(&o.stats.rejected, rejected);
    let response = ExportLogsServiceResponse {
        partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: rejected as i64,
            error_message: format!("{rejected} records have a category no store takes"),
        }),
    };
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            response.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&response).unwrap_or_default(),
        )
            .into_response(),
    }
}

enum Gunzip {
    TooLarge,
    Bad(std::io::Error),
}

/// Decompresses at most `max` bytes: a gzip bomb costs `max` bytes of memory, no more.
fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>, Gunzip> {
    let mut out = Vec::new();
    let mut d = flate2::read::MultiGzDecoder::new(data).take(max as u64 + 1);
    d.read_to_end(&mut out).map_err(Gunzip::Bad)?;
    if out.len() > max {
        return Err(Gunzip::TooLarge);
    }
    Ok(out)
}

/// The request's records as routed entries (category, JSON line), and how many records were
/// rejected because no store takes their category.
async fn entries(
    o: &Otlp,
    request: ExportLogsServiceRequest,
) -> (Vec<scribe_protocol::server::Incoming>, u64) {
    let routing = o.server.routing.read().await.clone();
    let mut out = Vec::new();
    let mut rejected = 0u64;
    for rl in request.resource_logs {
        let attrs = rl.resource.map(|r| r.attributes).unwrap_or_default();
        let string_attr = |key: &str| {
            attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
                match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) => Some(s.as_str()),
                    _ => None,
                }
            })
        };
        let resource = kv_object(&attrs);
        for sl in rl.scope_logs {
            let scope_name = sl.scope.as_ref().map(|s| s.name.as_str());
            let lookup = |f: &str| match f {
                "service_name" => string_attr("service.name"),
                "service_namespace" => string_attr("service.namespace"),
                "scope_name" => scope_name,
                _ => None,
            };
            let category = o
                .input
                .category
                .render(lookup)
                .and_then(|c| c.parse::<Category>().ok())
                .unwrap_or_else(|| o.input.fallback.clone());
            if routing.route(&category).is_empty() {
                rejected += sl.log_records.len() as u64;
                continue;
            }
            let cat = Bytes::from(category.to_string());
            let scope = sl.scope.as_ref().filter(|s| !s.name.is_empty()).map(|s| {
                let mut m = Map::new();
                m.insert("name".into(), s.name.clone().into());
                if !s.version.is_empty() {
                    m.insert("version".into(), s.version.clone().into());
                }
                if !s.attributes.is_empty() {
                    m.insert("attributes".into(), kv_object(&s.attributes));
                }
                Value::Object(m)
            });
            for r in &sl.log_records {
                out.push((
                    cat.clone(),
                    Bytes::from(record_json(r, &resource, scope.as_ref())),
                    None,
                ));
            }
        }
    }
    (out, rejected)
}

fn time(nanos: u64) -> Value {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(nanos))
        .to_string()
        .into()
}

/// The severity keyword of a severity number (the OTel data model's ranges).
fn severity_name(n: i32) -> Option<&'static str> {
    Some(match n {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => return None,
    })
}

/// One record as a JSON object: `time` (RFC 3339, from the record's time or else its observed
/// time), `observed_time`, `severity` (the text sent, else the keyword of the number),
/// `severity_number`, `body`, `attributes`, `resource` (its attributes), `scope` (`name`,
/// `version`, `attributes`), `trace_id`, `span_id` (hex), `flags`, `event_name`,
/// `dropped_attributes_count`; keys whose value is unset are left out.
pub fn record_json(r: &LogRecord, resource: &Value, scope: Option<&Value>) -> Vec<u8> {
    let mut m = Map::new();
    let t = if r.time_unix_nano != 0 {
        r.time_unix_nano
    } else {
        r.observed_time_unix_nano
    };
    if t != 0 {
        m.insert("time".into(), time(t));
    }
    if r.observed_time_unix_nano != 0 {
        m.insert("observed_time".into(), time(r.observed_time_unix_nano));
    }
    let severity = Some(r.severity_text.as_str())
        .filter(|s| !s.is_empty())
        .or_else(|| severity_name(r.severity_number));
    if let Some(s) = severity {
        m.insert("severity".into(), s.into());
    }
    if r.severity_number != 0 {
        m.insert("severity_number".into(), r.severity_number.into());
    }
    if let Some(b) = &r.body {
        m.insert("body".into(), any(b));
    }
    if !r.attributes.is_empty() {
        m.insert("attributes".into(), kv_object(&r.attributes));
    }
    if resource.as_object().is_some_and(|o| !o.is_empty()) {
        m.insert("resource".into(), resource.clone());
    }
    if let Some(s) = scope {
        m.insert("scope".into(), s.clone());
    }
    if !r.trace_id.is_empty() {
        m.insert("trace_id".into(), hex(&r.trace_id).into());
    }
    if !r.span_id.is_empty() {
        m.insert("span_id".into(), hex(&r.span_id).into());
    }
    if r.flags != 0 {
        m.insert("flags".into(), r.flags.into());
    }
    if !r.event_name.is_empty() {
        m.insert("event_name".into(), r.event_name.clone().into());
    }
    if r.dropped_attributes_count != 0 {
        m.insert(
            "dropped_attributes_count".into(),
            r.dropped_attributes_count.into(),
        );
    }
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Attributes as one JSON object (a repeated key keeps its last value).
fn kv_object(kvs: &[KeyValue]) -> Value {
    Value::Object(
        kvs.iter()
            .map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, any)))
            .collect(),
    )
}

/// An `AnyValue` as JSON: bytes as hex; a non-finite double as null. Nesting is bounded by
/// the decoders (prost's and serde_json's recursion limits).
fn any(v: &AnyValue) -> Value {
    use any_value::Value as V;
    match &v.value {
        None => Value::Null,
        Some(V::StringValue(s)) => s.clone().into(),
        Some(V::BoolValue(b)) => (*b).into(),
        Some(V::IntValue(i)) => (*i).into(),
        Some(V::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        Some(V::ArrayValue(a)) => Value::Array(a.values.iter().map(any).collect()),
        Some(V::KvlistValue(kv)) => kv_object(&kv.values),
        Some(V::BytesValue(b)) => hex(b).into(),
        // A reference into a dictionary this request format does not carry.
        Some(V::StringValueStrindex(_)) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_bombs_stop_at_the_bound() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = e.finish().unwrap();
        assert!(bomb.len() < 64 << 10);
        assert!(matches!(gunzip(&bomb, 1 << 20), Err(Gunzip::TooLarge)));
        assert_eq!(gunzip(&bomb, 8 << 20).ok().map(|v| v.len()), Some(8 << 20));
        assert!(matches!(gunzip(b"not gzip", 100), Err(Gunzip::Bad(_))));
    }

    #[test]
    fn records_become_json_objects() {
        let j = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},"scopeLogs":[{"scope":{"name":"lib"},"logRecords":[{"timeUnixNano":"1544712660300000000","severityNumber":10,"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","body":{"stringValue":"hello"},"attributes":[{"key":"n","value":{"intValue":"10"}},{"key":"m","value":{"kvlistValue":{"values":[{"key":"k","value":{"boolValue":true}}]}}}]}]}]}]}"#;
        let req: ExportLogsServiceRequest = serde_json::from_str(j).unwrap();
        let rl = &req.resource_logs[0];
        let resource = kv_object(&rl.resource.as_ref().unwrap().attributes);
        let line = record_json(&rl.scope_logs[0].log_records[0], &resource, None);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["time"], "2018-12-13T14:51:00.300000000Z");
        assert_eq!(v["severity"], "INFO");
        assert_eq!(v["body"], "hello");
        assert_eq!(v["attributes"]["n"], 10);
        assert_eq!(v["attributes"]["m"]["k"], true);
        assert_eq!(v["resource"]["service.name"], "svc");
        assert_eq!(v["trace_id"], "5b8efff798038103d269b633813fc60c");
        assert!(!line.contains(&b'\n'));
    }
}
