//! DNSSEC records read from zone files (hickory-proto is built without its DNSSEC types here):
//! RRSIG, NSEC, DNSKEY/CDNSKEY and DS/CDS are turned into their wire data and kept as opaque
//! records, which is all serving them needs.

use ferrodns_plugin::proto::rr::{Name, RData, Record, RecordType};
use ferrodns_plugin::proto::serialize::binary::BinEncodable;

fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return Err(format!("bad base64 character '{}'", c as char)),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("bad hex".to_string());
    }
    Ok((0..s.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect())
}

fn rtype(s: &str) -> Result<u16, String> {
    let up = s.to_ascii_uppercase();
    if let Some(n) = up.strip_prefix("TYPE")
        && let Ok(code) = n.parse::<u16>()
    {
        return Ok(code);
    }
    match up.parse::<RecordType>() {
        Ok(RecordType::Unknown(_)) | Err(_) => Err(format!("bad type \"{s}\"")),
        Ok(t) => Ok(u16::from(t)),
    }
}

fn algorithm(s: &str) -> Result<u8, String> {
    if let Ok(n) = s.parse::<u8>() {
        return Ok(n);
    }
    Ok(match s.to_ascii_uppercase().as_str() {
        "RSAMD5" => 1,
        "DH" => 2,
        "DSA" => 3,
        "RSASHA1" => 5,
        "DSA-NSEC3-SHA1" => 6,
        "RSASHA1-NSEC3-SHA1" => 7,
        "RSASHA256" => 8,
        "RSASHA512" => 10,
        "ECC-GOST" => 12,
        "ECDSAP256SHA256" => 13,
        "ECDSAP384SHA384" => 14,
        "ED25519" => 15,
        "ED448" => 16,
        "INDIRECT" => 252,
        "PRIVATEDNS" => 253,
        "PRIVATEOID" => 254,
        _ => return Err(format!("bad algorithm \"{s}\"")),
    })
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// An RRSIG time: `YYYYMMDDHHmmSS` or seconds.
fn sig_time(s: &str) -> Result<u32, String> {
    let bad = || format!("bad time \"{s}\"");
    if s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()) {
        let n = |a: usize, b: usize| s[a..b].parse::<i64>().map_err(|_| bad());
        let days = days_from_civil(n(0, 4)?, n(4, 6)?, n(6, 8)?);
        let secs = days * 86400 + n(8, 10)? * 3600 + n(10, 12)? * 60 + n(12, 14)?;
        return Ok(secs.rem_euclid(1 << 32) as u32);
    }
    s.parse::<u32>().map_err(|_| bad())
}

fn name_bytes(s: &str, origin: &Name) -> Result<Vec<u8>, String> {
    let n = if s == "@" {
        origin.clone()
    } else {
        Name::parse(s, Some(origin)).map_err(|e| format!("bad name \"{s}\": {e}"))?
    };
    n.to_bytes().map_err(|e| e.to_string())
}

fn type_bitmap(types: &[u16]) -> Vec<u8> {
    let mut types = types.to_vec();
    types.sort_unstable();
    types.dedup();
    let mut out = Vec::new();
    let mut window: Option<(u8, [u8; 32], usize)> = None;
    let flush = |w: &mut Option<(u8, [u8; 32], usize)>, out: &mut Vec<u8>| {
        if let Some((num, bits, len)) = w.take() {
            out.push(num);
            out.push(len as u8);
            out.extend_from_slice(&bits[..len]);
        }
    };
    for t in types {
        let num = (t >> 8) as u8;
        let low = (t & 0xff) as usize;
        if window.as_ref().is_none_or(|w| w.0 != num) {
            flush(&mut window, &mut out);
            window = Some((num, [0; 32], 0));
        }
        if let Some(w) = window.as_mut() {
            w.1[low / 8] |= 0x80 >> (low % 8);
            w.2 = w.2.max(low / 8 + 1);
        }
    }
    flush(&mut window, &mut out);
    out
}

fn num<T: std::str::FromStr>(s: Option<&&str>, what: &str) -> Result<T, String> {
    s.and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("bad {what}"))
}

/// The wire data of a DNSSEC record from its text fields.
pub fn rdata(t: RecordType, f: &[&str], origin: &Name) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match t {
        RecordType::RRSIG => {
            if f.len() < 9 {
                return Err("RRSIG: too few fields".to_string());
            }
            out.extend_from_slice(&rtype(f[0])?.to_be_bytes());
            out.push(algorithm(f[1])?);
            out.push(num::<u8>(f.get(2), "labels")?);
            out.extend_from_slice(&num::<u32>(f.get(3), "original TTL")?.to_be_bytes());
            out.extend_from_slice(&sig_time(f[4])?.to_be_bytes());
            out.extend_from_slice(&sig_time(f[5])?.to_be_bytes());
            out.extend_from_slice(&num::<u16>(f.get(6), "key tag")?.to_be_bytes());
            out.extend(name_bytes(f[7], origin)?);
            out.extend(decode_base64(&f[8..].concat())?);
        }
        RecordType::NSEC => {
            let Some((next, types)) = f.split_first() else {
                return Err("NSEC: missing next name".to_string());
            };
            out.extend(name_bytes(next, origin)?);
            let codes: Result<Vec<u16>, String> = types.iter().map(|s| rtype(s)).collect();
            out.extend(type_bitmap(&codes?));
        }
        RecordType::DNSKEY | RecordType::CDNSKEY => {
            if f.len() < 4 {
                return Err("DNSKEY: too few fields".to_string());
            }
            out.extend_from_slice(&num::<u16>(f.first(), "flags")?.to_be_bytes());
            out.push(num::<u8>(f.get(1), "protocol")?);
            out.push(algorithm(f[2])?);
            out.extend(decode_base64(&f[3..].concat())?);
        }
        RecordType::DS | RecordType::CDS => {
            if f.len() < 4 {
                return Err("DS: too few fields".to_string());
            }
            out.extend_from_slice(&num::<u16>(f.first(), "key tag")?.to_be_bytes());
            out.push(algorithm(f[1])?);
            out.push(num::<u8>(f.get(2), "digest type")?);
            out.extend(decode_hex(&f[3..].concat())?);
        }
        other => return Err(format!("{other}: not a DNSSEC type")),
    }
    Ok(out)
}

/// The type an RRSIG record covers.
pub fn covered(r: &Record) -> Option<RecordType> {
    if r.record_type() != RecordType::RRSIG {
        return None;
    }
    match &r.data {
        RData::Unknown { rdata, .. } if rdata.anything.len() >= 2 => {
            Some(RecordType::from(u16::from_be_bytes([
                rdata.anything[0],
                rdata.anything[1],
            ])))
        }
        _ => None,
    }
}

/// The signatures among `sigs` that cover `t`.
pub fn covering(sigs: &[Record], t: RecordType) -> Vec<Record> {
    sigs.iter()
        .filter(|s| covered(s) == Some(t))
        .cloned()
        .collect()
}
