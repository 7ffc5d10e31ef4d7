//! Test guests for the lab, in the `fault-injection` build only (the shipped image has none):
//! the same image, booted by `xl create` with `xsstub-test-guest=MODE`, talks to xenstore
//! over its own ring as a misbehaving (or, for counts, benign) guest and reports on Xen's
//! console (`XSSTUB-TESTGUEST ...` lines, seen with `xl dmesg`). Modes: `garbage-ring`
//! (corrupts its ring indices), `watch-flood` (128 watches, then never reads again),
//! `malformed` (malformed requests, then an oversized one), `benign` (reads its name,
//! writes `data/result`).

#[cfg(feature = "fault-injection")]
mod client;
#[cfg(feature = "fault-injection")]
mod modes;

/// The command-line word that asks for a test guest.
const PREFIX: &str = "xsstub-test-guest=";

/// The mode the command line asks for (`None`: run as the xenstore domain).
fn requested(cmdline: &str) -> Option<&str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|t| t.strip_prefix(PREFIX))
}

/// Whether the command line asks for a test guest (notes the mode for [`run`]). Always
/// false in the shipped image, which says so when asked.
pub fn wanted(cmdline: &str) -> bool {
    let Some(mode) = requested(cmdline) else {
        return false;
    };
    #[cfg(feature = "fault-injection")]
    {
        modes::choose(mode);
        true
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        crate::kprintln!(
            "xsstub: {PREFIX}{mode} ignored: test guests are in the fault-injection build only"
        );
        false
    }
}

/// Runs the test guest [`wanted`] chose; never returns (shuts the domain down, or idles
/// until it is destroyed).
pub fn run() -> ! {
    #[cfg(feature = "fault-injection")]
    {
        modes::run()
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        crate::xen::sched::shutdown(false)
    }
}
