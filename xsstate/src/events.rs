//! Watch events: who may see a change, firing the watches it matches, and queueing each
//! event within the watcher's limits (XSA-326) and the memory floors.

use alloc::string::String;
use alloc::vec::Vec;

use crate::budget::Limit;
use crate::conn::Outgoing;
use crate::engine::Engine;
use crate::ids::{ConnId, DomId, TxId};
use crate::perms::{Access, Perms, Requester};
use crate::txn::PendingEvent;
use crate::watch::INTRODUCE_DOMAIN;
use crate::wire::{Message, MsgType, PAYLOAD_MAX};

impl Engine {
    /// Whether `watcher` may see an event about `path` (the node or its parent readable, or
    /// the permissions it had before the change).
    fn event_permitted(&self, watcher: &Requester, path: &str, old: Option<&Perms>) -> bool {
        if watcher.privileged {
            return true;
        }
        if old.is_some_and(|p| p.access_for(watcher).contains(Access::READ)) {
            return true;
        }
        if let Some(n) = self.store.get(path) {
            if n.perms().access_for(watcher).contains(Access::READ) {
                return true;
            }
        }
        if path == "/" {
            return false;
        }
        self.store
            .get(crate::path::parent(path))
            .is_some_and(|n| n.perms().access_for(watcher).contains(Access::READ))
    }

    /// Fires the watches matching committed changes.
    pub(crate) fn fire(&mut self, events: &[PendingEvent]) {
        let mut queue: Vec<(ConnId, Vec<u8>)> = Vec::new();
        for ev in events {
            for c in self.conns.values() {
                if c.watches.is_empty() || c.faulted.is_some() {
                    continue;
                }
                let who = self.requester_of(c);
                if !self.event_permitted(&who, &ev.path, ev.old_perms.as_ref()) {
                    continue;
                }
                for w in &c.watches {
                    if !crate::path::is_special(&w.path) && w.matches(&ev.path, ev.exact) {
                        let reported = w.reported_path(&ev.path, c.domid);
                        queue.push((c.id, w.event_payload(&reported)));
                    }
                }
            }
        }
        for (id, payload) in queue {
            self.push_event_bytes(id, payload, false);
        }
    }

    /// Fires a special watch (`@introduceDomain`, `@releaseDomain`) about `domid`.
    pub(crate) fn fire_special(&mut self, base: &str, domid: DomId) {
        let perms = if base == INTRODUCE_DOMAIN {
            &self.special_perms[0]
        } else {
            &self.special_perms[1]
        };
        let mut queue: Vec<(ConnId, Vec<u8>)> = Vec::new();
        for c in self.conns.values() {
            if c.faulted.is_some() {
                continue;
            }
            let who = self.requester_of(c);
            if !perms.access_for(&who).contains(Access::READ) {
                continue;
            }
            for w in &c.watches {
                if let Some(reported) = w.special_match(base, domid) {
                    queue.push((c.id, w.event_payload(&reported)));
                }
            }
        }
        for (id, payload) in queue {
            self.push_event_bytes(id, payload, true);
        }
    }

    /// Queues a `WATCH_EVENT`, dropping it when oversized, already pending (non-special),
    /// or beyond the connection's event-queue limit (XSA-326).
    pub(crate) fn push_event_bytes(&mut self, id: ConnId, payload: Vec<u8>, special: bool) {
        if payload.len() > PAYLOAD_MAX {
            if let Some(c) = self.conns.get_mut(&id) {
                c.events_dropped += 1;
            }
            return;
        }
        let privileged = self
            .conns
            .get(&id)
            .is_some_and(|c| c.domid == self.config.priv_domid);
        let limit = if privileged {
            self.config.privileged_event_queue_limit_bytes
        } else {
            self.config.event_queue_limit_bytes
        };
        let deadline = (!privileged && self.config.watch_event_timeout_ms != 0).then(|| {
            self.now_ms
                .saturating_add(self.config.watch_event_timeout_ms)
        });
        let bytes = Message::new(MsgType::WatchEvent, 0, TxId::NONE, payload).encode();
        // An unprivileged watcher's events are dropped before they eat into the core
        // reserve (which keeps dom0's replies and events going).
        let reserve = self.config.core_reserve_bytes;
        if !privileged && !self.memory.ensure_free(bytes.len().saturating_add(reserve)) {
            let domid = self.conns.get(&id).map(|c| c.domid);
            if let Some(c) = self.conns.get_mut(&id) {
                c.events_dropped += 1;
            }
            if let Some(d) = domid {
                self.limit_hit(
                    d,
                    Limit::Heap,
                    String::from("watch event dropped: memory short"),
                );
            }
            return;
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.faulted.is_some() {
            return;
        }
        // The limit first: it is O(1), the duplicate scan is O(queue), and a guest that
        // never reads keeps its queue full (each dom0 write it watches would otherwise
        // cost a scan of its whole queue per watch).
        if c.out_bytes.saturating_add(bytes.len()) > limit {
            c.events_dropped += 1;
            let (domid, queued) = (c.domid, c.out_bytes);
            self.limit_hit(
                domid,
                Limit::EventQueue,
                alloc::format!("watch event dropped: {queued} bytes queued unread, limit {limit}"),
            );
            return;
        }
        if !special && c.has_pending_event(&bytes) {
            c.events_dropped += 1;
            return;
        }
        c.push(Outgoing {
            bytes,
            is_event: true,
            deadline_ms: deadline,
        });
    }
}
