//! The message dump CoreDNS's debug helpers write, byte for byte.

use ferrodns_plugin_debug::hexdump;

#[test]
fn hexdump_matches_coredns() {
    // The example of CoreDNS's debug README: a 42-byte query.
    let data = [
        0x00, 0x0a, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x07, 0x65, 0x78,
        0x61, 0x6d, 0x70, 0x6c, 0x65, 0x05, 0x6c, 0x6f, 0x63, 0x61, 0x6c, 0x00, 0x00, 0x01, 0x00,
        0x01, 0x00, 0x00, 0x29, 0x10, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00,
    ];
    assert_eq!(
        hexdump(&data),
        "debug: 000000 00 0a 01 00 00 01 00 00 00 00 00 01 07 65 78 61\n\
         debug: 000010 6d 70 6c 65 05 6c 6f 63 61 6c 00 00 01 00 01 00\n\
         debug: 000020 00 29 10 00 00 00 80 00 00 00\n\
         debug: 00002a"
    );
    // An exact multiple of 16 ends with the length line only.
    assert_eq!(
        hexdump(&[0u8; 16]),
        "debug: 000000 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\ndebug: 000010"
    );
}
