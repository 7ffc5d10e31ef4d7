//! Domain state queries, allowed to the xenstore domain, on every Xen from 4.17 to 4.22: the
//! hypervisor's version (`XENVER_version`), the domctl interface version it expects (known,
//! else probed on our own domain), `XEN_DOMCTL_get_domain_state` where it exists (4.21+) and
//! `XEN_DOMCTL_getdomaininfo` otherwise. The encoding and the reading of answers are the pure
//! functions of [`super::domctl_abi`]; this file only issues the hypercalls.

use xen_sys::{__HYPERVISOR_domctl, __HYPERVISOR_xen_version};
use xsstate::ids::DomId;
use xsstate::oracle::DomainOracle;

use super::domctl_abi::{self as abi, Answer, Changed, DomctlWords, Eperm, XenVersion};
use super::events::XenError;
use super::hypercall::{check, hypercall2};

const _: () = assert!(core::mem::size_of::<DomctlWords>() == abi::DOMCTL_BYTES);

/// `XENVER_version`.
const XENVER_VERSION: u64 = 0;

/// The running hypervisor's version (`XENVER_version`: `major << 16 | minor`).
pub fn xen_version() -> Result<XenVersion, XenError> {
    // SAFETY: XENVER_version takes no argument buffer (NULL) and returns the version.
    let rc = unsafe { hypercall2(__HYPERVISOR_xen_version, XENVER_VERSION, 0) };
    check(rc).map(XenVersion::from_raw)
}

/// Issues one domctl in place; the negative errno on failure.
fn domctl(mut words: DomctlWords) -> Result<DomctlWords, i64> {
    // SAFETY: `words` is a 144-byte `struct xen_domctl` we own for the call (size asserted
    // above); both commands issued here read it and write only inside it.
    let rc = unsafe { hypercall2(__HYPERVISOR_domctl, &raw mut words as u64, 0) };
    check(rc).map(|_| words).map_err(|e| e.0)
}

/// How this hypervisor is asked about domains, found once at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainQueries {
    /// The hypervisor's version.
    pub xen: XenVersion,
    /// The interface version `getdomaininfo` is accepted at (`None`: none was).
    pub info_version: Option<u32>,
    /// `get_domain_state` answered for our own domain (4.21+).
    pub state: bool,
    /// How a per-domain query's `EPERM` reads outside death decisions.
    pub eperm: Eperm,
}

impl DomainQueries {
    /// The facts as four numbers for a live update's state tag: the version (`major << 16 |
    /// minor`), the interface version (0: none), `state` and `eperm` (1: not found).
    pub fn to_words(self) -> [u64; 4] {
        [
            (u64::from(self.xen.major) << 16) | u64::from(self.xen.minor),
            u64::from(self.info_version.unwrap_or(0)),
            u64::from(self.state),
            u64::from(self.eperm == Eperm::NotFound),
        ]
    }

    /// The facts [`DomainQueries::to_words`] wrote, as the old image found them on this same
    /// hypervisor (`None` when they do not read as such).
    pub fn from_words(w: [u64; 4]) -> Option<DomainQueries> {
        let [xen, info, state, eperm] = w;
        if xen > u64::from(u32::MAX) || xen == 0 || state > 1 || eperm > 1 {
            return None;
        }
        Some(DomainQueries {
            xen: XenVersion::from_raw(xen),
            info_version: u32::try_from(info).ok().filter(|&v| v != 0),
            state: state == 1,
            eperm: if eperm == 1 {
                Eperm::NotFound
            } else {
                Eperm::Refused
            },
        })
    }

    /// Finds out how to ask: the version, then each query tried on our own domain `own`.
    pub fn detect(own: u16) -> DomainQueries {
        let xen = xen_version().unwrap_or(XenVersion::new(0, 0));
        let state = abi::has_domain_state(xen)
            && domctl(abi::encode_get_domain_state(own)).is_ok_and(|w| {
                abi::answer_domain_state(own, Ok(&w), Eperm::Refused) != Answer::NotFound
            });
        let expected = abi::expected_interface_version(xen);
        // A wrong interface version is refused with EACCES before anything else.
        let info_version = abi::probe_order(expected)
            .find(|&v| domctl(abi::encode_getdomaininfo(v, own)).err() != Some(-abi::EACCES));
        let eperm = if abi::missing_domain_is_eperm(xen) && (state || info_version.is_some()) {
            Eperm::NotFound
        } else {
            Eperm::Refused
        };
        DomainQueries {
            xen,
            info_version,
            state,
            eperm,
        }
    }

    /// One line for the log: the version and how domains are asked about.
    pub fn describe(&self) -> heapless::String<200> {
        use core::fmt::Write;
        let mut line = heapless::String::new();
        if self.xen == XenVersion::new(0, 0) {
            let _ = write!(line, "XENVER_version failed; ");
        }
        let _ = write!(line, "Xen {}: ", self.xen);
        let expected = abi::expected_interface_version(self.xen);
        match self.info_version {
            Some(v) => {
                let _ = write!(line, "domctl interface {v:#x}");
                if Some(v) != expected {
                    let _ = write!(line, " (probed)");
                }
            }
            None => {
                let _ = write!(line, "no domctl interface version accepted");
            }
        }
        let _ = write!(
            line,
            ", {}",
            if self.state {
                "get_domain_state (changed-domain poll)"
            } else {
                "getdomaininfo per domain"
            }
        );
        line
    }

    /// What Xen says about `domid`, asked by itself; `EPERM` read as `eperm`.
    fn answer(&self, domid: u16, eperm: Eperm) -> Answer {
        if self.state {
            let r = domctl(abi::encode_get_domain_state(domid));
            return abi::answer_domain_state(domid, r.as_ref().map_err(|e| *e), eperm);
        }
        let Some(v) = self.info_version else {
            return Answer::Refused(-abi::EACCES);
        };
        let r = domctl(abi::encode_getdomaininfo(v, domid));
        abi::answer_getdomaininfo(
            domid,
            r.as_ref().map_err(|e| *e),
            abi::info_semantics(v),
            eperm,
        )
    }

    /// The state of `domid` for a decision about its connection: an `EPERM` is never read as
    /// "gone" here (a refusal is not a death).
    pub fn query(&self, domid: u16) -> Answer {
        self.answer(domid, Eperm::Refused)
    }

    /// Whether the changed-domain poll is the way to learn of deaths here.
    pub fn polls_changes(&self) -> bool {
        self.state
    }

    /// One step of the changed-domain poll (4.21+).
    pub fn next_changed(&self) -> Changed {
        let r = domctl(abi::encode_get_domain_state(abi::DOMID_INVALID));
        abi::changed(r.as_ref().map_err(|e| *e))
    }
}

impl DomainOracle for DomainQueries {
    /// As C xenstored asks Xen before accepting a permission entry: a domain Xen answers for
    /// exists (dying included); `None` when Xen did not say.
    fn exists(&self, domid: DomId) -> Option<bool> {
        if domid.0 >= abi::DOMID_FIRST_RESERVED {
            return Some(false);
        }
        self.answer(domid.0, self.eperm).exists()
    }
}
