//! Starting the secondary CPUs: INIT, then start-up IPIs that send each
//! into a real-mode trampoline copied below 1 MiB, which climbs to long
//! mode on hv-core's own page tables and calls [`secondary_entry`].
//!
//! One CPU starts at a time: the boot CPU fills in the trampoline's
//! parameters (page tables, stack, CPU number), sends the start-up IPI and
//! waits until that CPU says it is up before it rewrites them for the
//! next. The trampoline page is mapped at its own address (the CPU turns
//! paging on while running there) only while CPUs are starting.

use hv_core::layout::percpu::Stack;

use super::{cpu, lapic, paging, percpu, time};

core::arch::global_asm!(
    r#"
    /* Copied to a page below 1 MiB and entered there in real mode at
       offset 0, with CS = page << 8. Every address below is relative to
       the page (EBX holds its base from the first instructions on), and
       the boot CPU patches the absolute ones into the parameters. */
    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global ap_trampoline, ap_trampoline_end
    .global ap_tr_gdt_ptr, ap_tr_far32, ap_tr_far64, ap_tr_cr3, ap_tr_efer
    .global ap_tr_stack, ap_tr_entry, ap_tr_arg, ap_tr_32, ap_tr_64, ap_tr_gdt
    .code16
ap_trampoline:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    xor %ebx, %ebx
    mov %ax, %bx
    shl $4, %ebx
    lgdtl (ap_tr_gdt_ptr - ap_trampoline)
    mov %cr0, %eax
    or $1, %eax                     /* PE */
    mov %eax, %cr0
    ljmpl *(ap_tr_far32 - ap_trampoline)

    .code32
ap_tr_32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $(1 << 5), %eax              /* PAE */
    mov %eax, %cr4
    mov (ap_tr_cr3 - ap_trampoline)(%ebx), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx           /* EFER */
    rdmsr
    or (ap_tr_efer - ap_trampoline)(%ebx), %eax
    wrmsr
    mov %cr0, %eax
    and $~((1 << 30) | (1 << 29)), %eax /* caches on: INIT left CD and NW set */
    or $((1 << 31) | (1 << 16)), %eax   /* PG, WP */
    mov %eax, %cr0
    ljmpl *(ap_tr_far64 - ap_trampoline)(%ebx)

    .code64
ap_tr_64:
    mov %ebx, %ebx
    mov (ap_tr_stack - ap_trampoline)(%rbx), %rsp
    mov (ap_tr_arg - ap_trampoline)(%rbx), %rdi
    mov (ap_tr_entry - ap_trampoline)(%rbx), %rax
    xor %ebp, %ebp
    push %rbp                       /* no return address */
    jmp *%rax

    .balign 8
ap_tr_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
    .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
ap_tr_gdt_end:
    .balign 8
ap_tr_gdt_ptr:
    .short ap_tr_gdt_end - ap_tr_gdt - 1
    .long 0                         /* patched: the GDT's address */
    .balign 8
ap_tr_far32:
    .long 0                         /* patched: ap_tr_32's address */
    .short 0x08
    .balign 8
ap_tr_far64:
    .long 0                         /* patched: ap_tr_64's address */
    .short 0x18
    .balign 8
ap_tr_cr3:
    .long 0
ap_tr_efer:
    .long 0
ap_tr_stack:
    .quad 0
ap_tr_entry:
    .quad 0
ap_tr_arg:
    .quad 0
ap_trampoline_end:
    .code64
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline: u8;
    static ap_trampoline_end: u8;
    static ap_tr_gdt_ptr: u8;
    static ap_tr_far32: u8;
    static ap_tr_far64: u8;
    static ap_tr_cr3: u8;
    static ap_tr_efer: u8;
    static ap_tr_stack: u8;
    static ap_tr_entry: u8;
    static ap_tr_arg: u8;
    static ap_tr_32: u8;
    static ap_tr_64: u8;
    static ap_tr_gdt: u8;
}

/// The trampoline as linked (in `.rodata`), to copy.
fn trampoline_image() -> &'static [u8] {
    let start = core::ptr::addr_of!(ap_trampoline);
    let end = core::ptr::addr_of!(ap_trampoline_end) as usize;
    // SAFETY: both symbols bound the trampoline's bytes in hv-core's
    // read-only image, which is mapped for good.
    unsafe { core::slice::from_raw_parts(start, end - start as usize) }
}

/// A parameter's offset within the trampoline.
fn offset_of(symbol: *const u8) -> usize {
    symbol as usize - core::ptr::addr_of!(ap_trampoline) as usize
}

const EFER_LME: u32 = 1 << 8;
const EFER_NXE: u32 = 1 << 11;

/// The trampoline page, written through the direct map.
struct Trampoline {
    phys: u64,
}

impl Trampoline {
    /// Copies the trampoline to `phys` and fills in what is the same for
    /// every CPU.
    fn install(phys: u64) -> Self {
        let image = trampoline_image();
        assert!(image.len() <= 4096, "the trampoline outgrew its page");
        assert!(
            phys < 1 << 20 && phys.is_multiple_of(4096),
            "a start-up IPI reaches only pages below 1 MiB"
        );
        let virt = paging::phys_to_virt(phys) as *mut u8;
        // SAFETY: `phys` is a page of RAM below 1 MiB that the frame
        // allocator never hands out (the boot code reserves the first MiB)
        // and that holds nothing hv-core or the boot loader still uses
        // (`boot::init_memory` chose it); the direct map covers it.
        unsafe { core::ptr::copy_nonoverlapping(image.as_ptr(), virt, image.len()) };
        let t = Self { phys };
        let base = phys as u32;
        let at = |symbol: *const u8| base + offset_of(symbol) as u32;
        t.write_u32(
            offset_of(core::ptr::addr_of!(ap_tr_gdt_ptr)) + 2,
            at(core::ptr::addr_of!(ap_tr_gdt)),
        );
        t.write_u32(
            offset_of(core::ptr::addr_of!(ap_tr_far32)),
            at(core::ptr::addr_of!(ap_tr_32)),
        );
        t.write_u32(
            offset_of(core::ptr::addr_of!(ap_tr_far64)),
            at(core::ptr::addr_of!(ap_tr_64)),
        );
        let cr3 = paging::root();
        assert!(cr3 < 1 << 32, "hv-core's L4 above 4 GiB");
        t.write_u32(offset_of(core::ptr::addr_of!(ap_tr_cr3)), cr3 as u32);
        let nx = if cpu::features().nx { EFER_NXE } else { 0 };
        t.write_u32(offset_of(core::ptr::addr_of!(ap_tr_efer)), EFER_LME | nx);
        t
    }

    fn write_u32(&self, offset: usize, value: u32) {
        let at = (paging::phys_to_virt(self.phys) + offset as u64) as *mut u32;
        // SAFETY: inside the trampoline page (offsets of its own
        // parameters), which only the boot CPU writes, while no CPU runs it.
        unsafe { at.write_unaligned(value) }
    }

    fn write_u64(&self, offset: usize, value: u64) {
        let at = (paging::phys_to_virt(self.phys) + offset as u64) as *mut u64;
        // SAFETY: as in `write_u32`.
        unsafe { at.write_unaligned(value) }
    }

    /// Sets what differs per CPU: its stack and number.
    fn prepare(&self, cpu: usize) {
        self.write_u64(
            offset_of(core::ptr::addr_of!(ap_tr_stack)),
            percpu::stack_top(cpu, Stack::Start),
        );
        self.write_u64(
            offset_of(core::ptr::addr_of!(ap_tr_entry)),
            secondary_entry as *const () as u64,
        );
        self.write_u64(offset_of(core::ptr::addr_of!(ap_tr_arg)), cpu as u64);
    }

    fn page(&self) -> u8 {
        (self.phys >> 12) as u8
    }
}

/// How long a CPU may take from its start-up IPI to saying it is up.
/// Generous: under TCG a new CPU translates every instruction first.
const START_TIMEOUT_NS: u64 = 2_000_000_000;

/// Why a CPU did not come up.
#[derive(Debug)]
pub enum StartError {
    /// It did not say it was up in time.
    Silent,
}

/// Starts the CPUs `apic_ids` lists after the boot CPU (index 0, already
/// running), through the trampoline at `page` (a free page below 1 MiB).
/// CPU numbers stay dense: a CPU that does not come up gives its number
/// to the next. Returns how many CPUs run, the boot CPU included.
pub fn start_secondaries(apic_ids: &[u32], page: u64) -> usize {
    if apic_ids.len() < 2 {
        return 1;
    }
    let trampoline = Trampoline::install(page);
    paging::map_identity(page);
    for &apic in &apic_ids[1..] {
        lapic::send_init(apic);
    }
    // The MP specification's 10 ms between INIT and the start-up IPI.
    time::spin_ns(10_000_000);
    let mut next = 1;
    // Areas mapped so far (CPU 0's by the boot code): a CPU that stays
    // silent leaves its number, and its mapped area, to the next.
    let mut mapped = 1;
    for &apic in &apic_ids[1..] {
        if next == mapped {
            if percpu::map_area(next).is_err() {
                log::warn!("cpu {next} (APIC id {apic}) not started: no memory for its area");
                break;
            }
            mapped += 1;
        }
        match start_one(&trampoline, next, apic) {
            Ok(()) => next += 1,
            Err(e) => log::warn!("cpu {next} (APIC id {apic}) did not come up: {e:?}"),
        }
    }
    paging::unmap_identity(page);
    next
}

/// Starts the CPU with APIC id `apic` as CPU number `cpu`, whose area is
/// mapped.
fn start_one(trampoline: &Trampoline, cpu: usize, apic: u32) -> Result<(), StartError> {
    percpu::prepare(cpu, apic);
    trampoline.prepare(cpu);
    // Two start-up IPIs, as the MP specification has it; the second is
    // ignored by a CPU the first one started.
    lapic::send_startup(apic, trampoline.page());
    time::spin_ns(200_000);
    if !percpu::is_online(cpu) {
        lapic::send_startup(apic, trampoline.page());
    }
    let deadline = time::rdtsc() + time::ns_to_ticks(START_TIMEOUT_NS);
    while !percpu::is_online(cpu) {
        if time::rdtsc() > deadline {
            return Err(StartError::Silent);
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Where a secondary CPU arrives from the trampoline, on its start stack
/// with hv-core's page tables, interrupts off.
extern "C" fn secondary_entry(cpu: u64) -> ! {
    let cpu = cpu as usize;
    percpu::activate(cpu);
    cpu::load_cpu_tables(cpu);
    cpu::enable_protections();
    super::pv::init_cpu();
    let apic = lapic::init_secondary();
    percpu::set_online();
    crate::boot::secondary_main(cpu, apic)
}
