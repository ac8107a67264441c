//! Reloading the configuration (SIGHUP, or fb303 `reinitialize`) without dropping connections
//! or losing queued messages.
//!
//! 1. Read and validate the new file (as `--check-config` does: two stores writing one category
//!    directory or sharing a spool are refused there). If it is invalid, log why and keep the
//!    old configuration.
//! 2. Take the routing write lock: new `Log` calls wait, in-flight ones finish.
//! 3. Close the old stores: they write what they accepted, fsync, persist spool positions.
//! 4. Refuse the new configuration if it would strand a spool backlog (below).
//! 5. Build the new stores and install them. If building fails (say, a spool directory cannot
//!    be created), or step 4 refused, rebuild the old configuration instead, so scribed keeps
//!    serving.
//!
//! TLS listeners re-read their certificate files first; bad new files leave the ones in force
//! serving (see [`reload_certificates`]). The `[[client]]` rules and token files are part of
//! the configuration and are replaced with it.
//!
//! Listen addresses, the status address, `max_frame` and `max_connections` need a restart; a
//! change to them is logged and otherwise ignored.
//!
//! **Spools.** A spool holds acknowledged lines until its buffer store delivers them. A reload
//! that removes that store, or changes it so that it spools elsewhere (its categories name
//! the default spool directory), would leave them where nothing replays them. Such a reload
//! is refused, with the spool and what to do, rather than the old spool kept draining in the
//! background: a drain belonging to no configuration would keep an upstream the operator
//! meant to drop, hold a lock a later configuration may need, and vanish at the next restart
//! (stranding the data again, silently). Refusing keeps "every spool with a backlog belongs to
//! the configuration in force", and the operator has two clear ways on: let it drain first, or
//! name it as `spool_dir` of the buffer store that should replay it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use scribe_spool::{Spool, SpoolError, SpoolOptions};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{claimed_spools, Settings};
use crate::counters::{RELOADS, RELOAD_FAILURES};
use crate::router::Routing;
use crate::Server;

/// Re-reads every TLS listener's certificate, key and client CA. A listener whose new files
/// are bad keeps serving with the ones in force, and the error says which file and why.
pub fn reload_certificates(server: &Server) {
    let listeners = server.tls.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (at, tls) in listeners {
        match tls.reload() {
            Ok(()) => tracing::info!("{at}: TLS certificate and key re-read"),
            Err(e) => {
                server.counters.add(None, RELOAD_FAILURES, 1);
                tracing::error!("{at}: keeping the certificate in force: {e}");
            }
        }
    }
}

/// Reloads now: certificates first ([`reload_certificates`]), then the configuration.
/// `Err` carries the reason the new configuration was not applied.
pub async fn reload(server: &Server) -> Result<(), String> {
    reload_certificates(server);
    let fail = |reason: String| {
        tracing::error!("reload rejected, keeping the current configuration: {reason}");
        server.counters.add(None, RELOAD_FAILURES, 1);
        Err(reason)
    };
    let mut new = match Settings::load(&server.args) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let mut routing = server.routing.write().await;
    let old = routing.settings.clone();
    warn_restart_only(&old, &new);
    // Connections keep reading frames with the limit they started with; stores must not send
    // bigger ones than that either.
    new.max_frame = old.max_frame;
    routing.close().await;
    // Only now, with the old stores closed, is every spool's backlog final.
    if let Some(reason) = stranded_backlog(&old, &new) {
        restore(server, &mut routing, old).await;
        return fail(reason);
    }
    crate::config::warn_unclaimed_spools(&new);
    match Routing::build(new, server.counters.clone()).await {
        Ok(r) => {
            *routing = Arc::new(r);
            server
                .broken
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            server.counters.add(None, RELOADS, 1);
            tracing::info!("configuration reloaded");
            Ok(())
        }
        Err(e) => {
            let reason = format!("building the new stores: {e:#}");
            restore(server, &mut routing, old).await;
            fail(reason)
        }
    }
}

fn warn_restart_only(old: &Settings, new: &Settings) {
    for (what, changed) in [
        ("listen", new.listen != old.listen),
        ("listener", new.listeners != old.listeners),
        ("status_listen", new.status_listen != old.status_listen),
        ("max_frame", new.max_frame != old.max_frame),
        (
            "max_connections",
            new.max_connections != old.max_connections,
        ),
        ("[[syslog]] / [[otlp]]", new.inputs != old.inputs),
    ] {
        if changed {
            tracing::warn!("reload: a change to `{what}` takes effect only after a restart");
        }
    }
}

/// Puts the previous configuration back in force after its stores were closed.
async fn restore(server: &Server, routing: &mut Arc<Routing>, old: Settings) {
    match Routing::build(old, server.counters.clone()).await {
        Ok(r) => *routing = Arc::new(r),
        Err(e) => {
            // The closed stores stay installed and refuse every batch (TRY_LATER): say so on
            // /health and in fb303 status until a reload succeeds.
            tracing::error!("rebuilding the previous configuration failed too: {e:#}");
            *server.broken.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("no stores in service after a failed reload: {e:#}"));
        }
    }
}

/// Why `new` may not replace `old`: spools of `old` that no buffer store of `new` uses, and that
/// hold a backlog (see the module doc). `None` when there is none.
fn stranded_backlog(old: &Settings, new: &Settings) -> Option<String> {
    let kept: HashSet<PathBuf> = claimed_spools(new).into_iter().map(|(d, _)| d).collect();
    let stranded: Vec<String> = claimed_spools(old)
        .into_iter()
        .filter(|(dir, _)| !kept.contains(dir))
        .filter_map(|(dir, at)| match backlog(&dir) {
            Ok(0) => None,
            Ok(n) => Some(format!("{at}'s spool {} holds {n} bytes", dir.display())),
            Err(e) => Some(format!(
                "{at}'s spool {} may hold a backlog ({e})",
                dir.display()
            )),
        })
        .collect();
    if stranded.is_empty() {
        return None;
    }
    Some(format!(
        "{}: acknowledged lines not yet delivered, and the new configuration has no buffer \
         store to replay them; let the spool drain first (spool_bytes 0 on /status), or set \
         spool_dir to that directory on the buffer store that should replay it",
        stranded.join("; ")
    ))
}

/// Bytes a closed spool still has to deliver.
fn backlog(dir: &Path) -> Result<u64, SpoolError> {
    if !dir.exists() {
        return Ok(0);
    }
    Ok(Spool::open(dir, SpoolOptions::default())?.bytes())
}

/// Reloads on every SIGHUP until shutdown.
pub fn on_sighup(server: Arc<Server>) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = server.shutdown.cancelled() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            tracing::info!("SIGHUP: reloading configuration");
            let _ = reload(&server).await;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use bytes::Bytes;
    use clap::Parser;

    use super::reload;
    use crate::config::{Args, Settings};
    use crate::stores::CategoryBatch;
    use crate::Server;

    /// A buffer store for `categories` whose upstream is down, so what it is given is spooled.
    fn buffer(categories: &str, dead: u16, spool_dir: Option<&Path>) -> String {
        let spool = spool_dir.map_or(String::new(), |d| format!("spool_dir = {:?}\n", d));
        format!(
            "[[store]]\ncategories = {categories}\ntype = \"buffer\"\nretry_interval = \"1h\"\n\
             {spool}[store.primary]\ntype = \"network\"\nremote = [\"127.0.0.1:{dead}\"]\n"
        )
    }

    fn spooled(server: &Server) -> u64 {
        let routing = server
            .routing
            .try_read()
            .expect("no reload running")
            .clone();
        routing
            .status()
            .iter()
            .filter(|s| s.kind == "buffer")
            .map(|s| s.spool_bytes)
            .sum()
    }

    /// A reload that removes a buffer store holding a backlog, or changes it so that it spools
    /// elsewhere, would leave acknowledged lines where nothing replays them: refused, and the
    /// old store keeps its spool. Naming the old spool in the new configuration is accepted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reload_that_would_strand_a_spool_backlog_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("scribed.toml");
        let data = tmp.path().join("data");
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(&config, buffer("[\"web\"]", dead, None)).unwrap();
        let args = Args::parse_from([
            "scribed",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        let settings = Settings::load(&args).unwrap();
        let server = Server::new(args, settings, Default::default())
            .await
            .unwrap();
        let batch = Arc::new(CategoryBatch::new(
            "web".parse().unwrap(),
            vec![Bytes::from_static(b"acknowledged\n")],
        ));
        let routing = server.routing.read().await.clone();
        routing.write(&[batch]).await.unwrap();
        drop(routing);
        assert!(spooled(&server) > 0);
        let old_spool = data.join(".spool").join("web");

        let file = "[[store]]\ncategory = \"web\"\ntype = \"file\"\n";
        for (what, text) in [
            ("removed", file.to_string()),
            ("changed", buffer("[\"web\", \"api\"]", dead, None)),
        ] {
            std::fs::write(&config, text).unwrap();
            let e = reload(&server).await.unwrap_err();
            assert!(
                e.contains(&old_spool.display().to_string()) && e.contains("spool_dir"),
                "{what}: {e}"
            );
            assert!(spooled(&server) > 0, "{what}: the old buffer store is back");
        }

        let kept = buffer("[\"web\", \"api\"]", dead, Some(&old_spool));
        std::fs::write(&config, kept).unwrap();
        reload(&server).await.unwrap();
        assert!(
            spooled(&server) > 0,
            "the new buffer store took the spool over"
        );
        server.routing.read().await.close().await;
    }
}
