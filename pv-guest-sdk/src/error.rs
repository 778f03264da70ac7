//! The SDK's error type: what a hypercall refused, by name.

use core::fmt;

use abi::Errno;

/// A failed hypercall: the hypervisor's error number, or a raw negative
/// return value the ABI does not name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Hypervisor(Errno),
    Unknown(i64),
}

pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// Maps a hypercall's return value: non-negative is success.
    pub fn check(ret: i64) -> Result<u64> {
        match Errno::check(ret) {
            Ok(value) => Ok(value),
            Err(Ok(errno)) => Err(Error::Hypervisor(errno)),
            Err(Err(raw)) => Err(Error::Unknown(raw)),
        }
    }

    /// The error number, when the ABI names it.
    pub fn errno(self) -> Option<Errno> {
        match self {
            Error::Hypervisor(errno) => Some(errno),
            Error::Unknown(_) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Hypervisor(errno) => write!(f, "{errno}"),
            Error::Unknown(raw) => write!(f, "unknown error {raw}"),
        }
    }
}

impl From<Errno> for Error {
    fn from(errno: Errno) -> Self {
        Error::Hypervisor(errno)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_returns_become_named_errors() {
        assert_eq!(Error::check(0), Ok(0));
        assert_eq!(Error::check(7), Ok(7));
        assert_eq!(Error::check(-22), Err(Error::Hypervisor(Errno::Inval)));
        assert_eq!(Error::check(-38).unwrap_err().errno(), Some(Errno::NoSys));
        assert_eq!(Error::check(-4095), Err(Error::Unknown(-4095)));
    }
}
