//! The canonical JSON form of a record: object keys sorted at every level (the last of
//! repeated keys kept), scalars written as serde_json writes them. Records are stored in this
//! form and deduplicated by its SHA-256, so it must never change: a record re-sent after an
//! upgrade must hash as it did before. It is byte for byte what decoding the record into a
//! `serde_json::Value` and writing that with sorted keys gives (the form every stored hash
//! was made with); the tests hold the two side by side.
//!
//! The content arrives as JSON text ([`RawContent`]); it is parsed here into a [`Node`] tree
//! that borrows its strings from that text, which is much cheaper than a `Value`.

use std::borrow::Cow;
use std::fmt;

use crewsafe_protocol::{RawContent, WireRecord};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Why a record's content has no canonical form, though the batch around it was well-formed
/// JSON: it holds a number out of range or nesting deeper than the JSON decoder's limit, or an
/// object led by serde_json's raw-value marker that does not stand for JSON text.
#[derive(Debug)]
pub(crate) struct Unreadable;

/// The canonical JSON of a whole record. Its keys in sorted order: content, device_time, id,
/// kind, lane, parent_id.
pub(crate) fn canonical_record(rec: &WireRecord<RawContent>) -> Result<String, Unreadable> {
    let content: Node<'_> = serde_json::from_str(rec.content.get()).map_err(|_| Unreadable)?;
    let mut out = Vec::with_capacity(rec.content.get().len() + 256);
    out.extend_from_slice(br#"{"content":"#);
    content.write(&mut out);
    out.extend_from_slice(br#","device_time":"#);
    push_json(&mut out, &rec.device_time);
    out.extend_from_slice(br#","id":"#);
    push_json(&mut out, &rec.id);
    out.extend_from_slice(br#","kind":"#);
    push_json(&mut out, &rec.kind);
    out.extend_from_slice(br#","lane":"#);
    push_json(&mut out, &rec.lane);
    if let Some(parent) = &rec.parent_id {
        out.extend_from_slice(br#","parent_id":"#);
        push_json(&mut out, parent);
    }
    out.push(b'}');
    // Only UTF-8 went in: serde_json writes UTF-8 and so do the literals above.
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// A JSON value as the canonical form needs it: strings borrowed from the text where they
/// hold no escapes, numbers as serde_json holds them in a `Value` (so they are written the
/// same way), objects as their entries in the order sent.
enum Node<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
    /// What an object led by [`RAW_VALUE_KEY`] stands for.
    Value(serde_json::Value),
}

/// The key by which serde_json (built with its `raw_value` feature, as here) marks an object
/// that stands for JSON text; a `Value` decodes such an object as that text.
const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

impl Node<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(b) => push_json(out, b),
            Node::Number(n) => push_json(out, n),
            Node::String(s) => push_json(out, &**s),
            Node::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Node::Value(value) => write_canonical(value, out),
            Node::Object(entries) => {
                // Sorted by key; of repeated keys the last one sent counts, as in a `Value`.
                let mut sorted: Vec<&(Cow<'_, str>, Node<'_>)> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push(b'{');
                let mut first = true;
                for (i, (key, value)) in sorted.iter().map(|e| (&e.0, &e.1)).enumerate() {
                    if sorted.get(i + 1).is_some_and(|next| next.0 == *key) {
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    push_json(out, &**key);
                    out.push(b':');
                    value.write(out);
                }
                out.push(b'}');
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Node<'de>, E> {
        // As a `Value` holds it: a number that is not finite becomes null.
        Ok(serde_json::Number::from_f64(n).map_or(Node::Null, Node::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(s.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let Some(first) = map.next_key_seed(Key)? else {
            return Ok(Node::Object(Vec::new()));
        };
        if first == RAW_VALUE_KEY {
            // As a `Value` reads it: an object whose first key is serde_json's raw-value
            // marker stands for the JSON text that is its value (anything after it makes the
            // content malformed).
            let text = map.next_value_seed(Key)?;
            let value = serde_json::from_str(&text).map_err(de::Error::custom)?;
            return Ok(Node::Value(value));
        }
        let mut entries = vec![(first, map.next_value()?)];
        while let Some(key) = map.next_key_seed(Key)? {
            entries.push((key, map.next_value()?));
        }
        Ok(Node::Object(entries))
    }
}

/// An object key, borrowed from the text where it holds no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
}

/// Serializes a JSON value with object keys sorted at every level, independent of how
/// serde_json was built (the `preserve_order` feature would otherwise keep insertion order):
/// the form every stored hash was made with, kept as the tests' reference.
#[cfg(test)]
fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `v` with object keys sorted at every level.
fn write_canonical(v: &serde_json::Value, out: &mut Vec<u8>) {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json(out, k);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => push_json(out, scalar),
    }
}

fn push_json(out: &mut Vec<u8>, v: &(impl serde::Serialize + ?Sized)) {
    // Writing a string, a time or a scalar into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use crewsafe_protocol::{Kind, Lane};

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":[{"y":1,"x":"\u00e9\""}],"c":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"c":null,"z":[{"x":"é\"","y":1}]},"b":1}"#
        );
        // Keys and scalars are written as `Value::to_string` writes them (already-sorted keys
        // here, so both must agree byte for byte: stored hashes depend on it).
        let b: serde_json::Value = serde_json::from_str(
            r#"{"\u0001k\n":[1.5,-0.0,1e300,-7,true,"tab\tq\"\\ \u2028"],"z\u00e9":{}}"#,
        )
        .unwrap();
        assert_eq!(canonical_json(&b), b.to_string());
    }

    /// The canonical form of the record sent as `text`, and the form every stored hash was
    /// made with (the record decoded into a `Value`, written with sorted keys).
    fn both_ways(text: &str) -> (String, String) {
        let raw: WireRecord<RawContent> = serde_json::from_str(text).unwrap();
        let tree: WireRecord = serde_json::from_str(text).unwrap();
        (
            canonical_record(&raw).unwrap(),
            canonical_json(&serde_json::to_value(&tree).unwrap()),
        )
    }

    fn record_text(content: &str, parent: Option<&str>) -> String {
        let parent = parent.map_or(String::new(), |p| format!(r#""parent_id":{p},"#));
        format!(
            r#"{{"id":"6f1c2a0e-3c51-4c39-a4c5-0f0c2b6d9e11","kind":"sos","lane":"sos",{parent}
                "device_time":"2026-11-25T10:00:00.123456789Z","content":{content}}}"#
        )
    }

    #[test]
    fn canonical_record_equals_canonical_json_of_the_record() {
        for (content, parent) in [
            (
                r#"{"z":1,"crew":{"id":"\u00e9\"\n","b":[2.5,-0.0,null]},"a":true}"#,
                None,
            ),
            ("[]", Some(r#""\u2028parent""#)),
            // Repeated keys: the last one counts.
            (r#"{"b":1,"a":2,"b":3,"a":{"x":1,"x":[2]}}"#, None),
            // Escaped keys sort by their decoded text.
            (
                r#"{"\u0062":1,"a":2,"\u00e9":3,"\ud83d\ude91":4,"e\u0301":5}"#,
                None,
            ),
            // Numbers in every form JSON allows.
            (
                r#"[0,-0,1.0,1e2,1E-7,-0.0,18446744073709551615,18446744073709551616,
                   -9223372036854775808,-9223372036854775809,0.1,2.5e-324,1.7976931348623157e308,
                   123456789012345678901234567890]"#,
                None,
            ),
            // serde_json's raw-value marker, read as a `Value` reads it.
            (
                r#"{"a":{"$serde_json::private::RawValue":"{\"y\":1,\"x\":[2]}"}}"#,
                None,
            ),
            (r#"{"$serde_json::private::RawValue":"\"text\""}"#, None),
            (r#"{"x":{"$serde_json::private::RawValue":1,"y":2}}"#, None),
            ("\"just a string\"", None),
            ("null", None),
        ] {
            let text = record_text(content, parent);
            let tree = serde_json::from_str::<WireRecord>(&text);
            let raw: WireRecord<RawContent> = serde_json::from_str(&text).unwrap();
            match tree {
                Ok(_) => {
                    let (ours, reference) = both_ways(&text);
                    assert_eq!(ours, reference, "{content}");
                }
                // What a `Value` cannot hold has no canonical form either.
                Err(_) => assert!(canonical_record(&raw).is_err(), "{content}"),
            }
        }
        let mut rec: WireRecord<RawContent> =
            serde_json::from_str(&record_text("{}", None)).unwrap();
        rec.kind = Kind::IncidentReport;
        rec.lane = Lane::Report;
        rec.device_time = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let tree: WireRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        assert_eq!(
            canonical_record(&rec).unwrap(),
            canonical_json(&serde_json::to_value(&tree).unwrap())
        );
    }

    /// Random JSON texts (nesting, repeated and escaped keys, numbers of every form,
    /// whitespace) give the same canonical form both ways.
    #[test]
    fn canonical_form_matches_the_value_form_on_random_content() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        const KEYS: &[&str] = &["a", "b", "\\u0061", "aa", "\\u00e9", "é", "", "\\n", "B"];
        const SCALARS: &[&str] = &[
            "0",
            "-0",
            "7",
            "-12",
            "1.5",
            "-0.0",
            "1e3",
            "2E-2",
            "1e400",
            "18446744073709551616",
            "-9223372036854775809",
            "3.141592653589793238",
            "true",
            "false",
            "null",
            "\"\"",
            "\"x\\\"y\"",
            "\"\\ud83d\\ude91\"",
            "\"tab\\tq\"",
            "\"\u{2028}\"",
        ];
        fn value(next: &mut impl FnMut(u64) -> u64, depth: u32, out: &mut String) {
            let pick = if depth > 4 { 2 } else { next(4) };
            match pick {
                0 => {
                    out.push_str("{ ");
                    for i in 0..next(5) {
                        if i > 0 {
                            out.push_str(" ,");
                        }
                        out.push_str(&format!("\"{}\" :", KEYS[next(KEYS.len() as u64) as usize]));
                        value(next, depth + 1, out);
                    }
                    out.push('}');
                }
                1 => {
                    out.push('[');
                    for i in 0..next(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        value(next, depth + 1, out);
                    }
                    out.push_str(" ]");
                }
                _ => out.push_str(SCALARS[next(SCALARS.len() as u64) as usize]),
            }
        }
        let mut compared = 0;
        for _ in 0..3000 {
            let mut content = String::from("{\"top\":");
            value(&mut next, 0, &mut content);
            content.push('}');
            let text = record_text(&content, None);
            if serde_json::from_str::<WireRecord>(&text).is_err() {
                // 1e400 is out of range: no canonical form either.
                let raw: WireRecord<RawContent> = serde_json::from_str(&text).unwrap();
                assert!(canonical_record(&raw).is_err(), "{content}");
                continue;
            }
            let (ours, reference) = both_ways(&text);
            assert_eq!(ours, reference, "{content}");
            compared += 1;
        }
        assert!(compared > 1000, "{compared}");
    }
}
