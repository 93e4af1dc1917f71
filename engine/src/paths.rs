//! `paths`: JSONPath and reference paths, compiled once and evaluated on arena values.
//!
//! Input: path text from a definition (`InputPath`, `OutputPath`, `ItemsPath`, the `*Path`
//! fields, `.$` template values, Choice `Variable`s, intrinsic arguments) and `ResultPath`
//! reference paths. Output: compiled [`Path`] / [`ReferencePath`] values; at run time the
//! selected value (or an array of matches), or a new value with a result placed.
//! Never touches: the program layout, execution state, the `Env` beyond reading `$`, `$$`,
//! a variable and the arena. Evaluation never allocates except in the arena, and there only
//! for results (match arrays, merged objects) and the spine `ReferencePath::set` rebuilds.
//!
//! # Semantics: Jayway JsonPath 2.x, as AWS runs it
//!
//! AWS evaluates JSONPath with Jayway JsonPath; the texts it puts in causes are Jayway's
//! exception messages (recorded: `Invalid path '$.NoSuchInputPath' : No results for path:
//! $['NoSuchInputPath']` and `Invalid path '$.no.such.result.path' : Missing property in path
//! $['no']`, both in the conformance corpus). The evaluator mirrors Jayway's token chain
//! (`PathCompiler`, `PropertyPathToken`, `ArrayPathToken`, `WildcardPathToken`,
//! `ScanPathToken`, `PredicatePathToken`, `FilterCompiler`, `EvaluatorFactory`) rather than
//! RFC 9535, including its quirks, because users' definitions were tested against AWS:
//! - **Definite** paths (every step a single name, a single index, or a multi-name union in
//!   last position, which Jayway merges into one object) select one value or fail with
//!   Jayway's message. Any other path is **indefinite** and yields an array of the matches
//!   in Jayway's order. Jayway itself throws for some indefinite paths (`$.a[*]` with `a`
//!   missing); AWS returns `[]` there (recorded: `$.item.items[1:5]` on `{}` gives `[]`), so
//!   an indefinite path here never fails.
//! - Messages for a definite path: a missing last name gives `No results for path:
//!   <path>`; a missing inner name gives `Missing property in path <prefix>`; a name step
//!   on a non-object gives `Expected to find an object with property ['b'] in path $['a']
//!   but found 'java.lang.Integer'. This is not a json object according to the
//!   JsonProvider: 'com.jayway.jsonpath.spi.json.JacksonJsonProvider'.`; an index step on
//!   `null` gives `The path $['a'] is null`, on another non-array `Filter: [0] can only be
//!   applied to arrays. Current context is: {b=1}` (the value as Java's `toString` prints a
//!   `LinkedHashMap`/`ArrayList`); an index out of range gives `No results for path:
//!   $['a'][5]`. Which Jackson provider AWS configures is not recorded anywhere we could
//!   find; we chose `JacksonJsonProvider` (values as `java.util` collections and boxed
//!   scalars), whose `List.get` throws for an out-of-range index (Jayway then reports no
//!   result) where `JacksonJsonNodeJsonProvider` would return `null`.
//! - Roots: `$$` (context object) is not a Jayway root; AWS must hand Jayway `$...` against
//!   the context object, so messages print `$` for it. A variable root prints as `$name`
//!   (no evidence either way). An undefined variable in a definite path fails with `No
//!   results for path: $name`; in an indefinite path it yields `[]` like any missing name.
//! - Filters follow Jayway's `FilterCompiler`: `&&`/`||` have no precedence and group the
//!   way its two stacks do (`a && b || c` is `a && (b || c)`); `==` coerces between numbers
//!   and numeric strings; a missing operand is "undefined", unequal to everything (so `!=`
//!   holds); `<`-style operators compare numbers numerically, strings by UTF-16 units,
//!   and a string with a number by text; a filter on an object tests the object itself.
//!   Jayway silently ignores `!` anywhere but before an existence test (`[?(!@.x)]`); we
//!   reject it there instead of evaluating something other than what was written, and we
//!   reject what Jayway cannot evaluate from text (`all`, `type`, `matches`, placeholders
//!   `[?]`, functions such as `.length()`, slice steps `[::2]`, which Jayway ignores).
//! - Deep scan follows `ScanPathToken`: a node is tested, then its children; for an index
//!   step after `..` on an array, Jayway applies the *following* step to every element.
//!
//! Costs and bounds: parsing is linear in the text; a definite path is a loop over its
//! steps with no allocation at all (checked by `tests/paths_alloc.rs`). The general walk
//! recurses per step (at most [`MAX_STEPS`]), per nesting level of a deep scan (stopped at
//! the value depth limit) and per filter level (at most [`MAX_FILTER_NESTING`]), so it
//! cannot exhaust the stack. Its cost is Jayway's: a deep scan inside a filter, or deep
//! scans after deep scans, multiply; they are the definition author's to avoid.
//!
//! `ResultPath` (a reference path: names and non-negative indexes only) is applied by
//! [`ReferencePath::set`], which fails with `States.ResultPathMatchFailure` and AWS's
//! wording `Unable to apply ReferencePath <path> to input <json>` (quoted in
//! aws/aws-cdk#29473 from a run on Step Functions Local, AWS's own Java emulator; we
//! found no recording from the cloud service itself, nor a LocalStack snapshot of it).

use std::cmp::Ordering;
use std::fmt::{self, Write as _};

use bumpalo::collections::Vec as BumpVec;
use bumpalo::Bump;
use regex::{Regex, RegexBuilder};

use crate::eval::{Env, ErrorKind, EvalError};
use crate::intern::{Interner, Sym};
use crate::value::{self, Member, Value, MAX_DEPTH};

/// Steps in one path (or filter sub-path). Real paths have a handful; the bound keeps the
/// recursive evaluator's stack small.
pub const MAX_STEPS: usize = 256;
/// How deeply filters may nest (`[?(@.a[?(@.b)])]` is depth 2).
pub const MAX_FILTER_NESTING: usize = 4;
/// Comparisons and existence tests in one filter.
pub const MAX_FILTER_TERMS: usize = 128;
/// Nesting of JSON literals inside filters (`@.a in [[1]]`).
const MAX_LITERAL_DEPTH: usize = 64;
/// Compiled size limit for filter regexes, so a definition cannot make us build a huge DFA.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The JSON provider class Jayway names in "not a json object" messages (see module doc).
const JSON_PROVIDER: &str = "com.jayway.jsonpath.spi.json.JacksonJsonProvider";

/// Where a path starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// `$`: the value the path is applied to.
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable.
    Var(Sym),
}

/// A path that does not parse: what is wrong and at which byte of the path text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid path '{text}' at offset {offset}: {message}")]
pub struct PathSyntaxError {
    pub text: String,
    pub offset: usize,
    pub message: String,
}

/// A path that selects nothing where a value is required. `message` is Jayway's text, e.g.
/// `No results for path: $['x']` or `Missing property in path $['a']`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PathError {
    pub message: String,
}

// ---------------------------------------------------------------------------------------
// Compiled form

/// The delimiter a bracketed name was written with; Jayway prints it back in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quote {
    Single,
    Double,
}

impl Quote {
    fn byte(self) -> u8 {
        match self {
            Quote::Single => b'\'',
            Quote::Double => b'"',
        }
    }
}

/// One step of a compiled path (one Jayway path token).
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// `.name`, `['name']`
    Field(Box<str>, Quote),
    /// `['a','b']`: merged into one object when last, iterated otherwise.
    Fields(Box<[Box<str>]>, Quote),
    /// `[n]` (negative counts from the end)
    Index(i32),
    /// `[n,m,...]`
    Indexes(Box<[i32]>),
    /// `[from:to]`
    Slice(Option<i32>, Option<i32>),
    /// `*`, `[*]`
    Wildcard,
    /// `..` (always followed by another step)
    Scan,
    /// `[?(...)]`
    Filter(Box<Expr>),
}

// A size regression here costs cache lines on every path step.
const _: () = assert!(std::mem::size_of::<Step>() <= 24);

// Compiled programs (and the paths in them) are shared read-only across shards.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Path>();
    shared::<ReferencePath>();
};

/// The steps of a path after its root, with Jayway's definiteness precomputed.
#[derive(Clone, Debug, PartialEq)]
struct Query {
    steps: Box<[Step]>,
    /// Index of the first step that is not definite (`steps.len()` if all are). Jayway's
    /// `isUpstreamDefinite()` for step `i` is `i <= first_indefinite`.
    first_indefinite: usize,
}

impl Query {
    fn new(steps: Vec<Step>) -> Query {
        let n = steps.len();
        let first_indefinite = steps.iter().enumerate().position(|(i, s)| !token_definite(s, i + 1 == n)).unwrap_or(n);
        Query { steps: steps.into(), first_indefinite }
    }

    fn is_definite(&self) -> bool {
        self.first_indefinite >= self.steps.len()
    }

    fn upstream_definite(&self, i: usize) -> bool {
        i <= self.first_indefinite
    }

    fn is_leaf(&self, i: usize) -> bool {
        i + 1 >= self.steps.len()
    }
}

/// Jayway's `isTokenDefinite`.
fn token_definite(step: &Step, leaf: bool) -> bool {
    match step {
        Step::Field(..) | Step::Index(_) => true,
        Step::Fields(..) => leaf,
        _ => false,
    }
}

/// A filter expression. `And`/`Or` are flattened (both are associative), children in
/// text order.
#[derive(Clone, Debug, PartialEq)]
enum Expr {
    And(Box<[Expr]>),
    Or(Box<[Expr]>),
    /// `@.x` or `!@.x`
    Exists {
        path: FilterPath,
        negated: bool,
    },
    Compare {
        left: Operand,
        op: Op,
        right: Operand,
    },
}

/// A path inside a filter: relative to the current item (`@`) or the document root (`$`).
#[derive(Clone, Debug, PartialEq)]
struct FilterPath {
    at_item: bool,
    query: Query,
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    Path(FilterPath),
    Str(Box<str>, Quote),
    Num(NumLit),
    Bool(bool),
    Null,
    /// `[...]` or `{...}`
    Json(Lit),
    Pattern(Pattern),
}

/// A number literal as written, its value, and the text Java's `BigDecimal.toString`
/// gives for it (used when Jayway compares it with a string).
#[derive(Clone, Debug, PartialEq)]
struct NumLit {
    text: Box<str>,
    num: Num,
    decimal: Box<str>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn to_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// A JSON literal inside a filter (Jayway parses these leniently: single quotes allowed).
#[derive(Clone, Debug, PartialEq)]
enum Lit {
    Null,
    Bool(bool),
    Num(Num),
    Str(Box<str>),
    Arr(Box<[Lit]>),
    Obj(Box<[(Box<str>, Lit)]>),
}

/// `/source/flags`, compiled once.
#[derive(Clone, Debug)]
struct Pattern {
    source: Box<str>,
    flags: Box<str>,
    regex: Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.flags == other.flags
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    TsEq,
    TsNe,
    Lt,
    Le,
    Gt,
    Ge,
    Regex,
    In,
    Nin,
    Contains,
    SubsetOf,
    AnyOf,
    NoneOf,
    Size,
    Empty,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::TsEq => "===",
            Op::TsNe => "!==",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Regex => "=~",
            Op::In => "in",
            Op::Nin => "nin",
            Op::Contains => "contains",
            Op::SubsetOf => "subsetof",
            Op::AnyOf => "anyof",
            Op::NoneOf => "noneof",
            Op::Size => "size",
            Op::Empty => "empty",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Path

/// A compiled JSONPath. Equality compares meaning (root and steps), not the text, so a
/// path equals the re-parse of its [`Path::canonical`] form.
#[derive(Clone, Debug)]
pub struct Path {
    text: Box<str>,
    root: Root,
    /// Length of the root in `text` (`$`, `$$` or `$name`).
    root_len: usize,
    query: Query,
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root && self.query == other.query
    }
}

impl Path {
    /// Parses a path. Variable names are interned into `names`.
    pub fn parse(text: &str, names: &mut Interner) -> Result<Path, PathSyntaxError> {
        let src = Src { full: text };
        let b = text.as_bytes();
        if b.first() != Some(&b'$') {
            return Err(src.err(0, "a path must start with '$'"));
        }
        let (root, root_len) = match b.get(1) {
            Some(b'$') => (Root::Context, 2),
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let mut end = 2;
                while b.get(end).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                    end += 1;
                }
                (Root::Var(names.intern(&text[1..end])), end)
            }
            _ => (Root::Input, 1),
        };
        let steps = parse_after_root(&src, text, 0, root_len, 0)?;
        Ok(Path { text: text.into(), root, root_len, query: Query::new(steps.into_iter().map(|(s, _)| s).collect()) })
    }

    /// The path as written in the definition (what AWS quotes in its messages).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn root(&self) -> Root {
        self.root
    }

    /// True when the path selects at most one value (Jayway's `isDefinite`): every step is
    /// a single name or index, or a multi-name union in last position.
    pub fn is_definite(&self) -> bool {
        self.query.is_definite()
    }

    /// Evaluates the path: the selected value for a definite path (or Jayway's error), an
    /// arena array of the matches for an indefinite one.
    pub fn eval<'a>(&self, env: &dyn Env<'a>) -> Result<Value<'a>, PathError> {
        let root = match self.root {
            Root::Input => env.input(),
            Root::Context => env.context(),
            Root::Var(name) => match env.variable(name) {
                Some(v) => v,
                None if self.is_definite() => {
                    return Err(PathError { message: format!("No results for path: {}", self.message_root()) })
                }
                None => return Ok(Value::EMPTY_ARRAY),
            },
        };
        self.eval_on(root, env.bump())
    }

    /// Evaluates the path against `root` whatever the path's own root is (for callers that
    /// already hold the document, e.g. a Map state's item).
    pub fn eval_on<'a>(&self, root: Value<'a>, bump: &'a Bump) -> Result<Value<'a>, PathError> {
        if self.query.is_definite() {
            return eval_definite(&self.query, root, bump).map_err(|f| self.definite_error(f));
        }
        let ev = Ev { bump, root, require: false };
        let mut sink = Sink::Collect(BumpVec::new_in(bump));
        match run(&self.query, 0, root, &ev, &mut sink) {
            Ok(()) => Ok(sink.into_array()),
            // Jayway throws here; AWS returns no matches (see the module doc).
            Err(_) => Ok(Value::EMPTY_ARRAY),
        }
    }

    /// The path in Jayway's normalized bracket form (`$['a'][0][*]..['b'][?(@['c'] == 1)]`),
    /// which parses back to an equal path.
    pub fn canonical(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 8);
        out.push_str(&self.text[..self.root_len]);
        write_steps(&mut out, &self.query.steps);
        out
    }

    /// How Jayway would print this path's root in a message (see the module doc for `$$`).
    fn message_root(&self) -> &str {
        match self.root {
            Root::Var(_) => &self.text[..self.root_len],
            Root::Input | Root::Context => "$",
        }
    }

    #[cold]
    fn definite_error(&self, fail: DefFail<'_>) -> PathError {
        let steps = &self.query.steps;
        let mut m = String::new();
        match fail {
            DefFail::NoResults => {
                m.push_str("No results for path: ");
                m.push_str(self.message_root());
                for s in steps.iter() {
                    write_fragment(&mut m, s);
                }
            }
            DefFail::Missing(i) => {
                m.push_str("Missing property in path ");
                self.write_eval_path(&mut m, i + 1);
            }
            DefFail::NotObject(i, model) => {
                m.push_str("Expected to find an object with property ");
                if let Some(s) = steps.get(i) {
                    write_fragment(&mut m, s);
                }
                m.push_str(" in path ");
                self.write_eval_path(&mut m, i);
                let _ = write!(
                    m,
                    " but found '{}'. This is not a json object according to the JsonProvider: '{}'.",
                    java_class(model),
                    JSON_PROVIDER
                );
            }
            DefFail::IsNull(i) => {
                m.push_str("The path ");
                self.write_eval_path(&mut m, i);
                m.push_str(" is null");
            }
            DefFail::NotArray(i, model) => {
                m.push_str("Filter: ");
                for s in steps.get(i..).unwrap_or_default() {
                    write_fragment(&mut m, s);
                }
                m.push_str(" can only be applied to arrays. Current context is: ");
                let _ = model.write_java_text(&mut m);
            }
        }
        PathError { message: m }
    }

    /// Jayway's "current path" for the first `upto` steps: names unescaped in `['...']`.
    fn write_eval_path(&self, out: &mut String, upto: usize) {
        out.push_str(self.message_root());
        for s in self.query.steps.iter().take(upto) {
            match s {
                Step::Field(name, _) => {
                    out.push_str("['");
                    out.push_str(name);
                    out.push_str("']");
                }
                Step::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
                other => write_fragment(out, other),
            }
        }
    }
}

impl fmt::Display for Path {
    /// The text as written: AWS quotes paths verbatim (`Invalid path '$.x' : ...`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

// ---------------------------------------------------------------------------------------
// Reference paths (ResultPath)

/// A compiled `ResultPath`: a reference path (`$`, names, non-negative indexes).
#[derive(Clone, Debug, PartialEq)]
pub struct ReferencePath {
    text: Box<str>,
    steps: Box<[RefStep]>,
}

#[derive(Clone, Debug, PartialEq)]
enum RefStep {
    Field(Box<str>),
    Index(usize),
}

impl ReferencePath {
    pub fn parse(text: &str) -> Result<ReferencePath, PathSyntaxError> {
        let src = Src { full: text };
        let b = text.as_bytes();
        if b.first() != Some(&b'$') {
            return Err(src.err(0, "a reference path must start with '$'"));
        }
        match b.get(1) {
            Some(b'$') => {
                return Err(src.err(0, "a reference path cannot start with '$$': the context object is read-only"))
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                return Err(
                    src.err(0, "a reference path cannot start with a variable ('$name'); use Assign to set variables")
                )
            }
            _ => {}
        }
        let mut steps = Vec::new();
        for (step, at) in parse_after_root(&src, text, 0, 1, 0)? {
            let what = match step {
                Step::Field(name, _) => {
                    steps.push(RefStep::Field(name));
                    continue;
                }
                Step::Index(i) => match usize::try_from(i) {
                    Ok(i) => {
                        steps.push(RefStep::Index(i));
                        continue;
                    }
                    Err(_) => "negative indexes",
                },
                Step::Fields(..) => "unions of names (['a','b'])",
                Step::Indexes(_) => "unions of indexes ([0,1])",
                Step::Slice(..) => "slices ([a:b])",
                Step::Wildcard => "wildcards (*)",
                Step::Scan => "deep scans (..)",
                Step::Filter(_) => "filters ([?(...)])",
            };
            return Err(
                src.err(at, &format!("{what} are not allowed in a reference path, which must select a single node"))
            );
        }
        Ok(ReferencePath { text: text.into(), steps: steps.into() })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// At most how many bytes [`ReferencePath::set`] adds to the JSON text of the target
    /// and the value together: per field step a new member (`,"name":`, every name byte
    /// counted as a six-byte escape) in a possibly new object (`{}`); an index step only
    /// replaces an element.
    pub fn growth_bound(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match s {
                RefStep::Field(name) => 6 + 6 * name.len(),
                RefStep::Index(_) => 0,
            })
            .sum()
    }

    /// True for `$` (the result replaces the whole input).
    pub fn is_root(&self) -> bool {
        self.steps.is_empty()
    }

    /// Returns `target` with `value` placed at this path. New objects are built only along
    /// the changed spine; an existing key keeps its position, a new key goes last; missing
    /// intervening objects are created. A node on the way that is not an object (or, for
    /// an index step, not an array long enough) raises `States.ResultPathMatchFailure`.
    /// The path outlives the values (it is the program's), so new keys borrow its names.
    pub fn set<'a>(&'a self, bump: &'a Bump, target: Value<'a>, value: Value<'a>) -> Result<Value<'a>, EvalError> {
        set_at(bump, target, &self.steps, value).ok_or_else(|| self.match_failure(target))
    }

    #[cold]
    fn match_failure(&self, target: Value<'_>) -> EvalError {
        EvalError {
            kind: ErrorKind::ResultPathMatchFailure,
            message: format!("Unable to apply ReferencePath {} to input {}", self.text, target.to_json_string()),
        }
    }
}

fn set_at<'a>(bump: &'a Bump, target: Value<'a>, steps: &'a [RefStep], value: Value<'a>) -> Option<Value<'a>> {
    let Some((first, rest)) = steps.split_first() else {
        return Some(value);
    };
    match (first, target) {
        (RefStep::Field(name), Value::Object(members)) => {
            let pos = members.iter().position(|(k, _)| *k == &**name);
            let child = match pos.and_then(|p| members.get(p)) {
                Some((_, v)) => *v,
                None => match rest.first() {
                    // Missing objects on the way are created; arrays cannot be.
                    Some(RefStep::Field(_)) | None => Value::EMPTY_OBJECT,
                    Some(RefStep::Index(_)) => return None,
                },
            };
            let new_child = set_at(bump, child, rest, value)?;
            match pos {
                Some(p) => {
                    let out = bump.alloc_slice_copy(members);
                    if let Some(slot) = out.get_mut(p) {
                        slot.1 = new_child;
                    }
                    Some(Value::Object(out))
                }
                None => Some(value::appended(bump, members, name, new_child)),
            }
        }
        (RefStep::Index(i), Value::Array(items)) => {
            let child = *items.get(*i)?;
            let new_child = set_at(bump, child, rest, value)?;
            let out = bump.alloc_slice_copy(items);
            if let Some(slot) = out.get_mut(*i) {
                *slot = new_child;
            }
            Some(Value::Array(out))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Parsing (mirrors Jayway's PathCompiler and FilterCompiler)

struct Src<'t> {
    full: &'t str,
}

impl Src<'_> {
    #[cold]
    fn err(&self, offset: usize, message: &str) -> PathSyntaxError {
        PathSyntaxError { text: self.full.to_owned(), offset, message: message.to_owned() }
    }
}

/// Position of the first byte at or after `from` that is not a space (Jayway's notion of
/// "significant": only `' '` is skipped).
fn next_sig(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// Index of the next unescaped `c` after `open` (Jayway's `nextIndexOfUnescaped`).
fn next_unescaped(b: &[u8], open: usize, c: u8) -> Option<usize> {
    let mut i = open + 1;
    let mut esc = false;
    while let Some(&x) = b.get(i) {
        if esc {
            esc = false;
        } else if x == b'\\' {
            esc = true;
        } else if x == c {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Parses the steps of `s` starting at `start` (just after the root). `base` is the offset
/// of `s` in the whole path, for error offsets. Returns each step with its offset.
fn parse_after_root(
    src: &Src,
    s: &str,
    base: usize,
    start: usize,
    nesting: usize,
) -> Result<Vec<(Step, usize)>, PathSyntaxError> {
    let b = s.as_bytes();
    let mut steps = Vec::new();
    if start >= b.len() {
        return Ok(steps);
    }
    if b[start] != b'.' && b[start] != b'[' {
        return Err(src.err(base + start, "expected '.' or '[' after the path's root"));
    }
    if b.last() == Some(&b'.') {
        return Err(src.err(base + b.len() - 1, "a path must not end with '.' or '..'"));
    }
    let mut pos = start;
    while pos < b.len() {
        if steps.len() >= MAX_STEPS {
            return Err(src.err(base + pos, "too many steps in one path (the limit is 256)"));
        }
        let at = pos;
        match b[pos] {
            b'[' => {
                let (step, next) = parse_bracket(src, s, base, pos, nesting)?;
                steps.push((step, base + at));
                pos = next;
            }
            b'.' => {
                if b.get(pos + 1) == Some(&b'.') {
                    steps.push((Step::Scan, base + at));
                    pos += 2;
                } else {
                    pos += 1;
                }
                match b.get(pos) {
                    None => return Err(src.err(base + at, "a path must not end with '.' or '..'")),
                    Some(b'.') => return Err(src.err(base + pos, "unexpected '.'")),
                    _ => {}
                }
            }
            b'*' => {
                steps.push((Step::Wildcard, base + at));
                pos += 1;
            }
            b' ' => {
                return Err(
                    src.err(base + pos, "unexpected blank; names with blanks need bracket notation: ['my name']")
                )
            }
            _ => {
                let mut end = pos;
                while let Some(&c) = b.get(end) {
                    match c {
                        b'.' | b'[' => break,
                        b' ' => return Err(src.err(base + end, "names with blanks need bracket notation: ['my name']")),
                        b'(' => return Err(src.err(base + pos, "path functions such as '.length()' are not supported")),
                        _ => end += 1,
                    }
                }
                let name = s.get(pos..end).ok_or_else(|| src.err(base + pos, "invalid name"))?;
                steps.push((Step::Field(name.into(), Quote::Single), base + at));
                pos = end;
            }
        }
    }
    Ok(steps)
}

/// Parses the bracket expression starting at `pos` (a `[`); returns the step and the
/// position after its `]`.
fn parse_bracket(
    src: &Src,
    s: &str,
    base: usize,
    pos: usize,
    nesting: usize,
) -> Result<(Step, usize), PathSyntaxError> {
    let b = s.as_bytes();
    let sig = next_sig(b, pos + 1);
    match b.get(sig).copied() {
        Some(q @ (b'\'' | b'"')) => parse_bracket_names(src, s, base, sig, q),
        Some(c) if c.is_ascii_digit() || c == b'-' || c == b':' => parse_array_token(src, s, base, pos),
        Some(b'*') => {
            let close = next_sig(b, sig + 1);
            if b.get(close) != Some(&b']') {
                return Err(src.err(base + sig + 1, "expected ']' after '[*'"));
            }
            Ok((Step::Wildcard, close + 1))
        }
        Some(b'?') => {
            let open = next_sig(b, sig + 1);
            match b.get(open) {
                Some(b'(') => {}
                Some(b']' | b',') => {
                    return Err(src.err(
                        base + pos,
                        "filter placeholders '[?]' are not supported; write the filter inline, e.g. [?(@.x == 1)]",
                    ))
                }
                _ => return Err(src.err(base + sig, "expected '(' after '[?'")),
            }
            let close = closing_paren(b, open)
                .ok_or_else(|| src.err(base + open, "the filter's '(' is not closed (or a string or /regex/ in it is not)"))?;
            let end = next_sig(b, close + 1);
            if b.get(end) != Some(&b']') {
                return Err(src.err(base + close + 1, "expected ']' after the filter's closing ')'"));
            }
            if nesting >= MAX_FILTER_NESTING {
                return Err(src.err(base + pos, "filters are nested too deeply (the limit is 4)"));
            }
            let inner = s.get(open..=close).ok_or_else(|| src.err(base + open, "invalid filter"))?;
            let expr = FilterParser::compile(src, inner, base + open, nesting + 1)?;
            Ok((Step::Filter(Box::new(expr)), end + 1))
        }
        _ => Err(src.err(
            base + pos,
            "could not parse the bracket expression: expected a quoted name, an index, a slice, '*' or a filter [?(...)]",
        )),
    }
}

/// `['a']`, `["a"]`, `['a','b']`: `open` is the first quote.
fn parse_bracket_names(src: &Src, s: &str, base: usize, open: usize, q: u8) -> Result<(Step, usize), PathSyntaxError> {
    let b = s.as_bytes();
    let mut names: Vec<Box<str>> = Vec::new();
    let mut i = open;
    loop {
        let close = next_unescaped(b, i, q)
            .ok_or_else(|| src.err(base + i, &format!("the name is not closed: missing closing {}", q as char)))?;
        let raw = s.get(i + 1..close).ok_or_else(|| src.err(base + i, "invalid name"))?;
        let name = unescape(raw).map_err(|m| src.err(base + i + 1, m))?;
        names.push(name.into());
        let j = next_sig(b, close + 1);
        match b.get(j) {
            Some(b']') => {
                let quote = if q == b'"' { Quote::Double } else { Quote::Single };
                let step = if names.len() == 1 {
                    Step::Field(names.pop().unwrap_or_default(), quote)
                } else {
                    Step::Fields(names.into(), quote)
                };
                return Ok((step, j + 1));
            }
            Some(b',') => {
                let k = next_sig(b, j + 1);
                match b.get(k) {
                    Some(&c) if c == q => i = k,
                    Some(b']' | b',') => return Err(src.err(base + k, "found an empty name in a union")),
                    _ => return Err(src.err(base + k, &format!("expected a name quoted with {} after ','", q as char))),
                }
            }
            None => return Err(src.err(base + j, "the bracket is not closed: missing ']'")),
            _ => return Err(src.err(base + j, "names must be separated by ',' or closed with ']'")),
        }
    }
}

/// `[0]`, `[-1]`, `[0,2]`, `[1:5]`, `[1:]`, `[:2]`: `pos` is the `[`.
fn parse_array_token(src: &Src, s: &str, base: usize, pos: usize) -> Result<(Step, usize), PathSyntaxError> {
    let b = s.as_bytes();
    let close = b[pos..]
        .iter()
        .position(|&c| c == b']')
        .map(|p| p + pos)
        .ok_or_else(|| src.err(base + pos, "the bracket is not closed: missing ']'"))?;
    let raw = s.get(pos + 1..close).ok_or_else(|| src.err(base + pos, "invalid index"))?;
    // Java's String.trim: everything up to ' ' counts as blank.
    let expr = raw.trim_matches(|c: char| c <= ' ');
    if !expr.bytes().all(|c| c.is_ascii_digit() || matches!(c, b',' | b'-' | b':' | b' ')) {
        return Err(src.err(base + pos + 1, &format!("invalid index expression '{expr}'")));
    }
    let step = if expr.contains(':') {
        if !expr.bytes().all(|c| c.is_ascii_digit() || c == b'-' || c == b':') {
            return Err(src.err(base + pos + 1, &format!("invalid slice '{expr}'")));
        }
        // Java's split drops trailing empty parts: "1:" has one part, ":2" two.
        let mut parts: Vec<&str> = expr.split(':').collect();
        while parts.last() == Some(&"") {
            parts.pop();
        }
        if parts.len() > 2 {
            return Err(src.err(base + pos + 1, "slice steps ([start:end:step]) are not supported"));
        }
        let read = |p: Option<&&str>| -> Result<Option<i32>, PathSyntaxError> {
            match p {
                None | Some(&"") => Ok(None),
                Some(t) => t
                    .parse::<i32>()
                    .map(Some)
                    .map_err(|_| src.err(base + pos + 1, &format!("invalid slice bound '{t}'"))),
            }
        };
        let from = read(parts.first())?;
        let to = read(parts.get(1))?;
        if from.is_none() && to.is_none() {
            return Err(src.err(base + pos + 1, "a slice needs a start or an end"));
        }
        Step::Slice(from, to)
    } else {
        let mut idx = Vec::new();
        for t in expr.split(',') {
            let t = t.trim_matches(' ');
            let i = t.parse::<i32>().map_err(|_| src.err(base + pos + 1, &format!("invalid array index '{t}'")))?;
            idx.push(i);
        }
        match idx.as_slice() {
            [one] => Step::Index(*one),
            _ => Step::Indexes(idx.into()),
        }
    };
    Ok((step, close + 1))
}

/// Index of the `)` matching the `(` at `open`, skipping quoted strings and `/regex/`
/// (Jayway's `indexOfClosingBracket(.., true, true)`).
fn closing_paren(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while let Some(&c) = b.get(i) {
        match c {
            b'\'' | b'"' => i = next_unescaped(b, i, c)?,
            b'/' => i = next_unescaped(b, i, b'/')?,
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Jayway's `Utils.unescape`: `\\ \' \" \r \f \t \n \b \uXXXX`; any other escaped character
/// stands for itself; a trailing backslash is kept.
fn unescape(raw: &str) -> Result<String, &'static str> {
    if !raw.contains('\\') {
        return Ok(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => out.push('\\'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('b') => out.push('\u{8}'),
            Some('u') => {
                let hi = read_hex4(&mut chars)?;
                if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    if chars.next() != Some('\\') || chars.next() != Some('u') {
                        return Err("invalid \\u escape: unpaired surrogate");
                    }
                    let lo = read_hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err("invalid \\u escape: unpaired surrogate");
                    }
                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    out.push(char::from_u32(cp).ok_or("invalid \\u escape")?);
                } else {
                    out.push(char::from_u32(hi).ok_or("invalid \\u escape: unpaired surrogate")?);
                }
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

fn read_hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, &'static str> {
    let mut v = 0u32;
    for _ in 0..4 {
        let d = chars.next().and_then(|c| c.to_digit(16)).ok_or("invalid \\u escape: expected 4 hex digits")?;
        v = v * 16 + d;
    }
    Ok(v)
}

/// Jayway's `FilterCompiler`: two stacks, and every `)` folds all pending operators into
/// the expressions below it, so `&&` and `||` group by position, not precedence.
struct FilterParser<'t, 's> {
    src: &'s Src<'t>,
    s: &'s str,
    b: &'s [u8],
    base: usize,
    pos: usize,
    nesting: usize,
    terms: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LogOp {
    And,
    Or,
}

impl<'t, 's> FilterParser<'t, 's> {
    /// `s` is the filter between `[?` and `]`: `(` ... `)`.
    fn compile(src: &'s Src<'t>, s: &'s str, base: usize, nesting: usize) -> Result<Expr, PathSyntaxError> {
        let mut p = FilterParser { src, s, b: s.as_bytes(), base, pos: 0, nesting, terms: 0 };
        p.run()
    }

    fn err(&self, at: usize, msg: &str) -> PathSyntaxError {
        self.src.err(self.base + at, msg)
    }

    fn run(&mut self) -> Result<Expr, PathSyntaxError> {
        let mut ops: Vec<(LogOp, usize)> = Vec::new();
        let mut exps: Vec<Expr> = Vec::new();
        let mut open = 0usize;
        loop {
            self.pos = next_sig(self.b, self.pos);
            let Some(&c) = self.b.get(self.pos) else {
                break;
            };
            let start = self.pos;
            match c {
                b'(' => {
                    open += 1;
                    self.pos += 1;
                }
                b')' => {
                    open = open.checked_sub(1).ok_or_else(|| self.err(start, "unbalanced ')' in filter"))?;
                    self.pos += 1;
                    let mut node = exps.pop().ok_or_else(|| self.err(start, "expected an expression before ')'"))?;
                    while let Some((op, at)) = ops.pop() {
                        let left = exps
                            .pop()
                            .ok_or_else(|| self.err(at, "expected an expression on both sides of the operator"))?;
                        node = combine(left, op, node);
                    }
                    exps.push(node);
                }
                b'!' => {
                    let k = next_sig(self.b, self.pos + 1);
                    if !matches!(self.b.get(k), Some(b'@' | b'$')) {
                        return Err(self.err(
                            start,
                            "'!' can only negate an existence test such as !@.name (Jayway ignores it elsewhere)",
                        ));
                    }
                    self.pos += 1;
                }
                b'&' | b'|' => {
                    let op = match self.b.get(self.pos..self.pos + 2) {
                        Some(b"&&") => LogOp::And,
                        Some(b"||") => LogOp::Or,
                        _ => return Err(self.err(start, "expected '&&' or '||'")),
                    };
                    ops.push((op, start));
                    self.pos += 2;
                }
                _ => {
                    self.terms += 1;
                    if self.terms > MAX_FILTER_TERMS {
                        return Err(self.err(start, "too many terms in one filter (the limit is 128)"));
                    }
                    let e = self.read_expression()?;
                    exps.push(e);
                }
            }
            if self.pos <= start {
                return Err(self.err(start, "could not parse the filter"));
            }
        }
        if open != 0 {
            return Err(self.err(0, "unbalanced parentheses in filter"));
        }
        let expr = exps.pop().ok_or_else(|| self.err(0, "empty filter"))?;
        if !exps.is_empty() || !ops.is_empty() {
            return Err(self.err(0, "expected '&&' or '||' between filter expressions"));
        }
        Ok(expr)
    }

    fn read_expression(&mut self) -> Result<Expr, PathSyntaxError> {
        let start = self.pos;
        let (left, negated) = self.read_value()?;
        if self.terminated() {
            let Operand::Path(path) = left else {
                return Err(self.err(start, "an existence test needs a path such as @.name"));
            };
            return Ok(Expr::Exists { path, negated });
        }
        if negated {
            return Err(
                self.err(start, "'!' can only negate an existence test such as !@.name (Jayway ignores it elsewhere)")
            );
        }
        let op = self.read_operator()?;
        let (right, _) = self.read_value()?;
        Ok(Expr::Compare { left, op, right })
    }

    /// Jayway's `expressionIsTerminated`.
    fn terminated(&self) -> bool {
        let is_end = |c: Option<&u8>| matches!(c, Some(b')' | b'&' | b'|'));
        is_end(self.b.get(self.pos)) || is_end(self.b.get(next_sig(self.b, self.pos + 1)))
    }

    fn read_operator(&mut self) -> Result<Op, PathSyntaxError> {
        self.pos = next_sig(self.b, self.pos);
        let start = self.pos;
        let is_rel = |c: u8| matches!(c, b'<' | b'>' | b'=' | b'~' | b'!');
        if self.b.get(self.pos).is_some_and(|&c| is_rel(c)) {
            while self.b.get(self.pos).is_some_and(|&c| is_rel(c)) {
                self.pos += 1;
            }
        } else {
            while self.b.get(self.pos).is_some_and(|&c| c != b' ') {
                self.pos += 1;
            }
        }
        let text = self.s.get(start..self.pos).unwrap_or("");
        let op = match text.to_ascii_lowercase().as_str() {
            "==" => Op::Eq,
            "!=" => Op::Ne,
            "===" => Op::TsEq,
            "!==" => Op::TsNe,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "=~" => Op::Regex,
            "in" => Op::In,
            "nin" => Op::Nin,
            "contains" => Op::Contains,
            "subsetof" => Op::SubsetOf,
            "anyof" => Op::AnyOf,
            "noneof" => Op::NoneOf,
            "size" => Op::Size,
            "empty" => Op::Empty,
            "all" | "type" | "matches" | "exists" => {
                return Err(self.err(start, &format!("the filter operator '{text}' is not supported")))
            }
            "" => return Err(self.err(start, "expected a comparison operator")),
            _ => return Err(self.err(start, &format!("unknown filter operator '{text}'"))),
        };
        Ok(op)
    }

    /// A path or a literal; for a path, whether a `!` precedes it.
    fn read_value(&mut self) -> Result<(Operand, bool), PathSyntaxError> {
        self.pos = next_sig(self.b, self.pos);
        let start = self.pos;
        let b = self.b;
        let Some(&c) = b.get(start) else {
            return Err(self.err(start, "expected a value"));
        };
        let operand = match c {
            b'$' | b'@' => return self.read_path(),
            q @ (b'\'' | b'"') => {
                let close = next_unescaped(b, start, q).ok_or_else(|| self.err(start, "the string is not closed"))?;
                let raw = self.s.get(start + 1..close).unwrap_or("");
                let text = unescape(raw).map_err(|m| self.err(start + 1, m))?;
                self.pos = close + 1;
                Operand::Str(text.into(), if q == b'"' { Quote::Double } else { Quote::Single })
            }
            b't' | b'f' | b'n' => {
                let (word, v) = match c {
                    b't' => ("true", Operand::Bool(true)),
                    b'f' => ("false", Operand::Bool(false)),
                    _ => ("null", Operand::Null),
                };
                if b.get(start..start + word.len()) != Some(word.as_bytes()) {
                    return Err(self.err(start, &format!("expected '{word}'")));
                }
                self.pos = start + word.len();
                v
            }
            b'{' | b'[' => {
                let close_c = if c == b'{' { b'}' } else { b']' };
                let close = matching_close(b, start, c, close_c)
                    .ok_or_else(|| self.err(start, "the JSON literal is not closed"))?;
                let mut i = start;
                let lit = parse_lit(&b[..=close], &mut i, 0).map_err(|m| self.err(i, m))?;
                if next_json_ws(&b[..=close], i) != close + 1 {
                    return Err(self.err(i, "unexpected text in JSON literal"));
                }
                self.pos = close + 1;
                Operand::Json(lit)
            }
            b'/' => {
                let close =
                    next_unescaped(b, start, b'/').ok_or_else(|| self.err(start, "the /regex/ is not closed"))?;
                let mut end = close + 1;
                while b.get(end).is_some_and(|c| b"dimsuxU".contains(c)) {
                    end += 1;
                }
                let source = self.s.get(start + 1..close).unwrap_or("");
                let flags = self.s.get(close + 1..end).unwrap_or("");
                let regex = compile_regex(source, flags).map_err(|m| self.err(start, &m))?;
                self.pos = end;
                Operand::Pattern(Pattern { source: source.into(), flags: flags.into(), regex })
            }
            _ => {
                let mut end = start;
                while b.get(end).is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'.' | b'e' | b'E')) {
                    end += 1;
                }
                let text = self.s.get(start..end).unwrap_or("");
                let lit = parse_num_lit(text).ok_or_else(|| {
                    self.err(
                        start,
                        "expected a value: a number, 'string', true, false, null, [JSON], /regex/ or a path",
                    )
                })?;
                self.pos = end;
                Operand::Num(lit)
            }
        };
        Ok((operand, false))
    }

    /// Jayway's `readPath`: the path runs to a blank, an operator character or a `)` that
    /// does not close a function call; `[...]` is skipped to its first `]`.
    fn read_path(&mut self) -> Result<(Operand, bool), PathSyntaxError> {
        let b = self.b;
        let begin = self.pos;
        let negated = b[..begin].iter().rev().find(|&&c| c != b' ') == Some(&b'!');
        let mut pos = begin + 1;
        while pos < b.len() {
            if b[pos] == b'[' {
                let close = b[pos..]
                    .iter()
                    .position(|&c| c == b']')
                    .map(|p| p + pos)
                    .ok_or_else(|| self.err(pos, "square brackets do not match in filter"))?;
                pos = close + 1;
                if pos >= b.len() {
                    break;
                }
            }
            let c = b[pos];
            let closing_fn = c == b')' && closes_function(b, begin, pos);
            if matches!(c, b'<' | b'>' | b'=' | b'~' | b'!' | b' ') || (c == b')' && !closing_fn) {
                break;
            }
            pos += 1;
        }
        self.pos = pos;
        let text = self.s.get(begin..pos).ok_or_else(|| self.err(begin, "invalid path in filter"))?;
        let at_item = b[begin] == b'@';
        let steps = parse_after_root(self.src, text, self.base + begin, 1, self.nesting)?;
        let query = Query::new(steps.into_iter().map(|(s, _)| s).collect());
        Ok((Operand::Path(FilterPath { at_item, query }), negated))
    }
}

/// Jayway's `currentCharIsClosingFunctionBracket`: `)` right after `(` with a `.` before it.
fn closes_function(b: &[u8], lower: usize, pos: usize) -> bool {
    let Some(prev) = b[..pos].iter().rposition(|&c| c != b' ') else {
        return false;
    };
    if b[prev] != b'(' {
        return false;
    }
    b.get(lower + 1..prev).is_some_and(|seg| seg.contains(&b'.'))
}

fn combine(left: Expr, op: LogOp, right: Expr) -> Expr {
    let mut items = Vec::new();
    for e in [left, right] {
        match (op, e) {
            (LogOp::And, Expr::And(xs)) | (LogOp::Or, Expr::Or(xs)) => items.extend(xs.into_vec()),
            (_, e) => items.push(e),
        }
    }
    match op {
        LogOp::And => Expr::And(items.into()),
        LogOp::Or => Expr::Or(items.into()),
    }
}

/// Index of the `close` matching the `open` at `start`, skipping quoted strings.
fn matching_close(b: &[u8], start: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = start;
    while let Some(&c) = b.get(i) {
        if c == b'\'' || c == b'"' {
            i = next_unescaped(b, i, c)?;
        } else if c == open {
            depth += 1;
        } else if c == close {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

fn next_json_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// A JSON literal in a filter; strings may use single quotes, as json-smart's permissive
/// mode (which Jayway uses for these) allows.
fn parse_lit(b: &[u8], i: &mut usize, depth: usize) -> Result<Lit, &'static str> {
    if depth > MAX_LITERAL_DEPTH {
        return Err("JSON literal nested too deeply");
    }
    *i = next_json_ws(b, *i);
    let Some(&c) = b.get(*i) else {
        return Err("unexpected end of JSON literal");
    };
    match c {
        b'[' => {
            *i += 1;
            let mut items = Vec::new();
            *i = next_json_ws(b, *i);
            if b.get(*i) == Some(&b']') {
                *i += 1;
                return Ok(Lit::Arr(items.into()));
            }
            loop {
                items.push(parse_lit(b, i, depth + 1)?);
                *i = next_json_ws(b, *i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b']') => {
                        *i += 1;
                        return Ok(Lit::Arr(items.into()));
                    }
                    _ => return Err("expected ',' or ']' in JSON literal"),
                }
            }
        }
        b'{' => {
            *i += 1;
            let mut members: Vec<(Box<str>, Lit)> = Vec::new();
            *i = next_json_ws(b, *i);
            if b.get(*i) == Some(&b'}') {
                *i += 1;
                return Ok(Lit::Obj(members.into()));
            }
            loop {
                *i = next_json_ws(b, *i);
                let key = match b.get(*i) {
                    Some(&q @ (b'"' | b'\'')) => lit_string(b, i, q)?,
                    _ => return Err("expected a quoted key in JSON literal"),
                };
                *i = next_json_ws(b, *i);
                if b.get(*i) != Some(&b':') {
                    return Err("expected ':' in JSON literal");
                }
                *i += 1;
                let v = parse_lit(b, i, depth + 1)?;
                // Later duplicates win, at the first position, as in parsed input.
                match members.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = v,
                    None => members.push((key, v)),
                }
                *i = next_json_ws(b, *i);
                match b.get(*i) {
                    Some(b',') => *i += 1,
                    Some(b'}') => {
                        *i += 1;
                        return Ok(Lit::Obj(members.into()));
                    }
                    _ => return Err("expected ',' or '}' in JSON literal"),
                }
            }
        }
        q @ (b'"' | b'\'') => Ok(Lit::Str(lit_string(b, i, q)?)),
        b't' | b'f' | b'n' => {
            for (word, lit) in [("true", Lit::Bool(true)), ("false", Lit::Bool(false)), ("null", Lit::Null)] {
                if b.get(*i..*i + word.len()) == Some(word.as_bytes()) {
                    *i += word.len();
                    return Ok(lit);
                }
            }
            Err("invalid literal in JSON")
        }
        _ => {
            let start = *i;
            if b.get(*i) == Some(&b'-') {
                *i += 1;
            }
            let digits = |i: &mut usize| {
                let s = *i;
                while b.get(*i).is_some_and(u8::is_ascii_digit) {
                    *i += 1;
                }
                *i > s
            };
            if !digits(i) {
                return Err("invalid number in JSON literal");
            }
            let mut integral = true;
            if b.get(*i) == Some(&b'.') {
                *i += 1;
                integral = false;
                if !digits(i) {
                    return Err("invalid number in JSON literal");
                }
            }
            if matches!(b.get(*i), Some(b'e' | b'E')) {
                *i += 1;
                integral = false;
                if matches!(b.get(*i), Some(b'+' | b'-')) {
                    *i += 1;
                }
                if !digits(i) {
                    return Err("invalid number in JSON literal");
                }
            }
            let text = std::str::from_utf8(&b[start..*i]).map_err(|_| "invalid number in JSON literal")?;
            match (integral, text.parse::<i64>()) {
                (true, Ok(v)) => Ok(Lit::Num(Num::Int(v))),
                _ => text.parse::<f64>().map(|f| Lit::Num(Num::Float(f))).map_err(|_| "invalid number in JSON literal"),
            }
        }
    }
}

fn lit_string(b: &[u8], i: &mut usize, q: u8) -> Result<Box<str>, &'static str> {
    let close = next_unescaped(b, *i, q).ok_or("unterminated string in JSON literal")?;
    let raw = std::str::from_utf8(&b[*i + 1..close]).map_err(|_| "invalid string in JSON literal")?;
    *i = close + 1;
    Ok(unescape(raw)?.into())
}

fn compile_regex(source: &str, flags: &str) -> Result<Regex, String> {
    // Java's `matches()` needs the whole input to match; with the x flag a '#' comment in
    // the source would swallow the closing group unless a newline ends it.
    let pattern = if flags.contains('x') { format!("\\A(?:{source}\n)\\z") } else { format!("\\A(?:{source})\\z") };
    RegexBuilder::new(&pattern)
        .case_insensitive(flags.contains('i'))
        .multi_line(flags.contains('m'))
        .dot_matches_new_line(flags.contains('s'))
        .ignore_whitespace(flags.contains('x'))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("the regular expression /{source}/ is not supported: {e}"))
}

/// A number literal in a filter, with Java `BigDecimal`'s syntax (what Jayway parses).
fn parse_num_lit(text: &str) -> Option<NumLit> {
    let d = parse_decimal(text)?;
    let mut decimal = String::new();
    write_decimal(&d, &mut decimal);
    Some(NumLit { text: text.into(), num: d.num, decimal: decimal.into() })
}

/// A number in Java `BigDecimal` syntax: `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`,
/// split into its unscaled digits and scale.
struct Decimal<'t> {
    negative: bool,
    /// The unscaled value's digits without the point, leading zeros included.
    int_digits: &'t [u8],
    frac_digits: &'t [u8],
    exponent: i64,
    num: Num,
}

fn parse_decimal(text: &str) -> Option<Decimal<'_>> {
    let b = text.as_bytes();
    let mut i = 0;
    let negative = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let int_digits = &b[int_start..i];
    let mut frac_digits: &[u8] = &[];
    if b.get(i) == Some(&b'.') {
        i += 1;
        let f = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        frac_digits = &b[f..i];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    let mut exponent = 0i64;
    let mut has_exp = false;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        has_exp = true;
        i += 1;
        let neg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let e = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = text.get(e..i)?;
        if digits.is_empty() {
            return None;
        }
        exponent = digits.parse::<i64>().ok().filter(|e| *e < 1_000_000)?;
        if neg {
            exponent = -exponent;
        }
    }
    if i != b.len() {
        return None;
    }
    let integral = frac_digits.is_empty() && !has_exp && !text.contains('.');
    let int_val = if integral { text.parse::<i64>().ok() } else { None };
    let num = match int_val {
        Some(v) => Num::Int(v),
        None => Num::Float(text.parse::<f64>().ok()?),
    };
    Some(Decimal { negative, int_digits, frac_digits, exponent, num })
}

/// Writes the text Java's `BigDecimal.toString()` gives for `d`.
fn write_decimal(d: &Decimal<'_>, out: &mut impl fmt::Write) {
    // Unscaled digits without leading zeros ("0" for zero).
    let digits = d.int_digits.iter().chain(d.frac_digits.iter());
    let mut coeff = [0u8; 64];
    let mut n = 0usize;
    let mut dropped_overflow = 0i64;
    for &c in digits {
        if n == 0 && c == b'0' {
            continue;
        }
        if n < coeff.len() {
            coeff[n] = c;
            n += 1;
        } else {
            // Beyond 64 significant digits we keep the magnitude, not the digits.
            dropped_overflow += 1;
        }
    }
    let scale = d.frac_digits.len() as i64 - d.exponent - dropped_overflow;
    if n == 0 {
        coeff[0] = b'0';
        n = 1;
    }
    let coeff = &coeff[..n];
    let zero = coeff == b"0";
    if d.negative && !zero {
        let _ = out.write_char('-');
    }
    let adjusted = -scale + (n as i64 - 1);
    if scale == 0 {
        let _ = out.write_str(ascii(coeff));
    } else if scale > 0 && adjusted >= -6 {
        let scale = scale as usize;
        if n > scale {
            let _ = out.write_str(ascii(&coeff[..n - scale]));
            let _ = out.write_char('.');
            let _ = out.write_str(ascii(&coeff[n - scale..]));
        } else {
            let _ = out.write_str("0.");
            for _ in 0..scale - n {
                let _ = out.write_char('0');
            }
            let _ = out.write_str(ascii(coeff));
        }
    } else {
        let _ = out.write_str(ascii(&coeff[..1]));
        if n > 1 {
            let _ = out.write_char('.');
            let _ = out.write_str(ascii(&coeff[1..]));
        }
        let _ = out.write_char('E');
        if adjusted > 0 {
            let _ = out.write_char('+');
        }
        let _ = write!(out, "{adjusted}");
    }
}

// ---------------------------------------------------------------------------------------
// Printing

/// Appends `name` quoted with `q`, escaping `\` and `q` so it parses back.
fn write_quoted(out: &mut String, name: &str, q: Quote) {
    let qc = q.byte() as char;
    out.push(qc);
    for c in name.chars() {
        if c == '\\' || c == qc {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(qc);
}

fn write_steps(out: &mut String, steps: &[Step]) {
    for s in steps {
        match s {
            Step::Field(name, q) => {
                out.push('[');
                write_quoted(out, name, *q);
                out.push(']');
            }
            Step::Fields(names, q) => {
                out.push('[');
                for (i, name) in names.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_quoted(out, name, *q);
                }
                out.push(']');
            }
            Step::Filter(e) => {
                out.push_str("[?(");
                write_expr(out, e);
                out.push_str(")]");
            }
            other => write_fragment(out, other),
        }
    }
}

fn write_expr(out: &mut String, e: &Expr) {
    match e {
        Expr::And(xs) | Expr::Or(xs) => {
            let sep = if matches!(e, Expr::And(_)) { " && " } else { " || " };
            out.push('(');
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                write_expr(out, x);
            }
            out.push(')');
        }
        Expr::Exists { path, negated } => {
            if *negated {
                out.push('!');
            }
            write_filter_path(out, path);
        }
        Expr::Compare { left, op, right } => {
            write_operand(out, left);
            out.push(' ');
            out.push_str(op.text());
            out.push(' ');
            write_operand(out, right);
        }
    }
}

fn write_filter_path(out: &mut String, p: &FilterPath) {
    out.push(if p.at_item { '@' } else { '$' });
    write_steps(out, &p.query.steps);
}

fn write_operand(out: &mut String, o: &Operand) {
    match o {
        Operand::Path(p) => write_filter_path(out, p),
        Operand::Str(s, q) => write_quoted(out, s, *q),
        Operand::Num(n) => out.push_str(&n.text),
        Operand::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Operand::Null => out.push_str("null"),
        Operand::Json(l) => write_lit(out, l),
        Operand::Pattern(p) => {
            out.push('/');
            out.push_str(&p.source);
            out.push('/');
            out.push_str(&p.flags);
        }
    }
}

fn write_lit(out: &mut String, l: &Lit) {
    match l {
        Lit::Null => out.push_str("null"),
        Lit::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Lit::Num(Num::Int(i)) => {
            let _ = write!(out, "{i}");
        }
        // Debug keeps a fractional part or exponent, so it parses back as a double.
        Lit::Num(Num::Float(f)) => {
            let _ = write!(out, "{f:?}");
        }
        Lit::Str(s) => write_quoted(out, s, Quote::Double),
        Lit::Arr(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_lit(out, x);
            }
            out.push(']');
        }
        Lit::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_quoted(out, k, Quote::Double);
                out.push(':');
                write_lit(out, v);
            }
            out.push('}');
        }
    }
}

/// Jayway's `getPathFragment`, used in its messages: names escaped (`\` and `'`) inside
/// the delimiter they were written with; filters print as `[?]`.
fn write_fragment(out: &mut String, s: &Step) {
    let names = |out: &mut String, names: &mut dyn Iterator<Item = &str>, q: Quote| {
        let qc = q.byte() as char;
        out.push('[');
        for (i, name) in names.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push(qc);
            for c in name.chars() {
                if c == '\\' || c == '\'' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push(qc);
        }
        out.push(']');
    };
    match s {
        Step::Field(name, q) => names(out, &mut std::iter::once(&**name), *q),
        Step::Fields(ns, q) => names(out, &mut ns.iter().map(|n| &**n), *q),
        Step::Index(i) => {
            let _ = write!(out, "[{i}]");
        }
        Step::Indexes(is) => {
            out.push('[');
            for (k, i) in is.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{i}");
            }
            out.push(']');
        }
        Step::Slice(from, to) => {
            out.push('[');
            if let Some(f) = from {
                let _ = write!(out, "{f}");
            }
            out.push(':');
            if let Some(t) = to {
                let _ = write!(out, "{t}");
            }
            out.push(']');
        }
        Step::Wildcard => out.push_str("[*]"),
        Step::Scan => out.push_str(".."),
        Step::Filter(_) => out.push_str("[?]"),
    }
}

/// The Java class Jackson's untyped deserialisation gives a value (Jayway prints it).
fn java_class(v: Value<'_>) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "java.lang.Boolean",
        Value::Int(i) if i32::try_from(i).is_ok() => "java.lang.Integer",
        Value::Int(_) => "java.lang.Long",
        Value::Float(_) => "java.lang.Double",
        Value::Str(_) => "java.lang.String",
        Value::Array(_) => "java.util.ArrayList",
        Value::Object(_) => "java.util.LinkedHashMap",
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation: definite paths (the hot case) in a loop

/// Why a definite path selected nothing; the message is built from it on the cold path.
enum DefFail<'a> {
    NoResults,
    Missing(usize),
    NotObject(usize, Value<'a>),
    IsNull(usize),
    NotArray(usize, Value<'a>),
}

#[inline]
fn find_member<'a>(members: &'a [Member<'a>], name: &str) -> Option<Value<'a>> {
    members.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

fn eval_definite<'a>(q: &Query, root: Value<'a>, bump: &'a Bump) -> Result<Value<'a>, DefFail<'a>> {
    let mut cur = root;
    let n = q.steps.len();
    for (i, step) in q.steps.iter().enumerate() {
        let leaf = i + 1 == n;
        match step {
            Step::Field(name, _) => {
                let Value::Object(members) = cur else {
                    return Err(DefFail::NotObject(i, cur));
                };
                match find_member(members, name) {
                    Some(v) => cur = v,
                    None if leaf => return Err(DefFail::NoResults),
                    None => return Err(DefFail::Missing(i)),
                }
            }
            Step::Index(k) => match cur {
                Value::Array(items) => match index_of(items.len(), i64::from(*k)).and_then(|e| items.get(e)) {
                    Some(v) => cur = *v,
                    None => return Err(DefFail::NoResults),
                },
                Value::Null => return Err(DefFail::IsNull(i)),
                _ => return Err(DefFail::NotArray(i, cur)),
            },
            Step::Fields(names, _) => {
                let Value::Object(members) = cur else {
                    return Err(DefFail::NotObject(i, cur));
                };
                return Ok(merge(bump, members, names));
            }
            // Not definite; `is_definite` keeps these out.
            _ => return Err(DefFail::NoResults),
        }
    }
    Ok(cur)
}

/// Java's `List.get` after Jayway's negative-index adjustment.
#[inline]
fn index_of(len: usize, k: i64) -> Option<usize> {
    let eff = if k < 0 { len as i64 + k } else { k };
    usize::try_from(eff).ok().filter(|&e| e < len)
}

/// Jayway's multi-property merge: the present names, in path order.
fn merge<'a>(bump: &'a Bump, members: &'a [Member<'a>], names: &[Box<str>]) -> Value<'a> {
    let mut out = BumpVec::with_capacity_in(names.len(), bump);
    for name in names {
        if let Some((k, v)) = members.iter().find(|(k, _)| *k == &**name) {
            if !out.iter().any(|(k2, _): &Member<'a>| k2 == k) {
                out.push((*k, *v));
            }
        }
    }
    Value::Object(out.into_bump_slice())
}

// ---------------------------------------------------------------------------------------
// Evaluation: the general token walk (indefinite paths, filter sub-paths)

#[derive(Clone, Copy)]
struct Ev<'a> {
    bump: &'a Bump,
    /// `$` inside filters.
    root: Value<'a>,
    /// Jayway's REQUIRE_PROPERTIES, set while evaluating an existence test.
    require: bool,
}

enum Sink<'a> {
    Collect(BumpVec<'a, Value<'a>>),
    Count(usize),
}

impl<'a> Sink<'a> {
    #[inline]
    fn push(&mut self, v: Value<'a>) {
        match self {
            Sink::Collect(items) => items.push(v),
            Sink::Count(n) => *n += 1,
        }
    }

    fn count(&self) -> usize {
        match self {
            Sink::Collect(items) => items.len(),
            Sink::Count(n) => *n,
        }
    }

    fn into_array(self) -> Value<'a> {
        match self {
            Sink::Collect(items) => Value::Array(items.into_bump_slice()),
            Sink::Count(_) => Value::EMPTY_ARRAY,
        }
    }
}

/// Jayway's exceptions: `PathNotFoundException` and `InvalidPathException` (a filter on a
/// scalar), which callers catch differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Thrown {
    NotFound,
    Invalid,
}

type Walk = Result<(), Thrown>;

/// Evaluates step `i` of `q` on `model` (Jayway's `PathToken.evaluate`).
fn run<'a>(q: &Query, i: usize, model: Value<'a>, ev: &Ev<'a>, sink: &mut Sink<'a>) -> Walk {
    let Some(step) = q.steps.get(i) else {
        sink.push(model);
        return Ok(());
    };
    let leaf = q.is_leaf(i);
    match step {
        Step::Field(name, _) => match model {
            Value::Object(members) => property(q, i, members, name, ev, sink),
            _ => not_object(q, i),
        },
        Step::Fields(names, _) => match model {
            Value::Object(members) if leaf => {
                if ev.require && names.iter().any(|n| find_member(members, n).is_none()) {
                    return Err(Thrown::NotFound);
                }
                sink.push(merge(ev.bump, members, names));
                Ok(())
            }
            Value::Object(members) => {
                for name in names.iter() {
                    property(q, i, members, name, ev, sink)?;
                }
                Ok(())
            }
            _ => not_object(q, i),
        },
        Step::Index(k) => match array_model(q, i, model)? {
            Some(items) => element(q, i, items, i64::from(*k), ev, sink),
            None => Ok(()),
        },
        Step::Indexes(ks) => match array_model(q, i, model)? {
            Some(items) => {
                for k in ks.iter() {
                    element(q, i, items, i64::from(*k), ev, sink)?;
                }
                Ok(())
            }
            None => Ok(()),
        },
        Step::Slice(from, to) => match array_model(q, i, model)? {
            Some(items) => slice(q, i, items, *from, *to, ev, sink),
            None => Ok(()),
        },
        Step::Wildcard => match model {
            Value::Object(members) => {
                for (_, v) in members.iter() {
                    if leaf {
                        sink.push(*v);
                    } else {
                        run(q, i + 1, *v, ev, sink)?;
                    }
                }
                Ok(())
            }
            Value::Array(items) => {
                for k in 0..items.len() {
                    match element(q, i, items, k as i64, ev, sink) {
                        // Jayway's wildcard swallows PathNotFoundException per element.
                        Err(Thrown::NotFound) if !ev.require => {}
                        other => other?,
                    }
                }
                Ok(())
            }
            _ if leaf => Ok(()),
            _ => Err(Thrown::NotFound),
        },
        Step::Scan => scan(q, i + 1, model, ev, sink, 0),
        Step::Filter(expr) => match model {
            Value::Object(_) => {
                if accept(expr, model, ev) {
                    run(q, i + 1, model, ev, sink)?;
                }
                Ok(())
            }
            Value::Array(items) => {
                for (k, item) in items.iter().enumerate() {
                    if accept(expr, *item, ev) {
                        element(q, i, items, k as i64, ev, sink)?;
                    }
                }
                Ok(())
            }
            _ if q.upstream_definite(i) => Err(Thrown::Invalid),
            _ => Ok(()),
        },
    }
}

#[inline]
fn not_object(q: &Query, i: usize) -> Walk {
    if q.upstream_definite(i) {
        Err(Thrown::NotFound)
    } else {
        Ok(())
    }
}

/// Jayway's `checkArrayModel`.
fn array_model<'a>(q: &Query, i: usize, model: Value<'a>) -> Result<Option<&'a [Value<'a>]>, Thrown> {
    match model {
        Value::Array(items) => Ok(Some(items)),
        _ if q.upstream_definite(i) => Err(Thrown::NotFound),
        _ => Ok(None),
    }
}

/// Jayway's `handleObjectProperty` for one name, on behalf of step `i`.
fn property<'a>(q: &Query, i: usize, members: &'a [Member<'a>], name: &str, ev: &Ev<'a>, sink: &mut Sink<'a>) -> Walk {
    let leaf = q.is_leaf(i);
    match find_member(members, name) {
        Some(v) if leaf => {
            sink.push(v);
            Ok(())
        }
        Some(v) => run(q, i + 1, v, ev, sink),
        None if leaf => {
            if ev.require {
                Err(Thrown::NotFound)
            } else {
                Ok(())
            }
        }
        None => {
            let definite_here = q.steps.get(i).is_some_and(|s| token_definite(s, leaf));
            if (q.upstream_definite(i) && definite_here) || ev.require {
                Err(Thrown::NotFound)
            } else {
                Ok(())
            }
        }
    }
}

/// Jayway's `handleArrayIndex`: out-of-range indexes select nothing.
fn element<'a>(q: &Query, i: usize, items: &'a [Value<'a>], k: i64, ev: &Ev<'a>, sink: &mut Sink<'a>) -> Walk {
    let Some(v) = index_of(items.len(), k).and_then(|e| items.get(e)) else {
        return Ok(());
    };
    if q.is_leaf(i) {
        sink.push(*v);
        Ok(())
    } else {
        run(q, i + 1, *v, ev, sink)
    }
}

/// Jayway's `ArrayPathToken` slice operations, including its handling of a negative start
/// in `[from:to]` (each index is then taken from the end).
fn slice<'a>(
    q: &Query,
    i: usize,
    items: &'a [Value<'a>],
    from: Option<i32>,
    to: Option<i32>,
    ev: &Ev<'a>,
    sink: &mut Sink<'a>,
) -> Walk {
    let len = items.len() as i64;
    let (start, end) = match (from, to) {
        (Some(f), None) => {
            let f = i64::from(f);
            let start = if f < 0 { len + f } else { f }.max(0);
            (start, len)
        }
        (Some(f), Some(t)) => (i64::from(f), len.min(i64::from(t))),
        (None, Some(t)) => {
            let t = i64::from(t);
            (0, len.min(if t < 0 { len + t } else { t }))
        }
        (None, None) => return Ok(()),
    };
    if len == 0 {
        return Ok(());
    }
    // Indexes below -len select nothing; skipping them bounds the loop by the array.
    for k in start.max(-len)..end {
        element(q, i, items, k, ev, sink)?;
    }
    Ok(())
}

/// Jayway's `ScanPathToken.walk` for the step `pt` after `..`.
fn scan<'a>(q: &Query, pt: usize, model: Value<'a>, ev: &Ev<'a>, sink: &mut Sink<'a>, depth: usize) -> Walk {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    match model {
        Value::Object(members) => {
            if scan_matches(q, pt, model, ev) {
                run(q, pt, model, ev, sink)?;
            }
            for (_, v) in members.iter() {
                scan(q, pt, *v, ev, sink, depth + 1)?;
            }
        }
        Value::Array(items) => {
            if scan_matches(q, pt, model, ev) {
                if q.is_leaf(pt) {
                    run(q, pt, model, ev, sink)?;
                } else {
                    // Jayway applies the step after `pt` to each element here.
                    for item in items.iter() {
                        run(q, pt + 1, *item, ev, sink)?;
                    }
                }
            }
            for item in items.iter() {
                scan(q, pt, *item, ev, sink, depth + 1)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Jayway's scan predicates: which nodes the step after `..` is tried on.
fn scan_matches<'a>(q: &Query, pt: usize, model: Value<'a>, ev: &Ev<'a>) -> bool {
    match (q.steps.get(pt), model) {
        (Some(Step::Field(name, _)), Value::Object(members)) => ev.require || find_member(members, name).is_some(),
        (Some(Step::Fields(names, _)), Value::Object(members)) => {
            ev.require || !q.is_leaf(pt) || names.iter().all(|n| find_member(members, n).is_some())
        }
        (Some(Step::Index(_) | Step::Indexes(_) | Step::Slice(..)), Value::Array(_)) => true,
        (Some(Step::Wildcard), _) => true,
        (Some(Step::Filter(e)), _) => accept(e, model, ev),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Filters

/// Jayway's `PredicatePathToken.accept`: an InvalidPathException makes the item not match.
fn accept<'a>(e: &Expr, item: Value<'a>, ev: &Ev<'a>) -> bool {
    eval_expr(e, item, ev).unwrap_or(false)
}

/// An InvalidPathException raised while evaluating a filter (e.g. `in` with a non-list).
struct Invalid;

fn eval_expr<'a>(e: &Expr, item: Value<'a>, ev: &Ev<'a>) -> Result<bool, Invalid> {
    match e {
        Expr::And(xs) => {
            for x in xs.iter() {
                if !eval_expr(x, item, ev)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Expr::Or(xs) => {
            for x in xs.iter() {
                if eval_expr(x, item, ev)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Expr::Exists { path, negated } => Ok(path_exists(path, item, ev)? != *negated),
        Expr::Compare { left, op, right } => {
            let l = operand(left, item, ev)?;
            let r = operand(right, item, ev)?;
            apply(*op, l, r)
        }
    }
}

/// Jayway's `ValueNode`s after evaluation.
#[derive(Clone, Copy)]
enum Node<'v> {
    Undefined,
    Null,
    Bool(bool),
    /// The number, and `BigDecimal.toString()` of it when known up front (literals).
    Num(Num, Option<&'v str>),
    Str(&'v str),
    /// An array or object (Jayway's `JsonNode`).
    Json(J<'v>),
    Pattern(&'v Pattern),
}

#[derive(Clone, Copy)]
enum J<'v> {
    V(Value<'v>),
    L(&'v Lit),
}

fn node_of(v: Value<'_>) -> Node<'_> {
    match v {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(b),
        Value::Int(i) => Node::Num(Num::Int(i), None),
        Value::Float(f) => Node::Num(Num::Float(f), None),
        Value::Str(s) => Node::Str(s),
        Value::Array(_) | Value::Object(_) => Node::Json(J::V(v)),
    }
}

fn node_of_lit(l: &Lit) -> Node<'_> {
    match l {
        Lit::Null => Node::Null,
        Lit::Bool(b) => Node::Bool(*b),
        Lit::Num(n) => Node::Num(*n, None),
        Lit::Str(s) => Node::Str(s),
        Lit::Arr(_) | Lit::Obj(_) => Node::Json(J::L(l)),
    }
}

fn operand<'v, 'a: 'v>(o: &'v Operand, item: Value<'a>, ev: &Ev<'a>) -> Result<Node<'v>, Invalid> {
    Ok(match o {
        Operand::Path(p) => path_value(p, item, ev)?,
        Operand::Str(s, _) => Node::Str(s),
        Operand::Num(n) => Node::Num(n.num, Some(&n.decimal)),
        Operand::Bool(b) => Node::Bool(*b),
        Operand::Null => Node::Null,
        Operand::Json(l) => node_of_lit(l),
        Operand::Pattern(p) => Node::Pattern(p),
    })
}

/// Jayway's `PathNode.evaluate` for a value: a definite path's value or undefined, an
/// indefinite path's matches as a list.
fn path_value<'a>(p: &FilterPath, item: Value<'a>, ev: &Ev<'a>) -> Result<Node<'a>, Invalid> {
    let doc = if p.at_item { item } else { ev.root };
    if p.query.is_definite() && !ev.require {
        return Ok(match eval_definite(&p.query, doc, ev.bump) {
            Ok(v) => node_of(v),
            Err(_) => Node::Undefined,
        });
    }
    let mut sink = Sink::Collect(BumpVec::new_in(ev.bump));
    match run(&p.query, 0, doc, ev, &mut sink) {
        Ok(()) if p.query.is_definite() => Ok(match sink.into_array() {
            Value::Array([.., last]) => node_of(*last),
            _ => Node::Undefined,
        }),
        Ok(()) => Ok(Node::Json(J::V(sink.into_array()))),
        Err(Thrown::NotFound) => Ok(Node::Undefined),
        Err(Thrown::Invalid) => Err(Invalid),
    }
}

/// Jayway's existence test: evaluated with REQUIRE_PROPERTIES; a definite path must select
/// something, an indefinite one only must not fail.
fn path_exists<'a>(p: &FilterPath, item: Value<'a>, ev: &Ev<'a>) -> Result<bool, Invalid> {
    let doc = if p.at_item { item } else { ev.root };
    let sub = Ev { require: true, ..*ev };
    let mut sink = Sink::Count(0);
    match run(&p.query, 0, doc, &sub, &mut sink) {
        Ok(()) => Ok(!p.query.is_definite() || sink.count() > 0),
        Err(Thrown::NotFound) => Ok(false),
        Err(Thrown::Invalid) => Err(Invalid),
    }
}

fn apply(op: Op, l: Node<'_>, r: Node<'_>) -> Result<bool, Invalid> {
    Ok(match op {
        Op::Eq => equals_eval(l, r),
        Op::Ne => !equals_eval(l, r),
        Op::TsEq => same_kind(l, r) && equals_eval(l, r),
        Op::TsNe => !(same_kind(l, r) && equals_eval(l, r)),
        Op::Lt => order(l, r) == Some(Ordering::Less),
        Op::Le => matches!(order(l, r), Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => order(l, r) == Some(Ordering::Greater),
        Op::Ge => matches!(order(l, r), Some(Ordering::Greater | Ordering::Equal)),
        Op::Regex => regex_match(l, r),
        Op::In => contains_in(l, r)?,
        Op::Nin => !contains_in(l, r)?,
        Op::Contains => match (l, r) {
            (Node::Str(a), Node::Str(b)) => a.contains(b),
            (Node::Json(j), _) => list(j).is_some_and(|mut xs| xs.any(|x| equals(r, x))),
            _ => false,
        },
        Op::SubsetOf => match (value_list(l)?, value_list(r)?) {
            (Some(ls), Some(rs)) => ls.clone().all(|x| rs.clone().any(|y| equals(x, y))),
            _ => false,
        },
        Op::AnyOf => match (value_list(l)?, value_list(r)?) {
            (Some(ls), Some(rs)) => ls.clone().any(|x| rs.clone().any(|y| equals(x, y))),
            _ => false,
        },
        Op::NoneOf => match (value_list(l)?, value_list(r)?) {
            (Some(ls), Some(rs)) => !ls.clone().any(|x| rs.clone().any(|y| equals(x, y))),
            _ => false,
        },
        Op::Size => match r {
            Node::Num(n, _) => {
                let expected = match n {
                    Num::Int(i) => i,
                    Num::Float(f) => f as i64,
                };
                match l {
                    Node::Str(s) => s.encode_utf16().count() as i64 == expected,
                    // Jayway's JsonNode.length is -1 for objects.
                    Node::Json(j) => list_len(j).map_or(-1, |n| n as i64) == expected,
                    _ => false,
                }
            }
            _ => false,
        },
        Op::Empty => {
            let Node::Bool(want) = r else {
                return Err(Invalid);
            };
            match l {
                Node::Str(s) => s.is_empty() == want,
                Node::Json(j) => (list_len(j).or_else(|| obj_len(j)) == Some(0)) == want,
                _ => false,
            }
        }
    })
}

/// Jayway's `EqualsEvaluator`: JSON equality between two JSON nodes, else `left.equals(right)`.
fn equals_eval(l: Node<'_>, r: Node<'_>) -> bool {
    match (l, r) {
        (Node::Json(_), Node::Json(_)) => json_eq(l, r),
        _ => equals(l, r),
    }
}

/// Jayway's `ValueNode.equals` (asymmetric: `left.equals(right)`).
fn equals(l: Node<'_>, r: Node<'_>) -> bool {
    match (l, r) {
        (Node::Num(a, _), Node::Num(b, _)) => num_cmp(a, b) == Some(Ordering::Equal),
        (Node::Num(a, _), Node::Str(s)) => parse_decimal(s).is_some_and(|d| num_cmp(a, d.num) == Some(Ordering::Equal)),
        (Node::Str(a), Node::Str(b)) => a == b,
        (Node::Str(a), Node::Num(n, pre)) => with_decimal(n, pre, |t| t == a),
        (Node::Bool(a), Node::Bool(b)) => a == b,
        (Node::Null, Node::Null) => true,
        (Node::Json(_), Node::Json(_)) => json_eq(l, r),
        (Node::Pattern(a), Node::Pattern(b)) => a == b,
        _ => false,
    }
}

fn same_kind(l: Node<'_>, r: Node<'_>) -> bool {
    std::mem::discriminant(&l) == std::mem::discriminant(&r)
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        _ => a.to_f64().partial_cmp(&b.to_f64()),
    }
}

/// Java's `String.compareTo`: by UTF-16 code units.
fn java_str_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The `<`, `<=`, `>`, `>=` evaluators.
fn order(l: Node<'_>, r: Node<'_>) -> Option<Ordering> {
    match (l, r) {
        (Node::Num(a, _), Node::Num(b, _)) => num_cmp(a, b),
        (Node::Str(a), Node::Str(b)) => Some(java_str_cmp(a, b)),
        (Node::Str(a), Node::Num(n, pre)) => Some(with_decimal(n, pre, |t| java_str_cmp(a, t))),
        (Node::Num(n, pre), Node::Str(b)) => Some(with_decimal(n, pre, |t| java_str_cmp(t, b))),
        _ => None,
    }
}

fn regex_match(l: Node<'_>, r: Node<'_>) -> bool {
    let (p, other) = match (l, r) {
        (Node::Pattern(_), Node::Pattern(_)) => return false,
        (Node::Pattern(p), o) | (o, Node::Pattern(p)) => (p, o),
        _ => return false,
    };
    if let Node::Json(j) = other {
        if let Some(mut xs) = list(j) {
            return xs.any(|x| regex_input(x, |s| p.regex.is_match(s)));
        }
    }
    regex_input(other, |s| p.regex.is_match(s))
}

/// What Jayway's regex evaluator matches against: strings, numbers as text, booleans;
/// anything else as "".
fn regex_input<R>(n: Node<'_>, f: impl FnOnce(&str) -> R) -> R {
    match n {
        Node::Str(s) => f(s),
        Node::Num(x, pre) => with_decimal(x, pre, f),
        Node::Bool(b) => f(if b { "true" } else { "false" }),
        _ => f(""),
    }
}

/// `in`: the right side must be a JSON array (anything else but JSON is invalid).
fn contains_in(l: Node<'_>, r: Node<'_>) -> Result<bool, Invalid> {
    Ok(match value_list(r)? {
        Some(mut xs) => xs.any(|x| equals(l, x)),
        None => false,
    })
}

/// Jayway's `asValueListNode`: `Some` for a JSON array, `None` for other JSON, invalid for
/// anything else.
fn value_list(n: Node<'_>) -> Result<Option<ListIter<'_>>, Invalid> {
    match n {
        Node::Json(j) => Ok(list(j)),
        _ => Err(Invalid),
    }
}

#[derive(Clone)]
enum ListIter<'v> {
    V(std::slice::Iter<'v, Value<'v>>),
    L(std::slice::Iter<'v, Lit>),
}

impl<'v> Iterator for ListIter<'v> {
    type Item = Node<'v>;
    fn next(&mut self) -> Option<Node<'v>> {
        match self {
            ListIter::V(it) => it.next().map(|v| node_of(*v)),
            ListIter::L(it) => it.next().map(node_of_lit),
        }
    }
}

fn list(j: J<'_>) -> Option<ListIter<'_>> {
    match j {
        J::V(Value::Array(items)) => Some(ListIter::V(items.iter())),
        J::L(Lit::Arr(items)) => Some(ListIter::L(items.iter())),
        _ => None,
    }
}

fn list_len(j: J<'_>) -> Option<usize> {
    match j {
        J::V(Value::Array(items)) => Some(items.len()),
        J::L(Lit::Arr(items)) => Some(items.len()),
        _ => None,
    }
}

fn obj_len(j: J<'_>) -> Option<usize> {
    match j {
        J::V(Value::Object(m)) => Some(m.len()),
        J::L(Lit::Obj(m)) => Some(m.len()),
        _ => None,
    }
}

fn obj_get<'v>(j: J<'v>, key: &str) -> Option<Node<'v>> {
    match j {
        J::V(Value::Object(m)) => find_member(m, key).map(node_of),
        J::L(Lit::Obj(m)) => m.iter().find(|(k, _)| &**k == key).map(|(_, v)| node_of_lit(v)),
        _ => None,
    }
}

/// Deep JSON equality (numbers by value, objects by key set), across arena values and
/// literals.
fn json_eq(a: Node<'_>, b: Node<'_>) -> bool {
    match (a, b) {
        (Node::Null, Node::Null) => true,
        (Node::Bool(x), Node::Bool(y)) => x == y,
        (Node::Num(x, _), Node::Num(y, _)) => num_cmp(x, y) == Some(Ordering::Equal),
        (Node::Str(x), Node::Str(y)) => x == y,
        (Node::Json(x), Node::Json(y)) => match (list(x), list(y)) {
            (Some(xs), Some(ys)) => list_len(x) == list_len(y) && xs.zip(ys).all(|(p, q)| json_eq(p, q)),
            (None, None) => {
                if obj_len(x) != obj_len(y) {
                    return false;
                }
                match x {
                    J::V(Value::Object(m)) => {
                        m.iter().all(|(k, v)| obj_get(y, k).is_some_and(|w| json_eq(node_of(*v), w)))
                    }
                    J::L(Lit::Obj(m)) => {
                        m.iter().all(|(k, v)| obj_get(y, k).is_some_and(|w| json_eq(node_of_lit(v), w)))
                    }
                    _ => false,
                }
            }
            _ => false,
        },
        _ => false,
    }
}

/// Calls `f` with `BigDecimal.toString()` of the number, formatted on the stack.
fn with_decimal<R>(n: Num, pre: Option<&str>, f: impl FnOnce(&str) -> R) -> R {
    if let Some(s) = pre {
        return f(s);
    }
    let mut java = StackStr::new();
    match n {
        Num::Int(i) => {
            let _ = write!(java, "{i}");
            return f(java.as_str());
        }
        Num::Float(x) => write_java_double_stack(x, &mut java),
    }
    let mut out = StackStr::new();
    match parse_decimal(java.as_str()) {
        Some(d) => write_decimal(&d, &mut out),
        None => {
            let _ = out.write_str(java.as_str());
        }
    }
    f(out.as_str())
}

/// The text of ASCII digits (never fails on what this module writes).
fn ascii(d: &[u8]) -> &str {
    std::str::from_utf8(d).unwrap_or("")
}

/// A small stack buffer for number text (no heap on the filter path).
struct StackStr {
    buf: [u8; 80],
    len: usize,
}

impl StackStr {
    fn new() -> Self {
        StackStr { buf: [0; 80], len: 0 }
    }

    fn as_str(&self) -> &str {
        self.buf.get(..self.len).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
    }
}

impl fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl value::Sink for StackStr {
    fn put(&mut self, b: u8) {
        self.put_all(&[b]);
    }
    fn put_all(&mut self, bytes: &[u8]) {
        if let Some(slot) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            slot.copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }
}

/// Java's `Double.toString` (the value printer's), into a stack buffer.
fn write_java_double_stack(f: f64, out: &mut StackStr) {
    value::write_java_double(f, out);
}

#[cfg(test)]
mod tests;
