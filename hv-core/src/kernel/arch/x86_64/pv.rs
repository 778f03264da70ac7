//! The x86-64 side of running PV guests in ring 3: the `syscall` entry,
//! the first entry into a guest, guest page-table roots and segment bases,
//! and the one path through which hv-core reads and writes guest memory.
//!
//! Every entry from ring 3 (exception, interrupt or `syscall`) lands on the
//! running CPU's guest-entry stack with the same [`TrapFrame`] layout; leaving is always
//! `iretq` from that frame (see `entry.rs`). The syscall entry builds the
//! frame the CPU would have pushed for an interrupt, so the rest of hv-core
//! sees one kind of guest frame.
//!
//! Guest memory is reached only through [`copy_from_guest`] and
//! [`copy_to_guest`]: the range is checked against the hypervisor hole, the
//! copy runs with SMAP lifted only for that one `rep movsb`, and a fault on
//! that instruction is fixed up into an error instead of a crash.

use core::sync::atomic::{AtomicBool, Ordering};

use abi::xen::LOWER_HALF_END;
use hv_core::frame_table::{Budget, DomId, FrameTable, FrameType, Mfn, PageError};
use hv_core::layout::HOLE_END;
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, Msr, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::{PhysAddr, VirtAddr};

use super::cpu::{GUEST_CS32, GUEST_CS64, GUEST_DS, HV_CS, HV_DS};
use super::entry::TrapFrame;
use super::paging;

core::arch::global_asm!(
    r#"
    .section .text.pv_entry, "ax"
    .global syscall_entry
syscall_entry:
    /* RCX = guest RIP, R11 = guest RFLAGS, RSP = guest RSP; SFMASK has
       cleared IF, DF, TF, AC and NT. GS becomes this CPU's block (see
       `percpu`): its scratch slot holds the guest's RSP while the stack
       changes. */
    swapgs
    mov %rsp, %gs:{scratch}
    mov %gs:{rsp0}, %rsp
    pushq ${ds}                     /* ss */
    pushq %gs:{scratch}             /* rsp */
    push %r11                       /* rflags */
    pushq ${cs}                     /* cs */
    push %rcx                       /* rip */
    pushq $0                        /* error code */
    pushq ${vector}                 /* vector: syscall */
    jmp syscall_common

    /* IA32_CSTAR: `syscall` from the 32-bit ring-3 code segment. The
       same frame with the 32-bit CS and its own vector; it is never a
       hypercall (see `guest::syscall32`). */
    .global syscall32_entry
syscall32_entry:
    swapgs
    mov %rsp, %gs:{scratch}
    mov %gs:{rsp0}, %rsp
    pushq ${ds}                     /* ss */
    pushq %gs:{scratch}             /* rsp */
    push %r11                       /* rflags */
    pushq ${cs32}                   /* cs */
    push %rcx                       /* rip */
    pushq $0                        /* error code */
    pushq ${vector32}               /* vector: compat syscall */
    jmp syscall_common

    /* IA32_SYSENTER_EIP: RSP is IA32_SYSENTER_ESP (this CPU's
       guest-entry stack top) and IF is clear, but TF and AC may still be
       set (see `traps::dispatch` for TF; trap_common clears AC). The CPU
       keeps neither the guest's RIP nor its RSP: as on Xen, the frame
       says 0 and a null ring-3 CS, whose RPL 3 makes trap_common swap
       GS. */
    .global sysenter_entry
sysenter_entry:
    pushq ${ds}                     /* ss */
    pushq $0                        /* rsp */
    pushfq                          /* rflags */
    pushq $3                        /* cs: null, RPL 3 */
    pushq $0                        /* rip */
    pushq $0                        /* error code */
    pushq ${vector_sysenter}        /* vector: sysenter */
    jmp trap_common

    /* enter_guest_frame(frame): iretq into the guest from a frame at the
       top of the guest-entry stack. */
    .global enter_guest_frame
enter_guest_frame:
    mov %rdi, %rsp
    jmp trap_exit

    /* guest_copy(dst, src, len) -> bytes not copied: whole qwords, then
       the tail bytes (a rep movs goes round once per element, so bytes
       only where they must be; under emulation each round costs about
       as much as a whole short copy). A fault on either copy resumes
       after it (the exception table entries), with RCX the bytes left:
       for the qword copy, the qwords left times 8 plus the tail. */
    .global guest_copy_smap
guest_copy_smap:
    mov %rdx, %rcx
    shr $3, %rcx
    stac
1:  rep movsq
    mov %rdx, %rcx
    and $7, %rcx
2:  rep movsb
3:  clac
    mov %rcx, %rax
    ret
4:  shl $3, %rcx
    and $7, %rdx
    add %rdx, %rcx
    jmp 3b
    .pushsection .ex_table, "a"
    .balign 8
    .quad 1b, 4b
    .quad 2b, 3b
    .popsection

    .global guest_copy_plain
guest_copy_plain:
    mov %rdx, %rcx
    shr $3, %rcx
1:  rep movsq
    mov %rdx, %rcx
    and $7, %rcx
2:  rep movsb
3:  mov %rcx, %rax
    ret
4:  shl $3, %rcx
    and $7, %rdx
    add %rdx, %rcx
    jmp 3b
    .pushsection .ex_table, "a"
    .balign 8
    .quad 1b, 4b
    .quad 2b, 3b
    .popsection

    "#,
    ds = const GUEST_DS,
    cs = const GUEST_CS64,
    vector = const super::entry::SYSCALL_VECTOR,
    cs32 = const super::cpu::GUEST_CS32,
    vector32 = const super::entry::SYSCALL32_VECTOR,
    vector_sysenter = const super::entry::SYSENTER_VECTOR,
    scratch = const super::percpu::GS_SCRATCH,
    rsp0 = const super::percpu::GS_ENTRY_RSP0,
    options(att_syntax)
);

unsafe extern "C" {
    fn syscall_entry();
    fn syscall32_entry();
    fn sysenter_entry();
    fn enter_guest_frame(frame: *const TrapFrame) -> !;
    fn guest_copy_smap(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn guest_copy_plain(dst: *mut u8, src: *const u8, len: usize) -> usize;
}

/// SMAP is on (the entry path tests it before its `clac`).
pub(super) static SMAP: AtomicBool = AtomicBool::new(false);

const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSENTER_CS: u32 = 0x174;
const MSR_SYSENTER_ESP: u32 = 0x175;
const MSR_SYSENTER_EIP: u32 = 0x176;

/// Prepares the CPU for guests: `syscall` enters at [`syscall_entry`] with
/// interrupts off and hv-core's selectors, and `sysret` would use Xen's
/// flat ring-3 selectors.
///
/// Every way into ring 0 a guest can take must land on an entry stub:
/// besides LSTAR, `syscall` from a 32-bit code segment uses CSTAR (AMD;
/// Intel raises #UD) and `sysenter` the SYSENTER MSRs. Left as the
/// firmware set them, either could enter ring 0 at a guest-chosen or null
/// address. `sysenter` exists in long mode on Intel CPUs only: there it
/// enters [`sysenter_entry`]; elsewhere (AMD raises #UD, but QEMU's TCG
/// runs it) SYSENTER_CS is null, so the instruction faults with #GP(0)
/// before it changes privilege, as under Xen.
pub fn init() {
    // The CPU's word, not a caller's: `stac` without SMAP raises #UD.
    let features = super::cpu::features();
    let smap = features.smap;
    // Both guest copies are in the exception table, or a bad guest
    // pointer would stop the machine.
    assert!(
        super::extable::len() >= 2,
        "the exception table lost its guest-copy entries"
    );
    SMAP.store(smap, Ordering::Relaxed);
    init_cpu();
}

/// Points this CPU's `syscall` and `sysenter` MSRs at the entry stubs,
/// with this CPU's guest-entry stack (see [`init`]). Every CPU runs it
/// once its per-CPU block is in GS.
pub fn init_cpu() {
    let intel = &super::cpu::features().vendor == b"GenuineIntel";
    let entry_top = super::percpu::current().guest_entry_top();
    // SAFETY: these MSRs configure `syscall`; the entry point is the
    // assembly above, which switches to this CPU's guest-entry stack
    // (found through GS, which `percpu::activate` set) before touching
    // memory, and the selectors index the GDT `cpu` loaded.
    unsafe {
        Star::write_raw(GUEST_CS32_SYSRET_BASE, HV_CS);
        LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
        SFMask::write(
            RFlags::INTERRUPT_FLAG
                | RFlags::TRAP_FLAG
                | RFlags::DIRECTION_FLAG
                | RFlags::ALIGNMENT_CHECK
                | RFlags::NESTED_TASK,
        );
        Msr::new(MSR_CSTAR).write(syscall32_entry as *const () as u64);
        if intel {
            Msr::new(MSR_SYSENTER_CS).write(HV_CS as u64);
            Msr::new(MSR_SYSENTER_ESP).write(entry_top);
            Msr::new(MSR_SYSENTER_EIP).write(sysenter_entry as *const () as u64);
        } else {
            Msr::new(MSR_SYSENTER_CS).write(0);
            Msr::new(MSR_SYSENTER_ESP).write(0);
            Msr::new(MSR_SYSENTER_EIP).write(0);
        }
        Efer::update(|e| e.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
    }
    debug_assert_eq!(HV_DS, HV_CS + 8);
}

/// STAR[63:48]: `sysret` loads CS from +16 and SS from +8 of this, which
/// makes them 0xe033 and 0xe02b, Xen's flat ring-3 selectors.
const GUEST_CS32_SYSRET_BASE: u16 = super::cpu::GUEST_CS32;

/// Enters a guest for the first time (or after a context switch) by
/// `iretq` from `frame`. Never returns: the next entry from the guest
/// starts afresh at the top of the guest-entry stack.
///
/// The frame must be one a guest may be entered with: a ring-3 code
/// segment of the GDT (64- or 32-bit) and its data segment, canonical RIP
/// and RSP, IOPL 0. Anything else stops hv-core here: an `iretq` to ring 0,
/// with port I/O, or that faults inside hv-core is not an entry to a guest.
pub fn enter_guest(frame: &TrapFrame) -> ! {
    assert!(
        (frame.cs == GUEST_CS64 as u64 || frame.cs == GUEST_CS32 as u64)
            && frame.ss == GUEST_DS as u64
            && is_canonical(frame.rip)
            && is_canonical(frame.rsp)
            && frame.rflags & RFLAGS_IOPL == 0,
        "not a guest frame: CS {:#x} SS {:#x} RIP {:#x} RSP {:#x} RFLAGS {:#x}",
        frame.cs,
        frame.ss,
        frame.rip,
        frame.rsp,
        frame.rflags
    );
    let top = super::percpu::current().guest_entry_top();
    let at = (top - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame;
    // SAFETY: this CPU's guest-entry stack is its own, unused while
    // hv-core runs on another stack (this function is only called from a
    // start stack or from a frame being abandoned); `at` is inside it and
    // aligned. The frame's selectors are the GDT's ring-3 ones and its RIP
    // and RSP canonical (checked above), so iretq cannot fault and lands
    // in ring 3 without I/O privilege.
    unsafe {
        at.write(*frame);
        enter_guest_frame(at)
    }
}

const RFLAGS_IOPL: u64 = 3 << 12;

/// Whether `rip` is the first instruction of the `sysenter` entry: a
/// single-step trap there comes from a guest that ran `sysenter` with TF
/// set (the instruction does not clear it).
pub fn is_sysenter_entry(rip: u64) -> bool {
    rip == sysenter_entry as *const () as u64
}

/// Where a fault at `rip` resumes, if `rip` is an instruction allowed to
/// fault on a guest address (see `extable`).
pub fn fixup(rip: u64) -> Option<u64> {
    super::extable::fixup(rip)
}

/// A guest address range hv-core refuses to touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAddress(pub u64);

/// Whether `[va, va + len)` lies wholly in the guest's part of the address
/// space: the canonical lower half, or the upper half above the hypervisor
/// hole.
#[inline(always)]
pub fn guest_range_ok(va: u64, len: usize) -> bool {
    let Some(end) = va.checked_add(len as u64) else {
        return false;
    };
    end <= LOWER_HALF_END || va >= HOLE_END
}

#[inline(always)]
fn copy(dst: *mut u8, src: *const u8, len: usize) -> usize {
    if SMAP.load(Ordering::Relaxed) {
        // SAFETY: the caller checked the guest side of the range and the
        // hypervisor side is a live buffer of `len` bytes; a fault on the
        // copy instruction is fixed up (see `fixup`) and reported as the
        // number of bytes left.
        unsafe { guest_copy_smap(dst, src, len) }
    } else {
        // SAFETY: as above, without SMAP to lift.
        unsafe { guest_copy_plain(dst, src, len) }
    }
}

/// Copies guest memory at `va` (in the current address space) into `dst`.
#[inline(always)]
pub fn copy_from_guest(dst: &mut [u8], va: u64) -> Result<(), BadAddress> {
    if !guest_range_ok(va, dst.len()) {
        return Err(BadAddress(va));
    }
    match copy(dst.as_mut_ptr(), va as *const u8, dst.len()) {
        0 => Ok(()),
        left => Err(BadAddress(va + (dst.len() - left) as u64)),
    }
}

/// Copies `src` to guest memory at `va` (in the current address space).
#[inline(always)]
pub fn copy_to_guest(va: u64, src: &[u8]) -> Result<(), BadAddress> {
    if !guest_range_ok(va, src.len()) {
        return Err(BadAddress(va));
    }
    match copy(va as *mut u8, src.as_ptr(), src.len()) {
        0 => Ok(()),
        left => Err(BadAddress(va + (src.len() - left) as u64)),
    }
}

/// A page-table root a vCPU holds: a validated L4 of one domain and the
/// one L4 type reference this handle owns. Only [`Root::take`] makes one
/// (it takes the reference, under the frame-table lock) and only
/// [`Root::into_reference`] ends one (its caller then puts the
/// reference); a `Root` is neither `Clone` nor `Copy`. While it exists its
/// frame keeps its L4 type and its owner (the frame table changes neither
/// while a type reference is held), so loading it needs no further check.
#[derive(Debug)]
pub struct Root(Mfn);

impl Root {
    /// Takes an L4 type reference on `mfn` for `dom` (validating the tree
    /// if it is not yet an L4, within `budget`) and holds it.
    pub fn take(
        ft: &mut FrameTable<'_>,
        mfn: Mfn,
        dom: DomId,
        budget: &mut Budget,
    ) -> Result<Self, PageError> {
        ft.get_page_type_within(&mut MachinePageTables, mfn, dom, FrameType::L4, budget)?;
        Ok(Self(mfn))
    }

    pub fn mfn(&self) -> Mfn {
        self.0
    }

    /// Ends the handle: the caller owns its L4 type reference now and must
    /// put it (after which the frame may stop being an L4).
    pub fn into_reference(self) -> Mfn {
        self.0
    }
}

/// Switches to the page tables `root` holds. Global (hypervisor) mappings
/// stay; every guest mapping is flushed.
pub fn load_page_table_root(root: &Root) {
    let frame =
        x86_64::structures::paging::PhysFrame::containing_address(PhysAddr::new(root.0 << 12));
    // SAFETY: a `Root` holds an L4 type reference on a fully validated L4
    // (see `Root`): its slots 256-271 hold the hypervisor's entries
    // (validation writes them and no guest update may touch them), so
    // hv-core stays mapped, and every guest entry under it has been
    // validated.
    unsafe {
        x86_64::registers::control::Cr3::write(frame, x86_64::registers::control::Cr3Flags::empty())
    };
}

/// Switches to hv-core's own page tables (no guest mapping at all), for a
/// CPU that runs no vCPU: a domain's tables may be freed while it halts.
pub fn load_hypervisor_root() {
    let frame =
        x86_64::structures::paging::PhysFrame::containing_address(PhysAddr::new(paging::root()));
    // SAFETY: hv-core's own L4 maps all of hv-core (its slots 256-271 are
    // the ones every guest L4 copies) and nothing else that could change.
    unsafe {
        x86_64::registers::control::Cr3::write(frame, x86_64::registers::control::Cr3Flags::empty())
    };
}

/// Flushes the guest's (non-global) TLB entries.
pub fn flush_tlb_local() {
    // Reloading CR3 drops every non-global entry; hv-core's are global.
    x86_64::instructions::tlb::flush_all();
}

/// Flushes one page's TLB entry.
pub fn invlpg(va: u64) {
    if let Ok(va) = VirtAddr::try_new(va) {
        x86_64::instructions::tlb::flush(va);
    }
}

/// A vCPU's x87/MMX (and, once enabled, SSE) registers, in the FXSAVE
/// image. Every vCPU has its own: a domain must neither see another's
/// floating-point registers nor have its own changed under it.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub struct FpuState([u8; 512]);

impl FpuState {
    /// The state after `fninit` (control word 0x37f) with MXCSR's reset
    /// value 0x1f80: what a new vCPU starts with.
    pub const INIT: Self = {
        let mut image = [0u8; 512];
        image[0] = 0x7f;
        image[1] = 0x03;
        image[24] = 0x80;
        image[25] = 0x1f;
        Self(image)
    };

    /// All zeros: a vacant domain slot's (it sits in `.bss`); never loaded.
    pub const ZERO: Self = Self([0; 512]);

    /// Saves this CPU's floating-point registers here.
    pub fn save(&mut self) {
        // SAFETY: the buffer is 512 bytes, 16-byte aligned and ours;
        // FXSAVE writes exactly that image and nothing else.
        unsafe {
            core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack));
        }
    }

    /// Loads this image into the CPU's floating-point registers.
    pub fn restore(&self) {
        // SAFETY: the image is 16-byte aligned and was written by FXSAVE
        // or is INIT, whose reserved fields and MXCSR are valid, so
        // FXRSTOR cannot fault; hv-core itself uses no floating point.
        unsafe {
            core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack));
        }
    }
}

/// Whether `addr` is canonical (may be loaded into RIP, RSP or a base MSR).
#[inline(always)]
pub const fn is_canonical(addr: u64) -> bool {
    let top = addr >> 47;
    top == 0 || top == 0x1ffff
}

/// A vCPU's data segment selectors. The CPU leaves them as the guest
/// loaded them across every entry to hv-core (hv-core never loads them),
/// so they are part of the vCPU: saved and loaded with the rest on a
/// switch, or one domain reads another's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataSelectors {
    pub ds: u16,
    pub es: u16,
    pub fs: u16,
    pub gs: u16,
}

impl DataSelectors {
    /// The selectors the CPU holds now.
    pub fn read() -> Self {
        let (ds, es, fs, gs): (u16, u16, u16, u16);
        // SAFETY: reading segment registers has no side effect.
        unsafe {
            core::arch::asm!(
                "mov {0:x}, ds",
                "mov {1:x}, es",
                "mov {2:x}, fs",
                "mov {3:x}, gs",
                out(reg) ds,
                out(reg) es,
                out(reg) fs,
                out(reg) gs,
                options(nomem, nostack, preserves_flags)
            );
        }
        Self { ds, es, fs, gs }
    }

    /// Keeps a selector only if it names a descriptor a guest may load
    /// (null, or one of the flat ring-3 segments, any RPL); anything else
    /// becomes null, so loading can never fault in hv-core.
    pub fn sanitised(self) -> Self {
        let ok = |sel: u16| match sel & !3 {
            0 => sel,
            s if s == GUEST_CS32 & !3 || s == GUEST_DS & !3 || s == GUEST_CS64 & !3 => sel,
            _ => 0,
        };
        Self {
            ds: ok(self.ds),
            es: ok(self.es),
            fs: ok(self.fs),
            gs: ok(self.gs),
        }
    }

    /// Loads the selectors. Loading FS and GS resets their bases: load the
    /// vCPU's bases ([`load_segment_bases`]) after this. GS is loaded
    /// between two `swapgs`, so the base it resets is the guest's (in
    /// `IA32_KERNEL_GS_BASE` afterwards), not this CPU's block.
    pub fn load(self) {
        let s = self.sanitised();
        // SAFETY: after `sanitised` each selector is null or names a
        // present ring-3 descriptor of hv-core's GDT (DPL 3, so loadable
        // at CPL 0 with any RPL); hv-core's own code uses none of DS, ES
        // and FS in 64-bit mode, and GS only through its base, which the
        // swapgs pair keeps (interrupts are off in hv-core, and the IST
        // handlers do not use GS: see `percpu`).
        unsafe {
            core::arch::asm!(
                "mov ds, {0:x}",
                "mov es, {1:x}",
                "mov fs, {2:x}",
                "swapgs",
                "mov gs, {3:x}",
                "swapgs",
                in(reg) s.ds,
                in(reg) s.es,
                in(reg) s.fs,
                in(reg) s.gs,
                options(nostack, preserves_flags)
            );
        }
    }
}

const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

/// The segment bases a guest mode runs with: FS and GS. (The other
/// mode's GS base stays in the vCPU: no guest instruction can reach it,
/// since `swapgs` and the MSRs are ring 0's, and `IA32_KERNEL_GS_BASE`
/// holds this GS base while hv-core runs.)
#[derive(Clone, Copy, Debug, Default)]
pub struct SegmentBases {
    pub fs: u64,
    pub gs: u64,
}

/// Loads segment bases for the next return to the guest: FS directly,
/// GS into `IA32_KERNEL_GS_BASE`, which the return's `swapgs` makes the
/// active base (while hv-core runs, GS is this CPU's block). Each must be
/// canonical (callers check a guest's values first and refuse others); a
/// non-canonical one stops hv-core here rather than fault in it.
pub fn load_segment_bases(bases: &SegmentBases) {
    assert!(
        is_canonical(bases.fs) && is_canonical(bases.gs),
        "non-canonical segment base: {bases:x?}"
    );
    // SAFETY: hv-core uses no FS, and its GS (GS_BASE) is untouched; the
    // guest's GS base waits in KERNEL_GS_BASE for the return's swapgs.
    // Canonical values (checked above) cannot fault.
    unsafe {
        Msr::new(MSR_FS_BASE).write(bases.fs);
        Msr::new(MSR_KERNEL_GS_BASE).write(bases.gs);
    }
}

/// Loads only the GS base for the next return to the guest (a switch
/// between guest kernel and user mode changes nothing else: FS is the
/// same in both, and with CR4.FSGSBASE off the guest cannot have moved
/// it). One `wrmsr` instead of [`load_segment_bases`]' two.
pub fn load_gs_base(gs: u64) {
    assert!(is_canonical(gs), "non-canonical GS base {gs:#x}");
    // SAFETY: as in `load_segment_bases`: the guest's GS base waits in
    // KERNEL_GS_BASE for the return's swapgs; canonical, so no fault.
    unsafe {
        Msr::new(MSR_KERNEL_GS_BASE).write(gs);
    }
}

/// The real CPUID leaf, which the forced-emulation prefix filters.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The hypervisor's entries for L4 slots 256-271, which every guest L4
/// carries.
pub fn hypervisor_l4_entries() -> [u64; 16] {
    paging::hypervisor_l4_entries()
}

/// Page-table frames as the frame table reads and writes them: through the
/// direct map, by machine frame number.
///
/// For the frame table only (`hv_core::frame_table`, and `page_tables`
/// with the table locked): it reads and writes whatever frame below
/// `max_mfn` it is given, so its soundness rests on the frame table, which
/// names only frames a domain owns and writes entries only into page tables
/// it has validated. The `PageTableMemory` trait belongs to the pure frame
/// table, which cannot carry an `unsafe` contract; this is the one window
/// onto machine frames whose safety still rests on its callers (see
/// `docs/architecture.md`, "The unsafe boundary").
pub struct MachinePageTables;

impl MachinePageTables {
    fn entry_ptr(mfn: u64, index: usize) -> Option<*mut u64> {
        if index >= 512 || mfn >= crate::memory::max_mfn() {
            return None;
        }
        Some((paging::phys_to_virt(mfn << 12) + index as u64 * 8) as *mut u64)
    }
}

impl hv_core::frame_table::PageTableMemory for MachinePageTables {
    fn read_entry(&self, mfn: u64, index: usize) -> u64 {
        match Self::entry_ptr(mfn, index) {
            // SAFETY: the frame is RAM below `max_mfn` (the frame table only
            // names frames it tracks, which the direct map covers) and the
            // entry is inside it; a racing guest write is impossible because
            // page-table frames are never guest-writable.
            Some(ptr) => unsafe { ptr.read_volatile() },
            None => 0,
        }
    }

    fn write_entry(&mut self, mfn: u64, index: usize, value: u64) {
        if let Some(ptr) = Self::entry_ptr(mfn, index) {
            // SAFETY: as for `read_entry`; the frame table decided this
            // write is allowed.
            unsafe { ptr.write_volatile(value) }
        }
    }

    fn install_hypervisor_slots(&mut self, l4: u64) {
        for (i, entry) in hypervisor_l4_entries().into_iter().enumerate() {
            self.write_entry(l4, 256 + i, entry);
        }
    }
}
