//! ship's settings: command-line flags ([`crate::cli`]) over an optional TOML file
//! (`--config`), merged low → high here: built-in default, then the file, then the flag
//! ([`Delivery::resolve`], [`Cli::following`]).
//!
//! Sizes and durations are spelled as in scribed's config file ([`scribe_cli::Size`],
//! [`scribe_cli::Dur`]): a size is a byte count or a string with a K/M/G/T suffix, a duration
//! a string with a unit or a number of seconds.
//!
//! ```toml
//! to = ["10.0.0.5:1463", "10.0.0.6:1463"]   # failover, in order
//! state_dir = "/var/lib/ship"                # positions file; default spool
//! spool_max = "1G"                           # or 1073741824
//! poll_interval = "250ms"
//!
//! [[follow]]
//! include = ["/var/log/apache2/*.log"]
//! exclude = ["/var/log/apache2/other_vhosts*"]
//! category = "apache.{stem}"
//!
//! [[follow]]
//! include = ["/var/log/myapp/app.log"]
//! category = "myapp"
//! multiline_start = '^\d{4}-\d\d-\d\d '
//! multiline_timeout = "1s"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use regex::bytes::Regex;
use scribe_cli::{Dur, Size};
use scribe_follow::Globs;
use scribe_protocol::client::ClientOptions;
use scribe_protocol::frame::DEFAULT_MAX_FRAME;
use scribe_spool::SpoolOptions;
use serde::Deserialize;

use crate::batch::{max_line_for_frame, BatchLimits};
use crate::cli::{Cli, Delivery};
use crate::follow::FollowEntry;
use crate::multiline::MultilineRule;
use crate::outbox::OutboxOptions;
use crate::template::CategoryTemplate;

/// `spool_max` unless the file or a flag says otherwise.
const DEFAULT_SPOOL_MAX: u64 = 1 << 30;
/// `poll_interval` unless the file or a flag says otherwise.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// `multiline_timeout` unless a `[[follow]]` entry says otherwise.
const DEFAULT_MULTILINE_TIMEOUT: Duration = Duration::from_secs(1);

/// The file format.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub to: Vec<String>,
    pub state_dir: Option<PathBuf>,
    pub spool_dir: Option<PathBuf>,
    pub spool_max: Option<Size>,
    pub dead_letter: Option<PathBuf>,
    pub poll_interval: Option<Dur>,
    pub poll: Option<bool>,
    #[serde(default)]
    pub tls: bool,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub follow: Vec<FollowSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowSpec {
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub category: String,
    #[serde(default)]
    pub from_beginning: bool,
    pub multiline_start: Option<String>,
    pub multiline_timeout: Option<Dur>,
}

impl ConfigFile {
    pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        ConfigFile::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parses a config file's text (no file access). With [`ConfigFile::check`], the entry
    /// point of the `ship_config` fuzz target.
    pub fn parse(text: &str) -> anyhow::Result<ConfigFile> {
        Ok(toml::from_str(text)?)
    }

    /// Compiles every follow entry (globs, category templates, multiline regexes), so a bad
    /// file fails as a whole; the same checks `ship` makes when it uses them. (Sizes and
    /// durations were checked by [`ConfigFile::parse`].)
    pub fn check(&self) -> anyhow::Result<()> {
        for (i, spec) in self.follow.iter().enumerate() {
            spec.compile(&format!("follow[{i}]"), false)?;
        }
        Ok(())
    }
}

impl FollowSpec {
    /// `PATH=CATEGORY` from the command line.
    pub fn from_flag(flag: &str, from_beginning: bool) -> anyhow::Result<FollowSpec> {
        let Some((path, category)) = flag.rsplit_once('=') else {
            bail!("--follow {flag:?}: expected PATH=CATEGORY");
        };
        if path.is_empty() || category.is_empty() {
            bail!("--follow {flag:?}: expected PATH=CATEGORY");
        }
        Ok(FollowSpec {
            include: vec![path.to_string()],
            exclude: Vec::new(),
            category: category.to_string(),
            from_beginning,
            multiline_start: None,
            multiline_timeout: None,
        })
    }

    /// Checks everything and compiles the entry; `what` names it in errors.
    pub fn compile(&self, what: &str, from_beginning: bool) -> anyhow::Result<FollowEntry> {
        if self.include.is_empty() {
            bail!("{what}: include is empty");
        }
        let globs = Globs::new(&self.include, &self.exclude).with_context(|| what.to_string())?;
        let category =
            CategoryTemplate::parse(&self.category).with_context(|| format!("{what}: category"))?;
        let multiline = match &self.multiline_start {
            None => None,
            Some(re) => Some(MultilineRule {
                start: Regex::new(re).with_context(|| format!("{what}: multiline_start {re:?}"))?,
                timeout: self
                    .multiline_timeout
                    .map_or(DEFAULT_MULTILINE_TIMEOUT, |d| d.0),
            }),
        };
        Ok(FollowEntry {
            globs,
            category,
            from_beginning: self.from_beginning || from_beginning,
            multiline,
        })
    }
}

/// What every mode delivers with, once the file and the flags are merged.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub limits: BatchLimits,
    pub outbox: OutboxOptions,
    pub state_dir: PathBuf,
    /// `--dead-letter` / `dead_letter`, if given (the modes supply their defaults).
    pub dead_letter: Option<PathBuf>,
}

impl Delivery {
    /// The TLS settings: each flag over its key; TLS is on when `--tls`/`tls` or any other
    /// TLS setting is given.
    fn client_tls(&self, file: &ConfigFile) -> anyhow::Result<Option<scribe_tls::ClientTls>> {
        let pick = |flag: &Option<PathBuf>, key: &Option<PathBuf>| flag.clone().or(key.clone());
        // A certificate and its key come from the same place: flags or the file.
        let (cert, key) = if self.tls_cert.is_some() {
            (self.tls_cert.clone(), self.tls_key.clone())
        } else {
            (file.tls_cert.clone(), file.tls_key.clone())
        };
        if cert.is_some() != key.is_some() {
            bail!("tls_cert and tls_key go together: give both or neither");
        }
        let files = scribe_tls::ClientTlsFiles {
            ca: pick(&self.tls_ca, &file.tls_ca),
            cert,
            key,
            server_name: self
                .tls_server_name
                .clone()
                .or(file.tls_server_name.clone()),
        };
        Ok(scribe_tls::ClientTls::load_if_wanted(
            self.tls || file.tls,
            &files,
        )?)
    }

    /// Merges the flags over `file`. `default_spool`: the spool directory, given the state
    /// directory, unless `--spool-dir` or the file says otherwise (`None`: no spool).
    pub fn resolve(
        &self,
        file: &ConfigFile,
        default_spool: impl FnOnce(&Path) -> Option<PathBuf>,
    ) -> anyhow::Result<DeliverySettings> {
        let max_frame = usize::try_from(self.max_frame).unwrap_or(DEFAULT_MAX_FRAME);
        let frame_line = max_line_for_frame(max_frame);
        let max_line = self
            .max_line
            .map_or(frame_line, |m| usize::try_from(m).unwrap_or(usize::MAX));
        if max_line > frame_line {
            bail!("--max-line {max_line} does not fit in --max-frame {max_frame} (at most {frame_line})");
        }
        let state_dir = self
            .state_dir
            .clone()
            .or_else(|| file.state_dir.clone())
            .unwrap_or_else(default_state_dir);
        let spool_max = self
            .spool_max
            .or(file.spool_max.map(|s| s.0))
            .unwrap_or(DEFAULT_SPOOL_MAX);
        let spool_dir = self
            .spool_dir
            .clone()
            .or_else(|| file.spool_dir.clone())
            .or_else(|| default_spool(&state_dir));
        let spool = match spool_dir {
            Some(dir) if spool_max > 0 => Some((
                dir,
                SpoolOptions {
                    max_bytes: spool_max,
                    ..SpoolOptions::default()
                },
            )),
            _ => None,
        };
        // `--to` replaces the file's list, as every flag replaces its key.
        let mut to = if self.to.is_empty() {
            file.to.clone()
        } else {
            self.to.clone()
        };
        if to.is_empty() {
            to.push("127.0.0.1:1463".to_string());
        }
        Ok(DeliverySettings {
            limits: BatchLimits {
                max_line,
                batch_lines: self.batch_lines.max(1),
                batch_bytes: usize::try_from(self.batch_bytes)
                    .unwrap_or(usize::MAX)
                    .min(max_frame),
                linger: self.linger,
            },
            outbox: OutboxOptions {
                to,
                client: ClientOptions {
                    max_frame,
                    protocol: self.protocol,
                    gzip: self.compress,
                    tls: self.client_tls(file)?,
                    token: self
                        .token_file
                        .as_ref()
                        .or(file.token_file.as_ref())
                        .map(|p| scribe_tls::Token::from_file(p))
                        .transpose()?,
                    ..ClientOptions::default()
                },
                window: self.window.max(1),
                spool_after: self.spool_after,
                give_up: None,
                spool,
                drain_after_input: self.timeout,
                max_frame,
            },
            state_dir,
            dead_letter: self
                .dead_letter
                .clone()
                .or_else(|| file.dead_letter.clone()),
        })
    }
}

/// What follow mode reads and how it watches, once the file and the flags are merged.
#[derive(Debug, Clone)]
pub struct Following {
    /// The file's `[[follow]]` entries, then the `--follow` flags'.
    pub entries: Vec<FollowEntry>,
    pub poll_interval: Duration,
    /// Use change notifications (inotify): neither `--poll` nor `poll = true`.
    pub notify: bool,
}

impl Cli {
    /// Whether there is anything to follow (then standard input is not read).
    pub fn is_following(&self, file: &ConfigFile) -> bool {
        !self.follow.is_empty() || !file.follow.is_empty()
    }

    /// Compiles the file's follow entries and the `--follow` flags, and merges the polling
    /// settings.
    pub fn following(&self, file: &ConfigFile) -> anyhow::Result<Following> {
        let mut entries = Vec::new();
        for (i, spec) in file.follow.iter().enumerate() {
            entries.push(spec.compile(&format!("follow[{i}]"), self.from_beginning)?);
        }
        for flag in &self.follow {
            let spec = FollowSpec::from_flag(flag, self.from_beginning)?;
            entries.push(spec.compile(&format!("--follow {flag}"), self.from_beginning)?);
        }
        Ok(Following {
            entries,
            poll_interval: self
                .poll_interval
                .or(file.poll_interval.map(|d| d.0))
                .unwrap_or(DEFAULT_POLL_INTERVAL),
            notify: !(self.poll || file.poll.unwrap_or(false)),
        })
    }
}

/// The default state directory: systemd's `$STATE_DIRECTORY`, else `/var/lib/ship` for root,
/// else `$XDG_STATE_HOME/ship` or `~/.local/state/ship`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY") {
        return PathBuf::from(d);
    }
    // SAFETY-free: geteuid has no preconditions; std has no portable wrapper.
    if nix_is_root() {
        return PathBuf::from("/var/lib/ship");
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("ship");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/state/ship")
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_config_file_parses_and_compiles() {
        let text = r#"
            to = ["127.0.0.1:1463"]
            spool_max = "10M"
            [[follow]]
            include = ["/var/log/*.log"]
            exclude = ["/var/log/old*"]
            category = "sys.{stem}"
            multiline_start = '^\d{4}-'
        "#;
        let c: ConfigFile = toml::from_str(text).unwrap();
        assert_eq!(c.to, ["127.0.0.1:1463"]);
        let e = c.follow[0].compile("follow[0]", false).unwrap();
        assert_eq!(e.multiline.unwrap().timeout, Duration::from_secs(1));
    }

    #[test]
    fn check_interprets_every_value() {
        let good = "spool_max = \"2G\"\npoll_interval = \"250ms\"\n[[follow]]\n\
                    include = [\"/var/log/*.log\"]\ncategory = \"sys.{stem}\"\n\
                    multiline_start = '^\\d'\nmultiline_timeout = \"1s\"\n";
        ConfigFile::parse(good).unwrap().check().unwrap();
        // Sizes and durations are refused by the parse, naming the key.
        for (bad, key) in [
            ("spool_max = \"lots\"", "spool_max"),
            ("spool_max = -1", "spool_max"),
            ("poll_interval = \"soon\"", "poll_interval"),
            (
                "[[follow]]\ninclude = [\"/a\"]\ncategory = \"a\"\nmultiline_timeout = \"1\"",
                "multiline_timeout",
            ),
        ] {
            let e = ConfigFile::parse(bad).unwrap_err();
            assert!(format!("{e:#}").contains(key), "{bad}: {e:#}");
        }
        for (bad, key) in [
            (
                "[[follow]]\ninclude = [\"/a\"]\ncategory = \"a/b\"",
                "follow[0]",
            ),
            (
                "[[follow]]\ninclude = [\"/a\"]\ncategory = \"a\"\nmultiline_start = \"(\"",
                "follow[0]",
            ),
        ] {
            let e = ConfigFile::parse(bad).unwrap().check().unwrap_err();
            assert!(format!("{e:#}").contains(key), "{bad}: {e:#}");
        }
    }

    #[test]
    fn sizes_and_durations_take_either_spelling() {
        // The same values as scribed's config file takes (scribe_cli::Size / Dur).
        let follow = "[[follow]]\ninclude = [\"/a\"]\ncategory = \"a\"\nmultiline_start = \"^x\"\n";
        for (size, poll, timeout) in [("1073741824", "2", "3"), ("\"1G\"", "\"2s\"", "\"3000ms\"")]
        {
            let text = format!(
                "spool_max = {size}\npoll_interval = {poll}\n{follow}multiline_timeout = {timeout}\n"
            );
            let file = ConfigFile::parse(&text).unwrap();
            let cli = Cli::try_parse_from(["ship"]).unwrap();
            let d = cli
                .delivery
                .resolve(&file, |s| Some(s.join("spool")))
                .unwrap();
            assert_eq!(d.outbox.spool.unwrap().1.max_bytes, 1 << 30, "{text}");
            let f = cli.following(&file).unwrap();
            assert_eq!(f.poll_interval, Duration::from_secs(2), "{text}");
            let rule = f.entries[0].multiline.as_ref().unwrap();
            assert_eq!(rule.timeout, Duration::from_secs(3), "{text}");
        }
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let file = ConfigFile::parse(
            "to = [\"file:1\", \"file:2\"]\nstate_dir = \"/file/state\"\n\
             spool_max = \"10M\"\npoll_interval = 5\npoll = true\n\
             [[follow]]\ninclude = [\"/a\"]\ncategory = \"a\"\n",
        )
        .unwrap();
        let cli = |args: &[&str]| Cli::try_parse_from([&["ship"], args].concat()).unwrap();

        let plain = cli(&[]);
        let d = plain
            .delivery
            .resolve(&file, |s| Some(s.join("spool")))
            .unwrap();
        assert_eq!(d.outbox.to, ["file:1", "file:2"]);
        assert_eq!(d.state_dir, PathBuf::from("/file/state"));
        let (dir, spool) = d.outbox.spool.unwrap();
        assert_eq!(
            (dir, spool.max_bytes),
            ("/file/state/spool".into(), 10 << 20)
        );
        let f = plain.following(&file).unwrap();
        assert_eq!((f.poll_interval, f.notify), (Duration::from_secs(5), false));
        assert_eq!(f.entries.len(), 1);

        let flags = cli(&[
            "--to",
            "flag:1",
            "--state-dir",
            "/flag/state",
            "--spool-max",
            "0",
            "--poll-interval",
            "100ms",
            "--follow",
            "/b=b",
        ]);
        let d = flags
            .delivery
            .resolve(&file, |s| Some(s.join("spool")))
            .unwrap();
        assert_eq!(d.outbox.to, ["flag:1"]);
        assert_eq!(d.state_dir, PathBuf::from("/flag/state"));
        assert!(d.outbox.spool.is_none(), "--spool-max 0: no spool");
        let f = flags.following(&file).unwrap();
        assert_eq!(f.poll_interval, Duration::from_millis(100));
        assert_eq!(f.entries.len(), 2, "--follow adds to the file's entries");

        let none = ConfigFile::default();
        let d = plain.delivery.resolve(&none, |_| None).unwrap();
        assert_eq!(d.outbox.to, ["127.0.0.1:1463"]);
        assert!(d.outbox.spool.is_none());
        assert_eq!(
            plain.following(&none).unwrap().poll_interval,
            DEFAULT_POLL_INTERVAL
        );
    }

    #[test]
    fn a_max_line_must_fit_the_frame() {
        let cli = Cli::try_parse_from(["ship", "--max-line", "20M", "c"]).unwrap();
        let e = cli.delivery.resolve(&ConfigFile::default(), |_| None);
        assert!(format!("{:#}", e.unwrap_err()).contains("does not fit in --max-frame"));
    }

    #[test]
    fn mistakes_are_named() {
        let bad: Result<ConfigFile, _> = toml::from_str("[[follow]]\ninclude=[]\ncategroy='x'\n");
        assert!(bad.unwrap_err().to_string().contains("categroy"));
        let spec = FollowSpec::from_flag("/x.log={oops}", false).unwrap();
        let e = spec.compile("--follow /x.log={oops}", false).unwrap_err();
        assert!(format!("{e:#}").contains("oops"), "{e:#}");
        assert!(FollowSpec::from_flag("/x.log", false).is_err());
    }
}
