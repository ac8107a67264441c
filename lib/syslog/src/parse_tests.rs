use super::*;

fn p(s: &[u8]) -> Message<'_> {
    parse(s).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(s)))
}

#[test]
fn rfc5424_full() {
    let m = p(b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"] \xEF\xBB\xBFAn application event");
    assert_eq!(m.format, Format::Rfc5424);
    assert_eq!(m.pri, Some((20, 5)));
    assert_eq!(m.facility(), Some("local4"));
    assert_eq!(m.severity(), Some("notice"));
    assert_eq!(m.timestamp, Some("2003-10-11T22:14:15.003Z"));
    assert_eq!(m.hostname, Some("mymachine.example.com"));
    assert_eq!(m.app_name, Some("evntslog"));
    assert_eq!(m.procid, None);
    assert_eq!(m.msgid, Some("ID47"));
    assert_eq!(m.structured_data.len(), 2);
    assert_eq!(m.structured_data[0].id, "exampleSDID@32473");
    assert_eq!(
        m.structured_data[0].params[1],
        ("eventSource", "Application".into())
    );
    assert_eq!(m.structured_data[1].params, vec![("class", "high".into())]);
    assert_eq!(m.msg, b"An application event");
}

#[test]
fn rfc5424_nil_everything_and_escapes() {
    let m = p(b"<13>1 - - - - - -");
    assert_eq!(
        (m.timestamp, m.hostname, m.app_name, m.procid, m.msgid),
        (None, None, None, None, None)
    );
    assert!(m.structured_data.is_empty());
    assert_eq!(m.msg, b"");
    let m = p(br#"<13>1 - h a 12 - [x@1 v="a\"b\]c\\d\e"] hi"#);
    assert_eq!(m.structured_data[0].params[0].1, r#"a"b]c\d\e"#);
    assert_eq!(m.procid, Some("12"));
    assert_eq!(m.msg, b"hi");
}

#[test]
fn rfc5424_errors() {
    assert!(matches!(parse(b"<13>1 -"), Err(ParseError::Header(_))));
    assert!(matches!(
        parse(b"<13>1 - h a - - [x"),
        Err(ParseError::StructuredData(_))
    ));
    assert!(matches!(
        parse(b"<13>1 - h a - - [x v=\"unterminated]"),
        Err(ParseError::StructuredData(_))
    ));
    assert!(matches!(
        parse(b"<13>1 - h a - - x"),
        Err(ParseError::StructuredData(_))
    ));
    assert!(matches!(
        parse(b"<192>1 - - - - - -"),
        Err(ParseError::BadPri)
    ));
    assert!(matches!(parse(b"<x>y"), Err(ParseError::BadPri)));
    assert!(matches!(parse(b"garbage"), Err(ParseError::NotSyslog)));
    assert!(matches!(parse(b""), Err(ParseError::NotSyslog)));
}

#[test]
fn rfc3164_in_the_wild() {
    // logger --rfc3164: space-padded day, host, tag with pid.
    let m = p(b"<13>Dec  4 18:40:12 myhost root[123]: hello world");
    assert_eq!(m.format, Format::Rfc3164);
    assert_eq!(m.timestamp, Some("Dec  4 18:40:12"));
    assert_eq!(m.hostname, Some("myhost"));
    assert_eq!(m.app_name, Some("root"));
    assert_eq!(m.procid, Some("123"));
    assert_eq!(m.msg, b"hello world");
    // No host: the word after the timestamp is the tag.
    let m = p(b"<34>Oct 11 22:14:15 su: 'su root' failed");
    assert_eq!((m.hostname, m.app_name), (None, Some("su")));
    assert_eq!(m.msg, b"'su root' failed");
    // No PRI.
    let m = p(b"Oct 11 22:14:15 gw kernel: eth0 up");
    assert_eq!(
        (m.pri, m.hostname, m.app_name),
        (None, Some("gw"), Some("kernel"))
    );
    // rsyslog's ISO variant.
    let m = p(b"<30>2024-12-04T10:00:00.123456+01:00 web01 nginx[7]: GET /");
    assert_eq!(m.timestamp, Some("2024-12-04T10:00:00.123456+01:00"));
    assert_eq!(
        (m.hostname, m.app_name, m.procid),
        (Some("web01"), Some("nginx"), Some("7"))
    );
    // PRI and no timestamp, no tag: all message.
    let m = p(b"<13>just text");
    assert_eq!((m.timestamp, m.app_name), (None, None));
    assert_eq!(m.msg, b"just text");
    // PRI, tag, no timestamp.
    let m = p(b"<13>app: text");
    assert_eq!(m.app_name, Some("app"));
    // Fractions, unpadded day.
    let m = p(b"<13>Dec 4 18:40:12.123 h t: x");
    assert_eq!(m.timestamp, Some("Dec 4 18:40:12.123"));
    assert_eq!(m.hostname, Some("h"));
    // A version-looking word that is not 5424.
    let m = p(b"<13>10:00 x");
    assert_eq!(m.format, Format::Rfc3164);
}

#[test]
fn never_panics_on_prefixes_of_anything() {
    let samples: [&[u8]; 4] = [
        b"<165>1 2003-10-11T22:14:15.003Z host app 1 id [a@1 b=\"c\\\"\"][d] \xEF\xBB\xBFmsg",
        b"<13>Dec  4 18:40:12 myhost root[123]: hello",
        b"<30>2024-12-04T10:00:00Z h t[: x",
        b"\xff\xfe<\x00>1 [",
    ];
    for s in samples {
        for i in 0..=s.len() {
            let _ = parse(&s[..i]);
        }
    }
    let mut rng = 0x1234_5678u64;
    let mut buf = Vec::new();
    for _ in 0..20_000 {
        buf.clear();
        for _ in 0..(rng % 48) {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let alphabet = b"<>1 -[]=\"\\:Dec 0123456789abT";
            buf.push(alphabet[(rng >> 33) as usize % alphabet.len()]);
        }
        let _ = parse(&buf);
    }
}
