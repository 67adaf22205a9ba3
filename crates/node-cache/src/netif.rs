//! The link that carries the listen addresses (`nodelocaldns` by default), over rtnetlink.
//!
//! As upstream's `netif` package: if a link of that name exists (of any type) each listen
//! address is added to it as a /32 (IPv4) or /128 (IPv6), an address already there being fine;
//! if none exists a link of type `dummy` is created, then the addresses are added. The link is
//! never set up: the kernel delivers traffic for a local address on a down link all the same.
//! Teardown deletes the link by name, and its addresses with it.
//!
//! IPv6 addresses are added without duplicate address detection (`nodad`): on a link that is
//! down, DAD never runs, the address stays `tentative`, and a tentative address can be neither
//! bound nor reached. One left tentative by someone else (an upstream node-cache, say) is
//! deleted and added again, since the kernel does not take the flag on an existing address.
//!
//! Each operation opens its own netlink socket, in the network namespace of the calling thread
//! at that moment, and closes it when done.

use std::future::Future;
use std::io;
use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkDummy};

/// errno "file exists": an address already on the link.
pub const EEXIST: i32 = 17;
/// errno "no such device": no link of that name.
pub const ENODEV: i32 = 19;

/// An error's text as Go prints it: an OS error as its lower-case `strerror` without Rust's
/// ` (os error N)` suffix (`operation not supported`, `file exists`).
pub fn go_error_text(e: &io::Error) -> String {
    let text = e.to_string();
    let (Some(_), Some(i)) = (e.raw_os_error(), text.rfind(" (os error ")) else {
        return text;
    };
    let mut chars = text[..i].chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A failed netlink operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NetifError {
    /// The text, Go-style for kernel errors (`operation not supported`).
    pub message: String,
    /// The errno the kernel answered, if it answered one.
    pub errno: Option<i32>,
}

impl NetifError {
    fn io(e: &io::Error) -> Self {
        NetifError {
            message: go_error_text(e),
            errno: e.raw_os_error(),
        }
    }

    fn netlink(e: rtnetlink::Error) -> Self {
        match e {
            rtnetlink::Error::NetlinkError(m) if m.raw_code() != 0 => {
                let errno = m.raw_code().abs();
                NetifError::io(&io::Error::from_raw_os_error(errno))
            }
            other => NetifError {
                message: other.to_string(),
                errno: None,
            },
        }
    }

    fn link_not_found() -> Self {
        NetifError {
            message: "Link not found".to_string(),
            errno: Some(ENODEV),
        }
    }
}

/// What [`Netif::ensure`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// A link of that name was there; `kind` is its type (`dummy`, `bridge`, `veth`...),
    /// `None` for a link without one (a physical device, loopback).
    Found {
        /// The link's type.
        kind: Option<String>,
    },
    /// There was none: a dummy link was created and the addresses added.
    Created,
}

/// A failed [`Netif::ensure`]: whether the link had been found (upstream's `exists`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct EnsureError {
    /// True if the link existed (an address could not be added to it); false if it did not
    /// and creating it, or adding an address to the new link, failed.
    pub found: bool,
    /// The cause.
    pub error: NetifError,
}

/// The link of one name and the addresses it must carry.
#[derive(Debug, Clone)]
pub struct Netif {
    name: String,
    addrs: Vec<IpAddr>,
}

/// Run `work` with a fresh netlink handle, driving its connection in the same task.
async fn with_handle<T, F, Fut>(work: F) -> Result<T, NetifError>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T, NetifError>>,
{
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| NetifError::io(&e))?;
    let work = work(handle);
    tokio::pin!(conn);
    tokio::pin!(work);
    tokio::select! {
        r = &mut work => r,
        _ = &mut conn => Err(NetifError {
            message: "netlink connection closed".to_string(),
            errno: None,
        }),
    }
}

/// The link called `name`, or `None` if there is none.
async fn link_by_name(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, NetifError> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code().abs() == ENODEV => Ok(None),
        Err(e) => Err(NetifError::netlink(e)),
    }
}

/// A link's type (`IFLA_INFO_KIND`).
pub fn link_kind(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.to_string()),
            _ => None,
        }),
        _ => None,
    })
}

/// Add `ip` as a host address to link `index`; IPv6 without duplicate address detection.
async fn add_addr(handle: &Handle, index: u32, ip: IpAddr) -> Result<(), NetifError> {
    let mut req = handle.address().add(index, ip, host_prefix(&ip));
    if ip.is_ipv6() {
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    req.execute().await.map_err(NetifError::netlink)
}

/// The address `ip` on link `index` if it is there and still tentative.
async fn tentative(
    handle: &Handle,
    index: u32,
    ip: IpAddr,
) -> Result<Option<AddressMessage>, NetifError> {
    let mut list = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(ip)
        .execute();
    while let Some(msg) = list.try_next().await.map_err(NetifError::netlink)? {
        let flags = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Flags(f) => Some(*f),
            _ => None,
        });
        if flags.is_some_and(|f| f.contains(AddressFlags::Tentative)) {
            return Ok(Some(msg));
        }
    }
    Ok(None)
}

/// The prefix length of a single-address network: 32 or 128.
fn host_prefix(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

impl Netif {
    /// The link `name` carrying `addrs`.
    pub fn new(name: impl Into<String>, addrs: Vec<IpAddr>) -> Self {
        Netif {
            name: name.into(),
            addrs,
        }
    }

    /// The link's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The addresses it carries.
    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    /// Add each address to link `index` (IPv6 ones with `nodad`); `tolerate_exists` makes
    /// "already there" a success, and replaces an IPv6 address stuck `tentative`.
    async fn add_addrs(
        &self,
        handle: &Handle,
        index: u32,
        tolerate_exists: bool,
    ) -> Result<(), NetifError> {
        for ip in &self.addrs {
            match add_addr(handle, index, *ip).await {
                Ok(()) => {}
                Err(e) if tolerate_exists && e.errno == Some(EEXIST) => {
                    if ip.is_ipv6()
                        && let Some(stuck) = tentative(handle, index, *ip).await?
                    {
                        handle
                            .address()
                            .del(stuck)
                            .execute()
                            .await
                            .map_err(NetifError::netlink)?;
                        add_addr(handle, index, *ip).await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Make sure the link exists and carries every address (see the module text). The link
    /// is left as it is otherwise: not set up, extra addresses kept.
    pub async fn ensure(&self) -> Result<Ensured, EnsureError> {
        let not_found = |error| EnsureError {
            found: false,
            error,
        };
        with_handle(|handle| async move {
            // A failed lookup is taken as "missing", as upstream does: creating then says why.
            if let Ok(Some(link)) = link_by_name(&handle, &self.name).await {
                let r = self.add_addrs(&handle, link.header.index, true).await;
                return Ok(r
                    .map(|()| Ensured::Found {
                        kind: link_kind(&link),
                    })
                    .map_err(|error| EnsureError { found: true, error }));
            }
            // Upstream's netlink library sends a zero queue length with the name.
            let msg = LinkDummy::new(&self.name).txqueuelen(0).build();
            if let Err(e) = handle.link().add(msg).execute().await {
                return Ok(Err(not_found(NetifError::netlink(e))));
            }
            let link = match link_by_name(&handle, &self.name).await {
                Ok(Some(l)) => l,
                Ok(None) => return Ok(Err(not_found(NetifError::link_not_found()))),
                Err(e) => return Ok(Err(not_found(e))),
            };
            Ok(self
                .add_addrs(&handle, link.header.index, false)
                .await
                .map(|()| Ensured::Created)
                .map_err(not_found))
        })
        .await
        .unwrap_or_else(|e| Err(not_found(e)))
    }

    /// The link's type if it exists (`Some(None)` for a link without a type).
    pub async fn find(&self) -> Result<Option<Option<String>>, NetifError> {
        with_handle(|handle| async move {
            Ok(link_by_name(&handle, &self.name)
                .await?
                .map(|l| link_kind(&l)))
        })
        .await
    }

    /// Delete the link by name. A missing link is an error (`Link not found`), as upstream.
    pub async fn remove(&self) -> Result<(), NetifError> {
        with_handle(|handle| async move {
            let link = link_by_name(&handle, &self.name)
                .await?
                .ok_or_else(NetifError::link_not_found)?;
            handle
                .link()
                .del(link.header.index)
                .execute()
                .await
                .map_err(NetifError::netlink)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_read_as_go_prints_them() {
        assert_eq!(
            go_error_text(&io::Error::from_raw_os_error(95)),
            "operation not supported"
        );
        assert_eq!(
            go_error_text(&io::Error::from_raw_os_error(EEXIST)),
            "file exists"
        );
        assert_eq!(
            go_error_text(&io::Error::from_raw_os_error(98)),
            "address already in use"
        );
        assert_eq!(go_error_text(&io::Error::other("Boom")), "Boom");
    }
}
