//! Domain state queries (`XEN_DOMCTL_getdomaininfo`), allowed to the xenstore domain.

use xen_sys::__HYPERVISOR_domctl;

use super::abi::{Domctl, XEN_DOMCTL_GETDOMAININFO, XEN_DOMCTL_INTERFACE_VERSION};
use super::events::XenError;
use super::hypercall::{check, hypercall2};

/// What Xen says about one domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// The domain Xen answered for (the next existing id >= the one asked).
    pub domid: u16,
    /// `XEN_DOMINF_*` flags.
    pub flags: u32,
}

/// Asks about `domid`; Xen answers for the first existing domain with an id >= `domid`.
pub fn domain_info(domid: u16) -> Result<DomainInfo, XenError> {
    let mut op = Domctl {
        cmd: XEN_DOMCTL_GETDOMAININFO,
        interface_version: XEN_DOMCTL_INTERFACE_VERSION,
        domain: domid,
        ..Domctl::default()
    };
    // SAFETY: XEN_DOMCTL_getdomaininfo reads and writes the 144-byte `xen_domctl` we own.
    let rc = unsafe { hypercall2(__HYPERVISOR_domctl, &raw mut op as u64, 0) };
    check(rc)?;
    let first = op.u[0];
    Ok(DomainInfo {
        domid: (first & 0xffff) as u16,
        flags: (first >> 32) as u32,
    })
}
