//! Grant tables in hv-core: the state machine is `hv_core::grant_table`;
//! this module gives it the entries' memory, the table's frames through
//! the direct map (the guest writes them concurrently, so they are read
//! and changed atomically only).

use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::SeqCst;

use abi::grant_table::GrantEntryV1;
use hv_core::frame_table::Mfn;
pub use hv_core::grant_table::{
    GrantEntries, GrantError, GrantTable, Granted, MAX_GRANT_FRAMES, MAX_MAPS, Mapping,
};

use crate::arch::shared::SharedPage;

/// The grant frames hv-core allocated, as the guest sees them.
pub struct GrantFrames;

/// Where entry `index` starts in its frame.
fn entry_offset(index: usize) -> usize {
    index * core::mem::size_of::<GrantEntryV1>()
}

impl GrantEntries for GrantFrames {
    fn header(&self, frame: Mfn, index: usize) -> &AtomicU32 {
        SharedPage::new(frame).u32(entry_offset(index))
    }

    fn frame(&self, frame: Mfn, index: usize) -> u32 {
        let at = entry_offset(index) + core::mem::offset_of!(GrantEntryV1, frame);
        SharedPage::new(frame).u32(at).load(SeqCst)
    }
}
