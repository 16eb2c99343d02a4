//! Training curves with `plotters`: loss (left) and accuracy (right)
//! against epoch, one line each for train, test and (when held out)
//! validation. SVG or PNG by the file's extension, written atomically.
//!
//! Text needs a TrueType font: `$MNIST_MLP_FONT`, else DejaVu Sans or
//! Liberation Sans from the usual system places, else any `.ttf` under
//! `/usr/share/fonts`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::train::EpochReport;

/// Output format, from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// SVG.
    Svg,
    /// PNG.
    Png,
}

crate::error::message_error!(
    /// A plot that cannot be drawn or written (the message names the file).
    PlotError
);

impl Format {
    /// The format a file name asks for (`.svg` or `.png`).
    pub fn of(path: &Path) -> Result<Self, PlotError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(PlotError(format!(
                "{}: the plot's file name must end in .svg or .png",
                path.display()
            ))),
        }
    }
}

const FAMILY: &str = "mnist-mlp-sans";

fn font_candidates() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("MNIST_MLP_FONT")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for p in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "/Library/Fonts/Arial.ttf",
        "C:\\Windows\\Fonts\\arial.ttf",
    ] {
        v.push(PathBuf::from(p));
    }
    // Any TrueType font at all.
    fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && depth < 4 {
                walk(&p, out, depth + 1);
            } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("ttf")) {
                out.push(p);
            }
        }
    }
    walk(Path::new("/usr/share/fonts"), &mut v, 0);
    v
}

/// Registers a system font with plotters once.
fn ensure_font() -> Result<(), String> {
    static DONE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DONE.get_or_init(|| {
        for p in font_candidates() {
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok() {
                return Ok(p);
            }
        }
        Err("no TrueType font found for the plot's text: install one (Debian/Ubuntu: apt-get install fonts-dejavu-core) or set MNIST_MLP_FONT=/path/to/font.ttf".into())
    })
    .as_ref()
    .map(|_| ())
    .map_err(|e| e.clone())
}

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    series: &[Series],
    legend: SeriesLabelPosition,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    let pts = || series.iter().flat_map(|s| s.2.iter());
    let x_max = pts().map(|p| p.0).fold(1.0, f64::max);
    let (mut lo, mut hi) = pts()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (if x_max > 1.0 { 1.0 } else { 0.5 })..x_max.max(1.5),
            (lo - pad)..(hi + pad),
        )
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_label)
        .label_style((FAMILY, 13))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_labels((x_max as usize).clamp(2, 12))
        .draw()
        .map_err(e)?;
    for (name, color, pts) in series {
        let c = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(e)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 13))
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(legend)
        .draw()
        .map_err(e)?;
    Ok(())
}

fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    history: &[EpochReport],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
    let series = |f: &dyn Fn(&EpochReport) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|r| f(r).map(|v| (r.epoch as f64, v)))
            .collect()
    };
    let blue = RGBColor(31, 119, 180);
    let red = RGBColor(214, 39, 40);
    let green = RGBColor(44, 160, 44);
    let mut loss = vec![
        ("train", blue, series(&|r| Some(r.train_loss))),
        ("test", red, series(&|r| Some(r.test_loss))),
    ];
    let mut acc = vec![
        ("train", blue, series(&|r| Some(100.0 * r.train_accuracy))),
        ("test", red, series(&|r| Some(100.0 * r.test_accuracy))),
    ];
    if history.iter().any(|r| r.val_loss.is_some()) {
        loss.push(("validation", green, series(&|r| r.val_loss)));
        acc.push((
            "validation",
            green,
            series(&|r| r.val_accuracy.map(|a| 100.0 * a)),
        ));
    }
    // Legends where the curves are not: losses fall, accuracies rise.
    panel(
        &left,
        "loss",
        "mean loss",
        &loss,
        SeriesLabelPosition::UpperRight,
    )?;
    panel(
        &right,
        "accuracy",
        "accuracy (%)",
        &acc,
        SeriesLabelPosition::LowerRight,
    )?;
    root.present().map_err(|e| e.to_string())
}

/// The comment that opens every SVG plot (a later run may replace a file
/// that has it).
pub const SVG_MARK: &str = "<!-- mnist-mlp: training curves -->";

/// Draws the curves of `history` into `path` (.svg or .png), atomically.
pub fn draw_curves(path: &Path, history: &[EpochReport]) -> Result<(), PlotError> {
    draw_curves_into(path, history).map_err(PlotError)
}

fn draw_curves_into(path: &Path, history: &[EpochReport]) -> Result<(), String> {
    let format = Format::of(path)?;
    ensure_font()?;
    let (w, h) = (1100u32, 440u32);
    let bytes = match format {
        Format::Svg => {
            let mut s = String::new();
            draw_on(
                SVGBackend::with_string(&mut s, (w, h)).into_drawing_area(),
                history,
            )?;
            format!("{SVG_MARK}\n{s}").into_bytes()
        }
        Format::Png => {
            let mut rgb = vec![0u8; (w * h * 3) as usize];
            draw_on(
                BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(),
                history,
            )?;
            let mut png = Vec::new();
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(&rgb, w, h, image::ExtendedColorType::Rgb8)
                .map_err(|e| e.to_string())?;
            png
        }
    };
    crate::checkpoint::write_atomic(path, &bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(epoch: usize, val: bool) -> EpochReport {
        let e = epoch as f64;
        EpochReport {
            epoch,
            train_loss: 1.0 / e,
            train_accuracy: 1.0 - 0.1 / e,
            test_loss: 1.1 / e,
            test_accuracy: 1.0 - 0.12 / e,
            val_loss: val.then_some(1.05 / e),
            val_accuracy: val.then_some(1.0 - 0.11 / e),
            seconds: 1.0,
            eval_seconds: 0.1,
            samples_per_s: 60000.0,
            lr: 0.001,
            rss_mib: None,
            peak_rss_mib: None,
        }
    }

    #[test]
    fn svg_and_png_are_written() {
        if ensure_font().is_err() {
            eprintln!("no font on this machine: skipping the drawing itself");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let h: Vec<_> = (1..=5).map(|e| report(e, true)).collect();
        let svg = dir.path().join("c.svg");
        draw_curves(&svg, &h).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.starts_with(SVG_MARK)
                && text.contains("\n<svg")
                && text.contains("validation")
                && text.contains("accuracy")
        );
        let png = dir.path().join("c.png");
        draw_curves(&png, &h[..1]).unwrap();
        let img = image::open(&png).unwrap();
        assert_eq!((img.width(), img.height()), (1100, 440));
        assert!(Format::of(Path::new("c.pdf")).is_err());
    }
}
