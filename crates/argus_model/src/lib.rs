//! `argus_model`: gradient-boosted tree models for Argus — a histogram trainer (`train`), one flat
//! scorer with path attribution for reason codes (`ensemble`), loaders for XGBoost JSON and LightGBM
//! text models, the model file with its provenance (`file`), an unsupervised anomaly score (`hbos`),
//! and evaluation metrics.

pub mod ensemble;
pub mod file;
pub mod hbos;
pub mod lightgbm;
pub mod metrics;
pub mod scorer;
pub mod train;
pub mod xgboost;

pub use ensemble::{Contribution, Ensemble};
pub use file::{load_model, ModelFile, TrainingInfo};
pub use scorer::Scorer;
pub use train::{train, Params, Table, TrainLog};
pub use xgboost::LoadError;
