//! Hot reload: configuration and policies loaded anew, validated, swapped in, or refused.

use super::*;

impl Core {
    /// Loads configuration, policies and lists anew, validates them fully, and swaps them in; a bad
    /// reload changes nothing and reports every problem.
    pub(super) fn reload(&mut self) -> Answer {
        let (cfg, loaded) = match (self.loader)() {
            Ok(x) => x,
            Err(e) => {
                m::inc_labeled(m::RELOADS, "outcome", "invalid");
                let diags: Vec<String> = format!("{e:#}").lines().map(str::to_string).collect();
                return error_with(
                    Failure::Unprocessable,
                    "invalid_reload",
                    "the new configuration is invalid; the running version is kept",
                    json!(diags),
                );
            }
        };
        // `[server]` is read at start only, but a reload that accepted an invalid one would leave a
        // configuration the next restart refuses.
        if let Err(errors) = Settings::resolve(&cfg.server, |k| std::env::var(k).ok()) {
            m::inc_labeled(m::RELOADS, "outcome", "invalid");
            let diags: Vec<String> = errors
                .iter()
                .map(|e| format!("invalid server settings: {e}"))
                .collect();
            return error_with(
                Failure::Unprocessable,
                "invalid_reload",
                "the new configuration is invalid; the running version is kept",
                json!(diags),
            );
        }
        let cur = &self.engine.config;
        let mut changed = Vec::new();
        if cfg.schema.definition_digest() != cur.schema.definition_digest() {
            changed.push("the event schema");
        }
        // Whole definitions, not only the stored series: policies read features by position.
        let features =
            |c: &Config| format!("{:?}{:?}", c.features, (c.dedupe_ttl_ms, c.dedupe_max_ids));
        if cfg.features.fingerprint() != cur.features.fingerprint()
            || features(&cfg) != features(cur)
        {
            changed.push("feature definitions or engine settings");
        }
        if cfg.secret_fingerprint != cur.secret_fingerprint {
            changed.push("the pseudonymization secret");
        }
        let models = |c: &Config| {
            c.models
                .iter()
                .map(|m| (m.name.clone(), m.event_type, m.digest, m.reasons))
                .collect::<Vec<_>>()
        };
        if models(&cfg) != models(cur) {
            changed.push("the models");
        }
        if cfg.graph.as_ref().map(|g| g.fingerprint) != cur.graph.as_ref().map(|g| g.fingerprint) {
            changed.push("the [graph] section");
        }
        if cfg.text.as_ref().map(|t| t.fingerprint) != cur.text.as_ref().map(|t| t.fingerprint) {
            changed.push("the [text] section");
        }
        if !changed.is_empty() {
            m::inc_labeled(m::RELOADS, "outcome", "refused");
            return error_with(
                Failure::Conflict,
                "restart_required",
                format!(
                    "{} changed: the running state was computed under the old ones; restart the server to rebuild it from the event log (policies and lists were not reloaded either)",
                    changed.join(" and ")
                ),
                json!(changed),
            );
        }
        // Console mode: the store's version is what runs. A reload refreshes the configuration's
        // lookup tables and checks the files, but keeps the installed version (compiled again
        // under the reloaded configuration), never the files on disk.
        let loaded = if self.settings.lifecycle.source == crate::settings::PolicySource::Console
            && !self.lifecycle.awaiting
            && !self.lifecycle.files.is_empty()
        {
            let label = self
                .engine
                .policies()
                .and_then(|p| p.version.split('+').next().map(str::to_string))
                .unwrap_or_default();
            match lifecycle::compile_version(&cfg, &self.lifecycle.files.clone(), &label) {
                Ok(l) => Some(l),
                Err(ps) => {
                    m::inc_labeled(m::RELOADS, "outcome", "invalid");
                    return error_with(
                        Failure::Unprocessable,
                        "invalid_reload",
                        "the active policy version does not compile under the new configuration; the running version is kept",
                        json!(ps),
                    );
                }
            }
        } else {
            // The files on disk run now, not a stored version.
            self.lifecycle.installed = None;
            loaded
        };
        self.lifecycle.changed = true;
        let before = self.engine.policies().map(|p| p.version.clone());
        self.install_policies(loaded);
        let after = self.engine.policies().map(|p| p.version.clone());
        // The lookup tables' new contents, for every decoder (the HTTP handlers' share the cell);
        // their declarations are part of the schema, unchanged.
        let tables = cfg.lookups.current();
        let sizes: Vec<Json> = tables
            .tables
            .iter()
            .map(|t| json!({"name": t.name, "rows": t.len()}))
            .collect();
        self.engine.decoder().lookups.replace((*tables).clone());
        // Budgets take effect with the next event.
        self.engine.config.deadlines = cfg.deadlines.clone();
        self.shared.publish_deadlines(&self.engine.config);
        m::inc_labeled(m::RELOADS, "outcome", "ok");
        ok(
            json!({"status": "reloaded", "previous_version": before, "policy_version": after, "lookups": sizes}),
        )
    }
}
