//! What happens when a new file is opened: the `-L` hard link and the `-p` program.
//!
//! Like rotatelogs, the link is replaced by removing it and linking again (a reader with
//! `tail -F` sees it vanish for an instant), and the program runs as `PROGRAM NEW [OLD]` with
//! our stdin/stdout/stderr and environment, is not waited for, and its exit status is ignored.
//! Finished programs are reaped at the next open so none stays a zombie.
//!
//! Differences, both to lose nothing: rotatelogs exits when the link cannot be made; we say so
//! on stderr and keep writing. A `-p` program's stdin is /dev/null, not our stdin: a program
//! that read it would steal log lines.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Hooks {
    link: Option<PathBuf>,
    program: Option<PathBuf>,
    verbose: bool,
    children: Vec<Child>,
}

impl Hooks {
    pub fn new(link: Option<PathBuf>, program: Option<PathBuf>, verbose: bool) -> Hooks {
        Hooks {
            link,
            program,
            verbose,
            children: Vec::new(),
        }
    }

    /// `new` was just opened; `old` (if any) is about to be closed.
    pub fn opened(&mut self, new: &Path, old: Option<&Path>) {
        if let Some(link) = &self.link {
            self.relink(link, new);
        }
        if let Some(prog) = self.program.clone() {
            self.reap();
            if self.verbose {
                eprintln!("Calling post-rotate program: {}", prog.display());
            }
            let mut cmd = Command::new(&prog);
            cmd.arg(new).stdin(Stdio::null());
            if let Some(old) = old {
                cmd.arg(old);
            }
            match cmd.spawn() {
                Ok(child) => self.children.push(child),
                Err(e) => tracing::error!(
                    "could not spawn post-rotate program {}: {e}",
                    prog.display()
                ),
            }
        }
    }

    fn relink(&self, link: &Path, new: &Path) {
        if self.verbose {
            eprintln!("Linking {} to {}", new.display(), link.display());
        }
        if let Err(e) = std::fs::remove_file(link) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!("could not remove link {}: {e}", link.display());
            }
        }
        if let Err(e) = std::fs::hard_link(new, link) {
            tracing::error!(
                "error linking file {} to {}: {e}; continuing without the link",
                new.display(),
                link.display()
            );
        }
    }

    /// Collects programs that have exited, without waiting for the others.
    pub fn reap(&mut self) {
        self.children
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }
}
