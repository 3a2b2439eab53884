//! The bad-input corpus (`tests/corpus/bad-input/cases.toml`) turned into message bodies: files
//! placed under the worker's image root, inline images, raw bodies, and the cases the test must
//! build at run time (big bodies, symlinks, a FIFO).

use crate::common::event;
use crate::harness::TestWorker;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

pub const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/bad-input");
const MIB: u64 = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    Body,
    File,
    Inline,
    Path,
    Generated,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: String,
    pub delivery: Delivery,
    pub file: Option<String>,
    pub path: Option<String>,
    pub media_type: Option<String>,
    pub sha256: Option<String>,
    /// A reason code, or `decided`.
    pub expect: String,
    pub note: String,
}

impl Case {
    pub fn decided(&self) -> bool {
        self.expect == "decided"
    }
}

#[derive(Deserialize)]
struct Manifest {
    case: Vec<Case>,
}

pub fn load() -> Vec<Case> {
    let text = std::fs::read_to_string(Path::new(CORPUS).join("cases.toml")).unwrap();
    let cases = toml::from_str::<Manifest>(&text).unwrap().case;
    let readme = std::fs::read_to_string(Path::new(CORPUS).join("README.md")).unwrap();
    for c in &cases {
        assert!(
            readme.contains(&format!("`{}`", c.id)),
            "{}: not in README",
            c.id
        );
        let known = iari::domain::DeadLetterReason::parse(&c.expect).is_some();
        assert!(
            c.decided() || known,
            "{}: unknown outcome {}",
            c.id,
            c.expect
        );
        assert!(!c.note.is_empty(), "{}: say what the case is", c.id);
    }
    cases
}

fn corpus_file(c: &Case) -> Vec<u8> {
    let rel = c
        .file
        .as_deref()
        .unwrap_or_else(|| panic!("{}: no file", c.id));
    std::fs::read(Path::new(CORPUS).join(rel)).unwrap()
}

fn with_sha(c: &Case, mut image: Value) -> Value {
    if let Some(sha) = &c.sha256 {
        image["sha256"] = json!(sha);
    }
    image
}

fn inline(data: &[u8], media_type: &str) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    json!({ "data_base64": b64, "media_type": media_type })
}

fn body(id: &str, image: Value) -> Vec<u8> {
    serde_json::to_vec(&event(id, image)).unwrap()
}

/// Deterministic bytes that compress to nothing and decode as no image format.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The message body for `c`, after placing whatever it needs under the root (or `outside`).
pub fn build(c: &Case, w: &TestWorker, outside: &Path) -> Vec<u8> {
    match c.delivery {
        Delivery::Body => corpus_file(c),
        Delivery::File => {
            let ext = Path::new(c.file.as_deref().unwrap_or_default()).extension();
            let name = format!("{}.{}", c.id, ext.unwrap_or_default().to_string_lossy());
            w.put_file(&name, &corpus_file(c));
            body(&c.id, with_sha(c, json!({ "path": name })))
        }
        Delivery::Inline => {
            let media_type = c.media_type.as_deref().unwrap_or_default();
            body(&c.id, with_sha(c, inline(&corpus_file(c), media_type)))
        }
        Delivery::Path => {
            let path = c.path.as_deref().unwrap_or_default();
            body(&c.id, with_sha(c, json!({ "path": path })))
        }
        Delivery::Generated => generated(c, w, outside),
    }
}

fn symlink(target: &Path, link: PathBuf) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// Cases too big to commit, or tied to this run's temporary folders.
fn generated(c: &Case, w: &TestWorker, outside: &Path) -> Vec<u8> {
    let root = w.root.path().canonicalize().unwrap();
    let good = std::fs::read(root.join("good.png")).unwrap();
    let path = |p: &str| json!({ "path": p });
    let id = c.id.as_str();
    match id {
        "gen-json-nested-100k" => {
            let deep = "[".repeat(100_000) + &"]".repeat(100_000);
            let mut text = String::from_utf8(body(id, path("good.png"))).unwrap();
            text.insert_str(1, &format!("\"patient\": {{\"given\": {deep}}}, "));
            text.into_bytes()
        }
        "gen-body-10mb-noise" => body(id, inline(&noise(7_500_000), "image/png")),
        "gen-inline-20mib-plus-1" => {
            body(id, inline(&vec![0; (20 * MIB + 1) as usize], "image/png"))
        }
        "gen-inline-21mib" => body(id, inline(&vec![0; (21 * MIB) as usize], "image/png")),
        "gen-file-21mib" | "gen-file-20mib-zeros" => {
            let size = if id == "gen-file-21mib" {
                21 * MIB
            } else {
                20 * MIB
            };
            let f = std::fs::File::create(root.join(format!("{id}.png"))).unwrap();
            f.set_len(size).unwrap(); // sparse: costs no disk
            body(id, path(&format!("{id}.png")))
        }
        "gen-symlink-out" => {
            std::fs::write(outside.join("secret.png"), &good).unwrap();
            symlink(&outside.join("secret.png"), root.join("link-out.png"));
            body(id, path("link-out.png"))
        }
        "gen-symlink-dir-out" => {
            std::fs::write(outside.join("in-dir.png"), &good).unwrap();
            symlink(outside, root.join("dir-out"));
            body(id, path("dir-out/in-dir.png"))
        }
        "gen-symlink-dev-zero" => {
            symlink(Path::new("/dev/zero"), root.join("zero.png"));
            body(id, path("zero.png"))
        }
        "gen-abs-outside" => {
            std::fs::write(outside.join("abs.png"), &good).unwrap();
            body(id, path(outside.join("abs.png").to_str().unwrap()))
        }
        "gen-abs-inside" => body(id, path(root.join("good.png").to_str().unwrap())),
        "gen-symlink-inside" => {
            symlink(&root.join("good.png"), root.join("link-in.png"));
            body(id, path("link-in.png"))
        }
        "gen-symlink-loop" => {
            symlink(&root.join("loop-b.png"), root.join("loop-a.png"));
            symlink(&root.join("loop-a.png"), root.join("loop-b.png"));
            body(id, path("loop-a.png"))
        }
        "gen-directory" => {
            std::fs::create_dir_all(root.join("a-folder.png")).unwrap();
            body(id, path("a-folder.png"))
        }
        "gen-fifo" => {
            let ok = std::process::Command::new("mkfifo")
                .arg(root.join("fifo.png"))
                .status()
                .unwrap()
                .success();
            assert!(ok, "mkfifo");
            body(id, path("fifo.png"))
        }
        "gen-sha256-uppercase" => {
            let sha = iari::domain::Sha256Digest::of(&good)
                .to_hex()
                .to_uppercase();
            body(id, json!({ "path": "good.png", "sha256": sha }))
        }
        other => panic!("{other}: generated case not known to the test"),
    }
}
