//! Environment variable substitution inside tokens (`{%NAME%}` and `{$NAME}`).

/// Upper bound on replacement rounds per syntax and token. CoreDNS has no
/// bound and hangs forever when a value refers to itself (`X='{$X}'`); we stop
/// substituting instead.
const MAX_ROUNDS: usize = 1000;
/// Upper bound on the length of a substituted token (bytes).
const MAX_LEN: usize = 1 << 20;

/// Replaces environment references in `s`: first every `{%NAME%}`, then every
/// `{$NAME}`. Unset variables become the empty string.
///
/// The algorithm follows CoreDNS exactly: it repeatedly takes the first
/// start marker, finds the next end marker after it, and replaces *all*
/// occurrences of that complete reference in the whole string (so a value may
/// itself contain references, which are then expanded too). A reference with
/// an empty name (`{$}`, `{%%}`) stops the substitution of that syntax; a
/// start marker without an end marker is left alone.
pub fn replace_env_vars(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let once = replace_references(s, "{%", "%}", env);
    replace_references(&once, "{$", "}", env)
}

fn replace_references(
    s: &str,
    start: &str,
    end: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut s = s.to_owned();
    let mut rounds = 0;
    while let Some(begin) = s.find(start) {
        let Some(rel_end) = s[begin..].find(end) else {
            break;
        };
        let end_at = begin + rel_end;
        if end_at <= begin + start.len() {
            // empty variable name: stop here, leave the rest untouched
            break;
        }
        let reference = s[begin..end_at + end.len()].to_owned();
        let name = &reference[start.len()..reference.len() - end.len()];
        let value = env(name).unwrap_or_default();
        s = s.replace(&reference, &value);
        rounds += 1;
        if rounds >= MAX_ROUNDS || s.len() > MAX_LEN {
            break;
        }
    }
    s
}

/// Environment lookup backed by the process environment.
pub(crate) fn process_env_lookup(name: &str) -> Option<String> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return None;
    }
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}
