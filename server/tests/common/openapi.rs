//! Checks the server's answers against `server/openapi.yaml`: the answer's status must be one
//! the document lists for the request's path, and its JSON body must match that response's
//! schema. [`super::parse`] and [`super::expect_error`] call [`check`], so every test that reads
//! an answer through them validates it.
//!
//! The document is OpenAPI 3.0, whose schemas are not quite JSON Schema: `nullable: true`
//! becomes `anyOf: [schema, {type: null}]` (also where the schema has no `type`, as with
//! `allOf: [$ref]`), and the keywords that are not JSON Schema (`nullable`, `discriminator`,
//! `example`) are dropped. Formats (`date-time`, `uuid`) are validated.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Map, Value};

/// The document, its components converted to JSON Schema.
struct Spec {
    doc: Value,
    components: Value,
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("openapi.yaml");
        let doc: Value = serde_yaml_ng::from_str(&text).expect("openapi.yaml parses");
        let schemas = doc["components"]["schemas"]
            .as_object()
            .expect("components.schemas")
            .iter()
            .map(|(k, v)| (k.clone(), to_json_schema(v)))
            .collect::<Map<_, _>>();
        Spec {
            components: json!({ "schemas": schemas }),
            doc,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

/// An OpenAPI 3.0 schema object as JSON Schema (2020-12).
pub fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match k.as_str() {
                    "nullable" | "discriminator" | "example" | "xml" | "externalDocs" => {}
                    "properties" => {
                        let props = v
                            .as_object()
                            .expect("properties")
                            .iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s)))
                            .collect();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(k.clone(), to_json_schema(v));
                    }
                }
            }
            if m.get("nullable") == Some(&Value::Bool(true)) {
                json!({ "anyOf": [Value::Object(out), { "type": "null" }] })
            } else {
                Value::Object(out)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

/// Whether the document's path template `template` matches `path`.
fn path_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

/// Follows a local `$ref` in the document.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.strip_prefix('#').expect("local $ref"))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

/// Checks an answer to a request on `path` (without the query): `status` must be documented
/// for the path (under any of its methods) and `body`, when the response documents a JSON
/// body, must match its schema. Panics with what differs.
pub fn check(path: &str, status: u16, body: &[u8]) {
    let spec = spec();
    let paths = spec.doc["paths"].as_object().expect("paths");
    let found = paths.iter().find(|(t, _)| path_matches(t, path));
    // 404 for an unknown path and 405 for a method a path does not have are documented once,
    // in the description, for every path.
    let Some((template, item)) = found.filter(|_| status != 405) else {
        assert!(
            status == 405 || status == 404,
            "{path} is not in openapi.yaml (answered {status})"
        );
        let body: Value = serde_json::from_slice(body).expect("JSON error body");
        check_schema("ErrorBody", &body);
        return;
    };
    let code = status.to_string();
    let responses: Vec<(&str, &Value)> = ["get", "post", "delete", "put", "patch"]
        .iter()
        .filter_map(|m| Some((*m, item.get(*m)?.get("responses")?.get(&code)?)))
        .collect();
    assert!(
        !responses.is_empty(),
        "openapi.yaml does not document status {status} for {template}"
    );
    let mut failures = Vec::new();
    for (method, response) in responses {
        let response = resolve(&spec.doc, response);
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            return;
        };
        let key = format!("{method} {template} {code}");
        let validator = {
            let mut cache = spec.validators.lock().unwrap();
            cache
                .entry(key.clone())
                .or_insert_with(|| {
                    let mut root = to_json_schema(schema);
                    root["components"] = spec.components.clone();
                    std::sync::Arc::new(
                        jsonschema::options()
                            .with_draft(jsonschema::Draft::Draft202012)
                            .should_validate_formats(true)
                            .build(&root)
                            .unwrap_or_else(|e| panic!("schema of {key}: {e}")),
                    )
                })
                .clone()
        };
        let instance: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{key}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )
        });
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            return;
        }
        failures.push(format!("{key}: {}", errors.join("; ")));
    }
    let shown = String::from_utf8_lossy(&body[..body.len().min(600)]);
    panic!(
        "answer does not match openapi.yaml:\n{}\nbody: {shown}",
        failures.join("\n")
    );
}

/// Checks one value against a named schema of `components.schemas` (e.g. an event's data).
pub fn check_schema(name: &str, value: &Value) {
    let spec = spec();
    let mut root = json!({ "$ref": format!("#/components/schemas/{name}") });
    root["components"] = spec.components.clone();
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("schema {name}: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{name} does not match openapi.yaml: {}\nvalue: {value}",
        errors.join("; ")
    );
}
