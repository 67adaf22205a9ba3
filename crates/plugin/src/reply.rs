//! What a handler gives back.

use bytes::Bytes;
use hickory_proto::op::{Message, ResponseCode};

/// The outcome of serving a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A decoded message to send. The server sets the ID, echoes the client's OPT record and
    /// truncates it to the client's size.
    Message(Box<Message>),
    /// A reply already in wire format (from an upstream or a wire cache). The server patches the
    /// ID and OPT and truncates it as for [`Reply::Message`].
    Wire(Bytes),
    /// Nothing was written; the server answers with this rcode when it is SERVFAIL, REFUSED,
    /// FORMERR or NOTIMP, and sends nothing otherwise (CoreDNS's "plugin did not write").
    Rcode(ResponseCode),
    /// Send nothing at all (for example the `acl` plugin's `drop`).
    Drop,
}

impl Reply {
    /// Wrap a message.
    pub fn message(msg: Message) -> Self {
        Reply::Message(Box::new(msg))
    }

    /// The reply's rcode: the message's (header and EDNS extended bits) for a message, the header's
    /// 4 bits only for wire bytes (cheap, no decode), the given rcode for [`Reply::Rcode`], `None`
    /// for [`Reply::Drop`].
    pub fn rcode(&self) -> Option<ResponseCode> {
        match self {
            Reply::Message(m) => Some(m.metadata.response_code),
            Reply::Wire(b) => crate::wire::rcode(b),
            Reply::Rcode(r) => Some(*r),
            Reply::Drop => None,
        }
    }

    /// The reply decoded, turning a wire reply into a message in place (so plugins after the
    /// first that need fields pay for one decode). `None` for [`Reply::Rcode`] and
    /// [`Reply::Drop`] and for wire bytes that do not decode.
    pub fn decoded(&mut self) -> Option<&mut Message> {
        if let Reply::Wire(b) = self {
            let msg = Message::from_vec(b).ok()?;
            *self = Reply::Message(Box::new(msg));
        }
        match self {
            Reply::Message(m) => Some(m),
            _ => None,
        }
    }
}
