//! What the library's property tests share.

/// A deterministic xorshift generator from `seed` (non-zero): each call
/// gives a number below its argument, so a failing sequence replays.
pub fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}
