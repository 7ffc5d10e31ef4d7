//! Xen ABI structures and numbers that `xen-sys` lacks, laid out as in Xen's public headers
//! (unchanged from 4.17 to 4.22; the domctls are in `domctl_abi`).

/// `DOMID_SELF`.
pub const DOMID_SELF: u16 = 0x7ff0;

/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM: u64 = 0;
/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM: u64 = 1;
/// `HVM_PARAM_CALLBACK_IRQ`.
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_STORE_PFN`.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`.
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_CONSOLE_PFN`.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `HVM_PARAM_CALLBACK_TYPE_VECTOR`, in bits 56..63 of the callback parameter.
pub const HVM_CALLBACK_TYPE_VECTOR: u64 = 2;

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmParam {
    /// Domain (`DOMID_SELF`).
    pub domid: u16,
    /// Padding.
    pub pad: u16,
    /// `HVM_PARAM_*`.
    pub index: u32,
    /// Value.
    pub value: u64,
}
const _: () = assert!(core::mem::size_of::<HvmParam>() == 16);

/// `XENMEM_current_reservation`.
pub const XENMEM_CURRENT_RESERVATION: u64 = 3;
/// `XENMEM_maximum_reservation`.
pub const XENMEM_MAXIMUM_RESERVATION: u64 = 4;
/// `XENMEM_populate_physmap`.
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
/// `XENMEM_add_to_physmap`.
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
/// `XENMEM_memory_map`.
pub const XENMEM_MEMORY_MAP: u64 = 9;
/// `XENMAPSPACE_shared_info`.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;

/// `struct xen_add_to_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AddToPhysmap {
    /// Domain (`DOMID_SELF`).
    pub domid: u16,
    /// Number of pages for `gmfn_range` (unused here).
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index in the space (grant frame number).
    pub idx: u64,
    /// Where to map it.
    pub gpfn: u64,
}
const _: () = assert!(core::mem::size_of::<AddToPhysmap>() == 24);

/// `struct xen_memory_reservation` (for `XENMEM_populate_physmap`), x86-64 layout:
/// `extent_start` 0, `nr_extents` 8, `extent_order` 16, `mem_flags` 20, `domid` 24, size 32.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryReservation {
    /// Guest handle of a `xen_pfn_t` array: for a translated guest, in: the GFN of each
    /// extent to populate.
    pub extent_start: u64,
    /// Number of extents in the array.
    pub nr_extents: u64,
    /// Each extent is `1 << extent_order` pages (and aligned to that many).
    pub extent_order: u32,
    /// `XENMEMF_*` flags; bits 0-7 are the address width limit (0: none).
    pub mem_flags: u32,
    /// The domain (`DOMID_SELF`).
    pub domid: u16,
}
const _: () = assert!(core::mem::size_of::<MemoryReservation>() == 32);
const _: () = assert!(core::mem::offset_of!(MemoryReservation, extent_order) == 16);
const _: () = assert!(core::mem::offset_of!(MemoryReservation, mem_flags) == 20);
const _: () = assert!(core::mem::offset_of!(MemoryReservation, domid) == 24);

/// `HVMOP_get_mem_type`.
pub const HVMOP_GET_MEM_TYPE: u64 = 15;
/// `HVMMEM_ram_rw`: ordinary RAM.
pub const HVMMEM_RAM_RW: u16 = 0;
/// `HVMMEM_ram_ro`: read-only RAM.
pub const HVMMEM_RAM_RO: u16 = 1;
/// `HVMMEM_mmio_dm`: not RAM (what Xen answers for an unpopulated frame too).
pub const HVMMEM_MMIO_DM: u16 = 2;

/// `struct xen_hvm_get_mem_type`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmGetMemType {
    /// Domain (`DOMID_SELF`).
    pub domid: u16,
    /// Out: `HVMMEM_*`.
    pub mem_type: u16,
    /// Padding.
    pub pad: [u16; 2],
    /// In: the frame asked about.
    pub pfn: u64,
}
const _: () = assert!(core::mem::size_of::<HvmGetMemType>() == 16);

/// `struct xen_memory_map` (for `XENMEM_memory_map`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryMap {
    /// In: room in the buffer; out: entries written.
    pub nr_entries: u32,
    /// Padding.
    pub pad: u32,
    /// Guest handle of an array of packed 20-byte E820 entries.
    pub buffer: u64,
}
const _: () = assert!(core::mem::size_of::<MemoryMap>() == 16);

/// Size of one packed `struct e820entry` as `XENMEM_memory_map` writes it.
pub const E820_ENTRY_BYTES: usize = 20;
/// E820 type of usable RAM.
pub const E820_RAM: u32 = 1;

/// `GNTTABOP_query_size`.
pub const GNTTABOP_QUERY_SIZE: u64 = 6;

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabQuerySize {
    /// The domain (`DOMID_SELF`).
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// Out: frames in use.
    pub nr_frames: u32,
    /// Out: the most frames the table may have.
    pub max_nr_frames: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Padding.
    pub pad2: u16,
}
const _: () = assert!(core::mem::size_of::<GnttabQuerySize>() == 16);

/// `GNTTABOP_map_grant_ref`.
pub const GNTTABOP_MAP_GRANT_REF: u64 = 0;
/// `GNTTABOP_unmap_grant_ref`.
pub const GNTTABOP_UNMAP_GRANT_REF: u64 = 1;
/// `GNTMAP_host_map`.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GTF_permit_access`.
pub const GTF_PERMIT_ACCESS: u16 = 1 << 0;
/// `GTF_readonly`.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GNTTAB_RESERVED_XENSTORE`: the grant ref every domain puts its xenstore ring at.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabMapGrantRef {
    /// Guest physical address to map at.
    pub host_addr: u64,
    /// `GNTMAP_*`.
    pub flags: u32,
    /// The grant reference.
    pub gref: u32,
    /// The granting domain.
    pub dom: u16,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Out: handle for the unmap.
    pub handle: u32,
    /// Out: bus address (unused).
    pub dev_bus_addr: u64,
}
const _: () = assert!(core::mem::size_of::<GnttabMapGrantRef>() == 32);

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GnttabUnmapGrantRef {
    /// The address the grant was mapped at.
    pub host_addr: u64,
    /// Bus address (unused).
    pub dev_bus_addr: u64,
    /// The handle from the map.
    pub handle: u32,
    /// Out: `GNTST_*`.
    pub status: i16,
    /// Padding.
    pub pad: u16,
}
const _: () = assert!(core::mem::size_of::<GnttabUnmapGrantRef>() == 24);

/// `struct grant_entry_v1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GrantEntryV1 {
    /// `GTF_*`.
    pub flags: u16,
    /// The domain allowed access.
    pub domid: u16,
    /// The frame granted.
    pub frame: u32,
}
const _: () = assert!(core::mem::size_of::<GrantEntryV1>() == 8);

/// `VCPUOP_set_singleshot_timer`.
pub const VCPUOP_SET_SINGLESHOT_TIMER: u64 = 8;

/// `struct vcpu_set_singleshot_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleshotTimer {
    /// Absolute Xen system time of the deadline.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*` (0: fire at once when already past).
    pub flags: u32,
    /// Padding.
    pub pad: u32,
}
const _: () = assert!(core::mem::size_of::<SingleshotTimer>() == 16);

/// `EVTCHNOP_alloc_unbound`.
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
/// `EVTCHNOP_status`.
pub const EVTCHNOP_STATUS: u32 = 5;
/// `EVTCHNSTAT_unbound`.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnAllocUnbound {
    /// The domain that gets the port (`DOMID_SELF`).
    pub dom: u16,
    /// The domain allowed to bind to it.
    pub remote_dom: u16,
    /// Out: the port.
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnAllocUnbound>() == 8);

/// `struct evtchn_status`, its union as raw words (`unbound.dom` is the low 16 bits of
/// `u[0]`; `interdomain` is `dom` u16 then `port` u32 at 4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EvtchnStatus {
    /// The domain the port belongs to (`DOMID_SELF`).
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// The port.
    pub port: u32,
    /// Out: `EVTCHNSTAT_*`.
    pub status: u32,
    /// Out: the vCPU it notifies.
    pub vcpu: u32,
    /// Out: the state's details.
    pub u: [u32; 2],
}
const _: () = assert!(core::mem::size_of::<EvtchnStatus>() == 24);

/// `struct xencons_interface` offsets (the PV console ring page).
pub mod cons {
    /// Offset of `in[1024]`.
    pub const IN: usize = 0;
    /// Size of `in`.
    pub const IN_SIZE: u32 = 1024;
    /// Offset of `out[2048]`.
    pub const OUT: usize = 1024;
    /// Size of `out`.
    pub const OUT_SIZE: u32 = 2048;
    /// Offset of `in_cons`.
    pub const IN_CONS: usize = 3072;
    /// Offset of `in_prod`.
    pub const IN_PROD: usize = 3076;
    /// Offset of `out_cons`.
    pub const OUT_CONS: usize = 3080;
    /// Offset of `out_prod`.
    pub const OUT_PROD: usize = 3084;
}
