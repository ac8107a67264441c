//! SIGTERM, SIGINT and SIGHUP end `ship rotatelogs` without losing what is already in the pipe.
//!
//! httpd stops its piped loggers with SIGTERM (then SIGKILL 3 s later). Lines it wrote just
//! before are still in the pipe; rotatelogs dies at once and they are gone. Here the handler
//! only sets a flag; the read loop then reads the pipe without blocking until it is empty,
//! writes everything, fsyncs and exits 0. The handler is installed without `SA_RESTART`, and
//! the loop waits for input in short slices, so the flag is seen within [`CHECK_EVERY`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Longest a blocked read waits before looking at the flag again.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: std::ffi::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGTERM, SIGINT and SIGHUP (process-wide).
pub fn install() {
    // No SA_RESTART (see the module docs), an empty mask.
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and it
        // replaces no handler anything else in this process relies on (`ship rotatelogs` is
        // synchronous and starts no runtime).
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            tracing::warn!("cannot handle signal {sig}: {e}");
        }
    }
}

/// Whether a stop signal arrived.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
