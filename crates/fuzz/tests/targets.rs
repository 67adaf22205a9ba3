//! The targets reach what they are meant to fuzz: a plain query through the `wire` target is
//! answered by the chain, and an upstream reply through the `cache` target comes back to the
//! client. (A target that dropped everything early would fuzz nothing.)

fn query(name: &[u8], qtype: u16) -> Vec<u8> {
    let mut q = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

const WWW: &[u8] = b"\x03www\x07example\x03org\x00";

#[test]
fn wire_answers_from_the_template_over_udp_twice_and_tcp() {
    let replies = ferrodns_fuzz::serve_wire(&query(WWW, 1));
    assert_eq!(replies.len(), 3);
    for r in replies {
        let r = r.expect("a reply");
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(r[6..8], [0, 1], "one answer");
        assert!(r.windows(4).any(|w| w == [10, 0, 0, 1]), "{r:?}");
    }
}

#[test]
fn cache_hands_the_upstream_reply_back() {
    let mut reply = vec![0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    reply.extend_from_slice(WWW);
    reply.extend_from_slice(&[0, 1, 0, 1]);
    reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 192, 0, 2, 7]);
    let mut input = vec![0u8];
    input.extend_from_slice(&reply);
    let replies = ferrodns_fuzz::serve_cache(&input);
    assert_eq!(replies.len(), 3);
    for r in replies {
        let r = r.expect("a reply");
        assert_eq!(r[..2], [0x12, 0x34]);
        assert!(r.windows(4).any(|w| w == [192, 0, 2, 7]), "{r:?}");
    }
}
