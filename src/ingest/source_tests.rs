use super::*;
use rustix::fs::Mode;

struct Fixture {
    _dir: tempfile::TempDir,
    root: ImageRoot,
    outside: PathBuf,
}

fn fixture(max_bytes: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("root");
    std::fs::create_dir_all(root_path.join("sub")).unwrap();
    std::fs::write(root_path.join("sub/a.png"), b"0123456789").unwrap();
    let outside = dir.path().join("secret.png");
    std::fs::write(&outside, b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, root_path.join("link.png")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root_path.join("updir")).unwrap();
    // Links that stay inside are followed, relative or absolute; one that leads out is not.
    std::os::unix::fs::symlink("sub/a.png", root_path.join("inside.png")).unwrap();
    std::os::unix::fs::symlink(
        root_path.join("sub/a.png"),
        root_path.join("abs-inside.png"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../secret.png", root_path.join("sub-up.png")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        root_path.join("fifo.png"),
        Mode::from_raw_mode(0o600),
    )
    .unwrap();
    Fixture {
        root: ImageRoot::new(&root_path, max_bytes).unwrap(),
        outside,
        _dir: dir,
    }
}

fn path_ref(p: impl Into<PathBuf>) -> ImageRef {
    ImageRef {
        source: ImageSource::Path(p.into()),
        sha256: None,
    }
}

fn reason(r: Result<LoadedImage, Failure>) -> DeadLetterReason {
    r.unwrap_err().reason
}

#[test]
fn reads_a_file_under_the_root() {
    let f = fixture(100);
    let img = load_image(&path_ref("sub/a.png"), &f.root).unwrap();
    assert_eq!(img.bytes, b"0123456789");
    assert_eq!(img.sha256, Sha256Digest::of(b"0123456789"));
    let via_link = load_image(&path_ref("inside.png"), &f.root).unwrap();
    assert_eq!(via_link.bytes, b"0123456789");
    let via_absolute_link = load_image(&path_ref("abs-inside.png"), &f.root).unwrap();
    assert_eq!(via_absolute_link.bytes, b"0123456789");
    let absolute_inside = f.root.path().join("sub/a.png");
    assert!(load_image(&path_ref(absolute_inside), &f.root).is_ok());
}

#[test]
fn escapes_are_path_outside_root() {
    let f = fixture(100);
    for p in [
        "../secret.png",
        "sub/../../secret.png",
        "sub/../sub/a.png",
        "link.png",
        "updir/secret.png",
        "sub-up.png",
    ] {
        assert_eq!(
            reason(load_image(&path_ref(p), &f.root)),
            DeadLetterReason::PathOutsideRoot,
            "{p}"
        );
    }
    assert_eq!(
        reason(load_image(&path_ref(&f.outside), &f.root)),
        DeadLetterReason::PathOutsideRoot
    );
    assert_eq!(
        reason(load_image(&path_ref("/etc/passwd"), &f.root)),
        DeadLetterReason::PathOutsideRoot
    );
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let f = fixture(100);
    // Opened non-blocking and checked on the descriptor: no writer is needed to get an answer.
    assert_eq!(
        reason(load_image(&path_ref("fifo.png"), &f.root)),
        DeadLetterReason::ImageUndecodable
    );
}

#[test]
fn missing_is_transient_and_limits_hold() {
    let f = fixture(5);
    let missing = load_image(&path_ref("sub/nope.png"), &f.root).unwrap_err();
    assert_eq!(missing.reason, DeadLetterReason::ImageMissing);
    assert!(missing.reason.is_transient());
    assert_eq!(
        reason(load_image(&path_ref("sub/a.png"), &f.root)),
        DeadLetterReason::ImageTooLarge
    );
    assert_eq!(
        reason(load_image(&path_ref("sub"), &f.root)),
        DeadLetterReason::ImageUndecodable
    );
}

#[test]
fn hash_mismatch_is_refused() {
    let f = fixture(100);
    let mut r = path_ref("sub/a.png");
    r.sha256 = Some(Sha256Digest::of(b"other"));
    assert_eq!(
        reason(load_image(&r, &f.root)),
        DeadLetterReason::ImageHashMismatch
    );
    r.sha256 = Some(Sha256Digest::of(b"0123456789"));
    assert!(load_image(&r, &f.root).is_ok());
}

#[test]
fn inline_images_obey_the_same_limits() {
    let f = fixture(8);
    let inline = |data: &[u8]| ImageRef {
        source: ImageSource::Inline {
            base64: base64::engine::general_purpose::STANDARD.encode(data),
            media_type: "image/png".into(),
        },
        sha256: None,
    };
    let ok = load_image(&inline(b"12345678"), &f.root).unwrap();
    assert_eq!(ok.bytes, b"12345678");
    assert_eq!(ok.media_type.as_deref(), Some("image/png"));
    assert_eq!(
        reason(load_image(&inline(b"123456789"), &f.root)),
        DeadLetterReason::ImageTooLarge
    );
    assert_eq!(
        reason(load_image(&inline(&[0u8; 4096]), &f.root)),
        DeadLetterReason::ImageTooLarge
    );
    let bad = ImageRef {
        source: ImageSource::Inline {
            base64: "!!!".into(),
            media_type: "image/png".into(),
        },
        sha256: None,
    };
    assert_eq!(
        reason(load_image(&bad, &f.root)),
        DeadLetterReason::InvalidEvent
    );
}

/// The limit is on the image, not on the whitespace a publisher wraps its base64 in.
#[test]
fn an_inline_image_at_the_limit_with_surrounding_whitespace_is_accepted() {
    let f = fixture(8);
    let encoded = base64::engine::general_purpose::STANDARD.encode(b"12345678");
    let r = ImageRef {
        source: ImageSource::Inline {
            base64: format!("\r\n  {encoded}\r\n  "),
            media_type: "image/png".into(),
        },
        sha256: None,
    };
    assert_eq!(load_image(&r, &f.root).unwrap().bytes, b"12345678");
}
