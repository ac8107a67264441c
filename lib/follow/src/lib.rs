//! A rotation-aware file follower: `tail -F` that does not lose lines at rotation.
//!
//! `ship --follow` reads log files with it, and tailgate follows scribed's `<cat>_current`
//! with it. A [`Follower`] watches exact paths and, on every [`Follower::poll`], delivers the
//! new complete lines of each file as [`Event::Line`]s, with the offset to
//! [`commit`](Follower::commit) once the caller's aggregator has acknowledged them, and the
//! stream nonce that names the file's byte offsets across restarts (see
//! [Stream nonces](#stream-nonces)).
//!
//! ```no_run
//! use scribe_follow::{Checkpoints, Event, FollowOptions, Follower};
//! use std::path::Path;
//!
//! let positions = Path::new("/var/lib/ship/positions");
//! let mut follower =
//!     Follower::with_checkpoints(FollowOptions::default(), &Checkpoints::load(positions)?);
//! follower.watch("/var/log/apache2/access.log");
//! loop {
//!     let mut sent = Vec::new();
//!     let outcome = follower.poll(&mut |event| {
//!         if let Event::Line { file_id, stream, offset_after, bytes, .. } = event {
//!             // ... queue `bytes`, identified by `stream` and the byte range
//!             // `offset_after - bytes.len() .. offset_after` ...
//!             sent.push((file_id, offset_after));
//!         }
//!     });
//!     if follower.has_unsaved_streams() {
//!         // A new stream nonce: make it durable before any of its lines leaves.
//!         follower.checkpoints().save(positions)?;
//!     }
//!     // ... send what was queued ...
//!     // ... once the aggregator answered OK:
//!     for (file_id, offset) in sent {
//!         follower.commit(file_id, offset)?;
//!     }
//!     follower.checkpoints().save(positions)?;
//!     if !outcome.pending {
//!         std::thread::sleep(std::time::Duration::from_millis(250));
//!     }
//! }
//! # Ok::<(), scribe_follow::FollowError>(())
//! ```
//!
//! # What a poll handles
//!
//! Each poll `stat`s and opens every watched path, compares what is there with the file it
//! was reading — identity is (device, inode) plus a CRC of the first
//! [`fingerprint_bytes`](FollowOptions::fingerprint_bytes) (1024) bytes — and reads:
//!
//! - **rename + create** (logrotate's default): the old file is found again by its inode in
//!   the path's directory (or its symlink target's directory), kept open and read to its end
//!   — including lines the writer added after the rename — before the new file at the path
//!   is read from its beginning. It stays open until it has been idle at its end for
//!   [`rotate_wait`](FollowOptions::rotate_wait), for writers that reopen their log late.
//! - **several rotations between two polls** (a stalled poller, a burst of rotations): the
//!   files that came and went at the path meanwhile are found in its directory — a name
//!   starting with the path's file name (`app.log.2`, `app.log-20261123`), modified since
//!   the previous poll, not a compressed copy, not a file already known — and drained oldest
//!   first, between the file that left and the file now at the path.
//! - **copytruncate**: a size below the read offset, or first bytes that no longer match the
//!   fingerprint, restart reading at 0 ([`Event::Truncated`]). The part not read yet is looked
//!   for in the copy: a rotated sibling (as above) that starts with the same fingerprinted
//!   bytes and holds at least what was read; if found, it is read from the read offset on,
//!   before the truncated file. Only lines written after the copy was made and before the
//!   truncation are then lost — they are in neither file, for any reader. Without a copy the
//!   unread part is lost. [`FollowStats::truncated_unread`] counts what was seen to exist and
//!   could not be read (a lower bound). A rewrite to exactly the read offset's size between
//!   two polls is caught only if its modification time or first bytes differ.
//! - **delete + recreate**, a file that appears later, a directory that appears later: the
//!   new file is read from its beginning. If the old file was deleted before it was read to
//!   its end, the rest is lost ([`Event::Vanished`], counted in [`FollowStats::vanished`]);
//!   so is a file moved to another directory. "Its end" is its size when the follower last
//!   looked (a poll, or [`Follower::observe`]): a file that had been read that far and is
//!   then removed — a rotated file compressed right away (logrotate's `compress` without
//!   `delaycompress`), an old rotated name deleted by the rotation count, a file rotated
//!   while the caller was stopped and removed before it restarted — lost nothing anyone can
//!   tell and is [`Event::Closed`]. Bytes written after the last look and deleted before
//!   the next are invisible, as they would be to any reader that does not hold the file open.
//! - **symlinks** are followed; a retargeted link is handled like rename + create.
//! - **a file that moves from one watched path to another** (a glob that also matches
//!   rotated names, `app.log*`, with a rotation count: `app.log.1` becomes `app.log.2` while
//!   both are watched) is recognised by its identity — being read or drained under another
//!   watched path, or drained and closed there lately — and carries on at its new path where
//!   it was read to, under the same [`FileId`] and stream nonce ([`Event::Opened`] at that
//!   offset), instead of being read again from its beginning. A file still at its other path
//!   (a hard link, a symlink to it) is not taken from there.
//!
//! # Where reading starts
//!
//! A file at a path watched before the first poll starts at its end (unless
//! [`from_beginning`](FollowOptions::from_beginning)); every file that appears later starts
//! at 0. A path with a checkpoint resumes at the committed offset when the file is still
//! the same (also when it was rotated to another name in its directory meanwhile); any other
//! file there starts at 0. After a clean shutdown (everything read was committed and saved)
//! a restart neither loses nor repeats a line; after a crash, lines read but not committed
//! are read again (at-least-once) — under the same stream nonce and at the same offsets, so
//! a receiver that remembers what it wrote can drop them (exactly-once).
//!
//! # Stream nonces
//!
//! Every generation of a followed file (every [`FileId`]) has a `stream` nonce: a random
//! non-zero `u64`, in [`Event::Line`] and [`Event::Opened`] and from
//! [`Follower::stream_of`]. Together with a line's byte range it identifies the line across
//! restarts of the caller, which is what exactly-once delivery needs:
//!
//! - a file first opened without a checkpoint, a new file at a watched path (after rotation,
//!   delete + recreate, a retargeted symlink, or a generation found by the sweep) and a file
//!   truncated or rewritten in place ([`Event::Truncated`]'s `new_stream`) get a fresh
//!   nonce: their offsets start over;
//! - a rotated file being drained keeps its nonce, and so do the lines copytruncate's copy
//!   gives back (they are the old generation's bytes at the old offsets);
//! - a file that moves to another watched path (a rotation count under a glob) keeps its
//!   nonce and its offsets there; that counts as unsaved, since its checkpoint moves with it;
//! - the nonce is saved in the [`Checkpoint`] and restored with it, also when the file was
//!   rotated while the caller was down. A version-1 positions file has no nonces: its files
//!   get fresh ones.
//!
//! A nonce is only useful if it outlives a crash, so a caller aiming for exactly-once must
//! save the checkpoints durably whenever [`Follower::has_unsaved_streams`] says so, before
//! sending any line of the new stream.
//!
//! # Lines
//!
//! A line is the bytes up to and including `\n`, never UTF-8-checked. A partial last line is
//! held until its `\n` arrives, or delivered as it is (without `\n`) when its file is closed
//! after rotation, truncated or vanishes. A line longer than
//! [`max_line_bytes`](FollowOptions::max_line_bytes) is not delivered or held: it is reported
//! as [`Event::LineTooLong`] and skipped.
//!
//! # Resources
//!
//! No thread, and no descriptor per file: each poll opens, reads (`pread`) and closes every
//! file, so thousands of files cost thousands of `open`/`fstat` calls per poll but no
//! descriptors. Only rotated files being drained stay open, until `rotate_wait` after their
//! last growth. Memory per file is its identity plus at most one partial line.
//!
//! # Wake-ups
//!
//! The follower polls; it does not use inotify itself. [`Waker`] layers change notifications
//! (the `notify` crate: inotify on Linux) on top as a hint to poll sooner, but the periodic
//! poll stays the source of truth: inotify coalesces and drops events and sees nothing on
//! NFS. Plain polling ([`Waker::polling`]) works everywhere.
//!
//! # Discovery
//!
//! [`Globs`] expands include/exclude patterns into paths to [`Follower::watch`]; re-run it
//! periodically to find files and directories that appear later, and use
//! [`Follower::unwatch_if_idle`] for paths whose files are gone.

#![forbid(unsafe_code)]

mod checkpoint;
mod discover;
mod error;
mod follower;
mod identity;
mod pass;
mod state;
mod wake;

pub use checkpoint::{Checkpoint, Checkpoints};
pub use discover::{is_glob, Globs};
pub use error::FollowError;
pub use follower::{Follower, PollOutcome};
pub use identity::{FileId, Fingerprint};
pub use state::{Event, FollowOptions, FollowStats};
pub use wake::Waker;
