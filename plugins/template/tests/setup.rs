//! Setup tests ported from CoreDNS's plugin/template/setup_test.go (TestSetup, TestSetupParse,
//! TestSetupParseLargeRegex), with the exact error texts where CoreDNS's are fixed.

use ferrodns_plugin_template::DESCRIPTOR;
use ferrodns_plugin_test as testkit;

fn check(input: &str) -> Result<(), String> {
    testkit::setup(&DESCRIPTOR, input)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn coredns_setup() {
    assert!(check("template ANY ANY {\n\t\trcode\n\t}").is_err());
    assert!(check("template ANY ANY {\n\t\trcode NXDOMAIN\n\t}").is_ok());
}

#[test]
fn coredns_setup_parse_table() {
    let cases: &[(&str, bool)] = &[
        ("template", true),
        ("template X", true),
        ("template ANY", true),
        ("template ANY X", true),
        ("template ANY ANY .* {\n\t\t\t\tnotavailable\n\t\t\t}", true),
        ("template ANY ANY {\n\t\t\t\tanswer\n\t\t\t}", true),
        ("template ANY ANY {\n\t\t\t\tadditional\n\t\t\t}", true),
        ("template ANY ANY {\n\t\t\t\trcode\n\t\t\t}", true),
        ("template ANY ANY {\n\t\t\t\trcode UNDEFINED\n\t\t\t}", true),
        ("template ANY ANY {\n\t\t\t\tanswer\t\"{{\"\n\t\t\t}", true),
        (
            "template ANY ANY {\n\t\t\t\tadditional \"{{\"\n\t\t\t}",
            true,
        ),
        (
            "template ANY ANY {\n\t\t\t\tauthority \"{{\"\n\t\t\t}",
            true,
        ),
        (
            "template ANY ANY {\n\t\t\t\tanswer \"{{ notAFunction }}\"\n\t\t\t}",
            true,
        ),
        (
            "template ANY ANY {\n\t\t\t\tanswer \"{{ parseInt }}\"\n\t\t\t\tadditional \"{{ parseInt }}\"\n\t\t\t\tauthority \"{{ parseInt }}\"\n\t\t\t}",
            false,
        ),
        ("template ANY ANY (?P<x>", false),
        ("template ANY ANY {\n\n\t\t\t}", false),
        (
            "template ANY A example.com {\n\t\t\t\tmatch ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]com\n\t\t\t\tanswer \"{{ .Name }} A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Grup.d }}.\"\n\t\t\t\tfallthrough\n\t\t\t}",
            false,
        ),
        (
            "template ANY AAAA example.com {\n\t\t\t\tmatch ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]com\n\t\t\t\tauthority \"example.com 60 IN SOA ns.example.com hostmaster.example.com (1 60 60 60 60)\"\n\t\t\t\tfallthrough\n\t\t\t}",
            false,
        ),
        (
            "template IN ANY example.com {\n\t\t\t\tmatch \"[.](example[.]com[.]dc1[.]example[.]com[.])$\"\n\t\t\t\trcode NXDOMAIN\n\t\t\t\tauthority \"{{ index .Match 1 }} 60 IN SOA ns.{{ index .Match 1 }} hostmaster.example.com (1 60 60 60 60)\"\n\t\t\t\tfallthrough example.com\n\t\t\t}",
            false,
        ),
        (
            "template IN A example {\n\t\t\t\tmatch ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$\n\t\t\t\tanswer \"{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}\"\n\t\t\t}\n\t\t\ttemplate IN MX example. {\n\t\t\t\tmatch ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$\n\t\t\t\tanswer \"{{ .Name }} 60 IN MX 10 {{ .Name }}\"\n\t\t\t\tadditional \"{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}\"\n\t\t\t}",
            false,
        ),
        (
            "template IN A example {\n\t\t\t\tmatch ^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$\n\t\t\t\tanswer \"{{ .Name }} 3600 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.{{ parseInt .Group.d 16 8 }}\"\n\t\t\t}",
            false,
        ),
        (
            "template IN MX example {\n\t\t\t\t\tmatch ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$\n\t\t\t\t\tanswer \"{{ .Name }} 60 IN MX 10 {{ .Name }}\"\n\t\t\t\t\tadditional \"{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}\"\n\t\t\t\t\tauthority  \"example. 60 IN NS ns0.example.\"\n\t\t\t\t\tauthority  \"example. 60 IN NS ns1.example.\"\n\t\t\t\t\tadditional \"ns0.example. 60 IN A 203.0.113.8\"\n\t\t\t\t\tadditional \"ns1.example. 60 IN A 198.51.100.8\"\n\t\t\t\t}",
            false,
        ),
        (
            "template ANY ANY invalid {\n\t\t\t\t\trcode NXDOMAIN\n\t\t\t\t\tauthority \"invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)\"\n\t\t\t\t\tederror 21 \"Blocked according to RFC2606\"\n\t\t\t  \t}",
            false,
        ),
        (
            "template ANY ANY invalid {\n\t\t\t\t\trcode NXDOMAIN\n\t\t\t\t\tauthority \"invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)\"\n\t\t\t\t\tederror invalid \"Blocked according to RFC2606\"\n\t\t\t  \t}",
            true,
        ),
        (
            "template ANY ANY invalid {\n\t\t\t\t\trcode NXDOMAIN\n\t\t\t\t\tauthority \"invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)\"\n\t\t\t\t\tederror too many arguments\n\t\t\t  \t}",
            true,
        ),
    ];
    for (i, (input, should_err)) in cases.iter().enumerate() {
        let r = check(input);
        assert_eq!(r.is_err(), *should_err, "case {i}: {input:?} -> {r:?}");
    }
}

#[test]
fn coredns_large_regex() {
    let input = format!(
        "template ANY A example.com {{\n\t\tmatch {}\n\t}}",
        "a".repeat(10001)
    );
    let e = check(&input).unwrap_err();
    assert!(e.contains("too long"), "{e}");
    assert_eq!(
        e,
        "plugin/template: Testfile:3 - Error during parsing: regex pattern too long: 10001 > 10000"
    );
}

#[test]
fn exact_error_texts() {
    let cases: &[(&str, &str)] = &[
        (
            "template",
            "plugin/template: Testfile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'template'",
        ),
        (
            "template X",
            "plugin/template: Testfile:2 - Error during parsing: invalid query class X",
        ),
        (
            "template IN X",
            "plugin/template: Testfile:2 - Error during parsing: invalid RR class X",
        ),
        (
            "template in A",
            "plugin/template: Testfile:2 - Error during parsing: invalid query class in",
        ),
        (
            "template IN A {\n  answer \"{{\"\n}",
            "plugin/template: Testfile:3 - Error during parsing: could not compile template: {{, template: answer:1: unclosed action",
        ),
        (
            "template IN A {\n  additional \"{{ nope }}\"\n}",
            "plugin/template: Testfile:3 - Error during parsing: could not compile template: {{ nope }}, template: additional:1: function \"nope\" not defined\n",
        ),
        (
            "template IN A {\n  rcode FOO\n}",
            "plugin/template: Testfile:3 - Error during parsing: unknown rcode FOO",
        ),
        (
            "template IN A {\n  ederror 70000\n}",
            "plugin/template: Testfile:3 - Error during parsing: error parsing extended DNS error code 70000, strconv.ParseUint: parsing \"70000\": value out of range\n",
        ),
        (
            "template IN A {\n  match (\n}",
            "plugin/template: Testfile:3 - Error during parsing: could not parse regex: (, error parsing regexp: missing closing ): `(`",
        ),
        (
            "template IN A {\n  bogus\n}",
            "plugin/template: Testfile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'bogus'",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(check(input).unwrap_err(), *want, "{input:?}");
    }
}

#[test]
fn upstream_is_accepted_and_ignored() {
    assert!(check("template IN A {\n  upstream 8.8.8.8\n}").is_ok());
}
