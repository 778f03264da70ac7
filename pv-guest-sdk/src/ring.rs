//! Xen's shared I/O ring (`io/ring.h`), generic over the request and
//! response types, with both halves: the front end that sends requests
//! ([`FrontRing`]) and the back end that answers them ([`BackRing`]).
//!
//! The shared page is laid out exactly as ring.h's `DEFINE_RING_TYPES`
//! (the header is `abi::io::ring::SharedRingHeader`):
//!
//! ```text
//! 0   req_prod   u32   written by the front end
//! 4   req_event  u32   written by the back end: "notify me when req_prod passes this"
//! 8   rsp_prod   u32   written by the back end
//! 12  rsp_event  u32   written by the front end
//! 16  48 bytes of padding (ring.h's __pad)
//! 64  ring[]     RING_SIZE slots, each a union { request, response }
//! ```
//!
//! `RING_SIZE` is `(4096 - 64) / sizeof(slot)` rounded down to a power of
//! two (`__RING_SIZE`/`__RD32`), and a slot is the size of the C union of
//! the two types (the larger size, rounded up to the larger alignment).
//! Indices are free-running `u32`s that wrap; a slot is `index & (size-1)`.
//!
//! Barriers as ring.h on x86: `wmb`/`rmb` are compiler barriers (stores are
//! not reordered with stores, nor loads with loads), `mb` is a full fence
//! (`mfence`), needed where a store must be visible before a later load.
//!
//! The other end is not trusted: every index it publishes is checked
//! (`RING_REQUEST_PROD_OVERFLOW`, `RING_RESPONSE_PROD_OVERFLOW`) and
//! slots are copied out once before the caller looks at them. A hostile
//! index yields a [`RingError`], never an access outside the page.

use core::marker::PhantomData;
use core::mem::offset_of;
use core::sync::atomic::{Ordering, compiler_fence, fence};

use abi::io::ring::{RING_SLOTS_OFFSET, SharedRingHeader};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::shmem::{PAGE_BYTES, SharedPage};

pub use abi::io::ring::RingIdx;

const REQ_PROD: usize = offset_of!(SharedRingHeader, req_prod);
const REQ_EVENT: usize = offset_of!(SharedRingHeader, req_event);
const RSP_PROD: usize = offset_of!(SharedRingHeader, rsp_prod);
const RSP_EVENT: usize = offset_of!(SharedRingHeader, rsp_event);
/// Where the slots start: after the four indices and ring.h's 48 bytes of
/// padding.
pub const RING_OFFSET: usize = RING_SLOTS_OFFSET;

/// What may travel in a ring slot: plain data whose every bit pattern is
/// valid (the other end may write anything).
pub trait RingEntry: FromBytes + IntoBytes + Immutable + Copy {}
impl<T: FromBytes + IntoBytes + Immutable + Copy> RingEntry for T {}

/// Why a ring operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// Every request slot is in use (the back end has not answered).
    Full,
    /// A response was pushed with no consumed request left to answer.
    NoRequestToAnswer,
    /// The front end published a `req_prod` more than a ring ahead of the
    /// responses (`RING_REQUEST_PROD_OVERFLOW`): it is misbehaving.
    RequestOverflow {
        /// The front end's published request producer.
        req_prod: RingIdx,
        /// The back end's published response producer.
        rsp_prod: RingIdx,
    },
    /// The back end published a `rsp_prod` more than a ring ahead of what
    /// was consumed (`RING_RESPONSE_PROD_OVERFLOW`), or behind it.
    ResponseOverflow {
        /// The back end's published response producer.
        rsp_prod: RingIdx,
        /// How far this front end has consumed responses.
        rsp_cons: RingIdx,
    },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::Full => write!(f, "ring full"),
            RingError::NoRequestToAnswer => write!(f, "no consumed request to answer"),
            RingError::RequestOverflow { req_prod, rsp_prod } => write!(
                f,
                "front end's req_prod {req_prod} is more than a ring ahead of rsp_prod {rsp_prod}"
            ),
            RingError::ResponseOverflow { rsp_prod, rsp_cons } => write!(
                f,
                "back end's rsp_prod {rsp_prod} is not within a ring of rsp_cons {rsp_cons}"
            ),
        }
    }
}

/// The size of a slot: the C union of `Req` and `Rsp`.
pub const fn slot_size<Req, Rsp>() -> usize {
    let size = max(size_of::<Req>(), size_of::<Rsp>());
    let align = max(align_of::<Req>(), align_of::<Rsp>());
    size.div_ceil(align) * align
}

/// Slots in one page for `Req`/`Rsp` (`__RING_SIZE`): as many as fit,
/// rounded down to a power of two.
pub const fn ring_size<Req, Rsp>() -> u32 {
    let fit = (PAGE_BYTES - RING_OFFSET) / slot_size::<Req, Rsp>();
    assert!(fit > 0, "ring entries larger than a page");
    1 << fit.ilog2()
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// `xen_wmb`: earlier stores become visible before later ones.
fn wmb() {
    compiler_fence(Ordering::Release);
}

/// `xen_rmb`: earlier loads complete before later ones.
fn rmb() {
    compiler_fence(Ordering::Acquire);
}

/// `xen_mb`: a full barrier (stores before it are visible before loads
/// after it): `mfence` on x86.
fn mb() {
    fence(Ordering::SeqCst);
}

/// The shared page seen as a ring of `Req`/`Rsp` slots.
struct Shared<'a, Req, Rsp> {
    page: &'a SharedPage,
    _entries: PhantomData<(Req, Rsp)>,
}

impl<'a, Req: RingEntry, Rsp: RingEntry> Shared<'a, Req, Rsp> {
    const SIZE: u32 = ring_size::<Req, Rsp>();
    const SLOT: usize = slot_size::<Req, Rsp>();

    fn new(page: &'a SharedPage) -> Self {
        Self {
            page,
            _entries: PhantomData,
        }
    }

    /// `SHARED_RING_INIT`: indices 0, events 1, padding zeroed.
    fn init(&self) {
        self.page.fill(16, RING_OFFSET - 16, 0);
        self.set(REQ_PROD, 0);
        self.set(RSP_PROD, 0);
        self.set(REQ_EVENT, 1);
        self.set(RSP_EVENT, 1);
    }

    fn get(&self, field: usize) -> RingIdx {
        self.page.u32(field).load(Ordering::Relaxed)
    }

    fn set(&self, field: usize, value: RingIdx) {
        self.page.u32(field).store(value, Ordering::Relaxed)
    }

    fn slot(index: RingIdx) -> usize {
        RING_OFFSET + (index & (Self::SIZE - 1)) as usize * Self::SLOT
    }

    fn read<T: RingEntry>(&self, index: RingIdx) -> T {
        self.page.read(Self::slot(index))
    }

    fn write<T: RingEntry>(&self, index: RingIdx, value: T) {
        self.page.write(Self::slot(index), value)
    }
}

/// The front end's half: sends requests, takes responses.
pub struct FrontRing<'a, Req, Rsp> {
    shared: Shared<'a, Req, Rsp>,
    /// Requests written but perhaps not yet published.
    req_prod_pvt: RingIdx,
    /// Responses taken.
    rsp_cons: RingIdx,
}

impl<'a, Req: RingEntry, Rsp: RingEntry> FrontRing<'a, Req, Rsp> {
    /// Slots in the ring (`RING_SIZE`).
    pub const SIZE: u32 = ring_size::<Req, Rsp>();

    /// Initialises the shared page (`SHARED_RING_INIT`) and the front end
    /// (`FRONT_RING_INIT`). The front end owns the page's set-up: do this
    /// before granting it to the back end.
    pub fn new(page: &'a SharedPage) -> Self {
        Shared::<Req, Rsp>::new(page).init();
        Self::attach(page, 0)
    }

    /// Takes over a ring that is already in use at index `index`
    /// (`FRONT_RING_ATTACH`), leaving the shared page as it is.
    pub fn attach(page: &'a SharedPage, index: RingIdx) -> Self {
        Self {
            shared: Shared::new(page),
            req_prod_pvt: index,
            rsp_cons: index,
        }
    }

    /// Slots free for new requests (`RING_FREE_REQUESTS`).
    pub fn free_requests(&self) -> u32 {
        Self::SIZE - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// No slot is free for a new request (`RING_FULL`): wait for responses.
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Writes `req` into the next slot; the back end sees it once
    /// [`Self::push_requests_and_check_notify`] publishes it.
    pub fn push_request(&mut self, req: Req) -> Result<(), RingError> {
        if self.is_full() {
            return Err(RingError::Full);
        }
        self.shared.write(self.req_prod_pvt, req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes the written requests (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`)
    /// and says whether the back end asked to be notified of them: whether
    /// `req_event` lies in `(old req_prod, new req_prod]`.
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let old = self.shared.get(REQ_PROD);
        let new = self.req_prod_pvt;
        wmb(); // the back end sees the requests before the index
        self.shared.set(REQ_PROD, new);
        mb(); // ... and the index before we read req_event
        new.wrapping_sub(self.shared.get(REQ_EVENT)) < new.wrapping_sub(old)
    }

    /// Responses waiting (`RING_HAS_UNCONSUMED_RESPONSES`), after checking
    /// that the back end's index is plausible.
    pub fn unconsumed_responses(&self) -> Result<u32, RingError> {
        let rsp_prod = self.shared.get(RSP_PROD);
        let pending = rsp_prod.wrapping_sub(self.rsp_cons);
        if pending > Self::SIZE {
            return Err(RingError::ResponseOverflow {
                rsp_prod,
                rsp_cons: self.rsp_cons,
            });
        }
        Ok(pending)
    }

    /// The next response, copied out of its slot, if there is one.
    pub fn take_response(&mut self) -> Result<Option<Rsp>, RingError> {
        if self.unconsumed_responses()? == 0 {
            return Ok(None);
        }
        rmb(); // read the slot only after seeing rsp_prod cover it
        let rsp = self.shared.read(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// Before sleeping (`RING_FINAL_CHECK_FOR_RESPONSES`): if nothing is
    /// waiting, asks for a notification at the next response and looks
    /// once more. `true` means there is work and no event will come for it.
    pub fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        self.shared.set(RSP_EVENT, self.rsp_cons.wrapping_add(1));
        mb(); // rsp_event is visible before we look at rsp_prod again
        Ok(self.unconsumed_responses()? > 0)
    }

    /// The private producer index (requests written).
    pub fn req_prod_pvt(&self) -> RingIdx {
        self.req_prod_pvt
    }

    /// The private consumer index (responses taken).
    pub fn rsp_cons(&self) -> RingIdx {
        self.rsp_cons
    }
}

/// The back end's half: takes requests, sends responses.
pub struct BackRing<'a, Req, Rsp> {
    shared: Shared<'a, Req, Rsp>,
    /// Responses written but perhaps not yet published.
    rsp_prod_pvt: RingIdx,
    /// Requests taken.
    req_cons: RingIdx,
}

impl<'a, Req: RingEntry, Rsp: RingEntry> BackRing<'a, Req, Rsp> {
    /// Slots in the ring (`RING_SIZE`).
    pub const SIZE: u32 = ring_size::<Req, Rsp>();

    /// The back end of a ring the front end has just initialised
    /// (`BACK_RING_INIT`).
    pub fn new(page: &'a SharedPage) -> Self {
        Self::attach(page, 0)
    }

    /// Takes over a ring in use at index `index` (`BACK_RING_ATTACH`).
    pub fn attach(page: &'a SharedPage, index: RingIdx) -> Self {
        Self {
            shared: Shared::new(page),
            rsp_prod_pvt: index,
            req_cons: index,
        }
    }

    /// Requests that can be taken now (`RING_HAS_UNCONSUMED_REQUESTS`:
    /// those published, but no more than there are slots free of unsent
    /// responses), after checking the front end's index
    /// (`RING_REQUEST_PROD_OVERFLOW`).
    pub fn unconsumed_requests(&self) -> Result<u32, RingError> {
        let req_prod = self.shared.get(REQ_PROD);
        if req_prod.wrapping_sub(self.rsp_prod_pvt) > Self::SIZE {
            return Err(RingError::RequestOverflow {
                req_prod,
                rsp_prod: self.rsp_prod_pvt,
            });
        }
        let req = req_prod.wrapping_sub(self.req_cons);
        let rsp = Self::SIZE - self.req_cons.wrapping_sub(self.rsp_prod_pvt);
        Ok(req.min(rsp))
    }

    /// The next request, copied out of its slot once (check the copy, not
    /// the slot), if there is one.
    pub fn take_request(&mut self) -> Result<Option<Req>, RingError> {
        if self.unconsumed_requests()? == 0 {
            return Ok(None);
        }
        // `unconsumed_requests` bounds what is taken, but keep ring.h's
        // loop guard too: never consume past the unanswered slots.
        if self.req_cons.wrapping_sub(self.rsp_prod_pvt) >= Self::SIZE {
            return Ok(None);
        }
        rmb(); // read the slot only after seeing req_prod cover it
        let req = self.shared.read(self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Writes `rsp` into the slot of the oldest unanswered request; the
    /// front end sees it once [`Self::push_responses_and_check_notify`]
    /// publishes it.
    pub fn push_response(&mut self, rsp: Rsp) -> Result<(), RingError> {
        if self.rsp_prod_pvt == self.req_cons {
            return Err(RingError::NoRequestToAnswer);
        }
        self.shared.write(self.rsp_prod_pvt, rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes the written responses (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`)
    /// and says whether the front end asked to be notified of them.
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.shared.get(RSP_PROD);
        let new = self.rsp_prod_pvt;
        wmb(); // the front end sees the responses before the index
        self.shared.set(RSP_PROD, new);
        mb(); // ... and the index before we read rsp_event
        new.wrapping_sub(self.shared.get(RSP_EVENT)) < new.wrapping_sub(old)
    }

    /// Before sleeping (`RING_FINAL_CHECK_FOR_REQUESTS`): if nothing is
    /// waiting, asks for a notification at the next request and looks once
    /// more. `true` means there is work and no event will come for it.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.shared.set(REQ_EVENT, self.req_cons.wrapping_add(1));
        mb(); // req_event is visible before we look at req_prod again
        Ok(self.unconsumed_requests()? > 0)
    }

    /// The private producer index (responses written).
    pub fn rsp_prod_pvt(&self) -> RingIdx {
        self.rsp_prod_pvt
    }

    /// The private consumer index (requests taken).
    pub fn req_cons(&self) -> RingIdx {
        self.req_cons
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    use super::*;

    /// 1000-byte requests: four fit in a page, so the ring wraps often.
    type Big = [u64; 125];
    type Small = u64;

    fn big(value: u64) -> Big {
        let mut b = [0; 125];
        for (i, word) in b.iter_mut().enumerate() {
            *word = value.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64;
        }
        b
    }

    /// A fresh page with the shared indices moved to `start` (as if the
    /// ring had been in use that long) and both ends attached there.
    fn rings_at<Req: RingEntry, Rsp: RingEntry>(
        page: &SharedPage,
        start: RingIdx,
    ) -> (FrontRing<'_, Req, Rsp>, BackRing<'_, Req, Rsp>) {
        FrontRing::<Req, Rsp>::new(page);
        for field in [REQ_PROD, RSP_PROD] {
            page.u32(field).store(start, Ordering::SeqCst);
        }
        for field in [REQ_EVENT, RSP_EVENT] {
            page.u32(field)
                .store(start.wrapping_add(1), Ordering::SeqCst);
        }
        (
            FrontRing::attach(page, start),
            BackRing::attach(page, start),
        )
    }

    #[test]
    fn sizes_follow_ring_h() {
        // A blkif-like 112-byte request with a 16-byte response: 36 fit,
        // rounded down to 32 (blkif's well-known ring size).
        assert_eq!(slot_size::<[u64; 14], [u64; 2]>(), 112);
        assert_eq!(ring_size::<[u64; 14], [u64; 2]>(), 32);
        // The union takes the larger alignment: 12 bytes at 4, 8 at 8 -> 16.
        assert_eq!(slot_size::<[u32; 3], u64>(), 16);
        assert_eq!(ring_size::<u64, u64>(), 256); // 504 fit
        assert_eq!(ring_size::<Big, Small>(), 4);
        assert_eq!(FrontRing::<Big, Small>::SIZE, 4);
    }

    #[test]
    fn init_lays_out_the_header_as_ring_h() {
        let page = SharedPage::new_boxed();
        page.fill(0, PAGE_BYTES, 0xaa);
        let _front = FrontRing::<u64, u64>::new(&page);
        assert_eq!(page.read::<[u32; 4]>(0), [0, 1, 0, 1]);
        let mut pad = [0xffu8; 48];
        page.read_bytes(16, &mut pad);
        assert_eq!(pad, [0; 48]);
        // Slots are left alone.
        assert_eq!(page.u8(RING_OFFSET).load(Ordering::SeqCst), 0xaa);
    }

    #[test]
    fn requests_land_in_slots_after_the_header() {
        let page = SharedPage::new_boxed();
        let mut front = FrontRing::<u64, u64>::new(&page);
        front.push_request(0x1111).unwrap();
        front.push_request(0x2222).unwrap();
        front.push_requests_and_check_notify();
        assert_eq!(page.read::<u64>(64), 0x1111);
        assert_eq!(page.read::<u64>(72), 0x2222);
        assert_eq!(page.u32(REQ_PROD).load(Ordering::SeqCst), 2);
    }

    /// Sends `count` requests through the ring starting at `start`, the
    /// back end answering each with a function of it, in uneven batches.
    fn round_trip_many(start: RingIdx, count: u64) {
        let page = SharedPage::new_boxed();
        let (mut front, mut back) = rings_at::<Big, Small>(&page, start);
        let (mut sent, mut answered, mut received) = (0u64, 0u64, Vec::new());
        while (received.len() as u64) < count {
            // Front: as many as fit, at most 3 per batch.
            let mut batch = 0;
            while sent < count && batch < 3 && front.push_request(big(sent)).is_ok() {
                sent += 1;
                batch += 1;
            }
            front.push_requests_and_check_notify();
            // Back: take up to 2, answer them.
            for _ in 0..2 {
                if let Some(req) = back.take_request().unwrap() {
                    assert_eq!(req, big(answered), "request {answered} arrives intact");
                    back.push_response(req[0] ^ 0xffff).unwrap();
                    answered += 1;
                }
            }
            back.push_responses_and_check_notify();
            while let Some(rsp) = front.take_response().unwrap() {
                received.push(rsp);
            }
        }
        for (i, rsp) in received.iter().enumerate() {
            assert_eq!(*rsp, big(i as u64)[0] ^ 0xffff);
        }
        assert_eq!(front.req_prod_pvt(), start.wrapping_add(count as u32));
        assert_eq!(back.req_cons(), start.wrapping_add(count as u32));
        assert!(!back.final_check_for_requests().unwrap());
        assert!(!front.final_check_for_responses().unwrap());
    }

    #[test]
    fn many_requests_through_a_small_ring() {
        round_trip_many(0, 1000);
    }

    #[test]
    fn indices_wrap_past_u32_max() {
        round_trip_many(u32::MAX - 5, 1000);
        round_trip_many(u32::MAX, 9);
    }

    #[test]
    fn a_full_ring_refuses_requests_until_answered() {
        let page = SharedPage::new_boxed();
        let (mut front, mut back) = rings_at::<Big, Small>(&page, u32::MAX - 1);
        for i in 0..4 {
            front.push_request(big(i)).unwrap();
        }
        assert!(front.is_full());
        assert_eq!(front.push_request(big(9)), Err(RingError::Full));
        front.push_requests_and_check_notify();
        // The back end takes all four but may not take a fifth slot before
        // answering (RING_REQUEST_CONS_OVERFLOW).
        for _ in 0..4 {
            assert!(back.take_request().unwrap().is_some());
        }
        assert_eq!(back.take_request().unwrap(), None);
        back.push_response(1).unwrap();
        back.push_responses_and_check_notify();
        assert!(front.is_full(), "a response frees a slot only once taken");
        assert_eq!(front.take_response().unwrap(), Some(1));
        assert_eq!(front.free_requests(), 1);
    }

    #[test]
    fn a_response_needs_a_consumed_request() {
        let page = SharedPage::new_boxed();
        let (_front, mut back) = rings_at::<u64, u64>(&page, 7);
        assert_eq!(back.push_response(1), Err(RingError::NoRequestToAnswer));
    }

    /// ring.h's rule: notify when the event index lies in (old, new].
    fn expected_notify(old: u32, new: u32, event: u32) -> bool {
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    #[test]
    fn request_notification_follows_req_event() {
        for start in [0, 1000, u32::MAX - 2] {
            let page = SharedPage::new_boxed();
            let (mut front, mut back) = rings_at::<u64, u64>(&page, start);
            // req_event = start + 1: the first request notifies.
            front.push_request(1).unwrap();
            assert!(front.push_requests_and_check_notify());
            // The back end has not re-armed: more requests do not notify.
            front.push_request(2).unwrap();
            front.push_request(3).unwrap();
            assert!(!front.push_requests_and_check_notify());
            // It drains, re-arms at req_cons + 1 and finds nothing more.
            while back.take_request().unwrap().is_some() {}
            assert!(!back.final_check_for_requests().unwrap());
            assert_eq!(
                page.u32(REQ_EVENT).load(Ordering::SeqCst),
                start.wrapping_add(4)
            );
            // A batch of two that crosses req_event notifies once.
            front.push_request(4).unwrap();
            front.push_request(5).unwrap();
            assert!(front.push_requests_and_check_notify());
            // Publishing nothing new never notifies.
            assert!(!front.push_requests_and_check_notify());
        }
    }

    #[test]
    fn notify_decisions_match_the_formula_for_every_event_position() {
        let start = u32::MAX - 3;
        for event_offset in 0..12u32 {
            let page = SharedPage::new_boxed();
            let (mut front, _back) = rings_at::<u64, u64>(&page, start);
            let event = start.wrapping_add(event_offset);
            page.u32(REQ_EVENT).store(event, Ordering::SeqCst);
            for i in 0..5 {
                front.push_request(i).unwrap();
            }
            let old = start;
            let new = start.wrapping_add(5);
            assert_eq!(
                front.push_requests_and_check_notify(),
                expected_notify(old, new, event),
                "event at start+{event_offset}"
            );
            // The event index in (old, new] is exactly offsets 1..=5.
            assert_eq!(
                expected_notify(old, new, event),
                (1..=5).contains(&event_offset)
            );
        }
    }

    #[test]
    fn response_notification_follows_rsp_event() {
        let page = SharedPage::new_boxed();
        let (mut front, mut back) = rings_at::<u64, u64>(&page, u32::MAX);
        for i in 0..3 {
            front.push_request(i).unwrap();
        }
        front.push_requests_and_check_notify();
        while back.take_request().unwrap().is_some() {}
        // rsp_event = start + 1: the first response notifies.
        back.push_response(10).unwrap();
        assert!(back.push_responses_and_check_notify());
        back.push_response(11).unwrap();
        assert!(!back.push_responses_and_check_notify());
        // The front end takes both and re-arms; the third notifies.
        assert_eq!(front.take_response().unwrap(), Some(10));
        assert_eq!(front.take_response().unwrap(), Some(11));
        assert!(!front.final_check_for_responses().unwrap());
        back.push_response(12).unwrap();
        assert!(back.push_responses_and_check_notify());
    }

    #[test]
    fn final_check_finds_work_that_raced_the_re_arm() {
        let page = SharedPage::new_boxed();
        let (mut front, mut back) = rings_at::<u64, u64>(&page, 0);
        front.push_request(1).unwrap();
        front.push_requests_and_check_notify();
        assert!(back.final_check_for_requests().unwrap());
        assert_eq!(back.take_request().unwrap(), Some(1));
        assert!(!back.final_check_for_requests().unwrap());
    }

    #[test]
    fn a_hostile_req_prod_is_an_error_not_a_read() {
        for start in [0, u32::MAX - 1] {
            for hostile in [
                start.wrapping_add(257),
                start.wrapping_add(u32::MAX / 2),
                start.wrapping_sub(1),
            ] {
                let page = SharedPage::new_boxed();
                let (_front, mut back) = rings_at::<u64, u64>(&page, start);
                page.u32(REQ_PROD).store(hostile, Ordering::SeqCst);
                let err = RingError::RequestOverflow {
                    req_prod: hostile,
                    rsp_prod: start,
                };
                assert_eq!(back.take_request(), Err(err));
                assert_eq!(back.final_check_for_requests(), Err(err));
                assert_eq!(back.req_cons(), start, "nothing was consumed");
            }
        }
    }

    #[test]
    fn a_full_ring_of_requests_is_not_hostile() {
        let page = SharedPage::new_boxed();
        let (_front, mut back) = rings_at::<u64, u64>(&page, 5);
        // Exactly RING_SIZE published: allowed, all taken, no more.
        page.u32(REQ_PROD).store(5 + 256, Ordering::SeqCst);
        let mut taken = 0;
        while back.take_request().unwrap().is_some() {
            taken += 1;
        }
        assert_eq!(taken, 256);
    }

    #[test]
    fn a_hostile_rsp_prod_is_an_error_not_a_read() {
        for start in [0, u32::MAX] {
            for hostile in [start.wrapping_add(257), start.wrapping_sub(1)] {
                let page = SharedPage::new_boxed();
                let (mut front, _back) = rings_at::<u64, u64>(&page, start);
                page.u32(RSP_PROD).store(hostile, Ordering::SeqCst);
                let err = RingError::ResponseOverflow {
                    rsp_prod: hostile,
                    rsp_cons: start,
                };
                assert_eq!(front.take_response(), Err(err));
                assert_eq!(front.final_check_for_responses(), Err(err));
                assert_eq!(front.rsp_cons(), start);
            }
        }
    }

    #[test]
    fn hostile_slot_contents_are_copied_once_and_used_as_data() {
        // Whatever the front end leaves in a slot is a valid value of the
        // request type: the back end gets a copy that later writes to the
        // slot cannot change.
        let page: Box<SharedPage> = SharedPage::new_boxed();
        let (mut front, mut back) = rings_at::<u64, u64>(&page, 0);
        front.push_request(42).unwrap();
        front.push_requests_and_check_notify();
        let copy = back.take_request().unwrap().unwrap();
        page.u64(RING_OFFSET).store(666, Ordering::SeqCst);
        assert_eq!(copy, 42);
    }
}
