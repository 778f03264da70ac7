//! Guest user mode.
//!
//! A PV64 guest kernel and its user code both run in ring 3; the hypervisor
//! keeps them apart with two page-table roots per vCPU: the kernel's
//! (`MMUEXT_NEW_BASEPTR`) and the user's (`MMUEXT_NEW_USER_BASEPTR`). It
//! switches to the user root when `HYPERVISOR_iret` returns to a CS with
//! RPL 3, and back to the kernel root (and the `stack_switch` stack) when
//! user code traps, takes an event or executes `syscall`.
//!
//! The SDK's layout: user code lives in the low 512 GiB (L4 slot 0). The
//! user root holds only that slot, pointing at the same L3 table as the
//! kernel's slot 0, so the kernel sees user memory at the same addresses
//! and user mode sees nothing of the kernel.
//!
//! `syscall` from user mode arrives as the CALLBACKTYPE_SYSCALL callback
//! (registered with events masked) with a frame like an exception's
//! without error code; RAX, RDI, RSI, RDX, R10, R8 and R9 hold the user's
//! number and arguments. The handler sets RAX and returns to user mode, or
//! ends the session, which returns from [`UserSpace::run`].

use crate::fn_cell::FnCell;
use crate::traps::TrapFrame;

/// What a system-call handler wants done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallAction {
    /// Return to user mode with `frame.rax` as the result.
    Resume,
    /// End the user session: [`UserSpace::run`] returns this value.
    Exit(u64),
}

/// Handles a `syscall` from guest user mode: the registers are the user's
/// (`rax` the number, by convention); says whether to resume or end the session.
pub type SyscallHandler = fn(&mut TrapFrame) -> SyscallAction;

static SYSCALL_HANDLER: FnCell<SyscallHandler> = FnCell::new();

/// The top of the user half of the address space used by the SDK (L4 slot
/// 0: 512 GiB).
pub const USER_END: u64 = 1 << 39;

#[cfg(target_os = "none")]
pub use self::target::*;

#[cfg(target_os = "none")]
mod target {
    use super::{SYSCALL_HANDLER, SyscallAction, SyscallHandler, USER_END};
    use crate::mm::{self, Frame, MapError, pte};
    use crate::traps::TrapFrame;
    use crate::{arch, events};

    pub use crate::arch::user::{exit_session, in_user_session};

    /// Sets the handler for `syscall` from user mode.
    pub fn set_syscall_handler(handler: SyscallHandler) {
        SYSCALL_HANDLER.set(handler);
    }

    /// Called by `traps::dispatch` for a system call from user mode.
    pub(crate) fn syscall(frame: &mut TrapFrame) {
        let action = match SYSCALL_HANDLER.get() {
            Some(handler) => handler(frame),
            None => {
                frame.rax = abi::Errno::NoSys.to_ret() as u64;
                SyscallAction::Resume
            }
        };
        if let SyscallAction::Exit(value) = action {
            exit_session(value)
        }
    }

    /// Copies user memory at `va` into `out`, after checking that every page
    /// of the range is a present user mapping below [`USER_END`]. (User
    /// code cannot run while the kernel copies: the SDK is single-vCPU.)
    pub fn copy_from_user(va: u64, out: &mut [u8]) -> Result<(), MapError> {
        let end = va
            .checked_add(out.len() as u64)
            .ok_or(MapError::BadAddress(va))?;
        if end > USER_END {
            return Err(MapError::BadAddress(va));
        }
        let mut page = va & !(crate::layout::PAGE_SIZE - 1);
        while page < end {
            let entry = mm::lookup(page)?;
            if entry & pte::USER == 0 {
                return Err(MapError::BadAddress(page));
            }
            page += crate::layout::PAGE_SIZE;
        }
        crate::arch::user::copy_from_user_checked(va, out);
        Ok(())
    }

    /// A user address space: its root table, sharing the kernel's slot 0.
    pub struct UserSpace {
        root: Frame,
    }

    impl UserSpace {
        /// Builds a user root whose only entry is the kernel's L4 slot 0.
        pub fn new() -> Result<Self, MapError> {
            let slot0 = mm::ensure_kernel_l4_slot(0)?;
            let root = mm::new_table(&[slot0])?;
            Ok(Self { root })
        }

        /// Maps machine frame `mfn` at user address `va` (below [`USER_END`]).
        pub fn map(&mut self, va: u64, mfn: u64, writable: bool) -> Result<(), MapError> {
            if va >= USER_END {
                return Err(MapError::BadAddress(va));
            }
            let flags = pte::PRESENT
                | pte::USER
                | pte::ACCESSED
                | if writable {
                    pte::WRITABLE | pte::DIRTY
                } else {
                    0
                };
            mm::map(va, mfn, flags)
        }

        /// Allocates a frame, copies `bytes` (at most a page) into it and
        /// maps it at `va`.
        pub fn load(&mut self, va: u64, bytes: &[u8], writable: bool) -> Result<Frame, MapError> {
            let frame = mm::alloc_frame_filled(bytes)?;
            self.map(va, frame.mfn, writable)?;
            Ok(frame)
        }

        /// Runs user code at `rip` with stack pointer `rsp` until a handler
        /// ends the session; returns the value it ended with. Upcalls are
        /// unmasked in user mode and put back as they were afterwards.
        pub fn run(&self, rip: u64, rsp: u64) -> crate::Result<u64> {
            mm::set_user_root(&self.root)?;
            let was_enabled = events::disable();
            let value = arch::user::run(rip, rsp);
            events::restore(was_enabled);
            value
        }
    }
}
