//! Test support: the upstream manifest the project ships, deploy/nodelocaldns.yaml.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The ConfigMap's `Corefile` key as the pod sees it in /etc/coredns/Corefile.base, before the
/// installer's `sed` fills in the `__PILLAR__` placeholders.
pub fn configmap_corefile() -> String {
    const KEY: &str = "  Corefile: |\n";
    let yaml = std::fs::read_to_string(repo().join("deploy/nodelocaldns.yaml")).unwrap();
    let start = yaml.find(KEY).unwrap() + KEY.len();
    let mut text = String::new();
    for line in yaml[start..].lines() {
        if line.trim().is_empty() {
            text.push('\n');
            continue;
        }
        let Some(l) = line.strip_prefix("    ") else {
            break;
        };
        text.push_str(l);
        text.push('\n');
    }
    text
}
