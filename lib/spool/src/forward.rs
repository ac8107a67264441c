//! Store-and-forward over a [`Spool`]: the bookkeeping of replay, in one place.
//!
//! # Why
//!
//! Two programs forward batches to a next hop and fall back to a disk spool while it is down:
//! scribed's buffer store (to its primary store) and ship's outbox (to the aggregator). Both
//! run the same state machine — stream, spool on a failure, drain the spool oldest first,
//! stream again — and both must get the same details right around the spool:
//!
//! - a replayed batch's position is committed only once the next hop acknowledged it, and not
//!   after every batch (each commit costs two fsyncs), but often enough that delivered bytes do
//!   not keep the spool "full": every `min(16 MiB, max_bytes / 4)` of **acknowledged** records
//!   (counting sent-but-unacknowledged bytes would commit what may be lost);
//! - on a failure, what was acknowledged is committed first and only then is the reader rewound,
//!   so the retry resends exactly the unacknowledged batches;
//! - once the spool is drained (nothing left to read, nothing in flight) the **read** position
//!   is committed, not the last batch's: a damaged region the reader skipped after the last
//!   whole record would otherwise stay uncommitted, counted in [`Spool::bytes`] and against
//!   `max_bytes` for good, and every restart would find a "backlog" that holds nothing.
//!
//! Two hand-written copies of these rules had drifted apart (the buffer store never committed
//! past a damaged tail; the outbox committed every 16 MiB *sent*, whatever the spool's size),
//! so the rules live here and each caller keeps only its **policy**: what to do when the spool
//! is full (scribed answers `TRY_LATER`; ship stops reading and holds the batch), how many
//! replayed batches it has in flight (both a pipelined window), how long it waits
//! before draining again, and how it reports.
//!
//! # Use
//!
//! A [`Forwarder`] owns the spool. It does no I/O of its own beyond the spool's (blocking, as
//! the spool is) and keeps no clock: the caller sends, waits and times retries.
//!
//! ```no_run
//! use scribe_spool::forward::{Forwarder, Mode, Next};
//! use scribe_spool::{Spool, SpoolOptions};
//!
//! # fn send(_: &[scribe_spool::Entry]) -> bool { true }
//! # fn main() -> Result<(), scribe_spool::SpoolError> {
//! let mut fwd = Forwarder::new(Spool::open("/var/spool/x", SpoolOptions::default())?);
//! // Streaming and the next hop failed: keep the batch (and later ones) in the spool.
//! fwd.failed()?; // Streaming -> Spooling
//! fwd.append_and_sync(&[(&b"cat"[..], &b"line\n"[..])])?;
//! // The caller's retry delay passed: replay, oldest first.
//! fwd.start_draining(); // Spooling -> Draining
//! while fwd.mode() == Mode::Draining {
//!     match fwd.next_batch(1 << 20)? {
//!         Next::Send(batch) if send(&batch.entries) => fwd.acked()?,
//!         Next::Send(_) => fwd.failed()?, // commits what was acknowledged, rewinds
//!         Next::Wait => break, // only with several batches in flight
//!         Next::Drained => {}  // read position committed; Streaming again
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;

use crate::{AsEntry, Position, ReplayBatch, Spool, SpoolError};

/// The most acknowledged replay bytes between two commits (less with a small spool: see
/// [`Forwarder::commit_every`]). A crash replays at most this much again.
pub const COMMIT_EVERY_BYTES: u64 = 16 << 20;

/// Where new batches go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// To the next hop; the spool holds nothing.
    Streaming,
    /// To the spool: the next hop failed, and the caller waits before trying it again.
    Spooling,
    /// To the spool, behind the backlog, while the backlog is replayed oldest first (so the
    /// order of batches survives the outage).
    Draining,
}

impl Mode {
    /// `"streaming"`, `"spooling"` or `"draining"`, as status pages show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Streaming => "streaming",
            Mode::Spooling => "spooling",
            Mode::Draining => "draining",
        }
    }
}

/// What [`Forwarder::next_batch`] found.
#[derive(Debug)]
pub enum Next {
    /// Records to send. Report the outcome with [`Forwarder::acked`] (acknowledgements come
    /// in the order the batches were handed out) or [`Forwarder::failed`].
    Send(ReplayBatch),
    /// Nothing to send now: everything was read and some batches are still in flight (or the
    /// forwarder is not draining). Wait for an acknowledgement.
    Wait,
    /// Everything was read and acknowledged: the read position is committed, the spool is
    /// empty and the mode is [`Mode::Streaming`].
    Drained,
}

/// Store-and-forward over a [`Spool`]: the mode, and the replay bookkeeping. See the
/// [module docs](self) for why it exists and what stays with the caller.
pub struct Forwarder {
    spool: Spool,
    mode: Mode,
    /// Replayed batches handed out and not yet acknowledged, oldest first: the position after
    /// each and its on-disk bytes. As many as the caller keeps in flight.
    in_flight: VecDeque<(Position, u64)>,
    /// Position after the newest acknowledged batch, not yet committed.
    acked: Option<Position>,
    /// On-disk bytes of the batches acknowledged since the last commit.
    acked_bytes: u64,
    commit_every: u64,
    /// `corrupt_records` already reported by [`Forwarder::take_corrupt_records`].
    corrupt_seen: u64,
}

impl Forwarder {
    /// Takes over `spool`: [`Mode::Draining`] if it holds a backlog (from an earlier run),
    /// else [`Mode::Streaming`].
    pub fn new(spool: Spool) -> Forwarder {
        let mode = if spool.is_empty() {
            Mode::Streaming
        } else {
            Mode::Draining
        };
        // Delivered bytes count against `max_bytes` until committed: with a small spool,
        // commit often enough not to refuse appends for lack of room.
        let commit_every = COMMIT_EVERY_BYTES.min(spool.options().max_bytes / 4);
        Forwarder {
            spool,
            mode,
            in_flight: VecDeque::new(),
            acked: None,
            acked_bytes: 0,
            commit_every,
            corrupt_seen: 0,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The spool, for its size and counters. Reading and committing go through the forwarder.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Acknowledged replay bytes between two commits: `min(16 MiB, max_bytes / 4)`.
    pub fn commit_every(&self) -> u64 {
        self.commit_every
    }

    /// Replayed batches handed out and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// [`Spool::append`]: while spooling or draining (the record queues behind the backlog).
    /// A caller that was streaming calls [`Forwarder::failed`] first: a record appended while
    /// streaming waits for the next drain. A [`SpoolError::Full`] is the caller's to handle
    /// (its policy: refuse, or hold the batch and wait).
    pub fn append<E: AsEntry>(&mut self, entries: &[E]) -> Result<(), SpoolError> {
        self.spool.append(entries)
    }

    /// [`Spool::sync`]: acknowledge spooled batches upstream only after this.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        self.spool.sync()
    }

    /// [`Forwarder::append`] then [`Forwarder::sync`].
    pub fn append_and_sync<E: AsEntry>(&mut self, entries: &[E]) -> Result<(), SpoolError> {
        self.spool.append_and_sync(entries)
    }

    /// The next hop failed (an error, a refusal, no progress): the mode becomes
    /// [`Mode::Spooling`]. While streaming, the caller then spools what was not acknowledged.
    /// While draining, the acknowledged batches are committed first and the reader is rewound
    /// to that commit, so the retry resends exactly the unacknowledged ones.
    ///
    /// On a commit error the state has changed all the same (rewound, spooling), and the
    /// acknowledged batches will be replayed again: at-least-once.
    pub fn failed(&mut self) -> Result<(), SpoolError> {
        let was = std::mem::replace(&mut self.mode, Mode::Spooling);
        if was != Mode::Draining {
            return Ok(());
        }
        let committed = self.commit_acked();
        self.in_flight.clear();
        self.spool.rewind();
        committed
    }

    /// The caller's wait after a failure is over: [`Mode::Spooling`] becomes
    /// [`Mode::Draining`]. Does nothing in the other modes.
    pub fn start_draining(&mut self) {
        if self.mode == Mode::Spooling {
            self.mode = Mode::Draining;
        }
    }

    /// While draining: reads the next records to send, about `max_bytes` of them (at least
    /// one record), skipping damage. When nothing is left to read and nothing is in flight,
    /// commits the read position — past any damage the reader skipped after the last record,
    /// so that damage is neither counted nor found again after a restart — and turns to
    /// [`Mode::Streaming`].
    ///
    /// If that commit fails (a full disk), the mode is [`Mode::Streaming`] all the same —
    /// everything read was delivered — and the position is committed by the next
    /// [`Forwarder::commit_acked`] (a restart meanwhile replays from the last commit).
    pub fn next_batch(&mut self, max_bytes: usize) -> Result<Next, SpoolError> {
        if self.mode != Mode::Draining {
            return Ok(Next::Wait);
        }
        if let Some(batch) = self.spool.next_batch(max_bytes)? {
            self.in_flight.push_back((batch.position, batch.bytes));
            return Ok(Next::Send(batch));
        }
        if !self.in_flight.is_empty() {
            return Ok(Next::Wait);
        }
        self.acked = Some(self.spool.read_position());
        self.mode = Mode::Streaming;
        self.commit_acked()?;
        tracing::debug!(dir = %self.spool.dir().display(), "spool drained");
        Ok(Next::Drained)
    }

    /// The oldest replayed batch in flight was acknowledged. Commits when the acknowledged
    /// bytes reach [`Forwarder::commit_every`]; a commit error leaves those batches to be
    /// replayed again after a restart (at-least-once).
    pub fn acked(&mut self) -> Result<(), SpoolError> {
        if self.note_acked() {
            self.commit_acked()?;
        }
        Ok(())
    }

    /// [`Forwarder::acked`] without the commit: notes the oldest replayed batch in flight as
    /// acknowledged and says whether a commit is due ([`Forwarder::commit_every`] reached).
    /// For a caller that keeps a window of batches in flight: it can start the next ones
    /// first and then [`Forwarder::commit_acked`], so the commit's fsyncs overlap their
    /// sending instead of leaving the window empty meanwhile.
    pub fn note_acked(&mut self) -> bool {
        let Some((position, bytes)) = self.in_flight.pop_front() else {
            tracing::debug!("replay acknowledgement with nothing in flight; ignored");
            return false;
        };
        self.acked = Some(position);
        self.acked_bytes += bytes;
        self.acked_bytes >= self.commit_every
    }

    /// Commits the position after the last acknowledged batch, if not done yet: at a
    /// shutdown, so a restart does not replay what was delivered. After an error the position
    /// is kept, and the next commit tries again (with a later one, if more was acknowledged).
    pub fn commit_acked(&mut self) -> Result<(), SpoolError> {
        if let Some(position) = self.acked {
            self.spool.commit(position)?;
        }
        self.acked = None;
        self.acked_bytes = 0;
        Ok(())
    }

    /// [`Spool::discard_unsynced`]: after a failed [`Forwarder::sync`], before appending the
    /// same batches again.
    pub fn discard_unsynced(&mut self) -> Result<(), SpoolError> {
        self.spool.discard_unsynced()
    }

    /// Damaged regions the reader skipped since the last call (see
    /// [`SpoolStats::corrupt_records`](crate::SpoolStats::corrupt_records)).
    pub fn take_corrupt_records(&mut self) -> u64 {
        let corrupt = self.spool.stats().corrupt_records;
        let new = corrupt.saturating_sub(self.corrupt_seen);
        self.corrupt_seen = corrupt;
        new
    }
}
