//! The PV console ring (`xencons_interface`) that xenconsoled reads: output only, never blocks.

use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use super::abi::{cons, HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN};
use super::events::{hvm_param, notify, XenError};
use super::page::SharedPage;

static PAGE: AtomicU64 = AtomicU64::new(0);
static PORT: AtomicU32 = AtomicU32::new(0);

/// Finds the console page and port from the HVM parameters and starts mirroring the log to it.
pub fn init() -> Result<(), XenError> {
    let pfn = hvm_param(HVM_PARAM_CONSOLE_PFN)?;
    let port = hvm_param(HVM_PARAM_CONSOLE_EVTCHN)?;
    if pfn == 0 || pfn >= (1 << 20) {
        // No console, or above the 4 GiB we map: stay on port 0xE9 only.
        return Ok(());
    }
    PORT.store(port as u32, Ordering::SeqCst);
    PAGE.store(pfn << 12, Ordering::SeqCst);
    crate::console::set_extra_sink(write);
    Ok(())
}

/// Appends `bytes` to the console ring as far as there is room (the rest is dropped: the
/// log must never stall the service), then notifies xenconsoled.
pub fn write(bytes: &[u8]) {
    let base = PAGE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: the console page is a special page of ours below 4 GiB, identity mapped and
    // shared with xenconsoled for the domain's life; accessed only by volatile copies.
    let page = unsafe { SharedPage::new(base) };
    let out_cons = page.read_u32(cons::OUT_CONS);
    let mut prod = page.read_u32(cons::OUT_PROD);
    fence(Ordering::SeqCst);
    for &b in bytes {
        if prod.wrapping_sub(out_cons) >= cons::OUT_SIZE {
            break;
        }
        let at = (prod % cons::OUT_SIZE) as usize;
        if b == b'\n' {
            // xenconsoled shows raw bytes; terminals want CR LF.
            if prod.wrapping_add(1).wrapping_sub(out_cons) >= cons::OUT_SIZE {
                break;
            }
            page.write_bytes(cons::OUT + at, b"\r");
            prod = prod.wrapping_add(1);
            let at = (prod % cons::OUT_SIZE) as usize;
            page.write_bytes(cons::OUT + at, b"\n");
        } else {
            page.write_bytes(cons::OUT + at, &[b]);
        }
        prod = prod.wrapping_add(1);
    }
    fence(Ordering::Release);
    page.write_u32(cons::OUT_PROD, prod);
    let _ = notify(PORT.load(Ordering::Relaxed));
    let _ = (cons::IN, cons::IN_SIZE, cons::IN_CONS, cons::IN_PROD);
}
