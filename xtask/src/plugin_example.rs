//! CI's check of the plugin author's path: the example plugin outside the workspace
//! (`examples/plugins/greet`) passes its own tests, `cargo xtask build --plugin-cfg` builds a
//! binary with it, `-plugins` lists it, and a query to that binary gets the plugin's answer.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::ci::step;

const EXAMPLE: &str = "examples/plugins/greet";

/// Stops the server when the check ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run the check from the project's root.
pub fn check(root: &Path) -> Result<()> {
    let cargo = crate::cargo();
    // As its author runs them: `cargo test`, in the debug profile. Its workspace resolves other
    // features than the project's, so a release build would reuse little of target/release and
    // take longer than this one (about 45 s against 75 s on two cores).
    step(
        "plugin example: its own tests",
        Command::new(&cargo)
            .args(["test", "--manifest-path"])
            .arg(root.join(EXAMPLE).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(root.join("target/plugin-example"))
            .current_dir(root),
    )?;
    let started = Instant::now();
    println!("==> plugin example: cargo xtask build --plugin-cfg {EXAMPLE}/plugin.cfg");
    let binary = crate::plugin_build::build(&root.join(EXAMPLE).join("plugin.cfg"))?;

    let listed = Command::new(&binary)
        .arg("-plugins")
        .output()
        .with_context(|| format!("running {} -plugins", binary.display()))?;
    let listed = String::from_utf8_lossy(&listed.stdout);
    if !listed
        .lines()
        .any(|l| l.trim().trim_start_matches("dns.") == "greet")
    {
        bail!(
            "{} -plugins does not list greet:\n{listed}",
            binary.display()
        );
    }

    let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let dir = root.join("target/plugin-build");
    let corefile = dir.join("Corefile.ci");
    std::fs::write(
        &corefile,
        format!(
            ".:{port} {{\n    greet example.org {{\n        text \"hello from ci\"\n    }}\n}}\n"
        ),
    )?;
    let _server = Running(
        Command::new(&binary)
            .arg("-conf")
            .arg(&corefile)
            .stdout(Stdio::null())
            .current_dir(&dir)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?,
    );
    let client = UdpSocket::bind("127.0.0.1:0")?;
    client.set_read_timeout(Some(Duration::from_millis(200)))?;
    // A TXT query (type 16).
    let query = crate::bench::procs::query(0x4242, "hi.example.org", 16);
    // The server answers once it listens: ask until it does, for at most 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    let reply = loop {
        if Instant::now() > deadline {
            bail!("the binary built with greet did not answer on 127.0.0.1:{port} within 10 s");
        }
        client.send_to(&query, ("127.0.0.1", port))?;
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            break buf[..n].to_vec();
        }
    };
    let want = b"hello from ci, 127.0.0.1";
    if reply.get(..2) != Some(&[0x42, 0x42][..]) || !reply.windows(want.len()).any(|w| w == want) {
        bail!("greet's answer missing from the reply: {reply:02x?}");
    }
    println!(
        "==> plugin example: built, listed by -plugins, answered \"hello from ci, 127.0.0.1\": ok in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
