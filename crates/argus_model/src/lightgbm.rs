//! LightGBM's text model format (`Booster.save_model("model.txt")`), numerical splits. LightGBM sends
//! `x <= threshold` left in double precision; NaN and zero follow the rules of each split's missing
//! type (`decision_type` bits 2–3: none, zero, NaN) and its default direction (bit 1).

use crate::ensemble::{Compare, Ensemble, Link, Missing, Node};
use crate::xgboost::LoadError;
use std::collections::HashMap;

fn parse_list<T: std::str::FromStr>(
    m: &HashMap<&str, &str>,
    key: &str,
    tree: usize,
) -> Result<Vec<T>, LoadError> {
    match m.get(key) {
        None => Ok(Vec::new()),
        Some(s) => s
            .split_whitespace()
            .map(|v| {
                v.parse::<T>()
                    .map_err(|_| LoadError::Invalid(format!("tree {tree}: `{key}` value `{v}`")))
            })
            .collect(),
    }
}

pub fn load(text: &str) -> Result<Ensemble, LoadError> {
    let mut header: HashMap<&str, &str> = HashMap::new();
    let mut blocks: Vec<HashMap<&str, &str>> = Vec::new();
    let mut current: Option<HashMap<&str, &str>> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "end of trees" {
            break;
        }
        if line.starts_with("Tree=") {
            if let Some(b) = current.take() {
                blocks.push(b);
            }
            current = Some(HashMap::new());
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match current.as_mut() {
                Some(b) => {
                    b.insert(k, v);
                }
                None => {
                    header.insert(k, v);
                }
            }
        }
    }
    if let Some(b) = current.take() {
        blocks.push(b);
    }
    if header.get("num_class").is_some_and(|c| c.trim() != "1")
        || header
            .get("num_tree_per_iteration")
            .is_some_and(|c| c.trim() != "1")
    {
        return Err(LoadError::Unsupported("multi-class models".into()));
    }
    if header.contains_key("average_output") {
        return Err(LoadError::Unsupported(
            "random-forest mode (average_output)".into(),
        ));
    }
    let objective = header.get("objective").copied().unwrap_or("");
    let link = if objective.starts_with("binary") {
        let scale = objective
            .split_whitespace()
            .find_map(|p| p.strip_prefix("sigmoid:"))
            .and_then(|s| s.parse().ok())
            .unwrap_or(1.0);
        Link::Logistic { scale }
    } else if objective.starts_with("regression") || objective.is_empty() {
        Link::Identity
    } else {
        return Err(LoadError::Unsupported(format!("objective `{objective}`")));
    };
    let features: Vec<String> = match header.get("feature_names") {
        Some(s) => s.split_whitespace().map(String::from).collect(),
        None => {
            let max: usize = header
                .get("max_feature_idx")
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| LoadError::Invalid("no feature_names or max_feature_idx".into()))?;
            (0..=max).map(|i| format!("Column_{i}")).collect()
        }
    };
    if blocks.is_empty() {
        return Err(LoadError::Invalid("no trees".into()));
    }
    let mut trees = Vec::with_capacity(blocks.len());
    for (ti, b) in blocks.iter().enumerate() {
        let num_leaves: usize = b
            .get("num_leaves")
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| LoadError::Invalid(format!("tree {ti}: num_leaves")))?;
        if num_leaves == 0 || num_leaves > 1 << 20 {
            return Err(LoadError::Invalid(format!(
                "tree {ti}: num_leaves {num_leaves}"
            )));
        }
        if b.get("num_cat").is_some_and(|c| c.trim() != "0") {
            return Err(LoadError::Unsupported(format!(
                "tree {ti}: categorical splits"
            )));
        }
        if b.get("is_linear").is_some_and(|c| c.trim() != "0") {
            return Err(LoadError::Unsupported(format!("tree {ti}: linear trees")));
        }
        let leaf_value: Vec<f64> = parse_list(b, "leaf_value", ti)?;
        let leaf_cover: Vec<f64> = if b.contains_key("leaf_weight") {
            parse_list(b, "leaf_weight", ti)?
        } else {
            parse_list(b, "leaf_count", ti)?
        };
        if leaf_value.len() != num_leaves {
            return Err(LoadError::Invalid(format!(
                "tree {ti}: {} leaf values for {num_leaves} leaves",
                leaf_value.len()
            )));
        }
        let internal = num_leaves - 1;
        let split_feature: Vec<u32> = parse_list(b, "split_feature", ti)?;
        let threshold: Vec<f64> = parse_list(b, "threshold", ti)?;
        let decision_type: Vec<u32> = parse_list(b, "decision_type", ti)?;
        let left: Vec<i64> = parse_list(b, "left_child", ti)?;
        let right: Vec<i64> = parse_list(b, "right_child", ti)?;
        let internal_cover: Vec<f64> = if b.contains_key("internal_weight") {
            parse_list(b, "internal_weight", ti)?
        } else {
            parse_list(b, "internal_count", ti)?
        };
        if [
            split_feature.len(),
            threshold.len(),
            decision_type.len(),
            left.len(),
            right.len(),
        ]
        .iter()
        .any(|&m| m != internal)
        {
            return Err(LoadError::Invalid(format!(
                "tree {ti}: split arrays do not have {internal} entries"
            )));
        }
        // Internal nodes keep their index; leaf j goes to internal + j.
        let child = |c: i64| -> Result<u32, LoadError> {
            let i = if c >= 0 {
                c as usize
            } else {
                internal + (!c) as usize
            };
            if (c >= 0 && i >= internal) || (c < 0 && (!c) as usize >= num_leaves) {
                return Err(LoadError::Invalid(format!("tree {ti}: child {c}")));
            }
            Ok(i as u32)
        };
        let mut nodes = Vec::with_capacity(internal + num_leaves);
        for i in 0..internal {
            let dt = decision_type[i];
            if dt & 1 != 0 {
                return Err(LoadError::Unsupported(format!(
                    "tree {ti}: categorical split"
                )));
            }
            let missing = match (dt >> 2) & 3 {
                0 => Missing::AsZero,
                1 => Missing::ZeroIsMissing,
                _ => Missing::Default,
            };
            nodes.push(Node {
                feature: split_feature[i],
                threshold: threshold[i],
                left: child(left[i])?,
                right: child(right[i])?,
                default_left: dt & 2 != 0,
                missing,
                value: 0.0,
                cover: internal_cover.get(i).copied().unwrap_or(0.0),
            });
        }
        for (j, &v) in leaf_value.iter().enumerate() {
            nodes.push(Node::leaf(v, leaf_cover.get(j).copied().unwrap_or(0.0)));
        }
        trees.push(nodes);
    }
    let mut e = Ensemble {
        features,
        base: 0.0,
        link,
        compare: Compare::LessEqual,
        trees,
    };
    e.validate().map_err(LoadError::Invalid)?;
    e.fill_expected_values();
    Ok(e)
}
