//! The example guests' pure parts, tested on the host: the pingpong wire
//! format and payloads, and spin's CPU-time estimate. Each binary under
//! `src/bin/` is one PV guest kernel built on `pv-guest-sdk`.
#![cfg_attr(target_os = "none", no_std)]
#![deny(unsafe_code)]

pub mod pingpong {
    //! The page the pingpong server grants and both sides share.
    //!
    //! ```text
    //! 0     MAGIC   u32  written by the server before it grants the page
    //! 4     PORT    u32  the server's unbound port for the client
    //! 8     REQ_SEQ u64  round the client's request belongs to
    //! 16    RSP_SEQ u64  round the server's reply belongs to
    //! 24    STATE   u32  end-of-run handshake (client: DONE_MAPPED;
    //!                    server: PLEASE_UNMAP)
    //! 64    request payload  (PAYLOAD bytes)
    //! 128   reply payload    (PAYLOAD bytes)
    //! 256.. FILL: a fixed pattern the client grant-copies and checks
    //! ```
    //!
    //! A round: the client writes the request payload, then `REQ_SEQ`, and
    //! notifies; the server checks the payload against [`payload`] of that
    //! round, writes [`reply`] of it, then `RSP_SEQ`, and notifies; the
    //! client checks the reply. Sequence numbers are written after their
    //! payload, so whoever sees the new number sees the whole payload.

    pub const MAGIC: u32 = u32::from_le_bytes(*b"PGNP");
    pub const MAGIC_OFFSET: usize = 0;
    pub const PORT_OFFSET: usize = 4;
    pub const REQ_SEQ_OFFSET: usize = 8;
    pub const RSP_SEQ_OFFSET: usize = 16;
    pub const STATE_OFFSET: usize = 24;
    pub const REQ_OFFSET: usize = 64;
    pub const RSP_OFFSET: usize = 128;
    pub const FILL_OFFSET: usize = 256;
    pub const PAYLOAD: usize = 64;
    pub const PAGE: usize = 4096;

    /// Client: rounds done, page still mapped; try to revoke it now.
    pub const DONE_MAPPED: u32 = 1;
    /// Server: revoke was refused as it should be; unmap, then notify.
    pub const PLEASE_UNMAP: u32 = 2;

    // The areas do not overlap and fit the page.
    const _: () = assert!(STATE_OFFSET + 4 <= REQ_OFFSET);
    const _: () = assert!(REQ_OFFSET + PAYLOAD <= RSP_OFFSET);
    const _: () = assert!(RSP_OFFSET + PAYLOAD <= FILL_OFFSET);
    const _: () = assert!(FILL_OFFSET < PAGE);

    /// The grant ref the client maps: the first a fresh grant table gives.
    pub const SERVER_REF: u32 = 8;
    pub const DEFAULT_ROUNDS: u64 = 100_000;

    /// One step of splitmix64: a well-mixed 64-bit value per input.
    pub fn mix(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The request payload of round `seq`: seeded by the round, so a stale
    /// or misplaced message never passes as the current one.
    pub fn payload(seq: u64) -> [u8; PAYLOAD] {
        let mut out = [0; PAYLOAD];
        for (k, chunk) in out.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&mix(seq.wrapping_mul(8).wrapping_add(k as u64)).to_le_bytes());
        }
        out
    }

    /// The server's answer to `request`: reversed and flipped, so an echo
    /// of the request is not a valid reply.
    pub fn reply(request: &[u8; PAYLOAD]) -> [u8; PAYLOAD] {
        let mut out = [0; PAYLOAD];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = request[PAYLOAD - 1 - i] ^ 0x5a;
        }
        out
    }

    /// The fill pattern's byte at page offset `offset`.
    pub fn fill_byte(offset: usize) -> u8 {
        (mix(offset as u64 / 8) >> (8 * (offset % 8))) as u8
    }

    /// The first byte where `got` differs from `want`.
    pub fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
        got.iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .or((got.len() != want.len()).then_some(got.len().min(want.len())))
    }

    /// The server is whichever of the two has the lower domain id.
    pub fn is_server(own: u16, peer: u16) -> bool {
        own < peer
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn payloads_differ_per_round_and_replies_differ_from_echoes() {
            assert_ne!(payload(1), payload(2));
            assert_ne!(payload(0), [0; PAYLOAD]);
            assert_ne!(reply(&payload(7)), payload(7));
            assert_eq!(reply(&payload(7)), reply(&payload(7)));
            // Reply is a bijection: different requests, different replies.
            assert_ne!(reply(&payload(7)), reply(&payload(8)));
        }

        #[test]
        fn differences_are_located() {
            assert_eq!(first_difference(b"abc", b"abc"), None);
            assert_eq!(first_difference(b"abc", b"abd"), Some(2));
            assert_eq!(first_difference(b"ab", b"abc"), Some(2));
        }

        #[test]
        fn the_fill_pattern_is_not_constant() {
            let bytes: Vec<u8> = (0..64).map(fill_byte).collect();
            assert!(bytes.windows(2).any(|w| w[0] != w[1]));
            assert_eq!(fill_byte(300), fill_byte(300));
        }

        #[test]
        fn the_lower_id_serves() {
            assert!(is_server(1, 2));
            assert!(!is_server(2, 1));
        }
    }
}

pub mod spin {
    //! Spin's estimate of its own CPU time without help from the
    //! hypervisor: it reads the clock after every small batch of work, and
    //! a gap much longer than a batch means it was not running (another
    //! domain had the CPU), so that gap counts as one typical batch.

    /// Gaps longer than this are time spent descheduled.
    pub const GAP_NS: u64 = 5_000_000;

    #[derive(Clone, Copy, Debug, Default)]
    pub struct CpuClock {
        last: u64,
        /// Nanoseconds of running time seen so far.
        pub cpu_ns: u64,
        /// A running estimate of one batch's time.
        typical: u64,
    }

    impl CpuClock {
        pub fn new(now: u64) -> Self {
            Self {
                last: now,
                cpu_ns: 0,
                typical: 0,
            }
        }

        /// Accounts the time since the last tick; returns the CPU time.
        pub fn tick(&mut self, now: u64) -> u64 {
            let gap = now.saturating_sub(self.last);
            self.last = now;
            if gap <= GAP_NS {
                self.typical = if self.typical == 0 {
                    gap
                } else {
                    (self.typical * 7 + gap) / 8
                };
                self.cpu_ns += gap;
            } else {
                self.cpu_ns += self.typical;
            }
            self.cpu_ns
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn descheduled_gaps_count_as_one_batch() {
            let mut c = CpuClock::new(1_000);
            let mut now = 1_000;
            for _ in 0..100 {
                now += 10_000;
                c.tick(now);
            }
            assert_eq!(c.cpu_ns, 1_000_000);
            // 10 ms away: counted as one 10 us batch.
            now += 10_000_000;
            assert_eq!(c.tick(now), 1_010_000);
        }
    }
}
