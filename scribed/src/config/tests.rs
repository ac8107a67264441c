use super::blocks::spool_key;
use super::*;

fn load_str(toml_text: &str, extra_flags: &[&str]) -> Result<Settings, ConfigError> {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scribed.toml");
    std::fs::write(&path, toml_text).unwrap();
    let mut argv = vec!["scribed", "--config", path.to_str().unwrap()];
    argv.extend_from_slice(extra_flags);
    Settings::load(&Args::parse_from(argv))
}

fn err(toml_text: &str) -> String {
    load_str(toml_text, &[]).unwrap_err().to_string()
}

#[test]
fn no_file_means_one_default_file_store() {
    use clap::Parser;
    let s = Settings::load(&Args::parse_from(["scribed"])).unwrap();
    assert_eq!(s.listen, vec![DEFAULT_LISTEN.parse().unwrap()]);
    assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    assert_eq!(s.max_size, 1 << 30);
    assert_eq!(s.stores.len(), 1);
    assert_eq!(s.stores[0].patterns, vec![CategoryPattern::Default]);
    assert!(matches!(s.stores[0].spec, StoreSpec::File(_)));
}

#[test]
fn a_full_config_parses() {
    let s = load_str(
        r#"
        listen = ["127.0.0.1:1999"]
        data_dir = "/var/lib/scribed"
        max_size = "512M"
        max_queue_bytes = 1048576
        max_msg_per_second = 100000
        status_listen = "127.0.0.1:2000"

        [[store]]
        category = "web"
        type = "file"
        rotate_period = "hourly"
        compress = true
        keep_days = 7
        fsync = "1s"

        [[store]]
        categories = ["app*", "db*"]
        type = "buffer"
        max_spool_bytes = "10G"
        retry_interval = "2s"
        [store.primary]
        type = "network"
        remote = ["central-a:1463", "central-b:1463"]
        timeout = "10s"

        [[store]]
        categories = "default"
        type = "multi"
        report_success = "any"
        [[store.stores]]
        type = "file"
        path = "/archive"
        [[store.stores]]
        type = "null"

        [[store]]
        category = "sharded"
        type = "bucket"
        num_buckets = 4
        delimiter = "58"
        [store.bucket]
        type = "file"
        "#,
        &[],
    )
    .unwrap();
    assert_eq!(s.max_size, 512 << 20);
    assert_eq!(s.max_queue_bytes, 1 << 20);
    assert_eq!(s.stores.len(), 4);
    assert_eq!(
        s.stores[1].patterns,
        vec![
            CategoryPattern::Prefix("app".into()),
            CategoryPattern::Prefix("db".into())
        ]
    );
    match &s.stores[1].spec {
        StoreSpec::Buffer(b) => {
            assert!(matches!(*b.primary, StoreSpec::Network(_)));
            assert_eq!(b.max_spool_bytes.unwrap().0, 10 << 30);
            assert_eq!(
                spool_dir(b, &s.stores[1].key, &s),
                PathBuf::from("/var/lib/scribed/.spool/app_prefix+db_prefix")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn flags_override_the_file() {
    let s = load_str(
        "data_dir = \"/from/file\"\nmax_size = \"1M\"\n",
        &["--data-dir", "/from/flag", "--listen", "127.0.0.1:7"],
    )
    .unwrap();
    assert_eq!(s.data_dir, PathBuf::from("/from/flag"));
    assert_eq!(s.listen, vec!["127.0.0.1:7".parse().unwrap()]);
    assert_eq!(
        s.max_size,
        1 << 20,
        "keys without a flag keep the file's value"
    );
}

#[test]
fn sizes_and_durations_take_either_spelling() {
    // The same values as ship's config file takes (scribe_cli::Size / Dur).
    for (size, timeout) in [("1073741824", "90"), ("\"1G\"", "\"90s\"")] {
        let text = format!("max_size = {size}\nidle_timeout = {timeout}\n");
        let s = load_str(&text, &[]).unwrap();
        assert_eq!(s.max_size, 1 << 30, "{text}");
        assert_eq!(s.idle_timeout, Duration::from_secs(90), "{text}");
    }
}

#[test]
fn errors_name_the_file_the_key_and_the_problem() {
    let e = err("max_sise = 3\n");
    assert!(e.contains("scribed.toml") && e.contains("max_sise"), "{e}");

    let e = err("max_size = \"12Q\"\n");
    assert!(e.contains("max_size") && e.contains("unknown unit"), "{e}");

    let e = err("[[store]]\ncategory = \"a\"\ntype = \"file\"\nmax_sizee = 1\n");
    assert!(e.contains("store[0]") && e.contains("max_sizee"), "{e}");

    let e = err("[[store]]\ncategory = \"a\"\ntype = \"tape\"\n");
    assert!(e.contains("store[0]") && e.contains("tape"), "{e}");

    let e = err("[[store]]\ntype = \"null\"\n");
    assert!(e.contains("store[0]") && e.contains("categories"), "{e}");

    let e = err("[[store]]\ncategory = \"../etc\"\ntype = \"null\"\n");
    assert!(
        e.contains("store[0].category:") && e.contains("not a valid category"),
        "{e}"
    );

    let e = err("[[store]]\ncategory = \"a\"\ntype = \"file\"\nrotate_period = \"fortnightly\"\n");
    assert!(e.contains("store[0].rotate_period"), "{e}");

    let e = err("[[store]]\ncategory = \"a\"\ntype = \"file\"\nfsync = \"sometimes\"\n");
    assert!(e.contains("store[0].fsync"), "{e}");

    let e = err("[[store]]\ncategory = \"a\"\ntype = \"network\"\nremote = [\"nohost\"]\n");
    assert!(
        e.contains("store[0].remote") && e.contains("host:port"),
        "{e}"
    );

    let e = err(
        "[[store]]\ncategory = \"a\"\ntype = \"buffer\"\n[store.primary]\ntype = \"multi\"\nstores = []\n",
    );
    assert!(e.contains("store[0].primary"), "{e}");

    let e = err("[[store]]\ncategory = \"a\"\ntype = \"bucket\"\nnum_buckets = 0\n[store.bucket]\ntype = \"null\"\n");
    assert!(e.contains("store[0].num_buckets"), "{e}");
}

#[test]
fn two_buffers_may_not_share_a_spool() {
    let e = err(r#"
        [[store]]
        category = "a"
        type = "buffer"
        spool_dir = "/tmp/same"
        [store.primary]
        type = "null"
        [[store]]
        category = "b"
        type = "buffer"
        spool_dir = "/tmp/same"
        [store.primary]
        type = "null"
        "#);
    assert!(
        e.contains("store[1]") && e.contains("spool directory"),
        "{e}"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    use clap::Parser;
    let e = Settings::load(&Args::parse_from([
        "scribed",
        "--config",
        "/nonexistent/x.toml",
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("/nonexistent/x.toml") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn spool_keys_ignore_category_order_and_stay_short() {
    let a = spool_key(&["web*".into(), "api".into()]);
    assert_eq!(a, spool_key(&["api".into(), "web*".into()]));
    assert_eq!(a, "api+web_prefix");
    let many: Vec<String> = (0..100).map(|i| format!("category{i}")).collect();
    let k = spool_key(&many);
    assert!(k.len() < 64, "{k}");
    let mut reversed = many.clone();
    reversed.reverse();
    assert_eq!(k, spool_key(&reversed));
}

#[test]
fn durations_must_be_positive_and_sane() {
    let e = err("[[store]]\ncategory = \"a\"\ntype = \"buffer\"\nretry_interval = 9223372036854775807\n[store.primary]\ntype = \"null\"\n");
    assert!(
        e.contains("store[0].retry_interval") && e.contains("7 days"),
        "{e}"
    );
    let e = err(
        "[[store]]\ncategory = \"a\"\ntype = \"network\"\nremote = [\"h:1\"]\ntimeout = \"0s\"\n",
    );
    assert!(
        e.contains("store[0].timeout") && e.contains("more than 0"),
        "{e}"
    );
}

/// The string entry point (the fuzz target's) is the file path's validation, minus the read.
#[test]
fn check_config_text_agrees_with_loading_the_file() {
    let text = include_str!("../../../examples/scribed.toml");
    let path = std::path::Path::new("examples/scribed.toml");
    let from_text = check_config_text(path, text).unwrap();
    let mut from_file = load_str(text, &[]).unwrap();
    from_file.config_path = Some(path.to_path_buf());
    assert_eq!(from_text, from_file);
    let e = check_config_text(path, "max_frame = \"1\"\n").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("examples/scribed.toml:1:1: max_frame: "),
        "{e}"
    );
}

#[test]
fn prefix_patterns_follow_the_category_rules() {
    assert_eq!(
        CategoryPattern::parse("web.*"),
        Ok(CategoryPattern::Prefix("web.".into()))
    );
    let e = CategoryPattern::parse("we/b*").unwrap_err();
    assert!(e.contains("may only contain"), "{e}");
    let longest = format!("{}*", "a".repeat(MAX_CATEGORY_LEN));
    assert!(CategoryPattern::parse(&longest).is_ok());
    let e = CategoryPattern::parse(&format!("a{longest}")).unwrap_err();
    assert!(e.contains("longer than any category"), "{e}");
}

/// Every error says where (`file:line:col`, the key's place) and which key, at the top level
/// and inside store blocks, nested ones included.
#[test]
fn errors_give_file_line_column_and_key_path() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "max_sise = 3\n",
            "scribed.toml:1:1: max_sise: ",
            "unknown field",
        ),
        (
            "listen = [\"127.0.0.1:1\"]\nmax_size = \"12Q\"\n",
            "scribed.toml:2:1: max_size: ",
            "unknown unit",
        ),
        (
            "\nmax_frame = \"1\"\n",
            "scribed.toml:2:1: max_frame: ",
            "too small",
        ),
        (
            "[[store]]\ncategory = \"a\"\ntype = \"file\"\nmax_sizee = 1\n",
            "scribed.toml:4:1: store[0].max_sizee: ",
            "unknown field",
        ),
        (
            "[[store]]\ncategory = \"a\"\ntype = \"file\"\nkeep_days = \"many\"\n",
            "scribed.toml:4:1: store[0].keep_days: ",
            "invalid type",
        ),
        (
            "[[store]]\ncategory = \"a\"\ntype = \"buffer\"\n[store.primary]\ntype = \"network\"\n\
             remote = [\"h:1\"]\n  timeout = \"soon\"\n",
            "scribed.toml:7:3: store[0].primary.timeout: ",
            "soon",
        ),
        (
            "[[store]]\ncategory = \"a\"\ntype = \"multi\"\n[[store.stores]]\ntype = \"null\"\n\
             [[store.stores]]\ntype = \"file\"\nfsync = \"sometimes\"\n",
            "scribed.toml:8:1: store[0].stores[1].fsync: ",
            "sometimes",
        ),
        (
            "[[store]]\ncategory = \"a\"\ntype = \"null\"\n\n[[store]]\ncategory = \"b\"\n\
             type = \"tape\"\n",
            "scribed.toml:7:1: store[1].type: ",
            "tape",
        ),
        (
            "[[store]]\ntype = \"null\"\n",
            "scribed.toml:1:1: store[0]: ",
            "categories",
        ),
        (
            "[[store]]\ncategory = \"../etc\"\ntype = \"null\"\n",
            "scribed.toml:2:1: store[0].category: ",
            "not a valid category",
        ),
        (
            "[[store]]\ncategory = \"a\"\ntype = \"network\"\nremote = [\"nohost\"]\n",
            "scribed.toml:4:1: store[0].remote: ",
            "host:port",
        ),
    ];
    for (text, prefix, problem) in cases {
        let e = err(text);
        let shown = e
            .split_once("scribed.toml")
            .map_or(&e[..], |(_, rest)| rest);
        let want = prefix.trim_start_matches("scribed.toml");
        assert!(
            shown.starts_with(want) && e.contains(problem),
            "{text:?}:\n  got  {e}\n  want {prefix}...{problem}"
        );
    }
    // A syntax error has a place but may have no key.
    let e = err("[[store]\n");
    assert!(e.contains("scribed.toml:1:"), "{e}");
}

/// A value from a flag is not the file's: its error names the flag, not a line.
#[test]
fn a_bad_flag_is_named_as_the_flag() {
    let e = load_str("max_frame = \"16M\"\n", &["--max-frame", "1"])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("command line: --max-frame: "), "{e}");
}

/// Two writers of one category directory each cut the other's data at recovery: refused,
/// whether two children of one block, or two blocks a category can reach together.
#[test]
fn two_stores_may_not_write_one_category_directory() {
    let e = err(r#"
        [[store]]
        category = "default"
        type = "multi"
        [[store.stores]]
        type = "file"
        [[store.stores]]
        type = "file"
        "#);
    assert!(
        e.contains("store[0].stores[1]") && e.contains("store[0].stores[0]"),
        "{e}"
    );
    for (a, b) in [("default", "default"), ("web", "web"), ("web*", "web*")] {
        let e = err(&format!(
            "[[store]]\ncategory = \"{a}\"\ntype = \"file\"\npath = \"/x\"\n\
             [[store]]\ncategory = \"{b}\"\ntype = \"file\"\npath = \"/x/\"\n"
        ));
        assert!(
            e.contains("scribed.toml:5:1: store[1]") && e.contains("/x"),
            "{a}/{b}: {e}"
        );
    }
    let e = err("[[store]]\ncategory = \"default\"\ntype = \"file\"\n\
         [[store]]\ncategory = \"default\"\ntype = \"buffer\"\n[store.primary]\ntype = \"file\"\n");
    assert!(e.contains("store[1].primary"), "{e}");
    // A category reaches one of these blocks only: sharing the base directory is fine.
    load_str(
        "[[store]]\ncategory = \"web\"\ntype = \"file\"\npath = \"/x\"\n\
         [[store]]\ncategory = \"web*\"\ntype = \"file\"\npath = \"/x\"\n\
         [[store]]\ncategory = \"default\"\ntype = \"file\"\npath = \"/x\"\n",
        &[],
    )
    .unwrap();
}

#[test]
fn a_network_stores_max_frame_is_checked_and_its_dead_letter_dir_sits_beside_a_spool() {
    let net = "[[store]]\ncategory = \"a\"\ntype = \"network\"\nremote = [\"h:1\"]\n";
    for bad in ["\"100\"", "\"2G\""] {
        let e = err(&format!("{net}max_frame = {bad}\n"));
        assert!(e.contains("store[0].max_frame"), "{e}");
    }
    let s = load_str(&format!("{net}max_frame = \"64K\"\n"), &[]).unwrap();
    let StoreSpec::Network(n) = &s.stores[0].spec else {
        panic!("a network store");
    };
    assert_eq!(n.max_frame.map(|m| m.0), Some(64 << 10));
    let spool = std::path::Path::new("/var/spool/x");
    assert_eq!(
        dead_letter_dir(spool),
        std::path::Path::new("/var/spool/x/dead-letter")
    );
}
