//! `services`: Step Functions' optimized integrations with SQS, SNS and Lambda, answered
//! locally, so a workflow that sends to a queue, publishes to a topic or invokes a function
//! runs with nothing else installed.
//!
//! Input: a Task's parameters (owned JSON, after `Parameters`/`Arguments`) for one of the
//! [`RESOURCES`], the [`Store`] that holds the queues and topics, and the local Lambda
//! functions ([`Functions`]). Output: the task's result as AWS hands it to the workflow (the
//! service's response plus the `SdkHttpMetadata`/`SdkResponseMetadata` Step Functions adds),
//! or the [`TaskError`] AWS raises (`SQS.…`, `SNS.…`, `Lambda.…`, or a function's own error
//! type) with the Java SDK's cause text.
//! Never touches: executions, the VM, task tokens (a `.waitForTaskToken` task makes the same
//! call; the token travels in the message because the definition put it there, and the value
//! returned here is what the engine reports as `TaskSubmitted` output), the network.
//!
//! Every handler is asynchronous (`Handler::future`): the durable runtime journals
//! asynchronous answers, so a resumed execution does not send its message twice. Store
//! writes are durable on return and may wait for a disk, so under a tokio runtime they run
//! on its blocking pool; without one (`local::block_on`) they run inline. Like AWS, a task
//! that is retried or re-run sends again: SQS and SNS are at-least-once.
//!
//! Where the shapes come from (recorded against AWS unless marked "modelled"):
//! - `lambda:invoke`: the envelope `{ExecutedVersion, [LogResult], Payload, SdkHttpMetadata,
//!   SdkResponseMetadata, StatusCode}`, its headers in AWS's order and `Content-Length` =
//!   the payload's length: `tests/conformance/cases/task_lambda__lambda_service_invoke.json`,
//!   `task_lambda__invoke_unsupported_param.json` (`LogType: Tail`),
//!   `jsonata__base_task_lambda__base_task_lambda.json`. A string `Payload` is JSON text
//!   (`task_lambda__lambda_task_service__invoke_json_values__*.json`: `"0.0"` reaches the
//!   function as `0.0`); a null one arrives as `{}` (`…invoke_unsupported_param`: the
//!   identity function answered `{}`, 2 bytes). A missing function:
//!   `error_handling__task_service_lambda__no_such_function.json`; a function that throws
//!   fails with its `errorType` and the compact error object as cause:
//!   `error_handling__task_service_lambda__raise_exception_catch.json`.
//! - `sqs:sendMessage`: `{[MD5OfMessageAttributes], MD5OfMessageBody, MessageId, …}` with the
//!   JSON protocol's headers (`Content-Length` 106, or 166 with attributes, is the response
//!   body's length), a missing `MessageBody` (`SQS.AmazonSQSException`, `MissingParameter`)
//!   and the `TaskSubmitted` output of `.waitForTaskToken` with an unmasked `Date`:
//!   LocalStack's AWS recordings `tests/aws/services/stepfunctions/v2/services/
//!   test_sqs_task_service.snapshot.json` and `…/error_handling/test_task_service_sqs.snapshot.json`.
//! - `sns:publish`: `{MessageId, …}` with the query protocol's headers (`text/xml`,
//!   `Content-Length` 294 = the XML body), a missing topic (`SNS.NotFoundException`, 404)
//!   and a rejected parameter (`SNS.InvalidParameterException`): LocalStack's
//!   `…/services/test_sns_task_service.snapshot.json`.
//! - Modelled: a missing queue (`SQS.QueueDoesNotExistException`, the SDK's class for
//!   `AWS.SimpleQueueService.NonExistentQueue`; AWS's recording only has an unresolvable
//!   host), missing `QueueUrl`/`Message`/`FunctionName`, attribute validation, and the
//!   `Event`/`DryRun` envelopes (202/204 per the Lambda API reference, headers guessed).
//!
//! Not reproduced: FIFO semantics (`MessageGroupId`/`MessageDeduplicationId` are accepted
//! and ignored; no `SequenceNumber`), `DelaySeconds` (validated, then ignored), SMS
//! (`PhoneNumber`), SNS subscriptions and per-protocol `MessageStructure` delivery (the
//! message is kept as given), Lambda aliases and versions (a qualifier picks a function
//! registered as `name:qualifier` if there is one, else `name`), `ClientContext`, real logs
//! (`LogResult` holds START/END/REPORT lines only), and the host/account of a `QueueUrl` or
//! ARN (only the queue, topic or function name is looked up).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{json, Map, Value as Json};

use crate::clock::{Clock, SystemClock};
use crate::handlers::{Handler, Registry, TaskError};
use crate::store::Store;

mod lambda;
mod sns;
mod sqs;

pub const SQS_SEND_MESSAGE: &str = "arn:aws:states:::sqs:sendMessage";
pub const SQS_SEND_MESSAGE_WAIT: &str = "arn:aws:states:::sqs:sendMessage.waitForTaskToken";
pub const SNS_PUBLISH: &str = "arn:aws:states:::sns:publish";
pub const SNS_PUBLISH_WAIT: &str = "arn:aws:states:::sns:publish.waitForTaskToken";
pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
pub const LAMBDA_INVOKE_WAIT: &str = "arn:aws:states:::lambda:invoke.waitForTaskToken";

/// Every resource [`Services::register`] binds.
pub const RESOURCES: [&str; 6] =
    [SQS_SEND_MESSAGE, SQS_SEND_MESSAGE_WAIT, SNS_PUBLISH, SNS_PUBLISH_WAIT, LAMBDA_INVOKE, LAMBDA_INVOKE_WAIT];

/// The largest SQS message body and SNS message, in bytes (both services' quota).
const MAX_MESSAGE_BYTES: usize = 262_144;

/// A local Lambda function's unhandled error, as the runtime reports it. The task fails
/// with `error_type` as its error name and the compact JSON
/// `{"errorMessage","errorType","requestId","stackTrace"}` (the Python runtime's keys) as
/// its cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionError {
    pub error_type: String,
    pub error_message: String,
    pub stack_trace: Vec<String>,
}

impl FunctionError {
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> FunctionError {
        FunctionError { error_type: error_type.into(), error_message: error_message.into(), stack_trace: Vec::new() }
    }
}

/// What a local function returns: its result (any JSON) or its error.
pub type FunctionFuture = Pin<Box<dyn Future<Output = Result<Json, FunctionError>> + Send>>;

type Function = Arc<dyn Fn(Json) -> FunctionFuture + Send + Sync>;

/// The local Lambda functions, by name. Cloning shares the set, so functions registered
/// after [`Services::register`] are found by the handlers already bound.
#[derive(Clone, Default)]
pub struct Functions {
    by_name: Arc<RwLock<HashMap<String, Function>>>,
}

impl Functions {
    pub fn new() -> Functions {
        Functions::default()
    }

    /// Registers (or replaces) the function `name` (a plain name such as `my-function`, or
    /// `my-function:live` for calls with that qualifier). It receives the invocation's
    /// payload and answers with the response payload.
    pub fn register<F, Fut>(&self, name: impl Into<String>, f: F) -> &Functions
    where
        F: Fn(Json) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Json, FunctionError>> + Send + 'static,
    {
        let f: Function = Arc::new(move |payload| -> FunctionFuture { Box::pin(f(payload)) });
        self.by_name.write().insert(name.into(), f);
        self
    }

    /// Registers a function that answers at once.
    pub fn register_sync<F>(&self, name: impl Into<String>, f: F) -> &Functions
    where
        F: Fn(Json) -> Result<Json, FunctionError> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.register(name, move |payload| std::future::ready(f(payload)))
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.read().keys().cloned().collect();
        names.sort();
        names
    }

    fn get(&self, name: &str) -> Option<Function> {
        self.by_name.read().get(name).cloned()
    }
}

/// The local services: queues and topics in a [`Store`], functions in [`Functions`], and the
/// region and account that ARNs and error causes name.
#[derive(Clone)]
pub struct Services {
    store: Arc<dyn Store>,
    functions: Functions,
    region: Arc<str>,
    account: Arc<str>,
    clock: Arc<dyn Clock>,
}

/// Which API a resource calls.
#[derive(Clone, Copy, Debug)]
enum Api {
    SendMessage,
    Publish,
    Invoke,
}

impl Services {
    /// Services over `store` and `functions` in `region`/`account` (the engine's default is
    /// us-east-1 / 123456789012), on the system clock.
    pub fn new(store: Arc<dyn Store>, functions: Functions, region: &str, account: &str) -> Services {
        Services { store, functions, region: region.into(), account: account.into(), clock: Arc::new(SystemClock) }
    }

    /// The clock that dates responses (`Date` headers) and stored messages.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Services {
        self.clock = clock;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn functions(&self) -> &Functions {
        &self.functions
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// Binds every resource in [`RESOURCES`] (exact ARNs) to its handler.
    pub fn register(&self, registry: &mut Registry) {
        for resource in RESOURCES {
            registry.register(resource, self.handler(resource).expect("every listed resource has a handler"));
        }
    }

    /// The asynchronous handler for one resource ARN, if it is one of [`RESOURCES`].
    pub fn handler(&self, resource: &str) -> Option<Handler> {
        let api = match resource {
            SQS_SEND_MESSAGE | SQS_SEND_MESSAGE_WAIT => Api::SendMessage,
            SNS_PUBLISH | SNS_PUBLISH_WAIT => Api::Publish,
            LAMBDA_INVOKE | LAMBDA_INVOKE_WAIT => Api::Invoke,
            _ => return None,
        };
        let services = self.clone();
        Some(Handler::future(move |_ctx, params| {
            let services = services.clone();
            async move {
                match api {
                    Api::SendMessage => services.send_message(params).await,
                    Api::Publish => services.publish(params).await,
                    Api::Invoke => services.invoke(params).await,
                }
            }
        }))
    }

    /// `sqs:sendMessage` with the task's parameters.
    pub async fn send_message(&self, params: Json) -> Result<Json, TaskError> {
        sqs::send_message(self, params).await
    }

    /// `sns:publish` with the task's parameters.
    pub async fn publish(&self, params: Json) -> Result<Json, TaskError> {
        sns::publish(self, params).await
    }

    /// `lambda:invoke` with the task's parameters.
    pub async fn invoke(&self, params: Json) -> Result<Json, TaskError> {
        lambda::invoke(self, params).await
    }

    fn exchange(&self) -> Exchange {
        let now = self.clock.now();
        Exchange { request_id: uuid(), date: http_date(now), now }
    }
}

/// One simulated HTTP exchange with a service.
struct Exchange {
    request_id: String,
    /// The `Date` header, e.g. `Thu, 18 Apr 2024 06:27:01 GMT`.
    date: String,
    /// Unix nanoseconds.
    now: i64,
}

impl Exchange {
    /// A failed call as the Java SDK (v1) words it and Step Functions reports it: error
    /// `<Prefix>.<ExceptionClass>`, cause `<message> (Service: …; Status Code: …; Error
    /// Code: …; Request ID: …; Proxy: null)`.
    fn error(&self, error: &str, message: &str, service: &str, status: u16, code: &str) -> TaskError {
        TaskError::new(
            error,
            format!(
                "{message} (Service: {service}; Status Code: {status}; Error Code: {code}; Request ID: {}; Proxy: null)",
                self.request_id
            ),
        )
    }

    /// `SdkHttpMetadata`: `AllHttpHeaders` in the service's order, each value a one-element
    /// list; `HttpHeaders` sorted case-insensitively (the SDK's `TreeMap`), each value a
    /// string; the status code.
    fn http_metadata(&self, headers: &[(&str, &str)], status: u16) -> Json {
        let mut all = Map::new();
        for (k, v) in headers {
            all.insert((*k).to_owned(), json!([v]));
        }
        let mut sorted = headers.to_vec();
        sorted.sort_by_key(|(k, _)| k.to_ascii_lowercase());
        let mut flat = Map::new();
        for (k, v) in sorted {
            flat.insert(k.to_owned(), Json::from(v));
        }
        json!({"AllHttpHeaders": all, "HttpHeaders": flat, "HttpStatusCode": status})
    }

    fn response_metadata(&self) -> Json {
        json!({"RequestId": self.request_id})
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An HTTP `Date` (RFC 9110's IMF-fixdate).
fn http_date(nanos: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(nanos))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The compact JSON text AWS writes for a value (the engine's serialiser: no spaces, Java's
/// doubles).
fn compact(v: &Json) -> String {
    let bump = bumpalo::Bump::new();
    crate::value::Value::from_serde(&bump, v).to_json_string()
}

/// A message parameter as text: a string as it is, any other value serialised; absent and
/// `null` are `None`.
fn text(v: Option<&Json>) -> Option<String> {
    match v {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(other) => Some(compact(other)),
    }
}

/// Runs a store call (durable on return: it may wait for a disk) off the async worker when
/// there is a tokio runtime, inline otherwise.
async fn offload<T, F>(f: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => match rt.spawn_blocking(f).await {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a store call was cancelled (the runtime is shutting down): {e}"),
        },
        Err(_) => f(),
    }
}
