//! Shortening a JSON record to a byte budget without breaking it.
//!
//! A receiver cuts a message longer than its limit (rsyslog: `maxMessageSize`, 8 KiB by
//! default), which would leave half a JSON object. So a record that does not fit is
//! shortened here, into valid JSON, before it is framed:
//! 1. the longest strings (in practice `process.command_line`, `process.args` elements,
//!    parent command lines, long executable paths, all attacker-controlled) are cut, longest
//!    first, to what is needed but not below 64 bytes, and end with `…`;
//! 2. if that is not enough, trailing elements of the largest arrays (`process.args`) go;
//! 3. if that is still not enough, top-level fields are kept in order of importance
//!    (`@timestamp`, `event`, `host`, `rule`, `threat`, `destination`, `process`, ...) while
//!    they fit.
//!
//! The record then says so: `monitor.truncated: true` and `monitor.original_bytes` (the
//! size of the full JSON). The full record still goes to stdout and file outputs.

use serde_json::{Map, Value};

/// Strings are not cut below this many bytes in step 1.
const MIN_KEEP: usize = 64;
const ELLIPSIS: &str = "…";

/// Returns `json` shortened to at most `budget` bytes, as valid JSON (see the module doc).
/// `json` must be valid JSON; `budget` should leave room for the essentials (a few hundred
/// bytes); below that the result is `{"monitor":{"truncated":true}}`.
pub(crate) fn fit_json(json: &str, budget: usize) -> String {
    if json.len() <= budget {
        return json.to_string();
    }
    // Only an object can carry the truncation mark (a bare number would come back
    // reformatted and unmarked).
    let Ok(mut doc @ Value::Object(_)) = serde_json::from_str::<Value>(json) else {
        return minimal(json.len(), budget);
    };
    mark(&mut doc, json.len());
    // Each round removes at least the measured excess from one node or marks a node as
    // done, so a bounded number of rounds is enough; the bound guards against surprises.
    for _ in 0..256 {
        let size = encoded_len(&doc);
        if size <= budget {
            return serde_json::to_string(&doc).unwrap_or_else(|_| minimal(json.len(), budget));
        }
        let excess = size - budget;
        if !cut_longest_string(&mut doc, excess) && !trim_largest_array(&mut doc, excess) {
            break;
        }
    }
    keep_what_fits(&doc, budget, json.len())
}

fn minimal(original: usize, budget: usize) -> String {
    let v = serde_json::json!({"monitor": {"truncated": true, "original_bytes": original}});
    let s = v.to_string();
    if s.len() <= budget {
        s
    } else {
        r#"{"monitor":{"truncated":true}}"#.to_string()
    }
}

fn mark(doc: &mut Value, original: usize) {
    if let Value::Object(top) = doc {
        let monitor = top
            .entry("monitor")
            .or_insert_with(|| Value::Object(Map::new()));
        if !monitor.is_object() {
            *monitor = Value::Object(Map::new());
        }
        if let Value::Object(m) = monitor {
            m.insert("truncated".into(), Value::Bool(true));
            m.insert("original_bytes".into(), Value::from(original as u64));
        }
    }
}

fn encoded_len(v: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

fn escaped_str_len(s: &str) -> usize {
    s.chars().map(escaped_len).sum()
}

/// Finds the longest string value (by encoded size) longer than `MIN_KEEP` and cuts it by
/// `excess` encoded bytes (plus the ellipsis), keeping at least `MIN_KEEP`. Object keys are
/// not touched. Returns false when no string can be cut.
fn cut_longest_string(doc: &mut Value, excess: usize) -> bool {
    fn longest<'a>(v: &'a mut Value, best: &mut Option<(usize, &'a mut String)>) {
        match v {
            Value::String(s) => {
                let len = escaped_str_len(s);
                if len > MIN_KEEP + ELLIPSIS.len() && best.as_ref().is_none_or(|(l, _)| len > *l) {
                    *best = Some((len, s));
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| longest(x, best)),
            Value::Object(o) => o.values_mut().for_each(|x| longest(x, best)),
            _ => {}
        }
    }
    let mut best = None;
    longest(doc, &mut best);
    let Some((len, s)) = best else { return false };
    let target = len.saturating_sub(excess + ELLIPSIS.len()).max(MIN_KEEP);
    let mut used = 0;
    let mut cut = 0;
    for (i, c) in s.char_indices() {
        let l = escaped_len(c);
        if used + l > target {
            break;
        }
        used += l;
        cut = i + c.len_utf8();
    }
    s.truncate(cut);
    s.push_str(ELLIPSIS);
    true
}

/// Removes trailing elements of the largest non-empty array until `excess` bytes are gone
/// (or the array is empty). Returns false when every array is empty.
fn trim_largest_array(doc: &mut Value, excess: usize) -> bool {
    fn largest<'a>(v: &'a mut Value, best: &mut Option<(usize, &'a mut Vec<Value>)>) {
        match v {
            Value::Array(a) => {
                let len = encoded_len(&Value::Array(Vec::new()))
                    + a.iter().map(|x| encoded_len(x) + 1).sum::<usize>();
                let keep = a.is_empty() || best.as_ref().is_some_and(|(l, _)| len <= *l);
                if !keep {
                    *best = Some((len, a));
                } else {
                    a.iter_mut().for_each(|x| largest(x, best));
                }
            }
            Value::Object(o) => o.values_mut().for_each(|x| largest(x, best)),
            _ => {}
        }
    }
    let mut best = None;
    largest(doc, &mut best);
    let Some((_, a)) = best else { return false };
    let mut removed = 0;
    while removed < excess {
        match a.pop() {
            Some(x) => removed += encoded_len(&x) + 1,
            None => break,
        }
    }
    true
}

/// Last resort: a new object with the most important top-level fields that fit.
fn keep_what_fits(doc: &Value, budget: usize, original: usize) -> String {
    const ORDER: [&str; 12] = [
        "@timestamp",
        "event",
        "host",
        "rule",
        "threat",
        "destination",
        "network",
        "process",
        "source",
        "user",
        "container",
        "labels",
    ];
    let Value::Object(top) = doc else {
        return minimal(original, budget);
    };
    let mut out = Map::new();
    let mut monitor = Map::new();
    monitor.insert("truncated".into(), Value::Bool(true));
    monitor.insert("original_bytes".into(), Value::from(original as u64));
    out.insert("monitor".into(), Value::Object(monitor));
    let mut keys: Vec<&str> = ORDER.to_vec();
    keys.extend(
        top.keys()
            .map(String::as_str)
            .filter(|k| !ORDER.contains(k) && *k != "monitor"),
    );
    for k in keys {
        let Some(v) = top.get(k) else { continue };
        out.insert(k.to_string(), v.clone());
        if encoded_len(&Value::Object(out.clone())) > budget {
            out.remove(k);
        }
    }
    let s = Value::Object(out).to_string();
    if s.len() <= budget {
        s
    } else {
        minimal(original, budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(out: &str, budget: usize) -> Value {
        assert!(out.len() <= budget, "{} > {budget}: {out}", out.len());
        let v: Value = serde_json::from_str(out).expect("valid JSON");
        assert_eq!(v["monitor"]["truncated"], Value::Bool(true), "{out}");
        v
    }

    #[test]
    fn short_records_pass_unchanged() {
        assert_eq!(fit_json(r#"{"a":1}"#, 100), r#"{"a":1}"#);
    }

    #[test]
    fn long_command_line_is_cut_and_marked() {
        let cmd = format!("curl {}\n\"]\\", "x".repeat(20_000));
        let doc = serde_json::json!({
            "@timestamp": "2026-01-01T00:00:00Z",
            "event": {"kind": "alert"},
            "rule": {"id": "r1", "name": "short"},
            "process": {"pid": 1, "command_line": cmd, "name": "curl"},
            "monitor": {"enrichment": "full"},
        });
        let json = doc.to_string();
        let out = fit_json(&json, 2000);
        let v = check(&out, 2000);
        assert_eq!(v["rule"]["id"], "r1");
        assert_eq!(v["process"]["name"], "curl");
        assert_eq!(v["monitor"]["enrichment"], "full");
        assert_eq!(v["monitor"]["original_bytes"], json.len() as u64);
        let cl = v["process"]["command_line"].as_str().unwrap();
        assert!(cl.starts_with("curl xxx") && cl.ends_with('…'), "{cl}");
        // Used the room it had, not far less.
        assert!(out.len() > 1800, "{}", out.len());
    }

    #[test]
    fn escapes_and_multibyte_text_are_cut_cleanly() {
        for filler in ["\u{1}", "é", "\"", "\\", "\n", "😀"] {
            let doc = serde_json::json!({"process": {"command_line": filler.repeat(5000)}});
            let json = doc.to_string();
            for budget in [300, 1000, 2048, 4999] {
                check(&fit_json(&json, budget), budget);
            }
        }
    }

    #[test]
    fn many_small_args_are_dropped_from_the_end() {
        let args: Vec<String> = (0..5000).map(|i| format!("a{i}")).collect();
        let doc = serde_json::json!({"@timestamp": "t", "process": {"args": args}});
        let out = fit_json(&doc.to_string(), 2048);
        let v = check(&out, 2048);
        let kept = v["process"]["args"].as_array().unwrap();
        assert!(!kept.is_empty() && kept.len() < 5000);
        assert_eq!(kept[0], "a0");
    }

    #[test]
    fn many_keys_fall_back_to_the_important_fields() {
        let mut labels = Map::new();
        for i in 0..2000 {
            labels.insert(format!("k{i}"), Value::from(i));
        }
        let doc = serde_json::json!({"@timestamp": "t", "event": {"kind": "alert"},
            "rule": {"id": "r"}, "labels": labels});
        let v = check(&fit_json(&doc.to_string(), 2048), 2048);
        assert_eq!(v["rule"]["id"], "r");
        assert_eq!(v["@timestamp"], "t");
        assert!(v.get("labels").is_none());
    }

    #[test]
    fn tiny_budget_still_gives_valid_json() {
        let doc = serde_json::json!({"process": {"command_line": "x".repeat(1000)}});
        let out = fit_json(&doc.to_string(), 40);
        check(&out, 40);
    }

    #[test]
    fn json_that_is_not_an_object_becomes_the_marker() {
        // Found by the syslog_frame fuzz target: a long number came back shorter, unmarked.
        let number = "66666666666666666666666666666.0";
        let out = fit_json(number, 25);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["monitor"]["truncated"], Value::Bool(true), "{out}");
    }
}
