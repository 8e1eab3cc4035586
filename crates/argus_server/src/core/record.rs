//! The log record layout: event headers, stored events, digests, and reading a log back.

use super::*;

/// A decision remembered for the entity API: where its record is, and what the record header says.
/// Rebuilt from the log at start (not part of snapshots).
#[derive(Debug, Clone, Copy)]
pub(super) struct Recent {
    pub(super) loc: Loc,
    pub(super) head: EventHead,
}

/// The fixed-size header of an event record: what the decision index and the entity API need,
/// readable without parsing the event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct EventHead {
    /// Digest of the event id.
    pub(super) idh: u128,
    /// Digest of `actor kind:actor` (see [`actor_key`]).
    pub(super) actor: u128,
    pub(super) time: i64,
    pub(super) ty: u16,
    /// Index in [`argus_policy::Action::ALL`]; `NO_ACTION` when the event was not decided.
    pub(super) action: u8,
    pub(super) score: i64,
}

pub(super) const NO_ACTION: u8 = 0xff;
pub(super) const HEAD_LEN: usize = 16 + 16 + 8 + 2 + 1 + 8;

pub(super) fn id_hash(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

pub(super) fn action_index(a: argus_policy::Action) -> u8 {
    argus_policy::Action::ALL
        .iter()
        .position(|x| *x == a)
        .unwrap_or(0) as u8
}

pub(super) fn actor_key(kind: &str, actor: &str) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(kind.as_bytes());
    h.update(&[0]);
    h.update(actor.as_bytes());
    h.digest128()
}

/// An event as the log keeps it: decoded (personal data tokenized, derived fields computed), fields by
/// name so that a record can be read back under a schema that gained fields.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredEvent {
    pub(super) id: String,
    #[serde(rename = "type")]
    pub(super) ty: String,
    pub(super) time: i64,
    pub(super) fields: Vec<(String, Value)>,
}

/// [`StoredEvent`] borrowed from a live event (same bytes), so that logging copies no field names.
#[derive(Serialize)]
pub(super) struct StoredEventRef<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    ty: &'a str,
    time: i64,
    fields: Vec<(&'a str, &'a Value)>,
}

pub(crate) fn stored_event(schema: &argus_event::Schema, ev: &Event) -> Result<Vec<u8>, String> {
    let et = schema.get(ev.ty);
    let fields = ev
        .fields
        .iter()
        .zip(&et.fields)
        .filter(|(v, _)| !v.is_null())
        .map(|(v, f)| (f.name.as_str(), v))
        .collect();
    bincode::serialize(&StoredEventRef {
        id: &ev.id,
        ty: &et.name,
        time: ev.time,
        fields,
    })
    .map_err(|e| format!("encoding the event for the log: {e}"))
}

pub(crate) fn load_event(schema: &argus_event::Schema, bytes: &[u8]) -> Result<Event, String> {
    let st: StoredEvent =
        bincode::deserialize(bytes).map_err(|e| format!("undecodable event: {e}"))?;
    let ty = schema
        .type_id(&st.ty)
        .ok_or_else(|| format!("unknown event type `{}`", st.ty))?;
    let et = schema.get(ty);
    let mut fields = vec![Value::Null; et.fields.len()];
    for (name, v) in st.fields {
        let slot = et
            .slot(&name)
            .ok_or_else(|| format!("`{}` has no field `{name}`", st.ty))?;
        fields[slot] = v;
    }
    Ok(Event {
        id: st.id,
        ty,
        time: st.time,
        fields,
    })
}

/// An event record's payload: header | stored length (u32) | stored event | decision JSON.
pub(super) fn event_payload(h: &EventHead, raw: &[u8], decision: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&h.idh.to_le_bytes());
    out.extend_from_slice(&h.actor.to_le_bytes());
    out.extend_from_slice(&h.time.to_le_bytes());
    out.extend_from_slice(&h.ty.to_le_bytes());
    out.push(h.action);
    out.extend_from_slice(&h.score.to_le_bytes());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(raw);
    out.extend_from_slice(decision);
}

pub(super) fn head_of(p: &[u8]) -> Option<EventHead> {
    let h = p.get(..HEAD_LEN)?;
    let u128_at = |i: usize| h[i..i + 16].try_into().ok().map(u128::from_le_bytes);
    let i64_at = |i: usize| h[i..i + 8].try_into().ok().map(i64::from_le_bytes);
    Some(EventHead {
        idh: u128_at(0)?,
        actor: u128_at(16)?,
        time: i64_at(32)?,
        ty: u16::from_le_bytes([h[40], h[41]]),
        action: h[42],
        score: i64_at(43)?,
    })
}

/// `(header, stored event, decision JSON)` of an event record.
pub(super) fn split_event(p: &[u8]) -> Option<(EventHead, &[u8], &[u8])> {
    let head = head_of(p)?;
    let n = u32::from_le_bytes(p.get(HEAD_LEN..HEAD_LEN + 4)?.try_into().ok()?) as usize;
    let stored = p.get(HEAD_LEN + 4..HEAD_LEN + 4 + n)?;
    Some((head, stored, &p[HEAD_LEN + 4 + n..]))
}

/// A stored event as JSON for people (`{"id", "type", "time", "actor", "data"}`; personal data stays
/// tokens, as logged).
pub fn stored_event_json(stored: &[u8]) -> Option<serde_json::Value> {
    let st: StoredEvent = bincode::deserialize(stored).ok()?;
    let mut data = serde_json::Map::new();
    let mut actor = serde_json::Value::Null;
    for (n, v) in &st.fields {
        let j = super::value_json(v);
        if n == "actor" {
            actor = j;
        } else if !v.is_null() {
            data.insert(n.clone(), j);
        }
    }
    Some(serde_json::json!({
        "id": st.id,
        "type": st.ty,
        "time": argus_event::time::format_rfc3339(st.time),
        "actor": actor,
        "data": data,
    }))
}

/// The id and actor of a stored event, without the schema.
pub(super) fn stored_id_actor(stored: &[u8]) -> Option<(String, Option<Value>)> {
    let st: StoredEvent = bincode::deserialize(stored).ok()?;
    let actor = st
        .fields
        .into_iter()
        .find(|(n, _)| n == "actor")
        .map(|(_, v)| v);
    Some((st.id, actor))
}

/// Reads every event record of a data directory's log: `(sequence number, event id)` in log order.
/// For tools and tests; the server itself reads the log in [`Core::open`]. Like the server's open, it
/// cuts a torn tail off the newest segment.
pub fn read_log(data_dir: &Path) -> Result<Vec<(u64, String)>, WalError> {
    let mut out = Vec::new();
    Wal::open(
        &data_dir.join("log"),
        u64::MAX,
        crate::wal::Fsync::Never,
        |_, r| {
            if r.kind == KIND_EVENT {
                if let Some((id, _)) =
                    split_event(&r.payload).and_then(|(_, st, _)| stored_id_actor(st))
                {
                    out.push((r.seq, id));
                }
            }
        },
    )?;
    Ok(out)
}
