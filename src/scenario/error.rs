//! Scenario errors: file, line, column, the offending key or value, and the closest valid
//! spelling when a name is misspelt.

use std::path::{Path, PathBuf};

/// Why a scenario cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// File.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// The file is not a valid scenario; the message names line, column and what is wrong.
    #[error("{}", invalid_text(path, *line, *column, message))]
    Invalid {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong (and the closest valid spelling, if any).
        message: String,
    },
    /// The run was stopped by a budget (exit code 5).
    #[error("{0}")]
    Budget(#[from] crate::budget::BudgetError),
}

/// `FILE:LINE:COLUMN: message`, or `FILE: message` for an error without a position in
/// the file (line 0: a `--set` override, say).
fn invalid_text(path: &Path, line: usize, column: usize, message: &str) -> String {
    if line == 0 {
        format!("{}: {message}", path.display())
    } else {
        format!("{}:{line}:{column}: {message}", path.display())
    }
}

impl ScenarioError {
    /// An error at byte offset `at` of `source`.
    pub fn at(path: &Path, source: &str, at: usize, message: impl Into<String>) -> Self {
        let at = at.min(source.len());
        let before = &source[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ScenarioError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// Translate a TOML/serde error, adding the closest valid key or value.
    pub fn from_toml(path: &Path, source: &str, e: &toml::de::Error) -> Self {
        let mut message = e.message().trim().to_string();
        if let Some(hint) = suggestion(&message) {
            message.push_str(&format!(" (did you mean `{hint}`?)"));
        }
        let at = e.span().map_or(0, |s| s.start);
        Self::at(path, source, at, message)
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" and "unknown variant …"
/// messages: the expected name closest to the wrong one.
fn suggestion(message: &str) -> Option<String> {
    let wrong = message.split('`').nth(1)?;
    let (_, rest) = message.split_once("expected")?;
    let candidates: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    closest(wrong, &candidates)
}

/// The candidate closest to `wrong` (normalised Levenshtein), if reasonably close.
pub fn closest(wrong: &str, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (strsim::normalized_levenshtein(wrong, c), *c))
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

/// Apply `--set key=value` overrides to the TOML document. Keys are dotted paths
/// (`machine.cpus`, `scenario.seed`, `task.0.count`: a number indexes a `[[list]]`); values
/// are TOML (`4`, `"lazy"`, `true`, `"5us"`), a bare word being taken as a string.
pub fn apply_sets(path: &Path, source: &str, sets: &[String]) -> Result<String, ScenarioError> {
    let doc: toml::Table =
        toml::from_str(source).map_err(|e| ScenarioError::from_toml(path, source, &e))?;
    let mut root = toml::Value::Table(doc);
    let bad = |message: String| ScenarioError::Invalid {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        message,
    };
    for set in sets {
        let (key, raw) = set
            .split_once('=')
            .ok_or_else(|| bad(format!("--set {set:?}: expected key=value")))?;
        let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
            Ok(mut t) => t.remove("v").expect("parsed"),
            Err(_) => toml::Value::String(raw.to_string()),
        };
        let parts: Vec<&str> = key.trim().split('.').collect();
        set_path(&mut root, &parts, value, key).map_err(bad)?;
    }
    toml::to_string(&root).map_err(|e| bad(e.to_string()))
}

fn set_path(
    node: &mut toml::Value,
    parts: &[&str],
    value: toml::Value,
    key: &str,
) -> Result<(), String> {
    let Some((first, rest)) = parts.split_first() else {
        return Err(format!("--set {key}: empty key"));
    };
    let child = match node {
        toml::Value::Table(t) => {
            if rest.is_empty() {
                t.insert(first.to_string(), value);
                return Ok(());
            }
            t.entry(first.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        }
        toml::Value::Array(a) => {
            let idx: usize = first
                .parse()
                .map_err(|_| format!("--set {key}: `{first}` must index a list (0, 1, ...)"))?;
            let len = a.len();
            let child = a.get_mut(idx).ok_or_else(|| {
                format!("--set {key}: index {idx} out of range, the list has {len}")
            })?;
            if rest.is_empty() {
                *child = value;
                return Ok(());
            }
            child
        }
        _ => return Err(format!("--set {key}: `{first}` is inside a plain value")),
    };
    set_path(child, rest, value, key)
}
