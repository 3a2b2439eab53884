//! The fuzz targets' checks (`fuzz/checks/`, shared with the cargo-fuzz targets in `fuzz/`) run
//! for a bounded time in `make test` on the stable toolchain: each target gets its committed
//! seeds and corpus files, then a fixed number of inputs mutated from them by a seeded
//! generator (bit flips, HL7/MLLP/JSON bytes, inserted, deleted, repeated and spliced ranges,
//! truncation). This is not coverage-guided fuzzing (no libFuzzer, no sanitizers: `make fuzz`
//! does that); it makes every check compile and hold on a few thousand inputs per target in
//! every CI run. `IARI_FUZZ_ITERS` (default 20,000 per target) and `IARI_FUZZ_SEED` change the
//! run; a failing input is written under the target's temporary directory and named in the
//! panic.

#[path = "../../fuzz/checks/ack_parser.rs"]
mod ack_parser;
#[path = "../../fuzz/checks/api_input.rs"]
mod api_input;
#[path = "../../fuzz/checks/capture_event.rs"]
mod capture_event;
#[path = "../../fuzz/checks/hl7_escape.rs"]
mod hl7_escape;
#[path = "../../fuzz/checks/image_decode.rs"]
mod image_decode;
#[path = "../../fuzz/checks/image_path.rs"]
mod image_path;
#[path = "../../fuzz/checks/inline_image.rs"]
mod inline_image;
#[path = "../../fuzz/checks/mllp_decoder.rs"]
mod mllp_decoder;

use std::path::{Path, PathBuf};

/// xorshift64*: small, seeded, the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes the parsers give meaning to: MLLP framing, HL7 delimiters, JSON, PNG/JPEG markers,
/// paths (`/`, `.`, and the `@`/`%` of the image path check), query strings and base64.
const INTERESTING: &[u8] = &[
    0x00, 0xFF, 0x7F, 0x80, 0x0B, 0x1C, 0x0D, 0x0A, b'|', b'^', b'~', b'\\', b'&', b'"', b'{',
    b'}', b'[', b']', b':', b',', b'0', b'9', b'-', 0xD8, 0xD9, 0xDA, 0xC0, 0xC4, 0x89, b'/', b'.',
    b'@', b'%', b'=', b'+', b' ', b'\t',
];

/// One input mutated from `seeds` by one to four stacked edits.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(len + 1);
                data.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                data.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(32)).min(len);
                let piece = data[a..b].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, piece);
            }
            5 if len > 0 => data.truncate(rng.below(len)),
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let a = rng.below(other.len());
                    let b = (a + 1 + rng.below(64)).min(other.len());
                    let at = rng.below(len + 1);
                    data.splice(at..at, other[a..b].iter().copied());
                }
            }
            _ => {
                let i = rng.below(len + 1);
                data.insert(i, rng.next() as u8);
            }
        }
    }
    data
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every file directly in these folders (relative to the repository).
fn files(dirs: &[&str]) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(repo().join(d)).unwrap_or_else(|e| panic!("{d}: {e}")))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `check` on every seed, then on `IARI_FUZZ_ITERS` mutated inputs. A panic in `check`
/// saves the input and fails naming it.
fn run(target: &str, seeds: Vec<Vec<u8>>, check: impl Fn(&[u8])) -> usize {
    assert!(!seeds.is_empty(), "{target}: no seeds");
    let iters = env_or("IARI_FUZZ_ITERS", 20_000);
    let mut rng = Rng(env_or("IARI_FUZZ_SEED", 0x1A81_F022) | 1);
    let mut inputs: Vec<Vec<u8>> = seeds.clone();
    inputs.extend((0..iters).map(|_| mutate(&mut rng, &seeds)));
    for (i, input) in inputs.iter().enumerate() {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(input))).is_err() {
            let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{target}-{i}"));
            std::fs::write(&path, input).unwrap();
            panic!(
                "{target}: input {i} failed the check; saved to {} ({} bytes: {:?})",
                path.display(),
                input.len(),
                String::from_utf8_lossy(&input[..input.len().min(200)])
            );
        }
    }
    inputs.len()
}

#[test]
fn ack_parser_holds_on_seeds_and_mutations() {
    let n = run(
        "ack_parser",
        files(&["fuzz/seeds/ack_parser"]),
        ack_parser::check,
    );
    assert!(n > 4);
}

#[test]
fn capture_event_holds_on_seeds_and_mutations() {
    let seeds = files(&["fuzz/seeds/capture_event", "tests/corpus/bad-input/bodies"]);
    let n = run("capture_event", seeds, capture_event::check);
    assert!(n > 2);
}

#[test]
fn image_decode_holds_on_seeds_and_mutations() {
    let mut seeds = files(&["tests/corpus/bad-input/images"]);
    // Whole, valid images too, so that mutations reach the decoders' inner parts.
    for good in ["g0-neg.png", "g10-2p-jpeg.jpg"] {
        seeds.push(std::fs::read(repo().join("onnx/models/golden").join(good)).unwrap());
    }
    let n = run("image_decode", seeds, image_decode::check);
    assert!(n > 2);
}

/// The stream is cut into chunks at points drawn from the input itself, so that the same input
/// always gets the same chunking.
#[test]
fn mllp_decoder_holds_on_seeds_and_mutations() {
    let n = run(
        "mllp_decoder",
        files(&["fuzz/seeds/mllp_decoder"]),
        |data| {
            let mut rng = Rng(data.iter().fold(0x9E37_79B9_7F4A_7C15, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01B3)
            }) | 1);
            let mut chunks = Vec::new();
            let mut rest = data;
            while !rest.is_empty() {
                let k = 1 + rng.below(rest.len().min(32));
                let (head, tail) = rest.split_at(k);
                chunks.push(head);
                rest = tail;
            }
            mllp_decoder::check(&chunks);
        },
    );
    assert!(n > 2);
}

#[test]
fn inline_image_holds_on_seeds_and_mutations() {
    let n = run(
        "inline_image",
        files(&["fuzz/seeds/inline_image"]),
        inline_image::check,
    );
    assert!(n > 2);
}

#[test]
fn image_path_holds_on_seeds_and_mutations() {
    let n = run(
        "image_path",
        files(&["fuzz/seeds/image_path"]),
        image_path::check,
    );
    assert!(n > 2);
}

#[test]
fn api_input_holds_on_seeds_and_mutations() {
    let n = run(
        "api_input",
        files(&["fuzz/seeds/api_input"]),
        api_input::check,
    );
    assert!(n > 2);
}

#[test]
fn hl7_escape_holds_on_seeds_and_mutations() {
    let n = run(
        "hl7_escape",
        files(&["fuzz/seeds/hl7_escape"]),
        hl7_escape::check,
    );
    assert!(n > 2);
}
