//! The bufsize directive's syntax and errors, as CoreDNS v1.14.7 reports them.

use ferrodns_plugin::proto::op::ResponseCode;
use ferrodns_plugin::proto::rr::RecordType;
use ferrodns_plugin_bufsize::DESCRIPTOR;
use ferrodns_plugin_test::{self as testkit, Fixed};

#[tokio::test]
async fn sizes_accepted() {
    let ok = [
        ("bufsize", 1232),
        ("bufsize 512", 512),
        ("bufsize 4096", 4096),
        ("bufsize 1100", 1100),
        ("bufsize +1500", 1500),
        // Only the first line is read, and a block is not an argument.
        ("bufsize 1500\nbufsize 9999 x", 1500),
        ("bufsize {\n}", 1232),
    ];
    for (input, size) in ok {
        let block = testkit::setup(&DESCRIPTOR, input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(block.plugins.len(), 1, "{input}");
        assert_eq!(block.plugins[0].name(), "bufsize");
        // The fast path skips the handler and applies the block's cap instead.
        assert!(block.plugins[0].fast_transparent());
        assert_eq!(block.udp_size_cap, Some(size), "{input}");
        // The size it caps a 4096-byte request at.
        let mut req = testkit::request_edns("example.org.", RecordType::A, 4096, false);
        let chain = vec![
            block.plugins[0].clone(),
            Fixed::rcode(ResponseCode::NoError),
        ];
        testkit::run(&chain, &mut req).await.expect("served");
        let got = req.message().edns.as_ref().map(|e| e.max_payload());
        assert_eq!(got, Some(size), "{input}");
    }
}

#[test]
fn sizes_rejected() {
    let prefix = "plugin/bufsize: plugin/bufsize: Testfile:2 - Error during parsing: ";
    let bad = [
        (
            "bufsize 511",
            "Wrong argument count or unexpected line ending after '511'",
        ),
        (
            "bufsize 4097",
            "Wrong argument count or unexpected line ending after '4097'",
        ),
        (
            "bufsize -1",
            "Wrong argument count or unexpected line ending after '-1'",
        ),
        (
            "bufsize abc",
            "Wrong argument count or unexpected line ending after 'abc'",
        ),
        (
            "bufsize 1232 1232",
            "Wrong argument count or unexpected line ending after '1232'",
        ),
        (
            "bufsize 0x400",
            "Wrong argument count or unexpected line ending after '0x400'",
        ),
    ];
    for (input, want) in bad {
        let err = testkit::setup(&DESCRIPTOR, input).expect_err(input);
        assert_eq!(err.to_string(), format!("{prefix}{want}"), "{input}");
    }
}
