//! Decoding allocates per array, never per string: string fields are views into the frame,
//! shared `ByteString`s in the owned types and `&str` in the generated borrowed views.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use benches::proto::world::{WorldStateMessage, WorldStateMessageRef};
use packme::{decode_frame, decode_frame_ref, Packet};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decoding_allocates_only_for_arrays() {
    let message = benches::world_state(64);
    let strings = message
        .entities
        .iter()
        .map(|e| e.name.iter().count() + e.tags.len())
        .sum::<usize>()
        + 2;
    // Arrays: entities, events, and the non-empty tags arrays (an empty Vec allocates nothing).
    let arrays = 2 + message
        .entities
        .iter()
        .filter(|e| !e.tags.is_empty())
        .count();
    let frame = Packet::new(message, 1).to_bytes();
    // Share the frame once up front (the first clone of a Vec-backed Bytes allocates its
    // shared header; a frame from the network is shared already).
    let warm = frame.clone();
    drop(warm);

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let view = decode_frame_ref::<WorldStateMessageRef>(&frame).unwrap();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!(
        allocations, arrays,
        "the view: one allocation per non-empty array, none for {strings} strings"
    );
    drop(view);

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let decoded = decode_frame::<WorldStateMessage>(frame).unwrap();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(strings > 40, "the message has {strings} strings");
    assert_eq!(
        allocations, arrays,
        "one allocation per non-empty array, none for {strings} strings"
    );
    drop(decoded);
}
