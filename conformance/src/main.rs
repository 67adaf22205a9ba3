//! `ferrodns-conformance`: run the conformance cases (normally through `cargo xtask conformance`,
//! which builds everything and finds the reference CoreDNS first).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ferrodns_conformance::{case, runner};

const USAGE: &str = "usage: ferrodns-conformance --coredns PATH --ferrodns PATH \
[--cases DIR] [--selftest] [--jobs N] [--quiet] [--kube-apiserver PATH --kine PATH] [FILTER...]

  --coredns PATH   the reference CoreDNS (default: $FERRODNS_COREDNS)
  --ferrodns PATH  the ferrodns binary (default: $FERRODNS_BIN, else target/release/ferrodns)
  --cases DIR      case directory (default: conformance/cases)
  --selftest       run conformance/selftest: deliberately wrong cases that must all fail
  --jobs N         cases run at once (default 4)
  --verbose        print both replies of every query
  --quiet          no progress lines
  --needs-kube     only print `yes` when a selected case needs a Kubernetes API server, else
                   `no` (how `cargo xtask conformance` knows to build and pass the binaries)
  --kube-apiserver PATH, --kine PATH
                   the Kubernetes API server and its storage, for kubernetes cases (default:
                   $FERRODNS_KUBE_APISERVER, $FERRODNS_KINE; `cargo xtask conformance` builds
                   and passes them)
  FILTER           only cases whose id (area/name) contains one of these";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ferrodns-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut coredns = std::env::var_os("FERRODNS_COREDNS").map(PathBuf::from);
    let mut ferrodns = std::env::var_os("FERRODNS_BIN").map(PathBuf::from);
    let mut cases_dir = None;
    let mut selftest = false;
    let mut jobs = 4;
    let mut progress = true;
    let mut verbose = false;
    let mut filters = Vec::new();
    let mut needs_kube = false;
    let mut kube_apiserver = std::env::var_os("FERRODNS_KUBE_APISERVER").map(PathBuf::from);
    let mut kine = std::env::var_os("FERRODNS_KINE").map(PathBuf::from);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--coredns" => coredns = Some(args.next().context("--coredns needs a path")?.into()),
            "--ferrodns" => ferrodns = Some(args.next().context("--ferrodns needs a path")?.into()),
            "--cases" => {
                cases_dir = Some(PathBuf::from(args.next().context("--cases needs a dir")?))
            }
            "--selftest" => selftest = true,
            "--jobs" => jobs = args.next().context("--jobs needs a number")?.parse()?,
            "--quiet" => progress = false,
            "--needs-kube" => needs_kube = true,
            "--kube-apiserver" => {
                kube_apiserver = Some(args.next().context("--kube-apiserver needs a path")?.into())
            }
            "--kine" => kine = Some(args.next().context("--kine needs a path")?.into()),
            "--verbose" => verbose = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(true);
            }
            f if !f.starts_with('-') => filters.push(f.to_string()),
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    let coredns =
        coredns.context("no reference CoreDNS: pass --coredns or set FERRODNS_COREDNS")?;
    let ferrodns = ferrodns.unwrap_or_else(|| here.join("../target/release/ferrodns"));
    for (what, p) in [("CoreDNS", &coredns), ("ferrodns", &ferrodns)] {
        if !p.is_file() {
            bail!("{what} binary {} does not exist", p.display());
        }
    }
    let kube = match (kube_apiserver, kine) {
        (Some(apiserver), Some(kine)) => {
            for (what, p) in [("kube-apiserver", &apiserver), ("kine", &kine)] {
                if !p.is_file() {
                    bail!("{what} binary {} does not exist", p.display());
                }
            }
            Some(ferrodns_kube_testenv::Bins { apiserver, kine })
        }
        (None, None) => None,
        _ => bail!("--kube-apiserver and --kine go together\n{USAGE}"),
    };
    let dir = cases_dir.unwrap_or_else(|| here.join(if selftest { "selftest" } else { "cases" }));
    let mut cases = case::load_dir(&dir)?;
    if !filters.is_empty() {
        cases.retain(|c| filters.iter().any(|f| c.id.contains(f.as_str())));
    }
    if cases.is_empty() {
        bail!("no cases under {}", dir.display());
    }
    if needs_kube {
        let any = cases
            .iter()
            .any(|c| ferrodns_conformance::kube::needed(&c.case));
        println!("{}", if any { "yes" } else { "no" });
        return Ok(true);
    }
    println!(
        "conformance: {} cases from {}, {} vs {}",
        cases.len(),
        dir.display(),
        coredns.display(),
        ferrodns.display()
    );
    let settings = runner::Settings {
        coredns,
        ferrodns,
        jobs,
        progress,
        selftest,
        verbose,
        kube,
    };
    let started = std::time::Instant::now();
    let results = runner::run_all(&cases, &settings)?;
    let mut out = std::io::stdout().lock();
    let (passed, failed, skipped) = runner::report(&results, &mut out)?;
    drop(out);
    println!("conformance: {:.1}s", started.elapsed().as_secs_f64());
    println!("{}", runner::closing_line(passed, failed, skipped));
    let failed_ids: Vec<&str> = results
        .iter()
        .filter(|r| matches!(r.verdict, runner::Verdict::Fail(_)))
        .map(|r| r.id.as_str())
        .collect();
    if !failed_ids.is_empty() {
        println!("failed: {}", failed_ids.join(" "));
    }
    if selftest {
        let bad = ferrodns_conformance::selftest_check(&cases, &results);
        if bad.is_empty() {
            println!("selftest: every deliberately wrong case failed with the expected diff");
            return Ok(true);
        }
        for b in bad {
            println!("selftest: {b}");
        }
        return Ok(false);
    }
    Ok(failed == 0)
}
