//! CPUID as a PV guest sees it through the forced-emulation prefix: Xen's
//! hypervisor leaves at 0x4000_0000, and the real leaves with what a PV
//! guest cannot use hidden.

use crate::arch::pv;
use crate::domain::Domain;

const XEN_LEAF_BASE: u32 = 0x4000_0000;
/// Xen 4.17 has leaves base+1..=base+5.
const XEN_MAX_LEAF: u32 = XEN_LEAF_BASE + 5;
/// "XenVMMXenVMM" in EBX, ECX, EDX.
const XEN_SIGNATURE: [u32; 3] = [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e];

pub fn guest_leaf(_d: &Domain, leaf: u32, subleaf: u32) -> [u32; 4] {
    match leaf {
        XEN_LEAF_BASE => [
            XEN_MAX_LEAF,
            XEN_SIGNATURE[0],
            XEN_SIGNATURE[1],
            XEN_SIGNATURE[2],
        ],
        // Interface version.
        0x4000_0001 => [abi::XEN_INTERFACE_VERSION.0, 0, 0, 0],
        // One hypercall page; PV guests get it from the builder, so no MSR
        // is offered (EBX 0).
        0x4000_0002 => [1, 0, 0, 0],
        0x4000_0003..=0x4fff_ffff => [0; 4],
        _ => {
            let mut r = pv::cpuid(leaf, subleaf);
            match leaf {
                1 => {
                    // Hide VMX, SMX and MONITOR; announce a hypervisor.
                    r[2] &= !(1 << 5 | 1 << 6 | 1 << 3);
                    r[2] |= 1 << 31;
                }
                7 if subleaf == 0 => {
                    // No FSGSBASE instructions: CR4.FSGSBASE stays off.
                    r[1] &= !1;
                }
                0x8000_0001 => {
                    // Hide SVM.
                    r[2] &= !(1 << 2);
                }
                _ => {}
            }
            r
        }
    }
}
