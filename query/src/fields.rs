//! Field discovery: `logq fields FILE` (each detected format, its field names, how many
//! sampled lines have each, sample values), and the check that a named field of a query was
//! found in some line, with a "did you mean" hint from the same sample when it was not.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::Arc;

use anyhow::{bail, Result};

use crate::agg::Cell;
use crate::cli::FieldsArgs;
use crate::expr::Named;
use crate::formats::{logfmt_pairs, Detector, FieldRef, Format, Record};
use crate::input::InputKind;
use crate::lines;
use crate::output::{self, Table};
use crate::plan::plan;
use crate::source::{stdout, Source};
use crate::timefmt;

/// Most names taken from one JSON line, and the deepest nesting followed: a hostile line
/// must not make the sample large.
const MAX_JSON_NAMES: usize = 200;
const MAX_JSON_DEPTH: usize = 8;
/// Distinct sample values kept per field, and their longest shown length.
const SAMPLES: usize = 3;
const SAMPLE_CHARS: usize = 40;

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Clf => "clf",
        Format::Syslog3164 => "syslog",
        Format::Syslog5424 => "syslog5424",
        Format::Json => "json",
        Format::Logfmt => "logfmt",
        Format::NginxError => "nginx-error",
        Format::ApacheError => "apache-error",
        Format::Plain => "plain",
    }
}

const CLF_NAMES: [&str; 11] = [
    "ip", "ident", "user", "time", "method", "path", "protocol", "status", "bytes", "referer",
    "agent",
];
const SYSLOG_NAMES: [&str; 8] = ["pri", "time", "host", "app", "pid", "msgid", "sd", "msg"];

#[derive(Default)]
struct FieldInfo {
    lines: u64,
    samples: Vec<Vec<u8>>,
}

/// One format's name, its line count, and its fields in first-seen order.
type FormatInfo = (&'static str, u64, Vec<(String, FieldInfo)>);

/// What a sample of lines holds, per format (in first-seen order).
#[derive(Default)]
pub struct Summary {
    formats: Vec<FormatInfo>,
    /// Lines with a time, of the lines sampled.
    timed: u64,
    lines: u64,
}

impl Summary {
    fn add(&mut self, rec: &mut Record<'_>) {
        self.lines += 1;
        self.timed += rec.time().is_some() as u64;
        let fname = if crate::custom::get().is_some() && rec.custom_matches() {
            "parse"
        } else {
            format_name(rec.format)
        };
        let at = match self.formats.iter().position(|f| f.0 == fname) {
            Some(i) => i,
            None => {
                self.formats.push((fname, 0, Vec::new()));
                self.formats.len() - 1
            }
        };
        self.formats[at].1 += 1;
        let fields = &mut self.formats[at].2;
        for (name, value) in names_of(rec) {
            let i = match fields.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    fields.push((name, FieldInfo::default()));
                    fields.len() - 1
                }
            };
            let info = &mut fields[i].1;
            info.lines += 1;
            if info.samples.len() < SAMPLES && !info.samples.iter().any(|s| **s == *value) {
                info.samples.push(value.into_owned());
            }
        }
    }

    /// Every field name seen.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.formats
            .iter()
            .flat_map(|f| f.2.iter().map(|(n, _)| n.as_str()))
    }

    fn table(&self) -> Table {
        let mut rows = Vec::new();
        let mut formats: Vec<_> = self.formats.iter().collect();
        formats.sort_by_key(|f| std::cmp::Reverse(f.1));
        for (fname, lines, fields) in formats {
            for (name, info) in fields {
                let samples: Vec<String> = info
                    .samples
                    .iter()
                    .map(|s| {
                        let s = String::from_utf8_lossy(s);
                        match s.char_indices().nth(SAMPLE_CHARS) {
                            Some((i, _)) => format!("{}…", &s[..i]),
                            None => s.into_owned(),
                        }
                    })
                    .collect();
                rows.push(vec![
                    Cell::Text(fname.as_bytes().to_vec()),
                    Cell::Int(*lines),
                    Cell::Text(name.as_bytes().to_vec()),
                    Cell::Int(info.lines),
                    Cell::Text(samples.join(" | ").into_bytes()),
                ]);
            }
        }
        Table {
            header: ["format", "lines", "field", "with", "samples"]
                .map(String::from)
                .to_vec(),
            rows,
            time_series: false,
        }
    }
}

/// The named fields of a record and their values (`$N` for plain lines).
fn names_of<'a>(rec: &mut Record<'a>) -> Vec<(String, Cow<'a, [u8]>)> {
    let mut out = Vec::new();
    let mut named = |rec: &mut Record<'a>, names: &mut dyn Iterator<Item = &str>| {
        for n in names {
            if let Some(v) = rec.get(&FieldRef::Name(n.to_string())) {
                out.push((n.to_string(), v));
            }
        }
    };
    if let Some(c) = crate::custom::get().filter(|_| rec.custom_matches()) {
        named(rec, &mut c.field_names());
    }
    match rec.format {
        Format::Clf => named(rec, &mut CLF_NAMES.into_iter().chain(["vhost", "port"])),
        Format::NginxError | Format::ApacheError => {
            named(rec, &mut crate::errorlog::NAMES.into_iter())
        }
        Format::Syslog3164 | Format::Syslog5424 => named(rec, &mut SYSLOG_NAMES.into_iter()),
        Format::Json => {
            if let Some(v) = crate::formats::parse_json(rec.line) {
                let mut names = Vec::new();
                json_names(&v, String::new(), 0, &mut names);
                named(rec, &mut names.iter().map(String::as_str));
            }
        }
        Format::Logfmt => {
            let keys: Vec<String> = logfmt_pairs(rec.line)
                .iter()
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .collect();
            named(rec, &mut keys.iter().map(String::as_str));
        }
        Format::Plain => {
            for n in 1..=rec.nf().min(20) {
                if let Some(v) = rec.get(&FieldRef::Num(n)) {
                    out.push((format!("${n}"), v));
                }
            }
        }
    }
    out
}

fn json_names(v: &serde_json::Value, prefix: String, depth: usize, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) if depth < MAX_JSON_DEPTH => {
            for (k, v) in m {
                if out.len() >= MAX_JSON_NAMES {
                    return;
                }
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                json_names(v, name, depth + 1, out);
            }
        }
        _ if !prefix.is_empty() && FieldRef::parse(&prefix).is_some() => out.push(prefix),
        _ => {}
    }
}

/// Reads up to `max` lines from the start of the inputs, in order.
pub fn sample(src: &Source, max: usize) -> Result<Summary> {
    let now = timefmt::now();
    let mut s = Summary::default();
    let mut pick = Detector::new(src.format);
    let mut full = false;
    let mut add = |l: &[u8]| {
        // Once full, every further line (of the next inputs too) stops its input at once.
        if !full {
            s.add(&mut pick.record(l, now));
            full = s.lines as usize >= max;
        }
        if full {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    for task in plan(&src.inputs, false)? {
        let head = src
            .stdin_head
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if matches!(src.inputs[task.input].kind, InputKind::Stdin) && !head.is_empty() {
            // Read already, by the query this hint is for: its first bytes were kept.
            lines::for_each_line_in(&head, &mut add);
        } else {
            src.for_each_line(&task, &mut add)?;
        }
    }
    Ok(s)
}

pub fn run_fields(a: FieldsArgs) -> Result<i32> {
    let src = Source::new(&a.input, &a.files)?;
    let s = sample(&src, a.lines)?;
    let mut out = stdout();
    output::write(&s.table(), a.output, None, &mut out)?;
    use std::io::Write;
    out.flush()?;
    eprintln!("logq: {} lines sampled, {} with a time", s.lines, s.timed);
    Ok(if s.lines > 0 { 0 } else { 1 })
}

/// Fails when a named field was looked for in some line but found in none: a misspelt name
/// (`stauts`) would otherwise be a silently empty answer. The hint comes from the names of
/// the first lines of the inputs (stdin, already read, gives only the built-in names).
pub fn check_found(names: &[Arc<Named>], src: &Source) -> Result<()> {
    let Some(missing) = names.iter().find(|n| n.tried() && !n.found()) else {
        return Ok(());
    };
    let name = missing.name();
    let sampled = sample(src, 1000).unwrap_or_default();
    let mut candidates: Vec<&str> = sampled.names().collect();
    candidates.extend(CLF_NAMES);
    candidates.extend(SYSLOG_NAMES);
    let best = candidates
        .iter()
        .filter(|c| !c.starts_with('$'))
        .map(|c| (strsim::damerau_levenshtein(name, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min();
    let hint = match best {
        Some((_, c)) => format!(" (did you mean {c:?}?)"),
        None => String::new(),
    };
    bail!("no input line has a field named {name:?}{hint}; `logq fields FILE` lists the fields")
}
