//! Turns SIGINT and SIGTERM into a cancelled token (the start of a graceful shutdown).

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT or SIGTERM.
pub fn on_signals(token: CancellationToken) -> std::io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = token.cancelled() => return,
        };
        tracing::info!("{name} received: finishing in-flight batches");
        token.cancel();
    });
    Ok(())
}
