//! ESP decryption with an SA's own key: rfc4106(gcm(aes)) (128/192/256-bit keys + 4-byte salt,
//! ICV 8/12/16) and cbc(aes) with hmac(sha1/sha256/sha384/sha512) (truncated ICV). The ICV is
//! always verified first; a failed check is an error, never plaintext. Pure: no I/O, no panics.
//!
//! Keys live in `model::Secret` (redacted in Debug/Display/Serialize); nothing here prints them.

use crate::model::event::SaKey;
use crate::model::{Mark, Secret, XfrmProto, XfrmState};
use aes::{Aes128, Aes192, Aes256};
use aes_gcm::aead::consts::{U8, U12, U16};
use aes_gcm::{AeadInOut, AesGcm, KeyInit};
use hmac::{Hmac, Mac};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// How an SA protects its packets, with the key material split the way ESP uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EspCipher {
    /// RFC 4106: AES-GCM, 8-byte explicit IV, nonce = salt ‖ IV.
    Gcm {
        key: Secret,
        salt: Secret,
        icv_len: usize,
    },
    /// AES-CBC (16-byte IV) + HMAC over SPI..ciphertext, truncated to `icv_len`.
    CbcHmac {
        enc_key: Secret,
        hash: HmacHash,
        auth_key: Secret,
        icv_len: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacHash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl EspCipher {
    /// The cipher of an XFRM state, or why hopscope cannot decrypt with it.
    pub fn from_state(st: &XfrmState) -> Result<EspCipher, String> {
        if st.proto != XfrmProto::Esp {
            return Err(format!("protocol {} is not ESP", st.proto));
        }
        if let Some(aead) = &st.aead {
            if aead.name != "rfc4106(gcm(aes))" {
                return Err(format!("AEAD {} is not supported", aead.name));
            }
            let icv_bits = aead.icv_bits.unwrap_or(128);
            return EspCipher::gcm(aead.key.expose(), icv_bits as usize / 8);
        }
        let enc = st.enc.as_ref().ok_or("the SA has neither aead nor enc")?;
        let auth = st
            .auth
            .as_ref()
            .ok_or("the SA has no auth algorithm (unauthenticated ESP is not decrypted)")?;
        if enc.name != "cbc(aes)" {
            return Err(format!("cipher {} is not supported", enc.name));
        }
        let (hash, full) = match auth.name.as_str() {
            "hmac(sha1)" => (HmacHash::Sha1, 160),
            "hmac(sha256)" => (HmacHash::Sha256, 256),
            "hmac(sha384)" => (HmacHash::Sha384, 384),
            "hmac(sha512)" => (HmacHash::Sha512, 512),
            other => return Err(format!("auth {other} is not supported")),
        };
        let trunc = auth.trunc_bits.unwrap_or(full);
        EspCipher::cbc_hmac(
            enc.key.expose(),
            hash,
            auth.key.expose(),
            trunc as usize / 8,
        )
    }

    /// `key` as XFRM holds it for rfc4106: AES key followed by the 4-byte salt.
    pub fn gcm(key: &[u8], icv_len: usize) -> Result<EspCipher, String> {
        if !matches!(key.len(), 20 | 28 | 36) {
            return Err(format!(
                "rfc4106 key of {} bits (want 160, 224 or 288: AES key + 32-bit salt)",
                key.len() * 8
            ));
        }
        if !matches!(icv_len, 8 | 12 | 16) {
            return Err(format!("GCM ICV of {} bits", icv_len * 8));
        }
        let (k, s) = key.split_at(key.len() - 4);
        Ok(EspCipher::Gcm {
            key: Secret::new(k.to_vec()),
            salt: Secret::new(s.to_vec()),
            icv_len,
        })
    }

    pub fn cbc_hmac(
        enc_key: &[u8],
        hash: HmacHash,
        auth_key: &[u8],
        icv_len: usize,
    ) -> Result<EspCipher, String> {
        if !matches!(enc_key.len(), 16 | 24 | 32) {
            return Err(format!("cbc(aes) key of {} bits", enc_key.len() * 8));
        }
        let max = match hash {
            HmacHash::Sha1 => 20,
            HmacHash::Sha256 => 32,
            HmacHash::Sha384 => 48,
            HmacHash::Sha512 => 64,
        };
        if icv_len == 0 || icv_len > max {
            return Err(format!("HMAC truncated to {} bits", icv_len * 8));
        }
        Ok(EspCipher::CbcHmac {
            enc_key: Secret::new(enc_key.to_vec()),
            hash,
            auth_key: Secret::new(auth_key.to_vec()),
            icv_len,
        })
    }

    pub fn iv_len(&self) -> usize {
        match self {
            EspCipher::Gcm { .. } => 8,
            EspCipher::CbcHmac { .. } => 16,
        }
    }
    pub fn icv_len(&self) -> usize {
        match self {
            EspCipher::Gcm { icv_len, .. } | EspCipher::CbcHmac { icv_len, .. } => *icv_len,
        }
    }
    /// What the payload and its trailer are padded to.
    pub fn block(&self) -> usize {
        match self {
            EspCipher::Gcm { .. } => 4,
            EspCipher::CbcHmac { .. } => 16,
        }
    }
}

/// A verified, decrypted ESP payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// 4 = IPv4 (tunnel mode), 41 = IPv6 (tunnel mode), 59 = dummy (TFC), else the transport
    /// protocol of transport mode.
    pub next_header: u8,
    pub pad_len: u8,
    /// The payload without padding and trailer: the inner IP packet in tunnel mode.
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum OpenError {
    /// Fewer bytes than SPI + seq + IV + trailer + ICV (or a truncated capture).
    TooShort { len: usize, need: usize },
    /// The ciphertext is not a whole number of cipher blocks.
    BadLength { len: usize, block: usize },
    /// The ICV / HMAC did not verify: wrong key, or the packet was altered.
    AuthFailed,
    /// Authenticated, but the pad length points outside the payload.
    BadTrailer { pad_len: u8 },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::TooShort { len, need } => {
                write!(f, "too short to decrypt ({len} bytes, need {need})")
            }
            OpenError::BadLength { len, block } => {
                write!(f, "ciphertext of {len} bytes is not a multiple of {block}")
            }
            OpenError::AuthFailed => f.write_str("authentication failed (ICV mismatch)"),
            OpenError::BadTrailer { pad_len } => {
                write!(f, "bad ESP trailer (pad length {pad_len})")
            }
        }
    }
}

macro_rules! gcm_open {
    ($aes:ty, $tag:ty, $key:expr, $nonce:expr, $aad:expr, $buf:expr, $icv:expr) => {{
        let c =
            AesGcm::<$aes, U12, $tag>::new_from_slice($key).map_err(|_| OpenError::AuthFailed)?;
        let tag = <&aes_gcm::Tag<$tag>>::try_from($icv).map_err(|_| OpenError::AuthFailed)?;
        let nonce = <&aes_gcm::Nonce<U12>>::try_from($nonce).map_err(|_| OpenError::AuthFailed)?;
        c.decrypt_inout_detached(nonce, $aad, $buf.into(), tag)
            .map_err(|_| OpenError::AuthFailed)
    }};
}

macro_rules! hmac_verify {
    ($hash:ty, $key:expr, $data:expr, $hi:expr, $icv:expr) => {{
        let mut m =
            <Hmac<$hash> as KeyInit>::new_from_slice($key).map_err(|_| OpenError::AuthFailed)?;
        m.update($data);
        if let Some(hi) = $hi {
            m.update(&u32::to_be_bytes(hi));
        }
        m.verify_truncated_left($icv)
            .map_err(|_| OpenError::AuthFailed)
    }};
}

/// Verify and decrypt one ESP packet (`esp` starts at the SPI and runs to the end of the IP
/// payload). `seq_hi` is the high half of the sequence number for ESN SAs.
pub fn open(c: &EspCipher, esp: &[u8], seq_hi: Option<u32>) -> Result<Opened, OpenError> {
    let (iv_len, icv_len) = (c.iv_len(), c.icv_len());
    let need = 8 + iv_len + c.block().max(2) + icv_len;
    if esp.len() < need {
        return Err(OpenError::TooShort {
            len: esp.len(),
            need,
        });
    }
    let (body, icv) = esp.split_at(esp.len() - icv_len);
    let (hdr, rest) = body.split_at(8);
    let (iv, ct) = rest.split_at(iv_len);
    let mut buf = ct.to_vec();
    match c {
        EspCipher::Gcm { key, salt, .. } => {
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(salt.expose());
            nonce[4..].copy_from_slice(iv);
            // AAD: SPI ‖ seq, or SPI ‖ seq_hi ‖ seq with ESN (RFC 4106 §5).
            let mut aad = Vec::with_capacity(12);
            aad.extend_from_slice(&hdr[..4]);
            if let Some(hi) = seq_hi {
                aad.extend_from_slice(&hi.to_be_bytes());
            }
            aad.extend_from_slice(&hdr[4..8]);
            let k = key.expose();
            let buf = buf.as_mut_slice();
            let opened = match (k.len(), icv_len) {
                (16, 16) => gcm_open!(Aes128, U16, k, &nonce[..], &aad, buf, icv),
                (16, 12) => gcm_open!(Aes128, U12, k, &nonce[..], &aad, buf, icv),
                (16, 8) => gcm_open!(Aes128, U8, k, &nonce[..], &aad, buf, icv),
                (24, 16) => gcm_open!(Aes192, U16, k, &nonce[..], &aad, buf, icv),
                (24, 12) => gcm_open!(Aes192, U12, k, &nonce[..], &aad, buf, icv),
                (24, 8) => gcm_open!(Aes192, U8, k, &nonce[..], &aad, buf, icv),
                (32, 16) => gcm_open!(Aes256, U16, k, &nonce[..], &aad, buf, icv),
                (32, 12) => gcm_open!(Aes256, U12, k, &nonce[..], &aad, buf, icv),
                (32, 8) => gcm_open!(Aes256, U8, k, &nonce[..], &aad, buf, icv),
                _ => Err(OpenError::AuthFailed),
            };
            // The nonce holds the salt, which is key material.
            zeroize::Zeroize::zeroize(&mut nonce);
            opened?;
        }
        EspCipher::CbcHmac {
            enc_key,
            hash,
            auth_key,
            ..
        } => {
            // Encrypt-then-MAC: verify before touching the ciphertext.
            let ak = auth_key.expose();
            match hash {
                HmacHash::Sha1 => hmac_verify!(sha1::Sha1, ak, body, seq_hi, icv),
                HmacHash::Sha256 => hmac_verify!(sha2::Sha256, ak, body, seq_hi, icv),
                HmacHash::Sha384 => hmac_verify!(sha2::Sha384, ak, body, seq_hi, icv),
                HmacHash::Sha512 => hmac_verify!(sha2::Sha512, ak, body, seq_hi, icv),
            }?;
            if ct.len() % 16 != 0 {
                return Err(OpenError::BadLength {
                    len: ct.len(),
                    block: 16,
                });
            }
            let k = enc_key.expose();
            match k.len() {
                16 => cbc_decrypt(
                    &Aes128::new_from_slice(k).expect("16-byte key"),
                    iv,
                    &mut buf,
                ),
                24 => cbc_decrypt(
                    &Aes192::new_from_slice(k).expect("24-byte key"),
                    iv,
                    &mut buf,
                ),
                32 => cbc_decrypt(
                    &Aes256::new_from_slice(k).expect("32-byte key"),
                    iv,
                    &mut buf,
                ),
                _ => return Err(OpenError::AuthFailed),
            }
        }
    }
    // Trailer: ... padding, pad length, next header.
    let n = buf.len();
    if n < 2 {
        return Err(OpenError::TooShort {
            len: esp.len(),
            need,
        });
    }
    let (pad_len, next_header) = (buf[n - 2], buf[n - 1]);
    if usize::from(pad_len) + 2 > n {
        return Err(OpenError::BadTrailer { pad_len });
    }
    buf.truncate(n - 2 - usize::from(pad_len));
    Ok(Opened {
        next_header,
        pad_len,
        payload: buf,
    })
}

fn cbc_decrypt<C: aes::cipher::BlockCipherDecrypt<BlockSize = U16>>(
    c: &C,
    iv: &[u8],
    buf: &mut [u8],
) {
    let mut prev = [0u8; 16];
    prev.copy_from_slice(iv);
    for chunk in buf.chunks_exact_mut(16) {
        let mut saved = [0u8; 16];
        saved.copy_from_slice(chunk);
        let block = <&mut aes::Block>::try_from(&mut *chunk).expect("16-byte chunk");
        c.decrypt_block(block);
        for (b, p) in chunk.iter_mut().zip(prev) {
            *b ^= p;
        }
        prev = saved;
    }
}

/// One SA hopscope can match ESP packets against: SPI + outer destination (+ mark for show).
#[derive(Debug, Clone)]
pub struct SaEntry {
    /// The SA's key in the node's state (the SAs pane finds it by this).
    pub key: SaKey,
    pub spi: u32,
    /// `None` for the kernel's wildcard source (0.0.0.0 / ::), as Cilium's inbound SAs.
    pub src: Option<IpAddr>,
    pub dst: IpAddr,
    pub mark: Option<Mark>,
    pub esn: bool,
    /// NAT traversal: the UDP ports (sport, dport) the SA wraps its ESP in.
    pub encap: Option<(u16, u16)>,
    pub cipher: Result<EspCipher, String>,
}

impl SaEntry {
    /// Why a packet's encapsulation does not fit this SA's (`udp` = the packet's UDP ports when
    /// it came as ESP in UDP), or None when it does.
    pub fn encap_mismatch(&self, udp: Option<(u16, u16)>) -> Option<String> {
        match (self.encap, udp) {
            (None, None) => None,
            (Some((s, d)), Some(p)) if (s, d) == p => None,
            (Some((s, d)), None) => Some(format!(
                "the SA wants ESP in UDP {s}->{d} (espinudp), this is plain ESP: the kernel drops it (XfrmInStateMismatch)"
            )),
            (None, Some((s, d))) => Some(format!(
                "ESP in UDP {s}->{d}, but the SA has no encap: the kernel drops it (XfrmInStateMismatch)"
            )),
            (Some((s, d)), Some((ps, pd))) => Some(format!(
                "ESP in UDP {ps}->{pd}, the SA says {s}->{d}: the NAT mapping changed (the kernel tells the IKE daemon of the new mapping)"
            )),
        }
    }
}

impl SaEntry {
    /// Short label: `10.0.1.138->10.0.0.40 spi 0x3 mark 0x3e00/0xff00`.
    pub fn label(&self) -> String {
        let src = self.src.map_or_else(|| "*".to_string(), |s| s.to_string());
        let mut s = format!("{src}->{} spi {:#x}", self.dst, self.spi);
        if let Some(m) = self.mark {
            s.push_str(&format!(" mark {m}"));
        }
        s
    }
}

/// The node's ESP SAs, for matching and decrypting captured packets.
#[derive(Debug, Clone, Default)]
pub struct SaTable {
    pub entries: Vec<SaEntry>,
}

/// What became of one ESP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No SA of this node has this SPI and destination.
    NoSa,
    /// The SA is known but its algorithm is not one hopscope decrypts.
    Unsupported { sa: usize, why: String },
    /// Verified and decrypted with SA `sa`.
    Opened { sa: usize, opened: Opened },
    /// Every candidate SA's key failed the ICV check (`sa` = the first candidate).
    AuthFailed { sa: usize, tried: usize },
    /// Too short / malformed for the candidate SA.
    Malformed { sa: usize, error: OpenError },
}

impl SaTable {
    pub fn from_states(states: &[XfrmState]) -> SaTable {
        let entries = states
            .iter()
            .filter(|s| s.proto == XfrmProto::Esp)
            .filter_map(|s| {
                let dst: IpAddr = s.dst.parse().ok()?;
                let src = s.src.parse::<IpAddr>().ok().filter(|a| !a.is_unspecified());
                Some(SaEntry {
                    key: SaKey::of(s),
                    spi: s.spi,
                    src,
                    dst,
                    mark: s.mark,
                    esn: s.esn,
                    encap: s.encap.as_ref().map(|e| (e.sport, e.dport)),
                    cipher: EspCipher::from_state(s),
                })
            })
            .collect();
        SaTable { entries }
    }

    /// SAs with this SPI and destination, most specific first (explicit source before wildcard).
    pub fn candidates(&self, spi: u32, src: IpAddr, dst: IpAddr) -> Vec<usize> {
        let mut c: Vec<usize> = (0..self.entries.len())
            .filter(|&i| {
                let e = &self.entries[i];
                e.spi == spi && e.dst == dst && e.src.is_none_or(|s| s == src)
            })
            .collect();
        c.sort_by_key(|&i| self.entries[i].src.is_none());
        c
    }

    /// The SA a packet belongs to without decrypting (first candidate).
    pub fn lookup(&self, spi: u32, src: IpAddr, dst: IpAddr) -> Option<usize> {
        self.candidates(spi, src, dst).first().copied()
    }

    /// Match and decrypt: each candidate SA's key is tried until one verifies.
    pub fn open(&self, spi: u32, src: IpAddr, dst: IpAddr, esp: &[u8]) -> Outcome {
        let cands = self.candidates(spi, src, dst);
        let Some(&first) = cands.first() else {
            return Outcome::NoSa;
        };
        let mut tried = 0;
        let mut malformed = None;
        let mut unsupported = None;
        for &i in &cands {
            let e = &self.entries[i];
            let c = match &e.cipher {
                Ok(c) => c,
                Err(why) => {
                    unsupported.get_or_insert((i, why.clone()));
                    continue;
                }
            };
            tried += 1;
            // ESN: the high half is not on the wire; 0 is right for the first 2^32 packets.
            let hi = e.esn.then_some(0);
            match open(c, esp, hi) {
                Ok(opened) => return Outcome::Opened { sa: i, opened },
                Err(OpenError::AuthFailed) => {}
                Err(error) => {
                    malformed.get_or_insert((i, error));
                }
            }
        }
        if tried == 0 {
            let (sa, why) = unsupported.unwrap_or((first, "no usable key".into()));
            return Outcome::Unsupported { sa, why };
        }
        if let Some((sa, error)) = malformed
            && tried == 1
        {
            return Outcome::Malformed { sa, error };
        }
        Outcome::AuthFailed { sa: first, tried }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ESP sealed the way the kernel does for rfc4106, built with the aes-gcm crate.
    pub(crate) fn seal_gcm128(
        key20: &[u8],
        spi: u32,
        seq: u32,
        iv: [u8; 8],
        next: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let c = aes_gcm::Aes128Gcm::new_from_slice(&key20[..16]).unwrap();
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&key20[16..]);
        nonce[4..].copy_from_slice(&iv);
        let mut pt = payload.to_vec();
        let pad = (4 - (pt.len() + 2) % 4) % 4;
        pt.extend((1..=pad as u8).collect::<Vec<_>>());
        pt.extend([pad as u8, next]);
        let mut aad = spi.to_be_bytes().to_vec();
        aad.extend(seq.to_be_bytes());
        let tag = c
            .encrypt_inout_detached((&nonce).into(), &aad, pt.as_mut_slice().into())
            .unwrap();
        let mut out = aad;
        out.extend(iv);
        out.extend(pt);
        out.extend(tag.as_slice());
        out
    }

    const KEY: [u8; 20] = [
        0xd5, 0x28, 0xe7, 0x6e, 0x15, 0xde, 0xd4, 0xe1, 0xb4, 0x17, 0xea, 0x56, 0xf6, 0xc4, 0x63,
        0x3b, 0x79, 0x42, 0xb3, 0x44,
    ];

    #[test]
    fn gcm_round_trip_and_seed_length() {
        let inner = [0x45u8; 84]; // a 64-byte ICMP echo in IPv4: 20 + 8 + 56
        let esp = seal_gcm128(&KEY, 3, 0x1a, [1, 2, 3, 4, 5, 6, 7, 8], 4, &inner);
        // 8 + 8 IV + roundup4(84 + 2) + 16 = 120, as the seed's tcpdump prints.
        assert_eq!(esp.len(), 120);
        let c = EspCipher::gcm(&KEY, 16).unwrap();
        let o = open(&c, &esp, None).unwrap();
        assert_eq!(o.next_header, 4);
        assert_eq!(o.payload, inner);
        assert_eq!(o.pad_len, 2);
    }

    #[test]
    fn wrong_key_or_flipped_bit_is_auth_failure() {
        let esp = seal_gcm128(&KEY, 3, 1, [0; 8], 4, &[0x45; 40]);
        let mut wrong = KEY;
        wrong[0] ^= 1;
        let c = EspCipher::gcm(&wrong, 16).unwrap();
        assert_eq!(open(&c, &esp, None), Err(OpenError::AuthFailed));
        let good = EspCipher::gcm(&KEY, 16).unwrap();
        for i in 0..esp.len() {
            let mut bad = esp.clone();
            bad[i] ^= 0x80;
            assert_eq!(
                open(&good, &bad, None),
                Err(OpenError::AuthFailed),
                "byte {i}"
            );
        }
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        let c = EspCipher::gcm(&KEY, 16).unwrap();
        for n in 0..40 {
            let r = open(&c, &vec![0u8; n], None);
            assert!(r.is_err());
        }
    }

    #[test]
    fn cipher_debug_does_not_show_key() {
        let c = EspCipher::gcm(&KEY, 16).unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("d5"), "{s}");
        assert!(!s.to_lowercase().contains("213"), "{s}");
    }

    #[test]
    fn seed_worker_sas_match_by_spi_and_dst() {
        let st = crate::model::fixtures::seed_worker();
        let t = SaTable::from_states(&st.xfrm_states);
        let out = t.lookup(
            3,
            "10.0.1.138".parse().unwrap(),
            "10.0.0.40".parse().unwrap(),
        );
        let e = &t.entries[out.unwrap()];
        assert_eq!(e.dst.to_string(), "10.0.0.40");
        // Inbound SA: src 0.0.0.0 (any), dst our router IP.
        let inb = t.lookup(
            3,
            "10.0.0.40".parse().unwrap(),
            "10.0.1.138".parse().unwrap(),
        );
        assert!(t.entries[inb.unwrap()].src.is_none());
        assert_eq!(
            t.lookup(
                4,
                "10.0.0.40".parse().unwrap(),
                "10.0.1.138".parse().unwrap()
            ),
            None
        );
    }
}
