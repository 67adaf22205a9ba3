//! What kubernetes offers k8s_external: services by their external addresses under another
//! zone (`<service>.<namespace>.<zone>`), CoreDNS's `External` and `ExternalReverse`.

use ferrodns_plugin::ServiceRecord;
use ferrodns_plugin::proto::op::ResponseCode;

use crate::records::{
    Lookup, endpoint_hostname, eq_fold, match_port_and_protocol, strip_underscore,
};

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
    // More labels than any name here can have is NXDOMAIN whatever they are.
    let Some((labels, n)) = crate::records::base_labels(name, &zone.to_ascii_lowercase()) else {
        return (Vec::new(), ResponseCode::NXDomain);
    };
    let segs = &labels[..n];
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
                        if !match_port_and_protocol(port, &p.name, protocol, &p.protocol) {
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
                if !match_port_and_protocol(port, &p.name, protocol, &p.protocol) {
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
