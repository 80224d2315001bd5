//! ESP keys from where users keep them, for decrypting a capture offline (`capture -r`): a
//! `snapshot --json --show-keys` of the node, tcpdump's `-E` spec (or its `file NAME` form), and
//! Wireshark's `esp_sa` table; and Wireshark's `esp_sa` lines written from any of them. Every
//! form becomes the SAs the live decryption uses (`XfrmState`), so both decode the same.

use crate::model::{NodeState, XfrmState};
use anyhow::{Context, Result, bail};
use std::net::IpAddr;
use std::path::Path;

/// The SAs of a `snapshot --json --show-keys` document (keys redacted there: an error saying how
/// to take one with keys).
pub fn from_snapshot(path: &Path) -> Result<Vec<XfrmState>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let state: NodeState = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a `hopscope snapshot --json` document",
            path.display()
        )
    })?;
    let esp: Vec<XfrmState> = state
        .xfrm_states
        .into_iter()
        .filter(|s| s.proto == crate::model::XfrmProto::Esp)
        .collect();
    if esp.is_empty() {
        bail!("{} holds no ESP SA", path.display());
    }
    let keyless = esp.iter().all(|s| {
        [&s.aead, &s.enc]
            .into_iter()
            .flatten()
            .all(|a| a.key.expose().is_empty())
    });
    if keyless {
        bail!(
            "the keys in {} are redacted: take it with `hopscope snapshot --json --show-keys`",
            path.display()
        );
    }
    Ok(esp)
}

/// One SA from its parts, as the kernel would list it.
fn sa(src: Option<IpAddr>, dst: IpAddr, spi: u32, algs: serde_json::Value) -> Result<XfrmState> {
    let any = |a: &IpAddr| if a.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
    let mut v = serde_json::json!({
        "src": src.map_or_else(|| if dst.is_ipv4() { "0.0.0.0".into() } else { "::".to_string() }, |s| s.to_string()),
        "dst": dst.to_string(),
        "proto": "esp", "spi": spi, "reqid": 0, "mode": "tunnel", "flags": [],
        "replay_window": 0, "esn": false, "seq": 0, "oseq": 0, "mark": null,
        "output_mark": null, "if_id": null, "aead": null, "enc": null, "auth": null,
        "encap": null,
        "selector": {"src": any(&dst), "dst": any(&dst), "proto": null, "sport": null,
                     "dport": null, "dev": null},
        "lifetime": {"bytes": 0, "packets": 0, "add_time": 0, "use_time": 0},
        "stats": {"replay_window": 0, "replay": 0, "integrity_failed": 0},
    });
    for (k, a) in algs.as_object().into_iter().flatten() {
        v[k] = a.clone();
    }
    serde_json::from_value(v).context("building the SA")
}

fn alg(
    name: &str,
    key: &[u8],
    icv_bits: Option<u32>,
    trunc_bits: Option<u32>,
) -> serde_json::Value {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    serde_json::json!({
        "name": name, "key_bits": key.len() * 8, "icv_bits": icv_bits,
        "trunc_bits": trunc_bits, "key": format!("0x{hex}"),
    })
}

/// A key as tcpdump and Wireshark write it: `0x` and hex, else the bytes of the text.
fn secret(s: &str) -> Result<Vec<u8>> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => {
            if hex.len() % 2 != 0 {
                bail!("key 0x{hex} has an odd number of hex digits");
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| {
                    u8::from_str_radix(&hex[i..i + 2], 16)
                        .map_err(|_| anyhow::anyhow!("key 0x{hex} is not hex"))
                })
                .collect()
        }
        None => Ok(s.as_bytes().to_vec()),
    }
}

/// tcpdump's `-E` argument: `spi@ipaddr algo:secret[,spi@ipaddr algo:secret…]`, or `file NAME`
/// (one such spec per line, `#` comments). Algorithms: `aes128-gcm`/`aes-128-gcm` (and 192,
/// 256; the secret is the AES key and the 4-byte salt, ICV 16 bytes), and
/// `aes128-cbc-hmac96:ENCKEY:AUTHKEY`-style CBC with HMAC-SHA1-96 (tcpdump itself does not
/// verify the HMAC; hopscope does, so it needs the auth key after a second colon).
pub fn from_tcpdump(spec: &str) -> Result<Vec<XfrmState>> {
    if let Some(file) = spec.strip_prefix("file ") {
        let path = Path::new(file.trim());
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            out.extend(
                from_tcpdump(line).with_context(|| format!("{} line {}", path.display(), n + 1))?,
            );
        }
        return Ok(out);
    }
    spec.split(',').map(|one| tcpdump_one(one.trim())).collect()
}

fn tcpdump_one(one: &str) -> Result<XfrmState> {
    let Some((id, keyspec)) = one.split_once(char::is_whitespace) else {
        bail!(
            "-E {one:?}: hopscope needs the SA named as `spi@ipaddr algo:secret` (e.g. 0x3@10.0.0.40 aes128-gcm:0x…)"
        );
    };
    let (spi, dst) = id
        .split_once('@')
        .ok_or_else(|| anyhow::anyhow!("-E {one:?}: no spi@ipaddr"))?;
    let spi = parse_spi(spi)?;
    let dst: IpAddr = dst
        .parse()
        .map_err(|_| anyhow::anyhow!("-E {one:?}: {dst:?} is not an address"))?;
    let mut parts = keyspec.trim().splitn(3, ':');
    let algo = parts.next().unwrap_or_default().to_ascii_lowercase();
    let key = secret(parts.next().unwrap_or_default())?;
    let norm = algo.replace("aes-", "aes");
    let algs = match norm.as_str() {
        "aes128-gcm" | "aes192-gcm" | "aes256-gcm" => serde_json::json!({
            "aead": alg("rfc4106(gcm(aes))", &key, Some(128), None),
        }),
        "aes128-cbc-hmac96" | "aes192-cbc-hmac96" | "aes256-cbc-hmac96" => {
            let Some(auth) = parts.next() else {
                bail!(
                    "-E {one:?}: hopscope verifies the HMAC before it shows plaintext: give the auth key too ({algo}:ENCKEY:AUTHKEY)"
                );
            };
            serde_json::json!({
                "enc": alg("cbc(aes)", &key, None, None),
                "auth": alg("hmac(sha1)", &secret(auth)?, None, Some(96)),
            })
        }
        other => bail!(
            "-E algorithm {other:?} is not one hopscope decrypts (aes128-gcm, aes256-gcm, aes128-cbc-hmac96, …)"
        ),
    };
    sa(None, dst, spi, algs)
}

fn parse_spi(s: &str) -> Result<u32> {
    let s = s.trim().trim_matches('"');
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|_| anyhow::anyhow!("{s:?} is not an SPI"))
}

/// Wireshark's ESP algorithm names (the esp_sa table's), with the kernel's names they stand
/// for: (Wireshark name, kernel name, ICV or truncation bits).
const WS_ENC: &[(&str, &str, u32)] = &[
    (
        "AES-GCM with 16 octet ICV [RFC4106]",
        "rfc4106(gcm(aes))",
        128,
    ),
    (
        "AES-GCM with 12 octet ICV [RFC4106]",
        "rfc4106(gcm(aes))",
        96,
    ),
    (
        "AES-GCM with 8 octet ICV [RFC4106]",
        "rfc4106(gcm(aes))",
        64,
    ),
    ("AES-CBC [RFC3602]", "cbc(aes)", 0),
];
const WS_AUTH: &[(&str, &str, u32)] = &[
    ("HMAC-SHA-1-96 [RFC2404]", "hmac(sha1)", 96),
    ("HMAC-SHA-256-128 [RFC4868]", "hmac(sha256)", 128),
    ("HMAC-SHA-384-192 [RFC4868]", "hmac(sha384)", 192),
    ("HMAC-SHA-512-256 [RFC4868]", "hmac(sha512)", 256),
];

/// The fields of one esp_sa line: quoted, comma-separated.
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// Wireshark's `esp_sa` file: `"IPv4","src","dst","spi","encryption","key","authentication",
/// "key"` per line (`*` for any address).
pub fn from_esp_sa(path: &Path) -> Result<Vec<XfrmState>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{} line {}", path.display(), n + 1);
        let f = csv_fields(line);
        if f.len() < 8 {
            bail!("{}: {} fields, esp_sa lines have 8", at(), f.len());
        }
        let addr = |s: &str| -> Result<Option<IpAddr>> {
            match s {
                "*" | "" => Ok(None),
                a => a
                    .parse()
                    .map(Some)
                    .map_err(|_| anyhow::anyhow!("{}: {a:?} is not an address", at())),
            }
        };
        let src = addr(&f[1])?;
        let Some(dst) = addr(&f[2])? else {
            bail!("{}: hopscope needs the destination address of the SA", at());
        };
        let spi = parse_spi(&f[3]).with_context(at)?;
        let Some((_, kname, bits)) = WS_ENC.iter().find(|(w, _, _)| *w == f[4]) else {
            bail!(
                "{}: encryption {:?} is not one hopscope decrypts",
                at(),
                f[4]
            );
        };
        let key = secret(&f[5])?;
        let algs = if kname.starts_with("rfc4106") {
            serde_json::json!({ "aead": alg(kname, &key, Some(*bits), None) })
        } else {
            let Some((_, aname, tbits)) = WS_AUTH.iter().find(|(w, _, _)| *w == f[6]) else {
                bail!(
                    "{}: authentication {:?} is not one hopscope verifies",
                    at(),
                    f[6]
                );
            };
            serde_json::json!({
                "enc": alg(kname, &key, None, None),
                "auth": alg(aname, &secret(&f[7])?, None, Some(*tbits)),
            })
        };
        out.push(sa(src, dst, spi, algs).with_context(at)?);
    }
    Ok(out)
}

/// Wireshark `esp_sa` lines for the SAs (the ones Wireshark has names for).
pub fn to_esp_sa(sas: &[XfrmState]) -> String {
    let hex = |k: &crate::model::Secret| -> String {
        let h: String = k.expose().iter().map(|b| format!("{b:02x}")).collect();
        format!("0x{h}")
    };
    let mut out = String::new();
    for s in sas {
        let family = if s.dst.contains(':') { "IPv6" } else { "IPv4" };
        let src = match s.src.parse::<IpAddr>() {
            Ok(a) if !a.is_unspecified() => a.to_string(),
            _ => "*".to_string(),
        };
        let (enc, ekey, auth, akey) = if let Some(a) = &s.aead {
            let bits = a.icv_bits.unwrap_or(128);
            let Some((w, _, _)) = WS_ENC.iter().find(|(_, k, b)| *k == a.name && *b == bits) else {
                continue;
            };
            (*w, hex(&a.key), "NULL", String::new())
        } else if let (Some(e), Some(a)) = (&s.enc, &s.auth) {
            let Some((w, _, _)) = WS_ENC.iter().find(|(_, k, _)| *k == e.name) else {
                continue;
            };
            let Some((aw, _, _)) = WS_AUTH
                .iter()
                .find(|(_, k, b)| *k == a.name && Some(*b) == a.trunc_bits)
            else {
                continue;
            };
            (*w, hex(&e.key), *aw, hex(&a.key))
        } else {
            continue;
        };
        out.push_str(&format!(
            "\"{family}\",\"{src}\",\"{}\",\"{:#010x}\",\"{enc}\",\"{ekey}\",\"{auth}\",\"{akey}\"\n",
            s.dst, s.spi
        ));
    }
    out
}
