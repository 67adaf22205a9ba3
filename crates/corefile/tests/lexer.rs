//! Lexer cases (shapes of Caddy's TestLexer / TestAllTokens plus CoreDNS
//! specifics), checked against `tokenize`.

use ferrodns_corefile::tokenize;

fn lex(input: &[u8]) -> Vec<(String, u32)> {
    tokenize("Corefile", input)
        .into_iter()
        .map(|t| (t.text, t.line))
        .collect()
}

fn exp(v: &[(&str, u32)]) -> Vec<(String, u32)> {
    v.iter().map(|(t, l)| ((*t).to_owned(), *l)).collect()
}

#[test]
fn lexer_table() {
    type Case = (&'static str, &'static [u8], Vec<(String, u32)>);
    let cases: Vec<Case> = vec![
        ("single word", b"host:123", exp(&[("host:123", 1)])),
        (
            "blank lines count",
            b"host:123\n\n\t\t\t\t\tdirective",
            exp(&[("host:123", 1), ("directive", 3)]),
        ),
        (
            "block over lines",
            b"host:123 {\n\t\t\t\t\t\tdirective\n\t\t\t\t\t}",
            exp(&[("host:123", 1), ("{", 1), ("directive", 2), ("}", 3)]),
        ),
        (
            "block on one line",
            b"host:123 { directive }",
            exp(&[("host:123", 1), ("{", 1), ("directive", 1), ("}", 1)]),
        ),
        (
            "comments",
            b"host:123 {\n\t#comment\n\tdirective\n\t# comment\n\tfoobar # another comment\n}",
            exp(&[("host:123", 1), ("{", 1), ("directive", 3), ("foobar", 5), ("}", 6)]),
        ),
        (
            "quoted value",
            b"a \"quoted value\" b\n\t\t\t\t\tfoobar",
            exp(&[("a", 1), ("quoted value", 1), ("b", 1), ("foobar", 2)]),
        ),
        (
            "escaped quotes",
            b"A \"quoted \\\"value\\\" inside\" B",
            exp(&[("A", 1), ("quoted \"value\" inside", 1), ("B", 1)]),
        ),
        (
            "other backslash kept",
            b"\"don't\\escape\"",
            exp(&[("don't\\escape", 1)]),
        ),
        (
            "double backslash kept",
            b"\"don't\\\\escape\"",
            exp(&[("don't\\\\escape", 1)]),
        ),
        (
            "multi-line quoted token keeps its first line",
            b"A \"quoted value with line\n\t\t\t\t\tbreak inside\" {\n\t\t\t\t\t\tfoobar\n\t\t\t\t\t}",
            exp(&[
                ("A", 1),
                ("quoted value with line\n\t\t\t\t\tbreak inside", 1),
                ("{", 2),
                ("foobar", 3),
                ("}", 4),
            ]),
        ),
        (
            "windows path",
            b"\"C:\\php\\php-cgi.exe\"",
            exp(&[("C:\\php\\php-cgi.exe", 1)]),
        ),
        (
            "empty quoted token",
            b"empty \"\" string",
            exp(&[("empty", 1), ("", 1), ("string", 1)]),
        ),
        (
            "CR characters skipped",
            b"skip those\r\nCR characters",
            exp(&[("skip", 1), ("those", 1), ("CR", 2), ("characters", 2)]),
        ),
        ("leading BOM", b"\xEF\xBB\xBF:8080", exp(&[(":8080", 1)])),
        (
            "all tokens",
            b"a b c\nd e",
            exp(&[("a", 1), ("b", 1), ("c", 1), ("d", 2), ("e", 2)]),
        ),
        ("empty input", b"", exp(&[])),
        ("only newline", b"\n", exp(&[])),
        ("only space", b" ", exp(&[])),
        ("tab and newline", b"\t\n", exp(&[])),
        (
            "comment inside a word ends the word only",
            b"foo#bar baz\nqux",
            exp(&[("foo", 1), ("baz", 1), ("qux", 2)]),
        ),
        (
            "comment at token start runs to end of line",
            b"#only comment \"x\" {\nx # y z\nw",
            exp(&[("x", 2), ("w", 3)]),
        ),
        ("CR inside a word is deleted", b"a\rb", exp(&[("ab", 1)])),
        ("CR inside quotes is kept", b"\"a\rb\"", exp(&[("a\rb", 1)])),
        (
            "quote inside a word is literal",
            b"x\"y z\"w",
            exp(&[("x\"y", 1), ("z\"w", 1)]),
        ),
        (
            "closing quote ends the token",
            b"\"a\"b",
            exp(&[("a", 1), ("b", 1)]),
        ),
        (
            "braces glued to words are words",
            b"{} foo} {bar",
            exp(&[("{}", 1), ("foo}", 1), ("{bar", 1)]),
        ),
        (
            "unterminated quote runs to end of input",
            b"a \"abc\nd",
            exp(&[("a", 1), ("abc\nd", 1)]),
        ),
        ("lone quote at end yields nothing", b"a \"", exp(&[("a", 1)])),
        (
            "pending escape at end is dropped",
            b"\"abc\\",
            exp(&[("abc", 1)]),
        ),
        (
            "escaped newline in quotes counts the line",
            b"\"a\\\nb\" c",
            exp(&[("a\\\nb", 1), ("c", 2)]),
        ),
        (
            "invalid UTF-8 becomes one U+FFFD per byte",
            b"a\xffb \xe2\x82",
            exp(&[("a\u{FFFD}b", 1), ("\u{FFFD}\u{FFFD}", 1)]),
        ),
        (
            "BOM later in the input is a character",
            "a \u{FEFF}".as_bytes(),
            exp(&[("a", 1), ("\u{FEFF}", 1)]),
        ),
        (
            "unicode white space separates",
            "a\u{a0}b\u{2028}c".as_bytes(),
            exp(&[("a", 1), ("b", 1), ("c", 1)]),
        ),
        (
            "backslash pair before closing quote",
            b"\"a\\\\\" b",
            exp(&[("a\\\\", 1), ("b", 1)]),
        ),
    ];
    for (name, input, want) in cases {
        assert_eq!(lex(input), want, "case {name:?}");
    }
}

#[test]
fn tokens_carry_the_given_file_name() {
    let toks = tokenize("/etc/coredns/Corefile", b"a\nb");
    assert_eq!(toks.len(), 2);
    assert!(toks.iter().all(|t| &*t.file == "/etc/coredns/Corefile"));
    assert_eq!(toks[1].line, 2);
}
