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
