//! Value-list changes through the API: validated, logged, applied as an overlay on the files' lists.

use super::*;

/// A value-list change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListChange {
    pub list: String,
    /// The stored key (tokenized for personal-data kinds).
    pub key: String,
    /// `None`: remove.
    pub item: Option<OverlayItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverlayItem {
    pub reason: String,
    pub expires: Option<i64>,
}

impl Core {
    pub(super) fn list_index(&self, name: &str) -> Result<usize, Answer> {
        let Some(ps) = self.engine.policies() else {
            return Err(error(
                Failure::NotFound,
                "unknown_list",
                "no policies are loaded, so there are no lists",
            ));
        };
        ps.lists.index_of(name).ok_or_else(|| {
            error(
                Failure::NotFound,
                "unknown_list",
                format!(
                    "unknown list `{name}`{}",
                    argus_event::schema::did_you_mean(
                        name,
                        ps.lists.lists.iter().map(|l| l.name.as_str())
                    )
                ),
            )
        })
    }

    pub(super) fn list_get(&self, name: &str) -> Answer {
        let i = match self.list_index(name) {
            Ok(i) => i,
            Err(a) => return a,
        };
        let Some(ps) = self.engine.policies() else {
            return error(Failure::NotFound, "unknown_list", "no policies");
        };
        let l = &ps.lists.lists[i];
        let mut items: Vec<(&String, &ListItem)> = l.items.iter().collect();
        items.sort_by(|a, b| a.0.cmp(b.0));
        let items: Vec<Json> = items
            .into_iter()
            .map(|(k, it)| {
                let expired = it.expires.is_some_and(|e| e <= now_ms());
                json!({"value": k, "reason": it.reason, "expires": it.expires.map(argus_event::time::format_rfc3339), "expired": expired})
            })
            .collect();
        ok(json!({"name": l.name, "kind": l.kind, "entity": l.entity, "items": items}))
    }

    /// The entity kind of list `name`'s items (`None`: plain values, or no such list).
    pub(super) fn list_entity(&self, name: &str) -> Option<String> {
        let i = self.list_index(name).ok()?;
        self.engine
            .policies()
            .and_then(|p| p.lists.lists[i].entity.clone())
    }

    /// In a cluster, as a list change by key is applied: the list exists, and its items are of the
    /// entity kind the entry node computed the key for (`keyed_as`). A policy version installed
    /// between the two (the list now of emails, say, where the key is the value as typed) refuses
    /// the change on every node alike, rather than storing a key of the wrong kind.
    pub(super) fn list_keyed_alike(
        &self,
        name: &str,
        keyed_as: Option<Option<String>>,
    ) -> Result<(), Answer> {
        self.list_index(name)?;
        let now = self.list_entity(name);
        match keyed_as {
            Some(then) if then != now => Err(error(
                Failure::Conflict,
                "list_changed",
                format!(
                    "list `{name}` holds {} now, and this change was keyed for {} (a policy version was installed meanwhile): repeat the request",
                    now.as_deref().map_or("plain values".to_string(), |e| format!("`{e}` values")),
                    then.as_deref().map_or("plain values".to_string(), |e| format!("`{e}` values")),
                ),
            )),
            _ => Ok(()),
        }
    }

    pub(super) fn list_key(&self, name: &str, value: &str) -> Result<String, Answer> {
        let i = self.list_index(name)?;
        let entity = self
            .engine
            .policies()
            .and_then(|p| p.lists.lists[i].entity.clone());
        if value.is_empty() || value.len() > 1024 {
            return Err(error(
                Failure::Invalid,
                "invalid_value",
                "a list value must be 1 to 1024 bytes",
            ));
        }
        item_key(entity.as_deref(), value, &self.engine.config.pseudonymizer)
            .map_err(|m| error(Failure::Invalid, "invalid_value", m))
    }

    pub(super) fn list_set(
        &mut self,
        name: &str,
        value: &str,
        reason: String,
        ttl: Option<String>,
        expires: Option<String>,
    ) -> Outcome {
        match self.list_key(name, value) {
            Ok(key) => self.list_set_key(name, key, reason, ttl, expires),
            Err(a) => Outcome::Answer(a),
        }
    }

    /// [`list_set`](Self::list_set) of an item by its stored key.
    pub(super) fn list_set_key(
        &mut self,
        name: &str,
        key: String,
        reason: String,
        ttl: Option<String>,
        expires: Option<String>,
    ) -> Outcome {
        if reason.trim().is_empty() || reason.len() > 1024 {
            return Outcome::Answer(error(
                Failure::Invalid,
                "invalid_reason",
                "every list item needs a reason (1 to 1024 bytes)",
            ));
        }
        // A TTL is resolved against the server's clock once, here; the log records the absolute time.
        // In a cluster the entry node resolved and checked it before the change entered the log.
        let expires = match resolve_expiry(ttl, expires, self.settings.cluster.is_none()) {
            Ok(e) => e,
            Err(a) => return Outcome::Answer(a),
        };
        let change = ListChange {
            list: name.into(),
            key: key.clone(),
            item: Some(OverlayItem {
                reason: reason.trim().to_string(),
                expires,
            }),
        };
        self.log_list(change, json!({"list": name, "value": key, "expires": expires.map(argus_event::time::format_rfc3339)}))
    }

    pub(super) fn list_remove(&mut self, name: &str, value: &str) -> Outcome {
        match self.list_key(name, value) {
            Ok(key) => self.list_remove_key(name, key),
            Err(a) => Outcome::Answer(a),
        }
    }

    /// [`list_remove`](Self::list_remove) of an item by its stored key.
    pub(super) fn list_remove_key(&mut self, name: &str, key: String) -> Outcome {
        let present = self.engine.policies().is_some_and(|p| {
            p.lists
                .lists
                .iter()
                .any(|l| l.name == name && l.items.contains_key(&key))
        });
        if !present {
            return Outcome::Answer(error(
                Failure::NotFound,
                "unknown_item",
                format!("`{key}` is not on list `{name}`"),
            ));
        }
        self.log_list(
            ListChange {
                list: name.into(),
                key: key.clone(),
                item: None,
            },
            json!({"list": name, "value": key, "removed": true}),
        )
    }

    pub(super) fn log_list(&mut self, change: ListChange, body: Json) -> Outcome {
        let payload = serde_json::to_vec(&change).unwrap_or_default();
        if let Err(e) = self.wal.append(KIND_LIST, &payload) {
            self.fail(format!("event log: {e}"));
            return Outcome::Answer(error(
                Failure::Unavailable,
                "log_unavailable",
                "the change could not be written to the event log",
            ));
        }
        self.apply_list(&change);
        self.since_snap += 1;
        self.applied_since_step += 1;
        Outcome::Logged(ok(body))
    }

    pub(super) fn apply_list(&mut self, c: &ListChange) {
        self.overlay
            .insert((c.list.clone(), c.key.clone()), c.item.clone());
        let has_policies = self.engine.policies().is_some();
        match self.engine.lists_mut() {
            Some(lists) => apply_overlay(lists, &c.list, &c.key, c.item.as_ref()),
            None if has_policies => {
                tracing::error!("list change not applied: the policies are shared")
            }
            None => {}
        }
        self.refresh_candidate();
    }
}

pub(super) fn apply_overlay(
    lists: &mut argus_policy::ValueLists,
    list: &str,
    key: &str,
    item: Option<&OverlayItem>,
) {
    if let Some(i) = lists.index_of(list) {
        let items = &mut lists.lists[i].items;
        match item {
            Some(it) => {
                items.insert(
                    key.to_string(),
                    ListItem {
                        reason: it.reason.clone(),
                        expires: it.expires,
                    },
                );
            }
            None => {
                items.remove(key);
            }
        }
    }
}

/// A list item's expiry from `ttl` or `expires` (not both), as an absolute time against this clock;
/// `refuse_past`: an `expires` already past is refused.
pub(crate) fn resolve_expiry(
    ttl: Option<String>,
    expires: Option<String>,
    refuse_past: bool,
) -> Result<Option<i64>, Answer> {
    let invalid = |m: String| error(Failure::Invalid, "invalid_expiry", m);
    match (ttl, expires) {
        (Some(_), Some(_)) => Err(invalid("give `ttl` or `expires`, not both".into())),
        (Some(t), None) => match argus_event::time::parse_duration(&t) {
            Some(ms) if ms > 0 => Ok(Some(now_ms().saturating_add(ms))),
            _ => Err(invalid(format!(
                "`ttl`: `{t}` is not a positive duration (e.g. `30d`)"
            ))),
        },
        (None, Some(e)) => match argus_event::time::parse_datetime(&e) {
            Some(t) if refuse_past && t <= now_ms() => {
                Err(invalid(format!("`expires`: `{e}` is in the past")))
            }
            Some(t) => Ok(Some(t)),
            None => Err(invalid(format!("`expires`: `{e}` is not an RFC 3339 time"))),
        },
        (None, None) => Ok(None),
    }
}
