//! A small blocking xenstore client over a Unix socket or the Linux xenbus device.
//!
//! Messages are written one `write` per message (the Linux xenbus device takes exactly one
//! message per write and drops anything after it). A reader thread decodes whatever arrives
//! (replies and `WATCH_EVENT`s, possibly interleaved and split across reads) with
//! [`xsstate::wire::Decoder`] and hands whole messages over, so every wait can have a deadline.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use xsstate::wire::{Decoded, Decoder};
use xsstate::{Message, MsgType, TxId};

/// The Linux xenbus device, the default way in from dom0.
pub const XENBUS_DEVICE: &str = "/dev/xen/xenbus";

/// Where to reach xenstore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket (`xenstored-host`, C xenstored's socket).
    Socket(PathBuf),
    /// A xenbus character device (`/dev/xen/xenbus`).
    Device(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Socket(p) => write!(f, "socket {}", p.display()),
            Endpoint::Device(p) => write!(f, "device {}", p.display()),
        }
    }
}

/// Why a request did not give the expected answer.
#[derive(Debug)]
pub enum ClientError {
    /// Reading, writing or decoding failed; the connection is unusable.
    Io(io::Error),
    /// Nothing arrived before the deadline; the connection may still deliver it later.
    Timeout,
    /// xenstore answered with `XS_ERROR` and this errno name (`EAGAIN`, `ENOENT`, ...).
    Reply(String),
    /// A reply of another type than the request, or a malformed payload.
    Unexpected(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
            ClientError::Timeout => write!(f, "timed out waiting for xenstore"),
            ClientError::Reply(name) => write!(f, "error reply {name}"),
            ClientError::Unexpected(what) => write!(f, "unexpected reply: {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> ClientError {
        ClientError::Io(e)
    }
}

/// A watch event: the path that fired and the token it was registered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed (or the watched path, for the initial event).
    pub path: String,
    /// The watch's token.
    pub token: String,
}

impl WatchEvent {
    /// Parses a `WATCH_EVENT` payload `path\0token\0`.
    pub fn parse(payload: &[u8]) -> Option<WatchEvent> {
        let mut parts = payload.split(|&b| b == 0);
        let path = parts.next()?;
        let token = parts.next()?;
        Some(WatchEvent {
            path: String::from_utf8_lossy(path).into_owned(),
            token: String::from_utf8_lossy(token).into_owned(),
        })
    }
}

/// The text of a payload up to its first NUL (`EAGAIN\0` of an `XS_ERROR`, the id of a
/// `TRANSACTION_START` reply).
pub fn text0(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(payload.get(..end).unwrap_or(&[])).into_owned()
}

/// Joins strings into a payload, each followed by a NUL.
pub fn payload0(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
        out.push(0);
    }
    out
}

/// One open connection to xenstore (one socket connection, or one open of the device, which
/// is what the Linux driver keys transactions and watches on).
pub struct Client {
    writer: Box<dyn Write + Send>,
    socket: Option<UnixStream>,
    rx: Receiver<io::Result<Message>>,
    events: VecDeque<WatchEvent>,
    next_req: u32,
    broken: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("next_req", &self.next_req)
            .field("queued_events", &self.events.len())
            .field("broken", &self.broken)
            .finish()
    }
}

impl Client {
    /// Connects to the socket or opens the device.
    pub fn open(endpoint: &Endpoint) -> io::Result<Client> {
        match endpoint {
            Endpoint::Socket(path) => {
                let s = UnixStream::connect(path).map_err(|e| with_path(e, path))?;
                let reader = s.try_clone()?;
                let keep = s.try_clone()?;
                Client::start(Box::new(s), Box::new(reader), Some(keep))
            }
            Endpoint::Device(path) => {
                let f: File = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| with_path(e, path))?;
                let reader = f.try_clone()?;
                Client::start(Box::new(f), Box::new(reader), None)
            }
        }
    }

    fn start(
        writer: Box<dyn Write + Send>,
        mut reader: Box<dyn Read + Send>,
        socket: Option<UnixStream>,
    ) -> io::Result<Client> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("xenstore-reader".into())
            .spawn(move || {
                let mut dec = Decoder::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match reader.read(&mut buf) {
                        Ok(0) => {
                            let _ = tx.send(Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "xenstore closed the connection",
                            )));
                            return;
                        }
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let mut data = buf.get(..n).unwrap_or(&[]);
                    while !data.is_empty() {
                        match dec.feed(data) {
                            Ok(Decoded::Message { msg, consumed }) => {
                                data = data.get(consumed..).unwrap_or(&[]);
                                if tx.send(Ok(msg)).is_err() {
                                    return;
                                }
                            }
                            Ok(Decoded::NeedMore) => break,
                            Err(fault) => {
                                let _ = tx.send(Err(io::Error::new(
                                    io::ErrorKind::InvalidData,
                                    format!("undecodable message from xenstore: {fault}"),
                                )));
                                return;
                            }
                        }
                    }
                }
            })?;
        Ok(Client {
            writer,
            socket,
            rx,
            events: VecDeque::new(),
            next_req: 1,
            broken: false,
        })
    }

    /// Sends one request (one write) and returns its request id.
    pub fn send(&mut self, ty: MsgType, tx: u32, payload: Vec<u8>) -> Result<u32, ClientError> {
        if self.broken {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection already failed",
            )));
        }
        let req_id = self.next_req;
        self.next_req = self.next_req.wrapping_add(1).max(1);
        let bytes = Message::new(ty, req_id, TxId(tx), payload).encode();
        if let Err(e) = self.writer.write_all(&bytes) {
            self.broken = true;
            return Err(ClientError::Io(e));
        }
        Ok(req_id)
    }

    /// The next message that is not a watch event (events are queued for
    /// [`Client::next_event`]), waiting until `deadline`.
    pub fn next_reply(&mut self, deadline: Instant) -> Result<Message, ClientError> {
        loop {
            let msg = self.recv(deadline)?;
            if msg.msg_type == MsgType::WatchEvent as u32 {
                self.queue_event(&msg)?;
                continue;
            }
            return Ok(msg);
        }
    }

    /// The reply to `req_id`, waiting until `deadline`; replies to other (abandoned)
    /// requests are skipped, watch events are queued.
    pub fn wait_reply(&mut self, req_id: u32, deadline: Instant) -> Result<Message, ClientError> {
        loop {
            let msg = self.next_reply(deadline)?;
            if msg.req_id == req_id {
                return Ok(msg);
            }
        }
    }

    /// Sends a request and waits for its reply; an `XS_ERROR` reply becomes
    /// [`ClientError::Reply`], a reply of another type [`ClientError::Unexpected`].
    pub fn call(
        &mut self,
        ty: MsgType,
        tx: u32,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, ClientError> {
        let deadline = Instant::now() + timeout;
        let req_id = self.send(ty, tx, payload)?;
        let msg = self.wait_reply(req_id, deadline)?;
        check_reply(ty, &msg)?;
        Ok(msg.payload)
    }

    /// The next watch event, waiting until `deadline`; replies that arrive meanwhile (to
    /// abandoned requests) are dropped.
    pub fn next_event(&mut self, deadline: Instant) -> Result<WatchEvent, ClientError> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(ev);
            }
            let msg = self.recv(deadline)?;
            if msg.msg_type == MsgType::WatchEvent as u32 {
                self.queue_event(&msg)?;
            }
        }
    }

    fn queue_event(&mut self, msg: &Message) -> Result<(), ClientError> {
        let ev = WatchEvent::parse(&msg.payload).ok_or_else(|| {
            ClientError::Unexpected(format!(
                "malformed WATCH_EVENT payload {:?}",
                String::from_utf8_lossy(&msg.payload)
            ))
        })?;
        self.events.push_back(ev);
        Ok(())
    }

    fn recv(&mut self, deadline: Instant) -> Result<Message, ClientError> {
        if self.broken {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "connection already failed",
            )));
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(wait) {
            Ok(Ok(msg)) => Ok(msg),
            Ok(Err(e)) => {
                self.broken = true;
                Err(ClientError::Io(e))
            }
            Err(RecvTimeoutError::Timeout) => Err(ClientError::Timeout),
            Err(RecvTimeoutError::Disconnected) => {
                self.broken = true;
                Err(ClientError::Io(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "reader stopped",
                )))
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Wake the reader thread of a socket; a device's reader ends with the process.
        if let Some(s) = &self.socket {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Checks that `msg` answers a request of type `ty`: `XS_ERROR` becomes
/// [`ClientError::Reply`], another type [`ClientError::Unexpected`].
pub fn check_reply(ty: MsgType, msg: &Message) -> Result<(), ClientError> {
    if msg.msg_type == MsgType::Error as u32 {
        return Err(ClientError::Reply(text0(&msg.payload)));
    }
    if msg.msg_type != ty as u32 {
        let got = MsgType::from_u32(msg.msg_type).map_or("unknown", MsgType::name);
        return Err(ClientError::Unexpected(format!(
            "{} reply (type {}) to a {} request",
            got,
            msg.msg_type,
            ty.name()
        )));
    }
    Ok(())
}

/// Checks that `msg` is the `OK` acknowledgement of a request of type `ty`.
pub fn check_ok(ty: MsgType, msg: &Message) -> Result<(), ClientError> {
    check_reply(ty, msg)?;
    if msg.payload != b"OK\0" {
        return Err(ClientError::Unexpected(format!(
            "{} answered {:?} instead of OK",
            ty.name(),
            String::from_utf8_lossy(&msg.payload)
        )));
    }
    Ok(())
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_helpers() {
        assert_eq!(payload0(&[b"/a", b"tok"]), b"/a\0tok\0");
        assert_eq!(text0(b"EAGAIN\0"), "EAGAIN");
        assert_eq!(text0(b"EIO"), "EIO");
        assert_eq!(
            WatchEvent::parse(b"/a/b\0t\0"),
            Some(WatchEvent {
                path: "/a/b".into(),
                token: "t".into()
            })
        );
        assert_eq!(WatchEvent::parse(b"/a"), None);
    }

    #[test]
    fn check_reply_kinds() {
        let ok = Message::new(MsgType::Write, 1, TxId(0), b"OK\0".to_vec());
        assert!(check_ok(MsgType::Write, &ok).is_ok());
        assert!(matches!(
            check_ok(MsgType::SetPerms, &ok),
            Err(ClientError::Unexpected(_))
        ));
        let err = Message::new(MsgType::Error, 1, TxId(0), b"EACCES\0".to_vec());
        assert!(matches!(
            check_reply(MsgType::Read, &err),
            Err(ClientError::Reply(n)) if n == "EACCES"
        ));
    }
}
