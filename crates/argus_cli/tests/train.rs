//! `argus train` and `argus eval` end to end on the first month of the handbook's transactions: the
//! model file carries its provenance, the test follows the handbook's protocol, and `argus eval` of the
//! written model reproduces the test figures `argus train` printed. Skips without ../shared/data.

use std::io::{BufRead, Write};
use std::process::Command;

/// Runs `argus` with `args`; it must succeed.
fn argus_ok(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "argus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn read_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The handbook's first 300,000 transactions (2018-04-01 to about 2018-05-01) as a CSV in `dir`, and
/// the repository's root; `None` (a skip, refused in CI) without ../shared/data.
fn month(dir: &std::path::Path) -> Option<(std::path::PathBuf, String)> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = std::env::var("ARGUS_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or(root.join("../shared/data"))
        .join("fraud-handbook/transactions.csv.gz");
    if !data.exists() {
        assert!(
            std::env::var_os("ARGUS_REQUIRE_DATA").is_none(),
            "ARGUS_REQUIRE_DATA is set (CI): a missing input is a failure, not a skip"
        );
        eprintln!("SKIPPED: {} is missing", data.display());
        return None;
    }
    let csv = dir.join("month.csv");
    let r = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
        std::fs::File::open(&data).unwrap(),
    ));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    for line in r.lines().take(300_001) {
        writeln!(w, "{}", line.unwrap()).unwrap();
    }
    Some((root, csv.to_string_lossy().into_owned()))
}

#[test]
fn train_then_eval_on_the_handbook() {
    let dir = tempfile::tempdir().unwrap();
    let Some((root, csv)) = month(dir.path()) else {
        return;
    };
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let config = root
        .join("examples/handbook/argus.toml")
        .to_string_lossy()
        .into_owned();
    let (model, train_json, eval_json) = (p("m.json"), p("train.json"), p("eval.json"));
    let args = [
        "train",
        "--config",
        &config,
        "--input",
        &csv,
        "--train-from",
        "2018-04-08",
        "--trees",
        "60",
        "--out",
        &model,
        "--report-json",
        &train_json,
    ];
    let out = argus_ok(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("trained `fraud`") && stdout.contains("AUC"),
        "{stdout}"
    );

    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    assert_eq!(m["format"], "argus-gbdt/1");
    assert_eq!(m["training"]["label"], "fraud");
    assert_eq!(m["training"]["window_start"], "2018-04-08T00:00:00.000Z");
    assert_eq!(
        m["training"]["deploy_from"], "2018-04-22T00:00:00.000Z",
        "7 training days + the 7-day label delay"
    );
    assert_eq!(m["model"]["features"].as_array().unwrap().len(), 15);
    assert_eq!(m["training"]["data_hash"].as_str().unwrap().len(), 16);

    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&train_json).unwrap()).unwrap();
    assert!(t["test"]["rows"].as_u64().unwrap() > 50_000);
    assert!(t["test"]["auc"].as_f64().unwrap() > 0.7, "{t}");

    // argus eval on the same window reproduces the test figures.
    let args = [
        "eval",
        "--config",
        &config,
        "--input",
        &csv,
        "--model",
        &model,
        "--from",
        "2018-04-22",
        "--days",
        "7",
        "--report-json",
        &eval_json,
    ];
    argus_ok(&args);
    let e = read_json(&eval_json);
    assert_eq!(
        e, t["test"],
        "eval of the written model = the test figures of train"
    );
    // The handbook's protocol leaves out the customers with a fraud already known: fewer rows than
    // the plain protocol (every row of the test days), which is the default.
    let mut handbook = args.to_vec();
    handbook.extend(["--protocol", "handbook"]);
    argus_ok(&handbook);
    let h = read_json(&eval_json);
    let (plain_rows, handbook_rows) = (e["rows"].as_u64().unwrap(), h["rows"].as_u64().unwrap());
    assert!(
        handbook_rows < plain_rows && handbook_rows > plain_rows / 2,
        "handbook {handbook_rows} rows, plain {plain_rows}"
    );
    // A window that is not whole days, from a time, with each row's score written out.
    let scores = dir.path().join("scores.csv").to_string_lossy().into_owned();
    let mut sub_day = args.to_vec();
    sub_day[8] = "2018-04-22T06:00:00Z";
    sub_day.extend(["--window", "36h", "--scores", &scores]);
    argus_ok(&sub_day);
    let w = read_json(&eval_json);
    let lines: Vec<String> = std::fs::read_to_string(&scores)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len() as u64, w["rows"].as_u64().unwrap());
    assert!(lines.len() as u64 > plain_rows / 7 && (lines.len() as u64) < plain_rows / 3);
    assert!(
        lines
            .iter()
            .all(|l| l.as_str() >= "2018-04-22T06:00:00" && l.as_str() < "2018-04-23T18:00:00"),
        "{:?}",
        &lines[..3]
    );

    // A model whose inputs the configuration lacks is refused with a clear message.
    let starter = root
        .join("examples/starter/argus.toml")
        .to_string_lossy()
        .into_owned();
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args([
            "eval",
            "--config",
            &starter,
            "--input",
            &csv,
            "--model",
            &model,
            "--from",
            "2018-04-22",
            "--event",
            "payment.attempt",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Few labels: an unsupervised anomaly model (`--method hbos`: one histogram tree per feature, no
/// labels used, reasons and `argus eval` as for any model), training on a tenth of the positive
/// labels, and positive-unlabelled training (`--method pu`), whose rescaling keeps the ranking of the
/// same model trained on the same few positives while estimating the labelling rate.
#[test]
fn anomaly_and_positive_unlabelled_models_on_the_handbook() {
    let dir = tempfile::tempdir().unwrap();
    let Some((root, csv)) = month(dir.path()) else {
        return;
    };
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let config = root
        .join("examples/handbook/argus.toml")
        .to_string_lossy()
        .into_owned();
    let train = |name: &str, extra: &[&str]| -> (serde_json::Value, serde_json::Value) {
        let (model, report) = (
            p(&format!("{name}.json")),
            p(&format!("{name}.report.json")),
        );
        let mut args = vec![
            "train",
            "--config",
            &config,
            "--input",
            &csv,
            "--train-from",
            "2018-04-08",
            "--trees",
            "60",
            "--out",
            &model,
            "--report-json",
            &report,
        ];
        args.extend_from_slice(extra);
        argus_ok(&args);
        (read_json(&model), read_json(&report))
    };
    let (full, full_r) = train("full", &[]);
    let (hbos, hbos_r) = train("hbos", &["--method", "hbos", "--bins", "16"]);
    assert_eq!(hbos["format"], "argus-gbdt/1");
    assert_eq!(
        hbos["model"]["trees"].as_array().unwrap().len(),
        15,
        "one tree per feature"
    );
    let auc = |r: &serde_json::Value| r["test"]["auc"].as_f64().unwrap();
    // Unsupervised: better than chance on the frauds it never saw labelled, below the supervised model.
    assert!(
        auc(&hbos_r) > 0.6 && auc(&hbos_r) < auc(&full_r),
        "{hbos_r}"
    );
    // It is evaluated, like any model, by `argus eval`: the same figures.
    argus_ok(&[
        "eval",
        "--config",
        &config,
        "--input",
        &csv,
        "--model",
        &p("hbos.json"),
        "--from",
        "2018-04-22",
        "--days",
        "7",
        "--report-json",
        &p("hbos.eval.json"),
    ]);
    assert_eq!(read_json(&p("hbos.eval.json")), hbos_r["test"]);

    let (few, few_r) = train("few", &["--keep-positives", "0.1"]);
    let (pu, pu_r) = train("pu", &["--method", "pu", "--keep-positives", "0.1"]);
    let positives = |m: &serde_json::Value| m["training"]["positives"].as_u64().unwrap();
    assert!(
        positives(&few) * 5 < positives(&full),
        "{} of {}",
        positives(&few),
        positives(&full)
    );
    assert_eq!(positives(&pu), positives(&few));
    let rate = pu["metrics"]["pu_label_rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate <= 1.0, "{rate}");
    // Dividing by the labelling rate is monotone: the ranking, so the AUC, is the same model's.
    assert!((auc(&pu_r) - auc(&few_r)).abs() < 1e-9, "{pu_r} vs {few_r}");
    assert!(pu["model"]["base"].as_f64().unwrap() > few["model"]["base"].as_f64().unwrap());
}
