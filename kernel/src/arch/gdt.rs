//! The 64-bit GDT and the TSS whose interrupt stack table gives every vector its own stack.
//!
//! Selectors: 0x08 code, 0x10 data (as the boot GDT of `boot/pvh.S`), 0x18 the TSS.
//! IST1 serves external and software interrupts (the Xen upcall), IST2 the exceptions and
//! IST3 NMI, double fault and machine check, so a fault inside a handler does not reuse the
//! stack it interrupted. Because the CPU always switches stacks, an interrupt never writes
//! into the red zone of the interrupted code (the prebuilt `core` uses one).

use core::arch::asm;

/// Kernel code segment selector.
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data segment selector.
pub const KERNEL_DS: u16 = 0x10;
/// TSS selector.
pub const TSS_SEL: u16 = 0x18;

/// IST index for interrupts (vectors 32-255).
pub const IST_INTERRUPT: u8 = 1;
/// IST index for exceptions (vectors 0-31 but NMI, #DF, #MC).
pub const IST_EXCEPTION: u8 = 2;
/// IST index for NMI, double fault and machine check.
pub const IST_CRITICAL: u8 = 3;

/// Size of each IST stack.
pub const IST_STACK_SIZE: usize = 32 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

/// The 64-bit task-state segment (only the stack pointers matter in long mode).
#[repr(C, packed(4))]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

const TSS_SIZE: usize = core::mem::size_of::<Tss>();
const _: () = assert!(TSS_SIZE == 104);

// The IST stacks, the TSS and the GDT stay `static mut`, reached only through raw pointers:
// they are memory the CPU itself writes (the stacks on every interrupt, the TSS
// descriptor's busy bit on `ltr`), so no Rust reference to them may exist.
static mut IST_STACKS: [Stack; 3] = [const { Stack([0; IST_STACK_SIZE]) }; 3];

static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    iomap_base: TSS_SIZE as u16,
};

static mut GDT: [u64; 5] = [
    0,
    0x00af_9b00_0000_ffff, // 0x08: 64-bit code, present, accessed
    0x00cf_9300_0000_ffff, // 0x10: flat data, present, accessed
    0,                     // 0x18: TSS (low), filled in by `init`
    0,                     // 0x20: TSS (high)
];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

/// The top (exclusive, 16-byte aligned) of IST stack `index` (1-3).
pub fn ist_stack_top(index: u8) -> u64 {
    let stacks = (&raw const IST_STACKS) as u64;
    stacks + u64::from(index.clamp(1, 3)) * IST_STACK_SIZE as u64
}

/// Builds the TSS descriptor, loads the GDT, reloads every segment register and the task
/// register. Called once per boot, before the IDT is loaded.
pub fn init() {
    let tss = (&raw mut TSS) as u64;
    let limit = (TSS_SIZE - 1) as u64;
    let low = (limit & 0xffff)
        | ((tss & 0xff_ffff) << 16)
        | (0x89 << 40) // present, 64-bit TSS (available)
        | (((limit >> 16) & 0xf) << 48)
        | (((tss >> 24) & 0xff) << 56);
    let high = tss >> 32;
    let ptr = DescriptorPointer {
        limit: (core::mem::size_of::<[u64; 5]>() - 1) as u16,
        base: (&raw const GDT) as u64,
    };
    // SAFETY: single-threaded boot code, interrupts disabled: nothing else accesses the TSS
    // or the GDT while they are written through raw pointers. The GDT's code and data
    // descriptors equal the boot GDT's, so reloading the segment registers (CS through a far
    // return) keeps the flat address space; the TSS descriptor points at a static TSS.
    unsafe {
        let ist = &raw mut TSS.ist;
        for i in 1u8..=3 {
            ist.cast::<u64>()
                .add(usize::from(i - 1))
                .write_unaligned(ist_stack_top(i));
        }
        let gdt = (&raw mut GDT).cast::<u64>();
        gdt.add(3).write(low);
        gdt.add(4).write(high);
        asm!(
            "lgdt [{ptr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:e}",
            "mov es, {data:e}",
            "mov ss, {data:e}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:e}",
            "mov gs, {tmp:e}",
            "ltr {tss:x}",
            ptr = in(reg) &raw const ptr,
            cs = in(reg) u64::from(KERNEL_CS),
            data = in(reg) u32::from(KERNEL_DS),
            tss = in(reg) TSS_SEL,
            tmp = out(reg) _,
            options(preserves_flags)
        );
    }
}
