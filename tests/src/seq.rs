//! Sequenced lines (`SRC SEQ xxx...x end`) and the checks built on them: nothing lost, nothing
//! duplicated or reordered, nothing cut or glued.

/// Checks `stored` holds every line of `expected` with first occurrences in order; lines seen
/// again (replayed duplicates) are allowed and counted. Returns the number of duplicates.
pub fn check_order_no_loss(stored: &[u8], expected: &[Vec<u8>]) -> Result<usize, String> {
    let mut next = 0;
    let mut seen = std::collections::HashSet::new();
    let mut dups = 0;
    for line in stored.split_inclusive(|&b| b == b'\n') {
        if next < expected.len() && line == &expected[next][..] {
            seen.insert(line.to_vec());
            next += 1;
        } else if seen.contains(line) {
            dups += 1;
        } else {
            return Err(format!(
                "unexpected line {:?} where line {next} ({:?}) was due",
                String::from_utf8_lossy(line),
                expected
                    .get(next)
                    .map(|l| String::from_utf8_lossy(l).into_owned())
            ));
        }
    }
    if next != expected.len() {
        return Err(format!(
            "only {next} of {} lines arrived; first missing: {:?}",
            expected.len(),
            String::from_utf8_lossy(&expected[next])
        ));
    }
    Ok(dups)
}

/// Length of every [`seq_line`]: fixed, so a byte count converts to a line count.
pub const SEQ_LINE_LEN: usize = 100;

/// A line `SRC SEQ xxx...x end\n` of exactly [`SEQ_LINE_LEN`] bytes. Sources are tokens
/// without spaces, at most 40 bytes. A fragment of such a line, or two run together, does not
/// parse, so cut or glued lines are detected.
pub fn seq_line(src: &str, seq: u64) -> Vec<u8> {
    let head = format!("{src} {seq:010} ");
    let filler = SEQ_LINE_LEN - head.len() - " end\n".len();
    let mut line = head.into_bytes();
    line.resize(line.len() + filler, b'x');
    line.extend_from_slice(b" end\n");
    line
}

/// [`seq_line`]s `range` of `src`, as one buffer.
pub fn seq_lines(src: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    range.flat_map(|i| seq_line(src, i)).collect()
}

/// Parses a [`seq_line`] (with or without its `\n`): (source, sequence number).
pub fn parse_seq_line(line: &[u8]) -> Option<(&str, u64)> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let text = std::str::from_utf8(line).ok()?;
    let mut it = text.split(' ');
    let (src, seq, filler, end) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some()
        || end != "end"
        || seq.len() != 10
        || filler.is_empty()
        || !filler.bytes().all(|b| b == b'x')
        || line.len() + 1 != SEQ_LINE_LEN
    {
        return None;
    }
    Some((src, seq.parse().ok()?))
}

/// What arrived of sequenced lines, per source, in arrival order.
#[derive(Debug, Default)]
pub struct SeqReport {
    pub per_src: std::collections::BTreeMap<String, Vec<u64>>,
    /// Lines that are not a whole [`seq_line`] (fragments, foreign lines). A fragment glued to
    /// a whole line is listed here, and the whole line counted as arrived.
    pub malformed: Vec<Vec<u8>>,
}

impl SeqReport {
    /// Splits `stored` (archive bytes) into lines and parses each.
    pub fn of(stored: &[u8]) -> SeqReport {
        let mut r = SeqReport::default();
        for line in stored.split_inclusive(|&b| b == b'\n') {
            if let Some((src, seq)) = parse_seq_line(line) {
                r.per_src.entry(src.to_string()).or_default().push(seq);
                continue;
            }
            // A fragment delivered without its `\n` (a follower gives up a partial line when
            // its file is truncated) is glued to the next line: keep that line.
            let glued = line
                .len()
                .checked_sub(SEQ_LINE_LEN)
                .filter(|&at| line.ends_with(b"\n") && at > 0)
                .and_then(|at| Some((at, parse_seq_line(&line[at..])?)));
            match glued {
                Some((at, (src, seq))) => {
                    r.per_src.entry(src.to_string()).or_default().push(seq);
                    r.malformed.push(line[..at].to_vec());
                }
                None => r.malformed.push(line.to_vec()),
            }
        }
        r
    }

    /// Number of lines that arrived again after their first arrival.
    pub fn duplicates(&self) -> usize {
        self.per_src
            .values()
            .map(|seqs| {
                let unique: std::collections::HashSet<_> = seqs.iter().collect();
                seqs.len() - unique.len()
            })
            .sum()
    }

    /// The distinct sequence numbers of `src` that arrived.
    pub fn distinct(&self, src: &str) -> std::collections::BTreeSet<u64> {
        self.per_src
            .get(src)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Checks that each source's first arrivals are in increasing order (duplicates, replayed
    /// later, are allowed); returns the first violation.
    pub fn check_first_arrivals_in_order(&self) -> Result<(), String> {
        for (src, seqs) in &self.per_src {
            let mut seen = std::collections::HashSet::new();
            let mut last: Option<u64> = None;
            for &s in seqs {
                if !seen.insert(s) {
                    continue;
                }
                if last.is_some_and(|l| s < l) {
                    return Err(format!("{src}: line {s} arrived first after line {last:?}"));
                }
                last = Some(s);
            }
        }
        Ok(())
    }

    /// Sequence numbers of `src` in `0..n` that never arrived.
    pub fn missing(&self, src: &str, n: u64) -> Vec<u64> {
        let got = self.distinct(src);
        (0..n).filter(|s| !got.contains(s)).collect()
    }
}
