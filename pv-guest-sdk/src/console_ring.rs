//! The domU console page (`io/console.h`): two byte rings in one page that
//! the guest shares with its console back-end in dom0.
//!
//! ```text
//! 0     in[1024]    back-end -> guest (keyboard input)
//! 1024  out[2048]   guest -> back-end (console output)
//! 3072  in_cons, in_prod, out_cons, out_prod   u32 each, free-running
//! ```
//!
//! The guest produces `out` and consumes `in`. Indices are free-running
//! and masked with `size - 1`; the guest publishes the data before the
//! index (write barrier) and reads the data only after it has seen the
//! index (read barrier), then signals the console event channel. The
//! back-end is not trusted: an index pair that claims more than the ring
//! holds makes the ring [`Broken`], and nothing is read or written.

use core::mem::offset_of;
use core::sync::atomic::{Ordering, compiler_fence};

use abi::io::console::{CONSOLE_IN_SIZE, CONSOLE_OUT_SIZE, ConsoleInterface};

use crate::shmem::SharedPage;

const IN: usize = offset_of!(ConsoleInterface, input);
const OUT: usize = offset_of!(ConsoleInterface, output);
const IN_CONS: usize = offset_of!(ConsoleInterface, in_cons);
const IN_PROD: usize = offset_of!(ConsoleInterface, in_prod);
const OUT_CONS: usize = offset_of!(ConsoleInterface, out_cons);
const OUT_PROD: usize = offset_of!(ConsoleInterface, out_prod);

/// The back-end's indices claim more than the ring holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broken {
    /// The consumer index as read from the page.
    pub cons: u32,
    /// The producer index as read from the page.
    pub prod: u32,
}

/// The guest's side of a console page.
#[derive(Clone, Copy)]
pub struct ConsoleRing<'a> {
    page: &'a SharedPage,
}

impl<'a> ConsoleRing<'a> {
    /// The console ring in `page` (the domain's console page, whose frame
    /// `start_info` names).
    pub fn new(page: &'a SharedPage) -> Self {
        Self { page }
    }

    /// Appends as much of `bytes` to the output ring as fits and publishes
    /// it; returns how many bytes were taken (0 when the ring is full).
    pub fn put(&self, bytes: &[u8]) -> Result<usize, Broken> {
        let cons = self.page.u32(OUT_CONS).load(Ordering::Acquire);
        let prod = self.page.u32(OUT_PROD).load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons);
        if used > CONSOLE_OUT_SIZE {
            return Err(Broken { cons, prod });
        }
        let n = bytes.len().min((CONSOLE_OUT_SIZE - used) as usize);
        for (i, &byte) in bytes[..n].iter().enumerate() {
            let at = prod.wrapping_add(i as u32) & (CONSOLE_OUT_SIZE - 1);
            self.page
                .u8(OUT + at as usize)
                .store(byte, Ordering::Relaxed);
        }
        // wmb: the back-end sees the bytes before the index that covers them.
        compiler_fence(Ordering::Release);
        self.page
            .u32(OUT_PROD)
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        Ok(n)
    }

    /// Output bytes the back-end has not consumed yet.
    pub fn out_pending(&self) -> Result<u32, Broken> {
        let cons = self.page.u32(OUT_CONS).load(Ordering::Acquire);
        let prod = self.page.u32(OUT_PROD).load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons);
        if used > CONSOLE_OUT_SIZE {
            return Err(Broken { cons, prod });
        }
        Ok(used)
    }

    /// Takes waiting input into `buf`; returns how many bytes (0: none).
    pub fn get(&self, buf: &mut [u8]) -> Result<usize, Broken> {
        let cons = self.page.u32(IN_CONS).load(Ordering::Relaxed);
        let prod = self.page.u32(IN_PROD).load(Ordering::Acquire);
        let available = prod.wrapping_sub(cons);
        if available > CONSOLE_IN_SIZE {
            return Err(Broken { cons, prod });
        }
        // rmb: read the bytes only after seeing the index that covers them.
        compiler_fence(Ordering::Acquire);
        let n = buf.len().min(available as usize);
        for (i, slot) in buf[..n].iter_mut().enumerate() {
            let at = cons.wrapping_add(i as u32) & (CONSOLE_IN_SIZE - 1);
            *slot = self.page.u8(IN + at as usize).load(Ordering::Relaxed);
        }
        // mb: the bytes are read before the back-end may reuse their space.
        core::sync::atomic::fence(Ordering::SeqCst);
        self.page
            .u32(IN_CONS)
            .store(cons.wrapping_add(n as u32), Ordering::Release);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The back-end's half, as dom0 would run it, for the tests.
    fn drain(page: &SharedPage) -> Vec<u8> {
        let cons = page.u32(OUT_CONS).load(Ordering::SeqCst);
        let prod = page.u32(OUT_PROD).load(Ordering::SeqCst);
        let bytes = (0..prod.wrapping_sub(cons))
            .map(|i| {
                let at = cons.wrapping_add(i) & (CONSOLE_OUT_SIZE - 1);
                page.u8(OUT + at as usize).load(Ordering::SeqCst)
            })
            .collect();
        page.u32(OUT_CONS).store(prod, Ordering::SeqCst);
        bytes
    }

    fn type_in(page: &SharedPage, text: &[u8]) {
        let prod = page.u32(IN_PROD).load(Ordering::SeqCst);
        for (i, &b) in text.iter().enumerate() {
            let at = prod.wrapping_add(i as u32) & (CONSOLE_IN_SIZE - 1);
            page.u8(IN + at as usize).store(b, Ordering::SeqCst);
        }
        page.u32(IN_PROD)
            .store(prod.wrapping_add(text.len() as u32), Ordering::SeqCst);
    }

    #[test]
    fn the_layout_is_console_h() {
        assert_eq!((IN, OUT), (0, 1024));
        assert_eq!(
            (IN_CONS, IN_PROD, OUT_CONS, OUT_PROD),
            (3072, 3076, 3080, 3084)
        );
    }

    #[test]
    fn output_fills_the_ring_and_wraps_its_indices() {
        let page = SharedPage::new_boxed();
        // Start just before the u32 wrap, as a long-running guest would.
        for field in [OUT_CONS, OUT_PROD] {
            page.u32(field).store(u32::MAX - 10, Ordering::SeqCst);
        }
        let ring = ConsoleRing::new(&page);
        let text: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(ring.put(&text), Ok(2048), "only a ring's worth fits");
        assert_eq!(ring.put(&text[2048..]), Ok(0), "a full ring takes nothing");
        assert_eq!(ring.out_pending(), Ok(2048));
        assert_eq!(drain(&page), &text[..2048]);
        assert_eq!(ring.put(&text[2048..]), Ok(952));
        assert_eq!(drain(&page), &text[2048..]);
        assert_eq!(ring.out_pending(), Ok(0));
    }

    #[test]
    fn input_is_taken_in_order_across_the_wrap() {
        let page = SharedPage::new_boxed();
        for field in [IN_CONS, IN_PROD] {
            page.u32(field).store(u32::MAX - 2, Ordering::SeqCst);
        }
        let ring = ConsoleRing::new(&page);
        let mut buf = [0u8; 4];
        assert_eq!(ring.get(&mut buf), Ok(0));
        type_in(&page, b"hello");
        assert_eq!(ring.get(&mut buf), Ok(4));
        assert_eq!(&buf, b"hell");
        assert_eq!(ring.get(&mut buf), Ok(1));
        assert_eq!(buf[0], b'o');
        assert_eq!(
            page.u32(IN_CONS).load(Ordering::SeqCst),
            (u32::MAX - 2).wrapping_add(5)
        );
    }

    #[test]
    fn hostile_indices_break_the_ring_without_touching_it() {
        let page = SharedPage::new_boxed();
        let ring = ConsoleRing::new(&page);
        page.u32(OUT_CONS).store(100, Ordering::SeqCst);
        page.u32(OUT_PROD).store(100 + 2049, Ordering::SeqCst);
        assert_eq!(
            ring.put(b"x"),
            Err(Broken {
                cons: 100,
                prod: 2149
            })
        );
        assert_eq!(page.u32(OUT_PROD).load(Ordering::SeqCst), 2149);
        // Consumer ahead of producer is just as impossible.
        page.u32(IN_CONS).store(10, Ordering::SeqCst);
        page.u32(IN_PROD).store(5, Ordering::SeqCst);
        assert_eq!(ring.get(&mut [0; 8]), Err(Broken { cons: 10, prod: 5 }));
        assert_eq!(page.u32(IN_CONS).load(Ordering::SeqCst), 10);
    }
}
