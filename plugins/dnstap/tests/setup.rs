//! The dnstap directive's syntax and errors, as CoreDNS v1.14.7 reports them.

use ferrodns_plugin::Shared;
use ferrodns_plugin_dnstap::io::{Endpoint, ListenTls, Transport};
use ferrodns_plugin_dnstap::{BlockTaps, Config, DESCRIPTOR, default_version, hostname, parse};
use ferrodns_plugin_test as testkit;

fn parsed(input: &str) -> Vec<Config> {
    testkit::parse_with("dnstap", input, parse).unwrap_or_else(|e| panic!("{input}: {e}"))
}

fn ep(transport: Transport, address: &str) -> Endpoint {
    Endpoint {
        transport,
        address: address.to_string(),
    }
}

#[test]
fn endpoints_and_arguments() {
    let c = &parsed("dnstap /tmp/dnstap.sock")[0];
    assert_eq!(c.endpoint, ep(Transport::Unix, "/tmp/dnstap.sock"));
    assert!(!c.full && !c.listen);
    assert_eq!((c.write_buffer, c.queue), (1, 1));
    assert_eq!(c.identity, hostname().into_bytes());
    assert_eq!(c.version, default_version().into_bytes());
    assert!(c.extra.is_empty());

    let c = &parsed("dnstap unix:///tmp/dnstap.sock full")[0];
    assert_eq!(c.endpoint, ep(Transport::Unix, "/tmp/dnstap.sock"));
    assert!(c.full);

    let c = &parsed("dnstap tcp://127.0.0.1:6000 full 1024 2048")[0];
    assert_eq!(c.endpoint, ep(Transport::Tcp, "127.0.0.1:6000"));
    assert_eq!((c.write_buffer, c.queue), (1024, 2048));

    let c = &parsed("dnstap tls://[::1]:6000/path notfull 3")[0];
    assert_eq!(c.endpoint, ep(Transport::Tls, "[::1]:6000"));
    assert!(!c.full);
    assert_eq!(c.write_buffer, 3);

    // Arguments past the queue are ignored, as upstream does.
    assert_eq!(parsed("dnstap /x full 1 2 3")[0].queue, 2);

    let c = &parsed(
        "dnstap /tmp/a.sock full {\n identity my-id\n version MyVer-1\n extra \"{type} {name}\"\n skipverify\n}",
    )[0];
    assert_eq!(c.identity, b"my-id");
    assert_eq!(c.version, b"MyVer-1");
    assert_eq!(c.extra, "{type} {name}");
    assert!(c.skip_verify);

    let c = &parsed("dnstap listen tls://127.0.0.1:6001 full {\n tls c.pem k.pem ca.pem\n}")[0];
    assert!(c.listen && c.full);
    assert_eq!(c.endpoint, ep(Transport::Tls, "127.0.0.1:6001"));
    assert_eq!(
        c.tls,
        Some(ListenTls {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            ca: Some("ca.pem".into())
        })
    );

    let all = parsed("dnstap /tmp/a.sock full\ndnstap tcp://127.0.0.1:6000");
    assert_eq!(all.len(), 2);
    assert!(all[0].full && !all[1].full);
}

#[test]
fn setup_errors() {
    let bad = [
        (
            "dnstap",
            "plugin/dnstap: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'dnstap'",
        ),
        (
            "dnstap listen",
            "plugin/dnstap: Testfile:2 - Error during parsing: dnstap listen requires an endpoint argument",
        ),
        (
            "dnstap /x full 0",
            "plugin/dnstap: Testfile:2 - Error during parsing: dnstap: MultipleTcpWriteBuf must be between 1 and 1024 (MiB units): 0",
        ),
        (
            "dnstap /x full abc",
            "plugin/dnstap: Testfile:2 - Error during parsing: dnstap: invalid MultipleTcpWriteBuf \"abc\": strconv.Atoi: parsing \"abc\": invalid syntax",
        ),
        (
            "dnstap /x full 1 5000",
            "plugin/dnstap: Testfile:2 - Error during parsing: dnstap: MultipleQueue must be between 1 and 4096 (x10k messages): 5000",
        ),
        (
            "dnstap /x full 1 q",
            "plugin/dnstap: Testfile:2 - Error during parsing: dnstap: invalid MultipleQueue \"q\": strconv.Atoi: parsing \"q\": invalid syntax",
        ),
        (
            "dnstap tcp://[::1",
            "plugin/dnstap: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'tcp://[::1'",
        ),
        (
            "dnstap /x {\n message_types FOO\n}",
            "plugin/dnstap: Testfile:3 - Error during parsing: unknown property 'message_types'",
        ),
        (
            "dnstap /x {\n identity\n}",
            "plugin/dnstap: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'identity'",
        ),
        (
            "dnstap /x {\n tls a b\n}",
            "plugin/dnstap: Testfile:3 - Error during parsing: tls directive only valid for listeners",
        ),
        (
            "dnstap listen /x {\n tls a\n}",
            "plugin/dnstap: Testfile:3 - Error during parsing: tls requires cert and key file paths",
        ),
    ];
    for (input, want) in bad {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), want, "{input}");
    }
}

#[test]
fn leaves_taps_for_later_plugins() {
    let shared = Shared::default();
    let block = testkit::setup_with(
        &DESCRIPTOR,
        "dnstap /tmp/a.sock full\ndnstap /tmp/b.sock",
        &shared,
    )
    .expect("setup");
    assert_eq!(block.plugins.len(), 1);
    assert_eq!(block.plugins[0].name(), "dnstap");
    let taps = block
        .state
        .get(&std::any::TypeId::of::<BlockTaps>())
        .and_then(|s| s.clone().downcast::<BlockTaps>().ok())
        .expect("taps left in the block");
    assert_eq!(taps.0.len(), 2);
    assert!(taps.0[0].full() && !taps.0[1].full());
    assert_eq!(shared.lifecycles().len(), 1);
}
