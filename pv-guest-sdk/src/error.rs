//! The SDK's error type: what a hypercall refused, by name.

use core::fmt;

use abi::Errno;

use crate::mm::MapError;

/// Why an SDK call failed: the hypervisor's error number, a raw negative
/// return value the ABI does not name, or a mapping the SDK could not make
/// (`MapError`, from `mm` and `user`; `?` converts it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A hypercall failed with an errno the ABI names.
    Hypervisor(Errno),
    /// A hypercall returned a negative value the ABI does not name.
    Unknown(i64),
    /// A mapping the SDK could not make (see [`MapError`]).
    Map(crate::mm::MapError),
}

/// The SDK's result: hypercalls and everything built on them.
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

    /// The hypervisor's error number, when the ABI names it.
    pub fn errno(self) -> Option<Errno> {
        match self {
            Error::Hypervisor(errno) | Error::Map(MapError::Refused(Refusal::Errno(errno))) => {
                Some(errno)
            }
            Error::Unknown(_) | Error::Map(_) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Hypervisor(errno) => write!(f, "{errno}"),
            Error::Unknown(raw) => write!(f, "unknown error {raw}"),
            Error::Map(e) => write!(f, "{e}"),
        }
    }
}

/// A hypercall's failure, as a [`MapError`] keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The hypervisor's errno, by name.
    Errno(Errno),
    /// A negative return value the ABI does not name.
    Raw(i64),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Errno(errno) => write!(f, "{errno}"),
            Refusal::Raw(raw) => write!(f, "unknown error {raw}"),
        }
    }
}

impl From<MapError> for Error {
    fn from(e: MapError) -> Self {
        match e {
            MapError::Refused(Refusal::Errno(errno)) => Error::Hypervisor(errno),
            MapError::Refused(Refusal::Raw(raw)) => Error::Unknown(raw),
            other => Error::Map(other),
        }
    }
}

impl From<Error> for MapError {
    fn from(e: Error) -> Self {
        match e {
            Error::Hypervisor(errno) => MapError::Refused(Refusal::Errno(errno)),
            Error::Unknown(raw) => MapError::Refused(Refusal::Raw(raw)),
            Error::Map(map) => map,
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

    #[test]
    fn map_errors_convert_both_ways_and_keep_their_reason() {
        fn load() -> Result<()> {
            Err(MapError::AlreadyMapped(0x4000))?;
            Ok(())
        }
        assert_eq!(load(), Err(Error::Map(MapError::AlreadyMapped(0x4000))));
        assert_eq!(load().unwrap_err().to_string(), "0x4000 is already mapped");
        // A refused update is the hypervisor's error, either way round.
        let refused = MapError::from(Error::Hypervisor(Errno::Perm));
        assert_eq!(refused, MapError::Refused(Refusal::Errno(Errno::Perm)));
        assert_eq!(Error::from(refused), Error::Hypervisor(Errno::Perm));
        assert_eq!(Error::Map(refused).errno(), Some(Errno::Perm));
        assert_eq!(
            MapError::from(Error::from(MapError::WindowFull)),
            MapError::WindowFull
        );
    }
}
