//! The committed node tree: nodes by absolute path, children in creation order, per-domain
//! usage accounting, and a non-recursive self-check (XSA-418).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::ids::DomId;
use crate::path;
use crate::perms::{Perm, Perms};

/// One node: its value, permissions and the names of its children in creation order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The value (may contain NULs).
    pub value: Vec<u8>,
    /// Permissions, owner first.
    pub perms: Perms,
    /// Child names (last path components) in creation order.
    pub children: Vec<String>,
    /// Generation count: changes whenever the node is written (0 = never committed).
    pub generation: u64,
}

impl Node {
    /// A node with an empty value and no children.
    pub fn new(perms: Perms) -> Node {
        Node {
            value: Vec::new(),
            perms,
            children: Vec::new(),
            generation: 0,
        }
    }

    /// Appends a child name (no-op if present).
    pub fn add_child(&mut self, name: &str) {
        if !self.children.iter().any(|c| c == name) {
            self.children.push(String::from(name));
        }
    }

    /// Removes a child name; returns whether it was present.
    pub fn remove_child(&mut self, name: &str) -> bool {
        match self.children.iter().position(|c| c == name) {
            Some(i) => {
                self.children.remove(i);
                true
            }
            None => false,
        }
    }

    /// The `DIRECTORY` payload: each child name followed by a NUL.
    pub fn children_payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.children {
            crate::util::push_str0(&mut out, c.as_bytes());
        }
        out
    }

    /// Bytes this node is charged for in its owner's memory quota.
    pub fn cost(&self, path: &str) -> usize {
        let children: usize = self.children.iter().map(|c| c.len() + 1).sum();
        path.len() + self.value.len() + 4 * self.perms.entries().len() + children + 32
    }
}

/// What one domain owns in the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Nodes owned.
    pub nodes: usize,
    /// Bytes charged for them.
    pub memory: usize,
}

/// The committed tree.
#[derive(Clone, Debug)]
pub struct Store {
    nodes: BTreeMap<String, Node>,
    next_generation: u64,
    usage: BTreeMap<DomId, Usage>,
}

/// A problem found by [`Store::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// The root node is missing.
    NoRoot,
    /// A node's parent does not exist.
    Orphan(String),
    /// A parent lists a child that does not exist.
    MissingChild(String),
    /// A node exists that its parent does not list.
    Unlisted(String),
    /// A child name appears twice.
    DuplicateChild(String),
    /// The per-domain accounting disagrees with the tree.
    Accounting,
    /// A node has an invalid path.
    BadPath(String),
}

impl Store {
    /// A store holding only `/` owned by `owner` with no access for others.
    pub fn new(owner: DomId) -> Store {
        let mut s = Store {
            nodes: BTreeMap::new(),
            next_generation: 1,
            usage: BTreeMap::new(),
        };
        s.put(
            String::from("/"),
            Node::new(Perms::owner_only(owner, Perm::None)),
        );
        s
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Whether `path` exists.
    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(path)
    }

    /// The generation of `path`, or 0 when it does not exist.
    pub fn generation_of(&self, path: &str) -> u64 {
        self.nodes.get(path).map_or(0, |n| n.generation)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only nothing is stored (never true: `/` always exists).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// What `domid` owns.
    pub fn usage(&self, domid: DomId) -> Usage {
        self.usage.get(&domid).copied().unwrap_or_default()
    }

    /// The next generation number: every write gets a fresh one.
    pub fn bump_generation(&mut self) -> u64 {
        let g = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        g
    }

    /// The generation counter (for state images).
    pub fn next_generation(&self) -> u64 {
        self.next_generation
    }

    fn charge(&mut self, owner: DomId, nodes: isize, memory: isize) {
        let u = self.usage.entry(owner).or_default();
        u.nodes = u.nodes.saturating_add_signed(nodes);
        u.memory = u.memory.saturating_add_signed(memory);
        if u.nodes == 0 && u.memory == 0 {
            self.usage.remove(&owner);
        }
    }

    /// Stores `node` at `path` with a new generation, replacing any old node (children lists
    /// are the caller's business), and keeps the accounting right.
    pub fn put(&mut self, path: String, mut node: Node) {
        node.generation = self.bump_generation();
        self.insert_raw(path, node);
    }

    /// Stores a node keeping its generation (restore from an image).
    pub fn insert_raw(&mut self, path: String, node: Node) {
        if node.generation >= self.next_generation {
            self.next_generation = node.generation.wrapping_add(1);
        }
        let cost = node.cost(&path) as isize;
        let owner = node.perms.owner();
        if let Some(old) = self.nodes.insert(path.clone(), node) {
            let old_cost = old.cost(&path) as isize;
            self.charge(old.perms.owner(), -1, -old_cost);
        }
        self.charge(owner, 1, cost);
    }

    /// Appends `name` to the children of `parent` in place (the child must be new: no
    /// duplicate check) and gives the parent a new generation. Returns false when `parent`
    /// does not exist.
    pub fn link_new_child(&mut self, parent: &str, name: &str) -> bool {
        let generation = self.bump_generation();
        let Some(p) = self.nodes.get_mut(parent) else {
            return false;
        };
        p.children.push(String::from(name));
        p.generation = generation;
        let owner = p.perms.owner();
        self.charge(owner, 0, (name.len() + 1) as isize);
        true
    }

    /// Removes `name` from the children of `parent` in place and gives the parent a new
    /// generation. Returns whether it was listed.
    pub fn unlink_child(&mut self, parent: &str, name: &str) -> bool {
        let generation = self.bump_generation();
        let Some(p) = self.nodes.get_mut(parent) else {
            return false;
        };
        if !p.remove_child(name) {
            return false;
        }
        p.generation = generation;
        let owner = p.perms.owner();
        self.charge(owner, 0, -((name.len() + 1) as isize));
        true
    }

    /// Removes the single node at `path` (not its children, not the parent's list entry).
    pub fn remove(&mut self, path: &str) -> Option<Node> {
        let old = self.nodes.remove(path)?;
        let cost = old.cost(path) as isize;
        self.charge(old.perms.owner(), -1, -cost);
        Some(old)
    }

    /// Every path at or below `root`, parents before children, found without recursion.
    pub fn subtree(&self, root: &str) -> Vec<String> {
        let mut out = Vec::new();
        if !self.nodes.contains_key(root) {
            return out;
        }
        let mut stack = alloc::vec![String::from(root)];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(&p) {
                for c in n.children.iter().rev() {
                    stack.push(path::join(&p, c));
                }
            }
            out.push(p);
        }
        out
    }

    /// Walks the whole tree iteratively and checks parent/child links, paths and accounting.
    pub fn check(&self) -> Result<(), CheckError> {
        let root = self.nodes.get("/").ok_or(CheckError::NoRoot)?;
        let _ = root;
        let mut seen = 0usize;
        let mut usage: BTreeMap<DomId, Usage> = BTreeMap::new();
        let mut stack: Vec<String> = alloc::vec![String::from("/")];
        while let Some(p) = stack.pop() {
            let node = self
                .nodes
                .get(&p)
                .ok_or_else(|| CheckError::MissingChild(p.clone()))?;
            if path::validate(&p, path::ABS_PATH_MAX).is_err() {
                return Err(CheckError::BadPath(p));
            }
            seen += 1;
            let u = usage.entry(node.perms.owner()).or_default();
            u.nodes += 1;
            u.memory += node.cost(&p);
            for (i, c) in node.children.iter().enumerate() {
                if node.children.iter().skip(i + 1).any(|d| d == c) {
                    return Err(CheckError::DuplicateChild(path::join(&p, c)));
                }
                stack.push(path::join(&p, c));
            }
        }
        if seen != self.nodes.len() {
            // Some node is not reachable: find it for the report.
            for p in self.nodes.keys() {
                if p == "/" {
                    continue;
                }
                let parent = path::parent(p);
                match self.nodes.get(parent) {
                    None => return Err(CheckError::Orphan(p.clone())),
                    Some(n) if !n.children.iter().any(|c| c == path::basename(p)) => {
                        return Err(CheckError::Unlisted(p.clone()))
                    }
                    Some(_) => {}
                }
            }
            return Err(CheckError::Accounting);
        }
        if usage != self.usage {
            return Err(CheckError::Accounting);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_remove_accounting() {
        let mut s = Store::new(DomId(0));
        let mut root = s.get("/").unwrap().clone();
        root.add_child("a");
        s.put("/".into(), root);
        s.put(
            "/a".into(),
            Node::new(Perms::owner_only(DomId(3), Perm::None)),
        );
        assert_eq!(s.usage(DomId(3)).nodes, 1);
        assert!(s.check().is_ok());
        let g = s.generation_of("/a");
        s.put(
            "/a".into(),
            Node::new(Perms::owner_only(DomId(3), Perm::Read)),
        );
        assert!(s.generation_of("/a") > g);
        s.remove("/a");
        assert_eq!(s.check(), Err(CheckError::MissingChild("/a".into())));
        let mut root = s.get("/").unwrap().clone();
        root.remove_child("a");
        s.put("/".into(), root);
        assert!(s.check().is_ok());
        assert_eq!(s.usage(DomId(3)), Usage::default());
    }

    #[test]
    fn deep_tree_check_does_not_recurse() {
        let mut s = Store::new(DomId(0));
        let mut parent = String::from("/");
        for _ in 0..20_000 {
            let child = path::join(&parent, "d");
            let mut pn = s.get(&parent).unwrap().clone();
            pn.add_child("d");
            s.put(parent.clone(), pn);
            s.put(
                child.clone(),
                Node::new(Perms::owner_only(DomId(0), Perm::None)),
            );
            parent = child;
        }
        // 20k levels exceed any path limit, so the check reports the bad path rather than
        // overflowing the stack.
        assert!(matches!(s.check(), Err(CheckError::BadPath(_))));
        assert_eq!(s.subtree("/").len(), 20_001);
    }
}
