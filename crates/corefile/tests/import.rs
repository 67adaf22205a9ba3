//! `import` of files, globs and snippets, with real temporary directories.

mod common;

use common::*;

/// Parses `input` as the file `root` inside `dir` with CoreDNS's directives.
fn parse_in(dir: &TempDir, root: &str, input: &str) -> ParseResult {
    let path = dir.write(root, input);
    parse_with(&path_str(&path), input, &coredns_directive, &[])
}

fn parse_in_any(dir: &TempDir, root: &str, input: &str) -> ParseResult {
    let path = dir.write(root, input);
    parse_with(&path_str(&path), input, &any_directive, &[])
}

fn err_text(r: ParseResult) -> String {
    match r {
        Ok(b) => panic!("expected an error, got {b:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn caddy_import_table() {
    let dir = TempDir::new("caddy-import");
    dir.write("testdata/import_test1.txt", "dir2 arg1 arg2\ndir3");
    dir.write(
        "testdata/import_test2.txt",
        "host1 {\n\tdir1\n\tdir2 arg1\n}",
    );
    let root = dir.file("Caddyfile");
    type Case = (
        &'static str,
        &'static str,
        Result<Vec<BlockSummary>, String>,
    );
    let cases: Vec<Case> = vec![
        (
            "import of directives",
            "localhost\n  dir1 arg1\n  import testdata/import_test1.txt",
            Ok(vec![(
                owned(&["localhost"]),
                counts(&[("dir1", 2), ("dir2", 3), ("dir3", 1)]),
            )]),
        ),
        (
            "import of a whole block",
            "import testdata/import_test2.txt",
            Ok(vec![(
                owned(&["host1"]),
                counts(&[("dir1", 1), ("dir2", 2)]),
            )]),
        ),
        (
            "import with two arguments",
            "import testdata/import_test1.txt testdata/import_test2.txt",
            Err(format!(
                "{root}:1 - Error during parsing: Import takes only one argument (glob pattern or file)"
            )),
        ),
        (
            "missing file",
            "import testdata/not_found.txt",
            Err(format!(
                "{root}:1 - Error during parsing: File to import not found: testdata/not_found.txt"
            )),
        ),
        ("glob without match", "import notfound/*", Ok(vec![])),
        (
            "missing file in missing dir",
            "import notfound/file.conf",
            Err(format!(
                "{root}:1 - Error during parsing: File to import not found: notfound/file.conf"
            )),
        ),
    ];
    for (name, input, want) in cases {
        let got = parse_in_any(&dir, "Caddyfile", input);
        match want {
            Ok(w) => {
                let blocks = got.unwrap_or_else(|e| panic!("case {name:?}: {e}"));
                let g: Vec<_> = blocks
                    .iter()
                    .map(|b| (key_texts(b), dir_counts(b)))
                    .collect();
                assert_eq!(g, w, "case {name:?}");
            }
            Err(w) => assert_eq!(err_text(got), w, "case {name:?}"),
        }
    }
}

#[test]
fn glob_import_in_lexical_order() {
    let dir = TempDir::new("glob");
    dir.write(
        "testdata/import_glob0.txt",
        "glob0.host0 {\n\tdir2 arg1\n}\n\nglob0.host1 {\n}\n",
    );
    dir.write(
        "testdata/import_glob2.txt",
        "glob2.host0 {\n\tdir2 arg1\n}\n",
    );
    dir.write(
        "testdata/import_glob1.txt",
        "glob1.host0 {\n\tdir1\n\tdir2 arg1\n}\n",
    );
    let blocks = parse_in_any(&dir, "Caddyfile", "import testdata/import_glob*.txt").unwrap();
    assert_eq!(
        all_keys(&blocks),
        vec![
            owned(&["glob0.host0"]),
            owned(&["glob0.host1"]),
            owned(&["glob1.host0"]),
            owned(&["glob2.host0"])
        ]
    );
    let file = blocks[2].keys[0].file.to_string();
    assert_eq!(file, dir.file("testdata/import_glob1.txt"));
}

#[test]
fn directive_import_inside_sub_block() {
    let dir = TempDir::new("directive-import");
    dir.write("testdata/directive_import_test", "prop1 1\n\tprop2 2");
    let input = "localhost\n\tdir1\n\tproxy {\n\t\timport testdata/directive_import_test\n\t\ttransparent\n\t}";
    let blocks = parse_in_any(&dir, "Caddyfile", input).unwrap();
    assert_eq!(dir_counts(&blocks[0]), counts(&[("dir1", 1), ("proxy", 8)]));

    let missing =
        "localhost\n\tdir1\n\tproxy {\n\t\timport testdata/nonexistent_file\n\t\ttransparent\n\t}";
    assert_eq!(
        err_text(parse_in_any(&dir, "Caddyfile", missing)),
        format!(
            "{}:4 - Error during parsing: File to import not found: testdata/nonexistent_file",
            dir.file("Caddyfile")
        )
    );
}

#[test]
fn recursive_imports_relative_and_absolute() {
    let dir = TempDir::new("recursive");
    let f2 = dir.write("testdata/recursive_import_test2", "dir2 1");
    let check = |input: &str, what: &str| {
        let blocks =
            parse_in_any(&dir, "Caddyfile", input).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(all_keys(&blocks), vec![owned(&["localhost"])], "{what}");
        assert_eq!(
            dir_counts(&blocks[0]),
            counts(&[("dir1", 1), ("dir2", 2)]),
            "{what}"
        );
        assert_eq!(
            &*blocks[0].directives[1].tokens[0].file,
            path_str(&f2),
            "{what}"
        );
    };
    // the nested import is relative to the importing file's directory
    let f1 = dir.write(
        "testdata/recursive_import_test1",
        "localhost\n\t\tdir1\n\t\timport recursive_import_test2",
    );
    check(&format!("import {}", path_str(&f1)), "absolute+relative");
    check(
        "import testdata/recursive_import_test1",
        "relative+relative",
    );
    dir.write(
        "testdata/recursive_import_test1",
        &format!("localhost\n\t\tdir1\n\t\timport {}", path_str(&f2)),
    );
    check(&format!("import {}", path_str(&f1)), "absolute+absolute");
    check(
        "import testdata/recursive_import_test1",
        "relative+absolute",
    );
}

#[test]
fn import_token_as_argument_in_imported_file() {
    let dir = TempDir::new("ignore-import-arg");
    let f = dir.write(
        "other",
        "\n\t\thttp://example.com {\n\t\t\t# not an import directive\n\t\t\tbasicauth / import password\n\t\t}\n",
    );
    let blocks = parse_in_any(&dir, "Caddyfile", &format!("import {}", path_str(&f))).unwrap();
    assert_eq!(
        dir_texts(&blocks[0], "basicauth"),
        vec!["basicauth", "/", "import", "password"]
    );
}

#[test]
fn snippets_across_files() {
    let dir = TempDir::new("snippets-files");
    let user = dir.write(
        "user",
        "\n\t\thttp://example.com {\n\t\t\timport common\n\t\t}\n",
    );
    // defined in the root file, used in an imported file
    let blocks = parse_in_any(
        &dir,
        "Caddyfile",
        &format!(
            "\n\t\t(common) {{\n\t\t\tgzip foo\n\t\t}}\n\t\timport {}\n",
            path_str(&user)
        ),
    )
    .unwrap();
    assert_eq!(all_keys(&blocks), vec![owned(&["http://example.com"])]);
    assert_eq!(dir_counts(&blocks[0]), counts(&[("gzip", 2)]));
    // the snippet's tokens keep the position of their definition
    assert_eq!(
        &*blocks[0].directives[0].tokens[0].file,
        dir.file("Caddyfile")
    );
    assert_eq!(blocks[0].directives[0].tokens[0].line, 3);

    // defined in an imported file, used later in the root file
    dir.write("defs", "(common) {\n whoami\n}\n");
    let blocks = parse_in(&dir, "Corefile", "import defs\n. {\n import common\n}\n").unwrap();
    assert_eq!(dir_counts(&blocks[0]), counts(&[("whoami", 1)]));
    assert_eq!(&*blocks[0].directives[0].tokens[0].file, dir.file("defs"));

    // used before it is defined: it is a file name then
    let err = err_text(parse_in(
        &dir,
        "Corefile",
        ". {\n import later\n}\n(later) {\n whoami\n}\n",
    ));
    assert_eq!(
        err,
        format!(
            "{}:2 - Error during parsing: File to import not found: later",
            dir.file("Corefile")
        )
    );
}

#[test]
fn file_import_cycle_hits_the_cap() {
    let dir = TempDir::new("cycle");
    let a = dir.file("a.conf");
    let b = dir.file("b.conf");
    dir.write("a.conf", &format!("import {b}"));
    dir.write("b.conf", &format!("import {a}"));
    assert_eq!(
        err_text(parse_in(&dir, "Corefile", &format!("import {a}"))),
        format!("{b}:1 - Error during parsing: maximum file import depth (10000) exceeded")
    );
}

#[test]
fn many_files_through_one_glob() {
    let dir = TempDir::new("many");
    dir.mkdir("conf");
    for i in 0..100 {
        dir.write(&format!("conf/f_{i:03}"), "whoami\n");
    }
    let blocks = parse_in(&dir, "Corefile", ". {\n import conf/*\n}\n").unwrap();
    assert_eq!(dir_counts(&blocks[0]), counts(&[("whoami", 100)]));
    let files: Vec<String> = blocks[0].directives[0]
        .tokens
        .iter()
        .map(|t| t.file.to_string())
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
}

#[test]
fn import_errors_table() {
    let dir = TempDir::new("import-errors");
    dir.mkdir("sub");
    dir.mkdir("empty");
    dir.write("q.txt", "loop\n");
    let root = dir.file("Corefile");
    let d = dir.dir();
    let cases: Vec<(&str, String)> = vec![
        (
            ". {\n import sub\n}\n",
            format!("{root}:2 - Error during parsing: Could not import {d}/sub: is a directory"),
        ),
        (
            ". {\n import sub/*/*.conf\n}\n",
            format!(
                "{root}:2 - Error during parsing: Glob pattern may only contain one wildcard (*), but has others: {d}/sub/*/*.conf"
            ),
        ),
        (
            ". {\n import [q].txt\n}\n",
            format!(
                "{root}:2 - Error during parsing: Glob pattern may only contain one wildcard (*), but has others: {d}/[q].txt"
            ),
        ),
        (
            ". {\n import a[b\n}\n",
            format!(
                "{root}:2 - Error during parsing: Failed to use import pattern a[b: syntax error in pattern"
            ),
        ),
        (
            ". {\n import q\\\n}\n",
            format!(
                "{root}:2 - Error during parsing: Failed to use import pattern q\\: syntax error in pattern"
            ),
        ),
        (
            ". {\n whoami {\n  import q.txt }\n}\n",
            format!(
                "{root}:3 - Error during parsing: Import takes only one argument (glob pattern or file)"
            ),
        ),
        (
            ". {\n import missing.txt\n}\n",
            format!("{root}:2 - Error during parsing: File to import not found: missing.txt"),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            err_text(parse_in(&dir, "Corefile", input)),
            want,
            "input {input:?}"
        );
    }
    // a glob that matches nothing only warns
    let blocks = parse_in(&dir, "Corefile", ". {\n import empty/*\n import q]\n}\n").unwrap();
    assert_eq!(dir_counts(&blocks[0]), vec![]);
}

#[cfg(unix)]
#[test]
fn dangling_symlink_is_reported_by_open() {
    let dir = TempDir::new("dangling");
    std::os::unix::fs::symlink(dir.path.join("nowhere"), dir.path.join("dangling.txt")).unwrap();
    let d = dir.dir();
    assert_eq!(
        err_text(parse_in(&dir, "Corefile", ". {\n import dangling.txt\n}\n")),
        format!(
            "{}:2 - Error during parsing: Could not import {d}/dangling.txt: open {d}/dangling.txt: no such file or directory",
            dir.file("Corefile")
        )
    );
}

#[test]
fn import_positions_and_lines() {
    let dir = TempDir::new("positions");
    dir.write("once.txt", "log a");
    dir.write("blk.conf", "x.org {\n whoami\n}\n");
    dir.write("nested/inner.conf", "import ../once.txt\n");
    let d = dir.dir();
    // the same one-line file twice: the second copy is "on the same line"
    let blocks = parse_in(
        &dir,
        "Corefile",
        ". {\n import once.txt\n import once.txt\n}\n",
    )
    .unwrap();
    assert_eq!(dir_texts(&blocks[0], "log"), vec!["log", "a", "log", "a"]);
    // imported tokens never continue a line of the importing file
    let blocks = parse_in(
        &dir,
        "Corefile",
        ". {\n log {\n  import once.txt\n }\n whoami\n}\n",
    )
    .unwrap();
    assert_eq!(dir_counts(&blocks[0]), counts(&[("log", 5), ("whoami", 1)]));
    // imports in imported files are relative to that file
    let blocks = parse_in(&dir, "Corefile", ". {\n import nested/inner.conf\n}\n").unwrap();
    assert_eq!(
        &*blocks[0].directives[0].tokens[0].file,
        format!("{d}/once.txt")
    );
    // import in key position, also after a trailing comma
    let blocks = parse_in(&dir, "Corefile", "y.org,\nimport blk.conf\n").unwrap();
    assert_eq!(all_keys(&blocks), vec![owned(&["y.org", "x.org"])]);
    let blocks = parse_in(&dir, "Corefile", "import blk.conf\nimport blk.conf\n").unwrap();
    assert_eq!(
        all_keys(&blocks),
        vec![owned(&["x.org"]), owned(&["x.org"])]
    );
    // absolute paths are cleaned for token positions
    let blocks = parse_in(
        &dir,
        "Corefile",
        &format!(". {{\n import {d}//nested/../once.txt\n}}\n"),
    )
    .unwrap();
    assert_eq!(
        &*blocks[0].directives[0].tokens[0].file,
        format!("{d}/once.txt")
    );
    // errors inside an imported file name that file
    dir.write("bad.conf", "\n\nbogus\n");
    assert_eq!(
        err_text(parse_in(&dir, "Corefile", ". {\n import bad.conf\n}\n")),
        format!("{d}/bad.conf:3 - Error during parsing: Unknown directive 'bogus'")
    );
}

#[test]
fn root_file_without_directory_resolves_from_cwd() {
    // "Corefile" and "stdin" have no directory part: imports are relative to
    // the current directory. A missing file must name the pattern as written.
    for name in ["Corefile", "stdin"] {
        let r = parse_with(
            name,
            ". {\n import surely-missing-ferrodns-file.conf\n}\n",
            &coredns_directive,
            &[],
        );
        assert_eq!(
            err_text(r),
            format!(
                "{name}:2 - Error during parsing: File to import not found: surely-missing-ferrodns-file.conf"
            )
        );
    }
    let r = parse_with(
        "Corefile",
        ". {\n import */*/*.x\n}\n",
        &coredns_directive,
        &[],
    );
    let msg = err_text(r);
    assert!(msg.starts_with("Corefile:2 - Error during parsing: Glob pattern may only contain one wildcard (*), but has others: /"), "{msg}");
    assert!(msg.ends_with("/*/*/*.x"), "{msg}");
}
