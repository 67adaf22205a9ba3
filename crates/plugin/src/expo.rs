//! The classic Prometheus text exposition format (`text/plain; version=0.0.4`), the one CoreDNS
//! serves on `/metrics` (its promhttp handler does not enable OpenMetrics, so it is what a
//! scraper gets whatever its `Accept` header asks). Written from the registry's OpenMetrics text
//! the way Go's `expfmt` writes a gathered registry: families sorted by name and empty ones left
//! out, a counter family named after its `_total` samples, no `# UNIT` lines, no `_created`
//! samples, no exemplars and no `# EOF`, label pairs sorted by name (`le` / `quantile` last),
//! series sorted by their label values, and values as Go's `strconv.FormatFloat(v, 'g', -1, 64)`.

/// The `Content-Type` CoreDNS v1.14.7 sends with the classic format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores";

/// Label pairs sorted by name.
type LabelSet = Vec<(String, String)>;

struct Family {
    name: String,
    help: String,
    kind: String,
    /// Series in first-seen order: sorted label pairs (without `le`/`quantile`), then the
    /// rendered sample lines.
    series: Vec<(LabelSet, Vec<String>)>,
}

/// Rewrite OpenMetrics text (as prometheus-client writes it) in the classic text format.
pub fn classic_from_openmetrics(om: &str) -> String {
    let mut families: Vec<Family> = Vec::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.push(Family {
                name: name.to_string(),
                help: help.to_string(),
                kind: "untyped".into(),
                series: Vec::new(),
            });
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let Some(f) = families.last_mut().filter(|f| f.name == name) else {
                continue;
            };
            f.kind = match kind {
                "counter" => "counter",
                "gauge" | "info" | "stateset" => "gauge",
                "histogram" => "histogram",
                "summary" => "summary",
                _ => "untyped",
            }
            .to_string();
            if kind == "counter" && !f.name.ends_with("_total") {
                f.name.push_str("_total");
            }
            if kind == "info" {
                f.name.push_str("_info");
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some(f) = families.last_mut() else {
            continue;
        };
        let Some(sample) = parse_sample(line) else {
            continue;
        };
        if sample.name.ends_with("_created") {
            continue;
        }
        let (mut key, mut special) = (Vec::new(), None);
        for (k, v) in sample.labels {
            if (k == "le" && f.kind == "histogram") || (k == "quantile" && f.kind == "summary") {
                special = Some((k, v));
            } else {
                key.push((k, v));
            }
        }
        key.sort();
        let mut text = sample.name.to_string();
        let mut pairs: Vec<String> = key.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        if let Some((k, v)) = special {
            let v = v.parse::<f64>().map_or(v, go_float);
            pairs.push(format!("{k}=\"{v}\""));
        }
        if !pairs.is_empty() {
            text.push('{');
            text.push_str(&pairs.join(","));
            text.push('}');
        }
        text.push(' ');
        text.push_str(
            &sample
                .value
                .parse::<f64>()
                .map_or(sample.value.to_string(), go_float),
        );
        match f.series.iter_mut().find(|(k, _)| *k == key) {
            Some((_, lines)) => lines.push(text),
            None => f.series.push((key, vec![text])),
        }
    }
    families.retain(|f| !f.series.is_empty());
    families.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for mut f in families {
        f.series.sort_by(|a, b| {
            let va = a.0.iter().map(|(_, v)| v);
            let vb = b.0.iter().map(|(_, v)| v);
            va.cmp(vb)
        });
        out.push_str(&format!(
            "# HELP {} {}\n# TYPE {} {}\n",
            f.name,
            f.help.replace('\\', "\\\\"),
            f.name,
            f.kind
        ));
        for (_, mut lines) in f.series {
            // Go writes a histogram's buckets (a summary's quantiles) before `_sum` and
            // `_count`; prometheus-client writes them last.
            if f.kind == "histogram" || f.kind == "summary" {
                lines.sort_by_key(|l| {
                    let name = &l[..l.find(['{', ' ']).unwrap_or(l.len())];
                    if name == format!("{}_sum", f.name) {
                        1
                    } else if name == format!("{}_count", f.name) {
                        2
                    } else {
                        0
                    }
                });
            }
            for l in lines {
                out.push_str(&l);
                out.push('\n');
            }
        }
    }
    out
}

struct Sample<'a> {
    name: &'a str,
    labels: Vec<(String, String)>,
    value: &'a str,
}

/// `name{k="v",...} value [timestamp] [# exemplar]`.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let end;
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    end = i + 1;
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut val = String::new();
                    loop {
                        let (_, c) = chars.next()?;
                        match c {
                            '\\' => {
                                val.push('\\');
                                val.push(chars.next()?.1);
                            }
                            '"' => break,
                            c => val.push(c),
                        }
                    }
                    labels.push((std::mem::take(&mut key), val));
                }
                c => key.push(c),
            }
        }
        rest = &body[end..];
    }
    let value = rest.split_whitespace().next()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// A value as Go's `strconv.FormatFloat(v, 'g', -1, 64)` (and expfmt's `+Inf` / `-Inf` /
/// `NaN`) writes it: the shortest digits that read back, in exponent form when the decimal
/// exponent is below -4 or at least 6 (`5.38624e+07`, `20000`).
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Shortest round-trip digits and exponent, from Rust's own shortest formatting.
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_go_writes_them() {
        for (v, want) in [
            (1.0, "1"),
            (0.02, "0.02"),
            (20000.0, "20000"),
            (53862400.0, "5.38624e+07"),
            (3490469672.0, "3.490469672e+09"),
            (123456.5, "123456.5"),
            (1e6, "1e+06"),
            (18446744073709551615.0, "1.8446744073709552e+19"),
            (0.00025, "0.00025"),
            (0.00001, "1e-05"),
            (f64::INFINITY, "+Inf"),
            (-2.5, "-2.5"),
        ] {
            assert_eq!(go_float(v), want, "{v}");
        }
    }

    #[test]
    fn openmetrics_is_rewritten_in_the_classic_format() {
        let om = "# HELP zz_requests Requests.\n\
                  # TYPE zz_requests counter\n\
                  zz_requests_total{zone=\"b.\",proto=\"udp\"} 2\n\
                  zz_requests_created{zone=\"b.\",proto=\"udp\"} 1700000000.5\n\
                  zz_requests_total{zone=\"a.\",proto=\"udp\"} 1000000\n\
                  # HELP aa_empty Never set.\n\
                  # TYPE aa_empty gauge\n\
                  # HELP aa_duration_seconds Time.\n\
                  # TYPE aa_duration_seconds histogram\n\
                  # UNIT aa_duration_seconds seconds\n\
                  aa_duration_seconds_sum{server=\"s\"} 0.5\n\
                  aa_duration_seconds_count{server=\"s\"} 1\n\
                  aa_duration_seconds_bucket{le=\"0.25\",server=\"s\"} 0\n\
                  aa_duration_seconds_bucket{le=\"+Inf\",server=\"s\"} 1 # {trace=\"x\"} 0.5\n\
                  # EOF\n";
        assert_eq!(
            classic_from_openmetrics(om),
            "# HELP aa_duration_seconds Time.\n\
             # TYPE aa_duration_seconds histogram\n\
             aa_duration_seconds_bucket{server=\"s\",le=\"0.25\"} 0\n\
             aa_duration_seconds_bucket{server=\"s\",le=\"+Inf\"} 1\n\
             aa_duration_seconds_sum{server=\"s\"} 0.5\n\
             aa_duration_seconds_count{server=\"s\"} 1\n\
             # HELP zz_requests_total Requests.\n\
             # TYPE zz_requests_total counter\n\
             zz_requests_total{proto=\"udp\",zone=\"a.\"} 1e+06\n\
             zz_requests_total{proto=\"udp\",zone=\"b.\"} 2\n"
        );
    }
}
