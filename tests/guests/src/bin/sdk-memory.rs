//! Memory: p2m and M2P agree, frames come from the free pool, page tables
//! change only through the hypervisor (new tables built writable, then
//! remapped read-only and linked), protections take effect, unmapped pages
//! fault, and the heap serves allocations.
#![cfg_attr(target_os = "none", no_std, no_main)]

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
#[allow(unsafe_code)] // the volatile accesses to freshly mapped pages
mod kernel {
    extern crate alloc;

    use alloc::boxed::Box;
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};

    use pv_guest_sdk::mm::{self, pte};
    use pv_guest_sdk::traps::{self, Exception, TrapFrame};
    use pv_guest_sdk::{StartInfo, layout, println};
    use test_guests::Checks;

    static FAULTS: AtomicU64 = AtomicU64::new(0);
    static FAULT_CODE: AtomicU64 = AtomicU64::new(0);

    /// Page faults at the test addresses: count them and skip the access
    /// (each test access is a 3-byte `mov` through RAX, see below).
    fn on_fault(e: &Exception, frame: &mut TrapFrame) -> bool {
        let cr2 = e.cr2.unwrap_or(0);
        if (TEST_VA..TEST_VA + 16 * 4096).contains(&cr2) {
            FAULTS.fetch_add(1, Ordering::SeqCst);
            FAULT_CODE.store(e.error_code, Ordering::SeqCst);
            frame.rip += 3;
            return true;
        }
        false
    }

    /// L4 slot 384: far from everything the builder mapped, so the SDK has
    /// to create the L3, L2 and L1 tables.
    const TEST_VA: u64 = 0xffff_c000_0000_0000;

    fn read(va: u64) -> u64 {
        let value: u64;
        // SAFETY: a 3-byte load; if it faults, the handler skips it.
        unsafe { core::arch::asm!("mov rax, [rdx]", in("rdx") va, out("rax") value) };
        value
    }

    fn write(va: u64, value: u64) {
        // SAFETY: a 3-byte store; if it faults, the handler skips it.
        unsafe { core::arch::asm!("mov [rdx], rax", in("rdx") va, in("rax") value) };
    }

    pub fn main(start: &'static StartInfo) -> ! {
        let mut c = Checks::new("sdk-memory");
        traps::set_handler(traps::PAGE_FAULT, on_fault);

        // p2m <-> M2P for every frame.
        let all_agree = (0..start.nr_pages())
            .all(|pfn| mm::pfn_to_mfn(pfn).and_then(mm::mfn_to_pfn) == Some(pfn));
        c.check(all_agree, "M2P maps every p2m frame back");
        c.check(mm::mfn_to_pfn(1).is_none(), "a foreign frame has no pfn");
        let image_pa = mm::translate(layout::VIRT_BASE);
        c.check(
            image_pa == mm::pfn_to_mfn(0).map(|m| m * 4096),
            "the image starts at pfn 0",
        );
        let last = layout::pfn_to_virt(start.nr_pages() - 1);
        c.check(
            mm::translate(last).is_some(),
            "the physmap covers the last frame",
        );

        // Fresh frames, mapped at a new address.
        let free_before = mm::free_frames();
        let frames: Vec<_> = (0..4).filter_map(|_| mm::alloc_frame().ok()).collect();
        c.check(frames.len() == 4, "four frames allocated");
        c.check(
            mm::free_frames() == free_before - 4,
            "free count drops by four",
        );
        let mfns: Vec<u64> = frames.iter().map(|f| f.mfn).collect();
        c.check(
            mm::map_range(TEST_VA, &mfns, pte::KERNEL_RW).is_ok(),
            "batched map at a new L4 slot",
        );
        c.check(
            mm::map_range(TEST_VA, &mfns[..1], pte::KERNEL_RW).is_err(),
            "mapping twice is refused",
        );
        write(TEST_VA + 8, 0x1234_5678);
        c.check(
            read(frames[0].va() + 8) == 0x1234_5678,
            "the new mapping reaches the frame",
        );
        c.check(
            mm::translate(TEST_VA + 4096) == Some(frames[1].maddr()),
            "translate follows the new tables",
        );
        c.check(FAULTS.load(Ordering::SeqCst) == 0, "no faults so far");

        // Read-only, then unmapped.
        // SAFETY: the test pages hold no Rust objects; accesses go through
        // `read`/`write`, which survive faults.
        let protected = unsafe { mm::protect(TEST_VA, pte::KERNEL_RO) };
        c.check(protected.is_ok(), "protect to read-only");
        write(TEST_VA + 16, 1);
        c.check(
            FAULTS.load(Ordering::SeqCst) == 1,
            "writing a read-only page faults",
        );
        c.check(
            FAULT_CODE.load(Ordering::SeqCst) & 3 == 3,
            "protection fault on write",
        );
        c.check(read(TEST_VA + 8) == 0x1234_5678, "still readable");
        // SAFETY: as above.
        let unmapped = unsafe { mm::unmap(TEST_VA + 4096) };
        c.check(unmapped == Ok(frames[1].mfn), "unmap returns the frame");
        read(TEST_VA + 4096);
        c.check(
            FAULTS.load(Ordering::SeqCst) == 2,
            "reading an unmapped page faults",
        );
        c.check(
            FAULT_CODE.load(Ordering::SeqCst) & 1 == 0,
            "not-present fault",
        );
        c.check(
            mm::map(TEST_VA + 4096, frames[1].mfn, pte::KERNEL_RW).is_ok(),
            "single map",
        );
        c.check(read(TEST_VA + 4096 + 8) == 0, "remapped page reads back");

        // A page-table page can never be mapped writable.
        let l4 = mm::kernel_l4();
        let refused = mm::map(TEST_VA + 8 * 4096, l4, pte::KERNEL_RW);
        println!("memory: mapping the L4 writable: {refused:?}");
        c.check(
            refused.is_err(),
            "the hypervisor refuses a writable page-table mapping",
        );
        c.check(
            mm::map(TEST_VA + 8 * 4096, l4, pte::KERNEL_RO).is_ok(),
            "read-only is fine",
        );

        // Heap.
        let v: Vec<u64> = (0..100_000).collect();
        c.check(v.iter().sum::<u64>() == 4_999_950_000, "a 800 KB Vec");
        let b = Box::new([7u8; 4096]);
        c.check(b.iter().all(|&x| x == 7), "a boxed page");
        let mut s = String::new();
        for i in 0..100 {
            s.push_str(if i % 2 == 0 { "ab" } else { "c" });
        }
        c.check(s.len() == 150, "a growing String");
        drop(v);
        let again: Vec<u64> = (0..100_000).collect();
        c.check(again.len() == 100_000, "freed memory is reused");

        println!(
            "memory: {} frames free, {} faults handled",
            mm::free_frames(),
            FAULTS.load(Ordering::SeqCst)
        );
        c.finish()
    }
}
