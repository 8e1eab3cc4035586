//! Value lists: named, typed sets of values (deny / allow / watch) with per-item expiry and reason.
//! Expiry is judged against the event's time, never the wall clock.

use argus_rules::{ListLookup, Val};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    Deny,
    Allow,
    Watch,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListItem {
    pub reason: String,
    /// Milliseconds since the epoch after which the item no longer counts; `None`: never expires.
    pub expires: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValueList {
    pub name: String,
    pub kind: ListKind,
    /// Entity kind of the values (`device`, `email`, …); personal-data kinds are stored as tokens.
    pub entity: Option<String>,
    pub items: HashMap<String, ListItem>,
}

/// The stored key of a list item: values of personal-data kinds (email, phone, card…) are tokenized
/// exactly as events are, so that they match; other values are kept as given.
pub fn item_key(
    entity: Option<&str>,
    value: &str,
    pseudo: &argus_event::Pseudonymizer,
) -> Result<String, String> {
    let pii_type = entity.and_then(|k| {
        argus_event::FieldType::ALL
            .iter()
            .map(|(_, t)| *t)
            .find(|t| t.implied_entity() == Some(k))
    });
    match pii_type {
        Some(t) => {
            let n = argus_event::privacy::normalize(
                t,
                &argus_event::privacy::Personal {
                    text: value.to_string(),
                    ..Default::default()
                },
            )?;
            Ok(pseudo.token(entity.unwrap_or(""), &n))
        }
        None => Ok(value.to_string()),
    }
}

/// All lists, indexed as the rule environment declares them.
#[derive(Debug, Clone, Default)]
pub struct ValueLists {
    pub lists: Vec<ValueList>,
}

impl ValueLists {
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.lists.iter().position(|l| l.name == name)
    }

    /// Membership at event time `now`.
    pub fn contains_at(&self, list: usize, v: &Val, now: i64) -> bool {
        let Some(l) = self.lists.get(list) else {
            return false;
        };
        let key = match v {
            Val::Str(s) => s.to_string(),
            Val::Int(i) => i.to_string(),
            Val::UInt(u) => u.to_string(),
            Val::Bool(b) => b.to_string(),
            _ => return false,
        };
        l.items
            .get(&key)
            .is_some_and(|it| it.expires.is_none_or(|e| now < e))
    }

    /// A view for one evaluation at event time `now`.
    pub fn at(&self, now: i64) -> ListsAt<'_> {
        ListsAt { lists: self, now }
    }
}

/// Lists as seen at one event's time.
pub struct ListsAt<'a> {
    lists: &'a ValueLists,
    now: i64,
}

impl ListLookup for ListsAt<'_> {
    fn contains(&self, list: usize, v: &Val) -> bool {
        self.lists.contains_at(list, v, self.now)
    }
}
