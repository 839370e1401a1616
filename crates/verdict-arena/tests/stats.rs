//! The arena's statistics against scipy and scikit-learn (numbers in
//! tests/fixtures/stats/reference.json, made by make_fixtures.py beside it).

use serde_json::Value;
use verdict_arena::contest::{ContestIdentity, ContestKind, MethodInfo};
use verdict_arena::stats::{self, binomial_test, cohen_kappa};
use verdict_arena::{Choice, Verdict, Vote};

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/stats/reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(actual: f64, expected: f64, what: &str) {
    let tolerance = 1e-10 + 1e-9 * expected.abs();
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} vs scipy {expected}"
    );
}

fn check_test(test: &Option<verdict_arena::stats::BinomialTest>, expected: &Value, what: &str) {
    let test = test.as_ref().unwrap_or_else(|| panic!("{what}: no test"));
    assert_eq!(test.successes, expected["k"].as_u64().unwrap(), "{what}: k");
    assert_eq!(test.trials, expected["n"].as_u64().unwrap(), "{what}: n");
    close(
        test.p_value,
        expected["p_value"].as_f64().unwrap(),
        &format!("{what}: p-value"),
    );
    close(
        test.ci_low,
        expected["ci_low"].as_f64().unwrap(),
        &format!("{what}: ci low"),
    );
    close(
        test.ci_high,
        expected["ci_high"].as_f64().unwrap(),
        &format!("{what}: ci high"),
    );
}

#[test]
fn binomial_test_matches_scipy_binomtest() {
    let reference = reference();
    let cases = reference["binomial"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let (k, n) = (case["k"].as_u64().unwrap(), case["n"].as_u64().unwrap());
        let test = binomial_test(k, n, 0.5, 0.95);
        check_test(&test, case, &format!("binomtest({k}, {n})"));
    }
}

#[test]
fn cohen_kappa_matches_scikit_learn() {
    for case in reference()["kappa"].as_array().unwrap() {
        let strings = |key: &str| -> Vec<String> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        let kappa = cohen_kappa(&strings("first"), &strings("second")).unwrap();
        close(
            kappa,
            case["cohen_kappa"].as_f64().unwrap(),
            "cohen_kappa_score",
        );
    }
}

/// Votes as the store would hold them; sides alternate so the mapping is exercised.
pub fn votes_from(scenario: &Value) -> Vec<Vote> {
    scenario["votes"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, vote)| {
            let verdict = Verdict::parse(vote["verdict"].as_str().unwrap()).unwrap();
            let left_is_a = i % 2 == 0;
            let choice = match (verdict, left_is_a) {
                (Verdict::A, true) | (Verdict::B, false) => Choice::Left,
                (Verdict::A, false) | (Verdict::B, true) => Choice::Right,
                (Verdict::Tie, _) => Choice::Tie,
                (Verdict::Skip, _) => Choice::Skip,
            };
            assert_eq!(choice.verdict(left_is_a), verdict);
            Vote {
                id: i as i64 + 1,
                rater: vote["rater"].as_str().unwrap().into(),
                query_id: vote["query"].as_str().unwrap().into(),
                left_is_a,
                choice,
                verdict,
                cast_at: "2026-01-01T00:00:00.000Z".into(),
                undone_at: None,
            }
        })
        .collect()
}

fn identity() -> ContestIdentity {
    let method = |name: &str| MethodInfo {
        name: name.into(),
        spec: name.into(),
    };
    ContestIdentity {
        kind: ContestKind::Retrieval,
        methods: [method("a"), method("b")],
        queries: 11,
        query_ids_sha256: String::new(),
    }
}

#[test]
fn results_of_vote_scenarios_match_scipy_and_scikit_learn() {
    let reference = reference();
    for name in ["browser", "mixed"] {
        let scenario = &reference["scenarios"][name];
        let mut votes = votes_from(scenario);
        // An undone vote must not count.
        let mut undone = votes[0].clone();
        undone.id = 1000;
        undone.undone_at = Some("2026-01-01T00:00:01.000Z".into());
        votes.push(undone);
        let results = stats::compute(&identity(), &votes);
        let counts = results.counts;
        assert_eq!(
            [counts.a, counts.b, counts.ties, counts.skips],
            ["a", "b", "ties", "skips"].map(|key| scenario[key].as_u64().unwrap()),
            "{name}: counts"
        );
        check_test(
            &results.test_excluding_ties,
            &scenario["excluding_ties"],
            &format!("{name}: ties excluded"),
        );
        check_test(
            &results.test_ties_split,
            &scenario["ties_split"],
            &format!("{name}: ties split"),
        );
        let judged = (counts.a + counts.b + counts.ties) as f64;
        close(
            results.win_rate_a.unwrap(),
            counts.a as f64 / judged,
            "win rate a",
        );
        close(
            results.win_rate_a.unwrap() + results.win_rate_b.unwrap() + results.tie_rate.unwrap(),
            1.0,
            "rates add up",
        );
        let expected_pair = &scenario["pair"];
        let pair = results
            .pairs
            .iter()
            .find(|pair| {
                pair.raters[0] == expected_pair["raters"][0]
                    && pair.raters[1] == expected_pair["raters"][1]
            })
            .unwrap_or_else(|| panic!("{name}: no pair {}", expected_pair["raters"]));
        assert_eq!(
            pair.shared as u64,
            expected_pair["shared"].as_u64().unwrap()
        );
        assert_eq!(
            pair.agreed as u64,
            expected_pair["agreed"].as_u64().unwrap()
        );
        close(
            pair.cohen_kappa.unwrap(),
            expected_pair["cohen_kappa"].as_f64().unwrap(),
            "kappa",
        );
    }
}

#[test]
fn agreement_with_majority_counts_clear_majorities_only() {
    // q1: others say a, a -> compared, agrees. q2: others split a / b -> not compared.
    let vote = |rater: &str, query: &str, verdict: Verdict| Vote {
        id: 0,
        rater: rater.into(),
        query_id: query.into(),
        left_is_a: true,
        choice: Choice::Tie,
        verdict,
        cast_at: String::new(),
        undone_at: None,
    };
    let votes = vec![
        vote("x", "q1", Verdict::A),
        vote("y", "q1", Verdict::A),
        vote("z", "q1", Verdict::A),
        vote("x", "q2", Verdict::B),
        vote("y", "q2", Verdict::A),
        vote("z", "q2", Verdict::B),
    ];
    let results = stats::compute(&identity(), &votes);
    let x = results.raters.iter().find(|r| r.rater == "x").unwrap();
    assert_eq!(x.compared_with_majority, 1);
    assert_eq!(x.agreement_with_majority, Some(1.0));
    let y = results.raters.iter().find(|r| r.rater == "y").unwrap();
    // q1: x, z say a (agrees); q2: x, z say b (y said a).
    assert_eq!(y.compared_with_majority, 2);
    assert_eq!(y.agreement_with_majority, Some(0.5));
    assert!(results.to_text().contains("ties excluded: A wins 4 of 6"));
    assert!(results
        .to_html_section()
        .contains("<section class=\"arena\">"));
}
