//! Exceptions, event upcalls and system calls, as the hypervisor bounces
//! them into the guest kernel.
//!
//! The stubs in `arch::entry` turn each bounce into a [`TrapFrame`] and call
//! [`dispatch`]. Exceptions go to the handler registered for their vector
//! (a handler that returns `true` resumes at `frame.rip`, which it may have
//! changed); an exception nobody handles prints a report and crashes the
//! domain. Event upcalls go to `events`, system calls from guest user mode
//! to `user`.

use core::fmt;

use crate::fn_cell::FnCell;

/// The pseudo vector the event-callback stub pushes (the non-exception
/// stubs push vectors above 0xff): an upcall for pending event channels.
pub const VECTOR_EVENT: u64 = 0x100;
/// The failsafe callback: the hypervisor could not load the guest's
/// segment registers on return (e.g. in `HYPERVISOR_iret`).
pub const VECTOR_FAILSAFE: u64 = 0x101;
/// A `syscall` from guest user mode, bounced to the syscall callback.
pub const VECTOR_SYSCALL: u64 = 0x102;

/// What the entry stubs save, lowest address first: the general registers,
/// the vector and error code, then the hypervisor's frame.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct TrapFrame {
    /// `r15` of the interrupted code, saved by the entry stub.
    pub r15: u64,
    /// `r14` of the interrupted code, saved by the entry stub.
    pub r14: u64,
    /// `r13` of the interrupted code, saved by the entry stub.
    pub r13: u64,
    /// `r12` of the interrupted code, saved by the entry stub.
    pub r12: u64,
    /// `r11` of the interrupted code, saved by the entry stub.
    pub r11: u64,
    /// `r10` of the interrupted code, saved by the entry stub.
    pub r10: u64,
    /// `r9` of the interrupted code, saved by the entry stub.
    pub r9: u64,
    /// `r8` of the interrupted code, saved by the entry stub.
    pub r8: u64,
    /// `rbp` of the interrupted code, saved by the entry stub.
    pub rbp: u64,
    /// `rdi` of the interrupted code, saved by the entry stub.
    pub rdi: u64,
    /// `rsi` of the interrupted code, saved by the entry stub.
    pub rsi: u64,
    /// `rdx` of the interrupted code, saved by the entry stub.
    pub rdx: u64,
    /// `rcx` of the interrupted code, saved by the entry stub.
    pub rcx: u64,
    /// `rbx` of the interrupted code, saved by the entry stub.
    pub rbx: u64,
    /// `rax` of the interrupted code, saved by the entry stub.
    pub rax: u64,
    /// The exception vector, or one of the `VECTOR_*` pseudo vectors.
    pub vector: u64,
    /// The exception's error code (0 for vectors without one).
    pub error_code: u64,
    /// Where the interrupted code resumes (from the hypervisor's frame);
    /// a handler may change it.
    pub rip: u64,
    /// CS in bits 0-15 (RPL 0: the guest kernel was interrupted, 3: guest
    /// user mode) and the upcall mask from before the bounce in bits 32-39.
    pub cs: u64,
    /// RFLAGS of the interrupted code.
    pub rflags: u64,
    /// The interrupted code's stack pointer.
    pub rsp: u64,
    /// The interrupted code's stack segment.
    pub ss: u64,
}

impl TrapFrame {
    /// Whether the interrupted code was guest user mode.
    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// The upcall mask the vCPU had before the bounce.
    pub fn saved_upcall_mask(&self) -> u8 {
        (self.cs >> 32) as u8
    }
}

/// An exception as a handler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exception {
    /// The exception vector (`DIVIDE_ERROR`..`SIMD_FLOATING_POINT`).
    pub vector: u8,
    /// The error code the CPU pushed (0 for vectors without one; for page
    /// faults, see [`PageFaultCode`]).
    pub error_code: u64,
    /// The faulting address, for page faults (from `vcpu_info.arch.cr2`).
    pub cr2: Option<u64>,
}

impl Exception {
    /// The exception's name and mnemonic, e.g. `page fault (#PF)`.
    pub fn name(&self) -> &'static str {
        exception_name(self.vector)
    }
}

/// Returns `true` if it dealt with the exception; execution resumes at
/// `frame.rip`.
pub type ExceptionHandler = fn(&Exception, &mut TrapFrame) -> bool;

/// Vector #DE: division by zero or a quotient too large.
pub const DIVIDE_ERROR: u8 = 0;
/// Vector #DB: a debug exception (single step, breakpoint registers).
pub const DEBUG: u8 = 1;
/// Vector #BP: an `int3`.
pub const BREAKPOINT: u8 = 3;
/// Vector #OF: `into` with the overflow flag set.
pub const OVERFLOW: u8 = 4;
/// Vector #BR: `bound` out of range.
pub const BOUND_RANGE: u8 = 5;
/// Vector #UD: an undefined or disallowed instruction (e.g. `ud2`).
pub const INVALID_OPCODE: u8 = 6;
/// Vector #NM: an FPU/SSE instruction with CR0.TS set (the PV guest sets it with `HYPERVISOR_fpu_taskswitch`).
pub const DEVICE_NOT_AVAILABLE: u8 = 7;
/// Vector #TS: an invalid TSS.
pub const INVALID_TSS: u8 = 10;
/// Vector #NP: a segment not present.
pub const SEGMENT_NOT_PRESENT: u8 = 11;
/// Vector #SS: a stack-segment fault.
pub const STACK_FAULT: u8 = 12;
/// Vector #GP: a general protection fault (a privileged instruction, a non-canonical address, ...).
pub const GENERAL_PROTECTION: u8 = 13;
/// Vector #PF: a page fault; the address is [`Exception::cr2`], the cause [`PageFaultCode`].
pub const PAGE_FAULT: u8 = 14;
/// Vector #MF: an x87 floating-point error.
pub const X87_FLOATING_POINT: u8 = 16;
/// Vector #AC: an unaligned access with alignment checking on.
pub const ALIGNMENT_CHECK: u8 = 17;
/// Vector #MC: a machine check.
pub const MACHINE_CHECK: u8 = 18;
/// Vector #XM: an SSE floating-point exception.
pub const SIMD_FLOATING_POINT: u8 = 19;

/// The name and mnemonic of exception `vector` ("reserved vector" for
/// those the CPU does not define).
pub fn exception_name(vector: u8) -> &'static str {
    match vector {
        0 => "divide error (#DE)",
        1 => "debug (#DB)",
        2 => "NMI",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        8 => "double fault (#DF)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack fault (#SS)",
        13 => "general protection (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating point (#MF)",
        17 => "alignment check (#AC)",
        18 => "machine check (#MC)",
        19 => "SIMD floating point (#XM)",
        _ => "reserved vector",
    }
}

/// Page-fault error code bits, spelled out.
pub struct PageFaultCode(pub u64);

impl fmt::Display for PageFaultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        write!(
            f,
            "{} {} in {} mode{}{}",
            if c & 1 != 0 {
                "protection violation"
            } else {
                "not present"
            },
            if c & 0x10 != 0 {
                "on instruction fetch"
            } else if c & 2 != 0 {
                "on write"
            } else {
                "on read"
            },
            if c & 4 != 0 { "user" } else { "kernel" },
            if c & 8 != 0 { ", reserved bit set" } else { "" },
            if c & 0x20 != 0 {
                ", protection key"
            } else {
                ""
            },
        )
    }
}

static HANDLERS: [FnCell<ExceptionHandler>; 32] = [const { FnCell::new() }; 32];

/// Registers `handler` for exception `vector` (replacing any other).
pub fn set_handler(vector: u8, handler: ExceptionHandler) {
    HANDLERS[vector as usize % 32].set(handler);
}

/// Removes the handler for exception `vector`; the exception then crashes
/// the domain with a [`Report`].
pub fn clear_handler(vector: u8) {
    HANDLERS[vector as usize % 32].clear();
}

fn handler(vector: u8) -> Option<ExceptionHandler> {
    HANDLERS[vector as usize % 32].get()
}

/// The report printed for an exception nobody handled.
pub struct Report<'a> {
    /// The exception nobody handled.
    pub exception: &'a Exception,
    /// The registers at the exception.
    pub frame: &'a TrapFrame,
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (e, r) = (self.exception, self.frame);
        writeln!(
            f,
            "unhandled {} (vector {}) in guest {} mode, error code {:#x}",
            e.name(),
            e.vector,
            if r.from_user() { "user" } else { "kernel" },
            e.error_code
        )?;
        if let Some(cr2) = e.cr2 {
            writeln!(f, "  CR2 {cr2:#018x}: {}", PageFaultCode(e.error_code))?;
        }
        writeln!(
            f,
            "  RIP {:#018x}  CS {:#06x}  RFLAGS {:#010x}  RSP {:#018x}  SS {:#06x}",
            r.rip, r.cs as u16, r.rflags, r.rsp, r.ss as u16
        )?;
        writeln!(
            f,
            "  RAX {:#018x}  RBX {:#018x}  RCX {:#018x}  RDX {:#018x}",
            r.rax, r.rbx, r.rcx, r.rdx
        )?;
        writeln!(
            f,
            "  RSI {:#018x}  RDI {:#018x}  RBP {:#018x}  R8  {:#018x}",
            r.rsi, r.rdi, r.rbp, r.r8
        )?;
        writeln!(
            f,
            "  R9  {:#018x}  R10 {:#018x}  R11 {:#018x}  R12 {:#018x}",
            r.r9, r.r10, r.r11, r.r12
        )?;
        write!(
            f,
            "  R13 {:#018x}  R14 {:#018x}  R15 {:#018x}",
            r.r13, r.r14, r.r15
        )
    }
}

/// Called by `pv_trap_common` with events masked for exceptions (the trap
/// table asks for it), the event upcall and system calls.
#[cfg(target_os = "none")]
pub extern "C" fn dispatch(frame: &mut TrapFrame) {
    match frame.vector {
        VECTOR_EVENT => crate::events::upcall(),
        VECTOR_SYSCALL => crate::user::syscall(frame),
        VECTOR_FAILSAFE => {
            crate::println!("failsafe callback: the hypervisor could not load a segment register");
            crate::sched::crash()
        }
        vector => {
            let vector = vector as u8;
            let cr2 = (vector == PAGE_FAULT).then(|| {
                crate::shared::vcpu()
                    .cr2
                    .load(core::sync::atomic::Ordering::Relaxed)
            });
            let exception = Exception {
                vector,
                error_code: frame.error_code,
                cr2,
            };
            if let Some(handler) = handler(vector)
                && handler(&exception, frame)
            {
                return;
            }
            crate::println!(
                "{}",
                Report {
                    exception: &exception,
                    frame
                }
            );
            crate::sched::crash()
        }
    }
}

/// Installs the SDK's trap table (see `arch::entry`).
#[cfg(target_os = "none")]
pub(crate) fn init() -> crate::Result<()> {
    crate::arch::entry::install_trap_table()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_matches_the_stubs() {
        use core::mem::{offset_of, size_of};
        // 15 registers pushed by pv_trap_common, then vector and error code
        // pushed by the stub, then the hypervisor's 5-word frame.
        assert_eq!(offset_of!(TrapFrame, rax), 14 * 8);
        assert_eq!(offset_of!(TrapFrame, vector), 15 * 8);
        assert_eq!(offset_of!(TrapFrame, rip), 17 * 8);
        assert_eq!(size_of::<TrapFrame>(), 22 * 8);
    }

    #[test]
    fn cs_word_carries_mode_and_saved_mask() {
        let frame = TrapFrame {
            cs: 0x1_0000_e030,
            ..Default::default()
        };
        assert!(!frame.from_user());
        assert_eq!(frame.saved_upcall_mask(), 1);
        let frame = TrapFrame {
            cs: 0xe033,
            ..Default::default()
        };
        assert!(frame.from_user());
        assert_eq!(frame.saved_upcall_mask(), 0);
    }

    #[test]
    fn page_fault_codes_read_as_words() {
        assert_eq!(
            PageFaultCode(0).to_string(),
            "not present on read in kernel mode"
        );
        assert_eq!(
            PageFaultCode(7).to_string(),
            "protection violation on write in user mode"
        );
        assert_eq!(
            PageFaultCode(0x11).to_string(),
            "protection violation on instruction fetch in kernel mode"
        );
    }

    #[test]
    fn handlers_register_and_clear() {
        fn skip(_: &Exception, frame: &mut TrapFrame) -> bool {
            frame.rip += 2;
            true
        }
        set_handler(INVALID_OPCODE, skip);
        let h = handler(INVALID_OPCODE).unwrap();
        let mut frame = TrapFrame {
            rip: 10,
            ..Default::default()
        };
        let e = Exception {
            vector: INVALID_OPCODE,
            error_code: 0,
            cr2: None,
        };
        assert!(h(&e, &mut frame));
        assert_eq!(frame.rip, 12);
        clear_handler(INVALID_OPCODE);
        assert!(handler(INVALID_OPCODE).is_none());
    }
}
