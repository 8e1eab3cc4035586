//! Models in the decision path: `[[models]]` in `argus.toml` names a model file (Argus, XGBoost JSON or
//! LightGBM text) and the event type it scores. Its inputs are matched to configured features by name
//! when the configuration loads; on each event of that type the engine scores it on the feature vector
//! just computed, rules read the score as `model.<name>`, and the decision carries the score and the
//! features that pushed it up most.
//!
//! A missing input (a null feature) is NaN to the model: each split sends it its learned default way.

use crate::dataset::model_input;
use argus_event::{Schema, TypeId, Value};
use argus_features::{FeatureSet, Out};
use argus_model::{Ensemble, Scorer};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One `[[models]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Rules read `model.<name>`.
    pub name: String,
    /// The event type (checkpoint) it scores.
    pub event: String,
    /// The model file, relative to the configuration file that declares it.
    pub path: String,
    /// Reasons kept in each decision (the top contributing features).
    #[serde(default = "three")]
    pub reasons: usize,
    /// The model's inputs, by feature name: what `argus train --model <name>` trains on, and what the
    /// model file must have been trained on (checked when the configuration loads). Default: the
    /// file's own inputs (and, for training, every number and boolean feature of the type).
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
}

/// A `[[models]]` entry as declared, with its file's path resolved (kept even when the configuration
/// was loaded without reading model files, for training).
#[derive(Debug, Clone)]
pub struct DeclaredModel {
    pub config: ModelConfig,
    pub path: PathBuf,
}

/// Checks a declaration without its file: the name, the event type and the declared inputs (known
/// features that are numbers computed on that type). Returns the event type.
pub fn check_declaration(
    c: &ModelConfig,
    schema: &Schema,
    features: &FeatureSet,
) -> Result<TypeId, Vec<String>> {
    let mut errors = Vec::new();
    let at = format!("models.{}", c.name);
    if c.name.is_empty()
        || !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_')
        || c.name.starts_with(|ch: char| ch.is_ascii_digit())
    {
        errors.push(format!(
            "{at}: a model name is lower-case letters, digits and `_`, not starting with a digit"
        ));
    }
    if c.reasons > 32 {
        errors.push(format!("{at}: reasons: at most 32"));
    }
    let Some(ty) = schema.type_id(&c.event) else {
        errors.push(format!("{at}: event: unknown event type `{}`", c.event));
        return Err(errors);
    };
    if let Some(inputs) = &c.inputs {
        if inputs.is_empty() {
            errors.push(format!("{at}: inputs: name at least one feature"));
        }
        let readable = features.readable(ty as usize);
        for (k, name) in inputs.iter().enumerate() {
            if inputs[..k].contains(name) {
                errors.push(format!("{at}: inputs: `{name}` is listed twice"));
                continue;
            }
            check_input(&at, name, &c.event, &readable, features, &mut errors);
        }
    }
    if errors.is_empty() {
        Ok(ty)
    } else {
        Err(errors)
    }
}

/// An input must be a configured feature that is a number (or boolean) computed on the type.
fn check_input(
    at: &str,
    name: &str,
    event: &str,
    readable: &[usize],
    features: &FeatureSet,
    errors: &mut Vec<String>,
) -> Option<usize> {
    match features.index_of(name) {
        Some(i) if readable.contains(&i) && features.features[i].out != Out::Str => Some(i),
        Some(_) => {
            errors.push(format!(
                "{at}: input `{name}` is not a number computed on `{event}`"
            ));
            None
        }
        None => {
            errors.push(format!(
                "{at}: input `{name}` is not a configured feature{}",
                argus_suggest::closest(name, features.names())
                    .map_or(String::new(), |s| format!(" (did you mean `{s}`?)"))
            ));
            None
        }
    }
}

fn three() -> usize {
    3
}

/// A model ready to score.
#[derive(Debug)]
pub struct LoadedModel {
    pub name: String,
    pub version: String,
    pub event_type: TypeId,
    /// Feature index of each model input.
    pub inputs: Vec<usize>,
    pub ensemble: Ensemble,
    pub scorer: Scorer,
    pub reasons: usize,
    pub path: PathBuf,
    /// XXH3-64 of the file, to tell a changed model.
    pub digest: u64,
}

/// Loads and checks one model against the schema and features; every problem as a message.
pub fn load(
    c: &ModelConfig,
    base: &Path,
    schema: &Schema,
    features: &FeatureSet,
) -> Result<LoadedModel, Vec<String>> {
    let at = format!("models.{}", c.name);
    let ty = check_declaration(c, schema, features)?;
    let mut errors = Vec::new();
    let path = base.join(&c.path);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("{at}: path: cannot read {}: {e}", path.display()));
            return Err(errors);
        }
    };
    let (ensemble, file) = match argus_model::load_model(&text) {
        Ok(m) => m,
        Err(e) => {
            errors.push(format!("{at}: {}: {e}", path.display()));
            return Err(errors);
        }
    };
    let readable = features.readable(ty as usize);
    let mut inputs = Vec::new();
    for name in &ensemble.features {
        if let Some(i) = check_input(&at, name, &c.event, &readable, features, &mut errors) {
            inputs.push(i);
        }
    }
    if let Some(declared) = &c.inputs {
        let mut file: Vec<&String> = ensemble.features.iter().collect();
        let mut want: Vec<&String> = declared.iter().collect();
        file.sort();
        want.sort();
        if file != want {
            let missing: Vec<&str> = want
                .iter()
                .filter(|n| !file.contains(n))
                .map(|n| n.as_str())
                .collect();
            let extra: Vec<&str> = file
                .iter()
                .filter(|n| !want.contains(n))
                .map(|n| n.as_str())
                .collect();
            errors.push(format!(
                "{at}: {} was trained on other inputs than `inputs` declares (declared but not in the file: [{}]; in the file but not declared: [{}]); retrain it with `argus train --model {}`",
                path.display(),
                missing.join(", "),
                extra.join(", "),
                c.name
            ));
        }
    }
    let scorer = Scorer::new(&ensemble).map_err(|e| vec![format!("{at}: {e}")]);
    if !errors.is_empty() {
        return Err(errors);
    }
    let version = file.map_or_else(
        || format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes())),
        |f| f.version,
    );
    Ok(LoadedModel {
        name: c.name.clone(),
        version,
        event_type: ty,
        inputs,
        scorer: scorer?,
        ensemble,
        reasons: c.reasons,
        path,
        digest: xxhash_rust::xxh3::xxh3_64(text.as_bytes()),
    })
}

impl LoadedModel {
    /// The model's input row from a feature vector.
    pub fn row(&self, features: &[Value], x: &mut Vec<f64>) {
        x.clear();
        x.extend(
            self.inputs
                .iter()
                .map(|&i| features.get(i).map_or(f64::NAN, model_input)),
        );
    }

    /// Score and reasons for one event.
    pub fn output(&self, features: &[Value], x: &mut Vec<f64>) -> argus_policy::ModelOutput {
        self.row(features, x);
        let score = self.scorer.score(x);
        let reasons = if self.reasons == 0 {
            Vec::new()
        } else {
            self.ensemble
                .top_reasons(x, self.reasons)
                .into_iter()
                .map(|c| argus_policy::Reason {
                    feature: c.feature,
                    value: c.value,
                    contribution: c.contribution,
                })
                .collect()
        };
        argus_policy::ModelOutput {
            name: self.name.clone(),
            version: self.version.clone(),
            score,
            reasons,
        }
    }
}
