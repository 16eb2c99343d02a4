//! Data augmentation on the fly: each training sample is resampled through
//! a random transform when its row is gathered into the step's input
//! ([`crate::nn::workspace::gather_rows`]), so the work is spread over the
//! step's threads like the gather itself. Test and validation data are
//! never augmented.
//!
//! The transform maps each output pixel `p` (coordinates `(x, y)`, centre
//! `c`) to the source point
//!
//! `q = c + R(theta) H(phi) (p - c) / s + t + alpha (G_sigma * U)(p)`
//!
//! and reads the image there by bilinear interpolation (zero outside):
//! - affine: rotation `theta ~ U(-rotate, rotate)` degrees, shear
//!   `phi ~ U(-shear, shear)` degrees (`H = [[1, tan phi], [0, 1]]`), scale
//!   `s ~ U(1 - scale, 1 + scale)`, translation `t ~ U(-shift, shift)^2`
//!   pixels;
//! - elastic (Simard, Steinkraus and Platt 2003): two fields of independent
//!   `U(-1, 1)` values per pixel, each smoothed by a Gaussian of width
//!   `sigma` pixels (truncated at 3 sigma, zero outside the image, as
//!   `scipy.ndimage.gaussian_filter(mode="constant")` in the common
//!   implementations) and scaled by `alpha`: the displacement `(dx, dy)`;
//! - flip: the image mirrored left-right with probability 1/2 (for
//!   clothes, not digits).
//!
//! Every random number is a hash of the sample's key, itself a hash of the
//! step's key ([`crate::nn::dropout::step_key`]: seed and step) and the
//! sample's index in the dataset, so a run repeats bit for bit at any
//! thread count and a resume needs no state beyond the step counter.
//!
//! Shapes: one image of `[h, w]` pixels as a row of `h * w` values.

use std::cell::RefCell;

use crate::nn::dropout::mix64;
use crate::real::Real;

/// What `--augment` asks for; `Augment::default()` is nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Augment {
    pub affine: Option<Affine>,
    pub elastic: Option<Elastic>,
    pub flip: bool,
}

/// Ranges of the random affine transform.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Degrees, either way.
    pub rotate: f64,
    /// Pixels, either way, along each axis.
    pub shift: f64,
    /// Relative change of size, either way.
    pub scale: f64,
    /// Degrees, either way.
    pub shear: f64,
}

impl Default for Affine {
    fn default() -> Self {
        Self {
            rotate: 12.0,
            shift: 2.0,
            scale: 0.1,
            shear: 0.0,
        }
    }
}

/// Simard's elastic distortion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Elastic {
    /// Width of the Gaussian that smooths the random field, in pixels.
    pub sigma: f64,
    /// Scale of the smoothed field, in pixels.
    pub alpha: f64,
}

impl Default for Elastic {
    fn default() -> Self {
        Self {
            sigma: 4.0,
            alpha: 34.0,
        }
    }
}

/// The syntax, for error messages.
pub const SYNTAX: &str = "affine[:rotate=DEG,shift=PX,scale=F,shear=DEG], elastic[:sigma=PX,alpha=PX] or flip (e.g. --augment affine:rotate=12,shift=2,scale=0.1 --augment elastic:sigma=4,alpha=34)";

impl Augment {
    /// Parses `--augment` values (each one kind); an empty list is nothing.
    pub fn parse(items: &[String]) -> Result<Self, String> {
        let mut a = Augment::default();
        for item in items {
            let (kind, args) = match item.split_once(':') {
                Some((k, rest)) => (k.trim(), Some(rest)),
                None => (item.trim(), None),
            };
            let pairs: Vec<(String, f64)> = match args {
                None => Vec::new(),
                Some(rest) => rest
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').ok_or_else(|| {
                            format!("--augment {item}: `{kv}` is not KEY=VALUE; expected {SYNTAX}")
                        })?;
                        let v: f64 = v
                            .trim()
                            .parse()
                            .ok()
                            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                            .ok_or_else(|| {
                                format!("--augment {item}: `{v}` is not a number >= 0")
                            })?;
                        Ok((k.trim().to_string(), v))
                    })
                    .collect::<Result<_, String>>()?,
            };
            let unknown = |k: &str, known: &str| {
                format!("--augment {item}: unknown setting `{k}` for {kind} (known: {known})")
            };
            match kind {
                "affine" => {
                    let mut f = Affine {
                        rotate: 0.0,
                        shift: 0.0,
                        scale: 0.0,
                        shear: 0.0,
                    };
                    if pairs.is_empty() {
                        f = Affine::default();
                    }
                    for (k, v) in pairs {
                        match k.as_str() {
                            "rotate" if v <= 180.0 => f.rotate = v,
                            "shift" => f.shift = v,
                            "scale" if v < 1.0 => f.scale = v,
                            "shear" if v < 90.0 => f.shear = v,
                            "rotate" | "scale" | "shear" => {
                                return Err(format!("--augment {item}: {k}={v} is out of range (rotate <= 180 degrees, scale < 1, shear < 90 degrees)"))
                            }
                            _ => return Err(unknown(&k, "rotate, shift, scale, shear")),
                        }
                    }
                    a.affine = Some(f);
                }
                "elastic" => {
                    let mut f = Elastic::default();
                    for (k, v) in pairs {
                        match k.as_str() {
                            "sigma" if v > 0.0 && v <= 64.0 => f.sigma = v,
                            "alpha" => f.alpha = v,
                            "sigma" => {
                                return Err(format!(
                                    "--augment {item}: sigma must be in (0, 64] pixels, got {v}"
                                ))
                            }
                            _ => return Err(unknown(&k, "sigma, alpha")),
                        }
                    }
                    a.elastic = Some(f);
                }
                "flip" if pairs.is_empty() => a.flip = true,
                _ => {
                    return Err(format!(
                        "--augment: unknown augmentation `{item}`; expected {SYNTAX}"
                    ))
                }
            }
        }
        Ok(a)
    }

    /// Whether it changes anything.
    pub fn is_on(&self) -> bool {
        self.affine.is_some() || self.elastic.is_some() || self.flip
    }
}

/// Per-thread scratch: the image as f32, zero-padded (one pixel before,
/// two after, so that every clamped bilinear read is in bounds), and the
/// two displacement fields (grown once, on a thread's first augmented
/// sample).
struct Scratch {
    img: Vec<f32>,
    dx: Vec<f32>,
    dy: Vec<f32>,
    tmp: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch {
        img: Vec::new(),
        dx: Vec::new(),
        dy: Vec::new(),
        tmp: Vec::new(),
    }) };
}

/// [`Augment`] for images of one size: what the gather calls per sample.
#[derive(Debug, Clone)]
pub struct Augmenter {
    pub cfg: Augment,
    h: usize,
    w: usize,
    /// The normalized Gaussian's taps, `-r..=r`.
    taps: Vec<f32>,
}

/// A stream of random numbers from a key (SplitMix64).
struct Draws(u64);
impl Draws {
    /// Uniform in `[-1, 1)`.
    fn sym(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let u = (mix64(self.0) >> 11) as f64 / (1u64 << 53) as f64;
        2.0 * u - 1.0
    }
}

/// Uniform in `[-1, 1)` from a hash of `(key, i)` (vectorizes).
#[inline(always)]
fn noise(key: u32, i: u32) -> f32 {
    let mut h = key ^ i.wrapping_mul(0x9e37_79b9);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    (h >> 8) as f32 * (2.0 / 16_777_216.0) - 1.0
}

impl Augmenter {
    /// `cfg` for `h x w` images.
    pub fn new(cfg: Augment, h: usize, w: usize) -> Self {
        let taps = match cfg.elastic {
            Some(e) => {
                let r = (3.0 * e.sigma).ceil() as usize;
                let g: Vec<f64> = (0..=2 * r)
                    .map(|k| {
                        let d = k as f64 - r as f64;
                        (-d * d / (2.0 * e.sigma * e.sigma)).exp()
                    })
                    .collect();
                let sum: f64 = g.iter().sum();
                g.iter().map(|v| (v / sum) as f32).collect()
            }
            None => Vec::new(),
        };
        Self { cfg, h, w, taps }
    }

    /// The key of the sample at `index` in a step with key `step_key`.
    #[inline]
    pub fn sample_key(step_key: u64, index: usize) -> u64 {
        mix64(step_key ^ mix64(index as u64 ^ 0x6175_676d_656e_7400))
    }

    /// Writes the augmented image `src` (pixel values, `h * w`) into
    /// `out`, with the transform drawn from `key`.
    pub fn apply<T: Real>(&self, out: &mut [T], src: impl Fn(&mut [f32]), key: u64) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor supports AVX2 (checked). Without FMA
            // the arithmetic, hence every bit, is the same as below.
            return unsafe { self.apply_avx2(out, src, key) };
        }
        self.apply_any(out, src, key)
    }

    /// [`Augmenter::apply`] compiled for AVX2.
    ///
    /// # Safety
    /// The processor must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn apply_avx2<T: Real>(&self, out: &mut [T], src: impl Fn(&mut [f32]), key: u64) {
        self.apply_any(out, src, key)
    }

    #[inline(always)]
    fn apply_any<T: Real>(&self, out: &mut [T], src: impl Fn(&mut [f32]), key: u64) {
        let (h, w) = (self.h, self.w);
        let n = h * w;
        let pw = w + 3;
        debug_assert_eq!(out.len(), n);
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            if s.img.len() < n + pw * (h + 3) {
                s.img.resize(n + pw * (h + 3), 0.0);
            }
            // The image, then a padded copy after it.
            let (raw, padded) = s.img.split_at_mut(n);
            src(raw);
            for y in 0..h {
                padded[(y + 1) * pw + 1..(y + 1) * pw + 1 + w]
                    .copy_from_slice(&raw[y * w..(y + 1) * w]);
            }
            let mut d = Draws(key);
            // The affine part: q = c + M (p - c) + t.
            let (mut m, mut t) = ([[1.0f64, 0.0], [0.0, 1.0]], [0.0f64, 0.0]);
            if let Some(a) = self.cfg.affine {
                let th = (a.rotate * d.sym()).to_radians();
                let sh = (a.shear * d.sym()).to_radians().tan();
                let sc = 1.0 + a.scale * d.sym();
                let (c, si) = (th.cos(), th.sin());
                // R H / s, with H = [[1, sh], [0, 1]].
                m = [[c / sc, (c * sh - si) / sc], [si / sc, (si * sh + c) / sc]];
                t = [a.shift * d.sym(), a.shift * d.sym()];
            }
            if self.cfg.flip && d.sym() < 0.0 {
                // Mirror the source point: qx -> w - 1 - qx = cx - (qx - cx)
                // (the elastic displacement, symmetric, keeps its sign).
                m[0] = [-m[0][0], -m[0][1]];
                t[0] = -t[0];
            }
            if let Some(e) = self.cfg.elastic {
                self.field(s, key, e.alpha as f32);
            }
            let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
            let m = m.map(|r| r.map(|v| v as f32));
            let (ox, oy) = ((cx + t[0]) as f32, (cy + t[1]) as f32);
            let (wmax, hmax) = (w as f32, h as f32);
            let elastic = self.cfg.elastic.is_some();
            let img = &s.img[n..];
            for y in 0..h {
                let py = y as f32 - cy as f32;
                let (bx, by) = (ox + m[0][1] * py, oy + m[1][1] * py);
                for x in 0..w {
                    let px = x as f32 - cx as f32;
                    let mut qx = bx + m[0][0] * px;
                    let mut qy = by + m[1][0] * px;
                    if elastic {
                        qx += s.dx[y * w + x];
                        qy += s.dy[y * w + x];
                    }
                    out[y * w + x] =
                        T::of(
                            bilinear_padded(img, pw, qx.clamp(-1.0, wmax), qy.clamp(-1.0, hmax))
                                as f64,
                        );
                }
            }
        });
    }

    /// The elastic displacement fields into `s.dx`, `s.dy`: uniform noise,
    /// smoothed by the separable Gaussian (rows, then columns), times `alpha`.
    fn field(&self, s: &mut Scratch, key: u64, alpha: f32) {
        let (h, w, n) = (self.h, self.w, self.h * self.w);
        for v in [&mut s.dx, &mut s.dy, &mut s.tmp] {
            if v.len() < n {
                v.resize(n, 0.0);
            }
        }
        let r = self.taps.len() / 2;
        for (f, field) in [&mut s.dx, &mut s.dy].into_iter().enumerate() {
            let k = (mix64(key ^ (f as u64 + 1)) >> 32) as u32;
            let field = &mut field[..n];
            for (i, v) in field.iter_mut().enumerate() {
                *v = noise(k, i as u32);
            }
            // Along rows: tmp[y][x] = sum_k g[k] field[y][x + k - r].
            let tmp = &mut s.tmp[..n];
            tmp.iter_mut().for_each(|v| *v = 0.0);
            for y in 0..h {
                let (src, dst) = (&field[y * w..(y + 1) * w], &mut tmp[y * w..(y + 1) * w]);
                for (k, &g) in self.taps.iter().enumerate() {
                    // dst[x] += g src[x + k - r] for x + k - r in 0..w.
                    let lo = r.saturating_sub(k);
                    let hi = (w + r).saturating_sub(k).min(w);
                    if lo >= hi {
                        continue;
                    }
                    let off = lo + k - r;
                    for (d, &v) in dst[lo..hi].iter_mut().zip(&src[off..off + hi - lo]) {
                        *d += g * v;
                    }
                }
            }
            // Along columns, into the field, times alpha.
            field.iter_mut().for_each(|v| *v = 0.0);
            for y in 0..h {
                let dst = &mut field[y * w..(y + 1) * w];
                for (k, &g) in self.taps.iter().enumerate() {
                    let yy = y as isize + k as isize - r as isize;
                    if yy < 0 || yy >= h as isize {
                        continue;
                    }
                    let src = &tmp[yy as usize * w..(yy as usize + 1) * w];
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d += g * v;
                    }
                }
                dst.iter_mut().for_each(|v| *v *= alpha);
            }
        }
    }
}

/// A picture of what `aug` does: one row per sample (the first of each
/// class, up to `samples`), the original on the left, then `variants`
/// augmented versions (the transforms of steps `1..=variants` of a run with
/// `seed`), each pixel drawn as a `zoom x zoom` square, white ink on black,
/// with gray gaps (a wider one after the original).
pub fn preview(
    data: &crate::data::Dataset,
    aug: &Augmenter,
    samples: usize,
    variants: usize,
    seed: u64,
) -> image::GrayImage {
    let (h, w, zoom, gap) = (data.rows, data.cols, 3u32, 2u32);
    let mut picks: Vec<usize> = Vec::new();
    for class in 0..=255u8 {
        if let Some(i) = data.labels.iter().position(|&l| l == class) {
            picks.push(i);
        }
    }
    picks.truncate(samples.max(1));
    let (cw, ch) = (w as u32 * zoom, h as u32 * zoom);
    let cols = 1 + variants as u32;
    let width = cols * cw + (cols + 1) * gap + 2 * gap;
    let height = picks.len() as u32 * ch + (picks.len() as u32 + 1) * gap;
    let mut img = image::GrayImage::from_pixel(width, height, image::Luma([96]));
    let mut cell = vec![0.0f32; h * w];
    for (r, &i) in picks.iter().enumerate() {
        for c in 0..cols {
            let src = data.images.row(i);
            if c == 0 {
                cell.copy_from_slice(src.as_slice().expect("contiguous"));
            } else {
                let key = Augmenter::sample_key(crate::nn::dropout::step_key(seed, c as u64), i);
                aug.apply(
                    &mut cell,
                    |d| d.copy_from_slice(src.as_slice().expect("contiguous")),
                    key,
                );
            }
            let x0 = gap + c * (cw + gap) + if c > 0 { 2 * gap } else { 0 };
            let y0 = gap + r as u32 * (ch + gap);
            for (k, &v) in cell.iter().enumerate() {
                let px = image::Luma([(v.clamp(0.0, 1.0) * 255.0).round() as u8]);
                let (x, y) = ((k % w) as u32 * zoom, (k / w) as u32 * zoom);
                for dy in 0..zoom {
                    for dx in 0..zoom {
                        img.put_pixel(x0 + x + dx, y0 + y + dy, px);
                    }
                }
            }
        }
    }
    img
}

/// The image at the point `(x, y)` (`-1 <= x <= w`, `-1 <= y <= h`) by
/// bilinear interpolation, zero outside: `img` is the image with a zero
/// border of one pixel before and two after each row and column, rows
/// `pw = w + 3` apart.
#[inline(always)]
fn bilinear_padded(img: &[f32], pw: usize, x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let i = (y0 + 1.0) as usize * pw + (x0 + 1.0) as usize;
    let top = img[i] + (img[i + 1] - img[i]) * fx;
    let bottom = img[i + pw] + (img[i + pw + 1] - img[i + pw]) * fx;
    top + (bottom - top) * fy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit() -> Vec<f32> {
        // A bar and a blob, off centre.
        (0..28 * 28i32)
            .map(|i| {
                let (y, x) = (i / 28, i % 28);
                if (8..20).contains(&y) && (12..15).contains(&x)
                    || (y - 20).pow(2) + (x - 9).pow(2) < 9
                {
                    1.0
                } else {
                    0.0
                }
            })
            .collect()
    }

    fn run(cfg: Augment, key: u64) -> Vec<f32> {
        let a = Augmenter::new(cfg, 28, 28);
        let img = digit();
        let mut out = vec![0.0f32; 784];
        a.apply(&mut out, |d| d.copy_from_slice(&img), key);
        out
    }

    #[test]
    fn parsing_and_errors() {
        let a = Augment::parse(&["affine:rotate=10,shift=3".into(), "elastic".into()]).unwrap();
        assert_eq!(
            a.affine,
            Some(Affine {
                rotate: 10.0,
                shift: 3.0,
                scale: 0.0,
                shear: 0.0
            })
        );
        assert_eq!(a.elastic, Some(Elastic::default()));
        assert!(!a.flip && a.is_on());
        assert!(!Augment::parse(&[]).unwrap().is_on());
        assert_eq!(
            Augment::parse(&["affine".into()]).unwrap().affine,
            Some(Affine::default())
        );
        for (bad, needle) in [
            ("blur", "unknown augmentation `blur`"),
            ("affine:spin=3", "unknown setting `spin`"),
            ("affine:rotate", "not KEY=VALUE"),
            ("affine:rotate=x", "not a number"),
            ("affine:scale=1.5", "out of range"),
            ("elastic:sigma=0", "sigma must be"),
            ("flip:1", "not KEY=VALUE"),
        ] {
            let e = Augment::parse(&[bad.into()]).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn the_identity_transform_returns_the_image() {
        let cfg = Augment {
            affine: Some(Affine {
                rotate: 0.0,
                shift: 0.0,
                scale: 0.0,
                shear: 0.0,
            }),
            ..Augment::default()
        };
        assert_eq!(run(cfg, 5), digit());
        let flip = Augment {
            flip: true,
            ..Augment::default()
        };
        // Flipped or not, by the key; twice flipped is the image.
        let flipped: Vec<f32> = (0..784)
            .map(|i| digit()[(i / 28) * 28 + 27 - i % 28])
            .collect();
        let outs: Vec<Vec<f32>> = (0..8).map(|k| run(flip, k)).collect();
        assert!(outs.iter().all(|o| *o == digit() || *o == flipped));
        assert!(outs.contains(&flipped) && outs.contains(&digit()));
    }

    #[test]
    fn transforms_are_functions_of_the_key_and_keep_the_ink() {
        let cfg = Augment::parse(&[
            "affine:rotate=12,shift=2,scale=0.1,shear=5".into(),
            "elastic".into(),
        ])
        .unwrap();
        let a = run(cfg, 11);
        assert_eq!(a, run(cfg, 11), "same key, same image");
        assert_ne!(a, run(cfg, 12), "another key, another image");
        assert_ne!(a, digit());
        // The digit is moved, not destroyed: the ink (area) changes by the
        // scale squared and the local stretching, well within a factor 1.6.
        let ink = |v: &[f32]| v.iter().sum::<f32>();
        for k in 0..20 {
            let o = run(cfg, k);
            assert!(o.iter().all(|v| (0.0..=1.0).contains(v)));
            let r = ink(&o) / ink(&digit());
            assert!((0.6..1.6).contains(&r), "key {k}: ink ratio {r}");
        }
    }

    #[test]
    fn elastic_displacements_have_simards_size() {
        // sigma 4, alpha 34: smoothed U(-1,1) noise has a standard deviation
        // near sqrt(1/3) / (2 sqrt(pi) sigma) = 0.041 inside the image, so
        // the displacement's is about 1.4 pixels.
        let a = Augmenter::new(Augment::parse(&["elastic".into()]).unwrap(), 28, 28);
        let mut sq = 0.0f64;
        let mut n = 0;
        for key in 0..200 {
            SCRATCH.with(|s| {
                let s = &mut *s.borrow_mut();
                a.field(s, key, 34.0);
                for y in 10..18 {
                    for x in 10..18 {
                        sq += (s.dx[y * 28 + x] as f64).powi(2);
                        n += 1;
                    }
                }
            });
        }
        let sd = (sq / n as f64).sqrt();
        assert!((1.0..1.9).contains(&sd), "displacement sd {sd} px");
    }
}
