//! nftables mode (`-nftables`): the effect of upstream's twelve iptables rules per listen
//! address, as a table of node-cache's own (`table inet nodelocaldns`), programmed over netlink
//! (`NETLINK_NETFILTER`, in one transaction) rather than through a command.
//!
//! The table has three base chains of type `filter`, all at priority `raw` (-300): before
//! connection tracking (-200), so that `notrack` works, and before every chain of kube-proxy's
//! nftables mode (its `filter-*` chains sit at -110, its `nat-*` ones at -100 and 100):
//!
//! ```text
//! prerouting  hook prerouting   <ip> daddr IP tcp|udp dport 53  counter notrack
//! input       hook input        <ip> daddr IP tcp|udp dport 53  counter accept
//! output      hook output       <ip> saddr IP tcp|udp sport 53  counter notrack
//!                               <ip> daddr IP tcp|udp dport 53  counter notrack
//!                               <ip> daddr IP tcp dport HEALTH  counter notrack
//!                               <ip> saddr IP tcp sport HEALTH  counter notrack
//!                               <ip> saddr IP tcp|udp sport 53  counter accept
//! ```
//!
//! with the comments of the iptables rules. One `inet` table holds both families. In nftables
//! an `accept` ends only its own chain (a `drop` in another table still applies); the accept
//! rules are kept for parity with upstream's `filter` rules and their counters.
//!
//! A check reads the table back: when it is missing, or its rule count or its fingerprint (a
//! digest of the wanted contents, kept in the table's comment) differ, the table is replaced in
//! one transaction (no moment without the rules). Teardown deletes the table, and only it.

use std::net::IpAddr;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Cmp, DataAttribute, Expressions, Hook, HookNumber, Immediate,
    InetHookNumber, ListAttribute, Meta, MetaKey, NfTablesMessage, Operator, Payload, Register,
    RuleAttribute, RuleMessage, TableAttribute, TableMessage, Verdict, VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols};
use sha2::{Digest, Sha256};

use crate::iptables::{COMMENT_ALLOW_TRAFFIC, COMMENT_SKIP_CONNTRACK};

/// The table's name (family `inet`).
pub const TABLE: &str = "nodelocaldns";
/// The priority of its chains: `raw`.
pub const PRIORITY: i32 = -300;
/// The name of kube-proxy's nftables tables (`ip kube-proxy`, `ip6 kube-proxy`).
pub const KUBE_PROXY_TABLE: &str = "kube-proxy";

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_META_L4PROTO: u32 = 16;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NF_ACCEPT: u32 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// The type of a comment in nftables' user data (libnftnl's `NFTNL_UDATA_*_COMMENT`).
const UDATA_COMMENT: u8 = 0;
const ENOENT: i32 = 2;
/// How long to wait for the kernel's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed nftables operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nftables: {message}")]
pub struct NftError {
    /// What failed, and the kernel's errno text when it said no.
    pub message: String,
    /// The kernel's errno, when it answered with one.
    pub errno: Option<i32>,
}

impl NftError {
    fn new(message: impl Into<String>) -> Self {
        NftError {
            message: message.into(),
            errno: None,
        }
    }
    /// The kernel's refusal: netlink's negative errno `code`.
    fn refused(code: i32) -> Self {
        let errno = -code;
        NftError {
            message: crate::netif::go_error_text(&std::io::Error::from_raw_os_error(errno)),
            errno: Some(errno),
        }
    }
    fn io(what: &str, e: &std::io::Error) -> Self {
        NftError {
            message: format!("{what}: {}", crate::netif::go_error_text(e)),
            errno: e.raw_os_error(),
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The table was there as wanted.
    Present,
    /// It was missing or different and has been (re)written.
    Written,
}

/// Which chain a rule goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// Hook prerouting.
    Prerouting,
    /// Hook input.
    Input,
    /// Hook output.
    Output,
}

impl Chain {
    const ALL: [Chain; 3] = [Chain::Prerouting, Chain::Input, Chain::Output];

    /// The chain's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Chain::Prerouting => "prerouting",
            Chain::Input => "input",
            Chain::Output => "output",
        }
    }

    fn hook(self) -> InetHookNumber {
        match self {
            Chain::Prerouting => InetHookNumber::PreRouting,
            Chain::Input => InetHookNumber::LocalIn,
            Chain::Output => InetHookNumber::LocalOut,
        }
    }
}

/// Which address of the packet a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Destination address and port.
    Dst,
    /// Source address and port.
    Src,
}

/// One rule of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    /// Its chain.
    pub chain: Chain,
    /// The listen address.
    pub ip: IpAddr,
    /// TCP or UDP.
    pub tcp: bool,
    /// Match on destination or source.
    pub side: Side,
    /// The port.
    pub port: u16,
    /// `notrack` (true) or `accept`.
    pub notrack: bool,
}

impl std::fmt::Display for NftRule {
    /// As `nft list table` shows it (without the counter).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (family, dir, port) = match (self.ip.is_ipv6(), self.side) {
            (false, Side::Dst) => ("ip", "daddr", "dport"),
            (false, Side::Src) => ("ip", "saddr", "sport"),
            (true, Side::Dst) => ("ip6", "daddr", "dport"),
            (true, Side::Src) => ("ip6", "saddr", "sport"),
        };
        write!(
            f,
            "{} {family} {dir} {} {} {port} {} {}",
            self.chain.name(),
            self.ip,
            if self.tcp { "tcp" } else { "udp" },
            self.port,
            if self.notrack { "notrack" } else { "accept" }
        )
    }
}

/// The wanted rules for the listen addresses, `-dns.port` and `-health-port`: twelve per
/// address, the same matches as upstream's iptables rules, in chain order.
pub fn rules(ips: &[IpAddr], dns_port: u16, health_port: u16) -> Vec<NftRule> {
    let mut out = Vec::new();
    let rule = |chain, ip, tcp, side, port, notrack| NftRule {
        chain,
        ip,
        tcp,
        side,
        port,
        notrack,
    };
    for &ip in ips {
        for tcp in [true, false] {
            out.push(rule(Chain::Prerouting, ip, tcp, Side::Dst, dns_port, true));
        }
        for tcp in [true, false] {
            out.push(rule(Chain::Input, ip, tcp, Side::Dst, dns_port, false));
        }
    }
    for &ip in ips {
        for tcp in [true, false] {
            out.push(rule(Chain::Output, ip, tcp, Side::Src, dns_port, true));
        }
        for tcp in [true, false] {
            out.push(rule(Chain::Output, ip, tcp, Side::Dst, dns_port, true));
        }
        out.push(rule(Chain::Output, ip, true, Side::Dst, health_port, true));
        out.push(rule(Chain::Output, ip, true, Side::Src, health_port, true));
    }
    // Accepts end the chain: they come after every notrack of the output hook.
    for &ip in ips {
        for tcp in [true, false] {
            out.push(rule(Chain::Output, ip, tcp, Side::Src, dns_port, false));
        }
    }
    out.sort_by_key(|r| Chain::ALL.iter().position(|c| *c == r.chain));
    out
}

fn comment(text: &str) -> Vec<u8> {
    let mut v = vec![UDATA_COMMENT, (text.len() + 1) as u8];
    v.extend_from_slice(text.as_bytes());
    v.push(0);
    v
}

fn cmp_eq(
    value: Vec<u8>,
) -> ListAttribute<netlink_packet_netfilter::nftables::ExpressionAttribute> {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(Operator::Equal),
        Cmp::Data(DataAttribute::Value(value)),
    ])
    .into()
}

fn load_payload(
    base: u32,
    offset: u32,
    len: u32,
) -> ListAttribute<netlink_packet_netfilter::nftables::ExpressionAttribute> {
    Expressions::Payload(vec![
        Payload::DestinationRegister(Register::Reg1),
        Payload::Base(base),
        Payload::Offset(offset),
        Payload::Len(len),
    ])
    .into()
}

fn load_meta(
    key: MetaKey,
) -> ListAttribute<netlink_packet_netfilter::nftables::ExpressionAttribute> {
    Expressions::Meta(vec![
        Meta::Key(key),
        Meta::DestinationRegister(Register::Reg1),
    ])
    .into()
}

impl NftRule {
    /// The rule's expressions, as `nft` compiles its text.
    fn expressions(
        &self,
    ) -> Vec<ListAttribute<netlink_packet_netfilter::nftables::ExpressionAttribute>> {
        let (nfproto, addr, offset) = match (self.ip, self.side) {
            (IpAddr::V4(a), Side::Dst) => (NFPROTO_IPV4, a.octets().to_vec(), 16),
            (IpAddr::V4(a), Side::Src) => (NFPROTO_IPV4, a.octets().to_vec(), 12),
            (IpAddr::V6(a), Side::Dst) => (NFPROTO_IPV6, a.octets().to_vec(), 24),
            (IpAddr::V6(a), Side::Src) => (NFPROTO_IPV6, a.octets().to_vec(), 8),
        };
        let port_offset = match self.side {
            Side::Dst => 2,
            Side::Src => 0,
        };
        let verdict = if self.notrack {
            Expressions::Other {
                expression_type: "notrack".into(),
                attributes: vec![],
            }
            .into()
        } else {
            Expressions::Immediate(vec![
                Immediate::DestinationRegister(Register::Verdict),
                Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
                    Verdict::Other(NF_ACCEPT),
                )])),
            ])
            .into()
        };
        vec![
            load_meta(MetaKey::Nfproto),
            cmp_eq(vec![nfproto]),
            load_payload(NFT_PAYLOAD_NETWORK_HEADER, offset, addr.len() as u32),
            cmp_eq(addr),
            load_meta(MetaKey::Other(NFT_META_L4PROTO)),
            cmp_eq(vec![if self.tcp { IPPROTO_TCP } else { IPPROTO_UDP }]),
            load_payload(NFT_PAYLOAD_TRANSPORT_HEADER, port_offset, 2),
            cmp_eq(self.port.to_be_bytes().to_vec()),
            Expressions::Other {
                expression_type: "counter".into(),
                attributes: vec![],
            }
            .into(),
            verdict,
        ]
    }

    fn comment(&self) -> &'static str {
        if self.notrack {
            COMMENT_SKIP_CONNTRACK
        } else {
            COMMENT_ALLOW_TRAFFIC
        }
    }
}

/// The table of node-cache's own, for a list of listen addresses.
#[derive(Debug, Clone)]
pub struct Nftables {
    rules: Vec<NftRule>,
    fingerprint: String,
}

fn nft_message(
    family: NetfilterProtoFamily,
    msg: impl Into<netlink_packet_netfilter::NetfilterMessageInner>,
    flags: u16,
) -> NetlinkMessage<NetfilterMessage> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut m = NetlinkMessage::new(
        header,
        NetlinkPayload::from(NetfilterMessage::new(
            NetfilterHeader::new(family, 0, 0),
            msg,
        )),
    );
    m.finalize();
    m
}

fn table_message(extra: Vec<TableAttribute>) -> TableMessage {
    let mut attributes = vec![TableAttribute::Name(TABLE.to_string())];
    attributes.extend(extra);
    TableMessage { attributes }
}

impl Nftables {
    /// The table for these addresses and ports.
    pub fn new(ips: &[IpAddr], dns_port: u16, health_port: u16) -> Self {
        let rules = rules(ips, dns_port, health_port);
        let mut digest = Sha256::new();
        for r in &rules {
            digest.update(r.to_string().as_bytes());
            digest.update(b"\n");
        }
        let hex: String = digest.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Nftables {
            rules,
            fingerprint: format!("node-cache {hex}"),
        }
    }

    /// The wanted rules, in chain order.
    pub fn rules(&self) -> &[NftRule] {
        &self.rules
    }

    /// The transaction that (re)writes the table: create it if missing, delete it, then
    /// create it, its chains and rules. The kernel applies all of it or nothing.
    fn write_batch(&self) -> Vec<NetlinkMessage<NetfilterMessage>> {
        let inet = NetfilterProtoFamily::Inet;
        let create = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
        let mut msgs = vec![
            nft_message(
                inet,
                NfTablesMessage::NewTable(table_message(vec![])),
                create,
            ),
            nft_message(
                inet,
                NfTablesMessage::DeleteTable(table_message(vec![])),
                NLM_F_REQUEST | NLM_F_ACK,
            ),
            nft_message(
                inet,
                NfTablesMessage::NewTable(table_message(vec![TableAttribute::UserData(comment(
                    &self.fingerprint,
                ))])),
                create,
            ),
        ];
        for chain in Chain::ALL {
            msgs.push(nft_message(
                inet,
                NfTablesMessage::NewChain(ChainMessage {
                    attributes: vec![
                        ChainAttribute::Table(TABLE.to_string()),
                        ChainAttribute::Name(chain.name().to_string()),
                        ChainAttribute::Hook(vec![
                            Hook::Number(HookNumber::Inet(chain.hook())),
                            Hook::Priority(PRIORITY as u32),
                        ]),
                        ChainAttribute::Policy(NF_ACCEPT),
                        ChainAttribute::Type("filter".to_string()),
                    ],
                }),
                create,
            ));
        }
        for rule in &self.rules {
            msgs.push(nft_message(
                inet,
                NfTablesMessage::NewRule(RuleMessage {
                    attributes: vec![
                        RuleAttribute::Table(TABLE.to_string()),
                        RuleAttribute::Chain(rule.chain.name().to_string()),
                        RuleAttribute::Expressions(rule.expressions()),
                        RuleAttribute::UserData(comment(rule.comment())),
                    ],
                }),
                create | netlink_packet_core::NLM_F_APPEND,
            ));
        }
        msgs
    }

    /// Whether the table is there as wanted: its fingerprint and its rule count.
    pub async fn is_present(&self) -> Result<bool, NftError> {
        let mut nl = Netlink::open()?;
        let tables = nl
            .dump(nft_message(
                NetfilterProtoFamily::Inet,
                NfTablesMessage::GetTable(table_message(vec![])),
                NLM_F_REQUEST | NLM_F_ACK,
            ))
            .await;
        let tables = match tables {
            Ok(t) => t,
            Err(e) if e.errno == Some(ENOENT) => return Ok(false),
            Err(e) => return Err(e),
        };
        let want = comment(&self.fingerprint);
        let marked = tables.iter().any(|m| match m {
            NfTablesMessage::NewTable(t) => t
                .attributes
                .iter()
                .any(|a| matches!(a, TableAttribute::UserData(u) if *u == want)),
            _ => false,
        });
        if !marked {
            return Ok(false);
        }
        let rules = nl
            .dump(nft_message(
                NetfilterProtoFamily::Inet,
                NfTablesMessage::GetRule(RuleMessage {
                    attributes: vec![RuleAttribute::Table(TABLE.to_string())],
                }),
                NLM_F_REQUEST | NLM_F_DUMP,
            ))
            .await?;
        let count = rules
            .iter()
            .filter(|m| matches!(m, NfTablesMessage::NewRule(_)))
            .count();
        Ok(count == self.rules.len())
    }

    /// Make sure the table is there as wanted (see the module text).
    pub async fn ensure(&self) -> Result<Ensured, NftError> {
        if self.is_present().await? {
            return Ok(Ensured::Present);
        }
        Netlink::open()?.transact(self.write_batch()).await?;
        Ok(Ensured::Written)
    }

    /// Delete the table; `false` when it was not there.
    pub async fn delete(&self) -> Result<bool, NftError> {
        let msg = nft_message(
            NetfilterProtoFamily::Inet,
            NfTablesMessage::DeleteTable(table_message(vec![])),
            NLM_F_REQUEST | NLM_F_ACK,
        );
        match Netlink::open()?.transact(vec![msg]).await {
            Ok(()) => Ok(true),
            Err(e) if e.errno == Some(ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The families of the nftables tables named `kube-proxy` on this node: kube-proxy runs in
/// nftables mode when there are any.
pub async fn kube_proxy_tables() -> Result<Vec<String>, NftError> {
    let mut nl = Netlink::open()?;
    let tables = nl
        .dump(nft_message(
            NetfilterProtoFamily::Unspec,
            NfTablesMessage::GetTable(TableMessage { attributes: vec![] }),
            NLM_F_REQUEST | NLM_F_DUMP,
        ))
        .await?;
    let mut out = Vec::new();
    for (family, m) in nl.last_families.iter().zip(&tables) {
        if let NfTablesMessage::NewTable(t) = m
            && t.attributes
                .iter()
                .any(|a| matches!(a, TableAttribute::Name(n) if n == KUBE_PROXY_TABLE))
        {
            out.push(
                match family {
                    NetfilterProtoFamily::IPv4 => "ip",
                    NetfilterProtoFamily::IPv6 => "ip6",
                    NetfilterProtoFamily::Inet => "inet",
                    _ => "other",
                }
                .to_string(),
            );
        }
    }
    Ok(out)
}

/// A netfilter netlink socket in the calling thread's network namespace.
struct Netlink {
    socket: TokioSocket,
    seq: u32,
    /// The protocol family of each message of the last dump, in order.
    last_families: Vec<NetfilterProtoFamily>,
}

impl Netlink {
    fn open() -> Result<Self, NftError> {
        let mut socket = TokioSocket::new(protocols::NETLINK_NETFILTER)
            .map_err(|e| NftError::io("netlink socket", &e))?;
        socket
            .socket_mut()
            .bind_auto()
            .map_err(|e| NftError::io("netlink bind", &e))?;
        socket
            .socket_mut()
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| NftError::io("netlink connect", &e))?;
        Ok(Netlink {
            socket,
            seq: 0,
            last_families: Vec::new(),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    async fn send(
        &mut self,
        msgs: &mut [NetlinkMessage<NetfilterMessage>],
    ) -> Result<(), NftError> {
        let mut buf = Vec::new();
        for m in msgs.iter_mut() {
            m.header.sequence_number = self.next_seq();
            m.finalize();
            let start = buf.len();
            buf.resize(start + m.buffer_len(), 0);
            m.serialize(&mut buf[start..]);
        }
        self.socket
            .send(&buf)
            .await
            .map_err(|e| NftError::io("netlink send", &e))?;
        Ok(())
    }

    /// The next datagram's messages.
    async fn receive(&mut self) -> Result<Vec<NetlinkMessage<NetfilterMessage>>, NftError> {
        let (data, _) = tokio::time::timeout(ANSWER_TIMEOUT, self.socket.recv_from_full())
            .await
            .map_err(|_| NftError::new("no answer from the kernel"))?
            .map_err(|e| NftError::io("netlink receive", &e))?;
        let mut out = Vec::new();
        let mut offset = 0;
        while offset + 16 <= data.len() {
            let len = u32::from_ne_bytes([
                data[offset],
                data[offset + 1],
                data[offset + 2],
                data[offset + 3],
            ]) as usize;
            if len < 16 || offset + len > data.len() {
                break;
            }
            let m = NetlinkMessage::<NetfilterMessage>::deserialize(&data[offset..offset + len])
                .map_err(|e| NftError::new(format!("netlink decode: {e}")))?;
            out.push(m);
            offset += (len + 3) & !3;
        }
        Ok(out)
    }

    /// Send `msgs` as one batch and wait for the kernel's answer to each.
    async fn transact(
        &mut self,
        msgs: Vec<NetlinkMessage<NetfilterMessage>>,
    ) -> Result<(), NftError> {
        let control = |c: ControlMessage| {
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST;
            let mut m = NetlinkMessage::new(
                header,
                NetlinkPayload::from(NetfilterMessage::new(
                    NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES),
                    c,
                )),
            );
            m.finalize();
            m
        };
        let acks = msgs.len();
        let mut batch = Vec::with_capacity(msgs.len() + 2);
        batch.push(control(ControlMessage::BatchBegin));
        batch.extend(msgs);
        batch.push(control(ControlMessage::BatchEnd));
        self.send(&mut batch).await?;
        let mut answered = 0;
        let mut first_error: Option<NftError> = None;
        while answered < acks {
            // After a refusal the kernel may not answer the rest of an aborted batch: the
            // refusal is the outcome, not the silence after it.
            let answers = match self.receive().await {
                Ok(a) => a,
                Err(e) => return Err(first_error.unwrap_or(e)),
            };
            for m in answers {
                if let NetlinkPayload::Error(e) = m.payload {
                    answered += 1;
                    if let Some(code) = e.code
                        && first_error.is_none()
                    {
                        first_error = Some(NftError::refused(code.get()));
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Send one request and collect the nftables messages of its answer (a dump, or one
    /// message); the kernel's refusal is the error.
    async fn dump(
        &mut self,
        msg: NetlinkMessage<NetfilterMessage>,
    ) -> Result<Vec<NfTablesMessage>, NftError> {
        self.send(&mut [msg]).await?;
        let mut out = Vec::new();
        self.last_families.clear();
        loop {
            for m in self.receive().await? {
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => match e.code {
                        Some(code) => return Err(NftError::refused(code.get())),
                        None => return Ok(out),
                    },
                    NetlinkPayload::InnerMessage(inner) => {
                        self.last_families.push(inner.header.family);
                        if let netlink_packet_netfilter::NetfilterMessageInner::NfTables(n) =
                            inner.inner
                        {
                            out.push(n);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_rules_per_address_notracks_before_accepts() {
        let ips: Vec<IpAddr> = vec![
            "169.254.20.10".parse().unwrap(),
            "fd00::10".parse().unwrap(),
        ];
        let r = rules(&ips, 53, 8080);
        assert_eq!(r.len(), 24);
        let text: Vec<String> = r.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            text[0],
            "prerouting ip daddr 169.254.20.10 tcp dport 53 notrack"
        );
        assert_eq!(
            text[2],
            "prerouting ip6 daddr fd00::10 tcp dport 53 notrack"
        );
        assert_eq!(text[4], "input ip daddr 169.254.20.10 tcp dport 53 accept");
        let output: Vec<&String> = text.iter().filter(|t| t.starts_with("output ")).collect();
        assert_eq!(output.len(), 16);
        let first_accept = output.iter().position(|t| t.ends_with("accept")).unwrap();
        assert!(
            output[..first_accept]
                .iter()
                .all(|t| t.ends_with("notrack"))
        );
        assert!(output[first_accept..].iter().all(|t| t.ends_with("accept")));
        assert!(text.contains(&"output ip6 saddr fd00::10 tcp sport 8080 notrack".to_string()));
        // The fingerprint follows the contents.
        let a = Nftables::new(&ips, 53, 8080);
        assert_eq!(a.fingerprint, Nftables::new(&ips, 53, 8080).fingerprint);
        assert_ne!(
            a.fingerprint,
            Nftables::new(&ips[..1], 53, 8080).fingerprint
        );
    }
}
