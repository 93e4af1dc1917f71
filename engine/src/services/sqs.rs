//! `sqs:sendMessage` (and `.waitForTaskToken`): appends the message to a queue of the store.
//!
//! Input: the task's parameters (`QueueUrl`, `MessageBody`, `MessageAttributes`,
//! `DelaySeconds`, `MessageGroupId`, `MessageDeduplicationId`). Output: SendMessage's response
//! as Step Functions returns it over the JSON protocol, or SQS's error.
//! Never touches: other queues, the message once stored (receiving is the embedder's).

use md5::{Digest, Md5};
use serde_json::{Map, Value as Json};

use super::{offload, text, Exchange, Services, MAX_MESSAGE_BYTES};
use crate::handlers::TaskError;
use crate::store::{QueueMessage, StoreError};

/// SQS's limit on attributes per message.
const MAX_ATTRIBUTES: usize = 10;
/// SQS's `DelaySeconds` range is 0..=900.
const MAX_DELAY_SECONDS: i64 = 900;

pub(super) async fn send_message(s: &Services, params: Json) -> Result<Json, TaskError> {
    let ex = s.exchange();
    let queue_url = match params.get("QueueUrl") {
        None | Some(Json::Null) => return Err(missing(&ex, "QueueUrl")),
        Some(Json::String(u)) => u.clone(),
        Some(_) => return Err(invalid(&ex, "Invalid value for the parameter QueueUrl.")),
    };
    // A string is sent as it is; any other value as its compact JSON, as AWS does.
    let body = match text(params.get("MessageBody")) {
        Some(b) if !b.is_empty() => b,
        _ => return Err(missing(&ex, "MessageBody")),
    };
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(invalid(
            &ex,
            &format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {MAX_MESSAGE_BYTES} bytes."
            ),
        ));
    }
    match params.get("DelaySeconds") {
        None | Some(Json::Null) => {}
        Some(d) => match d.as_i64() {
            Some(n) if (0..=MAX_DELAY_SECONDS).contains(&n) => {}
            _ => {
                return Err(invalid(
                    &ex,
                    &format!(
                        "Value {} for parameter DelaySeconds is invalid. Reason: must be between 0 and {MAX_DELAY_SECONDS}, if provided.",
                        super::compact(d)
                    ),
                ))
            }
        },
    }
    let attributes = match params.get("MessageAttributes") {
        None | Some(Json::Null) => None,
        Some(Json::Object(m)) if m.is_empty() => None,
        Some(Json::Object(m)) => Some(m),
        Some(_) => return Err(invalid(&ex, "Invalid value for the parameter MessageAttributes.")),
    };
    let md5_of_attributes = attributes.map(|a| md5_of_attributes(&ex, a)).transpose()?;

    let message = QueueMessage {
        message_id: super::uuid(),
        md5_of_body: hex::encode(Md5::digest(body.as_bytes())),
        body,
        attributes: attributes.map(|a| super::compact(&Json::Object(a.clone()))),
        sent_at: ex.now,
    };
    let name = queue_name(&queue_url).to_owned();
    let store = s.store.clone();
    let (sent, message) = offload(move || (store.send_message(&name, &message), message)).await;
    match sent {
        Ok(()) => {}
        Err(StoreError::NoSuchQueue(_)) => {
            return Err(ex.error(
                "SQS.QueueDoesNotExistException",
                "The specified queue does not exist.",
                "AmazonSQS",
                400,
                "AWS.SimpleQueueService.NonExistentQueue",
            ))
        }
        Err(e) => return Err(ex.error("SQS.AmazonSQSException", &e.to_string(), "AmazonSQS", 500, "InternalError")),
    }

    // The JSON body SQS answers with: its length is the Content-Length AWS reports (106
    // bytes, 166 with attributes).
    let mut body = Map::new();
    if let Some(md5) = &md5_of_attributes {
        body.insert("MD5OfMessageAttributes".into(), Json::from(md5.as_str()));
    }
    body.insert("MD5OfMessageBody".into(), Json::from(message.md5_of_body.as_str()));
    body.insert("MessageId".into(), Json::from(message.message_id.as_str()));
    let length = super::compact(&Json::Object(body.clone())).len().to_string();
    let headers = [
        ("x-amzn-RequestId", ex.request_id.as_str()),
        ("connection", "keep-alive"),
        ("Content-Length", length.as_str()),
        ("Date", ex.date.as_str()),
        ("Content-Type", "application/x-amz-json-1.0"),
    ];
    body.insert("SdkHttpMetadata".into(), ex.http_metadata(&headers, 200));
    body.insert("SdkResponseMetadata".into(), ex.response_metadata());
    Ok(Json::Object(body))
}

/// The queue a `QueueUrl` names: its last path segment
/// (`https://sqs.us-east-1.amazonaws.com/123456789012/Orders` → `Orders`), or the whole
/// string when it is a bare name.
pub(super) fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

/// Recorded: `The request must contain the parameter MessageBody. (Service: AmazonSQS;
/// Status Code: 400; Error Code: MissingParameter; …)`.
fn missing(ex: &Exchange, parameter: &str) -> TaskError {
    ex.error(
        "SQS.AmazonSQSException",
        &format!("The request must contain the parameter {parameter}."),
        "AmazonSQS",
        400,
        "MissingParameter",
    )
}

fn invalid(ex: &Exchange, message: &str) -> TaskError {
    ex.error("SQS.AmazonSQSException", message, "AmazonSQS", 400, "InvalidParameterValue")
}

/// `MD5OfMessageAttributes` by SQS's algorithm: for each attribute in name order, the name,
/// the data type and the value, each as a 4-byte big-endian length and its bytes, with a
/// transport byte (1 for String/Number, 2 for Binary) before the value.
fn md5_of_attributes(ex: &Exchange, attributes: &Map<String, Json>) -> Result<String, TaskError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(invalid(
            ex,
            &format!(
                "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
                attributes.len()
            ),
        ));
    }
    let mut names: Vec<&String> = attributes.keys().collect();
    names.sort();
    let mut encoded = Vec::new();
    for name in names {
        let attr = &attributes[name];
        let data_type = match attr.get("DataType").and_then(Json::as_str) {
            Some(t) if !t.is_empty() => t,
            _ => {
                return Err(invalid(
                    ex,
                    &format!("The message attribute '{name}' must contain non-empty message attribute type."),
                ))
            }
        };
        let empty_value = || {
            invalid(
                ex,
                &format!(
                    "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{data_type}'."
                ),
            )
        };
        let (transport, value) = if data_type.starts_with("String") || data_type.starts_with("Number") {
            match attr.get("StringValue").and_then(Json::as_str) {
                Some(v) if !v.is_empty() => (1u8, v.as_bytes().to_vec()),
                _ => return Err(empty_value()),
            }
        } else if data_type.starts_with("Binary") {
            use base64::Engine;
            match attr
                .get("BinaryValue")
                .and_then(Json::as_str)
                .map(|v| base64::engine::general_purpose::STANDARD.decode(v))
            {
                Some(Ok(v)) if !v.is_empty() => (2u8, v),
                _ => return Err(empty_value()),
            }
        } else {
            return Err(invalid(
                ex,
                &format!(
                    "The type of message attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
                ),
            ));
        };
        encoded.push((name.as_bytes(), data_type.as_bytes(), transport, value));
    }
    let mut md5 = Md5::new();
    let field = |md5: &mut Md5, bytes: &[u8]| {
        md5.update((bytes.len() as u32).to_be_bytes());
        md5.update(bytes);
    };
    for (name, data_type, transport, value) in &encoded {
        field(&mut md5, name);
        field(&mut md5, data_type);
        md5.update([*transport]);
        field(&mut md5, value);
    }
    Ok(hex::encode(md5.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queue_names() {
        assert_eq!(
            queue_name("https://sqs.us-east-1.amazonaws.com/123456789012/Checkpoint-SQSQueue"),
            "Checkpoint-SQSQueue"
        );
        assert_eq!(queue_name("https://sqs.us-east-1.amazonaws.com/123456789012/q/"), "q");
        assert_eq!(queue_name("orders"), "orders");
    }

    #[test]
    fn attributes_digest_follows_the_sqs_algorithm() {
        let ex = Exchange { request_id: "r".into(), date: String::new(), now: 0 };
        let attrs =
            json!({"b": {"DataType": "String", "StringValue": "x"}, "a": {"DataType": "Number", "StringValue": "1"}});
        // The same bytes, encoded by hand in name order.
        let mut bytes = Vec::new();
        for (name, ty, value) in [("a", "Number", "1"), ("b", "String", "x")] {
            for part in [name, ty] {
                bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
                bytes.extend_from_slice(part.as_bytes());
            }
            bytes.push(1);
            bytes.extend_from_slice(&(value.len() as u32).to_be_bytes());
            bytes.extend_from_slice(value.as_bytes());
        }
        assert_eq!(md5_of_attributes(&ex, attrs.as_object().unwrap()).unwrap(), hex::encode(Md5::digest(&bytes)));
    }
}
