//! Environment substitution (Caddy's TestEnvironmentReplacement and more).

mod common;

use common::*;
use ferrodns_corefile::replace_env_vars;

const ENV: &[(&str, &str)] = &[
    ("PORT", "8080"),
    ("ADDRESS", "servername.com"),
    ("FOOBAR", "foobar"),
    ("PARTIAL_DIR", "r1"),
    ("NL", "a\nb"),
    ("DIR", "whoami"),
    ("BRACE", "{"),
    ("IMPORT", "import"),
    ("SPACE", "a b"),
    ("SELF", "{$SELF}"),
    ("DOUBLE", "{$DOUBLE}{$DOUBLE}"),
    ("E$", "dollar"),
    ("OPEN", "{$"),
];

/// Where to look in the parse result.
enum At {
    Key(usize, usize),
    Arg(usize, &'static str, usize),
}

#[test]
fn environment_replacement_table() {
    let cases: Vec<(&str, &str, At, &str)> = vec![
        ("unix style", "{$ADDRESS}", At::Key(0, 0), "servername.com"),
        ("partial token", "di{$PARTIAL_DIR}", At::Key(0, 0), "dir1"),
        (
            "two vars in a token",
            "{$ADDRESS}:{$PORT}",
            At::Key(0, 0),
            "servername.com:8080",
        ),
        (
            "windows then unix",
            "{%ADDRESS%}:{$PORT}",
            At::Key(0, 0),
            "servername.com:8080",
        ),
        (
            "unix then windows",
            "{$ADDRESS}:{%PORT%}",
            At::Key(0, 0),
            "servername.com:8080",
        ),
        (
            "key of braceless block",
            ":{%PORT%}\ndir1 {$FOOBAR}",
            At::Key(0, 0),
            ":8080",
        ),
        (
            "argument",
            ":{%PORT%}\ndir1 {$FOOBAR}",
            At::Arg(0, "dir1", 1),
            "foobar",
        ),
        (
            "windows vars in an argument",
            ":{%PORT%}\ndir1 {%ADDRESS%}/{%FOOBAR%}",
            At::Arg(0, "dir1", 1),
            "servername.com/foobar",
        ),
        (
            "malformed windows var left alone",
            ":1234\ndir1 {%ADDRESS}",
            At::Arg(0, "dir1", 1),
            "{%ADDRESS}",
        ),
        ("name with trailing dollar", ":{$PORT$}", At::Key(0, 0), ":"),
        (
            "inside a quoted token",
            ":1234\ndir1 \"Test {$FOOBAR} test\"",
            At::Arg(0, "dir1", 1),
            "Test foobar test",
        ),
        (
            "template braces untouched",
            ":1234\nanswer \"{{ .Name }} {$FOOBAR}\"",
            At::Arg(0, "answer", 1),
            "{{ .Name }} foobar",
        ),
        (
            "all occurrences replaced",
            ":1\ndir1 {$FOOBAR}-{$FOOBAR}",
            At::Arg(0, "dir1", 1),
            "foobar-foobar",
        ),
        (
            "empty name stops",
            ":1\ndir1 {$}{$FOOBAR}",
            At::Arg(0, "dir1", 1),
            "{$}{$FOOBAR}",
        ),
        (
            "empty windows name stops",
            ":1\ndir1 {%%}{%FOOBAR%}",
            At::Arg(0, "dir1", 1),
            "{%%}{%FOOBAR%}",
        ),
        (
            "unset is empty",
            ":1\ndir1 x{$UNSET}y",
            At::Arg(0, "dir1", 1),
            "xy",
        ),
        (
            "outer braces stay",
            ":1\ndir1 {{$FOOBAR}}",
            At::Arg(0, "dir1", 1),
            "{foobar}",
        ),
        (
            "value with a space stays one token",
            ":1\ndir1 {$SPACE} z",
            At::Arg(0, "dir1", 1),
            "a b",
        ),
        (
            "literal dollar in the name",
            ":1\ndir1 {$E$}",
            At::Arg(0, "dir1", 1),
            "dollar",
        ),
        (
            "self-reference terminates",
            ":1\ndir1 {$SELF}",
            At::Arg(0, "dir1", 1),
            "{$SELF}",
        ),
        (
            "value opening a new reference",
            ":1\ndir1 {$OPEN}x{$FOOBAR}",
            At::Arg(0, "dir1", 1),
            "",
        ),
    ];
    for (name, input, at, want) in cases {
        let blocks = parse_any_env(input, ENV).unwrap_or_else(|e| panic!("case {name:?}: {e}"));
        let got = match at {
            At::Key(b, k) => blocks[b].keys[k].text.clone(),
            At::Arg(b, d, i) => blocks[b].directive(d).expect("directive").tokens[i]
                .text
                .clone(),
        };
        assert_eq!(got, want, "case {name:?}");
    }
}

#[test]
fn replace_env_vars_direct() {
    let env = |k: &str| match k {
        "A" => Some("1".to_owned()),
        "B" => Some("{%A%}".to_owned()),
        _ => None,
    };
    let cases = [
        ("{$A}{%A%}", "11"),
        ("{$B}", "{%A%}"), // windows syntax is processed first, so not re-expanded
        ("{%B%}", "1"),    // but unix references produced by it are
        ("no refs", "no refs"),
        ("{$A", "{$A"),
        ("{%A", "{%A"),
    ];
    for (input, want) in cases {
        assert_eq!(replace_env_vars(input, &env), want, "input {input:?}");
    }
    // exponential self-expansion is bounded
    let doubling = |_: &str| Some("{$X}{$X}".to_owned());
    assert!(replace_env_vars("{$X}", &doubling).len() <= 4 << 20);
}

#[test]
fn directive_name_from_env() {
    let blocks = parse_with(
        "Corefile",
        ". {\n {$DIR} {\n }\n}\n",
        &coredns_directive,
        ENV,
    )
    .unwrap();
    let d = blocks[0].directive("whoami").expect("whoami");
    // CoreDNS keeps the name token as written
    assert_eq!(texts(&d.tokens), vec!["{$DIR}", "{", "}"]);
}

#[test]
fn env_errors_and_line_effects() {
    type Case = (
        &'static str,
        &'static str,
        Result<Vec<(&'static str, usize)>, &'static str>,
    );
    let cases: Vec<Case> = vec![
        // a newline in a substituted argument shifts the "same line" logic
        (
            ". {\n log {$NL}\n whoami\n}\n",
            "newline in value joins next line",
            Ok(vec![("log", 3)]),
        ),
        (
            ". {\n log {$NL} x\n errors\n}\n",
            "newline in value, next line still new",
            Ok(vec![("log", 3), ("errors", 1)]),
        ),
        (
            "{$BRACE}\n. {\n}\n",
            "brace from env opens a block",
            Err("Corefile:1 - Error during parsing: Unknown directive '{'"),
        ),
        (
            ". {\n {$IMPORT} x\n}\n",
            "import from env is not an import in a block",
            Err("Corefile:2 - Error during parsing: Unknown directive 'import'"),
        ),
        (
            ". {\n import {$UNSET}\n}\n",
            "import of an unset variable",
            Err("Corefile:2 - Error during parsing: Import requires a non-empty filepath"),
        ),
        (
            "{$UNSET} {\n whoami\n}\n",
            "key that substitutes to nothing",
            Ok(vec![]),
        ),
    ];
    for (input, name, want) in cases {
        let got = parse_with("Corefile", input, &coredns_directive, ENV);
        match want {
            Ok(w) => {
                let blocks = got.unwrap_or_else(|e| panic!("case {name:?}: {e}"));
                let g: Vec<(String, usize)> = blocks.first().map(dir_counts).unwrap_or_default();
                assert_eq!(g, counts(&w), "case {name:?}");
            }
            Err(w) => assert_eq!(got.unwrap_err().to_string(), w, "case {name:?}"),
        }
    }
}

#[test]
fn snippet_bodies_substituted_when_used() {
    let blocks = parse_with(
        "Corefile",
        "(s) {\n log {$FOOBAR}\n}\n. {\n import s\n}\n",
        &coredns_directive,
        ENV,
    )
    .unwrap();
    assert_eq!(dir_texts(&blocks[0], "log"), vec!["log", "foobar"]);
}

#[test]
fn process_env_uses_the_real_environment() {
    // PATH is always set for cargo test; HOME is not guaranteed.
    let path = std::env::var("PATH").unwrap_or_default();
    let opts = ferrodns_corefile::ParseOptions::process_env(&any_directive);
    let blocks = ferrodns_corefile::parse(
        "Corefile",
        b". {\n x {$PATH} {$FERRODNS_SURELY_UNSET_VAR}\n}\n",
        &opts,
    )
    .unwrap();
    assert_eq!(dir_texts(&blocks[0], "x"), vec!["x", path.as_str(), ""]);
}
