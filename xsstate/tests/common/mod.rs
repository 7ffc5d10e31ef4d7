//! Test harness: drive an engine through its byte interface like a real client would.
#![allow(dead_code)]

use xsstate::wire::{decode_all, Message, MsgType};
use xsstate::{ConnId, DomId, Engine, EngineConfig, EvtchnPort, TxId, XsError};

/// One reply or event as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Got {
    /// A reply of the request's type with this payload.
    Ok(Vec<u8>),
    /// An `XS_ERROR` reply.
    Err(XsError),
}

/// The error reply `err`, as a client sees it.
pub fn e(err: XsError) -> Got {
    Got::Err(err)
}

/// An engine plus helpers to talk to it.
pub struct Harness {
    pub engine: Engine,
    next_req: u32,
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            engine: Engine::new(EngineConfig::default()),
            next_req: 1,
        }
    }

    /// A harness around an existing engine (a restored one).
    pub fn around(engine: Engine) -> Harness {
        Harness {
            engine,
            next_req: 1000,
        }
    }

    pub fn with_config(cfg: EngineConfig) -> Harness {
        Harness {
            engine: Engine::new(cfg),
            next_req: 1,
        }
    }

    /// A dom0 socket connection.
    pub fn dom0(&mut self) -> ConnId {
        self.engine.connect_socket(false)
    }

    /// Introduces a guest domain through dom0 and returns its connection.
    pub fn guest(&mut self, dom0: ConnId, domid: u16) -> ConnId {
        let payload = format!(
            "{domid}\x00{}\x00{}\x00",
            1000 + u32::from(domid),
            10 + u32::from(domid)
        );
        let r = self.call(dom0, MsgType::Introduce, TxId(0), payload.as_bytes());
        assert_eq!(r, Got::Ok(b"OK\0".to_vec()), "introduce {domid}");
        self.events(dom0);
        self.engine
            .connections()
            .find(|c| c.domid == DomId(domid))
            .map(|c| c.id)
            .expect("introduced connection")
    }

    /// Sends a request and returns its reply; watch events are kept for [`Harness::events`].
    pub fn call(&mut self, conn: ConnId, ty: MsgType, tx: TxId, payload: &[u8]) -> Got {
        let req = self.next_req;
        self.next_req += 1;
        let bytes = Message::new(ty, req, tx, payload.to_vec()).encode();
        let used = self.engine.receive(conn, &bytes).expect("no fault");
        assert_eq!(used, bytes.len());
        let pending = self.take_all(conn);
        let mut reply = None;
        let mut events = Vec::new();
        for m in pending {
            if m.msg_type == MsgType::WatchEvent as u32 {
                events.push(m);
            } else {
                assert_eq!(m.req_id, req);
                reply = Some(if m.msg_type == MsgType::Error as u32 {
                    let name = std::str::from_utf8(&m.payload[..m.payload.len() - 1]).unwrap();
                    Got::Err(XsError::from_name(name).expect("known errno"))
                } else {
                    assert_eq!(m.msg_type, ty as u32);
                    Got::Ok(m.payload)
                });
            }
        }
        self.stash(conn, events);
        reply.expect("a reply")
    }

    fn take_all(&mut self, conn: ConnId) -> Vec<Message> {
        let out = self.engine.drain_output(conn);
        let (msgs, used) = decode_all(&out).unwrap();
        assert_eq!(used, out.len());
        msgs
    }

    fn stash(&mut self, conn: ConnId, events: Vec<Message>) {
        STASH.with(|s| s.borrow_mut().entry(conn).or_default().extend(events));
    }

    /// Watch events received so far by `conn` as (path, token).
    pub fn events(&mut self, conn: ConnId) -> Vec<(String, String)> {
        let more = self.take_all(conn);
        self.stash(conn, more);
        let all = STASH.with(|s| s.borrow_mut().remove(&conn).unwrap_or_default());
        all.into_iter()
            .map(|m| {
                assert_eq!(m.msg_type, MsgType::WatchEvent as u32);
                let parts: Vec<&[u8]> = m.payload.split(|&b| b == 0).collect();
                (
                    String::from_utf8(parts[0].to_vec()).unwrap(),
                    String::from_utf8(parts[1].to_vec()).unwrap(),
                )
            })
            .collect()
    }

    pub fn write(&mut self, c: ConnId, path: &str, value: &[u8]) -> Got {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        p.extend_from_slice(value);
        self.call(c, MsgType::Write, TxId(0), &p)
    }

    pub fn write_tx(&mut self, c: ConnId, tx: TxId, path: &str, value: &[u8]) -> Got {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        p.extend_from_slice(value);
        self.call(c, MsgType::Write, tx, &p)
    }

    pub fn read(&mut self, c: ConnId, path: &str) -> Got {
        self.call(c, MsgType::Read, TxId(0), &z(path))
    }

    pub fn read_tx(&mut self, c: ConnId, tx: TxId, path: &str) -> Got {
        self.call(c, MsgType::Read, tx, &z(path))
    }

    pub fn dir(&mut self, c: ConnId, path: &str) -> Got {
        self.call(c, MsgType::Directory, TxId(0), &z(path))
    }

    pub fn rm(&mut self, c: ConnId, path: &str) -> Got {
        self.call(c, MsgType::Rm, TxId(0), &z(path))
    }

    pub fn mkdir(&mut self, c: ConnId, path: &str) -> Got {
        self.call(c, MsgType::Mkdir, TxId(0), &z(path))
    }

    pub fn set_perms(&mut self, c: ConnId, path: &str, perms: &[&str]) -> Got {
        let mut p = z(path);
        for x in perms {
            p.extend_from_slice(&z(x));
        }
        self.call(c, MsgType::SetPerms, TxId(0), &p)
    }

    pub fn get_perms(&mut self, c: ConnId, path: &str) -> Got {
        self.call(c, MsgType::GetPerms, TxId(0), &z(path))
    }

    pub fn watch(&mut self, c: ConnId, path: &str, token: &str) -> Got {
        let mut p = z(path);
        p.extend_from_slice(&z(token));
        self.call(c, MsgType::Watch, TxId(0), &p)
    }

    pub fn start(&mut self, c: ConnId) -> TxId {
        match self.call(c, MsgType::TransactionStart, TxId(0), b"\0") {
            Got::Ok(p) => TxId(
                std::str::from_utf8(&p[..p.len() - 1])
                    .unwrap()
                    .parse()
                    .unwrap(),
            ),
            Got::Err(e) => panic!("transaction start: {e}"),
        }
    }

    pub fn end(&mut self, c: ConnId, tx: TxId, commit: bool) -> Got {
        self.call(
            c,
            MsgType::TransactionEnd,
            tx,
            if commit { b"T\0" } else { b"F\0" },
        )
    }

    pub fn check(&self) {
        self.engine.store().check().expect("store consistent");
    }
}

thread_local! {
    static STASH: std::cell::RefCell<std::collections::HashMap<ConnId, Vec<Message>>> = Default::default();
}

/// A NUL-terminated payload.
pub fn z(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// `OK\0`.
pub fn okr() -> Got {
    Got::Ok(b"OK\0".to_vec())
}

/// Port helper.
pub fn port(p: u32) -> EvtchnPort {
    EvtchnPort(p)
}

impl Harness {
    /// Sends a request with a raw (possibly unknown) type; returns the reply's raw type and
    /// payload. Watch events are kept for [`Harness::events`].
    pub fn call_raw(&mut self, conn: ConnId, ty: u32, tx: TxId, payload: &[u8]) -> (u32, Vec<u8>) {
        let req = self.next_req;
        self.next_req += 1;
        let bytes = Message {
            msg_type: ty,
            req_id: req,
            tx_id: tx,
            payload: payload.to_vec(),
        }
        .encode();
        let used = self.engine.receive(conn, &bytes).expect("no fault");
        assert_eq!(used, bytes.len());
        let pending = self.take_all(conn);
        let mut reply = None;
        let mut events = Vec::new();
        for m in pending {
            if m.msg_type == MsgType::WatchEvent as u32 && m.req_id == 0 {
                events.push(m);
            } else {
                assert_eq!(m.req_id, req);
                reply = Some((m.msg_type, m.payload));
            }
        }
        self.stash(conn, events);
        reply.expect("a reply")
    }

    /// Sends a request without reading anything back; returns the bytes consumed.
    pub fn send(&mut self, conn: ConnId, ty: MsgType, tx: TxId, payload: &[u8]) -> usize {
        let req = self.next_req;
        self.next_req += 1;
        let bytes = Message::new(ty, req, tx, payload.to_vec()).encode();
        self.engine.receive(conn, &bytes).expect("no fault")
    }

    /// Creates `/local/domain/<domid>` owned by the domain (as the toolstack does).
    pub fn home(&mut self, dom0: ConnId, domid: u16) {
        let p = format!("/local/domain/{domid}");
        assert_eq!(self.mkdir(dom0, &p), okr());
        assert_eq!(self.set_perms(dom0, &p, &[&format!("n{domid}")]), okr());
    }

    /// UNWATCH.
    pub fn unwatch(&mut self, c: ConnId, path: &str, token: &str) -> Got {
        let mut p = z(path);
        p.extend_from_slice(&z(token));
        self.call(c, MsgType::Unwatch, TxId(0), &p)
    }

    /// A request whose arguments are NUL-terminated strings.
    pub fn args(&mut self, c: ConnId, ty: MsgType, args: &[&str]) -> Got {
        let mut p = Vec::new();
        for a in args {
            p.extend_from_slice(&z(a));
        }
        self.call(c, ty, TxId(0), &p)
    }
}

/// A text reply `s\0`.
pub fn txt(s: &str) -> Got {
    Got::Ok(z(s))
}
