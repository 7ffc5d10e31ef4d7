//! Node permissions: the `r`/`w`/`b`/`n` entries, owner semantics and access checks.

use alloc::format;
use alloc::vec::Vec;

use crate::error::XsError;
use crate::ids::DomId;

/// One permission letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Perm {
    /// `n`: no access.
    None,
    /// `r`: read only.
    Read,
    /// `w`: write only.
    Write,
    /// `b`: read and write.
    Both,
}

impl Perm {
    /// The ASCII letter.
    pub const fn letter(self) -> u8 {
        match self {
            Perm::None => b'n',
            Perm::Read => b'r',
            Perm::Write => b'w',
            Perm::Both => b'b',
        }
    }

    /// Parses a letter.
    pub fn from_letter(b: u8) -> Option<Perm> {
        match b {
            b'n' => Some(Perm::None),
            b'r' => Some(Perm::Read),
            b'w' => Some(Perm::Write),
            b'b' => Some(Perm::Both),
            _ => None,
        }
    }

    fn access(self) -> Access {
        match self {
            Perm::None => Access::NONE,
            Perm::Read => Access::READ,
            Perm::Write => Access::WRITE,
            Perm::Both => Access::READ.union(Access::WRITE),
        }
    }
}

/// A set of access rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access(u8);

impl Access {
    /// Nothing.
    pub const NONE: Access = Access(0);
    /// May read.
    pub const READ: Access = Access(1);
    /// May write.
    pub const WRITE: Access = Access(2);
    /// Owns the node (may change permissions).
    pub const OWNER: Access = Access(4);
    /// Everything.
    pub const ALL: Access = Access(7);

    /// Both sets.
    pub const fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    /// Whether every right of `need` is present.
    pub const fn contains(self, need: Access) -> bool {
        self.0 & need.0 == need.0
    }

    /// Whether any right of `other` is present.
    pub const fn intersects(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }

    const fn without_write(self) -> Access {
        Access(self.0 & !Access::WRITE.0)
    }
}

/// One entry: a domain and its letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PermEntry {
    /// The domain the entry is about.
    pub domid: DomId,
    /// What it may do.
    pub perm: Perm,
}

impl PermEntry {
    /// The entry's text form, such as `r3`.
    pub fn to_text(self) -> alloc::string::String {
        format!("{}{}", char::from(self.perm.letter()), self.domid.0)
    }

    /// Parses `r3`, `b0`, ...
    pub fn parse(text: &[u8]) -> Result<PermEntry, XsError> {
        let (&letter, digits) = text.split_first().ok_or(XsError::Einval)?;
        let perm = Perm::from_letter(letter).ok_or(XsError::Einval)?;
        let domid = DomId::parse(digits).ok_or(XsError::Einval)?;
        Ok(PermEntry { domid, perm })
    }
}

/// A node's permission list; the first entry names the owner and the default for others.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Perms(Vec<PermEntry>);

/// Who is asking: the identity used for access checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester {
    /// The caller's domain.
    pub domid: DomId,
    /// Privileged callers (dom0 and its sockets) bypass every check.
    pub privileged: bool,
    /// The domain this caller acts for after `SET_TARGET`.
    pub target: Option<DomId>,
    /// Read-only sockets never get write access.
    pub read_only: bool,
}

impl Perms {
    /// An empty list (owner dom0, no access for others): a stand-in, never stored.
    pub(crate) const UNKNOWN: Perms = Perms(Vec::new());

    /// A list with only an owner entry.
    pub fn owner_only(owner: DomId, others: Perm) -> Perms {
        Perms(alloc::vec![PermEntry {
            domid: owner,
            perm: others
        }])
    }

    /// Builds a list; it must not be empty.
    pub fn from_entries(entries: Vec<PermEntry>) -> Option<Perms> {
        (!entries.is_empty()).then_some(Perms(entries))
    }

    /// The entries, owner first.
    pub fn entries(&self) -> &[PermEntry] {
        &self.0
    }

    /// The owning domain.
    pub fn owner(&self) -> DomId {
        self.0.first().map_or(DomId::DOM0, |e| e.domid)
    }

    /// Replaces the owner (keeping the owner's default letter).
    pub fn set_owner(&mut self, owner: DomId) {
        if let Some(first) = self.0.first_mut() {
            first.domid = owner;
        }
    }

    /// Removes the non-owner entries that name `domid` (used when a domain goes away, so a
    /// new domain with a recycled id inherits nothing: XSA-322). Returns whether any went.
    pub fn forget_domain(&mut self, domid: DomId) -> bool {
        self.drop_others_naming(domid)
    }

    /// Removes the non-owner entries that name `domid`; returns whether any went.
    fn drop_others_naming(&mut self, domid: DomId) -> bool {
        let before = self.0.len();
        let mut index = 0usize;
        self.0.retain(|e| {
            let keep = index == 0 || e.domid != domid;
            index += 1;
            keep
        });
        self.0.len() != before
    }

    /// Parses the permission strings of a `SET_PERMS` payload.
    pub fn parse_list<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Result<Perms, XsError> {
        let mut entries = Vec::new();
        for item in items {
            entries.push(PermEntry::parse(item)?);
        }
        Perms::from_entries(entries).ok_or(XsError::Einval)
    }

    /// The `GET_PERMS` reply payload: each entry followed by a NUL.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.0 {
            crate::util::push_str0(&mut out, e.to_text().as_bytes());
        }
        out
    }

    /// Removes the non-owner entries that name `DOMID_ANY` (what C xenstored ignores from
    /// a domain without the `DOMID_ANY` feature). Returns whether any went.
    pub fn drop_any(&mut self) -> bool {
        self.drop_others_naming(DomId::ANY)
    }

    /// What `who` may do on a node with these permissions (C's `perm_for_conn`): the first
    /// entry that names the caller, its target or `DOMID_ANY` (Xen 4.22) decides.
    pub fn access_for(&self, who: &Requester) -> Access {
        let mask = if who.read_only {
            Access::ALL.without_write()
        } else {
            Access::ALL
        };
        let names = |d: DomId| d == who.domid || who.target == Some(d) || d == DomId::ANY;
        if who.privileged || names(self.owner()) {
            return Access(Access::ALL.0 & mask.0);
        }
        for e in self.0.iter().skip(1) {
            if names(e.domid) {
                return Access(e.perm.access().0 & mask.0);
            }
        }
        let default = self.0.first().map_or(Perm::None, |e| e.perm);
        Access(default.access().0 & mask.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(domid: u16) -> Requester {
        Requester {
            domid: DomId(domid),
            privileged: false,
            target: None,
            read_only: false,
        }
    }

    #[test]
    fn owner_and_default() {
        let p = Perms::parse_list([&b"n3"[..], b"r5", b"w6"]).unwrap();
        assert_eq!(p.access_for(&req(3)), Access::ALL);
        assert_eq!(p.access_for(&req(5)), Access::READ);
        assert_eq!(p.access_for(&req(6)), Access::WRITE);
        assert_eq!(p.access_for(&req(7)), Access::NONE);
        let p = Perms::parse_list([&b"b3"[..]]).unwrap();
        assert!(p
            .access_for(&req(9))
            .contains(Access::READ.union(Access::WRITE)));
        assert!(!p.access_for(&req(9)).contains(Access::OWNER));
    }

    #[test]
    fn privileged_target_readonly() {
        let p = Perms::parse_list([&b"n3"[..]]).unwrap();
        let mut dom0 = req(0);
        dom0.privileged = true;
        assert_eq!(p.access_for(&dom0), Access::ALL);
        dom0.read_only = true;
        assert!(!p.access_for(&dom0).contains(Access::WRITE));
        let mut stub = req(8);
        stub.target = Some(DomId(3));
        assert_eq!(p.access_for(&stub), Access::ALL);
    }

    #[test]
    fn parsing() {
        assert!(PermEntry::parse(b"x1").is_err());
        assert!(PermEntry::parse(b"r").is_err());
        assert!(PermEntry::parse(b"r70000").is_err());
        assert!(Perms::parse_list(core::iter::empty::<&[u8]>()).is_err());
        let p = Perms::parse_list([&b"r0"[..], b"b12"]).unwrap();
        assert_eq!(p.to_payload(), b"r0\0b12\0");
    }

    #[test]
    fn any_domain() {
        let p = Perms::parse_list([&b"n3"[..], b"w5", b"r32757", b"b6"]).unwrap();
        assert_eq!(p.access_for(&req(3)), Access::ALL);
        // The first entry that names the caller decides: 5's own, then DOMID_ANY's.
        assert_eq!(p.access_for(&req(5)), Access::WRITE);
        assert_eq!(p.access_for(&req(6)), Access::READ);
        assert_eq!(p.access_for(&req(9)), Access::READ);
        let mut q = p.clone();
        assert!(q.drop_any());
        assert_eq!(q.to_payload(), b"n3\0w5\0b6\0");
        assert_eq!(q.access_for(&req(9)), Access::NONE);
        assert!(!q.drop_any());
    }

    #[test]
    fn forget() {
        let mut p = Perms::parse_list([&b"n3"[..], b"r5", b"r3"]).unwrap();
        assert!(p.forget_domain(DomId(3)));
        assert_eq!(p.to_payload(), b"n3\0r5\0");
        assert!(!p.forget_domain(DomId(9)));
    }
}
