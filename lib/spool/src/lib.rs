//! A durable, bounded, append-only disk queue of batches of `(category, message)` entries.
//!
//! `scribed`'s buffer store writes here while the upstream aggregator is down and replays the
//! spool, oldest first, once it is back (store-and-forward); `ship`'s disk spool uses it the
//! same way. It replaces Scribe's buffer files, which had no checksums and were read back whole
//! into memory: here every record carries a CRC, replay is streamed in bounded batches, and
//! damaged bytes are skipped and counted instead of ending the file.
//!
//! Both do so through [`Forwarder`] ([`forward`]): the store-and-forward state machine
//! (streaming, spooling, draining) and the replay bookkeeping (what was acknowledged, when to
//! commit, rewinding after a failure, committing past damage once drained), written once.
//! The example below is the spool's own interface, which the forwarder drives.
//!
//! # Use
//!
//! ```no_run
//! use scribe_spool::{Spool, SpoolOptions};
//!
//! # fn send(_: &[scribe_spool::Entry]) -> bool { true }
//! let mut spool = Spool::open("/var/spool/scribed/buffer", SpoolOptions::default())?;
//! // Producer side: the upstream is down, keep the batch locally.
//! spool.append(&[(&b"apache.access"[..], &b"GET / 200\n"[..])])?;
//! spool.sync()?; // only now may the batch be acknowledged as durable
//! // Consumer side: the upstream is back.
//! while let Some(batch) = spool.next_batch(1 << 20)? {
//!     if !send(&batch.entries) {
//!         spool.rewind(); // resend from the last commit later
//!         break;
//!     }
//!     spool.commit(batch.position)?;
//! }
//! # Ok::<(), scribe_spool::SpoolError>(())
//! ```
//!
//! One [`Spool`] owns a directory and does both appending and replay through `&mut self`; the
//! reader sees records appended after it started. All I/O is blocking `std` I/O: async callers
//! run it on a blocking thread. Only one `Spool` may have a directory open at a time (not
//! enforced).
//!
//! # On disk
//!
//! `<dir>/NNNNNNNNNNNNNNNNNNNN.seg` segment files (20-digit zero-padded `u64` ids, so name order
//! is id order) hold records back to back, with no file header. Appends go to the newest
//! segment, which is rolled at [`SpoolOptions::segment_bytes`]; a segment that existed when the
//! spool was opened is never appended to again, so new records never follow a torn tail.
//!
//! A record (all integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `F7 53 50 4C` (`0xF7` never occurs in UTF-8 text, so a resync scan over log text finds few false candidates) |
//! | 4 | payload length (at most [`SpoolOptions::max_record_bytes`]) |
//! | 4 | CRC-32 (IEEE) of the payload |
//! | 4 | CRC-32 of the 12 bytes above, so a damaged length is caught before it is used |
//! | n | payload: `u32` entry count, then per entry `u16` category length, category bytes, `u32` message length, message bytes |
//!
//! `<dir>/cursor` holds the committed read position (8-byte magic `SPLCUR\0\x01`, `u64`
//! segment id, `u64` offset, CRC-32 of those 24 bytes); it is replaced atomically through
//! `cursor.tmp`.
//!
//! # Durability
//!
//! - After [`Spool::append`] returns, the record is in the page cache: it survives a crash of
//!   the process (`kill -9`) but not a power loss or kernel crash.
//! - After [`Spool::sync`] returns, every record appended before it is on stable storage
//!   (`fdatasync` of every segment written since the last sync, and of the directory when a
//!   segment was created). A caller that promises durability acknowledges upstream only after
//!   `sync` (or [`Spool::append_and_sync`]). Group commit: append several batches, sync once.
//! - After [`Spool::commit`] returns, the new read position is on stable storage, and a restart
//!   resumes after it. Without a commit, a restart replays from the previous commit: delivery
//!   is at-least-once, and a crash between sending and committing sends those records again.
//!
//! # A full disk
//!
//! Every failure to write leaves the spool consistent, so a caller can hold what it was
//! writing and try again once there is room ([`SpoolError::is_disk_full`] tells `ENOSPC` and
//! `EDQUOT` from other errors):
//!
//! - a failed append (which may have written part of the record first) is cut back to where
//!   the record began; if even that fails, the segment is retired, so nothing is ever appended
//!   behind the leftover, which replay skips as damage. A failed segment creation changes
//!   nothing.
//! - after a failed [`Spool::sync`], [`Spool::discard_unsynced`] cuts off what was appended
//!   since the last successful one, so the caller can append those batches again without a
//!   second copy in the spool.
//! - a commit whose cursor does not fit removes the segments it consumes first (the spool may
//!   be what fills the disk) and writes the cursor again; a failed commit leaves the previous
//!   cursor. A commit that drains the spool removes the head segment too, so an empty spool
//!   holds no disk space.
//!
//! # Damage
//!
//! A record whose magic, header CRC, length bound or payload CRC does not check out is skipped:
//! the reader scans forward for the next magic that starts a fully valid record and counts the
//! skipped region in [`SpoolStats::corrupt_records`] / [`SpoolStats::corrupt_bytes`], with one
//! warning per segment. A torn tail left by a crash mid-append is such a region. No length read
//! from disk is used to allocate before it has passed the header CRC and the bounds check.
//! One limit of any resync: if a *damaged* record's message bytes themselves contain a whole
//! valid spool record, the scan delivers that inner record (its CRCs are genuinely valid).

#![forbid(unsafe_code)]

mod cursor;
mod error;
pub mod forward;
mod position;
mod record;
mod segment;
mod spool;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::SpoolError;
pub use forward::Forwarder;
pub use position::Position;
pub use record::{AsEntry, Entry};
pub use spool::{ReplayBatch, Spool, SpoolOptions, SpoolStats};
