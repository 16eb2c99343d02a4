//! Checkpoints in the safetensors format, readable by any safetensors
//! library: `layers.{i}.weight` `[fan_in, fan_out]` (so `y = x @ W + b`) and
//! `layers.{i}.bias` `[fan_out]`, f32 little-endian, plus string metadata:
//! `format`, `version`, `layers` (the layer list), `loss`, `weight_layout`
//! and `config` (the training configuration as JSON).
//!
//! A checkpoint written during training also holds what `train --resume`
//! needs to continue bit for bit: the optimizer's moments as tensors
//! `optimizer.layers.{i}.weight.{slot}` (slots named as PyTorch names them:
//! `momentum_buffer`, `square_avg`, `exp_avg`, `exp_avg_sq`), early
//! stopping's best weights as `best.layers.{i}.weight`, and the `run_state`
//! metadata entry (epochs done, step count, RNG position, history) as JSON.
//! The `data` entry names the data the model was trained on
//! ([`crate::data::DataIdentity`]), which `eval` compares with its own.
//! Readers that only want the model take the `layers.*` tensors.
//!
//! Files are written atomically (temporary file in the same directory, then
//! rename), and a model with a non-finite parameter is never written.
//!
//! safetensors has no checksum, so the `sha256` metadata entry holds one
//! per tensor (a JSON object: name -> hex SHA-256 of the tensor's bytes);
//! loading verifies every tensor against it and refuses a file with a
//! flipped byte, naming the tensor. Files without the entry (written by
//! earlier versions, or by other programs) load unverified.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorInfo, TensorView};
use thiserror::Error;

use crate::data::fetch::sha256_hex;
use crate::nn::dense::Dense;
use crate::nn::{Loss, Mlp, NetSpec};

/// The `format` metadata value of this program's checkpoints.
pub const FORMAT: &str = "mnist-mlp";
/// The `version` metadata value (the layout of tensors and metadata).
pub const VERSION: &str = "1";

/// Why a checkpoint cannot be read or written (each names the file).
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// The file cannot be read.
    #[error("{}: cannot read: {err}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// The file cannot be written.
    #[error("{}: cannot write: {err}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// Not a safetensors file (or one this program cannot encode).
    #[error("{}: not a valid safetensors file: {msg}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A safetensors file whose tensors or metadata are not a model of this program.
    #[error("{}: {msg}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A model with a NaN or infinite parameter, never written.
    #[error("refusing to save a model with non-finite parameters ({tensor}) to {}", path.display())]
    NonFinite {
        /// The file it would have been.
        path: PathBuf,
        /// The tensor holding the value.
        tensor: String,
    },
    /// The model or its extras cannot be encoded (a malformed extra tensor).
    #[error("{0}")]
    Encode(String),
}

crate::error::message_error!(
    /// A checkpoint's stored training state that does not fit the model or
    /// the run (a missing tensor, a wrong shape, a run that cannot go on).
    StateError
);

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A tensor stored beside the model (optimizer state, best weights).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Its name (`optimizer.layers.0.weight.exp_avg`).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// Everything besides the model that a checkpoint can carry.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The run state (JSON, stored under the `run_state` metadata key).
    pub run_state: Option<serde_json::Value>,
    /// Tensors not named `layers.*`.
    pub tensors: Vec<NamedTensor>,
    /// The training data's identity (JSON, under the `data` metadata key;
    /// [`crate::data::DataIdentity`]).
    pub data: Option<serde_json::Value>,
}

impl Extras {
    /// The training data's identity, when recorded and readable (it is
    /// informational: an unreadable entry is as good as none).
    pub fn data_identity(&self) -> Option<crate::data::DataIdentity> {
        serde_json::from_value(self.data.clone()?).ok()
    }
}

/// Serializes `model` (and `config`, any JSON) to safetensors bytes.
pub fn to_bytes(model: &Mlp<f32>, config: &serde_json::Value) -> Result<Vec<u8>, CheckpointError> {
    to_bytes_with(model, config, &Extras::default())
}

/// Serializes `model`, `config` and `extras` to safetensors bytes.
pub fn to_bytes_with(
    model: &Mlp<f32>,
    config: &serde_json::Value,
    extras: &Extras,
) -> Result<Vec<u8>, CheckpointError> {
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, l) in model.layers.iter().enumerate() {
        let w = l.w.as_standard_layout();
        bufs.push((
            format!("layers.{i}.weight"),
            vec![l.fan_in(), l.fan_out()],
            f32_bytes(w.as_slice().expect("standard")),
        ));
        bufs.push((
            format!("layers.{i}.bias"),
            vec![l.fan_out()],
            f32_bytes(l.b.as_slice().expect("contiguous")),
        ));
    }
    for t in &extras.tensors {
        if t.name.starts_with("layers.") || t.shape.iter().product::<usize>() != t.data.len() {
            return Err(CheckpointError::Encode(format!(
                "bad extra tensor `{}`",
                t.name
            )));
        }
        bufs.push((t.name.clone(), t.shape.clone(), f32_bytes(&t.data)));
    }
    let views: Vec<(String, TensorView)> = bufs
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("sizes match"),
            )
        })
        .collect();
    let mut meta: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("version", VERSION.to_string()),
        ("layers", model.spec.to_string()),
        ("loss", model.loss.name().to_string()),
        (
            "weight_layout",
            "[fan_in, fan_out]: y = x @ W + b".to_string(),
        ),
        ("config", config.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(st) = &extras.run_state {
        meta.insert("run_state".into(), st.to_string());
    }
    if let Some(d) = &extras.data {
        meta.insert("data".into(), d.to_string());
    }
    let sums: serde_json::Map<String, serde_json::Value> = bufs
        .iter()
        .map(|(n, _, b)| (n.clone(), sha256_hex(b).into()))
        .collect();
    meta.insert("sha256".into(), serde_json::Value::Object(sums).to_string());
    safetensors::serialize(views, Some(meta)).map_err(|e| CheckpointError::Encode(e.to_string()))
}

/// Where [`write_atomic`] puts its temporary file for `path`: the directory
/// and the name prefix (the name ends in [`TEMP_SUFFIX`]).
fn temp_location(path: &Path) -> (&Path, String) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (dir, format!(".{name}."))
}

const TEMP_SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` atomically: a temporary file beside the
/// target, then a rename over it. A symlink is written through (the file
/// it names is replaced, the link stays); anything but a regular file at
/// the target (a device, FIFO, socket or folder) is refused, never
/// replaced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let err = |err| CheckpointError::Write {
        path: path.to_path_buf(),
        err,
    };
    let target = crate::files::target(path);
    let existing = crate::files::existing_output(&target)
        .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    let path = target.as_path();
    let (dir, prefix) = temp_location(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(err)?;
    // tempfile creates 0600 files: keep the mode of the file replaced, or
    // give a new one the usual 0644.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = existing.map_or(0o644, |m| m.permissions().mode() & 0o7777);
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = existing;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes temporary files that [`write_atomic`] left for `path` when a
/// process was killed mid-write (`.NAME.*.tmp` beside it); returns how
/// many. Call it before a run starts writing `path`, not while one does.
pub fn remove_stale_temps(path: &Path) -> usize {
    // Beside the file written, as `write_atomic` puts them (through links).
    let target = crate::files::target(path);
    if target.file_name().is_none() {
        return 0;
    }
    let (dir, prefix) = temp_location(&target);
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n.ends_with(TEMP_SUFFIX) && e.path().is_file()
        })
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Saves `model` to `path` (atomically; refuses non-finite parameters).
pub fn save(
    path: &Path,
    model: &Mlp<f32>,
    config: &serde_json::Value,
) -> Result<(), CheckpointError> {
    save_with(path, model, config, &Extras::default())
}

/// Saves `model` and `extras` to `path` (atomically; refuses non-finite
/// values in any tensor).
pub fn save_with(
    path: &Path,
    model: &Mlp<f32>,
    config: &serde_json::Value,
    extras: &Extras,
) -> Result<(), CheckpointError> {
    if let Some(t) = extras
        .tensors
        .iter()
        .find(|t| !t.data.iter().all(|v| v.is_finite()))
    {
        return Err(CheckpointError::NonFinite {
            path: path.to_path_buf(),
            tensor: t.name.clone(),
        });
    }
    for (i, l) in model.layers.iter().enumerate() {
        if !l.w.iter().all(|v| v.is_finite()) || !l.b.iter().all(|v| v.is_finite()) {
            return Err(CheckpointError::NonFinite {
                path: path.to_path_buf(),
                tensor: format!("layers.{i}"),
            });
        }
    }
    let bytes = to_bytes_with(model, config, extras).map_err(|e| CheckpointError::Format {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// A loaded checkpoint: the model, the saved configuration and the extras.
#[derive(Debug)]
pub struct Loaded {
    /// The model.
    pub model: Mlp<f32>,
    /// The configuration it was trained with (JSON; `null` when absent).
    pub config: serde_json::Value,
    /// The run state, extra tensors and data identity.
    pub extras: Extras,
}

impl Loaded {
    /// The extra tensor `name`, checked to have `shape`.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<&[f32], StateError> {
        let t = self
            .extras
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("missing tensor `{name}`"))?;
        if t.shape != shape {
            return Err(StateError(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.shape
            )));
        }
        Ok(&t.data)
    }
}

/// Loads and validates a checkpoint.
///
/// Only a regular file is opened, and its size must be what its header
/// declares (8 bytes of header length, the header, then exactly the bytes
/// its tensors end at) before the body is read: a huge file with a bogus
/// header is refused after reading at most the header.
pub fn load(path: &Path) -> Result<Loaded, CheckpointError> {
    use std::io::Read;
    let mut h = read_header(path)?;
    let mut bytes = Vec::with_capacity(h.size as usize);
    bytes.extend_from_slice(&(h.len as u64).to_le_bytes());
    bytes.extend_from_slice(&h.header);
    h.file
        .read_to_end(&mut bytes)
        .map_err(|err| CheckpointError::Read {
            path: path.to_path_buf(),
            err,
        })?;
    from_bytes(path, &bytes)
}

/// A checkpoint file opened and its header read (nothing more).
pub struct Header {
    /// The file, positioned after the header.
    pub file: std::fs::File,
    /// The file's size in bytes.
    pub size: u64,
    /// The header's length.
    pub len: usize,
    /// The header's bytes.
    pub header: Vec<u8>,
    /// The header as JSON.
    pub json: serde_json::Value,
}

/// Opens a checkpoint (a regular file only) and reads its header, checked
/// to fit in [`MAX_HEADER_BYTES`] and to declare data that ends where the
/// file ends; the body is not read.
pub fn read_header(path: &Path) -> Result<Header, CheckpointError> {
    use std::io::Read;
    let read_err = |err| CheckpointError::Read {
        path: path.to_path_buf(),
        err,
    };
    let format = |msg: String| CheckpointError::Format {
        path: path.to_path_buf(),
        msg,
    };
    let size = crate::files::regular(path).map_err(read_err)?;
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| format(format!("{size} bytes: too short for a header")))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || 8 + n > size {
        return Err(format(format!(
            "the header declares {n} bytes, but the file has {size} (at most {MAX_HEADER_BYTES} for a header)"
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(read_err)?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| format(format!("the header is not JSON: {e}")))?;
    // The data must end where the file ends.
    let end = json
        .as_object()
        .ok_or_else(|| format("the header is not a JSON object".into()))?
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, v)| v["data_offsets"][1].as_u64())
        .max()
        .unwrap_or(0);
    if 8 + n + end != size {
        return Err(format(format!(
            "the header's tensors end at byte {} but the file has {size} bytes",
            8 + n + end
        )));
    }
    Ok(Header {
        file,
        size,
        len: n as usize,
        header,
        json,
    })
}

/// The largest checkpoint header read (safetensors' own limit).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Parses checkpoint bytes (`path` only names the file in errors).
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Loaded, CheckpointError> {
    let content = |msg: String| CheckpointError::Content {
        path: path.to_path_buf(),
        msg,
    };
    // The header is parsed once; `read_metadata` has checked that every
    // tensor's byte range lies inside the data that follows it.
    let (header_len, md) =
        SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::Format {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
    // The format: an 8-byte little-endian header length, the header, the data.
    let data = &bytes[std::mem::size_of::<u64>() + header_len..];
    let tensor = |name: &str| {
        md.info(name)
            .map(|t| (t, &data[t.data_offsets.0..t.data_offsets.1]))
    };
    let meta = md.metadata().clone().unwrap_or_default();
    let get = |k: &str| {
        meta.get(k).cloned().ok_or_else(|| {
            content(format!(
                "metadata has no `{k}` (not a {FORMAT} checkpoint?)"
            ))
        })
    };
    if get("format")? != FORMAT {
        return Err(content(format!("metadata format is not `{FORMAT}`")));
    }
    if let Some(sums) = meta.get("sha256") {
        let sums: HashMap<String, String> = serde_json::from_str(sums).map_err(|e| {
            content(format!(
                "metadata `sha256` is not an object of checksums: {e}"
            ))
        })?;
        let mut names: Vec<String> = md.tensors().keys().cloned().collect();
        names.sort();
        for name in &names {
            let (_, raw) = tensor(name).expect("listed");
            match sums.get(name) {
                Some(want) if *want == sha256_hex(raw) => {}
                Some(_) => {
                    return Err(content(format!(
                        "tensor `{name}`: its bytes do not match the SHA-256 recorded when it was saved (the file is corrupt: a changed byte)"
                    )))
                }
                None => {
                    return Err(content(format!(
                        "tensor `{name}` has no checksum in the metadata (the file was altered)"
                    )))
                }
            }
        }
        if let Some(gone) = sums.keys().find(|n| !names.contains(n)) {
            return Err(content(format!(
                "tensor `{gone}` has a checksum but is missing (the file was altered)"
            )));
        }
    }
    let spec = NetSpec::parse(&get("layers")?)
        .map_err(|e| content(format!("bad layer list in metadata: {e}")))?;
    let loss =
        Loss::parse(&get("loss")?).ok_or_else(|| content("unknown loss in metadata".into()))?;
    let config: serde_json::Value = meta
        .get("config")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(serde_json::Value::Null);
    spec.check_loss(loss).map_err(|e| content(e.into()))?;
    let run_state = match meta.get("run_state") {
        Some(s) => Some(
            serde_json::from_str(s)
                .map_err(|e| content(format!("metadata `run_state` is not JSON: {e}")))?,
        ),
        None => None,
    };
    let decode = |name: &str, t: &TensorInfo, raw: &[u8]| -> Result<Vec<f32>, CheckpointError> {
        if t.dtype != Dtype::F32 {
            return Err(content(format!(
                "tensor `{name}` is {:?}, expected F32",
                t.dtype
            )));
        }
        let v: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(content(format!(
                "tensor `{name}` holds a non-finite value ({}) at index {i}",
                v[i]
            )));
        }
        Ok(v)
    };
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, CheckpointError> {
        let (t, raw) = tensor(name).ok_or_else(|| {
            content(format!(
                "missing tensor `{name}` (expected by layers {spec})"
            ))
        })?;
        if t.shape != shape {
            return Err(content(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?} for layers {spec}",
                t.shape
            )));
        }
        decode(name, t, raw)
    };
    let mut layers = Vec::with_capacity(spec.layers());
    for (i, w) in spec.widths.windows(2).enumerate() {
        let (fi, fo) = (w[0], w[1]);
        let mut l = Dense::new(
            Array2::from_shape_vec((fi, fo), read(&format!("layers.{i}.weight"), &[fi, fo])?)
                .expect("shape checked"),
        );
        l.b = Array1::from(read(&format!("layers.{i}.bias"), &[fo])?);
        layers.push(l);
    }
    let known = 2 * layers.len();
    let all = md.tensors();
    let model_tensors = all.keys().filter(|n| n.starts_with("layers.")).count();
    if model_tensors != known {
        return Err(content(format!(
            "holds {model_tensors} layer tensors, but layers {spec} has {known}"
        )));
    }
    let mut tensors = Vec::new();
    let mut names: Vec<&str> = all
        .keys()
        .map(|n| n.as_str())
        .filter(|n| !n.starts_with("layers."))
        .collect();
    names.sort();
    for name in names {
        let (t, raw) = tensor(name).expect("listed");
        tensors.push(NamedTensor {
            name: name.to_string(),
            shape: t.shape.clone(),
            data: decode(name, t, raw)?,
        });
    }
    Ok(Loaded {
        model: Mlp {
            spec,
            loss,
            layers,
            reg: Default::default(),
            grads_zero: true,
        },
        config,
        extras: Extras {
            run_state,
            tensors,
            // Informational: an unreadable entry is as good as none.
            data: meta.get("data").and_then(|d| serde_json::from_str(d).ok()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Init;

    #[test]
    fn a_huge_file_is_refused_by_its_header_without_reading_it() {
        // (#23) A 4 GiB file (sparse) whose header declares no data: refused
        // after 10 bytes, not read whole first.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.safetensors");
        let f = std::fs::File::create(&p).unwrap();
        std::io::Write::write_all(&mut &f, &[2, 0, 0, 0, 0, 0, 0, 0, b'{', b'}']).unwrap();
        f.set_len(4 << 30).unwrap();
        let t = std::time::Instant::now();
        let e = load(&p).unwrap_err().to_string();
        assert!(
            e.contains("tensors end at byte 10 but the file has 4294967296 bytes"),
            "{e}"
        );
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        // A header length beyond the file.
        std::fs::write(&p, [0xff, 0xff, 0, 0, 0, 0, 0, 0, b'{']).unwrap();
        assert!(load(&p)
            .unwrap_err()
            .to_string()
            .contains("the header declares 65535 bytes"));
        // A real checkpoint still loads.
        let spec = NetSpec::parse("6,relu,5,softmax,3").unwrap();
        let m = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 3).unwrap();
        save(&p, &m, &serde_json::json!({})).unwrap();
        load(&p).unwrap();
    }

    #[test]
    fn a_flipped_byte_in_any_tensor_is_refused_by_name() {
        // (#23) safetensors has no checksum; the `sha256` metadata does.
        let spec = NetSpec::parse("6,relu,5,softmax,3").unwrap();
        let m = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 3).unwrap();
        let extras = Extras {
            tensors: vec![NamedTensor {
                name: "optimizer.layers.0.weight.exp_avg".into(),
                shape: vec![6, 5],
                data: vec![0.25; 30],
            }],
            ..Extras::default()
        };
        let bytes = to_bytes_with(&m, &serde_json::json!({}), &extras).unwrap();
        let p = Path::new("m.safetensors");
        from_bytes(p, &bytes).unwrap();
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let (md_len, md) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(header, 8 + md_len);
        for (name, info) in md.tensors() {
            // Flip the lowest bit of the tensor's first byte: a value that
            // stays finite, which nothing else would catch.
            let mut bad = bytes.clone();
            bad[header + info.data_offsets.0] ^= 1;
            let e = from_bytes(p, &bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "tensor `{name}`: its bytes do not match the SHA-256"
                )),
                "{name}: {e}"
            );
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let spec = NetSpec::parse("6,relu,5,softmax,3").unwrap();
        let m = Mlp::<f32>::new(spec, Loss::CrossEntropy, Init::He, 3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        save(&p, &m, &serde_json::json!({"lr": 0.1})).unwrap();
        let l = load(&p).unwrap();
        assert_eq!(l.model.layers[0].w, m.layers[0].w);
        assert_eq!(l.model.layers[1].b, m.layers[1].b);
        assert_eq!(l.config["lr"], 0.1);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644, "readable like any other file");
        }

        let bytes = std::fs::read(&p).unwrap();
        let e = from_bytes(&p, &bytes[..bytes.len() - 3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid safetensors file"), "{e}");

        let mut bad = m.clone();
        bad.layers[1].w[[0, 0]] = f32::NAN;
        let e = save(&p, &bad, &serde_json::Value::Null)
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-finite"), "{e}");
        assert_eq!(
            load(&p).unwrap().model.layers[1].w,
            m.layers[1].w,
            "the old file is intact"
        );

        // NaN inside a file is refused on load.
        let raw = to_bytes(&bad, &serde_json::Value::Null).unwrap();
        let e = from_bytes(&p, &raw).unwrap_err().to_string();
        assert!(e.contains("non-finite value (NaN)"), "{e}");
    }
}
