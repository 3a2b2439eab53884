//! `iari publish`: an analyzer simulator. One capture event v1 per image (path or inline),
//! published with confirms, persistent, `message_id` = capture id.

use crate::config::Settings;
use crate::domain::{PlateRole, Sha256Digest, Well};
use crate::ingest::amqp::{declare_topology, publish_capture};
use crate::ingest::connect::open;
use anyhow::{Context, bail};
use base64::Engine as _;
use lapin::options::ConfirmSelectOptions;
use lapin::{ConnectionProperties, PublisherConfirm};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// Image files or folders (searched recursively for png, jpg, tif, bmp).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Embed the image as base64 instead of a path relative to `images.root`.
    #[arg(long)]
    pub inline: bool,
    /// Include the image's SHA-256 in the event.
    #[arg(long)]
    pub sha256: bool,
    /// Capture id prefix (default: the plate id).
    #[arg(long)]
    pub prefix: Option<String>,
    #[arg(long, default_value = "SIM-01")]
    pub analyzer: String,
    #[arg(long, default_value = "PLT0001")]
    pub plate: String,
    #[arg(long, default_value = "S26-000001")]
    pub accession: String,
    #[arg(long)]
    pub mrn: Option<String>,
    #[arg(long)]
    pub family: Option<String>,
    #[arg(long)]
    pub given: Option<String>,
    /// Events per second (0 = as fast as confirms allow).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Publish the whole set this many times (new capture ids each round).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// `plate.role` of every image given: patient, positive_control or negative_control.
    #[arg(long, default_value = "patient", value_parser = parse_role)]
    pub role: PlateRole,
    /// Before each round's images: this image as the plate's negative control (the plate's
    /// second-to-last well).
    #[arg(long, value_name = "IMAGE")]
    pub negative_control: Option<PathBuf>,
    /// Before each round's images: this image as the plate's positive control (its last well).
    #[arg(long, value_name = "IMAGE")]
    pub positive_control: Option<PathBuf>,
    /// `reagent.lot`, `reagent.expires` (YYYY-MM-DD) and `reagent.cell` of every event.
    #[arg(long)]
    pub reagent_lot: Option<String>,
    #[arg(long)]
    pub reagent_expires: Option<String>,
    #[arg(long)]
    pub reagent_cell: Option<String>,
}

fn parse_role(s: &str) -> Result<PlateRole, String> {
    PlateRole::parse(s)
        .ok_or_else(|| format!("{s:?} is not patient, positive_control or negative_control"))
}

impl PublishArgs {
    /// One round's wells: the controls first (the plate's last wells), then the images, each with
    /// the tail of its capture id (controls `NC`/`PC` and the round; images their index in the
    /// whole run, so an id names its file).
    fn round(&self, files: &[PathBuf], settings: &Settings, round: usize) -> Vec<Placed> {
        let cells = usize::from(settings.plate.rows) * usize::from(settings.plate.columns);
        let controls = [
            (&self.negative_control, PlateRole::NegativeControl, "NC", 2),
            (&self.positive_control, PlateRole::PositiveControl, "PC", 1),
        ];
        let mut out: Vec<Placed> = controls
            .into_iter()
            .filter_map(|(f, role, tag, from_end)| {
                Some(Placed {
                    file: f.clone()?,
                    well: well(settings, cells.saturating_sub(from_end)),
                    role,
                    seq: format!("{tag}{round:04}"),
                })
            })
            .collect();
        out.extend(files.iter().enumerate().map(|(i, f)| {
            let n = round * files.len() + i;
            Placed {
                file: f.clone(),
                well: well(settings, n),
                role: self.role,
                seq: format!("{n:06}"),
            }
        }));
        out
    }
}

/// Where one image goes on the plate, and the tail of its capture id.
pub struct Placed {
    file: PathBuf,
    well: String,
    pub role: PlateRole,
    seq: String,
}

pub async fn run(settings: &Settings, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let files = collect_images(&args.paths)?;
    if files.is_empty() {
        bail!("no images found under the given paths");
    }
    let ids = publish(settings, &args, &files).await?;
    println!(
        "published {} capture events to {}",
        ids.len(),
        settings.amqp.exchange
    );
    Ok(ExitCode::SUCCESS)
}

/// Publishes the events; returns their capture ids and roles in order.
pub async fn publish(
    settings: &Settings,
    args: &PublishArgs,
    files: &[PathBuf],
) -> anyhow::Result<Vec<(String, PlateRole)>> {
    let root = settings.images.root.canonicalize().context("images.root")?;
    let conn = open(&settings.amqp, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    declare_topology(&ch, &settings.amqp).await?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ").to_string();
    let gap = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let mut ids = Vec::new();
    let mut in_flight = Vec::new();
    // Paced by a schedule, not a sleep after each event: reading the file and waiting for the
    // confirm would otherwise come on top of the gap and the rate would fall short.
    let start = tokio::time::Instant::now();
    for round in 0..args.repeat as usize {
        for at in args.round(files, settings, round) {
            let (id, body) = build_event(args, &root, &at, &stamp)?;
            in_flight.push((
                publish_capture(&ch, &settings.amqp, &id, &body).await?,
                id.clone(),
            ));
            ids.push((id, at.role));
            // Confirms are awaited in windows: one round trip per window, not per event.
            if in_flight.len() >= CONFIRM_WINDOW || gap.is_some() {
                confirmed(std::mem::take(&mut in_flight)).await?;
            }
            if let Some(g) = gap {
                tokio::time::sleep_until(start + g.mul_f64(ids.len() as f64)).await;
            }
        }
    }
    confirmed(in_flight).await?;
    let _ = ch.close(200, "done".into()).await;
    let _ = conn.close(200, "done".into()).await;
    Ok(ids)
}

/// Unconfirmed publishes allowed before waiting for the broker.
const CONFIRM_WINDOW: usize = 256;

/// Waits for every confirm; a nack means the broker did not take the event.
async fn confirmed(in_flight: Vec<(PublisherConfirm, String)>) -> anyhow::Result<()> {
    for (confirm, id) in in_flight {
        if !confirm.await?.is_ack() {
            bail!("broker did not confirm capture {id}");
        }
    }
    Ok(())
}

/// The `n`-th well of the plate, row by row (A1, A2 … H12, then around again).
fn well(settings: &Settings, n: usize) -> String {
    let (rows, cols) = (
        usize::from(settings.plate.rows),
        usize::from(settings.plate.columns),
    );
    let k = n % (rows * cols);
    let w = format!("{}{}", (b'A' + (k / cols) as u8) as char, k % cols + 1);
    Well::parse(&w, settings.plate).map_or(w, |w| w.to_string())
}

fn build_event(
    a: &PublishArgs,
    root: &Path,
    at: &Placed,
    stamp: &str,
) -> anyhow::Result<(String, Vec<u8>)> {
    let (file, w) = (at.file.as_path(), &at.well);
    let prefix = a.prefix.clone().unwrap_or_else(|| a.plate.clone());
    let id = format!("{prefix}-{w}-{stamp}-{}", at.seq);
    let bytes = std::fs::read(file).with_context(|| file.display().to_string())?;
    let mut image = if a.inline {
        json!({ "data_base64": base64::engine::general_purpose::STANDARD.encode(&bytes), "media_type": media_type(file) })
    } else {
        let abs = file.canonicalize()?;
        let rel = abs.strip_prefix(root).with_context(|| {
            format!(
                "{} is not under images.root {}",
                file.display(),
                root.display()
            )
        })?;
        json!({ "path": rel })
    };
    if a.sha256 {
        image["sha256"] = Value::String(Sha256Digest::of(&bytes).to_hex());
    }
    let mut ev = json!({
        "schema": "iari.capture.v1",
        "capture_id": id,
        "captured_at": chrono::Utc::now().to_rfc3339(),
        "analyzer": { "id": a.analyzer, "software_version": env!("CARGO_PKG_VERSION") },
        "plate": { "id": a.plate, "well": w, "role": at.role.as_str() },
        "specimen": { "accession": a.accession },
        "image": image,
    });
    if a.reagent_lot.is_some() || a.reagent_expires.is_some() || a.reagent_cell.is_some() {
        ev["reagent"] =
            json!({ "lot": a.reagent_lot, "expires": a.reagent_expires, "cell": a.reagent_cell });
    }
    if a.mrn.is_some() || a.family.is_some() || a.given.is_some() {
        ev["patient"] = json!({ "mrn": a.mrn, "family": a.family, "given": a.given });
    }
    Ok((id, serde_json::to_vec(&ev)?))
}

fn media_type(file: &Path) -> &'static str {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("tif" | "tiff") => "image/tiff",
        Some("bmp") => "image/bmp",
        _ => "image/png",
    }
}

/// Image files under `paths`, sorted for a reproducible order.
pub fn collect_images(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out).with_context(|| p.display().to_string())?;
    }
    out.sort();
    Ok(out)
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if p.is_dir() {
        for entry in std::fs::read_dir(p)? {
            walk(&entry?.path(), out)?;
        }
    } else {
        let ext = p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if matches!(
            ext.as_deref(),
            Some("png" | "jpg" | "jpeg" | "tif" | "tiff" | "bmp")
        ) {
            out.push(p.to_path_buf());
        }
    }
    Ok(())
}
