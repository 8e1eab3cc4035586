//! Training and evaluation rows: the features of every accepted event of one type within a time range,
//! point-in-time (as the engine computed them when the event arrived), with the event's own label as it
//! arrived. A replay sink, so that live, replay and training share the one code path.

use crate::table::RowSink;
use argus_event::{Event, TypeId, Value, ACTOR_SLOT};
use argus_features::{FeatureSet, Out};
use std::io;

#[derive(Debug, Clone)]
pub struct Rows {
    pub event_type: TypeId,
    /// Feature indices in the feature set, and their names: the model's inputs.
    pub features: Vec<usize>,
    pub names: Vec<String>,
    /// Time range `[from, to)` of the rows kept.
    pub from: i64,
    pub to: i64,
    pub time: Vec<i64>,
    /// The actor (e.g. the customer), as given.
    pub actor: Vec<String>,
    /// Row-major, `features.len()` values per row; NaN where a feature is null.
    pub x: Vec<f64>,
    pub label: Vec<Option<f64>>,
}

impl Rows {
    /// Rows of `event_type` in `[from, to)`, with the named features — or, when `names` is empty, every
    /// numeric or boolean feature readable on the type.
    pub fn new(
        features: &FeatureSet,
        event_type: TypeId,
        names: &[String],
        from: i64,
        to: i64,
    ) -> Result<Rows, String> {
        let readable = features.readable(event_type as usize);
        let idx: Vec<usize> = if names.is_empty() {
            // By default numbers and booleans only: not strings (ids, categories), and not timestamps
            // (`first_seen`, `last_seen`, time fields), whose epoch values say when, not what; a model
            // trained on them learns the calendar of its training window. Name them to include them.
            readable
                .iter()
                .copied()
                .filter(|&i| !matches!(features.features[i].out, Out::Str | Out::Time))
                .collect()
        } else {
            let mut v = Vec::new();
            for n in names {
                let i = features
                    .index_of(n)
                    .ok_or_else(|| format!("unknown feature `{n}`"))?;
                if !readable.contains(&i) {
                    return Err(format!("feature `{n}` is not computed on this event type"));
                }
                if features.features[i].out == Out::Str {
                    return Err(format!(
                        "feature `{n}` is a string; models take numbers and booleans: encode a category with point-in-time features instead, its frequency (a `count` keyed by it) and its risk (a `ratio` of a label `sum` to a `count`, keyed by it); see docs/models.md, \"Categorical inputs\""
                    ));
                }
                v.push(i);
            }
            v
        };
        if idx.is_empty() {
            return Err("no numeric feature is readable on this event type".into());
        }
        let names = idx
            .iter()
            .map(|&i| features.features[i].name.clone())
            .collect();
        Ok(Rows {
            event_type,
            features: idx,
            names,
            from,
            to,
            time: Vec::new(),
            actor: Vec::new(),
            x: Vec::new(),
            label: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    pub fn row(&self, r: usize) -> &[f64] {
        let n = self.features.len();
        &self.x[r * n..(r + 1) * n]
    }
}

/// A feature value as a model input: numbers as they are, booleans 0/1, anything else missing.
pub fn model_input(v: &Value) -> f64 {
    match v {
        Value::Str(_) | Value::Null => f64::NAN,
        v => v.as_f64().unwrap_or(f64::NAN),
    }
}

impl RowSink for Rows {
    fn write(&mut self, _: &str, _: TypeId, _: i64, _: &[Value]) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn labelled(&mut self, ev: &Event, label: Option<f64>, features: &[Value]) -> io::Result<()> {
        if ev.ty != self.event_type || ev.time < self.from || ev.time >= self.to {
            return Ok(());
        }
        self.time.push(ev.time);
        self.actor.push(
            ev.fields
                .get(ACTOR_SLOT)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string(),
        );
        for &i in &self.features {
            self.x.push(features.get(i).map_or(f64::NAN, model_input));
        }
        self.label.push(label);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps are model inputs only when named.
    #[test]
    fn timestamps_are_left_out_unless_named() {
        let cfg = crate::Config::from_str(
            r#"
[[features]]
name = "user_first_seen"
kind = "first_seen"
events = ["order.create"]
key = ["actor"]

[[features]]
name = "user_orders_1d"
kind = "count"
events = ["order.create"]
key = ["actor"]
window = "1d"
"#,
            std::path::Path::new("."),
        )
        .expect("valid");
        let ty = cfg.schema.type_id("order.create").expect("built-in type");
        let rows = Rows::new(&cfg.features, ty, &[], 0, 1).expect("default inputs");
        assert_eq!(rows.names, ["user_orders_1d"]);
        let named = ["user_first_seen".to_string(), "user_orders_1d".to_string()];
        let rows = Rows::new(&cfg.features, ty, &named, 0, 1).expect("named inputs");
        assert_eq!(rows.names, named);
        // A string (a category) is refused with the encoding to use instead.
        let cfg = crate::Config::from_str(
            "[[features]]\nname = \"currency\"\nkind = \"field\"\nvalue = \"currency\"\n",
            std::path::Path::new("."),
        )
        .expect("valid");
        let Err(err) = Rows::new(&cfg.features, ty, &["currency".to_string()], 0, 1) else {
            panic!("a string is not an input");
        };
        assert!(err.contains("Categorical inputs"), "{err}");
    }
}
