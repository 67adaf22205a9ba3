//! Tests of [`super`]: Go's error texts and Go's matches for patterns read with Go's grammar.

use super::*;

fn go_err(p: &str) -> String {
    match compile(p) {
        Ok(_) => String::from("<nil>"),
        Err(e) => e,
    }
}

/// Go 1.26's `regexp.Compile` results for these patterns.
#[test]
fn errors_like_go() {
    let cases = [
        ("())", "error parsing regexp: unexpected ): `())`"),
        ("(", "error parsing regexp: missing closing ): `(`"),
        ("(a", "error parsing regexp: missing closing ): `(a`"),
        ("a)", "error parsing regexp: unexpected ): `a)`"),
        ("[a", "error parsing regexp: missing closing ]: `[a`"),
        ("x[ab", "error parsing regexp: missing closing ]: `[ab`"),
        (
            "[z-a]",
            "error parsing regexp: invalid character class range: `z-a`",
        ),
        (
            "\\q",
            "error parsing regexp: invalid escape sequence: `\\q`",
        ),
        (
            "a\\",
            "error parsing regexp: trailing backslash at end of expression: ``",
        ),
        (
            "*",
            "error parsing regexp: missing argument to repetition operator: `*`",
        ),
        (
            "a**",
            "error parsing regexp: invalid nested repetition operator: `**`",
        ),
        (
            "a*+",
            "error parsing regexp: invalid nested repetition operator: `*+`",
        ),
        (
            "a+*",
            "error parsing regexp: invalid nested repetition operator: `+*`",
        ),
        (
            "a{2}{3}",
            "error parsing regexp: invalid nested repetition operator: `{2}{3}`",
        ),
        (
            "(*)",
            "error parsing regexp: missing argument to repetition operator: `*`",
        ),
        (
            "a|*",
            "error parsing regexp: missing argument to repetition operator: `*`",
        ),
        (
            "x{1001}",
            "error parsing regexp: invalid repeat count: `{1001}`",
        ),
        (
            "x{2,1}",
            "error parsing regexp: invalid repeat count: `{2,1}`",
        ),
        ("x{1000}", "<nil>"),
        ("(?P<n>a)", "<nil>"),
        ("(?<n>a)", "<nil>"),
        (
            "(?P<>a)",
            "error parsing regexp: invalid named capture: `(?P<>`",
        ),
        ("(?P<1a>a)", "<nil>"),
        (
            "(?P=n)",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?P`",
        ),
        (
            "(?=a)",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?=`",
        ),
        (
            "(?!a)",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?!`",
        ),
        ("(?i)a", "<nil>"),
        (
            "(?z)a",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?z`",
        ),
        (
            "(?i",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?i`",
        ),
        ("(?i:a", "error parsing regexp: missing closing ): `(?i:a`"),
        (
            "\\1",
            "error parsing regexp: invalid escape sequence: `\\1`",
        ),
        ("\\0", "<nil>"),
        ("\\08", "<nil>"),
        (
            "\\8",
            "error parsing regexp: invalid escape sequence: `\\8`",
        ),
        (
            "[[:foo:]]",
            "error parsing regexp: invalid character class range: `[:foo:]`",
        ),
        ("[[:alpha:]]", "<nil>"),
        (
            "\\pX",
            "error parsing regexp: invalid character class range: `\\pX`",
        ),
        (
            "\\p{Foo}",
            "error parsing regexp: invalid character class range: `\\p{Foo}`",
        ),
        ("\\p{Greek}", "<nil>"),
        ("[\\d-z]", "<nil>"),
        (
            "[a-\\d]",
            "error parsing regexp: invalid escape sequence: `\\d`",
        ),
        ("\\Qa.b", "<nil>"),
        ("\\Qa\\E*", "<nil>"),
        (
            "\\x4",
            "error parsing regexp: invalid escape sequence: `\\x4`",
        ),
        (
            "\\x{110000}",
            "error parsing regexp: invalid escape sequence: `\\x{110000`",
        ),
        ("\\x{41}", "<nil>"),
        (
            "\\C",
            "error parsing regexp: invalid escape sequence: `\\C`",
        ),
        (
            "\\Z",
            "error parsing regexp: invalid escape sequence: `\\Z`",
        ),
        ("\\<", "<nil>"),
        ("[]a]", "<nil>"),
        ("[^]a]", "<nil>"),
        ("[]", "error parsing regexp: missing closing ]: `[]`"),
        ("a{,3}", "<nil>"),
        ("a{", "<nil>"),
        ("a{1", "<nil>"),
        ("^*", "<nil>"),
        ("$+", "<nil>"),
        ("\\b*", "<nil>"),
        ("(?i)(?P<n>a)(?P<n>b)", "<nil>"),
        (
            "x{1001,}",
            "error parsing regexp: invalid repeat count: `{1001,}`",
        ),
        (
            "(a{500}){3}",
            "error parsing regexp: invalid repeat count: `{3}`",
        ),
        ("\\z", "<nil>"),
        ("[a-]", "<nil>"),
        (
            "[\\Q]\\E]",
            "error parsing regexp: invalid escape sequence: `\\Q`",
        ),
        ("(?U)a*", "<nil>"),
        ("(?s).", "<nil>"),
        ("(?m)^", "<nil>"),
        ("\\v", "<nil>"),
        ("[\\a]", "<nil>"),
        ("(?-i)a", "<nil>"),
        (
            "(?i-)a",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?i-)`",
        ),
        ("(?)", "<nil>"),
        (
            "(?-)a",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?-)`",
        ),
        ("(?i-i)a", "<nil>"),
        (
            "a{1,1001}",
            "error parsing regexp: invalid repeat count: `{1,1001}`",
        ),
        (
            "(?P<n!>a)",
            "error parsing regexp: invalid named capture: `(?P<n!>`",
        ),
        (
            "(?<n",
            "error parsing regexp: invalid named capture: `(?<n`",
        ),
        (
            "(?P",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?P`",
        ),
        (
            "(?",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?`",
        ),
        ("[a-b-c]", "<nil>"),
        (
            "x**?",
            "error parsing regexp: invalid nested repetition operator: `**?`",
        ),
        (
            "x*??",
            "error parsing regexp: invalid nested repetition operator: `*??`",
        ),
        (
            "a{2}*",
            "error parsing regexp: invalid nested repetition operator: `{2}*`",
        ),
        (
            "(a)(?:b)|*",
            "error parsing regexp: missing argument to repetition operator: `*`",
        ),
        ("||", "<nil>"),
        (
            "|*",
            "error parsing regexp: missing argument to repetition operator: `*`",
        ),
        ("(|)", "<nil>"),
        ("\\d\\D\\s\\S\\w\\W\\b\\B", "<nil>"),
        (
            "[\\b]",
            "error parsing regexp: invalid escape sequence: `\\b`",
        ),
        ("a(?i)*", "<nil>"),
        (
            "(?i)*",
            "error parsing regexp: missing argument to repetition operator: `*`",
        ),
        ("x{01}", "<nil>"),
        (
            "x{999999999}",
            "error parsing regexp: invalid repeat count: `{999999999}`",
        ),
        (
            "((a{10}){10}){11}",
            "error parsing regexp: invalid repeat count: `{11}`",
        ),
        ("((a{10}){10}){10}", "<nil>"),
        ("(a{0}){1000}b{1000}", "<nil>"),
        (
            "(a{2,}){501}",
            "error parsing regexp: invalid repeat count: `{501}`",
        ),
    ];
    let deep = |n: usize, open: &str| format!("{}a{}", open.repeat(n), ")".repeat(n));
    assert_eq!(go_err(&deep(999, "(")), "<nil>");
    let too_deep = deep(1000, "(");
    assert_eq!(
        go_err(&too_deep),
        format!("error parsing regexp: expression nests too deeply: `{too_deep}`")
    );
    assert_eq!(go_err(&deep(2000, "(?:")), "<nil>");
    for (p, want) in cases {
        assert_eq!(go_err(p), want, "pattern {p:?}");
    }
}

fn matches(p: &str, s: &str) -> bool {
    compile(p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .is_match(s)
}

#[test]
fn matches_like_go() {
    // Perl classes are ASCII in Go.
    assert!(!matches("^\\d$", "٣"));
    assert!(matches("^\\d+$", "0123456789"));
    assert!(!matches("^\\w$", "é"));
    assert!(!matches("^\\s$", "\u{b}"));
    assert!(matches("^\\s$", "\u{c}"));
    assert!(!matches("é\\b", "é "));
    assert!(matches("x\\b", "xé"));
    assert!(!matches("^[^\\x00-\\x{10FFFF}]", "a"));
    // Flags are scoped to their group and apply to what follows.
    assert!(matches("^(?:(?i)a)A$", "AA"));
    assert!(!matches("^(?:(?i)a)a$", "AA"));
    assert!(matches("^a(?i)b$", "aB"));
    assert!(!matches("^a(?i)b$", "AB"));
    assert!(matches("(?i:k)", "\u{212a}"));
    // `^`/`$` are text anchors without `m`; `.` skips newlines without `s`.
    assert!(!matches("^b", "a\nb"));
    assert!(matches("(?m)^b$", "a\nb\nc"));
    assert!(!matches("a$", "a\n"));
    assert!(!matches("a.b", "a\nb"));
    assert!(matches("(?s)a.b", "a\nb"));
    // Literals that Rust would read otherwise.
    assert!(matches("^a{,3}$", "a{,3}"));
    assert!(matches("^x{01}$", "x{01}"));
    assert!(matches("^\\<$", "<"));
    assert!(matches("^\\Q.*\\E$", ".*"));
    assert!(matches("^\\12$", "\n"));
    assert!(matches("^[]a]+$", "]a]"));
    assert!(matches("^[^]a]$", "b"));
    assert!(matches("^[[:alpha:]\\d-]+$", "ab-1"));
    // `(?U)` swaps greediness.
    let re = compile("(?U)a+").expect("re");
    assert_eq!(re.find("aaa").map(|m| m.as_str()), Some("a"));
    let re = compile("(?U)a+?").expect("re");
    assert_eq!(re.find("aaa").map(|m| m.as_str()), Some("aaa"));
    // The patterns of CoreDNS's README.
    assert!(matches(
        "^read udp .* i/o timeout$",
        "read udp 10.0.0.1:53->8.8.8.8:53: i/o timeout"
    ));
    assert!(matches(".* i/o timeout$", "x i/o timeout"));
    assert!(matches("^Failed to .+", "Failed to connect"));
    assert!(matches("^exact$", "exact"));
    assert!(!matches("^exact$", "not exact"));
}
