//! # greet
//!
//! An example ferrodns plugin, kept outside the ferrodns workspace as a template for plugin
//! authors. It answers TXT queries for the names in its zones with one TXT record: a greeting
//! followed by the address the client queried from, for example `hello, 192.0.2.7`.
//!
//! ```text
//! greet [ZONES...] {
//!     text TEXT
//!     ttl SECONDS
//!     fallthrough [ZONES...]
//! }
//! ```
//!
//! What a plugin crate is made of, as this one shows:
//! - a [`Descriptor`] (here [`DESCRIPTOR`]): the directive name and the setup function that
//!   reads the Corefile (`src/setup.rs`) and registers the plugin's metric;
//! - a handler implementing [`Plugin`] ([`Greet`]), which the setup function adds to the server
//!   block's chain;
//! - tests through the test kit (`tests/unit.rs`) and through a real server (`tests/server.rs`).
//!
//! See README.md for the directive and for building the plugin into a ferrodns binary.

mod setup;

use ferrodns_pkg::names::{Fall, zone_match};
use ferrodns_plugin::prometheus_client::metrics::counter::Counter;
use ferrodns_plugin::prometheus_client::metrics::family::Family;
use ferrodns_plugin::proto::op::Message;
use ferrodns_plugin::proto::rr::rdata::TXT;
use ferrodns_plugin::proto::rr::{RData, Record, RecordType};
use ferrodns_plugin::{
    Descriptor, Metrics, Next, Plugin, PluginError, Reply, Request, async_trait,
};

/// The directive name, as written in a Corefile and in `plugin.cfg`.
pub const NAME: &str = "greet";

/// The greeting when the block sets no `text`.
pub const DEFAULT_TEXT: &str = "hello";

/// The TTL of the TXT record, in seconds, when the block sets no `ttl`.
pub const DEFAULT_TTL: u32 = 30;

/// The longest `text` accepted, in bytes. A TXT character-string holds at most 255 bytes, and
/// the answer adds `", "` and an address of up to 39 characters (a full IPv6 address).
pub const MAX_TEXT_LEN: usize = 255 - 2 - 39;

/// The largest `ttl` accepted: RFC 2181 limits a TTL to 2^31 - 1 seconds.
pub const MAX_TTL: u32 = i32::MAX as u32;

/// The plugin's descriptor, listed in the binary's registry (by `plugin.cfg`).
///
/// It has no process-start metrics hook ([`Descriptor::with_metrics`]): that hook is for
/// families that must show at 0 before any block uses the plugin, which only an unlabelled
/// metric can do. The answer counter is labelled by server, so it has no series to show before
/// the first answer; [`Greet::new`] registers it when a block sets the plugin up.
pub const DESCRIPTOR: Descriptor = Descriptor::new(NAME, setup::setup);

/// The labels of [`Greet`]'s counter: the server label only.
type Labels = Vec<(&'static str, String)>;

/// `coredns_greet_answers_total{server}` on the process's registry: the same family for every
/// block and every reload (the registry hands back the one already registered under the name,
/// so counts survive a reload).
fn answers_family(m: &Metrics) -> Family<Labels, Counter> {
    // prometheus-client appends `_total` to a counter's name.
    m.register(
        "coredns_greet_answers",
        "Counter of TXT answers given by the greet plugin.",
        Family::<Labels, Counter>::default,
    )
}

/// What a `greet` line configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The zones answered (normalised: lower case, fully qualified), from the directive's
    /// arguments or else the server block's zones.
    pub zones: Vec<String>,
    /// The greeting written before the client's address.
    pub text: String,
    /// The TTL of the TXT record.
    pub ttl: u32,
    /// The zones whose non-TXT queries go to the next plugin instead of getting NODATA.
    pub fall: Fall,
}

impl Config {
    /// The defaults for a block answering `zones`.
    pub fn new(zones: Vec<String>) -> Self {
        Config {
            zones,
            text: DEFAULT_TEXT.to_string(),
            ttl: DEFAULT_TTL,
            fall: Fall::default(),
        }
    }
}

/// The request handler of one `greet` line.
#[derive(Debug, Clone)]
pub struct Greet {
    config: Config,
    answers: Family<Labels, Counter>,
}

impl Greet {
    /// A handler for `config`, counting its answers on `metrics`.
    pub fn new(config: Config, metrics: &Metrics) -> Self {
        Greet {
            config,
            answers: answers_family(metrics),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The TXT answer to `req`: authoritative NOERROR, one record owned by the query name,
    /// holding the greeting, `", "` and the client's address.
    pub fn answer(&self, req: &Request) -> Message {
        // `reply` copies what a reply must from the query (ID, opcode, RD and CD, the question).
        let mut msg = req.reply();
        msg.metadata.authoritative = true;
        // `client_ip` gives an IPv4 client on a dual-stack socket as IPv4, not `::ffff:a.b.c.d`.
        let greeting = format!("{}, {}", self.config.text, req.client_ip());
        let mut rr = Record::from_rdata(
            req.qname(),
            self.config.ttl,
            RData::TXT(TXT::new(vec![greeting])),
        );
        rr.dns_class = req.qclass();
        msg.answers.push(rr);
        msg
    }

    /// The NODATA reply for another type in its zones: authoritative NOERROR, no records.
    pub fn nodata(&self, req: &Request) -> Message {
        let mut msg = req.reply();
        msg.metadata.authoritative = true;
        msg
    }
}

#[async_trait]
impl Plugin for Greet {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn serve(&self, req: &mut Request, next: Next) -> Result<Reply, PluginError> {
        // Zones are matched on the name in presentation format, as CoreDNS plugins do.
        let qname = req.name_lower();
        if zone_match(&self.config.zones, &qname).is_none() {
            return next.serve(req).await;
        }
        if req.qtype() == RecordType::TXT {
            self.answers
                .get_or_create(&vec![("server", req.server.to_string())])
                .inc();
            return Ok(Reply::message(self.answer(req)));
        }
        if self.config.fall.through(&qname) {
            return next.serve(req).await;
        }
        Ok(Reply::message(self.nodata(req)))
    }
}
