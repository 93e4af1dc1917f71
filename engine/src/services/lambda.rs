//! `lambda:invoke` (and `.waitForTaskToken`): calls a local function and wraps its answer in
//! Lambda's Invoke response as Step Functions returns it.
//!
//! Input: the task's parameters (`FunctionName`, `Payload`, `InvocationType`, `LogType`,
//! `Qualifier`, `ClientContext`). Output: `{ExecutedVersion, [LogResult], Payload,
//! SdkHttpMetadata, SdkResponseMetadata, StatusCode}`, or the function's error, or Lambda's.
//! Never touches: the store.

use std::sync::LazyLock;

use base64::Engine;
use regex::Regex;
use serde_json::{json, Map, Value as Json};

use super::{Exchange, Services};
use crate::clock::NANOS_PER_SEC;
use crate::handlers::TaskError;

/// Invoke's `FunctionName` pattern from Lambda's API reference, anchored. Groups: 2 the
/// partition, 3 the region (with its `:`), 5 the account (with its `:`), 7 the
/// name, 9 the qualifier.
static FUNCTION_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9_.\-]+)(:(\$LATEST|[a-zA-Z0-9_\-]+))?$",
    )
    .expect("a valid pattern")
});
const FUNCTION_NAME_PATTERN: &str = r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?";
/// Invoke's `FunctionName` length limit.
const MAX_FUNCTION_NAME: usize = 170;

/// The function a `FunctionName` (and `Qualifier`) designates.
struct Target {
    partition: String,
    region: String,
    account: String,
    name: String,
    qualifier: Option<String>,
}

impl Target {
    /// The qualified ARN Lambda names in `Function not found: …` (`$LATEST` when unqualified).
    fn arn(&self) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{}:{}",
            self.partition,
            self.region,
            self.account,
            self.name,
            self.qualifier.as_deref().unwrap_or("$LATEST")
        )
    }

    /// `ExecutedVersion`: a version number when one was asked for, else `$LATEST` (aliases
    /// are not modelled: every local function is its own `$LATEST`).
    fn executed_version(&self) -> &str {
        match self.qualifier.as_deref() {
            Some(q) if q.bytes().all(|b| b.is_ascii_digit()) => q,
            _ => "$LATEST",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

pub(super) async fn invoke(s: &Services, params: Json) -> Result<Json, TaskError> {
    let ex = s.exchange();
    let target = target(s, &ex, &params)?;
    let invocation = match params.get("InvocationType") {
        None | Some(Json::Null) => InvocationType::RequestResponse,
        Some(Json::String(t)) if t == "RequestResponse" => InvocationType::RequestResponse,
        Some(Json::String(t)) if t == "Event" => InvocationType::Event,
        Some(Json::String(t)) if t == "DryRun" => InvocationType::DryRun,
        Some(other) => return Err(not_in_enum(&ex, other, "invocationType", "[Event, RequestResponse, DryRun]")),
    };
    let tail = match params.get("LogType") {
        None | Some(Json::Null) => false,
        Some(Json::String(t)) if t == "None" => false,
        Some(Json::String(t)) if t == "Tail" => true,
        Some(other) => return Err(not_in_enum(&ex, other, "logType", "[None, Tail]")),
    };
    // A string is JSON text, sent as the request body (`"0.0"` reaches the function as 0.0);
    // none at all (or null) reaches it as `{}`.
    let payload = match params.get("Payload") {
        None | Some(Json::Null) => json!({}),
        Some(Json::String(text)) if text.is_empty() => json!({}),
        Some(Json::String(text)) => serde_json::from_str(text).map_err(|e| {
            ex.error(
                "Lambda.InvalidRequestContentException",
                &format!("Could not parse request body into json: Could not parse payload into json: {e}"),
                "AWSLambda",
                400,
                "InvalidRequestContentException",
            )
        })?,
        Some(other) => other.clone(),
    };

    let qualified = target.qualifier.as_deref().filter(|q| *q != "$LATEST").map(|q| format!("{}:{q}", target.name));
    let function = qualified.and_then(|q| s.functions.get(&q)).or_else(|| s.functions.get(&target.name));
    let Some(function) = function else {
        return Err(ex.error(
            "Lambda.ResourceNotFoundException",
            &format!("Function not found: {}", target.arn()),
            "AWSLambda",
            404,
            "ResourceNotFoundException",
        ));
    };

    let trace = trace_id(&ex);
    if invocation != InvocationType::RequestResponse {
        // Event: queued by Lambda and run later; here it runs now and its answer (or error)
        // is dropped. DryRun: checked, not run. Either way the response has no body.
        if invocation == InvocationType::Event {
            let _ = function(payload).await;
        }
        let status = if invocation == InvocationType::Event { 202 } else { 204 };
        let headers = [
            ("x-amzn-Remapped-Content-Length", "0"),
            ("Connection", "keep-alive"),
            ("x-amzn-RequestId", ex.request_id.as_str()),
            ("Content-Length", "0"),
            ("Date", ex.date.as_str()),
            ("X-Amzn-Trace-Id", trace.as_str()),
            ("Content-Type", "application/json"),
        ];
        return Ok(json!({
            "Payload": "",
            "SdkHttpMetadata": ex.http_metadata(&headers, status),
            "SdkResponseMetadata": ex.response_metadata(),
            "StatusCode": status,
        }));
    }

    let version = target.executed_version();
    let started = s.clock.now();
    let result = function(payload).await;
    let log = tail.then(|| log_result(&ex.request_id, version, s.clock.now() - started));
    let payload = match result {
        Ok(v) => v,
        Err(e) => {
            // An unhandled function error: the error object the runtime returns, compact.
            let mut cause = Map::new();
            cause.insert("errorMessage".into(), Json::from(e.error_message));
            cause.insert("errorType".into(), Json::from(e.error_type.as_str()));
            cause.insert("requestId".into(), Json::from(ex.request_id.as_str()));
            cause.insert("stackTrace".into(), Json::from(e.stack_trace));
            return Err(TaskError::new(e.error_type, super::compact(&Json::Object(cause))));
        }
    };
    let length = super::compact(&payload).len().to_string();
    let mut headers = Vec::with_capacity(9);
    if let Some(log) = &log {
        headers.push(("X-Amz-Log-Result", log.as_str()));
    }
    headers.extend([
        ("X-Amz-Executed-Version", version),
        ("x-amzn-Remapped-Content-Length", "0"),
        ("Connection", "keep-alive"),
        ("x-amzn-RequestId", ex.request_id.as_str()),
        ("Content-Length", length.as_str()),
        ("Date", ex.date.as_str()),
        ("X-Amzn-Trace-Id", trace.as_str()),
        ("Content-Type", "application/json"),
    ]);
    let mut out = Map::new();
    out.insert("ExecutedVersion".into(), Json::from(version));
    if let Some(log) = &log {
        out.insert("LogResult".into(), Json::from(log.as_str()));
    }
    out.insert("Payload".into(), payload);
    out.insert("SdkHttpMetadata".into(), ex.http_metadata(&headers, 200));
    out.insert("SdkResponseMetadata".into(), ex.response_metadata());
    out.insert("StatusCode".into(), Json::from(200));
    Ok(Json::Object(out))
}

/// Parses `FunctionName` (a name, `name:qualifier`, a partial or a full ARN) and `Qualifier`.
/// What the ARN leaves out is the services' partition (`aws`), region and account.
fn target(s: &Services, ex: &Exchange, params: &Json) -> Result<Target, TaskError> {
    let raw = match params.get("FunctionName") {
        Some(Json::String(n)) => n.as_str(),
        None | Some(Json::Null) => {
            return Err(validation(
                ex,
                "Value null at 'functionName' failed to satisfy constraint: Member must not be null",
            ))
        }
        Some(other) => {
            return Err(validation(
                ex,
                &format!(
                    "Value '{}' at 'functionName' failed to satisfy constraint: Member must be a string",
                    super::compact(other)
                ),
            ))
        }
    };
    let captures = FUNCTION_NAME.captures(raw).filter(|_| (1..=MAX_FUNCTION_NAME).contains(&raw.len()));
    let Some(c) = captures else {
        return Err(validation(
            ex,
            &format!(
                "Value '{raw}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: {FUNCTION_NAME_PATTERN}"
            ),
        ));
    };
    let group = |i: usize| c.get(i).map(|m| m.as_str().trim_end_matches(':'));
    let mut qualifier = group(9).map(str::to_owned);
    match params.get("Qualifier") {
        None | Some(Json::Null) => {}
        Some(Json::String(q)) => match &qualifier {
            Some(derived) if derived != q => {
                return Err(ex.error(
                    "Lambda.InvalidParameterValueException",
                    "The derived qualifier from the function name does not match the specified qualifier.",
                    "AWSLambda",
                    400,
                    "InvalidParameterValueException",
                ))
            }
            _ => qualifier = Some(q.clone()),
        },
        Some(other) => {
            return Err(validation(
                ex,
                &format!(
                    "Value '{}' at 'qualifier' failed to satisfy constraint: Member must be a string",
                    super::compact(other)
                ),
            ))
        }
    }
    Ok(Target {
        partition: group(2).unwrap_or("aws").to_owned(),
        region: group(3).unwrap_or(&s.region).to_owned(),
        account: group(5).unwrap_or(&s.account).to_owned(),
        name: group(7).unwrap_or_default().to_owned(),
        qualifier,
    })
}

/// Lambda's request validation (`ValidationException`, which the Java SDK v1 has no class
/// for, hence `AWSLambdaException`).
fn validation(ex: &Exchange, detail: &str) -> TaskError {
    ex.error(
        "Lambda.AWSLambdaException",
        &format!("1 validation error detected: {detail}"),
        "AWSLambda",
        400,
        "ValidationException",
    )
}

fn not_in_enum(ex: &Exchange, value: &Json, member: &str, values: &str) -> TaskError {
    let value = value.as_str().map_or_else(|| super::compact(value), str::to_owned);
    validation(
        ex,
        &format!(
            "Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: {values}"
        ),
    )
}

/// An X-Ray trace header: `root=1-<8 hex digits of Unix seconds>-<24 hex digits>`.
fn trace_id(ex: &Exchange) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("root=1-{:08x}-{};sampled=0", ex.now.div_euclid(NANOS_PER_SEC), &id[..24])
}

/// `LogResult` for `LogType: Tail`: base64 of the runtime's START/END/REPORT lines (a local
/// function writes no log of its own).
fn log_result(request_id: &str, version: &str, elapsed_nanos: i64) -> String {
    let millis = elapsed_nanos.max(0) as f64 / 1e6;
    let billed = (millis.ceil() as i64).max(1);
    let text = format!(
        "START RequestId: {request_id} Version: {version}\nEND RequestId: {request_id}\n\
         REPORT RequestId: {request_id}\tDuration: {millis:.2} ms\tBilled Duration: {billed} ms\t\n"
    );
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_parse_as_lambda_does() {
        let c = FUNCTION_NAME.captures("arn:aws:lambda:us-west-2:123456789012:function:f:prod").unwrap();
        assert_eq!(c.get(3).unwrap().as_str(), "us-west-2:");
        assert_eq!(c.get(5).unwrap().as_str(), "123456789012:");
        assert_eq!(c.get(7).unwrap().as_str(), "f");
        assert_eq!(c.get(9).unwrap().as_str(), "prod");
        let c = FUNCTION_NAME.captures("123456789012:function:my-function").unwrap();
        assert_eq!((c.get(5).unwrap().as_str(), c.get(7).unwrap().as_str()), ("123456789012:", "my-function"));
        let c = FUNCTION_NAME.captures("my-function:v1").unwrap();
        assert_eq!((c.get(7).unwrap().as_str(), c.get(9).unwrap().as_str()), ("my-function", "v1"));
        assert!(FUNCTION_NAME.captures("my function").is_none());
        assert!(FUNCTION_NAME.captures("").is_none());
    }
}
