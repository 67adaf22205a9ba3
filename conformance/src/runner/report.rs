//! The report of a run: one table line per case, then the diffs of the failed ones.

use std::io::Write;

use super::{CaseResult, Verdict};

/// The table, then the full diffs of failed cases; returns (passed, failed, skipped).
pub fn report(
    results: &[CaseResult],
    out: &mut impl Write,
) -> std::io::Result<(usize, usize, usize)> {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let w = results.iter().map(|r| r.id.len()).max().unwrap_or(4).max(4);
    writeln!(out, "\n{:<w$} | {:<6} | diff", "case", "result")?;
    writeln!(
        out,
        "{}-+-{}-+-{}",
        "-".repeat(w),
        "-".repeat(6),
        "-".repeat(40)
    )?;
    for r in results {
        let (word, diff) = match &r.verdict {
            Verdict::Pass => {
                passed += 1;
                ("pass", String::new())
            }
            Verdict::Fail(d) => {
                failed += 1;
                let first = d
                    .iter()
                    .find(|l| !l.starts_with("query "))
                    .or(d.first())
                    .map(|l| l.trim().to_string())
                    .unwrap_or_default();
                let mut first: String = first.chars().take(100).collect();
                if d.len() > 1 {
                    first.push_str(&format!(" (+{} more lines)", d.len() - 1));
                }
                ("FAIL", first)
            }
            Verdict::Skip(why) => {
                skipped += 1;
                ("skip", why.clone())
            }
        };
        writeln!(out, "{:<w$} | {:<6} | {}", r.id, word, diff)?;
    }
    watch_summary(results, out)?;
    // The full diffs come last, next to the closing line, so that a log cut to its tail
    // still shows which case failed and how.
    for r in results {
        if let Verdict::Fail(diff) = &r.verdict {
            writeln!(out, "\n--- {} FAILED:", r.id)?;
            for l in diff {
                writeln!(out, "  {l}")?;
            }
        }
    }
    writeln!(out)?;
    Ok((passed, failed, skipped))
}

/// Every watch latency of the run, and per server its median and maximum (changes a server
/// never showed are counted apart).
fn watch_summary(results: &[CaseResult], out: &mut impl Write) -> std::io::Result<()> {
    let all: Vec<(&str, &crate::kube::Watch)> = results
        .iter()
        .flat_map(|r| r.watch.iter().map(|w| (r.id.as_str(), w)))
        .collect();
    if all.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nwatch latency (kubernetes change -> new answer):")?;
    for (id, w) in &all {
        writeln!(out, "  {id}: {}", w.line())?;
    }
    for (side, name) in [crate::compare::REF, crate::compare::SUT]
        .iter()
        .enumerate()
    {
        let mut ms: Vec<f64> = all
            .iter()
            .filter_map(|(_, w)| w.latency[side].map(|d| d.as_secs_f64() * 1000.0))
            .collect();
        ms.sort_by(f64::total_cmp);
        let missed = all.len() - ms.len();
        match (ms.get(ms.len() / 2), ms.last()) {
            (Some(median), Some(max)) => writeln!(
                out,
                "  {name}: {} changes, median {median:.1} ms, max {max:.1} ms, {missed} not seen",
                all.len()
            )?,
            _ => writeln!(out, "  {name}: none of {} changes seen", all.len())?,
        }
    }
    Ok(())
}

/// The closing line: `N passed, M failed` (`, K skipped` when some were).
pub fn closing_line(passed: usize, failed: usize, skipped: usize) -> String {
    if skipped > 0 {
        format!("{passed} passed, {failed} failed, {skipped} skipped")
    } else {
        format!("{passed} passed, {failed} failed")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn report_ends_with_counts() {
        let rs = vec![
            CaseResult {
                id: "a/x".into(),
                verdict: Verdict::Pass,
                elapsed: Duration::ZERO,
                watch: Vec::new(),
            },
            CaseResult {
                id: "a/y".into(),
                verdict: Verdict::Fail(vec!["rcode: coredns NOERROR, ferrodns SERVFAIL".into()]),
                elapsed: Duration::ZERO,
                watch: Vec::new(),
            },
        ];
        let mut out = Vec::new();
        assert_eq!(report(&rs, &mut out).unwrap(), (1, 1, 0));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(closing_line(1, 1, 0), "1 passed, 1 failed");
        assert_eq!(closing_line(1, 0, 2), "1 passed, 0 failed, 2 skipped");
        assert!(
            text.contains("a/y  | FAIL   | rcode: coredns NOERROR, ferrodns SERVFAIL"),
            "{text}"
        );
    }
}
