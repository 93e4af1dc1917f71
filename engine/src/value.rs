//! `value`: the JSON representation every execution works on.
//!
//! Input: bytes (execution input, task results, mock responses) or a `serde_json::Value`.
//! Output: `Value<'a>` trees whose strings, arrays and objects live in a per-execution
//! [`bumpalo::Bump`] arena, and their compact JSON text.
//! Never touches: definitions, the VM, I/O.
//!
//! Design decisions, each measured or forced by AWS's behaviour:
//! - `Value` is `Copy` and 24 bytes: a tag plus a fat pointer into the arena. Copying a value
//!   never copies its contents, so passing the state input through a Pass state is free and
//!   `ResultPath` rebuilds only the spine of objects it changes.
//! - Objects are slices of `(key, value)` pairs in insertion order, because AWS (Jackson)
//!   keeps insertion order and users compare outputs as text. Duplicate keys in parsed text
//!   are merged the way Jackson's `ObjectNode` does: the last value wins, at the first key's
//!   position.
//! - Numbers keep their kind: integers that fit `i64` stay exact; everything else is an
//!   `f64`, printed the way Java's `Double.toString` prints it (`1.0`, `1.0E7`), which is
//!   what AWS's Jackson serialiser produces. Integers beyond the `i64` range become doubles
//!   (Jackson would keep them as `BigInteger`); this is the one known deviation.
//! - Input is parsed with simd-json into a tape that is converted straight into arena
//!   values; strings are unescaped in place inside the arena copy of the input, so they are
//!   never copied again. When simd-json rejects the text (or cannot represent a number),
//!   serde_json parses it again: it accepts the numbers simd-json cannot hold and, for bad
//!   text, says what it expected and where (converted to a byte offset).
//! - The arena never runs `Drop`: nothing in a `Value` may own heap memory.

use std::fmt;

use bumpalo::Bump;
use simd_json::{Node, StaticNode};

/// A JSON value whose contents live in an arena with lifetime `'a`.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Array(&'a [Value<'a>]),
    Object(&'a [Member<'a>]),
}

/// One key/value pair of an object.
pub type Member<'a> = (&'a str, Value<'a>);

// A size regression here costs cache lines on every state transition.
const _: () = assert!(std::mem::size_of::<Value>() == 24);

/// Nesting deeper than this is rejected when parsing (Jackson's default limit is 1000).
pub const MAX_DEPTH: usize = 1000;

/// AWS's payload limit: 256 KiB of UTF-8 JSON text (execution input, state input/output,
/// task results, variables).
pub const PAYLOAD_LIMIT: usize = 262_144;

impl<'a> Value<'a> {
    pub const EMPTY_OBJECT: Value<'static> = Value::Object(&[]);
    pub const EMPTY_ARRAY: Value<'static> = Value::Array(&[]);

    /// The JSON type name used in AWS's error messages (`null`, `boolean`, `number`,
    /// `string`, `array`, `object`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_))
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&'a [Value<'a>]> {
        match *self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&'a [Member<'a>]> {
        match *self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The number as a double (integers convert exactly up to 2^53).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The number as an integer, if it is one (a float with no fractional part counts, as
    /// it does for Jackson's `canConvertToExactIntegral`).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
            _ => None,
        }
    }

    /// The value of `key` in an object (`None` for missing keys and non-objects).
    #[inline]
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        match *self {
            Value::Object(members) => members.iter().find(|(k, _)| *k == key).map(|(_, v)| *v),
            _ => None,
        }
    }

    /// Deep equality with JSON semantics: numbers compare by value (`1` equals `1.0`),
    /// objects by key set regardless of order.
    pub fn json_eq(&self, other: &Value<'_>) -> bool {
        match (*self, *other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => self.as_f64() == other.as_f64(),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.json_eq(y)),
            (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len() && a.iter().all(|(k, v)| b.iter().any(|(k2, v2)| k == k2 && v.json_eq(v2)))
            }
            _ => false,
        }
    }

    /// Copies this value (deeply) into another arena.
    pub fn copy_into<'b>(&self, bump: &'b Bump) -> Value<'b> {
        match *self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Int(i),
            Value::Float(f) => Value::Float(f),
            Value::Str(s) => Value::Str(bump.alloc_str(s)),
            Value::Array(items) => {
                let out = bump.alloc_slice_fill_copy(items.len(), Value::Null);
                for (slot, item) in out.iter_mut().zip(items) {
                    *slot = item.copy_into(bump);
                }
                Value::Array(out)
            }
            Value::Object(members) => {
                let out = bump.alloc_slice_fill_copy(members.len(), ("", Value::Null));
                for (slot, (k, v)) in out.iter_mut().zip(members) {
                    *slot = (&*bump.alloc_str(k), v.copy_into(bump));
                }
                Value::Object(out)
            }
        }
    }

    /// Converts to an owned `serde_json::Value` (for the boundaries: async handlers,
    /// reports). Floats that JSON cannot hold (never produced by the engine) become null.
    pub fn to_serde(&self) -> serde_json::Value {
        match *self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Int(i) => serde_json::Value::from(i),
            Value::Float(f) => {
                serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
            }
            Value::Str(s) => serde_json::Value::String(s.to_owned()),
            Value::Array(items) => serde_json::Value::Array(items.iter().map(|v| v.to_serde()).collect()),
            Value::Object(members) => {
                let mut map = serde_json::Map::with_capacity(members.len());
                for (k, v) in members {
                    map.insert((*k).to_owned(), v.to_serde());
                }
                serde_json::Value::Object(map)
            }
        }
    }

    /// Builds an arena value from a `serde_json::Value`.
    pub fn from_serde(bump: &'a Bump, v: &serde_json::Value) -> Value<'a> {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => number_from_serde(n),
            serde_json::Value::String(s) => Value::Str(bump.alloc_str(s)),
            serde_json::Value::Array(items) => {
                let out = bump.alloc_slice_fill_copy(items.len(), Value::Null);
                for (slot, item) in out.iter_mut().zip(items) {
                    *slot = Value::from_serde(bump, item);
                }
                Value::Array(out)
            }
            serde_json::Value::Object(map) => {
                let out = bump.alloc_slice_fill_copy(map.len(), ("", Value::Null));
                for (slot, (k, v)) in out.iter_mut().zip(map) {
                    *slot = (&*bump.alloc_str(k), Value::from_serde(bump, v));
                }
                Value::Object(out)
            }
        }
    }

    /// Appends the compact JSON text of this value (no spaces, insertion order, non-ASCII
    /// kept as UTF-8) — the form AWS uses wherever it serialises JSON itself.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match *self {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
            Value::Float(f) => write_java_double(f, out),
            Value::Str(s) => write_json_string(s, out),
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write_json(out);
                }
                out.push(b']');
            }
            Value::Object(members) => {
                out.push(b'{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_string(k, out);
                    out.push(b':');
                    v.write_json(out);
                }
                out.push(b'}');
            }
        }
    }

    /// Java's `toString()` of this value as Jackson deserialises it into plain Java objects:
    /// strings raw, `Map`s as `{k=v, k2=v2}`, `List`s as `[a, b]`, numbers as Java prints
    /// them. AWS shows values this way where it formats them through Java (`States.Format`
    /// arguments, some path error messages).
    pub fn write_java_text(&self, out: &mut impl fmt::Write) -> fmt::Result {
        match *self {
            Value::Null => out.write_str("null"),
            Value::Bool(b) => out.write_str(if b { "true" } else { "false" }),
            Value::Int(i) => out.write_str(itoa::Buffer::new().format(i)),
            Value::Float(f) => {
                let mut buf = StackBuf::default();
                write_java_double(f, &mut buf);
                out.write_str(std::str::from_utf8(&buf.buf[..buf.len.min(buf.buf.len())]).unwrap_or(""))
            }
            Value::Str(s) => out.write_str(s),
            Value::Array(items) => {
                out.write_char('[')?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.write_str(", ")?;
                    }
                    item.write_java_text(out)?;
                }
                out.write_char(']')
            }
            Value::Object(members) => {
                out.write_char('{')?;
                for (i, (k, item)) in members.iter().enumerate() {
                    if i > 0 {
                        out.write_str(", ")?;
                    }
                    out.write_str(k)?;
                    out.write_char('=')?;
                    item.write_java_text(out)?;
                }
                out.write_char('}')
            }
        }
    }

    /// The compact JSON text of this value.
    pub fn to_json_string(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out);
        // Safety net rather than `unsafe`: the writer only emits UTF-8.
        String::from_utf8(out).expect("JSON writer emits UTF-8")
    }

    /// The compact JSON text of this value, allocated in `bump`.
    pub fn to_json_in<'b>(&self, bump: &'b Bump) -> &'b str {
        let mut out = bumpalo::collections::Vec::new_in(bump);
        let mut tmp = Vec::new();
        self.write_json(&mut tmp);
        out.extend_from_slice(&tmp);
        std::str::from_utf8(out.into_bump_slice()).expect("JSON writer emits UTF-8")
    }

    /// Whether [`Value::write_json`]'s output is at most `limit` bytes, without serialising.
    /// A cheap upper bound is computed first (every string byte counted as a six-byte
    /// escape, every number at its longest); only when that bound exceeds the limit is the
    /// exact length computed, stopping as soon as it passes the limit. The payload checks
    /// run on every state output, so the common small value costs one walk over its nodes.
    pub fn fits_json_len(&self, limit: usize) -> bool {
        self.json_bound(limit).is_some()
    }

    /// [`Value::fits_json_len`] with what it found: an upper bound of the JSON text's
    /// length (the cheap bound, or the exact length when the bound was over `limit`) when
    /// it fits, `None` when the text is longer than `limit`.
    pub fn json_bound(&self, limit: usize) -> Option<usize> {
        let mut bound = 0usize;
        self.add_json_bound(&mut bound, limit);
        if bound <= limit {
            return Some(bound);
        }
        let exact = self.json_len_capped(limit);
        (exact <= limit).then_some(exact)
    }

    /// The length in bytes of [`Value::write_json`]'s output, counting only up to `limit`
    /// (the result is `> limit` as soon as the text would be longer, without walking the
    /// rest).
    pub fn json_len_capped(&self, limit: usize) -> usize {
        let mut n = 0usize;
        self.add_json_len(&mut n, limit);
        n
    }

    /// Adds a cheap upper bound of the JSON length to `n`, stopping once `n` is past
    /// `limit`. Scalars (most of a document's values) are counted in their container's
    /// loop, without a call; the limit is checked after each child.
    fn add_json_bound(&self, n: &mut usize, limit: usize) {
        match *self {
            Value::Array(items) => {
                *n += 2 + items.len();
                for item in items {
                    if !item.add_child_bound(n, limit) {
                        return;
                    }
                }
            }
            Value::Object(members) => {
                *n += 2 + members.len();
                for (k, v) in members {
                    *n += 3 + 6 * k.len();
                    if !v.add_child_bound(n, limit) {
                        return;
                    }
                }
            }
            _ => *n += self.scalar_json_bound().unwrap_or(0),
        }
    }

    /// A container's child: a scalar's bound added inline, a container walked; false
    /// once `n` is past `limit`.
    #[inline(always)]
    fn add_child_bound(&self, n: &mut usize, limit: usize) -> bool {
        match self.scalar_json_bound() {
            Some(b) => *n += b,
            None => self.add_json_bound(n, limit),
        }
        *n <= limit
    }

    /// A bound of a scalar's JSON length (a string's escapes at most 6 bytes a byte);
    /// `None` for arrays and objects.
    #[inline(always)]
    fn scalar_json_bound(&self) -> Option<usize> {
        match *self {
            Value::Null | Value::Bool(_) => Some(5),
            Value::Int(_) => Some(20),
            Value::Float(_) => Some(24),
            Value::Str(s) => Some(2 + 6 * s.len()),
            Value::Array(_) | Value::Object(_) => None,
        }
    }

    fn add_json_len(&self, n: &mut usize, limit: usize) {
        if *n > limit {
            return;
        }
        match *self {
            Value::Null => *n += 4,
            Value::Bool(true) => *n += 4,
            Value::Bool(false) => *n += 5,
            Value::Int(i) => *n += itoa::Buffer::new().format(i).len(),
            Value::Float(f) => {
                let mut tmp = StackBuf::default();
                write_java_double(f, &mut tmp);
                *n += tmp.len;
            }
            Value::Str(s) => *n += json_string_len(s),
            Value::Array(items) => {
                *n += 2 + items.len().saturating_sub(1);
                for item in items {
                    item.add_json_len(n, limit);
                    if *n > limit {
                        return;
                    }
                }
            }
            Value::Object(members) => {
                *n += 2 + members.len().saturating_sub(1);
                for (k, v) in members {
                    *n += json_string_len(k) + 1;
                    v.add_json_len(n, limit);
                    if *n > limit {
                        return;
                    }
                }
            }
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json_string())
    }
}

impl PartialEq for Value<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.json_eq(other)
    }
}

fn number_from_serde(n: &serde_json::Number) -> Value<'static> {
    if let Some(i) = n.as_i64() {
        Value::Int(i)
    } else {
        Value::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Builds an object value from members in the given order.
pub fn object<'a>(bump: &'a Bump, members: &[Member<'a>]) -> Value<'a> {
    Value::Object(bump.alloc_slice_copy(members))
}

/// Builds an array value.
pub fn array<'a>(bump: &'a Bump, items: &[Value<'a>]) -> Value<'a> {
    Value::Array(bump.alloc_slice_copy(items))
}

/// Returns a copy of `obj`'s members with `key` set to `value`: replaced in place if the key
/// exists, appended otherwise (Jackson `ObjectNode.set` order semantics).
pub fn with_member<'a>(bump: &'a Bump, members: &[Member<'a>], key: &'a str, value: Value<'a>) -> Value<'a> {
    if let Some(pos) = members.iter().position(|(k, _)| *k == key) {
        let out = bump.alloc_slice_copy(members);
        out[pos].1 = value;
        Value::Object(out)
    } else {
        appended(bump, members, key, value)
    }
}

/// `members` with `(key, value)` after them, in the arena; `key` must not be among them.
pub fn appended<'a>(bump: &'a Bump, members: &[Member<'a>], key: &'a str, value: Value<'a>) -> Value<'a> {
    let n = members.len();
    Value::Object(bump.alloc_slice_fill_with(n + 1, |i| members.get(i).copied().unwrap_or((key, value))))
}

/// The arena an execution's values live in, as handed to task handlers: they build their
/// results here (no copy on the way back) and never free anything themselves.
#[derive(Clone, Copy)]
pub struct Arena<'a> {
    bump: &'a Bump,
}

impl<'a> Arena<'a> {
    pub fn new(bump: &'a Bump) -> Self {
        Arena { bump }
    }

    /// The underlying bump allocator, for code inside the engine.
    pub fn bump(&self) -> &'a Bump {
        self.bump
    }

    pub fn str(&self, s: &str) -> Value<'a> {
        Value::Str(self.bump.alloc_str(s))
    }

    /// A key or other string stored in the arena.
    pub fn alloc_str(&self, s: &str) -> &'a str {
        self.bump.alloc_str(s)
    }

    /// `parts` joined into one string in the arena: one allocation and plain copies
    /// (`bumpalo::format!` goes through `core::fmt`, several times the cost for this).
    pub fn concat(&self, parts: &[&str]) -> &'a str {
        let len = parts.iter().map(|p| p.len()).sum();
        let mut s = bumpalo::collections::String::with_capacity_in(len, self.bump);
        for p in parts {
            s.push_str(p);
        }
        s.into_bump_str()
    }

    pub fn array(&self, items: &[Value<'a>]) -> Value<'a> {
        array(self.bump, items)
    }

    pub fn object(&self, members: &[Member<'a>]) -> Value<'a> {
        object(self.bump, members)
    }

    /// Parses JSON text into the arena.
    pub fn parse(&self, text: &[u8]) -> Result<Value<'a>, JsonError> {
        parse_json(self.bump, text)
    }

    /// Copies an owned `serde_json::Value` into the arena.
    pub fn from_serde(&self, v: &serde_json::Value) -> Value<'a> {
        Value::from_serde(self.bump, v)
    }
}

// ---------------------------------------------------------------------------------------
// Writing

/// For each byte: 0 when it is written as is, else the character after the backslash
/// (`u` for the `\u00XX` form).
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\t' as usize] = b't';
    t[0x08] = b'b';
    t[0x0c] = b'f';
    t
};

fn json_string_len(s: &str) -> usize {
    let mut n = 2 + s.len();
    for &b in s.as_bytes() {
        n += match ESCAPE[b as usize] {
            0 => 0,
            b'u' => 5,
            _ => 1,
        };
    }
    n
}

/// Writes `s` as a JSON string literal, escaping what JSON requires and nothing else.
pub fn write_json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if esc == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Where formatted numbers go: the output buffer, or a stack buffer to measure them.
pub trait Sink {
    fn put(&mut self, b: u8);
    fn put_all(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: u8) {
        self.push(b);
    }
    fn put_all(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A fixed buffer long enough for any formatted double.
struct StackBuf {
    buf: [u8; 40],
    len: usize,
}

impl Default for StackBuf {
    fn default() -> Self {
        StackBuf { buf: [0; 40], len: 0 }
    }
}

impl Sink for StackBuf {
    fn put(&mut self, b: u8) {
        if self.len < self.buf.len() {
            self.buf[self.len] = b;
        }
        self.len += 1;
    }
    fn put_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.put(b);
        }
    }
}

/// Formats a double the way Java's `Double.toString` does (shortest round-trip digits;
/// plain notation with at least one fractional digit for 1e-3 <= |d| < 1e7, otherwise
/// `d.dddE±n`). Jackson, and therefore AWS, prints doubles this way.
pub fn write_java_double(f: f64, out: &mut impl Sink) {
    if f.is_nan() {
        out.put_all(b"NaN");
        return;
    }
    if f.is_infinite() {
        out.put_all(if f > 0.0 { b"Infinity" } else { b"-Infinity" });
        return;
    }
    if f == 0.0 {
        out.put_all(if f.is_sign_negative() { b"-0.0" } else { b"0.0" });
        return;
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(f.abs()).as_bytes();
    // Decompose ryu's output into significant digits and a decimal exponent `exp` such
    // that |f| = 0.d1d2d3... × 10^exp.
    let (mantissa, e_part) = match text.iter().position(|&b| b == b'e') {
        Some(pos) => (&text[..pos], parse_exp(&text[pos + 1..])),
        None => (text, 0),
    };
    let mut digits = [0u8; 24];
    let mut nd = 0;
    let mut int_len = mantissa.len() as i32;
    for (i, &b) in mantissa.iter().enumerate() {
        if b == b'.' {
            int_len = i as i32;
        } else if nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    let mut exp = int_len + e_part;
    // Strip leading zeros (e.g. "0.001" → digits "1", exp -2) and trailing zeros.
    let lead = digits[..nd].iter().take_while(|&&d| d == b'0').count();
    let mut digits = &digits[lead..nd];
    exp -= lead as i32;
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits = &digits[..digits.len() - 1];
    }
    // Java prints at least two significant digits and picks the closest pair; for normal
    // doubles that is the one digit followed by 0, for subnormals it may differ
    // (`Double.MIN_VALUE` is "4.9E-324", not "5.0E-324").
    let two: [u8; 2];
    if digits.len() == 1 && f.abs() < f64::MIN_POSITIVE {
        let text = format!("{:.1e}", f.abs());
        let b = text.as_bytes();
        two = [b[0], b[2]];
        exp = parse_exp(&b[4..]) + 1;
        digits = &two;
    }
    if f < 0.0 {
        out.put(b'-');
    }
    let abs = f.abs();
    if (1e-3..1e7).contains(&abs) {
        if exp <= 0 {
            out.put_all(b"0.");
            for _ in 0..-exp {
                out.put(b'0');
            }
            out.put_all(digits);
        } else {
            let e = exp as usize;
            if digits.len() <= e {
                out.put_all(digits);
                for _ in 0..e - digits.len() {
                    out.put(b'0');
                }
                out.put_all(b".0");
            } else {
                out.put_all(&digits[..e]);
                out.put(b'.');
                out.put_all(&digits[e..]);
            }
        }
    } else {
        out.put(digits[0]);
        out.put(b'.');
        if digits.len() > 1 {
            out.put_all(&digits[1..]);
        } else {
            out.put(b'0');
        }
        out.put(b'E');
        out.put_all(itoa::Buffer::new().format(exp - 1).as_bytes());
    }
}

fn parse_exp(bytes: &[u8]) -> i32 {
    let (neg, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    let n = digits.iter().fold(0i32, |n, &d| n * 10 + (d - b'0') as i32);
    if neg {
        -n
    } else {
        n
    }
}

// ---------------------------------------------------------------------------------------
// Parsing

/// Why a JSON text could not be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {message}")]
pub struct JsonError {
    /// Byte offset into the text where the problem was found.
    pub offset: usize,
    /// What was wrong or expected, in serde_json's words (e.g. "expected `,` or `]`").
    pub message: String,
}

/// A reusable JSON parser: keeps simd-json's scratch buffers and tape between calls, so a
/// warm parser does not touch the heap for inputs that fit its buffers.
pub struct JsonParser {
    buffers: simd_json::Buffers,
    tape: Vec<Node<'static>>,
}

impl Default for JsonParser {
    fn default() -> Self {
        JsonParser { buffers: simd_json::Buffers::new(1024), tape: Vec::new() }
    }
}

impl JsonParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `text` into a value in `bump`. The text is copied into the arena once;
    /// strings are unescaped in place there and referenced, never copied again.
    pub fn parse<'a>(&mut self, bump: &'a Bump, text: &[u8]) -> Result<Value<'a>, JsonError> {
        let input: &'a mut [u8] = bump.alloc_slice_copy(text);
        let mut tape = simd_json::tape::Tape(std::mem::take(&mut self.tape)).reset();
        let fast = match simd_json::fill_tape(input, &mut self.buffers, &mut tape) {
            Ok(()) => {
                let mut i = 0;
                convert_tape(bump, &tape.0, &mut i, 0)
            }
            Err(_) => None,
        };
        self.tape = tape.reset().0;
        match fast {
            Some(v) => Ok(v),
            None => parse_slow(bump, text),
        }
    }
}

/// Parses a JSON text into `bump` (a convenience wrapper around a fresh [`JsonParser`]).
pub fn parse_json<'a>(bump: &'a Bump, text: &[u8]) -> Result<Value<'a>, JsonError> {
    JsonParser::new().parse(bump, text)
}

/// serde_json path: numbers simd-json cannot represent, and precise error messages.
fn parse_slow<'a>(bump: &'a Bump, text: &[u8]) -> Result<Value<'a>, JsonError> {
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(v) => {
            check_depth(&v, 0)
                .map_err(|()| JsonError { offset: 0, message: format!("nesting deeper than {MAX_DEPTH} levels") })?;
            Ok(Value::from_serde(bump, &v))
        }
        Err(e) => Err(JsonError {
            offset: if e.is_eof() { text.len() } else { byte_offset(text, e.line(), e.column()) },
            message: strip_position(&e.to_string()),
        }),
    }
}

fn check_depth(v: &serde_json::Value, depth: usize) -> Result<(), ()> {
    if depth > MAX_DEPTH {
        return Err(());
    }
    match v {
        serde_json::Value::Array(a) => a.iter().try_for_each(|x| check_depth(x, depth + 1)),
        serde_json::Value::Object(o) => o.values().try_for_each(|x| check_depth(x, depth + 1)),
        _ => Ok(()),
    }
}

/// Converts serde_json's 1-based line/column into a byte offset into `text`.
pub fn byte_offset(text: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for _ in 1..line {
        match text[offset..].iter().position(|&b| b == b'\n') {
            Some(p) => offset += p + 1,
            None => return text.len(),
        }
    }
    (offset + column.saturating_sub(1)).min(text.len())
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(pos) => msg[..pos].to_owned(),
        None => msg.to_owned(),
    }
}

/// Converts simd-json's tape into arena values. `None` sends the text to the slow path
/// (a number that needs serde_json, or nesting beyond `MAX_DEPTH`).
fn convert_tape<'a>(bump: &'a Bump, nodes: &[Node<'a>], i: &mut usize, depth: usize) -> Option<Value<'a>> {
    let node = *nodes.get(*i)?;
    *i += 1;
    Some(match node {
        Node::Static(s) => match s {
            StaticNode::Null => Value::Null,
            StaticNode::Bool(b) => Value::Bool(b),
            StaticNode::I64(v) => Value::Int(v),
            StaticNode::U64(v) => match i64::try_from(v) {
                Ok(v) => Value::Int(v),
                Err(_) => Value::Float(v as f64),
            },
            StaticNode::F64(f) => Value::Float(f),
        },
        Node::String(s) => Value::Str(s),
        Node::Array { len, .. } => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let out = bump.alloc_slice_fill_copy(len, Value::Null);
            for slot in out.iter_mut() {
                *slot = convert_tape(bump, nodes, i, depth + 1)?;
            }
            Value::Array(out)
        }
        Node::Object { len, .. } => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let out = bump.alloc_slice_fill_copy(len, ("", Value::Null));
            let mut n = 0;
            for _ in 0..len {
                let key = match nodes.get(*i)? {
                    Node::String(k) => *k,
                    _ => return None,
                };
                *i += 1;
                let value = convert_tape(bump, nodes, i, depth + 1)?;
                // Jackson semantics for duplicate keys: last value, first position.
                match out[..n].iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = value,
                    None => {
                        out[n] = (key, value);
                        n += 1;
                    }
                }
            }
            Value::Object(&out[..n])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> String {
        let bump = Bump::new();
        parse_json(&bump, text.as_bytes()).unwrap().to_json_string()
    }

    #[test]
    fn concat_joins_parts_in_the_arena() {
        let bump = Bump::new();
        let arena = Arena::new(&bump);
        assert_eq!(arena.concat(&["face-", "", "user_a", "-é"]), "face-user_a-é");
        assert_eq!(arena.concat(&[]), "");
    }

    #[test]
    fn parses_and_prints_compactly_in_insertion_order() {
        assert_eq!(roundtrip(r#"{ "b": 1, "a": [true, null, "x"] }"#), r#"{"b":1,"a":[true,null,"x"]}"#);
        assert_eq!(roundtrip(r#""é\"\n\u0001""#), "\"é\\\"\\n\\u0001\"");
    }

    #[test]
    fn numbers_keep_their_kind_and_print_like_java() {
        assert_eq!(roundtrip("[1, -2, 1.0, 1.5, 0.0, -0.0, 100.0, 1e2]"), "[1,-2,1.0,1.5,0.0,-0.0,100.0,100.0]");
        assert_eq!(roundtrip("[1e7, 1.5e-4, 0.001, 9999999.0, 1.2345e20]"), "[1.0E7,1.5E-4,0.001,9999999.0,1.2345E20]");
        assert_eq!(
            roundtrip("[9223372036854775807, -9223372036854775808]"),
            "[9223372036854775807,-9223372036854775808]"
        );
        // Beyond i64: a double, as documented.
        assert_eq!(roundtrip("[12345678901234567890]"), "[1.2345678901234567E19]");
        assert_eq!(roundtrip("[123456789012345678901234]"), "[1.2345678901234569E23]");
        assert_eq!(roundtrip("0.1"), "0.1");
        assert_eq!(roundtrip("3.3"), "3.3");
    }

    #[test]
    fn duplicate_keys_keep_first_position_and_last_value() {
        assert_eq!(roundtrip(r#"{"a":1,"b":2,"a":3}"#), r#"{"a":3,"b":2}"#);
    }

    #[test]
    fn errors_say_where_and_what() {
        let bump = Bump::new();
        let e = parse_json(&bump, b"{\"a\" 1}").unwrap_err();
        assert_eq!(e.offset, 5);
        assert!(e.message.contains("expected `:`"), "{}", e.message);
        let e = parse_json(&bump, b"[1,\n 2").unwrap_err();
        assert_eq!(e.offset, 6);
        let e = parse_json(&bump, b"[1] x").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("trailing"), "{}", e.message);
        let deep = "[".repeat(2000) + &"]".repeat(2000);
        assert!(parse_json(&bump, deep.as_bytes()).is_err());
    }

    #[test]
    fn capped_length_matches_serialisation() {
        let bump = Bump::new();
        let v = parse_json(&bump, r#"{"k":[1,2.5,"a\"b",null,true,false,{}],"\u0002":[]}"#.as_bytes()).unwrap();
        let len = v.to_json_string().len();
        assert_eq!(v.json_len_capped(usize::MAX), len);
        assert!(v.json_len_capped(5) > 5);
    }

    #[test]
    fn json_eq_compares_numbers_by_value_and_objects_by_keys() {
        let bump = Bump::new();
        let a = parse_json(&bump, br#"{"x":1,"y":[1.0]}"#).unwrap();
        let b = parse_json(&bump, br#"{"y":[1],"x":1.0}"#).unwrap();
        assert!(a.json_eq(&b));
        let c = parse_json(&bump, br#"{"y":[1],"x":2}"#).unwrap();
        assert!(!a.json_eq(&c));
    }

    #[test]
    fn serde_roundtrip() {
        let bump = Bump::new();
        let v = parse_json(&bump, br#"{"a":[1,2.5,"s",null,{"b":false}]}"#).unwrap();
        let s = v.to_serde();
        let back = Value::from_serde(&bump, &s);
        assert_eq!(back.to_json_string(), v.to_json_string());
    }
}
