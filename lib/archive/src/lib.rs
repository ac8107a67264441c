//! The category archive: what a category name may be, how a category's files are laid out on
//! disk, the rotating writer that appends to them, and what happens to closed files
//! (compression, retention).
//!
//! `scribed`'s file store writes through [`writer::RotatingWriter`]; readers (tailgate, logq)
//! find files through [`layout::list_archive`], and follow a category as it is written
//! through [`tail::ArchiveTail`]. One implementation of the layout keeps them in agreement.
//! [`dead_letter`] keeps, in the same framing, the messages a next hop can never accept
//! (scribed's relays, `ship --dead-letter`).

#![forbid(unsafe_code)]

pub mod category;
pub mod clock;
pub mod commit;
pub mod compress;
pub mod dead_letter;
mod error;
pub mod layout;
pub mod retention;
pub mod rotation;
pub mod tail;
pub mod uploads;
pub mod writer;

pub use category::{Category, CategoryError};
pub use clock::{Clock, ManualClock, SystemClock};
pub use commit::CommitStats;
pub use compress::{Compressor, CompressorStats, Submit};
pub use dead_letter::{DeadLetter, DeadLetterError};
pub use error::WriteError;
pub use layout::{ArchiveFile, FileKey};
pub use retention::Retention;
pub use rotation::{RotatePeriod, RotatePeriodError};
pub use scribe_ids::{EntryId, ProducerId};
pub use tail::{ArchiveTail, StartAt, TailError, TailEvent, TailOptions};
pub use writer::{Fsync, Piece, RotatingWriter, WriteStats, WriterOptions};
