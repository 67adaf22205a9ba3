//! The builtin functions, and the parts of Go's `fmt` they print with.

use std::fmt::Write as _;

use super::Value;
use crate::strconv;

fn want(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Uint(u) => i64::try_from(*u).ok(),
        _ => None,
    }
}

/// Call builtin `name`.
pub(super) fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    match name {
        "not" => {
            want(name, &args, 1)?;
            Ok(Value::Bool(!args[0].truth()))
        }
        "len" => {
            want(name, &args, 1)?;
            let n = match &args[0] {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                other => {
                    return Err(format!(
                        "error calling len: len of type {}",
                        other.type_name()
                    ));
                }
            };
            Ok(Value::Int(n as i64))
        }
        "index" => {
            if args.is_empty() {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            }
            let mut cur = args[0].clone();
            for ix in &args[1..] {
                cur = match &cur {
                    Value::List(l) => {
                        let i = as_int(ix).ok_or_else(|| {
                            format!(
                                "error calling index: cannot index slice/array with type {}",
                                ix.type_name()
                            )
                        })?;
                        if i < 0 || i as usize >= l.len() {
                            return Err(format!("error calling index: index out of range: {i}"));
                        }
                        l[i as usize].clone()
                    }
                    Value::Str(s) => {
                        let i = as_int(ix).ok_or_else(|| {
                            format!(
                                "error calling index: cannot index slice/array with type {}",
                                ix.type_name()
                            )
                        })?;
                        if i < 0 || i as usize >= s.len() {
                            return Err(format!("error calling index: index out of range: {i}"));
                        }
                        Value::Uint(u64::from(s.as_bytes()[i as usize]))
                    }
                    Value::Map(m) => match ix {
                        Value::Str(k) => m.get(k).cloned().unwrap_or(Value::Str(String::new())),
                        other => {
                            return Err(format!(
                                "error calling index: value has type {}; should be string",
                                other.type_name()
                            ));
                        }
                    },
                    Value::Nil | Value::Invalid => {
                        return Err("error calling index: index of untyped nil".into());
                    }
                    other => {
                        return Err(format!(
                            "error calling index: can't index item of type {}",
                            other.type_name()
                        ));
                    }
                };
            }
            Ok(cur)
        }
        "slice" => {
            if args.is_empty() {
                return Err("wrong number of args for slice: want at least 1 got 0".into());
            }
            let idx: Vec<i64> = args[1..]
                .iter()
                .map(|v| {
                    as_int(v).ok_or_else(|| {
                        "error calling slice: cannot index slice/array with nil".to_string()
                    })
                })
                .collect::<Result<_, _>>()?;
            match &args[0] {
                Value::Str(s) => {
                    if idx.len() > 2 {
                        return Err(
                            "error calling slice: cannot 3-index slice a string".to_string()
                        );
                    }
                    let lo = idx.first().copied().unwrap_or(0);
                    let hi = idx.get(1).copied().unwrap_or(s.len() as i64);
                    if lo < 0 || hi < lo || hi as usize > s.len() {
                        return Err(format!("error calling slice: index out of range: {hi}"));
                    }
                    Ok(Value::Str(
                        String::from_utf8_lossy(&s.as_bytes()[lo as usize..hi as usize])
                            .into_owned(),
                    ))
                }
                Value::List(l) => {
                    let lo = idx.first().copied().unwrap_or(0);
                    let hi = idx.get(1).copied().unwrap_or(l.len() as i64);
                    if lo < 0 || hi < lo || hi as usize > l.len() {
                        return Err(format!("error calling slice: index out of range: {hi}"));
                    }
                    Ok(Value::List(l[lo as usize..hi as usize].to_vec()))
                }
                other => Err(format!(
                    "error calling slice: can't slice item of type {}",
                    other.type_name()
                )),
            }
        }
        "print" => Ok(Value::Str(go_sprint(&args))),
        "println" => {
            let parts: Vec<String> = args.iter().map(Value::display).collect();
            Ok(Value::Str(format!("{}\n", parts.join(" "))))
        }
        "printf" => {
            if args.is_empty() {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            }
            let Value::Str(f) = &args[0] else {
                return Err(format!(
                    "wrong type for value; expected string; got {}",
                    args[0].type_name()
                ));
            };
            Ok(Value::Str(sprintf(f, &args[1..])))
        }
        "eq" => {
            if args.len() < 2 {
                return Err("error calling eq: missing argument for comparison".to_string());
            }
            for b in &args[1..] {
                if compare(&args[0], b).map_err(|e| format!("error calling eq: {e}"))?
                    == std::cmp::Ordering::Equal
                {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(name, &args, 2)?;
            let o =
                compare(&args[0], &args[1]).map_err(|e| format!("error calling {name}: {e}"))?;
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        "html" => Ok(Value::Str(html_escape(&go_sprint(&args)))),
        "js" => Ok(Value::Str(js_escape(&go_sprint(&args)))),
        "urlquery" => Ok(Value::Str(query_escape(&go_sprint(&args)))),
        "parseInt" => {
            want(name, &args, 3)?;
            let Value::Str(s) = &args[0] else {
                return Err(format!(
                    "wrong type for value; expected string; got {}",
                    args[0].type_name()
                ));
            };
            let base = as_int(&args[1]).ok_or_else(|| {
                format!(
                    "wrong type for value; expected int; got {}",
                    args[1].type_name()
                )
            })?;
            let bits = as_int(&args[2]).ok_or_else(|| {
                format!(
                    "wrong type for value; expected int; got {}",
                    args[2].type_name()
                )
            })?;
            strconv::parse_uint(s, base, bits)
                .map(Value::Uint)
                .map_err(|e| format!("error calling parseInt: {e}"))
        }
        other => Err(format!("function \"{other}\" not defined")),
    }
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Uint(x), Value::Uint(y)) => Ok(x.cmp(y)),
        (Value::Int(x), Value::Uint(y)) => Ok(if *x < 0 {
            std::cmp::Ordering::Less
        } else {
            (*x as u64).cmp(y)
        }),
        (Value::Uint(x), Value::Int(y)) => Ok(if *y < 0 {
            std::cmp::Ordering::Greater
        } else {
            x.cmp(&(*y as u64))
        }),
        (Value::Float(x), Value::Float(y)) => x
            .partial_cmp(y)
            .ok_or_else(|| "incompatible types for comparison".into()),
        _ => Err("incompatible types for comparison".into()),
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither side is a string.
fn go_sprint(args: &[Value]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            s.push(' ');
        }
        s.push_str(&a.display());
    }
    s
}

/// Go's `fmt.Sprintf` for the common verbs.
fn sprintf(f: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut it = f.chars().peekable();
    let mut n = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&x) = it.peek() {
            if "+-# 0".contains(x) {
                flags.push(x);
                it.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&x) = it.peek() {
            if x.is_ascii_digit() {
                width.push(x);
                it.next();
            } else {
                break;
            }
        }
        let mut prec: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = String::new();
            while let Some(&x) = it.peek() {
                if x.is_ascii_digit() {
                    p.push(x);
                    it.next();
                } else {
                    break;
                }
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(a) = args.get(n) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        n += 1;
        let body = match (verb, a) {
            ('d', Value::Int(i)) => i.to_string(),
            ('d', Value::Uint(u)) => u.to_string(),
            ('x', Value::Int(i)) => format!("{i:x}"),
            ('x', Value::Uint(u)) => format!("{u:x}"),
            ('X', Value::Int(i)) => format!("{i:X}"),
            ('X', Value::Uint(u)) => format!("{u:X}"),
            ('o', Value::Int(i)) => format!("{i:o}"),
            ('o', Value::Uint(u)) => format!("{u:o}"),
            ('b', Value::Int(i)) => format!("{i:b}"),
            ('b', Value::Uint(u)) => format!("{u:b}"),
            ('c', Value::Int(i)) => char::from_u32(*i as u32)
                .map(String::from)
                .unwrap_or_default(),
            ('c', Value::Uint(u)) => char::from_u32(*u as u32)
                .map(String::from)
                .unwrap_or_default(),
            ('x', Value::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', Value::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
            ('q', Value::Str(s)) => strconv::quote(s),
            ('s' | 'v', v) => {
                let s = v.display();
                match prec {
                    Some(p) if verb == 's' => s.chars().take(p).collect(),
                    _ => s,
                }
            }
            ('t', Value::Bool(b)) => b.to_string(),
            ('f' | 'F', Value::Float(x)) => format!("{:.*}", prec.unwrap_or(6), x),
            ('f' | 'F', Value::Int(x)) => format!("%!f(int={x})"),
            (v, other) => format!("%!{v}({}={})", other.type_name(), other.display()),
        };
        let w: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len < w {
            let pad = w - len;
            if flags.contains('-') {
                out.push_str(&body);
                out.push_str(&" ".repeat(pad));
            } else if flags.contains('0') && matches!(verb, 'd' | 'x' | 'X' | 'o' | 'b' | 'f') {
                if let Some(rest) = body.strip_prefix('-') {
                    out.push('-');
                    out.push_str(&"0".repeat(pad));
                    out.push_str(rest);
                } else {
                    out.push_str(&"0".repeat(pad));
                    out.push_str(&body);
                }
            } else {
                out.push_str(&" ".repeat(pad));
                out.push_str(&body);
            }
        } else {
            out.push_str(&body);
        }
    }
    if n < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[n..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.display()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '"' => o.push_str("&#34;"),
            '\'' => o.push_str("&#39;"),
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\0' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

fn js_escape(s: &str) -> String {
    let mut o = String::new();
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\'' => o.push_str("\\'"),
            '"' => o.push_str("\\\""),
            '<' => o.push_str("\\u003C"),
            '>' => o.push_str("\\u003E"),
            '&' => o.push_str("\\u0026"),
            '=' => o.push_str("\\u003D"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

fn query_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            b' ' => o.push('+'),
            _ => {
                let _ = write!(o, "%{b:02X}");
            }
        }
    }
    o
}
