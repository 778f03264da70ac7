//! The console back-end: each domU writes its console into the `out` ring
//! of a page it shares with dom0 (`io/console.h`, `start_info.console.domU`)
//! and reads typed input from the `in` ring; dom0 drains `out` to its own
//! console, a line at a time with the domain's name in front, and fills
//! `in` while the operator is attached with `console`.
//!
//! The page is written by a guest dom0 does not trust: indices are read
//! once, a producer that claims more than a ring's worth is ignored (as
//! xenconsoled does), every index is masked before use, and the bytes are
//! copied out once before anything looks at them. What a guest prints is
//! shown with control characters replaced, so a guest cannot drive the
//! operator's terminal.

use alloc::string::String;
use core::sync::atomic::{Ordering, fence};

use abi::io::console::{CONSOLE_IN_SIZE, CONSOLE_OUT_SIZE, ConsoleInterface};
use pv_guest_sdk::shmem::SharedPage;

const OUT: usize = core::mem::offset_of!(ConsoleInterface, output);
const IN: usize = core::mem::offset_of!(ConsoleInterface, input);
const IN_CONS: usize = core::mem::offset_of!(ConsoleInterface, in_cons);
const IN_PROD: usize = core::mem::offset_of!(ConsoleInterface, in_prod);
const OUT_CONS: usize = core::mem::offset_of!(ConsoleInterface, out_cons);
const OUT_PROD: usize = core::mem::offset_of!(ConsoleInterface, out_prod);

/// Takes what the guest has written to `out` since the last call into
/// `buf` (up to a ring's worth) and returns how many bytes. Nothing is
/// taken while the indices are impossible.
pub fn take_output(ring: &SharedPage, buf: &mut [u8; CONSOLE_OUT_SIZE as usize]) -> usize {
    let cons = ring.u32(OUT_CONS).load(Ordering::Relaxed);
    let prod = ring.u32(OUT_PROD).load(Ordering::Acquire);
    let len = prod.wrapping_sub(cons);
    if len == 0 || len > CONSOLE_OUT_SIZE {
        return 0;
    }
    copy_from_ring(ring, OUT, CONSOLE_OUT_SIZE, cons, &mut buf[..len as usize]);
    // The bytes are copied before the guest may reuse their slots.
    fence(Ordering::SeqCst);
    ring.u32(OUT_CONS).store(prod, Ordering::Release);
    len as usize
}

/// Puts as much of `bytes` into the guest's `in` ring as fits; returns how
/// many bytes went in.
pub fn give_input(ring: &SharedPage, bytes: &[u8]) -> usize {
    let cons = ring.u32(IN_CONS).load(Ordering::Acquire);
    let prod = ring.u32(IN_PROD).load(Ordering::Relaxed);
    let used = prod.wrapping_sub(cons);
    if used > CONSOLE_IN_SIZE {
        return 0;
    }
    let n = bytes.len().min((CONSOLE_IN_SIZE - used) as usize);
    for (i, &byte) in bytes[..n].iter().enumerate() {
        let at = prod.wrapping_add(i as u32) & (CONSOLE_IN_SIZE - 1);
        ring.write_bytes(IN + at as usize, &[byte]);
    }
    // The bytes are in place before the guest can see the new index.
    fence(Ordering::SeqCst);
    ring.u32(IN_PROD)
        .store(prod.wrapping_add(n as u32), Ordering::Release);
    n
}

/// Copies `out.len()` bytes of a ring at `base` (`size` a power of two)
/// from free-running index `from`, in at most two runs.
fn copy_from_ring(ring: &SharedPage, base: usize, size: u32, from: u32, out: &mut [u8]) {
    let start = (from & (size - 1)) as usize;
    let first = out.len().min(size as usize - start);
    let (head, tail) = out.split_at_mut(first);
    ring.read_bytes(base + start, head);
    ring.read_bytes(base, tail);
}

/// The longest line shown at once; a longer one is broken.
pub const MAX_LINE: usize = 160;

/// Collects a domain's output into lines.
#[derive(Default)]
pub struct LineBuffer {
    line: String,
    /// The start of a UTF-8 character whose other bytes have not come yet.
    partial: alloc::vec::Vec<u8>,
}

impl LineBuffer {
    /// Adds `bytes`; `emit` gets every line completed (without its end).
    /// Carriage returns are dropped, a tab becomes a blank, and other
    /// control characters and bytes that are not UTF-8 become `?`: shown,
    /// never interpreted.
    pub fn push(&mut self, bytes: &[u8], mut emit: impl FnMut(&str)) {
        let mut data = core::mem::take(&mut self.partial);
        data.extend_from_slice(bytes);
        let mut rest = &data[..];
        loop {
            match core::str::from_utf8(rest) {
                Ok(text) => {
                    self.push_str(text, &mut emit);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    self.push_str(core::str::from_utf8(valid).unwrap_or(""), &mut emit);
                    match e.error_len() {
                        Some(bad) => {
                            self.push_str("?", &mut emit);
                            rest = &after[bad..];
                        }
                        // A character cut short: wait for the rest.
                        None => {
                            self.partial = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
    }

    fn push_str(&mut self, text: &str, emit: &mut impl FnMut(&str)) {
        for c in text.chars() {
            match c {
                '\n' => emit(&core::mem::take(&mut self.line)),
                '\r' => {}
                '\t' => self.line.push(' '),
                c if c.is_control() => self.line.push('?'),
                c => self.line.push(c),
            }
            if self.line.len() >= MAX_LINE {
                emit(&core::mem::take(&mut self.line));
            }
        }
    }

    /// The unfinished line, if any, as a last line (when the domain ends).
    pub fn flush(&mut self, mut emit: impl FnMut(&str)) {
        if !self.partial.is_empty() {
            self.partial.clear();
            self.line.push('?');
        }
        if !self.line.is_empty() {
            emit(&core::mem::take(&mut self.line));
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    use super::*;

    /// The guest's side of the `out` ring.
    fn guest_writes(ring: &SharedPage, bytes: &[u8]) {
        let prod = ring.u32(OUT_PROD).load(Ordering::SeqCst);
        for (i, &b) in bytes.iter().enumerate() {
            let at = prod.wrapping_add(i as u32) & (CONSOLE_OUT_SIZE - 1);
            ring.write_bytes(OUT + at as usize, &[b]);
        }
        ring.u32(OUT_PROD)
            .store(prod.wrapping_add(bytes.len() as u32), Ordering::SeqCst);
    }

    fn ring_at(index: u32) -> Box<SharedPage> {
        let ring = SharedPage::new_boxed();
        for offset in [IN_CONS, IN_PROD, OUT_CONS, OUT_PROD] {
            ring.u32(offset).store(index, Ordering::SeqCst);
        }
        ring
    }

    #[test]
    fn output_comes_out_once_across_the_wrap() {
        // Indices near u32::MAX: both the ring and the index wrap.
        let ring = ring_at(u32::MAX - 100);
        let mut buf = [0; CONSOLE_OUT_SIZE as usize];
        let mut seen = Vec::new();
        for round in 0..20u8 {
            let text: Vec<u8> = (0..300).map(|i| round.wrapping_mul(7) ^ i as u8).collect();
            guest_writes(&ring, &text);
            let n = take_output(&ring, &mut buf);
            assert_eq!(&buf[..n], &text[..]);
            seen.push(n);
            assert_eq!(take_output(&ring, &mut buf), 0, "taken once");
        }
        assert!(seen.iter().all(|&n| n == 300));
    }

    #[test]
    fn a_full_ring_is_taken_whole() {
        let ring = ring_at(5);
        let text: Vec<u8> = (0..CONSOLE_OUT_SIZE).map(|i| i as u8).collect();
        guest_writes(&ring, &text);
        let mut buf = [0; CONSOLE_OUT_SIZE as usize];
        assert_eq!(take_output(&ring, &mut buf), text.len());
        assert_eq!(&buf[..], &text[..]);
    }

    #[test]
    fn impossible_producer_indices_are_ignored() {
        let ring = ring_at(0);
        ring.u32(OUT_PROD)
            .store(CONSOLE_OUT_SIZE + 1, Ordering::SeqCst);
        let mut buf = [0; CONSOLE_OUT_SIZE as usize];
        assert_eq!(take_output(&ring, &mut buf), 0);
        // A producer behind the consumer is as impossible.
        ring.u32(OUT_PROD).store(u32::MAX, Ordering::SeqCst);
        assert_eq!(take_output(&ring, &mut buf), 0);
        assert_eq!(ring.u32(OUT_CONS).load(Ordering::SeqCst), 0);
    }

    #[test]
    fn input_fills_the_ring_and_no_further() {
        let ring = ring_at(u32::MAX - 3);
        let typed: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        assert_eq!(give_input(&ring, &typed), CONSOLE_IN_SIZE as usize);
        assert_eq!(give_input(&ring, b"x"), 0, "full");
        let prod = ring.u32(IN_PROD).load(Ordering::SeqCst);
        assert_eq!(prod, (u32::MAX - 3).wrapping_add(CONSOLE_IN_SIZE));
        let mut back = [0u8; CONSOLE_IN_SIZE as usize];
        copy_from_ring(&ring, IN, CONSOLE_IN_SIZE, u32::MAX - 3, &mut back);
        assert_eq!(&back[..], &typed[..CONSOLE_IN_SIZE as usize]);
        // The guest takes 10: 10 more fit.
        ring.u32(IN_CONS)
            .store((u32::MAX - 3).wrapping_add(10), Ordering::SeqCst);
        assert_eq!(give_input(&ring, &typed), 10);
        // A consumer ahead of the producer is impossible: nothing goes in.
        ring.u32(IN_CONS)
            .store(prod.wrapping_add(20), Ordering::SeqCst);
        assert_eq!(give_input(&ring, b"y"), 0);
    }

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut buffer = LineBuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            buffer.push(chunk, |l| out.push(l.into()));
        }
        buffer.flush(|l| out.push(l.into()));
        out
    }

    #[test]
    fn output_becomes_lines() {
        assert_eq!(
            lines(&[b"Hello from", b" domain 1\r\nsecond\n", b"tail"]),
            ["Hello from domain 1", "second", "tail"]
        );
        assert_eq!(lines(&[b"\n\n"]), ["", ""]);
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(
            lines(&[b"red \x1b[31m\ttab\x07 \xff\xfe end\n"]),
            ["red ?[31m tab? ?? end"]
        );
        // UTF-8 split across two writes stays one character; cut short at
        // the end, it is shown as `?`.
        let u = "ü".as_bytes();
        assert_eq!(lines(&[b"gr", &u[..1], &u[1..], b"n\n"]), ["grün"]);
        assert_eq!(lines(&[b"x", &u[..1]]), ["x?"]);
    }

    #[test]
    fn long_lines_are_broken() {
        let long = [b'a'; MAX_LINE * 2 + 5];
        let out = lines(&[&long]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].len(), MAX_LINE);
        assert_eq!(out[2].len(), 5);
    }
}
