//! Start of day: the ELF notes a PV64 domain builder reads, the hypercall
//! page it fills, and the first instructions the guest runs.
//!
//! The builder (Xen's or hv-core's) enters `_start` in ring 3 with:
//! - RSI = virtual address of `start_info`; the other general registers 0;
//! - RSP = the end of a one-page bootstrap stack placed after the initial
//!   page tables, inside the bootstrap region (it is not ours to keep);
//! - CS = FLAT_KERNEL_CS (0xe033), SS and the data segments FLAT_KERNEL_SS;
//! - RFLAGS.IF set, but every vCPU's `evtchn_upcall_mask` = 1: no event
//!   upcalls until the guest registers a callback and unmasks.
//!
//! `_start` clears `.bss` (the builder zero-fills it, but the SDK does not
//! rely on that), moves to the SDK's boot stack and calls [`sdk_start`].

use core::arch::global_asm;

use abi::ops::{
    HV_ELFNOTE_ABI_VERSION, XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_FEATURES, XEN_ELFNOTE_GUEST_OS,
    XEN_ELFNOTE_HYPERCALL_PAGE, XEN_ELFNOTE_LOADER, XEN_ELFNOTE_PADDR_OFFSET,
    XEN_ELFNOTE_VIRT_BASE, XEN_ELFNOTE_XEN_VERSION,
};
use abi::xen::StartInfo as RawStartInfo;

use crate::layout::{BOOT_STACK_SIZE, VIRT_BASE};

/// The stack the guest kernel runs on from `_start` onwards (its first
/// vCPU's kernel stack). 16-byte aligned, as the SysV ABI wants at calls.
#[repr(C, align(16))]
struct BootStack([u8; BOOT_STACK_SIZE]);

#[unsafe(no_mangle)]
static mut PV_BOOT_STACK: BootStack = BootStack([0; BOOT_STACK_SIZE]);

// Each note: namesz, descsz, type, name (NUL-terminated, padded to 4),
// descriptor (padded to 4). Numbers are 8 bytes, strings NUL-terminated,
// as Xen's libelf reads them.
global_asm!(
    r#"
    .macro pv_note_str namespace, type, text
        .pushsection .note.\namespace, "a", @note
        .balign 4
        .long .Lname_end\@ - .Lname\@
        .long .Ldesc_end\@ - .Ldesc\@
        .long \type
    .Lname\@:
        .asciz "\namespace"
    .Lname_end\@:
        .balign 4
    .Ldesc\@:
        .asciz "\text"
    .Ldesc_end\@:
        .balign 4
        .popsection
    .endm

    .macro pv_note_quad namespace, type, value
        .pushsection .note.\namespace, "a", @note
        .balign 4
        .long .Lname_end\@ - .Lname\@
        .long 8
        .long \type
    .Lname\@:
        .asciz "\namespace"
    .Lname_end\@:
        .balign 4
        .quad \value
        .popsection
    .endm

    .macro pv_note_long namespace, type, value
        .pushsection .note.\namespace, "a", @note
        .balign 4
        .long .Lname_end\@ - .Lname\@
        .long 4
        .long \type
    .Lname\@:
        .asciz "\namespace"
    .Lname_end\@:
        .balign 4
        .long \value
        .popsection
    .endm

    pv_note_str  Xen, {guest_os}, "pv-guest-sdk"
    pv_note_str  Xen, {xen_version}, "xen-3.0"
    pv_note_str  Xen, {loader}, "generic"
    pv_note_quad Xen, {virt_base}, {base}
    pv_note_quad Xen, {paddr_offset}, {base}
    pv_note_quad Xen, {entry}, _start
    pv_note_quad Xen, {hypercall_page_note}, hypercall_page
    pv_note_str  Xen, {features}, "dom0"
    pv_note_long HvCore, {hv_abi_note}, {hv_abi}

    .pushsection .text.hypercall_page, "ax", @progbits
    .balign 4096
    .globl hypercall_page
hypercall_page:
    .fill 4096, 1, 0xcc
    .popsection

    .pushsection .text.entry, "ax", @progbits
    .globl _start
_start:
    cld
    mov r12, rsi
    lea rdi, [rip + __bss_start]
    lea rcx, [rip + __bss_end]
    sub rcx, rdi
    shr rcx, 3
    xor eax, eax
    rep stosq
    lea rsp, [rip + PV_BOOT_STACK + {stack_size}]
    xor ebp, ebp
    mov rdi, r12
    call {sdk_start}
    ud2
    .popsection
    "#,
    guest_os = const XEN_ELFNOTE_GUEST_OS,
    xen_version = const XEN_ELFNOTE_XEN_VERSION,
    loader = const XEN_ELFNOTE_LOADER,
    virt_base = const XEN_ELFNOTE_VIRT_BASE,
    paddr_offset = const XEN_ELFNOTE_PADDR_OFFSET,
    entry = const XEN_ELFNOTE_ENTRY,
    hypercall_page_note = const XEN_ELFNOTE_HYPERCALL_PAGE,
    features = const XEN_ELFNOTE_FEATURES,
    hv_abi_note = const HV_ELFNOTE_ABI_VERSION,
    hv_abi = const abi::HV_ABI_VERSION.to_u32(),
    base = const VIRT_BASE,
    stack_size = const BOOT_STACK_SIZE,
    sdk_start = sym sdk_start,
);

unsafe extern "C" {
    /// The page the domain builder fills with one 32-byte stub per
    /// hypercall (`call hypercall_page + nr * 32`).
    pub static hypercall_page: [u8; 4096];
}

/// The first Rust code: hands the builder's `start_info` to the SDK's
/// start of day.
extern "C" fn sdk_start(start_info: *const RawStartInfo) -> ! {
    // SAFETY: the builder passes the address of a start_info page it
    // mapped in the bootstrap region, which the guest never unmaps; the
    // SDK reads it only through this shared reference.
    let raw: &'static RawStartInfo = unsafe { &*start_info };
    __pv_guest_main(crate::start::start_of_day(raw))
}

unsafe extern "Rust" {
    /// The guest's entry point, defined by [`crate::entry!`].
    safe fn __pv_guest_main(start: &'static crate::StartInfo<'static>) -> !;
}

/// The p2m list the builder placed in the bootstrap region: `nr_pages`
/// machine frame numbers, indexed by pseudo-physical frame.
pub fn builder_mfn_list(raw: &'static RawStartInfo) -> &'static [u64] {
    let len = raw.nr_pages as usize;
    // Guard against a zero or misaligned address, which a broken builder
    // could pass.
    assert!(
        raw.mfn_list != 0 && raw.mfn_list.is_multiple_of(8),
        "bad mfn_list"
    );
    // SAFETY: the builder maps `mfn_list` (page aligned, `nr_pages` u64s)
    // in the bootstrap region for the guest; the SDK never unmaps or
    // writes it, so a shared 'static slice is sound.
    unsafe { core::slice::from_raw_parts(raw.mfn_list as *const u64, len) }
}

unsafe extern "C" {
    static __image_end: u8;
}

/// The end of the loaded image (after `.bss`), from the linker script.
pub fn image_end() -> u64 {
    (&raw const __image_end) as u64
}
