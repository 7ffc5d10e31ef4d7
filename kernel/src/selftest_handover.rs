//! The live-update hand-over on bare QEMU: the image jumps into itself and checks the state.
//!
//! `xsstub.handover-test` on the command line (QEMU `-append`, with `-initrd` = the image's
//! own ELF file as module 0): after the self-tests, module 0 is validated with
//! `xsstate::pvh::parse` and flattened (then padded with zeros so that the copy overlaps its
//! own source, as for a bigger new image), a 64 KiB state buffer with a known pattern is
//! built, and [`handover::jump`] enters the flattened image with the command line
//! `xsstub.handover-check` and the buffer as module 0 (command line
//! `xsstub-state test fnv=0x... len=...`). The new instance runs the self-tests again, finds
//! the module, checks pattern and checksum, gives the pages to the heap and prints
//! `XSSTUB-SMOKE PASS handover (...)`. A module 0 that is not a valid PVH image is refused:
//! the run then ends with `XSSTUB-SMOKE PASS handover-refused: <why>`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::arch::handover::{self, Handover, HandoverError, ModuleSpec, Part, AREA};
use crate::arch::{exit, heap, layout, mem, startinfo};
use crate::kprintln;

/// Starts the hand-over test.
pub const TEST_OPTION: &str = "xsstub.handover-test";
/// Tells the new instance to check what it inherited.
pub const CHECK_OPTION: &str = "xsstub.handover-check";
/// The state module's command line starts with this.
const STATE_TAG: &str = "xsstub-state test";
/// Size of the test state.
const STATE_LEN: usize = 64 * 1024;
/// Module 0 (an ELF image) is read up to this size.
const MODULE_MAX: u64 = 64 << 20;
/// The test pads the image by at most this much to make the copy overlap its source...
const PAD_MAX: usize = 8 << 20;
/// ...by this many bytes.
const OVERLAP: u64 = 1 << 20;

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Byte `i` of the test state.
fn pattern(i: usize) -> u8 {
    let x = (i as u32).wrapping_mul(0x9e37_79b1);
    (x >> 24) as u8 ^ (i >> 16) as u8
}

/// Runs the hand-over test or check when the command line asks for one (never returns
/// then); returns otherwise.
pub fn run(start_info_paddr: u64) {
    let Ok(si) = startinfo::StartInfo::read(start_info_paddr) else {
        return;
    };
    let mut buf = [0u8; 512];
    let cmdline = si.cmdline(&mut buf).unwrap_or(&[]);
    let cmdline = core::str::from_utf8(cmdline).unwrap_or("");
    for word in cmdline.split_ascii_whitespace() {
        if word == TEST_OPTION {
            hand_over(&si)
        }
        if word == CHECK_OPTION {
            match check_inherited(&si, start_info_paddr) {
                Ok(what) => {
                    kprintln!("XSSTUB-SMOKE PASS handover ({what})");
                    exit::qemu_exit(0)
                }
                Err(why) => {
                    kprintln!("XSSTUB-SMOKE FAIL handover: {why}");
                    exit::qemu_exit(1)
                }
            }
        }
    }
}

/// Why the test did not jump.
enum NoJump {
    /// Module 0 is not a valid PVH image: the expected outcome for a corrupt file.
    Refused(xsstate::pvh::PvhError),
    /// Anything else: a failure.
    Failed(String),
}

/// The first instance: validate module 0, build the state, jump.
fn hand_over(si: &startinfo::StartInfo) -> ! {
    match prepare_and_jump(si) {
        NoJump::Refused(e) => {
            kprintln!("selftest handover: module 0 refused: {e}");
            kprintln!("XSSTUB-SMOKE PASS handover-refused: {e}");
            exit::qemu_exit(0)
        }
        NoJump::Failed(why) => {
            kprintln!("XSSTUB-SMOKE FAIL handover: {why}");
            exit::qemu_exit(1)
        }
    }
}

/// Copies `size` bytes of physical memory at `paddr` into a new Vec.
fn read_module(paddr: u64, size: u64) -> Result<Vec<u8>, String> {
    if size > MODULE_MAX {
        return Err(format!("module of {size} bytes (at most {MODULE_MAX})"));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(size as usize)
        .map_err(|_| format!("no memory for {size} module bytes"))?;
    bytes.resize(size as usize, 0);
    if !mem::read_phys(paddr, &mut bytes) {
        return Err(format!("module at {paddr:#x}+{size:#x} unreadable"));
    }
    Ok(bytes)
}

fn prepare_and_jump(si: &startinfo::StartInfo) -> NoJump {
    let failed = |why: String| NoJump::Failed(why);
    let Some(m) = si.module(0) else {
        return failed(format!("no module 0 ({} modules)", si.nr_modules));
    };
    kprintln!(
        "selftest handover: module 0 at {:#x}, {} bytes",
        m.paddr,
        m.size
    );
    let elf = match read_module(m.paddr, m.size) {
        Ok(b) => b,
        Err(why) => return failed(why),
    };
    let image = match xsstate::pvh::parse(&elf) {
        Ok(i) => i,
        Err(e) => return NoJump::Refused(e),
    };
    let id = crate::arch::build_id();
    let same = !id.is_empty() && elf.windows(id.len()).any(|w| w == id);
    kprintln!(
        "selftest handover: PVH image, entry {:#x}, {} segments, {:#x}..{:#x}{}",
        image.entry32,
        image.segments.len(),
        image.load_lo,
        image.load_hi,
        if same {
            ", this image's build-id"
        } else {
            ", another build-id"
        }
    );
    // Room for the image and the padding that makes it look bigger (see below).
    let span = image.span() as usize;
    let mut blob = Vec::new();
    if blob.try_reserve_exact(span + PAD_MAX).is_err() {
        return failed(format!("no memory for {} bytes", span + PAD_MAX));
    }
    if let Err(e) = image.flatten(&elf, &mut blob) {
        return failed(format!("flatten: {e}"));
    }
    // A bigger new image (as a live update may bring) reaches into the heap, maybe over its
    // own bytes: pad the image with zeros (more .bss, in effect) so that its destination
    // overlaps the first OVERLAP bytes of the blob, and the trampoline's forward copy runs
    // over its own source. The blob does not move: its capacity covers the padding.
    let src = blob.as_ptr() as u64;
    let pad = (src + OVERLAP).checked_sub(image.load_lo + span as u64);
    match pad {
        Some(pad) if pad as usize <= PAD_MAX => {
            blob.resize(span + pad as usize, 0);
            kprintln!(
                "selftest handover: image padded by {pad:#x} bytes: the copy overlaps its source by {OVERLAP:#x}"
            );
        }
        _ => kprintln!("selftest handover: blob at {src:#x}: no overlapping copy"),
    }
    // The state goes above the blob (the module copy is still held), out of the copy's way:
    // allocate until a block lands there (lower blocks are held meanwhile, then freed).
    let floor = blob.as_ptr() as u64 + blob.capacity() as u64;
    let mut rejects: Vec<Vec<u8>> = Vec::new();
    let mut state: Vec<u8> = Vec::new();
    for _ in 0..16 {
        let mut v: Vec<u8> = Vec::new();
        if v.try_reserve_exact(STATE_LEN).is_err() {
            return failed(format!("no memory for {STATE_LEN} state bytes"));
        }
        if v.as_ptr() as u64 >= floor {
            state = v;
            break;
        }
        rejects.push(v);
    }
    drop(rejects);
    state.extend((0..STATE_LEN).map(pattern));
    drop(elf);
    let fnv = fnv1a64(&state);
    let module_cmdline = format!("{STATE_TAG} fnv={fnv:#018x} len={STATE_LEN}");
    let modules = [ModuleSpec {
        paddr: state.as_ptr() as u64,
        size: state.len() as u64,
        cmdline: module_cmdline.as_bytes(),
    }];
    let h = Handover {
        zero_len: 0,
        blob: &blob,
        dest_paddr: image.load_lo,
        entry32: image.entry32,
        entry64: image.compat.and_then(|c| c.entry64).unwrap_or(0),
        cmdline: CHECK_OPTION.as_bytes(),
        modules: &modules,
    };
    if let Err(e) = handover::check(&h) {
        return failed(format!("check: {e}"));
    }
    kprintln!(
        "selftest handover: {} image bytes at {:#x} -> {:#x}, state at {:#x} ({module_cmdline}); jumping",
        blob.len(),
        blob.as_ptr() as u64,
        image.load_lo,
        state.as_ptr() as u64
    );
    handover::jump(&h)
}

/// The new instance: the start info the trampoline wrote, the state module, its pages
/// given to the heap. Returns a summary.
fn check_inherited(si: &startinfo::StartInfo, paddr: u64) -> Result<String, String> {
    if !AREA.contains(&paddr) {
        return Err(format!(
            "start info at {paddr:#x}, outside the hand-over area"
        ));
    }
    if si.version != 1 || si.flags != 0 || si.memmap_entries != 0 || si.rsdp_paddr != 0 {
        return Err(format!("start info {si:?}"));
    }
    if si.nr_modules != 1 {
        return Err(format!("{} modules, 1 expected", si.nr_modules));
    }
    let m = si.module(0).ok_or("module 0 unreadable")?;
    let mut buf = [0u8; 256];
    let cmdline = startinfo::read_cstr(m.cmdline_paddr, &mut buf).ok_or("no module cmdline")?;
    let cmdline = core::str::from_utf8(cmdline).map_err(|_| "module cmdline not UTF-8")?;
    let rest = cmdline
        .strip_prefix(STATE_TAG)
        .ok_or(format!("module cmdline {cmdline:?}"))?;
    let mut fnv = None;
    let mut len = None;
    for word in rest.split_ascii_whitespace() {
        if let Some(v) = word.strip_prefix("fnv=0x") {
            fnv = u64::from_str_radix(v, 16).ok();
        } else if let Some(v) = word.strip_prefix("len=") {
            len = v.parse::<u64>().ok();
        }
    }
    let (Some(fnv), Some(len)) = (fnv, len) else {
        return Err(format!("module cmdline {cmdline:?}: no fnv= or len="));
    };
    if len != m.size || len != STATE_LEN as u64 {
        return Err(format!("module size {}, cmdline says {len}", m.size));
    }
    let state = read_module(m.paddr, m.size)?;
    if let Some(i) = (0..state.len()).find(|&i| state.get(i) != Some(&pattern(i))) {
        return Err(format!("state byte {i} differs from the pattern"));
    }
    let got = fnv1a64(&state);
    if got != fnv {
        return Err(format!("state fnv {got:#018x}, cmdline says {fnv:#018x}"));
    }
    drop(state);
    // The restore's last step: the state pages go back to the heap.
    let start = (m.paddr + 4095) & !4095;
    let end = (m.paddr + m.size) & !4095;
    let before = heap::regions().len();
    let (_, free0) = heap::stats();
    heap::add_region(start as usize, (end - start) as usize)
        .map_err(|e| format!("add_region({start:#x}..{end:#x}): {e}"))?;
    let (_, free1) = heap::stats();
    if heap::regions().len() != before + 1 || free1 <= free0 {
        return Err(format!(
            "heap regions {:?}, free {free0} -> {free1}",
            heap::regions()
        ));
    }
    if heap::add_region(start as usize, (end - start) as usize) != Err(heap::HeapError::Overlap) {
        return Err("the same region was added twice".into());
    }
    kprintln!(
        "selftest handover: state ok; heap regions now {:x?}",
        heap::regions()
    );
    // The image declares a 64-bit entry and everything lies in the first GiB: the copy ran
    // in long mode and entered us there, without the 32-bit mode switches.
    if !crate::arch::handover::stamps().entry64 {
        return Err("entered at the 32-bit PVH entry, not at the 64-bit live-update one".into());
    }
    Ok(format!(
        "{len} state bytes at {:#x}, fnv {fnv:#018x}, start info at {paddr:#x}, entered at \
         the 64-bit entry",
        m.paddr
    ))
}

/// `check` accepts a sound hand-over and refuses each kind of unsound one.
pub fn check_refusals() -> Result<(), String> {
    let blob = alloc::vec![0x90u8; 8192];
    let state = alloc::vec![0u8; 4096];
    let dest = layout::IMAGE_BASE;
    let blob_at = blob.as_ptr() as u64;
    let module = |paddr: u64, size: u64| ModuleSpec {
        paddr,
        size,
        cmdline: b"state",
    };
    let good_modules = [module(state.as_ptr() as u64, 4096)];
    let good = Handover {
        zero_len: 0,
        blob: &blob,
        dest_paddr: dest,
        entry32: dest as u32 + 16,
        entry64: dest as u32 + 32,
        cmdline: b"xsstub.handover-check",
        modules: &good_modules,
    };
    handover::check(&good).map_err(|e| format!("a sound hand-over refused: {e}"))?;
    let long = alloc::vec![b'x'; 0x8000];
    let in_dest = [module(dest + 4096, 16)];
    let in_area = [module(AREA.start + 0x100, 16)];
    let above = [module(0xffff_f000, 0x2000)];
    let nul = [ModuleSpec {
        paddr: 0x200_0000,
        size: 16,
        cmdline: b"a\0b",
    }];
    let cases: [(&str, Handover, HandoverError); 10] = [
        (
            "empty",
            Handover { blob: &[], ..good },
            HandoverError::EmptyBlob,
        ),
        (
            "low",
            Handover {
                dest_paddr: AREA.start,
                ..good
            },
            HandoverError::DestinationLow { dest: AREA.start },
        ),
        (
            "entry",
            Handover {
                entry32: dest as u32 + 8192,
                ..good
            },
            HandoverError::EntryOutside {
                entry: dest as u32 + 8192,
            },
        ),
        (
            "64-bit entry",
            Handover {
                entry64: dest as u32 + 8200,
                ..good
            },
            HandoverError::EntryOutside {
                entry: dest as u32 + 8200,
            },
        ),
        (
            "module in destination",
            Handover {
                modules: &in_dest,
                ..good
            },
            HandoverError::Overlap {
                part: Part::Module(0),
                with: Part::Destination,
            },
        ),
        (
            "module in area",
            Handover {
                modules: &in_area,
                ..good
            },
            HandoverError::Overlap {
                part: Part::Module(0),
                with: Part::Area,
            },
        ),
        (
            "module above 4 GiB",
            Handover {
                modules: &above,
                ..good
            },
            HandoverError::Above4G {
                part: Part::Module(0),
                start: 0xffff_f000,
                len: 0x2000,
            },
        ),
        (
            "source below destination",
            Handover {
                dest_paddr: blob_at + 4096,
                entry32: (blob_at + 4096) as u32,
                entry64: 0,
                modules: &[],
                ..good
            },
            HandoverError::SourceBelowDestination {
                src: blob_at,
                dest: blob_at + 4096,
            },
        ),
        (
            "NUL",
            Handover {
                modules: &nul,
                ..good
            },
            HandoverError::CmdlineNul {
                part: Part::ModuleCmdline(0),
            },
        ),
        (
            "area full",
            Handover {
                cmdline: &long,
                ..good
            },
            HandoverError::AreaFull {
                need: 64 + 32 + 6 + 0x8001,
                room: 0x7000 - 64, // the stamps take the last 64 bytes
            },
        ),
    ];
    for (name, h, want) in cases {
        let got = handover::check(&h);
        if got != Err(want) {
            return Err(format!("{name}: {got:?}, expected {want:?}"));
        }
    }
    // The destination above the source (overlapping) is fine: the copy runs forwards.
    let over = Handover {
        zero_len: 0,
        dest_paddr: blob_at - 4096,
        entry32: (blob_at - 4096) as u32,
        entry64: 0,
        modules: &[],
        ..good
    };
    handover::check(&over).map_err(|e| format!("dest below an overlapping source: {e}"))?;
    Ok(())
}

/// Nothing the boot code or the heap uses lies in the hand-over area.
pub fn area_unused() -> Result<(), String> {
    let (a, b) = (AREA.start, AREA.end);
    let clear = |what: &str, lo: u64, hi: u64| -> Result<(), String> {
        if lo < b && a < hi {
            return Err(format!(
                "{what} {lo:#x}..{hi:#x} overlaps the area {a:#x}..{b:#x}"
            ));
        }
        Ok(())
    };
    clear("image", layout::image_start(), layout::image_end())?;
    let (s, e) = layout::boot_stack_range();
    clear("boot stack", s, e)?;
    let pt = layout::page_tables();
    clear("page tables", pt, pt + 7 * 4096)?;
    for (base, len) in heap::regions() {
        clear("heap region", base as u64, (base + len) as u64)?;
    }
    if b > layout::IMAGE_BASE {
        return Err("the area reaches the image base".into());
    }
    let id = crate::arch::build_id();
    if id.len() != 20 {
        return Err(format!("build-id of {} bytes: {id:02x?}", id.len()));
    }
    Ok(())
}
