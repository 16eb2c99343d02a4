//! T4's first-layer products (60,000 x 784 inputs, 784 x 200 weights) on
//! one thread, whole (the f32 inputs, 188 MB, read in place) against row
//! chunks of the same rows: converted from bytes into a buffer that stays
//! in cache, or (forward only) sliced from the f32 rows; the medians of 6
//! rounds, alternately (BENCHMARKS.md, session 27):
//! `cargo run --release --example t4_chunk_probe -- CHUNK_ROWS`.
use ndarray::{linalg::general_mat_mul, s, Array2, ArrayViewMut2};
use std::time::Instant;

/// Seconds `f` takes.
fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// Calls `f(r..e, rows)` for each chunk `r..e` of `0..n`, with `rows` the
/// chunk's rows of `px` converted into `buf` when `buf` is given.
fn chunks(
    n: usize,
    chunk: usize,
    px: &Array2<u8>,
    mut buf: Option<&mut Array2<f32>>,
    mut f: impl FnMut(std::ops::Range<usize>, Option<ArrayViewMut2<f32>>),
) {
    let mut r = 0;
    while r < n {
        let e = (r + chunk).min(n);
        let rows = buf.as_deref_mut().map(|buf| {
            let mut b = buf.slice_mut(s![..e - r, ..]);
            for (i, mut row) in b.rows_mut().into_iter().enumerate() {
                <f32 as mnist_mlp::real::Real>::copy_from_u8(
                    row.as_slice_mut().unwrap(),
                    px.row(r + i).as_slice().unwrap(),
                );
            }
            b
        });
        f(r..e, rows);
        r = e;
    }
}

fn main() {
    mnist_mlp::blas::set_threads(1);
    let chunk: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(512);
    let (n, k, o) = (60000usize, 784usize, 200usize);
    let px: Array2<u8> = Array2::from_shape_fn((n, k), |(i, j)| ((i * 31 + j * 7) % 256) as u8);
    let x: Array2<f32> = px.mapv(|b| b as f32 / 255.0);
    let w = Array2::<f32>::from_shape_fn((k, o), |(i, j)| ((i + j) % 13) as f32 * 0.01 - 0.06);
    let d =
        Array2::<f32>::from_shape_fn((n, o), |(i, j)| ((i + 3 * j) % 11) as f32 * 0.001 - 0.005);
    let mut c = Array2::<f32>::zeros((n, o));
    let mut gw = Array2::<f32>::zeros((k, o));
    let mut buf = Array2::<f32>::zeros((chunk, k));
    // Forward: whole, chunks from bytes, chunks of the f32 rows; weight
    // gradient: whole, chunks from bytes.
    let (mut fw, mut wg) = ([(); 3].map(|_| Vec::new()), [(); 2].map(|_| Vec::new()));
    for _round in 0..6 {
        fw[0].push(timed(|| general_mat_mul(1.0, &x, &w, 0.0, &mut c)));
        wg[0].push(timed(|| general_mat_mul(1.0, &x.t(), &d, 0.0, &mut gw)));
        fw[1].push(timed(|| {
            chunks(n, chunk, &px, Some(&mut buf), |r, b| {
                general_mat_mul(1.0, &b.unwrap(), &w, 0.0, &mut c.slice_mut(s![r, ..]))
            })
        }));
        fw[2].push(timed(|| {
            chunks(n, chunk, &px, None, |r, _| {
                let xr = x.slice(s![r.clone(), ..]);
                general_mat_mul(1.0, &xr, &w, 0.0, &mut c.slice_mut(s![r, ..]))
            })
        }));
        wg[1].push(timed(|| {
            chunks(n, chunk, &px, Some(&mut buf), |r, b| {
                let beta = if r.start == 0 { 0.0 } else { 1.0 };
                general_mat_mul(1.0, &b.unwrap().t(), &d.slice(s![r, ..]), beta, &mut gw)
            })
        }));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2] * 1e3
    };
    let f = 2.0 * (n * k * o) as f64;
    let (a, b) = (med(&mut fw[0]), med(&mut fw[2]));
    println!(
        "forward: chunks of {chunk} of f32 rows {b:.1} ms, {:.3}x",
        a / b
    );
    for (name, v) in [("forward", &mut fw[..2]), ("weight grad", &mut wg[..])] {
        let (a, b) = (med(&mut v[0]), med(&mut v[1]));
        println!(
            "{name}: whole {a:.1} ms ({:.0} GFLOP/s), chunks of {chunk} from bytes {b:.1} ms ({:.0} GFLOP/s), {:.3}x",
            f / a / 1e6,
            f / b / 1e6,
            a / b
        );
    }
}
