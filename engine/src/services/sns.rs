//! `sns:publish` (and `.waitForTaskToken`): appends the message to a topic's log in the store.
//!
//! Input: the task's parameters (`TopicArn` or `TargetArn`, `Message`, `Subject`,
//! `MessageAttributes`, `MessageStructure`, `MessageGroupId`, `MessageDeduplicationId`).
//! Output: Publish's response as Step Functions returns it over the query protocol, or SNS's
//! error. Never touches: subscriptions (there are none: readers page through the topic's log).

use serde_json::{json, Value as Json};

use super::{offload, text, Exchange, Services, MAX_MESSAGE_BYTES};
use crate::handlers::TaskError;
use crate::store::{StoreError, TopicMessage};

pub(super) async fn publish(s: &Services, params: Json) -> Result<Json, TaskError> {
    let ex = s.exchange();
    // TopicArn wins when both are given.
    let arn = match (params.get("TopicArn"), params.get("TargetArn")) {
        (Some(Json::String(a)), _) | (None | Some(Json::Null), Some(Json::String(a))) => a.clone(),
        _ => return Err(invalid(&ex, "TopicArn or TargetArn Reason: no value for required parameter")),
    };
    let message = match text(params.get("Message")) {
        Some(m) => m,
        None => {
            return Err(ex.error(
                "SNS.AmazonSNSException",
                "1 validation error detected: Value null at 'message' failed to satisfy constraint: Member must not be null",
                "AmazonSNS",
                400,
                "ValidationError",
            ))
        }
    };
    if message.is_empty() {
        return Err(invalid(&ex, "Empty message"));
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(invalid(&ex, "Message too long"));
    }
    if params.get("MessageStructure").and_then(Json::as_str) == Some("json") {
        match serde_json::from_str::<Json>(&message) {
            Ok(Json::Object(m)) if m.get("default").is_some_and(Json::is_string) => {}
            Ok(_) => return Err(invalid(&ex, "Message Structure - No default entry in JSON message body")),
            Err(_) => return Err(invalid(&ex, "Message Structure - JSON message body failed to parse")),
        }
    }
    let attributes = match params.get("MessageAttributes") {
        None | Some(Json::Null) => None,
        Some(Json::Object(m)) if m.is_empty() => None,
        Some(a @ Json::Object(_)) => Some(super::compact(a)),
        Some(_) => return Err(invalid(&ex, "MessageAttributes")),
    };
    let published = TopicMessage {
        message_id: super::uuid(),
        message,
        subject: text(params.get("Subject")),
        attributes,
        published_at: ex.now,
    };
    let message_id = published.message_id.clone();
    let name = topic_name(&arn).to_owned();
    let store = s.store.clone();
    match offload(move || store.publish(&name, &published)).await {
        Ok(_) => {}
        Err(StoreError::NoSuchTopic(_)) => {
            return Err(ex.error("SNS.NotFoundException", "Topic does not exist", "AmazonSNS", 404, "NotFound"))
        }
        Err(e) => return Err(ex.error("SNS.AmazonSNSException", &e.to_string(), "AmazonSNS", 500, "InternalError")),
    }

    // The XML body SNS answers with: its length is the Content-Length AWS reports (294 bytes).
    let body = format!(
        "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\n  <PublishResult>\n    \
         <MessageId>{message_id}</MessageId>\n  </PublishResult>\n  <ResponseMetadata>\n    \
         <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</PublishResponse>\n",
        ex.request_id
    );
    let length = body.len().to_string();
    let headers = [
        ("x-amzn-RequestId", ex.request_id.as_str()),
        ("connection", "keep-alive"),
        ("Content-Length", length.as_str()),
        ("Date", ex.date.as_str()),
        ("Content-Type", "text/xml"),
    ];
    Ok(json!({
        "MessageId": message_id,
        "SdkHttpMetadata": ex.http_metadata(&headers, 200),
        "SdkResponseMetadata": ex.response_metadata(),
    }))
}

/// The topic an ARN names: its last `:` segment
/// (`arn:aws:sns:us-east-1:123456789012:Orders` → `Orders`).
pub(super) fn topic_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or("")
}

/// Recorded: `Invalid parameter: The MessageGroupId parameter is required for FIFO topics
/// (Service: AmazonSNS; Status Code: 400; Error Code: InvalidParameter; …)`.
fn invalid(ex: &Exchange, what: &str) -> TaskError {
    ex.error(
        "SNS.InvalidParameterException",
        &format!("Invalid parameter: {what}"),
        "AmazonSNS",
        400,
        "InvalidParameter",
    )
}
