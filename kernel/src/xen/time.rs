//! Xen system time from vCPU 0's `vcpu_time_info`, and the single-shot timer.

use xen_sys::{__HYPERVISOR_vcpu_op, vcpu_info, vcpu_time_info};

use super::abi::{SingleshotTimer, VCPUOP_SET_SINGLESHOT_TIMER};
use super::events::{shared_info_paddr, XenError};
use super::hypercall::{check, hypercall3};
use super::page::SharedPage;

/// Nanoseconds of Xen system time (monotonic since the host booted); 0 before events init.
pub fn now_ns() -> u64 {
    let base = shared_info_paddr();
    if base == 0 {
        return 0;
    }
    // SAFETY: the shared-info page stays mapped for the domain's life; we only read it with
    // volatile copies.
    let page = unsafe { SharedPage::new(base) };
    let t = core::mem::offset_of!(vcpu_info, time);
    let off = |f: usize| t + f;
    loop {
        let version = page.read_u32(off(core::mem::offset_of!(vcpu_time_info, version)));
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        let read_u64 =
            |o: usize| u64::from(page.read_u32(o)) | (u64::from(page.read_u32(o + 4)) << 32);
        let tsc_stamp = read_u64(off(core::mem::offset_of!(vcpu_time_info, tsc_timestamp)));
        let system = read_u64(off(core::mem::offset_of!(vcpu_time_info, system_time)));
        let mul = page.read_u32(off(core::mem::offset_of!(
            vcpu_time_info,
            tsc_to_system_mul
        )));
        let shift_word = page.read_u32(off(core::mem::offset_of!(vcpu_time_info, tsc_shift)));
        let shift = (shift_word & 0xff) as u8 as i8;
        let tsc = crate::arch::cpu::rdtsc();
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        let again = page.read_u32(off(core::mem::offset_of!(vcpu_time_info, version)));
        if version % 2 == 1 || version != again {
            continue;
        }
        return system.wrapping_add(scale(tsc.wrapping_sub(tsc_stamp), mul, shift));
    }
}

/// Converts a TSC delta to nanoseconds with the scale Xen publishes.
pub fn tsc_to_ns(delta: u64) -> u64 {
    let base = shared_info_paddr();
    if base == 0 {
        return 0;
    }
    // SAFETY: as in `now_ns`.
    let page = unsafe { SharedPage::new(base) };
    let t = core::mem::offset_of!(vcpu_info, time);
    let mul = page.read_u32(t + core::mem::offset_of!(vcpu_time_info, tsc_to_system_mul));
    let shift_word = page.read_u32(t + core::mem::offset_of!(vcpu_time_info, tsc_shift));
    scale(delta, mul, (shift_word & 0xff) as u8 as i8)
}

fn scale(mut delta: u64, mul: u32, shift: i8) -> u64 {
    if shift >= 0 {
        delta <<= shift;
    } else {
        delta >>= -shift;
    }
    ((u128::from(delta) * u128::from(mul)) >> 32) as u64
}

/// Arms vCPU 0's single-shot timer for Xen system time `deadline_ns` (`VIRQ_TIMER` fires).
pub fn set_timer(deadline_ns: u64) -> Result<(), XenError> {
    let mut t = SingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags: 0,
        pad: 0,
    };
    // SAFETY: VCPUOP_set_singleshot_timer for vCPU 0 reads the structure we own.
    let rc = unsafe {
        hypercall3(
            __HYPERVISOR_vcpu_op,
            VCPUOP_SET_SINGLESHOT_TIMER,
            0,
            &raw mut t as u64,
        )
    };
    check(rc).map(drop)
}
