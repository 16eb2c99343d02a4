//! Kernel benches: the sgemm shapes of T1's step, ReLU forward/backward,
//! the fused softmax-cross-entropy, the batch gather, and the augmentation
//! of one sample (`augment`: what `--augment` adds to each gathered row).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mnist_mlp::blas::set_threads as set_blas_threads;
use mnist_mlp::nn::loss::loss_row;
use mnist_mlp::nn::{Activation, Loss, OutputAct};
use ndarray::{linalg::general_mat_mul, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// As in the binary: large buffers on transparent huge pages.
#[global_allocator]
static ALLOC: mnist_mlp::hugepages::HugePageAlloc = mnist_mlp::hugepages::HugePageAlloc;

fn rand_mat(r: usize, c: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((r, c), || rng.random_range(-1.0..1.0))
}

fn sgemm(c: &mut Criterion) {
    set_blas_threads(1);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut g = c.benchmark_group("sgemm_t1_1thread");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let b = 128;
    for (fi, fo) in [(784, 512), (512, 512), (512, 256), (256, 128), (128, 10)] {
        let x = rand_mat(b, fi, &mut rng);
        let w = rand_mat(fi, fo, &mut rng);
        let d = rand_mat(b, fo, &mut rng);
        let mut y = Array2::zeros((b, fo));
        let mut dx = Array2::zeros((b, fi));
        let mut dw = Array2::zeros((fi, fo));
        g.throughput(Throughput::Elements((2 * b * fi * fo) as u64));
        g.bench_function(
            BenchmarkId::new("forward_XW", format!("{b}x{fi}x{fo}")),
            |bb| bb.iter(|| general_mat_mul(1.0, &x, &w, 0.0, &mut y)),
        );
        g.bench_function(
            BenchmarkId::new("backprop_DWt", format!("{b}x{fo}x{fi}")),
            |bb| bb.iter(|| general_mat_mul(1.0, &d, &w.t(), 0.0, &mut dx)),
        );
        g.bench_function(
            BenchmarkId::new("grad_XtD", format!("{fi}x{b}x{fo}")),
            |bb| bb.iter(|| general_mat_mul(-0.01, &x.t(), &d, 1.0, &mut dw)),
        );
    }
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut g = c.benchmark_group("elementwise");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let (b, n) = (128, 512);
    let z0 = rand_mat(b, n, &mut rng);
    let bias = vec![0.01f32; n];
    g.throughput(Throughput::Elements((b * n) as u64));
    g.bench_function("relu_forward_bias_128x512", |bb| {
        let mut z = z0.clone();
        bb.iter(|| {
            z.assign(&z0);
            for mut r in z.rows_mut() {
                Activation::Relu.forward_row(r.as_slice_mut().unwrap(), &bias);
            }
        })
    });
    g.bench_function("relu_backward_128x512", |bb| {
        let mut d = z0.clone();
        bb.iter(|| {
            for (mut dr, ar) in d.rows_mut().into_iter().zip(z0.rows()) {
                Activation::Relu.backward_row(dr.as_slice_mut().unwrap(), ar.as_slice().unwrap());
            }
        })
    });
    let logits = rand_mat(b, 10, &mut rng);
    g.throughput(Throughput::Elements(b as u64));
    g.bench_function("softmax_cross_entropy_128x10", |bb| {
        let mut z = logits.clone();
        bb.iter(|| {
            z.assign(&logits);
            let mut l = 0.0;
            for (i, mut r) in z.rows_mut().into_iter().enumerate() {
                l += loss_row(
                    OutputAct::Softmax,
                    Loss::CrossEntropy,
                    r.as_slice_mut().unwrap(),
                    i % 10,
                    Some(1.0 / 128.0),
                )
                .0;
            }
            l
        })
    });
    let data = rand_mat(60_000, 784, &mut rng);
    let idx: Vec<usize> = (0..128).map(|_| rng.random_range(0..60_000)).collect();
    let mut out = Array2::<f32>::zeros((128, 784));
    g.throughput(Throughput::Elements(128));
    g.bench_function("batch_gather_128x784", |bb| {
        bb.iter(|| {
            for (mut o, &i) in out.rows_mut().into_iter().zip(&idx) {
                o.assign(&data.row(i));
            }
        })
    });
    g.finish();
}

/// One 28x28 sample through each augmentation (per-sample time; the plain
/// byte-to-float copy of the gather for scale).
fn augment(c: &mut Criterion) {
    use mnist_mlp::data::augment::{Augment, Augmenter};
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let px: Vec<u8> = (0..784).map(|_| rng.random_range(0..=255u8)).collect();
    let mut out = vec![0.0f32; 784];
    let mut g = c.benchmark_group("augment_one_sample");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    g.bench_function("copy", |bb| {
        bb.iter(|| {
            for (o, &p) in out.iter_mut().zip(&px) {
                *o = p as f32 / 255.0;
            }
        })
    });
    for spec in ["flip", "flip+erase", "affine", "elastic", "affine+elastic"] {
        let items: Vec<String> = spec.split('+').map(String::from).collect();
        let aug = Augmenter::new(Augment::parse(&items).unwrap(), 28, 28);
        let mut key = 0u64;
        g.bench_function(spec, |bb| {
            bb.iter(|| {
                key += 1;
                aug.apply(
                    &mut out,
                    |d| {
                        for (o, &p) in d.iter_mut().zip(&px) {
                            *o = p as f32 / 255.0;
                        }
                    },
                    key,
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, sgemm, elementwise, augment);
criterion_main!(benches);
