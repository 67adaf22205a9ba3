//! The README's run command: `corefile-examples/quickstart.Corefile` on 127.0.0.1:1053,
//! answering `dig @127.0.0.1 -p 1053 whoami.example.org` over UDP and TCP.

mod common;

use std::process::Command;

use common::*;

fn dig(args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(args)
        .output()
        .expect("dig is needed (cargo xtask ci installs bind9-dnsutils)");
    assert!(
        out.status.success(),
        "dig {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn quickstart_answers_dig_over_udp_and_tcp() {
    let conf = examples_dir().join("quickstart.Corefile");
    let srv = Running::start_in(
        TempDir::new("readme"),
        &["-conf", conf.to_str().unwrap()],
        &[],
    );
    assert_eq!(srv.banner, vec![".:1053 on 127.0.0.1"]);
    for extra in [None, Some("+tcp")] {
        let mut args = vec![
            "@127.0.0.1",
            "-p",
            "1053",
            "whoami.example.org",
            "+time=5",
            "+tries=1",
        ];
        args.extend(extra);
        let out = dig(&args);
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(out.contains("flags: qr aa rd"), "{out}");
        assert!(
            out.contains("whoami.example.org.\t0\tIN\tA\t127.0.0.1"),
            "{out}"
        );
        let proto = if extra.is_some() { "_tcp" } else { "_udp" };
        assert!(
            out.contains(&format!("{proto}.whoami.example.org.")),
            "{out}"
        );
    }
}

/// Every `~~~ corefile` (or ```` ``` corefile ````) block of every plugin README is accepted by
/// `-validate` (CoreDNS's readme_test starts each such block).
#[test]
fn plugin_readme_examples_are_valid() {
    let plugins = examples_dir().join("../plugins");
    let mut checked = 0;
    for entry in std::fs::read_dir(&plugins).unwrap() {
        let readme = entry.unwrap().path().join("README.md");
        let Ok(text) = std::fs::read_to_string(&readme) else {
            continue;
        };
        let mut block: Option<String> = None;
        for line in text.lines() {
            match &mut block {
                None if is_fence(line) && line.contains("corefile") => block = Some(String::new()),
                Some(b) if is_fence(line) => {
                    let d = TempDir::new("readme-example");
                    let conf = d.write("Corefile", b);
                    let (code, _, err) =
                        run_to_end(&["-conf", conf.to_str().unwrap(), "-validate"], &d.0);
                    assert_eq!(code, 0, "{}:\n{b}\n{err}", readme.display());
                    checked += 1;
                    block = None;
                }
                Some(b) => {
                    b.push_str(line);
                    b.push('\n');
                }
                None => {}
            }
        }
    }
    assert!(checked >= 8, "only {checked} README examples found");
}

fn is_fence(line: &str) -> bool {
    let l = line.trim_start();
    l.starts_with("~~~") || l.starts_with("```")
}
