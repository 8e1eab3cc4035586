//! `argus_graph`: detectors over the entity graph, one file each, over plain ids and weights (no Argus
//! dependency; the engine's `[graph]` maintains the graph from events and calls them):
//! - `fraudar`: dense-block peeling on bipartite graphs with the FRAUDAR family of weightings (plain
//!   density, log- and square-root-weighted column suspiciousness against camouflage), several blocks
//!   by deflation;
//! - `incremental`: exact incremental peeling (Spade): the peeling order kept under insertions;
//! - `tensor`: dense blocks in n-mode tensors (M-Zoom), e.g. time as a third mode;
//! - `burst`: the streaming edge-burst score in constant memory (MIDAS-R);
//! - `cluster`: shared-attribute clustering of accounts with hub values capped;
//! - `propagation`: semi-supervised signals from arriving labels (fraud neighbours at one and two
//!   hops, distrust from known-good accounts, a propagated label score), with bounded work per event.

pub mod bipartite;
pub mod burst;
pub mod cluster;
pub mod fraudar;
pub mod incremental;
pub mod propagation;
pub mod tensor;

pub use bipartite::Bipartite;
pub use burst::Burst;
pub use cluster::{clusters, Cluster};
pub use fraudar::{peel, peel_many, Block, Weighting};
pub use incremental::{DenseSet, IncrementalPeel};
pub use propagation::{Propagation, PropagationConfig, Signals};
pub use tensor::{peel_tensor, TensorBlock};
