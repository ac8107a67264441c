//! SIGINT and SIGTERM → a cancelled token: the start of every binary's graceful shutdown.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT or SIGTERM, logging `"<SIGNAL> received: {what}"`.
///
/// Must be called inside a Tokio runtime. The handlers are in place when this returns, and
/// they stay for the life of the process (Tokio never uninstalls one): a second signal during
/// the shutdown does nothing, so the shutdown's own deadlines decide when it ends. The
/// watching task also ends when `token` is cancelled some other way (fb303 `shutdown`).
pub fn cancel_on_signals(token: CancellationToken, what: &'static str) -> std::io::Result<()> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
            _ = token.cancelled() => return,
        };
        tracing::info!("{name} received: {what}");
        token.cancel();
    });
    Ok(())
}
