//! P3.2, "no silent wrong answers": the reproductions from the onboarding report, fixed.
//!
//! - A purchase 100 days after sign-up: `age` must be 100 days, not restarted by `idle_ttl`; with an
//!   explicit, shorter `idle_ttl` the restart is announced (at load and at the end of the replay) and
//!   counted in the summary.
//! - A label whose bad class is 0 (`positive = 0`): read the right way round by features.
//! - Unsorted input: the replay says how many events were too late and what to do.

use std::path::Path;
use std::process::Command;

fn argus(dir: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "argus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const DAY: i64 = 86_400_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01

fn event(id: &str, ty: &str, t: i64, actor: &str, data: serde_json::Value) -> String {
    serde_json::json!({"id": id, "type": ty, "time": t, "actor": actor, "data": data}).to_string()
}

/// `argus check --config file` in `dir`, which must fail: its standard error.
fn check_fails(dir: &Path, file: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["check", "--config", file])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "argus check --config {file} passed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `argus replay -q <args> --out-csv <out>` in `dir`: the feature table written, and standard error.
fn table(dir: &Path, out: &str, args: &[&str]) -> (String, String) {
    let mut all = vec!["replay", "-q"];
    all.extend_from_slice(args);
    all.extend(["--out-csv", out]);
    let (_, err) = argus(dir, &all);
    (std::fs::read_to_string(dir.join(out)).unwrap(), err)
}

/// The feature `column` of each row of a replay's CSV table, in order.
fn column(csv: &str, name: &str) -> Vec<String> {
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let i = head.iter().position(|h| *h == name).unwrap();
    lines
        .map(|l| l.split(',').nth(i).unwrap().to_string())
        .collect()
}

#[test]
fn age_spans_any_gap_by_default_and_a_shorter_idle_ttl_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    for u in 0..3 {
        let user = format!("u{u}");
        events.push(event(
            &format!("r{u}"),
            "account.register",
            T0 + u,
            &user,
            serde_json::json!({}),
        ));
    }
    for u in 0..3 {
        let user = format!("u{u}");
        events.push(event(
            &format!("o{u}"),
            "order.create",
            T0 + 100 * DAY + u,
            &user,
            serde_json::json!({"order": format!("o{u}"), "amount": "10.00", "currency": "EUR"}),
        ));
    }
    std::fs::write(dir.path().join("events.ndjson"), events.join("\n") + "\n").unwrap();
    let features = r#"
[[features]]
name = "user_age"
kind = "age"
events = ["account.register", "order.create"]
key = ["actor"]
"#;
    std::fs::write(dir.path().join("default.toml"), features).unwrap();
    std::fs::write(
        dir.path().join("short.toml"),
        format!("[settings]\nidle_ttl = \"90d\"\n{features}"),
    )
    .unwrap();
    let run = |cfg: &str| {
        let (csv, err) = table(
            dir.path(),
            "out.csv",
            &[
                "--config",
                cfg,
                "--input",
                "events.ndjson",
                "--summary",
                "summary.json",
            ],
        );
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("summary.json")).unwrap(),
        )
        .unwrap();
        (column(&csv, "user_age"), err, summary)
    };
    // The default keeps lifetime state: 100 days, in seconds, at each purchase.
    let (ages, err, summary) = run("default.toml");
    assert_eq!(&ages[3..], ["8640000", "8640000", "8640000"], "{ages:?}");
    assert!(!err.contains("idle_ttl"), "{err}");
    assert_eq!(summary["state"]["stats"]["lifetime_dropped"], 0);
    assert_eq!(summary["warnings"].as_array().unwrap().len(), 0);
    // An explicit 90-day idle_ttl restarts them, and says so twice: when the configuration loads, and
    // at the end with the count.
    let (ages, err, summary) = run("short.toml");
    assert_eq!(&ages[3..], ["0", "0", "0"], "{ages:?}");
    assert!(
        err.contains(
            "warning: settings.idle_ttl = \"90d\": the lifetime features user_age restart"
        ),
        "{err}"
    );
    assert!(err.contains("warning: 3 lifetime states were dropped because their key had no event for idle_ttl = 90d"), "{err}");
    assert_eq!(summary["state"]["stats"]["lifetime_dropped"], 3);
    assert_eq!(summary["warnings"].as_array().unwrap().len(), 1);
    // `argus check` shows the loader's warning too.
    let (_, err) = argus(dir.path(), &["check", "--config", "short.toml"]);
    assert!(
        err.contains("restart for a key that has no event for that long"),
        "{err}"
    );
}

#[test]
fn a_label_whose_bad_class_is_zero_is_read_the_right_way_round() {
    let dir = tempfile::tempdir().unwrap();
    let config = |positive: &str| {
        format!(
            r#"
[entities]
kinds = ["terminal"]

[[event_types]]
name = "payment.attempt"
[event_types.fields]
terminal = {{ type = "id", entity = "terminal" }}
ok = {{ type = "int", label = {{ name = "ok", delay = "1d"{positive} }} }}

[[features]]
name = "terminal_bad_30d"
kind = "sum"
events = ["label.ok"]
key = ["terminal"]
value = "value"
window = "30d"
"#
        )
    };
    std::fs::write(dir.path().join("plain.toml"), config("")).unwrap();
    std::fs::write(dir.path().join("positive.toml"), config(", positive = 0")).unwrap();
    // Three payments at one terminal: `ok = 0` (the bad class) once, `ok = 1` twice; then a payment
    // two days later, when all three labels are known.
    let mut events = Vec::new();
    for (i, ok) in [0, 1, 1].iter().enumerate() {
        events.push(event(
            &format!("p{i}"),
            "payment.attempt",
            T0 + i as i64 * 1000,
            "u1",
            serde_json::json!({"amount": "5.00", "terminal": "t1", "ok": ok}),
        ));
    }
    events.push(event(
        "p3",
        "payment.attempt",
        T0 + 2 * DAY,
        "u2",
        serde_json::json!({"amount": "5.00", "terminal": "t1"}),
    ));
    std::fs::write(dir.path().join("events.ndjson"), events.join("\n") + "\n").unwrap();
    let bad = |cfg: &str| {
        let (csv, _) = table(
            dir.path(),
            "out.csv",
            &["--config", cfg, "--input", "events.ndjson"],
        );
        column(&csv, "terminal_bad_30d").last().unwrap().clone()
    };
    // Read as "non-zero is positive", the two good payments count as bad: upside down.
    assert_eq!(bad("plain.toml"), "2");
    // With `positive = 0` declared, the one bad payment counts.
    assert_eq!(bad("positive.toml"), "1");
    // A positive value of the wrong type is refused at load, with its path.
    std::fs::write(dir.path().join("wrong.toml"), config(", positive = \"no\"")).unwrap();
    let err = check_fails(dir.path(), "wrong.toml");
    assert!(
        err.contains("label.positive") && err.contains("int column"),
        "{err}"
    );
}

#[test]
fn unsorted_input_says_how_many_events_were_too_late_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    for i in (0..100i64).rev() {
        events.push(event(
            &format!("e{i}"),
            "account.login",
            T0 + i * 60_000,
            "u1",
            serde_json::json!({"success": true}),
        ));
    }
    std::fs::write(dir.path().join("events.ndjson"), events.join("\n") + "\n").unwrap();
    let (_, err) = argus(
        dir.path(),
        &[
            "replay",
            "-q",
            "--input",
            "events.ndjson",
            "--summary",
            "s.json",
        ],
    );
    // Newest first: with the default 5 minutes of lateness, the first 6 are accepted (within 5
    // minutes of the first), the other 94 are too late.
    assert!(
        err.contains("warning: 94 of 100 records were too late (more than allowed_lateness = 5m behind the newest event time)")
            && err.contains("replay it with --sort"),
        "{err}"
    );
    // With --sort, every event is accepted and the table is in time order; a buffer of 7 events
    // makes it sort 15 runs on disk and merge them, and a buffer of 1 makes 100 runs, merged in two
    // passes (at most 64 open at once), with the same result.
    for buffer in ["1000", "7", "1"] {
        let (_, err) = argus(
            dir.path(),
            &[
                "replay",
                "-q",
                "--sort",
                "--sort-buffer",
                buffer,
                "--input",
                "events.ndjson",
                "--summary",
                "s.json",
                "--out-csv",
                "sorted.csv",
            ],
        );
        assert!(!err.contains("too late"), "{err}");
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).unwrap())
                .unwrap();
        assert_eq!(
            (s["accepted"].as_u64(), s["too_late"].as_u64()),
            (Some(100), Some(0))
        );
        let csv = std::fs::read_to_string(dir.path().join("sorted.csv")).unwrap();
        let ids: Vec<String> = column(&csv, "event_id");
        let want: Vec<String> = (0..100).map(|i| format!("e{i}")).collect();
        assert_eq!(ids, want, "buffer {buffer}");
    }
}

/// P3.2, "input as it comes": times in the file's own format and zone, rows without an id column
/// (ids from the file name and record number), and a refused time quoted in its error.
#[test]
fn a_csv_with_its_own_time_format_and_no_id_column_replays_as_it_comes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("argus.toml"),
        r#"
[csv]
type = "order.create"
time = "purchase_time"
time_format = "%m/%d/%Y %H:%M"
time_zone = "America/New_York"
actor = "user_id"
[csv.fields]
amount = "purchase_value"
order = "order_id"

[[features]]
name = "user_orders_1d"
kind = "count"
events = ["order.create"]
key = ["actor"]
window = "1d"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        "user_id,order_id,purchase_time,purchase_value\n22058,o1,2/24/2015 22:55,34\n22058,o2,2/25/2015 1:05,12\n22058,o3,24/2/2015 23:00,5\n",
    )
    .unwrap();
    let (csv, err) = table(
        dir.path(),
        "out.csv",
        &[
            "--config",
            "argus.toml",
            "--input",
            "orders.csv",
            "--rejects",
            "rejects.ndjson",
        ],
    );
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    // 22:55 in New York on 24 February is 03:55 UTC on the 25th; ids come from the file and record.
    assert_eq!(
        rows,
        [
            "orders.csv:2,2015-02-25T03:55:00.000Z,order.create,1",
            "orders.csv:3,2015-02-25T06:05:00.000Z,order.create,2",
        ],
        "{csv}\n{err}"
    );
    let rejects = std::fs::read_to_string(dir.path().join("rejects.ndjson")).unwrap();
    assert!(
        rejects.contains("`24/2/2015 23:00` does not match csv.time_format `%m/%d/%Y %H:%M`"),
        "{rejects}"
    );
    // A zone name in the value wins over time_zone; a two-digit year read with %Y is refused,
    // quoting the cell.
    std::fs::write(
        dir.path().join("zoned.toml"),
        "[csv]\ntype = \"order.create\"\ntime = \"t\"\nactor = \"u\"\ntime_format = \"%Y-%m-%d %H:%M:%S %Q\"\ntime_zone = \"Asia/Tokyo\"\n[csv.fields]\norder = \"o\"\namount = \"a\"\n\n[[features]]\nname = \"n\"\nkind = \"count\"\nevents = [\"order.create\"]\nkey = [\"actor\"]\nwindow = \"1d\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("zoned.csv"),
        "u,o,a,t\nu1,o1,5,2015-07-24 22:55:01 America/Los_Angeles\n",
    )
    .unwrap();
    let (out, _) = table(
        dir.path(),
        "zoned-out.csv",
        &["--config", "zoned.toml", "--input", "zoned.csv"],
    );
    assert!(out.contains(",2015-07-25T05:55:01.000Z,"), "{out}");
    std::fs::write(
        dir.path().join("short.toml"),
        "[csv]\ntype = \"order.create\"\ntime = \"t\"\nactor = \"u\"\ntime_format = \"%m/%d/%Y\"\n[csv.fields]\norder = \"o\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("short.csv"), "u,o,t\nu1,o1,2/24/15\n").unwrap();
    argus(
        dir.path(),
        &[
            "replay",
            "-q",
            "--config",
            "short.toml",
            "--input",
            "short.csv",
            "--rejects",
            "rejects.ndjson",
        ],
    );
    let rejects = std::fs::read_to_string(dir.path().join("rejects.ndjson")).unwrap();
    assert!(
        rejects.contains("`2/24/15` does not match csv.time_format `%m/%d/%Y`")
            && rejects.contains("two-digit years need %y")
            && rejects.contains("\"path\":\"/t\""),
        "{rejects}"
    );
    // Without a format, the error quotes the value and names the setting to use.
    std::fs::write(
        dir.path().join("plain.toml"),
        "[csv]\ntype = \"order.create\"\ntime = \"purchase_time\"\nactor = \"user_id\"\n",
    )
    .unwrap();
    argus(
        dir.path(),
        &[
            "replay",
            "-q",
            "--config",
            "plain.toml",
            "--input",
            "orders.csv",
            "--rejects",
            "rejects.ndjson",
        ],
    );
    let rejects = std::fs::read_to_string(dir.path().join("rejects.ndjson")).unwrap();
    assert!(
        rejects.contains("`2/24/2015 22:55` is not a time")
            && rejects.contains("[csv] time_format"),
        "{rejects}"
    );
    // A zone that does not exist is refused when the configuration loads.
    std::fs::write(
        dir.path().join("zone.toml"),
        "[csv]\ntype = \"order.create\"\ntime = \"t\"\nactor = \"u\"\ntime_zone = \"Mars/Olympus\"\n",
    )
    .unwrap();
    let err = check_fails(dir.path(), "zone.toml");
    assert!(err.contains("csv.time_zone: `Mars/Olympus`"), "{err}");
}

/// P3.2, "time since the actor's previous event": the `since_last` kind.
#[test]
fn since_last_is_the_time_since_the_keys_previous_event() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("argus.toml"),
        "[[features]]\nname = \"user_since_last\"\nkind = \"since_last\"\nevents = [\"account.login\", \"order.create\"]\nkey = [\"actor\"]\n",
    )
    .unwrap();
    let login = |id: &str, t: i64, user: &str| {
        event(
            id,
            "account.login",
            t,
            user,
            serde_json::json!({"success": true}),
        )
    };
    let events = [
        login("a", T0, "u1"),
        login("b", T0 + 90_000, "u1"),
        login("c", T0 + 100_000, "u2"),
        login("d", T0 + 300_500, "u1"),
    ];
    std::fs::write(dir.path().join("events.ndjson"), events.join("\n") + "\n").unwrap();
    let (csv, _) = table(
        dir.path(),
        "out.csv",
        &["--config", "argus.toml", "--input", "events.ndjson"],
    );
    assert_eq!(column(&csv, "user_since_last"), ["", "90", "", "210"]);
}

/// P3.2, "one row, several events": the shop table's sign-up and purchase, each an event with its own
/// type, time and fields, replayed in time order with `--sort`; the purchase reads the seconds since
/// the sign-up.
#[test]
fn one_row_becomes_a_sign_up_and_a_purchase() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("argus.toml"),
        r#"
[csv]
id = "user_id"
actor = "user_id"
time_format = "%m/%d/%Y %H:%M:%S"

[[csv.events]]
type = "account.register"
time = "signup_time"
[csv.events.fields]
device = "device_id"

[[csv.events]]
type = "order.create"
time = "purchase_time"
[csv.events.fields]
amount = "purchase_value"
order = "purchase_id"
device = "device_id"

[[features]]
name = "user_since_last"
kind = "since_last"
events = ["account.register", "order.create"]
key = ["actor"]

[[features]]
name = "device_accounts_30d"
kind = "distinct"
events = ["account.register"]
key = ["device"]
value = "actor"
window = "30d"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("shop.csv"),
        "user_id,signup_time,purchase_time,purchase_value,purchase_id,device_id\n\
         22058,02/24/2015 22:55:49,04/18/2015 02:47:11,34,p1,QVPSPJUOCKZAR\n\
         333320,06/07/2015 20:39:50,06/08/2015 01:38:54,16,p2,EOGFQPIZPYXFZ\n\
         1359,01/01/2015 18:52:44,01/01/2015 18:52:45,15,p3,YSSKYOSJHPPLJ\n",
    )
    .unwrap();
    let (csv, _) = table(
        dir.path(),
        "out.csv",
        &["--sort", "--config", "argus.toml", "--input", "shop.csv"],
    );
    let ids = column(&csv, "event_id");
    assert_eq!(
        ids,
        [
            "1359/account.register",
            "1359/order.create",
            "22058/account.register",
            "22058/order.create",
            "333320/account.register",
            "333320/order.create"
        ],
        "{csv}"
    );
    // Seconds from sign-up to purchase: 1 s (the instant purchase), 52 days and 4 hours, 5 hours.
    assert_eq!(
        column(&csv, "user_since_last"),
        ["", "1", "", "4506682", "", "17944"]
    );
    // A type that does not exist is refused when the configuration loads, with its path.
    std::fs::write(
        dir.path().join("bad.toml"),
        "[csv]\nactor = \"u\"\ntime = \"t\"\n[[csv.events]]\ntype = \"order.craete\"\n",
    )
    .unwrap();
    let err = check_fails(dir.path(), "bad.toml");
    assert!(
        err.contains("csv.events[0].type: unknown event type `order.craete`"),
        "{err}"
    );
}

/// P3.2, "a label known at its own column": a click's conversion is known when it happens (its
/// `conversion_time`), a click that did not convert after the fixed delay; the time column is hidden
/// from features like the label itself.
#[test]
fn a_label_is_released_at_its_known_at_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("argus.toml"),
        r#"
[[event_types]]
name = "item.click"
[event_types.fields]
converted = { type = "int", label = { name = "converted", delay = "1d", known_at = "conversion_time" } }
conversion_time = { type = "timestamp" }

[[features]]
name = "user_conversions_7d"
kind = "sum"
events = ["label.converted"]
key = ["actor"]
value = "value"
window = "7d"

[[features]]
name = "seen_conversion_time"
kind = "field"
value = "conversion_time"
"#,
    )
    .unwrap();
    let h = 3_600_000;
    let click = |id: &str, t: i64, conv: Option<i64>| {
        let mut d = serde_json::json!({"item": "i1", "converted": i64::from(conv.is_some())});
        if let Some(c) = conv {
            d["conversion_time"] = serde_json::json!(c);
        }
        event(id, "item.click", t, "u1", d)
    };
    let events = [
        click("c1", T0, Some(T0 + 2 * h)), // converts two hours later
        click("c2", T0 + h, None),         // never converts: 0, known a day later
        click("c3", T0 + 3 * h, None),     // sees c1's conversion (known at T0 + 2h)
    ];
    std::fs::write(dir.path().join("events.ndjson"), events.join("\n") + "\n").unwrap();
    let (csv, _) = table(
        dir.path(),
        "out.csv",
        &["--config", "argus.toml", "--input", "events.ndjson"],
    );
    assert_eq!(
        column(&csv, "user_conversions_7d"),
        ["0", "0", "1"],
        "{csv}"
    );
    assert_eq!(
        column(&csv, "seen_conversion_time"),
        ["", "", ""],
        "the known_at column is hidden"
    );
    // known_at must name a timestamp field of the same type.
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[event_types]]\nname = \"item.click\"\n[event_types.fields]\nconverted = { type = \"int\", label = { name = \"c\", delay = \"1d\", known_at = \"item\" } }\n",
    )
    .unwrap();
    let err = check_fails(dir.path(), "bad.toml");
    assert!(
        err.contains("known_at") && err.contains("must be a timestamp field"),
        "{err}"
    );
}

/// P3.2, `argus init`: a draft configuration from a CSV's columns that loads and replays the file it
/// was drafted from, with what it inferred and why.
#[test]
fn argus_init_drafts_a_configuration_that_replays_its_file() {
    let dir = tempfile::tempdir().unwrap();
    // A click log in its own shape: US-style times, no id column, a device and an IP per click, a
    // conversion flag.
    let mut csv = String::from("click_time,user,device_id,ip_address,ad_id,is_converted\n");
    for i in 0..400u32 {
        csv.push_str(&format!(
            "{}/{}/2024 {:02}:{:02}:{:02},u{},d{},10.0.{}.{},ad{},{}\n",
            3 + i / 200,
            1 + (i / 20) % 10,
            i % 24,
            i % 60,
            (i * 7) % 60,
            i % 37,
            i % 23,
            i % 5,
            i % 11,
            i % 9,
            u32::from(i % 13 == 0)
        ));
    }
    std::fs::write(dir.path().join("clicks.csv"), csv).unwrap();
    let (_, why) = argus(
        dir.path(),
        &["init", "--input", "clicks.csv", "--out", "argus.toml"],
    );
    for said in [
        "time: `click_time`, every sampled value matches `%m/%d/%Y %H:%M:%S`",
        "id: no column is unique",
        "actor: `user`",
        "entity key: `device_id`",
        "label: `is_converted`",
    ] {
        assert!(why.contains(said), "{said}\n{why}");
    }
    let draft = std::fs::read_to_string(dir.path().join("argus.toml")).unwrap();
    assert!(
        draft.contains("time_format = \"%m/%d/%Y %H:%M:%S\"")
            && draft.contains("kind = \"since_last\""),
        "{draft}"
    );
    // The draft loads and replays its own file (sorted: the rows are not in time order).
    argus(dir.path(), &["check", "--config", "argus.toml"]);
    argus(
        dir.path(),
        &[
            "replay",
            "-q",
            "--sort",
            "--config",
            "argus.toml",
            "--input",
            "clicks.csv",
            "--summary",
            "s.json",
        ],
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(
        (s["records"].as_u64(), s["accepted"].as_u64()),
        (Some(400), Some(400)),
        "{s}"
    );
}

/// P3.2, arithmetic between fields and features: an `expression` feature (the rule language) for the
/// seconds from sign-up to purchase and the amount over the 30-day average; a bad expression is
/// refused with its path.
#[test]
fn expression_features_compute_from_fields_and_earlier_features() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("argus.toml"),
        r#"
[[features]]
name = "user_first_seen"
kind = "first_seen"
events = ["account.register", "order.create"]
key = ["actor"]

[[features]]
name = "user_avg_amount_30d"
kind = "avg"
events = ["order.create"]
key = ["actor"]
value = "amount"
window = "30d"

[[features]]
name = "seconds_since_signup"
kind = "expression"
events = ["order.create"]
expression = "event.time - features.user_first_seen"

[[features]]
name = "amount_over_average"
kind = "expression"
events = ["order.create"]
expression = "event.amount / features.user_avg_amount_30d"

[[features]]
name = "fast_purchase"
kind = "expression"
events = ["order.create"]
expression = "features.seconds_since_signup < 60"
"#,
    )
    .unwrap();
    let order = |id: &str, t: i64, amount: &str| {
        event(
            id,
            "order.create",
            t,
            "u1",
            serde_json::json!({"order": id, "amount": amount, "currency": "EUR"}),
        )
    };
    let events = [
        event("r", "account.register", T0, "u1", serde_json::json!({})),
        order("o1", T0 + 30_000, "10.00"),
        order("o2", T0 + 3_600_000, "30.00"),
    ];
    std::fs::write(dir.path().join("events.ndjson"), events.join("\n") + "\n").unwrap();
    let (csv, _) = table(
        dir.path(),
        "out.csv",
        &["--config", "argus.toml", "--input", "events.ndjson"],
    );
    assert_eq!(
        column(&csv, "seconds_since_signup"),
        ["", "30", "3600"],
        "{csv}"
    );
    assert_eq!(
        column(&csv, "amount_over_average"),
        ["", "1", "1.5"],
        "{csv}"
    );
    assert_eq!(column(&csv, "fast_purchase"), ["", "1", "0"], "{csv}");
    // Rules read expression features like any other (they are computed on their event types).
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/orders.toml"),
        r#"
[policy]
checkpoint = "order.create"
version = "t1"

[[rules]]
name = "purchase_right_after_signup"
when = "features.fast_purchase == true && features.amount_over_average >= 1.0"
action = "block"
reason = "An order within a minute of sign-up"

[[tests]]
name = "an order seconds after sign-up is blocked"
prior = [{ type = "account.register", actor = "u1", data = {} }]
event = { type = "order.create", actor = "u1", data = { order = "o1", amount = "10.00", currency = "EUR" } }
expect_action = "block"
"#,
    )
    .unwrap();
    let (out, _) = argus(
        dir.path(),
        &["test", "--config", "argus.toml", "--policies", "policies"],
    );
    assert!(out.contains("1 passed, 0 failed"), "{out}");
    // A name the expression cannot see, and an expression reading a later feature, are refused.
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[features]]\nname = \"x\"\nkind = \"expression\"\nevents = [\"order.create\"]\nexpression = \"event.amout * 2.0\"\n",
    )
    .unwrap();
    let err = check_fails(dir.path(), "bad.toml");
    assert!(
        err.contains("features[0] (x).expression") && err.contains("event.amout"),
        "{err}"
    );
}

/// `argus` in `dir` with `args`, which must fail: its standard error.
fn argus_fails(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "argus {args:?} passed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn model_inputs_are_declared_in_models_and_trained_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let config = |inputs: &str| {
        format!(
            r#"
# A label on another type, declared first: `--model` must train on its own type's label.
[[event_types]]
name = "account.login"
[event_types.fields]
ato = {{ type = "int", label = {{ name = "ato", delay = "30d" }} }}

[[event_types]]
name = "payment.attempt"
[event_types.fields]
fraud = {{ type = "int", label = {{ name = "fraud", delay = "1d" }} }}

[[features]]
name = "user_payments_1d"
kind = "count"
events = ["payment.attempt"]
window = "1d"

[[features]]
name = "user_amount_1d"
kind = "sum"
events = ["payment.attempt"]
value = "amount"
window = "1d"

[[features]]
name = "user_first_seen"
kind = "first_seen"
events = ["payment.attempt"]

[[models]]
name = "fraud_model"
event = "payment.attempt"
path = "models/fraud.json"
inputs = [{inputs}]
"#
        )
    };
    std::fs::write(
        dir.path().join("argus.toml"),
        config("\"user_payments_1d\", \"user_amount_1d\""),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("models")).unwrap();
    // 20 days of payments by 200 users; a fifth of the users are fraudsters who pay large amounts
    // often.
    let mut events = Vec::new();
    let mut rng = 7u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    for i in 0..6_000i64 {
        let u = next(200);
        let bad = u % 5 == 0;
        let amount = if bad { 200 + next(300) } else { 5 + next(120) };
        events.push(event(
            &format!("p{i}"),
            "payment.attempt",
            T0 + i * (20 * DAY / 6_000),
            &format!("u{u}"),
            serde_json::json!({"amount": format!("{amount}.00"), "fraud": i64::from(bad)}),
        ));
    }
    std::fs::write(dir.path().join("events.ndjson"), events.join("\n") + "\n").unwrap();
    let train = [
        "train",
        "--config",
        "argus.toml",
        "--input",
        "events.ndjson",
        "--train-from",
        "2026-01-01",
        "--train-days",
        "12",
        "--test-days",
        "5",
    ];
    // Declared but not trained yet: the configuration cannot serve...
    let err = check_fails(dir.path(), "argus.toml");
    assert!(
        err.contains("models.fraud_model: path: cannot read"),
        "{err}"
    );
    // ...and `argus train --model` writes the declared file, on the declared inputs only.
    let mut args = train.to_vec();
    args.extend(["--model", "fraud_model"]);
    let (out, err) = argus(dir.path(), &args);
    let model: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("models/fraud.json")).unwrap(),
    )
    .unwrap();
    let text = model.to_string();
    assert!(
        text.contains("user_payments_1d")
            && text.contains("user_amount_1d")
            && !text.contains("user_first_seen"),
        "{out}{err}"
    );
    assert!(out.contains("trained `fraud_model`"), "{out}");
    assert_eq!(model["training"]["label"], "fraud", "{}", model["training"]);
    assert_eq!(model["training"]["label_delay"], "86400000ms");
    // Now the configuration loads, model and all.
    argus(dir.path(), &["check", "--config", "argus.toml"]);
    // The inputs are declared once: --features beside them is refused, as is an unknown name.
    let mut both = args.clone();
    both.extend(["--features", "user_first_seen"]);
    let err = argus_fails(dir.path(), &both);
    assert!(err.contains("declares its inputs"), "{err}");
    let mut unknown = train.to_vec();
    unknown.extend(["--model", "fraud"]);
    let err = argus_fails(dir.path(), &unknown);
    assert!(err.contains("declares fraud_model"), "{err}");
    // Declared inputs that the file was not trained on: refused, saying how to retrain.
    std::fs::write(
        dir.path().join("argus.toml"),
        config("\"user_payments_1d\""),
    )
    .unwrap();
    let err = check_fails(dir.path(), "argus.toml");
    assert!(
        err.contains("in the file but not declared: [user_amount_1d]")
            && err.contains("argus train --model fraud_model"),
        "{err}"
    );
    // An input that is not a feature of the type is refused at load, even before training.
    std::fs::write(dir.path().join("argus.toml"), config("\"user_amount_7d\"")).unwrap();
    let err = argus_fails(dir.path(), &args);
    assert!(
        err.contains("input `user_amount_7d` is not a configured feature"),
        "{err}"
    );
}

#[test]
fn argus_init_drafts_a_configuration_from_ndjson_events() {
    let dir = tempfile::tempdir().unwrap();
    // A new event type (ad clicks: an app id shared by many users, a channel, a price, a conversion
    // flag) and a built-in one with a field the schema lacks.
    let mut events = Vec::new();
    for i in 0..300i64 {
        events.push(event(
            &format!("c{i}"),
            "ad.click",
            T0 + i * 60_000,
            &format!("u{}", i % 40),
            // Shapes the decoder is strict about: a string of digits (an id, not an integer), a 0/1
            // number that is not a label (an integer, not a boolean), a boolean whose name
            // contains "id" (`paid`: not an id).
            serde_json::json!({"app": format!("a{}", i % 7), "channel": format!("ch{}", i % 3),
                "bid_price": (i % 11) as f64 + 0.5, "converted": i % 9 == 0,
                "merchant_id": format!("{}", 10_000 + i % 13), "is_mobile": i % 2, "paid": i % 3 == 0}),
        ));
        if i % 10 == 0 {
            events.push(event(
                &format!("l{i}"),
                "account.login",
                T0 + i * 60_000 + 1,
                &format!("u{}", i % 40),
                serde_json::json!({"success": true, "device": format!("d{}", i % 5), "risk_hint": "low"}),
            ));
        }
    }
    std::fs::write(dir.path().join("clicks.ndjson"), events.join("\n") + "\n").unwrap();
    let (_, err) = argus(
        dir.path(),
        &["init", "--input", "clicks.ndjson", "--out", "clicks.toml"],
    );
    for want in [
        "read 330 events of clicks.ndjson (2 types: account.login, ad.click)",
        "ad.click: entity key `app` (7 distinct values in 300 events)",
        "ad.click: label `converted` (two values)",
        "ad.click: new type (300 events): 7 fields declared",
        "account.login: built-in type (30 events): 1 field declared",
    ] {
        assert!(err.contains(want), "missing `{want}` in:\n{err}");
    }
    let cfg = std::fs::read_to_string(dir.path().join("clicks.toml")).unwrap();
    for want in [
        "bid_price = { type = \"decimal\" }",
        "merchant_id = { type = \"id\", entity = \"merchant\" }",
        "is_mobile = { type = \"int\" }",
        "paid = { type = \"bool\" }",
    ] {
        assert!(cfg.contains(want), "missing `{want}` in:\n{cfg}");
    }
    assert!(cfg.contains("risk_hint = { type = \"string\" }"), "{cfg}");
    // The draft replays its own file, every event accepted, with the drafted features.
    let (csv, _) = table(
        dir.path(),
        "out.csv",
        &["--config", "clicks.toml", "--input", "clicks.ndjson"],
    );
    let per_app = column(&csv, "app_ad_click_1d");
    assert_eq!(per_app.len(), 330);
    // The 300th click (app a5): 42 earlier clicks on a5 today, and itself.
    let last_click = csv
        .lines()
        .skip(1)
        .position(|l| l.starts_with("c299,"))
        .unwrap();
    assert_eq!(
        per_app[last_click],
        "43",
        "{}",
        csv.lines().nth(last_click + 1).unwrap()
    );
    // A table of records that are not events: refused, pointing to CSV.
    std::fs::write(
        dir.path().join("rows.jsonl"),
        "{\"user\": \"u1\", \"amount\": 3}\n",
    )
    .unwrap();
    let err = argus_fails(dir.path(), &["init", "--input", "rows.jsonl"]);
    assert!(
        err.contains("not an Argus event") && err.contains("CSV"),
        "{err}"
    );
}
