//! What kubernetes offers k8s_external: services by their external addresses under another
//! zone (`<service>.<namespace>.<zone>`), CoreDNS's `External` and `ExternalReverse`.

use ferrodns_plugin::ServiceRecord;
use ferrodns_plugin::proto::op::ResponseCode;

use crate::records::{Lookup, endpoint_hostname};

/// CoreDNS's `msg.Path(zone, "c")` followed by `more` path elements.
fn key(zone: &str, more: &[&str]) -> String {
    let mut k = String::from("/c");
    for l in zone
        .trim_end_matches('.')
        .rsplit('.')
        .filter(|l| !l.is_empty())
    {
        k.push('/');
        k.push_str(l);
    }
    for m in more {
        k.push('/');
        k.push_str(m);
    }
    k
}

fn strip_underscore(s: &str) -> &str {
    s.strip_prefix('_').unwrap_or(s)
}

fn eq_fold(a: &str, b: &str) -> bool {
    a == b || a.eq_ignore_ascii_case(b)
}

/// The records for `name` (lowercase) under `zone`, and the rcode for none.
pub fn records(
    l: &Lookup<'_>,
    name: &str,
    zone: &str,
    headless: bool,
    ttl: u32,
    ptr: bool,
) -> (Vec<ServiceRecord>, ResponseCode) {
    if ptr && let Some(ip) = ferrodns_pkg::names::address_from_reverse(name) {
        let ip = ip.to_string();
        let mut out = Vec::new();
        for svc in l.index.svc_ext_index_reverse(&ip) {
            if !l.cfg.namespaces.is_empty() && !l.namespace_exposed(&svc.namespace) {
                continue;
            }
            out.push(ServiceRecord {
                host: format!("{}.{}", svc.name, svc.namespace),
                ttl,
                ..ServiceRecord::default()
            });
        }
        if out.is_empty() {
            return (Vec::new(), ResponseCode::NXDomain);
        }
        return (out, ResponseCode::NoError);
    }
    let zone_l = zone.to_ascii_lowercase();
    let base = if zone_l == "." {
        name.strip_suffix('.').unwrap_or(name)
    } else if name.len() > zone_l.len() && name.ends_with(zone_l.as_str()) {
        &name[..name.len() - zone_l.len() - 1]
    } else {
        ""
    };
    let segs: Vec<&str> = base.split('.').filter(|s| !s.is_empty()).collect();
    let Some(namespace) = segs.last() else {
        return (Vec::new(), ResponseCode::ServFail);
    };
    if !l.namespace_exposed(namespace) {
        return (Vec::new(), ResponseCode::NXDomain);
    }
    if segs.len() < 2 {
        return (Vec::new(), ResponseCode::NoError);
    }
    let service = segs[segs.len() - 2];
    let (mut port, mut protocol, mut endpoint) = ("", "", "");
    match segs.len() {
        2 => {}
        3 => endpoint = strip_underscore(segs[0]),
        4 => {
            protocol = strip_underscore(segs[1]);
            port = strip_underscore(segs[0]);
        }
        _ => return (Vec::new(), ResponseCode::NXDomain),
    }
    let mut out = Vec::new();
    let mut rcode = ResponseCode::NXDomain;
    let port_ok = |name: &str, proto: &str| {
        (port.is_empty() || eq_fold(port, name))
            && (protocol.is_empty() || eq_fold(protocol, proto))
    };
    for svc in l.index.svc_index(service, namespace) {
        if svc.namespace != *namespace || svc.name != service {
            continue;
        }
        if headless && svc.external_ips.is_empty() && (svc.headless() || !endpoint.is_empty()) {
            for ep in l.index.ep_index(service, namespace) {
                if ep.service != svc.name || ep.namespace != svc.namespace {
                    continue;
                }
                for a in &ep.addresses {
                    let host = endpoint_hostname(a, l.cfg.endpoint_pod_names);
                    if !endpoint.is_empty() && !eq_fold(endpoint, &host) {
                        continue;
                    }
                    for p in &ep.ports {
                        if !port_ok(&p.name, &p.protocol) {
                            continue;
                        }
                        rcode = ResponseCode::NoError;
                        out.push(ServiceRecord {
                            host: a.ip.clone(),
                            port: p.port.clamp(0, u16::MAX as i32) as u16,
                            ttl,
                            key: key(zone, &[&svc.namespace, &svc.name, &host]),
                            ..ServiceRecord::default()
                        });
                    }
                }
            }
            continue;
        }
        for ip in &svc.external_ips {
            for p in &svc.ports {
                if !port_ok(&p.name, &p.protocol) {
                    continue;
                }
                rcode = ResponseCode::NoError;
                out.push(ServiceRecord {
                    host: ip.clone(),
                    port: p.port.clamp(0, u16::MAX as i32) as u16,
                    ttl,
                    key: key(zone, &[&svc.namespace, &svc.name]),
                    ..ServiceRecord::default()
                });
            }
        }
    }
    if ptr {
        return (Vec::new(), rcode);
    }
    (out, rcode)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_coredns_paths() {
        assert_eq!(
            super::key("example.org.", &["ns", "web"]),
            "/c/org/example/ns/web"
        );
        assert_eq!(super::key(".", &["ns"]), "/c/ns");
    }
}
