//! The conformance harness of ferrodns: every case starts the reference CoreDNS and ferrodns
//! with the same Corefile, sends both the same queries and compares what comes back.
//!
//! Case files live in `conformance/cases/<area>/<name>.toml` (format: [`case::Case`], guide in
//! `conformance/README.md`); deliberately wrong cases that prove the harness catches
//! differences live in `conformance/selftest/`.

pub mod case;
pub mod client;
pub mod compare;
pub mod dnstap;
pub mod kube;
pub mod netns;
pub mod process;
pub mod runner;
pub mod upstream;
pub mod wire;

/// For the self-test: every case must have failed, and its diff must contain each of its
/// `selftest_diff_contains` strings. Returns what did not hold.
pub fn selftest_check(cases: &[case::Loaded], results: &[runner::CaseResult]) -> Vec<String> {
    let mut bad = Vec::new();
    for c in cases {
        let Some(r) = results.iter().find(|r| r.id == c.id) else {
            bad.push(format!("{}: not run", c.id));
            continue;
        };
        match &r.verdict {
            runner::Verdict::Fail(diff) => {
                let text = diff.join("\n");
                for want in &c.case.selftest_diff_contains {
                    if !text.contains(want.as_str()) {
                        bad.push(format!("{}: diff lacks {want:?}:\n{text}", c.id));
                    }
                }
            }
            other => bad.push(format!("{}: should have failed, got {other:?}", c.id)),
        }
    }
    bad
}
