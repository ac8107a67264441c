//! Feeds arbitrary text to scribed's config parser and validator (`--check-config`'s path,
//! without the file read). It must never panic or hang, and whatever it accepts must satisfy
//! what the server relies on at start: at least one listen address and one store, a usable
//! frame limit, a non-zero idle timeout and connection cap, categories that are valid names.
//! Parsing is also deterministic: the same text gives the same settings.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scribe_archive::Category;
use scribed::config::{check_config_text, CategoryPattern};

fuzz_target!(|data: &[u8]| {
    // A config file is read with `read_to_string`: non-UTF-8 never reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let name = Path::new("fuzz.toml");
    match check_config_text(name, text) {
        Err(e) => {
            // Operators get `file:line:col: key: problem` (the place and key when there is one).
            assert!(e.to_string().starts_with("fuzz.toml:"), "{e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
        Ok(s) => {
            assert!(!s.listen.is_empty());
            assert!(!s.stores.is_empty());
            assert!(s.max_frame >= 1024);
            assert!(!s.idle_timeout.is_zero());
            assert!(s.max_connections >= 1);
            for b in &s.stores {
                assert!(!b.patterns.is_empty(), "{}", b.name);
                for p in &b.patterns {
                    match p {
                        CategoryPattern::Exact(c) => {
                            let name = c.as_str();
                            assert!(!name.contains('/') && name != "..", "{c:?}");
                            assert!(Category::new(name.as_bytes()).is_ok(), "{c:?}");
                        }
                        CategoryPattern::Prefix(p) => assert!(!p.contains('/'), "{p:?}"),
                        CategoryPattern::Default => {}
                    }
                }
            }
            let again = check_config_text(name, text).expect("accepted once, accepted again");
            assert_eq!(again, s);
        }
    }
});
