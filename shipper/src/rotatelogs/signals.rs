//! SIGTERM, SIGINT and SIGHUP end `ship rotatelogs` without losing what is already in the pipe.
//!
//! httpd stops its piped loggers with SIGTERM (then SIGKILL 3 s later). Lines it wrote just
//! before are still in the pipe; rotatelogs dies at once and they are gone. Here the handler
//! only sets a flag; the read loop then reads the pipe without blocking until it is empty,
//! writes everything, fsyncs and exits 0. The handler is installed without `SA_RESTART`, so a
//! blocked `read(2)` returns `EINTR`; and it makes the input descriptor non-blocking
//! ([`interrupt_reads`]), so a read entered just after the flag was checked returns at once
//! instead of waiting for the next input. The loop can therefore block in `read(2)` itself,
//! without a `poll(2)` before each read (a third more system calls when the pipe often runs
//! dry). Loops that also wait for a clock (`-c`) wait in slices of [`CHECK_EVERY`].

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Longest a blocked read waits before looking at the flag again.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

static STOP: AtomicBool = AtomicBool::new(false);

/// The descriptor the read loop blocks on (-1: none).
static INPUT: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: std::ffi::c_int) {
    // Atomics and fcntl(2) only: all async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
    let fd = INPUT.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: fcntl on a descriptor number touches no memory of this process; if the
        // descriptor were closed meanwhile it fails with EBADF, which is ignored.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
    }
}

/// From now on a stop signal also makes `fd` non-blocking, so a `read(2)` on it never waits
/// past the signal (see the module docs). `fd` must stay open for the rest of the process.
pub fn interrupt_reads(fd: RawFd) {
    INPUT.store(fd, Ordering::SeqCst);
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
