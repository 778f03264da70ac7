//! Line editing for console input: printable characters collect into a
//! line, backspace (BS or DEL) erases one, CR or LF ends it (a LF right
//! after a CR is the same line end). Input that does not fit is dropped.

/// What a byte of input did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// Ignored (control byte, full buffer, LF after CR, erase at start).
    Nothing,
    /// Appended: echo it.
    Echo(u8),
    /// The last character was removed: echo "\x08 \x08".
    Erase,
    /// The line is complete: read it with [`LineEditor::line`].
    Line,
}

/// A line being typed at the console: feed it input bytes and echo what
/// [`Feed`] says; `N` bytes at most.
pub struct LineEditor<const N: usize> {
    buf: [u8; N],
    len: usize,
    after_cr: bool,
}

impl<const N: usize> LineEditor<N> {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            after_cr: false,
        }
    }

    /// Takes one byte of input; says what to echo, or that the line is done.
    pub fn feed(&mut self, byte: u8) -> Feed {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\n' if after_cr => Feed::Nothing,
            b'\r' | b'\n' => Feed::Line,
            0x08 | 0x7f if self.len > 0 => {
                self.len -= 1;
                Feed::Erase
            }
            0x20..=0x7e if self.len < N => {
                self.buf[self.len] = byte;
                self.len += 1;
                Feed::Echo(byte)
            }
            _ => Feed::Nothing,
        }
    }

    /// The line so far (printable ASCII only, so always valid UTF-8).
    pub fn line(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Empties the line, for the next one.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> Default for LineEditor<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(editor: &mut LineEditor<8>, input: &[u8]) -> Vec<Feed> {
        input.iter().map(|&b| editor.feed(b)).collect()
    }

    #[test]
    fn cr_lf_and_crlf_each_end_one_line() {
        let mut e = LineEditor::<8>::new();
        let feeds = feed_all(&mut e, b"ab\r\n");
        assert_eq!(
            feeds,
            [
                Feed::Echo(b'a'),
                Feed::Echo(b'b'),
                Feed::Line,
                Feed::Nothing
            ]
        );
        assert_eq!(e.line(), "ab");
        e.clear();
        assert_eq!(feed_all(&mut e, b"\n\n"), [Feed::Line, Feed::Line]);
    }

    #[test]
    fn backspace_and_delete_erase() {
        let mut e = LineEditor::<8>::new();
        feed_all(&mut e, b"abc\x08\x7fd");
        assert_eq!(e.line(), "ad");
        assert_eq!(e.feed(0x08), Feed::Erase);
        assert_eq!(e.feed(0x08), Feed::Erase);
        assert_eq!(e.feed(0x08), Feed::Nothing);
    }

    #[test]
    fn overlong_and_control_input_is_dropped() {
        let mut e = LineEditor::<8>::new();
        feed_all(&mut e, b"0123456789\x1b\t");
        assert_eq!(e.line(), "01234567");
    }
}
