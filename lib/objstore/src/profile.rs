//! The shared AWS files: `~/.aws/credentials` and `~/.aws/config` (or the files named by
//! `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`), profile `AWS_PROFILE` (else
//! `default`). `object_store` reads only the environment; the AWS CLI, SDKs, DuckDB and
//! rclone read these files too, so a machine set up for them works for scribed and logq.
//!
//! Read from a profile: `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`,
//! `region` and `endpoint_url`. The credentials file's sections are `[name]`; the config
//! file's are `[profile name]` (and `[default]`). For a key in both, the credentials file
//! wins, as in the AWS CLI. Other keys (roles to assume, SSO, `credential_process`) are not
//! followed: such profiles need the environment chain (web identity, ECS, instance roles).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// A shared file larger than this is refused rather than read (they are a few lines).
const MAX_FILE: u64 = 1 << 20;

/// What the selected profile says (each part optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// The profile the environment selects, from the files the environment names (or the
/// defaults under `$HOME/.aws`). Missing files are no error; a profile named by
/// `AWS_PROFILE` that neither file holds is one (a typo would otherwise fall through to
/// other credentials silently).
pub fn load() -> Result<Profile, Error> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let in_home = |f: &str| home.as_ref().map(|h| h.join(".aws").join(f));
    let creds = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| in_home("credentials"));
    let config = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| in_home("config"));
    let named = env("AWS_PROFILE");
    let name = named.clone().unwrap_or_else(|| "default".to_string());
    let (profile, found) = load_from(creds.as_deref(), config.as_deref(), &name)?;
    if named.is_some() && !found {
        return Err(Error::Config(format!(
            "AWS_PROFILE={name}: no such profile in {} or {}",
            shown(creds.as_deref()),
            shown(config.as_deref())
        )));
    }
    Ok(profile)
}

fn shown(p: Option<&Path>) -> String {
    p.map_or_else(|| "(no file)".to_string(), |p| p.display().to_string())
}

/// Profile `name` from the two files; also whether either file has a section for it.
pub fn load_from(
    creds: Option<&Path>,
    config: Option<&Path>,
    name: &str,
) -> Result<(Profile, bool), Error> {
    let from_creds = match creds {
        Some(p) => read(p)?.and_then(|t| section(&t, |s| s == name)),
        None => None,
    };
    let in_config = |s: &str| {
        s.strip_prefix("profile ").map(str::trim) == Some(name) || (name == "default" && s == name)
    };
    let from_config = match config {
        Some(p) => read(p)?.and_then(|t| section(&t, in_config)),
        None => None,
    };
    let found = from_creds.is_some() || from_config.is_some();
    let (a, b) = (
        from_creds.unwrap_or_default(),
        from_config.unwrap_or_default(),
    );
    let get = |k: &str| a.get(k).or_else(|| b.get(k)).cloned();
    Ok((
        Profile {
            access_key_id: get("aws_access_key_id"),
            secret_access_key: get("aws_secret_access_key"),
            session_token: get("aws_session_token"),
            region: get("region"),
            endpoint_url: get("endpoint_url"),
        },
        found,
    ))
}

/// A file's text; `None` if it does not exist.
fn read(path: &Path) -> Result<Option<String>, Error> {
    let io = |source| Error::Io {
        op: "reading",
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if meta.len() > MAX_FILE {
        return Err(Error::Config(format!(
            "{}: {} bytes is too large for an AWS profile file (at most 1 MiB)",
            path.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The `key = value` pairs of the first section whose name `want` accepts (INI as the AWS
/// tools write it: `#`/`;` comments, keys lowercased, indented lines are sub-settings and
/// skipped). Later sections of the same name add keys the first lacks.
fn section(text: &str, want: impl Fn(&str) -> bool) -> Option<HashMap<String, String>> {
    let mut out: Option<HashMap<String, String>> = None;
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = want(name.trim());
            if inside && out.is_none() {
                out = Some(HashMap::new());
            }
            continue;
        }
        if !inside {
            continue;
        }
        if let (Some(map), Some((k, v))) = (out.as_mut(), line.split_once('=')) {
            let v = v.trim();
            if !v.is_empty() {
                map.entry(k.trim().to_ascii_lowercase())
                    .or_insert_with(|| v.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_come_from_both_files_credentials_first() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &creds,
            "# comment\n[default]\naws_access_key_id = AKDEF\naws_secret_access_key=SKDEF\n\
             [lab]\naws_access_key_id = AKLAB\n aws_secret_access_key = ignored-indented\n\
             aws_secret_access_key = SKLAB\nregion = from-creds\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile lab]\nregion = us-west-2\n\
             endpoint_url = http://127.0.0.1:9000\ns3 =\n  addressing_style = path\n",
        )
        .unwrap();
        let (p, found) = load_from(Some(&creds), Some(&config), "default").unwrap();
        assert!(found);
        assert_eq!(p.access_key_id.as_deref(), Some("AKDEF"));
        assert_eq!(p.secret_access_key.as_deref(), Some("SKDEF"));
        assert_eq!(p.region.as_deref(), Some("eu-west-1"));
        let (p, _) = load_from(Some(&creds), Some(&config), "lab").unwrap();
        assert_eq!(p.secret_access_key.as_deref(), Some("SKLAB"));
        assert_eq!(p.region.as_deref(), Some("from-creds"));
        assert_eq!(p.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        let (p, found) = load_from(Some(&creds), Some(&config), "nope").unwrap();
        assert!(!found);
        assert_eq!(p, Profile::default());
        // Missing files are no error.
        let gone = dir.path().join("gone");
        assert!(!load_from(Some(&gone), Some(&gone), "default").unwrap().1);
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("credentials");
        std::fs::write(&big, vec![b'#'; (MAX_FILE + 1) as usize]).unwrap();
        let e = load_from(Some(&big), None, "default").unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }
}
