//! Data augmentation on the fly: each training sample is resampled through
//! a random transform when its row is gathered into the step's input
//! (`nn::workspace::gather_rows`), so the work is spread over the
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
//!   clothes, not digits); without an affine or elastic part the image is
//!   copied, mirrored or not, which is what the resampling would give bit
//!   for bit (a weight of exactly 1 on one source pixel);
//! - erase (random erasing, Zhong et al. 2017): with probability `p`, after
//!   the resampling, a rectangle of the output is set to 0 (the
//!   background): its area a fraction `U(min, max)` of the image's, its
//!   aspect ratio `h / w = exp(U(ln ratio, -ln ratio))`, each side rounded
//!   and clamped to the image, its corner uniform over the places where it
//!   fits (no redraws, so the cost is fixed).
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
    /// Random affine transforms, if on.
    pub affine: Option<Affine>,
    /// Elastic distortions, if on.
    pub elastic: Option<Elastic>,
    /// Left-right flips with probability 1/2.
    pub flip: bool,
    /// Random erasing, if on.
    pub erase: Option<Erase>,
}

/// Random erasing: how often, and the rectangle's size and shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Erase {
    /// Probability that a sample gets a rectangle.
    pub p: f64,
    /// Smallest area, as a fraction of the image.
    pub min: f64,
    /// Largest area, as a fraction of the image.
    pub max: f64,
    /// Most elongated aspect ratio (`<= 1`): `h / w` is drawn
    /// log-uniformly from `[ratio, 1 / ratio]`.
    pub ratio: f64,
}

impl Default for Erase {
    /// Zhong et al.'s settings (and torchvision's `RandomErasing`).
    fn default() -> Self {
        Self {
            p: 0.5,
            min: 0.02,
            max: 0.33,
            ratio: 0.3,
        }
    }
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

crate::error::message_error!(
    /// An `--augment` value that is not an augmentation (the message shows
    /// the syntax).
    AugmentError
);

/// The syntax, for error messages.
pub const SYNTAX: &str = "affine[:rotate=DEG,shift=PX,scale=F,shear=DEG], elastic[:sigma=PX,alpha=PX], flip or erase[:p=F,min=F,max=F,ratio=F] (e.g. --augment affine:rotate=12,shift=2,scale=0.1 --augment elastic:sigma=4,alpha=34)";

impl Augment {
    /// Parses `--augment` values (each one kind); an empty list is nothing.
    pub fn parse(items: &[String]) -> Result<Self, AugmentError> {
        Self::parse_str(items).map_err(AugmentError)
    }

    fn parse_str(items: &[String]) -> Result<Self, String> {
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
                "erase" => {
                    let mut f = Erase::default();
                    for (k, v) in pairs {
                        match k.as_str() {
                            "p" => f.p = v,
                            "min" => f.min = v,
                            "max" => f.max = v,
                            "ratio" => f.ratio = v,
                            _ => return Err(unknown(&k, "p, min, max, ratio")),
                        }
                    }
                    if !(f.p <= 1.0
                        && f.min <= f.max
                        && f.max <= 1.0
                        && f.ratio > 0.0
                        && f.ratio <= 1.0)
                    {
                        return Err(format!(
                            "--augment {item}: needs p <= 1, min <= max <= 1 and 0 < ratio <= 1 (got p={}, min={}, max={}, ratio={})",
                            f.p, f.min, f.max, f.ratio
                        ));
                    }
                    a.erase = Some(f);
                }
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
        self.affine.is_some() || self.elastic.is_some() || self.flip || self.erase.is_some()
    }
}

/// Per-thread scratch (grown once, on a thread's first augmented sample):
/// the image zero-padded (one pixel before, two after each row and
/// column, so that every clamped bilinear read is in bounds), the two
/// displacement fields, and the coarse grid they are computed on.
struct Scratch {
    img: Vec<f32>,
    dx: Vec<f32>,
    dy: Vec<f32>,
    grid: Vec<f32>,
    tmp: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch {
        img: Vec::new(),
        dx: Vec::new(),
        dy: Vec::new(),
        grid: Vec::new(),
        tmp: Vec::new(),
    }) };
}

fn grow(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// [`Augment`] for images of one size: what the gather calls per sample.
#[derive(Debug, Clone)]
pub struct Augmenter {
    /// What it does.
    pub cfg: Augment,
    h: usize,
    w: usize,
    /// Spacing (in pixels) of the grid the elastic field is computed on.
    step: usize,
    /// Nodes of that grid.
    gh: usize,
    gw: usize,
    /// The normalized Gaussian's taps on the grid, `-r..=r`.
    taps: Vec<f32>,
    /// For each pixel column (then row): the grid nodes either side and
    /// the weight of the second (no divisions in the loop).
    xs: Vec<(usize, usize, f32)>,
    ys: Vec<(usize, usize, f32)>,
}

/// A stream of random numbers from a key (SplitMix64).
struct Draws(u64);
impl Draws {
    /// Uniform in `[0, 1)`: a multiple of 2^-53.
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        (mix64(self.0) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[-1, 1)` (`2 unit - 1`, exact).
    fn sym(&mut self) -> f64 {
        2.0 * self.unit() - 1.0
    }
}

/// Uniform in `[-1, 1)` from a hash of `(key, i)`.
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

/// The smallest Gaussian width (in grid steps) the coarse grid may leave:
/// at 1.5 steps the Gaussian passes less than 1e-4 of the noise's power
/// above the grid's Nyquist frequency, so interpolating the grid loses
/// nothing the field has.
const MIN_SIGMA_STEPS: f64 = 1.5;

impl Augmenter {
    /// `cfg` for `h x w` images.
    pub fn new(cfg: Augment, h: usize, w: usize) -> Self {
        let sigma = cfg.elastic.map_or(0.0, |e| e.sigma);
        Self::with_grid(
            cfg,
            h,
            w,
            if sigma >= 2.0 * MIN_SIGMA_STEPS { 2 } else { 1 },
        )
    }

    /// [`Augmenter::new`] with the elastic field computed every `step`
    /// pixels (1: at every pixel).
    fn with_grid(cfg: Augment, h: usize, w: usize, step: usize) -> Self {
        let (gh, gw) = ((h - 1).div_ceil(step) + 1, (w - 1).div_ceil(step) + 1);
        let taps = match cfg.elastic {
            Some(e) => {
                let sigma = e.sigma / step as f64;
                let r = (3.0 * sigma).ceil() as usize;
                let g: Vec<f64> = (0..=2 * r)
                    .map(|k| {
                        let d = k as f64 - r as f64;
                        (-d * d / (2.0 * sigma * sigma)).exp()
                    })
                    .collect();
                let sum: f64 = g.iter().sum();
                g.iter().map(|v| (v / sum) as f32).collect()
            }
            None => Vec::new(),
        };
        let nodes = |n: usize, g: usize| -> Vec<(usize, usize, f32)> {
            (0..n)
                .map(|x| {
                    let x0 = x / step;
                    (x0, (x0 + 1).min(g - 1), (x % step) as f32 / step as f32)
                })
                .collect()
        };
        Self {
            cfg,
            h,
            w,
            step,
            gh,
            gw,
            taps,
            xs: nodes(w, gw),
            ys: nodes(h, gh),
        }
    }

    /// Grows the calling thread's scratch to what [`Augmenter::apply`]
    /// needs, so that it allocates nothing later: one transform of a blank
    /// image grows exactly the buffers a sample does.
    pub fn reserve(&self) {
        let mut blank = vec![0.0f32; self.h * self.w];
        self.apply(&mut blank, |d| d.fill(0.0), 0);
    }

    /// The key of the sample at `index` in a step with key `step_key`.
    #[inline]
    pub fn sample_key(step_key: u64, index: usize) -> u64 {
        mix64(step_key ^ mix64(index as u64 ^ 0x6175_676d_656e_7400))
    }

    /// Writes the augmented image `src` (pixel values, `h * w`) into
    /// `out`, with the transform drawn from `key`.
    pub fn apply<T: Real>(&self, out: &mut [T], src: impl Fn(&mut [f32]), key: u64) {
        debug_assert_eq!(out.len(), self.h * self.w);
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the processor supports AVX2 (checked). Without
                // FMA the arithmetic, hence every bit, is the same.
                return unsafe { self.run_avx2(s, out, &src, key) };
            }
            self.run(s, out, &src, key, false)
        })
    }

    /// [`Augmenter::run`] compiled for AVX2.
    ///
    /// # Safety
    /// The processor must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2<T: Real>(
        &self,
        s: &mut Scratch,
        out: &mut [T],
        src: &dyn Fn(&mut [f32]),
        key: u64,
    ) {
        self.run(s, out, src, key, true)
    }

    #[inline(always)]
    fn run<T: Real>(
        &self,
        s: &mut Scratch,
        out: &mut [T],
        src: &dyn Fn(&mut [f32]),
        key: u64,
        avx2: bool,
    ) {
        let (h, w) = (self.h, self.w);
        src(grow(&mut s.tmp, h * w));
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
        if self.cfg.affine.is_none() && self.cfg.elastic.is_none() {
            // The identity or a mirror: resampling would weigh one source
            // pixel by exactly 1 and its neighbours by 0, so a copy gives
            // its bits (`tests::resampling_the_identity_or_a_mirror_is_a_copy`).
            let raw = &s.tmp[..h * w];
            let mirror = m[0][0] < 0.0;
            for (o, i) in out.chunks_exact_mut(w).zip(raw.chunks_exact(w)) {
                if mirror {
                    o.iter_mut()
                        .zip(i.iter().rev())
                        .for_each(|(o, &v)| *o = T::of(v as f64));
                } else {
                    o.iter_mut().zip(i).for_each(|(o, &v)| *o = T::of(v as f64));
                }
            }
        } else {
            self.resample(s, out, m, t, key, avx2);
        }
        if let Some(e) = self.cfg.erase {
            // Drawn after the transform's numbers, so that turning erasing
            // on leaves every other draw where it was.
            if d.unit() < e.p {
                let area = (h * w) as f64 * (e.min + (e.max - e.min) * d.unit());
                let aspect = (-e.ratio.ln() * d.sym()).exp();
                let side = |v: f64, n: usize| (v.round() as usize).clamp(1, n);
                let (eh, ew) = (
                    side((area * aspect).sqrt(), h),
                    side((area / aspect).sqrt(), w),
                );
                // Rounding can carry u (room + 1) up to room + 1: the min.
                let mut corner = |room: usize| ((d.unit() * (room + 1) as f64) as usize).min(room);
                let (y0, x0) = (corner(h - eh), corner(w - ew));
                for y in y0..y0 + eh {
                    out[y * w + x0..y * w + x0 + ew].fill(T::of(0.0));
                }
            }
        }
    }

    /// Resamples the source image (in `s.tmp`) into `out` through the
    /// affine map `q = c + m (p - c) + t` and, with `elastic` (whose field
    /// [`Augmenter::field`] is asked for here), the displacement field:
    /// bilinear, with zeros outside the image.
    #[inline(always)]
    fn resample<T: Real>(
        &self,
        s: &mut Scratch,
        out: &mut [T],
        m: [[f64; 2]; 2],
        t: [f64; 2],
        key: u64,
        avx2: bool,
    ) {
        let (h, w) = (self.h, self.w);
        let pw = w + 3;
        // The image into the padded buffer (its border stays zero).
        let padded = grow(&mut s.img, pw * (h + 3));
        for (y, row) in s.tmp[..h * w].chunks_exact(w).enumerate() {
            padded[(y + 1) * pw + 1..(y + 1) * pw + 1 + w].copy_from_slice(row);
        }
        let elastic = match self.cfg.elastic {
            Some(e) => {
                self.field(s, key, e.alpha as f32);
                true
            }
            None => false,
        };
        let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        let m = m.map(|r| r.map(|v| v as f32));
        // In padded coordinates (+1), clamped to [0, w + 1] x [0, h + 1]:
        // reads outside the image land on the zero border, and truncation
        // is the floor.
        let (ox, oy) = ((cx + t[0] + 1.0) as f32, (cy + t[1] + 1.0) as f32);
        let (xmax, ymax) = ((w + 1) as f32, (h + 1) as f32);
        let img = &s.img[..pw * (h + 3)];
        for y in 0..h {
            let py = y as f32 - cy as f32;
            let (bx, by) = (ox + m[0][1] * py, oy + m[1][1] * py);
            let row = y * w..(y + 1) * w;
            let (dxr, dyr) = if elastic {
                (&s.dx[row.clone()], &s.dy[row.clone()])
            } else {
                (&s.tmp[..0], &s.tmp[..0])
            };
            let out = &mut out[row];
            // Eight pixels at a time with AVX2's gathers (the same
            // arithmetic, so the same bits), the rest one by one.
            #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
            let mut start = 0;
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                let rows = (!dxr.is_empty()).then_some((dxr, dyr));
                let geo = Geometry {
                    bx,
                    by,
                    m00: m[0][0],
                    m10: m[1][0],
                    cx: cx as f32,
                    xmax,
                    ymax,
                    pw,
                };
                while start + 8 <= w {
                    // SAFETY: `avx2` is only set when the processor has it.
                    let v = unsafe { resample8(img, &geo, start, rows) };
                    for (o, &v) in out[start..start + 8].iter_mut().zip(&v) {
                        *o = T::of(v as f64);
                    }
                    start += 8;
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = avx2;
            for (x, o) in out.iter_mut().enumerate().skip(start) {
                let px = x as f32 - cx as f32;
                let mut qx = bx + m[0][0] * px;
                let mut qy = by + m[1][0] * px;
                if elastic {
                    qx += dxr[x];
                    qy += dyr[x];
                }
                let (qx, qy) = (qx.clamp(0.0, xmax), qy.clamp(0.0, ymax));
                let (x0, y0) = (qx as usize, qy as usize);
                let (fx, fy) = (qx - x0 as f32, qy - y0 as f32);
                let i = y0 * pw + x0;
                debug_assert!(i + pw + 1 < img.len());
                // SAFETY: x0 <= w + 1 and y0 <= h + 1 (clamped), so
                // i + pw + 1 <= (h + 2) pw + w + 2 < (h + 3) pw = img.len().
                let at = |k: usize| unsafe { *img.get_unchecked(k) };
                let top = at(i) + (at(i + 1) - at(i)) * fx;
                let bottom = at(i + pw) + (at(i + pw + 1) - at(i + pw)) * fx;
                *o = T::of((top + (bottom - top) * fy) as f64);
            }
        }
    }

    /// The elastic displacement fields into `s.dx`, `s.dy`: uniform noise
    /// on the grid (every `step` pixels), smoothed by the separable
    /// Gaussian (rows, then columns), times `alpha`, interpolated
    /// bilinearly to every pixel. The grid's noise is `U(-1, 1) / step`:
    /// with the Gaussian `step` times narrower in grid units, the smoothed
    /// field then has the variance, and the covariance `exp(-d^2 / 4
    /// sigma^2)`, of the field computed at every pixel.
    #[inline(always)]
    fn field(&self, s: &mut Scratch, key: u64, alpha: f32) {
        let (h, w, f) = (self.h, self.w, self.step);
        let (gh, gw) = (self.gh, self.gw);
        // Rows padded to whole vectors: noise is drawn as `gw` rows of `gh`
        // (any layout will do for independent values), smoothed along the
        // rows' index (x), transposed to `gh` rows of `gw` and smoothed
        // along y. Each pass adds whole rows: it vectorizes.
        let (sh, sw) = (gh.next_multiple_of(8), gw.next_multiple_of(8));
        let gn = gh * sw;
        let amp = alpha / f as f32;
        grow(&mut s.dx, h * w);
        grow(&mut s.dy, h * w);
        grow(&mut s.grid, 2 * gn);
        let half = (gw * sh).max(gh * sw);
        grow(&mut s.tmp, (2 * half).max(gh * w));
        for c in 0..2 {
            let k = (mix64(key ^ (c as u64 + 1)) >> 32) as u32;
            let (a, b) = s.tmp[..2 * half].split_at_mut(half);
            for x in 0..gw {
                for (y, v) in a[x * sh..x * sh + sh].iter_mut().enumerate() {
                    *v = if y < gh {
                        noise(k, (x * gh + y) as u32)
                    } else {
                        0.0
                    };
                }
            }
            smooth_rows(a, b, gw, sh, &self.taps, 1.0);
            // Transposed back into `a`, then along y into the grid.
            for y in 0..gh {
                for x in 0..sw {
                    a[y * sw + x] = if x < gw { b[x * sh + y] } else { 0.0 };
                }
            }
            smooth_rows(
                a,
                &mut s.grid[c * gn..(c + 1) * gn],
                gh,
                sw,
                &self.taps,
                amp,
            );
        }
        // To every pixel: along x on each grid row, then along y.
        let (grid, dx, dy) = (&s.grid[..2 * gn], &mut s.dx[..h * w], &mut s.dy[..h * w]);
        if f == 1 {
            for y in 0..h {
                dx[y * w..(y + 1) * w].copy_from_slice(&grid[y * sw..y * sw + w]);
                dy[y * w..(y + 1) * w].copy_from_slice(&grid[gn + y * sw..gn + y * sw + w]);
            }
            return;
        }
        let rows = &mut s.tmp[..gh * w];
        for (c, out) in [(0, dx), (gn, dy)] {
            let g = &grid[c..c + gn];
            for gy in 0..gh {
                let (src, dst) = (&g[gy * sw..gy * sw + gw], &mut rows[gy * w..(gy + 1) * w]);
                for (d, &(x0, x1, fx)) in dst.iter_mut().zip(&self.xs) {
                    *d = src[x0] + (src[x1] - src[x0]) * fx;
                }
            }
            for (y, &(y0, y1, fy)) in self.ys.iter().enumerate() {
                let (a, b) = (&rows[y0 * w..(y0 + 1) * w], &rows[y1 * w..(y1 + 1) * w]);
                for ((o, &a), &b) in out[y * w..(y + 1) * w].iter_mut().zip(a).zip(b) {
                    *o = a + (b - a) * fy;
                }
            }
        }
    }
}

/// What the resampling of one output row needs: the source point of its
/// first pixel before the displacement is `(bx + m00 px, by + m10 px)`
/// with `px = x - cx`, clamped to `[0, xmax] x [0, ymax]` in the padded
/// image whose rows are `pw` apart.
#[cfg(target_arch = "x86_64")]
struct Geometry {
    bx: f32,
    by: f32,
    m00: f32,
    m10: f32,
    cx: f32,
    xmax: f32,
    ymax: f32,
    pw: usize,
}

/// Pixels `x..x + 8` of a row, as the scalar loop of [`Augmenter::run`]
/// computes them (the same operations in the same order, no FMA), with
/// `disp` the row's displacements.
///
/// # Safety
/// The processor supports AVX2; `img` is the padded image of `run`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn resample8(
    img: &[f32],
    g: &Geometry,
    x: usize,
    disp: Option<(&[f32], &[f32])>,
) -> [f32; 8] {
    use std::arch::x86_64::*;
    let lanes = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
    // x + l is exact in f32 (x < 2^24).
    let px = _mm256_sub_ps(
        _mm256_add_ps(_mm256_set1_ps(x as f32), lanes),
        _mm256_set1_ps(g.cx),
    );
    let mut qx = _mm256_add_ps(
        _mm256_set1_ps(g.bx),
        _mm256_mul_ps(_mm256_set1_ps(g.m00), px),
    );
    let mut qy = _mm256_add_ps(
        _mm256_set1_ps(g.by),
        _mm256_mul_ps(_mm256_set1_ps(g.m10), px),
    );
    if let Some((dx, dy)) = disp {
        qx = _mm256_add_ps(qx, _mm256_loadu_ps(dx[x..x + 8].as_ptr()));
        qy = _mm256_add_ps(qy, _mm256_loadu_ps(dy[x..x + 8].as_ptr()));
    }
    let zero = _mm256_setzero_ps();
    qx = _mm256_min_ps(_mm256_max_ps(qx, zero), _mm256_set1_ps(g.xmax));
    qy = _mm256_min_ps(_mm256_max_ps(qy, zero), _mm256_set1_ps(g.ymax));
    let (x0, y0) = (_mm256_cvttps_epi32(qx), _mm256_cvttps_epi32(qy));
    let fx = _mm256_sub_ps(qx, _mm256_cvtepi32_ps(x0));
    let fy = _mm256_sub_ps(qy, _mm256_cvtepi32_ps(y0));
    let pw = _mm256_set1_epi32(g.pw as i32);
    let i = _mm256_add_epi32(_mm256_mullo_epi32(y0, pw), x0);
    debug_assert!(img.len() < i32::MAX as usize);
    let p = img.as_ptr();
    // SAFETY: every index is at most (h + 2) pw + w + 2 < img.len() (the
    // clamp), as in the scalar loop.
    let a = _mm256_i32gather_ps::<4>(p, i);
    let b = _mm256_i32gather_ps::<4>(p.add(1), i);
    let c = _mm256_i32gather_ps::<4>(p.add(g.pw), i);
    let d = _mm256_i32gather_ps::<4>(p.add(g.pw + 1), i);
    let top = _mm256_add_ps(a, _mm256_mul_ps(_mm256_sub_ps(b, a), fx));
    let bottom = _mm256_add_ps(c, _mm256_mul_ps(_mm256_sub_ps(d, c), fx));
    let v = _mm256_add_ps(top, _mm256_mul_ps(_mm256_sub_ps(bottom, top), fy));
    let mut out = [0.0f32; 8];
    _mm256_storeu_ps(out.as_mut_ptr(), v);
    out
}

/// `dst[y] = scale * sum_k taps[k] src[y + k - r]` over whole rows of
/// `stride` values, a multiple of 8 (`rows` of them; rows outside count as
/// zero). Eight columns at a time, their sums held in registers.
#[inline(always)]
fn smooth_rows(src: &[f32], dst: &mut [f32], rows: usize, stride: usize, taps: &[f32], scale: f32) {
    debug_assert_eq!(stride % 8, 0);
    let r = taps.len() / 2;
    for y in 0..rows {
        let lo = r.saturating_sub(y);
        let hi = taps.len().min(rows + r - y);
        for c in (0..stride).step_by(8) {
            let mut acc = [0.0f32; 8];
            for (k, &g) in taps.iter().enumerate().take(hi).skip(lo) {
                let s: &[f32; 8] = src[(y + k - r) * stride + c..][..8].try_into().expect("8");
                for l in 0..8 {
                    acc[l] += g * s[l];
                }
            }
            let d: &mut [f32; 8] = (&mut dst[y * stride + c..][..8]).try_into().expect("8");
            for l in 0..8 {
                d[l] = acc[l] * scale;
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

    /// A 28x28 image mirrored left-right.
    fn mirrored(img: &[f32]) -> Vec<f32> {
        img.chunks_exact(28)
            .flat_map(|row| row.iter().rev().copied())
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
            ("erase:p=1.5", "needs p <= 1"),
            ("erase:min=0.5,max=0.2", "min <= max"),
            ("erase:ratio=0", "0 < ratio"),
            ("erase:size=3", "unknown setting `size`"),
        ] {
            let e = Augment::parse(&[bad.into()]).unwrap_err();
            assert!(e.message().contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn erasing_zeroes_one_rectangle_of_the_drawn_size_that_often() {
        let e = Augment::parse(&["erase:p=0.6,min=0.05,max=0.3,ratio=0.4".into()]).unwrap();
        assert_eq!(
            e.erase,
            Some(Erase {
                p: 0.6,
                min: 0.05,
                max: 0.3,
                ratio: 0.4
            })
        );
        assert!(e.is_on());
        let a = Augmenter::new(e, 28, 28);
        let ones = vec![1.0f32; 784];
        let (mut erased, mut ratios) = (0, (f64::MAX, 0.0f64));
        for key in 0..400 {
            let mut out = vec![0.0f32; 784];
            a.apply(&mut out, |d| d.copy_from_slice(&ones), key);
            let zeros: Vec<usize> = (0..784).filter(|&i| out[i] == 0.0).collect();
            // Every other pixel is the image's.
            assert!(out.iter().all(|&v| v == 0.0 || v == 1.0));
            if zeros.is_empty() {
                continue;
            }
            erased += 1;
            // One rectangle: its bounding box holds nothing else.
            let (ys, xs) = (zeros.iter().map(|i| i / 28), zeros.iter().map(|i| i % 28));
            let (h, w) = (
                ys.clone().max().unwrap() - ys.min().unwrap() + 1,
                xs.clone().max().unwrap() - xs.min().unwrap() + 1,
            );
            assert_eq!(h * w, zeros.len(), "key {key}: not a rectangle");
            // Its area within [min, max] of 784, up to the sides' rounding.
            let (lo, hi) = (0.05 * 784.0, 0.3 * 784.0);
            let area = zeros.len() as f64;
            let slack = (h + w) as f64 / 2.0 + 1.0;
            assert!(
                area >= lo - slack && area <= hi + slack,
                "key {key}: {h}x{w}"
            );
            let r = h as f64 / w as f64;
            ratios = (ratios.0.min(r), ratios.1.max(r));
        }
        // p = 0.6 of 400: 240, standard deviation ~10.
        assert!((200..=280).contains(&erased), "{erased} of 400 erased");
        // Tall and wide rectangles both occur, none beyond the ratio (with
        // rounding's slack).
        assert!(
            ratios.0 < 0.8 && ratios.1 > 1.25 && ratios.0 > 0.25 && ratios.1 < 4.0,
            "{ratios:?}"
        );
        // With a transform too, erasing changes nothing outside its
        // rectangle: the transform's draws come first.
        let both = Augment::parse(&["affine".into(), "erase:p=1".into()]).unwrap();
        let mut changed = 0;
        for key in 0..20 {
            let (plain, erased) = (
                run(
                    Augment {
                        erase: None,
                        ..both
                    },
                    key,
                ),
                run(both, key),
            );
            assert!(plain.iter().zip(&erased).all(|(a, b)| a == b || *b == 0.0));
            changed += usize::from(plain != erased);
        }
        // (A rectangle on the background changes nothing.)
        assert!(changed >= 10, "{changed} of 20 changed");
    }

    #[test]
    fn the_avx2_path_gives_the_scalar_bits() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let img = digit();
            for spec in [
                "affine:rotate=30,shift=5,scale=0.3,shear=10",
                "elastic:sigma=3,alpha=40",
                "flip",
                "erase:p=1",
            ] {
                let cfg = Augment::parse(&[spec.into(), "affine".into()]).unwrap();
                let a = Augmenter::new(cfg, 28, 28);
                for key in 0..50 {
                    let (mut v, mut s) = (vec![0.0f32; 784], vec![0.0f32; 784]);
                    SCRATCH.with(|sc| {
                        let sc = &mut *sc.borrow_mut();
                        unsafe {
                            a.run_avx2(sc, &mut v, &|d: &mut [f32]| d.copy_from_slice(&img), key)
                        };
                        a.run(
                            sc,
                            &mut s,
                            &|d: &mut [f32]| d.copy_from_slice(&img),
                            key,
                            false,
                        );
                    });
                    assert_eq!(v, s, "{spec} key {key}");
                }
            }
        }
    }

    #[test]
    fn resampling_the_identity_or_a_mirror_is_a_copy() {
        // What lets `run` copy instead of resampling when there is no
        // affine or elastic part: the same bits, scalar and AVX2.
        let a = Augmenter::new(
            Augment {
                flip: true,
                ..Augment::default()
            },
            28,
            28,
        );
        let img = digit();
        let mirrored = mirrored(&img);
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::arch::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        for simd in [false, avx2] {
            for (m, want) in [
                ([[1.0, 0.0], [0.0, 1.0]], &img),
                ([[-1.0, 0.0], [0.0, 1.0]], &mirrored),
            ] {
                let mut out = vec![0.5f32; 784];
                SCRATCH.with(|sc| {
                    let sc = &mut *sc.borrow_mut();
                    grow(&mut sc.tmp, 784).copy_from_slice(&img);
                    a.resample(sc, &mut out, m, [0.0, 0.0], 0, simd);
                });
                assert_eq!(&out, want, "avx2 {simd}, m {m:?}");
            }
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
        let flipped = mirrored(&digit());
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
        // The digit is moved, not destroyed: the ink (area) changes with
        // the scale and the local stretching (a thin stroke can lose half
        // of it), but its median over many transforms stays near 1.
        let ink = |v: &[f32]| v.iter().sum::<f32>();
        let mut ratios: Vec<f32> = (0..60)
            .map(|k| {
                let o = run(cfg, k);
                assert!(o.iter().all(|v| (0.0..=1.0).contains(v)));
                ink(&o) / ink(&digit())
            })
            .collect();
        ratios.sort_by(f32::total_cmp);
        assert!(ratios[0] > 0.35 && ratios[59] < 2.0, "{ratios:?}");
        assert!((0.85..1.15).contains(&ratios[30]), "median {}", ratios[30]);
    }

    #[test]
    fn elastic_displacements_have_simards_size_on_either_grid() {
        // sigma 4, alpha 34: smoothed U(-1,1) noise has a standard deviation
        // near sqrt(1/3) / (2 sqrt(pi) sigma) = 0.041 inside the image, so
        // the displacement's is about 1.4 pixels; neighbours 4 pixels apart
        // correlate by exp(-16 / 4 sigma^2) = 0.78. The field computed every
        // second pixel and interpolated has the same statistics.
        let cfg = Augment::parse(&["elastic".into()]).unwrap();
        let stats = |a: &Augmenter| {
            let (mut sq, mut cross, mut n) = (0.0f64, 0.0f64, 0);
            for key in 0..20000 {
                SCRATCH.with(|s| {
                    let s = &mut *s.borrow_mut();
                    a.field(s, key, 34.0);
                    for y in 10..18 {
                        for x in 10..14 {
                            let v = s.dx[y * 28 + x] as f64;
                            sq += v * v;
                            cross += v * s.dx[y * 28 + x + 4] as f64;
                            n += 1;
                        }
                    }
                });
            }
            ((sq / n as f64).sqrt(), cross / sq)
        };
        let (fine, coarse) = (
            Augmenter::with_grid(cfg, 28, 28, 1),
            Augmenter::new(cfg, 28, 28),
        );
        assert_eq!(coarse.step, 2);
        let ((sd1, c1), (sd2, c2)) = (stats(&fine), stats(&coarse));
        println!("sd {sd1:.3} / {sd2:.3} px, lag-4 correlation {c1:.3} / {c2:.3}");
        assert!((1.2..1.6).contains(&sd1), "displacement sd {sd1} px");
        assert!((sd2 / sd1 - 1.0).abs() < 0.05, "sd {sd1} vs {sd2}");
        assert!(
            (c1 - 0.78).abs() < 0.05 && (c2 - c1).abs() < 0.03,
            "correlation {c1} vs {c2}"
        );
    }
}
