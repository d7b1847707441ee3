//! Serde-mode messages: postcard encoding into a caller's buffer and
//! whole-message decoding.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

struct AppendTo<'a> {
    buf: &'a mut Vec<u8>,
}

impl ::postcard::ser_flavors::Flavor for AppendTo<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> ::postcard::Result<()> {
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> ::postcard::Result<()> {
        self.buf.push(data);
        Ok(())
    }

    fn finalize(self) -> ::postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value` encoded with postcard to `buf`; on error `buf` is left as
/// it was. What derived serde-mode messages call.
///
/// # Errors
/// [`Error::Encode`] naming `type_name` when serde refuses the value.
pub fn postcard_encode<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
    type_name: &'static str,
) -> Result<()> {
    let start = buf.len();
    ::postcard::serialize_with_flavor(value, AppendTo { buf: &mut *buf }).map_err(|e| {
        buf.truncate(start);
        Error::Encode {
            type_name,
            reason: e.to_string(),
        }
    })
}

/// Decodes a whole postcard message into a `T`.
///
/// # Errors
/// [`Error::Decode`] naming `type_name` when the bytes end early, do not
/// match the type, or have bytes left over after the message.
pub fn postcard_decode<T: DeserializeOwned>(bytes: &[u8], type_name: &'static str) -> Result<T> {
    match ::postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(Error::Decode {
            type_name,
            reason: format!(
                "{} bytes left over after the message's {} bytes",
                rest.len(),
                bytes.len() - rest.len()
            ),
        }),
        Err(e) => Err(Error::Decode {
            type_name,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcard_appends_and_rejects_garbage() {
        let mut buf = vec![9];
        postcard_encode(&(1u32, String::from("x")), &mut buf, "t").unwrap();
        assert_eq!(buf[0], 9);
        let v: (u32, String) = postcard_decode(&buf[1..], "t").unwrap();
        assert_eq!(v, (1, "x".into()));
        assert!(matches!(
            postcard_decode::<(u32, String)>(&buf[1..buf.len() - 1], "t"),
            Err(Error::Decode { type_name: "t", .. })
        ));
        assert!(matches!(
            postcard_decode::<u8>(&[1, 2], "t"),
            Err(Error::Decode { type_name: "t", .. })
        ));
    }
}
