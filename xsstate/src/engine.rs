//! The engine: connections feed it messages, it answers, fires watches and asks the shell
//! for effects. The single dispatch point (`process`) owns privilege, transaction lookup
//! and flow control before any handler runs.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::budget::{Limit, LimitLog};
use crate::conn::{ConnKind, Connection, Outgoing};
use crate::error::{Fault, XsError};
use crate::ids::{ConnId, DomId, EvtchnPort, TxId};
use crate::memory::{MemoryStats, SharedMemory, Unlimited};
use crate::oracle::SharedOracle;
use crate::perms::{Perm, Perms, Requester};
use crate::quota::{QuotaKind, Quotas};
use crate::store::Store;
use crate::watch::RELEASE_DOMAIN;
use crate::wire::{Decoded, Message, MsgType, PAYLOAD_MAX};

/// Engine settings chosen by the shell.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The privileged domain (dom0 unless configured otherwise).
    pub priv_domid: DomId,
    /// Global quotas, the defaults for new domains.
    pub quotas: Quotas,
    /// Unprivileged connections may queue at most this many bytes of watch events; further
    /// events are dropped (XSA-326).
    pub event_queue_limit_bytes: usize,
    /// Privileged connections get this much more room before events are dropped.
    pub privileged_event_queue_limit_bytes: usize,
    /// Unsent watch events of unprivileged connections are dropped after this (0: never).
    pub watch_event_timeout_ms: u64,
    /// Write rate limit of unprivileged domains (XSA-206).
    pub write_rate: crate::ratelimit::WriteRate,
    /// Secret seed of the store's name index (pick one at random per boot).
    pub index_seed: u64,
    /// The `path-max` quota limits privileged callers too, as C xenstored up to 4.17 does
    /// (`is_valid_nodename`: a path longer than 2048 bytes after any `/local/domain/<n>/` is
    /// `EINVAL` for dom0 as well). From 4.18 (and by default here) only unprivileged callers
    /// are limited and a privileged one only by the payload. The stub domain sets it on Xen
    /// 4.17, so that dom0's tools see the rules of their own release's xenstored.
    pub path_max_for_privileged: bool,
    /// How `xenstore-control quota` lists the quotas (as the host's C xenstored would).
    pub quota_style: crate::quota::QuotaStyle,
    /// `@releaseDomain` starts readable by every domain (`n0 r<DOMID_ANY>`), so that guests'
    /// watches on it fire, as C xenstored 4.22 does; before, only the privileged domain's do.
    pub release_domain_for_all: bool,
    /// Heap bytes no request may use (see [`crate::budget`]).
    pub core_reserve_bytes: usize,
    /// Further heap bytes unprivileged requests may not use (at least; a sixteenth of the
    /// heap's maximum if that is more).
    pub guest_reserve_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            priv_domid: DomId::DOM0,
            quotas: Quotas::default(),
            event_queue_limit_bytes: 128 * 1024,
            privileged_event_queue_limit_bytes: 64 * 1024 * 1024,
            watch_event_timeout_ms: 20_000,
            write_rate: crate::ratelimit::WriteRate::default(),
            index_seed: 0x9e37_79b9_7f4a_7c15,
            path_max_for_privileged: false,
            quota_style: crate::quota::QuotaStyle::Xen417,
            release_domain_for_all: false,
            core_reserve_bytes: 256 * 1024,
            guest_reserve_bytes: 768 * 1024,
        }
    }
}

/// Something the shell must carry out after a call into the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A domain was introduced: map its ring (grant ref 1) and bind to `port`.
    Introduced {
        /// The new connection.
        conn: ConnId,
        /// The domain.
        domid: DomId,
        /// Its event channel (remote port).
        port: EvtchnPort,
        /// The frame number it gave (informative).
        gfn: u64,
        /// Its features (`SET_FEATURE`, else all supported): write them to the ring's
        /// `server_features`, as C xenstored 4.21+ does at the first introduction. The ring
        /// indices are reset to 0 as for a re-introduction (C's `domain_conn_reset`).
        features: u32,
    },
    /// An introduced domain was introduced again: rebind `port`, reset the ring indices.
    Reintroduced {
        /// The existing connection.
        conn: ConnId,
        /// The domain.
        domid: DomId,
        /// The (possibly new) port.
        port: EvtchnPort,
    },
    /// A domain was released or died: unmap, unbind and forget its connection.
    Released {
        /// The connection that was removed, if it had one.
        conn: Option<ConnId>,
        /// The domain.
        domid: DomId,
    },
    /// A `CONTROL live-update` request for the shell; it must answer with
    /// [`Engine::reply`] (the engine sends nothing).
    LiveUpdate {
        /// Requesting connection.
        conn: ConnId,
        /// Its request id.
        req_id: u32,
        /// Its transaction id.
        tx_id: TxId,
        /// The parsed sub-command.
        cmd: crate::control::LiveUpdateCmd,
    },
    /// A line for the log / console (`CONTROL print`, `memreport`, warnings).
    Log(String),
}

/// What the shell learned about a domain from the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// Running normally.
    Running,
    /// Shut down or crashed, not yet destroyed.
    Shutdown,
    /// Dying or gone.
    Dead,
}

/// A domain known to the engine.
#[derive(Clone, Debug)]
pub struct Domain {
    /// Its id.
    pub domid: DomId,
    /// Its ring connection, once introduced.
    pub conn: Option<ConnId>,
    /// INTRODUCE was received (and not yet RELEASE/death).
    pub introduced: bool,
    /// `@releaseDomain` already fired for a shutdown (reset by RESUME).
    pub shutdown_reported: bool,
    /// The domain it acts for (`SET_TARGET`).
    pub target: Option<DomId>,
    /// Ring features to advertise (`SET_FEATURE`).
    pub features: u32,
    /// Its quotas.
    pub quotas: Quotas,
    /// Its write budget (XSA-206).
    pub writes: crate::ratelimit::WriteBudget,
}

/// The engine.
#[derive(Clone, Debug)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) store: Store,
    pub(crate) conns: BTreeMap<ConnId, Connection>,
    pub(crate) domains: BTreeMap<DomId, Domain>,
    pub(crate) special_perms: [Perms; 2],
    /// A live update is quiescing: new `TRANSACTION_START`s wait.
    transactions_held: bool,
    /// The `CONTROL version` answer the shell set.
    version_text: Option<String>,
    /// Heap use the shell reports (`used`, `free` bytes), shown by `memreport`.
    heap_usage: Option<(usize, usize)>,
    pub(crate) effects: Vec<Effect>,
    pub(crate) now_ms: u64,
    pub(crate) trace: bool,
    /// Events to queue after the current reply (a new watch's first event).
    pub(crate) after_reply: Vec<(ConnId, Vec<u8>)>,
    next_conn: u32,
    /// The shell's heap.
    pub(crate) memory: SharedMemory,
    /// What the shell knows about domains.
    pub(crate) oracle: Option<SharedOracle>,
    /// Limits hit, for the rate-limited log.
    pub(crate) limits: LimitLog,
}

/// A handler's answer: a payload to send with the request's type, or nothing yet.
pub(crate) type HandlerResult = Result<Option<Vec<u8>>, XsError>;

/// `OK\0`, the plain success payload.
pub(crate) fn ok() -> HandlerResult {
    Ok(Some(b"OK\0".to_vec()))
}

impl Engine {
    /// An engine with the tree C xenstored starts with: `/`, `/tool`, `/tool/xenstored`,
    /// all owned by the privileged domain with no access for others.
    pub fn new(config: EngineConfig) -> Engine {
        let owner = config.priv_domid;
        let for_all = config.release_domain_for_all;
        let mut e = Engine::empty(config);
        let perms = Perms::owner_only(owner, Perm::None);
        if for_all {
            let entry = |domid, perm| crate::perms::PermEntry { domid, perm };
            let all = [entry(owner, Perm::None), entry(DomId::ANY, Perm::Read)];
            if let Some(p) = Perms::from_entries(all.to_vec()) {
                e.special_perms[1] = p;
            }
        }
        if let Ok(tool) = e
            .store
            .create(crate::store::NodeId::ROOT, "tool", &perms, &[])
        {
            let _ = e.store.create(tool, "xenstored", &perms, &[]);
        }
        e
    }

    /// An engine whose store holds only `/` (the starting point of a restore).
    pub fn empty(config: EngineConfig) -> Engine {
        let owner = config.priv_domid;
        let special = Perms::owner_only(owner, Perm::None);
        Engine {
            store: Store::with_seed(owner, config.index_seed),
            conns: BTreeMap::new(),
            domains: BTreeMap::new(),
            special_perms: [special.clone(), special],
            heap_usage: None,
            transactions_held: false,
            version_text: None,
            effects: Vec::new(),
            now_ms: 0,
            trace: false,
            after_reply: Vec::new(),
            next_conn: 1,
            memory: alloc::sync::Arc::new(Unlimited),
            oracle: None,
            limits: LimitLog::default(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The committed store (read-only).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every connection.
    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.conns.values()
    }

    /// One connection.
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.conns.get(&id)
    }

    /// Every known domain.
    pub fn domains(&self) -> impl Iterator<Item = &Domain> {
        self.domains.values()
    }

    /// Sets the engine clock (milliseconds, monotonic) and drops watch events that waited
    /// longer than the watch-event timeout.
    pub fn set_time_ms(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        let rate = self.config.write_rate;
        for d in self.domains.values_mut() {
            d.writes.refill(rate, now_ms);
        }
        let mut dropped = 0usize;
        for c in self.conns.values_mut() {
            dropped += c.expire_events(now_ms);
        }
        if dropped > 0 {
            self.log(alloc::format!(
                "dropped {dropped} watch events past their timeout"
            ));
        }
    }

    /// Takes the effects produced so far.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        core::mem::take(&mut self.effects)
    }

    pub(crate) fn log(&mut self, line: String) {
        self.effects.push(Effect::Log(line));
    }

    pub(crate) fn alloc_conn_id(&mut self) -> ConnId {
        loop {
            let id = ConnId(self.next_conn);
            self.next_conn = self.next_conn.wrapping_add(1).max(1);
            if !self.conns.contains_key(&id) {
                return id;
            }
        }
    }

    /// Sets the next connection id to hand out (after a restore).
    pub(crate) fn set_next_conn(&mut self, next: u32) {
        self.next_conn = next.max(1);
    }

    /// Adds a socket connection (acting for the privileged domain, as C xenstored's socket).
    pub fn connect_socket(&mut self, read_only: bool) -> ConnId {
        let id = self.alloc_conn_id();
        let domid = self.config.priv_domid;
        self.conns.insert(
            id,
            Connection::new(id, ConnKind::Socket { read_only }, domid),
        );
        id
    }

    /// Adds a ring connection the shell set up by itself (dom0's ring in the stub domain).
    pub fn connect_domain(&mut self, domid: DomId, port: EvtchnPort, gfn: u64) -> ConnId {
        let id = self.alloc_conn_id();
        self.conns
            .insert(id, Connection::new(id, ConnKind::Ring { port, gfn }, domid));
        let (rate, now) = (self.config.write_rate, self.now_ms);
        let d = self.domain_entry(domid);
        d.conn = Some(id);
        d.introduced = true;
        d.shutdown_reported = false;
        d.writes = crate::ratelimit::WriteBudget::full(rate, now);
        id
    }

    /// The record of `domid`, created with the global quotas when it is new.
    pub(crate) fn domain_entry(&mut self, domid: DomId) -> &mut Domain {
        let quotas = self.config.quotas;
        self.domains
            .entry(domid)
            .or_insert_with(|| Domain::new(domid, quotas))
    }

    /// Removes a connection and everything it held (watches, transactions, output).
    pub fn disconnect(&mut self, id: ConnId) {
        if let Some(c) = self.conns.remove(&id) {
            if let Some(d) = self.domains.get_mut(&c.domid) {
                if d.conn == Some(id) {
                    d.conn = None;
                }
            }
        }
    }

    /// Faults a connection (stream violation): its watches, transactions and queued output
    /// are dropped and its input is ignored from now on; nobody else is affected.
    pub fn fault(&mut self, id: ConnId, fault: Fault) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.reset();
            c.faulted = Some(fault);
        }
        self.log(alloc::format!("{id}: faulted: {fault}"));
    }

    /// The identity a connection's requests are checked with.
    pub fn requester(&self, id: ConnId) -> Option<Requester> {
        let c = self.conns.get(&id)?;
        Some(self.requester_of(c))
    }

    pub(crate) fn requester_of(&self, c: &Connection) -> Requester {
        Requester {
            domid: c.domid,
            privileged: c.domid == self.config.priv_domid,
            target: self.domains.get(&c.domid).and_then(|d| d.target),
            read_only: c.read_only(),
        }
    }

    /// The quotas that apply to a domain.
    pub(crate) fn quotas_for(&self, domid: DomId) -> Quotas {
        self.domains
            .get(&domid)
            .map_or(self.config.quotas, |d| d.quotas)
    }

    /// Whether the connection may take another request now (the `outstanding` quota holds
    /// back unprivileged domains whose replies are not being read).
    pub fn can_receive(&self, id: ConnId) -> bool {
        let Some(c) = self.conns.get(&id) else {
            return false;
        };
        if c.faulted.is_some() {
            return false;
        }
        if c.domid == self.config.priv_domid {
            return true;
        }
        if self.config.write_rate.per_s != 0
            && self
                .domains
                .get(&c.domid)
                .is_some_and(|d| d.writes.exhausted())
        {
            return false;
        }
        !self
            .quotas_for(c.domid)
            .reached(QuotaKind::Outstanding, c.replies_queued)
    }

    /// The earliest engine time at which something held back becomes possible again (a
    /// rate-limited domain may write, a watch event expires); the shell sleeps until then.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        let rate = self.config.write_rate;
        let writes = self
            .domains
            .values()
            .filter_map(|d| d.writes.ready_at_ms(rate));
        let events = self
            .conns
            .values()
            .flat_map(|c| c.out.iter().filter_map(|m| m.deadline_ms));
        // Only future times: a deadline already passed belongs to a message being sent,
        // which is never dropped, and must not make the shell spin.
        let now = self.now_ms;
        writes.chain(events).filter(|&t| t > now).min()
    }

    /// Feeds received bytes; complete messages are processed at once. Returns how many
    /// bytes were consumed: fewer than given when the connection must wait for its replies
    /// to be read. A stream violation faults the connection and is returned.
    pub fn receive(&mut self, id: ConnId, bytes: &[u8]) -> Result<usize, Fault> {
        self.receive_at_most(id, bytes, usize::MAX)
            .map(|(used, _)| used)
    }

    /// [`Engine::receive`] processing at most `max_messages` whole messages (the shell's
    /// fairness: a bounded amount of work per connection per turn). Returns the bytes
    /// consumed and the messages processed.
    pub fn receive_at_most(
        &mut self,
        id: ConnId,
        bytes: &[u8],
        max_messages: usize,
    ) -> Result<(usize, usize), Fault> {
        let mut used = 0usize;
        let mut messages = 0usize;
        while used < bytes.len() && messages < max_messages {
            if !self.can_receive(id) {
                self.note_held_back(id);
                break;
            }
            let Some(c) = self.conns.get_mut(&id) else {
                return Err(Fault::NoConnection);
            };
            let decoded = match c.decoder.feed(bytes.get(used..).unwrap_or(&[])) {
                Ok(d) => d,
                Err(f) => {
                    self.fault(id, f);
                    return Err(f);
                }
            };
            match decoded {
                Decoded::NeedMore => return Ok((bytes.len(), messages)),
                Decoded::Message { msg, consumed } => {
                    used += consumed;
                    messages += 1;
                    if self.transactions_held && msg.msg_type == MsgType::TransactionStart as u32 {
                        c.held.push(msg);
                        continue;
                    }
                    self.process(id, msg);
                    if !self.can_receive(id) {
                        self.note_held_back(id);
                    }
                }
            }
        }
        Ok((used, messages))
    }

    /// Whether connection `id` speaks for the privileged domain.
    pub fn is_privileged(&self, id: ConnId) -> bool {
        self.conns
            .get(&id)
            .is_some_and(|c| c.domid == self.config.priv_domid)
    }

    /// Processes one whole message (the shell may frame messages itself).
    pub fn handle_message(&mut self, id: ConnId, msg: Message) -> Result<(), Fault> {
        match self.conns.get(&id) {
            None => Err(Fault::NoConnection),
            Some(_) if msg.payload.len() > PAYLOAD_MAX => {
                let f = Fault::OversizedMessage {
                    len: u32::try_from(msg.payload.len()).unwrap_or(u32::MAX),
                };
                self.fault(id, f);
                Err(f)
            }
            Some(_) => {
                self.process(id, msg);
                Ok(())
            }
        }
    }

    /// The next unsent output bytes of a connection (a prefix of one message).
    pub fn pending_output(&self, id: ConnId) -> &[u8] {
        self.conns.get(&id).map_or(&[], |c| c.front_bytes())
    }

    /// Whether a connection has output waiting.
    pub fn has_output(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| !c.out.is_empty())
    }

    /// Marks `n` output bytes as delivered.
    pub fn consume_output(&mut self, id: ConnId, n: usize) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.advance(n);
        }
    }

    /// Takes all queued output of a connection as one buffer (test and tool helper).
    pub fn drain_output(&mut self, id: ConnId) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let chunk = self.pending_output(id);
            if chunk.is_empty() {
                return out;
            }
            let n = chunk.len();
            out.extend_from_slice(chunk);
            self.consume_output(id, n);
        }
    }

    /// Sends a reply the shell produced (live-update answers).
    pub fn reply(
        &mut self,
        id: ConnId,
        msg_type: MsgType,
        req_id: u32,
        tx_id: TxId,
        payload: Vec<u8>,
    ) {
        self.queue_reply(id, Message::new(msg_type, req_id, tx_id, payload));
    }

    /// Sends an error reply the shell produced.
    pub fn reply_error(&mut self, id: ConnId, req_id: u32, tx_id: TxId, err: XsError) {
        self.queue_reply(id, Message::error(req_id, tx_id, err));
    }

    fn queue_reply(&mut self, id: ConnId, msg: Message) {
        if let Some(c) = self.conns.get_mut(&id) {
            if c.faulted.is_none() {
                c.push(Outgoing {
                    bytes: msg.encode(),
                    is_event: false,
                    deadline_ms: None,
                });
            }
        }
    }

    /// The single dispatch point.
    fn process(&mut self, id: ConnId, msg: Message) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if conn.faulted.is_some() {
            return;
        }
        let who = self.requester_of(conn);
        let (req_id, tx_id) = (msg.req_id, msg.tx_id);
        let result = match MsgType::from_u32(msg.msg_type) {
            None | Some(MsgType::WatchEvent) | Some(MsgType::Error) => Err(XsError::Enosys),
            Some(ty) => self.dispatch(id, who, ty, &msg),
        };
        if self.trace {
            let name = MsgType::from_u32(msg.msg_type).map_or("UNKNOWN", MsgType::name);
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.name(),
            };
            let shown: String = msg
                .payload
                .iter()
                .take(64)
                .map(|&b| {
                    if b == 0 {
                        '|'
                    } else if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '?'
                    }
                })
                .collect();
            self.log(alloc::format!(
                "{id} dom{} {name} req {req_id} tx {} [{shown}]: {outcome}",
                who.domid,
                tx_id.0
            ));
        }
        let is_write = matches!(
            MsgType::from_u32(msg.msg_type),
            Some(MsgType::Write | MsgType::Mkdir | MsgType::Rm | MsgType::SetPerms)
        ) || (msg.msg_type == MsgType::TransactionEnd as u32
            && msg.payload.first() == Some(&b'T'));
        if is_write && !who.privileged && self.config.write_rate.per_s != 0 {
            if let Some(d) = self.domains.get_mut(&who.domid) {
                d.writes.debit();
            }
        }
        match result {
            // A reply that does not fit in one message is refused, as C's `send_reply`.
            Ok(Some(payload)) if payload.len() > PAYLOAD_MAX => {
                self.queue_reply(id, Message::error(req_id, tx_id, XsError::E2big));
            }
            Ok(Some(payload)) => {
                let ty = MsgType::from_u32(msg.msg_type).unwrap_or(MsgType::Error);
                self.queue_reply(id, Message::new(ty, req_id, tx_id, payload));
            }
            Ok(None) => {}
            Err(e) => self.queue_reply(id, Message::error(req_id, tx_id, e)),
        }
        let after = core::mem::take(&mut self.after_reply);
        for (target, bytes) in after {
            self.push_event_bytes(target, bytes, true);
        }
    }

    fn dispatch(
        &mut self,
        id: ConnId,
        who: Requester,
        ty: MsgType,
        msg: &Message,
    ) -> HandlerResult {
        use MsgType::*;
        let privileged_only = matches!(
            ty,
            Control
                | Introduce
                | Release
                | IsDomainIntroduced
                | Resume
                | SetTarget
                | SetFeature
                | GetQuota
                | SetQuota
        );
        if privileged_only && !who.privileged {
            return Err(XsError::Eacces);
        }
        // Transaction lookup for everything but WATCH/UNWATCH, which ignore tx_id.
        let tx = if matches!(ty, Watch | Unwatch) {
            TxId::NONE
        } else {
            msg.tx_id
        };
        if tx != TxId::NONE {
            let known = self
                .conns
                .get(&id)
                .is_some_and(|c| c.transaction(tx).is_some());
            if !known {
                return Err(XsError::Enoent);
            }
        }
        // The memory budget (see `budget`): a request that would leave less than its floor
        // free gets ENOMEM; unprivileged domains are also held to their memory quota.
        if !self.memory_allows(id, &who, ty, msg) {
            return Err(XsError::Enomem);
        }
        // Node requests outside a transaction check the memory quota precisely themselves.
        let grows = Engine::class(ty, msg) == crate::budget::Class::Grows
            && (tx != TxId::NONE || !matches!(ty, Write | Mkdir | SetPerms));
        if grows && !self.memory_quota_allows(&who, msg.payload.len()) {
            return Err(XsError::Enomem);
        }
        let p = msg.payload.as_slice();
        match ty {
            Read => self.op_read(id, who, tx, p),
            Write => self.op_write(id, who, tx, p),
            Mkdir => self.op_mkdir(id, who, tx, p),
            Rm => self.op_rm(id, who, tx, p),
            Directory => self.op_directory(id, who, tx, p),
            DirectoryPart => self.op_directory_part(id, who, tx, p),
            GetPerms => self.op_get_perms(id, who, tx, p),
            SetPerms => self.op_set_perms(id, who, tx, p),
            Watch => self.op_watch(id, who, p),
            Unwatch => self.op_unwatch(id, who, p),
            ResetWatches => self.op_reset_watches(id, tx),
            TransactionStart => self.op_transaction_start(id, who, tx),
            TransactionEnd => self.op_transaction_end(id, who, tx, p),
            Introduce => self.op_introduce(p),
            Release => self.op_release(p),
            IsDomainIntroduced => self.op_is_domain_introduced(p),
            GetDomainPath => self.op_get_domain_path(p),
            Resume => self.op_resume(p),
            SetTarget => self.op_set_target(p),
            GetFeature => self.op_get_feature(who, p),
            SetFeature => self.op_set_feature(p),
            GetQuota => self.op_get_quota(p),
            SetQuota => self.op_set_quota(p),
            Control => self.op_control(id, msg),
            WatchEvent | Error => Err(XsError::Enosys),
        }
    }

    /// Tells the engine what the hypervisor says about a domain (from `VIRQ_DOM_EXC`
    /// handling): a shutdown fires `@releaseDomain` once; death releases it.
    pub fn domain_state(&mut self, domid: DomId, state: DomainState) {
        match state {
            DomainState::Running => {}
            DomainState::Shutdown => {
                let fire = match self.domains.get_mut(&domid) {
                    Some(d) if d.introduced && !d.shutdown_reported => {
                        d.shutdown_reported = true;
                        true
                    }
                    _ => false,
                };
                if fire {
                    self.fire_special(RELEASE_DOMAIN, domid);
                }
            }
            DomainState::Dead => {
                if self.domains.get(&domid).is_some_and(|d| d.introduced) {
                    self.destroy_domain(domid);
                }
            }
        }
    }

    /// Domains the engine talks to (introduced), for the shell's death checks.
    pub fn introduced_domains(&self) -> Vec<DomId> {
        self.domains
            .values()
            .filter(|d| d.introduced)
            .map(|d| d.domid)
            .collect()
    }

    /// Releases a domain: its connection, watches and transactions go, the nodes it owns are
    /// deleted (XSA-419), other nodes forget its permission entries (XSA-322), and
    /// `@releaseDomain` fires.
    pub(crate) fn destroy_domain(&mut self, domid: DomId) {
        let conn = self.domains.get(&domid).and_then(|d| d.conn);
        if let Some(c) = conn {
            self.conns.remove(&c);
        }
        self.domains.remove(&domid);
        self.limits.forget(domid);
        let events = self.purge_domain_nodes(domid);
        self.fire(&events);
        self.fire_special(RELEASE_DOMAIN, domid);
        self.effects.push(Effect::Released { conn, domid });
    }

    /// Holds (`true`) or releases new `TRANSACTION_START`s while a live update quiesces.
    /// Releasing processes the held requests at once.
    pub fn hold_transactions(&mut self, hold: bool) {
        self.transactions_held = hold;
        if hold {
            return;
        }
        let held: Vec<(ConnId, Message)> = self
            .conns
            .iter_mut()
            .flat_map(|(id, c)| core::mem::take(&mut c.held).into_iter().map(|m| (*id, m)))
            .collect();
        for (id, msg) in held {
            self.process(id, msg);
        }
    }

    /// Whether new transactions are held.
    pub fn transactions_held(&self) -> bool {
        self.transactions_held
    }

    /// Domains of connections with an open transaction (sorted, no duplicates).
    pub fn domains_with_transactions(&self) -> Vec<DomId> {
        let mut v: Vec<DomId> = self
            .conns
            .values()
            .filter(|c| !c.transactions.is_empty())
            .map(|c| c.domid)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Input received but not yet processed: held requests, then a partly received one.
    /// A state image cannot carry it; the live-update shell passes it on beside the image
    /// and feeds it back with [`Engine::receive`].
    pub fn pending_input(&self, id: ConnId) -> Vec<u8> {
        let Some(c) = self.conns.get(&id) else {
            return Vec::new();
        };
        let mut out: Vec<u8> = c.held.iter().flat_map(Message::encode).collect();
        out.extend_from_slice(&c.decoder.partial_bytes());
        out
    }

    /// Sets the answer to `CONTROL version`.
    pub fn set_version_text(&mut self, text: String) {
        self.version_text = Some(text);
    }

    /// The answer to `CONTROL version`.
    pub(crate) fn version_text(&self) -> String {
        self.version_text
            .clone()
            .unwrap_or_else(|| alloc::format!("xsstate {}\n", env!("CARGO_PKG_VERSION")))
    }

    /// Records the shell's heap use for `memreport` (the stub domain's allocator).
    pub fn set_heap_usage(&mut self, used_bytes: usize, free_bytes: usize) {
        self.heap_usage = Some((used_bytes, free_bytes));
    }

    /// The heap use the shell reported with [`Engine::set_heap_usage`].
    pub fn reported_heap(&self) -> Option<(usize, usize)> {
        self.heap_usage
    }

    /// How often each limit was hit since the engine started.
    pub fn limit_totals(&self) -> alloc::vec::Vec<(Limit, u64)> {
        self.limits.totals.iter().map(|(l, n)| (*l, *n)).collect()
    }

    /// Bytes the committed nodes account for (paths, values, permissions), as `memreport`
    /// reports them.
    pub fn node_bytes(&self) -> usize {
        self.store.total_cost()
    }

    /// Lends the engine the shell's heap (see [`crate::budget`]).
    pub fn set_memory(&mut self, memory: SharedMemory) {
        self.memory = memory;
    }

    /// The heap's figures as the shell reports them.
    pub fn memory_stats(&self) -> MemoryStats {
        self.memory.stats()
    }

    /// Lends the engine the shell's knowledge of domains.
    pub fn set_domain_oracle(&mut self, oracle: SharedOracle) {
        self.oracle = Some(oracle);
    }

    /// Whether `domid` exists: the privileged domain, a domain introduced to us, or one the
    /// shell's oracle knows (when it cannot tell, yes).
    pub fn domain_exists(&self, domid: DomId) -> bool {
        if domid == self.config.priv_domid || self.domains.get(&domid).is_some_and(|d| d.introduced)
        {
            return true;
        }
        if !domid.is_real() {
            return false;
        }
        self.oracle
            .as_ref()
            .and_then(|o| o.exists(domid))
            .unwrap_or(true)
    }

    /// The engine's memory report (`CONTROL memreport`).
    pub fn memreport(&self) -> String {
        crate::report::memreport(self)
    }
}

impl Domain {
    /// A domain record with the given quotas.
    pub fn new(domid: DomId, quotas: Quotas) -> Domain {
        Domain {
            domid,
            conn: None,
            introduced: false,
            shutdown_reported: false,
            target: None,
            features: crate::ring::SUPPORTED_FEATURES,
            quotas,
            writes: crate::ratelimit::WriteBudget::full(crate::ratelimit::WriteRate::default(), 0),
        }
    }
}
