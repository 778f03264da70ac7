//! Grant tables, version 1 (`grant_table.h`).

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::xen::DomId;

/// A grant reference: an index into the granter's grant table (`grant_ref_t`).
pub type GrantRef = u32;
/// A handle for a mapped grant, returned by map and passed to unmap (`grant_handle_t`).
pub type GrantHandle = u32;

/// Map a foreign domain's granted frame.
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
/// Unmap a mapping made by `GNTTABOP_map_grant_ref`.
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
/// Set up the caller's grant table and get its frame list.
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
/// Dump a domain's grant table to Xen's console (debugging).
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
/// Transfer a page to a domain that accepts transfers.
pub const GNTTABOP_TRANSFER: u32 = 4;
/// Copy bytes between frames named by grant reference or frame number.
pub const GNTTABOP_COPY: u32 = 5;
/// Query a domain's current and maximum grant-table frames.
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
/// Unmap a grant, replacing the mapping with another address's.
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
/// Select grant-table version 1 or 2.
pub const GNTTABOP_SET_VERSION: u32 = 8;
/// Get the frames of the v2 status table.
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
/// Get the grant-table version in use.
pub const GNTTABOP_GET_VERSION: u32 = 10;
/// Swap two grant entries of the caller's table.
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
/// Flush or clean the cache of granted frames (Arm).
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

/// One grant: `domid` may access `frame` as `flags` allow.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GrantEntryV1 {
    /// `GTF_*`: the granter writes the type and `GTF_readonly` (last, once
    /// `domid` and `frame` are set); the hypervisor sets `GTF_reading`/
    /// `GTF_writing` while the grant is in use.
    pub flags: u16,
    /// The domain allowed to use the grant.
    pub domid: DomId,
    /// The granted frame (`GTF_permit_access`).
    pub frame: u32,
}

const _: () = {
    assert!(size_of::<GrantEntryV1>() == 8);
    assert!(offset_of!(GrantEntryV1, domid) == 2);
    assert!(offset_of!(GrantEntryV1, frame) == 4);
};

/// Grant type: the entry grants nothing.
pub const GTF_INVALID: u16 = 0;
/// Grant type: `domid` may map or copy `frame`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// Grant type: `domid` may transfer a page to us.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// Grant type: a grant of a grant another domain made us (v2).
pub const GTF_TRANSITIVE: u16 = 3;
/// Mask of the grant-type bits of `flags`.
pub const GTF_TYPE_MASK: u16 = 3;
/// Flag: the grant is read-only.
pub const GTF_READONLY: u16 = 1 << 2;
/// Status, set by Xen: the grant is in use for reading.
pub const GTF_READING: u16 = 1 << 3;
/// Status, set by Xen: the grant is in use for writing.
pub const GTF_WRITING: u16 = 1 << 4;
/// Flag: map with cache attribute PWT.
pub const GTF_PWT: u16 = 1 << 5;
/// Flag: map with cache attribute PCD.
pub const GTF_PCD: u16 = 1 << 6;
/// Flag: map with cache attribute PAT.
pub const GTF_PAT: u16 = 1 << 7;
/// Flag: the grant covers only part of the frame (v2).
pub const GTF_SUB_PAGE: u16 = 1 << 8;

/// Map op flag: map for device (DMA) access.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// Map op flag: map into the host's page tables.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// Map op flag: map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// Map op flag: map for user (application) access, not just the kernel.
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// Map op flag: `host_addr` is the address of the PTE to write, not a virtual address.
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;

/// Per-op status codes (`GNTST_*`).
pub const GNTST_OKAY: i16 = 0;
/// Status: unspecified error.
pub const GNTST_GENERAL_ERROR: i16 = -1;
/// Status: unknown or unusable domain.
pub const GNTST_BAD_DOMAIN: i16 = -2;
/// Status: bad grant reference.
pub const GNTST_BAD_GNTREF: i16 = -3;
/// Status: bad map handle.
pub const GNTST_BAD_HANDLE: i16 = -4;
/// Status: bad virtual address.
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
/// Status: bad device address.
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
/// Status: no room left to map the grant for the device.
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
/// Status: the grant does not permit the operation.
pub const GNTST_PERMISSION_DENIED: i16 = -8;
/// Status: bad page.
pub const GNTST_BAD_PAGE: i16 = -9;
/// Status: the copy crosses a page boundary.
pub const GNTST_BAD_COPY_ARG: i16 = -10;
/// Status: the address is too wide for the op.
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
/// Status: operation not done; try again.
pub const GNTST_EAGAIN: i16 = -12;
/// Status: out of space (hypervisor resources).
pub const GNTST_NO_SPACE: i16 = -13;

/// `gnttab_map_grant_ref`: maps grant `ref_` of `dom` at `host_addr`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MapGrantRef {
    /// IN: where to map (`GNTMAP_host_map`); with `GNTMAP_contains_pte`, the
    /// machine address of the PTE to write.
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the grant reference in `dom`'s table.
    pub ref_: GrantRef,
    /// IN: the granting domain.
    pub dom: DomId,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: names the mapping for `GNTTABOP_unmap_grant_ref`.
    pub handle: GrantHandle,
    /// OUT: the bus address (`GNTMAP_device_map`).
    pub dev_bus_addr: u64,
}

const _: () = {
    assert!(size_of::<MapGrantRef>() == 32);
    assert!(offset_of!(MapGrantRef, flags) == 8);
    assert!(offset_of!(MapGrantRef, ref_) == 12);
    assert!(offset_of!(MapGrantRef, dom) == 16);
    assert!(offset_of!(MapGrantRef, status) == 18);
    assert!(offset_of!(MapGrantRef, handle) == 20);
    assert!(offset_of!(MapGrantRef, dev_bus_addr) == 24);
};

/// `gnttab_unmap_grant_ref`: undoes one mapping.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct UnmapGrantRef {
    /// IN: the address the grant was mapped at (0: no host mapping).
    pub host_addr: u64,
    /// IN: the bus address of a device mapping (0: none).
    pub dev_bus_addr: u64,
    /// IN: the handle `GNTTABOP_map_grant_ref` returned.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; must be zero.
    pub _pad: u16,
}

const _: () = {
    assert!(size_of::<UnmapGrantRef>() == 24);
    assert!(offset_of!(UnmapGrantRef, handle) == 16);
    assert!(offset_of!(UnmapGrantRef, status) == 20);
};

/// Gives the grant table `nr_frames` frames; OUT: their MFNs in
/// `frame_list` (a guest pointer), `status`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SetupTable {
    /// IN: the domain whose table to set up (`DOMID_SELF`).
    pub dom: DomId,
    /// Padding; must be zero.
    pub _pad0: u16,
    /// IN: how many table frames.
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; must be zero.
    pub _pad1: [u16; 3],
    /// OUT: guest pointer to `nr_frames` `xen_pfn_t`s, filled with the
    /// frames of the table.
    pub frame_list: u64,
}

const _: () = {
    assert!(size_of::<SetupTable>() == 24);
    assert!(offset_of!(SetupTable, nr_frames) == 4);
    assert!(offset_of!(SetupTable, status) == 8);
    assert!(offset_of!(SetupTable, frame_list) == 16);
};

/// `gnttab_query_size`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct QuerySize {
    /// IN: the domain whose table to query (`DOMID_SELF`).
    pub dom: DomId,
    /// Padding; must be zero.
    pub _pad0: u16,
    /// OUT: frames the table has now.
    pub nr_frames: u32,
    /// OUT: frames it may grow to.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; must be zero.
    pub _pad1: u16,
}

const _: () = {
    assert!(size_of::<QuerySize>() == 16);
    assert!(offset_of!(QuerySize, max_nr_frames) == 8);
    assert!(offset_of!(QuerySize, status) == 12);
};

/// One side of a grant copy: a grant ref (with `GNTCOPY_*_gref`) or a frame.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CopyPtr {
    /// `ref` or `gmfn`, by the op's flags.
    pub u: u64,
    /// The domain owning the frame or the grant.
    pub domid: DomId,
    /// Byte offset in the frame.
    pub offset: u16,
    /// Padding; must be zero.
    pub _pad: u32,
}

const _: () = {
    assert!(size_of::<CopyPtr>() == 16);
};

/// `gnttab_copy`: copies `len` bytes between two frames, either named
/// by grant reference or (own frames only) by frame number.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Copy {
    /// IN: where to copy from.
    pub source: CopyPtr,
    /// IN: where to copy to.
    pub dest: CopyPtr,
    /// IN: bytes; source and destination must stay within their frames.
    pub len: u16,
    /// IN: `GNTCOPY_source_gref`, `GNTCOPY_dest_gref`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Padding; must be zero.
    pub _pad: u16,
}

const _: () = {
    assert!(size_of::<Copy>() == 40);
    assert!(offset_of!(Copy, dest) == 16);
    assert!(offset_of!(Copy, len) == 32);
    assert!(offset_of!(Copy, flags) == 34);
    assert!(offset_of!(Copy, status) == 36);
};

/// Copy flag: `source.u` is a grant reference, not a frame number.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// Copy flag: `dest.u` is a grant reference, not a frame number.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;
