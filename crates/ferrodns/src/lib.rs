//! The ferrodns binary as a library: CoreDNS's command line ([`cli`], on `ferrodns_go::flag`), the
//! serving loop with its signals and reloads ([`app`]), and the plugins of `plugin.cfg`
//! ([`registry`]). The `ferrodns` binary is a thin `main` over it; `node-cache` embeds it as
//! upstream's node-cache embeds CoreDNS.

pub mod app;
pub mod cli;
mod plugins_gen;

/// The plugins compiled in, in `plugin.cfg` order.
pub fn registry() -> ferrodns_plugin::Registry {
    plugins_gen::registry()
}
