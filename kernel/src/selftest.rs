//! In-image self-tests, run on bare QEMU: boot state, start info, heap, memory functions,
//! SSE, the interrupt path, the console and the engine (wire and snapshot round trip).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::hint::black_box;
use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::arch::{cpu, fwcfg, gdt, heap, idt, layout, mem, startinfo};
use crate::console::ChunkWriter;
use crate::kprintln;

/// A test failure: what went wrong.
type Outcome = Result<(), String>;

/// Fails with a formatted message unless the condition holds.
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($arg)*));
        }
    };
}

/// Why the run failed: the names of the failing tests.
pub struct Failed {
    names: Vec<&'static str>,
    total: usize,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of {} tests:", self.names.len(), self.total)?;
        for n in &self.names {
            write!(f, " {n}")?;
        }
        Ok(())
    }
}

/// Runs every test, printing one line each; returns how many ran, or the failures.
pub fn run(start_info_paddr: u64) -> Result<usize, Failed> {
    let tests: [(&'static str, &dyn Fn() -> Outcome); 19] = [
        ("boot-state", &boot_state),
        ("startinfo-parse", &startinfo_parse),
        ("startinfo-live", &|| startinfo_live(start_info_paddr)),
        ("fwcfg-e820", &|| fwcfg_e820(start_info_paddr)),
        ("heap", &heap_alloc),
        ("heap-regions", &|| heap::self_test().map_err(String::from)),
        ("memory-plan", &memory_plan),
        ("handover-area", &crate::selftest_handover::area_unused),
        ("handover-check", &crate::selftest_handover::check_refusals),
        ("pvh-parse", &pvh_parse),
        ("mem-functions", &mem_functions),
        ("sse-float", &sse_float),
        ("cpu", &cpu_basics),
        ("interrupt-upcall", &interrupt_upcall),
        ("interrupt-unhandled", &interrupt_unhandled),
        ("console-chunks", &console_chunks),
        ("ring-streams", &crate::xen::ring_stream::self_test),
        ("engine-wire", &engine_wire),
        ("engine-snapshot", &engine_snapshot),
    ];
    let mut failed = Vec::new();
    for (name, test) in tests.iter() {
        match test() {
            Ok(()) => kprintln!("selftest {name}: ok"),
            Err(why) => {
                kprintln!("selftest {name}: FAIL {why}");
                failed.push(*name);
            }
        }
    }
    if failed.is_empty() {
        Ok(tests.len())
    } else {
        Err(Failed {
            names: failed,
            total: tests.len(),
        })
    }
}

/// Long mode, paging, SSE and the descriptor tables as `boot/pvh.S` and `arch` set them.
fn boot_state() -> Outcome {
    let cr0 = cpu::read_cr0();
    let cr4 = cpu::read_cr4();
    check!(
        cr0 & (1 << 31) != 0 && cr0 & 1 != 0,
        "CR0 {cr0:#x}: PG/PE clear"
    );
    check!(cr0 & (1 << 2) == 0, "CR0 {cr0:#x}: EM set");
    check!(cr4 & 0x620 == 0x620, "CR4 {cr4:#x}: PAE/OSFXSR/OSXMMEXCPT");
    let cr3 = cpu::read_cr3();
    check!(
        cr3 & !0xfff == layout::page_tables(),
        "CR3 {cr3:#x} is not the boot PML4 {:#x}",
        layout::page_tables()
    );
    check!(
        layout::page_tables().is_multiple_of(4096),
        "page tables not aligned"
    );
    let (bss_start, bss_end) = layout::bss();
    check!(
        layout::image_start() == layout::IMAGE_BASE && bss_start < bss_end,
        "image {:#x}, bss {bss_start:#x}..{bss_end:#x}",
        layout::image_start()
    );
    check!(
        layout::image_end() >= bss_end && layout::image_end().is_multiple_of(4096),
        "image end {:#x}",
        layout::image_end()
    );
    let (stack_lo, stack_hi) = layout::boot_stack_range();
    let rsp = cpu::read_rsp();
    check!(
        rsp > stack_lo && rsp < stack_hi && stack_hi.is_multiple_of(16),
        "rsp {rsp:#x} outside the boot stack {stack_lo:#x}..{stack_hi:#x}"
    );
    let guard = layout::stack_guard();
    check!(
        guard + 4096 == stack_lo,
        "the guard page is not right below the stack"
    );
    for addr in [
        0x1000,
        layout::IMAGE_BASE,
        stack_lo,
        0x1234_5678,
        0xffff_f000,
    ] {
        let t = layout::translate(addr);
        check!(t == Some(addr), "{addr:#x} maps to {t:?}, not to itself");
    }
    check!(
        layout::translate(guard).is_none() && layout::translate(guard + 4095).is_none(),
        "the stack guard page is mapped"
    );
    check!(
        layout::translate(1 << 32).is_none(),
        "4 GiB and above is mapped"
    );
    check!(!cpu::interrupts_enabled(), "interrupts enabled at boot");
    check!(
        idt::stubs_well_formed(),
        "interrupt stubs are not 16 bytes each"
    );
    check!(
        idt::ist_of(idt::UPCALL_VECTOR) == gdt::IST_INTERRUPT
            && idt::ist_of(8) == gdt::IST_CRITICAL
            && idt::ist_of(14) == gdt::IST_EXCEPTION,
        "IST assignment"
    );
    Ok(())
}

/// Start info parsing on synthetic bytes, and the heap range choice.
fn startinfo_parse() -> Outcome {
    use startinfo::{largest_free, StartInfo, StartInfoError, MAGIC};
    let mut b = [0u8; 56];
    let put32 = |b: &mut [u8; 56], at: usize, v: u32| {
        if let Some(d) = b.get_mut(at..at + 4) {
            d.copy_from_slice(&v.to_le_bytes());
        }
    };
    let put64 = |b: &mut [u8; 56], at: usize, v: u64| {
        if let Some(d) = b.get_mut(at..at + 8) {
            d.copy_from_slice(&v.to_le_bytes());
        }
    };
    put32(&mut b, 0, MAGIC);
    put32(&mut b, 4, 1);
    put32(&mut b, 12, 2);
    put64(&mut b, 16, 0x1234_5000);
    put64(&mut b, 24, 0x7000);
    put64(&mut b, 40, 0x9000);
    put32(&mut b, 48, 5);
    let si = StartInfo::parse(&b).map_err(|e| format!("{e}"))?;
    check!(
        si.version == 1
            && si.nr_modules == 2
            && si.modlist_paddr == 0x1234_5000
            && si.cmdline_paddr == 0x7000
            && si.memmap_paddr == 0x9000
            && si.memmap_entries == 5,
        "parsed {si:?}"
    );
    check!(
        StartInfo::parse(b.get(..50).unwrap_or(&[])) == Err(StartInfoError::Short),
        "a truncated v1 structure parsed"
    );
    put32(&mut b, 4, 0);
    let v0 = StartInfo::parse(b.get(..40).unwrap_or(&[])).map_err(|e| format!("v0: {e}"))?;
    check!(v0.memmap_entries == 0, "v0 has a memory map: {v0:?}");
    put32(&mut b, 0, 0xdead_beef);
    check!(
        StartInfo::parse(&b) == Err(StartInfoError::BadMagic(0xdead_beef)),
        "bad magic accepted"
    );
    // Largest free piece: [1M, 64M) minus [2M+100, 3M) and [40M, 41M).
    let m = 1u64 << 20;
    let reserved = [(2 * m + 100, 3 * m), (40 * m, 41 * m)];
    check!(
        largest_free(m, 64 * m, &reserved) == Some((3 * m, 40 * m)),
        "largest_free: {:?}",
        largest_free(m, 64 * m, &reserved)
    );
    check!(
        largest_free(m, 64 * m, &[(0, 64 * m)]).is_none(),
        "a fully reserved region has room"
    );
    check!(
        largest_free(m + 1, 2 * m - 1, &[]) == Some((m + 4096, 2 * m - 4096)),
        "unaligned region: {:?}",
        largest_free(m + 1, 2 * m - 1, &[])
    );
    Ok(())
}

/// The start info QEMU (or a hand-over) passed: readable, with a memory map (or, after a
/// hand-over, none and fw_cfg's instead), and the heap inside its RAM.
fn startinfo_live(paddr: u64) -> Outcome {
    let si = startinfo::StartInfo::read(paddr).map_err(|e| format!("{e}"))?;
    check!(si.version >= 1, "start info version {}", si.version);
    let map: Vec<startinfo::MemmapEntry> = if si.memmap_entries > 0 {
        (0..si.memmap_entries)
            .filter_map(|i| si.memmap_entry(i))
            .collect()
    } else {
        let map = fwcfg::e820().ok_or("no memory map in the start info and no fw_cfg")?;
        map.iter().copied().collect()
    };
    check!(!map.is_empty(), "no memory map");
    let (lo, len) = heap::range();
    let (lo, hi) = (lo as u64, (lo + len) as u64);
    let inside = map
        .iter()
        .any(|e| e.kind == startinfo::E820_RAM && e.addr <= lo && hi <= e.addr + e.size);
    check!(inside, "heap {lo:#x}..{hi:#x} not inside one RAM entry");
    check!(lo >= layout::image_end(), "heap below the image end");
    let reserved = si.loader_ranges(paddr).map_err(|e| format!("{e}"))?;
    for &(s, e) in reserved.as_slice() {
        check!(
            e <= lo || s >= hi,
            "heap overlaps loader range {s:#x}..{e:#x}"
        );
    }
    let mut buf = [0u8; 128];
    if let Some(cmdline) = si.cmdline(&mut buf) {
        kprintln!(
            "  cmdline: {:?}",
            core::str::from_utf8(cmdline).unwrap_or("?")
        );
    }
    Ok(())
}

/// QEMU's fw_cfg `etc/e820` (the heap's source after a hand-over) has the RAM of the start
/// info's memory map (when there is one: not after a hand-over).
fn fwcfg_e820(paddr: u64) -> Outcome {
    let map = fwcfg::e820().ok_or("no fw_cfg etc/e820")?;
    let ram = |e: &startinfo::MemmapEntry| e.kind == startinfo::E820_RAM;
    check!(map.iter().any(ram), "etc/e820 has no RAM: {map:?}");
    let si = startinfo::StartInfo::read(paddr).map_err(|e| format!("{e}"))?;
    for e in (0..si.memmap_entries).filter_map(|i| si.memmap_entry(i)) {
        let covered = !ram(&e)
            || map
                .iter()
                .any(|f| ram(f) && f.addr <= e.addr && e.addr + e.size <= f.addr + f.size);
        check!(
            covered,
            "start info RAM {:#x}+{:#x} not in etc/e820 {map:x?}",
            e.addr,
            e.size
        );
    }
    Ok(())
}

/// The PVH validator on the running image's own headers is out of reach (the ELF file is
/// not in memory), so: a minimal synthetic image, accepted and laid out; a truncated one,
/// refused with a message naming the offset.
fn pvh_parse() -> Outcome {
    let mut f = vec![0u8; 64 + 2 * 56];
    let put = |f: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        if let Some(d) = f.get_mut(at..at + bytes.len()) {
            d.copy_from_slice(bytes);
        }
    };
    put(&mut f, 0, b"\x7fELF\x02\x01\x01");
    put(&mut f, 16, &2u16.to_le_bytes());
    put(&mut f, 18, &62u16.to_le_bytes());
    put(&mut f, 32, &64u64.to_le_bytes());
    put(&mut f, 54, &56u16.to_le_bytes());
    put(&mut f, 56, &2u16.to_le_bytes());
    let code = f.len() as u64;
    f.extend_from_slice(&[0x90; 16]);
    let note = f.len() as u64;
    for w in [4u32, 4, 18] {
        f.extend_from_slice(&w.to_le_bytes());
    }
    f.extend_from_slice(b"Xen\0");
    f.extend_from_slice(&0x10_0004u32.to_le_bytes());
    for (i, (kind, flags, off, paddr, size, mem)) in [
        (1u32, 5u32, code, 0x10_0000u64, 16u64, 4096u64),
        (4, 4, note, 0, 20, 20),
    ]
    .into_iter()
    .enumerate()
    {
        let b = 64 + i * 56;
        put(&mut f, b, &kind.to_le_bytes());
        put(&mut f, b + 4, &flags.to_le_bytes());
        for (at, v) in [(8, off), (16, paddr), (24, paddr), (32, size), (40, mem)] {
            put(&mut f, b + at, &v.to_le_bytes());
        }
    }
    let img = xsstate::pvh::parse(&f).map_err(|e| format!("{e}"))?;
    check!(
        img.entry32 == 0x10_0004 && img.load_lo == 0x10_0000 && img.load_hi == 0x10_1000,
        "parsed {img:?}"
    );
    let mut out = Vec::new();
    img.flatten(&f, &mut out).map_err(|e| format!("{e}"))?;
    check!(
        out.len() == 4096 && out.get(..16) == Some(&[0x90; 16][..]),
        "flattened {} bytes",
        out.len()
    );
    let cut = f.get(..f.len() - 1).unwrap_or(&[]);
    let msg = match xsstate::pvh::parse(cut) {
        Ok(_) => String::from("a truncated image parsed"),
        Err(e) => format!("{e}"),
    };
    check!(msg.contains("truncated") && msg.contains("0x"), "{msg}");
    Ok(())
}

/// Vec, BTreeMap and Box through the global allocator; usage returns to its baseline.
fn heap_alloc() -> Outcome {
    let (used0, free0) = heap::stats();
    let chunks0 = heap::chunks();
    {
        let v: Vec<u64> = (0..100_000u64).map(black_box).collect();
        let sum: u64 = v.iter().sum();
        check!(sum == 100_000 * 99_999 / 2, "Vec sum {sum}");
        let (used1, _) = heap::stats();
        check!(
            used1 >= used0 + 800_000,
            "used {used0} -> {used1} for an 800 KB Vec"
        );
        let mut m = BTreeMap::new();
        for i in 0..2000u32 {
            m.insert(format!("/local/domain/{i}"), i);
        }
        for i in (0..2000u32).step_by(2) {
            m.remove(&format!("/local/domain/{i}"));
        }
        check!(m.len() == 1000, "BTreeMap has {} entries", m.len());
        check!(
            m.get("/local/domain/1001") == Some(&1001) && !m.contains_key("/local/domain/1000"),
            "BTreeMap lookups"
        );
        let big = vec![0xA5u8; 1 << 20];
        check!(big.iter().all(|&b| b == 0xA5), "1 MiB Vec contents");
        let mut refused: Vec<u8> = Vec::new();
        check!(
            refused.try_reserve(1 << 31).is_err(),
            "a 2 GiB allocation succeeded on a 64 MiB machine"
        );
    }
    let (used2, free2) = heap::stats();
    check!(
        used2 == used0 && free2 == free0,
        "leak: used {used0} -> {used2}, free {free0} -> {free2}"
    );
    let chunks2 = heap::chunks();
    check!(
        chunks2 == chunks0,
        "slab chunks {chunks0} -> {chunks2}: empty chunks not released"
    );
    Ok(())
}

/// The stub domain's RAM plan for the memory maps the lab showed (Xen 4.17's
/// `init-xenstore-domain`), and the heap pieces around loader data.
fn memory_plan() -> Outcome {
    use crate::service::memory::{heap_pieces, plan_ram, RamPlan, GROW_CEILING_GFN};
    const MIB: u64 = 1 << 20;
    let ram = |size| startinfo::MemmapEntry {
        addr: 0,
        size,
        kind: startinfo::E820_RAM,
    };
    let special = startinfo::MemmapEntry {
        addr: 0xfeff_8000,
        size: 0x8000,
        kind: 2,
    };
    let floor = 0x1d3000;
    // --memory 8: RAM 0..8 MiB, 2048 + 8 pages populated, the maximum the same.
    let plan = plan_ram(&[ram(8 * MIB), special], 2056, 8, 2056, floor);
    check!(
        plan == Some(RamPlan {
            top: 8 * MIB,
            limit: 8 * MIB,
            map_used: true
        }),
        "--memory 8: {plan:?}"
    );
    // --memory 8 --maxmem 64 with 4.17's map (RAM 0..64 bytes): the reservation decides.
    let plan = plan_ram(&[ram(64), special], 2056, 8, 64 * 256 + 8, floor);
    check!(
        plan == Some(RamPlan {
            top: 8 * MIB,
            limit: 64 * MIB,
            map_used: false
        }),
        "--memory 8 --maxmem 64, 4.17 map: {plan:?}"
    );
    // The same with 4.19's map (RAM 0..64 MiB).
    let plan = plan_ram(&[ram(64 * MIB), special], 2056, 8, 64 * 256 + 8, floor);
    check!(
        plan == Some(RamPlan {
            top: 8 * MIB,
            limit: 64 * MIB,
            map_used: true
        }),
        "--memory 8 --maxmem 64, 4.19 map: {plan:?}"
    );
    // After growing by 4 MiB (a live update's new image): the grown RAM is populated RAM.
    let plan = plan_ram(&[ram(64), special], 2056 + 1024, 8, 64 * 256 + 8, floor);
    check!(
        plan.is_some_and(|p| p.top == 12 * MIB && p.limit == 64 * MIB),
        "after growth: {plan:?}"
    );
    // A huge maximum stays below the Xen pages' hole; a reserved range above the RAM
    // bounds the growth; nonsense counts are refused.
    let plan = plan_ram(&[ram(64), special], 2056, 8, 1 << 24, floor);
    check!(
        plan.is_some_and(|p| p.limit == GROW_CEILING_GFN * 4096),
        "huge maximum: {plan:?}"
    );
    let low_reserved = startinfo::MemmapEntry {
        addr: 16 * MIB,
        size: 4096,
        kind: 2,
    };
    let plan = plan_ram(&[ram(64), low_reserved], 2049, 1, 1 << 20, floor);
    check!(
        plan.is_some_and(|p| p.limit == 16 * MIB),
        "reserved range above the RAM: {plan:?}"
    );
    check!(
        plan_ram(&[ram(8 * MIB)], 4, 8, 8, floor).is_none(),
        "fewer pages populated than reserved ones accepted"
    );
    // Heap pieces: the module's pages are cut out (rounded out to pages), small ones dropped,
    // largest first.
    let pieces = heap_pieces(0x20_0000, 0x80_0000, &[(0x30_0100, 0x30_2000)]);
    check!(
        pieces.as_slice() == [(0x30_2000, 0x80_0000), (0x20_0000, 0x30_0000)],
        "pieces {pieces:x?}"
    );
    let pieces = heap_pieces(0x20_0000, 0x80_0000, &[(0x20_1000, 0x7f_8000)]);
    check!(pieces.is_empty(), "tiny pieces kept: {pieces:x?}");
    Ok(())
}

/// memcpy, memmove (both overlap directions), memset, memcmp and bcmp against a reference.
fn mem_functions() -> Outcome {
    let pattern = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 7 + 3) as u8).collect() };
    for len in [0usize, 1, 7, 64, 1000, 4099] {
        let src = pattern(len);
        let mut dst = vec![0u8; len + 5];
        check!(mem::copy(&mut dst, &src), "copy refused");
        check!(dst.get(..len) == Some(&src[..]), "memcpy of {len} bytes");
        check!(
            dst.get(len..).is_some_and(|t| t.iter().all(|&b| b == 0)),
            "memcpy wrote past {len} bytes"
        );
    }
    check!(
        !mem::copy(&mut [0u8; 2], &[1, 2, 3]),
        "copy into a short buffer"
    );
    for (src, dst, len) in [
        (0usize, 5usize, 100usize),
        (5, 0, 100),
        (10, 11, 300),
        (3, 3, 50),
    ] {
        let mut buf = pattern(512);
        let mut expect = buf.clone();
        for i in 0..len {
            // Reference: copy through a temporary (what memmove must behave like).
            let v = pattern(512).get(src + i).copied().unwrap_or(0);
            if let Some(d) = expect.get_mut(dst + i) {
                *d = v;
            }
        }
        check!(mem::move_within(&mut buf, src, dst, len), "move refused");
        check!(buf == expect, "memmove {src} -> {dst} of {len} bytes");
    }
    check!(
        !mem::move_within(&mut [0u8; 8], 4, 0, 5),
        "move out of bounds accepted"
    );
    let mut buf = vec![1u8; 300];
    mem::fill(buf.get_mut(10..290).unwrap_or(&mut []), 0xEE);
    check!(
        buf.iter()
            .enumerate()
            .all(|(i, &b)| b == if (10..290).contains(&i) { 0xEE } else { 1 }),
        "memset"
    );
    check!(mem::compare(b"abcd", b"abcd") == 0, "memcmp equal");
    check!(mem::compare(b"abcd", b"abce") < 0, "memcmp less");
    check!(mem::compare(b"abz", b"abc") > 0, "memcmp greater");
    check!(
        mem::compare(&[0x80], &[0x01]) > 0,
        "memcmp must compare unsigned"
    );
    check!(mem::compare(b"", b"") == 0, "memcmp of nothing");
    check!(mem::equal_prefix(b"same", b"same") == 0, "bcmp equal");
    check!(mem::equal_prefix(b"same", b"sane") != 0, "bcmp differs");
    // The compiler's own calls (slice copy_within is a memmove; == on slices is a bcmp).
    let mut v = pattern(64);
    v.copy_within(0..60, 4);
    check!(v.get(4..64) == pattern(64).get(..60), "copy_within");
    check!(black_box(pattern(33)) == pattern(33), "slice equality");
    Ok(())
}

fn series(n: u32) -> f64 {
    (1..=n).map(|k| 1.0 / (f64::from(k) * f64::from(k))).sum()
}

fn sqrt_newton(x: f32) -> f32 {
    let mut r = x;
    for _ in 0..30 {
        r = 0.5 * (r + x / r);
    }
    r
}

/// Floating point in Rust code (SSE registers), and float formatting.
fn sse_float() -> Outcome {
    let s = series(black_box(10_000));
    let pi2_6 = core::f64::consts::PI * core::f64::consts::PI / 6.0;
    check!((s - pi2_6).abs() < 1e-3, "sum 1/k^2 = {s}");
    let r = sqrt_newton(black_box(2.0f32));
    check!(
        (r - core::f32::consts::SQRT_2).abs() < 1e-6,
        "sqrt(2) = {r}"
    );
    let mut out = String::new();
    let _ = write!(
        out,
        "{:.3} {:e}",
        black_box(1.23456f64),
        black_box(1.5e-7f64)
    );
    check!(out == "1.235 1.5e-7", "float formatting gave {out:?}");
    let v: Vec<f64> = (0..16).map(|i| f64::from(i) * 0.5).collect();
    let dot: f64 = v.iter().zip(v.iter().rev()).map(|(a, b)| a * b).sum();
    // 0.25 * sum i * (15 - i) for i in 0..16 = 0.25 * 560.
    check!(dot == 140.0, "dot product {dot}");
    Ok(())
}

/// CPU helpers: no Xen here, the TSC moves, CPUID answers.
fn cpu_basics() -> Outcome {
    check!(cpu::running_on_xen().is_none(), "Xen detected on bare QEMU");
    let t0 = cpu::rdtsc();
    let _ = black_box(series(black_box(1000)));
    let t1 = cpu::rdtsc();
    check!(t1 > t0, "TSC did not advance: {t0} -> {t1}");
    let (max_leaf, ..) = cpu::cpuid(0, 0);
    check!(max_leaf >= 1, "CPUID max leaf {max_leaf}");
    let (_, _, _, edx) = cpu::cpuid(1, 0);
    check!(edx & (1 << 25) != 0 && edx & (1 << 26) != 0, "no SSE/SSE2");
    // Long mode as the CPU reports it: EFER has LME and LMA.
    let efer = cpu::read_efer();
    check!(efer & 0x500 == 0x500, "EFER {efer:#x}: LME/LMA clear");
    // The legacy PICs were masked by kmain (their mask registers read back as 0xff).
    let masks = (cpu::inb(0x21), cpu::inb(0xa1));
    check!(masks == (0xff, 0xff), "PIC masks {masks:?}");
    // Interrupts on and off again (nothing can arrive: the PICs are masked).
    cpu::enable_interrupts();
    let on = cpu::interrupts_enabled();
    cpu::disable_interrupts();
    check!(
        on && !cpu::interrupts_enabled(),
        "sti/cli did not toggle IF"
    );
    Ok(())
}

static UPCALL_HITS: AtomicU64 = AtomicU64::new(0);
static UPCALL_FLOAT: AtomicU64 = AtomicU64::new(0);
static UPCALL_RSP: AtomicU64 = AtomicU64::new(0);

/// The test's upcall handler: counts, uses SSE (clobbering XMM registers the stub must
/// restore) and records its stack pointer.
fn test_upcall() {
    UPCALL_HITS.fetch_add(1, Ordering::SeqCst);
    let x = black_box(1.5f64);
    let y = black_box(x * x + black_box(0.25) + series(black_box(8)));
    UPCALL_FLOAT.store(y.to_bits(), Ordering::SeqCst);
    UPCALL_RSP.store(cpu::read_rsp(), Ordering::SeqCst);
}

/// `int 0xF3` reaches the registered handler exactly once, on the interrupt IST stack, and
/// every register, the SSE registers and the red zone survive; without a handler it is
/// only counted.
fn interrupt_upcall() -> Outcome {
    let before = idt::upcall_count();
    let spurious = idt::spurious_count();
    UPCALL_HITS.store(0, Ordering::SeqCst);
    idt::set_upcall_handler(test_upcall);
    let probe = cpu::raise_upcall_vector();
    let hits = UPCALL_HITS.load(Ordering::SeqCst);
    check!(hits == 1, "handler ran {hits} times");
    check!(idt::upcall_count() == before + 1, "upcall count");
    check!(probe.gprs_kept, "general registers changed: {probe:?}");
    check!(probe.xmm_kept, "XMM registers changed: {probe:?}");
    check!(probe.red_zone_kept, "red zone overwritten: {probe:?}");
    check!(probe.rsp_kept, "RSP changed: {probe:?}");
    let expect = 1.5f64 * 1.5 + 0.25 + series(8);
    check!(
        UPCALL_FLOAT.load(Ordering::SeqCst) == expect.to_bits(),
        "handler float result"
    );
    let rsp = UPCALL_RSP.load(Ordering::SeqCst);
    let top = gdt::ist_stack_top(gdt::IST_INTERRUPT);
    check!(
        rsp < top && rsp > top - gdt::IST_STACK_SIZE as u64,
        "handler ran on {rsp:#x}, not on IST1 (top {top:#x})"
    );
    idt::clear_upcall_handler();
    let _ = cpu::raise_upcall_vector();
    check!(
        UPCALL_HITS.load(Ordering::SeqCst) == 1,
        "cleared handler ran"
    );
    check!(
        idt::upcall_count() == before + 2,
        "upcall without handler not counted"
    );
    check!(
        idt::spurious_count() == spurious,
        "upcall counted as spurious"
    );
    check!(
        !cpu::interrupts_enabled(),
        "interrupts enabled after the round trip"
    );
    Ok(())
}

/// A vector without a handler is counted as spurious and returns.
fn interrupt_unhandled() -> Outcome {
    let before = idt::spurious_count();
    cpu::raise_unhandled_vector();
    cpu::raise_unhandled_vector();
    let after = idt::spurious_count();
    check!(after == before + 2, "spurious count {before} -> {after}");
    Ok(())
}

/// The console's chunked formatter: long output arrives whole, in chunks of <= 256 bytes.
fn console_chunks() -> Outcome {
    let mut got = Vec::new();
    let mut chunks = 0usize;
    let mut biggest = 0usize;
    {
        let mut w = ChunkWriter::new(|b: &[u8]| {
            got.extend_from_slice(b);
            chunks += 1;
            biggest = biggest.max(b.len());
        });
        for i in 0..100 {
            let _ = write!(w, "line {i:03};");
        }
        w.flush();
    }
    let want: String = (0..100).map(|i| format!("line {i:03};")).collect();
    check!(got == want.as_bytes(), "output differs");
    check!(
        chunks == 4 && biggest == 256,
        "{chunks} chunks, biggest {biggest}"
    );
    // kprint! reaches the extra sink, and stops reaching it once cleared.
    CAPTURED_LEN.store(0, Ordering::SeqCst);
    crate::console::set_extra_sink(capture);
    crate::kprint!("  (console probe {})\n", 42);
    crate::console::clear_extra_sink();
    crate::kprint!("  (not captured)\n");
    let n = CAPTURED_LEN.load(Ordering::SeqCst).min(CAPTURED.len());
    let captured: Vec<u8> = CAPTURED
        .iter()
        .take(n)
        .map(|b| b.load(Ordering::SeqCst))
        .collect();
    check!(
        captured == b"  (console probe 42)\n",
        "extra sink got {:?}",
        String::from_utf8_lossy(&captured)
    );
    Ok(())
}

static CAPTURED: [AtomicU8; 64] = [const { AtomicU8::new(0) }; 64];
static CAPTURED_LEN: AtomicUsize = AtomicUsize::new(0);

/// An extra console sink that keeps the first 64 bytes it sees.
fn capture(bytes: &[u8]) {
    for &b in bytes {
        let at = CAPTURED_LEN.fetch_add(1, Ordering::SeqCst);
        if let Some(slot) = CAPTURED.get(at) {
            slot.store(b, Ordering::SeqCst);
        }
    }
}

fn z(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// The expected reply bytes: header (type, req_id, tx_id, len; little endian) and payload.
fn reply(ty: xsstate::MsgType, req_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(ty as u32).to_le_bytes());
    v.extend_from_slice(&req_id.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn request(
    e: &mut xsstate::Engine,
    c: xsstate::ConnId,
    ty: xsstate::MsgType,
    req_id: u32,
    payload: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let bytes = xsstate::Message::new(ty, req_id, xsstate::TxId(0), payload).encode();
    let used = e.receive(c, &bytes).map_err(|f| format!("fault: {f}"))?;
    check!(
        used == bytes.len(),
        "engine took {used} of {} bytes",
        bytes.len()
    );
    Ok(e.drain_output(c))
}

/// A WRITE then READ (and a failing READ) through the wire format, byte for byte.
fn engine_wire() -> Outcome {
    use xsstate::MsgType;
    let mut e = xsstate::Engine::new(xsstate::EngineConfig::default());
    let c = e.connect_socket(false);
    let mut w = z("/selftest/node");
    w.extend_from_slice(b"value\x00with nul");
    let got = request(&mut e, c, MsgType::Write, 7, w)?;
    check!(
        got == reply(MsgType::Write, 7, b"OK\0"),
        "WRITE reply {got:?}"
    );
    let got = request(&mut e, c, MsgType::Read, 8, z("/selftest/node"))?;
    check!(
        got == reply(MsgType::Read, 8, b"value\x00with nul"),
        "READ reply {got:?}"
    );
    let got = request(&mut e, c, MsgType::Read, 9, z("/selftest/missing"))?;
    check!(
        got == reply(MsgType::Error, 9, b"ENOENT\0"),
        "READ of a missing node {got:?}"
    );
    let got = request(&mut e, c, MsgType::Directory, 10, z("/selftest"))?;
    check!(
        got == reply(MsgType::Directory, 10, b"node\0"),
        "DIRECTORY reply {got:?}"
    );
    Ok(())
}

/// Dump the engine to image bytes, read them back, restore, and get the same answers.
fn engine_snapshot() -> Outcome {
    use xsstate::image::{read, write, Layout};
    use xsstate::snapshot::DumpOptions;
    use xsstate::MsgType;
    let mut e = xsstate::Engine::new(xsstate::EngineConfig::default());
    let c = e.connect_socket(false);
    for i in 0..50u32 {
        let mut w = z(&format!("/vm/{i}/name"));
        w.extend_from_slice(format!("guest-{i}").as_bytes());
        let got = request(&mut e, c, MsgType::Write, i, w)?;
        check!(
            got == reply(MsgType::Write, i, b"OK\0"),
            "WRITE {i}: {got:?}"
        );
    }
    let before = request(&mut e, c, MsgType::Read, 100, z("/vm/42/name"))?;
    check!(
        before == reply(MsgType::Read, 100, b"guest-42"),
        "READ before dump {before:?}"
    );
    let opts = DumpOptions::default();
    let bytes = write(&e.dump(&opts)).map_err(|err| format!("write: {err}"))?;
    let image = read(&bytes, Layout::Seed).map_err(|err| format!("read: {err}"))?;
    let mut r = xsstate::Engine::restore(image, xsstate::EngineConfig::default())
        .map_err(|err| format!("restore: {err}"))?;
    let again = write(&r.dump(&opts)).map_err(|err| format!("write again: {err}"))?;
    check!(again == bytes, "dump of the restored engine differs");
    check!(
        r.store().len() == e.store().len(),
        "store sizes {} vs {}",
        r.store().len(),
        e.store().len()
    );
    let rc = r.connection(c).map(|conn| conn.id);
    check!(rc == Some(c), "the socket connection did not survive");
    let after = request(&mut r, c, MsgType::Read, 100, z("/vm/42/name"))?;
    check!(
        after == before,
        "READ after restore {after:?}, before {before:?}"
    );
    let dir = request(&mut r, c, MsgType::Directory, 101, z("/vm/7"))?;
    check!(
        dir == reply(MsgType::Directory, 101, b"name\0"),
        "DIRECTORY after restore {dir:?}"
    );
    Ok(())
}

/// The command line option that makes the bare-QEMU run end in a deliberate failure after the
/// tests, to exercise the fatal paths: `xsstub.fault=ud2` (invalid opcode exception) or
/// `xsstub.fault=panic` or `xsstub.fault=stack-overflow` (the boot stack runs into its
/// guard page).
pub const FAULT_OPTION: &str = "xsstub.fault=";

/// Raises the fault the command line asks for, if any; returns otherwise.
pub fn inject_fault(start_info_paddr: u64) {
    let mut buf = [0u8; 256];
    let Ok(si) = startinfo::StartInfo::read(start_info_paddr) else {
        return;
    };
    let Some(cmdline) = si.cmdline(&mut buf) else {
        return;
    };
    let cmdline = core::str::from_utf8(cmdline).unwrap_or("");
    for word in cmdline.split_ascii_whitespace() {
        match word.strip_prefix(FAULT_OPTION) {
            Some("ud2") => {
                kprintln!("selftest: raising #UD as asked");
                cpu::raise_invalid_opcode()
            }
            Some("panic") => panic!("deliberate panic as asked"),
            Some("stack-overflow") => {
                kprintln!("selftest: overflowing the boot stack as asked");
                let depth = recurse(black_box(u64::MAX));
                kprintln!("selftest: recursion returned {depth}: no guard page?");
            }
            Some(other) => kprintln!("selftest: unknown fault `{other}` ignored"),
            None => {}
        }
    }
}

/// Recursion that uses 1 KiB of stack per level until `depth` runs out (never, in practice).
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 1024]);
    if depth == 0 {
        return 0;
    }
    let below = recurse(black_box(depth - 1));
    below + u64::from(frame.iter().fold(0u8, |a, &b| a ^ b))
}
