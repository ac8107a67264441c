//! `CategoryGlob` against globset, which `logq --category` used before: on random patterns
//! in the syntax both share, both must accept the pattern and agree on every name.

use globset::GlobBuilder;
use scribe_archive::category::CategoryGlob;

/// Pieces of patterns, each valid on its own (so any concatenation is a valid glob). No
/// empty alternatives: globset drops them (`{,a}` is `{a}` there), `CategoryGlob` matches the
/// empty string with them, as a shell does.
const PIECES: &[&str] = &[
    "a", "b", ".", "-", "*", "**", "?", "[ab]", "[!a]", "[^b]", "[a-c]", "[-a]", "[.a-]", "{a,b}",
    "{a*,b}", "{?,ab}", "{a.*,b?}", "\\.", "\\a", "[]a]",
];

fn pattern(rng: &mut fastrand::Rng) -> String {
    let n = rng.usize(1..7);
    (0..n).map(|_| PIECES[rng.usize(..PIECES.len())]).collect()
}

fn name(rng: &mut fastrand::Rng) -> String {
    let n = rng.usize(0..9);
    (0..n)
        .map(|_| ['a', 'b', 'c', '.', '-'][rng.usize(..5)])
        .collect()
}

#[test]
fn agrees_with_globset() {
    let mut rng = fastrand::Rng::with_seed(0x5c1b_e7a6);
    let mut compared = 0;
    for _ in 0..3000 {
        let p = pattern(&mut rng);
        let ours = match CategoryGlob::new(&p) {
            Ok(g) => g,
            // A pattern without syntax is a name; `.` or `..` is not a valid one.
            Err(_) if !p.contains(['*', '?', '[', '{', '\\']) => continue,
            Err(e) => panic!("{p:?} refused: {e}"),
        };
        let theirs = GlobBuilder::new(&p)
            .backslash_escape(true)
            .build()
            .unwrap_or_else(|e| panic!("globset refused {p:?}: {e}"))
            .compile_matcher();
        for _ in 0..20 {
            let n = name(&mut rng);
            assert_eq!(ours.matches(&n), theirs.is_match(&n), "{p:?} on {n:?}");
            compared += 1;
        }
    }
    assert!(compared > 40_000, "{compared}");
}
