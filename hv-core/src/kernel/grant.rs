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

/// The grant-table frames hv-core allocated for one domain, as the guest
/// sees them: each an owned [`SharedPage`], so the frames live exactly as
/// long as the domain (they are freed with it). The state machine names a
/// frame by number; only these frames are answered for.
#[derive(Debug, Default)]
pub struct GrantFrames {
    pages: heapless::Vec<SharedPage, MAX_GRANT_FRAMES>,
}

impl GrantFrames {
    pub const fn new() -> Self {
        Self {
            pages: heapless::Vec::new(),
        }
    }

    /// Adds a frame (the table keeps at most `MAX_GRANT_FRAMES`).
    pub fn push(&mut self, page: SharedPage) {
        assert!(
            self.pages.push(page).is_ok(),
            "more than {MAX_GRANT_FRAMES} grant frames"
        );
    }

    pub fn mfns(&self) -> impl Iterator<Item = Mfn> + '_ {
        self.pages.iter().map(SharedPage::mfn)
    }

    fn page(&self, frame: Mfn) -> &SharedPage {
        self.pages
            .iter()
            .find(|page| page.mfn() == frame)
            .expect("the grant table names only its own frames")
    }
}

/// Where entry `index` starts in its frame.
fn entry_offset(index: usize) -> usize {
    index * core::mem::size_of::<GrantEntryV1>()
}

impl GrantEntries for GrantFrames {
    fn header(&self, frame: Mfn, index: usize) -> &AtomicU32 {
        self.page(frame).u32(entry_offset(index))
    }

    fn frame(&self, frame: Mfn, index: usize) -> u32 {
        let at = entry_offset(index) + core::mem::offset_of!(GrantEntryV1, frame);
        self.page(frame).u32(at).load(SeqCst)
    }
}
