//! Reloading the configuration (SIGHUP, or fb303 `reinitialize`) without dropping connections
//! or losing queued messages.
//!
//! 1. Read and validate the new file. If it is invalid, log why and keep the old configuration.
//! 2. Take the routing write lock: new `Log` calls wait, in-flight ones finish.
//! 3. Close the old stores: they write what they accepted, fsync, persist spool positions.
//! 4. Build the new stores and install them. If building fails (say, a spool directory cannot
//!    be created), rebuild the old configuration instead, so scribed keeps serving.
//!
//! Listen addresses, the status address, `max_frame` and `max_connections` need a restart; a
//! change to them is logged and otherwise ignored.

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};

use crate::config::Settings;
use crate::counters::{RELOADS, RELOAD_FAILURES};
use crate::router::Routing;
use crate::Server;

/// Reloads now. `Err` carries the reason the new configuration was not applied.
pub async fn reload(server: &Server) -> Result<(), String> {
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
    for (what, changed) in [
        ("listen", new.listen != old.listen),
        ("status_listen", new.status_listen != old.status_listen),
        ("max_frame", new.max_frame != old.max_frame),
        (
            "max_connections",
            new.max_connections != old.max_connections,
        ),
    ] {
        if changed {
            tracing::warn!("reload: a change to `{what}` takes effect only after a restart");
        }
    }
    // Connections keep reading frames with the limit they started with; stores must not send
    // bigger ones than that either.
    new.max_frame = old.max_frame;
    routing.close().await;
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
            match Routing::build(old, server.counters.clone()).await {
                Ok(r) => *routing = Arc::new(r),
                Err(e2) => {
                    // The closed stores stay installed and refuse every batch (TRY_LATER):
                    // say so on /health and in fb303 status until a reload succeeds.
                    tracing::error!("rebuilding the previous configuration failed too: {e2:#}");
                    *server.broken.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!(
                        "no stores in service after a failed reload: {e2:#}"
                    ));
                }
            }
            drop(routing);
            fail(reason)
        }
    }
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
