//! Fault injection for the live-update tests, in the `fault-injection` build only (the
//! shipped image has none of it: every hook is empty there). Its command line names the
//! fault: `--fault=restore` (refuse to take over), `--fault=panic` (panic while taking
//! over), `--fault=corrupt-state` (flip a byte of the state after it was written, before
//! the jump to the next image).

use alloc::string::String;

#[cfg(feature = "fault-injection")]
static FAULT: spin::Once<heapless::String<32>> = spin::Once::new();

/// Notes the fault the command line asks for.
pub fn from_cmdline(cmdline: &str) {
    #[cfg(feature = "fault-injection")]
    {
        let f = cmdline
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix("--fault="))
            .unwrap_or("");
        let mut s = heapless::String::new();
        let _ = s.push_str(f.get(..32).unwrap_or(f));
        FAULT.call_once(|| s);
        if !f.is_empty() {
            crate::kprintln!("xsstub: fault injection armed: {f}");
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = cmdline;
}

#[cfg(feature = "fault-injection")]
fn wants(name: &str) -> bool {
    FAULT.get().is_some_and(|f| f.as_str() == name)
}

/// Before the engine is restored from an inherited state.
pub fn before_restore() -> Result<(), String> {
    #[cfg(feature = "fault-injection")]
    {
        if wants("restore") {
            return Err(String::from("injected failure (--fault=restore)"));
        }
        if wants("panic") {
            panic!("injected panic (--fault=panic)");
        }
    }
    Ok(())
}

/// After the old image wrote its state, before the jump.
pub fn after_state_written(state: &mut [u8]) {
    #[cfg(feature = "fault-injection")]
    {
        if wants("corrupt-state") {
            let mid = state.len() / 2;
            if let Some(b) = state.get_mut(mid) {
                *b ^= 0x5a;
                crate::kprintln!("xsstub: fault injection: flipped state byte {mid}");
            }
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = state;
}
