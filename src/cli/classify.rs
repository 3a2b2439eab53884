//! `iari classify <PATH>...`: grades image files and folders with the ensemble and prints one
//! row per image; unreadable files are reported one line each and make the exit non-zero.

use crate::classify::files::{FileResult, RunOptions, classify_files, collect_images};
use crate::classify::{Engine, ImageLimits};
use crate::config::Settings;
use crate::domain::{Classification, Grade};
use clap::{Args, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Image files, or folders searched recursively for .png .jpg .jpeg .tif .tiff .bmp.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Images per inference run (default: inference.batch_size).
    #[arg(long)]
    pub batch_size: Option<usize>,
}

pub fn run(settings: &Settings, args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let files = collect_images(&args.paths)?;
    let engine = Engine::load(settings)?;
    let opts = run_options(settings, args.batch_size);
    let results = run_with_progress(&engine, &files, &opts);
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Table => write_table(&mut out, &engine, &results)?,
        Format::Json => write_json(&mut out, &results)?,
        Format::Csv => write_csv(&mut out, &engine, &results)?,
    }
    out.flush()?;
    report_failures(&results)
}

/// Batch size from the flag or the config; decode threads leave a core to inference.
pub fn run_options(settings: &Settings, batch_size: Option<usize>) -> RunOptions {
    RunOptions {
        batch_size: batch_size.unwrap_or(settings.inference.batch_size).max(1),
        decode_threads: num_cpus::get().saturating_sub(1).max(1),
        limits: ImageLimits::from(&settings.images),
    }
}

/// Runs the files with a progress bar on stderr when stderr is a terminal.
pub fn run_with_progress(engine: &Engine, files: &[PathBuf], opts: &RunOptions) -> Vec<FileResult> {
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        let results = classify_files(engine, files, opts, &|n| bar.set_position(n as u64));
        bar.finish_and_clear();
        results
    } else {
        classify_files(engine, files, opts, &|_| {})
    }
}

/// One line per failed file on stderr; failure exit code if any.
pub fn report_failures(results: &[FileResult]) -> anyhow::Result<ExitCode> {
    let failed: Vec<_> = results.iter().filter(|r| r.outcome.is_err()).collect();
    for r in &failed {
        if let Err(e) = &r.outcome {
            eprintln!("iari: {}: {}", r.path.display(), e.replace('\n', " "));
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "iari: {} of {} file(s) could not be classified",
            failed.len(),
            results.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn votes(c: &Classification) -> Vec<&'static str> {
    c.models
        .iter()
        .map(|(_, a)| a.vote().map_or("failed", Grade::label))
        .collect()
}

fn flags(c: &Classification) -> String {
    let f: Vec<&str> = c.outcome.flags.iter().map(|f| f.as_str()).collect();
    if f.is_empty() {
        "-".into()
    } else {
        f.join(",")
    }
}

/// The shift score with two decimals, `-` without one.
fn shift(c: &Classification) -> String {
    c.shift
        .as_ref()
        .map_or("-".into(), |s| format!("{:.2}", s.score))
}

fn write_table(
    out: &mut impl Write,
    engine: &Engine,
    results: &[FileResult],
) -> std::io::Result<()> {
    let names: Vec<&str> = engine
        .info()
        .models
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    let width = results
        .iter()
        .map(|r| r.path.display().to_string().len())
        .max()
        .unwrap_or(4)
        .max(4);
    write!(
        out,
        "{:<width$}  {:<5} {:>9}  {:<6} {:>6} ",
        "path", "grade", "agreement", "review", "shift"
    )?;
    for n in &names {
        write!(out, " {:<14}", n)?;
    }
    writeln!(out, "  flags")?;
    for r in results {
        let Ok(c) = &r.outcome else { continue };
        let review = if c.outcome.needs_review { "yes" } else { "no" };
        write!(
            out,
            "{:<width$}  {:<5} {:>9.2}  {:<6} {:>6} ",
            r.path.display().to_string(),
            c.outcome.grade.label(),
            c.outcome.agreement,
            review,
            shift(c)
        )?;
        for v in votes(c) {
            write!(out, " {:<14}", v)?;
        }
        writeln!(out, "  {}", flags(c))?;
    }
    Ok(())
}

fn write_json(out: &mut impl Write, results: &[FileResult]) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = results.iter().map(json_row).collect();
    serde_json::to_writer_pretty(&mut *out, &rows)?;
    writeln!(out)?;
    Ok(())
}

fn json_row(r: &FileResult) -> serde_json::Value {
    let path = r.path.display().to_string();
    match &r.outcome {
        Err(e) => serde_json::json!({ "path": path, "error": e }),
        Ok(c) => {
            let votes: serde_json::Map<String, serde_json::Value> = c
                .models
                .iter()
                .map(|(m, a)| {
                    (
                        m.name.clone(),
                        a.vote().map_or("failed", Grade::label).into(),
                    )
                })
                .collect();
            serde_json::json!({
                "path": path,
                "sha256": c.image_sha256.to_string(),
                "grade": c.outcome.grade.label(),
                "agreement": c.outcome.agreement,
                "confidence": c.outcome.confidence,
                "needs_review": c.outcome.needs_review,
                "flags": c.outcome.flags,
                "shift_score": c.shift.as_ref().map(|s| s.score),
                "votes": votes,
            })
        }
    }
}

/// RFC 4180 field: quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_csv(out: &mut impl Write, engine: &Engine, results: &[FileResult]) -> std::io::Result<()> {
    let mut header = vec![
        "path",
        "grade",
        "agreement",
        "confidence",
        "needs_review",
        "flags",
        "shift_score",
    ];
    header.extend(engine.info().models.iter().map(|m| m.name.as_str()));
    header.push("error");
    writeln!(out, "{}", header.join(","))?;
    for r in results {
        let mut row = vec![csv_field(&r.path.display().to_string())];
        match &r.outcome {
            Ok(c) => {
                row.push(c.outcome.grade.label().into());
                row.push(format!("{:.4}", c.outcome.agreement));
                row.push(format!("{:.4}", c.outcome.confidence));
                row.push(c.outcome.needs_review.to_string());
                let f: Vec<&str> = c.outcome.flags.iter().map(|f| f.as_str()).collect();
                row.push(f.join(";"));
                row.push(
                    c.shift
                        .as_ref()
                        .map_or(String::new(), |s| s.score.to_string()),
                );
                row.extend(votes(c).into_iter().map(String::from));
                row.push(String::new());
            }
            Err(e) => {
                row.extend(std::iter::repeat_n(String::new(), header.len() - 2));
                row.push(csv_field(e));
            }
        }
        writeln!(out, "{}", row.join(","))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("a/b.png"), "a/b.png");
        assert_eq!(csv_field("a,b.png"), "\"a,b.png\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
