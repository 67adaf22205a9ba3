//! node-cache: Kubernetes' NodeLocal DNSCache agent (`k8s-dns-node-cache` 1.26.8) on ferrodns.
//!
//! As upstream, it is the DNS server embedded with a small wrapper around it: before serving it
//! renders the Corefile from the `node-local-dns` ConfigMap template and the `kube-dns`
//! ConfigMap ([`corefile`], [`kubedns`]) and makes sure the listen addresses exist on the
//! `nodelocaldns` link ([`netif`]); while serving it re-renders the Corefile when either
//! ConfigMap directory changes ([`syncdir`]) and keeps the link and the iptables rules
//! ([`iptables`]), or with `-nftables` a table of its own ([`nftables`]), in place ([`setup`]);
//! on SIGTERM, SIGINT or SIGQUIT it removes them again.
//! Reference: `../shared/reference/node-cache.md`.

pub mod corefile;
pub mod flags;
pub mod iptables;
pub mod kubedns;
pub mod netif;
pub mod nftables;
pub mod setup;
pub mod syncdir;
