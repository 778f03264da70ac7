//! The module the boot loader gave dom0 (its initrd): the image bundle.

use pv_guest_sdk::StartInfo;
use pv_guest_sdk::layout::VIRT_BASE;

/// The initrd's bytes, if the builder mapped one (`mod_start` a virtual
/// address, not a frame number).
pub fn bytes(start: &StartInfo<'static>) -> Option<&'static [u8]> {
    let (va, len) = start.module()?;
    if start.module_start_is_pfn() || va < VIRT_BASE || va.checked_add(len).is_none() {
        return None;
    }
    // SAFETY: the domain builder (hv-core's, or Xen's) maps the module in
    // the start-of-day area at `mod_start` for `mod_len` bytes and never
    // touches it again; the SDK leaves the area's frames before its free
    // frames alone (the module lies below the p2m list, which marks the
    // start of what the allocator may hand out), so nothing writes these
    // bytes while dom0 runs.
    Some(unsafe { core::slice::from_raw_parts(va as *const u8, len as usize) })
}
