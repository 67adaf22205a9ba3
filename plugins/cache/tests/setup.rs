//! CoreDNS's cache setup tests (plugin/cache/setup_test.go), ported: every accepted input with
//! the values it sets, every refused one with CoreDNS's exact error text.

use std::time::Duration;

use ferrodns_plugin_cache::DESCRIPTOR;
use ferrodns_plugin_cache::config::{self, Config, DEFAULT_CAP, MAX_NTTL, MAX_TTL, MIN_TTL};
use ferrodns_plugin_test as testkit;

const S: fn(u64) -> Duration = Duration::from_secs;

fn parse(text: &str) -> Result<Config, String> {
    let mut d = testkit::dispenser("cache", text).map_err(|e| e.to_string())?;
    config::parse(&mut d, &[".".to_string()]).map_err(|e| e.to_string())
}

/// The error the whole setup gives (with the `plugin/cache: ` prefix).
fn setup_err(text: &str) -> String {
    match testkit::setup(&DESCRIPTOR, text) {
        Ok(_) => panic!("{text:?}: expected an error"),
        Err(e) => e.to_string(),
    }
}

fn in_block(option: &str) -> String {
    format!("cache {{\n{option}\n}}")
}

/// input, ncap, pcap, nttl, minnttl, pttl, minpttl, prefetch
type ValueCase = (
    &'static str,
    usize,
    usize,
    Duration,
    Duration,
    Duration,
    Duration,
    u64,
);

#[test]
fn setup_values() {
    // input, ncap, pcap, nttl, minnttl, pttl, minpttl, prefetch
    let cases: &[ValueCase] = &[
        (
            "cache",
            DEFAULT_CAP,
            DEFAULT_CAP,
            MAX_NTTL,
            MIN_TTL,
            MAX_TTL,
            MIN_TTL,
            0,
        ),
        (
            "cache {}",
            DEFAULT_CAP,
            DEFAULT_CAP,
            MAX_NTTL,
            MIN_TTL,
            MAX_TTL,
            MIN_TTL,
            0,
        ),
        (
            "cache example.nl {\n success 10\n}",
            DEFAULT_CAP,
            10,
            MAX_NTTL,
            MIN_TTL,
            MAX_TTL,
            MIN_TTL,
            0,
        ),
        (
            "cache example.nl {\n success 10 1800 30\n}",
            DEFAULT_CAP,
            10,
            MAX_NTTL,
            MIN_TTL,
            S(1800),
            S(30),
            0,
        ),
        (
            "cache example.nl {\n success 10\n denial 10 15\n}",
            10,
            10,
            S(15),
            MIN_TTL,
            MAX_TTL,
            MIN_TTL,
            0,
        ),
        (
            "cache example.nl {\n success 10\n denial 10 15 2\n}",
            10,
            10,
            S(15),
            S(2),
            MAX_TTL,
            MIN_TTL,
            0,
        ),
        (
            "cache 25 example.nl {\n success 10\n denial 10 15\n}",
            10,
            10,
            S(15),
            MIN_TTL,
            S(25),
            MIN_TTL,
            0,
        ),
        (
            "cache 25 example.nl {\n success 10\n denial 10 15 5\n}",
            10,
            10,
            S(15),
            S(5),
            S(25),
            MIN_TTL,
            0,
        ),
        (
            "cache aaa example.nl",
            DEFAULT_CAP,
            DEFAULT_CAP,
            MAX_NTTL,
            MIN_TTL,
            MAX_TTL,
            MIN_TTL,
            0,
        ),
        (
            "cache\t{\n prefetch 10\n}",
            DEFAULT_CAP,
            DEFAULT_CAP,
            MAX_NTTL,
            MIN_TTL,
            MAX_TTL,
            MIN_TTL,
            10,
        ),
    ];
    for &(input, ncap, pcap, nttl, minnttl, pttl, minpttl, prefetch) in cases {
        let c = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(
            (
                c.ncap, c.pcap, c.nttl, c.minnttl, c.pttl, c.minpttl, c.prefetch
            ),
            (ncap, pcap, nttl, minnttl, pttl, minpttl, prefetch),
            "{input:?}"
        );
    }
    assert_eq!(
        parse("cache aaa example.nl").unwrap().zones,
        ["aaa.", "example.nl."]
    );
    assert_eq!(parse("cache").unwrap().zones, ["."]);
    assert_eq!(parse("cache 10 Example.NL").unwrap().zones, ["example.nl."]);
}

#[test]
fn setup_errors() {
    let arg = |line: u32, after: &str| {
        format!(
            "plugin/cache: Testfile:{line} - Error during parsing: Wrong argument count or unexpected line ending after '{after}'"
        )
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "cache example.nl {\n success\n denial 10 15\n}",
            arg(3, "success"),
        ),
        (
            "cache example.nl {\n success 15\n denial aaa\n}",
            "plugin/cache: strconv.Atoi: parsing \"aaa\": invalid syntax".into(),
        ),
        (
            "cache example.nl {\n positive 15\n negative aaa\n}",
            arg(3, "positive"),
        ),
        (
            "cache 0 example.nl",
            "plugin/cache: cache TTL can not be zero or negative: 0".into(),
        ),
        (
            "cache -1 example.nl",
            "plugin/cache: cache TTL can not be zero or negative: -1".into(),
        ),
        ("cache 1 example.nl {\n positive 0\n}", arg(3, "positive")),
        (
            "cache 1 example.nl {\n positive 0\n prefetch -1\n}",
            arg(3, "positive"),
        ),
        (
            "cache 1 example.nl {\n prefetch 0 blurp\n}",
            "plugin/cache: time: invalid duration \"blurp\"".into(),
        ),
        (
            "cache\ncache",
            "plugin/cache: this plugin can only be used once per Server Block".into(),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(setup_err(input), want, "{input:?}");
    }
}

#[test]
fn serve_stale() {
    // input, staleUpTo, verify, verify timeout, stale TTL
    let ok: &[(&str, Duration, bool, Duration, Duration)] = &[
        ("serve_stale", S(3600), false, S(0), S(0)),
        ("serve_stale 20m", S(1200), false, S(0), S(0)),
        ("serve_stale 1h20m", S(4800), false, S(0), S(0)),
        ("serve_stale 0m", S(0), false, S(0), S(0)),
        ("serve_stale 0", S(0), false, S(0), S(0)),
        ("serve_stale 0 verify", S(0), true, S(0), S(0)),
        ("serve_stale 0 immediate", S(0), false, S(0), S(0)),
        ("serve_stale 0 VERIFY", S(0), true, S(0), S(0)),
        ("serve_stale 1h immediate 30s", S(3600), false, S(0), S(30)),
        (
            "serve_stale 1h immediate 30s 30s",
            S(3600),
            false,
            S(0),
            S(30),
        ),
        (
            "serve_stale 1h immediate 4294967295s",
            S(3600),
            false,
            S(0),
            S(4294967295),
        ),
        ("serve_stale 1h immediate 0", S(3600), false, S(0), S(0)),
        (
            "serve_stale 1h verify 100ms",
            S(3600),
            true,
            Duration::from_millis(100),
            S(0),
        ),
        (
            "serve_stale 1h verify 100ms 30s",
            S(3600),
            true,
            Duration::from_millis(100),
            S(30),
        ),
        (
            "serve_stale 1h verify 100ms 30s 30s",
            S(3600),
            true,
            Duration::from_millis(100),
            S(30),
        ),
        ("serve_stale 1h verify 0", S(3600), true, S(0), S(0)),
        ("serve_stale 1h verify 0 1m", S(3600), true, S(0), S(60)),
        (
            "serve_stale 1h VERIFY 250ms",
            S(3600),
            true,
            Duration::from_millis(250),
            S(0),
        ),
    ];
    for &(input, up_to, verify, timeout, ttl) in ok {
        let c = parse(&in_block(input)).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(
            (
                c.stale_up_to,
                c.verify_stale,
                c.verify_stale_timeout,
                c.stale_ttl
            ),
            (up_to, verify, timeout, ttl),
            "{input:?}"
        );
    }
    let p = |s: &str| format!("plugin/cache: {s}");
    let bad: Vec<(&str, String)> = vec![
        ("serve_stale 20", p("time: missing unit in duration \"20\"")),
        (
            "serve_stale -20m",
            p("invalid negative duration for serve_stale"),
        ),
        ("serve_stale aa", p("time: invalid duration \"aa\"")),
        (
            "serve_stale 1m nono",
            p("invalid value for serve_stale refresh mode: nono"),
        ),
        (
            "serve_stale 0 after nono",
            p("invalid value for serve_stale refresh mode: after"),
        ),
        (
            "serve_stale 1h immediate 100ms",
            p("serve_stale response TTL must be a whole number of seconds"),
        ),
        (
            "serve_stale 1h immediate 4294967296s",
            p("serve_stale response TTL exceeds the DNS TTL range"),
        ),
        (
            "serve_stale 1h immediate -1s",
            p("invalid negative response TTL for serve_stale"),
        ),
        (
            "serve_stale 1h immediate garbage",
            p("invalid serve_stale response TTL: time: invalid duration \"garbage\""),
        ),
        (
            "serve_stale 1h immediate 30s extra",
            p("invalid serve_stale failure recheck: time: invalid duration \"extra\""),
        ),
        (
            "serve_stale 1h verify -1ms",
            p("invalid negative timeout for serve_stale verify"),
        ),
        (
            "serve_stale 1h verify garbage",
            p("invalid serve_stale verify timeout: time: invalid duration \"garbage\""),
        ),
        (
            "serve_stale 1h verify 100ms 500ms",
            p("serve_stale response TTL must be a whole number of seconds"),
        ),
        (
            "serve_stale 1h verify 100ms -1s",
            p("invalid negative response TTL for serve_stale"),
        ),
        (
            "serve_stale 1h verify 100ms garbage",
            p("invalid serve_stale response TTL: time: invalid duration \"garbage\""),
        ),
        (
            "serve_stale 1h verify 100ms 30s extra",
            p("invalid serve_stale failure recheck: time: invalid duration \"extra\""),
        ),
    ];
    for (input, want) in bad {
        assert_eq!(setup_err(&in_block(input)), want, "{input:?}");
    }
}

#[test]
fn serve_stale_failure_recheck() {
    let ok: &[(&str, Duration)] = &[
        ("serve_stale 1h immediate 30s 30s", S(30)),
        ("serve_stale 1h immediate 0 0", S(0)),
        (
            "serve_stale 1h verify 100ms 30s 250ms",
            Duration::from_millis(250),
        ),
        ("serve_stale 1h verify 0 0 5m", S(300)),
    ];
    for &(input, want) in ok {
        let c = parse(&in_block(input)).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(c.stale_recheck, want, "{input:?}");
    }
    let argerr = |after: &str| {
        format!(
            "plugin/cache: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after '{after}'"
        )
    };
    let bad: Vec<(&str, String)> = vec![
        (
            "serve_stale 1h immediate 30s -1s",
            "plugin/cache: invalid negative failure recheck for serve_stale".into(),
        ),
        (
            "serve_stale 1h immediate 30s 5m1s",
            "plugin/cache: serve_stale failure recheck cannot exceed 5 minutes".into(),
        ),
        (
            "serve_stale 1h immediate 30s invalid",
            "plugin/cache: invalid serve_stale failure recheck: time: invalid duration \"invalid\""
                .into(),
        ),
        ("serve_stale 1h immediate 30s 30s extra", argerr("extra")),
        (
            "serve_stale 1h verify 100ms 30s -1s",
            "plugin/cache: invalid negative failure recheck for serve_stale".into(),
        ),
        ("serve_stale 1h verify 100ms 30s 30s extra", argerr("extra")),
    ];
    for (input, want) in bad {
        assert_eq!(setup_err(&in_block(input)), want, "{input:?}");
    }
}

#[test]
fn serve_stale_policy() {
    let ok: &[(&str, bool)] = &[
        ("serve_stale\nserve_stale_policy prefer_positive", true),
        ("serve_stale_policy PREFER_POSITIVE\nserve_stale", true),
        ("serve_stale", false),
    ];
    for &(input, want) in ok {
        let c = parse(&in_block(input)).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(c.prefer_positive, want, "{input:?}");
    }
    let argerr = |after: &str| {
        format!(
            "plugin/cache: Testfile:4 - Error during parsing: Wrong argument count or unexpected line ending after '{after}'"
        )
    };
    let bad: Vec<(&str, String)> = vec![
        (
            "serve_stale_policy prefer_positive",
            "plugin/cache: serve_stale_policy requires serve_stale".into(),
        ),
        (
            "serve_stale\nserve_stale_policy",
            argerr("serve_stale_policy"),
        ),
        (
            "serve_stale\nserve_stale_policy prefer_positive extra",
            argerr("extra"),
        ),
        (
            "serve_stale\nserve_stale_policy invalid",
            "plugin/cache: invalid serve_stale_policy: invalid".into(),
        ),
        (
            "serve_stale\nserve_stale_policy prefer_positive\nserve_stale_policy prefer_positive",
            "plugin/cache: serve_stale_policy can only be specified once".into(),
        ),
    ];
    for (input, want) in bad {
        assert_eq!(setup_err(&in_block(input)), want, "{input:?}");
    }
}

#[test]
fn servfail() {
    let ok: &[(&str, Duration)] = &[
        ("servfail 1s", S(1)),
        ("servfail 5m", S(300)),
        ("servfail 0s", S(0)),
        ("servfail 0", S(0)),
    ];
    for &(input, want) in ok {
        let c = parse(&in_block(input)).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(c.failttl, want, "{input:?}");
    }
    assert_eq!(parse("cache").unwrap().failttl, S(5));
    let argerr = |after: &str| {
        format!(
            "plugin/cache: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after '{after}'"
        )
    };
    let bad: Vec<(&str, String)> = vec![
        ("servfail", argerr("servfail")),
        (
            "servfail 6m",
            "plugin/cache: caching SERVFAIL responses over 5 minutes is not permitted".into(),
        ),
        (
            "servfail 20",
            "plugin/cache: time: missing unit in duration \"20\"".into(),
        ),
        (
            "servfail -1s",
            "plugin/cache: invalid negative ttl for servfail".into(),
        ),
        (
            "servfail aa",
            "plugin/cache: time: invalid duration \"aa\"".into(),
        ),
        ("servfail 1m invalid", argerr("invalid")),
    ];
    for (input, want) in bad {
        assert_eq!(setup_err(&in_block(input)), want, "{input:?}");
    }
}

#[test]
fn disable() {
    let ok: &[(&str, &[&str], &[&str])] = &[
        (
            "disable denial example.com example.org",
            &["example.com.", "example.org."],
            &[],
        ),
        (
            "disable success example.com example.org",
            &[],
            &["example.com.", "example.org."],
        ),
        ("disable denial", &["."], &[]),
        ("disable success", &[], &["."]),
        (
            "disable denial example.com example.org\ndisable success example.com example.org",
            &["example.com.", "example.org."],
            &["example.com.", "example.org."],
        ),
    ];
    for &(input, nexcept, pexcept) in ok {
        let c = parse(&in_block(input)).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(c.nexcept, nexcept, "{input:?}");
        assert_eq!(c.pexcept, pexcept, "{input:?}");
    }
    assert_eq!(
        setup_err(&in_block("disable invalid example.com example.org")),
        "plugin/cache: cache type for disable must be \"success\" or \"denial\""
    );
}

#[test]
fn keepttl() {
    assert!(parse(&in_block("keepttl")).unwrap().keepttl);
    assert!(!parse("cache").unwrap().keepttl);
    assert_eq!(
        setup_err(&in_block("keepttl arg1")),
        "plugin/cache: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'arg1'"
    );
}

#[test]
fn prefetch_options() {
    let c = parse(&in_block("prefetch 3 2m 20%")).unwrap();
    assert_eq!((c.prefetch, c.duration, c.percentage), (3, S(120), 20));
    let c = parse("cache").unwrap();
    assert_eq!((c.prefetch, c.duration, c.percentage), (0, S(60), 10));
    let p = |s: &str| format!("plugin/cache: {s}");
    assert_eq!(
        setup_err(&in_block("prefetch 1 1m 10")),
        p("last character of percentage should be `%`, but is: '0'")
    );
    assert_eq!(
        setup_err(&in_block("prefetch 1 1m 5%")),
        p("percentage should fall in range [10, 90]: 5")
    );
    assert_eq!(
        setup_err(&in_block("prefetch -1")),
        p("prefetch amount should be positive: -1")
    );
    assert_eq!(
        setup_err(&in_block("prefetch")),
        "plugin/cache: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'prefetch'"
    );
    assert_eq!(
        setup_err(&in_block("success 10 10 -1")),
        p("cache min TTL can not be negative: -1")
    );
    assert_eq!(
        setup_err(&in_block("success 99999999999999999999")),
        p("strconv.Atoi: parsing \"99999999999999999999\": value out of range")
    );
}

#[test]
fn capacity_is_sharded() {
    use ferrodns_plugin_cache::store::Store;
    assert_eq!(Store::new(10000).capacity(), 9984);
    assert_eq!(Store::new(10).capacity(), 1024);
    assert_eq!(Store::new(0).capacity(), 1024);
    assert_eq!(Store::new(1_000_000).capacity(), 999_936);
}
