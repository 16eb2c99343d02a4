//! Turning pictures into network inputs: PNG/JPEG (any format the `image`
//! crate was built with) to a `side x side` grayscale vector in [0, 1],
//! white ink on black as MNIST stores it; and IDX image files as they are.
//!
//! [`Preprocess::Mnist`] repeats what was done to MNIST's digits: crop to the
//! ink, scale the longer side to 20/28 of the frame keeping the aspect
//! ratio, and place the result so that its center of mass is the frame's
//! center. Before cropping it evens out the paper: a plane fitted to the
//! border (gray paper, light that falls off across a photo) is subtracted
//! and the ink stretched to 1, so that paper at any gray level becomes
//! MNIST's black ([`level`]). [`Preprocess::Resize`] scales the whole
//! picture to the frame.

use std::path::Path;

use image::imageops::FilterType;
use image::{ImageBuffer, Luma};
use ndarray::Array2;

/// Whether to turn dark ink on a light background into MNIST's white on black.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Invert {
    /// Invert when the picture's border is mostly light.
    Auto,
    /// Always invert.
    Yes,
    /// Never invert.
    No,
}

/// How a picture is fitted into the network's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preprocess {
    /// Crop to the ink, scale to 20/28 of the frame, center by mass (as MNIST was made).
    Mnist,
    /// Scale the whole picture to the frame.
    Resize,
}

type Gray = ImageBuffer<Luma<f32>, Vec<f32>>;

/// Ink below this (of 1.0) counts as background when cropping.
const INK: f32 = 0.1;

crate::error::message_error!(
    /// A picture or a class-name mapping that cannot be used (the message
    /// names the file).
    PredictError
);

/// Largest picture file read (a picture of a digit is far smaller).
pub const MAX_PICTURE_BYTES: u64 = 256 << 20;

/// Reads a picture and returns `side * side` values in [0, 1] (row-major).
pub fn load_picture(
    path: &Path,
    side: u32,
    invert: Invert,
    pre: Preprocess,
) -> Result<Vec<f32>, PredictError> {
    let size =
        crate::files::regular(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    if size > MAX_PICTURE_BYTES {
        return Err(PredictError(format!(
            "{}: {} bytes is too large for a picture of a digit (at most {MAX_PICTURE_BYTES})",
            path.display(),
            size
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    picture_from_bytes(&bytes, path, side, invert, pre)
}

/// [`load_picture`] on the bytes of the file `path` (which names it in
/// errors).
pub fn picture_from_bytes(
    bytes: &[u8],
    path: &Path,
    side: u32,
    invert: Invert,
    pre: Preprocess,
) -> Result<Vec<f32>, PredictError> {
    let open = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))
    };
    // The size from the header alone: decoding (4 bytes a pixel) and the
    // conversion (8 more) must fit in what memory there is.
    if let Ok((w, h)) = open()?.into_dimensions() {
        let need = w as u64 * h as u64 * 12;
        if let Some(available) = crate::memory::available_bytes().filter(|&a| need > a / 2) {
            return Err(PredictError(format!(
                "{}: a picture of {w}x{h} pixels needs about {} to read, more than half the {} of memory available; scale it down",
                path.display(),
                crate::memory::human(need),
                crate::memory::human(available)
            )));
        }
    }
    let mut img = open()?;
    let mut limits = image::Limits::default();
    // A picture of a digit needs no more than this; refuse decompression bombs.
    limits.max_image_width = Some(16384);
    limits.max_image_height = Some(16384);
    limits.max_alloc = Some(512 << 20);
    img.limits(limits);
    let dynimg = img.decode().map_err(|e| {
        format!(
            "{}: not a picture this build can decode (PNG or JPEG): {e}",
            path.display()
        )
    })?;
    // Transparent pixels show the paper behind them: composite over white
    // (a black digit on a transparent PNG would otherwise read as black
    // on black, i.e. blank).
    let la = dynimg.to_luma_alpha32f();
    let luma = Gray::from_fn(la.width(), la.height(), |x, y| {
        let [v, a] = la.get_pixel(x, y).0;
        Luma([v * a + (1.0 - a)])
    });
    Ok(prepare(luma, side, invert, pre))
}

/// [`load_picture`] on an already decoded grayscale picture.
pub fn prepare(mut g: Gray, side: u32, invert: Invert, pre: Preprocess) -> Vec<f32> {
    let flip = match invert {
        Invert::Yes => true,
        Invert::No => false,
        Invert::Auto => border_mean(&g) > 0.5,
    };
    if flip {
        for p in g.pixels_mut() {
            p.0[0] = 1.0 - p.0[0];
        }
    }
    for p in g.pixels_mut() {
        p.0[0] = p.0[0].clamp(0.0, 1.0);
    }
    let out = match pre {
        Preprocess::Resize => image::imageops::resize(&g, side, side, FilterType::Triangle),
        Preprocess::Mnist => {
            level(&mut g);
            mnist_style(&g, side)
        }
    };
    out.into_raw()
}

/// The least contrast between ink and paper that counts as ink at all.
const MIN_CONTRAST: f32 = 0.05;

/// Evens out the background of a white-on-black picture: subtracts the
/// plane `a + b x + c y` fitted (least squares) to the border pixels, then
/// divides by the brightest remainder, so that the paper is 0 and the
/// strongest ink 1 wherever the picture was lighter or darker. A picture
/// with less contrast than `MIN_CONTRAST` (0.05) has no ink: all 0.
pub fn level(g: &mut Gray) {
    let (w, h) = g.dimensions();
    // Normal equations of the fit, in coordinates centred on the picture.
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let mut m = [[0.0f64; 3]; 3];
    let mut r = [0.0f64; 3];
    for (x, y, v) in border(g) {
        let f = [1.0, x as f64 - cx, y as f64 - cy];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += f[i] * f[j];
            }
            r[i] += f[i] * v as f64;
        }
    }
    let plane = solve3(m, r).unwrap_or([0.0; 3]);
    let mut top = 0.0f32;
    for (x, y, p) in g.enumerate_pixels_mut() {
        let bg = plane[0] + plane[1] * (x as f64 - cx) + plane[2] * (y as f64 - cy);
        p.0[0] -= bg as f32;
        top = top.max(p.0[0]);
    }
    let scale = if top < MIN_CONTRAST { 0.0 } else { 1.0 / top };
    for p in g.pixels_mut() {
        p.0[0] = (p.0[0] * scale).clamp(0.0, 1.0);
    }
}

/// Solves the 3x3 system `m x = r` (Cramer's rule); `None` when singular
/// (a picture one pixel wide or tall: its border has no slope to fit).
fn solve3(m: [[f64; 3]; 3], r: [f64; 3]) -> Option<[f64; 3]> {
    let det = |a: [[f64; 3]; 3]| {
        a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
            - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
    };
    let d = det(m);
    if d.abs() < 1e-9 {
        // Fall back to the mean alone.
        return (m[0][0] > 0.0).then(|| [r[0] / m[0][0], 0.0, 0.0]);
    }
    let mut x = [0.0; 3];
    for (k, xk) in x.iter_mut().enumerate() {
        let mut a = m;
        for i in 0..3 {
            a[i][k] = r[i];
        }
        *xk = det(a) / d;
    }
    Some(x)
}

/// The pixels on the picture's edge, as `(x, y, value)`.
fn border(g: &Gray) -> impl Iterator<Item = (u32, u32, f32)> + '_ {
    let (w, h) = g.dimensions();
    g.enumerate_pixels()
        .filter(move |&(x, y, _)| x == 0 || y == 0 || x + 1 == w || y + 1 == h)
        .map(|(x, y, p)| (x, y, p.0[0]))
}

fn border_mean(g: &Gray) -> f32 {
    let mut sum = 0.0;
    let mut n = 0usize;
    for (_, _, v) in border(g) {
        sum += v;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f32
    }
}

fn mnist_style(g: &Gray, side: u32) -> Gray {
    let mut bbox: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in g.enumerate_pixels() {
        if p.0[0] > INK {
            bbox = Some(match bbox {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    let mut frame = Gray::new(side, side);
    let Some((x0, y0, x1, y1)) = bbox else {
        return frame; // no ink: a blank frame
    };
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop = image::imageops::crop_imm(g, x0, y0, cw, ch).to_image();
    let box_side = (side * 20).div_ceil(28).max(1);
    let scale = box_side as f32 / cw.max(ch) as f32;
    let (nw, nh) = (
        ((cw as f32 * scale).round() as u32).clamp(1, box_side),
        ((ch as f32 * scale).round() as u32).clamp(1, box_side),
    );
    let digit = image::imageops::resize(&crop, nw, nh, FilterType::Triangle);
    // Center of mass of the scaled digit.
    let (mut m, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in digit.enumerate_pixels() {
        let v = p.0[0] as f64;
        m += v;
        mx += v * (x as f64 + 0.5);
        my += v * (y as f64 + 0.5);
    }
    let (cx, cy) = if m > 0.0 {
        (mx / m, my / m)
    } else {
        (nw as f64 / 2.0, nh as f64 / 2.0)
    };
    let half = side as f64 / 2.0;
    let ox = ((half - cx).round() as i64).clamp(0, (side - nw) as i64);
    let oy = ((half - cy).round() as i64).clamp(0, (side - nh) as i64);
    image::imageops::overlay(&mut frame, &digit, ox, oy);
    frame
}

/// Whether a prepared input holds any ink (a value above the crop
/// threshold): a blank or uniform picture gives none, and its class is a
/// guess.
pub fn has_ink(v: &[f32]) -> bool {
    v.iter().any(|&p| p > INK)
}

/// A `w x h` input in [0, 1] as an 8-bit grayscale PNG (what `predict
/// --save-input` writes: the frame the model saw).
pub fn gray_png(v: &[f32], w: u32, h: u32) -> Result<Vec<u8>, PredictError> {
    use image::ImageEncoder;
    let px: Vec<u8> = v
        .iter()
        .map(|&p| (p.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&px, w, h, image::ExtendedColorType::L8)
        .map_err(|e| format!("encoding a PNG: {e}"))?;
    Ok(png)
}

/// The files `predict` reads for its arguments: a file as given; a folder's
/// pictures (`.png`, `.jpg`, `.jpeg`, any case), sorted by name; a pattern
/// with `*`, `?` or `[` that names no file is expanded as a glob (for
/// quoted patterns and shells that do not expand them), sorted. A folder
/// without pictures or a pattern that matches nothing is an error.
pub fn expand_inputs(args: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>, PredictError> {
    let is_picture = |p: &Path| {
        p.is_file()
            && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["png", "jpg", "jpeg"]
                    .iter()
                    .any(|k| e.eq_ignore_ascii_case(k))
            })
    };
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            let mut found: Vec<_> = std::fs::read_dir(a)
                .map_err(|e| format!("{}: cannot list the folder: {e}", a.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_picture(p))
                .collect();
            if found.is_empty() {
                return Err(PredictError(format!(
                    "{}: the folder has no pictures (.png, .jpg, .jpeg)",
                    a.display()
                )));
            }
            found.sort();
            out.extend(found);
            continue;
        }
        let text = a.to_string_lossy();
        if !a.exists() && text.contains(['*', '?', '[']) {
            let mut found: Vec<_> = glob::glob(&text)
                .map_err(|e| format!("{text}: not a valid pattern: {e}"))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            if found.is_empty() {
                return Err(PredictError(format!("{text}: the pattern matches no file")));
            }
            found.sort();
            out.extend(found);
            continue;
        }
        out.push(a.clone());
    }
    Ok(out)
}

/// Transposes a `side x side` row-major picture in place (row `r` becomes
/// column `r`). EMNIST's IDX files store every character transposed, so a
/// model trained on them expects upright pictures transposed the same way.
pub fn transpose_square(v: &mut [f32], side: usize) {
    assert_eq!(v.len(), side * side, "a side x side picture");
    for r in 0..side {
        for c in r + 1..side {
            v.swap(r * side + c, c * side + r);
        }
    }
}

/// Reads class names for a model with `classes` outputs. One line per class,
/// blank lines and `#` comments skipped:
/// - `CLASS CODE [CODE ...]`, all numbers: EMNIST's mapping files
///   (`emnist-letters-mapping.txt`: `1 65 97`), codes are Unicode scalar
///   values, and the name is their characters joined by `/` (`A/a`);
/// - `CLASS NAME...`: the rest of the line is the name (`0 T-shirt/top`).
///
/// Classes not listed have no name. Errors name the file and line.
pub fn read_mapping(path: &Path, classes: usize) -> Result<Vec<Option<String>>, PredictError> {
    let text = crate::files::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the class mapping: {e}", path.display()))?;
    parse_mapping(&text, path, classes)
}

/// [`read_mapping`] on the text of the file `path` (which names it in
/// errors).
pub fn parse_mapping(
    text: &str,
    path: &Path,
    classes: usize,
) -> Result<Vec<Option<String>>, PredictError> {
    let mut names = vec![None; classes];
    for (i, line) in text.lines().enumerate() {
        let at = || format!("{} line {}", path.display(), i + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (class, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let class: usize = class.parse().map_err(|_| {
            format!(
                "{}: `{class}` is not a class number (lines are `CLASS CODE...` or `CLASS NAME`)",
                at()
            )
        })?;
        if class >= classes {
            return Err(PredictError(format!(
                "{}: class {class}, but the model has {classes} classes (0..{})",
                at(),
                classes - 1
            )));
        }
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(PredictError(format!("{}: class {class} has no name", at())));
        }
        let name = if rest
            .split_whitespace()
            .all(|t| t.bytes().all(|b| b.is_ascii_digit()))
        {
            let chars = rest
                .split_whitespace()
                .map(|t| {
                    t.parse::<u32>()
                        .ok()
                        .and_then(char::from_u32)
                        .map(String::from)
                        .ok_or_else(|| format!("{}: {t} is not a Unicode character code", at()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut uniq: Vec<String> = Vec::new();
            for c in chars {
                if !uniq.contains(&c) {
                    uniq.push(c);
                }
            }
            uniq.join("/")
        } else {
            rest.to_string()
        };
        if names[class].replace(name).is_some() {
            return Err(PredictError(format!(
                "{}: class {class} is named twice",
                at()
            )));
        }
    }
    Ok(names)
}

/// Pictures as rows of a `[n, side*side]` matrix.
pub fn stack(rows: &[&[f32]]) -> Array2<f32> {
    let d = rows.first().map_or(0, |r| r.len());
    let mut a = Array2::zeros((rows.len(), d));
    for (mut dst, r) in a.rows_mut().into_iter().zip(rows) {
        dst.assign(&ndarray::ArrayView1::from(*r));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dark "1" (vertical bar) on a white 60x40 page, off center.
    fn page() -> Gray {
        Gray::from_fn(40, 60, |x, y| {
            if (8..12).contains(&x) && (10..50).contains(&y) {
                Luma([0.0])
            } else {
                Luma([1.0])
            }
        })
    }

    #[test]
    fn mnist_style_inverts_crops_scales_and_centers() {
        let v = prepare(page(), 28, Invert::Auto, Preprocess::Mnist);
        assert_eq!(v.len(), 784);
        let img = Array2::from_shape_vec((28, 28), v).unwrap();
        // Background black, ink white.
        assert_eq!(img[[0, 0]], 0.0);
        assert!(img.iter().cloned().fold(0.0, f32::max) > 0.9);
        // The bar is 20 rows tall and centered.
        let rows: Vec<usize> = (0..28).filter(|&r| img.row(r).sum() > 0.5).collect();
        assert_eq!(rows.len(), 20, "{rows:?}");
        assert_eq!(rows[0], 4);
        let (mut m, mut mx) = (0.0f32, 0.0f32);
        for ((_, x), &v) in img.indexed_iter() {
            m += v;
            mx += v * (x as f32 + 0.5);
        }
        assert!((mx / m - 14.0).abs() <= 1.0, "column center {}", mx / m);
    }

    /// The clean page's frame, and the same digit in dark ink on gray paper
    /// (levels 180-245 of 255) and under light that falls off across the
    /// page (245 to 180, left to right): the same frame within a few
    /// percent. Before the levels were evened out, the paper stayed above
    /// the crop threshold and the whole page was taken for the digit.
    #[test]
    fn gray_paper_and_uneven_light_give_the_clean_frame() {
        let clean = prepare(page(), 28, Invert::Auto, Preprocess::Mnist);
        let on = |paper: &dyn Fn(u32) -> f32| {
            let g = Gray::from_fn(40, 60, |x, y| {
                let ink = (8..12).contains(&x) && (10..50).contains(&y);
                Luma([if ink { 0.1 } else { paper(x) }])
            });
            prepare(g, 28, Invert::Auto, Preprocess::Mnist)
        };
        let diff = |v: &[f32]| {
            v.iter()
                .zip(&clean)
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / clean.iter().sum::<f32>()
        };
        for level in [180.0, 200.0, 225.0, 245.0] {
            let v = on(&|_| level / 255.0);
            assert!(diff(&v) < 0.05, "paper {level}: {}", diff(&v));
        }
        let v = on(&|x| (245.0 - 65.0 * x as f32 / 39.0) / 255.0);
        assert!(diff(&v) < 0.05, "uneven light: {}", diff(&v));
    }

    /// A black digit on a transparent PNG reads as the same digit on white
    /// paper (it used to lose its alpha and read as blank).
    #[test]
    fn transparent_pictures_are_put_on_white_paper() {
        let d = tempfile::tempdir().unwrap();
        let (clear, opaque) = (d.path().join("clear.png"), d.path().join("opaque.png"));
        let ink = |x: u32, y: u32| (8..12).contains(&x) && (10..50).contains(&y);
        image::RgbaImage::from_fn(40, 60, |x, y| {
            image::Rgba(if ink(x, y) {
                [0, 0, 0, 255]
            } else {
                [0, 0, 0, 0]
            })
        })
        .save(&clear)
        .unwrap();
        image::RgbaImage::from_fn(40, 60, |x, y| {
            image::Rgba(if ink(x, y) {
                [0, 0, 0, 255]
            } else {
                [255, 255, 255, 255]
            })
        })
        .save(&opaque)
        .unwrap();
        let load = |p: &Path| load_picture(p, 28, Invert::Auto, Preprocess::Mnist).unwrap();
        let v = load(&clear);
        assert!(v.iter().sum::<f32>() > 10.0, "blank");
        assert_eq!(v, load(&opaque));
    }

    #[test]
    fn no_ink_gives_a_blank_frame_and_resize_keeps_everything() {
        let blank = Gray::from_pixel(10, 10, Luma([1.0]));
        assert!(prepare(blank.clone(), 28, Invert::Auto, Preprocess::Mnist)
            .iter()
            .all(|&v| v == 0.0));
        let v = prepare(blank, 28, Invert::No, Preprocess::Resize);
        assert!(v.iter().all(|&v| (v - 1.0).abs() < 1e-6));
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        let mut v: Vec<f32> = (0..9).map(|i| i as f32).collect();
        transpose_square(&mut v, 3);
        assert_eq!(v, [0., 3., 6., 1., 4., 7., 2., 5., 8.]);
        transpose_square(&mut v, 3);
        assert_eq!(v, (0..9).map(|i| i as f32).collect::<Vec<_>>());
    }

    #[test]
    fn mappings_of_codes_and_of_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.txt");
        // EMNIST letters: class 0 unused, 1 = A/a, 2 = B/b; digits: 5 = '5'.
        std::fs::write(&p, "1 65 97\n2 66 98\n\n# comment\n5 53\n").unwrap();
        let m = read_mapping(&p, 6).unwrap();
        let want = [None, Some("A/a"), Some("B/b"), None, None, Some("5")];
        assert_eq!(m.iter().map(|n| n.as_deref()).collect::<Vec<_>>(), want);
        std::fs::write(&p, "0 T-shirt/top\n1 Trouser\n9 Ankle boot\n").unwrap();
        let m = read_mapping(&p, 10).unwrap();
        assert_eq!(m[0].as_deref(), Some("T-shirt/top"));
        assert_eq!(m[9].as_deref(), Some("Ankle boot"));
        for (text, msg) in [
            ("1 65\nx 66\n", "line 2: `x` is not a class number"),
            ("10 65\n", "line 1: class 10, but the model has 10 classes"),
            ("3\n", "line 1: class 3 has no name"),
            (
                "3 1114112\n",
                "line 1: 1114112 is not a Unicode character code",
            ),
            ("3 65\n3 66\n", "line 2: class 3 is named twice"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = read_mapping(&p, 10).unwrap_err().to_string();
            assert!(e.contains("m.txt") && e.contains(msg), "{text:?}: {e}");
        }
        let e = read_mapping(&dir.path().join("none.txt"), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.txt") && e.contains("cannot read"), "{e}");
    }

    #[test]
    fn png_round_trip_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.png");
        let img = image::GrayImage::from_fn(28, 28, |x, _| Luma([if x == 14 { 255 } else { 0 }]));
        img.save(&p).unwrap();
        let v = load_picture(&p, 28, Invert::No, Preprocess::Resize).unwrap();
        assert_eq!(v[14], 1.0);
        assert_eq!(v[0], 0.0);
        let bad = dir.path().join("x.png");
        std::fs::write(&bad, b"not a picture").unwrap();
        let e = load_picture(&bad, 28, Invert::Auto, Preprocess::Mnist)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.png") && e.contains("not a picture"), "{e}");
        let e = load_picture(
            &dir.path().join("missing.png"),
            28,
            Invert::Auto,
            Preprocess::Mnist,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("missing.png") && e.contains("cannot read"),
            "{e}"
        );
    }
}
