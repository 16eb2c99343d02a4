//! The plan: every choice that changes how fast a training step runs, in
//! one place.
//!
//! None of these choices changes the mathematics of a step, but most change
//! the order in which floating-point sums are taken, and so the last bits of
//! the results. A run is therefore repeatable bit for bit only under the
//! same plan (and thread count): the plan in force is recorded in
//! `train --json` and `bench --json` output, in a checkpoint's metadata and
//! in the `model.toml` beside it (a `[plan]` table), and a resumed run, or
//! one started with `--config model.toml`, takes it from there.
//!
//! | field | what it chooses | default |
//! | --- | --- | --- |
//! | `col_split_rows` | below this many batch rows per thread, every forward and back-propagation product is split by columns of its output instead of by rows of the batch | [`COL_SPLIT_ROWS`] |
//! | `big_cols`, `big_fwd`, `big_bwd` | products with at least `big_cols` weights and more output columns than batch rows are split by columns too, in the forward pass and/or back-propagation | off |
//! | `weight_grad_split` | weight gradients `A^T D` split by rows (input features) or columns (`auto`: along the longer side) | `auto` |
//! | `tiles` | f32 products of small batches cut into tiles for OpenBLAS's small-matrix kernels ([`crate::blas::gemm_tile`]) | off |
//! | `blocks` | blocks per parallel region at most (0: one per thread); fewer blocks than threads leave threads idle, which pays when a step is too small to split (T3's 8 rows on Zen 3) | 0 |
//! | `pad_bytes` | activation rows whose length is a multiple of this many bytes get one cache line of padding ([`crate::nn::layout`]); 0: none | [`crate::nn::layout::PAD_BYTES`] |
//! | `blas_threads` | one block per region, each product threaded by OpenBLAS over the pool's threads (what `--threading blas` does for a whole run), instead of rayon blocks of single-threaded products | off |
//! | `row_chunk` | a block of at least twice this many rows runs its row stages (forward, loss, back-propagation) one chunk of rows at a time through every layer, so that each chunk's activations stay in cache; a batch read in place has each chunk of its input converted from the pixel bytes; 0: whole blocks | [`ROW_CHUNK`] (a plan recorded without the field: 0) |
//! | `small_bwd` | f32 back-propagation products `D W^T` of at most 32 rows are cut into column chunks of at most [`crate::blas::SMALL_BWD_OUT`] output elements, which OpenBLAS's small-matrix kernels take unpacked ([`crate::blas::gemm_chunk_bwd`]) | on (a plan recorded without the field: off) |
//!
//! The thread count and threading policy (`--threads`, `--threading`) are
//! the run's own settings, recorded beside the plan in the same places.
//! Fixed constants that only change speed, not bits, stay with their code:
//! [`crate::blas::SMALL_GEMM_MNK`], [`crate::blas::TILE_MAX_BATCH`] and the
//! tile shapes, [`COL_ALIGN`], and the gather's prefetch distance. One more
//! choice that changes speed but not bits is made apart from the plan: the
//! vector width of the optimizers' update loop (AVX2 or AVX-512), timed once
//! per process on the processor itself ([`crate::optim::simd`]).
//!
//! For measurement, [`Plan::from_env`] overrides the defaults from the
//! environment; it is the only code that reads these variables:
//! `MLP_COL_SPLIT_ROWS=N`, `MLP_BIG_COLS=MIN[:f|b|fb]`,
//! `MLP_GW_SPLIT=rows|cols`, `MLP_TILES=0|1`, `MLP_PAD_BYTES=N`,
//! `MLP_BLOCKS=N`, `MLP_BLAS_THREADS=0|1`, `MLP_ROW_CHUNK=N`,
//! `MLP_SMALL_BWD=0|1`.
//!
//! # Who chooses
//! The defaults are the plan of `--plan default`: rules that held on every
//! machine class this project has been measured on (AMD Zen 3, Zen 4,
//! Zen 5 with OpenBLAS's Haswell kernels (an environment's
//! `OPENBLAS_CORETYPE`) and its own Cooperlake choice, Intel Xeon with its
//! SkylakeX kernels). Tiles are off by default: they made T5 1.05x faster on one
//! Zen 4 machine and 2x slower on the Xeon, so no rule decides them. Small
//! back-propagation chunks are on by default: with OpenBLAS's AVX-512
//! kernels (`Cooperlake` on Zen 4 and Zen 5, `SkylakeX` on the Xeon) they
//! made T3's step 1.3-1.4x faster on Zen 5; its AVX2 kernels (`Zen` on
//! Zen 3, `Haswell`) have no small-matrix path for them and ran T3's step
//! at 0.95-0.98x, where the planner's candidate without them wins.
//! Everything else is measured on the user's machine: the planner
//! ([`search`], [`measure`]) times every distinct candidate of
//! [`candidates`] on the run's real buffers, picks the fastest, and caches
//! the choice per machine and shape ([`cache`]). A run whose budget cannot
//! time every candidate times first what the cache says this machine chose
//! for other shapes ([`cache::hints`], [`with_hints`]: FFTW's "wisdom"),
//! then those nearest the default. A measurement during which other
//! programs or the host (a VM's steal) took more of the CPU time than
//! [`choose::busy_limit`] allows ([`measure::Busy`]) decides nothing and
//! is not cached: what wins on a busy machine (one block where a program
//! holds the other core) can run 1.5-2x slower on a quiet one. A plan with
//! OpenBLAS's threads that wins the search is timed again apart from the
//! base, once OpenBLAS's spinning workers sleep ([`measure::Apart`]). No
//! code here looks at OpenBLAS's kernel name or the CPU's vendor.

pub mod cache;
pub mod choose;
pub mod measure;
pub mod search;

pub use choose::{Choice, Chosen};

use serde::{Deserialize, Serialize};

/// The environment variables [`Plan::from_env`] reads.
const ENV_VARS: [&str; 9] = [
    "MLP_BLOCKS",
    "MLP_ROW_CHUNK",
    "MLP_SMALL_BWD",
    "MLP_BLAS_THREADS",
    "MLP_COL_SPLIT_ROWS",
    "MLP_BIG_COLS",
    "MLP_GW_SPLIT",
    "MLP_TILES",
    "MLP_PAD_BYTES",
];

/// Below this many rows per thread, a step splits products by columns (each
/// thread reads only its share of the weights, one synchronization per
/// layer) instead of by rows (two synchronizations per step, each thread
/// reading all weights). Chosen by measurement: see BENCHMARKS.md.
pub const COL_SPLIT_ROWS: usize = 16;

/// Rows per chunk of a block's row stages (where a block holds at least
/// twice as many): the forward pass, loss and back-propagation then run
/// one chunk at a time through every layer, each chunk's activations
/// (T4's: 1024 x 200 floats, 800 KiB) still in cache for the next layer's
/// product and the activation passes, and a batch read in place from a
/// dataset with pixel bytes has each chunk of its input converted from
/// those (a quarter of the f32 rows' memory traffic) into a buffer that
/// stays in cache. Measured: BENCHMARKS.md, session 27.
pub const ROW_CHUNK: usize = 1024;

/// Column blocks are aligned to this many elements (a cache line of f32).
pub const COL_ALIGN: usize = 16;

/// How weight gradients `A^T D` (`[fan_in, fan_out]`) are split between
/// threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightGradSplit {
    /// By rows when `fan_in >= fan_out`, else by columns: each thread packs
    /// its share of one operand and all of the other, so splitting along
    /// the longer side packs the least.
    Auto,
    /// By rows (input features).
    Rows,
    /// By columns (output features).
    Cols,
}

/// Every speed choice of a training step (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Plan {
    /// Below this many batch rows per block, every product is split by
    /// columns.
    pub col_split_rows: usize,
    /// Products with at least this many weights and more output columns
    /// than batch rows are split by columns (`None`: never; measured no
    /// faster on T5, see BENCHMARKS.md) ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub big_cols: Option<usize>,
    /// ... in the forward pass ...
    pub big_fwd: bool,
    /// ... and in back-propagation.
    pub big_bwd: bool,
    /// How weight gradients are split.
    pub weight_grad_split: WeightGradSplit,
    /// Whether f32 products of small batches are cut into tiles.
    pub tiles: bool,
    /// Row strides that are a multiple of this many bytes are padded by a
    /// cache line (0: never).
    pub pad_bytes: usize,
    /// Blocks per parallel region at most (0: one per thread of the pool).
    pub blocks: usize,
    /// One block per region, and OpenBLAS threads each product over the
    /// pool's threads (on a pool that splits regions; elsewhere nothing
    /// changes).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub blas_threads: bool,
    /// Rows per chunk of a block's row stages, run depth-first (0: each
    /// stage over the whole block); only for blocks of at least twice as
    /// many rows ([`Plan::row_chunk_for`]). A plan recorded without it ran
    /// whole blocks.
    #[serde(default)]
    pub row_chunk: usize,
    /// Back-propagation products of few rows in column chunks small enough
    /// for OpenBLAS's small-matrix kernels ([`crate::blas::gemm_chunk_bwd`]).
    /// A plan recorded without it did not chunk them so.
    #[serde(default)]
    pub small_bwd: bool,
}

impl Default for Plan {
    /// Today's measured defaults (BENCHMARKS.md).
    fn default() -> Self {
        Self {
            col_split_rows: COL_SPLIT_ROWS,
            big_cols: None,
            big_fwd: true,
            big_bwd: true,
            weight_grad_split: WeightGradSplit::Auto,
            tiles: false,
            pad_bytes: crate::nn::layout::PAD_BYTES,
            blocks: 0,
            blas_threads: false,
            row_chunk: ROW_CHUNK,
            small_bwd: true,
        }
    }
}

impl Plan {
    /// Whether any `MLP_*` override is set in the environment (then the
    /// planner does not measure: the person measuring has chosen).
    pub fn env_overridden() -> bool {
        ENV_VARS.iter().any(|k| std::env::var_os(k).is_some())
    }

    /// [`Plan::default`] with the `MLP_*` overrides of the environment
    /// applied (read once per process). Unparsable values are ignored.
    pub fn from_env() -> Self {
        static V: std::sync::OnceLock<Plan> = std::sync::OnceLock::new();
        *V.get_or_init(|| {
            let var = |k: &str| std::env::var(k).ok();
            Self::default().with_overrides(&var)
        })
    }

    /// This plan with the overrides that `var` (an environment) gives.
    fn with_overrides(mut self, var: &dyn Fn(&str) -> Option<String>) -> Self {
        // A number, or a switch `0|1`; anything else leaves the field.
        let num = |k: &str| var(k).and_then(|s| s.parse::<usize>().ok());
        let switch = |k: &str| match var(k).as_deref() {
            Some("0") => Some(false),
            Some("1") => Some(true),
            _ => None,
        };
        if let Some(n) = num("MLP_COL_SPLIT_ROWS") {
            self.col_split_rows = n;
        }
        if let Some(big) = var("MLP_BIG_COLS") {
            let (min, which) = big.split_once(':').unwrap_or((&big, "fb"));
            self.big_cols = min.parse().ok();
            self.big_fwd = which.contains('f');
            self.big_bwd = which.contains('b');
        }
        match var("MLP_GW_SPLIT").as_deref() {
            Some("rows") => self.weight_grad_split = WeightGradSplit::Rows,
            Some("cols") => self.weight_grad_split = WeightGradSplit::Cols,
            _ => {}
        }
        if let Some(b) = switch("MLP_TILES") {
            self.tiles = b;
        }
        if let Some(n) = num("MLP_PAD_BYTES") {
            self.pad_bytes = n;
        }
        if let Some(n) = num("MLP_BLOCKS") {
            self.blocks = n;
        }
        if let Some(b) = switch("MLP_BLAS_THREADS") {
            self.blas_threads = b;
        }
        if let Some(n) = num("MLP_ROW_CHUNK") {
            self.row_chunk = n;
        }
        if let Some(b) = switch("MLP_SMALL_BWD") {
            self.small_bwd = b;
        }
        self
    }

    /// Rows per chunk of a block of `rows` rows: [`Plan::row_chunk`] where
    /// the block holds at least two chunks, else 0 (the whole block).
    pub fn row_chunk_for(&self, rows: usize) -> usize {
        match self.row_chunk {
            c if c > 0 && rows >= c.saturating_mul(2) => c,
            _ => 0,
        }
    }

    /// Blocks per parallel region on a pool that offers `pool` blocks.
    pub fn blocks_for(&self, pool: usize) -> usize {
        match self.blocks {
            _ if self.blas_threads => 1,
            0 => pool,
            b => b.min(pool),
        }
        .max(1)
    }

    /// The OpenBLAS thread count a step under this plan needs on a pool
    /// that offers `pool` blocks: the pool's threads for `blas_threads`,
    /// else one (several blocks must not call a threaded OpenBLAS at once;
    /// one block of a split pool must not either, or it would time, and
    /// round, like `blas_threads`). `None` where the pool does not split
    /// (one thread, or `--threading blas`): its own setting stands.
    pub fn openblas_threads(&self, pool: usize) -> Option<usize> {
        (pool > 1).then_some(if self.blas_threads { pool } else { 1 })
    }

    /// Whether a product `[n, k] x [k, cols]` on `nb` blocks (`fwd`: of the
    /// forward pass, else of back-propagation) is split by columns.
    pub fn split_cols(&self, n: usize, nb: usize, k: usize, cols: usize, fwd: bool) -> bool {
        if nb <= 1 {
            return false;
        }
        if n < self.col_split_rows.saturating_mul(nb) {
            return true;
        }
        self.big_cols.is_some_and(|min| k * cols >= min)
            && cols > n
            && if fwd { self.big_fwd } else { self.big_bwd }
    }

    /// Whether the weight gradient of a `[n_in, n_out]` layer is split by
    /// rows (else by columns).
    pub fn weight_grad_by_rows(&self, n_in: usize, n_out: usize) -> bool {
        match self.weight_grad_split {
            WeightGradSplit::Auto => n_in >= n_out,
            WeightGradSplit::Rows => true,
            WeightGradSplit::Cols => false,
        }
    }

    /// How many of the choices (column splits, weight-gradient split,
    /// tiles, padding) differ between `self` and `other`.
    pub fn distance(&self, other: &Plan) -> usize {
        let splits = |p: &Plan| (p.col_split_rows, p.big_cols, p.big_fwd, p.big_bwd);
        usize::from(splits(self) != splits(other))
            + usize::from(self.weight_grad_split != other.weight_grad_split)
            + usize::from(self.tiles != other.tiles)
            + usize::from(self.pad_bytes != other.pad_bytes)
            + usize::from(self.blocks != other.blocks)
            + usize::from(self.blas_threads != other.blas_threads)
            + usize::from(self.row_chunk != other.row_chunk)
            + usize::from(self.small_bwd != other.small_bwd)
    }

    /// As JSON (for `--json` records).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a plan serializes")
    }

    /// What this plan makes a step of `shape` do: which stages are split
    /// by columns, which weight gradients by rows, whether tiles are used,
    /// each activation's row stride. Two plans with the same effect run
    /// the same code (and give the same bits).
    pub fn effect(&self, shape: &Shape) -> Effect {
        let (w, n, nb) = (&shape.widths, shape.rows, self.blocks_for(shape.blocks));
        let blas_threads = self.blas_threads && shape.blocks > 1;
        let l = w.len() - 1;
        let mut split = Vec::with_capacity(2 * l);
        for i in 0..l - 1 {
            split.push(self.split_cols(n, nb, w[i], w[i + 1], true));
        }
        for i in 1..l {
            split.push(self.split_cols(n, nb, w[i + 1], w[i], false));
        }
        let grad_rows = if nb > 1 {
            (0..l)
                .map(|i| self.weight_grad_by_rows(w[i], w[i + 1]))
                .collect()
        } else {
            Vec::new()
        };
        // Tiles need single-threaded f32 calls and a product that tiles.
        let m = n.div_ceil(nb.max(1));
        let tiles = self.tiles
            && !blas_threads
            && shape.tiles_possible()
            && (0..l).any(|i| {
                use crate::blas::{gemm_tile, Orient};
                let (k, c) = (w[i], w[i + 1]);
                gemm_tile(Orient::NN, m, c, k).is_some()
                    || gemm_tile(Orient::NT, m, k, c).is_some()
                    || gemm_tile(Orient::TN, k, c, m).is_some()
            });
        // Small back-propagation chunks need an f32 product that is not
        // tiled and that they cut otherwise than the plain chunks do.
        let small_bwd = self.small_bwd
            && shape.elem_bytes == 4
            && (1..l).any(|i| {
                use crate::blas::{gemm_chunk, gemm_chunk_bwd, gemm_tile, Orient};
                let (k, c) = (w[i + 1], w[i]);
                let (rows, cols) = if split[l - 1 + i - 1] {
                    (n, c.div_ceil(nb))
                } else {
                    (m, c)
                };
                !(tiles && gemm_tile(Orient::NT, rows, cols, k).is_some())
                    && gemm_chunk_bwd(rows, cols, k) != gemm_chunk(rows, cols, k)
            });
        let strides = w
            .iter()
            .map(|&c| match shape.elem_bytes {
                8 => crate::nn::layout::padded_cols::<f64>(c, self.pad_bytes),
                _ => crate::nn::layout::padded_cols::<f32>(c, self.pad_bytes),
            })
            .collect();
        Effect {
            blocks: nb,
            blas_threads,
            split,
            grad_rows,
            tiles,
            strides,
            chunk: self.row_chunk_for(n.div_ceil(nb)),
            small_bwd,
        }
    }
}

impl std::fmt::Display for Plan {
    /// One line: `col_split_rows=16 big_cols=off weight_grad_split=auto tiles=off pad_bytes=4096`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "col_split_rows=")?;
        match self.col_split_rows {
            0 => write!(f, "0")?,
            n if n >= ALWAYS_COLS => write!(f, "always")?,
            n => write!(f, "{n}")?,
        }
        match self.big_cols {
            None => write!(f, " big_cols=off")?,
            Some(min) => write!(
                f,
                " big_cols={min}:{}{}",
                if self.big_fwd { "f" } else { "" },
                if self.big_bwd { "b" } else { "" }
            )?,
        }
        let gw = match self.weight_grad_split {
            WeightGradSplit::Auto => "auto",
            WeightGradSplit::Rows => "rows",
            WeightGradSplit::Cols => "cols",
        };
        write!(
            f,
            " weight_grad_split={gw} tiles={} pad_bytes={}",
            if self.tiles { "on" } else { "off" },
            self.pad_bytes
        )?;
        match self.row_chunk {
            0 => write!(f, " row_chunk=off")?,
            c => write!(f, " row_chunk={c}")?,
        }
        write!(
            f,
            " small_bwd={}",
            if self.small_bwd { "on" } else { "off" }
        )?;
        // OpenBLAS's threads make a region one block, whatever `blocks` says.
        match (self.blas_threads, self.blocks) {
            (true, _) => write!(f, " blas_threads=on")?,
            (false, 0) => write!(f, " blocks=all")?,
            (false, b) => write!(f, " blocks={b}")?,
        }
        Ok(())
    }
}

/// A `col_split_rows` at least this large splits every product by columns.
pub const ALWAYS_COLS: usize = 1 << 40;

/// What a plan is chosen for: one training step's shape on one pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Layer widths, input first.
    pub widths: Vec<usize>,
    /// Rows of a step (the batch size).
    pub rows: usize,
    /// Blocks per parallel region ([`crate::parallel::Threads::blocks`]).
    pub blocks: usize,
    /// Threads of the pool.
    pub threads: usize,
    /// How products use the threads.
    pub threading: crate::parallel::GemmThreading,
    /// Bytes per element: 4 (f32) or 8 (f64).
    pub elem_bytes: usize,
}

impl Shape {
    /// Whether products are single-threaded f32 calls (which tiles need).
    fn tiles_possible(&self) -> bool {
        self.elem_bytes == 4
            && (self.threads == 1 || self.threading == crate::parallel::GemmThreading::Split)
    }
}

/// What a plan makes a step of one [`Shape`] do ([`Plan::effect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// Blocks per region.
    pub blocks: usize,
    /// Whether OpenBLAS threads the products (one block).
    pub blas_threads: bool,
    /// Per forward stage (layers `0..L-1`), then per back-propagation stage
    /// (layers `1..L`): split by columns.
    pub split: Vec<bool>,
    /// Per layer: its weight gradient split by rows (empty on one block).
    pub grad_rows: Vec<bool>,
    /// Whether some product is cut into tiles.
    pub tiles: bool,
    /// Row stride of each width's activations (elements).
    pub strides: Vec<usize>,
    /// Rows per chunk of a block's row stages (0: whole blocks).
    pub chunk: usize,
    /// Whether some back-propagation product of a full batch is cut into
    /// small chunks (an epoch's last, shorter batch can have such products
    /// where a full one has none: there the two settings differ in bits
    /// but not in the time this shape's step takes).
    pub small_bwd: bool,
}

/// The plans worth timing for `shape`, `base` first: every combination of
/// the choices that could matter (one block per thread or fewer; all
/// products by columns or by rows; wide products by columns or not; weight
/// gradients along the longer side, by rows or by columns; tiles on or off;
/// row padding or none; rayon blocks or OpenBLAS's own threads), one per
/// distinct [`Effect`]. A single block leaves only tiles and padding.
pub fn candidates(base: Plan, shape: &Shape) -> Vec<Plan> {
    let mut out: Vec<(Plan, Effect)> = Vec::new();
    // A plan is kept only if it does something no plan before it does.
    let mut add = |p: Plan| {
        let e = p.effect(shape);
        if !out.iter().any(|(_, f)| *f == e) {
            out.push((p, e));
        }
    };
    add(base);
    let pads = [base.pad_bytes, 0, crate::nn::layout::PAD_BYTES];
    // OpenBLAS's threads instead of blocks (which leaves only padding),
    // first among the plans one choice away: the other way to use many
    // threads. The base's own setting goes first, so that where OpenBLAS's
    // threads change nothing (one block) the plan kept does not name them.
    for pad_bytes in pads {
        for blas_threads in [base.blas_threads, true] {
            add(Plan {
                pad_bytes,
                blas_threads,
                ..base
            });
        }
    }
    // Row stages over whole blocks or in chunks (where blocks are long).
    add(Plan {
        row_chunk: if base.row_chunk == 0 { ROW_CHUNK } else { 0 },
        ..base
    });
    // Back-propagation of few rows in small chunks or not (where it has
    // such products).
    add(Plan {
        small_bwd: !base.small_bwd,
        ..base
    });
    let splits = [
        (base.col_split_rows, base.big_cols),
        (ALWAYS_COLS, None),
        (0, None),
        (0, Some(0)),
    ];
    let grads = [
        WeightGradSplit::Auto,
        WeightGradSplit::Rows,
        WeightGradSplit::Cols,
    ];
    // Blocks: one per thread, or fewer (powers of two) for steps too
    // small to split that far.
    let mut blocks = vec![base.blocks, 0];
    blocks.extend((0..).map(|e| 1usize << e).take_while(|&b| b < shape.blocks));
    for &blocks in &blocks {
        for (col_split_rows, big_cols) in splits {
            for weight_grad_split in grads {
                for tiles in [false, true] {
                    for pad_bytes in pads {
                        add(Plan {
                            col_split_rows,
                            big_cols,
                            big_fwd: big_cols.is_some() || base.big_fwd,
                            big_bwd: big_cols.is_some() || base.big_bwd,
                            weight_grad_split,
                            tiles,
                            pad_bytes,
                            blocks,
                            blas_threads: false,
                            row_chunk: base.row_chunk,
                            small_bwd: base.small_bwd,
                        });
                    }
                }
            }
        }
    }
    // Nearest the base first: when the budget cannot time them all, the
    // ones left out are those that change the most at once.
    let mut plans: Vec<Plan> = out.into_iter().map(|(p, _)| p).collect();
    plans[1..].sort_by_key(|p| base.distance(p));
    plans
}

/// `cands` (the base first) without the plans that do what a plan of
/// `screened` does (an earlier search timed them); the base stays.
pub fn unscreened(mut cands: Vec<Plan>, shape: &Shape, screened: &[Plan]) -> Vec<Plan> {
    let done: Vec<Effect> = screened.iter().map(|p| p.effect(shape)).collect();
    let base = cands.first().copied();
    cands.retain(|p| Some(*p) == base || !done.contains(&p.effect(shape)));
    cands
}

/// `cands` (the base first, as [`candidates`] orders them) with the plans
/// of `hints` that do something for `shape` other than the base moved up
/// to follow the base, in the hints' order; a hint that does what no
/// candidate does is added there itself. Returns the reordered list and
/// how many plans follow the base for a hint. When the budget cannot time
/// every candidate, what this machine chose for other shapes
/// ([`cache::hints`]) is timed before what is merely nearest the base.
pub fn with_hints(mut cands: Vec<Plan>, shape: &Shape, hints: &[Plan]) -> (Vec<Plan>, usize) {
    let mut placed = 0;
    for hint in hints {
        let effect = hint.effect(shape);
        let plan = match cands.iter().position(|p| p.effect(shape) == effect) {
            // The base's effect, or a hint's placed already.
            Some(i) if i <= placed => continue,
            Some(i) => cands.remove(i),
            None => *hint,
        };
        placed += 1;
        cands.insert(placed, plan);
    }
    (cands, placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_each_field_and_ignore_garbage() {
        let base = Plan {
            tiles: false,
            ..Plan::default()
        };
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(base.with_overrides(&env(&[])), base);
        let p = base.with_overrides(&env(&[
            ("MLP_COL_SPLIT_ROWS", "100000"),
            ("MLP_BIG_COLS", "500000:b"),
            ("MLP_GW_SPLIT", "cols"),
            ("MLP_TILES", "1"),
            ("MLP_PAD_BYTES", "0"),
            ("MLP_BLOCKS", "1"),
            ("MLP_BLAS_THREADS", "1"),
            ("MLP_ROW_CHUNK", "0"),
            ("MLP_SMALL_BWD", "0"),
        ]));
        assert_eq!(
            p,
            Plan {
                col_split_rows: 100000,
                big_cols: Some(500000),
                big_fwd: false,
                big_bwd: true,
                weight_grad_split: WeightGradSplit::Cols,
                tiles: true,
                pad_bytes: 0,
                blocks: 1,
                blas_threads: true,
                row_chunk: 0,
                small_bwd: false,
            }
        );
        let g = base.with_overrides(&env(&[
            ("MLP_COL_SPLIT_ROWS", "many"),
            ("MLP_GW_SPLIT", "diagonal"),
            ("MLP_TILES", "yes"),
            ("MLP_SMALL_BWD", "maybe"),
        ]));
        assert_eq!(g, base);
    }

    #[test]
    fn small_bwd_chunks_apply_to_back_propagation_of_few_rows() {
        let shape = |widths: Vec<usize>, rows, blocks| Shape {
            widths,
            rows,
            blocks,
            threads: blocks,
            threading: crate::parallel::GemmThreading::Split,
            elem_bytes: 4,
        };
        let t3 = || vec![784, 512, 512, 256, 128, 10];
        let on = Plan::default();
        let off = Plan {
            small_bwd: false,
            ..on
        };
        // T3's 8 rows, one block or two (columns split), and 32 rows per
        // block: some D W^T is cut otherwise; 64 rows per block: none is.
        for (rows, blocks) in [(8, 1), (8, 2), (64, 2)] {
            let s = shape(t3(), rows, blocks);
            assert!(on.effect(&s).small_bwd, "{rows}x{blocks}");
            assert!(!off.effect(&s).small_bwd);
            assert!(candidates(on, &s).contains(&off), "{rows}x{blocks}");
        }
        for s in [
            shape(t3(), 128, 2),
            shape(t3(), 256, 1),
            // One hidden layer: no back-propagation product at all.
            shape(vec![784, 50, 10], 8, 1),
            // f64 (gradient checks): sgemm's kernels only.
            Shape {
                elem_bytes: 8,
                ..shape(t3(), 8, 1)
            },
        ] {
            assert!(!on.effect(&s).small_bwd, "{s:?}");
            assert_eq!(on.effect(&s), off.effect(&s));
            assert!(!candidates(on, &s).contains(&off), "{s:?}");
        }
        // A plan recorded before the field runs without the chunks.
        let old: Plan = toml::from_str("tiles = false").unwrap();
        assert!(!old.small_bwd);
        assert!(on.to_string().contains("small_bwd=on"));
    }

    #[test]
    fn candidates_are_distinct_in_effect_and_include_fewer_blocks() {
        let shape = |rows, blocks| Shape {
            widths: vec![784, 512, 512, 256, 128, 10],
            rows,
            blocks,
            threads: blocks,
            threading: crate::parallel::GemmThreading::Split,
            elem_bytes: 4,
        };
        for (rows, blocks) in [(8, 2), (128, 2), (256, 1), (128, 16)] {
            let s = shape(rows, blocks);
            let c = candidates(Plan::default(), &s);
            assert_eq!(c[0], Plan::default());
            let effects: Vec<Effect> = c.iter().map(|p| p.effect(&s)).collect();
            for (i, e) in effects.iter().enumerate() {
                assert!(
                    !effects[..i].contains(e),
                    "{rows}x{blocks}: {} repeats",
                    c[i]
                );
            }
            // Nearest first.
            let d: Vec<usize> = c[1..].iter().map(|p| Plan::default().distance(p)).collect();
            assert!(d.windows(2).all(|w| w[0] <= w[1]), "{d:?}");
            let mut bl: Vec<usize> = effects.iter().map(|e| e.blocks).collect();
            bl.sort_unstable();
            bl.dedup();
            let want: Vec<usize> = match blocks {
                1 => vec![1],
                2 => vec![1, 2],
                _ => vec![1, 2, 4, 8, 16],
            };
            assert_eq!(bl, want, "{rows}x{blocks}");
            // OpenBLAS's threads: a choice where the pool splits.
            let threaded = effects.iter().filter(|e| e.blas_threads).count();
            assert_eq!(threaded > 0, blocks > 1, "{rows}x{blocks}");
            assert_eq!(c[1].blas_threads, blocks > 1, "first of the nearest");
            assert!(effects
                .iter()
                .filter(|e| e.blas_threads)
                .all(|e| e.blocks == 1 && !e.tiles && e.split.iter().all(|s| !s)));
        }
        // One block: only tiles and padding can differ (this net's rows
        // are 2 KiB or less apart: padding changes nothing).
        assert_eq!(candidates(Plan::default(), &shape(256, 1)).len(), 2);
    }

    #[test]
    fn hints_follow_the_base_by_what_they_do() {
        let shape = Shape {
            widths: vec![784, 512, 512, 256, 128, 10],
            rows: 128,
            blocks: 2,
            threads: 2,
            threading: crate::parallel::GemmThreading::Split,
            elem_bytes: 4,
        };
        let base = Plan::default();
        let plain = candidates(base, &shape);
        let far = Plan {
            col_split_rows: ALWAYS_COLS,
            weight_grad_split: WeightGradSplit::Cols,
            pad_bytes: 0,
            ..base
        };
        let at = |c: &[Plan], p: &Plan| c.iter().position(|q| q.effect(&shape) == p.effect(&shape));
        assert!(at(&plain, &far).unwrap() > 3, "far from the base");
        // A hint that does what the base does, or what an earlier hint
        // does, is no hint; one with an effect no candidate has is added.
        let same_as_base = Plan {
            big_fwd: !base.big_fwd,
            ..base
        };
        let new = Plan {
            pad_bytes: 256,
            ..far
        };
        assert_eq!(at(&plain, &new), None);
        let (c, n) = with_hints(plain.clone(), &shape, &[same_as_base, far, far, new]);
        assert_eq!(n, 2);
        assert_eq!(c[0], base);
        assert_eq!(at(&c, &far), Some(1));
        assert_eq!(c[2], new);
        assert_eq!(c.len(), plain.len() + 1);
        // The rest keep their order.
        let rest: Vec<Plan> = plain
            .iter()
            .copied()
            .filter(|p| p.effect(&shape) != far.effect(&shape))
            .collect();
        assert_eq!(&c[3..], &rest[1..]);
        assert_eq!(with_hints(plain.clone(), &shape, &[]), (plain, 0));
    }

    #[test]
    fn the_line_names_blocks_only_where_they_apply() {
        let base = Plan::default();
        assert!(base.to_string().ends_with(" blocks=all"), "{base}");
        let two = Plan { blocks: 2, ..base };
        assert!(two.to_string().ends_with(" blocks=2"), "{two}");
        // OpenBLAS's threads run one block, whatever `blocks` holds.
        for blocks in [0, 2] {
            let t = Plan {
                blas_threads: true,
                blocks,
                ..base
            };
            let line = t.to_string();
            assert!(line.ends_with(" blas_threads=on"), "{line}");
            assert!(!line.contains("blocks="), "{line}");
        }
    }

    #[test]
    fn split_rules() {
        let p = Plan::default();
        assert!(!p.split_cols(8, 1, 784, 512, true), "one block: rows");
        assert!(p.split_cols(8, 2, 784, 512, true), "4 rows per block");
        assert!(!p.split_cols(128, 2, 784, 512, true));
        let big = Plan {
            big_cols: Some(100_000),
            big_fwd: false,
            ..p
        };
        assert!(!big.split_cols(128, 2, 784, 512, true));
        assert!(big.split_cols(128, 2, 784, 512, false));
        assert!(!big.split_cols(128, 2, 784, 100, false), "narrow output");
        assert!(p.weight_grad_by_rows(784, 512));
        assert!(!p.weight_grad_by_rows(128, 512));
    }

    #[test]
    fn row_chunks_apply_to_blocks_of_two_chunks_or_more() {
        let p = Plan {
            row_chunk: 1024,
            ..Plan::default()
        };
        assert_eq!(p.row_chunk_for(2047), 0);
        assert_eq!(p.row_chunk_for(2048), 1024);
        assert_eq!(p.row_chunk_for(60_000), 1024);
        let off = Plan { row_chunk: 0, ..p };
        assert_eq!(off.row_chunk_for(60_000), 0);
        let huge = Plan {
            row_chunk: usize::MAX,
            ..p
        };
        assert_eq!(huge.row_chunk_for(1 << 40), 0, "no overflow");
        // Where the chunks apply, whole blocks are a candidate; where they
        // do not, the two plans are one.
        let shape = |rows| Shape {
            widths: vec![784, 200, 80, 10],
            rows,
            blocks: 1,
            threads: 1,
            threading: crate::parallel::GemmThreading::Split,
            elem_bytes: 4,
        };
        let chunked = |rows| {
            candidates(p, &shape(rows))
                .iter()
                .map(|c| c.effect(&shape(rows)).chunk)
                .collect::<Vec<_>>()
        };
        assert_eq!(chunked(60_000)[..2], [1024, 0]);
        assert!(chunked(100).iter().all(|&c| c == 0));
    }

    #[test]
    fn toml_round_trip_and_partial_tables() {
        let p = Plan {
            big_cols: Some(7),
            ..Plan::default()
        };
        let t = toml::to_string(&p).unwrap();
        assert_eq!(toml::from_str::<Plan>(&t).unwrap(), p);
        // A partial table takes the defaults, but for row chunks and small
        // back-propagation chunks: a plan recorded before they existed ran
        // without them.
        let partial: Plan = toml::from_str("tiles = false").unwrap();
        assert_eq!(
            partial,
            Plan {
                tiles: false,
                row_chunk: 0,
                small_bwd: false,
                ..Plan::default()
            }
        );
        assert!(toml::from_str::<Plan>("tile = false").is_err());
    }
}
