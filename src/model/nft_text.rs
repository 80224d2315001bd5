//! nft's JSON expressions as `nft list` prints them: the reader names each rule with it and
//! the trace names what it could not evaluate, so it lives with the rules' model, below both.

use serde_json::Value;

/// One statement as `nft list` prints it (close enough to recognise the rule).
pub fn stmt(s: &Value) -> String {
    let Some((k, v)) = s.as_object().and_then(|o| o.iter().next()) else {
        return s.to_string();
    };
    match k.as_str() {
        "match" => {
            let op = v["op"].as_str().unwrap_or("==");
            let op = match op {
                "==" | "in" => String::new(),
                o => format!("{o} "),
            };
            format!("{} {op}{}", expr(&v["left"]), expr(&v["right"]))
        }
        "counter" => "counter".into(),
        "accept" | "drop" | "return" | "continue" | "notrack" => k.clone(),
        "jump" | "goto" => format!("{k} {}", v["target"].as_str().unwrap_or("?")),
        "mangle" => format!("{} set {}", expr(&v["key"]), expr(&v["value"])),
        "dnat" | "snat" => {
            let addr = expr(&v["addr"]);
            match v.get("port") {
                Some(p) => format!("{k} to {addr}:{}", expr(p)),
                None => format!("{k} to {addr}"),
            }
        }
        "masquerade" | "redirect" => match v.get("port") {
            Some(p) => format!("{k} to :{}", expr(p)),
            None => k.clone(),
        },
        "vmap" => format!("{} vmap {}", expr(&v["key"]), expr(&v["data"])),
        "reject" => "reject".into(),
        "log" => "log".into(),
        _ => format!("{k} {v}"),
    }
}

/// An expression (a key, a value, a set, a map) as `nft list` prints it.
pub fn expr(e: &Value) -> String {
    match e {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => a.iter().map(expr).collect::<Vec<_>>().join(", "),
        Value::Null => String::new(),
        Value::Object(o) => {
            let Some((k, v)) = o.iter().next() else {
                return String::new();
            };
            match k.as_str() {
                "payload" => format!(
                    "{} {}",
                    v["protocol"].as_str().unwrap_or("?"),
                    v["field"].as_str().unwrap_or("?")
                ),
                "meta" => format!("meta {}", v["key"].as_str().unwrap_or("?")),
                "ct" => format!("ct {}", v["key"].as_str().unwrap_or("?")),
                "fib" => format!(
                    "fib {} {}",
                    v["flags"]
                        .as_array()
                        .map(|f| f.iter().map(expr).collect::<Vec<_>>().join(" . "))
                        .unwrap_or_else(|| expr(&v["flags"])),
                    v["result"].as_str().unwrap_or("?")
                ),
                "numgen" => format!(
                    "numgen {} mod {}",
                    v["mode"].as_str().unwrap_or("?"),
                    v["mod"]
                ),
                "concat" => v
                    .as_array()
                    .map(|a| a.iter().map(expr).collect::<Vec<_>>().join(" . "))
                    .unwrap_or_default(),
                "set" => match v {
                    Value::Array(a) => format!(
                        "{{ {} }}",
                        a.iter()
                            .map(|x| match x {
                                Value::Array(kv) if kv.len() == 2 =>
                                    format!("{} : {}", expr(&kv[0]), verdict_text(&kv[1])),
                                x => expr(x),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    x => expr(x),
                },
                "prefix" => format!("{}/{}", expr(&v["addr"]), v["len"]),
                "range" => v
                    .as_array()
                    .map(|a| a.iter().map(expr).collect::<Vec<_>>().join("-"))
                    .unwrap_or_default(),
                "&" | "|" | "^" => v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(expr)
                            .collect::<Vec<_>>()
                            .join(&format!(" {k} "))
                    })
                    .unwrap_or_default(),
                "elem" => expr(&v["val"]),
                _ => verdict_text(e),
            }
        }
    }
}

/// `goto X`, `jump X`, `drop`, ... as a map value.
pub fn verdict_text(v: &Value) -> String {
    match v.as_object().and_then(|o| o.iter().next()) {
        Some((k, t)) if k == "jump" || k == "goto" => {
            format!("{k} {}", t["target"].as_str().unwrap_or("?"))
        }
        Some((k, Value::Null)) => k.clone(),
        Some((k, t)) => format!("{k} {t}"),
        None => expr(v),
    }
}
