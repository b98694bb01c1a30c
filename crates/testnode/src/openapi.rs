//! Holds a test node to the real node's published API: every JSON answer it
//! serves is checked against the OpenAPI 3 documents the real node
//! publishes (pinned in the repo with their source), and an answer that
//! does not conform is replaced by a 500 naming the endpoint, the schema
//! path and what is wrong, so the test that caused it fails.
//!
//! The schema language checked is the subset those documents use (octez's:
//! `type`, `nullable`, `properties`, `required`, `additionalProperties`,
//! `items`, `enum`, `minimum`, `maximum`, `oneOf`, `$ref` into
//! `#/components/schemas`, `pattern`) and Blockfrost's and the Beacon API's
//! (`allOf`, `anyOf`, length and item bounds, `uniqueItems`).
//! A keyword outside it is reported, never ignored. `oneOf` is taken as
//! "at least one": the documents describe tagged unions whose branches can
//! overlap on partial objects, and the tags are checked by `enum`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::sync::Arc;

/// One OpenAPI document, serving paths under `prefix` (octez's protocol
/// document describes paths relative to `/chains/{chain_id}/blocks/{block_id}`).
#[derive(Debug)]
pub struct Document {
    prefix: Vec<String>,
    doc: Value,
    name: String,
    /// Paths whose published response schema is known not to describe
    /// what the node sends, with the schema that does (built from the
    /// document's own components) and the reason.
    retargeted: Vec<(String, Value, String)>,
}

impl Document {
    /// A document (JSON) named `name` (for messages), for paths under
    /// `prefix` (`""` for none; `{x}` segments match anything).
    pub fn new(name: &str, prefix: &str, json: &str) -> Result<Document, String> {
        let doc: Value = serde_json::from_str(json).map_err(|e| format!("{name}: {e}"))?;
        Document::from_value(name, prefix, doc)
    }

    /// [`Document::new`] for a document written in YAML.
    pub fn from_yaml(name: &str, prefix: &str, yaml: &str) -> Result<Document, String> {
        let doc: Value = serde_yaml::from_str(yaml).map_err(|e| format!("{name}: {e}"))?;
        Document::from_value(name, prefix, doc)
    }

    fn from_value(name: &str, prefix: &str, doc: Value) -> Result<Document, String> {
        if doc["openapi"].as_str().is_none_or(|v| !v.starts_with("3.")) {
            return Err(format!("{name}: not an OpenAPI 3 document"));
        }
        Ok(Document {
            prefix: segments(prefix),
            doc,
            name: name.to_owned(),
            retargeted: Vec::new(),
        })
    }

    /// Checks answers at `template` (a path of the document) against the
    /// schema `make` builds from the document (its `$ref`s resolve in it),
    /// not the published one: only where the published schema is known
    /// not to describe what the node sends, for `reason`.
    pub fn retarget(
        mut self,
        template: &str,
        reason: &str,
        make: impl FnOnce(&Value) -> Value,
    ) -> Document {
        let schema = make(&self.doc);
        self.retargeted
            .push((template.to_owned(), schema, reason.to_owned()));
        self
    }
}

fn segments(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn matches(template: &[String], path: &[&str]) -> bool {
    template.len() == path.len()
        && template
            .iter()
            .zip(path)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
}

/// The operation of `method` at `path` in the first document that serves
/// it: the document, the path template and the operation (`None` when a
/// document serves the path but not the method: `Some((d, t, None))`).
type Found<'a> = (&'a Document, &'a str, Option<&'a Value>);

/// The documents a test node answers by.
#[derive(Debug, Clone)]
pub struct Api {
    docs: Arc<Vec<Document>>,
}

impl Api {
    /// The documents, searched in order.
    pub fn new(docs: Vec<Document>) -> Api {
        Api {
            docs: Arc::new(docs),
        }
    }

    /// A test node's pinned documents, parsed once into `cell` (a pinned
    /// document that does not parse is a broken checkout: panic).
    pub fn pinned(
        cell: &'static std::sync::OnceLock<Api>,
        docs: impl FnOnce() -> Result<Vec<Document>, String>,
    ) -> Api {
        cell.get_or_init(|| Api::new(docs().unwrap_or_else(|e| panic!("{e}"))))
            .clone()
    }

    /// See [`Found`]: a literal segment wins over a parameter
    /// (`/context/delegates` before `/context/{x}`).
    fn find(&self, method: &str, path: &str) -> Option<Found<'_>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for d in self.docs.iter() {
            if parts.len() < d.prefix.len() || !matches(&d.prefix, &parts[..d.prefix.len()]) {
                continue;
            }
            let rest = &parts[d.prefix.len()..];
            let Some(paths) = d.doc["paths"].as_object() else {
                continue;
            };
            let mut found: Vec<(&String, &Value)> = paths
                .iter()
                .filter(|(t, _)| matches(&segments(t), rest))
                .collect();
            found.sort_by_key(|(t, _)| t.matches('{').count());
            if let Some((template, item)) = found.first() {
                return Some((d, template.as_str(), item.get(method)));
            }
        }
        None
    }

    /// The schema of an operation's 200 answer.
    fn answer_schema(op: &Value) -> &Value {
        &op["responses"]["200"]["content"]["application/json"]["schema"]
    }

    /// Checks a 200 answer to `method path` (no query). `Err` says what
    /// does not conform, with the document and the schema path.
    pub fn check(&self, method: &str, path: &str, body: &Value) -> Result<(), String> {
        let method = method.to_ascii_lowercase();
        let Some((d, template, op)) = self.find(&method, path) else {
            return Err(format!("no published document serves {method} {path}"));
        };
        let retargeted = d.retargeted.iter().find(|(t, _, _)| t == template);
        let Some(schema) = op
            .map(Api::answer_schema)
            .map(|s| retargeted.map_or(s, |r| &r.1))
        else {
            return Err(format!("{} has no {method} at {template}", d.name));
        };
        let at = match retargeted {
            Some((_, _, why)) => format!("{}: paths.{template} (retargeted: {why})", d.name),
            None => format!("{}: paths.{template}.{method}.responses.200", d.name),
        };
        Checker { doc: &d.doc }
            .check(schema, body, &at, 0)
            .map_err(|m| m.to_string())
    }

    /// An answer to `method path` built from the document's own examples
    /// (a leaf's `example`, else the simplest value of its type; every
    /// listed property present; arrays with one element, or `minItems`):
    /// a test node starts
    /// from it and sets what it knows, so that what it does not model is
    /// still what the real API documents.
    pub fn example(&self, method: &str, path: &str) -> Option<Value> {
        let (d, template, op) = self.find(&method.to_ascii_lowercase(), path)?;
        // Where the published schema is known wrong, the example is built
        // from the schema the answers are checked against.
        let schema = match d.retargeted.iter().find(|(t, _, _)| t == template) {
            Some((_, s, _)) => s,
            None => Api::answer_schema(op?),
        };
        Some(Checker { doc: &d.doc }.example(schema, 0))
    }

    /// The answer to `method path` the document itself shows: the response
    /// schema's own `example` where it has one (a recorded-looking whole
    /// answer), else [`Api::example`].
    pub fn documented(&self, method: &str, path: &str) -> Option<Value> {
        let (d, _, op) = self.find(&method.to_ascii_lowercase(), path)?;
        let c = Checker { doc: &d.doc };
        let schema = c.resolve(Api::answer_schema(op?));
        Some(
            schema
                .get("example")
                .cloned()
                .unwrap_or_else(|| c.example(schema, 0)),
        )
    }

    /// An axum middleware (`axum::middleware::from_fn`) that checks every
    /// 200 JSON answer and turns one that does not conform into a 500
    /// naming the endpoint and the schema path.
    pub async fn conform(self, req: Request, next: Next) -> Response {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let res = next.run(req).await;
        if res.status() != StatusCode::OK {
            return res;
        }
        let (parts, body) = res.into_parts();
        let bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => return fail(&method, &path, &format!("unreadable body: {e}")),
        };
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return fail(&method, &path, &format!("not JSON: {e}")),
        };
        if let Err(e) = self.check(&method, &path, &value) {
            return fail(&method, &path, &e);
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// A JSON-RPC 2.0 server over HTTP POST (CometBFT's), whose published
/// document describes each method as `GET /{method}` (its URI form) with
/// the JSON-RPC envelope as the answer: an answer carrying `result` is
/// checked against that operation's 200 schema, one carrying `error`
/// against `error_schema` (the server's own error object).
#[derive(Debug, Clone)]
pub struct JsonRpcApi {
    api: Api,
    error_schema: Arc<Value>,
}

impl JsonRpcApi {
    /// The documents, and the schema of an error envelope.
    pub fn new(api: Api, error_schema: Value) -> JsonRpcApi {
        JsonRpcApi {
            api,
            error_schema: Arc::new(error_schema),
        }
    }

    /// The documents.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Checks one envelope answering `method`.
    pub fn check(&self, method: &str, body: &Value) -> Result<(), String> {
        if body.get("result").is_some() {
            return self.api.check("GET", &format!("/{method}"), body);
        }
        if body.get("error").is_some() {
            // Checked against the first document's components.
            let d = self.api.docs.first().ok_or("no published document")?;
            return Checker { doc: &d.doc }
                .check(
                    &self.error_schema,
                    body,
                    &format!("{}: the JSON-RPC error envelope", d.name),
                    0,
                )
                .map_err(|m| m.to_string());
        }
        Err("neither result nor error".into())
    }

    /// An axum middleware for a JSON-RPC endpoint: reads the method from
    /// the request and checks the answer (see [`JsonRpcApi::check`]); one
    /// that does not conform becomes a 500 naming the method and the
    /// schema path. Batches are not served by the test nodes and pass.
    pub async fn conform(self, req: Request, next: Next) -> Response {
        let path = req.uri().path().to_owned();
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => return fail("POST", &path, &format!("unreadable request: {e}")),
        };
        let method = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["method"].as_str().map(str::to_owned));
        let res = next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
        let Some(method) = method else {
            return res;
        };
        if res.status() != StatusCode::OK {
            return res;
        }
        let (parts, body) = res.into_parts();
        let bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(b) => b,
            Err(e) => return fail("POST", &method, &format!("unreadable body: {e}")),
        };
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return fail("POST", &method, &format!("not JSON: {e}")),
        };
        if let Err(e) = self.check(&method, &value) {
            return fail("POST", &format!("{path} {method}"), &e);
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

fn fail(method: &str, path: &str, why: &str) -> Response {
    let msg =
        format!("test node answer to {method} {path} does not conform to the published API: {why}");
    // Printed too: an adapter may turn the 500 into a retry and hide it.
    eprintln!("{msg}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!([{"kind": "permanent", "id": "softstake.test_node.nonconforming", "msg": msg}])),
    )
        .into_response()
}

/// Where a value departs from its schema.
#[derive(Debug)]
struct Miss {
    at: String,
    why: String,
    depth: usize,
    /// Failed on an `enum`: in a union, the branch for another tag.
    tag: bool,
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.why)
    }
}

struct Checker<'a> {
    doc: &'a Value,
}

/// Keywords checked.
const KEYWORDS: [&str; 18] = [
    "type",
    "nullable",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minimum",
    "maximum",
    "oneOf",
    "anyOf",
    "allOf",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
];

/// Keywords that only annotate (`format` included: the documents use it
/// for documentation, e.g. `int64` on strings).
const ANNOTATIONS: [&str; 6] = [
    "title",
    "description",
    "example",
    "default",
    "format",
    "deprecated",
];

/// A schema's `pattern`, compiled once.
fn pattern(p: &str) -> Result<regex::Regex, String> {
    static CACHE: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, regex::Regex>>,
    > = std::sync::OnceLock::new();
    let mut c = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(re) = c.get(p) {
        return Ok(re.clone());
    }
    // Counted repetitions as long as a byte list's limit (`{0,2147483648}`)
    // would make an automaton larger than any answer: unbounded instead.
    static BIG: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let big = BIG
        .get_or_init(|| regex::Regex::new(r"\{(\d+),(\d{5,})\}").unwrap_or_else(|e| panic!("{e}")));
    let bounded = big.replace_all(p, "{$1,}");
    let re = regex::Regex::new(&bounded).map_err(|e| e.to_string())?;
    c.insert(p.to_owned(), re.clone());
    Ok(re)
}

fn int(x: &Value) -> Option<i128> {
    x.as_i64()
        .map(i128::from)
        .or_else(|| x.as_u64().map(i128::from))
}

impl Checker<'_> {
    /// A schema with its `$ref`s followed.
    fn resolve<'s>(&'s self, mut s: &'s Value) -> &'s Value {
        for _ in 0..16 {
            match s
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                Some(name) => s = &self.doc["components"]["schemas"][name],
                None => break,
            }
        }
        s
    }

    /// See [`Api::example`].
    fn example(&self, s: &Value, depth: usize) -> Value {
        let s = self.resolve(s);
        if depth > 32 {
            return Value::Null;
        }
        // Objects and arrays are built from their parts: a whole-object
        // example may leave out a field the schema requires.
        let composite = matches!(
            s.get("type").and_then(Value::as_str),
            Some("object" | "array")
        );
        if let Some(x) = s.get("example")
            && !composite
        {
            return x.clone();
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            // Objects merge; a scalar (a `$ref` to a string type beside a
            // description) is the first part's.
            let mut out = serde_json::Map::new();
            let mut scalar = None;
            for part in all {
                match self.example(part, depth + 1) {
                    Value::Object(o) => out.extend(o),
                    Value::Null => {}
                    x => {
                        scalar.get_or_insert(x);
                    }
                }
            }
            return match scalar {
                Some(x) if out.is_empty() => x,
                _ => Value::Object(out),
            };
        }
        if let Some(first) = s
            .get("oneOf")
            .or_else(|| s.get("anyOf"))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return self.example(first, depth + 1);
        }
        if let Some(first) = s
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return first.clone();
        }
        match s.get("type").and_then(Value::as_str) {
            Some("object") => Value::Object(
                s["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, p)| (k.clone(), self.example(p, depth + 1)))
                    .collect(),
            ),
            // One element (a template to copy), or as many as required.
            Some("array") => {
                let n = s
                    .get("minItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .max(1);
                let item = self.example(&s["items"], depth + 1);
                Value::Array(vec![item; usize::try_from(n).unwrap_or(1)])
            }
            Some("string") => Value::String(String::new()),
            Some("integer") | Some("number") => serde_json::json!(0),
            Some("boolean") => Value::Bool(false),
            _ => Value::Null,
        }
    }

    fn check(&self, s: &Value, v: &Value, at: &str, depth: usize) -> Result<(), Miss> {
        let miss = |why: String| Miss {
            at: at.to_owned(),
            why,
            depth,
            tag: false,
        };
        if depth > 64 {
            return Err(miss("schema nests too deep".into()));
        }
        let Some(obj) = s.as_object() else {
            return Err(miss("schema is not an object".into()));
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            let target = r
                .strip_prefix("#/components/schemas/")
                .map(|name| &self.doc["components"]["schemas"][name])
                .filter(|t| !t.is_null())
                .ok_or_else(|| miss(format!("$ref {r} is not in the document")))?;
            return self.check(target, v, &format!("{at} > {r}"), depth + 1);
        }
        if let Some(k) = obj
            .keys()
            .find(|k| !KEYWORDS.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()))
        {
            return Err(miss(format!("schema keyword {k} is not checked here")));
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            // One object made of all the parts (each part alone would
            // refuse the others' fields), then the rest of this schema.
            let mut merged = serde_json::Map::new();
            let (mut props, mut required) = (serde_json::Map::new(), Vec::new());
            for part in all {
                let part = self.resolve(part);
                for (k, x) in part.as_object().into_iter().flatten() {
                    match k.as_str() {
                        "properties" => {
                            props.extend(x.as_object().cloned().unwrap_or_default());
                        }
                        "required" => required.extend(x.as_array().cloned().unwrap_or_default()),
                        _ => {
                            merged.insert(k.clone(), x.clone());
                        }
                    }
                }
            }
            for (k, x) in obj.iter().filter(|(k, _)| *k != "allOf") {
                merged.insert(k.clone(), x.clone());
            }
            if !props.is_empty() {
                merged.insert("properties".into(), Value::Object(props));
            }
            if !required.is_empty() {
                merged.insert("required".into(), Value::Array(required));
            }
            return self.check(&Value::Object(merged), v, &format!("{at}.allOf"), depth + 1);
        }
        if v.is_null() && obj.get("nullable") == Some(&Value::Bool(true)) {
            return Ok(());
        }
        if let Some(alts) = obj
            .get("oneOf")
            .or_else(|| obj.get("anyOf"))
            .and_then(Value::as_array)
        {
            let mut misses = Vec::new();
            for (i, a) in alts.iter().enumerate() {
                match self.check(a, v, &format!("{at}.oneOf[{i}]"), depth + 1) {
                    Ok(()) => {
                        misses.clear();
                        break;
                    }
                    Err(m) => misses.push(m),
                }
            }
            // Every branch's reason, when asked (SOFTSTAKE_OPENAPI_DEBUG=1).
            if std::env::var_os("SOFTSTAKE_OPENAPI_DEBUG").is_some() {
                for m in &misses {
                    eprintln!(
                        "openapi: branch miss (depth {}, tag {}): {m}",
                        m.depth, m.tag
                    );
                }
            }
            // The closest branch: one whose tags match, then the one that
            // got deepest into the value.
            if let Some(best) = misses.into_iter().max_by_key(|m| (!m.tag, m.depth)) {
                return Err(Miss {
                    why: format!(
                        "matches none of {} alternatives; closest: {best}",
                        alts.len()
                    ),
                    at: at.to_owned(),
                    depth: best.depth,
                    tag: best.tag,
                });
            }
        }
        if let Some(t) = obj.get("type").and_then(Value::as_str) {
            let ok = match t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "boolean" => v.is_boolean(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "null" => v.is_null(),
                other => return Err(miss(format!("unknown type {other}"))),
            };
            if !ok {
                return Err(miss(format!("expected {t}, got {}", short(v))));
            }
        }
        if let Some(e) = obj.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            return Err(Miss {
                tag: true,
                ..miss(format!(
                    "{} is not one of {}",
                    short(v),
                    short(&Value::Array(e.clone()))
                ))
            });
        }
        if let Some(n) = int(v) {
            if let Some(min) = obj.get("minimum").and_then(int)
                && n < min
            {
                return Err(miss(format!("{n} is below the minimum {min}")));
            }
            if let Some(max) = obj.get("maximum").and_then(int)
                && n > max
            {
                return Err(miss(format!("{n} is above the maximum {max}")));
            }
        }
        if let (Some(p), Some(x)) = (obj.get("pattern").and_then(Value::as_str), v.as_str()) {
            match pattern(p) {
                Ok(re) if re.is_match(x) => {}
                Ok(_) => return Err(miss(format!("{} does not match {p}", short(v)))),
                Err(e) => return Err(miss(format!("pattern {p} is not checked here: {e}"))),
            }
        }
        if let Some(o) = v.as_object() {
            let props = obj.get("properties").and_then(Value::as_object);
            let required = obj
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            for r in required {
                if !o.contains_key(r) {
                    return Err(miss(format!("required field {r} is missing")));
                }
            }
            for (k, x) in o {
                match (
                    props.and_then(|p| p.get(k)),
                    obj.get("additionalProperties"),
                ) {
                    (Some(ps), _) => self.check(ps, x, &format!("{at}.{k}"), depth + 1)?,
                    (None, Some(ap @ Value::Object(_))) => {
                        self.check(ap, x, &format!("{at}.{k}"), depth + 1)?;
                    }
                    // Octez's objects are closed: a field its document does
                    // not name is one octez never sends.
                    (None, Some(Value::Bool(false))) => {
                        return Err(miss(format!("field {k} is not in the schema")));
                    }
                    (None, _) if props.is_some() => {
                        return Err(miss(format!("field {k} is not in the schema")));
                    }
                    (None, _) => {}
                }
            }
        }
        if let Some(x) = v.as_str() {
            let n = x.chars().count();
            if let Some(min) = obj.get("minLength").and_then(Value::as_u64)
                && (n as u64) < min
            {
                return Err(miss(format!("{} is shorter than {min}", short(v))));
            }
            if let Some(max) = obj.get("maxLength").and_then(Value::as_u64)
                && (n as u64) > max
            {
                return Err(miss(format!("{} is longer than {max}", short(v))));
            }
        }
        if let Some(a) = v.as_array() {
            let n = a.len() as u64;
            if let Some(min) = obj.get("minItems").and_then(Value::as_u64)
                && n < min
            {
                return Err(miss(format!("{n} items, fewer than {min}")));
            }
            if let Some(max) = obj.get("maxItems").and_then(Value::as_u64)
                && n > max
            {
                return Err(miss(format!("{n} items, more than {max}")));
            }
            if obj.get("uniqueItems") == Some(&Value::Bool(true))
                && a.iter().enumerate().any(|(i, x)| a[..i].contains(x))
            {
                return Err(miss("items repeat where they must be unique".into()));
            }
        }
        if let (Some(items), Some(a)) = (obj.get("items"), v.as_array()) {
            for (i, x) in a.iter().enumerate() {
                self.check(items, x, &format!("{at}[{i}]"), depth + 1)?;
            }
        }
        Ok(())
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(77).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn api() -> Api {
        let doc = json!({
            "openapi": "3.0.0",
            "paths": {
                "/x/{id}/balance": {"get": {"responses": {"200": {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/mutez"}}}}}}},
                "/x/list": {"get": {"responses": {"200": {"content": {"application/json": {
                    "schema": {"type": "array", "items": {"oneOf": [
                        {"type": "object", "properties": {"kind": {"type": "string", "enum": ["a"]}, "n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["kind", "n"]},
                        {"type": "object", "properties": {"kind": {"type": "string", "enum": ["b"]}, "bytes": {"type": "string", "pattern": "^([a-zA-Z0-9][a-zA-Z0-9])*$"}}, "required": ["kind"]}
                    ]}}}}}}}},
            },
            "components": {"schemas": {"mutez": {"type": "string", "nullable": true}}}
        });
        Api::new(vec![
            Document::new("t", "/chains/{c}", &doc.to_string()).unwrap(),
        ])
    }

    #[test]
    fn conforming_answers_pass_and_every_departure_is_named() {
        let a = api();
        a.check("GET", "/chains/main/x/tz1/balance", &json!("12"))
            .unwrap();
        a.check("GET", "/chains/main/x/tz1/balance", &Value::Null)
            .unwrap();
        let e = a
            .check("GET", "/chains/main/x/tz1/balance", &json!(12))
            .unwrap_err();
        assert!(
            e.contains("#/components/schemas/mutez: expected string"),
            "{e}"
        );
        a.check(
            "GET",
            "/chains/main/x/list",
            &json!([{"kind": "a", "n": 3}, {"kind": "b", "bytes": "0aff"}]),
        )
        .unwrap();
        for (bad, why) in [
            (json!([{"kind": "a"}]), "required field n"),
            (json!([{"kind": "a", "n": 10}]), "above the maximum"),
            (json!([{"kind": "c", "n": 1}]), "not one of"),
            (json!([{"kind": "b", "bytes": "0af"}]), "does not match"),
            (
                json!([{"kind": "a", "n": 1, "extra": true}]),
                "field extra is not in the schema",
            ),
        ] {
            let e = a.check("GET", "/chains/main/x/list", &bad).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
        let e = a.check("GET", "/chains/main/nope", &json!(1)).unwrap_err();
        assert!(e.contains("no published document"), "{e}");
        // allOf makes one object of its parts; anyOf takes any branch.
        let doc = json!({"openapi": "3.0.3", "paths": {"/a": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {
            "allOf": [{"$ref": "#/components/schemas/base"},
                      {"type": "object", "properties": {"extra": {"anyOf": [{"type": "integer"}, {"type": "string", "minLength": 2}]}},
                       "required": ["extra"]}]}}}}}}}},
            "components": {"schemas": {"base": {"type": "object", "properties": {"id": {"type": "string", "format": "hash", "example": "ab"},
                "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}}}, "required": ["id"]}}}});
        let b = Api::new(vec![Document::new("b", "", &doc.to_string()).unwrap()]);
        b.check("GET", "/a", &json!({"id": "x", "extra": 1}))
            .unwrap();
        // An answer made from the document's examples conforms.
        let ex = b.example("GET", "/a").unwrap();
        assert_eq!(ex, json!({"id": "ab", "tags": [""], "extra": 0}));
        b.check("GET", "/a", &ex).unwrap();
        b.check(
            "GET",
            "/a",
            &json!({"id": "x", "extra": "xy", "tags": ["t"]}),
        )
        .unwrap();
        for (bad, why) in [
            (json!({"extra": 1}), "required field id"),
            (json!({"id": "x"}), "required field extra"),
            (json!({"id": "x", "extra": "y"}), "shorter than 2"),
            (
                json!({"id": "x", "extra": 1, "tags": ["a", "b"]}),
                "more than 1",
            ),
            (
                json!({"id": "x", "extra": 1, "other": 0}),
                "field other is not in the schema",
            ),
        ] {
            let e = b.check("GET", "/a", &bad).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
        let doc = Document::new("t", "", &json!({"openapi": "3.0.0", "paths": {"/h": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {"type": "string"}}}}}}}}, "components": {"schemas": {"n": {"type": "integer"}}}}).to_string())
            .unwrap()
            .retarget("/h", "published wrong", |_| json!({"$ref": "#/components/schemas/n"}));
        let h = Api::new(vec![doc]);
        h.check("GET", "/h", &json!(1)).unwrap();
        let e = h.check("GET", "/h", &json!("1")).unwrap_err();
        assert!(e.contains("retargeted: published wrong"), "{e}");
        let e = a.check("GET", "/chains/main/nope", &json!(1)).unwrap_err();
        assert!(e.contains("no published document"), "{e}");
        let e = a
            .check("POST", "/chains/main/x/list", &json!([]))
            .unwrap_err();
        assert!(e.contains("has no post"), "{e}");
    }

    /// A JSON-RPC server's answers are checked by method: a result
    /// against `GET /{method}`, an error against the error schema, and a
    /// nonconforming one becomes a 500 naming the method.
    #[tokio::test]
    async fn json_rpc_answers_are_checked_by_method() {
        let doc = json!({
            "openapi": "3.0.0",
            "paths": {"/count": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"type": "object", "required": ["result"],
                    "properties": {"id": {"type": "integer"}, "result": {"type": "object", "required": ["n"],
                        "properties": {"n": {"type": "string", "pattern": "^[0-9]+$"}}}}}}}}}}}},
        });
        let api = JsonRpcApi::new(
            Api::new(vec![Document::new("t", "", &doc.to_string()).unwrap()]),
            json!({"type": "object", "required": ["error"], "properties": {"id": {"type": "integer"},
                "error": {"type": "object", "required": ["code"], "properties": {"code": {"type": "integer"}}}}}),
        );
        async fn answer(axum::Json(req): axum::Json<Value>) -> axum::Json<Value> {
            axum::Json(match req["params"]["say"].as_str().unwrap_or("") {
                "good" => json!({"id": 1, "result": {"n": "12"}}),
                "number" => json!({"id": 1, "result": {"n": 12}}),
                "error" => json!({"id": 1, "error": {"code": -32603}}),
                _ => json!({"id": 1, "error": "a string"}),
            })
        }
        let app = axum::Router::new()
            .route("/", axum::routing::post(answer))
            .layer(axum::middleware::from_fn(move |req, next| {
                api.clone().conform(req, next)
            }));
        let addr = crate::serve(app, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let mut seen = Vec::new();
        for say in ["good", "number", "error", "string"] {
            let r = http
                .post(format!("http://{addr}/"))
                .json(
                    &json!({"jsonrpc": "2.0", "id": 1, "method": "count", "params": {"say": say}}),
                )
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            seen.push((say, status, body.contains("/ count")));
        }
        assert_eq!(
            seen,
            [
                ("good", 200, false),
                ("number", 500, true),
                ("error", 200, false),
                ("string", 500, true)
            ]
        );
    }
}
