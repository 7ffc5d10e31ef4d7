/* PVH entry of the xenstore stub domain: 32-bit protected mode to long mode, then Rust. */
/*
 * Entered by Xen's PVH loader, QEMU's `-kernel` or a live-update trampoline in 32-bit
 * protected mode with paging off, a flat %cs and %ebx = physical address of the
 * `struct hvm_start_info`. Nothing here relies on earlier state: .bss is zeroed first, the
 * page tables, GDT pointer and stack are rebuilt on every entry and CR0/CR4 are written
 * whole. A live update that copied the image in long mode enters at pvh_start64_lu instead
 * (below), which rebuilds the same tables, GDT and stack. This file goes through
 * `global_asm!`, so it must not contain curly braces.
 */

    .set BOOT_CS, 0x08
    .set BOOT_DS, 0x10
    .set BOOT_STACK_SIZE, 0x10000
    /* CR4: PAE | OSFXSR | OSXMMEXCPT. */
    .set BOOT_CR4, 0x620
    /* CR0: PE | MP | ET | NE | WP | PG (EM and TS clear: SSE usable). */
    .set BOOT_CR0, 0x80010033
    .set MSR_EFER, 0xC0000080
    .set EFER_LME, 0x100
    /* 2 MiB page directory entry flags: present | writable | page size. */
    .set PDE_2M, 0x83
    .set PTE_TABLE, 0x03

/*
 * The boot page tables, built by both entries (in 32-bit mode with paging off, or in long
 * mode on a trampoline's identity map: the same instructions, every address below 4 GiB).
 * Clobbers %eax, %ecx, %edx, %edi.
 */
    .macro BOOT_TABLES
    /* PML4[0] -> PDPT; PDPT[0..4] -> the four page directories. */
    movl $boot_pdpt, %eax
    orl $PTE_TABLE, %eax
    movl %eax, boot_pml4
    movl $boot_pd, %eax
    orl $PTE_TABLE, %eax
    movl $boot_pdpt, %edi
    movl $4, %ecx
1:  movl %eax, (%edi)
    addl $0x1000, %eax
    addl $8, %edi
    decl %ecx
    jnz 1b

    /* 2048 entries of 2 MiB: identity map of 0..4 GiB (high halves stay zero). */
    movl $boot_pd, %edi
    movl $PDE_2M, %eax
    movl $2048, %ecx
2:  movl %eax, (%edi)
    addl $0x200000, %eax
    addl $8, %edi
    decl %ecx
    jnz 2b

    /*
     * The 2 MiB region holding the boot stack's guard page is mapped with 4 KiB pages
     * instead, leaving the guard page out: a stack overflow faults instead of silently
     * overwriting what lies below the stack.
     */
    movl $boot_stack_guard, %edx
    shrl $21, %edx                 /* page directory index of the region (0..2047) */
    movl %edx, %eax
    shll $21, %eax
    orl $PTE_TABLE, %eax           /* 4 KiB page: present | writable */
    movl $boot_pt, %edi
    movl $512, %ecx
4:  movl %eax, (%edi)
    addl $0x1000, %eax
    addl $8, %edi
    decl %ecx
    jnz 4b
    movl $boot_stack_guard, %eax
    shrl $12, %eax
    andl $511, %eax
    movl $0, boot_pt(,%eax,8)
    movl $boot_pt, %eax
    orl $PTE_TABLE, %eax
    movl %eax, boot_pd(,%edx,8)
    .endm

/* Xen's PVH loader (and QEMU's -kernel) finds the 32-bit entry in ELF note 18. */
    .section .note.Xen, "a", @note
    .p2align 2
    .long 4                      /* name size: "Xen\0" */
    .long 4                      /* descriptor size */
    .long 18                     /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start32

    .section .text.boot, "ax", @progbits
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    cld
    /* %ebx (the start info address) is preserved until the call into Rust. */

    /* The entry's TSC, for a live update's timeline: the last bytes of the hand-over area
       below 1 MiB (arch::handover::STAMPS_AT + 16), which a fresh boot never reads. */
    rdtsc
    movl %eax, 0xffd0
    movl %edx, 0xffd4
    movl $0, 0xffd8
    movl $0, 0xffdc

    /* Zero .bss before anything is built there (page tables, stack). */
    /* Four bytes at a time (linker.ld aligns both ends to 16). */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    BOOT_TABLES

    lgdt boot_gdt_ptr

    movl $BOOT_CR4, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $MSR_EFER, %ecx
    rdmsr
    orl $EFER_LME, %eax
    wrmsr
    movl $BOOT_CR0, %eax
    movl %eax, %cr0

    ljmpl $BOOT_CS, $pvh_start64

    .code64
/*
 * The 64-bit live-update entry (declared in the XSSTUB note, `xsstate::compat::KIND_ENTRY64`):
 * a live-update trampoline that copied us in long mode comes here instead of dropping to
 * 32-bit mode for pvh_start32, sparing the mode switches (each CR0, CR4 and EFER write is a
 * VM exit, expensive inside the update's downtime). Entered in long mode, interrupts off, on
 * the trampoline's page tables identity-mapping the first GiB (where this image lies), CR0
 * and CR4 as pvh_start32 sets them (they are neither read nor written here: each access is
 * a VM exit too), .bss already zeroed, %rbx = physical address of the start info. Builds
 * the same page tables as pvh_start32, switches to them and to our GDT, and joins it.
 */
    .globl pvh_start64_lu
pvh_start64_lu:
    cli
    cld
    rdtsc
    movl %eax, 0xffd0
    movl %edx, 0xffd4
    movq $1, 0xffd8

    BOOT_TABLES

    movl $boot_pml4, %eax
    movq %rax, %cr3
    lgdt boot_gdt_ptr64(%rip)
    /* Our code segment from our GDT, then the common path. */
    pushq $BOOT_CS
    leaq pvh_start64(%rip), %rax
    pushq %rax
    lretq

pvh_start64:
    movl $BOOT_DS, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    xorl %eax, %eax
    movl %eax, %fs
    movl %eax, %gs

    leaq boot_stack_top(%rip), %rsp
    xorl %ebp, %ebp

    /* A clean x87/SSE state, whatever ran before. */
    fninit
    ldmxcsr boot_mxcsr(%rip)

    /* xs_rust_entry(start_info_paddr): the 32-bit move zero-extends into %rdi. */
    movl %ebx, %edi
    call xs_rust_entry
3:  cli
    hlt
    jmp 3b

    .section .rodata.boot, "a", @progbits
    .p2align 4
boot_gdt:
    .quad 0
    .quad 0x00af9b000000ffff     /* 0x08: 64-bit code, accessed */
    .quad 0x00cf93000000ffff     /* 0x10: flat data, accessed */
boot_gdt_end:
    .p2align 2
    .word 0
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt
    .p2align 3
    .word 0, 0, 0
boot_gdt_ptr64:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt
boot_mxcsr:
    .long 0x1f80

    .section .bss.boot, "aw", @nobits
    .p2align 12
    .globl boot_pml4
boot_pml4:
    .skip 0x1000
    .globl boot_pdpt
boot_pdpt:
    .skip 0x1000
    .globl boot_pd
boot_pd:
    .skip 0x4000
    .globl boot_pt
boot_pt:
    .skip 0x1000
    /* Not mapped (see above); the stack grows down towards it. */
    .globl boot_stack_guard
boot_stack_guard:
    .skip 0x1000
    .globl boot_stack
boot_stack:
    .skip BOOT_STACK_SIZE
    .globl boot_stack_top
boot_stack_top:

    .text
