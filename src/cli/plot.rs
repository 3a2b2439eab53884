//! Confusion-matrix figure for `iari eval --plot`: one heat map per sub-model and one for the
//! ensemble, drawn with `plotters` into a PNG.

use super::eval::{Evaluation, Scored};
use anyhow::Context;
use plotters::prelude::*;
use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

/// Fonts looked for, in order (Debian `fonts-dejavu-core`, then common alternatives).
const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// plotters needs a registered TTF with a `'static` lifetime: read one once and keep it for
/// the life of the process (a few hundred KiB, at most once).
fn register_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = FONT_CANDIDATES
                .iter()
                .find_map(|p| std::fs::read(p).ok())
                .ok_or("no TrueType font found (install fonts-dejavu-core)")?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| "the font file is not a valid TrueType font".to_string())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

pub fn confusion_matrices(path: &Path, eval: &Evaluation) -> anyhow::Result<()> {
    register_font()?;
    let panels: Vec<&Scored> = eval
        .models
        .iter()
        .chain(std::iter::once(&eval.ensemble))
        .collect();
    let cols = 3;
    let rows = panels.len().div_ceil(cols);
    let (w, h) = (cols as u32 * 420, rows as u32 * 420 + 40);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).context("plot")?;
    let synthetic = if eval.synthetic { " - SYNTHETIC" } else { "" };
    let title = format!(
        "{} ({} images{synthetic})",
        eval.ensemble_version, eval.images
    );
    let root = root
        .titled(&title, ("sans-serif", 22))
        .context("plot title")?;
    for (area, scored) in root.split_evenly((rows, cols)).iter().zip(panels) {
        draw_panel(area, scored)?;
    }
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Axis tick text at cell centres (integers); other ticks stay blank.
fn label(labels: &[&str; 5], v: f64) -> String {
    let i = v.round();
    if (v - i).abs() > 1e-6 || !(0.0..5.0).contains(&i) {
        return String::new();
    }
    labels[i as usize].to_string()
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    s: &Scored,
) -> anyhow::Result<()> {
    let counts = &s.report.confusion.counts;
    let labels = ["neg", "1+", "2+", "3+", "4+"];
    let caption = format!(
        "{}  acc {:.3}  kappa {:.3}",
        s.name, s.report.accuracy, s.report.kappa
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(-0.5f64..4.5, -0.5f64..4.5)
        .context("plot axes")?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_desc("predicted")
        .y_desc("true")
        .x_label_formatter(&|x| label(&labels, *x))
        .y_label_formatter(&|y| label(&labels, 4.0 - *y))
        .draw()
        .context("plot mesh")?;
    let row_max: Vec<u64> = counts
        .iter()
        .map(|r| r.iter().copied().max().unwrap_or(0))
        .collect();
    for (t, row) in counts.iter().enumerate() {
        for (p, &n) in row.iter().enumerate() {
            // Shade by share of the true grade's images, so rare grades stay readable.
            let share = if row_max[t] == 0 {
                0.0
            } else {
                n as f64 / row_max[t] as f64
            };
            let shade = (255.0 - 200.0 * share) as u8;
            // Cell centred on (predicted, 4 - true) so that neg is the top row.
            let (x, y) = (p as f64, 4.0 - t as f64);
            let cell = Rectangle::new(
                [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                RGBColor(shade, shade, 255).filled(),
            );
            chart
                .draw_series(std::iter::once(cell))
                .context("plot cell")?;
            let text = Text::new(
                n.to_string(),
                (x - 0.15, y + 0.15),
                ("sans-serif", 18).into_font(),
            );
            chart
                .draw_series(std::iter::once(text))
                .context("plot label")?;
        }
    }
    Ok(())
}
