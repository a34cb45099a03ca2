//! The API server's HTTP front: path routing, query parsing, content negotiation
//! (plain JSON, Table, PartialObjectMetadata) and mapping results to responses.
//!
//! Routing is a match over path segments rather than a router table because Kubernetes
//! paths are ambiguous by position (`/api/v1/namespaces/x` is an object,
//! `/api/v1/namespaces/x/services` a collection) and the resource set is fixed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use crate::api::{self, Sub, WriteOpts};
use crate::core::Core;
use crate::deletion::{self, DeleteOptions, Deleted};
use crate::discovery;
use crate::error::ApiError;
use crate::field_labels;
use crate::key::{Key, key_for};
use crate::patch::PatchType;
use crate::registry::Registry;
use crate::resources::{self, ResourceDef};
use crate::reviews;
use crate::scale;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::table;
use crate::watch::{self, Render, Start, WatchSpec};

/// Largest accepted request body (the real server's limit is 3 MiB for most objects).
const MAX_BODY: usize = 8 << 20;

type Query = HashMap<String, String>;

/// Serves one request. Never fails: every error becomes a `Status` response.
pub(crate) async fn handle<B>(core: Arc<Core>, req: Request<B>) -> Result<Response<Body>, Infallible>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: Query =
        req.uri().query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let headers = req.headers().clone();
    if let Some(sec) = &core.security
        && !sec.admits(headers.get(http::header::AUTHORIZATION))
    {
        return Ok(error(&ApiError::new(401, "Unauthorized", "Unauthorized".to_owned())));
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error(&ApiError::new(413, "RequestEntityTooLarge", format!("reading the request body: {e}"))));
        }
    };
    tracing::debug!(cluster = %core.name, %method, %path, ?query, "api request");
    let resp = route(&core, &method, &path, &query, &headers, body).await;
    Ok(resp.unwrap_or_else(|e| error(&e)))
}

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes_response(code, bytes)
}

fn bytes_response(code: StatusCode, bytes: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = code;
    r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

fn error(e: &ApiError) -> Response<Body> {
    json_response(StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &e.to_status())
}

fn not_found_path() -> ApiError {
    ApiError::new(404, "NotFound", "the server could not find the requested resource")
}

fn render_of(headers: &HeaderMap, query: &Query) -> Render {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("as=Table") {
        Render::Table(query.get("includeObject").map(String::as_str) == Some("Object"))
    } else if accept.contains("as=PartialObjectMetadata") {
        Render::Meta
    } else {
        Render::Object
    }
}

async fn route(
    core: &Arc<Core>,
    method: &Method,
    path: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if *method == Method::GET
        && let Some(resp) = meta_get(core, &segs)
    {
        return resp;
    }
    if *method == Method::POST
        && let Some(review) = reviews::find(&segs)
    {
        refuse_binary_bodies(headers)?;
        let answered = reviews::answer(review, parse_body(&body)?)?;
        return Ok(json_response(StatusCode::CREATED, &answered));
    }
    let target = ResourcePath::parse(core.store.read().registry(), &segs)?;
    let watch = target.watch || matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let agent = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let what = (target.def.group.as_str(), target.def.plural.as_str(), target.sub);
    core.audit.record(agent, method, what, target.name.is_some(), watch);
    core.load.request(method == http::Method::GET && target.name.is_none() && !watch);
    refuse_binary_bodies(headers)?;
    let req = ResourceRequest {
        core,
        def: target.def,
        ns: target.ns,
        name: target.name,
        sub: target.sub,
        query,
        headers,
        watch_path: target.watch,
    };
    match *method {
        Method::GET => req.get(),
        Method::POST => req.create(&body),
        Method::PUT => req.replace(&body),
        Method::PATCH => req.patch(&body),
        Method::DELETE => req.delete(&body),
        _ => Err(ApiError::method_not_allowed(format!("method {method} is not supported"))),
    }
}

/// GETs outside the resource paths: version, health probes, discovery and OpenAPI.
/// `None` when the path is a resource path.
fn meta_get(core: &Core, segs: &[&str]) -> Option<Result<Response<Body>, ApiError>> {
    let found = |v: Option<Value>| Some(v.map(|v| json_response(StatusCode::OK, &v)).ok_or_else(not_found_path));
    let g = core.store.read();
    let reg = g.registry();
    match segs {
        ["version"] => found(Some(discovery::version())),
        [probe, ..] if matches!(*probe, "healthz" | "readyz" | "livez") => {
            let mut r = Response::new(Body::from("ok"));
            r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
            Some(Ok(r))
        }
        ["api"] => found(Some(discovery::api_versions(&format!("127.0.0.1:{}", core.port())))),
        ["apis"] => found(Some(discovery::api_group_list(reg))),
        ["openapi", "v3"] => found(Some(discovery::openapi_index(reg))),
        ["openapi", "v3", "api", v] => found(discovery::openapi_doc(reg, "", v)),
        ["openapi", "v3", "apis", grp, v] => found(discovery::openapi_doc(reg, grp, v)),
        ["api", v] => found(discovery::resource_list(reg, "", v)),
        ["apis", grp] => found(discovery::api_group(reg, grp)),
        ["apis", grp, v] => found(discovery::resource_list(reg, grp, v)),
        _ => None,
    }
}

/// What a resource path addresses: `/api/v1/…` or `/apis/<group>/<version>/…`, then
/// optionally `watch/`, then `namespaces/<ns>/` for namespaced resources, then
/// `<plural>[/<name>[/<subresource>]]`.
struct ResourcePath {
    def: Arc<ResourceDef>,
    ns: Option<String>,
    name: Option<String>,
    sub: Sub,
    /// The deprecated `/watch/` prefix.
    watch: bool,
}

impl ResourcePath {
    fn parse(reg: &Registry, segs: &[&str]) -> Result<Self, ApiError> {
        let (group, version, rest) = match segs {
            ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
            ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
            _ => return Err(not_found_path()),
        };
        let (watch, rest) = match rest {
            ["watch", rest @ ..] => (true, rest),
            _ => (false, rest),
        };
        let namespaced_form = rest.len() >= 3
            && rest[0] == "namespaces"
            && reg.by_plural(group, version, rest[2]).is_some_and(|r| r.namespaced);
        let (ns, rest) = if namespaced_form { (Some(rest[1].to_string()), &rest[2..]) } else { (None, rest) };
        let (plural, name, sub) = match rest {
            [p] => (*p, None, None),
            [p, n] => (*p, Some(n.to_string()), None),
            [p, n, s] => (*p, Some(n.to_string()), Some(*s)),
            _ => return Err(not_found_path()),
        };
        let def = reg.by_plural(group, version, plural).ok_or_else(not_found_path)?;
        if def.namespaced && ns.is_none() && name.is_some() {
            return Err(not_found_path());
        }
        Ok(Self { sub: subresource(&def, sub)?, def, ns, name, watch })
    }
}

/// The subresource a path names, if `res` has it.
fn subresource(def: &ResourceDef, sub: Option<&str>) -> Result<Sub, ApiError> {
    match sub {
        None => Ok(Sub::Main),
        Some("status") if def.status => Ok(Sub::Status),
        Some("finalize") if def.id == resources::NAMESPACES => Ok(Sub::Finalize),
        Some("scale") if def.scale => Ok(Sub::Scale),
        Some(_) => Err(not_found_path()),
    }
}

/// 415 for protobuf and CBOR bodies, which are not decoded (see `discovery::GIT_VERSION`):
/// clearer than a parse error.
fn refuse_binary_bodies(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type})"
            ),
        ));
    }
    Ok(())
}

struct ResourceRequest<'a> {
    core: &'a Arc<Core>,
    /// The resource at the version the path names.
    def: Arc<ResourceDef>,
    ns: Option<String>,
    name: Option<String>,
    sub: Sub,
    query: &'a Query,
    headers: &'a HeaderMap,
    watch_path: bool,
}

/// Parses a request body as JSON, or YAML when it is not JSON (apply bodies).
fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(json_err) => serde_yaml::from_slice::<Value>(body).map_err(|_| {
            ApiError::bad_request(format!("the body of the request was in an unknown format: {json_err}"))
        }),
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ListOut<'a> {
    kind: String,
    api_version: String,
    metadata: Value,
    items: Vec<std::borrow::Cow<'a, Value>>,
}

/// One page of a list.
struct Page {
    items: Vec<Arc<Value>>,
    /// The list's resourceVersion (a continued list keeps the first page's).
    rv: u64,
    /// Where the next page starts, when more remain.
    next: Option<ContinueToken>,
    /// How many objects follow this page, when known: without selectors, as etcd counts
    /// the keys left in the range.
    remaining: Option<usize>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: u64,
    ns: String,
    name: String,
}

impl ResourceRequest<'_> {
    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    fn q_bool(&self, k: &str) -> bool {
        matches!(self.q(k), Some("true" | "1"))
    }

    /// The `fieldManager` parameter, or else the User-Agent up to its first `/`, as
    /// kube-apiserver names managers (`kubectl/v1.31.9 (linux/amd64)` → `kubectl`).
    fn field_manager(&self) -> Option<String> {
        if let Some(m) = self.q("fieldManager").filter(|s| !s.is_empty()) {
            return Some(m.to_string());
        }
        let ua = self.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
        let prefix: String = ua.split('/').next().unwrap_or("").chars().filter(|c| !c.is_control()).take(128).collect();
        (!prefix.is_empty()).then_some(prefix)
    }

    fn write_opts(&self) -> WriteOpts {
        WriteOpts {
            field_manager: self.field_manager(),
            dry_run: self.q("dryRun").is_some_and(|d| d == "All"),
            privileged: false,
            force: self.q_bool("force"),
        }
    }

    /// The `fieldSelector` parameter, limited to the fields the resource supports.
    fn field_selector(&self) -> Result<FieldSelector, ApiError> {
        FieldSelector::parse(self.q("fieldSelector").unwrap_or(""))?.resolve(|l| field_labels::source(&self.def, l))
    }

    fn render(&self) -> Render {
        render_of(self.headers, self.query)
    }

    fn object_response(&self, code: StatusCode, obj: &Value) -> Response<Body> {
        match self.render() {
            Render::Table(full) => json_response(code, &table::table(&self.def, [obj], json!({}), true, full)),
            Render::Meta => json_response(code, &table::partial(obj)),
            Render::Object => json_response(code, &self.def.view(obj)),
        }
    }

    fn get(&self) -> Result<Response<Body>, ApiError> {
        if let (Sub::Scale, Some(name)) = (self.sub, &self.name) {
            let s = scale::get(&self.core.store, &self.def, self.ns.as_deref(), name)?;
            return Ok(json_response(StatusCode::OK, &s));
        }
        let labels = LabelSelector::parse(self.q("labelSelector").unwrap_or(""))?;
        let fields = self.field_selector()?;
        if self.watch_path || self.q_bool("watch") {
            return self.watch(labels, fields);
        }
        if let Some(name) = &self.name {
            let key = key_for(&self.def, self.ns.as_deref(), name);
            let obj = self.core.store.get(&key).ok_or_else(|| self.def.not_found(name))?;
            return Ok(self.object_response(StatusCode::OK, &obj));
        }
        self.list(labels, fields)
    }

    fn list(&self, labels: LabelSelector, fields: FieldSelector) -> Result<Response<Body>, ApiError> {
        let limit = self.q("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
        let token = match self.q("continue").filter(|c| !c.is_empty()) {
            Some(c) => Some(decode_continue(c)?),
            None => None,
        };
        let Page { items, rv, next, remaining } = self.page(&labels, &fields, limit, token.as_ref())?;
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if let Some(t) = next {
            let raw = serde_json::to_vec(&t).unwrap_or_default();
            meta["continue"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
        }
        if let Some(n) = remaining {
            meta["remainingItemCount"] = json!(n);
        }
        let objs: Vec<&Value> = items.iter().map(|o| o.as_ref()).collect();
        let body = match self.render() {
            Render::Table(full) => table::table(&self.def, objs, meta, true, full),
            Render::Meta => {
                let partials: Vec<Value> = objs.iter().map(|o| table::partial(o)).collect();
                json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": partials})
            }
            Render::Object => {
                let out = ListOut {
                    kind: self.def.list_kind(),
                    api_version: self.def.api_version(),
                    metadata: meta,
                    items: objs.iter().map(|o| self.def.view(o)).collect(),
                };
                return Ok(bytes_response(StatusCode::OK, serde_json::to_vec(&out).unwrap_or_default()));
            }
        };
        Ok(json_response(StatusCode::OK, &body))
    }

    /// One page of the list, from the latest state or where a continue token left off:
    /// the objects, the list's resourceVersion and the token for the next page.
    fn page(
        &self,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        token: Option<&ContinueToken>,
    ) -> Result<Page, ApiError> {
        let g = self.core.store.read();
        let (rv, after) = match token {
            Some(t) => {
                g.check_not_compacted(t.rv).map_err(|_| {
                    ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                })?;
                (t.rv, Some((self.def.id, t.ns.clone(), t.name.clone())))
            }
            None => (g.rv(), None),
        };
        let mut items: Vec<(&Key, Arc<Value>)> = Vec::new();
        let pinned = fields.pinned_name();
        for (k, stored) in g.range(self.def.id, self.ns.as_deref(), after.as_ref()) {
            if pinned.is_some_and(|p| p != k.2) {
                continue;
            }
            let obj = stored.value();
            if !labels.matches(&obj) || !fields.matches(&obj) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                // More remain: resume after the last returned key.
                let next = items.last().map(|(k, _)| ContinueToken {
                    v: "meta.k8s.io/v1".into(),
                    rv,
                    ns: k.1.clone(),
                    name: k.2.clone(),
                });
                let unfiltered = labels.is_empty() && fields.is_empty();
                let remaining = match items.last() {
                    Some((last, _)) if unfiltered => {
                        Some(g.range(self.def.id, self.ns.as_deref(), Some(*last)).count())
                    }
                    _ => None,
                };
                return Ok(Page { items: items.into_iter().map(|(_, o)| o).collect(), rv, next, remaining });
            }
            items.push((k, Arc::new(obj)));
        }
        Ok(Page { items: items.into_iter().map(|(_, o)| o).collect(), rv, next: None, remaining: None })
    }

    fn watch(&self, labels: LabelSelector, fields: FieldSelector) -> Result<Response<Body>, ApiError> {
        let spec = WatchSpec {
            def: self.def.clone(),
            ns: self.ns.clone(),
            name: self.name.clone(),
            labels,
            fields,
            render: self.render(),
        };
        let initial = self.q_bool("sendInitialEvents");
        let start = match self.q("resourceVersion").filter(|rv| !rv.is_empty() && *rv != "0") {
            _ if initial => Start::Current { initial_end_bookmark: true },
            None => Start::Current { initial_end_bookmark: false },
            Some(rv) => Start::After(
                crate::util::parse_rv(rv)
                    .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
            ),
        };
        let timeout = match self.q("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()) {
            Some(t) if t > 0 => Duration::from_secs(t),
            _ => watch::default_timeout(),
        };
        let bookmarks = self.q_bool("allowWatchBookmarks");
        let rx = watch::start(self.core.clone(), spec, start, bookmarks, timeout);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
        let mut r = Response::new(Body::from_stream(stream));
        r.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        r.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache, private"));
        Ok(r)
    }

    fn create(&self, body: &[u8]) -> Result<Response<Body>, ApiError> {
        if self.name.is_some() {
            return Err(ApiError::method_not_allowed("POST is only supported on collections"));
        }
        if self.sub == Sub::Scale {
            return Err(ApiError::method_not_allowed("the scale subresource supports get, update and patch"));
        }
        let obj = parse_body(body)?;
        let created = api::create(&self.core.store, &self.def, self.ns.as_deref(), obj, &self.write_opts())?;
        Ok(self.object_response(StatusCode::CREATED, &created))
    }

    fn replace(&self, body: &[u8]) -> Result<Response<Body>, ApiError> {
        let name = self.name.as_deref().ok_or_else(|| ApiError::method_not_allowed("PUT needs an object name"))?;
        let obj = parse_body(body)?;
        if self.sub == Sub::Scale {
            let s = scale::replace(&self.core.store, &self.def, self.ns.as_deref(), name, &obj, &self.write_opts())?;
            return Ok(json_response(StatusCode::OK, &s));
        }
        let updated =
            api::replace(&self.core.store, &self.def, self.ns.as_deref(), name, obj, self.sub, &self.write_opts())?;
        Ok(self.object_response(StatusCode::OK, &updated))
    }

    fn patch(&self, body: &[u8]) -> Result<Response<Body>, ApiError> {
        let name = self.name.as_deref().ok_or_else(|| ApiError::method_not_allowed("PATCH needs an object name"))?;
        let ct = self.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let ptype = PatchType::from_content_type(ct)
            .ok_or_else(|| ApiError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})")))?;
        let opts = self.write_opts();
        if ptype == PatchType::Apply && self.q("fieldManager").is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                "PATCH requests of type application/apply-patch+yaml must include a fieldManager query parameter",
            ));
        }
        let patch = parse_body(body)?;
        if self.sub == Sub::Scale {
            let s = scale::patch(&self.core.store, &self.def, self.ns.as_deref(), name, ptype, &patch, &opts)?;
            return Ok(json_response(StatusCode::OK, &s));
        }
        let (obj, created) =
            api::patch(&self.core.store, &self.def, self.ns.as_deref(), name, ptype, &patch, self.sub, &opts)?;
        Ok(self.object_response(if created { StatusCode::CREATED } else { StatusCode::OK }, &obj))
    }

    fn delete_options(&self, body: &[u8]) -> Result<Value, ApiError> {
        let mut opts = if body.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_body(body)? };
        let Some(m) = opts.as_object_mut() else {
            return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
        };
        if let Some(p) = self.q("propagationPolicy") {
            m.insert("propagationPolicy".into(), json!(p));
        }
        if let Some(o) = self.q("orphanDependents") {
            m.insert("orphanDependents".into(), json!(o == "true"));
        }
        if let Some(g) = self.q("gracePeriodSeconds").and_then(|g| g.parse::<i64>().ok()) {
            m.insert("gracePeriodSeconds".into(), json!(g));
        }
        if let Some(d) = self.q("dryRun") {
            m.insert("dryRun".into(), json!([d]));
        }
        Ok(opts)
    }

    fn delete(&self, body: &[u8]) -> Result<Response<Body>, ApiError> {
        if self.sub != Sub::Main {
            return Err(ApiError::method_not_allowed("DELETE is only supported on objects and collections"));
        }
        let raw = self.delete_options(body)?;
        let dry_run = self.q("dryRun") == Some("All")
            || raw.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|d| d == "All"));
        let opts = DeleteOptions::parse(&raw, dry_run)?;
        let def = &self.def;
        let Some(name) = &self.name else {
            return self.delete_collection(&opts);
        };
        match deletion::delete(&self.core.store, &self.def, self.ns.as_deref(), name, &opts)? {
            Deleted::Gone(last) => Ok(json_response(
                StatusCode::OK,
                &json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": def.group, "kind": def.plural, "uid": crate::util::meta_str(&last, "uid").unwrap_or("")},
                }),
            )),
            Deleted::Marked(obj) => {
                let code = StatusCode::from_u16(opts.kept_status()).unwrap_or(StatusCode::OK);
                Ok(self.object_response(code, &obj))
            }
        }
    }

    fn delete_collection(&self, opts: &DeleteOptions) -> Result<Response<Body>, ApiError> {
        let labels = LabelSelector::parse(self.q("labelSelector").unwrap_or(""))?;
        let fields = self.field_selector()?;
        let unfiltered = labels.is_empty() && fields.is_empty();
        let names: Vec<(String, String)> = {
            let g = self.core.store.read();
            g.range(self.def.id, self.ns.as_deref(), None)
                .filter(|(_, o)| {
                    unfiltered || {
                        let o = o.value();
                        labels.matches(&o) && fields.matches(&o)
                    }
                })
                .map(|(k, _)| (k.1.clone(), k.2.clone()))
                .collect()
        };
        for (ns, name) in names {
            // Objects removed concurrently are fine to skip.
            let _ = deletion::delete(&self.core.store, &self.def, Some(&ns), &name, opts);
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        ))
    }
}

fn decode_continue(c: &str) -> Result<ContinueToken, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    serde_json::from_slice(&raw).map_err(|_| bad())
}
