//! CPU primitives: port I/O, CPUID, MSRs, the TSC, control registers and interrupt control.

use core::arch::asm;

/// Writes a byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: port writes touch no memory of ours; the ports this kernel uses (0xE9 debug
    // console, 0xF4 isa-debug-exit, the legacy PIC masks) have no memory side effects.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 16-bit value to an I/O port.
pub fn outw(port: u16, value: u16) {
    // SAFETY: as for `outb` (fw_cfg's selector port 0x510 has no memory side effect either).
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 32-bit value to an I/O port.
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: a port read touches no memory of ours.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a whole buffer to one I/O port (`rep outsb`).
pub fn outsb(port: u16, bytes: &[u8]) {
    // SAFETY: `rep outsb` reads exactly `bytes.len()` bytes from the slice and touches no
    // other memory; the direction flag is clear (Rust ABI invariant).
    unsafe {
        asm!(
            "rep outsb",
            in("dx") port,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(readonly, nostack, preserves_flags)
        )
    };
}

/// Executes CPUID for `leaf` and `subleaf`; returns (EAX, EBX, ECX, EDX).
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// The base CPUID leaf of the Xen hypervisor leaves ("XenVMMXenVMM" at 0x40000000 +
/// k * 0x100, k < 256), or `None` when not running on Xen.
pub fn running_on_xen() -> Option<u32> {
    const SIG: [u32; 3] = [
        u32::from_le_bytes(*b"XenV"),
        u32::from_le_bytes(*b"MMXe"),
        u32::from_le_bytes(*b"nVMM"),
    ];
    // Asked once per boot (each CPUID is a VM exit; a live update's downtime counts them).
    match XEN_BASE.load(core::sync::atomic::Ordering::Relaxed) {
        1 => return None,
        0 => {}
        base => return Some(base),
    }
    let found = (0x4000_0000u32..0x4001_0000).step_by(0x100).find(|&base| {
        let (max, b, c, d) = cpuid(base, 0);
        [b, c, d] == SIG && max.wrapping_sub(base) >= 2
    });
    XEN_BASE.store(found.unwrap_or(1), core::sync::atomic::Ordering::Relaxed);
    found
}

/// The Xen CPUID base found by [`running_on_xen`] (0: not asked yet, 1: not Xen).
static XEN_BASE: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist (a missing one raises #GP) and reading it must have no side effect
/// the caller does not expect.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; RDMSR writes only EDX:EAX.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must be valid for it; the caller answers for every
/// effect of the write (an MSR can move memory the CPU writes to, e.g. a hypercall page).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    let lo = value as u32;
    let hi = (value >> 32) as u32;
    // SAFETY: the caller guarantees the MSR and value are valid and the effects accepted.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") lo, in("edx") hi, options(nostack, preserves_flags))
    };
}

/// EFER (MSR 0xC0000080): LME (bit 8) and LMA (bit 10) are set in long mode.
pub fn read_efer() -> u64 {
    // SAFETY: EFER exists on every x86-64 CPU and reading it has no side effect.
    unsafe { rdmsr(0xC000_0080) }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads the counter (CR4.TSD is clear in ring 0 anyway).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// CR0.
pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CR2 (the faulting address of the last page fault).
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CR3 (the page-table root).
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CR4.
pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading a control register has no side effect.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// RFLAGS.
pub fn read_rflags() -> u64 {
    let v: u64;
    // SAFETY: pushes and pops one word on the current stack, nothing else.
    unsafe { asm!("pushfq", "pop {}", out(reg) v, options(nomem, preserves_flags)) };
    v
}

/// The current stack pointer.
pub fn read_rsp() -> u64 {
    let v: u64;
    // SAFETY: copies RSP into a register.
    unsafe { asm!("mov {}, rsp", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Whether interrupts are enabled (RFLAGS.IF).
pub fn interrupts_enabled() -> bool {
    read_rflags() & (1 << 9) != 0
}

/// Enables interrupts (`sti`). Every vector runs on an IST stack, so this is safe to do
/// whenever the registered handlers are.
pub fn enable_interrupts() {
    // SAFETY: the IDT is loaded before kmain runs; every gate is valid.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Disables interrupts (`cli`).
pub fn disable_interrupts() {
    // SAFETY: clearing IF has no memory effect.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// Sleeps until the next interrupt: `sti; hlt` (atomic: the interrupt shadow of `sti` keeps
/// a pending interrupt from slipping in before `hlt`), then `cli`. Returns with interrupts
/// disabled after the interrupt's handler ran.
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub fn wait_for_interrupt() {
    // SAFETY: as for `enable_interrupts`; the handler runs between `hlt` and `cli`. Not
    // `nomem`: the handler may change memory the caller then reads.
    unsafe { asm!("sti", "hlt", "cli", options(nostack)) };
}

/// Stops this CPU for good (interrupts disabled).
pub fn halt() -> ! {
    loop {
        // SAFETY: `cli; hlt` only stops the CPU; it touches no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Masks every line of both legacy 8259 PICs (bare QEMU: the BIOS left the timer mapped on
/// vector 8, which would look like a double fault once interrupts are enabled).
pub fn mask_legacy_pic() {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

/// Registers the self-test checks preserved across [`raise_upcall_vector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpcallProbe {
    /// Whether every general-purpose register (all but RSP) kept its value.
    pub gprs_kept: bool,
    /// Whether XMM0, XMM1, XMM7, XMM8 and XMM15 kept their values.
    pub xmm_kept: bool,
    /// Whether the 128 bytes below RSP (the red zone) kept their values.
    pub red_zone_kept: bool,
    /// Whether RSP itself is unchanged.
    pub rsp_kept: bool,
}

/// Raises the upcall vector by software (`int 0xF3`) with known values in every register,
/// the SSE registers and the red zone, and reports which survived the handler.
pub fn raise_upcall_vector() -> UpcallProbe {
    let ok: u64;
    let rsp_kept: u64;
    // SAFETY: the IDT gate for 0xF3 is valid; the red zone bytes written below RSP are not
    // used by this crate (built with no-redzone) and are read back before anything else can
    // use them; every clobbered register is declared. The `int` pushes onto the IST stack,
    // not onto the current one.
    unsafe {
        asm!(
            // RBX and RBP are saved by hand (LLVM may reserve them), before the red zone
            // below the final RSP is filled.
            "push rbx",
            "push rbp",
            // Fill the red zone with a pattern: qword i = 0x5A5A... ^ i.
            "mov r8, 0x5a5a5a5a5a5a5a5a",
            "mov ecx, 16",
            "2:",
            "mov r9, r8",
            "xor r9, rcx",
            "mov [rsp + rcx*8 - 136], r9",
            "dec ecx",
            "jnz 2b",
            // Patterns in XMM registers; RSP kept in XMM2.
            "mov r9, 0x1122334455667788",
            "movq xmm0, r9",
            "movq xmm1, r8",
            "movq xmm7, r9",
            "movq xmm8, r8",
            "movq xmm15, r9",
            "movq xmm2, rsp",
            // Patterns in every GPR but RSP.
            "mov rax, 0x0101010101010101",
            "mov rbx, 0x0202020202020202",
            "mov rcx, 0x0303030303030303",
            "mov rdx, 0x0404040404040404",
            "mov rsi, 0x0505050505050505",
            "mov rdi, 0x0606060606060606",
            "mov rbp, 0x0707070707070707",
            "mov r8,  0x0808080808080808",
            "mov r9,  0x0909090909090909",
            "mov r10, 0x0a0a0a0a0a0a0a0a",
            "mov r11, 0x0b0b0b0b0b0b0b0b",
            "mov r12, 0x0c0c0c0c0c0c0c0c",
            "mov r13, 0x0d0d0d0d0d0d0d0d",
            "mov r14, 0x0e0e0e0e0e0e0e0e",
            "mov r15, 0x0f0f0f0f0f0f0f0f",
            "int 0xf3",
            // Compare: r14 accumulates the differences (x ^ pattern), r15 is checked first.
            "mov r14, 0x0f0f0f0f0f0f0f0f",
            "xor r15, r14",
            "mov r14, 0x0101010101010101", "xor rax, r14", "or r15, rax",
            "mov r14, 0x0202020202020202", "xor rbx, r14", "or r15, rbx",
            "mov r14, 0x0303030303030303", "xor rcx, r14", "or r15, rcx",
            "mov r14, 0x0404040404040404", "xor rdx, r14", "or r15, rdx",
            "mov r14, 0x0505050505050505", "xor rsi, r14", "or r15, rsi",
            "mov r14, 0x0606060606060606", "xor rdi, r14", "or r15, rdi",
            "mov r14, 0x0707070707070707", "xor rbp, r14", "or r15, rbp",
            "mov r14, 0x0808080808080808", "xor r8, r14", "or r15, r8",
            "mov r14, 0x0909090909090909", "xor r9, r14", "or r15, r9",
            "mov r14, 0x0a0a0a0a0a0a0a0a", "xor r10, r14", "or r15, r10",
            "mov r14, 0x0b0b0b0b0b0b0b0b", "xor r11, r14", "or r15, r11",
            "mov r14, 0x0c0c0c0c0c0c0c0c", "xor r12, r14", "or r15, r12",
            "mov r14, 0x0d0d0d0d0d0d0d0d", "xor r13, r14", "or r15, r13",
            // RSP: compare with the copy kept in XMM2.
            "movq r13, xmm2",
            "xor r13, rsp",
            // r12 = 0 when every GPR matched.
            "mov r12, r15",
            // XMM registers: r11 accumulates differences.
            "mov r9, 0x1122334455667788",
            "mov r8, 0x5a5a5a5a5a5a5a5a",
            "xor r11, r11",
            "movq r10, xmm0", "xor r10, r9", "or r11, r10",
            "movq r10, xmm1", "xor r10, r8", "or r11, r10",
            "movq r10, xmm7", "xor r10, r9", "or r11, r10",
            "movq r10, xmm8", "xor r10, r8", "or r11, r10",
            "movq r10, xmm15", "xor r10, r9", "or r11, r10",
            // Red zone: rdi accumulates differences.
            "xor edi, edi",
            "mov ecx, 16",
            "3:",
            "mov r9, r8",
            "xor r9, rcx",
            "xor r9, [rsp + rcx*8 - 136]",
            "or rdi, r9",
            "dec ecx",
            "jnz 3b",
            "pop rbp",
            "pop rbx",
            // ok: bit 0 GPRs, bit 1 XMM, bit 2 red zone.
            "xor eax, eax",
            "test r12, r12", "jnz 4f", "or eax, 1", "4:",
            "test r11, r11", "jnz 5f", "or eax, 2", "5:",
            "test rdi, rdi", "jnz 6f", "or eax, 4", "6:",
            out("rax") ok,
            out("r13") rsp_kept,
            out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("r12") _, out("r14") _, out("r15") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm7") _,
            out("xmm8") _, out("xmm15") _,
        )
    };
    UpcallProbe {
        gprs_kept: ok & 1 != 0,
        xmm_kept: ok & 2 != 0,
        red_zone_kept: ok & 4 != 0,
        rsp_kept: rsp_kept == 0,
    }
}

/// A vector nobody handles, raised by [`raise_unhandled_vector`] in the self-tests.
pub const UNHANDLED_TEST_VECTOR: u8 = 0x40;

/// Raises vector 0x40 by software (`int 0x40`); the IDT counts it as spurious.
pub fn raise_unhandled_vector() {
    // SAFETY: the IDT gate for 0x40 is valid and its handler only counts; the stub saves and
    // restores every register, and the CPU frame goes on the IST stack.
    unsafe { asm!("int {v}", v = const UNHANDLED_TEST_VECTOR) };
}

/// Executes `ud2`: raises #UD, whose handler reports it and ends the kernel (used to test
/// the fatal path).
pub fn raise_invalid_opcode() -> ! {
    // SAFETY: `ud2` only raises #UD; the exception handler never returns to it.
    unsafe { asm!("ud2", options(nomem, nostack)) };
    halt()
}
