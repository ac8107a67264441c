//! SIGTERM, SIGINT and SIGHUP end `ship rotatelogs` without losing what is already in the pipe.
//!
//! httpd stops its piped loggers with SIGTERM (then SIGKILL 3 s later). Lines it wrote just
//! before are still in the pipe; rotatelogs dies at once and they are gone. Here the handler
//! only sets a flag; the read loop then reads the pipe without blocking until it is empty,
//! writes everything, fsyncs and exits 0. The handler is installed without `SA_RESTART`, and
//! the loop waits for input in short slices, so the flag is seen within [`CHECK_EVERY`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Longest a blocked read waits before looking at the flag again.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGTERM, SIGINT and SIGHUP (process-wide).
pub fn install() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; we set a plain handler (no SA_SIGINFO), an
        // empty mask and no flags, and the handler only touches an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                tracing::warn!(
                    "cannot handle signal {sig}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// Whether a stop signal arrived.
pub fn requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
