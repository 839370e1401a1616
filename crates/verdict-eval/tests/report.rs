//! End to end: predictions files -> `evaluate_files` -> report.html checked in a real headless
//! Chromium (Debian package `chromium`; CI must install it), plus metrics.json and
//! classification_report.json checked against the library's own numbers.

use std::path::{Path, PathBuf};
use std::process::Command;

use verdict_eval::prediction::{self, Prediction};
use verdict_eval::{
    evaluate_files, CostMatrix, DecisionCosts, EvalSpec, PolicyThresholds, TaskKind,
};

/// A tiny deterministic generator so the test data needs no rand dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn labels() -> Vec<String> {
    vec!["ham".into(), "spam".into()]
}

/// `skill` in [0, 1]: how well positive probabilities separate the classes.
fn binary_rows(model: &str, skill: f64, count: usize, seed: u64, image: &Path) -> Vec<Prediction> {
    let mut random = Lcg(seed);
    (0..count)
        .map(|i| {
            let is_spam = i % 3 == 0;
            let noise = random.next();
            let p = ((if is_spam {
                0.5 + skill * 0.5
            } else {
                0.5 - skill * 0.5
            }) * 0.6
                + noise * 0.4)
                .clamp(0.0, 1.0);
            let predicted = if p >= 0.5 { "spam" } else { "ham" };
            let with_image = i % 4 != 0;
            Prediction {
                sample_id: format!("s{i:04}"),
                true_labels: vec![if is_spam { "spam" } else { "ham" }.into()],
                predicted_labels: vec![predicted.into()],
                probabilities: [("ham".to_string(), 1.0 - p), ("spam".to_string(), p)]
                    .into_iter()
                    .collect(),
                reason: Some(format!(
                    "{model} saw {} <b>markup</b> & co",
                    if p >= 0.5 { "offers" } else { "a greeting" }
                )),
                decision: Some(
                    PolicyThresholds {
                        review: 0.4,
                        demote: 0.8,
                    }
                    .decide(p),
                ),
                slices: [(
                    "image".to_string(),
                    if with_image { "present" } else { "missing" }.to_string(),
                )]
                .into_iter()
                .collect(),
                model_id: model.into(),
                run_id: "run-7".into(),
                input_text: Some(format!("message {i}: win a prize now")),
                image_path: with_image.then(|| image.display().to_string()),
            }
        })
        .collect()
}

fn write_png(path: &Path) {
    let image = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, 160])
    });
    image.save(path).unwrap();
}

fn spec() -> EvalSpec {
    let mut spec = EvalSpec::new("spam", TaskKind::BinaryPolicy, labels());
    spec.positive_label = Some("spam".into());
    spec.thresholds = Some(PolicyThresholds {
        review: 0.4,
        demote: 0.8,
    });
    spec.cost_matrix = Some(CostMatrix {
        negative: DecisionCosts {
            keep: 0.0,
            review: 1.0,
            demote: 8.0,
        },
        positive: DecisionCosts {
            keep: 5.0,
            review: 1.0,
            demote: 0.0,
        },
    });
    spec.bootstrap_resamples = 200;
    spec.seed = 3;
    spec
}

/// Chromium from Debian (or `VERDICT_CHROMIUM`); fails clearly when absent.
fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("VERDICT_CHROMIUM") {
        assert!(Path::new(&path).exists(), "VERDICT_CHROMIUM={path} does not exist; install Chromium (`apt-get install -y chromium`)");
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(output) = Command::new("which").arg(name).output() {
            if output.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            }
        }
    }
    panic!("this test renders the report in a real browser: install Chromium (`apt-get install -y chromium`) or set VERDICT_CHROMIUM");
}

fn headless(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

#[test]
fn report_renders_in_chromium_with_every_section() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("thumb.png");
    write_png(&image);
    let paths: Vec<PathBuf> = [("baseline", 0.2, 11), ("finetuned", 0.7, 12)]
        .iter()
        .map(|(model, skill, seed)| {
            let path = dir.path().join(format!("{model}.parquet"));
            prediction::write(
                &path,
                &binary_rows(model, *skill, 240, *seed, &image),
                &labels(),
            )
            .unwrap();
            path
        })
        .collect();
    let validation = dir.path().join("validation.csv");
    prediction::write(
        &validation,
        &binary_rows("baseline", 0.2, 120, 99, &image),
        &labels(),
    )
    .unwrap();
    let out = dir.path().join("eval");
    let summary = evaluate_files(&paths, Some(&validation), &spec(), &out).unwrap();

    // metrics.json holds the same numbers the library computed.
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let finetuned = &summary.models[1];
    assert_eq!(
        metrics["models"][1]["metrics"]["macro_f1"].as_f64(),
        finetuned.metrics.get("macro_f1")
    );
    assert!(
        finetuned.metrics.get("macro_f1").unwrap()
            > summary.models[0].metrics.get("macro_f1").unwrap()
    );
    let comparison = summary.comparison.as_ref().unwrap();
    let (lower, upper) = comparison.entries[1].macro_f1_uplift_interval.unwrap();
    let uplift = comparison.entries[1].macro_f1_uplift.unwrap();
    assert!(
        lower <= uplift && uplift <= upper,
        "{lower} <= {uplift} <= {upper}"
    );
    // The validation file is the baseline's: it calibrates and sweeps the baseline only.
    let baseline = &summary.models[0];
    assert!(baseline
        .policy
        .as_ref()
        .unwrap()
        .swept_on
        .contains("validation"));
    assert_eq!(
        baseline.calibration.as_ref().unwrap().validation_samples,
        120
    );
    assert!(finetuned
        .calibration
        .as_ref()
        .unwrap()
        .fitted_on
        .contains("cross-fitting"));
    let policy = finetuned.policy.as_ref().unwrap();
    assert!(policy.swept_on.starts_with("test rows"));
    let chosen = policy.chosen_on_test.unwrap();
    assert_eq!(chosen.keep + chosen.review + chosen.demote, 240);
    assert_eq!(
        finetuned.slices[0]
            .values
            .iter()
            .map(|v| v.count)
            .sum::<usize>(),
        240
    );
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("classification_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["finetuned"]["spam"]["support"].as_u64(), Some(80));
    assert_eq!(
        report["finetuned"]["accuracy"].as_f64(),
        finetuned.metrics.get("accuracy")
    );

    // The page as Chromium parsed it.
    let browser = chromium();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", summary.report_path.display());
    let output = Command::new(&browser)
        .args(headless(profile.path()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dom = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "Evaluation report: spam",
        "Comparison with baseline baseline",
        "Model finetuned",
        "Confusion",
        "Precision-recall and ROC curves",
        "Keep / review / demote policy",
        "chosen (on test)",
        "Calibration",
        "temperature",
        "isotonic",
        "Slice: image",
        "true positives (spam caught)",
        "false negatives (spam missed)",
        "data:image/png;base64,",
        "&lt;b&gt;markup&lt;/b&gt; &amp; co",
    ] {
        assert!(
            dom.contains(expected),
            "the rendered page lacks {expected:?}"
        );
    }
    assert!(!dom.contains("<b>markup</b>"), "model text must be escaped");
    assert!(
        dom.matches("<svg").count() >= 8,
        "expected heatmaps, PR/ROC curves and reliability diagrams as inline SVG"
    );
    // The SVG namespace URI is an identifier, not a fetch; nothing may be loaded from elsewhere.
    for fetch in [
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
        "<script",
        "<link",
    ] {
        assert!(
            !dom.contains(fetch),
            "the report must not load anything ({fetch})"
        );
    }

    // A screenshot that is not blank: many distinct colours means text, tables and plots drew.
    let screenshot = std::env::var("VERDICT_REPORT_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("report.png"));
    let status = Command::new(&browser)
        .args(headless(profile.path()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1280,2400")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "chromium screenshot failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    if std::env::var_os("VERDICT_REPORT_SCREENSHOT").is_some() {
        std::fs::copy(&summary.report_path, screenshot.with_extension("html")).unwrap();
    }
    let shot = image::open(&screenshot).unwrap().to_rgb8();
    assert_eq!((shot.width(), shot.height()), (1280, 2400));
    let colours: std::collections::HashSet<[u8; 3]> =
        shot.pixels().step_by(7).map(|p| p.0).collect();
    assert!(
        colours.len() > 50,
        "screenshot looks blank ({} colours)",
        colours.len()
    );
}

#[test]
fn multiclass_and_multilabel_reports_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let three: Vec<String> = ["nsfw", "sfw", "grey_area"].map(String::from).to_vec();
    let mut random = Lcg(5);
    let rows: Vec<Prediction> = (0..90)
        .map(|i| {
            let truth = &three[i % 3];
            let guess = if random.next() < 0.7 {
                truth.clone()
            } else {
                three[(i + 1) % 3].clone()
            };
            let mut probabilities: std::collections::BTreeMap<String, f64> =
                three.iter().map(|l| (l.clone(), 0.15)).collect();
            probabilities.insert(guess.clone(), 0.7);
            Prediction {
                sample_id: format!("m{i}"),
                true_labels: vec![truth.clone()],
                predicted_labels: vec![guess],
                probabilities,
                model_id: "zero-shot".into(),
                ..Default::default()
            }
        })
        .collect();
    let spec = EvalSpec::new("content", TaskKind::MultiClass, three.clone());
    let summary = verdict_eval::evaluate(&rows, &spec, &dir.path().join("multiclass")).unwrap();
    assert_eq!(summary.models[0].confusion[0].total(), 90);
    assert_eq!(summary.models[0].curves.len(), 3);
    let calibration = summary.models[0].calibration.as_ref().unwrap();
    assert_eq!(calibration.methods.len(), 3);
    assert!(std::fs::read_to_string(&summary.report_path)
        .unwrap()
        .contains("true sfw predicted grey_area"));

    let multi: Vec<Prediction> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| Prediction {
            true_labels: three
                .iter()
                .enumerate()
                .filter(|(k, _)| (i >> k) & 1 == 1)
                .map(|(_, l)| l.clone())
                .collect(),
            predicted_labels: three
                .iter()
                .enumerate()
                .filter(|(k, _)| ((i + i / 7) >> k) & 1 == 1)
                .map(|(_, l)| l.clone())
                .collect(),
            ..row.clone()
        })
        .collect();
    let spec = EvalSpec::new("tags", TaskKind::MultiLabel, three);
    let summary = verdict_eval::evaluate(&multi, &spec, &dir.path().join("multilabel")).unwrap();
    let model = &summary.models[0];
    assert_eq!(model.confusion.len(), 3);
    for name in ["samples_f1", "hamming_loss", "micro_f1"] {
        assert!(model.metrics.get(name).is_some(), "{name}");
    }
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("multilabel/classification_report.json")).unwrap(),
    )
    .unwrap();
    assert!(report["zero-shot"]["samples avg"].is_object());
}

#[test]
fn mismatched_files_fail_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("missing.png");
    let first = dir.path().join("a.csv");
    let second = dir.path().join("b.csv");
    let rows = binary_rows("a", 0.5, 20, 1, &image);
    prediction::write(&first, &rows, &labels()).unwrap();
    prediction::write(&second, &rows[..19], &labels()).unwrap();
    let message = evaluate_files(&[first, second], None, &spec(), &dir.path().join("out"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("b.csv") && message.contains("\"s0019\"") && message.contains("missing"),
        "{message}"
    );
}
