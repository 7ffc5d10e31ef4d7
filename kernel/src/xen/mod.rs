//! Xen drivers: hypercalls, event channels, grant table, time, console, domain queries, rings.
//! `domctl_abi` and `ring_intro` are pure code that the host tests (`kernel/abi-tests`) share.
//!
//! This and `arch` are the only modules with `unsafe` code; everything above them uses the
//! safe interfaces here.

pub mod abi;
pub mod domctl;
pub mod domctl_abi;
pub mod events;
pub mod gnttab;
pub mod hypercall;
pub mod memory;
pub mod page;
pub mod pvconsole;
pub mod ring;
pub mod ring_intro;
pub mod ring_stream;
pub mod sched;
pub mod start_info;
pub mod time;
