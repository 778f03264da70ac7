//! `memory_op`: what a guest needs to learn its memory.

use abi::Errno;
use abi::ops::{
    E820_RAM, E820Entry, MemoryMap, XENMEM_CURRENT_RESERVATION, XENMEM_MAXIMUM_RAM_PAGE,
    XENMEM_MAXIMUM_RESERVATION, XENMEM_MEMORY_MAP,
};

use crate::{domain, guest, memory};

/// The command is in the low bits; Xen keeps continuation state above.
const MEMOP_CMD_MASK: u64 = 0x3f;

#[derive(Clone, Copy, Debug)]
pub struct MemoryOp {
    pub cmd: u64,
    pub arg: u64,
}

impl MemoryOp {
    pub fn handle(self) -> Result<i64, Errno> {
        match (self.cmd & MEMOP_CMD_MASK) as u32 {
            XENMEM_MEMORY_MAP => {
                let mut map: MemoryMap = guest::read(self.arg)?;
                if map.nr_entries < 1 {
                    return Err(Errno::Inval);
                }
                let pages = domain::with_current(|d| d.nr_pages);
                let ram = E820Entry {
                    addr: 0,
                    size: pages << 12,
                    type_: E820_RAM,
                };
                guest::write(map.buffer, &ram)?;
                map.nr_entries = 1;
                guest::write(self.arg, &map)?;
                Ok(0)
            }
            XENMEM_MAXIMUM_RAM_PAGE => Ok(memory::max_mfn() as i64),
            XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION => {
                let dom: u16 = guest::read(self.arg)?;
                if !domain::is_self(dom) {
                    return Err(Errno::Perm);
                }
                Ok(domain::with_current(|d| d.nr_pages) as i64)
            }
            _ => Err(Errno::NoSys),
        }
    }
}
