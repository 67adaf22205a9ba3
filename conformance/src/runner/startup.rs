//! How both servers started: the banners, or the error texts and where they point, compared.

use regex::Regex;

use super::side::Side;
use crate::case::{Case, ErrorMatch, Startup};
use crate::compare::{self, REF, SUT};
use crate::process::Started;

/// Compare how both started; true when both are serving.
pub(super) fn startup(case: &Case, a: &Side, b: &Side, d: &mut Vec<String>) -> bool {
    match (&a.started, &b.started) {
        (Started::Ready { banner: ba }, Started::Ready { banner: bb }) => {
            if case.startup == Startup::Reject {
                d.push(
                    "startup: the case expects both to reject the Corefile; both accepted it"
                        .into(),
                );
            }
            let banner = |side: &Side, lines: &[String]| -> Vec<String> {
                lines
                    .iter()
                    .filter(|l| !is_go_noise(l) && !is_sync_progress(l))
                    .map(|l| side.normalize(l))
                    .collect()
            };
            // CoreDNS prints its servers in Go map order (random), so lines are compared as a
            // multiset: sorted (see DIFFERENCES.md).
            let (mut na, mut nb) = (banner(a, ba), banner(b, bb));
            if same_text_differs(case, a, b) {
                for l in na.iter_mut().chain(nb.iter_mut()) {
                    *l = reload_hash(l);
                }
            }
            na.sort();
            nb.sort();
            let diff = compare::lines(&na, &nb);
            if !diff.is_empty() {
                d.push(format!("startup banner differs (- {REF}, + {SUT}):"));
                d.extend(diff.into_iter().map(|l| format!("    {l}")));
            }
            true
        }
        (Started::Failed { text: ta, .. }, Started::Failed { text: tb, .. }) => {
            if case.startup == Startup::Accept {
                d.push("startup: both rejected a Corefile the case expects to be accepted".into());
                d.push(format!("    {REF}:  {}", a.normalize(&error_line(ta))));
                d.push(format!("    {SUT}: {}", b.normalize(&error_line(tb))));
            }
            let ea = a.normalize(&error_line(ta));
            let eb = b.normalize(&error_line(tb));
            let (la, lb) = (location(&ea), location(&eb));
            let same = match case.error_match {
                ErrorMatch::Exact => ea == eb,
                ErrorMatch::Location => la == lb && kind(&ea) == kind(&eb),
            };
            if !same {
                let what = match case.error_match {
                    ErrorMatch::Exact => "startup error text differs",
                    ErrorMatch::Location if la != lb => "startup error location differs",
                    ErrorMatch::Location => "startup error kind differs",
                };
                d.push(format!(
                    "{what}: {REF} at {}, {SUT} at {}",
                    la.as_deref().unwrap_or("(no file:line)"),
                    lb.as_deref().unwrap_or("(no file:line)")
                ));
                d.push(format!("    {REF}:  {ea}"));
                d.push(format!("    {SUT}: {eb}"));
            }
            false
        }
        (Started::Ready { .. }, Started::Failed { text, status }) => {
            d.push(format!(
                "startup: {REF} accepted the Corefile, {SUT} refused it (exit {}):",
                status.map_or("none".to_string(), |c| c.to_string())
            ));
            d.extend(
                text.lines()
                    .map(|l| format!("    {SUT}: {}", b.normalize(l))),
            );
            false
        }
        (Started::Failed { text, status }, Started::Ready { .. }) => {
            d.push(format!(
                "startup: {REF} refused the Corefile (exit {}), {SUT} accepted it:",
                status.map_or("none".to_string(), |c| c.to_string())
            ));
            d.extend(
                text.lines()
                    .map(|l| format!("    {REF}: {}", a.normalize(l))),
            );
            false
        }
    }
}

/// Output of the Go runtime's automaxprocs, and dd-trace-go's own diagnostics (logged through
/// CoreDNS's trace plugin), printed by CoreDNS only (see DIFFERENCES.md).
pub(super) fn is_go_noise(line: &str) -> bool {
    let line = line.trim_start_matches("stderr: ");
    line.starts_with("maxprocs: ") || line.contains("plugin/trace: Datadog Tracer v")
}

/// Whether the two servers were given different texts (their Corefiles or environments differ
/// in per-server ports), so that `reload`'s hash of the expanded Corefile cannot be equal.
fn same_text_differs(case: &Case, a: &Side, b: &Side) -> bool {
    let texts = |s: &Side| -> Vec<String> {
        let mut t = vec![super::side::substitute(&case.corefile, &s.vars)];
        t.extend(
            case.env
                .values()
                .map(|v| super::side::substitute(v, &s.vars)),
        );
        t
    };
    texts(a) != texts(b)
}

/// `reload`'s `Running configuration SHA512 = <hash>` with the hash as `{SHA512}` (see
/// DIFFERENCES.md).
fn reload_hash(line: &str) -> String {
    const MARK: &str = "plugin/reload: Running configuration SHA512 = ";
    match line.find(MARK) {
        Some(at) => format!("{}{{SHA512}}", &line[..at + MARK.len()]),
        None => line.to_string(),
    }
}

/// `kubernetes` prints this every 500 ms while its first sync with the API server lasts
/// (CoreDNS: at most `startup_timeout`); how many times depends on the machine's load, so the
/// lines are not compared (see DIFFERENCES.md). The final warning when it gives up is.
pub(super) fn is_sync_progress(line: &str) -> bool {
    line.ends_with("plugin/kubernetes: waiting for Kubernetes API before starting server")
}

/// The error message of a failed start: its last line that is not Go runtime noise.
pub fn error_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !is_go_noise(l))
        .unwrap_or("")
        .to_string()
}

/// The `file:line` of an error message, if it has one.
pub fn location(msg: &str) -> Option<String> {
    let re = Regex::new(r"(?:^|\s)([^\s:]+):([0-9]+) - ").ok()?;
    re.captures(msg).map(|c| format!("{}:{}", &c[1], &c[2]))
}

/// The kind of an error message: its plugin prefix and the parser's category, or, for
/// messages without a location, the text itself.
pub fn kind(msg: &str) -> String {
    let plugin = msg
        .strip_prefix("plugin/")
        .and_then(|r| r.split_once(':'))
        .map(|(p, _)| format!("plugin/{p}"))
        .unwrap_or_default();
    let category = if msg.contains(" - Error during parsing: ") {
        "Error during parsing"
    } else if msg.contains(" - Syntax error: ") {
        "Syntax error"
    } else if location(msg).is_some() {
        "error at location"
    } else {
        return msg.to_string();
    };
    format!("{plugin} {category}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_hash_and_sync_progress() {
        let l = "[INFO] plugin/reload: Running configuration SHA512 = 3be5554302e5";
        assert_eq!(
            reload_hash(l),
            "[INFO] plugin/reload: Running configuration SHA512 = {SHA512}"
        );
        assert_eq!(reload_hash("[INFO] other"), "[INFO] other");
        assert!(is_sync_progress(
            "[INFO] plugin/kubernetes: waiting for Kubernetes API before starting server"
        ));
        assert!(!is_sync_progress(
            "[WARNING] plugin/kubernetes: starting server with unsynced Kubernetes API"
        ));
    }

    #[test]
    fn error_locations_and_kinds() {
        let m = "plugin/errors: Corefile:2 - Error during parsing: invalid log file: bar";
        assert_eq!(location(m).as_deref(), Some("Corefile:2"));
        assert_eq!(kind(m), "plugin/errors Error during parsing");
        let m = "{DIR}/snip.conf:3 - Error during parsing: Unknown directive 'x'";
        assert_eq!(location(m).as_deref(), Some("{DIR}/snip.conf:3"));
        let m = "cannot serve dns://.:{PORT} - it is already defined";
        assert_eq!(location(m), None);
        assert_eq!(kind(m), m);
        assert_eq!(
            error_line("maxprocs: Leaving GOMAXPROCS=2\nCorefile:1 - Syntax error: x\n\n"),
            "Corefile:1 - Syntax error: x"
        );
    }
}
