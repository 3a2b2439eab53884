//! Image path resolution check (`image.path` through `ingest::source::load_image`), shared by
//! the cargo-fuzz target and the bounded stable run (`tests/fuzz`). The input is a path; `@`
//! in it stands for the image root's absolute path and `%` for the folder above it, so that
//! absolute paths inside and outside are within a mutation's reach. The root (made once per
//! process in the temporary folder) holds files, links that stay inside, links that lead out
//! (absolute, relative, to a folder), a link loop, a FIFO, a folder and a file over the limit;
//! beside it lies a secret.
//!
//! Asserts: no panic and no hang (the FIFO); the secret is never returned; whatever is returned
//! is a file inside the root; a path with `..`, or absolute elsewhere, is `path_outside_root`; a
//! path whose every link resolves to a regular file inside the root, within the limit, is read,
//! and read whole; every refusal is one of the image reasons, on one line.

use iari::domain::{DeadLetterReason, ImageRef, ImageSource};
use iari::ingest::source::{ImageRoot, load_image};
use rustix::fs::Mode;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

const MAX_BYTES: u64 = 64;
const SECRET: &[u8] = b"SECRET: outside the image root";

struct Fixture {
    base: PathBuf,
    root: ImageRoot,
}

const PREFIX: &str = "iari-fuzz-image-path-";

/// Fixtures of processes that have ended (their pid no longer in /proc) are removed, so runs do
/// not pile up; a live one (cargo-fuzz's parallel jobs) is left alone.
fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = name.strip_prefix(PREFIX)
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn build() -> std::io::Result<Fixture> {
    // The test target's own temporary folder when built as a test, else the system's.
    let dir = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    sweep(&dir);
    let base = dir.join(format!("{PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub/deeper"))?;
    std::fs::write(base.join("secret.png"), SECRET)?;
    std::fs::write(root.join("sub/a.png"), b"inside: sub/a")?;
    std::fs::write(root.join("b.png"), b"inside: b")?;
    std::fs::write(root.join("sub/deeper/c.png"), b"inside: c")?;
    std::fs::write(root.join("big.png"), [b'x'; 100])?;
    symlink("sub/a.png", root.join("inside.png"))?;
    symlink(root.join("b.png"), root.join("abs-inside.png"))?;
    symlink("deeper", root.join("sub/down"))?;
    symlink(base.join("secret.png"), root.join("link.png"))?;
    symlink("../secret.png", root.join("up.png"))?;
    symlink("../../secret.png", root.join("sub/up2.png"))?;
    symlink(&base, root.join("updir"))?;
    symlink("..", root.join("sub/parent"))?;
    symlink("loop.png", root.join("loop.png"))?;
    symlink("missing.png", root.join("dangling.png"))?;
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        root.join("fifo.png"),
        Mode::from_raw_mode(0o600),
    )?;
    let root = ImageRoot::new(&root, MAX_BYTES)?;
    Ok(Fixture { base, root })
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build().expect("the image root fixture"))
}

/// What the path must give, worked out independently of `load_image`: `Some(Ok(bytes))` when
/// it must be read, `Some(Err(reason))` when it must be refused for that reason.
fn expected(path: &Path, f: &Fixture) -> Option<Result<Vec<u8>, DeadLetterReason>> {
    let root = f.root.path();
    if path.components().any(|c| c == Component::ParentDir)
        || (path.is_absolute() && !path.starts_with(root))
    {
        return Some(Err(DeadLetterReason::PathOutsideRoot));
    }
    let target = std::fs::canonicalize(root.join(path)).ok()?;
    if !target.starts_with(root) {
        return None;
    }
    let meta = std::fs::metadata(&target).ok()?;
    (meta.is_file() && meta.len() <= MAX_BYTES).then(|| Ok(std::fs::read(&target).unwrap()))
}

/// The check on one input.
pub fn check(data: &[u8]) {
    let f = fixture();
    let text = String::from_utf8_lossy(data)
        .replace('@', &f.root.path().display().to_string())
        .replace('%', &f.base.display().to_string());
    let path = PathBuf::from(&text);
    let image = ImageRef {
        source: ImageSource::Path(path.clone()),
        sha256: None,
    };
    let got = load_image(&image, &f.root);
    if let Ok(img) = &got {
        assert_ne!(
            img.bytes, SECRET,
            "{text:?} read the secret outside the root"
        );
        assert!(
            img.bytes.starts_with(b"inside: "),
            "{text:?}: {:?}",
            img.bytes
        );
    }
    if let Err(e) = &got {
        use DeadLetterReason::*;
        let ok = [
            PathOutsideRoot,
            ImageMissing,
            ImageUndecodable,
            ImageTooLarge,
        ];
        assert!(ok.contains(&e.reason), "{text:?}: {e}");
        assert!(!e.header_value().chars().any(char::is_control));
    }
    match (expected(&path, f), got) {
        (Some(Ok(bytes)), Ok(img)) => assert_eq!(img.bytes, bytes, "{text:?}"),
        (Some(Err(reason)), Err(e)) => assert_eq!(e.reason, reason, "{text:?}: {e}"),
        (Some(want), got) => panic!("{text:?}: expected {want:?}, got {got:?}"),
        (None, _) => {}
    }
}
