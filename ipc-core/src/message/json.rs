//! [`Json`]: a `serde_json::Value` as a message field.

use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::fingerprint::{FINGERPRINT_SCHEME, Fnv64, TypeFingerprint};

/// A [`serde_json::Value`] that can be a message field: sent as its JSON
/// text (feature `serde_json`).
///
/// A bare `Value` cannot be: postcard is not self-describing, and `Value`'s
/// `Deserialize` asks the format what comes next, which postcard refuses, so
/// every message holding one would fail to decode. `Json` encodes the value
/// as a string and parses it on receipt (in human-readable formats such as
/// TOML or JSON it is the plain value). Its fingerprint is "JSON text": the
/// handshake knows nothing of the value's shape.
///
/// ```
/// use ipc_core::message::{IpcMessage, Json};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
/// struct Event {
///     kind: String,
///     payload: Json,
/// }
///
/// let event = Event { kind: "login".into(), payload: Json(serde_json::json!({"user": 7})) };
/// let mut buf = Vec::new();
/// event.encode(&mut buf).unwrap();
/// assert_eq!(Event::decode(&buf).unwrap(), event);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Json(pub serde_json::Value);

impl TypeFingerprint for Json {
    const TYPE_FINGERPRINT: u64 = Fnv64::new()
        .str(FINGERPRINT_SCHEME)
        .str("json_text")
        .finish();
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            return self.0.serialize(serializer);
        }
        let text = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        if deserializer.is_human_readable() {
            return serde_json::Value::deserialize(deserializer).map(Json);
        }
        let text = String::deserialize(deserializer)?;
        serde_json::from_str(&text)
            .map(Json)
            .map_err(serde::de::Error::custom)
    }
}

impl From<serde_json::Value> for Json {
    fn from(value: serde_json::Value) -> Json {
        Json(value)
    }
}

impl From<Json> for serde_json::Value {
    fn from(json: Json) -> serde_json::Value {
        json.0
    }
}

impl Deref for Json {
    type Target = serde_json::Value;
    fn deref(&self) -> &serde_json::Value {
        &self.0
    }
}

impl DerefMut for Json {
    fn deref_mut(&mut self) -> &mut serde_json::Value {
        &mut self.0
    }
}
