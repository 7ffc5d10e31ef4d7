//! Per-connection state: input framing, the bounded output queue, watches, transactions.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::ids::{ConnId, DomId, EvtchnPort, TxId};
use crate::txn::Transaction;
use crate::watch::Watch;
use crate::wire::Decoder;

/// How a connection reaches us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnKind {
    /// A Unix socket client (acts as dom0).
    Socket {
        /// Read-only socket: no modifications.
        read_only: bool,
    },
    /// A domain's shared ring page.
    Ring {
        /// The event channel port the domain gave (remote end).
        port: EvtchnPort,
        /// The frame number given at INTRODUCE (`u64::MAX` when unknown).
        gfn: u64,
    },
}

/// One queued outgoing message.
#[derive(Clone, Debug)]
pub struct Outgoing {
    /// Encoded header and payload.
    pub bytes: Vec<u8>,
    /// Whether this is a watch event (else a reply).
    pub is_event: bool,
    /// Engine time after which an unsent event is dropped (XSA-326).
    pub deadline_ms: Option<u64>,
}

/// A connection.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Its id.
    pub id: ConnId,
    /// Its transport.
    pub kind: ConnKind,
    /// The domain it speaks for.
    pub domid: DomId,
    /// Framing state of the input.
    pub decoder: Decoder,
    /// Messages not yet (completely) handed to the transport.
    pub out: VecDeque<Outgoing>,
    /// Bytes of the front message already handed out.
    pub out_sent: usize,
    /// Total queued output bytes.
    pub out_bytes: usize,
    /// Replies queued (for the `outstanding` quota).
    pub replies_queued: usize,
    /// Registered watches, in registration order.
    pub watches: Vec<Watch>,
    /// Open transactions by id.
    pub transactions: BTreeMap<u32, Transaction>,
    /// Watch events dropped for this connection (queue full, timeout, oversized).
    pub events_dropped: u64,
    /// Set once the connection violated the protocol; it is ignored from then on.
    pub faulted: Option<crate::error::Fault>,
    /// `TRANSACTION_START`s received while a live update holds new transactions, in order.
    /// Other requests go on being served (dom0's tools all share one ring connection).
    pub held: Vec<crate::wire::Message>,
}

impl Connection {
    /// A new idle connection.
    pub fn new(id: ConnId, kind: ConnKind, domid: DomId) -> Connection {
        Connection {
            id,
            kind,
            domid,
            decoder: Decoder::new(),
            out: VecDeque::new(),
            out_sent: 0,
            out_bytes: 0,
            replies_queued: 0,
            watches: Vec::new(),
            transactions: BTreeMap::new(),
            events_dropped: 0,
            faulted: None,
            held: Vec::new(),
        }
    }

    /// Whether this is a read-only socket.
    pub fn read_only(&self) -> bool {
        matches!(self.kind, ConnKind::Socket { read_only: true })
    }

    /// Queues an encoded message.
    pub fn push(&mut self, msg: Outgoing) {
        self.out_bytes += msg.bytes.len();
        if !msg.is_event {
            self.replies_queued += 1;
        }
        self.out.push_back(msg);
    }

    /// The unsent bytes of the front message.
    pub fn front_bytes(&self) -> &[u8] {
        match self.out.front() {
            Some(m) => m.bytes.get(self.out_sent..).unwrap_or(&[]),
            None => &[],
        }
    }

    /// Marks `n` bytes of the front message as handed to the transport.
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.out.front() else {
                return;
            };
            let left = front.bytes.len().saturating_sub(self.out_sent);
            let step = left.min(n);
            self.out_sent += step;
            n -= step;
            if self.out_sent >= front.bytes.len() {
                self.pop_front();
            }
        }
    }

    fn pop_front(&mut self) {
        if let Some(m) = self.out.pop_front() {
            self.out_bytes = self.out_bytes.saturating_sub(m.bytes.len());
            if !m.is_event {
                self.replies_queued = self.replies_queued.saturating_sub(1);
            }
        }
        self.out_sent = 0;
    }

    /// Drops unsent watch events whose deadline passed; returns how many went.
    pub fn expire_events(&mut self, now_ms: u64) -> usize {
        let before = self.out.len();
        let sent_front = self.out_sent > 0;
        let mut index = 0usize;
        let mut removed_bytes = 0usize;
        self.out.retain(|m| {
            let in_flight = index == 0 && sent_front;
            index += 1;
            let expired = !in_flight && m.is_event && m.deadline_ms.is_some_and(|d| d <= now_ms);
            if expired {
                removed_bytes += m.bytes.len();
            }
            !expired
        });
        self.out_bytes = self.out_bytes.saturating_sub(removed_bytes);
        let gone = before - self.out.len();
        self.events_dropped += gone as u64;
        gone
    }

    /// Whether an identical event is already queued and unsent (C drops duplicates).
    pub fn has_pending_event(&self, bytes: &[u8]) -> bool {
        self.out
            .iter()
            .enumerate()
            .any(|(i, m)| m.is_event && !(i == 0 && self.out_sent > 0) && m.bytes == bytes)
    }

    /// The transaction a request names.
    pub fn transaction(&self, tx: TxId) -> Option<&Transaction> {
        self.transactions.get(&tx.0)
    }

    /// Forgets all state (watches, transactions, queued output, partial input): a fault or
    /// a re-introduction starts the connection afresh.
    pub fn reset(&mut self) {
        self.reset_watches_and_transactions();
        self.out.clear();
        self.out_bytes = 0;
        self.out_sent = 0;
        self.replies_queued = 0;
        self.decoder = Decoder::new();
        self.faulted = None;
        self.held.clear();
    }

    /// Forgets everything a reconnect or `RESET_WATCHES` resets: watches and transactions.
    pub fn reset_watches_and_transactions(&mut self) {
        self.watches.clear();
        self.transactions.clear();
    }
}
