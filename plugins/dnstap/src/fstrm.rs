//! Frame Streams, the framing dnstap travels in, in its bidirectional form: the writer sends
//! READY, the reader answers ACCEPT, the writer sends START, then data frames (a 32-bit
//! big-endian length and the payload); at the end the writer sends STOP and the reader answers
//! FINISH. A control frame is an escape (a zero length), its own length, its type and its
//! fields (only the content type is defined).
//!
//! Both sides are here: the writer for the plugin, the reader for receivers (the tests and the
//! conformance harness).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The content type dnstap's frames carry.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// The largest control frame accepted (as the reference implementation).
const MAX_CONTROL_FRAME: u32 = 512;

/// The largest data frame accepted by the reader.
const MAX_DATA_FRAME: u32 = 1 << 20;

/// The control frame types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// ACCEPT: the reader takes one of the offered content types.
    Accept = 1,
    /// START: the writer begins a stream.
    Start = 2,
    /// STOP: the writer ends the stream.
    Stop = 3,
    /// READY: the writer offers content types.
    Ready = 4,
    /// FINISH: the reader acknowledges STOP.
    Finish = 5,
}

impl Control {
    fn from_u32(v: u32) -> Option<Control> {
        Some(match v {
            1 => Control::Accept,
            2 => Control::Start,
            3 => Control::Stop,
            4 => Control::Ready,
            5 => Control::Finish,
            _ => return None,
        })
    }
}

/// The content-type field of a control frame.
const FIELD_CONTENT_TYPE: u32 = 1;

/// A Frame Streams failure.
#[derive(Debug, thiserror::Error)]
pub enum FstrmError {
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The handshake took longer than allowed.
    #[error("i/o timeout")]
    Timeout,
    /// A control frame came that the protocol does not allow here.
    #[error("unexpected control frame")]
    UnexpectedControl,
    /// A frame was malformed or too large.
    #[error("decode error")]
    Decode,
    /// The peer does not take dnstap's content type.
    #[error("content type mismatch")]
    ContentType,
}

/// One frame read from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A data frame's payload.
    Data(Vec<u8>),
    /// A control frame: its type and content types.
    Control(Control, Vec<Vec<u8>>),
}

/// A control frame in wire form, with the escape and length.
pub fn control_frame(kind: Control, content_type: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::with_capacity(32);
    body.extend_from_slice(&(kind as u32).to_be_bytes());
    if let Some(ct) = content_type {
        body.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        body.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        body.extend_from_slice(ct);
    }
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A data frame in wire form.
pub fn data_frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Read one frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Frame, FstrmError> {
    let len = r.read_u32().await?;
    if len != 0 {
        if len > MAX_DATA_FRAME {
            return Err(FstrmError::Decode);
        }
        let mut buf = vec![0; len as usize];
        r.read_exact(&mut buf).await?;
        return Ok(Frame::Data(buf));
    }
    let clen = r.read_u32().await?;
    if !(4..=MAX_CONTROL_FRAME).contains(&clen) {
        return Err(FstrmError::Decode);
    }
    let mut buf = vec![0; clen as usize];
    r.read_exact(&mut buf).await?;
    let kind = Control::from_u32(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]))
        .ok_or(FstrmError::Decode)?;
    let mut types = Vec::new();
    let mut rest = &buf[4..];
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err(FstrmError::Decode);
        }
        let field = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let flen = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        rest = &rest[8..];
        if flen > rest.len() {
            return Err(FstrmError::Decode);
        }
        if field == FIELD_CONTENT_TYPE {
            types.push(rest[..flen].to_vec());
        }
        rest = &rest[flen..];
    }
    Ok(Frame::Control(kind, types))
}

async fn read_control<R: AsyncRead + Unpin>(
    r: &mut R,
    want: Control,
) -> Result<Vec<Vec<u8>>, FstrmError> {
    match read_frame(r).await? {
        Frame::Control(kind, types) if kind == want => Ok(types),
        _ => Err(FstrmError::UnexpectedControl),
    }
}

fn offers_dnstap(types: &[Vec<u8>]) -> bool {
    types.is_empty() || types.iter().any(|t| t == CONTENT_TYPE)
}

/// The writer's side of the opening handshake (READY, ACCEPT, START), within `timeout`.
pub async fn open_writer<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    timeout: Duration,
) -> Result<(), FstrmError> {
    let work = async {
        s.write_all(&control_frame(Control::Ready, Some(CONTENT_TYPE)))
            .await?;
        s.flush().await?;
        let types = read_control(s, Control::Accept).await?;
        if !offers_dnstap(&types) {
            return Err(FstrmError::ContentType);
        }
        s.write_all(&control_frame(Control::Start, Some(CONTENT_TYPE)))
            .await?;
        s.flush().await?;
        Ok(())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| FstrmError::Timeout)?
}

/// The writer's side of the closing handshake: STOP, then wait for FINISH within `timeout`.
pub async fn close_writer<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    timeout: Duration,
) -> Result<(), FstrmError> {
    let work = async {
        s.write_all(&control_frame(Control::Stop, None)).await?;
        s.flush().await?;
        read_control(s, Control::Finish).await?;
        Ok(())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| FstrmError::Timeout)?
}

/// The reader's side of the opening handshake: READY, ACCEPT, START.
pub async fn open_reader<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<(), FstrmError> {
    let types = read_control(s, Control::Ready).await?;
    if !offers_dnstap(&types) {
        return Err(FstrmError::ContentType);
    }
    s.write_all(&control_frame(Control::Accept, Some(CONTENT_TYPE)))
        .await?;
    s.flush().await?;
    let types = read_control(s, Control::Start).await?;
    if !offers_dnstap(&types) {
        return Err(FstrmError::ContentType);
    }
    Ok(())
}

/// A reader's view of the rest of a stream after [`open_reader`]: the next data frame, `None`
/// at STOP (answered with FINISH) or at the end of the connection.
pub async fn next_data<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
) -> Result<Option<Vec<u8>>, FstrmError> {
    match read_frame(s).await {
        Ok(Frame::Data(d)) => Ok(Some(d)),
        Ok(Frame::Control(Control::Stop, _)) => {
            s.write_all(&control_frame(Control::Finish, None)).await?;
            s.flush().await?;
            Ok(None)
        }
        Ok(Frame::Control(..)) => Err(FstrmError::UnexpectedControl),
        Err(FstrmError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}
