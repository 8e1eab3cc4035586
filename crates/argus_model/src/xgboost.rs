//! XGBoost's JSON model format (`Booster.save_model("model.json")`), gbtree with numerical splits.
//! XGBoost sends `x < threshold` left, comparing in single precision, and NaN the node's default way.

use crate::ensemble::{Compare, Ensemble, Link, Missing, Node, LEAF};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not an XGBoost JSON model: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Unsupported(String),
    #[error("invalid model: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
struct Root {
    learner: Learner,
}

#[derive(Deserialize)]
struct Learner {
    #[serde(default)]
    feature_names: Vec<String>,
    gradient_booster: Booster,
    learner_model_param: ModelParam,
    objective: Objective,
}

#[derive(Deserialize)]
struct ModelParam {
    base_score: String,
    #[serde(default)]
    num_class: Option<String>,
    num_feature: String,
}

#[derive(Deserialize)]
struct Objective {
    name: String,
}

#[derive(Deserialize)]
struct Booster {
    name: String,
    model: Option<GbTree>,
}

#[derive(Deserialize)]
struct GbTree {
    trees: Vec<Tree>,
}

#[derive(Deserialize)]
struct Tree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Vec<f64>,
    default_left: Vec<serde_json::Value>,
    #[serde(default)]
    sum_hessian: Vec<f64>,
    #[serde(default)]
    split_type: Vec<i64>,
}

/// Parses `"5E-1"` and XGBoost 3's `"[5E-1]"`.
fn number(s: &str) -> Option<f64> {
    s.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim()
        .parse()
        .ok()
}

pub fn load(text: &str) -> Result<Ensemble, LoadError> {
    let root: Root = serde_json::from_str(text)?;
    let l = root.learner;
    if l.gradient_booster.name != "gbtree" {
        return Err(LoadError::Unsupported(format!(
            "booster `{}` (only gbtree)",
            l.gradient_booster.name
        )));
    }
    if l.learner_model_param
        .num_class
        .as_deref()
        .and_then(number)
        .unwrap_or(0.0)
        > 1.0
    {
        return Err(LoadError::Unsupported("multi-class models".into()));
    }
    let base_score = number(&l.learner_model_param.base_score).ok_or_else(|| {
        LoadError::Invalid(format!("base_score `{}`", l.learner_model_param.base_score))
    })?;
    let n_features = number(&l.learner_model_param.num_feature).unwrap_or(0.0) as usize;
    let (base, link) = match l.objective.name.as_str() {
        "binary:logistic" | "reg:logistic" => {
            if !(base_score > 0.0 && base_score < 1.0) {
                return Err(LoadError::Invalid(format!(
                    "base_score {base_score} is not a probability"
                )));
            }
            (
                (base_score / (1.0 - base_score)).ln(),
                Link::Logistic { scale: 1.0 },
            )
        }
        "binary:logitraw" => ((base_score / (1.0 - base_score)).ln(), Link::Identity),
        "reg:squarederror" => (base_score, Link::Identity),
        o => return Err(LoadError::Unsupported(format!("objective `{o}`"))),
    };
    let features = if l.feature_names.is_empty() {
        (0..n_features).map(|i| format!("f{i}")).collect()
    } else {
        l.feature_names
    };
    let model = l
        .gradient_booster
        .model
        .ok_or_else(|| LoadError::Invalid("no trees".into()))?;
    let mut trees = Vec::with_capacity(model.trees.len());
    for (ti, t) in model.trees.into_iter().enumerate() {
        let n = t.left_children.len();
        if [
            t.right_children.len(),
            t.split_indices.len(),
            t.split_conditions.len(),
            t.default_left.len(),
        ]
        .iter()
        .any(|&m| m != n)
        {
            return Err(LoadError::Invalid(format!(
                "tree {ti}: arrays of different lengths"
            )));
        }
        if t.split_type.iter().any(|&s| s != 0) {
            return Err(LoadError::Unsupported(format!(
                "tree {ti}: categorical splits"
            )));
        }
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let cover = t.sum_hessian.get(i).copied().unwrap_or(0.0);
            if t.left_children[i] < 0 {
                nodes.push(Node::leaf(t.split_conditions[i], cover));
                continue;
            }
            let idx = |c: i64| {
                u32::try_from(c).map_err(|_| LoadError::Invalid(format!("tree {ti}: child {c}")))
            };
            let feature = u32::try_from(t.split_indices[i])
                .ok()
                .filter(|&f| f != LEAF)
                .ok_or_else(|| {
                    LoadError::Invalid(format!("tree {ti}: feature {}", t.split_indices[i]))
                })?;
            let default_left = match &t.default_left[i] {
                serde_json::Value::Bool(b) => *b,
                v => v.as_i64().unwrap_or(0) != 0,
            };
            nodes.push(Node {
                feature,
                threshold: t.split_conditions[i],
                left: idx(t.left_children[i])?,
                right: idx(t.right_children[i])?,
                default_left,
                missing: Missing::Default,
                value: 0.0,
                cover,
            });
        }
        trees.push(nodes);
    }
    let mut e = Ensemble {
        features,
        base,
        link,
        compare: Compare::LessF32,
        trees,
    };
    e.validate().map_err(LoadError::Invalid)?;
    e.fill_expected_values();
    Ok(e)
}
