//! Shared helpers: settings pointing at the committed ensemble, one engine per process.

use iari::classify::Engine;
use iari::config::Settings;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn settings(extra: &[(&str, &str)]) -> Settings {
    let manifest = repo().join("onnx/models/manifest.json");
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert(
        "IARI__MODELS__MANIFEST".into(),
        manifest.display().to_string(),
    );
    env.insert("IARI__INFERENCE__DEVICE".into(), "cpu".into());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    Settings::load_from(None, Some(env)).expect("test settings")
}

/// The CPU engine shared by the tests of this binary.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::load(&settings(&[])).expect("engine loads"))
}

pub fn golden_dir() -> PathBuf {
    repo().join("onnx/models/golden")
}

/// The decision the training pipeline recorded for a golden image (`golden.json`).
pub fn golden_decision(image: &str) -> String {
    let text = std::fs::read_to_string(golden_dir().join("golden.json")).unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let case = cases
        .iter()
        .find(|c| c["image"] == image)
        .expect("golden image listed");
    case["decision"].as_str().unwrap().to_string()
}
