//! The canonical JSON form of a record: object keys sorted at every level, scalars written as
//! serde_json writes them. Records are stored in this form and deduplicated by its SHA-256,
//! so it must never change: a record re-sent after an upgrade must hash as it did before.

use crewsafe_protocol::WireRecord;

/// Serializes a JSON value with object keys sorted at every level, independent of how
/// serde_json was built (the `preserve_order` feature would otherwise keep insertion order).
/// Keys and scalars are written exactly as `Value::to_string` writes them.
#[cfg(test)]
fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    // serde_json only writes UTF-8, and so do the brackets and separators.
    String::from_utf8_lossy(&out).into_owned()
}

/// The canonical JSON of a whole record, byte for byte `canonical_json(&to_value(record))`
/// (the stored dedupe hashes depend on it), written without building a copy of the record
/// as a `Value` first. Its keys in sorted order: content, device_time, id, kind, lane,
/// parent_id.
pub(crate) fn canonical_record(rec: &WireRecord) -> String {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(br#"{"content":"#);
    write_canonical(&rec.content, &mut out);
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
    String::from_utf8_lossy(&out).into_owned()
}

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

    #[test]
    fn canonical_record_equals_canonical_json_of_the_record() {
        let mut rec: WireRecord = serde_json::from_str(
            r#"{"id":"6f1c2a0e-3c51-4c39-a4c5-0f0c2b6d9e11","kind":"sos","lane":"sos",
                "device_time":"2026-11-25T10:00:00.123456789Z",
                "content":{"z":1,"crew":{"id":"\u00e9\"\n","b":[2.5,-0.0,null]},"a":true}}"#,
        )
        .unwrap();
        let via_value = |r: &WireRecord| canonical_json(&serde_json::to_value(r).unwrap());
        assert_eq!(canonical_record(&rec), via_value(&rec));
        rec.kind = Kind::SosLocation;
        rec.parent_id = Some("\u{2028}parent".into());
        rec.device_time = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(canonical_record(&rec), via_value(&rec));
        rec.kind = Kind::IncidentReport;
        rec.lane = Lane::Report;
        rec.parent_id = None;
        rec.content = serde_json::json!([]);
        assert_eq!(canonical_record(&rec), via_value(&rec));
    }
}
