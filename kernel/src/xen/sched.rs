//! Domain shutdown through `SCHEDOP_shutdown`.

use xen_sys::{
    __HYPERVISOR_sched_op, sched_shutdown, SCHEDOP_shutdown, SHUTDOWN_crash, SHUTDOWN_poweroff,
};

use super::hypercall::hypercall2;

/// Shuts this domain down (`crashed` selects the reason); never returns.
pub fn shutdown(crashed: bool) -> ! {
    let mut op = sched_shutdown {
        reason: if crashed {
            SHUTDOWN_crash
        } else {
            SHUTDOWN_poweroff
        },
    };
    // SAFETY: SCHEDOP_shutdown reads the `sched_shutdown` we own; the hypercall page is set
    // up before this hook is registered.
    unsafe {
        hypercall2(
            __HYPERVISOR_sched_op,
            u64::from(SCHEDOP_shutdown),
            &raw mut op as u64,
        )
    };
    crate::arch::halt()
}
