//! tailgate: live tails of log categories, over websockets and in a browser page.
//!
//! Sources ([`source`]: scribed's data dir via `scribe_archive::ArchiveTail`, single files
//! via `scribe_follow`; [`scribe`]: Scribe `Log()` pushes; `kafka` (cargo feature `kafka`):
//! Kafka topics, resumable by offsets) publish lines into the [`hub`],
//! which numbers them, keeps a bounded [`ring`] per category and fans them out to per-client
//! bounded queues.
//! [`connection`] turns a client's queue into `/ws` messages ([`protocol`]); [`http`] serves
//! the page, the API and `/metrics`. The binary is [`run`] with parsed [`Args`].

pub mod chunk;
pub mod connection;
pub mod filter;
pub mod history;
pub mod http;
pub mod hub;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod listener;
pub mod protocol;
pub mod ring;
pub mod scribe;
pub mod source;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "tailgate",
    version,
    about = "Live tails of log categories over websockets, with a browser page"
)]
pub struct Args {
    /// HTTP and websocket address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// scribed's data directory: each `<cat>/` is a category, followed through `<cat>_current`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Follow a file as a category (repeatable).
    #[arg(long = "file", value_name = "PATH=NAME", value_parser = source::parse_file_arg)]
    pub files: Vec<(PathBuf, String)>,
    /// Accept Scribe Log() calls on this address (e.g. 127.0.0.1:1464).
    #[arg(long)]
    pub scribe_listen: Option<SocketAddr>,
    /// Largest Scribe frame accepted.
    #[arg(long, default_value = "16M", value_parser = parse_size)]
    pub max_frame: u64,
    /// Most bytes of Scribe frames held at once, over all Scribe connections (at least one
    /// `--max-frame`); further reads wait, so TCP pushes back on the senders.
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub scribe_memory: u64,
    /// Serve HTTP and websockets over TLS with this certificate chain (PEM), with --tls-key.
    /// Re-read on SIGHUP (a bad new file keeps the one in force).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The Scribe listener speaks TLS too, with the same certificate.
    #[arg(long, requires = "tls_cert")]
    pub scribe_tls: bool,
    /// Scribe pushers must present a certificate from this CA (mutual TLS; implies
    /// --scribe-tls).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub scribe_client_ca: Option<PathBuf>,
    /// What a pushing client may write, as `CERTNAME=GLOB[,GLOB...]` (repeatable; CERTNAME is
    /// a name of its certificate, `*.domain` allowed). With any, a push from a certificate
    /// not listed, or to a category outside its globs, is refused.
    #[arg(long = "scribe-allow", value_name = "CERTNAME=GLOBS", value_parser = scribe::parse_allow)]
    pub scribe_allow: Vec<scribe::Allow>,
    /// Token required on /ws, /api and /metrics.
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// Read the token from this file (trailing whitespace ignored).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Also accept websocket upgrades from this Origin (`https://dash.example.com`; repeatable).
    #[arg(long = "allow-origin")]
    pub allow_origins: Vec<String>,
    /// Also answer requests whose `Host` is this name (`logs.example.com`; repeatable; `*`
    /// for any). IP literals, `localhost` and the hosts of `--allow-origin` always are.
    #[arg(long = "allow-host")]
    pub allow_hosts: Vec<String>,
    /// Serve everything under this path prefix (behind a reverse proxy).
    #[arg(long, default_value = "")]
    pub base_path: String,
    /// Lines kept per category.
    #[arg(long, default_value_t = 10_000)]
    pub ring_lines: usize,
    /// Bytes kept per category.
    #[arg(long, default_value = "8M", value_parser = parse_size)]
    pub ring_bytes: u64,
    /// Bytes a client may have waiting before its lines are dropped.
    #[arg(long, default_value = "4M", value_parser = parse_size)]
    pub client_buffer: u64,
    /// Bytes queued over all clients together before lines are dropped (and counted).
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    pub max_queued: u64,
    /// Most categories (further ones are refused).
    #[arg(long, default_value_t = 1000)]
    pub max_categories: usize,
    /// Most websocket clients at once.
    #[arg(long, default_value_t = 1000)]
    pub max_clients: usize,
    /// A new HTTP connection that has not sent a whole request (and been answered) within
    /// this long is closed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Most filtered subscriptions at once, over all clients (each may hold up to about 1 MiB
    /// of compiled regex and caches).
    #[arg(long, default_value_t = 256)]
    pub max_filters: usize,
    /// Close a websocket that sent nothing (not even a pong) for this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Close a websocket whose client has not taken a message for this long (it stopped
    /// reading), freeing its slot and buffer. `--idle-timeout` if that is shorter.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub send_timeout: Duration,
    /// How often files are polled for new lines.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// Tail the topics of these Kafka brokers (`host:port[,host:port...]`): every partition,
    /// no consumer group; each topic is the category the topic template names.
    #[arg(long, value_name = "BROKERS")]
    pub kafka: Option<String>,
    /// Which topics (a glob over topic names, like a subscription's). Default: every topic
    /// the template can give (`logs.*`).
    #[arg(long, value_name = "GLOB", requires = "kafka")]
    pub topics: Option<String>,
    /// Topic per category, as scribed's kafka store names them.
    #[arg(long, default_value = scribe_kafka_template_default(), requires = "kafka")]
    pub kafka_topic_template: String,
    /// A librdkafka property (TLS, SASL, timeouts: `security.protocol=ssl`,
    /// `ssl.ca.location=/etc/ca.pem`; repeatable).
    #[arg(long = "kafka-property", value_name = "KEY=VALUE", value_parser = parse_property, requires = "kafka")]
    pub kafka_properties: Vec<(String, String)>,
    /// Read librdkafka's `sasl.password` from this file (trailing newline dropped), so it is
    /// not on the command line.
    #[arg(long, value_name = "FILE", requires = "kafka")]
    pub kafka_sasl_password_file: Option<PathBuf>,
    /// Bytes librdkafka may prefetch per partition (`queued.max.messages.kbytes`).
    #[arg(long, default_value = "1M", value_parser = parse_size, requires = "kafka")]
    pub kafka_fetch_queue: u64,
    /// How often the broker's topic list is read again (new topics and partitions join).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, requires = "kafka")]
    pub kafka_refresh: Duration,
    /// A resume by offsets older than the ring is read back from the topic: at most this
    /// many lines per partition (a client further behind gets an `offset_gap` for the
    /// oldest).
    #[arg(long, default_value_t = 1_000_000, requires = "kafka")]
    pub kafka_read_back_lines: u64,
    /// At most this many bytes read back per partition of one resume.
    #[arg(long, default_value = "1G", value_parser = parse_size, requires = "kafka")]
    pub kafka_read_back_bytes: u64,
    /// Read-backs at once (each a consumer and a thread); more wait their turn.
    #[arg(long, default_value_t = 4, requires = "kafka")]
    pub kafka_read_backs: usize,
    /// A read-back that gets no record for this long gives up with an `offset_gap` naming
    /// the cause (the broker is down).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, requires = "kafka")]
    pub kafka_read_back_timeout: Duration,
}

/// scribed's default topic template (`logs.{category}`).
const fn scribe_kafka_template_default() -> &'static str {
    "logs.{category}"
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    scribe_cli::parse_size(s).map_err(|e| e.to_string())
}

/// Runs until `shutdown` is cancelled. Prints the bound addresses on stdout (first line:
/// `tailgate listening on http://ADDR/BASE/`), which scripts and tests read.
pub async fn run(args: Args, shutdown: CancellationToken) -> anyhow::Result<()> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(p)) => {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("reading --token-file {}", p.display()))?;
            Some(t.trim_end().to_string())
        }
        (None, None) => None,
    };
    if token.as_deref() == Some("") {
        bail!("the token is empty");
    }
    if args.data_dir.is_none()
        && args.files.is_empty()
        && args.scribe_listen.is_none()
        && args.kafka.is_none()
    {
        tracing::warn!(
            "no source given (--data-dir, --file, --scribe-listen, --kafka): nothing to tail"
        );
    }
    let hub = Arc::new(hub::Hub::new(hub::HubConfig {
        ring_lines: args.ring_lines.max(1),
        ring_bytes: usize::try_from(args.ring_bytes).unwrap_or(usize::MAX),
        max_categories: args.max_categories,
        client_buffer: usize::try_from(args.client_buffer).unwrap_or(usize::MAX),
        total_buffer: usize::try_from(args.max_queued).unwrap_or(usize::MAX),
        ..hub::HubConfig::default()
    }));
    let base = http::normalize_base(&args.base_path);

    let (http_tls, scribe_tls) = load_tls(&args)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if http_tls.is_some() { "https" } else { "http" };
    println!("tailgate listening on {scheme}://{addr}{base}/");
    reload_on_sighup(
        [http_tls.clone(), scribe_tls.clone()]
            .into_iter()
            .flatten()
            .collect(),
        shutdown.clone(),
    )?;

    let mut scribe_task = None;
    if let Some(sa) = args.scribe_listen {
        let l = tokio::net::TcpListener::bind(sa)
            .await
            .with_context(|| format!("binding --scribe-listen {sa}"))?;
        println!("tailgate scribe listening on {}", l.local_addr()?);
        let s = scribe::ScribeListener {
            hub: hub.clone(),
            max_frame: usize::try_from(args.max_frame).unwrap_or(usize::MAX),
            memory: usize::try_from(args.scribe_memory).unwrap_or(usize::MAX),
            max_connections: 1024,
            shutdown: shutdown.clone(),
            tls: scribe_tls,
            allow: args.scribe_allow.clone(),
        };
        scribe_task = Some(tokio::spawn(s.run(l)));
    }
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }

    let follower = (args.data_dir.is_some() || !args.files.is_empty()).then(|| {
        source::spawn(
            hub.clone(),
            source::FileSources {
                data_dir: args.data_dir.clone(),
                files: args.files.clone(),
                poll_interval: args.poll_interval,
            },
            shutdown.clone(),
        )
    });

    let kafka = start_kafka(&args, &hub, &shutdown)?;

    let sessions = tokio_util::task::TaskTracker::new();
    let state = Arc::new(http::HttpState {
        hub: hub.clone(),
        token,
        allow_origins: args.allow_origins.clone(),
        allow_hosts: http::allowed_hosts(&args.allow_hosts, &args.allow_origins),
        slots: Arc::new(tokio::sync::Semaphore::new(args.max_clients)),
        conn: connection::ConnOptions {
            filter_slots: Arc::new(tokio::sync::Semaphore::new(
                args.max_filters.min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            idle_timeout: args.idle_timeout,
            ping_every: Duration::from_secs(30).min(args.idle_timeout / 2),
            // A client that takes nothing for the idle timeout hears no pings either: it
            // gets no longer than an idle one.
            send_timeout: args.send_timeout.min(args.idle_timeout),
            slow_warn: Arc::new(scribe_cli::RateLimitedWarn::new(Duration::from_secs(1))),
        },
        shutdown: shutdown.clone(),
        sessions: sessions.clone(),
        history: args.data_dir.clone().map(|data_dir| history::History {
            data_dir,
            slots: Arc::new(tokio::sync::Semaphore::new(history::PARALLEL)),
        }),
    });
    let app = http::router(state, &base);
    let sd = shutdown.clone();
    // Websockets are refused past --max-clients with a 503, which needs a connection to
    // answer on: the HTTP cap leaves room above it.
    let listener = listener::GuardedListener::new(
        listener,
        args.max_clients.saturating_add(HTTP_HEADROOM),
        args.request_timeout,
        http_tls,
    );
    let serve =
        axum::serve(listener, app).with_graceful_shutdown(async move { sd.cancelled().await });
    // The graceful wait covers plain HTTP requests in flight; one that a client never
    // finishes sending (slowloris) would hold it forever, so it is bounded.
    tokio::select! {
        r = serve => r.context("serving HTTP")?,
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(HTTP_DRAIN).await;
        } => tracing::warn!("HTTP requests still open {HTTP_DRAIN:?} after shutdown began; closing them"),
    }
    // Each session sends its close frame on cancellation; a client that does not read may
    // hold its send, so the wait is bounded.
    sessions.close();
    if tokio::time::timeout(Duration::from_secs(5), sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!("some websocket sessions did not close within 5 s");
    }
    if let Some(t) = scribe_task {
        let _ = t.await;
    }
    if let Some(f) = follower {
        let _ = tokio::task::spawn_blocking(move || f.join()).await;
    }
    if let Some(k) = kafka {
        let _ = tokio::task::spawn_blocking(move || k.join()).await;
    }
    tracing::info!("tailgate stopped");
    Ok(())
}

/// Starts the `--kafka` source, if asked for.
#[cfg(feature = "kafka")]
fn start_kafka(
    args: &Args,
    hub: &Arc<hub::Hub>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<std::thread::JoinHandle<()>>> {
    let Some(brokers) = &args.kafka else {
        return Ok(None);
    };
    let template = scribe_kafka::TopicTemplate::new(&args.kafka_topic_template)
        .context("--kafka-topic-template")?;
    let pattern = args.topics.clone().unwrap_or_else(|| template.glob());
    let topics = scribe_archive::category::CategoryGlob::new(&pattern)
        .map_err(|e| anyhow::anyhow!("--topics {pattern:?}: {e}"))?;
    let mut properties: std::collections::BTreeMap<String, String> =
        args.kafka_properties.iter().cloned().collect();
    if let Some(file) = &args.kafka_sasl_password_file {
        let password = std::fs::read_to_string(file)
            .with_context(|| format!("reading --kafka-sasl-password-file {}", file.display()))?;
        let password = password.trim_end_matches(['\n', '\r']).to_string();
        properties.insert("sasl.password".into(), password);
    }
    let opts = kafka::KafkaOptions {
        brokers: brokers.split(',').map(str::to_string).collect(),
        topics,
        template,
        properties,
        fetch_queue: args.kafka_fetch_queue.max(64 << 10),
        refresh: args.kafka_refresh.max(Duration::from_millis(100)),
        read_back: kafka::ReadBackOptions {
            workers: args.kafka_read_backs.clamp(1, 64),
            max_lines: args.kafka_read_back_lines,
            max_bytes: args.kafka_read_back_bytes,
            timeout: args.kafka_read_back_timeout.max(Duration::from_millis(100)),
        },
    };
    kafka::spawn(hub.clone(), opts, shutdown.clone()).map(Some)
}

#[cfg(not(feature = "kafka"))]
fn start_kafka(
    args: &Args,
    _hub: &Arc<hub::Hub>,
    _shutdown: &CancellationToken,
) -> anyhow::Result<Option<std::thread::JoinHandle<()>>> {
    if args.kafka.is_some() {
        bail!("--kafka: this tailgate was built without the `kafka` feature");
    }
    Ok(None)
}

type Tls = Option<Arc<scribe_tls::ServerTls>>;

/// The HTTP listener's TLS settings, and the Scribe listener's (the same certificate, and
/// the client CA when pushers must present certificates).
fn load_tls(args: &Args) -> anyhow::Result<(Tls, Tls)> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok((None, None));
    };
    let files = scribe_tls::ServerTlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: None,
    };
    let http = scribe_tls::ServerTls::load(files.clone()).context("--tls-cert/--tls-key")?;
    let scribe = if args.scribe_tls || args.scribe_client_ca.is_some() {
        let files = scribe_tls::ServerTlsFiles {
            client_ca: args.scribe_client_ca.clone(),
            ..files
        };
        Some(Arc::new(
            scribe_tls::ServerTls::load(files).context("the Scribe listener's TLS")?,
        ))
    } else {
        None
    };
    Ok((Some(Arc::new(http)), scribe))
}

/// SIGHUP re-reads the TLS files; a listener whose new files are bad keeps its old ones.
fn reload_on_sighup(
    tls: Vec<Arc<scribe_tls::ServerTls>>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    if tls.is_empty() {
        return Ok(());
    }
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            for t in &tls {
                match t.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate and key re-read"),
                    Err(e) => tracing::error!("SIGHUP: keeping the certificate in force: {e}"),
                }
            }
        }
    });
    Ok(())
}

/// Open HTTP connections allowed beyond `--max-clients` (plain requests, refused upgrades).
const HTTP_HEADROOM: usize = 100;
/// How long shutdown waits for plain HTTP requests in flight.
const HTTP_DRAIN: Duration = Duration::from_secs(5);
