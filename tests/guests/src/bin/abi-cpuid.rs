//! The forced-emulation CPUID prefix (`ud2; .ascii "xen"; cpuid`): the
//! hypervisor emulates it, with Xen's hypervisor leaves at 0x4000_0000
//! ("XenVMMXenVMM", the interface version in leaf 1), and hides what a PV
//! guest cannot use (leaf 1 announces a hypervisor).
#![cfg_attr(target_os = "none", no_std, no_main)]

pv_guest_sdk::entry!(kernel_main);

/// CPUID through the forced-emulation prefix.
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
fn pv_cpuid(leaf: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: the prefix raises #UD, which the hypervisor recognises and
    // emulates as CPUID (it never reaches the guest's handlers); it reads
    // EAX/ECX and writes EAX-EDX, as declared. RBX is saved around it
    // because LLVM reserves it.
    unsafe {
        core::arch::asm!(
            "mov {tmp:r}, rbx",
            "ud2",
            ".ascii \"xen\"",
            "cpuid",
            "xchg {tmp:r}, rbx",
            tmp = out(reg) b,
            inout("eax") leaf => a,
            inout("ecx") 0u32 => c,
            out("edx") d,
        );
    }
    [a, b, c, d]
}

#[cfg(target_os = "none")]
fn kernel_main(_start: &'static pv_guest_sdk::StartInfo) -> ! {
    use pv_guest_sdk::{println, sched};
    let base = pv_cpuid(0x4000_0000);
    let mut signature = [0u8; 12];
    for (i, word) in base[1..].iter().enumerate() {
        signature[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    let version = pv_cpuid(0x4000_0001)[0];
    let leaf1 = pv_cpuid(1);
    let outcome = if &signature != b"XenVMMXenVMM" {
        Err("leaf 0x40000000 signature is not XenVMMXenVMM")
    } else if base[0] < 0x4000_0002 {
        Err("leaf 0x40000000 names fewer than two further leaves")
    } else if version >> 16 != 4 {
        Err("leaf 0x40000001 is not a Xen 4.x interface version")
    } else if leaf1[2] & (1 << 31) == 0 {
        Err("leaf 1 does not announce a hypervisor (ECX bit 31)")
    } else {
        Ok(())
    };
    if outcome.is_ok() {
        println!(
            "abi-cpuid: {} max leaf {:#x}, interface {}.{}",
            core::str::from_utf8(&signature).unwrap_or("?"),
            base[0],
            version >> 16,
            version & 0xffff
        );
    }
    match outcome {
        Ok(()) => println!("PASS abi-cpuid"),
        Err(why) => println!("FAIL abi-cpuid: {why}"),
    }
    sched::poweroff()
}
