//! Error numbers (`errno.h`). Hypercalls return `-errno` in RAX.

use core::fmt;

macro_rules! errnos {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        /// A Xen error number. Hypercalls return its negation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(i32)]
        pub enum Errno {
            $(#[doc = $text] $name = $value,)*
        }

        impl Errno {
            /// Every error number this crate knows.
            pub const ALL: &'static [Errno] = &[$(Errno::$name,)*];

            /// The error with number `raw` (positive, as in `errno.h`), if known.
            pub fn from_raw(raw: i64) -> Option<Self> {
                match raw {
                    $($value => Some(Errno::$name),)*
                    _ => None,
                }
            }

            /// What the error means, in a few words.
            pub const fn text(self) -> &'static str {
                match self {
                    $(Errno::$name => $text,)*
                }
            }
        }
    };
}

errnos! {
    Perm = 1, "operation not permitted";
    NoEnt = 2, "no such entry";
    Srch = 3, "no such domain";
    // EINTR and ERESTART are Xen-internal (continuations); guests never
    // see them, but they keep Xen's numbers here.
    Intr = 4, "interrupted";
    Io = 5, "I/O error";
    NxIo = 6, "no such device or address";
    TooBig = 7, "argument list too long";
    NoExec = 8, "exec format error";
    BadF = 9, "bad file number";
    Child = 10, "no child";
    Again = 11, "try again";
    NoMem = 12, "out of memory";
    Acces = 13, "permission denied";
    Fault = 14, "bad address";
    Busy = 16, "busy";
    Exist = 17, "already exists";
    XDev = 18, "cross-domain link";
    NoDev = 19, "no such device";
    NotDir = 20, "not a directory";
    IsDir = 21, "is a directory";
    Inval = 22, "invalid argument";
    NFile = 23, "file table overflow";
    MFile = 24, "too many open files";
    NoSpc = 28, "no space left";
    RoFs = 30, "read-only";
    MLink = 31, "too many links";
    Dom = 33, "argument out of domain";
    Range = 34, "result out of range";
    DeadLk = 35, "deadlock would occur";
    NameTooLong = 36, "name too long";
    NoLck = 37, "no locks available";
    NoSys = 38, "function not implemented";
    NotEmpty = 39, "not empty";
    NoData = 61, "no data available";
    Time = 62, "timer expired";
    BadMsg = 74, "not a data message";
    Overflow = 75, "value too large";
    IlSeq = 84, "illegal byte sequence";
    Restart = 85, "restart the call";
    NotSock = 88, "not a socket";
    MsgSize = 90, "message too long";
    OpNotSupp = 95, "operation not supported";
    AddrInUse = 98, "address in use";
    AddrNotAvail = 99, "address not available";
    NoBufs = 105, "no buffer space";
    IsConn = 106, "already connected";
    NotConn = 107, "not connected";
    TimedOut = 110, "timed out";
    ConnRefused = 111, "connection refused";
}

impl Errno {
    /// The value a hypercall returns for this error.
    pub const fn to_ret(self) -> i64 {
        -(self as i64)
    }

    /// Decodes a hypercall's return value: `Ok(value)` for non-negative
    /// results, the error for known negative ones.
    pub fn check(ret: i64) -> Result<u64, Result<Errno, i64>> {
        if ret >= 0 {
            Ok(ret as u64)
        } else {
            Err(Errno::from_raw(-ret).ok_or(ret))
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (-{:?}, {})", self.text(), self, *self as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_xen() {
        assert_eq!(Errno::Perm as i32, 1);
        assert_eq!(Errno::Fault as i32, 14);
        assert_eq!(Errno::Inval as i32, 22);
        assert_eq!(Errno::NoSys as i32, 38);
        assert_eq!(Errno::NoSys.to_ret(), -38);
    }

    #[test]
    fn check_splits_results_from_errors() {
        assert_eq!(Errno::check(5), Ok(5));
        assert_eq!(Errno::check(-14), Err(Ok(Errno::Fault)));
        assert_eq!(Errno::check(-1000), Err(Err(-1000)));
        for &e in Errno::ALL {
            assert_eq!(Errno::from_raw(e as i64), Some(e));
        }
    }
}
