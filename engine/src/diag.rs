//! `diag`: definition diagnostics, located by JSON pointer.
//!
//! Input: problems found by the parse and validate stages (and the sub-language parsers
//! they call). Output: a list shaped like AWS's ValidateStateMachineDefinition diagnostics
//! (`severity`, `code`, `message`, `location`).
//! Never touches: execution.

use std::fmt;

/// How bad a diagnostic is. `Error` makes the definition invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
        }
    }
}

/// Diagnostic codes. Where AWS has a code for the same problem we use its name
/// (`SCHEMA_VALIDATION_FAILED`, `INVALID_JSON_DESCRIPTION`); the others are ours and name
/// the problem.
pub mod code {
    pub const INVALID_JSON: &str = "INVALID_JSON_DESCRIPTION";
    pub const SCHEMA: &str = "SCHEMA_VALIDATION_FAILED";
    pub const MISSING_FIELD: &str = "MISSING_REQUIRED_FIELD";
    pub const UNKNOWN_FIELD: &str = "FIELD_NOT_ALLOWED";
    pub const WRONG_TYPE: &str = "WRONG_VALUE_TYPE";
    pub const OUT_OF_RANGE: &str = "VALUE_OUT_OF_RANGE";
    pub const BAD_ENUM: &str = "INVALID_ENUM_VALUE";
    pub const NO_SUCH_STATE: &str = "MISSING_TRANSITION_TARGET";
    pub const UNREACHABLE: &str = "UNREACHABLE_STATE";
    pub const NO_TERMINAL: &str = "NO_TERMINAL_STATE";
    pub const NEXT_AND_END: &str = "NEXT_AND_END";
    pub const NO_NEXT_OR_END: &str = "MISSING_NEXT_OR_END";
    pub const DUPLICATE_STATE: &str = "DUPLICATE_STATE_NAME";
    pub const BAD_STATE_NAME: &str = "INVALID_STATE_NAME";
    pub const BAD_PATH: &str = "INVALID_JSONPATH";
    pub const BAD_REFERENCE_PATH: &str = "INVALID_REFERENCE_PATH";
    pub const BAD_INTRINSIC: &str = "INVALID_INTRINSIC_FUNCTION";
    pub const BAD_JSONATA: &str = "INVALID_JSONATA";
    pub const BAD_TIMESTAMP: &str = "INVALID_TIMESTAMP";
    pub const BAD_ERROR_EQUALS: &str = "INVALID_ERROR_EQUALS";
    pub const BAD_CHOICE_RULE: &str = "INVALID_CHOICE_RULE";
    pub const BAD_MODE_FIELD: &str = "FIELD_NOT_ALLOWED_IN_QUERY_LANGUAGE";
    pub const BAD_RESOURCE: &str = "INVALID_RESOURCE";
    pub const BAD_VARIABLE: &str = "INVALID_VARIABLE_NAME";
    pub const UNSUPPORTED: &str = "UNSUPPORTED_FEATURE";
}

/// One problem in a definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub message: String,
    /// JSON pointer into the definition, e.g. `/States/Fetch/Retry/0/BackoffRate`.
    pub location: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loc = if self.location.is_empty() { "/" } else { &self.location };
        write!(f, "{}: {} at {}: {}", self.severity.as_str(), self.code, loc, self.message)
    }
}

/// Collects diagnostics; stages report every problem rather than stopping at the first.
#[derive(Default, Debug, Clone)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, code: &'static str, location: impl Into<String>, message: impl Into<String>) {
        self.items.push(Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            location: location.into(),
        });
    }

    pub fn warning(&mut self, code: &'static str, location: impl Into<String>, message: impl Into<String>) {
        self.items.push(Diagnostic {
            severity: Severity::Warning,
            code,
            message: message.into(),
            location: location.into(),
        });
    }

    /// Number of errors (warnings not counted): stages compare it before and after checking
    /// a part, to tell whether that part is usable.
    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.severity == Severity::Error).count()
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/` (RFC 6901).
pub fn pointer_push(base: &str, token: &str) -> String {
    let mut out = String::with_capacity(base.len() + token.len() + 1);
    out.push_str(base);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}
