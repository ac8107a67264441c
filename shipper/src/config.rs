//! ship's settings: command-line flags over an optional TOML file (`--config`).
//!
//! ```toml
//! to = ["10.0.0.5:1463", "10.0.0.6:1463"]   # failover, in order
//! state_dir = "/var/lib/ship"                # positions file; default spool
//! spool_max = "1G"
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
use scribe_follow::Globs;
use serde::Deserialize;

use crate::follow::FollowEntry;
use crate::multiline::MultilineRule;
use crate::template::CategoryTemplate;

/// The file format.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub to: Vec<String>,
    pub state_dir: Option<PathBuf>,
    pub spool_dir: Option<PathBuf>,
    pub spool_max: Option<String>,
    pub poll_interval: Option<String>,
    pub poll: Option<bool>,
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
    pub multiline_timeout: Option<String>,
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

    /// Interprets every value the modes read later (sizes, durations, follow entries), so a
    /// bad file fails as a whole; the same checks `ship` makes when it uses them.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(s) = &self.spool_max {
            scribe_cli::parse_size(s)
                .map_err(anyhow::Error::msg)
                .context("spool_max")?;
        }
        if let Some(s) = &self.poll_interval {
            parse_duration(s).context("poll_interval")?;
        }
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
                timeout: match &self.multiline_timeout {
                    Some(t) => {
                        parse_duration(t).with_context(|| format!("{what}: multiline_timeout"))?
                    }
                    None => Duration::from_secs(1),
                },
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

pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s).with_context(|| format!("{s:?} is not a duration (try 250ms, 5s)"))
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
        for (bad, key) in [
            ("spool_max = \"lots\"", "spool_max"),
            ("poll_interval = \"soon\"", "poll_interval"),
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
    fn mistakes_are_named() {
        let bad: Result<ConfigFile, _> = toml::from_str("[[follow]]\ninclude=[]\ncategroy='x'\n");
        assert!(bad.unwrap_err().to_string().contains("categroy"));
        let spec = FollowSpec::from_flag("/x.log={oops}", false).unwrap();
        let e = spec.compile("--follow /x.log={oops}", false).unwrap_err();
        assert!(format!("{e:#}").contains("oops"), "{e:#}");
        assert!(FollowSpec::from_flag("/x.log", false).is_err());
    }
}
