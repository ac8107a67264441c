//! The category archive: what a category name may be, how a category's files are laid out on
//! disk, and the rotating writer that appends to them.
//!
//! `scribed`'s file store writes through [`writer::RotatingWriter`]; readers (tailgate, logq)
//! find files through [`layout`]. One implementation of the layout keeps them in agreement.

pub mod category;
pub mod layout;
pub mod writer;

pub use category::{Category, CategoryError};
pub use writer::{RotatingWriter, WriteError, WriteStats, WriterOptions};
