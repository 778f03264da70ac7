//! Traps and callbacks: `set_trap_table`, `stack_switch`,
//! `set_callbacks`, `callback_op`, `set_segment_base`.

use abi::Errno;
use abi::ops::{
    CALLBACKF_MASK_EVENTS, CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER, CALLBACKTYPE_EVENT,
    CALLBACKTYPE_FAILSAFE, CALLBACKTYPE_NMI, CALLBACKTYPE_SYSCALL, CALLBACKTYPE_SYSCALL32,
    CALLBACKTYPE_SYSENTER, CallbackRegister,
};
use abi::xen::{DomId, SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER, TrapInfo};

use crate::arch::pv::{self, is_canonical};
use crate::domain::{self, TrapEntry};
use crate::guest;

/// A trap table longer than this (without its terminating entry) is
/// refused; there are only 256 vectors.
const MAX_TRAP_ENTRIES: u64 = 256;

#[derive(Clone, Copy, Debug)]
pub struct SetTrapTable {
    pub table: u64,
}

impl SetTrapTable {
    /// Xen's semantics: a null table clears every entry; otherwise entries
    /// are read up to one with address 0, and each replaces its vector's.
    pub fn handle(self) -> Result<i64, Errno> {
        if self.table == 0 {
            domain::with_current_vcpu(|v| v.traps = [TrapEntry::default(); 256]);
            return Ok(0);
        }
        let table = guest::GuestArray::<TrapInfo>::new(self.table, MAX_TRAP_ENTRIES + 1);
        for i in 0..table.len() {
            let entry = table.at(i)?.read()?;
            if entry.address == 0 {
                return Ok(0);
            }
            if !is_canonical(entry.address) {
                return Err(Errno::Inval);
            }
            domain::with_current_vcpu(|v| {
                v.traps[entry.vector as usize] = TrapEntry {
                    address: entry.address,
                    flags: entry.flags,
                }
            });
        }
        Err(Errno::Inval)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct StackSwitch {
    /// Ignored: a PV64 guest kernel's stack segment is always the flat
    /// ring-3 one.
    pub _ss: u64,
    pub sp: u64,
}

impl StackSwitch {
    pub fn handle(self) -> Result<i64, Errno> {
        domain::with_current_vcpu(|v| v.kernel_sp = self.sp);
        Ok(0)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct SetCallbacks {
    pub event: u64,
    pub failsafe: u64,
    pub syscall: u64,
}

impl SetCallbacks {
    pub fn handle(self) -> Result<i64, Errno> {
        for address in [self.event, self.failsafe, self.syscall] {
            if !is_canonical(address) {
                return Err(Errno::Inval);
            }
        }
        domain::with_current_vcpu(|v| {
            let c = &mut v.callbacks;
            c.event = self.event;
            c.failsafe = self.failsafe;
            c.syscall = self.syscall;
        });
        // The exit path reads the held vCPU's event callback from this
        // CPU's block.
        crate::arch::percpu::current().set_guest_event_callback(self.event);
        Ok(0)
    }
}

super::op_family! {
    /// A `callback_op` request.
    CallbackOp(DomId) {
        CALLBACKOP_REGISTER => Register(CallbackRegister), in => register;
        CALLBACKOP_UNREGISTER => Unregister(u16), in => unregister;
    }
}

fn register(cb: &mut CallbackRegister, _caller: DomId) -> Result<i64, Errno> {
    if !is_canonical(cb.address) {
        return Err(Errno::Inval);
    }
    set_callback(cb.type_, cb.address, cb.flags & CALLBACKF_MASK_EVENTS != 0)
}

/// As Xen: only the NMI callback can be unregistered; the others are
/// cleared by registering address 0.
fn unregister(kind: &mut u16, _caller: DomId) -> Result<i64, Errno> {
    match *kind {
        CALLBACKTYPE_NMI => Ok(0),
        _ => Err(Errno::Inval),
    }
}

fn set_callback(kind: u16, address: u64, mask_events: bool) -> Result<i64, Errno> {
    domain::with_current_vcpu(|v| {
        let c = &mut v.callbacks;
        match kind {
            CALLBACKTYPE_EVENT => {
                c.event = address;
                // As in `SetCallbacks::handle`: the exit path's copy.
                crate::arch::percpu::current().set_guest_event_callback(address);
            }
            CALLBACKTYPE_FAILSAFE => {
                c.failsafe = address;
                c.failsafe_masks_events = mask_events;
            }
            CALLBACKTYPE_SYSCALL => {
                c.syscall = address;
                c.syscall_masks_events = mask_events;
            }
            CALLBACKTYPE_SYSCALL32 => {
                c.syscall32 = address;
                c.syscall32_masks_events = mask_events;
            }
            CALLBACKTYPE_SYSENTER => {
                c.sysenter = address;
                c.sysenter_masks_events = mask_events;
            }
            // hv-core never injects NMIs into guests; accepting the
            // registration keeps guests that always make it working.
            CALLBACKTYPE_NMI => {}
            _ => return Err(Errno::Inval),
        }
        Ok(0)
    })
}

#[derive(Clone, Copy, Debug)]
pub struct SetSegmentBase {
    pub which: u32,
    pub base: u64,
}

impl SetSegmentBase {
    pub fn handle(self) -> Result<i64, Errno> {
        if !is_canonical(self.base) {
            return Err(Errno::Inval);
        }
        let bases = domain::with_current_vcpu(|vcpu| {
            match self.which {
                SEGBASE_FS => vcpu.fs_base = self.base,
                SEGBASE_GS_USER => vcpu.gs_base_user = self.base,
                SEGBASE_GS_KERNEL => vcpu.gs_base_kernel = self.base,
                _ => return Err(Errno::Inval),
            }
            Ok(vcpu.segment_bases())
        })?;
        pv::load_segment_bases(&bases);
        Ok(0)
    }
}
