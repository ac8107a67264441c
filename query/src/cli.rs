//! The command line: `logq grep`, `logq cut`, `logq where`, `logq print`, `logq count`,
//! `logq stats`. Flags mirror grep's and cut's where the operation is theirs; the input flags
//! are shared by every subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "logq",
    version,
    about = "grep, cut and awk-style queries over plain, gzipped and category-archive logs",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print lines matching a regex (GNU grep's flags and output).
    #[command(disable_help_flag = true, args_override_self = true)]
    Grep(GrepArgs),
    /// Print selected bytes or fields of each line (GNU cut's flags and output).
    #[command(args_override_self = true)]
    Cut(CutArgs),
    /// Print the lines for which an awk-like expression is true.
    Where(WhereArgs),
    /// Print named or numbered fields of each line.
    Print(PrintArgs),
    /// Count lines, optionally per time bucket and/or per group.
    Count(StatsArgs),
    /// Aggregate: count, count_distinct(f), sum(f), avg(f), min(f), max(f), p50(f), p90(f), p99(f).
    Stats(StatsAggArgs),
    /// Show the detected formats, field names and sample values of the first lines.
    Fields(FieldsArgs),
}

#[derive(Debug, Args)]
pub struct FieldsArgs {
    pub files: Vec<String>,
    /// How many lines to sample from the start of the inputs.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub lines: usize,
    /// Output format (default: an aligned table on a terminal, else TSV).
    #[arg(long, short = 'O', value_enum)]
    pub output: Option<OutputArg>,
    #[command(flatten)]
    pub input: InputArgs,
}

/// Inputs, shared by every subcommand.
#[derive(Debug, Args, Clone, Default)]
pub struct InputArgs {
    /// Read a category's archive (rotated, plain and .gz files, current last). A glob
    /// (`apache.*`, `web.[ab]*`, `{apache,nginx}.*`) selects several categories. Repeatable.
    #[arg(long = "category", value_name = "NAME")]
    pub categories: Vec<String>,
    /// Where categories live.
    #[arg(long, value_name = "DIR", default_value = "./scribe-data")]
    pub data_dir: PathBuf,
    /// Read categories from the object-store archive scribed uploads to, instead of the data
    /// dir (default: $LOGQ_ARCHIVE, for --category only). With no --category and no file,
    /// every category. Credentials, region and endpoint as AWS tools take them (docs/logq.md).
    #[arg(long, value_name = "s3://BUCKET/PREFIX")]
    pub archive: Option<String>,
    /// After the run, tell on stderr how many listings and GETs --archive made, and the bytes
    /// fetched.
    #[arg(long)]
    pub archive_stats: bool,
    /// Only lines at or after this time: RFC 3339, `YYYY-MM-DD[ HH:MM[:SS]]` (UTC), or an age
    /// like `2h`, `7d`, `30m`.
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only lines before this time (same syntax as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Line format (default: detected line by line).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Only the last N lines of the whole input (like `tail -n N | ...`).
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Read files with read(2) instead of memory-mapping them (a file truncated while it is
    /// mapped, e.g. by a copytruncate rotation, would crash the reader).
    #[arg(long)]
    pub no_mmap: bool,
    /// Longest line read (K/M/G suffixes); a longer one is an error naming the input, so
    /// that a corrupt file without newlines cannot take all memory.
    #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = scribe_cli::parse_size)]
    pub max_line: u64,
    /// Never show a progress bar (it is shown only when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    /// Follow the files and categories as they grow (across rotation), from their end, until
    /// interrupted; `-F` too, except in grep (where -F is fixed strings).
    #[arg(long)]
    pub follow: bool,
    /// Flush output after every line (the default when stdout is a terminal).
    #[arg(long)]
    pub line_buffered: bool,
    /// Time zone of zone-less times, of bucket alignment and of shown times: UTC (the
    /// default), `local`, a name (`Europe/Berlin`) or an offset (`+05:30`).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Read the inputs (each category, each file) interleaved by time, as one stream.
    #[arg(long)]
    pub merge: bool,
    /// Fields of any line shape: a regex with named groups (`(?P<ms>\d+)`), a pattern with
    /// names (`'* took *ms' as op,ms`), or a format name from the formats file.
    #[arg(long, value_name = "SPEC")]
    pub parse: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FormatArg {
    /// Apache/NCSA common or combined, nginx combined.
    Clf,
    /// Syslog RFC 3164 (`Mmm dd hh:mm:ss host tag[pid]: msg`).
    Syslog,
    /// Syslog RFC 5424 (`<pri>1 time host app procid msgid sd msg`).
    Syslog5424,
    Json,
    Logfmt,
    /// nginx's error_log (`2026/11/23 06:00:00 [error] pid#tid: *cid msg, client: ...`).
    NginxError,
    /// Apache httpd's ErrorLog (`[Mon Nov 23 06:00:00.1 2026] [mod:level] [pid N] ...`).
    ApacheError,
    /// Whitespace-separated fields only (`$1`, `$2`, ...).
    Plain,
}

#[derive(Debug, Args)]
pub struct GrepArgs {
    /// Pattern (GNU basic regex unless -E, -F or -P), unless given with -e or -f; then files.
    #[arg(value_name = "PATTERN | FILE")]
    pub args: Vec<String>,
    /// Use PATTERN (repeatable; a line matching any is selected).
    #[arg(
        short = 'e',
        long = "regexp",
        value_name = "PATTERN",
        allow_hyphen_values = true,
        action = clap::ArgAction::Append
    )]
    pub regexp: Vec<String>,
    /// Read patterns from FILE, one per line (`-` is stdin; an empty file matches nothing).
    #[arg(short = 'f', long = "file", value_name = "FILE", action = clap::ArgAction::Append)]
    pub pattern_files: Vec<String>,
    #[arg(short = 'i', long = "ignore-case", overrides_with = "no_ignore_case")]
    pub ignore_case: bool,
    #[arg(long = "no-ignore-case")]
    pub no_ignore_case: bool,
    /// Select non-matching lines.
    #[arg(short = 'v', long = "invert-match")]
    pub invert: bool,
    /// Patterns are GNU basic regular expressions (the default).
    #[arg(short = 'G', long = "basic-regexp")]
    pub basic: bool,
    /// Patterns are POSIX extended regular expressions.
    #[arg(short = 'E', long = "extended-regexp")]
    pub extended: bool,
    /// Patterns are literal strings.
    #[arg(short = 'F', long = "fixed-strings")]
    pub fixed: bool,
    /// Patterns are Rust regexes (the regex crate's syntax: Perl-like, no look-around).
    #[arg(short = 'P', long = "perl-regexp")]
    pub perl: bool,
    #[arg(short = 'w', long = "word-regexp")]
    pub word: bool,
    #[arg(short = 'x', long = "line-regexp")]
    pub line: bool,
    /// Print only a count of selected lines per input.
    #[arg(short = 'c', long = "count")]
    pub count: bool,
    /// Stop after NUM selected lines (per input).
    #[arg(short = 'm', long = "max-count", value_name = "NUM")]
    pub max_count: Option<u64>,
    #[arg(short = 'n', long = "line-number")]
    pub line_number: bool,
    /// Print the byte offset of each line (or `-o` match) before it.
    #[arg(short = 'b', long = "byte-offset")]
    pub byte_offset: bool,
    /// Print only the matched parts, one per line.
    #[arg(short = 'o', long = "only-matching")]
    pub only_matching: bool,
    /// Accepted for GNU compatibility and ignored: logq always searches files as text (a
    /// stray NUL in a log must not hide its lines behind "binary file matches").
    #[arg(short = 'a', long = "text")]
    pub text: bool,
    #[arg(short = 'A', long = "after-context", value_name = "NUM")]
    pub after: Option<usize>,
    #[arg(short = 'B', long = "before-context", value_name = "NUM")]
    pub before: Option<usize>,
    /// NUM lines of context around each selected line (`-NUM` is the same).
    #[arg(short = 'C', long = "context", value_name = "NUM")]
    pub context: Option<usize>,
    /// Print nothing; exit 0 if any line is selected (stops at the first).
    #[arg(short = 'q', long = "quiet", alias = "silent")]
    pub quiet: bool,
    /// No messages about inputs that do not exist or cannot be read (the status is still 2).
    #[arg(short = 's', long = "no-messages")]
    pub no_messages: bool,
    /// Print only the names of inputs with selected lines.
    #[arg(short = 'l', long = "files-with-matches")]
    pub files_with_matches: bool,
    /// Print only the names of inputs without selected lines.
    #[arg(short = 'L', long = "files-without-match")]
    pub files_without_match: bool,
    /// Prefix lines with the input name (default when there are several inputs).
    #[arg(short = 'H', long = "with-filename", overrides_with = "no_filename")]
    pub with_filename: bool,
    #[arg(short = 'h', long = "no-filename", overrides_with = "with_filename")]
    pub no_filename: bool,
    /// The name shown for standard input.
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// A tab after the prefixes (file name, line number, byte offset).
    #[arg(short = 'T', long = "initial-tab")]
    pub initial_tab: bool,
    /// A NUL byte after file names instead of `:` or a newline.
    #[arg(short = 'Z', long = "null")]
    pub null: bool,
    /// Lines end with NUL, not newline, in input and output.
    #[arg(short = 'z', long = "null-data")]
    pub null_data: bool,
    /// Directories are always read recursively; with no input named, `-r` searches `.`.
    #[arg(
        short = 'r',
        long = "recursive",
        visible_short_alias = 'R',
        alias = "dereference-recursive"
    )]
    pub recursive: bool,
    /// Colour matches: never, always, auto (a terminal).
    #[arg(long = "color", alias = "colour", value_name = "WHEN", num_args = 0..=1,
          default_missing_value = "auto")]
    pub color: Option<String>,
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    #[command(flatten)]
    pub input: InputArgs,
}

/// GNU grep's `-NUM` (same as `-C NUM`), which clap cannot express: rewritten to `-C NUM`
/// before parsing, for the arguments of `logq grep` that are not option values.
pub fn expand_context_shorthand(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let takes_value = |a: &str| {
        matches!(
            a,
            "-e" | "-f" | "-m" | "-A" | "-B" | "-C" | "--regexp" | "--file" | "--max-count"
        ) || (a.starts_with("--") && !a.contains('=') && LONG_WITH_VALUE.contains(&a))
    };
    let mut out = Vec::with_capacity(args.len());
    let mut in_grep = false;
    let mut after_dashdash = false;
    let mut prev_takes_value = false;
    for a in args {
        let s = a.to_string_lossy().into_owned();
        let expand = in_grep
            && !after_dashdash
            && !prev_takes_value
            && s.len() > 1
            && s.starts_with('-')
            && s[1..].bytes().all(|b| b.is_ascii_digit());
        prev_takes_value = in_grep && takes_value(&s);
        if s == "--" && in_grep {
            after_dashdash = true;
        }
        if !in_grep && s == "grep" && out.len() == 1 {
            in_grep = true;
        }
        if expand {
            out.push("-C".into());
            out.push(s[1..].to_string().into());
        } else {
            out.push(a);
        }
    }
    out
}

const LONG_WITH_VALUE: [&str; 8] = [
    "--after-context",
    "--before-context",
    "--context",
    "--label",
    "--category",
    "--data-dir",
    "--since",
    "--until",
];

#[derive(Debug, Args)]
pub struct CutArgs {
    /// Files (none or `-`: stdin).
    pub files: Vec<String>,
    /// Select these bytes.
    #[arg(short = 'b', long = "bytes", value_name = "LIST", allow_hyphen_values = true,
          action = clap::ArgAction::Append)]
    pub bytes: Vec<String>,
    /// Select these characters (bytes, as in GNU cut).
    #[arg(short = 'c', long = "characters", value_name = "LIST", allow_hyphen_values = true,
          action = clap::ArgAction::Append)]
    pub chars: Vec<String>,
    /// Select these fields.
    #[arg(short = 'f', long = "fields", value_name = "LIST", allow_hyphen_values = true,
          action = clap::ArgAction::Append)]
    pub fields: Vec<String>,
    /// Ignored, as in GNU cut (`-b` never splits a character there either).
    #[arg(short = 'n')]
    pub no_split: bool,
    /// Lines end with NUL, not newline, in input and output.
    #[arg(short = 'z', long = "zero-terminated")]
    pub zero_terminated: bool,
    /// Field delimiter (one byte; default TAB).
    #[arg(short = 'd', long = "delimiter", value_name = "DELIM")]
    pub delimiter: Option<String>,
    /// Fields are separated by runs of blanks, as in awk (`$1`, `$2`, ...).
    #[arg(short = 'w', long = "whitespace")]
    pub whitespace: bool,
    /// Select the complement of the list.
    #[arg(long)]
    pub complement: bool,
    /// Do not print lines without delimiters.
    #[arg(short = 's', long = "only-delimited")]
    pub only_delimited: bool,
    #[arg(long, value_name = "STRING")]
    pub output_delimiter: Option<String>,
    /// Same as --follow.
    #[arg(short = 'F', hide = true)]
    pub follow_short: bool,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct WhereArgs {
    /// Expression, e.g. `'$3 > 20'`, `'status >= 500 && path ~ "^/api"'`.
    pub expr: String,
    pub files: Vec<String>,
    /// Print these fields (comma-separated names or numbers) instead of the whole line.
    #[arg(short = 'p', long = "print", value_name = "FIELDS")]
    pub print: Option<String>,
    /// Prefix each printed line with the current local time (`YYYY-MM-DD HH:MM:SS `).
    #[arg(long)]
    pub timestamp: bool,
    /// Same as --follow.
    #[arg(short = 'F', hide = true)]
    pub follow_short: bool,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct PrintArgs {
    /// Fields, comma-separated: names (`ip,path`) or numbers (`1,7` or `$1,$7`).
    pub fields: String,
    pub files: Vec<String>,
    /// Only lines for which this expression is true.
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Output separator (default: one space, like awk's print).
    #[arg(
        short = 'o',
        long = "output-delimiter",
        value_name = "STRING",
        default_value = " "
    )]
    pub output_delimiter: String,
    /// Prefix each printed line with the current local time.
    #[arg(long)]
    pub timestamp: bool,
    /// Same as --follow.
    #[arg(short = 'F', hide = true)]
    pub follow_short: bool,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args, Clone)]
pub struct StatsArgs {
    pub files: Vec<String>,
    /// Time buckets: second, minute, hour, day, or a span like 5m, 15s, 2h.
    #[arg(long, value_name = "SPAN")]
    pub by: Option<String>,
    /// Group by these fields (comma-separated names or numbers).
    #[arg(short = 'g', long = "group", value_name = "FIELDS")]
    pub group: Option<String>,
    /// Only lines for which this expression is true.
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Sort rows by this output column (name or number); prefix `-` for descending.
    #[arg(long, value_name = "COLUMN", allow_hyphen_values = true)]
    pub sort: Option<String>,
    /// Only the first N rows (after sorting).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Apply --top (and --sort) within each time bucket of this span (`--top 3 --per
    /// minute`: the three busiest groups of every minute); implies --by SPAN.
    #[arg(long, value_name = "SPAN")]
    pub per: Option<String>,
    /// With -g and --by: also print a zero row for every group in every bucket it has no
    /// line in (without -g, quiet buckets are always shown).
    #[arg(long)]
    pub fill: bool,
    /// Bounded-memory approximations: HyperLogLog for count_distinct, a log-bucket sketch
    /// (1% relative error) for percentiles.
    #[arg(long)]
    pub approx: bool,
    /// Output: table (default on a terminal), tsv (default when piped), csv, json.
    #[arg(long, short = 'O', value_enum)]
    pub output: Option<OutputArg>,
    /// Draw the last column as bars next to the table (`bars`) or as a one-line `sparkline`.
    #[arg(long, value_enum)]
    pub chart: Option<ChartArg>,
    /// Render the time series as a chart: FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Title of the --plot chart.
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// Same as --follow.
    #[arg(short = 'F', hide = true)]
    pub follow_short: bool,
    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct StatsAggArgs {
    /// Aggregates, comma-separated: `count, count_distinct(ip), p99(bytes)`.
    pub aggs: String,
    #[command(flatten)]
    pub stats: StatsArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputArg {
    Table,
    Tsv,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ChartArg {
    Bars,
    Sparkline,
}
