//! The ONNX Runtime library, loaded once per process from `inference.ort_library`
//! (or `ORT_DYLIB_PATH`), and the one `ort` environment every session is created in.

use crate::config::InferenceSettings;
use ort::environment::{Environment, GlobalThreadPoolOptions};
use ort::logging::LogLevel;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The runtime cannot be used: a deployment problem, permanent until someone fixes it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found at {}: run scripts/fetch-ort.sh or set ORT_DYLIB_PATH",
        .0.display()
    )]
    Missing(PathBuf),
    #[error("cannot load ONNX Runtime from {}: {reason}", .path.display())]
    Load { path: PathBuf, reason: String },
    #[error("cannot create the ONNX Runtime environment: {0}")]
    Environment(String),
    #[error(
        "ONNX Runtime library {} has SHA-256 {sha256}, not a pinned build: run scripts/fetch-ort.sh, or set inference.ort_library_sha256 to trust your own build",
        .path.display()
    )]
    Unknown { path: PathBuf, sha256: String },
}

/// The builds `scripts/fetch-ort.sh` installs, by the SHA-256 of `libonnxruntime.so.*`.
const PINNED: [(&str, &str); 2] = [
    (
        "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
        "onnxruntime 1.32.0 (PyPI, CPU)",
    ),
    (
        "5104254339ecadae808da771bd0b63b240f0dbd466514234905e54372435c303",
        "onnxruntime-gpu 1.31.1 (PyPI, CUDA 13)",
    ),
];

/// Refuses a library whose bytes are neither a pinned build nor the one `trusted` names: what
/// is loaded runs with the service's rights and decides every grade.
fn check_library(path: &Path, trusted: &str) -> Result<(), RuntimeError> {
    let load_err = |reason: String| RuntimeError::Load {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = std::fs::File::open(path).map_err(|e| load_err(e.to_string()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| load_err(e.to_string()))?;
    let sha256 = hex::encode(hasher.finalize());
    let trusted = trusted.trim();
    if PINNED.iter().any(|(h, _)| *h == sha256)
        || (!trusted.is_empty() && trusted.eq_ignore_ascii_case(&sha256))
    {
        return Ok(());
    }
    Err(RuntimeError::Unknown {
        path: path.to_path_buf(),
        sha256,
    })
}

/// The loaded runtime: its environment (kept alive for the process) and version.
#[derive(Debug)]
pub struct Runtime {
    environment: Environment,
    version: String,
    global_pool: bool,
}

impl Runtime {
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// ONNX Runtime version, e.g. `1.32.0`, for provenance.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether sessions share the environment's global intra-op pool.
    pub fn has_global_pool(&self) -> bool {
        self.global_pool
    }
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The process's runtime, loading it on first use. `global_pool_threads` (Some) creates the
/// environment with one shared intra-op pool of that many threads; it only has effect on the
/// first call, since ONNX Runtime allows one environment per process.
pub fn runtime(
    settings: &InferenceSettings,
    global_pool_threads: Option<usize>,
) -> Result<&'static Runtime, RuntimeError> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    // Serialise first loads; the lock guards no data, so poisoning is harmless.
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let path = settings.ort_library_path();
    if path.is_file() {
        check_library(&path, &settings.ort_library_sha256)?;
    }
    let rt = load(&path, global_pool_threads)?;
    Ok(RUNTIME.get_or_init(|| rt))
}

fn load(path: &Path, global_pool_threads: Option<usize>) -> Result<Runtime, RuntimeError> {
    if !path.is_file() {
        return Err(RuntimeError::Missing(path.to_path_buf()));
    }
    let builder = ort::init_from(path)
        .map_err(|e| RuntimeError::Load {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?
        .with_name("iari")
        .with_telemetry(false)
        .with_logger(Arc::new(forward_log));
    let env_err = |e: ort::Error| RuntimeError::Environment(e.to_string());
    let builder = match global_pool_threads {
        Some(threads) => {
            // Spinning off: five small sessions would otherwise burn the cores between runs.
            let pool = GlobalThreadPoolOptions::default()
                .with_intra_threads(threads)
                .and_then(|p| p.with_inter_threads(1))
                .and_then(|p| p.with_spin_control(false))
                .map_err(env_err)?;
            builder.with_global_thread_pool(pool)
        }
        None => builder,
    };
    let environment = builder.build().map_err(env_err)?;
    let version = parse_version(ort::info(), path);
    tracing::info!(path = %path.display(), version = %version, "ONNX Runtime loaded");
    Ok(Runtime {
        environment,
        version,
        global_pool: global_pool_threads.is_some(),
    })
}

/// ONNX Runtime's own log: its info level narrates every graph rewrite, so only warnings and
/// errors are passed on.
fn forward_log(level: LogLevel, category: &str, _id: &str, location: &str, message: &str) {
    match level {
        LogLevel::Verbose | LogLevel::Info => {}
        LogLevel::Warning => tracing::warn!(category, location, "onnxruntime: {message}"),
        LogLevel::Error | LogLevel::Fatal => {
            tracing::error!(category, location, "onnxruntime: {message}")
        }
    }
}

/// The version for provenance: `git-branch=rel-X` from the build info when the release branch is
/// named there, else the resolved library file name (`libonnxruntime.so.X.Y.Z`); the git
/// commit is appended when known (`1.32.0 (git fab30a4)`).
fn parse_version(info: &str, library: &Path) -> String {
    let field = |key: &str| {
        info.split([',', ' '])
            .find_map(|part| part.trim().strip_prefix(key).map(str::to_string))
    };
    let from_branch = field("git-branch=").and_then(|b| b.strip_prefix("rel-").map(str::to_string));
    let from_file = std::fs::canonicalize(library).ok().and_then(|p| {
        let name = p.file_name()?.to_str()?.to_string();
        let v = name.split_once(".so.")?.1.to_string();
        v.starts_with(|c: char| c.is_ascii_digit()).then_some(v)
    });
    let version = from_branch
        .or(from_file)
        .unwrap_or_else(|| "unknown".into());
    match field("git-commit-id=") {
        Some(commit) => format!("{version} (git {commit})"),
        None => version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_parsed_from_build_info() {
        let nowhere = Path::new("/nonexistent/libonnxruntime.so");
        let info =
            "ORT Build Info: git-branch=rel-1.32.0, git-commit-id=26250ae, build type=Release";
        assert_eq!(parse_version(info, nowhere), "1.32.0 (git 26250ae)");
        assert_eq!(
            parse_version("ORT Build Info: git-branch=HEAD", nowhere),
            "unknown"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("libonnxruntime.so.1.31.2");
        std::fs::write(&file, b"").unwrap();
        let link = dir.path().join("libonnxruntime.so");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let info = "ORT Build Info: git-branch=HEAD, git-commit-id=fab30a4, build type=Release";
        assert_eq!(parse_version(info, &link), "1.31.2 (git fab30a4)");
    }

    #[test]
    fn only_pinned_or_named_libraries_are_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libonnxruntime.so.9.9.9");
        std::fs::write(&lib, b"not the pinned build").unwrap();
        let e = check_library(&lib, "").unwrap_err();
        let sha256 = hex::encode(Sha256::digest(b"not the pinned build"));
        assert!(
            matches!(&e, RuntimeError::Unknown { sha256: s, .. } if *s == sha256),
            "{e}"
        );
        assert!(
            e.to_string().contains("inference.ort_library_sha256"),
            "{e}"
        );
        // A lab that builds its own names it; another hash does not open the door.
        assert!(check_library(&lib, &sha256.to_uppercase()).is_ok());
        assert!(check_library(&lib, PINNED[0].0).is_err());
        // The library every test loads (scripts/fetch-ort.sh) is a pinned build.
        let fetched = crate::config::Settings::load_from(None, Some(Default::default()))
            .unwrap()
            .inference
            .ort_library_path();
        if let Ok(real) = std::fs::canonicalize(&fetched) {
            check_library(&real, "").unwrap();
        }
    }

    #[test]
    fn missing_library_says_how_to_fix_it_in_one_line() {
        let e = load(Path::new("/nonexistent/libonnxruntime.so"), None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("scripts/fetch-ort.sh") && msg.contains("ORT_DYLIB_PATH"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }
}
