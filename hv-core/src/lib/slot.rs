//! [`Slot`]: an `Option` for big static tables. `Option<T>` may encode
//! `None` in a niche of `T` (a `bool` field holding 2, say), which makes
//! a static table of `None`s non-zero bytes that the linker must put in
//! `.data`, in the image. A `Slot` keeps its tag in a leading byte that
//! is 0 when empty (`#[repr(u8)]`), so a table of empty slots is all
//! zeros and lands in `.bss`, which costs the image nothing.

/// Empty, or holding one `T`.
#[repr(u8)]
#[derive(Debug, Default)]
pub enum Slot<T> {
    #[default]
    Empty = 0,
    Full(T) = 1,
}

impl<T> Slot<T> {
    pub const fn is_empty(&self) -> bool {
        matches!(self, Self::Empty)
    }

    pub const fn as_ref(&self) -> Option<&T> {
        match self {
            Self::Full(value) => Some(value),
            Self::Empty => None,
        }
    }

    pub fn as_mut(&mut self) -> Option<&mut T> {
        match self {
            Self::Full(value) => Some(value),
            Self::Empty => None,
        }
    }

    /// Empties the slot, returning what it held.
    pub fn take(&mut self) -> Option<T> {
        match core::mem::take(self) {
            Self::Full(value) => Some(value),
            Self::Empty => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Slot;

    #[test]
    fn a_slot_holds_takes_and_empties() {
        let mut slot = Slot::Full(7u32);
        assert!(!slot.is_empty());
        assert_eq!(slot.as_ref(), Some(&7));
        *slot.as_mut().unwrap() += 1;
        assert_eq!(slot.take(), Some(8));
        assert!(slot.is_empty());
        assert_eq!(slot.take(), None);
        assert_eq!(slot.as_mut(), None);
    }

    #[test]
    fn a_slot_has_a_tag_of_its_own_where_option_uses_a_niche() {
        struct Niche {
            _flag: bool,
        }
        // Option<Niche> has no tag byte of its own: None is `_flag == 2`.
        assert_eq!(size_of::<Option<Niche>>(), 1);
        // A slot's tag is a byte before the value (0: empty); that the
        // kernel's tables of them land in .bss is checked on the image
        // (`cargo xtask test`, the image-size check).
        assert_eq!(size_of::<Slot<Niche>>(), 2);
    }
}
