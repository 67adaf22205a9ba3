//! Looking names up through the server itself, for plugins that chase names (CoreDNS's
//! `upstream` package).

use async_trait::async_trait;
use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};

use crate::{PluginError, Request};

/// Something that resolves a name through the server's zones and chains; the server gives
/// each request one (see [`Request::lookup`]).
#[async_trait]
pub trait Lookup: Send + Sync {
    /// Resolve `name`/`qtype` as a new query from the same client as `from`, one level deeper.
    async fn lookup(
        &self,
        from: &Request,
        name: Name,
        qtype: RecordType,
    ) -> Result<Message, PluginError>;
}
