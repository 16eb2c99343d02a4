//! The network: activations, losses, dense layers, initialization, the
//! layer-list syntax, padded row strides, and the MLP with its fused training step.

pub mod activation;
pub mod dense;
pub mod init;
pub mod layout;
pub mod loss;
pub mod mlp;
pub mod spec;

pub use activation::Activation;
pub use init::Init;
pub use loss::{Loss, OutputAct};
pub use mlp::{Batch, Mlp, Rows, SplitPolicy, Stats, Update, Workspace};
pub use spec::NetSpec;
