//! The page of the image that the shared-info frame is mapped over, and
//! the one way to reach it.

use core::cell::UnsafeCell;

use crate::shared_info::SharedInfoPage;

/// A page-aligned page in `.bss`. Its own frame is abandoned once the
/// shared-info frame is mapped at its address.
#[repr(C, align(4096))]
pub struct ReservedPage(UnsafeCell<[u8; 4096]>);

// SAFETY: the page is only ever reached through `SharedInfoPage`, whose
// fields are all atomics.
unsafe impl Sync for ReservedPage {}

static SHARED_INFO_PAGE: ReservedPage = ReservedPage(UnsafeCell::new([0; 4096]));

/// Where the shared-info frame gets mapped.
pub fn shared_info_va() -> u64 {
    SHARED_INFO_PAGE.0.get() as u64
}

/// The shared-info page. Before it is mapped this is the zeroed `.bss`
/// page: every vCPU reads as "events unmasked, none pending", which no
/// code relies on before start of day maps the real page.
pub fn shared_info() -> &'static SharedInfoPage {
    const _: () = assert!(core::mem::size_of::<SharedInfoPage>() <= 4096);
    // SAFETY: the page is 4096 bytes, page aligned, lives forever and is
    // only accessed through atomics (all of `SharedInfoPage`'s fields), so
    // concurrent writes by the hypervisor are data-race free.
    unsafe { &*(SHARED_INFO_PAGE.0.get() as *const SharedInfoPage) }
}

/// Maps the shared-info frame (`start_info.shared_info`, a machine address)
/// over the reserved page.
pub fn map(shared_info_maddr: u64) -> crate::Result<()> {
    use crate::mm::pte;
    let entry = (shared_info_maddr & pte::ADDRESS_MASK) | pte::KERNEL_RW;
    // SAFETY: the reserved page is only ever read through `shared_info()`,
    // whose atomics are as valid over the shared-info frame as over the
    // zeroed page they replace.
    unsafe { crate::hypercall::update_va_mapping(shared_info_va(), entry, abi::xen::UVMF_INVLPG) }
}
