/* Live-update trampoline: copy a new image over the old one and enter it as a PVH loader. */
/*
 * `arch::handover::jump` copies the bytes from xs_handover_tramp_start to
 * xs_handover_tramp_end into the hand-over area (below 1 MiB) and jumps to the copy in long
 * mode, interrupts disabled, with
 *     %rdi = destination (physical), %rsi = source (physical), %rcx = byte count,
 *     %edx = 32-bit PVH entry point, %r8d = physical address of the new hvm_start_info,
 *     %r9 = page tables identity-mapping the first GiB, in low memory (0: none),
 *     %r10 = bytes to zero after the copied ones (the image's .bss),
 *     %r12 = the image's 64-bit live-update entry (0: none; used only with page tables),
 * every address below 4 GiB. With page tables (and everything the copy touches in the first
 * GiB, which `jump` checked), the copy and the zeroing run in long mode eight bytes at a
 * time on those tables (the old image's own, in its .bss, are being overwritten); without,
 * in 32-bit mode with paging off, a byte at a time. The code is position independent (RIP-relative in 64-bit
 * mode, relative jumps only in 32-bit mode) and carries its own GDT, IDT pointer and stack,
 * so nothing of the old image is used once it runs.
 *
 * Steps: empty IDT (an NMI or exception from here on is a triple fault, not a jump into
 * the half-overwritten old image); own GDT (base fixed up at run time); far return into
 * 32-bit compatibility mode; flat data segments; paging off (this also clears EFER.LMA),
 * EFER.LME off, CR4 and CR3 zero, CR0 = PE (+ the read-only ET); TR = a 32-bit TSS with
 * base 0 and limit 0x67, as the PVH ABI asks; then the copy: `rep movsb` forwards with
 * paging off, so no page table (they live in the old image, which is being overwritten)
 * is needed. A forward byte copy is right even when destination and source overlap, as
 * long as the destination starts below the source (`check` guarantees dest <= src or no
 * overlap): every byte is read before the copy's write position reaches it. Finally
 * EFLAGS = 0x2, %ebx = start info, every other general register 0 (but %esp, on the
 * trampoline's own stack) and a `ret` into the entry point.
 *
 * This file goes through `global_asm!`, so it must not contain curly braces.
 */

    .set TRAMP_CS32, 0x08
    .set TRAMP_DS32, 0x10
    .set TRAMP_TSS32, 0x18
    .set TRAMP_MSR_EFER, 0xC0000080
    .set TRAMP_EFER_LME, 0x100
    /* CR0: PE | ET (ET is read-only 1 on every x86-64 CPU). */
    .set TRAMP_CR0, 0x11

    /* Never executed in place: only copied, so it lives with the read-only data. */
    .section .rodata.handover, "a", @progbits
    .p2align 4
    .globl xs_handover_tramp_start
xs_handover_tramp_start:
    .code64
    cli
    cld
    leaq tramp_stack_top(%rip), %rsp
    lidt tramp_idtr(%rip)
    leaq tramp_gdt(%rip), %rax
    movq %rax, tramp_gdtr_base(%rip)
    lgdt tramp_gdtr(%rip)
    /* Arguments that must survive into 32-bit mode, in registers it can see. */
    movl %edx, %ebp
    movl %r8d, %ebx
    /* The zeroing length for the 32-bit part, in the stamps' area (0xffd8). */
    movq %r10, 0xffd8
    testq %r9, %r9
    jz 1f
    /* Long-mode copy on the low tables: stamp, copy, zero, stamp; nothing left for later. */
    movq %r9, %cr3
    movq %rcx, %r11
    rdtsc
    movl %eax, 0xffc0
    movl %edx, 0xffc4
    /* Word by word, writing only the words that differ: the old image's code pages hold
       translated code under emulation (QEMU TCG), where each write to such a page is slow;
       most words of an update's image often equal the old one's. */
    movq %r11, %rcx
    shrq $3, %rcx
    jz 4f
3:  movq (%rsi), %rax
    cmpq (%rdi), %rax
    je 5f
    movq %rax, (%rdi)
5:  addq $8, %rsi
    addq $8, %rdi
    decq %rcx
    jnz 3b
4:  movq %r11, %rcx
    andq $7, %rcx
    rep movsb
    xorl %eax, %eax
    movq %r10, %rcx
    shrq $3, %rcx
    rep stosq
    movq %r10, %rcx
    andq $7, %rcx
    rep stosb
    rdtsc
    movl %eax, 0xffc8
    movl %edx, 0xffcc
    xorl %ecx, %ecx
    movq %rcx, 0xffd8
    /* A 64-bit entry (%r12, 0: none): enter the image in long mode, on these tables. */
    testq %r12, %r12
    jz 1f
    movq %r12, %rax
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %edi, %edi
    xorl %ebp, %ebp
    pushq $2
    popfq
    jmp *%rax
1:
    leaq tramp_compat(%rip), %rax
    pushq $TRAMP_CS32
    pushq %rax
    lretq

    .code32
tramp_compat:
    movl $TRAMP_DS32, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    /* Identity mapped (below 1 MiB), so the next fetch is the next instruction. */
    movl %cr0, %eax
    andl $0x7fffffff, %eax
    movl %eax, %cr0
    /* Legacy 32-bit protected mode now (EFER.LMA = 0); clear LME (rdmsr clobbers ecx/edx). */
    pushl %ecx
    movl $TRAMP_MSR_EFER, %ecx
    rdmsr
    andl $~TRAMP_EFER_LME, %eax
    wrmsr
    popl %ecx
    xorl %eax, %eax
    movl %eax, %cr4
    movl %eax, %cr3
    movl $TRAMP_CR0, %eax
    movl %eax, %cr0
    movl $TRAMP_TSS32, %eax
    ltr %ax
    /* Nothing copied yet (no long-mode copy): TSC stamps around the copy, in the last bytes
       of the hand-over area (STAMPS_AT = 0xffc0: copy start, 0xffc8: copy end; the new
       image's entry writes 0xffd0), then the copy, %esi -> %edi, %ecx bytes, forwards
       (DF = 0), and the zeroing of the 0xffd8 bytes after it. */
    testl %ecx, %ecx
    jz 2f
    pushl %ecx
    rdtsc
    movl %eax, 0xffc0
    movl %edx, 0xffc4
    popl %ecx
    rep movsb
    movl 0xffd8, %ecx
    xorl %eax, %eax
    rep stosb
    rdtsc
    movl %eax, 0xffc8
    movl %edx, 0xffcc
2:
    pushl $2
    popfl
    pushl %ebp
    xorl %eax, %eax
    xorl %ecx, %ecx
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %edi, %edi
    xorl %ebp, %ebp
    ret

    .p2align 3
tramp_gdt:
    .quad 0
    .quad 0x00cf9b000000ffff     /* 0x08: 32-bit flat code, base 0, limit 4 GiB */
    .quad 0x00cf93000000ffff     /* 0x10: 32-bit flat data, base 0, limit 4 GiB */
    .quad 0x0000890000000067     /* 0x18: 32-bit TSS (available), base 0, limit 0x67 */
tramp_gdt_end:
    .p2align 3
    .word 0, 0, 0
tramp_gdtr:
    .word tramp_gdt_end - tramp_gdt - 1
tramp_gdtr_base:
    .quad 0
    .p2align 3
    .word 0, 0, 0
tramp_idtr:
    .word 0
    .quad 0
    .p2align 4
tramp_stack:
    .skip 256
tramp_stack_top:
    .globl xs_handover_tramp_end
xs_handover_tramp_end:

    /* Back to 64-bit mode for whatever the assembler sees next. */
    .code64
    .text
