//! The architecture seam: generic code calls `arch::...` and never names a
//! register. One architecture today.
#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub use self::x86_64::*;
