//! `choice`: JSONPath-mode Choice rules, compiled once and evaluated against an [`Env`].
//!
//! Input: one Choice rule object from a definition (a `serde_json::Value` and its JSON
//! pointer) at compile time; an [`Env`] (`$`, `$$`, variables) at run time. Output: a
//! [`Rule`] tree, or diagnostics located by pointer; at run time `true`/`false` or an
//! [`EvalError`].
//! Never touches: `Next`, `Assign`, `Comment` and `Default` (the caller compiles the
//! transitions and assignments; this module only accepts those fields where they may
//! appear), JSONata `Condition`s, the program layout, execution state.
//!
//! # Semantics, and the evidence for each
//!
//! The recorded cases are the 330 `tests/conformance/cases/choice_operators__*` executions
//! (AWS, June 2023, via LocalStack's snapshot suite); `engine/tests/suite/choice_cases.rs` runs
//! every one of them, and the JSONPath `choice__*` cases, through this module.
//!
//! - **A type mismatch is false, never an error** (recorded: `NumericEquals` on null,
//!   strings, arrays, objects and booleans; `StringEquals` on numbers, null, arrays,
//!   objects and booleans; `BooleanEquals` on 0, 1, "" and arrays; `TimestampEquals` on
//!   numbers, booleans and `"2023-02-24 12:15:56.832957"`). The AWS guide says the same:
//!   "Step Functions doesn't attempt to match a numeric field to a string value".
//! - **Numbers compare as IEEE doubles**: `0` equals `0.0` (recorded, `numeric_equals__008`
//!   and `numeric_equals_path__005`). Integers beyond 2^53 lose precision, as the AWS guide
//!   warns.
//! - **Strings order by Java's `String.compareTo`**, UTF-16 code units (the AWS guide links
//!   the Java documentation); [`java_compare`] implements it without allocating.
//!   `StringEquals` is exact, code unit for code unit (recorded: `"\t\n"` is not
//!   `"\t\r\n"`).
//! - **Timestamps compare as instants**, parsed by [`crate::timestamp::parse`]; a string
//!   that does not parse is a type mismatch (recorded: `timestamp_equals__007`).
//! - **`StringMatches`**: only `*` is special and matches any run of characters, the empty
//!   run included; `\*` is a literal `*` and `\\` a literal backslash; the whole string must
//!   match (ASL specification and AWS guide). A backslash before any other character, or at
//!   the end, is a literal backslash: neither source says, and nothing is recorded.
//! - **`Is*` tests** look at the JSON type only: `IsNumeric` is false for `"1"`, `IsString`
//!   is true for timestamp-shaped strings, `IsNull` only for JSON null (all recorded).
//!   `IsTimestamp` is true for strings [`crate::timestamp::parse`] accepts (not recorded:
//!   LocalStack skips that test against AWS).
//! - **A `Variable` that selects nothing fails the execution** with `States.Runtime`:
//!   "Invalid path '$.x': The choice state's condition path references an invalid value."
//!   (the VM prefixes AWS's "An error occurred while executing the state …" sentence). The
//!   wording is quoted from real executions in several public projects, e.g.
//!   "Invalid path '$.processing_type': The choice state's condition path references an
//!   invalid value." after the standard prefix; the AWS guide's example says the execution
//!   fails when `$.type` is missing.
//! - **`IsPresent` is the exception**: a missing variable is `IsPresent: false` (AWS guide;
//!   recorded for present values of every type). Every other operator, `IsNull` and the other
//!   `Is*` tests included, fails on a missing variable: the guide names only `IsPresent` as
//!   the guard, which is also how the `And: [IsPresent, …]` idiom it documents works. Not
//!   recorded for `IsNull`; LocalStack instead treats a missing variable as "not null".
//! - **A `…Path` operand that selects nothing fails the same way**, naming the operand's
//!   path ("Invalid path '$.missing': The choice state's condition path references an invalid
//!   value."), and it is read before the variable's type is looked at. Evidence: the
//!   `ManageIQ/floe` test fixture whose comments record AWS's results for each case; not
//!   recorded here.
//! - **A `…Path` operand of the wrong type** (same fixture, not recorded here): for the
//!   `…EqualsPath` operators it is a mismatch, hence false (`NumericEqualsPath` to a string,
//!   `StringEqualsPath` between two numbers); for the ordering operators it fails with
//!   `States.Runtime` "Invalid value provided at path '$.num2'" (`StringGreaterThanPath`
//!   between two numbers), while a wrongly typed variable against a well-typed operand is
//!   still just false (`StringGreaterThanPath` from a number to a string). A timestamp
//!   operand that does not parse counts as the wrong type.
//! - **`And`/`Or` short-circuit left to right**, so `And: [IsPresent, StringEquals]` never
//!   reads a missing field (AWS guide).
//! - **Definitions**: a rule has exactly one of `And`/`Or` (non-empty arrays), `Not` (a rule
//!   object) or `Variable` plus exactly one operator; operand types are checked when the
//!   definition is compiled (AWS rejects `NumericEquals: "abc"` when it is created, per the
//!   same fixture; the ASL schema types every operator). Nested rules may not carry `Next`
//!   or `Assign`; `Comment` is accepted everywhere. `Variable` and `…Path` operands may be
//!   any path the `paths` module parses, rooted at `$`, `$$` or `$name`; the AWS guide asks
//!   for reference paths, but no recording shows AWS rejecting a wildcard, so none is
//!   rejected here (an indefinite path yields an array, which no operator but `IsPresent`
//!   and the `Is*` tests matches).

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value as Json;

use crate::diag::{code, pointer_push, Diagnostics, Severity};
use crate::eval::{Env, EvalError};
use crate::intern::Interner;
use crate::paths::{Path, Root};
use crate::timestamp::{self, Timestamp};
use crate::value::Value;

/// How deeply `And`/`Or`/`Not` may nest. Definitions parsed from text cannot get near it
/// (serde_json stops at 128 levels of JSON); it bounds recursion for values built in code.
pub const MAX_NESTING: usize = 100;

/// A compiled Choice rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// True when every rule is, evaluated left to right until one is false.
    And(Box<[Rule]>),
    /// True when any rule is, evaluated left to right until one is true.
    Or(Box<[Rule]>),
    Not(Box<Rule>),
    /// `Variable` + one comparison operator.
    Test(Box<Test>),
    /// JSONata mode: `Condition: "{% ... %}"`, which must evaluate to a boolean.
    Condition(std::sync::Arc<crate::template::Query>),
}

// Rules live in the compiled program; keep the node a fat pointer plus a tag.
const _: () = assert!(std::mem::size_of::<Rule>() == 24);

/// A data-test expression: a `Variable` path and one comparison operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Test {
    variable: Path,
    op: Op,
}

/// The comparison an operator makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Equals,
    LessThan,
    GreaterThan,
    LessThanEquals,
    GreaterThanEquals,
}

/// What an `Is*` operator tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeTest {
    Null,
    Present,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
enum Operand<T> {
    Literal(T),
    Path(Path),
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    String(Cmp, Operand<Box<str>>),
    Numeric(Cmp, Operand<Number>),
    Boolean(Operand<bool>),
    Timestamp(Cmp, Operand<TimestampLiteral>),
    Matches(Pattern),
    Is(TypeTest, bool),
}

/// A numeric literal: its value, and its text as written (for printing the rule back).
#[derive(Clone, Debug, PartialEq)]
struct Number {
    value: f64,
    text: serde_json::Number,
}

#[derive(Clone, Debug, PartialEq)]
struct TimestampLiteral {
    at: Timestamp,
    text: Box<str>,
}

/// A `StringMatches` pattern, compiled to an anchored regex once.
#[derive(Clone, Debug)]
struct Pattern {
    text: Box<str>,
    regex: regex::Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// The operator families, as named in the definition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

/// What an operator key means, before its operand is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Compare { family: Family, cmp: Cmp, path: bool },
    Matches,
    Is(TypeTest),
}

impl Cmp {
    fn name(self) -> &'static str {
        match self {
            Cmp::Equals => "Equals",
            Cmp::LessThan => "LessThan",
            Cmp::GreaterThan => "GreaterThan",
            Cmp::LessThanEquals => "LessThanEquals",
            Cmp::GreaterThanEquals => "GreaterThanEquals",
        }
    }

    fn from_name(name: &str) -> Option<Cmp> {
        Some(match name {
            "Equals" => Cmp::Equals,
            "LessThan" => Cmp::LessThan,
            "GreaterThan" => Cmp::GreaterThan,
            "LessThanEquals" => Cmp::LessThanEquals,
            "GreaterThanEquals" => Cmp::GreaterThanEquals,
            _ => return None,
        })
    }

    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Cmp::Equals => ordering == Ordering::Equal,
            Cmp::LessThan => ordering == Ordering::Less,
            Cmp::GreaterThan => ordering == Ordering::Greater,
            Cmp::LessThanEquals => ordering != Ordering::Greater,
            Cmp::GreaterThanEquals => ordering != Ordering::Less,
        }
    }
}

impl TypeTest {
    fn name(self) -> &'static str {
        match self {
            TypeTest::Null => "IsNull",
            TypeTest::Present => "IsPresent",
            TypeTest::Numeric => "IsNumeric",
            TypeTest::String => "IsString",
            TypeTest::Boolean => "IsBoolean",
            TypeTest::Timestamp => "IsTimestamp",
        }
    }

    /// The test on a value that is present (`IsPresent` is decided before).
    fn holds(self, value: Value<'_>) -> bool {
        match self {
            TypeTest::Null => value.is_null(),
            TypeTest::Present => true,
            TypeTest::Numeric => value.is_number(),
            TypeTest::String => value.as_str().is_some(),
            TypeTest::Boolean => value.as_bool().is_some(),
            TypeTest::Timestamp => value.as_str().and_then(timestamp::parse).is_some(),
        }
    }
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::String => "String",
            Family::Numeric => "Numeric",
            Family::Boolean => "Boolean",
            Family::Timestamp => "Timestamp",
        }
    }
}

/// The meaning of an operator key, or `None` if `key` is not one.
fn operator_kind(key: &str) -> Option<Kind> {
    if let Some(test) = key.strip_prefix("Is") {
        return Some(Kind::Is(match test {
            "Null" => TypeTest::Null,
            "Present" => TypeTest::Present,
            "Numeric" => TypeTest::Numeric,
            "String" => TypeTest::String,
            "Boolean" => TypeTest::Boolean,
            "Timestamp" => TypeTest::Timestamp,
            _ => return None,
        }));
    }
    if key == "StringMatches" {
        return Some(Kind::Matches);
    }
    let (base, path) = match key.strip_suffix("Path") {
        Some(base) => (base, true),
        None => (key, false),
    };
    for family in [Family::String, Family::Numeric, Family::Boolean, Family::Timestamp] {
        if let Some(rest) = base.strip_prefix(family.name()) {
            let cmp = Cmp::from_name(rest)?;
            if family == Family::Boolean && cmp != Cmp::Equals {
                return None;
            }
            return Some(Kind::Compare { family, cmp, path });
        }
    }
    None
}

impl Rule {
    /// Compiles one rule object found at JSON pointer `pointer` in the definition. `nested`
    /// is true inside `And`/`Or`/`Not`. Reports every problem into `diags` (located by
    /// pointer, codes from [`crate::diag::code`]) and returns `None` if the rule is
    /// unusable; returns `Some` only when it added no error.
    pub fn compile(
        rule: &Json,
        pointer: &str,
        nested: bool,
        names: &mut Interner,
        diags: &mut Diagnostics,
    ) -> Option<Rule> {
        compile_rule(rule, pointer, nested, 0, names, diags)
    }

    /// Evaluates the rule. `Err` only for what fails the execution in AWS (a path that
    /// selects nothing, an ordering operand of the wrong type); see the module docs.
    pub fn eval<'a>(&self, env: &dyn Env<'a>) -> Result<bool, EvalError> {
        match self {
            Rule::And(rules) => {
                for rule in rules.iter() {
                    if !rule.eval(env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rules) => {
                for rule in rules.iter() {
                    if rule.eval(env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(rule) => Ok(!rule.eval(env)?),
            Rule::Test(test) => test.eval(env),
            Rule::Condition(q) => match q.eval(env)? {
                Value::Bool(b) => Ok(b),
                other => Err(q.type_error("boolean", other)),
            },
        }
    }

    /// True when any path in the rule is rooted at `$$`, so the VM must build the context
    /// object before evaluating it.
    pub fn uses_context(&self) -> bool {
        match self {
            Rule::And(rules) | Rule::Or(rules) => rules.iter().any(Rule::uses_context),
            Rule::Not(rule) => rule.uses_context(),
            Rule::Test(test) => {
                let operand_path = match &test.op {
                    Op::String(_, Operand::Path(p))
                    | Op::Numeric(_, Operand::Path(p))
                    | Op::Boolean(Operand::Path(p))
                    | Op::Timestamp(_, Operand::Path(p)) => Some(p),
                    _ => None,
                };
                test.variable.root() == Root::Context || operand_path.is_some_and(|p| p.root() == Root::Context)
            }
            Rule::Condition(_) => true,
        }
    }

    /// The rule as canonical JSON: `{"And": [...]}`, `{"Not": {...}}` or
    /// `{"Variable": "...", "<Operator>": <operand>}`, operands as written. Compiling it
    /// again gives an equal rule.
    pub fn to_json(&self) -> Json {
        let mut map = serde_json::Map::new();
        match self {
            Rule::And(rules) => {
                map.insert("And".into(), Json::Array(rules.iter().map(Rule::to_json).collect()));
            }
            Rule::Or(rules) => {
                map.insert("Or".into(), Json::Array(rules.iter().map(Rule::to_json).collect()));
            }
            Rule::Not(rule) => {
                map.insert("Not".into(), rule.to_json());
            }
            Rule::Test(test) => {
                map.insert("Variable".into(), Json::String(test.variable.text().to_owned()));
                let (name, operand) = test.op.to_json();
                map.insert(name, operand);
            }
            Rule::Condition(q) => {
                map.insert("Condition".into(), Json::String(crate::template::query_source(q)));
            }
        }
        Json::Object(map)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl Op {
    /// The operator key and operand as they appear in a definition.
    fn to_json(&self) -> (String, Json) {
        fn operand<T>(family: Family, cmp: Cmp, operand: &Operand<T>, lit: impl Fn(&T) -> Json) -> (String, Json) {
            match operand {
                Operand::Literal(value) => (format!("{}{}", family.name(), cmp.name()), lit(value)),
                Operand::Path(path) => {
                    (format!("{}{}Path", family.name(), cmp.name()), Json::String(path.text().to_owned()))
                }
            }
        }
        match self {
            Op::String(cmp, o) => operand(Family::String, *cmp, o, |s| Json::String(s.to_string())),
            Op::Numeric(cmp, o) => operand(Family::Numeric, *cmp, o, |n| Json::Number(n.text.clone())),
            Op::Boolean(o) => operand(Family::Boolean, Cmp::Equals, o, |b| Json::Bool(*b)),
            Op::Timestamp(cmp, o) => operand(Family::Timestamp, *cmp, o, |t| Json::String(t.text.to_string())),
            Op::Matches(p) => ("StringMatches".into(), Json::String(p.text.to_string())),
            Op::Is(test, want) => (test.name().into(), Json::Bool(*want)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation

impl Test {
    fn eval<'a>(&self, env: &dyn Env<'a>) -> Result<bool, EvalError> {
        let found = self.variable.eval(env).ok();
        if let Op::Is(TypeTest::Present, want) = self.op {
            return Ok(found.is_some() == want);
        }
        let Some(value) = found else {
            return Err(invalid_path(&self.variable));
        };
        Ok(match &self.op {
            Op::Is(test, want) => test.holds(value) == *want,
            Op::Matches(pattern) => value.as_str().is_some_and(|s| pattern.regex.is_match(s)),
            Op::String(cmp, operand) => {
                let rhs: &str = match operand {
                    Operand::Literal(s) => s,
                    Operand::Path(path) => match read_operand(path, env)?.as_str() {
                        Some(s) => s,
                        None => return wrong_operand(*cmp, path),
                    },
                };
                match value.as_str() {
                    Some(lhs) if *cmp == Cmp::Equals => lhs == rhs,
                    Some(lhs) => cmp.holds(java_compare(lhs, rhs)),
                    None => false,
                }
            }
            Op::Numeric(cmp, operand) => {
                let rhs = match operand {
                    Operand::Literal(n) => n.value,
                    Operand::Path(path) => match read_operand(path, env)?.as_f64() {
                        Some(n) => n,
                        None => return wrong_operand(*cmp, path),
                    },
                };
                match value.as_f64().and_then(|lhs| lhs.partial_cmp(&rhs)) {
                    Some(ordering) => cmp.holds(ordering),
                    None => false,
                }
            }
            Op::Boolean(operand) => {
                let rhs = match operand {
                    Operand::Literal(b) => *b,
                    Operand::Path(path) => match read_operand(path, env)?.as_bool() {
                        Some(b) => b,
                        None => return wrong_operand(Cmp::Equals, path),
                    },
                };
                value.as_bool() == Some(rhs)
            }
            Op::Timestamp(cmp, operand) => {
                let rhs = match operand {
                    Operand::Literal(t) => t.at,
                    Operand::Path(path) => match read_operand(path, env)?.as_str().and_then(timestamp::parse) {
                        Some(t) => t,
                        None => return wrong_operand(*cmp, path),
                    },
                };
                match value.as_str().and_then(timestamp::parse) {
                    Some(lhs) => cmp.holds(lhs.cmp(&rhs)),
                    None => false,
                }
            }
        })
    }
}

fn read_operand<'a>(path: &Path, env: &dyn Env<'a>) -> Result<Value<'a>, EvalError> {
    path.eval(env).map_err(|_| invalid_path(path))
}

/// AWS's cause for a `Variable` or `…Path` operand that selects nothing.
#[cold]
fn invalid_path(path: &Path) -> EvalError {
    EvalError::runtime(format!(
        "Invalid path '{}': The choice state's condition path references an invalid value.",
        path.text()
    ))
}

/// A `…Path` operand of the wrong type: a mismatch for the equality operators, an error
/// for the ordering ones (see the module docs for the evidence).
#[cold]
fn wrong_operand(cmp: Cmp, path: &Path) -> Result<bool, EvalError> {
    match cmp {
        Cmp::Equals => Ok(false),
        _ => Err(EvalError::runtime(format!("Invalid value provided at path '{}'", path.text()))),
    }
}

/// Java's `String.compareTo`: lexicographic by UTF-16 code unit.
///
/// UTF-8 byte order is code point order, which agrees with UTF-16 order except that a
/// supplementary character (encoded with surrogates, 0xD800–0xDFFF) sorts below
/// U+E000–U+FFFF in UTF-16. So the bytes are compared directly, and only the first
/// differing character pair is re-ranked by its UTF-16 units.
pub fn java_compare(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let Some(i) = x.iter().zip(y).position(|(p, q)| p != q) else {
        return x.len().cmp(&y.len());
    };
    // Back up to the start of the character holding the first difference; the bytes
    // before it are equal, so it starts a character in both strings.
    let start = (0..=i).rev().find(|&k| a.is_char_boundary(k)).unwrap_or(0);
    let c = a.get(start..).and_then(|s| s.chars().next());
    let d = b.get(start..).and_then(|s| s.chars().next());
    match (c, d) {
        (Some(c), Some(d)) => utf16_rank(c).cmp(&utf16_rank(d)),
        _ => x.len().cmp(&y.len()),
    }
}

/// A key that orders characters as their UTF-16 encodings order.
fn utf16_rank(c: char) -> u32 {
    let mut units = [0u16; 2];
    let encoded = c.encode_utf16(&mut units);
    let first = u32::from(encoded[0]) << 16;
    match encoded.get(1) {
        Some(&second) => first | u32::from(second),
        None => first,
    }
}

// ---------------------------------------------------------------------------------------
// Compilation

fn error_count(diags: &Diagnostics) -> usize {
    diags.items.iter().filter(|d| d.severity == Severity::Error).count()
}

fn compile_rule(
    rule: &Json,
    pointer: &str,
    nested: bool,
    depth: usize,
    names: &mut Interner,
    diags: &mut Diagnostics,
) -> Option<Rule> {
    let Some(fields) = rule.as_object() else {
        diags.error(code::WRONG_TYPE, pointer, "a choice rule must be an object");
        return None;
    };
    if depth > MAX_NESTING {
        diags.error(code::BAD_CHOICE_RULE, pointer, format!("choice rules may nest at most {MAX_NESTING} levels deep"));
        return None;
    }
    let errors_before = error_count(diags);

    // Sort the fields: the rule's kind (composite or operator), the variable, and the
    // fields only accepted or rejected here.
    let mut kinds: Vec<(&str, Option<Kind>, &Json)> = Vec::new();
    let mut variable = None;
    for (key, value) in fields {
        match key.as_str() {
            "And" | "Or" | "Not" => kinds.push((key, None, value)),
            "Variable" => variable = Some(value),
            "Next" | "Assign" if nested => diags.error(
                code::BAD_CHOICE_RULE,
                pointer_push(pointer, key),
                format!("{key} is only allowed on a top-level choice rule, not inside And, Or or Not"),
            ),
            "Next" | "Assign" => {}
            "Comment" => {
                if !value.is_string() {
                    diags.error(code::WRONG_TYPE, pointer_push(pointer, key), "Comment must be a string");
                }
            }
            "Condition" | "Output" => diags.error(
                code::BAD_MODE_FIELD,
                pointer_push(pointer, key),
                format!("{key} is only allowed in JSONata mode"),
            ),
            _ => match operator_kind(key) {
                Some(kind) => kinds.push((key, Some(kind), value)),
                None => diags.error(
                    code::UNKNOWN_FIELD,
                    pointer_push(pointer, key),
                    format!("'{key}' is not a field of a choice rule"),
                ),
            },
        }
    }

    match kinds.len() {
        0 => diags.error(
            code::BAD_CHOICE_RULE,
            pointer,
            "a choice rule needs And, Or, Not, or a Variable with one comparison operator",
        ),
        1 => {}
        _ => {
            let found: Vec<&str> = kinds.iter().map(|(key, _, _)| *key).collect();
            diags.error(
                code::BAD_CHOICE_RULE,
                pointer,
                format!(
                    "a choice rule must have exactly one of And, Or, Not or a comparison operator, found {}",
                    found.join(", ")
                ),
            );
        }
    }
    let has_operator = kinds.iter().any(|(_, kind, _)| kind.is_some());

    // Compile every candidate anyway, so its own problems are reported too.
    let mut compiled = None;
    let variable = match variable {
        Some(value) => compile_path(value, &pointer_push(pointer, "Variable"), "Variable", names, diags),
        None => {
            if has_operator {
                diags.error(code::MISSING_FIELD, pointer, "a comparison needs a Variable");
            }
            None
        }
    };
    if !has_operator && fields.contains_key("Variable") && !kinds.is_empty() {
        diags.error(
            code::UNKNOWN_FIELD,
            pointer_push(pointer, "Variable"),
            format!("Variable is not allowed with {}", kinds[0].0),
        );
    }
    for (key, kind, value) in &kinds {
        let at = pointer_push(pointer, key);
        let rule = match kind {
            None => compile_composite(key, value, &at, depth, names, diags),
            Some(kind) => compile_op(*kind, key, value, &at, names, diags)
                .and_then(|op| Some(Rule::Test(Box::new(Test { variable: variable.clone()?, op })))),
        };
        compiled = compiled.or(rule);
    }

    if error_count(diags) > errors_before {
        return None;
    }
    compiled
}

fn compile_composite(
    key: &str,
    value: &Json,
    at: &str,
    depth: usize,
    names: &mut Interner,
    diags: &mut Diagnostics,
) -> Option<Rule> {
    if key == "Not" {
        let rule = compile_rule(value, at, true, depth + 1, names, diags)?;
        return Some(Rule::Not(Box::new(rule)));
    }
    let Some(items) = value.as_array() else {
        diags.error(code::WRONG_TYPE, at, format!("{key} must be an array of choice rules"));
        return None;
    };
    if items.is_empty() {
        diags.error(code::BAD_CHOICE_RULE, at, format!("{key} must hold at least one choice rule"));
        return None;
    }
    let mut rules = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match compile_rule(item, &pointer_push(at, &i.to_string()), true, depth + 1, names, diags) {
            Some(rule) => rules.push(rule),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    let rules = rules.into_boxed_slice();
    Some(if key == "And" { Rule::And(rules) } else { Rule::Or(rules) })
}

fn compile_path(value: &Json, at: &str, key: &str, names: &mut Interner, diags: &mut Diagnostics) -> Option<Path> {
    let Some(text) = value.as_str() else {
        diags.error(code::WRONG_TYPE, at, format!("{key} must be a path string such as \"$.field\""));
        return None;
    };
    match Path::parse(text, names) {
        Ok(path) => Some(path),
        Err(e) => {
            diags.error(code::BAD_PATH, at, format!("{key} is not a valid path: {e}"));
            None
        }
    }
}

fn compile_op(
    kind: Kind,
    key: &str,
    value: &Json,
    at: &str,
    names: &mut Interner,
    diags: &mut Diagnostics,
) -> Option<Op> {
    let mut wrong_type = |what: &str| {
        diags.error(code::WRONG_TYPE, at, format!("{key} must be {what}"));
        None
    };
    match kind {
        Kind::Is(test) => match value.as_bool() {
            Some(want) => Some(Op::Is(test, want)),
            None => wrong_type("a boolean (true or false)"),
        },
        Kind::Matches => match value.as_str() {
            Some(text) => match pattern_regex(text) {
                Ok(regex) => Some(Op::Matches(Pattern { text: text.into(), regex })),
                Err(e) => {
                    diags.error(code::BAD_CHOICE_RULE, at, format!("StringMatches pattern cannot be used: {e}"));
                    None
                }
            },
            None => wrong_type("a string"),
        },
        Kind::Compare { family, cmp, path: true } => {
            let path = compile_path(value, at, key, names, diags)?;
            Some(match family {
                Family::String => Op::String(cmp, Operand::Path(path)),
                Family::Numeric => Op::Numeric(cmp, Operand::Path(path)),
                Family::Boolean => Op::Boolean(Operand::Path(path)),
                Family::Timestamp => Op::Timestamp(cmp, Operand::Path(path)),
            })
        }
        Kind::Compare { family: Family::String, cmp, path: false } => match value.as_str() {
            Some(s) => Some(Op::String(cmp, Operand::Literal(s.into()))),
            None => wrong_type("a string"),
        },
        Kind::Compare { family: Family::Numeric, cmp, path: false } => match value {
            Json::Number(n) => {
                let number = Number { value: n.as_f64().unwrap_or(f64::NAN), text: n.clone() };
                Some(Op::Numeric(cmp, Operand::Literal(number)))
            }
            _ => wrong_type("a number"),
        },
        Kind::Compare { family: Family::Boolean, path: false, .. } => match value.as_bool() {
            Some(b) => Some(Op::Boolean(Operand::Literal(b))),
            None => wrong_type("a boolean (true or false)"),
        },
        Kind::Compare { family: Family::Timestamp, cmp, path: false } => {
            let Some(text) = value.as_str() else {
                return wrong_type("a timestamp string such as \"2016-03-14T01:59:00Z\"");
            };
            match timestamp::parse(text) {
                Some(at_instant) => {
                    Some(Op::Timestamp(cmp, Operand::Literal(TimestampLiteral { at: at_instant, text: text.into() })))
                }
                None => {
                    diags.error(
                        code::BAD_TIMESTAMP,
                        at,
                        format!(
                            "{key} must be an ISO-8601 extended offset date-time such as \"2016-03-14T01:59:00Z\", got {text:?}"
                        ),
                    );
                    None
                }
            }
        }
    }
}

/// Translates a `StringMatches` pattern into an anchored regex: `*` is `.*` (newlines
/// included), `\*` and `\\` are a literal `*` and `\`, everything else is literal.
fn pattern_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    let mut re = String::with_capacity(pattern.len() + 16);
    re.push_str(r"\A(?s:");
    let mut literal = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                re.push_str(&regex::escape(&literal));
                literal.clear();
                re.push_str(".*");
            }
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '\\')) => {
                    chars.next();
                    literal.push(next);
                }
                _ => literal.push('\\'),
            },
            c => literal.push(c),
        }
    }
    re.push_str(&regex::escape(&literal));
    re.push_str(r")\z");
    regex::Regex::new(&re)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{ErrorKind, StaticEnv};
    use crate::value::parse_json;
    use bumpalo::Bump;
    use serde_json::json;

    fn compile(rule: Json) -> Result<Rule, Vec<String>> {
        let mut names = Interner::new();
        let mut diags = Diagnostics::new();
        let compiled = Rule::compile(&rule, "/States/X/Choices/0", false, &mut names, &mut diags);
        match compiled {
            Some(rule) if diags.is_empty() => Ok(rule),
            None if !diags.is_empty() => Err(diags.items.iter().map(|d| d.to_string()).collect()),
            other => panic!("compile returned {other:?} with diagnostics {:?}", diags.items),
        }
    }

    fn eval(rule: Json, input: &str) -> Result<bool, EvalError> {
        let rule = compile(rule).unwrap();
        let bump = Bump::new();
        let input = parse_json(&bump, input.as_bytes()).unwrap();
        rule.eval(&StaticEnv::new(&bump, input))
    }

    fn errors(rule: Json) -> Vec<String> {
        compile(rule).unwrap_err()
    }

    #[test]
    fn type_mismatches_are_false() {
        assert_eq!(eval(json!({"Variable": "$.v", "NumericEquals": 1}), r#"{"v":"1"}"#), Ok(false));
        assert_eq!(eval(json!({"Variable": "$.v", "StringEquals": "1"}), r#"{"v":1}"#), Ok(false));
        assert_eq!(eval(json!({"Variable": "$.v", "BooleanEquals": true}), r#"{"v":1}"#), Ok(false));
        assert_eq!(eval(json!({"Variable": "$.v", "StringMatches": "*"}), r#"{"v":null}"#), Ok(false));
        let ts = json!({"Variable": "$.v", "TimestampLessThan": "2030-01-01T00:00:00Z"});
        assert_eq!(eval(ts.clone(), r#"{"v":"yesterday"}"#), Ok(false));
        assert_eq!(eval(ts, r#"{"v":"2020-01-01T00:00:00+05:00"}"#), Ok(true));
    }

    #[test]
    fn missing_variables_fail_except_for_is_present() {
        let err = eval(json!({"Variable": "$.no.such", "IsNull": true}), "{}").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Runtime);
        assert_eq!(
            err.message,
            "Invalid path '$.no.such': The choice state's condition path references an invalid value."
        );
        assert_eq!(eval(json!({"Variable": "$.x", "IsPresent": false}), "{}"), Ok(true));
        assert_eq!(eval(json!({"Variable": "$.x", "IsPresent": true}), "{}"), Ok(false));
        assert_eq!(eval(json!({"Variable": "$.x", "IsPresent": true}), r#"{"x":null}"#), Ok(true));
        assert_eq!(eval(json!({"Variable": "$undeclared", "IsPresent": true}), "{}"), Ok(false));
        // And short-circuits, so the guard idiom never reads the missing field.
        let guarded = json!({"And": [
            {"Variable": "$.x", "IsPresent": true},
            {"Variable": "$.x", "StringEquals": "a"}
        ]});
        assert_eq!(eval(guarded.clone(), "{}"), Ok(false));
        assert_eq!(eval(guarded, r#"{"x":"a"}"#), Ok(true));
        let unguarded = json!({"Or": [
            {"Variable": "$.y", "IsPresent": true},
            {"Variable": "$.x", "StringEquals": "a"}
        ]});
        assert!(eval(unguarded, "{}").is_err());
    }

    #[test]
    fn path_operands() {
        let input = r#"{"num1":1,"num2":1,"str1":"1","str2":"1","t":"2012-10-09T19:00:55Z"}"#;
        let err = eval(json!({"Variable": "$.num1", "NumericEqualsPath": "$.missing"}), input).unwrap_err();
        assert_eq!(
            err.message,
            "Invalid path '$.missing': The choice state's condition path references an invalid value."
        );
        // Read before the variable's type is looked at.
        assert!(eval(json!({"Variable": "$.str1", "NumericEqualsPath": "$.missing"}), input).is_err());
        assert_eq!(eval(json!({"Variable": "$.num1", "NumericEqualsPath": "$.num2"}), input), Ok(true));
        assert_eq!(eval(json!({"Variable": "$.num1", "NumericEqualsPath": "$.str2"}), input), Ok(false));
        assert_eq!(eval(json!({"Variable": "$.str1", "NumericEqualsPath": "$.str2"}), input), Ok(false));
        assert_eq!(eval(json!({"Variable": "$.num1", "StringEqualsPath": "$.num2"}), input), Ok(false));
        assert_eq!(eval(json!({"Variable": "$.num1", "StringGreaterThanPath": "$.str2"}), input), Ok(false));
        let err = eval(json!({"Variable": "$.num1", "StringGreaterThanPath": "$.num2"}), input).unwrap_err();
        assert_eq!((err.kind, err.message.as_str()), (ErrorKind::Runtime, "Invalid value provided at path '$.num2'"));
        assert!(eval(json!({"Variable": "$.t", "TimestampLessThanPath": "$.str1"}), input).is_err());
        assert_eq!(eval(json!({"Variable": "$.t", "TimestampEqualsPath": "$.str1"}), input), Ok(false));
        assert_eq!(eval(json!({"Variable": "$.t", "TimestampEqualsPath": "$.t"}), input), Ok(true));
        assert_eq!(eval(json!({"Variable": "$.num1", "BooleanEqualsPath": "$.num2"}), input), Ok(false));
    }

    #[test]
    fn numbers_compare_as_doubles() {
        assert_eq!(eval(json!({"Variable": "$.v", "NumericEquals": 0}), r#"{"v":0.0}"#), Ok(true));
        assert_eq!(eval(json!({"Variable": "$.v", "NumericEquals": 0.0}), r#"{"v":-0.0}"#), Ok(true));
        assert_eq!(eval(json!({"Variable": "$.v", "NumericLessThan": 2.5}), r#"{"v":2}"#), Ok(true));
        assert_eq!(eval(json!({"Variable": "$.v", "NumericGreaterThanEquals": 3}), r#"{"v":2.9}"#), Ok(false));
        // Beyond 2^53 two integers can be the same double, as the AWS guide warns.
        let big = json!({"Variable": "$.v", "NumericEquals": 9007199254740992i64});
        assert_eq!(eval(big, r#"{"v":9007199254740993}"#), Ok(true));
    }

    #[test]
    fn strings_order_by_utf16_code_units() {
        // U+FF61 sorts above U+1F600 in UTF-16 (the emoji starts with a surrogate), below it
        // in UTF-8 and code point order.
        assert_eq!(java_compare("\u{FF61}", "\u{1F600}"), Ordering::Greater);
        assert_eq!(java_compare("a\u{1F600}", "a\u{1F601}"), Ordering::Less);
        assert_eq!(java_compare("é", "e"), Ordering::Greater);
        assert_eq!(java_compare("A", "AB"), Ordering::Less);
        assert_eq!(java_compare("", ""), Ordering::Equal);
        assert_eq!(java_compare("\u{E000}", "\u{D7FF}"), Ordering::Greater);
        let rule = json!({"Variable": "$.v", "StringGreaterThan": "\u{1F600}"});
        assert_eq!(eval(rule, "{\"v\":\"\u{FF61}\"}"), Ok(true));
    }

    #[test]
    fn string_matches_only_knows_star() {
        let m = |pattern: &str, s: &str| {
            let rule = json!({"Variable": "$.v", "StringMatches": pattern});
            eval(rule, &serde_json::to_string(&json!({ "v": s })).unwrap()).unwrap()
        };
        assert!(m("log-*.txt", "log-2024.txt"));
        assert!(m("log-*.txt", "log-.txt"));
        assert!(!m("log-*.txt", "log-1.txt.gz"));
        assert!(!m("log-*.txt", "xlog-1.txt"));
        assert!(m("foo*.*", "foobar.zebra"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "a\nb\nc"));
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"a\\*", r"a\anything"));
        assert!(m(r"a\\", r"a\"));
        assert!(m(r"a\b", r"a\b"));
        assert!(m(r"a\", r"a\"));
        assert!(m("(.+)?[x]$^", "(.+)?[x]$^"));
        assert!(!m("(.+)?", "aa"));
        assert!(m("ü*😀", "ü-😀"));
    }

    #[test]
    fn is_tests_look_at_json_types() {
        let input = r#"{"n":null,"i":1,"f":1.5,"s":"1","b":false,"t":"2016-03-14T01:59:00Z","a":[],"o":{}}"#;
        let is = |op: &str, path: &str| eval(json!({"Variable": path, op: true}), input).unwrap();
        assert!(is("IsNull", "$.n") && !is("IsNull", "$.o"));
        assert!(is("IsNumeric", "$.i") && is("IsNumeric", "$.f") && !is("IsNumeric", "$.s"));
        assert!(is("IsString", "$.s") && is("IsString", "$.t") && !is("IsString", "$.a"));
        assert!(is("IsBoolean", "$.b") && !is("IsBoolean", "$.n"));
        assert!(is("IsTimestamp", "$.t") && !is("IsTimestamp", "$.s") && !is("IsTimestamp", "$.i"));
        assert_eq!(eval(json!({"Variable": "$.o", "IsNull": false}), input), Ok(true));
    }

    #[test]
    fn diagnostics_are_located() {
        assert_eq!(
            errors(json!({"And": [{"Variable": "$.a", "IsNull": true}, {"Variable": "$.b", "NumericEquals": "5"}]})),
            ["ERROR: WRONG_VALUE_TYPE at /States/X/Choices/0/And/1/NumericEquals: NumericEquals must be a number"]
        );
        assert_eq!(
            errors(json!({"Not": {"Variable": "$.a", "IsNull": "true", "Next": "X"}})),
            [
                "ERROR: INVALID_CHOICE_RULE at /States/X/Choices/0/Not/Next: Next is only allowed on a top-level choice rule, not inside And, Or or Not",
                "ERROR: WRONG_VALUE_TYPE at /States/X/Choices/0/Not/IsNull: IsNull must be a boolean (true or false)",
            ]
        );
        assert_eq!(
            errors(json!({"Variable": "$.a", "Next": "X"})),
            ["ERROR: INVALID_CHOICE_RULE at /States/X/Choices/0: a choice rule needs And, Or, Not, or a Variable with one comparison operator"]
        );
        assert_eq!(
            errors(json!({"Variable": "$.a", "StringEquals": "x", "NumericEquals": 1})),
            ["ERROR: INVALID_CHOICE_RULE at /States/X/Choices/0: a choice rule must have exactly one of And, Or, Not or a comparison operator, found StringEquals, NumericEquals"]
        );
        let mut found = errors(json!({"StringEquals": 3, "Bogus": 1, "Condition": "{% true %}"}));
        found.sort();
        assert_eq!(
            found,
            [
                "ERROR: FIELD_NOT_ALLOWED at /States/X/Choices/0/Bogus: 'Bogus' is not a field of a choice rule",
                "ERROR: FIELD_NOT_ALLOWED_IN_QUERY_LANGUAGE at /States/X/Choices/0/Condition: Condition is only allowed in JSONata mode",
                "ERROR: MISSING_REQUIRED_FIELD at /States/X/Choices/0: a comparison needs a Variable",
                "ERROR: WRONG_VALUE_TYPE at /States/X/Choices/0/StringEquals: StringEquals must be a string",
            ]
        );
    }
}
