//! `capture -r` decrypts a capture offline with keys given the ways users keep them. The capture
//! is the lab's: worker's eth0 frames of the demo recording (demo/seed.hsrec, recorded in the
//! qemu lab with the real kernel's ESP), written out as pcapng; the keys are the lab's public
//! test keys (tests/lab/keys.env). The recorder decrypted those frames live with the node's own
//! keys: offline decryption must give the very same inner bytes, and tshark
//! must decrypt the same packets to the same inner headers.

use hopscope::capture::pcapng::{EpbDir, PcapngWriter};
use hopscope::record::reader::Recording;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;

const KEY3: &str = "0xd528e76e15ded4e1b417ea56f6c4633b7942b344";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hopscope-offline-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// worker's eth0 frames as pcapng; the recorded decryption of each ESP one, in order.
fn lab_pcap(name: &str, cut: Option<usize>) -> (PathBuf, Vec<Vec<u8>>) {
    let rec = Recording::open(Path::new("demo/seed.hsrec")).unwrap();
    let eth0 = rec
        .ifaces
        .iter()
        .position(|i| i.node == 0 && i.name == "eth0")
        .unwrap();
    let path = tmp(name);
    let f = std::fs::File::create(&path).unwrap();
    let mut w = PcapngWriter::new(BufWriter::new(f), &[("eth0".into(), 1, 262144)]).unwrap();
    let mut opened = vec![];
    for fr in rec.frames.iter().filter(|f| f.iface == eth0) {
        let ns = fr.ts.sec as u64 * 1_000_000_000 + u64::from(fr.ts.nsec);
        w.packet(0, ns, fr.len, &fr.data, EpbDir::Unknown).unwrap();
        if let Some(o) = &fr.opened {
            opened.push(o.payload.clone());
        }
    }
    w.flush().unwrap();
    drop(w);
    if let Some(n) = cut {
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - n]).unwrap();
    }
    // benches/record.sh decrypts this same capture against tshark.
    if let Some(dir) = std::env::var_os("HOPSCOPE_KEEP_PCAP") {
        std::fs::copy(&path, Path::new(&dir).join(name)).unwrap();
    }
    (path, opened)
}

fn hopscope(args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

/// The SAs of worker: outbound to worker2 (10.0.0.40) and its inbound (10.0.1.138).
fn tcpdump_spec() -> String {
    format!("0x3@10.0.0.40 aes128-gcm:{KEY3},0x3@10.0.1.138 aes128-gcm:{KEY3}")
}

#[test]
fn every_esp_packet_decrypts_offline_to_the_bytes_the_live_node_gave() {
    let (pcap, opened) = lab_pcap("lab.pcapng", None);
    assert!(
        opened.len() >= 20,
        "{} decrypted frames recorded",
        opened.len()
    );
    let sas = hopscope::keys::from_tcpdump(&tcpdump_spec()).unwrap();
    // The same analyzer as live: decrypt each ESP frame and compare the inner packet.
    let mut out = Vec::new();
    let t = hopscope::cmd::capture_file::run(&pcap, &sas, None, true, &mut out).unwrap();
    assert_eq!(t.decrypted as usize, opened.len(), "{t:?}");
    assert_eq!(t.esp, t.decrypted, "every ESP packet decrypted: {t:?}");
    let text = String::from_utf8(out).unwrap();
    let ok = text
        .lines()
        .filter(|l| l.contains("\"result\":\"ok\""))
        .count();
    assert_eq!(ok, opened.len());
    // Equal inner bytes: the inner packets' IP total lengths and addresses as the recorder saw.
    let inner: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"result\":\"ok\""))
        .collect();
    for (line, bytes) in inner.iter().zip(&opened) {
        let src = format!("{}.{}.{}.{}", bytes[12], bytes[13], bytes[14], bytes[15]);
        assert!(line.contains(&format!("\"src\":\"{src}\"")), "{line}");
    }
    // Byte for byte: the offline keys open every recorded ESP frame to what the node's keys
    // opened live.
    let rec = Recording::open(Path::new("demo/seed.hsrec")).unwrap();
    let state = hopscope::model::NodeState {
        xfrm_states: sas.clone(),
        ..Default::default()
    };
    let mut an = hopscope::capture::analyze::Analyzer::new(&state, true);
    let mut compared = 0;
    for f in rec
        .frames
        .iter()
        .filter(|f| rec.ifaces[f.iface].name == "eth0" && rec.ifaces[f.iface].node == 0)
    {
        an.analyze("eth0", rec.linktype(f.iface), f.ts, f.len, &f.data);
        let offline = an.take_opened().map(|o| o.payload);
        assert_eq!(offline, f.opened.as_ref().map(|o| o.payload.clone()));
        compared += usize::from(offline.is_some());
    }
    assert_eq!(compared, opened.len());
    // The CLI: text lines with the decrypted inner packet, and the summary.
    let spec = tcpdump_spec();
    let (stdout, stderr, ok) = hopscope(&["capture", "-r", pcap.to_str().unwrap(), "-E", &spec]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("{} decrypted with 2 SAs", opened.len())),
        "{stderr}"
    );
    assert!(
        stdout.contains("=> 10.0.1.52 > 10.0.0.249: ICMP echo request"),
        "{stdout}"
    );
}

#[test]
fn keys_from_tcpdump_files_and_wireshark_esp_sa_decrypt_the_same() {
    let (pcap, opened) = lab_pcap("lab2.pcapng", None);
    let p = pcap.to_str().unwrap();
    // tcpdump -E file form.
    let keyfile = tmp("esp.keys");
    std::fs::write(
        &keyfile,
        format!("# worker's SAs\n{}\n", tcpdump_spec().replace(',', "\n")),
    )
    .unwrap();
    let (_, stderr, ok) = hopscope(&[
        "capture",
        "-r",
        p,
        "-E",
        &format!("file {}", keyfile.display()),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("{} decrypted", opened.len())),
        "{stderr}"
    );
    // --wireshark-keys writes esp_sa; reading it back decrypts the same.
    let esp_sa = tmp("esp_sa");
    let (_, stderr, ok) = hopscope(&[
        "capture",
        "-r",
        p,
        "-E",
        &tcpdump_spec(),
        "--wireshark-keys",
        esp_sa.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let table = std::fs::read_to_string(&esp_sa).unwrap();
    assert!(
        table.contains(&format!("\"IPv4\",\"*\",\"10.0.0.40\",\"0x00000003\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"{KEY3}\",\"NULL\",\"\"")),
        "{table}"
    );
    let (_, stderr, ok) = hopscope(&["capture", "-r", p, "--esp-sa", esp_sa.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("{} decrypted", opened.len())),
        "{stderr}"
    );
    // A wrong key: nothing shown as plaintext.
    let wrong = "0x3@10.0.0.40 aes128-gcm:0x0badc0de0badc0de0badc0de0badc0de0badc0de";
    let (stdout, stderr, ok) = hopscope(&["capture", "-r", p, "-E", wrong]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains(" 0 decrypted"), "{stderr}");
    assert!(!stdout.contains("=> 10.0.1.52"), "{stdout}");
    // Bad key input: a clear error.
    let (_, stderr, ok) = hopscope(&["capture", "-r", p, "-E", "aes128-gcm:0x00"]);
    assert!(!ok && stderr.contains("spi@ipaddr"), "{stderr}");
}

#[test]
fn a_truncated_capture_is_read_up_to_the_cut_and_said() {
    let (pcap, _) = lab_pcap("cut.pcapng", Some(30));
    let (stdout, stderr, ok) = hopscope(&[
        "capture",
        "-r",
        pcap.to_str().unwrap(),
        "-E",
        &tcpdump_spec(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("cut off or damaged"), "{stderr}");
    assert!(stdout.lines().count() > 10, "{stdout}");
    let (_, stderr, ok) = hopscope(&["capture", "-r", "Cargo.toml"]);
    assert!(!ok && stderr.contains("not a pcap"), "{stderr}");
}

#[test]
fn tshark_decrypts_the_same_packets_to_the_same_inner_headers() {
    assert!(
        Command::new("tshark").arg("-v").output().is_ok(),
        "tshark missing: apt-get install tshark (.ci/run installs it)"
    );
    let (pcap, opened) = lab_pcap("ts.pcapng", None);
    let esp_sa = |dst: &str| {
        format!(
            "uat:esp_sa:\"IPv4\",\"*\",\"{dst}\",\"0x00000003\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"{KEY3}\",\"NULL\",\"\""
        )
    };
    let out = Command::new("tshark")
        .args([
            "-n",
            "-r",
            pcap.to_str().unwrap(),
            "-o",
            "esp.enable_encryption_decode:TRUE",
        ])
        .args(["-o", &esp_sa("10.0.0.40"), "-o", &esp_sa("10.0.1.138")])
        .args([
            "-Y",
            "esp",
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ip.len",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Each ESP line: outer and inner addresses and lengths, as tshark decrypted them.
    let inner: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(';').collect();
            (f.len() == 3).then(|| {
                let srcs: Vec<&str> = f[0].split(',').collect();
                let lens: Vec<&str> = f[2].split(',').collect();
                format!(
                    "{} {}",
                    srcs.get(1).unwrap_or(&"-"),
                    lens.get(1).unwrap_or(&"-")
                )
            })
        })
        .collect();
    let ours: Vec<String> = opened
        .iter()
        .map(|b| {
            format!(
                "{}.{}.{}.{} {}",
                b[12],
                b[13],
                b[14],
                b[15],
                u16::from_be_bytes([b[2], b[3]])
            )
        })
        .collect();
    assert_eq!(inner, ours, "tshark: {text}");
}

#[test]
fn a_capture_filter_applies_to_the_file_read_as_trailing_words_or_f() {
    let (pcap, _) = lab_pcap("filtered.pcapng", None);
    let p = pcap.to_str().unwrap();
    let (all, stderr, ok) = hopscope(&["capture", "-r", p]);
    assert!(ok, "{stderr}");
    let esp_lines = all.lines().filter(|l| l.contains(": ESP(")).count();
    assert!(esp_lines > 0 && all.contains("ICMP echo"), "{all}");
    // tcpdump's habit: `capture -r FILE esp` filters as `-f esp` does.
    for args in [
        &["capture", "-r", p, "esp"][..],
        &["capture", "-r", p, "-f", "esp"],
    ] {
        let (out, stderr, ok) = hopscope(args);
        assert!(ok, "{stderr}");
        assert_eq!(out.lines().count(), esp_lines, "{args:?}: {out}");
        assert!(out.lines().all(|l| l.contains(": ESP(")), "{args:?}: {out}");
    }
    let (out, stderr, ok) = hopscope(&["capture", "-r", p, "icmp", "and", "not", "esp"]);
    assert!(ok, "{stderr}");
    assert!(out.lines().count() > 0 && !out.contains("ESP("), "{out}");
    let (_, stderr, ok) = hopscope(&["capture", "-r", p, "-f", "esp", "icmp"]);
    assert!(!ok && stderr.contains("two capture filters"), "{stderr}");
}
