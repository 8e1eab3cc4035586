#!/usr/bin/env python3
"""Writes the cases, outbox, bulk, session, user, graph and console operations into
crates/argus_server/src/openapi.json (idempotent: re-running replaces them). Run after changing the
routes in crates/argus_server/src/cases.rs; the route table test checks the document against ROUTES."""
import json, pathlib

P = pathlib.Path(__file__).resolve().parent.parent / "crates/argus_server/src/openapi.json"
doc = json.loads(P.read_text())
ERR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
SEC = [{"bearer": []}, {"apiKey": []}, {"session": []}]
doc["components"]["securitySchemes"]["session"] = {
    "type": "apiKey", "in": "cookie", "name": "argus_session",
    "description": "A console session (POST /v1/session). State-changing requests with it must also send the session's CSRF token in `X-CSRF-Token`."}

def err(desc, codes):
    return {"description": f"{desc}. Codes: " + ", ".join(f"`{c}`" for c in codes), "content": ERR}

COMMON = {
    "400": err("Bad request", ["invalid_body", "invalid_query", "invalid", "invalid_path", "body_too_large"]),
    "401": err("Unauthenticated: no API key or session, an unknown key, or a wrong password", ["unauthenticated"]),
    "403": err("Forbidden: the role does not allow this, a console request without its CSRF token, or a change that needs another person's approval", ["forbidden", "csrf", "not_allowed"]),
    "404": err("Not found", ["not_found", "no_case", "cases_off", "no_graph", "lifecycle_off"]),
    "405": err("Method not allowed on this path", ["method_not_allowed"]),
    "408": err("The body did not arrive in time", ["body_timeout"]),
    "409": err("Conflict with the case's or version's state (claimed by someone else, resolved, over the claim cap, the bulk target changed; a version already active or rejected; policies from files)", ["conflict", "count_changed", "files_are_the_source"]),
    "413": err("Body too large", ["body_too_large"]),
    "414": {"$ref": "#/components/responses/UriTooLong"},
    "415": err("Unsupported media type", ["unsupported_media_type"]),
    "422": err("Unprocessable: e.g. policy files that do not compile (details: every problem with its file, rule, span, code and hint)", ["unprocessable", "invalid_policies"]),
    "500": err("Internal error", ["internal_error"]),
    "503": err("The case store is unavailable (still opening, or its database is down) or the server is shutting down", ["cases_unavailable", "lifecycle_unavailable", "overloaded", "shutting_down", "timeout"]),
}
OBJ = {"type": "object"}

def strict(props, required=()):
    return {"type": "object", "additionalProperties": False, "required": list(required), "properties": props}

S = {"type": "string"}
CASE = {"type": "object", "required": ["id", "subject", "status", "priority", "inbox", "sla_due"],
        "properties": {"id": S, "subject": {"type": "object", "properties": {"kind": S, "id": S}},
                       "status": {"enum": ["open", "in_review", "resolved"]}, "priority": {"type": "integer"},
                       "inbox": S, "sla_due": {"type": "integer", "description": "Milliseconds since the epoch"},
                       "assignee": {"type": ["string", "null"]}, "lock_owner": {"type": ["string", "null"]},
                       "lock_until": {"type": ["integer", "null"]}, "disposition": {"type": ["string", "null"]},
                       "opened_at": {"type": "integer"}, "updated_at": {"type": "integer"},
                       "triggers": {"type": "integer"}, "tags": {"type": "array", "items": S}}}
doc["components"]["schemas"]["Case"] = CASE

def op(opid, summary, role, desc, body=None, params=(), ok=OBJ, tag="cases"):
    o = {"operationId": opid, "summary": summary, "tags": [tag],
         "description": desc + (f"\n\nNeeds role `{role}` (API key or console user; `admin` can do everything)." if role else "\n\nOpen: no credentials needed."),
         "security": SEC if role else [], "parameters": list(params),
         "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}, **COMMON}}
    if body is not None:
        o["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return o

def path(name, desc="The case id (from a list or `next`; URL-encode it)"):
    return {"name": name, "in": "path", "required": True, "description": desc, "schema": {"type": "string", "minLength": 1}}

def q(name, desc, schema=S):
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": schema}

ID = path("id")

def op_429(*a, **k):
    o = op(*a, **k)
    o["responses"]["429"] = {"description": "Ten failed logins for this user name in ten minutes. Codes: `too_many_attempts`", "content": ERR,
                             "headers": {"Retry-After": {"schema": {"type": "string"}}}}
    return o
paths = doc["paths"]
paths["/v1/session"] = {
    "post": op_429("login", "Log in to the console", None, "Checks a console user's password (Argon2id) and opens a 12-hour session: a `Set-Cookie: argus_session=…; HttpOnly; SameSite=Strict` and the session's CSRF token in the body.",
               strict({"username": S, "password": S}, ["username", "password"]), tag="console"),
    "get": op("getSession", "Who is asking", "any", "The caller (session user or API key name), its role and, for a session, its CSRF token.", tag="console"),
    "delete": op("logout", "Log out", "any", "Ends the session and clears the cookie.", tag="console"),
}
ROLE_ENUM = {"enum": ["analyst", "investigator", "admin"]}
paths["/v1/users"] = {"get": op("listUsers", "Console users", "admin", "Users, their roles and whether they are disabled.", tag="console")}
paths["/v1/users/{name}"] = {"put": op("putUser", "Add a console user or change one", "admin",
    "Creates the user or sets its role and password (at least 12 characters; hashed with Argon2id). Changing a password ends the user's sessions.",
    strict({"role": ROLE_ENUM, "password": S}, ["role", "password"]), [path("name", "User name (1–64 characters)")], tag="console")}
paths["/v1/inboxes"] = {"get": op("listInboxes", "Inboxes", "analyst", "Each inbox of `[cases]` with its SLA, escalation target, auto-assignees and counts of open and in-review cases.")}
paths["/v1/cases"] = {
    "get": op("listCases", "A page of cases", "analyst", "Cases in queue order (priority, SLA, age), keyset-paged: pass `next` from a page as `after` for the next one.",
              params=[q("inbox", "Only this inbox"), q("status", "open, in_review, resolved or any"), q("assignee", "Only cases assigned to this user"),
                      q("subject", "Cases about this account (as subject or ring member)"), q("limit", "1–500 (default 50)", {"type": "integer"}), q("after", "The `next` cursor of the previous page")],
              ok={"type": "object", "required": ["cases", "next"], "properties": {"cases": {"type": "array", "items": {"$ref": "#/components/schemas/Case"}}, "next": {"type": ["string", "null"]}}}),
    "post": op("openCase", "Open a case by hand", "analyst", "Opens a case about an entity (or joins the open one), in the first inbox unless one is named.",
               strict({"subject": strict({"kind": S, "id": S}, ["kind", "id"]), "inbox": S, "priority": {"type": "integer"}, "note": S}, ["subject"]), ok={"$ref": "#/components/schemas/Case"}),
}
paths["/v1/cases/next"] = {"post": op("nextCase", "Claim the next case", "analyst", "Claims the most urgent unclaimed case of the inbox (yours by auto-assignment first) with a lock that times out (`[cases] lock`). One conditional update: two claimants never get the same case. 404 `no_case` when the inbox is empty; 409 over the per-user cap.",
                                     strict({"inbox": S}, ["inbox"]), ok={"$ref": "#/components/schemas/Case"})}
paths["/v1/cases/{id}"] = {"get": op("getCase", "A case with its timeline", "analyst", "The case, its timeline (decisions with the rules that fired and the values they read, findings, notes, claims, escalations, verdicts), a ring's members, and its actions.", params=[ID])}
for name, summ, role, d, body, req in [
    ("claim", "Claim this case", "analyst", "Claims (or renews your claim on) this case.", None, ()),
    ("release", "Give the case back", "analyst", "Only the lock holder can.", None, ()),
    ("notes", "Add a note", "analyst", "A note on the timeline.", {"text": S}, ["text"]),
    ("tags", "Tag the case", "analyst", "Adds tags (words without commas).", {"tags": {"type": "array", "items": S}}, ["tags"]),
    ("escalate", "Move the case to another inbox", "investigator", "Escalation with a reason; the case becomes open and unclaimed there.", {"inbox": S, "reason": S}, ["inbox", "reason"]),
    ("reopen", "Reopen a resolved case", "investigator", "With a reason; 409 if another case about the subject is open.", {"reason": S}, ["reason"]),
]:
    o = op(f"{name}Case", summ, role, d, strict(body, req) if body is not None else None, [ID], ok={"$ref": "#/components/schemas/Case"})
    paths[f"/v1/cases/{{id}}/{name}"] = {"post": o}
paths["/v1/cases/{id}/verdict"] = {"post": op("verdict", "Resolve the case with a verdict", "analyst",
    "Resolves a case you hold with a disposition and its actions, stored with the verdict in one transaction and delivered by the outbox: labels (`fraud.confirmed` / `legit.confirmed`, through the same path as POST /v1/labels), list entries, a ring ban (every member labelled and put on the ban list, the ring's devices on the device list; a ban of more than one account needs `investigator`), webhooks, and snoozes (the named rules skipped for the case's accounts until `until` or for `ttl`).",
    strict({"disposition": {"enum": ["confirmed_fraud", "legitimate", "not_enough_evidence", "duplicate"]}, "reason": S, "label": {"type": "boolean"}, "ban": {"type": "boolean"}, "order_action": {"enum": ["release", "cancel"]},
            "lists": {"type": "array", "items": strict({"list": S, "value": S, "ttl": S}, ["list", "value"])}, "webhooks": {"type": "array", "items": S},
            "snooze": strict({"rules": {"type": "array", "items": S}, "until": S, "ttl": S}, ["rules"])}, ["disposition"]), [ID])}
paths["/v1/outbox"] = {"get": op("listOutbox", "The outbox", "analyst", "Actions of verdicts and bulk jobs, newest first: kind (label, list, webhook), status, attempts, last error, idempotency key.",
                                 params=[q("status", "pending, done, failed or any"), q("limit", "1–10000 (default 100)", {"type": "integer"})], tag="outbox")}
paths["/v1/outbox/{id}/retry"] = {"post": op("retryAction", "Retry a failed action", "investigator", "Puts a failed action back in the queue, due now.", params=[path("id", "The action id")], tag="outbox")}
BULK = strict({"target": strict({"case": S, "filter": strict({"inbox": S, "status": S})}), "action": {"enum": ["ban", "label_fraud", "resolve_legitimate"]}, "reason": S, "expect_count": {"type": "integer"}}, ["target", "action"])
paths["/v1/bulk/preview"] = {"post": op("bulkPreview", "Count what a bulk job would touch", "investigator", "The accounts (a ring case's members, or the subjects of every unresolved case of a filter), the cap (`[cases] bulk_cap`) and the first 20.", BULK, tag="bulk")}
paths["/v1/bulk"] = {"post": op("bulkRun", "Run a bulk job", "investigator", "Acts on every account of the target: needs `expect_count` equal to the preview's count and a reason; refused over the cap. The job's actions go through the outbox; its progress is GET /v1/bulk/{id}.", BULK, tag="bulk")}
paths["/v1/bulk/{id}"] = {"get": op("bulkGet", "A bulk job's progress", "investigator", "Who ran it, why, and how many of its actions are done or failed.", params=[path("id", "The job id")], tag="bulk")}
paths["/v1/graph/{kind}/{id}"] = {"get": op("graphNeighborhood", "Linked accounts", "analyst", "The entity graph around an account: accounts reachable through shared devices, cards, addresses and payout accounts within `hops` steps, confirmed accounts marked, each with its newest case.",
    params=[path("kind", "`user`"), path("id", "The account"), q("hops", "1–3 (default 2)", {"type": "integer"}), q("max_nodes", "2–2000 (default 300)", {"type": "integer"})], tag="graph")}
paths["/v1/entities/{kind}/{id}/cases"] = {"get": op("entityCases", "An entity's cases and labels", "analyst", "Cases about the entity (as subject or ring member) and the labels verdicts gave it.", params=[path("kind", "Entity kind"), path("id", "Entity id")])}
paths["/v1/rules/stats"] = {"get": op("ruleStats", "Rule dashboard", "analyst", "Hits per enforced rule per hour of event time since the server started, with precision from case verdicts (confirmed fraud / (confirmed + legitimate)), and the policy versions the server has installed (`policy_changes`: version and wall-clock time, newest 100).", tag="rules")}
HTML = {"200": {"description": "The console", "content": {"text/html": {"schema": S}, "text/javascript": {"schema": S}, "text/css": {"schema": S}}},
        "404": {"description": "No such console file", "content": {"text/plain": {"schema": S}}},
        "405": COMMON["405"], "414": COMMON["414"], "500": COMMON["500"]}
for p in ["/console", "/console/"]:
    paths[p] = {"get": {"operationId": "console" + ("Slash" if p.endswith("/") else ""), "summary": "The analyst console", "tags": ["console"], "description": "The console's page (its assets are built into the binary). Open; the console logs in through POST /v1/session.", "security": [], "responses": HTML}}
paths["/console/{file}"] = {"get": {"operationId": "consoleAsset", "summary": "A console asset", "tags": ["console"], "description": "index.html, app.js or app.css. Open.", "security": [], "parameters": [path("file", "The file")], "responses": HTML}}
# ---- safe rule change (P3.4) ----
INT = {"type": "integer"}
VID = {"name": "id", "in": "path", "required": True, "description": "The version number", "schema": INT}
FILES = {"type": "object", "additionalProperties": S, "description": "File name → text: policies by file name (`payments.toml`), value lists as `lists/<file>.toml`"}
L = "versions"
paths["/v1/versions"] = {
    "get": op("listVersions", "Policy versions", "analyst", "The newest versions first (without their files): author, time, message, status (draft, approved, rejected, scheduled, active, retired), origin (console, files, rollback), why each needs approval, and which runs now.",
              params=[q("before", "Versions older than this number", INT), q("limit", "1–500 (default 50)", INT)], tag=L),
    "post": op("createVersion", "Save a draft version", "analyst", "A new draft from whole files. It must compile (422 `invalid_policies` lists every problem); the changes against the running policies decide whether another person must approve it (`[lifecycle.approval]`).",
               strict({"message": S, "files": FILES, "parent": INT}, ["message", "files"]), tag=L),
}
paths["/v1/versions/{id}"] = {"get": op("getVersion", "A version", "analyst", "The version with its files, its reviews, its backtests and its history.", params=[VID], tag=L)}
paths["/v1/versions/{id}/diff"] = {"get": op("versionDiff", "What a version changes", "analyst", "A unified diff per file and the rules added, removed or changed (which fields), against the running policies or another version, and why it needs approval.",
    params=[VID, q("against", "Another version's number (default: what runs now)", INT)], tag=L)}
paths["/v1/versions/{id}/export"] = {"get": op("exportVersion", "A version's files", "analyst", "The files as they would be written to a policy directory (`argus versions export` writes them).", params=[VID], tag=L)}
for name, summ, d in [("approve", "Approve a version", "Nobody approves their own change (403 `not_allowed`)."), ("reject", "Reject a version", "A rejected version cannot be activated; the author may withdraw their own.")]:
    paths[f"/v1/versions/{{id}}/{name}"] = {"post": op(f"{name}Version", summ, "investigator", d, strict({"comment": S}), [VID], tag=L)}
paths["/v1/versions/{id}/activate"] = {"post": op("activateVersion", "Activate a version, now or later", "investigator",
    "Installs the version on the running server (or schedules it for `at`). A version that needs approval must be approved by someone other than its author, unless an admin takes the emergency path (`emergency`: the reason; recorded and flagged). Only when `[lifecycle] source = \"console\"` (409 `files_are_the_source` otherwise).",
    strict({"at": S, "emergency": S}), [VID], tag=L)}
paths["/v1/versions/{id}/rollback"] = {"post": op("rollbackVersion", "Roll back to a version", "investigator", "One step: a new version with the files of a version that was active before, installed at once.", strict({"reason": S}, ["reason"]), [VID], tag=L)}
paths["/v1/policies/check"] = {"post": op("checkPolicies", "Check policy files", "analyst", "What `argus check` reports, located: every problem with its file, rule, byte span, line, column, code and hint (did you mean…), and the rule changes against the running policies with why they would need approval. The console's editor calls it as the analyst types.",
    strict({"files": FILES}, ["files"]), tag=L)}
paths["/v1/policies/running"] = {"get": op("runningPolicies", "The running policies", "analyst", "The policy version decisions name now, and its files.", tag=L)}
paths["/v1/rules/{name}/mode"] = {"post": op("ruleMode", "Move a rule between shadow and enforce", "analyst", "A draft version of the running policies with the rule's mode changed (shadow → enforce promotion); it goes through approval and activation like any version.",
    strict({"mode": {"enum": ["shadow", "enforce"]}, "message": S}, ["mode"]), [path("name", "The rule")], tag=L)}
paths["/v1/lifecycle/history"] = {"get": op("lifecycleHistory", "Who changed what", "analyst", "Records of versions created, reviewed, scheduled and activated, rollbacks, snoozes, the guard's pauses and resumptions, and rollouts, newest first.",
    params=[q("version", "Only this version's", INT), q("limit", "1–1000 (default 100)", INT)], tag=L)}
paths["/v1/backtests"] = {
    "get": op("listBacktests", "Backtests", "analyst", "Backtests, newest first.", params=[q("version", "Only this version's", INT)], tag=L),
    "post": op("startBacktest", "Backtest a version on this server's history", "analyst", "Replays the server's event log through the engine (features point in time, list changes in log order) and decides every event with the running policies and with the version. Returns at once; poll GET /v1/backtests/{id}.",
               strict({"version": INT, "max_events": INT}, ["version"]), tag=L),
}
paths["/v1/backtests/{id}"] = {"get": op("getBacktest", "A backtest's summary", "analyst", "Status, and when done: actions of both sides, hits, precision, recall and money per rule against labels and verdicts, transitions between actions, and the honest users it would add friction for.", params=[{**VID, "description": "The backtest number"}], tag=L)}
paths["/v1/backtests/{id}/changes"] = {"get": op("backtestChanges", "A backtest's decision diff", "analyst", "Each event whose decision changes: from what to what, the rules added and removed with the values they read, and its label.",
    params=[{**VID, "description": "The backtest number"}, q("from", "Position of the first change (default 0)", INT), q("limit", "1–1000 (default 100)", INT)], tag=L)}
paths["/v1/rollout"] = {
    "get": op("getRollout", "The running rollout", "analyst", "The rollout (version, share, salt) and its live comparison: per arm, decisions by action, disagreements with the other arm, fallbacks.", tag=L),
    "post": op("startRollout", "Roll a version out to a share of actors", "investigator", "The version decides for `percent` of actors (stable buckets by actor); the running policies decide for the rest, and for the candidate's share whenever its rules err. Needs the same approval as activation.",
               strict({"version": INT, "percent": {"type": "number"}, "emergency": S}, ["version", "percent"]), tag=L),
}
paths["/v1/rollout/stop"] = {"post": op("stopRollout", "Stop the rollout", "investigator", "Everyone is back on the running policies; the comparison is recorded.", tag=L)}
paths["/v1/rollout/promote"] = {"post": op("promoteRollout", "Promote the rollout's version", "investigator", "Activates the candidate for everyone and ends the rollout (console mode).", tag=L)}
paths["/v1/snoozes"] = {
    "get": op("listSnoozes", "Snoozes", "analyst", "Rules skipped for one entity until a time.", params=[q("all", "Also expired and removed ones", {"type": "boolean"})], tag=L),
    "post": op("createSnooze", "Snooze a rule for one entity", "analyst", "The rule is skipped for events of this entity (the actor, or any field of this entity kind) until `until` or for `ttl`, judged at event time; with a reason.",
               strict({"rule": S, "kind": S, "value": S, "until": S, "ttl": S, "reason": S, "case_id": S}, ["rule", "kind", "value", "reason"]), tag=L),
}
paths["/v1/snoozes/{id}"] = {"delete": op("deleteSnooze", "End a snooze early", "analyst", "The rule applies to the entity again.", params=[{**VID, "description": "The snooze number"}], tag=L)}
paths["/v1/guard"] = {"get": op("getGuard", "The blast-radius guard", "analyst", "Its settings, what each rule learned (hits, events, baseline), the rules it paused and every pause with its figures.", tag=L)}
paths["/v1/guard/pauses/{id}/resume"] = {"post": op("resumeRule", "Resume a paused rule", "investigator", "Only a person resumes a rule the guard paused, with a reason.", strict({"reason": S}, ["reason"]), [{**VID, "description": "The pause number"}], tag=L)}
tags = {t["name"] for t in doc["tags"]}
for t, d in [("cases", "Cases and review queues"), ("outbox", "The durable outbox of verdict actions"), ("bulk", "Bulk work on rings and case lists"), ("console", "Console users, sessions and assets"), ("rules", "Rule dashboards"), ("versions", "Safe rule change: versions, approvals, backtests, rollouts, snoozes and the guard")]:
    if t not in tags:
        doc["tags"].append({"name": t, "description": d})
P.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
print("wrote", P)
