//! The IDT: 256 asm entry stubs that save every register and the SSE state on an IST stack,
//! call [`dispatch`], restore and `iretq`.
//!
//! Vectors 0-31 (exceptions) print the vector, error code, RIP and CR2 and end the kernel
//! through [`super::exit::shutdown`]; [`UPCALL_VECTOR`] calls the handler registered with
//! [`set_upcall_handler`]; every other vector is counted as spurious and ignored (no EOI).

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use super::gdt;

/// The vector Xen's event-channel upcall is delivered on (`HVM_PARAM_CALLBACK_IRQ` of type
/// vector); it needs no LAPIC EOI.
pub const UPCALL_VECTOR: u8 = 0xF3;

/// Size of each entry stub (stub `v` is at `xs_isr_stubs + v * STUB_SIZE`).
const STUB_SIZE: usize = 16;

/// The upcall's handler: read from the interrupt with `try_read` (never waits), written at
/// boot.
static UPCALL_HANDLER: super::Hook<fn()> = spin::RwLock::new(None);
static UPCALLS: AtomicU64 = AtomicU64::new(0);
static SPURIOUS: AtomicU64 = AtomicU64::new(0);

/// Registers the function the upcall vector calls. It runs on the interrupt IST stack with
/// interrupts disabled and must not allocate, block or take a lock the interrupted code may
/// hold (the heap's, for one).
pub fn set_upcall_handler(f: fn()) {
    *UPCALL_HANDLER.write() = Some(f);
}

/// Removes the upcall handler (the vector is then ignored).
pub fn clear_upcall_handler() {
    *UPCALL_HANDLER.write() = None;
}

/// How many times the upcall vector was taken (with or without a handler).
pub fn upcall_count() -> u64 {
    UPCALLS.load(Ordering::Relaxed)
}

/// How many interrupts arrived on vectors nobody handles.
pub fn spurious_count() -> u64 {
    SPURIOUS.load(Ordering::Relaxed)
}

/// The registers the entry stub saved, lowest address first, then the CPU's frame.
#[repr(C)]
#[derive(Debug)]
pub struct InterruptFrame {
    /// R15.
    pub r15: u64,
    /// R14.
    pub r14: u64,
    /// R13.
    pub r13: u64,
    /// R12.
    pub r12: u64,
    /// R11.
    pub r11: u64,
    /// R10.
    pub r10: u64,
    /// R9.
    pub r9: u64,
    /// R8.
    pub r8: u64,
    /// RBP.
    pub rbp: u64,
    /// RDI.
    pub rdi: u64,
    /// RSI.
    pub rsi: u64,
    /// RDX.
    pub rdx: u64,
    /// RCX.
    pub rcx: u64,
    /// RBX.
    pub rbx: u64,
    /// RAX.
    pub rax: u64,
    /// The vector number (pushed by the stub).
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    /// Interrupted RIP.
    pub rip: u64,
    /// Interrupted CS.
    pub cs: u64,
    /// Interrupted RFLAGS.
    pub rflags: u64,
    /// Interrupted RSP.
    pub rsp: u64,
    /// Interrupted SS.
    pub ss: u64,
}

global_asm!(
    ".pushsection .text.isr, \"ax\", @progbits",
    ".p2align 4",
    ".globl xs_isr_stubs",
    "xs_isr_stubs:",
    ".set xs_isr_vec, 0",
    ".rept 256",
    ".p2align 4",
    // Vectors with a CPU error code: 8, 10-14, 17, 21, 29, 30. Others push a zero.
    ".if (xs_isr_vec == 8) || ((xs_isr_vec >= 10) && (xs_isr_vec <= 14)) || (xs_isr_vec == 17) || (xs_isr_vec == 21) || (xs_isr_vec == 29) || (xs_isr_vec == 30)",
    ".else",
    "pushq $0",
    ".endif",
    "pushq $xs_isr_vec",
    "jmp xs_isr_common",
    ".set xs_isr_vec, xs_isr_vec + 1",
    ".endr",
    ".p2align 4",
    ".globl xs_isr_stubs_end",
    "xs_isr_stubs_end:",
    "",
    "xs_isr_common:",
    "pushq %rax",
    "pushq %rbx",
    "pushq %rcx",
    "pushq %rdx",
    "pushq %rsi",
    "pushq %rdi",
    "pushq %rbp",
    "pushq %r8",
    "pushq %r9",
    "pushq %r10",
    "pushq %r11",
    "pushq %r12",
    "pushq %r13",
    "pushq %r14",
    "pushq %r15",
    // RBX (callee-saved) keeps the frame address across the call.
    "movq %rsp, %rbx",
    "subq $512, %rsp",
    "andq $-64, %rsp",
    "fxsave64 (%rsp)",
    "movq %rbx, %rdi",
    "cld",
    "call {dispatch}",
    "fxrstor64 (%rsp)",
    "movq %rbx, %rsp",
    "popq %r15",
    "popq %r14",
    "popq %r13",
    "popq %r12",
    "popq %r11",
    "popq %r10",
    "popq %r9",
    "popq %r8",
    "popq %rbp",
    "popq %rdi",
    "popq %rsi",
    "popq %rdx",
    "popq %rcx",
    "popq %rbx",
    "popq %rax",
    // Drop the vector and error code.
    "addq $16, %rsp",
    "iretq",
    ".popsection",
    dispatch = sym dispatch,
    options(att_syntax)
);

unsafe extern "C" {
    static xs_isr_stubs: u8;
    static xs_isr_stubs_end: u8;
}

/// One IDT gate.
#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

const EMPTY_GATE: Gate = Gate {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
};

#[repr(C, align(16))]
struct Idt([Gate; 256]);

/// The IDT, built once per boot (the CPU reads it through `lidt`'s address).
static IDT: spin::Once<Idt> = spin::Once::new();

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// The IST a vector runs on.
pub fn ist_of(vector: u8) -> u8 {
    match vector {
        2 | 8 | 18 => gdt::IST_CRITICAL,
        0..=31 => gdt::IST_EXCEPTION,
        _ => gdt::IST_INTERRUPT,
    }
}

/// The address of the entry stub of `vector`.
pub fn stub_address(vector: u8) -> u64 {
    (&raw const xs_isr_stubs) as u64 + u64::from(vector) * STUB_SIZE as u64
}

/// Whether the stub block has the expected size (each stub fit its 16 bytes).
pub fn stubs_well_formed() -> bool {
    let len = (&raw const xs_isr_stubs_end) as u64 - (&raw const xs_isr_stubs) as u64;
    len == 256 * STUB_SIZE as u64
}

/// Fills every gate (present, DPL 0, 64-bit interrupt gate: IF is cleared on entry) and
/// loads the IDT. Called once per boot, after [`gdt::init`].
pub fn init() {
    let mut gates = [EMPTY_GATE; 256];
    for (vector, gate) in (0u8..=255).zip(gates.iter_mut()) {
        let addr = stub_address(vector);
        *gate = Gate {
            offset_low: addr as u16,
            selector: gdt::KERNEL_CS,
            ist: ist_of(vector),
            type_attr: 0x8E,
            offset_mid: (addr >> 16) as u16,
            offset_high: (addr >> 32) as u32,
            reserved: 0,
        };
    }
    let idt: &'static Idt = IDT.call_once(|| Idt(gates));
    let ptr = DescriptorPointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: core::ptr::from_ref(idt) as u64,
    };
    // SAFETY: the IDT lives in a static for the rest of the boot and is never written again.
    // Every gate points at a stub of `xs_isr_stubs` (checked by `stubs_well_formed` in the
    // self-tests) with the kernel code selector and a valid IST (the TSS is loaded by
    // `gdt::init`).
    unsafe {
        asm!("lidt [{}]", in(reg) &raw const ptr, options(readonly, nostack, preserves_flags));
    }
}

const EXCEPTION_NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating point",
    "alignment check",
    "machine check",
    "SIMD floating point",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// Called by every stub with the saved registers.
extern "C" fn dispatch(frame: *mut InterruptFrame) {
    // SAFETY: the stub passes the address of the frame it just pushed on the IST stack; it
    // stays valid and is not written until this function returns.
    let frame = unsafe { &*frame };
    match frame.vector {
        v if v < 32 => exception(frame),
        v if v == u64::from(UPCALL_VECTOR) => {
            UPCALLS.fetch_add(1, Ordering::Relaxed);
            if let Some(handler) = UPCALL_HANDLER.try_read().and_then(|h| *h) {
                handler();
            }
        }
        _ => {
            SPURIOUS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A CPU exception: report and end the kernel.
fn exception(frame: &InterruptFrame) -> ! {
    let name = usize::try_from(frame.vector)
        .ok()
        .and_then(|v| EXCEPTION_NAMES.get(v))
        .copied()
        .unwrap_or("?");
    let cr2 = super::cpu::read_cr2();
    crate::kprintln!(
        "xsstub: FATAL exception {} ({}) error {:#x} at rip {:#018x} cr2 {:#018x}",
        frame.vector,
        name,
        frame.error_code,
        frame.rip,
        cr2
    );
    crate::kprintln!(
        "  rsp {:#018x} rflags {:#x} cs {:#x} rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x}",
        frame.rsp,
        frame.rflags,
        frame.cs,
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx
    );
    crate::kprintln!(
        "  rsi {:#x} rdi {:#x} rbp {:#x} r8 {:#x} r9 {:#x} r10 {:#x} r11 {:#x}",
        frame.rsi,
        frame.rdi,
        frame.rbp,
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11
    );
    let guard = super::layout::stack_guard();
    if frame.vector == 14 && (guard..guard + 4096).contains(&cr2) {
        crate::kprintln!("  stack overflow: the fault is in the boot stack's guard page");
    }
    super::exit::shutdown(true)
}
