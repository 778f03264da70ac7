//! The smaller op families: scheduling (`sched.h`), vCPUs (`vcpu.h`),
//! callbacks (`callback.h`), memory (`memory.h`), version and features
//! (`version.h`, `features.h`) and ELF notes (`elfnote.h`).

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::xen::DomId;

/// sched_op: give up the CPU; stay runnable.
pub const SCHEDOP_YIELD: u32 = 0;
/// sched_op: sleep until an event is pending for this vCPU.
pub const SCHEDOP_BLOCK: u32 = 1;
/// sched_op: shut the domain down (`SchedShutdown`).
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// sched_op: block until one of a set of ports is pending, or a timeout (`SchedPoll`).
pub const SCHEDOP_POLL: u32 = 3;
/// sched_op: shut down another domain (privileged).
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// sched_op: set the reason reported if the domain shuts down later.
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// sched_op: create, arm or destroy a domain watchdog.
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// sched_op: temporarily pin the vCPU to a physical CPU (hardware domain).
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

/// Shutdown reason: power off (the domain is done).
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Shutdown reason: restart the domain.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Shutdown reason: the domain suspended (to be saved).
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// Shutdown reason: the domain crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// Shutdown reason: a domain watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Shutdown reason: the domain asked for a soft reset (restart keeping its memory).
pub const SHUTDOWN_SOFT_RESET: u32 = 5;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
/// `SCHEDOP_shutdown` argument.
pub struct SchedShutdown {
    /// IN: `SHUTDOWN_*`.
    pub reason: u32,
}

const _: () = {
    assert!(size_of::<SchedShutdown>() == 4);
};

/// Blocks until one of `nr_ports` ports at `ports` is pending, or until
/// `timeout` (absolute system time in ns; 0 = none).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SchedPoll {
    /// IN: guest pointer to the ports (`evtchn_port_t`) to wait on.
    pub ports: u64,
    /// IN: how many ports.
    pub nr_ports: u32,
    /// Padding.
    pub _pad: u32,
    /// IN: absolute system time in ns to give up at (0: no timeout).
    pub timeout: u64,
}

const _: () = {
    assert!(size_of::<SchedPoll>() == 24);
    assert!(offset_of!(SchedPoll, nr_ports) == 8);
    assert!(offset_of!(SchedPoll, timeout) == 16);
};

/// vcpu_op: set up a down vCPU's initial register state (`vcpu_guest_context`).
pub const VCPUOP_INITIALISE: u32 = 0;
/// vcpu_op: start a vCPU initialised with `VCPUOP_initialise`.
pub const VCPUOP_UP: u32 = 1;
/// vcpu_op: take a vCPU down (it can be brought up again).
pub const VCPUOP_DOWN: u32 = 2;
/// vcpu_op: whether a vCPU is up (returns 1 or 0).
pub const VCPUOP_IS_UP: u32 = 3;
/// vcpu_op: get a vCPU's runstate (`VcpuRunstateInfo`).
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// vcpu_op: register an area the hypervisor keeps the runstate updated in.
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// vcpu_op: set a periodic timer (period in ns).
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// vcpu_op: stop the periodic timer.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// vcpu_op: set a single-shot timer (`VcpuSetSingleshotTimer`).
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// vcpu_op: stop the single-shot timer.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// vcpu_op: move the vCPU's `vcpu_info` to a guest-chosen location.
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// vcpu_op: send an NMI to a vCPU.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// vcpu_op: get the physical CPU's APIC and ACPI ids (hardware domain).
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// vcpu_op: register an area the hypervisor keeps a copy of the vCPU's time info in.
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
/// `VCPUOP_register_vcpu_info` argument (`struct vcpu_register_vcpu_info`):
/// the vCPU's vcpu_info moves to byte `offset` of frame `mfn`.
pub struct VcpuRegisterVcpuInfo {
    /// The frame (for a PV guest, a machine frame it owns).
    pub mfn: u64,
    /// Where in it; the vcpu_info must fit inside the page.
    pub offset: u32,
    /// Unused (Xen 4.17 does not look at it).
    pub rsvd: u32,
}

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
/// `VCPUOP_set_singleshot_timer` argument.
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time in ns.
    pub timeout_abs_ns: u64,
    /// IN: `VCPU_SSHOTTMR_*` flags.
    pub flags: u32,
    /// Padding.
    pub _pad: u32,
}

const _: () = {
    assert!(size_of::<VcpuSetSingleshotTimer>() == 16);
};

/// `VCPUOP_get_runstate_info`: how long the vCPU has spent in each
/// `RUNSTATE_*` (ns of system time), and the state it is in since when.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuRunstateInfo {
    /// OUT: the current `RUNSTATE_*`.
    pub state: i32,
    /// Padding.
    pub _pad: u32,
    /// OUT: system time (ns) when the vCPU entered `state`.
    pub state_entry_time: u64,
    /// OUT: ns spent in each `RUNSTATE_*`, indexed by state.
    pub time: [u64; 4],
}

const _: () = {
    assert!(size_of::<VcpuRunstateInfo>() == 48);
    assert!(offset_of!(VcpuRunstateInfo, time) == 16);
};

/// Running on a physical CPU.
pub const RUNSTATE_RUNNING: usize = 0;
/// Could run, waiting for a CPU.
pub const RUNSTATE_RUNNABLE: usize = 1;
/// Waiting for an event (`SCHEDOP_block`, `SCHEDOP_poll`).
pub const RUNSTATE_BLOCKED: usize = 2;
/// Neither: paused, down, or shut down.
pub const RUNSTATE_OFFLINE: usize = 3;

/// Fail with -ETIME if the timeout is already in the past.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// callback_op: register a callback (`CallbackRegister`).
pub const CALLBACKOP_REGISTER: u32 = 0;
/// callback_op: unregister a callback (`CallbackUnregister` type only).
pub const CALLBACKOP_UNREGISTER: u32 = 1;
/// Callback: event upcall delivery.
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// Callback: failsafe, entered when Xen cannot restore guest segment state on return.
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// Callback: 64-bit `syscall` from guest user space.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// Callback: NMI delivery.
pub const CALLBACKTYPE_NMI: u16 = 4;
/// Callback: `sysenter` from 32-bit user space (64-bit guests).
pub const CALLBACKTYPE_SYSENTER: u16 = 5;
/// Callback: `syscall` from 32-bit user space (64-bit guests).
pub const CALLBACKTYPE_SYSCALL32: u16 = 7;
/// `CallbackRegister.flags`: mask events while the callback runs.
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
/// `CALLBACKOP_register` argument.
pub struct CallbackRegister {
    /// IN: `CALLBACKTYPE_*`.
    pub type_: u16,
    /// IN: `CALLBACKF_*` flags.
    pub flags: u16,
    /// Padding.
    pub _pad: u32,
    /// IN: the callback's entry address.
    pub address: u64,
}

const _: () = {
    assert!(size_of::<CallbackRegister>() == 16);
    assert!(offset_of!(CallbackRegister, address) == 8);
};

/// memory_op: populate extents for a domain (`MemoryReservation`).
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// memory_op: give extents back to Xen (`MemoryReservation`).
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// memory_op: the highest machine frame number in the system.
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// memory_op: a domain's current number of pages.
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// memory_op: a domain's maximum number of pages.
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// memory_op: list the frames of the machine-to-phys table.
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
/// memory_op: populate guest frames with new memory (`MemoryReservation`).
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// memory_op: map a Xen-owned or shared frame into a guest's physmap.
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// memory_op: the domain's pseudo-physical memory map (`MemoryMap`).
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// memory_op: the host's machine memory map (privileged; `MemoryMap`).
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// memory_op: exchange extents of one order for extents of another.
pub const XENMEM_EXCHANGE: u32 = 11;
/// memory_op: where the machine-to-phys table is mapped.
pub const XENMEM_MACHPHYS_MAPPING: u32 = 12;
/// memory_op: set a domain's memory map (toolstack; `MemoryMap` with a domid).
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// memory_op: the highest guest frame number a domain has used.
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
/// `XENMEM_{increase,decrease}_reservation` and `XENMEM_populate_physmap` argument.
pub struct MemoryReservation {
    /// Guest pointer to `nr_extents` frame numbers.
    pub extent_start: u64,
    /// IN: number of extents.
    pub nr_extents: u64,
    /// IN: log2 of the pages per extent.
    pub extent_order: u32,
    /// IN: `XENMEMF_*` flags (address bits, NUMA node).
    pub mem_flags: u32,
    /// IN: the domain (`DOMID_SELF`, or another for a privileged caller).
    pub domid: DomId,
    /// Padding.
    pub _pad: [u16; 3],
}

const _: () = {
    assert!(size_of::<MemoryReservation>() == 32);
    assert!(offset_of!(MemoryReservation, nr_extents) == 8);
    assert!(offset_of!(MemoryReservation, extent_order) == 16);
    assert!(offset_of!(MemoryReservation, mem_flags) == 20);
    assert!(offset_of!(MemoryReservation, domid) == 24);
};

/// IN: capacity of `buffer` in entries; OUT: entries written.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MemoryMap {
    /// IN: capacity of `buffer`, in entries; OUT: entries written.
    pub nr_entries: u32,
    /// Padding.
    pub _pad: u32,
    /// IN: guest pointer to the `E820Entry` array.
    pub buffer: u64,
}

const _: () = {
    assert!(size_of::<MemoryMap>() == 16);
};

/// An entry of the BIOS E820 format that `XENMEM_memory_map` fills in
/// (memory.h names the format, not a struct): packed, 20 bytes.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed)]
pub struct E820Entry {
    /// Start address of the range.
    pub addr: u64,
    /// Length of the range, in bytes.
    pub size: u64,
    /// `E820_*` type.
    pub type_: u32,
}

const _: () = {
    assert!(size_of::<E820Entry>() == 20);
};

/// E820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;

/// xen_version: the version, as `major << 16 | minor`.
pub const XENVER_VERSION: u32 = 0;
/// xen_version: the extra version string (e.g. `-unstable`).
pub const XENVER_EXTRAVERSION: u32 = 1;
/// xen_version: compiler, builder and date (`CompileInfo`).
pub const XENVER_COMPILE_INFO: u32 = 2;
/// xen_version: the capability string (e.g. `xen-3.0-x86_64`).
pub const XENVER_CAPABILITIES: u32 = 3;
/// xen_version: the source changeset string.
pub const XENVER_CHANGESET: u32 = 4;
/// xen_version: the virtual address where the hypervisor starts.
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// xen_version: one 32-bit submap of `XENFEAT_*` (`FeatureInfo`).
pub const XENVER_GET_FEATURES: u32 = 6;
/// xen_version: the page size.
pub const XENVER_PAGESIZE: u32 = 7;
/// xen_version: the toolstack-assigned domain handle (UUID).
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// xen_version: Xen's command line (privileged).
pub const XENVER_COMMANDLINE: u32 = 9;
/// xen_version: the hypervisor's build id.
pub const XENVER_BUILD_ID: u32 = 10;

/// Bytes of `XENVER_extraversion`'s result.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// Bytes of `XENVER_capabilities`' result.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// Bytes of `XENVER_changeset`'s result.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;

#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
/// `XENVER_compile_info` result.
pub struct CompileInfo {
    /// OUT: the compiler, NUL-terminated.
    pub compiler: [u8; 64],
    /// OUT: who built Xen.
    pub compile_by: [u8; 16],
    /// OUT: the build host's domain.
    pub compile_domain: [u8; 32],
    /// OUT: the build date.
    pub compile_date: [u8; 32],
}

const _: () = {
    assert!(size_of::<CompileInfo>() == 144);
};

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
/// `XENVER_get_features` argument.
pub struct FeatureInfo {
    /// IN: which 32-feature submap.
    pub submap_idx: u32,
    /// OUT: the submap, one bit per `XENFEAT_*`.
    pub submap: u32,
}

const _: () = {
    assert!(size_of::<FeatureInfo>() == 8);
};

/// Feature: page tables may be writable (updates trapped and checked).
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// Feature: descriptor tables may be writable.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// Feature: the physmap is translated (guest frame numbers are not MFNs).
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// Feature: the guest kernel runs in ring 0.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// Feature: a PAE guest's L3 may be above 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// Feature: `MMU_PT_UPDATE_PRESERVE_AD` is available.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// Feature: the `highmem` VM assist is available.
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// Feature: the top bits of `GNTTABOP_map_grant_ref` PTEs are free for the guest.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// Feature: HVM guests may take event upcalls on a vector.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// Feature: HVM guests may use the PV clock safely.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// Feature: HVM guests' physical IRQs go through event channels.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// Feature: the domain is the hardware domain (dom0).
pub const XENFEAT_DOM0: u32 = 11;
/// Deprecated; commented out in Xen's current headers.
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
/// Feature: memory ops accept `XENMEMF_vnode` (a virtual NUMA node).
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// Feature: Arm SMCCC is available.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// Feature: the guest may find the RSDP anywhere (not just below 1 MiB).
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// Feature: the domain is not direct-mapped (guest frames differ from machine frames).
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// Feature: the domain is direct-mapped (guest frames equal machine frames).
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// `XENVER_get_features` submaps (32 features each).
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

/// ELF note types in the "Xen" note namespace.
pub const XEN_ELFNOTE_NAME: &[u8] = b"Xen";
/// Note: free-form `NAME=VALUE` information.
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// Note: the virtual entry address.
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// Note: the virtual address of the hypercall page.
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// Note: the virtual address the image is linked at.
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// Note: offset from virtual to physical load addresses.
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// Note: the Xen version the image needs (`"xen-3.0"`).
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// Note: the guest OS name.
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// Note: the guest OS version.
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// Note: the loader the image needs (`"generic"`).
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// Note: PAE support (`"yes"`, `"no"`, `"bimodal"`).
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// Note: the features the image needs or supports (`|`-separated names).
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// Note: load the symbol table (`"yes"`).
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// Note: lowest address the hypervisor may use (32-bit PAE guests).
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// Note: mask and value of L1 entries that hold valid MFNs.
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// Note: the image handles `SHUTDOWN_suspend` being cancelled.
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// Note: where to map the initial P2M table (virtual address).
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// Note: `start_info.mod_start` may be a PFN (`SIF_MOD_START_PFN`).
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// Note: bitmap of `XENFEAT_*` the image supports.
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// Note: 32-bit physical entry address (PVH).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// The project's own ELF note namespace. Xen's loader ignores notes outside
/// its "Xen" namespace, so images carrying these still boot on Xen.
pub const HV_ELFNOTE_NAME: &[u8] = b"HvCore";
/// Descriptor: one little-endian `u32`, the image's
/// [`AbiVersion`](crate::AbiVersion) packed as `major << 16 | minor`.
pub const HV_ELFNOTE_ABI_VERSION: u32 = 1;
