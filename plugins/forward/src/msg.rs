//! Reading upstream replies in wire form without decoding them: a structural walk that checks
//! the reply is well formed (as far as a forwarder must care), finds its question, TC bit and
//! full rcode, and builds the few messages forward makes itself (health probes, the empty TC
//! reply for an overflowing UDP answer).

use ferrodns_plugin::wire::HEADER_LEN;

/// The question of a request, in wire form, for matching replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name in uncompressed wire form, lowercased.
    pub name: Vec<u8>,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
}

/// What a structural walk found wrong with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The message ended before everything its counts promise (what miekg/dns reports as an
    /// overflow or a buffer too small).
    Overflow,
    /// Something else: a bad label type, a pointer loop, an overlong name.
    Bad,
}

/// The facts forward needs from a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyInfo {
    /// QR bit.
    pub response: bool,
    /// TC bit.
    pub truncated: bool,
    /// The rcode with the extended bits of an OPT record.
    pub rcode: u16,
    /// Number of answer records.
    pub answers: u16,
    /// The first question, when the reply has exactly one that parsed.
    pub question: Option<Question>,
    /// The question count as parsed.
    pub qdcount: usize,
}

/// Read a (possibly compressed) name at `pos` into lowercased uncompressed wire form. Returns
/// the offset after the name at its original position.
fn read_name(msg: &[u8], mut pos: usize, out: &mut Vec<u8>) -> Result<usize, Malformed> {
    let mut end: Option<usize> = None;
    let mut jumps = 0;
    out.clear();
    loop {
        let Some(&len) = msg.get(pos) else {
            return Err(Malformed::Overflow);
        };
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    out.push(0);
                    return Ok(end.unwrap_or(pos + 1));
                }
                let l = usize::from(len);
                let Some(label) = msg.get(pos + 1..pos + 1 + l) else {
                    return Err(Malformed::Overflow);
                };
                out.push(len);
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                if out.len() > 255 {
                    return Err(Malformed::Bad);
                }
                pos += 1 + l;
            }
            0xc0 => {
                let Some(&lo) = msg.get(pos + 1) else {
                    return Err(Malformed::Overflow);
                };
                if end.is_none() {
                    end = Some(pos + 2);
                }
                jumps += 1;
                if jumps > 126 {
                    return Err(Malformed::Bad);
                }
                pos = (usize::from(len & 0x3f) << 8) | usize::from(lo);
            }
            _ => return Err(Malformed::Bad),
        }
    }
}

/// Skip a name (following no pointers) and return the offset after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, Malformed> {
    let mut total = 0usize;
    loop {
        let Some(&len) = msg.get(pos) else {
            return Err(Malformed::Overflow);
        };
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok(pos + 1);
                }
                total += usize::from(len) + 1;
                if total > 255 {
                    return Err(Malformed::Bad);
                }
                pos += 1 + usize::from(len);
            }
            0xc0 => {
                if pos + 1 >= msg.len() {
                    return Err(Malformed::Overflow);
                }
                return Ok(pos + 2);
            }
            _ => return Err(Malformed::Bad),
        }
    }
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// Walk a reply as miekg/dns unpacks it (leniently: a message ending right after its header has
/// no sections). `Err` carries what was wrong and, for an overflow, the facts read so far (for
/// the empty TC reply).
pub fn inspect(msg: &[u8]) -> Result<ReplyInfo, (Malformed, Option<ReplyInfo>)> {
    let Some(h) = ferrodns_plugin::wire::WireHeader::read(msg) else {
        return Err((Malformed::Overflow, None));
    };
    let mut info = ReplyInfo {
        response: h.is_response(),
        truncated: h.flags & 0x0200 != 0,
        rcode: u16::from(h.rcode()),
        answers: 0,
        question: None,
        qdcount: 0,
    };
    let mut pos = HEADER_LEN;
    if pos == msg.len() {
        return Ok(info);
    }
    let mut name = Vec::with_capacity(64);
    let mut questions = Vec::new();
    for _ in 0..h.qdcount {
        let start = pos;
        pos = read_name(msg, pos, &mut name).map_err(|e| (e, Some(info.clone())))?;
        if pos == msg.len() {
            questions.push(Question {
                name: name.clone(),
                qtype: 0,
                qclass: 0,
            });
            break;
        }
        let (Some(qtype), Some(qclass)) = (u16_at(msg, pos), u16_at(msg, pos + 2)) else {
            return Err((Malformed::Overflow, Some(info)));
        };
        pos += 4;
        if pos == start {
            break;
        }
        questions.push(Question {
            name: name.clone(),
            qtype,
            qclass,
        });
    }
    info.qdcount = questions.len();
    if questions.len() == 1 {
        info.question = questions.pop();
    }
    let sections = [h.ancount, h.nscount, h.arcount];
    for (si, count) in sections.into_iter().enumerate() {
        for _ in 0..count {
            let rr_start = pos;
            let name_end = skip_name(msg, pos).map_err(|e| (e, Some(info.clone())))?;
            let Some(fixed) = msg.get(name_end..name_end + 10) else {
                return Err((Malformed::Overflow, Some(info)));
            };
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
            let end = name_end + 10 + rdlen;
            if end > msg.len() {
                return Err((Malformed::Overflow, Some(info)));
            }
            if si == 2 && rtype == 41 && msg[rr_start] == 0 {
                // Extended rcode: the high 8 bits live in the OPT record's TTL.
                info.rcode |= u16::from(fixed[4]) << 4;
            }
            if si == 0 {
                info.answers += 1;
            }
            pos = end;
        }
    }
    Ok(info)
}

/// The question of a request (its first), from its wire form.
pub fn question_of(msg: &[u8]) -> Option<Question> {
    let h = ferrodns_plugin::wire::WireHeader::read(msg)?;
    if h.qdcount == 0 {
        return None;
    }
    let mut name = Vec::with_capacity(64);
    let pos = read_name(msg, HEADER_LEN, &mut name).ok()?;
    Some(Question {
        name,
        qtype: u16_at(msg, pos)?,
        qclass: u16_at(msg, pos + 2)?,
    })
}

/// Whether a reply answers `q`, as CoreDNS's `request.Match`: a response with exactly one
/// question whose lowercased name, type and class equal the request's.
pub fn matches(info: &ReplyInfo, q: &Question) -> bool {
    info.response && info.qdcount == 1 && info.question.as_ref() == Some(q)
}

/// The empty TC reply CoreDNS makes of a UDP answer that overflowed the buffer: the header
/// (ID and flags as received, TC set), the question if it was read, and no records.
pub fn truncated_reply(msg: &[u8], info: Option<&ReplyInfo>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 64);
    out.extend_from_slice(&msg[..HEADER_LEN.min(msg.len())]);
    out.resize(HEADER_LEN, 0);
    out[2] |= 0x02;
    out[4..12].fill(0);
    if let Some(q) = info.and_then(|i| i.question.as_ref()) {
        out[5] = 1;
        // The original question's case is lost in `q`; copy it from the message instead, when
        // its name holds no compression pointer (which would point outside the new message).
        if let Ok(end) = skip_name(msg, HEADER_LEN)
            && let Some(rest) = msg.get(HEADER_LEN..end + 4)
            && uncompressed(msg, HEADER_LEN)
        {
            out.extend_from_slice(rest);
        } else {
            out.extend_from_slice(&q.name);
            out.extend_from_slice(&q.qtype.to_be_bytes());
            out.extend_from_slice(&q.qclass.to_be_bytes());
        }
    }
    out
}

/// Whether the name at `pos` ends with the root label rather than a compression pointer.
fn uncompressed(msg: &[u8], mut pos: usize) -> bool {
    while let Some(&len) = msg.get(pos) {
        match len {
            0 => return true,
            1..=63 => pos += 1 + usize::from(len),
            _ => return false,
        }
    }
    false
}

/// A `<domain> IN NS` query with a random ID and RD as given, for health checks.
pub fn probe_query(domain: &str, rd: bool) -> Vec<u8> {
    let id: u16 = rand::random();
    let mut out = Vec::with_capacity(HEADER_LEN + domain.len() + 6);
    out.extend_from_slice(&id.to_be_bytes());
    out.push(if rd { 0x01 } else { 0x00 });
    out.push(0);
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&name_to_wire(domain));
    out.extend_from_slice(&2u16.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out
}

/// A presentation-format name (fully qualified, `\.` and `\DDD` escapes understood) in wire
/// form; the root for anything that does not fit.
pub fn name_to_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    let mut label: Vec<u8> = Vec::new();
    let b = name.as_bytes();
    let mut i = 0;
    let flush = |label: &mut Vec<u8>, out: &mut Vec<u8>| {
        if !label.is_empty() && label.len() < 64 {
            out.push(label.len() as u8);
            out.append(label);
        }
        label.clear();
    };
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
                    let v = (u32::from(b[i + 1] - b'0')) * 100
                        + (u32::from(b[i + 2] - b'0')) * 10
                        + u32::from(b[i + 3] - b'0');
                    label.push(v.min(255) as u8);
                    i += 4;
                } else if let Some(&c) = b.get(i + 1) {
                    label.push(c);
                    i += 2;
                } else {
                    i += 1;
                }
            }
            b'.' => {
                flush(&mut label, &mut out);
                i += 1;
            }
            c => {
                label.push(c);
                i += 1;
            }
        }
    }
    flush(&mut label, &mut out);
    out.push(0);
    if out.len() > 255 {
        return vec![0];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(name: &[u8], flags: u16, an: u16, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34];
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&an.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(name);
        m.extend_from_slice(&[0, 1, 0, 1]);
        m.extend_from_slice(extra);
        m
    }

    #[test]
    fn walks_and_matches() {
        let a = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1];
        let m = reply(b"\x07Example\x03org\x00", 0x8180, 1, &a);
        let info = inspect(&m).expect("parses");
        assert_eq!(info.answers, 1);
        assert!(info.response);
        let q = question_of(&reply(b"\x07example\x03ORG\x00", 0x0100, 0, &[])).expect("q");
        assert!(matches(&info, &q));
        // Cut inside the answer: an overflow, and the TC reply keeps the question.
        let cut = &m[..m.len() - 2];
        let (e, partial) = inspect(cut).expect_err("overflow");
        assert_eq!(e, Malformed::Overflow);
        let tc = truncated_reply(cut, partial.as_ref());
        assert_eq!(tc[2] & 0x02, 0x02);
        assert_eq!(&tc[6..12], &[0, 0, 0, 0, 0, 0]);
        assert_eq!(&tc[12..], &m[12..29]);
        // A header alone is a reply without sections.
        assert_eq!(inspect(&m[..12]).expect("header only").qdcount, 0);
    }

    #[test]
    fn tc_reply_of_a_question_with_a_pointer_is_readable() {
        // Found by the forward_reply fuzz target: the question's name is a label, then a
        // pointer into the (cut) rest of the message. Copied as it was, the pointer would lead
        // past the end of the TC reply.
        let m = [
            0, 0, 0x81, 0x82, 0, 1, 0, 0, 22, 2, 110, 115, 1, 0, 0xc0, 20, 2, 104, 109, 0xc0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 3, 119, 119, 119, 7, 101,
        ];
        let info = match inspect(&m) {
            Ok(i) => Some(i),
            Err((_, i)) => i,
        };
        let tc = truncated_reply(&m, info.as_ref());
        let q = question_of(&tc).expect("the question reads back");
        assert_eq!(Some(&q), info.and_then(|i| i.question).as_ref());
    }

    #[test]
    fn names() {
        assert_eq!(name_to_wire("."), vec![0]);
        assert_eq!(
            name_to_wire("example.org."),
            b"\x07example\x03org\x00".to_vec()
        );
        assert_eq!(name_to_wire("a\\.b."), b"\x03a.b\x00".to_vec());
        let q = probe_query(".", true);
        assert_eq!(q.len(), 17);
        assert_eq!(q[2], 1);
    }

    #[test]
    fn bad_labels_and_loops() {
        let m = reply(b"\x80", 0x8180, 0, &[]);
        assert_eq!(inspect(&m).map_err(|e| e.0), Err(Malformed::Bad));
        let m = reply(b"\xc0\x0c", 0x8180, 0, &[]);
        assert_eq!(inspect(&m).map_err(|e| e.0), Err(Malformed::Bad));
    }
}
