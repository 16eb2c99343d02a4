//! `mnist-mlp predict`: classifies pictures (PNG, JPEG) and IDX image
//! files with a saved model.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use mnist_mlp::data;

use super::eval::{class_names, refuse_non_finite};
use super::ThreadArgs;

#[derive(Args)]
#[command(
    after_help = "Pictures are turned into grayscale, white ink on black (--invert), and fitted into the \
model's square input frame (--preprocess). IDX image files are classified as they are, one line per image.\n\n\
Examples:\n  mnist-mlp predict --model model.safetensors digit.png\n  \
mnist-mlp predict --model model.safetensors --json scan1.jpg scan2.jpg\n  \
mnist-mlp predict --model model.safetensors scans/ --save-input seen/\n  \
mnist-mlp predict --model model.safetensors --top 3 t10k-images-idx3-ubyte.gz"
)]
pub(crate) struct PredictArgs {
    /// Model (a safetensors file written by `train --save`).
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Pictures (PNG, JPEG), IDX image files (raw or .gz), folders (their pictures) or quoted glob patterns ("scans/*.png").
    #[arg(required = true, value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// Write the frame the model saw for each input (after inversion, levelling, cropping and centring) as a PNG into this folder: NAME.png for a picture, NAME-INDEX.png for an IDX file's images.
    #[arg(long, value_name = "DIR")]
    save_input: Option<PathBuf>,
    /// Turn dark ink on a light background into white on black (auto: when the picture's border is light).
    #[arg(long, value_enum, default_value = "auto")]
    invert: mnist_mlp::predict::Invert,
    /// Fit pictures as MNIST's digits were made (crop, scale to 20/28, center by mass) or just resize them.
    #[arg(long, value_enum, default_value = "mnist")]
    preprocess: mnist_mlp::predict::Preprocess,
    /// Transpose pictures after fitting them (for models trained on EMNIST, whose IDX files store every character transposed). IDX inputs are used as stored.
    #[arg(long)]
    transpose: bool,
    /// Class names: EMNIST's mapping file (`CLASS CODE...` per line, Unicode codes, e.g. `emnist-letters-mapping.txt`) or `CLASS NAME` lines (`0 T-shirt/top`).
    #[arg(long, value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// Show this many most likely classes (all probabilities are in --json).
    #[arg(long, default_value_t = 3, value_name = "K")]
    top: usize,
    /// One JSON object per input image (file, index, class, probabilities).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    threads: ThreadArgs,
}

/// True when `path` starts like an IDX file of unsigned bytes (raw or gzip).
fn looks_like_idx(path: &Path) -> bool {
    use std::io::Read;
    // Not opened unless regular (a FIFO would block): the picture path
    // then says what it is.
    if mnist_mlp::files::regular(path).is_err() {
        return false;
    }
    let Ok((mut r, _)) = data::idx::open_content(path) else {
        return false;
    };
    let mut m = [0u8; 4];
    r.read_exact(&mut m).is_ok() && m[0] == 0 && m[1] == 0 && m[2] == data::idx::TYPE_U8
}

pub(crate) fn run(a: PredictArgs) -> Result<()> {
    use mnist_mlp::predict;
    let threads = a.threads.pool()?;
    let loaded = mnist_mlp::checkpoint::load(&a.model)?;
    let identity = loaded.extras.data_identity();
    let mut model = loaded.model;
    let input = model.spec.input();
    let classes = model.spec.output_width();
    let side = (input as f64).sqrt().round() as usize;
    let names = class_names(a.mapping.as_deref(), classes)?;
    let label = |c: usize| {
        names[c]
            .as_deref()
            .map_or(String::new(), |n| format!(" {n}"))
    };
    if let Some(d) = &a.save_input {
        std::fs::create_dir_all(d)
            .with_context(|| format!("--save-input: cannot create the folder {}", d.display()))?;
    }
    let mut items: Vec<Input> = Vec::new();
    for p in &predict::expand_inputs(&a.inputs)? {
        if looks_like_idx(p) {
            let arr = data::idx::read_images(p)?;
            if let Some(w) = identity
                .as_ref()
                .and_then(|id| id.predict_mismatch(p, &arr.data))
            {
                eprintln!("{w}");
            }
            let per: usize = arr.dims[1..].iter().product();
            let frame = match arr.dims[1..] {
                [r, c] => (c as u32, r as u32),
                _ => (per as u32, 1),
            };
            if per != input {
                bail!(
                    "{}: images of {:?} have {per} pixels, the model {} expects {input}",
                    p.display(),
                    &arr.dims[1..],
                    a.model.display()
                );
            }
            for (i, img) in arr.data.chunks_exact(per).enumerate() {
                items.push(Input {
                    file: p.display().to_string(),
                    index: Some(i),
                    pixels: img.iter().map(|&v| v as f32 / 255.0).collect(),
                    frame,
                });
            }
        } else {
            if side * side != input {
                bail!(
                    "{}: the model's input width {input} is not a square picture; give IDX files of its shape instead",
                    a.model.display()
                );
            }
            let mut v = predict::load_picture(p, side as u32, a.invert, a.preprocess)?;
            if a.transpose {
                predict::transpose_square(&mut v, side);
            }
            if !predict::has_ink(&v) {
                eprintln!(
                    "warning: {}: no ink found (a blank or uniform picture): its class below is a guess",
                    p.display()
                );
            }
            items.push(Input {
                file: p.display().to_string(),
                index: None,
                pixels: v,
                frame: (side as u32, side as u32),
            });
        }
    }
    if let Some(dir) = &a.save_input {
        save_inputs(dir, &items)?;
    }
    let x = predict::stack(&items.iter().map(|i| &i.pixels[..]).collect::<Vec<_>>());
    let mut ws = mnist_mlp::nn::Workspace::<f32>::new(
        &model.spec,
        mnist_mlp::train::EVAL_CHUNK.min(x.nrows().max(1)),
        threads.blocks(),
    );
    let mut probs = ndarray::Array2::<f32>::zeros((x.nrows(), classes));
    threads.install(|| model.predict_into(&mut ws, x.view(), &mut probs));
    refuse_non_finite(&a.model, &model, &probs)?;
    for (
        Input {
            file, index: idx, ..
        },
        row,
    ) in items.iter().zip(probs.rows())
    {
        let p = row.as_slice().expect("contiguous");
        let class = mnist_mlp::nn::loss::argmax(p);
        if a.json {
            let mut o =
                serde_json::json!({"file": file, "index": idx, "class": class, "probabilities": p});
            if let Some(n) = &names[class] {
                o["name"] = n.as_str().into();
            }
            println!("{o}");
        } else {
            let mut order: Vec<usize> = (0..classes).collect();
            order.sort_by(|&i, &j| p[j].total_cmp(&p[i]));
            let top: Vec<String> = order
                .iter()
                .take(a.top.max(1))
                .map(|&c| format!("{c}{} {:.4}", label(c), p[c]))
                .collect();
            let name = match idx {
                Some(i) => format!("{file}[{i}]"),
                None => file.clone(),
            };
            println!("{name}: {class}{}  ({})", label(class), top.join(", "));
        }
    }
    Ok(())
}

/// One input of `predict`: a picture, or one image of an IDX file.
struct Input {
    /// The file it came from.
    file: String,
    /// Its index within an IDX file.
    index: Option<usize>,
    /// What the model sees, in [0, 1].
    pixels: Vec<f32>,
    /// Width and height of the frame.
    frame: (u32, u32),
}

/// `predict --save-input`: each input as the model saw it, one PNG each
/// (names made unique with `-2`, `-3`, ... when two inputs share a stem).
fn save_inputs(dir: &Path, items: &[Input]) -> Result<()> {
    let mut used = std::collections::HashSet::new();
    for Input {
        file,
        index: idx,
        pixels: v,
        frame: (w, h),
    } in items
    {
        let stem = Path::new(file)
            .file_name()
            .map_or("input".into(), |n| n.to_string_lossy().into_owned());
        let bare = stem.strip_suffix(".gz").unwrap_or(&stem);
        let stem = bare.rsplit_once('.').map_or(bare, |(s, _)| s).to_string();
        let base = match idx {
            Some(i) => format!("{stem}-{i}"),
            None => stem,
        };
        let mut name = format!("{base}.png");
        let mut k = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}-{k}.png");
            k += 1;
        }
        let png = mnist_mlp::predict::gray_png(v, *w, *h)?;
        mnist_mlp::checkpoint::write_atomic(&dir.join(&name), &png)?;
    }
    Ok(())
}
