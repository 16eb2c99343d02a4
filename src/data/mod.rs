//! The data path: IDX files -> [`Dataset`] -> mini-batches.

pub mod augment;
pub mod dataset;
pub mod fetch;
pub mod identity;
pub mod idx;

pub use dataset::{
    load_dir, resolve_data_dir, DataError, Dataset, LoadOptions, Splits, Validation,
};
pub use identity::DataIdentity;
