//! The page in a real headless Chromium: tests/browser/page.test.mjs (playwright-core),
//! installed by tests/browser/setup.sh (scripts/test runs it). The screenshot lands in the
//! target directory as `tailgate-browser.png`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn page_in_headless_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join("tests/browser");
    let ready = std::path::Path::new("/usr/bin/chromium").exists()
        && dir.join("node_modules/playwright-core").exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ready {
        // scripts/test installs them and sets TAILGATE_BROWSER_REQUIRED: there, a missing
        // browser is a failure, not a skip.
        assert!(
            std::env::var_os("TAILGATE_BROWSER_REQUIRED").is_none(),
            "chromium or playwright-core missing: run tests/browser/setup.sh"
        );
        eprintln!(
            "\n!!! SKIPPING the tailgate browser test: /usr/bin/chromium or \
             tests/browser/node_modules missing; run tests/browser/setup.sh (scripts/test does)\n"
        );
        return;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let shot = target.join("tailgate-browser.png");
    let out = Command::new("node")
        .arg("page.test.mjs")
        .current_dir(&dir)
        .env("TAILGATE_BIN", env!("CARGO_BIN_EXE_tailgate"))
        .env("SCREENSHOT", &shot)
        .output()
        .expect("running node");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser test failed: {}", out.status);
    assert!(shot.exists(), "no screenshot at {}", shot.display());
}
