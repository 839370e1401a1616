//! Small HTML helpers: escaping, number formatting, tables.

use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A number with 4 decimals, "n/a" when undefined.
pub fn number(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        _ => "n/a".into(),
    }
}

pub fn percent(value: f64) -> String {
    format!("{:.1}%", value * 100.0)
}

/// A table with a header row; cells are already HTML.
pub struct Table {
    html: String,
}

impl Table {
    pub fn new(class: &str, header: &[&str]) -> Table {
        let mut html = format!("<table class=\"{class}\"><thead><tr>");
        for cell in header {
            let _ = write!(html, "<th>{}</th>", escape(cell));
        }
        html.push_str("</tr></thead><tbody>");
        Table { html }
    }

    /// Adds a row; cells are HTML (escape text yourself).
    pub fn row(&mut self, cells: &[String]) {
        self.row_with_class("", cells);
    }

    pub fn row_with_class(&mut self, class: &str, cells: &[String]) {
        if class.is_empty() {
            self.html.push_str("<tr>");
        } else {
            let _ = write!(self.html, "<tr class=\"{class}\">");
        }
        for cell in cells {
            let _ = write!(self.html, "<td>{cell}</td>");
        }
        self.html.push_str("</tr>");
    }

    pub fn finish(mut self) -> String {
        self.html.push_str("</tbody></table>");
        self.html
    }
}

/// The page's only stylesheet; no fonts or scripts are fetched.
pub const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 0; color: #c8cdd8; font-size: 14px; }
main { padding: 8px 32px 48px 32px; max-width: 1400px; }
section { background: #fff; border: 1px solid #e1e4ea; border-radius: 6px; padding: 12px 20px; margin: 16px 0; }
h2 { font-size: 19px; margin: 8px 0 12px 0; }
h3 { font-size: 16px; margin: 18px 0 8px 0; color: #38414f; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px 0; }
th, td { border-bottom: 1px solid #e6e8ec; padding: 4px 10px; text-align: right; }
th { background: #f0f2f5; font-weight: 600; }
td:first-child, th:first-child { text-align: left; }
tr.best td { background: #e6f4ea; font-weight: 600; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.figures figure { margin: 0; }
.note { color: #5b6474; font-size: 13px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { width: 210px; border: 1px solid #e1e4ea; border-radius: 6px; padding: 8px; font-size: 12px; background: #fbfbfc; }
.card img { max-width: 100%; display: block; margin: 0 auto 6px auto; border-radius: 4px; }
.card .id { font-weight: 600; word-break: break-all; }
.card .text { color: #38414f; max-height: 6em; overflow: hidden; margin: 4px 0; }
.card .missing { color: #a33; }
.badge { display: inline-block; padding: 1px 6px; border-radius: 8px; background: #e8ecf3; margin-right: 4px; }
.badge.demote { background: #fbe3e3; } .badge.review { background: #fff2cc; } .badge.keep { background: #e6f4ea; }
nav a { color: #9fc3ff; margin-right: 14px; font-size: 14px; }
"#;
