//! The multiboot2 header and the 32-bit entry point.
//!
//! GRUB (BIOS or UEFI) enters `start32` in 32-bit protected mode, paging off,
//! with the multiboot2 magic in EAX and the boot information's physical
//! address in EBX. This code checks for long mode, builds boot page tables
//! that map the first 4 GiB three times (identity, so this code keeps running
//! when paging turns on; at the image offset, where the rest of hv-core is
//! linked; at the direct-map base, so boot information can be read there),
//! enables long mode and jumps to `hv_main` in the hypervisor hole.
//! `paging::init` replaces these tables before anything else runs.

core::arch::global_asm!(
    r#"
    .set MB2_MAGIC, 0xe85250d6
    .set MB2_ARCH_I386, 0

    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))

    /* Information request (optional): command line, boot loader name,
       modules, memory map, ACPI old and new RSDP. */
    .balign 8
mb2_info_request:
    .short 1, 1
    .long mb2_info_request_end - mb2_info_request
    .long 1, 2, 3, 6, 14, 15
mb2_info_request_end:

    /* Entry address: where GRUB jumps, in 32-bit protected mode. */
    .balign 8
    .short 3, 0
    .long 12
    .long start32

    /* Page-align modules: they become guest memory later. */
    .balign 8
    .short 6, 0
    .long 8

    .balign 8
    .short 0, 0
    .long 8
mb2_header_end:

    .section .boot.text, "ax"
    .code32
    .global start32
start32:
    cli
    cld
    mov $boot_stack_top, %esp
    mov %eax, %edi                  /* multiboot2 magic, checked in Rust */
    mov %ebx, %esi                  /* boot information, physical */

    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    test $(1 << 29), %edx
    jz no_long_mode
    mov %edx, %ebp                  /* remember NX support (bit 20) */

    /* The boot page tables are NOBITS (no bytes in the image): zero
       them, link them, then 2048 2-MiB pages map physical 0..4 GiB. */
    push %edi                       /* the magic (the stack is not zeroed) */
    mov $boot_tables, %edi
    mov $((boot_tables_end - boot_tables) / 4), %ecx
    xor %eax, %eax
    rep stosl
    pop %edi
    movl $(boot_pdpt_low + 3), boot_pml4            /* slot 0: identity */
    movl $(boot_pdpt_image + 3), boot_pml4 + 261 * 8 /* image offset */
    movl $(boot_pdpt_low + 3), boot_pml4 + 262 * 8  /* direct-map base */
    movl $(boot_pd + 0x0003), boot_pdpt_low
    movl $(boot_pd + 0x1003), boot_pdpt_low + 8
    movl $(boot_pd + 0x2003), boot_pdpt_low + 16
    movl $(boot_pd + 0x3003), boot_pdpt_low + 24
    movl $(boot_pd + 3), boot_pdpt_image + 320 * 8  /* 0xffff82d000000000 */
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax                  /* present, writable, 2 MiB */
    mov %eax, boot_pd(,%ecx,8)
    mov %ecx, %eax
    shr $11, %eax
    mov %eax, boot_pd+4(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jne 1b

    mov %cr4, %eax
    or $(1 << 5), %eax              /* PAE */
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3

    mov $0xc0000080, %ecx           /* EFER */
    rdmsr
    or $(1 << 8), %eax              /* LME */
    test $(1 << 20), %ebp
    jz 2f
    or $(1 << 11), %eax             /* NXE */
2:  wrmsr

    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | 1), %eax   /* PG, WP, PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $start64

no_long_mode:
    mov $no_long_mode_msg, %esi
3:  lodsb
    test %al, %al
    jz 5f
    mov %al, %bl
    mov $0x3fd, %dx                 /* COM1 line status */
4:  in %dx, %al
    test $0x20, %al
    jz 4b
    mov $0x3f8, %dx
    mov %bl, %al
    out %al, %dx
    jmp 3b
5:  hlt
    jmp 5b

    .code64
start64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    movabs $bsp_stack_top, %rsp
    mov %edi, %edi                  /* zero-extend: rdi = magic */
    mov %esi, %esi                  /* rsi = boot information, physical */
    xor %ebp, %ebp
    movabs $hv_main, %rax
    call *%rax
    ud2

    .section .boot.data, "aw"
no_long_mode_msg:
    .asciz "hv-core: this CPU has no 64-bit long mode; stopping.\r\n"

    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code, ring 0 */
    .quad 0x00cf92000000ffff        /* 0x10: data, ring 0 */
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    /* Zero until start32 fills them: no bytes in the image. */
    .section .boot.bss, "aw", @nobits
    .balign 4096
boot_tables:
boot_pml4:
    .skip 4096
boot_pdpt_low:
    .skip 4096
boot_pdpt_image:
    .skip 4096
boot_pd:
    .skip 4 * 4096
boot_tables_end:
boot_stack:
    .skip 1024
boot_stack_top:

    /* Stacks, each below a guard page that paging::init leaves unmapped. */
    .section .bss.stacks, "aw", @nobits
    .balign 4096
    .global bsp_stack_guard, bsp_stack_top
bsp_stack_guard:
    .skip 4096
    .skip 131072
bsp_stack_top:
    .global ist_nmi_guard, ist_nmi_top
ist_nmi_guard:
    .skip 4096
    .skip 16384
ist_nmi_top:
    .global ist_df_guard, ist_df_top
ist_df_guard:
    .skip 4096
    .skip 16384
ist_df_top:
    .global ist_mc_guard, ist_mc_top
ist_mc_guard:
    .skip 4096
    .skip 16384
ist_mc_top:
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static bsp_stack_guard: u8;
    static ist_nmi_guard: u8;
    static ist_nmi_top: u8;
    static ist_df_guard: u8;
    static ist_df_top: u8;
    static ist_mc_guard: u8;
    static ist_mc_top: u8;
}

/// Virtual addresses of the guard pages below the boot CPU's first stacks
/// (every CPU's own stacks are in its per-CPU area, `percpu`).
pub fn guard_pages() -> [u64; 4] {
    [
        core::ptr::addr_of!(bsp_stack_guard) as u64,
        core::ptr::addr_of!(ist_nmi_guard) as u64,
        core::ptr::addr_of!(ist_df_guard) as u64,
        core::ptr::addr_of!(ist_mc_guard) as u64,
    ]
}

/// Tops of the interrupt stacks: NMI, double fault, machine check.
pub fn ist_tops() -> [u64; 3] {
    [
        core::ptr::addr_of!(ist_nmi_top) as u64,
        core::ptr::addr_of!(ist_df_top) as u64,
        core::ptr::addr_of!(ist_mc_top) as u64,
    ]
}
