//! What decoding costs in memory: every image of the bad-input corpus decoded under the default
//! limits while a counting allocator records this thread's peak heap. A decoder that allocates
//! from a lying header before the limits are checked fails here instead of in production.

use iari::classify::{ImageLimits, decode};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

/// Counts live and peak bytes per thread (the decoders run on the calling thread); other
/// threads' allocations in this test binary do not disturb the measurement.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are recorded.
// A counting allocator must implement the unsafe trait; it only forwards to `System`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            track(l.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            track(l.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        track(-(l.size() as isize));
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new_size) };
        if !q.is_null() {
            track(new_size as isize - l.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated on this thread by `f`, above what was live before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as usize)
}

#[test]
fn decoding_the_bad_input_corpus_stays_within_the_allocation_cap() {
    let limits = ImageLimits {
        max_bytes: 20 << 20,
        max_width: 4096,
        max_height: 4096,
        decode_budget: std::time::Duration::from_secs(60),
    };
    let (w, h) = (4096usize, 4096usize);
    // What the largest accepted image may cost: the decoder's cap (16 bits x 4 channels plus
    // 16 MiB of state) and the 8-bit RGB copy handed back.
    let budget = w * h * 8 + (16 << 20) + w * h * 3;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad-input/images");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 40, "corpus at {}", dir.display());
    let mut worst = (0, String::new());
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (result, peak) = peak_of(|| decode(&bytes, &limits).map(|d| (d.width(), d.height())));
        eprintln!(
            "{name}: peak {:.1} MiB, {result:?}",
            peak as f64 / 1048576.0
        );
        assert!(
            peak <= budget,
            "{name}: decoding peaked at {peak} bytes, budget {budget}"
        );
        worst = worst.max((peak, name));
    }
    // The measurement is real: the 4096 x 4096 image at the pixel limit costs tens of MiB.
    assert!(worst.0 > 16 << 20, "largest peak {worst:?}");
}
