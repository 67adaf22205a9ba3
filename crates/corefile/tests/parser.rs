//! Parser cases: Caddy's TestParseOneAndImport / TestParseAll / snippet
//! tests ported as tables, plus CoreDNS-specific behaviour and exact errors.

mod common;

use common::*;

/// Expected outcome of one parse.
enum Want {
    /// blocks: keys and (directive, token count) per block
    Blocks(Vec<BlockSummary>),
    /// exact error text
    Err(&'static str),
}

fn blk(keys: &[&str], dirs: &[(&str, usize)]) -> BlockSummary {
    (owned(keys), counts(dirs))
}

fn check(name: &str, got: ParseResult, want: &Want) {
    match (got, want) {
        (Ok(blocks), Want::Blocks(w)) => {
            let g: Vec<_> = blocks
                .iter()
                .map(|b| (key_texts(b), dir_counts(b)))
                .collect();
            assert_eq!(&g, w, "case {name:?}");
        }
        (Err(e), Want::Err(w)) => assert_eq!(e.to_string(), *w, "case {name:?}"),
        (Ok(b), Want::Err(w)) => panic!("case {name:?}: expected error {w:?}, got {b:?}"),
        (Err(e), Want::Blocks(_)) => panic!("case {name:?}: unexpected error {e}"),
    }
}

#[test]
fn caddy_parse_one_table() {
    use Want::*;
    let cases: Vec<(&str, &str, Want)> = vec![
        (
            "key only",
            "localhost",
            Blocks(vec![blk(&["localhost"], &[])]),
        ),
        (
            "braceless",
            "localhost\n  dir1",
            Blocks(vec![blk(&["localhost"], &[("dir1", 1)])]),
        ),
        (
            "braceless args",
            "localhost:1234\n  dir1 foo bar",
            Blocks(vec![blk(&["localhost:1234"], &[("dir1", 3)])]),
        ),
        (
            "braced",
            "localhost {\n    dir1\n  }",
            Blocks(vec![blk(&["localhost"], &[("dir1", 1)])]),
        ),
        (
            "two directives",
            "localhost:1234 {\n    dir1 foo bar\n    dir2\n  }",
            Blocks(vec![blk(&["localhost:1234"], &[("dir1", 3), ("dir2", 1)])]),
        ),
        (
            "two keys braceless",
            "http://localhost https://localhost\n  dir1 foo bar",
            Blocks(vec![blk(
                &["http://localhost", "https://localhost"],
                &[("dir1", 3)],
            )]),
        ),
        (
            "two keys braced",
            "http://localhost https://localhost {\n    dir1 foo bar\n  }",
            Blocks(vec![blk(
                &["http://localhost", "https://localhost"],
                &[("dir1", 3)],
            )]),
        ),
        (
            "comma separated keys",
            "http://localhost, https://localhost {\n    dir1 foo bar\n  }",
            Blocks(vec![blk(
                &["http://localhost", "https://localhost"],
                &[("dir1", 3)],
            )]),
        ),
        (
            "comma before brace",
            "http://localhost, {\n  }",
            Err(
                "Caddyfile:1 - Error during parsing: Expected another address but had '{' - check for extra comma",
            ),
        ),
        (
            "mixed key separators",
            "host1:80, http://host2.com\n  dir1 foo bar\n  dir2 baz",
            Blocks(vec![blk(
                &["host1:80", "http://host2.com"],
                &[("dir1", 3), ("dir2", 2)],
            )]),
        ),
        (
            "keys continued over lines",
            "http://host1.com,\n  http://host2.com,\n  https://host3.com",
            Blocks(vec![blk(
                &["http://host1.com", "http://host2.com", "https://host3.com"],
                &[],
            )]),
        ),
        (
            "sub-block tokens counted",
            "http://host1.com:1234, https://host2.com\n  dir1 foo {\n    bar baz\n  }\n  dir2",
            Blocks(vec![blk(
                &["http://host1.com:1234", "https://host2.com"],
                &[("dir1", 6), ("dir2", 1)],
            )]),
        ),
        (
            "two sub-blocks",
            "127.0.0.1\n  dir1 {\n    bar baz\n  }\n  dir2 {\n    foo bar\n  }",
            Blocks(vec![blk(&["127.0.0.1"], &[("dir1", 5), ("dir2", 5)])]),
        ),
        (
            "unclosed sub-block",
            "localhost\n  dir1 {\n    foo",
            Err("Caddyfile:3 - Error during parsing: Unexpected EOF"),
        ),
        (
            "empty sub-block",
            "localhost\n  dir1 {\n  }",
            Blocks(vec![blk(&["localhost"], &[("dir1", 3)])]),
        ),
        (
            "extra closing brace on directive line",
            "localhost\n  dir1 {\n  } }",
            Err(
                "Caddyfile:3 - Error during parsing: Unexpected '}' because no matching opening brace",
            ),
        ),
        (
            "nested sub-blocks",
            "localhost\n  dir1 {\n    nested {\n      foo\n    }\n  }\n  dir2 foo bar",
            Blocks(vec![blk(&["localhost"], &[("dir1", 7), ("dir2", 3)])]),
        ),
        ("empty input", "", Blocks(vec![])),
        ("empty quoted key", "\"\"", Blocks(vec![])),
        (
            "import with two arguments",
            "import testdata/import_test1.txt testdata/import_test2.txt",
            Err(
                "Caddyfile:1 - Error during parsing: Import takes only one argument (glob pattern or file)",
            ),
        ),
        (
            "fuzz: odd import target",
            "import }{$\"",
            Err("Caddyfile:1 - Error during parsing: File to import not found: }{$\""),
        ),
        (
            "fuzz: two stars",
            "import /*/*.txt",
            Err(
                "Caddyfile:1 - Error during parsing: Glob pattern may only contain one wildcard (*), but has others: /*/*.txt",
            ),
        ),
        (
            "fuzz: many question marks",
            "import /???/?*?o",
            Err(
                "Caddyfile:1 - Error during parsing: Glob pattern may only contain one wildcard (*), but has others: /???/?*?o",
            ),
        ),
        (
            "fuzz: two question marks",
            "import /??",
            Err(
                "Caddyfile:1 - Error during parsing: Glob pattern may only contain one wildcard (*), but has others: /??",
            ),
        ),
        (
            "fuzz: character class",
            "import /[a-z]",
            Err(
                "Caddyfile:1 - Error during parsing: Glob pattern may only contain one wildcard (*), but has others: /[a-z]",
            ),
        ),
        (
            "fuzz: {$}",
            "import {$}",
            Err("Caddyfile:1 - Error during parsing: File to import not found: {$}"),
        ),
        (
            "fuzz: {%}",
            "import {%}",
            Err("Caddyfile:1 - Error during parsing: File to import not found: {%}"),
        ),
        (
            "fuzz: {$$}",
            "import {$$}",
            Err("Caddyfile:1 - Error during parsing: Import requires a non-empty filepath"),
        ),
        (
            "fuzz: {%%}",
            "import {%%}",
            Err("Caddyfile:1 - Error during parsing: File to import not found: {%%}"),
        ),
    ];
    for (name, input, want) in &cases {
        check(name, parse_any(input), want);
    }
}

#[test]
fn caddy_parse_all_table() {
    use Want::*;
    let cases: Vec<(&str, &str, Want)> = vec![
        (
            "single key",
            "localhost",
            Blocks(vec![blk(&["localhost"], &[])]),
        ),
        (
            "key with port",
            "localhost:1234",
            Blocks(vec![blk(&["localhost:1234"], &[])]),
        ),
        (
            "two blocks",
            "localhost:1234 {\n  }\n  localhost:2015 {\n  }",
            Blocks(vec![
                blk(&["localhost:1234"], &[]),
                blk(&["localhost:2015"], &[]),
            ]),
        ),
        (
            "comma keys",
            "localhost:1234, http://host2",
            Blocks(vec![blk(&["localhost:1234", "http://host2"], &[])]),
        ),
        (
            "trailing comma at EOF",
            "localhost:1234, http://host2,",
            Err("Caddyfile:1 - Error during parsing: Unexpected EOF"),
        ),
        (
            "two blocks with comma keys",
            "http://host1.com, http://host2.com {\n  }\n  https://host3.com, https://host4.com {\n  }",
            Blocks(vec![
                blk(&["http://host1.com", "http://host2.com"], &[]),
                blk(&["https://host3.com", "https://host4.com"], &[]),
            ]),
        ),
    ];
    for (name, input, want) in &cases {
        check(name, parse_any(input), want);
    }
}

#[test]
fn coredns_grammar_table() {
    use Want::*;
    let cases: Vec<(&str, &str, Want)> = vec![
        (
            "one-line block is rejected",
            ". { whoami }\n",
            Err(
                "Corefile:1 - Error during parsing: Unexpected '}' because no matching opening brace",
            ),
        ),
        (
            "unknown directive",
            ". {\n foo\n}\n",
            Err("Corefile:2 - Error during parsing: Unknown directive 'foo'"),
        ),
        (
            "unknown directive in a later block",
            ". {\n whoami\n}\nexample.org {\n  log\n  bogus x\n}\n",
            Err("Corefile:6 - Error during parsing: Unknown directive 'bogus'"),
        ),
        (
            "missing closing brace",
            ". {\n whoami\n",
            Err("Corefile:2 - Syntax error: Unexpected token 'whoami', expecting '}'"),
        ),
        (
            "only an opening brace",
            ". {",
            Err("Corefile:1 - Syntax error: Unexpected token '{', expecting '}'"),
        ),
        (
            "brace on the next line",
            ".\n{\n whoami\n}\n",
            Blocks(vec![blk(&["."], &[("whoami", 1)])]),
        ),
        (
            "directives grouped by name in first-appearance order",
            ". {\n log a\n whoami\n log b {\n  c\n }\n errors\n}\n",
            Blocks(vec![blk(
                &["."],
                &[("log", 7), ("whoami", 1), ("errors", 1)],
            )]),
        ),
        (
            "stray closing brace ends a braceless block",
            ".\nwhoami\n}\nx.org {\n log\n}\n",
            Blocks(vec![
                blk(&["."], &[("whoami", 1)]),
                blk(&["x.org"], &[("log", 1)]),
            ]),
        ),
        (
            "next block may start on the closing line",
            "a {\n} b {\n whoami\n}\n",
            Blocks(vec![blk(&["a"], &[]), blk(&["b"], &[("whoami", 1)])]),
        ),
        (
            "block without keys is dropped",
            "{\n whoami\n}\n. {\n}\n",
            Blocks(vec![blk(&["."], &[])]),
        ),
        (
            "empty quoted key skipped, comma word kept",
            "\"\",x {\n}\n",
            Blocks(vec![blk(&[",x"], &[])]),
        ),
        (
            "lone comma gives an empty key",
            "a,\n,\nb\n",
            Blocks(vec![blk(&["a", "", "b"], &[])]),
        ),
        (
            "comma key then brace",
            ", {\n}\n",
            Err(
                "Corefile:1 - Error during parsing: Expected another address but had '{' - check for extra comma",
            ),
        ),
        (
            "brace on a new line joins the previous directive",
            ". {\n log\n {\n  whoami\n }\n}\n",
            Blocks(vec![blk(&["."], &[("log", 4)])]),
        ),
        (
            "sub-block closed on its own line",
            ". {\n cache { }\n}\n",
            Blocks(vec![blk(&["."], &[("cache", 3)])]),
        ),
        (
            "missing block brace accepted when last token closes a sub-block",
            ". {\n log {\n}\n",
            Blocks(vec![blk(&["."], &[("log", 3)])]),
        ),
        (
            "closing brace at nesting 0 after sub-block",
            ". {\n log {\n } }\n}\n",
            Err(
                "Corefile:3 - Error during parsing: Unexpected '}' because no matching opening brace",
            ),
        ),
        (
            "unbalanced sub-block at EOF",
            ". {\n log {\n  x\n",
            Err("Corefile:3 - Error during parsing: Unexpected EOF"),
        ),
        (
            "import not first on the line is an argument",
            ". {\n log import x\n}\n",
            Blocks(vec![blk(&["."], &[("log", 3)])]),
        ),
        (
            "multi-line quoted argument keeps the directive going",
            ". {\n log \"a\nb\" c\n whoami\n}\n",
            Blocks(vec![blk(&["."], &[("log", 3), ("whoami", 1)])]),
        ),
        (
            "token after a multi-line quote starts a new directive",
            ". {\n log \"a\nb\"\n c\n}\n",
            Err("Corefile:4 - Error during parsing: Unknown directive 'c'"),
        ),
        (
            "comment-only file",
            "# nothing here\n   # at all\n",
            Blocks(vec![]),
        ),
        (
            "keys only at EOF, snippet-looking key is a server key",
            "(s) whoami",
            Blocks(vec![blk(&["(s)", "whoami"], &[])]),
        ),
        (
            "import argument missing",
            ". {\n whoami\n import\n}\n",
            Err(
                "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'import'",
            ),
        ),
        (
            "import argument empty",
            ". {\n import \"\"\n}\n",
            Err("Corefile:2 - Error during parsing: Import requires a non-empty filepath"),
        ),
    ];
    for (name, input, want) in &cases {
        check(name, parse_coredns(input), want);
    }
}

#[test]
fn snippet_table() {
    use Want::*;
    let cases: Vec<(&str, &str, Want)> = vec![
        (
            "snippet used in a block",
            "(common) {\n  errors stderr\n  log foo\n}\nexample.com {\n  import common\n}\n",
            Blocks(vec![blk(&["example.com"], &[("errors", 2), ("log", 2)])]),
        ),
        (
            "snippet alone is not a server",
            "(s) {\n whoami\n}\n",
            Blocks(vec![]),
        ),
        (
            "redeclaration",
            "(s) {\n whoami\n}\n(s) {\n log\n}\n",
            Err(
                "Corefile:4 - Error during parsing: redeclaration of previously declared snippet s",
            ),
        ),
        (
            "snippet needs braces",
            "(s)\n. {\n}\n",
            Err("Corefile:2 - Syntax error: Unexpected token '.', expecting '{'"),
        ),
        (
            "unterminated snippet",
            "(s) {\n whoami\n",
            Err("Corefile:2 - Syntax error: Unexpected token 'whoami', expecting '}'"),
        ),
        (
            "direct self import",
            "\n(loop) {\nimport loop\n}\nimport loop\n",
            Err("Corefile:4 - Error during parsing: maximum snippet import depth (10000) exceeded"),
        ),
        (
            "self import after a nested block",
            "\n(loop) {\n{ }\nimport loop\n}\nimport loop\n",
            Err("Corefile:5 - Error during parsing: maximum snippet import depth (10000) exceeded"),
        ),
        (
            "mutual snippet recursion hits the cap",
            "(s) {\n import t\n}\n(t) {\n import s\n}\n. {\n import s\n}\n",
            Err("Corefile:5 - Error during parsing: maximum snippet import depth (10000) exceeded"),
        ),
        (
            "snippet imported twice through another snippet",
            "(s) {\n whoami\n}\n(t) {\n import s\n import s\n}\n. {\n import t\n}\n",
            Blocks(vec![blk(&["."], &[("whoami", 2)])]),
        ),
        (
            "snippet inside a directive sub-block",
            "(s) {\n x y\n}\n. {\n log a {\n  import s\n }\n whoami\n}\n",
            Blocks(vec![blk(&["."], &[("log", 6), ("whoami", 1)])]),
        ),
        (
            "snippet holding server blocks",
            "(blocks) {\n}\n(srv) {\na.org {\n whoami\n}\n}\nimport srv\n",
            Blocks(vec![blk(&["a.org"], &[("whoami", 1)])]),
        ),
    ];
    for (name, input, want) in &cases {
        check(name, parse_coredns(input), want);
    }
}

#[test]
fn directive_tokens_hold_every_occurrence_with_braces() {
    let blocks = parse_coredns(". {\n log a\n whoami\n log b {\n  class denial\n }\n}\n").unwrap();
    let b = &blocks[0];
    assert_eq!(
        dir_texts(b, "log"),
        vec!["log", "a", "log", "b", "{", "class", "denial", "}"]
    );
    let lines: Vec<u32> = b
        .directive("log")
        .unwrap()
        .tokens
        .iter()
        .map(|t| t.line)
        .collect();
    assert_eq!(lines, vec![2, 2, 4, 4, 4, 5, 5, 6]);
    assert!(
        b.directive("log")
            .unwrap()
            .tokens
            .iter()
            .all(|t| &*t.file == "Corefile")
    );
}

#[test]
fn key_tokens_carry_positions() {
    let blocks = parse_with("/etc/Corefile", "a,\n  b c {\n}\n", &coredns_directive, &[]).unwrap();
    let k: Vec<(String, u32, String)> = blocks[0]
        .keys
        .iter()
        .map(|t| (t.text.clone(), t.line, t.file.to_string()))
        .collect();
    assert_eq!(
        k,
        vec![
            ("a".to_owned(), 1, "/etc/Corefile".to_owned()),
            ("b".to_owned(), 2, "/etc/Corefile".to_owned()),
            ("c".to_owned(), 2, "/etc/Corefile".to_owned()),
        ]
    );
}

#[test]
fn error_accessors() {
    let e = parse_coredns(". {\n foo\n}\n").unwrap_err();
    assert_eq!(e.file(), Some("Corefile"));
    assert_eq!(e.line(), Some(2));
    assert_eq!(e.message(), "Unknown directive 'foo'");
}

#[test]
fn never_panics_on_garbage() {
    let inputs: &[&[u8]] = &[
        b"}}}}",
        b"{{{{",
        b"import",
        b"import import import",
        b"(a) {\n(b) {\n}\n",
        b". {\n\"\n",
        b"\xff\xfe\x00{\n}",
        b",,,,",
        b"(x) {\nimport \n}",
        b"a {\n b {\n c {\n } } }",
    ];
    for input in inputs {
        let opts = ferrodns_corefile::ParseOptions {
            is_directive: &any_directive,
            env: &|_| None,
        };
        let _ = ferrodns_corefile::parse("Corefile", input, &opts);
    }
}
