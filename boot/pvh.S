/* PVH entry of the xenstore stub domain (placeholder until the kernel issue). */
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
    /* %ebx holds the hvm_start_info address; print a banner on port 0xE9. */
    cld
    movl $pvh_banner, %esi
1:  lodsb
    testb %al, %al
    jz 2f
    outb %al, $0xe9
    jmp 1b
2:  /* isa-debug-exit: QEMU exits with (value << 1) | 1. */
    movb $0x10, %al
    outb %al, $0xf4
3:  cli
    hlt
    jmp 3b

    .section .rodata
pvh_banner:
    .asciz "xsstub: placeholder image, the kernel is built by a later issue\n"
    .code64
