//! [`Position`]: a place in the spool.
//!
//! Its own module because both the cursor file (which stores one) and the error type (which
//! names one in [`SpoolError::InvalidPosition`](crate::SpoolError::InvalidPosition)) need it,
//! and neither should depend on the other.

use std::fmt;

/// A place in the spool: a segment id and a byte offset in it, always at a record boundary (or
/// at the start of a segment that may not exist yet). Ordered like the records are.
///
/// Returned by [`Spool::next_batch`](crate::Spool::next_batch) as the token to pass to
/// [`Spool::commit`](crate::Spool::commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    // Field order matters: the derived `Ord` compares the segment first.
    pub(crate) segment: u64,
    pub(crate) offset: u64,
}

impl Position {
    pub fn segment(&self) -> u64 {
        self.segment
    }
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.segment, self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_segment_then_offset() {
        let p = |segment, offset| Position { segment, offset };
        assert!(p(1, 500) < p(2, 0));
        assert!(p(2, 0) < p(2, 1));
        assert_eq!(p(3, 4).to_string(), "3:4");
    }
}
