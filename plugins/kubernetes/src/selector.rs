//! Checking a label selector (`labels`, `namespace_labels`) at setup, so that a typo stops the
//! server at startup as in CoreDNS instead of failing every list call later. The selector text
//! itself is passed to the API server, which applies it.
//!
//! Grammar (Kubernetes' set-based selectors, as `metav1.ParseToLabelSelector` accepts them):
//! requirements separated by commas, each `key`, `!key`, `key=value`, `key==value`,
//! `key!=value`, `key in (v1, v2)` or `key notin (v1, v2)`.

/// Why a selector is refused, in `metav1.ParseToLabelSelector`'s words: a syntax error, or an
/// operator a LabelSelector cannot hold (`!=`, `>`, `<`).
pub fn validate(sel: &str) -> Result<(), String> {
    match parse(sel) {
        Ok(ops) => {
            for op in ops {
                match op {
                    "!=" => return Err("\"!=\" is not a valid label selector operator".into()),
                    ">" => return Err("\"gt\" isn't supported in label selectors".into()),
                    "<" => return Err("\"lt\" isn't supported in label selectors".into()),
                    _ => {}
                }
            }
            Ok(())
        }
        Err(e) => Err(format!("couldn't parse the selector string \"{sel}\": {e}")),
    }
}

/// Parse; the operators used.
fn parse(sel: &str) -> Result<Vec<&'static str>, String> {
    let mut ops = Vec::new();
    let mut rest = sel.trim();
    if rest.is_empty() {
        return Ok(ops);
    }
    loop {
        let (r, op) = requirement(rest)?;
        ops.extend(op);
        rest = r.trim_start();
        if rest.is_empty() {
            return Ok(ops);
        }
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start(),
            None => {
                return Err(format!(
                    "found '{}', expected: ',' or 'end of string'",
                    token(rest)
                ));
            }
        }
    }
}

fn token(s: &str) -> &str {
    let end = s
        .find(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .unwrap_or(s.len())
        .max(1.min(s.len()));
    &s[..end]
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn ident(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_key_char(c)).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253)
    {
        return Err(format!(
            "invalid label key \"{key}\": prefix part must be non-empty"
        ));
    }
    check_name(name).map_err(|e| format!("invalid label key \"{key}\": {e}"))
}

fn check_name(name: &str) -> Result<(), String> {
    let ok_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty()
        || name.len() > 63
        || !ok_edge(name.chars().next())
        || !ok_edge(name.chars().last())
        || name.contains('/')
    {
        return Err(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    check_name(v).map_err(|e| format!("invalid label value: \"{v}\": {e}"))
}

fn requirement(s: &str) -> Result<(&str, Option<&'static str>), String> {
    let (negated, s) = match s.strip_prefix('!') {
        Some(r) => (true, r.trim_start()),
        None => (false, s),
    };
    let (key, rest) = ident(s);
    if key.is_empty() {
        return Err(format!("found '{}', expected: identifier", token(s)));
    }
    check_key(key)?;
    let rest_t = rest.trim_start();
    if negated || rest_t.is_empty() || rest_t.starts_with(',') {
        return Ok((rest_t, None));
    }
    for op in ["==", "!=", "=", ">", "<"] {
        if let Some(r) = rest_t.strip_prefix(op) {
            let r = r.trim_start();
            let (value, after) = ident(r);
            check_value(value)?;
            return Ok((after, Some(op)));
        }
    }
    let (word, after) = ident(rest_t);
    match word {
        "in" | "notin" => {
            let after = after.trim_start();
            let Some(mut r) = after.strip_prefix('(') else {
                return Err(format!("found '{}', expected: '('", token(after)));
            };
            loop {
                r = r.trim_start();
                let (value, a) = ident(r);
                check_value(value)?;
                let a = a.trim_start();
                if let Some(a) = a.strip_prefix(')') {
                    return Ok((a, None));
                }
                match a.strip_prefix(',') {
                    Some(a) => r = a,
                    None => return Err(format!("found '{}', expected: ',' or ')'", token(a))),
                }
            }
        }
        _ => Err(format!(
            "found '{}', expected: in, notin, =, ==, !=, gt, lt",
            token(rest_t)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn selectors_kubernetes_accepts() {
        for s in [
            "app=web",
            "app==web, tier=db",
            "environment in (production, qa)",
            "tier notin (frontend,backend),!canary",
            "example.com/owner",
            "a=",
        ] {
            assert_eq!(validate(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn selectors_kubernetes_rejects() {
        for s in [
            "app=web web",
            "in (",
            "app in web",
            "=x",
            "-bad=1",
            "app=web,",
        ] {
            assert!(validate(s).is_err(), "{s}");
        }
    }
}
