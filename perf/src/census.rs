//! An allocation census for the bench servers (feature `census`): what an idle connection
//! costs, allocation by allocation (issue 15: "measure and list what each idle
//! connection still costs, byte by byte").
//!
//! [`Census`] wraps the global allocator and keeps, for every requested size up to
//! [`EXACT_SIZES`] bytes, how many allocations of that size are live (larger ones by
//! power of two). [`dump_at`] prints the table to stderr at given times after start;
//! `perf/idle-census` takes one before the load generator connects and one while its
//! connections are held, and divides the difference by the connection count. Sizes are
//! what the program asked for; the allocator's size classes round them up, which RSS
//! (perf/idle-ab) sees and this does not.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sizes counted one by one; above, by power of two.
pub const EXACT_SIZES: usize = 8192;
const LARGE_CLASSES: usize = 64;

static EXACT: [AtomicI64; EXACT_SIZES + 1] = [const { AtomicI64::new(0) }; EXACT_SIZES + 1];
static LARGE: [AtomicI64; LARGE_CLASSES] = [const { AtomicI64::new(0) }; LARGE_CLASSES];
static LARGE_BYTES: AtomicI64 = AtomicI64::new(0);

/// Sizes whose next allocations print where they came from ([`trace_sizes`]), with how
/// many are left to print for each.
static TRACED: Mutex<Vec<(usize, u32)>> = Mutex::new(Vec::new());
static TRACING: AtomicBool = AtomicBool::new(false);
thread_local! {
    /// Set while this thread captures a backtrace, whose own allocations are not traced.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

/// Prints a backtrace to stderr for each of the next `each` allocations of each of
/// `sizes`: which code an allocation of the census belongs to (the first ones of a size
/// may be passing ones, e.g. the handshake's, hence several).
pub fn trace_sizes(sizes: Vec<usize>, each: u32) {
    *TRACED.lock().unwrap_or_else(|e| e.into_inner()) =
        sizes.into_iter().map(|size| (size, each)).collect();
    TRACING.store(true, Relaxed);
}

fn trace(size: usize) {
    if !TRACING.load(Relaxed) || IN_TRACE.with(Cell::get) {
        return;
    }
    IN_TRACE.with(|t| t.set(true));
    let wanted = {
        let mut sizes = TRACED.lock().unwrap_or_else(|e| e.into_inner());
        match sizes.iter_mut().find(|(s, left)| *s == size && *left > 0) {
            Some((_, left)) => {
                *left -= 1;
                true
            }
            None => false,
        }
    };
    if wanted {
        let trace = std::backtrace::Backtrace::force_capture();
        eprintln!("census trace size {size}:\n{trace}");
    }
    IN_TRACE.with(|t| t.set(false));
}

/// The global allocator `A`, counting live allocations by size.
#[derive(Debug)]
pub struct Census<A>(pub A);

fn count(size: usize, delta: i64) {
    if size <= EXACT_SIZES {
        EXACT[size].fetch_add(delta, Relaxed);
    } else {
        LARGE[size.ilog2() as usize].fetch_add(delta, Relaxed);
        LARGE_BYTES.fetch_add(delta * size as i64, Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the wrapped allocator, which upholds
// `GlobalAlloc`'s contract; the counting touches only static atomics (no allocation).
unsafe impl<A: GlobalAlloc> GlobalAlloc for Census<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        trace(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        trace(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        trace(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// Prints the census to stderr once at each of `times` after now, from a thread of its
/// own: one line `census T size N live COUNT` per size with live allocations (`size` is
/// `>=2^k` for the large classes, with their bytes in `census T large-bytes B`).
pub fn dump_at(times: Vec<Duration>) {
    let start = Instant::now();
    std::thread::spawn(move || {
        for at in times {
            std::thread::sleep(at.saturating_sub(start.elapsed()));
            let label = at.as_secs_f64();
            let mut out = String::new();
            for (size, live) in EXACT.iter().enumerate() {
                let live = live.load(Relaxed);
                if live != 0 {
                    out += &format!("census {label} size {size} live {live}\n");
                }
            }
            for (class, live) in LARGE.iter().enumerate() {
                let live = live.load(Relaxed);
                if live != 0 {
                    out += &format!("census {label} size >={} live {live}\n", 1u64 << class);
                }
            }
            out += &format!("census {label} large-bytes {}\n", LARGE_BYTES.load(Relaxed));
            eprint!("{out}");
        }
    });
}
