//! The local service integrations (`sfn::services`): each handler driven directly over a
//! `MemStore` — response shapes field by field and in AWS's key order (against the
//! conformance cases where they record the envelope), message bodies and digests, AWS's
//! errors and causes — and small workflows end to end through `sfn::load`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bumpalo::Bump;
use md5::{Digest, Md5};
use serde_json::{json, Value as Json};
use sfn::clock::{Clock, ManualClock};
use sfn::compile::Bindings;
use sfn::handlers::{Handler, OwnedTaskContext, Registry, TaskError};
use sfn::local::{block_on, run_to_completion, RunOptions, Status};
use sfn::services::{
    FunctionError, Functions, Services, LAMBDA_INVOKE, LAMBDA_INVOKE_WAIT, RESOURCES, SNS_PUBLISH, SQS_SEND_MESSAGE,
    SQS_SEND_MESSAGE_WAIT,
};
use sfn::store::{MemStore, Store};
use sfn::validate::MachineType;
use sfn::value::parse_json;
use sfn::vm::{Exec, ExecMeta, Outcome, Poll};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
/// `ManualClock::fixed()` as an HTTP date.
const DATE: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

struct Local {
    store: Arc<MemStore>,
    functions: Functions,
    registry: Registry,
}

fn local() -> Local {
    let store = Arc::new(MemStore::new());
    store.create_queue("Orders").unwrap();
    store.create_topic("Notifications").unwrap();
    let functions = Functions::new();
    let services = Services::new(store.clone(), functions.clone(), REGION, ACCOUNT)
        .with_clock(Arc::new(ManualClock::fixed()) as Arc<dyn Clock>);
    let mut registry = Registry::new();
    services.register(&mut registry);
    Local { store, functions, registry }
}

impl Local {
    /// Calls the handler registered for `resource` as the VM would, and waits for it.
    fn call(&self, resource: &str, params: Json) -> Result<Json, TaskError> {
        let Some(Handler::Async(h)) = self.registry.resolve(resource) else {
            panic!("{resource}: not an async handler")
        };
        let ctx = OwnedTaskContext {
            state_name: "Task".into(),
            resource: resource.into(),
            retry_count: 0,
            task_token: resource.ends_with(".waitForTaskToken").then(|| "token-1".into()),
            execution_arn: format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:M:e"),
            invocation: 0,
        };
        block_on(h.call(ctx, params))
    }
}

fn keys(v: &Json) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// The Java SDK's cause suffix, with the request id of this call.
fn sdk_suffix(service: &str, status: u16, code: &str, request_id: &str) -> String {
    format!(" (Service: {service}; Status Code: {status}; Error Code: {code}; Request ID: {request_id}; Proxy: null)")
}

/// The request id a cause quotes.
fn request_id_of(cause: &str) -> &str {
    let start = cause.find("Request ID: ").expect("a request id") + "Request ID: ".len();
    &cause[start..start + cause[start..].find(';').unwrap()]
}

/// Checks a response's `SdkHttpMetadata`/`SdkResponseMetadata` against the header list AWS
/// sends (in its order): `AllHttpHeaders` holds one-element lists, `HttpHeaders` strings
/// sorted case-insensitively. Returns the request id.
fn check_metadata(out: &Json, headers: &[(&str, &str)], status: u16) -> String {
    let meta = &out["SdkHttpMetadata"];
    assert_eq!(keys(meta), ["AllHttpHeaders", "HttpHeaders", "HttpStatusCode"]);
    let request_id = out["SdkResponseMetadata"]["RequestId"].as_str().unwrap().to_owned();
    assert!(is_uuid(&request_id), "{request_id}");
    assert_eq!(keys(&out["SdkResponseMetadata"]), ["RequestId"]);
    let all = &meta["AllHttpHeaders"];
    assert_eq!(keys(all), headers.iter().map(|(k, _)| *k).collect::<Vec<_>>());
    for (k, v) in headers {
        let want = if *k == "x-amzn-RequestId" { request_id.as_str() } else { v };
        if *k != "X-Amzn-Trace-Id" {
            assert_eq!(all[k], json!([want]), "{k}");
        }
        assert_eq!(meta["HttpHeaders"][k], all[k][0], "{k}");
    }
    let mut sorted: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
    sorted.sort_by_key(|k| k.to_ascii_lowercase());
    assert_eq!(keys(&meta["HttpHeaders"]), sorted);
    assert_eq!(meta["HttpStatusCode"], status);
    request_id
}

fn conformance_case(name: &str) -> Json {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/cases").join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------
// sqs:sendMessage

#[test]
fn every_resource_is_registered_as_an_async_handler() {
    let l = local();
    for resource in RESOURCES {
        assert!(matches!(l.registry.resolve(resource), Some(Handler::Async(_))), "{resource}");
    }
}

#[test]
fn sqs_object_body_is_sent_compact_and_answered_as_aws_does() {
    let l = local();
    let out = l
        .call(
            SQS_SEND_MESSAGE,
            json!({
                "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/Orders",
                "MessageBody": {"order": "o-1", "items": [1, 2.5, 1e20], "note": "é"},
                "MessageGroupId": "ignored", "MessageDeduplicationId": "ignored", "DelaySeconds": 0,
            }),
        )
        .unwrap();
    let body = r#"{"order":"o-1","items":[1,2.5,1.0E20],"note":"é"}"#;
    assert_eq!(keys(&out), ["MD5OfMessageBody", "MessageId", "SdkHttpMetadata", "SdkResponseMetadata"]);
    assert_eq!(out["MD5OfMessageBody"], md5_hex(body));
    let id = out["MessageId"].as_str().unwrap();
    assert!(is_uuid(id), "{id}");
    // Recorded: Content-Length 106, the JSON protocol's answer `{"MD5OfMessageBody":…,"MessageId":…}`.
    check_metadata(
        &out,
        &[
            ("x-amzn-RequestId", ""),
            ("connection", "keep-alive"),
            ("Content-Length", "106"),
            ("Date", DATE),
            ("Content-Type", "application/x-amz-json-1.0"),
        ],
        200,
    );
    let got = l.store.receive_messages("Orders", 10).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, body);
    assert_eq!(got[0].md5_of_body, md5_hex(body));
    assert_eq!(got[0].message_id, id);
    assert_eq!(got[0].attributes, None);
    assert_eq!(got[0].sent_at, ManualClock::fixed().now());
}

#[test]
fn sqs_string_body_is_sent_as_is_and_a_bare_queue_name_is_accepted() {
    let l = local();
    for (url, body) in
        [("Orders", "plain text"), ("https://sqs.eu-west-1.amazonaws.com/999999999999/Orders/", "{\"a\": 1}")]
    {
        let out = l.call(SQS_SEND_MESSAGE, json!({"QueueUrl": url, "MessageBody": body})).unwrap();
        assert_eq!(out["MD5OfMessageBody"], md5_hex(body));
        assert_eq!(l.store.receive_messages("Orders", 10).unwrap()[0].body, body);
    }
    // MD5 of "hello", the well-known digest.
    let out = l.call(SQS_SEND_MESSAGE, json!({"QueueUrl": "Orders", "MessageBody": "hello"})).unwrap();
    assert_eq!(out["MD5OfMessageBody"], "5d41402abc4b2a76b9719d911017c592");
}

#[test]
fn sqs_message_attributes_are_digested_and_stored() {
    let l = local();
    let attributes = json!({
        "my_attribute_no_1": {"DataType": "String", "StringValue": "Hello"},
        "my_attribute_no_2": {"DataType": "String", "StringValue": "World"},
    });
    let out = l
        .call(
            SQS_SEND_MESSAGE,
            json!({"QueueUrl": "Orders", "MessageBody": "test_message_body", "MessageAttributes": attributes}),
        )
        .unwrap();
    assert_eq!(
        keys(&out),
        ["MD5OfMessageAttributes", "MD5OfMessageBody", "MessageId", "SdkHttpMetadata", "SdkResponseMetadata"]
    );
    let md5 = out["MD5OfMessageAttributes"].as_str().unwrap();
    assert_eq!(md5.len(), 32);
    // Recorded: 166 bytes with attributes.
    assert_eq!(out["SdkHttpMetadata"]["HttpHeaders"]["Content-Length"], "166");
    let stored = &l.store.receive_messages("Orders", 1).unwrap()[0];
    assert_eq!(serde_json::from_str::<Json>(stored.attributes.as_deref().unwrap()).unwrap(), attributes);

    let err = l
        .call(
            SQS_SEND_MESSAGE,
            json!({"QueueUrl": "Orders", "MessageBody": "b", "MessageAttributes": {"a": {"DataType": "String"}}}),
        )
        .unwrap_err();
    assert_eq!(err.error, "SQS.AmazonSQSException");
    let cause = err.cause.unwrap();
    assert!(cause.starts_with(
        "The message attribute 'a' must contain non-empty message attribute value for message attribute type 'String'. (Service: AmazonSQS; Status Code: 400; Error Code: InvalidParameterValue;"
    ), "{cause}");
}

#[test]
fn sqs_wait_for_task_token_makes_the_same_call() {
    let l = local();
    let out = l
        .call(
            SQS_SEND_MESSAGE_WAIT,
            json!({"QueueUrl": "Orders", "MessageBody": {"MessageTitle": "approve", "TaskToken": "token-1"}}),
        )
        .unwrap();
    assert_eq!(keys(&out), ["MD5OfMessageBody", "MessageId", "SdkHttpMetadata", "SdkResponseMetadata"]);
    let body = &l.store.receive_messages("Orders", 1).unwrap()[0].body;
    assert_eq!(body, r#"{"MessageTitle":"approve","TaskToken":"token-1"}"#);
}

#[test]
fn sqs_errors_are_awss() {
    let l = local();
    let err =
        l.call(SQS_SEND_MESSAGE, json!({"QueueUrl": "https://sqs.us-east-1.amazonaws.com/1/Nope", "MessageBody": "x"}));
    let err = err.unwrap_err();
    assert_eq!(err.error, "SQS.QueueDoesNotExistException");
    let cause = err.cause.unwrap();
    let rid = request_id_of(&cause);
    assert!(is_uuid(rid));
    assert_eq!(
        cause,
        format!(
            "The specified queue does not exist.{}",
            sdk_suffix("AmazonSQS", 400, "AWS.SimpleQueueService.NonExistentQueue", rid)
        )
    );

    // Recorded (MessageBody null): "The request must contain the parameter MessageBody. (Service:
    // AmazonSQS; Status Code: 400; Error Code: MissingParameter; Request ID: …; Proxy: null)".
    for params in [json!({"QueueUrl": "Orders", "MessageBody": null}), json!({"QueueUrl": "Orders"})] {
        let err = l.call(SQS_SEND_MESSAGE, params).unwrap_err();
        assert_eq!(err.error, "SQS.AmazonSQSException");
        let cause = err.cause.unwrap();
        assert_eq!(
            cause,
            format!(
                "The request must contain the parameter MessageBody.{}",
                sdk_suffix("AmazonSQS", 400, "MissingParameter", request_id_of(&cause))
            )
        );
    }
    let err = l.call(SQS_SEND_MESSAGE, json!({"MessageBody": "x"})).unwrap_err();
    assert_eq!(err.error, "SQS.AmazonSQSException");
    assert!(err.cause.unwrap().starts_with("The request must contain the parameter QueueUrl. (Service: AmazonSQS;"));

    let err =
        l.call(SQS_SEND_MESSAGE, json!({"QueueUrl": "Orders", "MessageBody": "x", "DelaySeconds": 901})).unwrap_err();
    assert!(err.cause.unwrap().starts_with(
        "Value 901 for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided."
    ));
    assert!(l.store.receive_messages("Orders", 10).unwrap().is_empty(), "nothing is sent on an error");
}

// ---------------------------------------------------------------------------------------
// sns:publish

#[test]
fn sns_publish_answers_as_aws_does_and_logs_the_message() {
    let l = local();
    let out = l
        .call(
            SNS_PUBLISH,
            json!({
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:Notifications",
                "Message": {"Message": "HelloWorld!"},
                "Subject": "greeting",
                "MessageAttributes": {"a": {"DataType": "String", "StringValue": "Hello"}},
            }),
        )
        .unwrap();
    assert_eq!(keys(&out), ["MessageId", "SdkHttpMetadata", "SdkResponseMetadata"]);
    let id = out["MessageId"].as_str().unwrap();
    assert!(is_uuid(id));
    // Recorded: 294 bytes, the query protocol's XML answer.
    check_metadata(
        &out,
        &[
            ("x-amzn-RequestId", ""),
            ("connection", "keep-alive"),
            ("Content-Length", "294"),
            ("Date", DATE),
            ("Content-Type", "text/xml"),
        ],
        200,
    );
    let log = l.store.topic_messages("Notifications", 0, 10).unwrap();
    assert_eq!(log.len(), 1);
    let (_, m) = &log[0];
    assert_eq!(m.message_id, id);
    assert_eq!(m.message, r#"{"Message":"HelloWorld!"}"#);
    assert_eq!(m.subject.as_deref(), Some("greeting"));
    assert_eq!(m.attributes.as_deref(), Some(r#"{"a":{"DataType":"String","StringValue":"Hello"}}"#));

    l.call(SNS_PUBLISH, json!({"TargetArn": "arn:aws:sns:us-east-1:123456789012:Notifications", "Message": "plain"}))
        .unwrap();
    assert_eq!(l.store.topic_messages("Notifications", 1, 10).unwrap()[0].1.message, "plain");
}

#[test]
fn sns_errors_are_awss() {
    let l = local();
    // Recorded: "Topic does not exist (Service: AmazonSNS; Status Code: 404; Error Code:
    // NotFound; Request ID: …; Proxy: null)".
    let err = l
        .call(SNS_PUBLISH, json!({"TopicArn": "arn:aws:sns:us-east-1:123456789012:Nope", "Message": "m"}))
        .unwrap_err();
    assert_eq!(err.error, "SNS.NotFoundException");
    let cause = err.cause.unwrap();
    assert_eq!(
        cause,
        format!("Topic does not exist{}", sdk_suffix("AmazonSNS", 404, "NotFound", request_id_of(&cause)))
    );

    let err = l.call(SNS_PUBLISH, json!({"Message": "m"})).unwrap_err();
    assert_eq!(err.error, "SNS.InvalidParameterException");
    assert!(err
        .cause
        .unwrap()
        .starts_with("Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter (Service: AmazonSNS; Status Code: 400; Error Code: InvalidParameter;"));

    let err = l.call(SNS_PUBLISH, json!({"TopicArn": "arn:aws:sns:us-east-1:123456789012:Notifications"})).unwrap_err();
    assert_eq!(err.error, "SNS.AmazonSNSException");

    let err = l
        .call(
            SNS_PUBLISH,
            json!({"TopicArn": "arn:aws:sns:us-east-1:123456789012:Notifications", "Message": "{\"email\":\"x\"}", "MessageStructure": "json"}),
        )
        .unwrap_err();
    assert_eq!(err.error, "SNS.InvalidParameterException");
    assert!(err
        .cause
        .unwrap()
        .starts_with("Invalid parameter: Message Structure - No default entry in JSON message body ("));
    assert!(l.store.topic_messages("Notifications", 0, 10).unwrap().is_empty(), "nothing is published on an error");
}

// ---------------------------------------------------------------------------------------
// lambda:invoke

/// Replaces what AWS's recordings mask (request ids, dates, trace ids) with the recordings'
/// placeholders, and `Content-Length` with the recorded one (the recorded functions are
/// Python, whose `json.dumps` writes `{"a": 1}`; ours are measured compact, `{"a":1}`).
fn mask_lambda_envelope(out: &mut Json, recorded_length: &str) {
    let has_log = out.get("LogResult").is_some();
    if has_log {
        out["LogResult"] = json!("<LogResult:1>");
    }
    let meta = &mut out["SdkHttpMetadata"];
    for (k, placeholder) in
        [("x-amzn-RequestId", "x-amzn-RequestId"), ("Date", "date"), ("X-Amzn-Trace-Id", "X-Amzn-Trace-Id")]
    {
        meta["AllHttpHeaders"][k] = json!(placeholder);
        meta["HttpHeaders"][k] = json!(placeholder);
    }
    meta["AllHttpHeaders"]["Content-Length"] = json!([recorded_length]);
    meta["HttpHeaders"]["Content-Length"] = json!(recorded_length);
    if has_log {
        meta["AllHttpHeaders"]["X-Amz-Log-Result"] = json!(["<LogResult:1>"]);
        meta["HttpHeaders"]["X-Amz-Log-Result"] = json!("<LogResult:1>");
    }
    out["SdkResponseMetadata"]["RequestId"] = json!("RequestId");
}

/// The envelope of a recorded case, as text (key order included).
fn recorded_envelope(case: &str) -> Json {
    let mut out = conformance_case(case)["expected"]["output"].clone();
    out.as_object_mut().unwrap().shift_remove("final");
    out
}

#[test]
fn lambda_invoke_envelope_matches_the_recording() {
    let l = local();
    l.functions.register_sync("identity", Ok);
    let out = l.call(LAMBDA_INVOKE, json!({"FunctionName": "identity", "Payload": {"body": "string body"}})).unwrap();
    assert_eq!(out["Payload"], json!({"body": "string body"}));
    assert_eq!(out["SdkHttpMetadata"]["HttpHeaders"]["Content-Length"], r#"{"body":"string body"}"#.len().to_string());
    let rid = out["SdkResponseMetadata"]["RequestId"].as_str().unwrap().to_owned();
    assert!(is_uuid(&rid));
    let headers = &out["SdkHttpMetadata"]["AllHttpHeaders"];
    assert_eq!(headers["x-amzn-RequestId"], json!([rid]));
    assert_eq!(headers["Date"], json!([DATE]));
    let trace = headers["X-Amzn-Trace-Id"][0].as_str().unwrap();
    assert!(trace.starts_with("root=1-65920080-") && trace.ends_with(";sampled=0"), "{trace}");

    let mut masked = out.clone();
    let recorded = recorded_envelope("task_lambda__lambda_service_invoke");
    mask_lambda_envelope(&mut masked, "23");
    // Text comparison: values and key order at every level.
    assert_eq!(masked.to_string(), recorded.to_string());
}

#[test]
fn lambda_payloads_follow_aws() {
    let l = local();
    l.functions.register_sync("identity", Ok);
    // A string Payload is JSON text (recorded: "0.0" → 0.0, "\"HelloWorld\"" → "HelloWorld");
    // null or no Payload reaches the function as {} (recorded: Content-Length 2).
    for (payload, seen, length) in [
        (json!("0.0"), json!(0.0), "3"),
        (json!("\"HelloWorld\""), json!("HelloWorld"), "12"),
        (json!(null), json!({}), "2"),
        (json!([1, {"a": true}]), json!([1, {"a": true}]), "14"),
    ] {
        let out = l.call(LAMBDA_INVOKE, json!({"FunctionName": "identity", "Payload": payload})).unwrap();
        assert_eq!(out["Payload"], seen);
        assert_eq!(out["SdkHttpMetadata"]["HttpHeaders"]["Content-Length"], length);
    }
    let out = l.call(LAMBDA_INVOKE, json!({"FunctionName": "identity"})).unwrap();
    assert_eq!(out["Payload"], json!({}));

    let err = l.call(LAMBDA_INVOKE, json!({"FunctionName": "identity", "Payload": "not json"})).unwrap_err();
    assert_eq!(err.error, "Lambda.InvalidRequestContentException");
    let cause = err.cause.unwrap();
    assert!(
        cause.starts_with("Could not parse request body into json: Could not parse payload into json: "),
        "{cause}"
    );
    assert!(cause.contains("(Service: AWSLambda; Status Code: 400; Error Code: InvalidRequestContentException;"));
}

#[test]
fn lambda_log_tail_matches_the_recording() {
    let l = local();
    l.functions.register_sync("identity", Ok);
    let out = l.call(LAMBDA_INVOKE, json!({"FunctionName": "identity", "Payload": null, "LogType": "Tail"})).unwrap();
    use base64::Engine;
    let log = base64::engine::general_purpose::STANDARD.decode(out["LogResult"].as_str().unwrap()).unwrap();
    let log = String::from_utf8(log).unwrap();
    let rid = out["SdkResponseMetadata"]["RequestId"].as_str().unwrap();
    assert!(log.starts_with(&format!(
        "START RequestId: {rid} Version: $LATEST\nEND RequestId: {rid}\nREPORT RequestId: {rid}\t"
    )));
    assert_eq!(out["SdkHttpMetadata"]["AllHttpHeaders"]["X-Amz-Log-Result"], json!([out["LogResult"]]));
    let mut masked = out.clone();
    mask_lambda_envelope(&mut masked, "2");
    assert_eq!(masked.to_string(), recorded_envelope("task_lambda__invoke_unsupported_param").to_string());
}

#[test]
fn lambda_unknown_function_fails_as_recorded() {
    let l = local();
    let name = "no_such_lambda_func_5e3348ee";
    let err = l.call(LAMBDA_INVOKE, json!({"FunctionName": name, "Payload": null})).unwrap_err();
    let case = conformance_case("error_handling__task_service_lambda__no_such_function");
    assert_eq!(err.error, case["expected"]["error"]);
    let cause = err.cause.unwrap();
    // The recording masks the partition, region, function name and request id; its account
    // is LocalStack's 111111111111 where ours is the services' account.
    let expected = case["expected"]["cause"]
        .as_str()
        .unwrap()
        .replace("<partition>", "aws")
        .replace("<region>", REGION)
        .replace("111111111111", ACCOUNT)
        .replace("no_such_<lambda_function_name>", name)
        .replace("<request_id>", request_id_of(&cause));
    assert_eq!(cause, expected);
    assert!(is_uuid(request_id_of(&cause)));

    // A full ARN names its own region and account, and its qualifier.
    let err = l
        .call(LAMBDA_INVOKE, json!({"FunctionName": "arn:aws:lambda:eu-west-1:210987654321:function:gone:prod"}))
        .unwrap_err();
    assert!(err
        .cause
        .unwrap()
        .starts_with("Function not found: arn:aws:lambda:eu-west-1:210987654321:function:gone:prod (Service: AWSLambda; Status Code: 404; Error Code: ResourceNotFoundException;"));
}

#[test]
fn lambda_function_error_fails_the_task_as_recorded() {
    let l = local();
    let trace =
        "  File \"/var/task/handler.py\", line 2, in handler\n    raise Exception(\"Some exception was raised.\")\n";
    l.functions.register_sync("raise_exception", move |_| {
        Err(FunctionError {
            error_type: "Exception".into(),
            error_message: "Some exception was raised.".into(),
            stack_trace: vec![trace.into()],
        })
    });
    let err = l.call(LAMBDA_INVOKE, json!({"FunctionName": "raise_exception", "Payload": null})).unwrap_err();
    let case = conformance_case("error_handling__task_service_lambda__raise_exception_catch");
    let recorded = &case["expected"]["output"];
    assert_eq!(err.error, recorded["Error"]);
    let cause = err.cause.unwrap();
    let request_id = serde_json::from_str::<Json>(&cause).unwrap()["requestId"].as_str().unwrap().to_owned();
    assert!(is_uuid(&request_id));
    assert_eq!(cause.replace(&request_id, "<uuid:1>"), recorded["Cause"].as_str().unwrap());
}

#[test]
fn lambda_event_and_dry_run_invocations() {
    let l = local();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    l.functions.register_sync("count", move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        Err(FunctionError::new("Ignored", "an Event invocation's answer is dropped"))
    });
    let out =
        l.call(LAMBDA_INVOKE, json!({"FunctionName": "count", "InvocationType": "Event", "Payload": {}})).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the function still runs");
    assert_eq!(keys(&out), ["Payload", "SdkHttpMetadata", "SdkResponseMetadata", "StatusCode"]);
    assert_eq!(out["StatusCode"], 202);
    assert_eq!(out["Payload"], "");
    assert_eq!(out["SdkHttpMetadata"]["HttpStatusCode"], 202);
    assert_eq!(out["SdkHttpMetadata"]["HttpHeaders"]["Content-Length"], "0");

    let out = l.call(LAMBDA_INVOKE, json!({"FunctionName": "count", "InvocationType": "DryRun"})).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a dry run does not run the function");
    assert_eq!(out["StatusCode"], 204);

    let err = l.call(LAMBDA_INVOKE, json!({"FunctionName": "count", "InvocationType": "Later"})).unwrap_err();
    assert_eq!(err.error, "Lambda.AWSLambdaException");
    assert!(err.cause.unwrap().starts_with(
        "1 validation error detected: Value 'Later' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun] (Service: AWSLambda; Status Code: 400; Error Code: ValidationException;"
    ));
}

#[test]
fn lambda_function_names_and_qualifiers() {
    let l = local();
    l.functions.register_sync("f", |_| Ok(json!("latest")));
    l.functions.register_sync("f:live", |_| Ok(json!("live")));
    for (name, qualifier, payload, version) in [
        (json!("f"), json!(null), "latest", "$LATEST"),
        (json!("123456789012:function:f"), json!(null), "latest", "$LATEST"),
        (json!("arn:aws:lambda:us-east-1:123456789012:function:f"), json!(null), "latest", "$LATEST"),
        (json!("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"), json!(null), "latest", "$LATEST"),
        (json!("f:live"), json!(null), "live", "$LATEST"),
        (json!("f"), json!("live"), "live", "$LATEST"),
        (json!("f:7"), json!("7"), "latest", "7"),
    ] {
        let out = l.call(LAMBDA_INVOKE, json!({"FunctionName": name, "Qualifier": qualifier})).unwrap();
        assert_eq!(out["Payload"], payload, "{name} {qualifier}");
        assert_eq!(out["ExecutedVersion"], version, "{name} {qualifier}");
        assert_eq!(out["SdkHttpMetadata"]["HttpHeaders"]["X-Amz-Executed-Version"], version);
    }
    let err = l.call(LAMBDA_INVOKE, json!({"FunctionName": "f:live", "Qualifier": "other"})).unwrap_err();
    assert_eq!(err.error, "Lambda.InvalidParameterValueException");
    let err = l.call(LAMBDA_INVOKE, json!({"FunctionName": "not a name"})).unwrap_err();
    assert_eq!(err.error, "Lambda.AWSLambdaException");
    assert!(err
        .cause
        .unwrap()
        .contains("at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: "));
    let err = l.call(LAMBDA_INVOKE, json!({"Payload": {}})).unwrap_err();
    assert_eq!(err.error, "Lambda.AWSLambdaException");
    assert!(err.cause.unwrap().starts_with("1 validation error detected: Value null at 'functionName' failed to satisfy constraint: Member must not be null ("));
}

#[test]
fn functions_registered_after_binding_are_found() {
    let l = local();
    assert!(l.call(LAMBDA_INVOKE, json!({"FunctionName": "late"})).is_err());
    l.functions.register("late", |payload: Json| async move { Ok(json!({"got": payload})) });
    let out = l.call(LAMBDA_INVOKE_WAIT, json!({"FunctionName": "late", "Payload": {"token": "t"}})).unwrap();
    assert_eq!(out["Payload"], json!({"got": {"token": "t"}}));
    assert_eq!(l.functions.names(), ["late"]);
}

// ---------------------------------------------------------------------------------------
// End to end

/// A JSONPath workflow over all three services: queue an order, notify, price it with a
/// function (ResultSelector picks `$.Payload`), then wait for an approval whose task token
/// travels in a queued message.
const ORDER_FLOW: &str = r#"{
  "StartAt": "Queue",
  "States": {
    "Queue": {
      "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
      "Parameters": {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/Orders", "MessageBody.$": "$.order"},
      "ResultSelector": {"id.$": "$.MessageId", "md5.$": "$.MD5OfMessageBody"},
      "ResultPath": "$.queued", "Next": "Notify"
    },
    "Notify": {
      "Type": "Task", "Resource": "arn:aws:states:::sns:publish",
      "Parameters": {"TopicArn": "arn:aws:sns:us-east-1:123456789012:Notifications", "Message.$": "States.Format('order {} queued', $.order.id)"},
      "ResultPath": null, "Next": "Price"
    },
    "Price": {
      "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
      "Parameters": {"FunctionName": "price", "Payload.$": "$.order"},
      "ResultSelector": {"total.$": "$.Payload.total", "status.$": "$.StatusCode"},
      "ResultPath": "$.price", "Next": "Approve"
    },
    "Approve": {
      "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
      "Parameters": {"QueueUrl": "Approvals", "MessageBody": {"order.$": "$.order.id", "TaskToken.$": "$$.Task.Token"}},
      "ResultPath": "$.approval", "End": true
    }
  }
}"#;

#[test]
fn a_workflow_runs_on_the_local_services() {
    let l = local();
    l.store.create_queue("Approvals").unwrap();
    l.functions.register_sync("price", |order| {
        let total: f64 = order["items"].as_array().unwrap().iter().map(|i| i["price"].as_f64().unwrap()).sum();
        Ok(json!({"total": total}))
    });
    let prog =
        sfn::load(ORDER_FLOW.as_bytes(), MachineType::Standard, Bindings { handlers: Some(&l.registry), mocks: None })
            .unwrap();
    let clock = ManualClock::fixed();
    let bump = Bump::new();
    let input = parse_json(&bump, br#"{"order": {"id": "o-1", "items": [{"price": 2.5}, {"price": 4}]}}"#).unwrap();
    let meta = ExecMeta::local("Orders", "o-1", MachineType::Standard, clock.now());
    let mut exec = Exec::new(&prog, &bump, input, &meta, 7);
    let mut approvals = 0;
    loop {
        match exec.run(&clock, u32::MAX) {
            Poll::Finished => break,
            Poll::Yielded => {}
            Poll::Blocked { .. } => {
                let calls = exec.take_async_calls();
                if !calls.is_empty() {
                    for call in calls {
                        let answer = block_on(call.handler.call(call.ctx, call.input));
                        exec.complete_task(call.id, answer);
                    }
                    continue;
                }
                // The approver reads the queued message and answers with its token.
                let message = l.store.receive_messages("Approvals", 1).unwrap().pop().expect("an approval request");
                let body: Json = serde_json::from_str(&message.body).unwrap();
                assert_eq!(body["order"], "o-1");
                assert_eq!(exec.waiting_tokens(), [body["TaskToken"].as_str().unwrap()]);
                exec.send_task_success(body["TaskToken"].as_str().unwrap(), br#"{"approved":true}"#).unwrap();
                approvals += 1;
            }
        }
    }
    assert_eq!(approvals, 1);
    let Outcome::Succeeded(out) = exec.outcome().unwrap() else { panic!("{:?}", exec.outcome()) };
    let out: Json = serde_json::from_str(&out.to_json_string()).unwrap();

    let queued = l.store.receive_messages("Orders", 10).unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].body, r#"{"id":"o-1","items":[{"price":2.5},{"price":4}]}"#);
    assert_eq!(
        out,
        json!({
            "order": {"id": "o-1", "items": [{"price": 2.5}, {"price": 4}]},
            "queued": {"id": queued[0].message_id, "md5": md5_hex(&queued[0].body)},
            "price": {"total": 6.5, "status": 200},
            "approval": {"approved": true},
        })
    );
    let notes = l.store.topic_messages("Notifications", 0, 10).unwrap();
    assert_eq!(notes.iter().map(|(_, m)| m.message.as_str()).collect::<Vec<_>>(), ["order o-1 queued"]);
}

#[test]
fn service_errors_are_caught_like_aws_errors() {
    let l = local();
    l.functions.register_sync("boom", |_| Err(FunctionError::new("ValueError", "bad order")));
    let def = r#"{
      "StartAt": "Price",
      "States": {
        "Price": {
          "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
          "Parameters": {"FunctionName.$": "$.fn", "Payload": {}},
          "Catch": [{"ErrorEquals": ["ValueError", "Lambda.ResourceNotFoundException"], "ResultPath": "$.error", "Next": "Queue"}],
          "End": true
        },
        "Queue": {
          "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage",
          "Parameters": {"QueueUrl": "Missing", "MessageBody.$": "$.error.Error"},
          "End": true
        }
      }
    }"#;
    let prog = sfn::load(def.as_bytes(), MachineType::Standard, Bindings { handlers: Some(&l.registry), mocks: None })
        .unwrap();
    let clock = ManualClock::fixed();
    for fn_name in ["boom", "nobody"] {
        let meta = ExecMeta::local("Errors", fn_name, MachineType::Standard, clock.now());
        let input = serde_json::to_vec(&json!({"fn": fn_name})).unwrap();
        let r = run_to_completion(&prog, &input, &RunOptions { clock: &clock, meta, seed: 1 }).unwrap();
        // The catch ran, then the missing queue failed the execution.
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.error.as_deref(), Some("SQS.QueueDoesNotExistException"));
        assert!(r
            .cause
            .unwrap()
            .starts_with("The specified queue does not exist. (Service: AmazonSQS; Status Code: 400;"));
    }
}

#[test]
fn handlers_run_under_a_tokio_runtime() {
    // The executor polls asynchronous handlers on tokio: store writes then go to its blocking pool.
    let l = local();
    l.functions.register_sync("identity", Ok);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    for (resource, params) in [
        (SQS_SEND_MESSAGE, json!({"QueueUrl": "Orders", "MessageBody": "x"})),
        (SNS_PUBLISH, json!({"TopicArn": "arn:aws:sns:us-east-1:123456789012:Notifications", "Message": "x"})),
        (LAMBDA_INVOKE, json!({"FunctionName": "identity", "Payload": "1"})),
    ] {
        let Some(Handler::Async(h)) = l.registry.resolve(resource) else { unreachable!() };
        let ctx = OwnedTaskContext {
            state_name: "Task".into(),
            resource: resource.into(),
            retry_count: 0,
            task_token: None,
            execution_arn: String::new(),
            invocation: 0,
        };
        let out = rt.block_on(h.call(ctx, params)).unwrap();
        assert_eq!(out["SdkHttpMetadata"]["HttpStatusCode"], 200, "{resource}");
    }
    assert_eq!(l.store.receive_messages("Orders", 10).unwrap().len(), 1);
    assert_eq!(l.store.topic_messages("Notifications", 0, 10).unwrap().len(), 1);
}
