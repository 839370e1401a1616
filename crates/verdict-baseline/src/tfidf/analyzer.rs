//! Text to terms, as scikit-learn's `CountVectorizer(analyzer="word")` does it:
//! lowercase, find tokens, drop stop words, then join word n-grams with single spaces.

use foldhash::HashSet;
use std::sync::OnceLock;

use regex::Regex;

use super::config::{StopWords, TfidfConfig};
use crate::error::{BaselineError, Result};

/// scikit-learn's default `token_pattern`.
pub const DEFAULT_TOKEN_PATTERN: &str = r"(?u)\b\w\w+\b";

static STOP_WORDS_TEXT: &str = include_str!("../../data/english_stop_words.txt");
static WORD_RANGES_TEXT: &str = include_str!("../../data/python_word_ranges.txt");

/// scikit-learn's `ENGLISH_STOP_WORDS` (318 words).
pub fn english_stop_words() -> &'static HashSet<String> {
    static WORDS: OnceLock<HashSet<String>> = OnceLock::new();
    WORDS.get_or_init(|| {
        STOP_WORDS_TEXT
            .lines()
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

fn word_ranges() -> &'static [(u32, u32)] {
    static RANGES: OnceLock<Vec<(u32, u32)>> = OnceLock::new();
    RANGES.get_or_init(|| {
        WORD_RANGES_TEXT
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let start = u32::from_str_radix(parts.next()?, 16).ok()?;
                let end = u32::from_str_radix(parts.next()?, 16).ok()?;
                Some((start, end))
            })
            .collect()
    })
}

/// Whether Python's `re` (Unicode mode) matches `c` with `\w`: letters, digits and other
/// numerics, and underscore. Rust's `regex` `\w` also takes combining marks and joiners,
/// which would split and merge tokens differently, hence this table.
#[inline]
pub fn is_python_word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    let code = c as u32;
    let ranges = word_ranges();
    match ranges.binary_search_by(|&(start, _)| start.cmp(&code)) {
        Ok(_) => true,
        Err(0) => false,
        Err(i) => code <= ranges[i - 1].1,
    }
}

/// How tokens are found in (already lowercased) text.
#[derive(Debug, Clone)]
enum Tokenizer {
    /// `(?u)\b\w\w+\b` with Python's `\w`: maximal runs of word characters of length >= 2.
    PythonWordRuns,
    /// Any other pattern, through the `regex` crate; with one capture group the group is the
    /// token (as Python's `findall`).
    Pattern { regex: Regex, use_group: bool },
}

/// Turns a document into its list of terms (unigrams and/or n-grams).
#[derive(Debug, Clone)]
pub struct Analyzer {
    tokenizer: Tokenizer,
    lowercase: bool,
    stop_words: Option<HashSet<String>>,
    ngram_range: (usize, usize),
}

impl Analyzer {
    /// Builds the analyzer for a configuration (validates the pattern and n-gram range).
    pub fn new(config: &TfidfConfig) -> Result<Self> {
        let (min_n, max_n) = config.ngram_range;
        if min_n == 0 || min_n > max_n {
            return Err(BaselineError::config(
                "ngram_range",
                format!("needs 1 <= min_n <= max_n, got ({min_n}, {max_n})"),
            ));
        }
        let tokenizer = if config.token_pattern == DEFAULT_TOKEN_PATTERN {
            Tokenizer::PythonWordRuns
        } else {
            let regex = Regex::new(&config.token_pattern).map_err(|source| {
                BaselineError::TokenPattern {
                    pattern: config.token_pattern.clone(),
                    source: Box::new(source),
                }
            })?;
            let groups = regex.captures_len() - 1;
            if groups > 1 {
                return Err(BaselineError::config(
                    "token_pattern",
                    format!("at most one capturing group is allowed, found {groups}"),
                ));
            }
            Tokenizer::Pattern {
                regex,
                use_group: groups == 1,
            }
        };
        let stop_words = match &config.stop_words {
            StopWords::None => None,
            StopWords::English => Some(english_stop_words().clone()),
            StopWords::List(words) => Some(words.iter().cloned().collect()),
        };
        Ok(Self {
            tokenizer,
            lowercase: config.lowercase,
            stop_words,
            ngram_range: config.ngram_range,
        })
    }

    /// Calls `emit` once per term occurrence of `document`, in scikit-learn's order.
    /// `scratch` is reused between calls to avoid allocating per document.
    pub fn for_each_term(&self, document: &str, scratch: &mut String, mut emit: impl FnMut(&str)) {
        let lowered;
        let text: &str = if self.lowercase {
            lowered = lowercase_like_python(document);
            &lowered
        } else {
            document
        };
        let mut tokens: Vec<&str> = Vec::new();
        self.tokenize(text, |token| {
            let keep = match &self.stop_words {
                Some(words) => !words.contains(token),
                None => true,
            };
            if keep {
                tokens.push(token);
            }
        });
        let (min_n, max_n) = self.ngram_range;
        if min_n == 1 {
            for token in &tokens {
                emit(token);
            }
        }
        for n in min_n.max(2)..=max_n.min(tokens.len()) {
            for window in tokens.windows(n) {
                scratch.clear();
                for (k, token) in window.iter().enumerate() {
                    if k > 0 {
                        scratch.push(' ');
                    }
                    scratch.push_str(token);
                }
                emit(scratch);
            }
        }
    }

    /// All terms of a document as owned strings (convenience for tests and tools).
    pub fn terms(&self, document: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut scratch = String::new();
        self.for_each_term(document, &mut scratch, |t| out.push(t.to_owned()));
        out
    }

    fn tokenize<'t>(&self, text: &'t str, mut emit: impl FnMut(&'t str)) {
        match &self.tokenizer {
            Tokenizer::PythonWordRuns => {
                let mut start: Option<usize> = None;
                let mut chars_in_run = 0usize;
                for (position, c) in text.char_indices() {
                    if is_python_word_char(c) {
                        if start.is_none() {
                            start = Some(position);
                            chars_in_run = 0;
                        }
                        chars_in_run += 1;
                    } else if let Some(s) = start.take() {
                        if chars_in_run >= 2 {
                            emit(&text[s..position]);
                        }
                    }
                }
                if let Some(s) = start {
                    if chars_in_run >= 2 {
                        emit(&text[s..]);
                    }
                }
            }
            Tokenizer::Pattern { regex, use_group } => {
                if *use_group {
                    for captures in regex.captures_iter(text) {
                        emit(captures.get(1).map_or("", |m| m.as_str()));
                    }
                } else {
                    for found in regex.find_iter(text) {
                        emit(found.as_str());
                    }
                }
            }
        }
    }
}

/// Python's `str.lower()`. Rust's `to_lowercase` applies the same Unicode mappings
/// (including the final-sigma rule); ASCII text takes a cheaper path.
pub fn lowercase_like_python(text: &str) -> String {
    if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        text.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer(config: TfidfConfig) -> Analyzer {
        Analyzer::new(&config).expect("valid config")
    }

    #[test]
    fn default_pattern_takes_runs_of_two_or_more_word_chars() {
        let a = analyzer(TfidfConfig::default());
        assert_eq!(
            a.terms("I can't go_to Zürich, a 42x!"),
            vec!["can", "go_to", "zürich", "42x"]
        );
    }

    #[test]
    fn python_word_excludes_combining_marks() {
        // U+0301 COMBINING ACUTE ACCENT is \w for Rust's regex, not for Python's re.
        assert!(!is_python_word_char('\u{301}'));
        assert!(is_python_word_char('é'));
        assert!(is_python_word_char('٣'));
        let a = analyzer(TfidfConfig::default());
        assert_eq!(a.terms("cafe\u{301}s ok"), vec!["cafe", "ok"]);
    }

    #[test]
    fn stop_words_are_removed_before_ngrams() {
        let config = TfidfConfig {
            stop_words: StopWords::English,
            ngram_range: (1, 2),
            ..TfidfConfig::default()
        };
        let a = analyzer(config);
        assert_eq!(
            a.terms("the quick brown fox"),
            vec!["quick", "brown", "fox", "quick brown", "brown fox"]
        );
        assert_eq!(english_stop_words().len(), 318);
    }

    #[test]
    fn custom_pattern_with_group_uses_the_group() {
        let config = TfidfConfig {
            token_pattern: r"#(\w+)".into(),
            ..TfidfConfig::default()
        };
        assert_eq!(analyzer(config).terms("a #tag and #b"), vec!["tag", "b"]);
    }
}
