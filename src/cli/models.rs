//! `iari models …`: checks the ensemble on disk against its manifest (and every earlier version
//! it keeps for pinned decisions), and names the manifest's shift reference.

use crate::classify::{Manifest, versions};
use crate::config::Settings;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Check every model file against the manifest's SHA-256 and print the ensemble version;
    /// then the same for each earlier version the manifest keeps under `previous`.
    Verify,
}

pub fn run(settings: &Settings, cmd: ModelsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCommand::Verify => verify(settings),
    }
}

fn verify(settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for (i, (path, manifest)) in versions::all(&settings.models.manifest)?.iter().enumerate() {
        if i == 1 {
            println!();
            println!("earlier versions, kept for decisions pinned to them:");
        }
        if i > 0 {
            println!("{}", path.display());
        }
        failed += verify_files(manifest);
        describe(manifest);
    }
    if failed > 0 {
        anyhow::bail!("{failed} model file(s) do not match their manifest");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one line per model file; returns how many are missing or changed.
fn verify_files(manifest: &Manifest) -> usize {
    let mut failed = 0;
    for entry in &manifest.models {
        let path = manifest.model_path(entry);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let actual = crate::domain::Sha256Digest::of(&bytes);
                if actual == entry.sha256 {
                    println!(
                        "ok        {:<16} {:<10} {}",
                        entry.name, entry.version, actual
                    );
                } else {
                    failed += 1;
                    println!(
                        "MISMATCH  {:<16} {:<10} {} (manifest {})",
                        entry.name, entry.version, actual, entry.sha256
                    );
                }
            }
            Err(e) => {
                failed += 1;
                println!(
                    "MISSING   {:<16} {:<10} {}: {e}",
                    entry.name,
                    entry.version,
                    path.display()
                );
            }
        }
    }
    failed
}

fn describe(manifest: &Manifest) {
    let synthetic = if manifest.synthetic {
        " (trained on SYNTHETIC wells)"
    } else {
        ""
    };
    println!(
        "ensemble {} {}: {} models{synthetic}",
        manifest.ensemble.name,
        manifest.ensemble.version,
        manifest.models.len()
    );
    // Checked when the manifest loaded (shape, finite values, every ring holds pixels).
    match &manifest.shift {
        Some(s) => println!(
            "shift reference {} sha256 {} threshold {:.4}{}",
            s.version,
            s.digest(),
            s.threshold,
            s.fitted_on
                .as_deref()
                .map_or(String::new(), |f| format!(", fitted on {f}"))
        ),
        None => println!("shift reference: none (decisions carry no shift score)"),
    }
}
