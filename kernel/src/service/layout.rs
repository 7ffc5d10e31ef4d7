//! Where Xen pages go in our physical address space: a hole above RAM, below 4 GiB.

/// The shared-info page.
pub const SHARED_INFO_GFN: u64 = 0xc0000;
/// Our grant table frames.
pub const GRANT_FRAMES_GFN: u64 = 0xc0010;
/// How many grant frames we map (init-xenstore-domain allows 4).
pub const GRANT_FRAMES: u32 = 4;
/// Most grant frames the hole holds (up to the mapping window).
pub const GRANT_FRAMES_MAX: u32 = (MAP_WINDOW_GFN - GRANT_FRAMES_GFN) as u32;
/// Foreign ring pages are mapped from here.
pub const MAP_WINDOW_GFN: u64 = 0xc1000;
/// Room for this many foreign pages (one per connected domain).
pub const MAP_WINDOW_PAGES: u64 = 0x8000;
