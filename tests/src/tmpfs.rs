//! Small tmpfs filesystems for disk-full tests, and filling them.
//!
//! A test that needs a disk it can fill mounts a tmpfs when it may (root). Otherwise the process
//! under test mounts one itself, inside its own user and mount namespace (`unshare -rm`), and the
//! test reaches it through `/proc/<pid>/root`. When neither is possible the test is skipped with
//! a printed reason. `TORTURE_FORCE_UNSHARE=1` takes the namespace route even as root (to test
//! it).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::wait_for;

/// A tmpfs mounted for a test, unmounted (lazily, so a straggler cannot keep it) when dropped.
pub struct TmpfsMount {
    pub dir: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `bytes` on `dir` (created); `Err` with the reason when not permitted.
    pub fn mount(dir: &Path, bytes: u64) -> Result<TmpfsMount, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(TmpfsMount {
            dir: dir.to_path_buf(),
        })
    }

    /// Free bytes on the filesystem (statvfs through `df`-free means: `stat -f`).
    pub fn free_bytes(&self) -> u64 {
        free_bytes(&self.dir)
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Free bytes (for unprivileged users) of the filesystem holding `dir`, via `stat -f`.
pub fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(dir)
        .output()
        .expect("running stat -f");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|x| x.parse::<u64>().unwrap_or(0));
    it.next().unwrap_or(0) * it.next().unwrap_or(0)
}

/// Writes zeros to `path` until about `keep` bytes are left free on its filesystem (or the
/// filesystem is full); returns the bytes written. Bounded by `max` bytes.
pub fn fill(path: &Path, keep: u64, max: u64) -> u64 {
    let dir = path.parent().expect("filler has a parent");
    let mut f = File::create(path).expect("creating the filler");
    let chunk = vec![0u8; 256 * 1024];
    let mut written = 0;
    while written < max {
        let free = free_bytes(dir);
        if free <= keep {
            break;
        }
        let n = (free - keep).min(chunk.len() as u64) as usize;
        match f.write_all(&chunk[..n]) {
            Ok(()) => written += n as u64,
            Err(_) => break,
        }
    }
    written
}

/// Whether `unshare -rm` works here (user namespaces may be disabled).
pub fn unshare_works() -> Result<(), String> {
    let out = Command::new("unshare")
        .args(["-rm", "true"])
        .output()
        .map_err(|e| format!("running unshare: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "unshare -rm failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A tmpfs of `size` bytes at `dir` for one process under test (see the module docs).
pub enum Disk {
    /// Mounted by the test: every process sees it.
    Host(TmpfsMount),
    /// Mounted by the process under test, in its own namespace, when it starts.
    Namespaced { dir: PathBuf, size: u64 },
}

/// Marks, in the namespace route, that the tmpfs is mounted (and filled, if asked).
const MOUNTED: &str = ".mounted";

impl Disk {
    /// Mounts the tmpfs, or checks that the namespace route works; `Err` says why neither does.
    pub fn new(dir: &Path, size: u64) -> Result<Disk, String> {
        let direct = if std::env::var("TORTURE_FORCE_UNSHARE").is_ok_and(|v| v == "1") {
            Err("TORTURE_FORCE_UNSHARE=1".to_string())
        } else {
            TmpfsMount::mount(dir, size)
        };
        match direct {
            Ok(m) => Ok(Disk::Host(m)),
            Err(direct) => match unshare_works() {
                Ok(()) => {
                    println!(
                        "{direct}; mounting the tmpfs in a user+mount namespace (unshare -rm)"
                    );
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                    Ok(Disk::Namespaced {
                        dir: dir.to_path_buf(),
                        size,
                    })
                }
                Err(ns) => Err(format!("{direct}; {ns}")),
            },
        }
    }

    pub fn dir(&self) -> &Path {
        match self {
            Disk::Host(m) => &m.dir,
            Disk::Namespaced { dir, .. } => dir,
        }
    }

    /// The command that starts `program` on this disk: as is, or inside `unshare -rm` once the
    /// tmpfs is mounted. With `full`, the disk is full when `program` starts: `filler` takes
    /// all of it.
    pub fn command(&self, program: &Path, full: bool) -> Command {
        match self {
            Disk::Host(m) => {
                if full {
                    fill(&m.dir.join("filler"), 0, u64::MAX);
                }
                Command::new(program)
            }
            Disk::Namespaced { dir, size } => {
                let mut c = Command::new("unshare");
                c.args(["-rm", "sh", "-c"])
                    .arg(format!(
                        r#"mount -t tmpfs -o size="$1" tmpfs "$2" || exit 111
                        if [ "$3" = 1 ]; then cat /dev/zero > "$2/filler" 2>/dev/null; fi
                        : > "$2/{MOUNTED}"; shift 3; exec "$@""#
                    ))
                    .arg("sh")
                    .arg(size.to_string())
                    .arg(dir)
                    .arg(if full { "1" } else { "0" })
                    .arg(program);
                c
            }
        }
    }

    /// Where the test sees the disk of the process `pid` started by [`Disk::command`]: the
    /// directory itself, or the namespace's view of it once mounted (waited for, at most 20 s).
    pub fn view(&self, pid: u32) -> PathBuf {
        match self {
            Disk::Host(m) => m.dir.clone(),
            Disk::Namespaced { dir, .. } => {
                let rel = dir.strip_prefix("/").unwrap_or(dir);
                let view = PathBuf::from(format!("/proc/{pid}/root")).join(rel);
                wait_for(Duration::from_secs(20), "the namespaced tmpfs", || {
                    view.join(MOUNTED).exists()
                });
                view
            }
        }
    }
}
