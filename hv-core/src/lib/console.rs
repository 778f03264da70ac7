//! What reaches the serial console: hv-core's own lines and each domain's
//! `console_io` text, on one UART.
//!
//! Invariants, whoever writes:
//! - every console line begins with exactly one source tag, `(hv) ` or
//!   `(dN) `. "At line start" belongs to the UART, not to a writer: when
//!   text from another source comes while a line is unfinished, the line
//!   is ended first, and the next text from its owner starts a new,
//!   tagged line;
//! - a domain's bytes are shown, never interpreted: `\n` and `\t` pass,
//!   `\r` is dropped, every other control byte (C0, DEL, and the C1
//!   controls U+0080-U+009F) and every byte that is not well-formed UTF-8
//!   becomes `?`, as dom0's console back-end shows its guests' text. A
//!   UTF-8 character cut between two writes of its owner is kept whole;
//!   one cut by another source's text becomes `?`.
//!
//! Output goes to a [`Sink`] (hv-core's transmit ring) with `\n` sent as
//! `\r\n`. A write takes input only while the sink has room for the most
//! one input byte can produce ([`MAX_EXPANSION`]) and says how much it
//! took, so the caller decides whether to wait, drain or continue.

use crate::slot::Slot;

/// Who is writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// hv-core's log: tagged `(hv) `.
    Hypervisor,
    /// hv-core's fatal report, whose lines carry their own `(hv)` tags:
    /// passed as it is (only line ends are translated).
    Report,
    /// A domain's `console_io` text: tagged `(dN) ` and sanitised.
    Domain(u16),
}

/// Where console bytes go.
pub trait Sink {
    /// How many more bytes `put` may take now.
    fn room(&self) -> usize;
    fn put(&mut self, bytes: &[u8]);
}

/// The most one input byte can produce: a `?` for another source's cut
/// character, `\r\n` ending its line, the longest tag `(d65535) `, then
/// the byte's own output (at most a whole 4-byte character).
pub const MAX_EXPANSION: usize = 1 + 2 + 9 + 4;

/// The console's state between writes.
#[derive(Debug)]
pub struct Console {
    /// Whose line is unfinished on the UART; `None` at a line start.
    /// (A `Slot`, not an `Option`: the kernel's console is a static, and
    /// an empty slot is zeros, so it stays out of the image's `.data`.)
    open: Slot<Source>,
    /// A UTF-8 character of the open line's owner still missing bytes.
    partial: [u8; 4],
    partial_len: usize,
    /// Bytes the character in `partial` has in all.
    partial_want: usize,
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub const fn new() -> Self {
        Self {
            open: Slot::Empty,
            partial: [0; 4],
            partial_len: 0,
            partial_want: 0,
        }
    }

    /// Whether the UART is at the start of a line.
    pub fn at_line_start(&self) -> bool {
        self.open.is_empty()
    }

    /// Writes as much of `bytes` from `source` as `out` has room for;
    /// returns how many input bytes were taken (all of them, or fewer when
    /// `out` ran short of [`MAX_EXPANSION`] bytes of room).
    pub fn write(&mut self, source: Source, bytes: &[u8], out: &mut impl Sink) -> usize {
        for (taken, &byte) in bytes.iter().enumerate() {
            if out.room() < MAX_EXPANSION {
                return taken;
            }
            self.byte(source, byte, out);
        }
        bytes.len()
    }

    /// Ends the unfinished line, if any (a cut character shows as `?`).
    pub fn end_line(&mut self, out: &mut impl Sink) {
        if !self.open.is_empty() {
            self.drop_partial(out);
            out.put(b"\r\n");
            self.open = Slot::Empty;
        }
    }

    fn byte(&mut self, source: Source, byte: u8, out: &mut impl Sink) {
        if byte == b'\r' && source != Source::Report {
            return;
        }
        if self.open.as_ref() != Some(&source) {
            self.end_line(out);
            self.put_tag(source, out);
            self.open = Slot::Full(source);
        }
        if byte == b'\n' {
            self.drop_partial(out);
            out.put(b"\r\n");
            self.open = Slot::Empty;
            return;
        }
        match source {
            Source::Report => out.put(&[byte]),
            Source::Hypervisor | Source::Domain(_) => self.text_byte(byte, out),
        }
    }

    /// One byte of text to sanitise (not a line end).
    fn text_byte(&mut self, byte: u8, out: &mut impl Sink) {
        if self.partial_len > 0 {
            if continues(&self.partial[..self.partial_len], byte) {
                self.partial[self.partial_len] = byte;
                self.partial_len += 1;
                if self.partial_len == self.partial_want {
                    let len = self.partial_len;
                    self.partial_len = 0;
                    if is_c1_control(&self.partial[..len]) {
                        out.put(b"?");
                    } else {
                        out.put(&self.partial[..len]);
                    }
                }
                return;
            }
            // A character broken off: one `?` for it, then this byte anew.
            self.drop_partial(out);
        }
        match byte {
            b'\t' | 0x20..=0x7e => out.put(&[byte]),
            0xc2..=0xf4 => {
                self.partial[0] = byte;
                self.partial_len = 1;
                self.partial_want = match byte {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
            }
            // Other C0 controls, DEL, stray continuation bytes, bytes that
            // never start a character.
            _ => out.put(b"?"),
        }
    }

    fn drop_partial(&mut self, out: &mut impl Sink) {
        if self.partial_len > 0 {
            self.partial_len = 0;
            out.put(b"?");
        }
    }

    fn put_tag(&self, source: Source, out: &mut impl Sink) {
        match source {
            Source::Report => {}
            Source::Hypervisor => out.put(b"(hv) "),
            Source::Domain(id) => {
                let mut tag = *b"(d00000) ";
                let mut digits = [0u8; 5];
                let mut n = 0;
                let mut rest = id;
                loop {
                    digits[n] = b'0' + (rest % 10) as u8;
                    n += 1;
                    rest /= 10;
                    if rest == 0 {
                        break;
                    }
                }
                for i in 0..n {
                    tag[2 + i] = digits[n - 1 - i];
                }
                tag[2 + n] = b')';
                tag[3 + n] = b' ';
                out.put(&tag[..4 + n]);
            }
        }
    }
}

/// Whether `byte` is the next byte of the well-formed UTF-8 character
/// `so_far` begins (no overlong forms, surrogates or code points past
/// U+10FFFF).
fn continues(so_far: &[u8], byte: u8) -> bool {
    let range = match (so_far[0], so_far.len()) {
        (0xe0, 1) => 0xa0..=0xbf,
        (0xed, 1) => 0x80..=0x9f,
        (0xf0, 1) => 0x90..=0xbf,
        (0xf4, 1) => 0x80..=0x8f,
        _ => 0x80..=0xbf,
    };
    range.contains(&byte)
}

/// U+0080-U+009F, the C1 controls (some terminals act on them).
fn is_c1_control(character: &[u8]) -> bool {
    character.len() == 2 && character[0] == 0xc2 && character[1] <= 0x9f
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Out {
        bytes: Vec<u8>,
        limit: usize,
    }

    impl Sink for Out {
        fn room(&self) -> usize {
            self.limit.saturating_sub(self.bytes.len())
        }
        fn put(&mut self, bytes: &[u8]) {
            assert!(
                bytes.len() <= self.room(),
                "put past the room it said it had"
            );
            self.bytes.extend_from_slice(bytes);
        }
    }

    fn out() -> Out {
        Out {
            bytes: Vec::new(),
            limit: usize::MAX,
        }
    }

    fn text(out: &Out) -> String {
        String::from_utf8(out.bytes.clone()).unwrap()
    }

    const D0: Source = Source::Domain(0);
    const D1: Source = Source::Domain(1);

    #[test]
    fn lines_are_tagged_and_end_in_crlf() {
        let mut c = Console::new();
        let mut o = out();
        c.write(D0, b"one\ntwo\n", &mut o);
        c.write(Source::Hypervisor, b"booted\n", &mut o);
        c.write(Source::Domain(65535), b"last\n", &mut o);
        assert_eq!(
            text(&o),
            "(d0) one\r\n(d0) two\r\n(hv) booted\r\n(d65535) last\r\n"
        );
        assert!(c.at_line_start());
    }

    #[test]
    fn a_line_continues_across_writes_of_its_owner() {
        let mut c = Console::new();
        let mut o = out();
        c.write(D1, b"half ", &mut o);
        c.write(D1, b"and half\n", &mut o);
        assert_eq!(text(&o), "(d1) half and half\r\n");
    }

    #[test]
    fn another_source_ends_an_unfinished_line_first() {
        let mut c = Console::new();
        let mut o = out();
        c.write(D0, b"left open", &mut o);
        c.write(Source::Hypervisor, b"d0: refused\n", &mut o);
        // The owner's next text is a new line, tagged again: it cannot
        // pass for the hypervisor's.
        c.write(D0, b"(hv) FORGED\n", &mut o);
        c.write(D0, b"open again", &mut o);
        c.write(D1, b"other\n", &mut o);
        assert_eq!(
            text(&o),
            "(d0) left open\r\n(hv) d0: refused\r\n(d0) (hv) FORGED\r\n\
             (d0) open again\r\n(d1) other\r\n"
        );
    }

    #[test]
    fn control_bytes_are_shown_not_sent() {
        let mut c = Console::new();
        let mut o = out();
        c.write(D0, b"a\x1b[2K\r(hv) x\x07\x08\x7f\x00\tb\n", &mut o);
        assert_eq!(text(&o), "(d0) a?[2K(hv) x????\tb\r\n");
    }

    #[test]
    fn utf8_passes_whole_and_bad_bytes_become_question_marks() {
        let mut c = Console::new();
        let mut o = out();
        c.write(D0, "é → 🦀\n".as_bytes(), &mut o);
        // Stray continuation, overlong, surrogate, past U+10FFFF, C1 CSI.
        c.write(
            D0,
            b"\x80 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xc2\x9b\n",
            &mut o,
        );
        assert_eq!(text(&o), "(d0) é → 🦀\r\n(d0) ? ?? ??? ???? ?\r\n");
    }

    #[test]
    fn a_character_cut_between_writes_of_its_owner_stays_whole() {
        let mut c = Console::new();
        let mut o = out();
        let crab = "🦀".as_bytes();
        c.write(D0, &crab[..2], &mut o);
        c.write(D0, &crab[2..], &mut o);
        c.write(D0, b"\n", &mut o);
        assert_eq!(text(&o), "(d0) 🦀\r\n");
    }

    #[test]
    fn a_character_cut_by_another_source_becomes_a_question_mark() {
        let mut c = Console::new();
        let mut o = out();
        c.write(D0, &"é".as_bytes()[..1], &mut o);
        c.write(Source::Hypervisor, b"log\n", &mut o);
        c.write(D0, &"é".as_bytes()[1..], &mut o);
        c.write(D0, b"\n", &mut o);
        assert_eq!(text(&o), "(d0) ?\r\n(hv) log\r\n(d0) ?\r\n");
    }

    #[test]
    fn a_report_passes_as_it_is_after_ending_the_open_line() {
        let mut c = Console::new();
        let mut o = out();
        c.write(D0, b"mid-line", &mut o);
        c.write(Source::Report, b"(hv) FATAL: ", &mut o);
        c.write(Source::Report, b"oops\n", &mut o);
        assert_eq!(text(&o), "(d0) mid-line\r\n(hv) FATAL: oops\r\n");
    }

    #[test]
    fn a_write_stops_where_the_sink_runs_short() {
        let mut c = Console::new();
        let mut o = Out {
            bytes: Vec::new(),
            limit: MAX_EXPANSION + 10,
        };
        let input = [b'x'; 100];
        let taken = c.write(D1, &input, &mut o);
        // The tag and 10 bytes; each byte then needs MAX_EXPANSION.
        assert!(taken > 0 && taken < input.len(), "{taken}");
        assert_eq!(o.bytes.len(), 5 + taken);
        o.limit += 100;
        let more = c.write(D1, &input[taken..], &mut o);
        assert_eq!(taken + more, input.len());
        assert_eq!(o.bytes.len(), 5 + input.len(), "no second tag mid-line");
    }

    #[test]
    fn the_worst_byte_fits_in_max_expansion() {
        // Another source's cut character, its line ended, the longest tag,
        // then a whole 4-byte character completed by the last byte.
        let mut c = Console::new();
        let mut o = out();
        c.write(Source::Domain(1), b"\xf0", &mut o);
        let before = o.bytes.len();
        c.write(Source::Domain(65535), b"\xf0\x9f\xa6", &mut o);
        let mid = o.bytes.len();
        c.write(Source::Domain(65535), b"\x80", &mut o);
        assert!(mid - before <= MAX_EXPANSION);
        assert!(o.bytes.len() - mid <= MAX_EXPANSION);
    }
}
