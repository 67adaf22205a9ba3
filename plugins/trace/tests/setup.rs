//! The trace directive's syntax, defaults and errors, as CoreDNS v1.14.7 reports them.

use std::time::Duration;

use ferrodns_plugin_test as testkit;
use ferrodns_plugin_trace::{Config, DESCRIPTOR, EndpointType, parse, parse_bool, parse_float};

fn parsed(input: &str) -> Config {
    testkit::parse_with("trace", input, parse).unwrap_or_else(|e| panic!("{input}: {e}"))
}

#[test]
fn endpoints_and_defaults() {
    let c = parsed("trace");
    assert_eq!(c.endpoint_type, EndpointType::Zipkin);
    assert_eq!(c.endpoint, "http://localhost:9411/api/v2/spans");
    assert_eq!(c.service_name, "coredns");
    assert_eq!(c.every, 1);
    assert!(!c.client_server);
    assert_eq!(c.service_endpoint, "");
    assert_eq!(c.zipkin_max_batch_size, 0);
    assert_eq!(c.zipkin_max_backlog_size, 0);
    assert_eq!(c.zipkin_max_batch_interval, Duration::ZERO);

    let table = [
        (
            "trace localhost:1234",
            EndpointType::Zipkin,
            "http://localhost:1234/api/v2/spans",
        ),
        (
            "trace zipkin localhost:1234",
            EndpointType::Zipkin,
            "http://localhost:1234/api/v2/spans",
        ),
        (
            "trace ZIPKIN tracer:9411",
            EndpointType::Zipkin,
            "http://tracer:9411/api/v2/spans",
        ),
        (
            "trace http://x:9411/zipkin/api/v2/spans",
            EndpointType::Zipkin,
            "http://x:9411/zipkin/api/v2/spans",
        ),
        // Any text holding "http" is taken as a URL, as upstream does.
        (
            "trace zipkin myhttphost:1",
            EndpointType::Zipkin,
            "myhttphost:1",
        ),
        (
            "trace datadog localhost",
            EndpointType::Datadog,
            "localhost",
        ),
        (
            "trace DataDog agent:8126",
            EndpointType::Datadog,
            "agent:8126",
        ),
        // The last line of the block wins.
        (
            "trace datadog a:1\ntrace b:2",
            EndpointType::Zipkin,
            "http://b:2/api/v2/spans",
        ),
    ];
    for (input, ty, ep) in table {
        let c = parsed(input);
        assert_eq!((c.endpoint_type, c.endpoint.as_str()), (ty, ep), "{input}");
    }
}

#[test]
fn options() {
    let c = parsed(
        "trace datadog localhost:8126 {\n every 100\n service dnsproxy\n client_server\n datadog_analytics_rate 0.5\n zipkin_max_backlog_size 10\n zipkin_max_batch_size 5\n zipkin_max_batch_interval 10s\n}",
    );
    assert_eq!(c.every, 100);
    assert_eq!(c.service_name, "dnsproxy");
    assert!(c.client_server);
    assert_eq!(c.datadog_analytics_rate, 0.5);
    assert_eq!(c.zipkin_max_backlog_size, 10);
    assert_eq!(c.zipkin_max_batch_size, 5);
    assert_eq!(c.zipkin_max_batch_interval, Duration::from_secs(10));

    assert!(!parsed("trace {\n client_server false\n}").client_server);
    assert!(parsed("trace {\n client_server T\n}").client_server);
    assert_eq!(parsed("trace {\n every 0\n}").every, 0);
    assert_eq!(
        parsed("trace {\n datadog_analytics_rate\n}").datadog_analytics_rate,
        0.0
    );
    assert!(
        parsed("trace {\n datadog_analytics_rate NaN\n}")
            .datadog_analytics_rate
            .is_nan()
    );
}

#[test]
fn service_endpoint_from_bind() {
    let mut block = testkit::block(&["example.org."]);
    block.listen_hosts = vec!["127.0.0.1".into()];
    let c = testkit::parse_in(&mut block, "trace", "trace", parse).expect("parse");
    assert_eq!(c.service_endpoint, "127.0.0.1:53");
    block.listen_hosts = vec!["::1".into()];
    let c = testkit::parse_in(&mut block, "trace", "trace", parse).expect("parse");
    assert_eq!(c.service_endpoint, "[::1]:53");
}

#[test]
fn errors() {
    let bad = [
        (
            "trace foo bar",
            "plugin/trace: tracing endpoint type 'foo' is not supported",
        ),
        (
            "trace a b c",
            "plugin/trace: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'c'",
        ),
        (
            "trace {\n every x\n}",
            "plugin/trace: strconv.ParseUint: parsing \"x\": invalid syntax",
        ),
        (
            "trace {\n every -1\n}",
            "plugin/trace: strconv.ParseUint: parsing \"-1\": invalid syntax",
        ),
        (
            "trace {\n every\n}",
            "plugin/trace: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'every'",
        ),
        (
            "trace {\n service\n}",
            "plugin/trace: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'service'",
        ),
        (
            "trace {\n service a b\n}",
            "plugin/trace: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'b'",
        ),
        (
            "trace {\n client_server maybe\n}",
            "plugin/trace: strconv.ParseBool: parsing \"maybe\": invalid syntax",
        ),
        (
            "trace {\n client_server a b\n}",
            "plugin/trace: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'b'",
        ),
        (
            "trace {\n datadog_analytics_rate 2\n}",
            "plugin/trace: datadog analytics rate must be between 0 and 1, '2.000000' is not supported",
        ),
        (
            "trace {\n datadog_analytics_rate -inf\n}",
            "plugin/trace: datadog analytics rate must be between 0 and 1, '-Inf' is not supported",
        ),
        (
            "trace {\n datadog_analytics_rate x\n}",
            "plugin/trace: strconv.ParseFloat: parsing \"x\": invalid syntax",
        ),
        (
            "trace {\n datadog_analytics_rate 1e400\n}",
            "plugin/trace: strconv.ParseFloat: parsing \"1e400\": value out of range",
        ),
        (
            "trace {\n datadog_analytics_rate 1 2\n}",
            "plugin/trace: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after '2'",
        ),
        (
            "trace {\n zipkin_max_backlog_size\n}",
            "plugin/trace: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'zipkin_max_backlog_size'",
        ),
        (
            "trace {\n zipkin_max_backlog_size x\n}",
            "plugin/trace: strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        (
            "trace {\n zipkin_max_batch_size x\n}",
            "plugin/trace: strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        (
            "trace {\n zipkin_max_batch_interval 5\n}",
            "plugin/trace: time: missing unit in duration \"5\"",
        ),
        (
            "trace {\n zipkin_max_batch_interval\n}",
            "plugin/trace: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'zipkin_max_batch_interval'",
        ),
        (
            "trace {\n foo\n}",
            "plugin/trace: Testfile:3 - Error during parsing: unknown property 'foo'",
        ),
    ];
    for (input, want) in bad {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

#[test]
fn setup_adds_the_handler() {
    let block = testkit::setup(&DESCRIPTOR, "trace {\n every 2\n}").expect("setup");
    assert_eq!(block.plugins.len(), 1);
    assert_eq!(block.plugins[0].name(), "trace");
    assert!(!block.plugins[0].fast_transparent());
    let block = testkit::setup(&DESCRIPTOR, "trace {\n every 0\n}").expect("setup");
    assert!(block.plugins[0].fast_transparent());
}

#[test]
fn go_number_parsers() {
    for t in ["1", "t", "T", "TRUE", "true", "True"] {
        assert_eq!(parse_bool(t), Ok(true), "{t}");
    }
    for f in ["0", "f", "F", "FALSE", "false", "False"] {
        assert_eq!(parse_bool(f), Ok(false), "{f}");
    }
    assert!(parse_bool("yes").is_err());
    assert_eq!(parse_float("0.25"), Ok(0.25));
    assert_eq!(parse_float("+1"), Ok(1.0));
    assert_eq!(parse_float(".5"), Ok(0.5));
    assert_eq!(parse_float("1e-1"), Ok(0.1));
    assert_eq!(parse_float("Inf"), Ok(f64::INFINITY));
    assert!(parse_float("1_0").is_err());
    assert!(parse_float(" 1").is_err());
}
