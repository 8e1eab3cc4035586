//! The model file Argus writes (`argus train`): the ensemble with its feature list, training window,
//! label and delay, parameters, metrics and a hash of the training data. `load_model` also reads
//! XGBoost JSON and LightGBM text, recognised by content.

use crate::ensemble::Ensemble;
use crate::train::Params;
use crate::xgboost::LoadError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FORMAT: &str = "argus-gbdt/1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainingInfo {
    pub checkpoint: String,
    pub label: String,
    pub label_delay: String,
    /// Training window `[start, end)` (RFC 3339) and the time from which the model is meant to run.
    pub window_start: String,
    pub window_end: String,
    pub deploy_from: String,
    pub rows: u64,
    pub positives: u64,
    pub validation_rows: u64,
    /// XXH3-64 of the training table (features and labels, row order), hex.
    pub data_hash: String,
    pub params: Params,
    pub best_iteration: usize,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: String,
    pub name: String,
    pub version: String,
    pub training: TrainingInfo,
    /// Validation metrics (auc, average_precision).
    pub metrics: BTreeMap<String, f64>,
    pub model: Ensemble,
}

impl ModelFile {
    /// The file's text; fails only on a non-finite number (which `train` never produces).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

/// Which format a model file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Argus,
    XgboostJson,
    LightgbmText,
}

pub fn detect(text: &str) -> Option<Format> {
    let t = text.trim_start();
    if t.starts_with('{') {
        if t.contains("\"learner\"") {
            Some(Format::XgboostJson)
        } else {
            Some(Format::Argus)
        }
    } else if t.starts_with("tree") || t.contains("\nTree=") {
        Some(Format::LightgbmText)
    } else {
        None
    }
}

/// Reads any supported model; Argus files keep their provenance.
pub fn load_model(text: &str) -> Result<(Ensemble, Option<ModelFile>), LoadError> {
    match detect(text) {
        Some(Format::Argus) => {
            let f: ModelFile = serde_json::from_str(text)?;
            if f.format != FORMAT {
                return Err(LoadError::Unsupported(format!(
                    "model format `{}` (this Argus reads {FORMAT})",
                    f.format
                )));
            }
            f.model.validate().map_err(LoadError::Invalid)?;
            Ok((f.model.clone(), Some(f)))
        }
        Some(Format::XgboostJson) => Ok((crate::xgboost::load(text)?, None)),
        Some(Format::LightgbmText) => Ok((crate::lightgbm::load(text)?, None)),
        None => Err(LoadError::Unsupported(
            "not an Argus, XGBoost JSON or LightGBM text model".into(),
        )),
    }
}

/// XXH3-64 of a table's values and labels, as hex.
pub fn data_hash(t: &crate::train::Table) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for f in &t.features {
        h.update(f.as_bytes());
        h.update(&[0]);
    }
    for x in &t.x {
        h.update(&x.to_bits().to_le_bytes());
    }
    for &y in &t.y {
        h.update(&[u8::from(y)]);
    }
    format!("{:016x}", h.digest())
}
