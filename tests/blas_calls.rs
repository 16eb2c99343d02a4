//! Proves that the hot matrix products reach OpenBLAS's `cblas_sgemm`,
//! transposed operands included, by interposing the symbol: this test binary
//! defines its own `cblas_sgemm`, which counts the call and forwards it to the
//! real OpenBLAS one found with `dlsym(RTLD_NEXT)`. A product that silently
//! fell back to a pure-Rust kernel would not be counted.

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use mnist_mlp::blas::{gemm_calls, Gemm, Orient};
use mnist_mlp::nn::{Batch, Init, Loss, Mlp, NetSpec, Rows, Update, Workspace};
use mnist_mlp::optim::{OptConfig, OptKind, Optimizer};
use mnist_mlp::parallel::{block, GemmThreading, Threads};
use mnist_mlp::plan::Plan;
use ndarray::{linalg::general_mat_mul, Array2};

static CALLS: AtomicUsize = AtomicUsize::new(0);
static TRANSPOSED: AtomicUsize = AtomicUsize::new(0);
/// The sum of m x n x k over the calls: the multiply-adds sgemm performed.
static MNK: AtomicUsize = AtomicUsize::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

const NO_TRANS: c_int = 111;

type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

/// # Safety
/// Same contract as OpenBLAS's `cblas_sgemm`, which it calls.
#[no_mangle]
pub unsafe extern "C" fn cblas_sgemm(
    layout: c_int,
    ta: c_int,
    tb: c_int,
    m: c_int,
    n: c_int,
    k: c_int,
    alpha: f32,
    a: *const f32,
    lda: c_int,
    b: *const f32,
    ldb: c_int,
    beta: f32,
    c: *mut f32,
    ldc: c_int,
) {
    CALLS.fetch_add(1, Ordering::SeqCst);
    MNK.fetch_add(m as usize * n as usize * k as usize, Ordering::SeqCst);
    if ta != NO_TRANS || tb != NO_TRANS {
        TRANSPOSED.fetch_add(1, Ordering::SeqCst);
    }
    let sym = libc::dlsym(libc::RTLD_NEXT, c"cblas_sgemm".as_ptr());
    assert!(!sym.is_null(), "the real cblas_sgemm was not found");
    let real: Sgemm = std::mem::transmute::<*mut c_void, Sgemm>(sym);
    real(layout, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

fn counts() -> (usize, usize) {
    (
        CALLS.load(Ordering::SeqCst),
        TRANSPOSED.load(Ordering::SeqCst),
    )
}

#[test]
fn interposer_sees_plain_and_transposed_products() {
    let _g = SERIAL.lock().unwrap();
    let a = Array2::<f32>::from_shape_fn((64, 32), |(i, j)| (i + j) as f32 * 0.01);
    let b = Array2::<f32>::from_shape_fn((64, 16), |(i, j)| (i * j) as f32 * 0.01);
    let mut c = Array2::<f32>::zeros((32, 16));
    let (c0, t0) = counts();
    general_mat_mul(1.0, &a.t(), &b, 0.0, &mut c);
    assert_eq!(counts(), (c0 + 1, t0 + 1));
    // And the product is right (the real BLAS ran).
    let want = a.t().dot(&b);
    assert!((&c - &want).iter().all(|d| d.abs() < 1e-4));
}

/// Expected (calls, transposed calls) of one training step of `widths` with
/// a batch of `b` rows in `nb` row blocks: per block, L forward, L-1
/// back-propagation (`D W^T`, transposed) and L weight-gradient (`A^T D`,
/// transposed) products, each one call or cut per the tiling and chunking
/// rules of `g`.
fn step_calls(widths: &[usize], b: usize, nb: usize, g: Gemm) -> (usize, usize) {
    let (mut calls, mut transposed) = (0, 0);
    for t in 0..nb {
        let rows = block(t, nb, b, 1).len();
        for i in 0..widths.len() - 1 {
            let (n_in, n_out) = (widths[i], widths[i + 1]);
            calls += gemm_calls(g, Orient::NN, rows, n_out, n_in);
            if i >= 1 {
                let c = gemm_calls(g, Orient::NT, rows, n_in, n_out);
                calls += c;
                transposed += c;
            }
            let (gr, gc) = if n_in >= n_out {
                (block(t, nb, n_in, 1).len(), n_out)
            } else {
                (n_in, block(t, nb, n_out, 16).len())
            };
            let c = gemm_calls(g, Orient::TN, gr, gc, b);
            calls += c;
            transposed += c;
        }
    }
    (calls, transposed)
}

/// A training step of a T1-shaped network issues exactly the expected
/// number of sgemm calls ([`step_calls`]); on a machine with OpenBLAS's
/// small-matrix kernels the split policy cuts its products into tiles, so
/// every tile must be a call too.
#[test]
fn every_product_of_a_training_step_is_an_sgemm() {
    let _g = SERIAL.lock().unwrap();
    let spec = NetSpec::parse("784,relu,512,relu,512,relu,256,relu,128,softmax,10").unwrap();
    let l = spec.layers();
    let x =
        Array2::<f32>::from_shape_fn((256, 784), |(i, j)| ((i * 31 + j * 7) % 255) as f32 / 255.0);
    let labels: Vec<u8> = (0..256).map(|i| (i % 10) as u8).collect();
    let idx: Vec<u32> = (0..128).map(|i| (i * 2) as u32).collect();
    for (policy, kind) in [
        (GemmThreading::Split, OptKind::Sgd),
        (GemmThreading::Split, OptKind::Adam),
        (GemmThreading::Blas, OptKind::Momentum),
    ] {
        let threads = Threads::new(2, policy).unwrap();
        let nb = threads.blocks();
        let mut net = Mlp::<f32>::new(spec.clone(), Loss::CrossEntropy, Init::He, 0).unwrap();
        let mut opt = Optimizer::new(OptConfig::new(kind, 0.01), &net.param_shapes());
        let mut ws = Workspace::new(&spec, 128, nb);
        let batch = Batch {
            data: x.view(),
            pixels: None,
            labels: &labels,
            rows: Rows::Indices(&idx),
            augment: None,
            key: 0,
        };
        let (c0, t0) = counts();
        threads.install(|| {
            opt.begin_step();
            net.train_step(&mut ws, &batch, Update::Apply(&opt));
        });
        let (c1, t1) = counts();
        let tiles = policy == GemmThreading::Split && Plan::from_env().tiles;
        let g = Gemm {
            tiles,
            small_bwd: Plan::from_env().small_bwd,
        };
        let (want, want_t) = step_calls(&spec.widths, 128, nb, g);
        if tiles {
            assert!(want > nb * (3 * l - 1), "the rule must tile something here");
        } else {
            assert_eq!((want, want_t), (nb * (3 * l - 1), nb * (2 * l - 1)));
        }
        assert_eq!(c1 - c0, want, "{policy:?} {kind:?}: sgemm calls");
        assert_eq!(
            t1 - t0,
            want_t,
            "{policy:?} {kind:?}: transposed sgemm calls"
        );
        assert!(net.is_finite());
    }
}

/// Evaluation (forward only) also runs on sgemm: one call per layer and block.
#[test]
fn evaluation_products_are_sgemm() {
    let _g = SERIAL.lock().unwrap();
    let spec = NetSpec::parse("784,relu,100,softmax,10").unwrap();
    let x = Array2::<f32>::zeros((300, 784));
    let labels = vec![0u8; 300];
    let threads = Threads::new(2, GemmThreading::Split).unwrap();
    let mut net = Mlp::<f32>::new(spec.clone(), Loss::CrossEntropy, Init::He, 0).unwrap();
    let mut ws = Workspace::new(&spec, 100, threads.blocks());
    let (c0, _) = counts();
    threads.install(|| net.evaluate(&mut ws, x.view(), &labels));
    let p = Plan::from_env();
    let g = Gemm {
        tiles: p.tiles,
        small_bwd: p.small_bwd,
    };
    let per_block =
        gemm_calls(g, Orient::NN, 50, 100, 784) + gemm_calls(g, Orient::NN, 50, 10, 100);
    assert_eq!(
        counts().0 - c0,
        3 * 2 * per_block,
        "3 chunks x 2 blocks x 2 layers"
    );
}

/// Small batches cut skinny products into column chunks (for OpenBLAS's
/// unpacked small-matrix kernels); every chunk is still an sgemm call.
#[test]
fn chunked_small_batch_products_are_sgemm() {
    let _g = SERIAL.lock().unwrap();
    let spec = NetSpec::parse("784,relu,512,relu,512,relu,256,relu,128,softmax,10").unwrap();
    let l = spec.layers();
    let b = 8;
    // One block: the column split of small batches has the shapes of a
    // single row block.
    let p = Plan::from_env();
    let g = Gemm {
        tiles: p.tiles,
        small_bwd: p.small_bwd,
    };
    let (want, _) = step_calls(&spec.widths, b, 1, g);
    assert!(want > 3 * l - 1, "the rule must chunk something here");
    if p.small_bwd {
        let plain = Gemm {
            small_bwd: false,
            ..g
        };
        assert!(
            want > step_calls(&spec.widths, b, 1, plain).0,
            "small_bwd must cut back-propagation finer here"
        );
    }
    let x = Array2::<f32>::from_elem((b, 784), 0.5);
    let labels = vec![3u8; b];
    let threads = Threads::new(1, GemmThreading::Split).unwrap();
    let mut net = Mlp::<f32>::new(spec.clone(), Loss::CrossEntropy, Init::He, 0).unwrap();
    let mut opt = Optimizer::new(OptConfig::new(OptKind::Sgd, 0.01), &net.param_shapes());
    let mut ws = Workspace::new(&spec, b, 1);
    let batch = Batch {
        data: x.view(),
        pixels: None,
        labels: &labels,
        rows: Rows::Range(0, b),
        augment: None,
        key: 0,
    };
    let (c0, _) = counts();
    threads.install(|| {
        opt.begin_step();
        net.train_step(&mut ws, &batch, Update::Apply(&opt));
    });
    assert_eq!(counts().0 - c0, want);
}

/// Under every candidate plan the planner may choose (products split by
/// rows or columns, weight gradients either way, tiles, padding), all of a
/// training step's multiply-adds go through sgemm: the calls' m x n x k add
/// up to exactly the step's products, b x (3 sum(in x out) - in_0 x out_0)
/// (no input gradient for the first layer), however they are cut.
#[test]
fn every_candidate_plan_does_all_its_products_in_sgemm() {
    use mnist_mlp::plan::{candidates, measure::shape_of};
    let _g = SERIAL.lock().unwrap();
    let spec = NetSpec::parse("784,relu,512,relu,256,relu,64,softmax,10").unwrap();
    let w = &spec.widths;
    let px = Array2::<u8>::from_shape_fn((256, 784), |(i, j)| ((i * 31 + j * 7) % 255) as u8);
    let x = px.mapv(|v| v as f32 / 255.0);
    let labels: Vec<u8> = (0..256).map(|i| (i % 10) as u8).collect();
    let mut seen = 0;
    for (n, b) in [(2, 128), (2, 8), (1, 64)] {
        let threads = Threads::new(n, GemmThreading::Split).unwrap();
        let net0 = Mlp::<f32>::new(spec.clone(), Loss::CrossEntropy, Init::He, 0).unwrap();
        let shape = shape_of(&net0, b, &threads);
        // Row chunks short enough for these batches (two per block of 64
        // rows), so that chunked plans are among the candidates.
        let base = Plan {
            row_chunk: 32,
            ..Plan::default()
        };
        let plans = candidates(base, &shape);
        assert!(plans.len() > 1, "{n} threads, batch {b}: choices to test");
        let idx: Vec<u32> = (0..b as u32).map(|i| i * 2).collect();
        let per_sample: usize =
            (0..w.len() - 1).map(|i| 3 * w[i] * w[i + 1]).sum::<usize>() - w[0] * w[1];
        // Each plan on a gathered batch, and on one read in place whose
        // chunks (where the plan has them) come from the bytes.
        for (p, in_place) in plans.iter().flat_map(|&p| [(p, false), (p, true)]) {
            let mut net = net0.clone();
            let mut opt = Optimizer::new(OptConfig::new(OptKind::Adam, 0.01), &net.param_shapes());
            let mut ws = Workspace::with_plan(&spec, b, threads.blocks(), p);
            let batch = Batch {
                data: x.view(),
                pixels: in_place.then(|| px.view()),
                labels: &labels,
                rows: if in_place {
                    Rows::Range(0, b)
                } else {
                    Rows::Indices(&idx)
                },
                augment: None,
                key: 0,
            };
            let m0 = MNK.load(Ordering::SeqCst);
            threads.install(|| {
                opt.begin_step();
                net.train_step(&mut ws, &batch, Update::Apply(&opt));
            });
            assert_eq!(
                MNK.load(Ordering::SeqCst) - m0,
                b * per_sample,
                "{n} threads, batch {b}, plan {p}, in place {in_place}"
            );
            assert!(net.is_finite());
            seen += 1;
        }
    }
    println!("{seen} candidate plans checked");
}
