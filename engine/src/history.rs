//! `history`: execution-history events as AWS records them, and their JSON.
//!
//! Input: events the VM records while it runs (`vm::Exec::record_events`), each borrowing
//! names, errors and values from the execution's arena and program. Output: the JSON AWS
//! returns for them — an event's `details` object (camelCase, input/output as JSON
//! *strings* with `inputDetails`/`outputDetails`), or a whole `GetExecutionHistory` event —
//! appended to a `Vec<u8>` with the value module's serialiser.
//! Never touches: the VM's run loop (it only builds [`HistoryEvent`]s when a mask asks for
//! them), I/O, serde_json trees.
//!
//! Evidence: event types, ids, `previousEventId`s and details fields follow AWS's recorded
//! histories in LocalStack's snapshot suite (see `tests/history/README.md` for which
//! sequences are checked against recordings). Every event type has a bit in an
//! [`EventMask`], so a log level filters events before anything is built.

use crate::value::{write_json_string, Value};

macro_rules! event_types {
    ($($name:ident),* $(,)?) => {
        /// The 62 history event types, named as AWS names them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum EventType {
            $($name),*
        }

        impl EventType {
            /// Every event type, in AWS's API-model order.
            pub const ALL: [EventType; 62] = [$(EventType::$name),*];

            /// AWS's name (`"PassStateEntered"`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$name => stringify!($name)),*
                }
            }
        }
    };
}

event_types!(
    ActivityFailed,
    ActivityScheduled,
    ActivityScheduleFailed,
    ActivityStarted,
    ActivitySucceeded,
    ActivityTimedOut,
    ChoiceStateEntered,
    ChoiceStateExited,
    ExecutionAborted,
    ExecutionFailed,
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionTimedOut,
    FailStateEntered,
    LambdaFunctionFailed,
    LambdaFunctionScheduled,
    LambdaFunctionScheduleFailed,
    LambdaFunctionStarted,
    LambdaFunctionStartFailed,
    LambdaFunctionSucceeded,
    LambdaFunctionTimedOut,
    MapIterationAborted,
    MapIterationFailed,
    MapIterationStarted,
    MapIterationSucceeded,
    MapStateAborted,
    MapStateEntered,
    MapStateExited,
    MapStateFailed,
    MapStateStarted,
    MapStateSucceeded,
    ParallelStateAborted,
    ParallelStateEntered,
    ParallelStateExited,
    ParallelStateFailed,
    ParallelStateStarted,
    ParallelStateSucceeded,
    PassStateEntered,
    PassStateExited,
    SucceedStateEntered,
    SucceedStateExited,
    TaskFailed,
    TaskScheduled,
    TaskStarted,
    TaskStartFailed,
    TaskStateAborted,
    TaskStateEntered,
    TaskStateExited,
    TaskSubmitFailed,
    TaskSubmitted,
    TaskSucceeded,
    TaskTimedOut,
    WaitStateAborted,
    WaitStateEntered,
    WaitStateExited,
    MapRunAborted,
    MapRunFailed,
    MapRunStarted,
    MapRunSucceeded,
    ExecutionRedriven,
    MapRunRedriven,
    EvaluationFailed,
);

impl EventType {
    /// This type's bit in an [`EventMask`].
    #[inline]
    pub const fn bit(self) -> u64 {
        1u64 << (self as u8)
    }

    /// Parses AWS's name.
    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == name)
    }

    /// The `HistoryEvent` member that carries this type's details in `GetExecutionHistory`
    /// (`None`: the type has no details member, e.g. `ParallelStateStarted`).
    pub fn details_member(self) -> Option<&'static str> {
        use EventType::*;
        Some(match self {
            ActivityFailed => "activityFailedEventDetails",
            ActivityScheduled => "activityScheduledEventDetails",
            ActivityScheduleFailed => "activityScheduleFailedEventDetails",
            ActivityStarted => "activityStartedEventDetails",
            ActivitySucceeded => "activitySucceededEventDetails",
            ActivityTimedOut => "activityTimedOutEventDetails",
            ChoiceStateEntered | FailStateEntered | MapStateEntered | ParallelStateEntered | PassStateEntered
            | SucceedStateEntered | TaskStateEntered | WaitStateEntered => "stateEnteredEventDetails",
            ChoiceStateExited | MapStateExited | ParallelStateExited | PassStateExited | SucceedStateExited
            | TaskStateExited | WaitStateExited => "stateExitedEventDetails",
            ExecutionAborted => "executionAbortedEventDetails",
            ExecutionFailed => "executionFailedEventDetails",
            ExecutionStarted => "executionStartedEventDetails",
            ExecutionSucceeded => "executionSucceededEventDetails",
            ExecutionTimedOut => "executionTimedOutEventDetails",
            ExecutionRedriven => "executionRedrivenEventDetails",
            LambdaFunctionFailed => "lambdaFunctionFailedEventDetails",
            LambdaFunctionScheduled => "lambdaFunctionScheduledEventDetails",
            LambdaFunctionScheduleFailed => "lambdaFunctionScheduleFailedEventDetails",
            LambdaFunctionStartFailed => "lambdaFunctionStartFailedEventDetails",
            LambdaFunctionSucceeded => "lambdaFunctionSucceededEventDetails",
            LambdaFunctionTimedOut => "lambdaFunctionTimedOutEventDetails",
            MapIterationAborted => "mapIterationAbortedEventDetails",
            MapIterationFailed => "mapIterationFailedEventDetails",
            MapIterationStarted => "mapIterationStartedEventDetails",
            MapIterationSucceeded => "mapIterationSucceededEventDetails",
            MapStateStarted => "mapStateStartedEventDetails",
            MapRunStarted => "mapRunStartedEventDetails",
            MapRunFailed => "mapRunFailedEventDetails",
            MapRunRedriven => "mapRunRedrivenEventDetails",
            TaskFailed => "taskFailedEventDetails",
            TaskScheduled => "taskScheduledEventDetails",
            TaskStarted => "taskStartedEventDetails",
            TaskStartFailed => "taskStartFailedEventDetails",
            TaskSubmitFailed => "taskSubmitFailedEventDetails",
            TaskSubmitted => "taskSubmittedEventDetails",
            TaskSucceeded => "taskSucceededEventDetails",
            TaskTimedOut => "taskTimedOutEventDetails",
            EvaluationFailed => "evaluationFailedEventDetails",
            LambdaFunctionStarted
            | MapStateAborted
            | MapStateFailed
            | MapStateSucceeded
            | ParallelStateAborted
            | ParallelStateFailed
            | ParallelStateStarted
            | ParallelStateSucceeded
            | TaskStateAborted
            | WaitStateAborted
            | MapRunAborted
            | MapRunSucceeded => return None,
        })
    }
}

/// A set of [`EventType`]s, one bit each. A log level is a mask; the VM tests a bit before
/// it builds an event, so unrecorded types cost one branch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EventMask(pub u64);

impl EventMask {
    pub const NONE: EventMask = EventMask(0);
    pub const ALL: EventMask = EventMask((1u64 << 62) - 1);

    pub const fn of(types: &[EventType]) -> EventMask {
        let mut bits = 0;
        let mut i = 0;
        while i < types.len() {
            bits |= types[i].bit();
            i += 1;
        }
        EventMask(bits)
    }

    #[inline]
    pub const fn contains(self, t: EventType) -> bool {
        self.0 & t.bit() != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The types in this set, in [`EventType::ALL`] order.
    pub fn types(self) -> impl Iterator<Item = EventType> {
        EventType::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

/// The details of one event: the fields of its `…EventDetails` structure, borrowed from the
/// execution (values and names in its arena or program). Input and output stay values
/// here; they become JSON strings only when written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventDetails<'a> {
    /// No details member (`ParallelStateStarted`, `MapStateSucceeded`, `LambdaFunctionStarted`, …).
    None,
    /// `ExecutionStarted`.
    ExecutionStarted { input: Value<'a>, role_arn: &'a str },
    /// `ExecutionSucceeded`, `LambdaFunctionSucceeded`, `ActivitySucceeded`.
    Output { output: Value<'a> },
    /// `ExecutionFailed`/`TimedOut`/`Aborted`, `LambdaFunction…Failed`/`TimedOut`,
    /// `Activity…Failed`/`TimedOut`, `MapRunFailed`: optional error and cause.
    Error { error: Option<&'a str>, cause: Option<&'a str> },
    /// Every `…StateEntered`.
    StateEntered { name: &'a str, input: Value<'a> },
    /// Every `…StateExited`; `assigned` lists the variables the state assigned (AWS writes
    /// each value as a JSON string), empty when it assigned none.
    StateExited { name: &'a str, output: Value<'a>, assigned: &'a [(&'a str, Value<'a>)] },
    /// `TaskScheduled`: `parameters` is the effective input sent to the integration.
    TaskScheduled {
        resource_type: &'a str,
        resource: &'a str,
        region: &'a str,
        parameters: Value<'a>,
        timeout_seconds: Option<u64>,
        heartbeat_seconds: Option<u64>,
    },
    /// `LambdaFunctionScheduled` (`heartbeat_seconds` is always `None`) and
    /// `ActivityScheduled`.
    Scheduled { resource: &'a str, input: Value<'a>, timeout_seconds: Option<u64>, heartbeat_seconds: Option<u64> },
    /// `TaskStarted`.
    TaskStarted { resource_type: &'a str, resource: &'a str },
    /// `TaskSucceeded`, `TaskSubmitted`.
    TaskOutput { resource_type: &'a str, resource: &'a str, output: Value<'a> },
    /// `TaskFailed`, `TaskTimedOut`, `TaskStartFailed`, `TaskSubmitFailed`.
    TaskError { resource_type: &'a str, resource: &'a str, error: Option<&'a str>, cause: Option<&'a str> },
    /// `MapStateStarted`: the number of items.
    MapStarted { length: u32 },
    /// `MapIteration…`: the Map state's name and the item index.
    MapIteration { name: &'a str, index: u32 },
    /// `MapRunStarted`.
    MapRunStarted { map_run_arn: &'a str },
}

/// One history event. `timestamp` is Unix nanoseconds on the execution's clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistoryEvent<'a> {
    pub id: u32,
    pub previous_event_id: u32,
    pub timestamp: i64,
    pub kind: EventType,
    pub details: EventDetails<'a>,
}

/// Writes `"key":` (after a comma unless it is the first member).
fn key(out: &mut Vec<u8>, first: &mut bool, k: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn str_member(out: &mut Vec<u8>, first: &mut bool, k: &str, v: &str) {
    key(out, first, k);
    write_json_string(v, out);
}

fn opt_str_member(out: &mut Vec<u8>, first: &mut bool, k: &str, v: Option<&str>) {
    if let Some(v) = v {
        str_member(out, first, k, v);
    }
}

fn int_member(out: &mut Vec<u8>, first: &mut bool, k: &str, v: u64) {
    key(out, first, k);
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends `v`'s compact JSON text as a JSON string literal, without a scratch buffer: the
/// text is written in place, then widened from the back. JSON text needs only `"` and `\`
/// escaped inside a string (its control characters are already escapes).
pub fn write_value_as_json_string(v: &Value<'_>, out: &mut Vec<u8>) {
    out.push(b'"');
    let start = out.len();
    v.write_json(out);
    let extra = out[start..].iter().filter(|&&b| b == b'"' || b == b'\\').count();
    if extra > 0 {
        let end = out.len();
        out.resize(end + extra, 0);
        let mut w = end + extra;
        for r in (start..end).rev() {
            let b = out[r];
            w -= 1;
            out[w] = b;
            if b == b'"' || b == b'\\' {
                w -= 1;
                out[w] = b'\\';
            }
        }
    }
    out.push(b'"');
}

/// `"input":"…","inputDetails":{"truncated":false}` (or `output`). History data is never
/// truncated here: every value the VM records has passed the 256 KiB payload check.
fn data_member(out: &mut Vec<u8>, first: &mut bool, k: &str, v: &Value<'_>) {
    key(out, first, k);
    write_value_as_json_string(v, out);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"Details\":{\"truncated\":false}");
}

/// Writes `ev`'s details object as AWS's JSON (`{}` when it has none). Without
/// `include_execution_data`, `input`/`output` (with their `…Details`), `parameters` and
/// `assignedVariables` are left out, as `includeExecutionData: false` does.
pub fn write_details(ev: &HistoryEvent<'_>, include_execution_data: bool, out: &mut Vec<u8>) {
    let data = include_execution_data;
    let first = &mut true;
    out.push(b'{');
    match ev.details {
        EventDetails::None => {}
        EventDetails::ExecutionStarted { input, role_arn } => {
            if data {
                data_member(out, first, "input", &input);
            }
            str_member(out, first, "roleArn", role_arn);
        }
        EventDetails::Output { output } => {
            if data {
                data_member(out, first, "output", &output);
            }
        }
        EventDetails::Error { error, cause } => {
            opt_str_member(out, first, "error", error);
            opt_str_member(out, first, "cause", cause);
        }
        EventDetails::StateEntered { name, input } => {
            str_member(out, first, "name", name);
            if data {
                data_member(out, first, "input", &input);
            }
        }
        EventDetails::StateExited { name, output, assigned } => {
            str_member(out, first, "name", name);
            if data {
                data_member(out, first, "output", &output);
                if !assigned.is_empty() {
                    key(out, first, "assignedVariables");
                    out.push(b'{');
                    for (i, (n, v)) in assigned.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_json_string(n, out);
                        out.push(b':');
                        write_value_as_json_string(v, out);
                    }
                    out.push(b'}');
                    key(out, first, "assignedVariablesDetails");
                    out.extend_from_slice(b"{\"truncated\":false}");
                }
            }
        }
        EventDetails::TaskScheduled {
            resource_type,
            resource,
            region,
            parameters,
            timeout_seconds,
            heartbeat_seconds,
        } => {
            str_member(out, first, "resourceType", resource_type);
            str_member(out, first, "resource", resource);
            str_member(out, first, "region", region);
            if data {
                key(out, first, "parameters");
                write_value_as_json_string(&parameters, out);
            }
            if let Some(t) = timeout_seconds {
                int_member(out, first, "timeoutInSeconds", t);
            }
            if let Some(h) = heartbeat_seconds {
                int_member(out, first, "heartbeatInSeconds", h);
            }
        }
        EventDetails::Scheduled { resource, input, timeout_seconds, heartbeat_seconds } => {
            str_member(out, first, "resource", resource);
            if data {
                data_member(out, first, "input", &input);
            }
            if let Some(t) = timeout_seconds {
                int_member(out, first, "timeoutInSeconds", t);
            }
            if let Some(h) = heartbeat_seconds {
                int_member(out, first, "heartbeatInSeconds", h);
            }
        }
        EventDetails::TaskStarted { resource_type, resource } => {
            str_member(out, first, "resourceType", resource_type);
            str_member(out, first, "resource", resource);
        }
        EventDetails::TaskOutput { resource_type, resource, output } => {
            str_member(out, first, "resourceType", resource_type);
            str_member(out, first, "resource", resource);
            if data {
                data_member(out, first, "output", &output);
            }
        }
        EventDetails::TaskError { resource_type, resource, error, cause } => {
            str_member(out, first, "resourceType", resource_type);
            str_member(out, first, "resource", resource);
            opt_str_member(out, first, "error", error);
            opt_str_member(out, first, "cause", cause);
        }
        EventDetails::MapStarted { length } => int_member(out, first, "length", length as u64),
        EventDetails::MapIteration { name, index } => {
            str_member(out, first, "name", name);
            int_member(out, first, "index", index as u64);
        }
        EventDetails::MapRunStarted { map_run_arn } => str_member(out, first, "mapRunArn", map_run_arn),
    }
    out.push(b'}');
}

/// Writes `ev` as one `GetExecutionHistory` event:
/// `{"timestamp":1704067200.123,"type":"…","id":3,"previousEventId":2,"…EventDetails":{…}}`
/// (the timestamp in epoch seconds with milliseconds, as the AWS JSON protocol sends it; the
/// details member left out for types that have none).
pub fn write_history_event(ev: &HistoryEvent<'_>, include_execution_data: bool, out: &mut Vec<u8>) {
    let millis = ev.timestamp.div_euclid(1_000_000);
    out.extend_from_slice(b"{\"timestamp\":");
    out.extend_from_slice(itoa::Buffer::new().format(millis.div_euclid(1000)).as_bytes());
    let frac = millis.rem_euclid(1000);
    if frac != 0 {
        out.push(b'.');
        out.extend_from_slice(format_args_3(frac).as_slice());
    }
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(ev.kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"id\":");
    out.extend_from_slice(itoa::Buffer::new().format(ev.id).as_bytes());
    out.extend_from_slice(b",\"previousEventId\":");
    out.extend_from_slice(itoa::Buffer::new().format(ev.previous_event_id).as_bytes());
    if let Some(member) = ev.kind.details_member() {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(member.as_bytes());
        out.extend_from_slice(b"\":");
        write_details(ev, include_execution_data, out);
    }
    out.push(b'}');
}

/// Milliseconds 1..=999 as the shortest decimal fraction digits (`5` → `005`, `120` → `12`).
fn format_args_3(frac: i64) -> smallvec::SmallVec<[u8; 3]> {
    let mut digits: smallvec::SmallVec<[u8; 3]> = smallvec::SmallVec::from_slice(&[
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(ev: &HistoryEvent<'_>, data: bool) -> String {
        let mut out = Vec::new();
        write_details(ev, data, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn ev(kind: EventType, details: EventDetails<'_>) -> HistoryEvent<'_> {
        HistoryEvent { id: 3, previous_event_id: 2, timestamp: 1_704_067_200_123_000_000, kind, details }
    }

    #[test]
    fn there_are_62_types_with_distinct_names_and_bits() {
        let mut names: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 62);
        assert_eq!(EventMask::ALL.types().count(), 62);
        for t in EventType::ALL {
            assert_eq!(EventType::from_name(t.as_str()), Some(t));
            assert!(EventMask::ALL.contains(t));
            assert!(!EventMask::NONE.contains(t));
        }
        assert_eq!(EventType::from_name("NoSuchEvent"), None);
    }

    #[test]
    fn input_and_output_are_json_strings_with_their_details() {
        let members = [("Arg1", Value::Str("a\"b\\c")), ("n", Value::Float(1.5))];
        let out = Value::Object(&members);
        let e = ev(EventType::PassStateExited, EventDetails::StateExited { name: "S", output: out, assigned: &[] });
        assert_eq!(
            details(&e, true),
            r#"{"name":"S","output":"{\"Arg1\":\"a\\\"b\\\\c\",\"n\":1.5}","outputDetails":{"truncated":false}}"#
        );
        assert_eq!(details(&e, false), r#"{"name":"S"}"#);
        let parsed: serde_json::Value = serde_json::from_str(&details(&e, true)).unwrap();
        let text = parsed["output"].as_str().unwrap();
        assert_eq!(text, out.to_json_string());
    }

    #[test]
    fn details_without_data_keep_names_errors_and_resources() {
        let e = ev(
            EventType::ExecutionStarted,
            EventDetails::ExecutionStarted { input: Value::EMPTY_OBJECT, role_arn: "r" },
        );
        assert_eq!(details(&e, true), r#"{"input":"{}","inputDetails":{"truncated":false},"roleArn":"r"}"#);
        assert_eq!(details(&e, false), r#"{"roleArn":"r"}"#);
        let e = ev(EventType::ExecutionSucceeded, EventDetails::Output { output: Value::Int(1) });
        assert_eq!(details(&e, false), "{}");
        let e = ev(EventType::ExecutionFailed, EventDetails::Error { error: None, cause: None });
        assert_eq!(details(&e, true), "{}");
        let e = ev(
            EventType::TaskScheduled,
            EventDetails::TaskScheduled {
                resource_type: "lambda",
                resource: "invoke",
                region: "us-east-1",
                parameters: Value::Null,
                timeout_seconds: Some(5),
                heartbeat_seconds: None,
            },
        );
        assert_eq!(
            details(&e, true),
            r#"{"resourceType":"lambda","resource":"invoke","region":"us-east-1","parameters":"null","timeoutInSeconds":5}"#
        );
        assert_eq!(
            details(&e, false),
            r#"{"resourceType":"lambda","resource":"invoke","region":"us-east-1","timeoutInSeconds":5}"#
        );
    }

    #[test]
    fn assigned_variables_are_json_strings() {
        let assigned = [("x", Value::Int(1)), ("s", Value::Str("v"))];
        let e = ev(
            EventType::PassStateExited,
            EventDetails::StateExited { name: "S", output: Value::Null, assigned: &assigned },
        );
        assert_eq!(
            details(&e, true),
            r#"{"name":"S","output":"null","outputDetails":{"truncated":false},"assignedVariables":{"x":"1","s":"\"v\""},"assignedVariablesDetails":{"truncated":false}}"#
        );
    }

    #[test]
    fn a_whole_event_carries_its_details_member() {
        let e = ev(EventType::MapIterationStarted, EventDetails::MapIteration { name: "M", index: 0 });
        let mut out = Vec::new();
        write_history_event(&e, true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"timestamp":1704067200.123,"type":"MapIterationStarted","id":3,"previousEventId":2,"mapIterationStartedEventDetails":{"name":"M","index":0}}"#
        );
        let mut e = ev(EventType::ParallelStateStarted, EventDetails::None);
        e.timestamp = 1_704_067_200_000_000_000;
        let mut out = Vec::new();
        write_history_event(&e, true, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"timestamp":1704067200,"type":"ParallelStateStarted","id":3,"previousEventId":2}"#
        );
    }
}
