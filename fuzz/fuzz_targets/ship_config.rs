//! Feeds arbitrary text to ship's config parser and then to every check `ship` makes on the
//! values (sizes, durations, globs, category templates, multiline regexes). It must never
//! panic or hang; a follow entry that compiles must render its category template for a path
//! to a valid category or a clean error.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shipper::config::ConfigFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = ConfigFile::parse(text) else {
        return;
    };
    if file.check().is_err() {
        return;
    }
    for (i, spec) in file.follow.iter().enumerate() {
        let entry = spec
            .compile(&format!("follow[{i}]"), false)
            .expect("check() compiled it already");
        for path in ["/var/log/app.log", "/x", "/", "/d/.hidden", "/d/a.b.c.log"] {
            if let Ok(c) = entry.category.render(Path::new(path)) {
                let name = c.as_str();
                assert!(
                    !name.is_empty() && !name.contains('/') && name != "..",
                    "{c:?}"
                );
            }
        }
    }
});
