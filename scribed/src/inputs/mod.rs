//! Listeners for protocols other than Scribe's (docs/inputs.md): syslog over TCP and UDP
//! ([`syslog`]) and OpenTelemetry logs over HTTP ([`otlp`]). Every message they take goes
//! through [`crate::handler::route`], the path of a Thrift `Log` call: the same validation,
//! admission, routing, counters and durability.
//!
//! Each listener keeps its own [`InputStats`], which `/metrics` shows per listener.

#[cfg(feature = "kafka")]
pub mod kafka;
pub mod otlp;
pub mod syslog;

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use tokio_util::task::TaskTracker;

use scribe_tls::ServerTls;

use crate::config::inputs::{Inputs, OtlpInput, SyslogInput, Transport};
use crate::Server;

/// Counters of one input listener.
#[derive(Debug, Default)]
pub struct InputStats {
    pub name: String,
    /// `syslog-tcp`, `syslog-udp`, `otlp-http`.
    pub kind: &'static str,
    /// Messages (log records) taken in and handed to routing.
    pub messages: AtomicU64,
    /// Bytes of those messages as received.
    pub bytes: AtomicU64,
    /// Syslog: messages that did not parse (stored as received in the unparsed category).
    pub parse_failures: AtomicU64,
    /// Messages over `max_message` / bodies over `max_body`, skipped.
    pub oversize: AtomicU64,
    /// TCP connections closed for framing the stream cannot recover from; OTLP requests
    /// refused as malformed (400/413/415).
    pub bad_input: AtomicU64,
    /// Messages dropped because the stores refused them (`TRY_LATER`): UDP datagrams, and
    /// TCP messages still refused when a shutdown's drain ends.
    pub dropped: AtomicU64,
    /// Times the stores answered `TRY_LATER` (TCP: reading paused; OTLP: 429/503).
    pub refused: AtomicU64,
    /// OTLP: records answered as rejected in a partial success (no store takes their category).
    pub rejected: AtomicU64,
    /// Open connections (TCP).
    pub connections: AtomicI64,
}

impl InputStats {
    fn new(name: &str, kind: &'static str) -> Arc<InputStats> {
        Arc::new(InputStats {
            name: name.to_string(),
            kind,
            ..InputStats::default()
        })
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Every input listener's stats, for `/metrics`.
#[derive(Debug, Default)]
pub struct Registry {
    inputs: Mutex<Vec<Arc<InputStats>>>,
}

impl Registry {
    fn register(&self, stats: Arc<InputStats>) {
        self.inputs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(stats);
    }

    pub fn all(&self) -> Vec<Arc<InputStats>> {
        self.inputs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Appends the per-listener families to a Prometheus text exposition.
    pub fn write_metrics(&self, out: &mut String) {
        let inputs = self.all();
        if inputs.is_empty() {
            return;
        }
        type Get = fn(&InputStats) -> i64;
        fn load(c: &AtomicU64) -> i64 {
            c.load(Ordering::Relaxed) as i64
        }
        let families: [(&str, &str, &str, Get); 9] = [
            (
                "scribed_input_messages_total",
                "counter",
                "Messages taken in.",
                |s| load(&s.messages),
            ),
            (
                "scribed_input_bytes_total",
                "counter",
                "Bytes of messages taken in.",
                |s| load(&s.bytes),
            ),
            (
                "scribed_input_parse_failures_total",
                "counter",
                "Syslog messages that did not parse (kept as received).",
                |s| load(&s.parse_failures),
            ),
            (
                "scribed_input_oversize_total",
                "counter",
                "Messages or bodies over the size limit, skipped.",
                |s| load(&s.oversize),
            ),
            (
                "scribed_input_bad_input_total",
                "counter",
                "Connections closed or requests refused for malformed input.",
                |s| load(&s.bad_input),
            ),
            (
                "scribed_input_dropped_total",
                "counter",
                "Messages dropped because the stores refused them (UDP; TCP only at the end of a shutdown).",
                |s| load(&s.dropped),
            ),
            (
                "scribed_input_refused_total",
                "counter",
                "TRY_LATER answers from the stores (TCP paused, OTLP 429/503).",
                |s| load(&s.refused),
            ),
            (
                "scribed_input_rejected_total",
                "counter",
                "OTLP records rejected in a partial success.",
                |s| load(&s.rejected),
            ),
            (
                "scribed_input_connections",
                "gauge",
                "Open connections.",
                |s| s.connections.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for s in &inputs {
                let _ = writeln!(
                    out,
                    "{name}{{input=\"{}\",kind=\"{}\"}} {}",
                    escape(&s.name),
                    s.kind,
                    get(s)
                );
            }
        }
        let udp_drops = kernel_udp_drops();
        if !udp_drops.is_empty() {
            let name = "scribed_input_kernel_drops_total";
            let _ = writeln!(out, "# HELP {name} UDP datagrams the kernel dropped (receive buffer full).\n# TYPE {name} counter");
            for (input, drops) in udp_drops {
                let _ = writeln!(
                    out,
                    "{name}{{input=\"{}\",kind=\"syslog-udp\"}} {drops}",
                    escape(&input)
                );
            }
        }
    }
}

/// Kernel drop counts of this process's syslog UDP sockets (Linux `/proc/net/udp{,6}`, matched
/// by local port), by listener name.
fn kernel_udp_drops() -> Vec<(String, u64)> {
    let ports = UDP_PORTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if ports.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for file in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(drops)) = (cols.get(1), cols.last()) else {
                continue;
            };
            let Some(port) = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            else {
                continue;
            };
            if let (Some((name, _)), Ok(d)) =
                (ports.iter().find(|(_, p)| *p == port), drops.parse::<u64>())
            {
                out.push((name.clone(), d));
            }
        }
    }
    out
}

static UDP_PORTS: Mutex<Vec<(String, u16)>> = Mutex::new(Vec::new());

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The sockets of every input, bound before scribed says it is listening.
pub struct Bound {
    syslog_tcp: Vec<(SyslogInput, tokio::net::TcpListener, Option<Arc<ServerTls>>)>,
    syslog_udp: Vec<(SyslogInput, tokio::net::UdpSocket)>,
    otlp: Vec<(OtlpInput, tokio::net::TcpListener)>,
    /// `[[kafka_input]]` blocks (no socket to bind; started with the rest).
    kafka: Vec<crate::config::kafka::KafkaInput>,
    /// `(name, address)` of each, for the ready file and the log.
    pub addrs: Vec<(String, SocketAddr)>,
}

/// Binds every configured input.
pub async fn bind(
    inputs: &Inputs,
    kafka: &[crate::config::kafka::KafkaInput],
) -> anyhow::Result<Bound> {
    let mut b = Bound {
        syslog_tcp: Vec::new(),
        syslog_udp: Vec::new(),
        otlp: Vec::new(),
        kafka: kafka.to_vec(),
        addrs: Vec::new(),
    };
    for s in &inputs.syslog {
        let what = || format!("binding {} ({})", s.listen, s.name);
        match s.transport {
            Transport::Tcp => {
                let tls = match &s.tls {
                    Some(files) => Some(Arc::new(
                        ServerTls::load(files.clone())
                            .with_context(|| format!("{}: TLS", s.name))?,
                    )),
                    None => None,
                };
                let l = tokio::net::TcpListener::bind(s.listen)
                    .await
                    .with_context(what)?;
                b.addrs.push((s.name.clone(), l.local_addr()?));
                b.syslog_tcp.push((s.clone(), l, tls));
            }
            Transport::Udp => {
                let u = syslog::bind_udp(s).with_context(what)?;
                let addr = u.local_addr()?;
                UDP_PORTS
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((s.name.clone(), addr.port()));
                b.addrs.push((s.name.clone(), addr));
                b.syslog_udp.push((s.clone(), u));
            }
        }
    }
    for o in &inputs.otlp {
        let l = tokio::net::TcpListener::bind(o.listen)
            .await
            .with_context(|| format!("binding {} ({})", o.listen, o.name))?;
        b.addrs.push((o.name.clone(), l.local_addr()?));
        b.otlp.push((o.clone(), l));
    }
    Ok(b)
}

/// Starts every bound input on `tracker`; each stops at shutdown, after finishing what it read.
pub fn spawn(bound: Bound, server: &Arc<Server>, tracker: &TaskTracker) -> anyhow::Result<()> {
    #[cfg(feature = "kafka")]
    kafka::spawn(&bound.kafka, server, tracker)?;
    #[cfg(not(feature = "kafka"))]
    if let Some(k) = bound.kafka.first() {
        anyhow::bail!(
            "{}: this scribed was built without the `kafka` feature",
            k.name
        );
    }
    for (input, listener, tls) in bound.syslog_tcp {
        let kind = if tls.is_some() {
            "syslog-tls"
        } else {
            "syslog-tcp"
        };
        let stats = InputStats::new(&input.name, kind);
        server.inputs.register(stats.clone());
        if let Some(tls) = &tls {
            // Re-read on SIGHUP with the Scribe listeners' certificates.
            server
                .tls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((input.name.clone(), tls.clone()));
        }
        tracker.spawn(syslog::accept_loop(
            listener,
            tls,
            Arc::new(input),
            stats,
            server.clone(),
            tracker.clone(),
        ));
    }
    for (input, socket) in bound.syslog_udp {
        let stats = InputStats::new(&input.name, "syslog-udp");
        server.inputs.register(stats.clone());
        tracker.spawn(syslog::udp_loop(
            socket,
            Arc::new(input),
            stats,
            server.clone(),
        ));
    }
    for (input, listener) in bound.otlp {
        let stats = InputStats::new(&input.name, "otlp-http");
        server.inputs.register(stats.clone());
        tracker.spawn(otlp::serve(listener, input, stats, server.clone()));
    }
    Ok(())
}
