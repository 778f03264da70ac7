//! The split-driver wire formats (`xen/include/public/io/*.h`): what a
//! front end and a back end in two domains lay out in the pages they share.
//! hv-core never reads these pages; guests and dom0 do, through the SDK.
//!
//! - [`ring`]: the shared-ring header of `io/ring.h`, the base of every
//!   request/response protocol (blkif, netif);
//! - [`console`]: the console page of `io/console.h`.
//!
//! blkif, netif and xs_wire go here too, one module each, named after
//! their header.

pub mod console;
pub mod ring;
