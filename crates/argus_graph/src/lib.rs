//! `argus_graph`: detectors over the entity graph. So far: dense-block peeling on bipartite graphs
//! (`fraudar`), the FRAUDAR family of weightings (plain density, log-weighted and square-root-weighted
//! column suspiciousness against camouflage), several blocks by deflation; and a streaming edge-burst
//! score in constant memory (`burst`, MIDAS-R); shared-attribute clustering of accounts (`cluster`).

pub mod bipartite;
pub mod burst;
pub mod cluster;
pub mod fraudar;
pub mod incremental;
pub mod tensor;

pub use bipartite::Bipartite;
pub use burst::Burst;
pub use cluster::{clusters, Cluster};
pub use fraudar::{peel, peel_many, Block, Weighting};
pub use incremental::{DenseSet, IncrementalPeel};
pub use tensor::{peel_tensor, TensorBlock};
