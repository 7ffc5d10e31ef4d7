//! The domain-state domctls of every Xen from 4.17 to 4.22, as pure encoding, decoding and
//! rules (no hypercall, no `unsafe`): `xen/domctl.rs` issues them, and the host tests of
//! `kernel/abi-tests` cover each release's layout and answers through this same file.
//!
//! What changed between releases (xen.git, `xen/include/public/domctl.h` and
//! `xen/common/domctl.c`):
//! - `XEN_DOMCTL_INTERFACE_VERSION`: 0x15 (4.17), 0x16 (4.18), 0x17 (4.19 to 4.21), 0x18
//!   (4.22). Xen checks it before anything else and answers a wrong one with `EACCES`.
//! - `XEN_DOMCTL_getdomaininfo` (cmd 5, layout unchanged): up to 4.17 it answers for the
//!   first existing domain with an id >= the one asked (`ESRCH` when there is none); from 4.18
//!   for exactly that domain, `ESRCH` when it does not exist (4.22: `EPERM` to callers other
//!   than the control domain). `XEN_DOMINF_dying` is set only once the domain is dead.
//! - `XEN_DOMCTL_get_domain_state` (cmd 90, 4.21+): a stable interface (version 0) meant for
//!   xenstored, with a unique id per domain; asked for `DOMID_INVALID` it returns the next
//!   domain whose state changed (only to the `VIRQ_DOM_EXC` handler), all zero if it is gone,
//!   and `ENOENT` when none is left.

/// Bytes of `struct xen_domctl` on x86-64 (the same in every release).
pub const DOMCTL_BYTES: usize = 144;

/// `struct xen_domctl` as 18 little-endian words: `cmd` and `interface_version` (word 0),
/// `domain` (word 1, low 16 bits), then the command's 128-byte union (words 2..18).
pub type DomctlWords = [u64; 18];

/// `XEN_DOMCTL_getdomaininfo`.
pub const XEN_DOMCTL_GETDOMAININFO: u32 = 5;
/// `XEN_DOMCTL_get_domain_state` (4.21+).
pub const XEN_DOMCTL_GET_DOMAIN_STATE: u32 = 90;
/// The interface version of the stable `get_domain_state`.
pub const GET_DOMAIN_STATE_VERSION: u32 = 0;

/// `DOMID_FIRST_RESERVED`: ids from here on are not domains.
pub const DOMID_FIRST_RESERVED: u16 = 0x7ff0;
/// `DOMID_INVALID`: "the next domain whose state changed" for `get_domain_state`.
pub const DOMID_INVALID: u16 = 0x7ff4;

/// `XEN_DOMINF_dying` (set when the domain is dead: `DOMDYING_dead`).
pub const XEN_DOMINF_DYING: u32 = 1 << 0;
/// `XEN_DOMINF_shutdown`.
pub const XEN_DOMINF_SHUTDOWN: u32 = 1 << 2;

/// `XEN_DOMCTL_GETDOMSTATE_STATE_EXIST`.
pub const STATE_EXIST: u16 = 1 << 0;
/// `XEN_DOMCTL_GETDOMSTATE_STATE_SHUTDOWN` (the shutdown finished).
pub const STATE_SHUTDOWN: u16 = 1 << 1;
/// `XEN_DOMCTL_GETDOMSTATE_STATE_DYING` (`DOMDYING_dying`: it still exists and is kept, as
/// C xenstored keeps it until `DEAD`).
#[allow(dead_code)]
pub const STATE_DYING: u16 = 1 << 2;
/// `XEN_DOMCTL_GETDOMSTATE_STATE_DEAD` (`DOMDYING_dead`).
pub const STATE_DEAD: u16 = 1 << 3;

/// `EPERM`.
pub const EPERM: i64 = 1;
/// `ENOENT`.
pub const ENOENT: i64 = 2;
/// `ESRCH`.
pub const ESRCH: i64 = 3;
/// `EACCES`.
pub const EACCES: i64 = 13;
/// `EINVAL`.
pub const EINVAL: i64 = 22;

/// A Xen release, as `XENVER_version` reports it (`major << 16 | minor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct XenVersion {
    /// Major number.
    pub major: u16,
    /// Minor number.
    pub minor: u16,
}

impl XenVersion {
    /// From `XENVER_version`'s result.
    pub fn from_raw(raw: u64) -> XenVersion {
        XenVersion {
            major: ((raw >> 16) & 0xffff) as u16,
            minor: (raw & 0xffff) as u16,
        }
    }

    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> XenVersion {
        XenVersion { major, minor }
    }
}

impl core::fmt::Display for XenVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The `XEN_DOMCTL_INTERFACE_VERSION` a release expects, for the releases we know.
pub fn expected_interface_version(v: XenVersion) -> Option<u32> {
    match (v.major, v.minor) {
        (4, 17) => Some(0x15),
        (4, 18) => Some(0x16),
        (4, 19..=21) => Some(0x17),
        (4, 22) => Some(0x18),
        _ => None,
    }
}

/// Interface versions to try, in order, when the expected one is unknown or refused: the
/// expected one, then newer ones (an unknown newer release), then older ones (a patched
/// distribution build). A wrong one costs one `EACCES`.
pub fn probe_order(expected: Option<u32>) -> impl Iterator<Item = u32> {
    let start = expected.unwrap_or(0x18);
    let newer = (start + 1)..=0x20;
    let older = (0x13..start).rev();
    core::iter::once(start).chain(newer).chain(older)
}

/// Whether the release has the stable `XEN_DOMCTL_get_domain_state` (4.21+; any newer one
/// is assumed to, and the probe on our own domain tells).
pub fn has_domain_state(v: XenVersion) -> bool {
    v >= XenVersion::new(4, 21)
}

/// Whether a per-domain query of a missing domain answers `EPERM` rather than `ESRCH` to a
/// domain other than the control domain (4.22's "error code adjustment for unpriv callers").
pub fn missing_domain_is_eperm(v: XenVersion) -> bool {
    v >= XenVersion::new(4, 22)
}

/// How `getdomaininfo` answers for a domain that does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoSemantics {
    /// Up to interface 0x15 (4.17): it answers for the next existing domain.
    NextDomain,
    /// From 0x16 (4.18): `ESRCH` (or `EPERM`, 4.22).
    Exact,
}

/// The semantics of `getdomaininfo` at `interface_version`.
pub fn info_semantics(interface_version: u32) -> InfoSemantics {
    if interface_version <= 0x15 {
        InfoSemantics::NextDomain
    } else {
        InfoSemantics::Exact
    }
}

/// A domctl `cmd` at `interface_version` about `domain`, with an all-zero payload (which is
/// what both queries need: `get_domain_state` requires its `pad0` to be 0).
pub fn encode(cmd: u32, interface_version: u32, domain: u16) -> DomctlWords {
    let mut w = [0u64; 18];
    w[0] = u64::from(cmd) | (u64::from(interface_version) << 32);
    w[1] = u64::from(domain);
    w
}

/// `getdomaininfo` for `domain` at `interface_version`.
pub fn encode_getdomaininfo(interface_version: u32, domain: u16) -> DomctlWords {
    encode(XEN_DOMCTL_GETDOMAININFO, interface_version, domain)
}

/// `get_domain_state` for `domain` (or [`DOMID_INVALID`]: the next changed domain).
pub fn encode_get_domain_state(domain: u16) -> DomctlWords {
    encode(
        XEN_DOMCTL_GET_DOMAIN_STATE,
        GET_DOMAIN_STATE_VERSION,
        domain,
    )
}

/// The `domain` field (Xen writes the domain it answered for there).
pub fn domain_field(w: &DomctlWords) -> u16 {
    (w[1] & 0xffff) as u16
}

/// `getdomaininfo`'s answer: the domain it is about (`u.getdomaininfo.domain`, offset 0 of
/// the union) and its `XEN_DOMINF_*` flags (offset 4).
pub fn decode_getdomaininfo(w: &DomctlWords) -> (u16, u32) {
    ((w[2] & 0xffff) as u16, (w[2] >> 32) as u32)
}

/// `struct xen_domctl_get_domain_state` (16 bytes at the union).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainStateReply {
    /// `state` (`STATE_*` bits; 0: the domain is gone).
    pub state: u16,
    /// `caps` (control 1, hardware 2, xenstore 4).
    pub caps: u16,
    /// `pad0` (0).
    pub pad0: u32,
    /// `unique_id`: never reused while Xen runs.
    pub unique_id: u64,
}

/// `get_domain_state`'s payload.
pub fn decode_domain_state(w: &DomctlWords) -> DomainStateReply {
    DomainStateReply {
        state: (w[2] & 0xffff) as u16,
        caps: ((w[2] >> 16) & 0xffff) as u16,
        pad0: (w[2] >> 32) as u32,
        unique_id: w[3],
    }
}

/// What Xen said about one domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// It exists (a dying domain still does).
    Exists {
        /// It has shut down (or crashed) and is not yet destroyed.
        shutdown: bool,
        /// It is dead (`DOMDYING_dead`): only its destruction is left.
        dead: bool,
        /// Its unique id (4.21+).
        unique_id: Option<u64>,
    },
    /// Xen says it does not exist.
    NotFound,
    /// The query failed or was refused (negative errno): nothing is known.
    Refused(i64),
}

/// What the shell does with a domain after a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Keep it, nothing to report.
    Running,
    /// It shut down: `@releaseDomain` once.
    Shutdown,
    /// Dead or gone: release it.
    Gone,
    /// Unknown (the errno): keep it and ask again at the next `VIRQ_DOM_EXC`.
    Unknown(i64),
}

impl Answer {
    /// The decision for the domain's connection.
    pub fn liveness(self) -> Liveness {
        match self {
            Answer::Exists { dead: true, .. } | Answer::NotFound => Liveness::Gone,
            Answer::Exists { shutdown: true, .. } => Liveness::Shutdown,
            Answer::Exists { .. } => Liveness::Running,
            Answer::Refused(e) => Liveness::Unknown(e),
        }
    }

    /// Whether the domain exists (as C xenstored's permission check asks: a dying or dead
    /// domain that Xen still answers for exists); `None` when Xen did not say.
    pub fn exists(self) -> Option<bool> {
        match self {
            Answer::Exists { .. } => Some(true),
            Answer::NotFound => Some(false),
            Answer::Refused(_) => None,
        }
    }
}

/// How to read `EPERM` from a per-domain query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eperm {
    /// A refusal: nothing is known (always so for decisions about a domain's death).
    Refused,
    /// "No such domain": 4.22+ answers so to a caller that may ask (established by a
    /// successful query of our own domain).
    NotFound,
}

/// The answer of `getdomaininfo` about `asked` (`result`: the domctl after the call, or the
/// negative errno).
pub fn answer_getdomaininfo(
    asked: u16,
    result: Result<&DomctlWords, i64>,
    semantics: InfoSemantics,
    eperm: Eperm,
) -> Answer {
    match result {
        Ok(w) => {
            let (domid, flags) = decode_getdomaininfo(w);
            if domid != asked {
                return match semantics {
                    // The next existing domain: the one asked is gone.
                    InfoSemantics::NextDomain => Answer::NotFound,
                    InfoSemantics::Exact => Answer::Refused(-EINVAL),
                };
            }
            Answer::Exists {
                shutdown: flags & XEN_DOMINF_SHUTDOWN != 0,
                dead: flags & XEN_DOMINF_DYING != 0,
                unique_id: None,
            }
        }
        Err(e) => errno_answer(e, eperm),
    }
}

/// The answer of `get_domain_state` about `asked`.
pub fn answer_domain_state(asked: u16, result: Result<&DomctlWords, i64>, eperm: Eperm) -> Answer {
    match result {
        Ok(w) if domain_field(w) != asked => Answer::Refused(-EINVAL),
        Ok(w) => state_answer(decode_domain_state(w)),
        Err(e) => errno_answer(e, eperm),
    }
}

fn state_answer(r: DomainStateReply) -> Answer {
    if r.state & STATE_EXIST == 0 {
        return Answer::NotFound;
    }
    Answer::Exists {
        shutdown: r.state & STATE_SHUTDOWN != 0,
        dead: r.state & STATE_DEAD != 0,
        unique_id: Some(r.unique_id),
    }
}

fn errno_answer(e: i64, eperm: Eperm) -> Answer {
    if e == -ESRCH || (e == -EPERM && eperm == Eperm::NotFound) {
        Answer::NotFound
    } else {
        Answer::Refused(e)
    }
}

/// One step of the "next changed domain" poll (`get_domain_state` for [`DOMID_INVALID`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    /// This domain's state changed; what it is now.
    Domain(u16, Answer),
    /// No changed domain is left (`ENOENT`).
    Done,
    /// The poll failed (negative errno; `EACCES`: we are not the `VIRQ_DOM_EXC` handler).
    Failed(i64),
}

/// Reads one poll step.
pub fn changed(result: Result<&DomctlWords, i64>) -> Changed {
    match result {
        Ok(w) => {
            let domid = domain_field(w);
            if domid >= DOMID_FIRST_RESERVED {
                return Changed::Failed(-EINVAL);
            }
            // A domain that no longer exists comes with an all-zero payload (state 0).
            Changed::Domain(domid, state_answer(decode_domain_state(w)))
        }
        Err(e) if e == -ENOENT => Changed::Done,
        Err(e) => Changed::Failed(e),
    }
}
