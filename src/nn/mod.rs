//! The network: activations, losses, the dense layer, dropout, initialization, the
//! layer-list syntax, padded row strides, the workspace, the training step
//! and the MLP that ties them together.

pub mod activation;
pub mod dense;
pub mod dropout;
pub mod init;
pub mod layout;
pub mod loss;
pub mod mlp;
pub mod spec;
pub mod step;
pub mod workspace;

pub use activation::Activation;
pub use init::Init;
pub use loss::{Loss, OutputAct};
pub use mlp::{Mlp, Regularizers, Update};
pub use spec::{LayerSummary, NetSpec};
pub use workspace::{Batch, Rows, Stats, Workspace};
