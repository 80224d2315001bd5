//! Key material. Redacted in every rendering (Debug, Display, Serialize) unless the caller
//! explicitly reveals secrets for the duration of one rendering (`--show-keys`). The bytes are
//! zeroed when dropped, so a key no longer used does not linger in freed memory (a core dump,
//! were one allowed, or memory reused by the allocator).

use serde::{Deserialize, Serialize, Serializer};
use std::cell::Cell;
use std::fmt;
use zeroize::Zeroize;

pub const REDACTED: &str = "redacted";

thread_local! {
    static REVEAL: Cell<bool> = const { Cell::new(false) };
}

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }
    /// The bytes, for code that uses the key (decryption); never for printing.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    pub fn len_bits(&self) -> usize {
        self.0.len() * 8
    }
    fn render(&self) -> String {
        if REVEAL.with(Cell::get) {
            let mut s = String::from("0x");
            for b in &self.0 {
                s.push_str(&format!("{b:02x}"));
            }
            s
        } else {
            REDACTED.to_string()
        }
    }
}

/// Run `f` with secrets rendered in clear on this thread, restoring redaction afterwards
/// even if `f` panics.
pub fn reveal_secrets<T>(reveal: bool, f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            REVEAL.with(|r| r.set(self.0));
        }
    }
    let _restore = Restore(REVEAL.with(|r| r.replace(reveal)));
    f()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs and panics: never reveal there.
        write!(f, "Secret({} bits, {REDACTED})", self.len_bits())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.render())
    }
}

/// A recorded snapshot holds either the key (`--show-keys`) or the redaction marker; the
/// latter reads back as an empty key (nothing to decrypt with), never as the marker's bytes.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The hex text is the key too: zeroed once decoded.
        let text = zeroize::Zeroizing::new(String::deserialize(d)?);
        let Some(hex) = text.strip_prefix("0x") else {
            return Ok(Secret::default());
        };
        let mut bytes = Secret(Vec::with_capacity(hex.len() / 2));
        for i in (0..hex.len()).step_by(2) {
            match hex
                .get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
            {
                Some(b) => bytes.0.push(b),
                None => return Err(serde::de::Error::custom("key is not hex")),
            }
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_unless_revealed() {
        let k = Secret::new(vec![0xd5, 0x28, 0xe7]);
        assert_eq!(k.to_string(), "redacted");
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"redacted\"");
        assert_eq!(reveal_secrets(true, || k.to_string()), "0xd528e7");
        assert_eq!(
            k.to_string(),
            "redacted",
            "reveal must not outlive its scope"
        );
        assert!(!format!("{k:?}").contains("d528"));
        assert!(!reveal_secrets(true, || format!("{k:?}")).contains("d528"));
    }

    #[test]
    fn read_back_from_hex_and_the_marker() {
        let k: Secret = serde_json::from_str("\"0xd528e7\"").unwrap();
        assert_eq!(k.expose(), [0xd5, 0x28, 0xe7]);
        let r: Secret = serde_json::from_str("\"redacted\"").unwrap();
        assert!(r.expose().is_empty());
        assert!(serde_json::from_str::<Secret>("\"0xd5z\"").is_err());
    }
}
