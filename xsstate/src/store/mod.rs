//! The committed node tree: an arena of nodes with children in creation order, a seeded name
//! index, interned permissions, per-domain usage accounting, and a self-check that never
//! recurses (XSA-418).
//!
//! Memory: one 64-byte slot per node holding its name and value when they are short (22 bytes
//! together; one allocation of their own otherwise), about six bytes of index, and a shared
//! permission list. Every allocation that grows with the store is fallible and reported as
//! `ENOMEM`; callers reserve room for the nodes a request creates before creating any, so a
//! refused request leaves nothing half-made (XSA-414/415).

mod arena;
mod bytes;
mod index;
mod permtab;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::XsError;
use crate::ids::DomId;
use crate::path;
use crate::perms::{Perm, Perms};
use arena::{Arena, Slot, NIL};
use bytes::NodeBytes;
use index::Index;
use permtab::PermTable;

/// Bytes a node is charged beyond its path, value, permissions and children list.
pub const NODE_OVERHEAD: usize = 32;

/// A node of the store (valid until the node is removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The root node `/`.
    pub const ROOT: NodeId = NodeId(0);
}

/// What one domain owns in the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Nodes owned.
    pub nodes: usize,
    /// Bytes charged for them.
    pub memory: usize,
}

/// A problem found by [`Store::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// The root node is missing.
    NoRoot,
    /// A node's links (parent, siblings) are inconsistent.
    Links(String),
    /// A node is not found by its name.
    Unindexed(String),
    /// A child name appears twice.
    DuplicateChild(String),
    /// A node's recorded path length or children size is wrong.
    Sizes(String),
    /// The per-domain accounting or the counts disagree with the tree.
    Accounting,
    /// A node has an invalid path.
    BadPath(String),
}

/// Name-index entries of nodes made by [`Store::create_deferred`], waiting for
/// [`Store::index_deferred`].
#[derive(Debug, Default)]
pub struct DeferredIndex(Vec<u64>);

impl DeferredIndex {
    /// Nodes waiting.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The committed tree.
#[derive(Clone, Debug)]
pub struct Store {
    arena: Arena,
    index: Index,
    perms: PermTable,
    next_generation: u64,
    usage: BTreeMap<DomId, Usage>,
    len: usize,
    total_cost: usize,
    /// What [`Store::seed_record_bytes`] returns, kept as nodes change.
    seed_bytes: usize,
}

/// A stored node, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct NodeRef<'a> {
    store: &'a Store,
    id: u32,
    slot: &'a Slot,
}

impl<'a> NodeRef<'a> {
    /// Its id.
    pub fn id(&self) -> NodeId {
        NodeId(self.id)
    }

    /// The last path component (empty for `/`).
    pub fn name(&self) -> &'a str {
        core::str::from_utf8(self.slot.name()).unwrap_or("")
    }

    /// The value (may contain NULs).
    pub fn value(&self) -> &'a [u8] {
        self.slot.value()
    }

    /// Permissions, owner first.
    pub fn perms(&self) -> &'a Perms {
        self.store.perms.get(self.slot.perms).unwrap_or(&NO_PERMS)
    }

    /// Generation count: changes whenever the node or its list of children is written.
    pub fn generation(&self) -> u64 {
        self.slot.generation
    }

    /// The parent (`None` for `/`).
    pub fn parent(&self) -> Option<NodeRef<'a>> {
        self.store.node_ref(self.slot.parent)
    }

    /// The children in creation order.
    pub fn children(&self) -> Children<'a> {
        Children {
            store: self.store,
            next: self.slot.first_child,
        }
    }

    /// Whether it has children.
    pub fn has_children(&self) -> bool {
        self.slot.first_child != NIL
    }

    /// Size of the `DIRECTORY` payload: every child name plus a NUL each.
    pub fn children_bytes(&self) -> usize {
        self.slot.children_bytes as usize
    }

    /// The `DIRECTORY` payload: each child name followed by a NUL.
    pub fn children_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.children_bytes());
        for c in self.children() {
            crate::util::push_str0(&mut out, c.slot.name());
        }
        out
    }

    /// Length of the node's absolute path.
    pub fn path_len(&self) -> usize {
        usize::from(self.slot.path_len)
    }

    /// Length of the parent's path as a prefix of this one: 0 under `/` (whose children's
    /// paths start with the separator), and for `/` itself.
    fn parent_path_len(&self) -> usize {
        self.path_len()
            .saturating_sub(self.slot.name().len().saturating_add(1))
    }

    /// Bytes this node is charged for in its owner's memory quota.
    pub fn cost(&self) -> usize {
        cost_of(
            self.path_len(),
            self.value().len(),
            self.perms().entries().len(),
            self.children_bytes(),
        )
    }

    /// Bytes checked against the `node-size` quota: value, children list, permissions.
    pub fn size(&self) -> usize {
        self.value().len() + self.children_bytes() + 4 * self.perms().entries().len()
    }
}

/// The children of a node, in creation order.
#[derive(Clone, Debug)]
pub struct Children<'a> {
    store: &'a Store,
    next: u32,
}

impl<'a> Iterator for Children<'a> {
    type Item = NodeRef<'a>;

    fn next(&mut self) -> Option<NodeRef<'a>> {
        let n = self.store.node_ref(self.next)?;
        self.next = n.slot.next;
        Some(n)
    }
}

/// Bytes a node with these sizes takes as a seed-layout `NODE_DATA` record, framing and
/// padding included.
pub fn seed_record_len(path_len: usize, value_len: usize, n_perms: usize) -> usize {
    let body = 16 + 4 * n_perms + path_len + 1 + value_len;
    8 + (body.saturating_add(7) & !7)
}

/// Charged bytes of a node with these sizes.
pub fn cost_of(path_len: usize, value_len: usize, n_perms: usize, children_bytes: usize) -> usize {
    path_len + value_len + 4 * n_perms + children_bytes + NODE_OVERHEAD
}

fn oom<T>(_: T) -> XsError {
    XsError::Enomem
}

/// A node's name and value, allocated ahead of the change that stores them (so that a
/// change made of several nodes can fail before touching the store).
#[derive(Debug)]
pub struct Packed {
    data: NodeBytes,
    name_len: u16,
}

impl Packed {
    /// Allocates `name` and `value` together; `ENOMEM` when memory runs out, `EINVAL` for a
    /// name too long to be a path component.
    pub fn new(name: &str, value: &[u8]) -> Result<Packed, XsError> {
        let name_len = u16::try_from(name.len()).map_err(|_| XsError::Einval)?;
        Ok(Packed {
            data: NodeBytes::new(name.as_bytes(), value)?,
            name_len,
        })
    }

    fn name(&self) -> &[u8] {
        self.data.name(self.name_len)
    }

    fn value_len(&self) -> usize {
        self.data.value(self.name_len).len()
    }
}

impl Store {
    /// A store holding only `/` owned by `owner` with no access for others.
    pub fn new(owner: DomId) -> Store {
        Store::with_seed(owner, 0x5eed_0fa5_705e)
    }

    /// [`Store::new`] with a secret seed for the name index (pick one at random per boot, so
    /// that guests cannot aim hash collisions at it).
    pub fn with_seed(owner: DomId, seed: u64) -> Store {
        let mut s = Store {
            arena: Arena::new(),
            index: Index::new(seed),
            perms: PermTable::default(),
            next_generation: 1,
            usage: BTreeMap::new(),
            len: 0,
            total_cost: 0,
            seed_bytes: 0,
        };
        let perms = Perms::owner_only(owner, Perm::None);
        let generation = s.bump_generation();
        let p = s.perms.intern(&perms);
        // The first chunk: if even this fails there is no store at all.
        if s.arena.reserve(1).is_ok() {
            let root = Slot {
                data: NodeBytes::default(),
                generation,
                parent: NIL,
                first_child: NIL,
                last_child: NIL,
                next: NIL,
                prev: NIL,
                perms: p,
                children_bytes: 0,
                name_len: 0,
                path_len: 1,
            };
            if s.arena.take(root).is_some() {
                s.len = 1;
                s.charge(owner, 1, cost_of(1, 0, 1, 0) as isize);
                s.seed_bytes = seed_record_len(1, 0, 1);
            }
        }
        s
    }

    fn node_ref(&self, id: u32) -> Option<NodeRef<'_>> {
        let slot = self.arena.live(id)?;
        Some(NodeRef {
            store: self,
            id,
            slot,
        })
    }

    /// The root node.
    pub fn root(&self) -> Option<NodeRef<'_>> {
        self.node_ref(0)
    }

    /// A node by id.
    pub fn node(&self, id: NodeId) -> Option<NodeRef<'_>> {
        self.node_ref(id.0)
    }

    /// The child `name` of `parent`.
    pub fn child(&self, parent: NodeId, name: &str) -> Option<NodeId> {
        self.index
            .find(&self.arena, parent.0, name.as_bytes())
            .map(NodeId)
    }

    /// The node at an absolute path.
    pub fn lookup(&self, path: &str) -> Option<NodeId> {
        let rest = path.strip_prefix('/')?;
        let mut cur = 0u32;
        if rest.is_empty() {
            return self.arena.live(0).map(|_| NodeId(0));
        }
        for comp in rest.split('/') {
            cur = self.index.find(&self.arena, cur, comp.as_bytes())?;
        }
        Some(NodeId(cur))
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<NodeRef<'_>> {
        self.lookup(path).and_then(|id| self.node(id))
    }

    /// Whether `path` exists.
    pub fn contains(&self, path: &str) -> bool {
        self.lookup(path).is_some()
    }

    /// The generation of `path`, or 0 when it does not exist.
    pub fn generation_of(&self, path: &str) -> u64 {
        self.get(path).map_or(0, |n| n.generation())
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored (never true once built: `/` always exists).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What `domid` owns.
    pub fn usage(&self, domid: DomId) -> Usage {
        self.usage.get(&domid).copied().unwrap_or_default()
    }

    /// Every domain that owns something, with its usage.
    pub fn usages(&self) -> impl Iterator<Item = (DomId, Usage)> + '_ {
        self.usage.iter().map(|(d, u)| (*d, *u))
    }

    /// Bytes charged for every node (paths, values, permissions, children lists).
    pub fn total_cost(&self) -> usize {
        self.total_cost
    }

    /// Heap bytes the store holds, estimated from its structures (slots, index, names and
    /// values, permission lists, accounting).
    pub fn heap_bytes(&self) -> usize {
        let data: usize = self
            .arena
            .live_ids()
            .filter_map(|i| self.arena.get(i))
            .map(|s| s.data.heap_len())
            .sum();
        self.arena.heap_bytes()
            + self.index.heap_bytes()
            + self.perms.heap_bytes()
            + data
            + self.usage.len() * 48
    }

    /// Distinct permission lists in use.
    pub fn perm_lists(&self) -> usize {
        self.perms.len()
    }

    /// The next generation number: every write gets a fresh one.
    pub fn bump_generation(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        g
    }

    /// The generation counter.
    pub fn next_generation(&self) -> u64 {
        self.next_generation
    }

    fn charge(&mut self, owner: DomId, nodes: isize, memory: isize) {
        self.total_cost = self.total_cost.saturating_add_signed(memory);
        let u = self.usage.entry(owner).or_default();
        u.nodes = u.nodes.saturating_add_signed(nodes);
        u.memory = u.memory.saturating_add_signed(memory);
        if u.nodes == 0 && u.memory == 0 {
            self.usage.remove(&owner);
        }
    }

    fn owner_of(&self, perms_index: u32) -> DomId {
        self.perms
            .get(perms_index)
            .map_or(DomId::DOM0, Perms::owner)
    }

    /// Heap bytes the store's structures would allocate to hold `n` more nodes (a new arena
    /// chunk, a larger index), for the memory budget.
    pub fn growth_bytes(&self, n: usize) -> usize {
        self.arena.growth_bytes(n) + self.index.growth_bytes(n)
    }

    /// Makes sure `n` nodes can be created without allocating slots or index entries (their
    /// names and values are allocated by [`Store::create`] itself).
    pub fn reserve(&mut self, n: usize) -> Result<(), XsError> {
        self.arena.reserve(n).map_err(oom)?;
        self.index.reserve(&self.arena, n).map_err(oom)
    }

    /// Creates `name` below `parent` as its last child, with a new generation (the parent
    /// gets one too). `ENOMEM` when memory runs out; `EEXIST` when it exists; `EINVAL` for
    /// a name or path the store cannot hold.
    pub fn create(
        &mut self,
        parent: NodeId,
        name: &str,
        perms: &Perms,
        value: &[u8],
    ) -> Result<NodeId, XsError> {
        self.create_packed(parent, Packed::new(name, value)?, perms)
    }

    /// [`Store::create`] with the name and value allocated already; after
    /// [`Store::reserve`] it allocates nothing but a new permission list.
    pub fn create_packed(
        &mut self,
        parent: NodeId,
        packed: Packed,
        perms: &Perms,
    ) -> Result<NodeId, XsError> {
        self.create_inner(parent, packed, perms, None)
    }

    /// [`Store::create`] that leaves the node out of the name index: its entry waits in
    /// `deferred` for [`Store::index_deferred`], which inserts them all in one pass (several
    /// times faster than one random table access per node: a restore's bulk load). Until
    /// then the node cannot be looked up, and a duplicate name is only found there.
    pub fn create_deferred(
        &mut self,
        parent: NodeId,
        name: &str,
        perms: &Perms,
        value: &[u8],
        deferred: &mut DeferredIndex,
    ) -> Result<NodeId, XsError> {
        self.create_inner(parent, Packed::new(name, value)?, perms, Some(deferred))
    }

    /// Indexes the nodes [`Store::create_deferred`] left out (and empties `deferred`):
    /// `EEXIST` when two of them, or one of them and an indexed node, have the same parent
    /// and name; `ENOMEM` when the index cannot grow.
    pub fn index_deferred(&mut self, deferred: &mut DeferredIndex) -> Result<(), XsError> {
        self.index
            .insert_many(&self.arena, &mut deferred.0)
            .map_err(|e| match e {
                index::BulkError::Duplicate => XsError::Eexist,
                index::BulkError::OutOfMemory => XsError::Enomem,
            })
    }

    fn create_inner(
        &mut self,
        parent: NodeId,
        packed: Packed,
        perms: &Perms,
        mut deferred: Option<&mut DeferredIndex>,
    ) -> Result<NodeId, XsError> {
        let p = self.arena.live(parent.0).ok_or(XsError::Enoent)?;
        let name = packed.name();
        if name.is_empty() || name.contains(&b'/') {
            return Err(XsError::Einval);
        }
        let name_len = packed.name_len;
        let path_len = if parent.0 == 0 {
            1 + name.len()
        } else {
            usize::from(p.path_len) + 1 + name.len()
        };
        let path_len = u16::try_from(path_len).map_err(|_| XsError::Einval)?;
        let parent_perms = p.perms;
        let prev = p.last_child;
        let h = self.index.hash(parent.0, name);
        match deferred.as_deref_mut() {
            Some(d) => {
                d.0.try_reserve(1).map_err(|_| XsError::Enomem)?;
                self.arena.reserve(1).map_err(oom)?;
            }
            None => {
                if self
                    .index
                    .find_hashed(&self.arena, h, parent.0, name)
                    .is_some()
                {
                    return Err(XsError::Eexist);
                }
                self.reserve(1)?;
            }
        }
        let value_len = packed.value_len();
        let generation = self.bump_generation();
        let parent_generation = self.bump_generation();
        let pi = self.perms.intern(perms);
        let slot = Slot {
            data: packed.data,
            generation,
            parent: parent.0,
            first_child: NIL,
            last_child: NIL,
            next: NIL,
            prev,
            perms: pi,
            children_bytes: 0,
            name_len,
            path_len,
        };
        let Some(id) = self.arena.take(slot) else {
            self.perms.release(pi);
            return Err(XsError::Enomem);
        };
        if let Some(prev_slot) = self.arena.get_mut(prev) {
            prev_slot.next = id;
        }
        if let Some(p) = self.arena.get_mut(parent.0) {
            if prev == NIL {
                p.first_child = id;
            }
            p.last_child = id;
            p.children_bytes = p.children_bytes.saturating_add(u32::from(name_len) + 1);
            p.generation = parent_generation;
        }
        if let Some(d) = deferred {
            d.0.push(index::entry(h, id));
        } else if self.index.insert_hashed(&self.arena, h, id).is_err() {
            // Reserved above: cannot happen; undo rather than keep an unindexed node.
            self.unlink(id);
            self.perms.release(pi);
            self.arena.release(id);
            return Err(XsError::Enomem);
        }
        let cost = cost_of(usize::from(path_len), value_len, perms.entries().len(), 0) as isize;
        let name_cost = (usize::from(name_len) + 1) as isize;
        let parent_owner = self.owner_of(parent_perms);
        if parent_owner == perms.owner() {
            self.charge(parent_owner, 1, cost + name_cost);
        } else {
            self.charge(parent_owner, 0, name_cost);
            self.charge(perms.owner(), 1, cost);
        }
        self.len += 1;
        self.seed_bytes = self.seed_bytes.saturating_add(seed_record_len(
            usize::from(path_len),
            value_len,
            perms.entries().len(),
        ));
        Ok(NodeId(id))
    }

    /// Takes `id` out of its parent's list of children (the node itself stays).
    fn unlink(&mut self, id: u32) {
        let Some(s) = self.arena.get(id) else {
            return;
        };
        let (parent, prev, next, name_len) = (s.parent, s.prev, s.next, s.name_len);
        if let Some(p) = self.arena.get_mut(prev) {
            p.next = next;
        }
        if let Some(n) = self.arena.get_mut(next) {
            n.prev = prev;
        }
        if let Some(p) = self.arena.get_mut(parent) {
            if p.first_child == id {
                p.first_child = next;
            }
            if p.last_child == id {
                p.last_child = prev;
            }
            p.children_bytes = p.children_bytes.saturating_sub(u32::from(name_len) + 1);
        }
    }

    /// Replaces a node's value and permissions (either may stay as it is) and gives it a new
    /// generation. `ENOMEM` leaves the node unchanged.
    pub fn set(
        &mut self,
        id: NodeId,
        value: Option<&[u8]>,
        perms: Option<&Perms>,
    ) -> Result<(), XsError> {
        let s = self.arena.live(id.0).ok_or(XsError::Enoent)?;
        let packed = match value {
            Some(v) => Some(Packed {
                data: NodeBytes::new(s.name(), v)?,
                name_len: s.name_len,
            }),
            None => None,
        };
        self.set_packed(id, packed, perms)
    }

    /// [`Store::set`] with the value allocated already (its name must be the node's).
    pub fn set_packed(
        &mut self,
        id: NodeId,
        packed: Option<Packed>,
        perms: Option<&Perms>,
    ) -> Result<(), XsError> {
        let s = self.arena.live(id.0).ok_or(XsError::Enoent)?;
        if packed.as_ref().is_some_and(|p| p.name() != s.name()) {
            return Err(XsError::Eio);
        }
        let (old_cost, old_seed) = self.sizes(s);
        let old_owner = self.owner_of(s.perms);
        let generation = self.bump_generation();
        let new_perms = perms.map(|p| self.perms.intern(p));
        let Some(s) = self.arena.get_mut(id.0) else {
            return Err(XsError::Enoent);
        };
        if let Some(p) = packed {
            s.data = p.data;
        }
        s.generation = generation;
        let old_perms = new_perms.map(|p| core::mem::replace(&mut s.perms, p));
        let (path_len, value_len, children_bytes, pi) = (
            usize::from(s.path_len),
            s.value().len(),
            s.children_bytes as usize,
            s.perms,
        );
        if let Some(old) = old_perms {
            self.perms.release(old);
        }
        let n_perms = self.perms.get(pi).map_or(1, |p| p.entries().len());
        let new_cost = cost_of(path_len, value_len, n_perms, children_bytes);
        self.seed_bytes = self
            .seed_bytes
            .saturating_sub(old_seed)
            .saturating_add(seed_record_len(path_len, value_len, n_perms));
        let new_owner = self.owner_of(pi);
        if new_owner == old_owner {
            self.charge(old_owner, 0, new_cost as isize - old_cost as isize);
        } else {
            self.charge(old_owner, -1, -(old_cost as isize));
            self.charge(new_owner, 1, new_cost as isize);
        }
        Ok(())
    }

    /// Gives a node a new generation without changing it.
    pub fn touch(&mut self, id: NodeId) {
        let g = self.bump_generation();
        if let Some(s) = self.arena.get_mut(id.0) {
            if s.live() {
                s.generation = g;
            }
        }
    }

    /// Nodes at and below `id`.
    pub fn subtree_len(&self, id: NodeId) -> usize {
        let mut n = 0usize;
        self.walk_ids(id.0, |_| n += 1);
        n
    }

    /// Nodes at and below `id`, and the bytes of their names and values.
    pub fn subtree_size(&self, id: NodeId) -> (usize, usize) {
        let (mut n, mut bytes) = (0usize, 0usize);
        self.walk_ids(id.0, |i| {
            n += 1;
            bytes += self.arena.get(i).map_or(0, |s| s.data.len());
        });
        (n, bytes)
    }

    /// Calls `f` for `root` and every node below it, parents first, without recursion.
    fn walk_ids(&self, root: u32, mut f: impl FnMut(u32)) {
        if self.arena.live(root).is_none() {
            return;
        }
        let mut cur = root;
        loop {
            f(cur);
            let Some(s) = self.arena.get(cur) else {
                return;
            };
            if s.first_child != NIL {
                cur = s.first_child;
                continue;
            }
            // Up until a node with a next sibling (not leaving the subtree).
            let mut up = cur;
            loop {
                if up == root {
                    return;
                }
                let Some(u) = self.arena.get(up) else {
                    return;
                };
                if u.next != NIL {
                    cur = u.next;
                    break;
                }
                up = u.parent;
            }
        }
    }

    /// Writes the absolute path of `id` into `out` (replacing its contents).
    pub fn path_of(&self, id: NodeId, out: &mut String) {
        out.clear();
        let mut comps: Vec<u32> = Vec::new();
        let mut cur = id.0;
        while cur != 0 && cur != NIL {
            comps.push(cur);
            cur = self.arena.get(cur).map_or(NIL, |s| s.parent);
        }
        if comps.is_empty() {
            out.push('/');
        }
        for c in comps.iter().rev() {
            out.push('/');
            if let Some(s) = self.arena.get(*c) {
                out.push_str(core::str::from_utf8(s.name()).unwrap_or(""));
            }
        }
    }

    /// Calls `f(path, node)` for `root` and every node below it, parents before children and
    /// children in creation order, without recursion; one path buffer is reused.
    pub fn walk(&self, root: NodeId, mut f: impl FnMut(&str, NodeRef<'_>)) {
        // Names hold checked ASCII, so every path is text.
        self.walk_bytes(root, |p, n| f(core::str::from_utf8(p).unwrap_or(""), n));
    }

    /// [`Store::walk`] with each path as bytes: the dump's walk, which copies paths and needs
    /// no text (names hold checked ASCII only, so the bytes are the same).
    pub fn walk_bytes(&self, root: NodeId, mut f: impl FnMut(&[u8], NodeRef<'_>)) {
        let mut start = String::new();
        self.path_of(root, &mut start);
        let mut buf = start.into_bytes();
        let mut first = true;
        self.walk_ids(root.0, |id| {
            let Some(n) = self.node_ref(id) else {
                return;
            };
            if !first {
                // Parents come first, so the parent's path is a prefix of the buffer.
                buf.truncate(n.parent_path_len());
                buf.push(b'/');
                buf.extend_from_slice(n.slot.name());
            }
            first = false;
            f(&buf, n);
        });
    }

    /// Removes `id` and everything below it, children first, calling `visit(path, perms)`
    /// for each node just before it goes, and unlinks it from its parent (which gets a new
    /// generation). `/` cannot be removed. Allocates nothing but the path buffer.
    pub fn remove(&mut self, id: NodeId, mut visit: impl FnMut(&str, &Perms)) {
        let root = id.0;
        if root == 0 || self.arena.live(root).is_none() {
            return;
        }
        let mut buf = String::new();
        self.path_of(id, &mut buf);
        let g = self.bump_generation();
        let parent = self.arena.get(root).map_or(NIL, |s| s.parent);
        self.unlink(root);
        if let Some(p) = self.arena.get_mut(parent) {
            p.generation = g;
            let owner_perms = p.perms;
            let name_len = self.arena.get(root).map_or(0, |s| usize::from(s.name_len));
            self.charge(self.owner_of(owner_perms), 0, -((name_len + 1) as isize));
        }
        // Post-order: descend to the deepest first child, remove, go to the next sibling's
        // deepest first child, or up.
        let mut cur = self.descend(root, &mut buf);
        loop {
            let Some(s) = self.arena.get(cur) else {
                return;
            };
            let (next, up) = (s.next, s.parent);
            let perms_index = s.perms;
            let (cost, seed) = self.sizes(s);
            let parent_len = self.arena.get(up).map_or(0, |p| {
                if p.path_len == 1 {
                    0
                } else {
                    usize::from(p.path_len)
                }
            });
            if let Some(p) = self.perms.get(perms_index) {
                visit(&buf, p);
            }
            let owner = self.owner_of(perms_index);
            self.index.remove(&self.arena, cur);
            self.perms.release(perms_index);
            self.arena.release(cur);
            self.charge(owner, -1, -(cost as isize));
            self.seed_bytes = self.seed_bytes.saturating_sub(seed);
            self.len -= 1;
            if cur == root {
                return;
            }
            buf.truncate(parent_len);
            if next != NIL {
                if let Some(n) = self.arena.get(next) {
                    buf.push('/');
                    buf.push_str(core::str::from_utf8(n.name()).unwrap_or(""));
                }
                cur = self.descend(next, &mut buf);
            } else {
                cur = up;
            }
        }
    }

    /// From `id` (whose path is in `buf`) down the first children to a leaf.
    fn descend(&self, mut id: u32, buf: &mut String) -> u32 {
        while let Some(s) = self.arena.get(id) {
            let Some(c) = self.arena.get(s.first_child) else {
                break;
            };
            buf.push('/');
            buf.push_str(core::str::from_utf8(c.name()).unwrap_or(""));
            id = s.first_child;
        }
        id
    }

    /// A stored node's charged bytes ([`cost_of`]) and its seed-layout record's length
    /// ([`seed_record_len`]).
    fn sizes(&self, s: &Slot) -> (usize, usize) {
        let n_perms = self.perms.get(s.perms).map_or(1, |p| p.entries().len());
        let (path_len, value_len) = (usize::from(s.path_len), s.value().len());
        (
            cost_of(path_len, value_len, n_perms, s.children_bytes as usize),
            seed_record_len(path_len, value_len, n_perms),
        )
    }

    /// Bytes the committed nodes take as seed-layout `NODE_DATA` records (framing and
    /// padding included): a running total, so sizing a dump walks nothing.
    pub fn seed_record_bytes(&self) -> usize {
        self.seed_bytes
    }

    /// Makes room in the name index for `n` more nodes (a restore that knows roughly how
    /// many come avoids rehashing as it goes); `ENOMEM` leaves the store as it is.
    pub fn reserve_index(&mut self, n: usize) -> Result<(), XsError> {
        self.index.reserve(&self.arena, n).map_err(oom)
    }

    /// Every live node in storage order (not tree order).
    pub fn nodes(&self) -> impl Iterator<Item = NodeRef<'_>> + '_ {
        self.arena.live_ids().filter_map(|i| self.node_ref(i))
    }

    /// Walks the whole tree iteratively and checks links, the index, paths, sizes and the
    /// accounting.
    pub fn check(&self) -> Result<(), CheckError> {
        let root = self.arena.live(0).ok_or(CheckError::NoRoot)?;
        if root.parent != NIL || root.path_len != 1 || root.name_len != 0 {
            return Err(CheckError::Links(String::from("/")));
        }
        let mut seen = 0usize;
        let mut usage: BTreeMap<DomId, Usage> = BTreeMap::new();
        let mut refs: BTreeMap<u32, u32> = BTreeMap::new();
        let mut bad: Option<CheckError> = None;
        let mut total = 0usize;
        let mut seed_bytes = 0usize;
        self.walk(NodeId::ROOT, |p, n| {
            if bad.is_some() {
                return;
            }
            seen += 1;
            if path::validate(p, path::PATH_LIMIT).is_err() {
                bad = Some(CheckError::BadPath(String::from(p)));
                return;
            }
            if n.path_len() != p.len() {
                bad = Some(CheckError::Sizes(String::from(p)));
                return;
            }
            if n.id != 0 && self.index.find(&self.arena, n.slot.parent, n.slot.name()) != Some(n.id)
            {
                bad = Some(CheckError::Unindexed(String::from(p)));
                return;
            }
            let mut bytes = 0usize;
            let mut prev = NIL;
            let mut names: Vec<&str> = Vec::new();
            for c in n.children() {
                if c.slot.parent != n.id || c.slot.prev != prev {
                    bad = Some(CheckError::Links(path::join(p, c.name())));
                    return;
                }
                prev = c.id;
                bytes += c.name().len() + 1;
                names.push(c.name());
            }
            if n.slot.last_child != prev {
                bad = Some(CheckError::Links(String::from(p)));
                return;
            }
            names.sort_unstable();
            if let Some(w) = names.windows(2).find(|w| w.first() == w.get(1)) {
                bad = Some(CheckError::DuplicateChild(path::join(
                    p,
                    w.first().copied().unwrap_or(""),
                )));
                return;
            }
            if bytes != n.children_bytes() {
                bad = Some(CheckError::Sizes(String::from(p)));
                return;
            }
            *refs.entry(n.slot.perms).or_default() += 1;
            let u = usage.entry(n.perms().owner()).or_default();
            u.nodes += 1;
            u.memory += n.cost();
            total += n.cost();
            seed_bytes += seed_record_len(p.len(), n.value().len(), n.perms().entries().len());
        });
        if let Some(e) = bad {
            return Err(e);
        }
        let live = self.arena.live_ids().count();
        if seen != self.len || live != self.len || self.index.len() + 1 != self.len {
            return Err(CheckError::Accounting);
        }
        if usage != self.usage || total != self.total_cost || seed_bytes != self.seed_bytes {
            return Err(CheckError::Accounting);
        }
        if refs.len() != self.perms.len() || refs.iter().any(|(&i, &r)| self.perms.refs(i) != r) {
            return Err(CheckError::Accounting);
        }
        Ok(())
    }
}

/// The permissions of a node whose list is missing (never in a consistent store).
static NO_PERMS: Perms = Perms::UNKNOWN;

#[cfg(test)]
mod tests;
