//! The canonical string form of an endpoint.

use std::fmt;

use super::options::format_duration;
use super::{Endpoint, Options, Scheme};

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scheme {
            Scheme::Tcp | Scheme::Nats => write!(f, "{}://{}", self.scheme, self.address)?,
            s => write!(f, "{s}:{}", self.address)?,
        }
        let o = &self.options;
        let d = Options::default();
        let mut sep = '?';
        let mut opt = |f: &mut fmt::Formatter<'_>, k: &str, v: String| {
            let r = write!(f, "{sep}{k}={v}");
            sep = '&';
            r
        };
        if let Some(c) = o.capacity {
            opt(f, "capacity", c.to_string())?;
        }
        if o.max_message_size != d.max_message_size {
            opt(f, "max_message_size", o.max_message_size.to_string())?;
        }
        if o.mode != d.mode {
            opt(f, "mode", format!("{:04o}", o.mode))?;
        }
        if !o.allow_uid.is_empty() {
            let uids: Vec<String> = o.allow_uid.iter().map(u32::to_string).collect();
            opt(f, "allow_uid", uids.join(","))?;
        }
        if o.connect_timeout != d.connect_timeout {
            opt(f, "connect_timeout", format_duration(o.connect_timeout))?;
        }
        if o.wait_for_listener != d.wait_for_listener {
            opt(f, "wait_for_listener", format_duration(o.wait_for_listener))?;
        }
        if let Some(h) = o.heartbeat {
            opt(f, "heartbeat", format_duration(h))?;
        }
        if let Some(w) = o.wait {
            opt(f, "wait", w.as_str().to_string())?;
        }
        if let Some(s) = o.spin_us {
            opt(f, "spin_us", s.to_string())?;
        }
        if o.pattern != d.pattern {
            opt(f, "pattern", o.pattern.as_str().to_string())?;
        }
        if let Some(r) = o.replicas {
            opt(f, "replicas", r.to_string())?;
        }
        if let Some(w) = o.ack_wait {
            opt(f, "ack_wait", format_duration(w))?;
        }
        if let Some(b) = o.max_bytes {
            opt(f, "max_bytes", b.to_string())?;
        }
        if let Some(c) = &o.creds {
            opt(f, "creds", c.clone())?;
        }
        if let Some(k) = &o.nkey {
            opt(f, "nkey", k.clone())?;
        }
        if let Some(u) = &o.user {
            opt(f, "user", u.clone())?;
        }
        if let Some(p) = &o.password_file {
            opt(f, "password_file", p.clone())?;
        }
        if o.tls {
            opt(f, "tls", "required".into())?;
        }
        if let Some(c) = &o.tls_ca {
            opt(f, "tls_ca", c.clone())?;
        }
        Ok(())
    }
}
