//! Hexadecimal text for `--hex`: `68656c6c6f` ↔ `hello`.

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The bytes of a hex string; spaces are ignored.
///
/// # Errors
/// An odd number of digits or a character that is not a hex digit.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(format!("hex {text:?} has an odd number of digits"));
    }
    digits
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
                .ok_or_else(|| {
                    format!(
                        "hex {text:?}: {:?} is not a hex byte",
                        String::from_utf8_lossy(p)
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        assert_eq!(super::encode(b"hi\0"), "686900");
        assert_eq!(super::decode("68 69 00").unwrap(), b"hi\0");
        assert!(super::decode("6").is_err());
        assert!(super::decode("zz").is_err());
    }
}
