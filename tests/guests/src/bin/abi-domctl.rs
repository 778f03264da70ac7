//! The toolstack's vCPU domctls, run by the initial domain on itself:
//! `getvcpuinfo` (online, running, on a CPU that is up) and
//! `setvcpuaffinity`/`getvcpuaffinity` with hard affinity: the map written
//! back is the affinity in effect, bits past `nr_bits` are never written,
//! a map with no CPU that is up is refused, and bad requests (no map
//! named, a vCPU past the last, an unmapped bitmap, a domain that does not
//! exist) get Xen's error codes.
#![cfg_attr(target_os = "none", no_std, no_main)]

pv_guest_sdk::entry!(kernel::main);

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
mod kernel {
    use abi::Errno;
    use abi::Hypercall;
    use abi::domctl::{
        Domctl, PhysInfo, Sysctl, VcpuAffinity, VcpuInfoCtl, XEN_DOMCTL_GETVCPUAFFINITY,
        XEN_DOMCTL_GETVCPUINFO, XEN_DOMCTL_SETVCPUAFFINITY, XEN_SYSCTL_PHYSINFO,
        XEN_VCPUAFFINITY_HARD, XenctlBitmap,
    };
    use pv_guest_sdk::{StartInfo, println, sched};
    use zerocopy::{Immutable, IntoBytes};

    /// `domctl(cmd)` on `domain`; the result and the request as written back.
    fn domctl(cmd: u32, domain: u16, payload: &(impl IntoBytes + Immutable)) -> (i64, Domctl) {
        let mut op = Domctl::new(cmd, domain, payload);
        // SAFETY: one pointer argument, to the live `Domctl`; the payloads
        // used here point (if at all) at live buffers of this function's
        // callers, or at an address the test wants refused.
        let ret = unsafe {
            pv_guest_sdk::hypercall::raw(
                Hypercall::Domctl as u32,
                [&mut op as *mut Domctl as u64, 0, 0, 0, 0],
            )
        };
        (ret, op)
    }

    /// The CPUs that are up (`XEN_SYSCTL_physinfo`), at most 8 here.
    fn cpus_up() -> Result<u32, ()> {
        let mut op = Sysctl::new(XEN_SYSCTL_PHYSINFO, &PhysInfo::default());
        // SAFETY: one pointer argument, to the live `Sysctl`, whose
        // payload holds no pointer.
        let ret = unsafe {
            pv_guest_sdk::hypercall::raw(
                Hypercall::Sysctl as u32,
                [&mut op as *mut Sysctl as u64, 0, 0, 0, 0],
            )
        };
        let n = op.payload::<PhysInfo>().nr_cpus;
        if ret != 0 || !(1..8).contains(&n) {
            println!("FAIL abi-domctl: physinfo: {ret}, {n} CPUs (want 1 to 7)");
            return Err(());
        }
        Ok(n)
    }

    /// A hard-affinity call on `map`, `nr_bits` long.
    fn affinity(cmd: u32, vcpu: u32, flags: u32, map: u64, nr_bits: u32) -> i64 {
        let request = VcpuAffinity {
            vcpu,
            flags,
            cpumap_hard: XenctlBitmap {
                bitmap: map,
                nr_bits,
                _pad: 0,
            },
            ..Default::default()
        };
        domctl(cmd, 0, &request).0
    }

    const EINVAL: i64 = Errno::Inval as i64;
    const EFAULT: i64 = Errno::Fault as i64;
    const ESRCH: i64 = Errno::Srch as i64;

    fn check(what: &str, got: i64, want: i64) -> Result<(), ()> {
        if got == want {
            Ok(())
        } else {
            println!("FAIL abi-domctl: {what}: got {got}, want {want}");
            Err(())
        }
    }

    fn run() -> Result<(), ()> {
        let cpus = cpus_up()?;
        let all = (1u8 << cpus) - 1;
        let (ret, op) = domctl(
            XEN_DOMCTL_GETVCPUINFO,
            0,
            &VcpuInfoCtl {
                vcpu: 0,
                ..Default::default()
            },
        );
        check("getvcpuinfo of vCPU 0", ret, 0)?;
        let info: VcpuInfoCtl = op.payload();
        check("vCPU 0 online", info.online as i64, 1)?;
        check("vCPU 0 running (it asks)", info.running as i64, 1)?;
        check("vCPU 0 on a CPU that is up", (info.cpu < cpus) as i64, 1)?;
        let (ret, _) = domctl(
            XEN_DOMCTL_GETVCPUINFO,
            0,
            &VcpuInfoCtl {
                vcpu: 4096,
                ..Default::default()
            },
        );
        check("getvcpuinfo of vCPU 4096", ret, -EINVAL)?;
        let (ret, _) = domctl(XEN_DOMCTL_GETVCPUINFO, 0x7000, &VcpuInfoCtl::default());
        check("getvcpuinfo of a domain that does not exist", ret, -ESRCH)?;

        // A byte past the 8-bit map: never written.
        let mut map = [0xffu8, 0xaa];
        let get = XEN_DOMCTL_GETVCPUAFFINITY;
        let set = XEN_DOMCTL_SETVCPUAFFINITY;
        check(
            "getvcpuaffinity",
            affinity(get, 0, XEN_VCPUAFFINITY_HARD, map.as_mut_ptr() as u64, 8),
            0,
        )?;
        check("hard affinity: every CPU up", map[0] as i64, all as i64)?;
        check("the byte past nr_bits", map[1] as i64, 0xaa)?;
        map[0] = 1 << cpus;
        check(
            "setvcpuaffinity to the first CPU not up",
            affinity(set, 0, XEN_VCPUAFFINITY_HARD, map.as_mut_ptr() as u64, 8),
            -EINVAL,
        )?;
        map[0] = 0xff;
        check(
            "setvcpuaffinity to every CPU",
            affinity(set, 0, XEN_VCPUAFFINITY_HARD, map.as_mut_ptr() as u64, 8),
            0,
        )?;
        check(
            "the affinity in effect, written back",
            map[0] as i64,
            all as i64,
        )?;
        check("the byte past nr_bits, after set", map[1] as i64, 0xaa)?;
        map[0] = 0xff;
        check(
            "setvcpuaffinity with a 1-bit map",
            affinity(set, 0, XEN_VCPUAFFINITY_HARD, map.as_mut_ptr() as u64, 1),
            0,
        )?;
        check("a 1-bit map written back", map[0] as i64, 1)?;
        map[0] = 0xff;
        check(
            "setvcpuaffinity back to every CPU",
            affinity(set, 0, XEN_VCPUAFFINITY_HARD, map.as_mut_ptr() as u64, 8),
            0,
        )?;
        check(
            "setvcpuaffinity naming no map",
            affinity(set, 0, 0, map.as_mut_ptr() as u64, 8),
            -EINVAL,
        )?;
        check(
            "setvcpuaffinity of vCPU 4096",
            affinity(set, 4096, XEN_VCPUAFFINITY_HARD, map.as_mut_ptr() as u64, 8),
            -EINVAL,
        )?;
        check(
            "getvcpuaffinity into an unmapped bitmap",
            affinity(get, 0, XEN_VCPUAFFINITY_HARD, 0x1000, 8),
            -EFAULT,
        )?;
        Ok(())
    }

    pub fn main(_start: &'static StartInfo) -> ! {
        if run().is_ok() {
            println!("PASS abi-domctl");
        }
        sched::poweroff()
    }
}
