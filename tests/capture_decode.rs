//! Property tests of the pure decoders: ESP sealed by the RustCrypto crates (aes-gcm for
//! rfc4106 with every key size and ICV length; aes + hmac for cbc(aes)+hmac) is opened by ours;
//! any bit flipped is an authentication failure; arbitrary bytes never panic any decoder.
//! (cargo-fuzz targets for the same decoders live in fuzz/; this runs on stable in every
//! `cargo test`.)

use aes_gcm::aead::consts::{U8, U12, U16};
use aes_gcm::{AeadInOut, AesGcm, KeyInit};
use hmac::Mac;
use hopscope::capture::analyze::{Analyzer, Decrypt, Ts};
use hopscope::decode::esp::{EspCipher, HmacHash, OpenError, open};
use hopscope::decode::packet::{LinkType, Transport, decode};
use proptest::prelude::*;

/// ESP trailer: payload ‖ 1,2,3.. padding ‖ pad length ‖ next header, padded to `block`.
fn with_trailer(payload: &[u8], next: u8, block: usize) -> Vec<u8> {
    let mut pt = payload.to_vec();
    let pad = (block - (pt.len() + 2) % block) % block;
    pt.extend((1..=pad as u8).collect::<Vec<_>>());
    pt.extend([pad as u8, next]);
    pt
}

macro_rules! gcm_seal {
    ($aes:ty, $tag:ty, $key:expr, $nonce:expr, $aad:expr, $buf:expr) => {{
        let c = AesGcm::<$aes, U12, $tag>::new_from_slice($key).unwrap();
        let nonce = <&aes_gcm::Nonce<U12>>::try_from(&$nonce[..]).unwrap();
        c.encrypt_inout_detached(nonce, $aad, $buf.into())
            .unwrap()
            .to_vec()
    }};
}

/// rfc4106 as the kernel does it, with the aes-gcm crate: key = AES key ‖ 4-byte salt.
fn seal_gcm(
    key: &[u8],
    icv: usize,
    spi: u32,
    seq: u32,
    iv: [u8; 8],
    next: u8,
    payload: &[u8],
) -> Vec<u8> {
    let (k, salt) = key.split_at(key.len() - 4);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&iv);
    let mut aad = spi.to_be_bytes().to_vec();
    aad.extend(seq.to_be_bytes());
    let mut pt = with_trailer(payload, next, 4);
    let buf = pt.as_mut_slice();
    let tag = match (k.len(), icv) {
        (16, 16) => gcm_seal!(aes::Aes128, U16, k, nonce, &aad, buf),
        (16, 12) => gcm_seal!(aes::Aes128, U12, k, nonce, &aad, buf),
        (16, 8) => gcm_seal!(aes::Aes128, U8, k, nonce, &aad, buf),
        (24, 16) => gcm_seal!(aes::Aes192, U16, k, nonce, &aad, buf),
        (24, 12) => gcm_seal!(aes::Aes192, U12, k, nonce, &aad, buf),
        (24, 8) => gcm_seal!(aes::Aes192, U8, k, nonce, &aad, buf),
        (32, 16) => gcm_seal!(aes::Aes256, U16, k, nonce, &aad, buf),
        (32, 12) => gcm_seal!(aes::Aes256, U12, k, nonce, &aad, buf),
        (32, 8) => gcm_seal!(aes::Aes256, U8, k, nonce, &aad, buf),
        _ => unreachable!(),
    };
    let mut out = aad;
    out.extend(iv);
    out.extend(pt);
    out.extend(tag);
    out
}

/// cbc(aes) + hmac, encrypt-then-MAC, with the aes and hmac crates (flat arguments, one per ESP field).
#[allow(clippy::too_many_arguments)]
fn seal_cbc(
    enc: &[u8],
    hash: HmacHash,
    auth: &[u8],
    icv: usize,
    spi: u32,
    seq: u32,
    iv: [u8; 16],
    payload: &[u8],
) -> Vec<u8> {
    use aes::cipher::BlockCipherEncrypt;
    let mut pt = with_trailer(payload, 4, 16);
    let mut prev = iv;
    for chunk in pt.chunks_exact_mut(16) {
        for (b, p) in chunk.iter_mut().zip(prev) {
            *b ^= p;
        }
        let block = <&mut aes::Block>::try_from(&mut *chunk).unwrap();
        match enc.len() {
            16 => aes::Aes128::new_from_slice(enc)
                .unwrap()
                .encrypt_block(block),
            24 => aes::Aes192::new_from_slice(enc)
                .unwrap()
                .encrypt_block(block),
            _ => aes::Aes256::new_from_slice(enc)
                .unwrap()
                .encrypt_block(block),
        }
        prev.copy_from_slice(chunk);
    }
    let mut out = spi.to_be_bytes().to_vec();
    out.extend(seq.to_be_bytes());
    out.extend(iv);
    out.extend(pt);
    let mac = match hash {
        HmacHash::Sha1 => {
            let mut m = <hmac::Hmac<sha1::Sha1> as KeyInit>::new_from_slice(auth).unwrap();
            m.update(&out);
            m.finalize().into_bytes().to_vec()
        }
        HmacHash::Sha256 => {
            let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(auth).unwrap();
            m.update(&out);
            m.finalize().into_bytes().to_vec()
        }
        HmacHash::Sha384 => {
            let mut m = <hmac::Hmac<sha2::Sha384> as KeyInit>::new_from_slice(auth).unwrap();
            m.update(&out);
            m.finalize().into_bytes().to_vec()
        }
        HmacHash::Sha512 => {
            let mut m = <hmac::Hmac<sha2::Sha512> as KeyInit>::new_from_slice(auth).unwrap();
            m.update(&out);
            m.finalize().into_bytes().to_vec()
        }
    };
    out.extend(&mac[..icv]);
    out
}

fn key_len() -> impl Strategy<Value = usize> {
    prop_oneof![Just(20usize), Just(28), Just(36)]
}

fn icv_len() -> impl Strategy<Value = usize> {
    prop_oneof![Just(8usize), Just(12), Just(16)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn gcm_sealed_by_aes_gcm_opens(
        klen in key_len(), icv in icv_len(),
        key in proptest::collection::vec(any::<u8>(), 36),
        spi in any::<u32>(), seq in any::<u32>(), iv in any::<[u8; 8]>(),
        next in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let key = &key[..klen];
        let esp = seal_gcm(key, icv, spi, seq, iv, next, &payload);
        prop_assert_eq!(esp.len(), 8 + 8 + (payload.len() + 2).div_ceil(4) * 4 + icv);
        let c = EspCipher::gcm(key, icv).unwrap();
        let o = open(&c, &esp, None).unwrap();
        prop_assert_eq!(o.next_header, next);
        prop_assert_eq!(&o.payload, &payload);
    }

    #[test]
    fn gcm_any_flipped_bit_fails_auth(
        key in proptest::collection::vec(any::<u8>(), 20),
        payload in proptest::collection::vec(any::<u8>(), 0..120),
        pos in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let mut esp = seal_gcm(&key, 16, 3, 7, [9; 8], 4, &payload);
        let i = pos.index(esp.len());
        esp[i] ^= 1 << bit;
        let c = EspCipher::gcm(&key, 16).unwrap();
        prop_assert_eq!(open(&c, &esp, None), Err(OpenError::AuthFailed));
    }

    #[test]
    fn cbc_hmac_sealed_by_rustcrypto_opens(
        enc_len in prop_oneof![Just(16usize), Just(24), Just(32)],
        h in 0usize..4,
        key in proptest::collection::vec(any::<u8>(), 64),
        iv in any::<[u8; 16]>(), seq in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        flip in proptest::option::of((any::<prop::sample::Index>(), 0u8..8)),
    ) {
        let (hash, icv) = [(HmacHash::Sha1, 12), (HmacHash::Sha256, 16), (HmacHash::Sha384, 24), (HmacHash::Sha512, 32)][h];
        let (enc, auth) = key.split_at(enc_len);
        let mut esp = seal_cbc(enc, hash, auth, icv, 0x1234, seq, iv, &payload);
        let c = EspCipher::cbc_hmac(enc, hash, auth, icv).unwrap();
        match flip {
            None => {
                let o = open(&c, &esp, None).unwrap();
                prop_assert_eq!(o.next_header, 4);
                prop_assert_eq!(&o.payload, &payload);
            }
            Some((pos, bit)) => {
                let i = pos.index(esp.len());
                esp[i] ^= 1 << bit;
                prop_assert_eq!(open(&c, &esp, None), Err(OpenError::AuthFailed));
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(sel in 0u8..5, data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let link = [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2, LinkType::RawIp, LinkType::Other(147)][sel as usize];
        let d = decode(link, &data);
        for r in [&d.ip_range, &d.esp_range].into_iter().flatten() {
            prop_assert!(r.start <= r.end && r.end <= data.len());
        }
        let c = EspCipher::gcm(&[7u8; 20], 16).unwrap();
        let _ = open(&c, &data, None);
        let c = EspCipher::cbc_hmac(&[7u8; 16], HmacHash::Sha256, &[1u8; 32], 16).unwrap();
        let _ = open(&c, &data, Some(1));
    }

    /// Frames that are IPv4 headers followed by random bytes: the header is always read back.
    #[test]
    fn ipv4_header_then_noise(proto in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..100), cut in any::<prop::sample::Index>()) {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 1, 138, 10, 0, 0, 40];
        let total = (20 + body.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend(&body);
        let n = 20 + cut.index(body.len() + 1);
        let d = decode(LinkType::RawIp, &ip[..n]);
        let info = d.ip.expect("IPv4 header read");
        prop_assert_eq!(info.dst.to_string(), "10.0.0.40");
        prop_assert_eq!(info.proto, proto);
    }
}

/// The seed's shapes end to end through the analyzer: a 64-byte ICMP echo from the netshoot pod,
/// sealed with the seed's key and SPI 3 the way the worker's kernel would, on the worker's eth0.
/// The seed's ESP frame on the worker's eth0: the netshoot pod's 64-byte ICMP echo, sealed with
/// `key` and SPI 3 (seq 0x1a) the way the worker's kernel would.
fn seed_esp_frame(key: &[u8]) -> Vec<u8> {
    // Inner: 10.0.1.52 > 10.0.0.249 ICMP echo request id 87 seq 0, 56 data bytes (84 bytes).
    let mut inner = vec![
        0x45, 0, 0, 84, 0, 0, 0x40, 0, 63, 1, 0, 0, 10, 0, 1, 52, 10, 0, 0, 249,
    ];
    inner.extend([8, 0, 0, 0, 0, 87, 0, 0]);
    inner.extend([0x61; 56]);
    let esp = seal_gcm(key, 16, 3, 0x1a, [0, 0, 0, 0, 0, 0, 0, 0x1a], 4, &inner);
    assert_eq!(esp.len(), 120, "8 + 8 IV + roundup4(84+2) + 16");
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 50, 0, 0, 10, 0, 1, 138, 10, 0, 0, 40,
    ];
    ip[2..4].copy_from_slice(&((20 + esp.len()) as u16).to_be_bytes());
    ip.extend(&esp);
    let mut frame = vec![2, 0x42, 0xac, 0x12, 0, 4, 2, 0x42, 0xac, 0x12, 0, 3, 8, 0];
    frame.extend(&ip);
    assert_eq!(frame.len(), 154);
    frame
}

#[test]
fn seed_worker_esp_frame_decrypts_to_the_pods_echo() {
    let state = hopscope::model::fixtures::seed_worker();
    let sa = state
        .xfrm_states
        .iter()
        .find(|s| s.dst == "10.0.0.40")
        .unwrap();
    let key = sa.aead.as_ref().unwrap().key.expose().to_vec();
    let frame = seed_esp_frame(&key);

    let mut an = Analyzer::new(&state, true);
    let ts = Ts {
        sec: 1_720_000_000,
        nsec: 0,
    };
    let rec = an.analyze("eth0", LinkType::Ethernet, ts, 154, &frame);
    let line = hopscope::view::packet::line(&rec, &Default::default());
    assert!(
        line.contains("10.0.1.138 > 10.0.0.40: ESP(spi=0x00000003,seq=0x1a), length 120"),
        "{line}"
    );
    assert!(
        line.contains("=> 10.0.1.52 > 10.0.0.249: ICMP echo request, id 87, seq 0, length 64"),
        "{line}"
    );
    let Some(Decrypt::Ok { inner, .. }) = &rec.decrypt else {
        panic!("{rec:?}")
    };
    assert!(matches!(
        inner.transport,
        Some(Transport::Icmp {
            ty: 8,
            id: Some(87),
            seq: Some(0),
            len: 64,
            ..
        })
    ));
    let json = serde_json::to_string(&rec).unwrap();
    assert!(!json.contains(&hex(&key[..8])), "key bytes in JSON");
    assert!(!line.contains(&hex(&key[..8])));

    // The same frame with a flipped ICV byte: an authentication failure, no inner packet.
    let mut bad = frame.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    let rec = an.analyze("eth0", LinkType::Ethernet, ts, 154, &bad);
    assert!(
        matches!(rec.decrypt, Some(Decrypt::AuthFailed { .. })),
        "{rec:?}"
    );
    let line = hopscope::view::packet::line(&rec, &Default::default());
    assert!(
        line.contains("AUTH FAILED") && !line.contains("ICMP"),
        "{line}"
    );
    assert_eq!(an.counts["eth0"].decrypted, 1);
    assert_eq!(an.counts["eth0"].auth_failed, 1);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The TUI's decrypt toggle and SA reload act on a running analyzer: off, ESP is only named;
/// on, the same frame decrypts; after the SA's key changes (a rekey the capture missed), it is an
/// authentication failure — never plaintext — and the counters so far are kept.
#[test]
fn decrypt_toggle_and_reload_keep_counters() {
    let mut state = hopscope::model::fixtures::seed_worker();
    let key = state
        .xfrm_states
        .iter()
        .find(|s| s.dst == "10.0.0.40")
        .unwrap()
        .aead
        .as_ref()
        .unwrap()
        .key
        .expose()
        .to_vec();
    let frame = seed_esp_frame(&key);
    let ts = Ts { sec: 1, nsec: 0 };
    let mut an = Analyzer::new(&state, false);
    let rec = an.analyze("eth0", LinkType::Ethernet, ts, 154, &frame);
    assert_eq!(rec.decrypt, None, "decryption is off");
    assert!(
        rec.sa.as_deref().unwrap_or("").contains("spi 0x3"),
        "{rec:?}"
    );
    an.set_decrypt(true);
    let rec = an.analyze("eth0", LinkType::Ethernet, ts, 154, &frame);
    assert!(matches!(rec.decrypt, Some(Decrypt::Ok { .. })), "{rec:?}");
    // Another key for the same SA.
    for s in &mut state.xfrm_states {
        if let Some(a) = s.aead.as_mut() {
            let mut k = a.key.expose().to_vec();
            k[0] ^= 0xff;
            a.key = hopscope::model::Secret::new(k);
        }
    }
    an.reload(&state);
    assert!(an.decrypting(), "reload keeps the toggle");
    let rec = an.analyze("eth0", LinkType::Ethernet, ts, 154, &frame);
    assert!(
        matches!(rec.decrypt, Some(Decrypt::AuthFailed { .. })),
        "{rec:?}"
    );
    let c = &an.counts["eth0"];
    assert_eq!((c.packets, c.esp, c.decrypted, c.auth_failed), (3, 3, 1, 1));
}
