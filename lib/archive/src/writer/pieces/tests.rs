//! Runs of lines written in one piece leave exactly what the same lines written one by one
//! leave: the same files, bytes, rotations, duplicates skipped and commit records.

use std::path::Path;

use scribe_ids::{EntryId, ProducerId};

use crate::writer::{Piece, RotatingWriter, WriteStats, WriterOptions};
use crate::{layout, Category, Compressor};

/// A run as a test makes it: producer, first offset, lines.
struct Run {
    producer: u8,
    start: u64,
    bytes: Vec<u8>,
    count: usize,
}

impl Run {
    fn id(&self) -> EntryId {
        EntryId {
            producer: ProducerId([self.producer; 16]),
            start: self.start,
            end: self.start + self.bytes.len() as u64,
        }
    }

    /// Its lines as entries, each with its own part of the range.
    fn entries(&self) -> Vec<(&[u8], Option<EntryId>)> {
        let mut at = self.start;
        self.bytes
            .split_inclusive(|&b| b == b'\n')
            .map(|l| {
                let id = EntryId {
                    producer: ProducerId([self.producer; 16]),
                    start: at,
                    end: at + l.len() as u64,
                };
                at = id.end;
                (l, Some(id))
            })
            .collect()
    }
}

/// Every file of the category, by name, with its bytes (`_current` and the commit log left
/// out: the log's records carry times).
fn files(dir: &Path, c: &Category) -> Vec<(String, Vec<u8>)> {
    layout::list_files(dir, c)
        .unwrap()
        .into_iter()
        .map(|(_, p)| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn options(idempotent: bool, max_size: u64) -> WriterOptions {
    WriterOptions {
        idempotent,
        max_size,
        compressor: Compressor::new(64),
        ..WriterOptions::new(max_size)
    }
}

/// Random runs of producers 1-3 whose offsets mostly continue, sometimes jump back (a resend
/// from a checkpoint, cut differently) or forward.
fn random_runs(rng: &mut fastrand::Rng, next: &mut [u64; 3]) -> Vec<Run> {
    (0..rng.usize(1..6))
        .map(|_| {
            let p = rng.usize(..3);
            let start = match rng.u8(..10) {
                0 => next[p].saturating_sub(rng.u64(0..200)),
                1 => next[p] + rng.u64(1..50),
                _ => next[p],
            };
            let count = rng.usize(1..20);
            let mut bytes = Vec::new();
            for _ in 0..count {
                bytes.extend((0..rng.usize(0..30)).map(|_| b'a' + rng.u8(..26)));
                bytes.push(b'\n');
            }
            next[p] = next[p].max(start + bytes.len() as u64);
            Run {
                producer: p as u8 + 1,
                start,
                bytes,
                count,
            }
        })
        .collect()
}

#[test]
fn runs_leave_what_the_same_lines_one_by_one_leave() {
    let mut rng = fastrand::Rng::with_seed(7);
    let c: Category = "c".parse().unwrap();
    for round in 0..30 {
        let idempotent = round % 3 != 0;
        let max_size = [0, 40, 300, 2000][round % 4];
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut runs_w = RotatingWriter::open(a.path(), &c, options(idempotent, max_size)).unwrap();
        let mut lines_w =
            RotatingWriter::open(b.path(), &c, options(idempotent, max_size)).unwrap();
        let mut next = [0u64; 3];
        for batch in 0..20 {
            let runs = random_runs(&mut rng, &mut next);
            // Now and then a message between the runs, framed by the writer.
            let single: &[u8] = b"single message";
            let pieces = runs.iter().flat_map(|r| {
                let msg = (r.count % 4 == 0).then_some(Piece::Message(single, None));
                [
                    Some(Piece::Lines {
                        bytes: &r.bytes,
                        count: r.count,
                        id: Some(r.id()),
                    }),
                    msg,
                ]
                .into_iter()
                .flatten()
            });
            let got: WriteStats = runs_w.write_pieces(pieces).unwrap();
            let entries = runs.iter().flat_map(|r| {
                let msg = (r.count % 4 == 0).then_some((single, None));
                r.entries().into_iter().chain(msg)
            });
            let want = lines_w.write_entries(entries).unwrap();
            assert_eq!(got, want, "round {round} batch {batch}");
        }
        assert_eq!(files(a.path(), &c), files(b.path(), &c), "round {round}");
    }
}

#[test]
fn a_resent_run_is_skipped_and_an_overlapping_one_written_from_where_it_is_new() {
    let d = tempfile::tempdir().unwrap();
    let c: Category = "c".parse().unwrap();
    let mut w = RotatingWriter::open(d.path(), &c, options(true, 0)).unwrap();
    let run = |start: u64, text: &str| Run {
        producer: 1,
        start,
        bytes: text.as_bytes().to_vec(),
        count: text.matches('\n').count(),
    };
    let write = |w: &mut RotatingWriter, r: &Run| {
        let piece = Piece::Lines {
            bytes: &r.bytes,
            count: r.count,
            id: Some(r.id()),
        };
        w.write_pieces([piece]).unwrap()
    };
    let first = run(0, "a\nbb\n");
    assert_eq!(write(&mut w, &first).messages, 2);
    let again = write(&mut w, &first);
    assert_eq!((again.messages, again.duplicates), (0, 2));
    // Cut differently after a restart: "bb\n" again, then two new lines.
    let overlap = run(2, "bb\nccc\nd\n");
    let s = write(&mut w, &overlap);
    assert_eq!((s.messages, s.duplicates), (2, 1));
    assert_eq!(files(d.path(), &c)[0].1, b"a\nbb\nccc\nd\n");
}
