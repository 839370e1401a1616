//! Results as plain text (the terminal) and as an HTML section (reports).

use std::fmt::Write;

use super::{BinomialTest, Results};

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn test_line(name: &str, test: &Option<BinomialTest>) -> String {
    match test {
        Some(t) => format!(
            "{name}: A wins {} of {} ({:.1}%), p = {:.4}, {:.0}% CI [{:.3}, {:.3}]",
            t.successes,
            t.trials,
            100.0 * t.estimate,
            t.p_value,
            100.0 * t.confidence_level,
            t.ci_low,
            t.ci_high
        ),
        None => format!("{name}: no decisive votes yet"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Results {
    /// A short human-readable summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let c = &self.counts;
        let _ = writeln!(
            out,
            "A: {}  ({})",
            self.methods[0].name, self.methods[0].spec
        );
        let _ = writeln!(
            out,
            "B: {}  ({})",
            self.methods[1].name, self.methods[1].spec
        );
        let _ = writeln!(
            out,
            "{} votes on {} queries: A {}  B {}  tie {}  skip {}",
            self.votes, self.queries, c.a, c.b, c.ties, c.skips
        );
        let _ = writeln!(
            out,
            "win rate A {}  B {}  ties {}",
            percent(self.win_rate_a),
            percent(self.win_rate_b),
            percent(self.tie_rate)
        );
        let _ = writeln!(
            out,
            "{}",
            test_line("ties excluded", &self.test_excluding_ties)
        );
        let _ = writeln!(out, "{}", test_line("ties split", &self.test_ties_split));
        if !self.raters.is_empty() {
            let _ = writeln!(
                out,
                "\nrater                 A     B   tie  skip  agrees with majority"
            );
            for r in &self.raters {
                let _ = writeln!(
                    out,
                    "{:<18} {:>4}  {:>4}  {:>4}  {:>4}  {} of {}",
                    r.rater,
                    r.counts.a,
                    r.counts.b,
                    r.counts.ties,
                    r.counts.skips,
                    percent(r.agreement_with_majority),
                    r.compared_with_majority
                );
            }
        }
        for pair in &self.pairs {
            let _ = writeln!(
                out,
                "{} / {}: {} shared, agree {}, kappa {}",
                pair.raters[0],
                pair.raters[1],
                pair.shared,
                percent(pair.agreement),
                pair.cohen_kappa
                    .map_or_else(|| "-".into(), |k| format!("{k:.3}"))
            );
        }
        out
    }

    /// A self-contained `<section>` for an HTML report.
    pub fn to_html_section(&self) -> String {
        let mut out = String::from("<section class=\"arena\">\n<h2>Blind A/B arena</h2>\n");
        let c = &self.counts;
        let _ = writeln!(
            out,
            "<table><tr><th></th><th>method</th><th>wins</th><th>win rate</th></tr>\n<tr><td>A</td><td>{}</td><td>{}</td><td>{}</td></tr>\n<tr><td>B</td><td>{}</td><td>{}</td><td>{}</td></tr>\n<tr><td>tie</td><td></td><td>{}</td><td>{}</td></tr></table>",
            escape(&self.methods[0].name),
            c.a,
            percent(self.win_rate_a),
            escape(&self.methods[1].name),
            c.b,
            percent(self.win_rate_b),
            c.ties,
            percent(self.tie_rate)
        );
        let _ = writeln!(
            out,
            "<p>{} votes ({} skipped) on {} queries by {} raters.</p>",
            self.votes,
            c.skips,
            self.queries,
            self.raters.len()
        );
        let _ = writeln!(
            out,
            "<p>{}</p>",
            escape(&test_line(
                "Exact binomial test, ties excluded",
                &self.test_excluding_ties
            ))
        );
        let _ = writeln!(
            out,
            "<p>{}</p>",
            escape(&test_line("Ties split", &self.test_ties_split))
        );
        out.push_str("</section>\n");
        out
    }
}
