//! Unit tests of [`super::ArchiveTail`] on layouts built by hand.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::*;

/// An event, owned, with file names instead of paths.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Line(String),
    Opened(String),
    Lost(u64, String),
    Vanished(String, u64),
    Unreadable(String),
    TooLong(u64),
    Truncated(u64, u64),
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn own(e: TailEvent<'_>) -> Ev {
    match e {
        TailEvent::Line(l) => Ev::Line(String::from_utf8_lossy(l).into_owned()),
        TailEvent::Opened { path, .. } => Ev::Opened(name(path)),
        TailEvent::Lost { files, next } => Ev::Lost(files, name(next)),
        TailEvent::Vanished { path, offset } => Ev::Vanished(name(path), offset),
        TailEvent::Unreadable { path, .. } => Ev::Unreadable(name(path)),
        TailEvent::LineTooLong { offset, .. } => Ev::TooLong(offset),
        TailEvent::Truncated { from, to, .. } => Ev::Truncated(from, to),
    }
}

struct Dir {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    cat: Category,
}

impl Dir {
    fn new() -> Dir {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().to_path_buf();
        std::fs::create_dir(data.join("web")).unwrap();
        Dir {
            _tmp: tmp,
            data,
            cat: "web".parse().unwrap(),
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.data.join("web").join(file)
    }

    fn append(&self, file: &str, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(file))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn gzip(&self, file: &str, text: &str) {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        std::fs::write(self.path(&format!("{file}.gz")), enc.finish().unwrap()).unwrap();
    }

    /// As the compressor does: `.gz` first, then the plain file goes.
    fn compress(&self, file: &str) {
        let text = std::fs::read_to_string(self.path(file)).unwrap();
        self.gzip(file, &text);
        std::fs::remove_file(self.path(file)).unwrap();
    }

    /// Points `web_current` at `file`, as the writer does (symlink, then rename).
    fn link(&self, file: &str) {
        let tmp = self.path(".web_current.tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(file, &tmp).unwrap();
        std::fs::rename(&tmp, self.path("web_current")).unwrap();
    }

    /// Writes `file` with `text` and makes it the newest, as a rotation does.
    fn rotate_to(&self, file: &str, text: &str) {
        self.append(file, text);
        self.link(file);
    }

    fn tail(&self, start: StartAt) -> ArchiveTail {
        self.tail_with(start, TailOptions::default())
    }

    fn tail_with(&self, start: StartAt, opts: TailOptions) -> ArchiveTail {
        ArchiveTail::open(&self.data, &self.cat, start, opts).unwrap()
    }
}

/// Polls until nothing is pending (at most 1000 polls).
fn poll(t: &mut ArchiveTail) -> Vec<Ev> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        if !t.poll(&mut |e| out.push(own(e))).unwrap() {
            return out;
        }
    }
    panic!("still pending after 1000 polls");
}

fn lines(evs: &[Ev]) -> Vec<&str> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Line(l) => Some(l.as_str()),
            _ => None,
        })
        .collect()
}

fn numbered(file: &str, from: usize, to: usize) -> String {
    (from..to).map(|i| format!("{file}:{i}\n")).collect()
}

#[test]
fn starts_at_the_end_of_the_newest_file() {
    let d = Dir::new();
    d.rotate_to("web_00000", "old1\nold2\nhal");
    let mut t = d.tail(StartAt::End);
    assert_eq!(poll(&mut t), []);
    // The rest of the line being written is not a line of ours.
    d.append("web_00000", "f\nnew1\n");
    assert_eq!(poll(&mut t), [Ev::Line("new1".into())]);
    d.append("web_00000", "new2\n");
    assert_eq!(lines(&poll(&mut t)), ["new2"]);
}

#[test]
fn an_empty_archive_is_read_from_its_first_file() {
    let d = Dir::new();
    std::fs::remove_dir(d.data.join("web")).unwrap();
    let mut t = d.tail(StartAt::End);
    assert_eq!(poll(&mut t), []);
    std::fs::create_dir(d.data.join("web")).unwrap();
    d.rotate_to("web_00000", "a\nb\n");
    assert_eq!(
        poll(&mut t),
        [
            Ev::Opened("web_00000".into()),
            Ev::Line("a".into()),
            Ev::Line("b".into())
        ]
    );
}

#[test]
fn every_file_between_two_polls_is_read_in_order() {
    let d = Dir::new();
    d.rotate_to("web_00000", "a0\n");
    let mut t = d.tail(StartAt::End);
    poll(&mut t);
    // Three rotations between two polls, and a last line into the old file first.
    d.append("web_00000", "a1\n");
    d.rotate_to("web_00001", "b0\nb1\n");
    d.rotate_to("web_00002", "c0\n");
    d.rotate_to("web_00003", "d0\nd1 partial");
    let evs = poll(&mut t);
    assert_eq!(lines(&evs), ["a1", "b0", "b1", "c0", "d0"]);
    assert!(evs.contains(&Ev::Opened("web_00002".into())));
    d.append("web_00003", "\n");
    assert_eq!(lines(&poll(&mut t)), ["d1 partial"]);
}

#[test]
fn a_file_compressed_before_it_was_reached_is_read_from_its_gz() {
    let d = Dir::new();
    d.rotate_to("web_00000", "");
    let mut t = d.tail(StartAt::End);
    d.append("web_00000", "a\n");
    d.gzip("web_00001", "b1\nb2\n");
    d.rotate_to("web_00002", "c\n");
    let evs = poll(&mut t);
    assert_eq!(lines(&evs), ["a", "b1", "b2", "c"]);
    assert!(evs.contains(&Ev::Opened("web_00001.gz".into())), "{evs:?}");
}

#[test]
fn a_parked_file_compressed_between_polls_goes_on_in_its_gz() {
    let d = Dir::new();
    d.rotate_to("web_00000", "");
    let mut t = d.tail(StartAt::End);
    d.append("web_00000", "a1\n");
    assert_eq!(lines(&poll(&mut t)), ["a1"]);
    // Between polls: more lines, a rotation, and the compressor takes the old file.
    d.append("web_00000", "a2\na3\n");
    d.rotate_to("web_00001", "b1\n");
    d.compress("web_00000");
    let evs = poll(&mut t);
    assert_eq!(lines(&evs), ["a2", "a3", "b1"], "{evs:?}");
}

#[test]
fn a_parked_file_removed_between_polls_is_vanished() {
    let d = Dir::new();
    d.rotate_to("web_00000", "");
    let mut t = d.tail(StartAt::End);
    d.append("web_00000", "a1\n");
    poll(&mut t);
    d.append("web_00000", "a2\n");
    d.rotate_to("web_00001", "b1\n");
    std::fs::remove_file(d.path("web_00000")).unwrap();
    let evs = poll(&mut t);
    assert_eq!(evs[0], Ev::Vanished("web_00000".into(), 3));
    assert_eq!(lines(&evs), ["b1"]);
}

#[test]
fn files_gone_before_they_were_opened_are_lost_with_a_count() {
    let d = Dir::new();
    d.rotate_to("web_00000", "");
    let mut t = d.tail(StartAt::End);
    d.append("web_00000", "a\n");
    // web_00001 and web_00002 were removed by retention before the tail got there.
    d.rotate_to("web_00003", "d\n");
    let evs = poll(&mut t);
    assert_eq!(
        evs,
        [
            Ev::Line("a".into()),
            Ev::Lost(2, "web_00003".into()),
            Ev::Opened("web_00003".into()),
            Ev::Line("d".into())
        ]
    );
}

#[test]
fn files_listed_then_removed_are_lost_across_dates() {
    let d = Dir::new();
    let f = |date: &str, n: u32| format!("web-{date}_{n:05}");
    d.rotate_to(&f("2024-01-01", 0), "");
    let mut t = d.tail(StartAt::End);
    d.rotate_to(&f("2024-01-02", 0), "x\n");
    d.rotate_to(&f("2024-01-02", 1), "y\n");
    d.rotate_to(&f("2024-01-03", 0), "z\n");
    // Listed while the tail is still on the first file; then retention takes two of them.
    t.relist().unwrap();
    std::fs::remove_file(d.path(&f("2024-01-02", 0))).unwrap();
    std::fs::remove_file(d.path(&f("2024-01-02", 1))).unwrap();
    let evs = poll(&mut t);
    assert_eq!(evs[0], Ev::Lost(2, f("2024-01-03", 0)));
    assert_eq!(lines(&evs), ["z"]);
}

#[test]
fn lost_counts_what_is_known() {
    let u = FileKey::undated;
    let day = |d: u32, n: u64| FileKey::dated(NaiveDate::from_ymd_opt(2024, 1, d).unwrap(), n);
    assert_eq!(lost_between(Some(u(4)), u(5), &[]), 0);
    assert_eq!(lost_between(Some(u(4)), u(9), &[]), 4);
    assert_eq!(
        lost_between(Some(u(4)), u(9), &[u(6)]),
        4,
        "no double count"
    );
    // Another date: only the keys seen, and the holes between same-date keys.
    assert_eq!(lost_between(Some(day(1, 3)), day(2, 0), &[]), 0);
    assert_eq!(
        lost_between(Some(day(1, 3)), day(2, 5), &[day(1, 4), day(2, 2)]),
        2 + 2
    );
    assert_eq!(lost_between(None, u(3), &[u(1)]), 1);
    // An archive begun again: nothing counted backwards.
    assert_eq!(lost_between(Some(u(7)), u(0), &[]), 0);
}

#[test]
fn recent_start_reaches_back_across_files_and_into_a_gz() {
    let d = Dir::new();
    d.append("web_00000", &numbered("a", 0, 10));
    d.gzip("web_00001", &numbered("b", 0, 10));
    d.rotate_to("web_00002", &numbered("c", 0, 5));
    let start = |lines| StartAt::Recent {
        lines,
        bytes: u64::MAX,
    };
    let mut t = d.tail(start(3));
    assert_eq!(lines(&poll(&mut t)), ["c:2", "c:3", "c:4"]);
    let mut t = d.tail(start(12));
    let evs = poll(&mut t);
    let want: Vec<String> = (3..10)
        .map(|i| format!("b:{i}"))
        .chain((0..5).map(|i| format!("c:{i}")))
        .collect();
    assert_eq!(lines(&evs), want);
    let mut t = d.tail(start(1000));
    assert_eq!(lines(&poll(&mut t)).len(), 25);
    assert_eq!(lines(&poll(&mut t)).len(), 0);
    // By bytes: "c:N\n" is 4 bytes; 9 bytes reach back into the third line from the end.
    let mut t = d.tail(StartAt::Recent {
        lines: 1000,
        bytes: 9,
    });
    assert_eq!(lines(&poll(&mut t)), ["c:2", "c:3", "c:4"]);
    // Then it follows on as usual.
    d.rotate_to("web_00003", "d\n");
    assert_eq!(lines(&poll(&mut t)), ["d"]);
}

#[test]
fn overlong_lines_are_reported_and_skipped() {
    let d = Dir::new();
    d.rotate_to("web_00000", "");
    let opts = TailOptions {
        max_line_bytes: 8,
        ..TailOptions::default()
    };
    let mut t = d.tail_with(StartAt::End, opts);
    d.append("web_00000", "ok\nmuch too long\nok2\n");
    let evs = poll(&mut t);
    assert_eq!(
        evs,
        [
            Ev::Line("ok".into()),
            Ev::TooLong(3),
            Ev::Line("ok2".into())
        ]
    );
    // One arriving in pieces is dropped as soon as it cannot fit, and not held.
    d.append("web_00000", "0123456789");
    assert_eq!(poll(&mut t), [Ev::TooLong(21)]);
    d.append("web_00000", "abc\nfine\n");
    assert_eq!(poll(&mut t), [Ev::Line("fine".into())]);
}

#[test]
fn reads_are_bounded_per_poll() {
    let d = Dir::new();
    d.rotate_to("web_00000", "");
    let opts = TailOptions {
        max_read_bytes: 10,
        ..TailOptions::default()
    };
    let mut t = d.tail_with(StartAt::End, opts);
    d.append("web_00000", &numbered("a", 0, 10));
    d.rotate_to("web_00001", "b\n");
    let mut got = Vec::new();
    let mut polls = 0;
    while t.poll(&mut |e| got.push(own(e))).unwrap() {
        polls += 1;
        assert!(polls < 100);
    }
    assert!(polls >= 3, "{polls}");
    assert_eq!(lines(&got).len(), 11);
}

#[test]
fn a_cut_back_is_reported_and_reading_goes_on() {
    let d = Dir::new();
    d.rotate_to("web_00000", "");
    let mut t = d.tail(StartAt::End);
    d.append("web_00000", "a\nfailed batch\n");
    poll(&mut t);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.path("web_00000"))
        .unwrap();
    f.set_len(2).unwrap();
    assert_eq!(poll(&mut t), [Ev::Truncated(15, 2)]);
    d.append("web_00000", "retried\n");
    assert_eq!(lines(&poll(&mut t)), ["retried"]);
}

#[test]
fn a_corrupt_gz_is_unreadable_and_passed() {
    let d = Dir::new();
    d.rotate_to("web_00000", "");
    let mut t = d.tail(StartAt::End);
    std::fs::write(d.path("web_00001.gz"), b"not gzip at all").unwrap();
    d.rotate_to("web_00002", "c\n");
    let evs = poll(&mut t);
    assert!(
        evs.contains(&Ev::Unreadable("web_00001.gz".into())),
        "{evs:?}"
    );
    assert_eq!(lines(&evs), ["c"]);
}

#[test]
fn an_idle_tail_holds_no_descriptor() {
    let d = Dir::new();
    d.rotate_to("web_00000", "a\n");
    let mut t = d.tail(StartAt::End);
    poll(&mut t);
    assert!(t.cur.as_ref().unwrap().reader.is_none());
    assert_eq!(t.current(), Some(d.path("web_00000").as_path()));
}

#[test]
fn an_archive_begun_again_is_followed_from_its_oldest_file() {
    let d = Dir::new();
    d.rotate_to("web_00007", "");
    let mut t = d.tail(StartAt::End);
    poll(&mut t);
    std::fs::remove_file(d.path("web_00007")).unwrap();
    d.rotate_to("web_00000", "new\n");
    let evs = poll(&mut t);
    assert_eq!(lines(&evs), ["new"], "{evs:?}");
}
