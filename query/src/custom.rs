//! `--parse`: fields of any line shape. Three ways to say the shape:
//!
//! - a regex with named groups: `--parse 'user=(?P<user>\S+) took (?P<ms>\d+)ms'`;
//! - angle-grinder's pattern form, `*` for each field and the names after `as`:
//!   `--parse '* took *ms' as op,ms` (or one argument, `'* took *ms as op,ms'`);
//! - the name of a format in the formats file (`$LOGQ_FORMATS`, else
//!   `~/.config/logq/formats`), which holds `NAME = SPEC` lines in either form above and
//!   nginx `log_format NAME '...';` statements pasted as they are.
//!
//! A line the shape matches has these fields (and its format's own, for names the shape does
//! not have); a line it does not match has only its format's. nginx variable names answer to
//! logq's usual names too (`ip` is `$remote_addr`, `path` the request's path, and so on), and
//! the first time-like field gives the line its time.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use regex::bytes::Regex;

/// A compiled `--parse` shape.
#[derive(Debug)]
pub struct Custom {
    pub re: Regex,
    /// Field names in group order (index = capture group index; group 0 has none).
    pub names: Vec<Option<String>>,
}

/// Field names that an nginx variable (or a regex group) also answers to.
const ALIASES: [(&str, &[&str]); 9] = [
    ("ip", &["remote_addr", "client_ip", "client", "host"]),
    ("user", &["remote_user"]),
    (
        "time",
        &["time_local", "time_iso8601", "timestamp", "ts", "date"],
    ),
    ("bytes", &["body_bytes_sent", "bytes_sent", "size"]),
    ("referer", &["http_referer"]),
    ("agent", &["http_user_agent", "user_agent"]),
    ("path", &["request_uri", "uri"]),
    ("method", &["request_method"]),
    ("protocol", &["server_protocol"]),
];

/// Groups whose value is the line's time, tried in order.
pub const TIME_FIELDS: [&str; 7] = [
    "time",
    "time_local",
    "time_iso8601",
    "timestamp",
    "ts",
    "date",
    "msec",
];

static CUSTOM: OnceLock<Custom> = OnceLock::new();

/// The process's `--parse` shape, if one was given. A process-wide setting (like the line
/// limit) rather than a parameter, because every record of every command consults it and
/// the records are made in a dozen places.
pub fn get() -> Option<&'static Custom> {
    CUSTOM.get()
}

/// Sets the process's shape (the first call wins; a command sets it once, at start).
pub fn set(spec: &str) -> Result<()> {
    let c = Custom::parse(spec)?;
    let _ = CUSTOM.set(c);
    Ok(())
}

/// Turns `--parse PATTERN as NAMES` (three arguments, as angle-grinder writes it) into the
/// one argument `--parse=PATTERN as NAMES`.
pub fn join_parse_args(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--parse" && args.get(i + 2).is_some_and(|a| a == "as") && i + 3 < args.len()
        {
            let mut joined = std::ffi::OsString::from("--parse=");
            joined.push(&args[i + 1]);
            joined.push(" as ");
            joined.push(&args[i + 3]);
            out.push(joined);
            i += 4;
            continue;
        }
        out.push(args[i].clone());
        i += 1;
    }
    out
}

impl Custom {
    /// A regex with named groups, a `PATTERN as NAMES`, or a name in the formats file.
    pub fn parse(spec: &str) -> Result<Custom> {
        if spec.contains("(?P<") || spec.contains("(?<") {
            return Custom::regex(spec);
        }
        if let Some((pat, names)) = spec.rsplit_once(" as ") {
            return Custom::pattern(pat, names);
        }
        if is_name(spec) {
            return Custom::named(spec);
        }
        bail!(
            "--parse {spec:?}: give a regex with named groups ((?P<name>...)), \
             a pattern with names ('* took *ms' as op,ms), or a format name from {}",
            formats_path().display()
        )
    }

    pub fn regex(src: &str) -> Result<Custom> {
        let re = Regex::new(src).map_err(|e| {
            anyhow!(
                "--parse: bad regex: {}",
                e.to_string().lines().last().unwrap_or("").trim()
            )
        })?;
        let names: Vec<Option<String>> =
            re.capture_names().map(|n| n.map(str::to_string)).collect();
        if names.iter().all(Option::is_none) {
            bail!("--parse: the regex names no field: use (?P<name>...)");
        }
        Ok(Custom { re, names })
    }

    /// `* took *ms` with `op,ms`: each `*` is a field (the shortest text that lets the rest
    /// match; a final `*` takes the rest of the line), the rest is literal.
    pub fn pattern(pat: &str, names: &str) -> Result<Custom> {
        let names: Vec<&str> = names
            .split([',', ' '])
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let stars = pat.matches('*').count();
        if stars != names.len() {
            bail!(
                "--parse {pat:?}: {stars} `*` but {} name(s) after `as`",
                names.len()
            );
        }
        let mut re = String::new();
        let parts: Vec<&str> = pat.split('*').collect();
        for (i, lit) in parts.iter().enumerate() {
            re.push_str(&regex::escape(lit));
            if let Some(name) = names.get(i) {
                if !is_name(name) {
                    bail!("--parse: bad field name {name:?} (letters, digits, _)");
                }
                let last = i + 1 == names.len() && parts[i + 1].is_empty();
                re.push_str(&format!(
                    "(?P<{name}>{})",
                    if last { "(?s:.*)" } else { "(?s:.*?)" }
                ));
            }
        }
        Custom::regex(&re).map_err(|e| anyhow!("--parse {pat:?}: {e:#}"))
    }

    /// An nginx `log_format` string: `$var` / `${var}` are fields, the rest literal; the
    /// whole line must match.
    pub fn nginx(fmt: &str) -> Result<Custom> {
        let mut re = String::from("^");
        let mut seen = std::collections::HashSet::new();
        let mut rest = fmt;
        while let Some(i) = rest.find('$') {
            re.push_str(&regex::escape(&rest[..i]));
            let after = &rest[i + 1..];
            let (name, next) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced
                    .find('}')
                    .ok_or_else(|| anyhow!("log_format: unclosed ${{"))?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            if name.is_empty() {
                re.push_str(r"\$");
            } else if seen.insert(name.to_string()) {
                re.push_str(&format!("(?P<{name}>.*?)"));
            } else {
                re.push_str("(?:.*?)");
            }
            rest = next;
        }
        re.push_str(&regex::escape(rest));
        re.push('$');
        Custom::regex(&re).map_err(|e| anyhow!("log_format {fmt:?}: {e:#}"))
    }

    /// A format from the formats file.
    fn named(name: &str) -> Result<Custom> {
        let path = formats_path();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "--parse {name:?}: not a regex or pattern, and the formats file {} cannot be read",
                path.display()
            )
        })?;
        let formats = parse_formats_file(&text).with_context(|| path.display().to_string())?;
        match formats.into_iter().find(|(n, _)| n == name) {
            Some((_, spec)) => spec,
            None => bail!("--parse {name:?}: no such format in {}", path.display()),
        }
    }

    /// The group index a field name is captured by (directly or through an alias).
    pub fn group(&self, name: &str) -> Option<usize> {
        let direct = |n: &str| self.names.iter().position(|g| g.as_deref() == Some(n));
        direct(name).or_else(|| {
            let (_, alts) = ALIASES.iter().find(|(a, _)| *a == name)?;
            alts.iter().find_map(|a| direct(a))
        })
    }

    /// Every field name the shape captures.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().flatten().map(String::as_str)
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// `$LOGQ_FORMATS`, else `$XDG_CONFIG_HOME/logq/formats`, else `~/.config/logq/formats`.
pub fn formats_path() -> PathBuf {
    if let Some(p) = std::env::var_os("LOGQ_FORMATS") {
        return PathBuf::from(p);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("logq").join("formats")
}

/// The formats of a formats file: `NAME = SPEC` lines, nginx `log_format NAME [escape=...]
/// 'part' 'part' ...;` statements (over several lines), `#` comments. Each format is parsed
/// (so a bad one is reported when it is asked for, naming it).
pub fn parse_formats_file(text: &str) -> Result<Vec<(String, Result<Custom>)>> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("log_format") {
            let mut stmt = rest.to_string();
            while !stmt.trim_end().ends_with(';') {
                let Some((_, more)) = lines.next() else {
                    bail!("line {}: log_format without a closing `;`", n + 1);
                };
                stmt.push(' ');
                stmt.push_str(more.trim());
            }
            let (name, fmt) = nginx_statement(&stmt)
                .ok_or_else(|| anyhow!("line {}: cannot read this log_format", n + 1))?;
            out.push((name, Custom::nginx(&fmt)));
            continue;
        }
        let Some((name, spec)) = line.split_once('=') else {
            bail!("line {}: expected NAME = SPEC or log_format", n + 1);
        };
        let (name, spec) = (name.trim(), spec.trim());
        if !is_name(name) {
            bail!("line {}: bad format name {name:?}", n + 1);
        }
        let spec = unquote(spec).unwrap_or(spec);
        out.push((name.to_string(), Custom::parse_inline(spec)));
    }
    Ok(out)
}

impl Custom {
    /// A spec inside the formats file: a regex or a pattern, never another name.
    fn parse_inline(spec: &str) -> Result<Custom> {
        if is_name(spec) {
            bail!(
                "{spec:?} is a name, not a regex with (?P<name>...) or a '* ... as names' pattern"
            );
        }
        Custom::parse(spec)
    }
}

/// `main escape=json '$a - $b' '"$c"';` → (`main`, `$a - $b"$c"`).
fn nginx_statement(stmt: &str) -> Option<(String, String)> {
    let stmt = stmt.trim().strip_suffix(';')?;
    let mut words = stmt.trim_start();
    let name_end = words.find(char::is_whitespace)?;
    let name = words[..name_end].to_string();
    words = &words[name_end..];
    let mut fmt = String::new();
    loop {
        words = words.trim_start();
        if words.is_empty() {
            break;
        }
        if words.starts_with("escape=") {
            words = &words[words.find(char::is_whitespace).unwrap_or(words.len())..];
            continue;
        }
        let q = words.chars().next()?;
        if q != '\'' && q != '"' {
            let end = words.find(char::is_whitespace).unwrap_or(words.len());
            fmt.push_str(&words[..end]);
            words = &words[end..];
            continue;
        }
        let body = &words[1..];
        let end = body.find(q)?;
        fmt.push_str(&body[..end]);
        words = &body[end + 1..];
    }
    is_name(&name).then_some((name, fmt))
}

fn unquote(s: &str) -> Option<&str> {
    let q = s.chars().next()?;
    if (q == '\'' || q == '"') && s.len() >= 2 && s.ends_with(q) {
        Some(&s[1..s.len() - 1])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(c: &Custom, line: &'a str) -> Vec<(String, &'a str)> {
        let caps = c.re.captures(line.as_bytes()).expect("matches");
        c.field_names()
            .map(|n| {
                let m = caps.name(n).map_or(&b""[..], |m| m.as_bytes());
                (n.to_string(), std::str::from_utf8(m).unwrap())
            })
            .collect()
    }

    #[test]
    fn pattern_form() {
        let c = Custom::parse("* took *ms as op,ms").unwrap();
        assert_eq!(
            fields(&c, "GET /x took 12ms"),
            [("op".into(), "GET /x"), ("ms".into(), "12")]
        );
        let c = Custom::pattern("user=* *", "user rest").unwrap();
        assert_eq!(
            fields(&c, "at 5 user=bob did a thing"),
            [("user".into(), "bob"), ("rest".into(), "did a thing")]
        );
        assert!(Custom::parse("* took *ms as op").is_err());
        assert!(Custom::parse("* as 9x").is_err());
        assert!(Custom::parse("(nothing named)").is_err());
    }

    #[test]
    fn nginx_log_format() {
        let file = r#"
# comments and blank lines are fine
log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                  '$status $body_bytes_sent "$http_referer" '
                  '"$http_user_agent" rt=$request_time';
timing = '(?P<op>\w+) took (?P<ms>\d+)ms'
"#;
        let f = parse_formats_file(file).unwrap();
        assert_eq!(f.len(), 2);
        let main = f[0].1.as_ref().unwrap();
        let line = r#"10.0.0.1 - bob [23/Nov/2026:06:00:00 +0000] "GET /a?b=1 HTTP/1.1" 200 512 "-" "curl/8" rt=0.042"#;
        let caps = main.re.captures(line.as_bytes()).unwrap();
        let get = |n: &str| std::str::from_utf8(&caps[main.group(n).unwrap()]).unwrap();
        assert_eq!(get("ip"), "10.0.0.1");
        assert_eq!(get("request_time"), "0.042");
        assert_eq!(get("agent"), "curl/8");
        assert_eq!(get("time"), "23/Nov/2026:06:00:00 +0000");
        assert!(f[1].1.as_ref().unwrap().group("ms").is_some());
        assert!(parse_formats_file("log_format x '$a'").is_err());
        assert!(parse_formats_file("what").is_err());
    }

    #[test]
    fn three_argument_form_is_joined() {
        let a = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            join_parse_args(a(&[
                "logq",
                "where",
                "x",
                "--parse",
                "* took *ms",
                "as",
                "op,ms",
                "f"
            ])),
            a(&["logq", "where", "x", "--parse=* took *ms as op,ms", "f"])
        );
        assert_eq!(
            join_parse_args(a(&["logq", "--parse", "re"])),
            a(&["logq", "--parse", "re"])
        );
    }
}
