//! Global stages: the parts of the per-event path that keep state across all keys (the text signals,
//! the entity graph, the semi-supervised graph signals). The keyed features are not a stage of this kind:
//! they are split into partitions (`argus_features::FeatureState`) and run on their own threads.
//!
//! A global stage runs for every accepted event in sequence order: it reads the event (and, if it says
//! so, the partitioned features), writes the features it registered when its configuration was
//! compiled (see [`crate::config`]), and reports findings; it may read the slots the stages before it
//! wrote for the same event (the graph reads the text stage's groups). In
//! [`Engine::run`](crate::Engine::run), when every stage reads only the event, they run on a worker
//! thread of their own while the partitions apply the same batch; when one reads the keyed features,
//! all run on the coordinating thread after the vector is assembled. [`Engine::process`](crate::Engine::process) runs them in line. It snapshots and restores itself; the engine snapshot holds one section per stage:
//! (name, fingerprint of the definition from canonical bytes, state).
//!
//! Adding a stage: a module with its configuration section, a compile function that registers its
//! features in the `FeatureSet` (called from `Config::load`, as `graph::compile` is), a [`Stage`]
//! implementation, and one line in [`build`].

use crate::config::Config;
use crate::graph::Finding;
use argus_event::{Event, Value};
use std::any::Any;
use std::sync::Arc;

/// A global stage (see the module documentation).
pub trait Stage: Send {
    /// The stage's name: its section in the engine snapshot and digest.
    fn name(&self) -> &'static str;
    /// Digest of the stage's definition, from a canonical encoding (never `Debug`): a snapshot section
    /// written under another definition is refused.
    fn fingerprint(&self) -> u64;
    /// What the refusal says changed (e.g. "the [graph] declaration").
    fn what(&self) -> &'static str;
    /// Applies one accepted event: reads `features` (the keyed ones only if
    /// [`reads_features`](Self::reads_features); those of the stages before it always, as the graph
    /// reads the text stage's groups), writes the features the stage registered (every slot of [`writes`](Self::writes), or leaves it
    /// null), and appends the findings the event triggered.
    fn apply(&mut self, ev: &Event, features: &mut [Value], findings: &mut Vec<Finding>);
    /// Whether [`apply`](Self::apply) reads the feature vector. A stage that reads only the event runs
    /// on a worker thread of its own in [`Engine::run`](crate::Engine::run), beside the partitions.
    fn reads_features(&self) -> bool {
        true
    }
    /// The feature slots the stage writes.
    fn writes(&self) -> Vec<usize>;
    /// The stage's state, deterministically (equal states give equal bytes).
    fn encode(&self) -> Vec<u8>;
    /// Replaces the state with one [`encode`](Self::encode) wrote under the same fingerprint.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), String>;
    /// Replaces the state with one an earlier version of the stage wrote under `fingerprint`, when
    /// the stage knows that version (`None`: it does not, and the section is refused).
    fn restore_earlier(&mut self, _fingerprint: u64, _bytes: &[u8]) -> Option<Result<(), String>> {
        None
    }
    /// A digest of everything the stage's future answers depend on.
    fn digest(&self) -> u64;
    /// For callers that need a particular stage's own API (sizes for the status route).
    fn as_any(&self) -> &dyn Any;
}

/// A stage's state as bytes (bincode). Its types are plain data (numbers, strings, vectors, ordered
/// maps, no custom serializers that fail), and a `Vec` takes any length, so this cannot fail.
pub(crate) fn encode_state<T: serde::Serialize>(state: &T) -> Vec<u8> {
    bincode::serialize(state).expect("serializing plain data to a Vec cannot fail")
}

/// The stages `config` declares, in the order they run.
pub fn build(config: &Config) -> Vec<Box<dyn Stage>> {
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();
    // Text first: the graph links the near-duplicate groups it writes (similarity edges).
    if let Some(t) = &config.text {
        stages.push(Box::new(TextStage::new(t.clone())));
    }
    if let Some(g) = &config.graph {
        stages.push(Box::new(GraphStage::new(g.clone())));
    }
    if let Some(p) = &config.propagation {
        stages.push(Box::new(PropagationStage::new(p.clone())));
    }
    stages
}

/// Near-duplicate texts ([`crate::text`]) as a stage.
pub struct TextStage {
    spec: Arc<crate::text::TextSpec>,
    pub state: crate::text::TextState,
}

impl TextStage {
    pub fn new(spec: Arc<crate::text::TextSpec>) -> TextStage {
        let state = crate::text::TextState::new(&spec);
        TextStage { spec, state }
    }
}

impl Stage for TextStage {
    fn name(&self) -> &'static str {
        "text"
    }
    fn fingerprint(&self) -> u64 {
        self.spec.fingerprint
    }
    fn what(&self) -> &'static str {
        "the [text] declaration"
    }
    fn reads_features(&self) -> bool {
        false
    }
    fn writes(&self) -> Vec<usize> {
        self.spec.feature_slots()
    }
    fn apply(&mut self, ev: &Event, features: &mut [Value], _findings: &mut Vec<Finding>) {
        self.state.apply(&self.spec, ev, features);
    }
    fn encode(&self) -> Vec<u8> {
        self.state.encode()
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.state = crate::text::TextState::decode(&self.spec, bytes)?;
        Ok(())
    }
    fn restore_earlier(&mut self, fingerprint: u64, bytes: &[u8]) -> Option<Result<(), String>> {
        (fingerprint == self.spec.v1_fingerprint).then(|| {
            self.state = crate::text::TextState::decode_v1(&self.spec, bytes)?;
            Ok(())
        })
    }
    fn digest(&self) -> u64 {
        self.state.digest()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Semi-supervised graph signals ([`crate::propagation`]) as a stage.
pub struct PropagationStage {
    spec: Arc<crate::propagation::PropagationSpec>,
    pub state: crate::propagation::PropagationState,
}

impl PropagationStage {
    pub fn new(spec: Arc<crate::propagation::PropagationSpec>) -> PropagationStage {
        let state = crate::propagation::PropagationState::new(&spec);
        PropagationStage { spec, state }
    }
}

impl Stage for PropagationStage {
    fn name(&self) -> &'static str {
        "propagation"
    }
    fn fingerprint(&self) -> u64 {
        self.spec.fingerprint
    }
    fn what(&self) -> &'static str {
        "the [graph.propagation] declaration"
    }
    fn reads_features(&self) -> bool {
        self.spec.reads_features()
    }
    fn writes(&self) -> Vec<usize> {
        self.spec.feature_slots()
    }
    fn apply(&mut self, ev: &Event, features: &mut [Value], _findings: &mut Vec<Finding>) {
        self.state.apply(&self.spec, ev, features);
    }
    fn encode(&self) -> Vec<u8> {
        self.state.encode()
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.state = crate::propagation::PropagationState::decode(bytes)?;
        Ok(())
    }
    fn digest(&self) -> u64 {
        self.state.digest()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The entity graph ([`crate::graph`]) as a stage.
pub struct GraphStage {
    spec: Arc<crate::graph::GraphSpec>,
    pub state: crate::graph::GraphState,
}

impl GraphStage {
    pub fn new(spec: Arc<crate::graph::GraphSpec>) -> GraphStage {
        let state = crate::graph::GraphState::new(&spec);
        GraphStage { spec, state }
    }
}

impl Stage for GraphStage {
    fn name(&self) -> &'static str {
        "graph"
    }
    fn fingerprint(&self) -> u64 {
        self.spec.fingerprint
    }
    fn what(&self) -> &'static str {
        "the [graph] declaration"
    }
    fn reads_features(&self) -> bool {
        false
    }
    fn writes(&self) -> Vec<usize> {
        self.spec.feature_slots()
    }
    fn apply(&mut self, ev: &Event, features: &mut [Value], findings: &mut Vec<Finding>) {
        self.state.apply(&self.spec, ev, features);
        findings.extend(self.state.take_findings());
    }
    fn encode(&self) -> Vec<u8> {
        self.state.encode()
    }
    fn restore(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.state = crate::graph::GraphState::decode(&self.spec, bytes)?;
        Ok(())
    }
    fn digest(&self) -> u64 {
        self.state.digest()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One stage's section of an engine snapshot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Section {
    pub name: String,
    pub fingerprint: u64,
    pub bytes: Vec<u8>,
}

/// Why a snapshot's stage sections cannot be restored.
#[derive(Debug)]
pub enum SectionError {
    /// Written under another set of stages or another definition of one.
    Incompatible(String),
    /// A section's bytes do not decode.
    Corrupt(String),
}

/// Restores every configured stage from its section; refuses sections of stages not configured,
/// missing sections and other fingerprints.
pub fn restore_all(
    stages: &mut [Box<dyn Stage>],
    sections: Vec<Section>,
) -> Result<(), SectionError> {
    use SectionError::*;
    for s in &sections {
        if !stages.iter().any(|st| st.name() == s.name) {
            return Err(Incompatible(format!(
                "the snapshot holds state of the `{}` stage, which this configuration does not declare",
                s.name
            )));
        }
    }
    for st in stages.iter_mut() {
        let Some(s) = sections.iter().find(|s| s.name == st.name()) else {
            return Err(Incompatible(format!(
                "the snapshot holds no state for the `{}` stage ({} was added)",
                st.name(),
                st.what()
            )));
        };
        let restored = if s.fingerprint == st.fingerprint() {
            st.restore(&s.bytes)
        } else {
            match st.restore_earlier(s.fingerprint, &s.bytes) {
                Some(r) => r,
                None => return Err(Incompatible(format!("{} changed", st.what()))),
            }
        };
        restored.map_err(|e| Corrupt(format!("the `{}` stage's state: {e}", st.name())))?;
    }
    Ok(())
}
