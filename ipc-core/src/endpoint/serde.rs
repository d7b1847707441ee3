//! serde support: an endpoint is written as its string, and read from the
//! string or from a table whose keys are the option names.

use std::fmt;

use ::serde::de::{self, MapAccess, Visitor};
use ::serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Endpoint, EndpointError};

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Endpoint, D::Error> {
        deserializer.deserialize_any(EndpointVisitor)
    }
}

struct EndpointVisitor;

impl<'de> Visitor<'de> for EndpointVisitor {
    type Value = Endpoint;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an endpoint string such as \"shm:/orders\" or a table with transport and name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Endpoint, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Endpoint, A::Error> {
        let t = TableForm::deserialize(de::value::MapAccessDeserializer::new(map))?;
        t.into_endpoint().map_err(de::Error::custom)
    }
}

/// A scalar that may be written as a number or a string in a config file.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(u64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Int(n) => n.to_string(),
            Scalar::Str(s) => s.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableForm {
    transport: String,
    #[serde(default)]
    name: String,
    max_message_size: Option<Scalar>,
    mode: Option<Scalar>,
    allow_uid: Option<UidList>,
    connect_timeout: Option<Scalar>,
    wait_for_listener: Option<Scalar>,
    heartbeat: Option<Scalar>,
    capacity: Option<Scalar>,
    wait: Option<String>,
    spin_us: Option<Scalar>,
    pattern: Option<String>,
    replicas: Option<Scalar>,
    ack_wait: Option<Scalar>,
    max_bytes: Option<Scalar>,
    creds: Option<String>,
    nkey: Option<String>,
    user: Option<String>,
    password_file: Option<String>,
    tls: Option<String>,
    tls_ca: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum UidList {
    One(u32),
    Many(Vec<u32>),
    Text(String),
}

impl TableForm {
    /// Rebuilds the string form and parses it, so both forms share one
    /// validator and one set of error messages.
    fn into_endpoint(self) -> Result<Endpoint, EndpointError> {
        let mut s = if matches!(self.transport.as_str(), "tcp" | "nats") {
            format!("{}://{}", self.transport, self.name)
        } else {
            format!("{}:{}", self.transport, self.name)
        };
        let mut q = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push(format!("{k}={v}"));
            }
        };
        push("max_message_size", self.max_message_size.map(|v| v.text()));
        // A TOML/JSON number is decimal: 600 means 0600 only as a string.
        push(
            "mode",
            self.mode.map(|v| match v {
                Scalar::Int(n) => format!("{n:o}"),
                Scalar::Str(s) => s,
            }),
        );
        push(
            "allow_uid",
            self.allow_uid.map(|u| match u {
                UidList::One(n) => n.to_string(),
                UidList::Many(v) => v.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                UidList::Text(s) => s,
            }),
        );
        push("connect_timeout", self.connect_timeout.map(|v| v.text()));
        push(
            "wait_for_listener",
            self.wait_for_listener.map(|v| v.text()),
        );
        push("heartbeat", self.heartbeat.map(|v| v.text()));
        push("capacity", self.capacity.map(|v| v.text()));
        push("wait", self.wait);
        push("spin_us", self.spin_us.map(|v| v.text()));
        push("pattern", self.pattern);
        push("replicas", self.replicas.map(|v| v.text()));
        push("ack_wait", self.ack_wait.map(|v| v.text()));
        push("max_bytes", self.max_bytes.map(|v| v.text()));
        push("creds", self.creds);
        push("nkey", self.nkey);
        push("user", self.user);
        push("password_file", self.password_file);
        push("tls", self.tls);
        push("tls_ca", self.tls_ca);
        if !q.is_empty() {
            s.push('?');
            s.push_str(&q.join("&"));
        }
        s.parse()
    }
}
