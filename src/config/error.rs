//! `ConfigError`: what is wrong with one key, and, once the loader has placed it, where the
//! operator set it (issue 18 item 5: "name the key, the file and the line").

use std::fmt;

/// A config that failed to load or validate. `validate` knows the key, the value and what was
/// expected; the loader adds where the value came from, so the one line shown reads
/// `tenantd.toml line 4: limits.enabled = 3: expected true or false` or
/// `TENANTD_MAX_OPEN_TENANTS=-5: expected a whole number in 1..=1000000`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// Dotted key path (`limits.enabled`), when the error is about one key.
    key: Option<String>,
    /// The value as the loaded config holds it (`-5`, `"nowhere"`); none for a table.
    value: Option<String>,
    /// What is wrong: "expected …", or the whole message when there is no key.
    problem: String,
    /// The final line once the loader knows where the value was set.
    placed: Option<String>,
}

impl ConfigError {
    /// A message about no key in particular (an unreadable file, a syntax error).
    pub fn message(message: impl Into<String>) -> Self {
        ConfigError { key: None, value: None, problem: message.into(), placed: None }
    }

    /// `key = value` is not what the key takes: `what` completes "expected …".
    pub fn expected(key: impl Into<String>, value: impl fmt::Display, what: impl fmt::Display) -> Self {
        ConfigError {
            key: Some(key.into()),
            value: Some(value.to_string()),
            problem: format!("expected {what}"),
            placed: None,
        }
    }

    /// Something is wrong with `key` as a whole (e.g. a plan table's name).
    pub fn about(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError { key: Some(key.into()), value: None, problem: problem.into(), placed: None }
    }

    /// The dotted key path this error is about, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// What is wrong, without key or place ("expected true or false").
    pub fn problem(&self) -> &str {
        &self.problem
    }

    /// The value as the loaded config holds it.
    pub(super) fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// Gives the error its final words, naming where the value was set.
    pub(super) fn placed(mut self, line: String) -> Self {
        self.placed = Some(line);
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.placed, &self.key, &self.value) {
            (Some(line), _, _) => f.write_str(line),
            (None, Some(key), Some(value)) => write!(f, "{key} = {value}: {}", self.problem),
            (None, Some(key), None) => write!(f, "{key}: {}", self.problem),
            (None, None, _) => f.write_str(&self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}
