//! Go regular expressions: our reading of random patterns against what Go 1.26's
//! `regexp.Compile` said about them (error text, or which subjects match).

use ferrodns_go::regexp;

const SUBJECTS: [&str; 11] = [
    "", "a", "ab", "aB\n", "x{1}", "é", "[]", "a-b", "\u{212a}", "A1_ ", "aaa",
];

fn unhex(s: &str) -> String {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect();
    String::from_utf8(bytes).expect("utf-8")
}

#[test]
fn agrees_with_go() {
    let corpus = include_str!("go_regexp_corpus.txt");
    let mut checked = 0;
    for line in corpus.lines().filter(|l| !l.starts_with('#')) {
        let (hex, want) = line.split_once('\t').expect("tab");
        let pattern = unhex(hex);
        let got = match regexp::compile(&pattern) {
            Ok(re) => {
                let bits: String = SUBJECTS
                    .iter()
                    .map(|s| if re.is_match(s) { '1' } else { '0' })
                    .collect();
                format!("ok {bits}")
            }
            Err(e) => e,
        };
        assert_eq!(got.replace('\n', "\\n"), want, "pattern {pattern:?}");
        checked += 1;
    }
    assert_eq!(checked, 800);
}
