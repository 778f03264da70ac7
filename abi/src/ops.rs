//! The smaller op families: scheduling (`sched.h`), vCPUs (`vcpu.h`),
//! callbacks (`callback.h`), memory (`memory.h`), version and features
//! (`version.h`, `features.h`) and ELF notes (`elfnote.h`).

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::xen::DomId;

pub const SCHEDOP_YIELD: u32 = 0;
pub const SCHEDOP_BLOCK: u32 = 1;
pub const SCHEDOP_SHUTDOWN: u32 = 2;
pub const SCHEDOP_POLL: u32 = 3;
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
pub const SCHEDOP_WATCHDOG: u32 = 6;
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

pub const SHUTDOWN_POWEROFF: u32 = 0;
pub const SHUTDOWN_REBOOT: u32 = 1;
pub const SHUTDOWN_SUSPEND: u32 = 2;
pub const SHUTDOWN_CRASH: u32 = 3;
pub const SHUTDOWN_WATCHDOG: u32 = 4;
pub const SHUTDOWN_SOFT_RESET: u32 = 5;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SchedShutdown {
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
    pub ports: u64,
    pub nr_ports: u32,
    pub _pad: u32,
    pub timeout: u64,
}

const _: () = {
    assert!(size_of::<SchedPoll>() == 24);
    assert!(offset_of!(SchedPoll, nr_ports) == 8);
    assert!(offset_of!(SchedPoll, timeout) == 16);
};

pub const VCPUOP_INITIALISE: u32 = 0;
pub const VCPUOP_UP: u32 = 1;
pub const VCPUOP_DOWN: u32 = 2;
pub const VCPUOP_IS_UP: u32 = 3;
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
pub const VCPUOP_SEND_NMI: u32 = 11;
pub const VCPUOP_GET_PHYSID: u32 = 12;
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time in ns.
    pub timeout_abs_ns: u64,
    pub flags: u32,
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
    pub state: i32,
    pub _pad: u32,
    pub state_entry_time: u64,
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

pub const CALLBACKOP_REGISTER: u32 = 0;
pub const CALLBACKOP_UNREGISTER: u32 = 1;
pub const CALLBACKTYPE_EVENT: u16 = 0;
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
pub const CALLBACKTYPE_NMI: u16 = 4;
pub const CALLBACKTYPE_SYSENTER: u16 = 5;
pub const CALLBACKTYPE_SYSCALL32: u16 = 7;
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CallbackRegister {
    pub type_: u16,
    pub flags: u16,
    pub _pad: u32,
    pub address: u64,
}

const _: () = {
    assert!(size_of::<CallbackRegister>() == 16);
    assert!(offset_of!(CallbackRegister, address) == 8);
};

pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
pub const XENMEM_MEMORY_MAP: u32 = 9;
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
pub const XENMEM_EXCHANGE: u32 = 11;
pub const XENMEM_MACHPHYS_MAPPING: u32 = 12;
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MemoryReservation {
    /// Guest pointer to `nr_extents` frame numbers.
    pub extent_start: u64,
    pub nr_extents: u64,
    pub extent_order: u32,
    pub mem_flags: u32,
    pub domid: DomId,
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
    pub nr_entries: u32,
    pub _pad: u32,
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
    pub addr: u64,
    pub size: u64,
    pub type_: u32,
}

const _: () = {
    assert!(size_of::<E820Entry>() == 20);
};

pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

pub const XENVER_VERSION: u32 = 0;
pub const XENVER_EXTRAVERSION: u32 = 1;
pub const XENVER_COMPILE_INFO: u32 = 2;
pub const XENVER_CAPABILITIES: u32 = 3;
pub const XENVER_CHANGESET: u32 = 4;
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
pub const XENVER_GET_FEATURES: u32 = 6;
pub const XENVER_PAGESIZE: u32 = 7;
pub const XENVER_GUEST_HANDLE: u32 = 8;
pub const XENVER_COMMANDLINE: u32 = 9;
pub const XENVER_BUILD_ID: u32 = 10;

pub const XEN_EXTRAVERSION_LEN: usize = 16;
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
pub const XEN_CHANGESET_INFO_LEN: usize = 64;

#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompileInfo {
    pub compiler: [u8; 64],
    pub compile_by: [u8; 16],
    pub compile_domain: [u8; 32],
    pub compile_date: [u8; 32],
}

const _: () = {
    assert!(size_of::<CompileInfo>() == 144);
};

#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct FeatureInfo {
    pub submap_idx: u32,
    pub submap: u32,
}

const _: () = {
    assert!(size_of::<FeatureInfo>() == 8);
};

pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
pub const XENFEAT_HVM_PIRQS: u32 = 10;
pub const XENFEAT_DOM0: u32 = 11;
/// Deprecated; commented out in Xen's current headers.
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// `XENVER_get_features` submaps (32 features each).
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

/// ELF note types in the "Xen" note namespace.
pub const XEN_ELFNOTE_NAME: &[u8] = b"Xen";
pub const XEN_ELFNOTE_INFO: u32 = 0;
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
pub const XEN_ELFNOTE_LOADER: u32 = 8;
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// The project's own ELF note namespace. Xen's loader ignores notes outside
/// its "Xen" namespace, so images carrying these still boot on Xen.
pub const HV_ELFNOTE_NAME: &[u8] = b"HvCore";
/// Descriptor: one little-endian `u32`, the image's
/// [`AbiVersion`](crate::AbiVersion) packed as `major << 16 | minor`.
pub const HV_ELFNOTE_ABI_VERSION: u32 = 1;
