//! Which speculative-execution flaws of the CPU break PV isolation, from
//! what CPUID and IA32_ARCH_CAPABILITIES say. The boot code reads the
//! machine; this decides (and is host-tested).
//!
//! Meltdown (rogue data cache load): a ring-3 load from a supervisor page
//! returns its data speculatively. A PV guest runs on page tables that map
//! hv-core and its direct map of all RAM (supervisor pages), so on an
//! affected CPU a domU can read every byte of the machine. Xen answers
//! with XPTI (separate page tables while a PV guest runs); hv-core has no
//! XPTI and says so at boot instead (see docs/security.md).

/// What hv-core knows of the CPU for this decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuFacts<'a> {
    /// CPUID leaf 0's vendor string.
    pub vendor: &'a [u8; 12],
    /// IA32_ARCH_CAPABILITIES, when CPUID says the MSR exists.
    pub arch_capabilities: Option<u64>,
}

/// IA32_ARCH_CAPABILITIES bit 0: not susceptible to rogue data cache load.
pub const ARCH_CAP_RDCL_NO: u64 = 1 << 0;

/// Why a CPU is, or is not, open to Meltdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meltdown {
    /// Not an Intel CPU: AMD, Hygon and the others do not forward
    /// supervisor data to ring-3 loads.
    NotAffectedVendor,
    /// An Intel CPU that reports RDCL_NO.
    NotAffectedRdclNo,
    /// An Intel CPU without RDCL_NO (or without the MSR at all).
    Affected,
}

impl Meltdown {
    pub fn of(cpu: &CpuFacts) -> Self {
        if cpu.vendor != b"GenuineIntel" {
            Self::NotAffectedVendor
        } else if cpu
            .arch_capabilities
            .is_some_and(|caps| caps & ARCH_CAP_RDCL_NO != 0)
        {
            Self::NotAffectedRdclNo
        } else {
            Self::Affected
        }
    }

    pub fn affected(self) -> bool {
        self == Self::Affected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_intel_without_rdcl_no_is_affected() {
        let amd = CpuFacts {
            vendor: b"AuthenticAMD",
            arch_capabilities: None,
        };
        assert_eq!(Meltdown::of(&amd), Meltdown::NotAffectedVendor);
        let old_intel = CpuFacts {
            vendor: b"GenuineIntel",
            arch_capabilities: None,
        };
        assert!(Meltdown::of(&old_intel).affected());
        let intel_without = CpuFacts {
            vendor: b"GenuineIntel",
            arch_capabilities: Some(0b10),
        };
        assert!(Meltdown::of(&intel_without).affected());
        let intel_with = CpuFacts {
            vendor: b"GenuineIntel",
            arch_capabilities: Some(ARCH_CAP_RDCL_NO | 0b10),
        };
        assert_eq!(Meltdown::of(&intel_with), Meltdown::NotAffectedRdclNo);
    }
}
