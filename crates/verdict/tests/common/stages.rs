//! Reading the closing stage table `verdict run` prints on stderr, shared by the run tests.

/// `(stage, status)` rows of the last stage table in `stderr`.
pub fn stage_statuses(stderr: &str) -> Vec<(String, String)> {
    let table = stderr
        .rsplit_once("stage      status")
        .map(|(_, t)| t)
        .unwrap_or("");
    table
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let (stage, rest) = l.split_once(' ').unwrap_or((l, ""));
            (stage.to_string(), rest.trim().to_string())
        })
        .collect()
}

/// The status of `stage`; panics with the whole table when the stage is absent.
pub fn status_of<'a>(statuses: &'a [(String, String)], stage: &str) -> &'a str {
    statuses
        .iter()
        .find(|(s, _)| s == stage)
        .map(|(_, status)| status.as_str())
        .unwrap_or_else(|| panic!("no stage {stage} in {statuses:?}"))
}
