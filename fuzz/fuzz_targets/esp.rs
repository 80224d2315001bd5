//! Any bytes as an ESP packet under every supported cipher shape: decryption never panics and
//! never returns plaintext without a verified ICV (random bytes almost never verify; when the
//! fuzzer builds a valid one, the payload must fit in the input).
#![no_main]
use hopscope::decode::esp::{EspCipher, HmacHash, open};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, esp)) = data.split_first() else {
        return;
    };
    let key = [0x5au8; 36];
    let c = match sel % 8 {
        0 => EspCipher::gcm(&key[..20], 16),
        1 => EspCipher::gcm(&key[..28], 12),
        2 => EspCipher::gcm(&key[..36], 8),
        3 => EspCipher::cbc_hmac(&key[..16], HmacHash::Sha1, &key[..20], 12),
        4 => EspCipher::cbc_hmac(&key[..32], HmacHash::Sha256, &key[..32], 16),
        5 => EspCipher::cbc_hmac(&key[..24], HmacHash::Sha512, &key[..32], 32),
        6 => EspCipher::gcm(&key[..20], 4),
        _ => EspCipher::gcm(&key[..19], 16),
    };
    let Ok(c) = c else { return };
    if let Ok(o) = open(&c, esp, (sel & 0x80 != 0).then_some(sel.into())) {
        assert!(o.payload.len() <= esp.len());
    }
});
