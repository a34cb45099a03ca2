// Meridian's status page: reads the admin endpoint's JSON API and draws it. Plain
// JavaScript, no library, nothing fetched from anywhere but this server.
//
// Live updates: every second the page asks /api/v1/changes for the entries after the
// last it has; when the table version it reports moved, the table's documents
// (clusters, services, ingresses, the proxy's routes) are fetched again. The proxy's
// document also changes without the table (ejections, latencies), so it is refetched
// every few seconds regardless.
"use strict";

const POLL_MS = 1000;
const PROXY_REFRESH_MS = 5000;
const CHANGES_SHOWN = 200;
const SVG_NS = "http://www.w3.org/2000/svg";

// Places to ask from, sent as `at=lat,lon`.
const PLACES = [
  ["Paris", 48.8566, 2.3522],
  ["London", 51.5074, -0.1278],
  ["New York", 40.7128, -74.006],
  ["San Francisco", 37.7749, -122.4194],
  ["São Paulo", -23.5505, -46.6333],
  ["Johannesburg", -26.2041, 28.0473],
  ["Mumbai", 19.076, 72.8777],
  ["Singapore", 1.3521, 103.8198],
  ["Tokyo", 35.6762, 139.6503],
  ["Sydney", -33.8688, 151.2093],
];

const state = {
  clusters: [],
  services: [],
  ingresses: [],
  lb: null,
  lbError: null,
  names: [],
  lastSeq: 0,
  version: null,
  explain: null,
};

// ---- helpers ---------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.setAttribute("class", v);
    else if (k.startsWith("data-") || node instanceof SVGElement) node.setAttribute(k, v);
    else node[k] = v;
  }
}

async function api(path) {
  const resp = await fetch(path, { cache: "no-store" });
  const text = await resp.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  if (!resp.ok) {
    const msg = body && body.error ? body.error : text.trim() || resp.statusText;
    const err = new Error(`${resp.status}: ${msg}`);
    err.status = resp.status;
    throw err;
  }
  return body;
}

// Equirectangular, ten units a degree: the projection world.svg was drawn in.
function project(lat, lon) {
  return [(lon + 180) * 10, (90 - lat) * 10];
}

function clusterByName(name) {
  return state.clusters.find((c) => c.name === name);
}

// A shard is usable when healthy and not stale; a cluster is degraded when Ready but
// one of its shards is not healthy.
function degradedClusters() {
  const out = new Set();
  for (const svc of state.services) {
    for (const sh of svc.shards) if (!sh.healthy) out.add(sh.cluster);
  }
  return out;
}

// ---- rendering: map and clusters ---------------------------------------------------

function renderMap() {
  const layer = document.getElementById("clusters-layer");
  const degraded = degradedClusters();
  layer.replaceChildren();
  for (const c of state.clusters) {
    if (!c.location) continue;
    const [x, y] = project(c.location[0], c.location[1]);
    const g = svg("g", {
      class: "cluster",
      "data-cluster": c.name,
      "data-state": c.state,
      "data-degraded": String(c.state === "Ready" && degraded.has(c.name)),
      transform: `translate(${x.toFixed(1)} ${y.toFixed(1)})`,
    });
    g.append(
      svg("title", {}, `${c.name}: ${c.state}${c.reason ? ` (${c.reason})` : ""}`),
      svg("circle", { class: "halo", r: 90 }),
      svg("circle", { class: "core", r: 38 }),
      svg("text", { x: 60, y: -4 }, c.name),
      svg("text", { class: "sub", x: 60, y: 50 }, [c.region, c.state].filter(Boolean).join(" · ")),
    );
    layer.append(g);
  }
}

function renderClusters() {
  const table = document.getElementById("clusters");
  const degraded = degradedClusters();
  const head = el("tr", {}, ["Cluster", "State", "Region / zone", "Shards", "Watch events"].map((h) => el("th", {}, h)));
  const rows = state.clusters.map((c) => {
    const shards = state.services.flatMap((s) => s.shards.filter((sh) => sh.cluster === c.name));
    const healthy = shards.filter((sh) => sh.healthy).length;
    const stateText = c.state + (c.state === "Ready" && degraded.has(c.name) ? " (degraded)" : "");
    return el(
      "tr",
      { "data-cluster-row": c.name },
      el("td", {}, el("strong", {}, c.name)),
      el("td", {}, el("span", { class: `state ${c.state}` }, stateText), c.reason ? el("div", { class: "muted" }, c.reason) : null),
      el("td", {}, [c.region, c.zone].filter(Boolean).join(" / ") || el("span", { class: "muted" }, "—"), c.location ? null : el("div", { class: "muted" }, "no location: not on the map")),
      el("td", {}, `${healthy}/${shards.length} healthy`),
      el("td", {}, String(c.watch_events)),
    );
  });
  table.replaceChildren(head, ...rows);
  const ready = state.clusters.filter((c) => c.state === "Ready").length;
  document.getElementById("summary").textContent =
    `${state.clusters.length} clusters (${ready} Ready) · ${state.services.length} services · ${state.ingresses.length} ingresses`;
}

// ---- rendering: services, ingresses, routes -----------------------------------------

function globalName(ns, name) {
  const names = state.names
    .filter((n) => n.kind === "service" && n.object === `${ns}/${name}`)
    .map((n) => n.name)
    .sort((a, b) => a.length - b.length || a.localeCompare(b));
  return names[0] || null;
}

function shardChip(svc, sh) {
  const health = sh.healthy ? "healthy" : "unhealthy";
  const mark = sh.healthy ? "✓" : "✗";
  const title = `${sh.addresses.join(", ") || "no address"} · ${sh.ports.join(", ")} · probe ${sh.probe}` +
    (sh.rtt_ms !== undefined ? ` · ${sh.rtt_ms.toFixed(2)} ms` : "") + (sh.stale ? " · stale (cluster offline)" : "");
  return el(
    "span",
    { class: "chip", title, "data-shard": `${svc.namespace}/${svc.name}@${sh.cluster}`, "data-health": health, "data-stale": String(sh.stale) },
    `${mark} ${sh.cluster}`,
    el("span", { class: "count" }, `${sh.ready_endpoints}/${sh.total_endpoints}`),
  );
}

function renderServices() {
  const table = document.getElementById("services");
  const head = el("tr", {}, ["Service", "Shards (ready endpoints)", "DNS name"].map((h) => el("th", {}, h)));
  const rows = state.services.map((svc) => {
    const name = globalName(svc.namespace, svc.name);
    return el(
      "tr",
      { "data-service": `${svc.namespace}/${svc.name}` },
      el("td", {}, el("strong", {}, svc.name), el("div", { class: "muted" }, svc.namespace)),
      el("td", {}, el("div", { class: "chips" }, svc.shards.map((sh) => shardChip(svc, sh)))),
      el("td", {}, name ? el("code", {}, name) : el("span", { class: "muted" }, "—")),
    );
  });
  table.replaceChildren(head, ...(rows.length ? rows : [el("tr", {}, el("td", { colSpan: 3, class: "muted" }, "no services yet"))]));

  const ing = document.getElementById("ingresses");
  const ihead = el("tr", {}, ["Ingress", "Hosts", "Clusters"].map((h) => el("th", {}, h)));
  const irows = state.ingresses.map((i) =>
    el(
      "tr",
      { "data-ingress": `${i.namespace}/${i.name}` },
      el("td", {}, el("strong", {}, i.name), el("div", { class: "muted" }, i.namespace)),
      el("td", {}, i.hosts.map((h) => el("div", {}, el("code", {}, h)))),
      el("td", {}, el("div", { class: "chips" }, i.shards.map((s) =>
        el("span", { class: "chip", "data-health": s.stale ? "unhealthy" : "healthy", "data-stale": String(s.stale), title: s.rules.join("\n") }, s.cluster)))),
    ));
  ing.replaceChildren(ihead, ...(irows.length ? irows : [el("tr", {}, el("td", { colSpan: 3, class: "muted" }, "no ingresses"))]));
}

function backendState(b) {
  if (b.ejected_for_ms) return "ejected";
  return b.state || (b.healthy ? "up" : "down");
}

function renderRoutes() {
  const box = document.getElementById("routes");
  if (state.lbError) {
    box.replaceChildren(el("p", { class: "muted" }, state.lbError));
    return;
  }
  const lb = state.lb;
  if (!lb) return;
  const routes = (lb.routes || []).map((r) =>
    el(
      "div",
      { class: "route", "data-route": `${r.host}${r.path}` },
      el("div", { class: "head" },
        el("strong", { class: "mono" }, `${r.host}${r.path}`),
        "→",
        el("code", {}, r.upstream),
        el("span", { class: "muted" }, r.source || ""),
        el("span", { class: r.ready ? "state Ready" : "state Offline" }, r.ready ? "ready" : "no healthy backend")),
      (r.levels || []).map((lv) =>
        el("div", { class: "level" },
          el("span", { class: "level-name" }, lv.name),
          el("span", { class: "bar", title: `${lv.load_percent}% of requests` }, el("i", { style: `width:${Math.max(0, Math.min(100, lv.load_percent))}%` })),
          ` ${Math.round(lv.load_percent)}% `,
          (lv.backends || []).map((b) =>
            el("span", { class: "backend mono", "data-state": backendState(b), title: `${b.state}, ewma ${b.ewma_ms ?? "?"} ms, ${b.outstanding} outstanding` },
              ` ${b.address} (${b.cluster}) ${backendState(b)} `)))),
    ));
  const head = el("p", { class: "muted" }, `listening on ${(lb.listen || []).join(", ")}${lb.region ? ` · region ${lb.region}` : ""} · ${lb.ready ? "ready" : "not ready"}`);
  box.replaceChildren(head, ...(routes.length ? routes : [el("p", { class: "muted" }, "no routes")]));
}

// ---- recent changes ----------------------------------------------------------------

function describe(c) {
  const obj = c.object ? `${c.object} in ${c.cluster}` : c.cluster;
  switch (c.subject) {
    case "table":
      return `following the table: ${c.to}`;
    case "cluster":
      if (!c.from) return `cluster ${c.cluster} joined (${c.to})`;
      if (!c.to) return `cluster ${c.cluster} left`;
      return `cluster ${c.cluster}: ${c.from} → ${c.to}`;
    case "ingress":
      return c.to ? `ingress ${obj} appeared` : `ingress ${obj} left`;
    default:
      if (!c.from) return `${obj} appeared (${c.to})`;
      if (!c.to) return `${obj} left`;
      return `${obj}: ${c.from} → ${c.to}`;
  }
}

function isBad(c) {
  return c.to === null || /unhealthy|Offline|stale/.test(c.to || "");
}

function renderChanges(entries, fresh) {
  const list = document.getElementById("changes");
  for (const c of entries) {
    const time = c.at.replace(/^.*T/, "").replace(/Z$/, "");
    const li = el(
      "li",
      { "data-seq": String(c.seq), "data-subject": c.subject, "data-bad": String(c.subject !== "table" && isBad(c)), "data-good": String(!isBad(c) && c.from !== null) },
      el("span", { class: "time", title: c.at }, time),
      el("span", { class: "subject" }, c.subject),
      el("span", { class: "what" }, describe(c), c.detail ? el("span", { class: "muted" }, ` — ${c.detail}`) : null),
    );
    if (fresh) li.classList.add("fresh");
    list.prepend(li);
  }
  while (list.children.length > CHANGES_SHOWN) list.lastElementChild.remove();
}

// ---- fetching ----------------------------------------------------------------------

async function refreshProxy() {
  try {
    state.lb = await api("/api/v1/lb");
    state.lbError = null;
  } catch (e) {
    state.lbError = e.status === 404 ? "The proxy is not running on this instance." : `Cannot read the proxy's status: ${e.message}`;
  }
  renderRoutes();
}

async function refreshTable() {
  const [clusters, services, ingresses, dns] = await Promise.allSettled([
    api("/api/v1/clusters"),
    api("/api/v1/services"),
    api("/api/v1/ingresses"),
    api("/api/v1/dns"),
  ]);
  if (clusters.status === "fulfilled") state.clusters = clusters.value;
  if (services.status === "fulfilled") state.services = services.value;
  if (ingresses.status === "fulfilled") state.ingresses = ingresses.value;
  if (dns.status === "fulfilled") state.names = dns.value.names || [];
  renderMap();
  renderClusters();
  renderServices();
  renderExplainOverlay();
  defaultName();
  await refreshProxy();
  if (clusters.status === "rejected") throw clusters.reason;
}

function setLive(s, text) {
  const live = document.getElementById("live");
  live.dataset.state = s;
  live.textContent = text;
}

async function poll() {
  try {
    const page = await api(`/api/v1/changes?after=${state.lastSeq}`);
    const fresh = state.version !== null;
    if (page.last < state.lastSeq) {
      // The server restarted: its numbers started again.
      document.getElementById("changes").replaceChildren();
      state.lastSeq = 0;
      state.version = null;
      return;
    }
    renderChanges(page.changes, fresh);
    state.lastSeq = page.last;
    if (page.version !== state.version) {
      state.version = page.version;
      await refreshTable();
    }
    document.body.dataset.loaded = "true";
    setLive("live", `live · table v${page.version} · ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    setLive("down", `cannot reach the admin endpoint: ${e.message}`);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// ---- explain -----------------------------------------------------------------------

function setupExplain() {
  const from = document.getElementById("explain-from");
  for (const [name, lat, lon] of PLACES) {
    from.append(el("option", { value: `${lat},${lon}` }, name));
  }
  from.append(el("option", { value: "client" }, "an IP address or subnet…"));
  const clientLabel = document.getElementById("explain-client-label");
  const sync = () => { clientLabel.hidden = from.value !== "client"; };
  from.addEventListener("change", sync);
  sync();
  document.getElementById("explain-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    runExplain();
  });
}

// The demo's `web` service's global name, until the user types one.
function defaultName() {
  const input = document.getElementById("explain-name");
  if (input.value || input.dataset.touched) return;
  const svc = state.services.find((s) => s.name === "web") || state.services[0];
  const name = svc && globalName(svc.namespace, svc.name);
  if (name) input.value = name;
}

function explainQuery() {
  const from = document.getElementById("explain-from");
  const q = new URLSearchParams();
  q.set("name", document.getElementById("explain-name").value.trim());
  q.set("type", document.getElementById("explain-type").value);
  let place = null;
  if (from.value === "client") {
    const who = document.getElementById("explain-client").value.trim();
    q.set(who.includes("/") ? "subnet" : "client", who);
  } else {
    q.set("at", from.value);
    const [lat, lon] = from.value.split(",").map(Number);
    place = { lat, lon, label: from.options[from.selectedIndex].text };
  }
  return { q, place };
}

async function runExplain() {
  const box = document.getElementById("explain-result");
  const { q, place } = explainQuery();
  box.dataset.state = "asking";
  box.textContent = "asking…";
  try {
    const doc = await api(`/api/v1/explain?${q}`);
    const answered = (doc.answer || []).find((a) => a.cluster);
    const where = place || (doc.location && doc.location.place ? { ...doc.location.place, label: q.get("client") || q.get("subnet") } : null);
    state.explain = { doc, place: where, cluster: answered ? answered.cluster : null };
    renderExplain(box, doc, state.explain.cluster);
  } catch (e) {
    state.explain = null;
    box.dataset.state = "error";
    box.dataset.cluster = "";
    box.textContent = e.status === 404 ? `This server has no explain endpoint (${e.message}).` : `Explain failed: ${e.message}`;
  }
  renderExplainOverlay();
}

function renderExplain(box, doc, cluster) {
  box.dataset.state = "done";
  box.dataset.cluster = cluster || "";
  const loc = doc.location || {};
  const ranking = doc.ranking || {};
  const answers = (doc.answer || []).map((a) => el("li", {}, el("code", {}, `${a.name} ${a.ttl} ${a.type} ${a.data}`), a.cluster ? el("span", { class: "muted" }, ` (${a.cluster})`) : null));
  const order = (ranking.order || []).map((c) => {
    const cand = (ranking.candidates || []).find((x) => x.cluster === c);
    const dist = cand && cand.distance_km !== null && cand.distance_km !== undefined ? ` · ${Math.round(cand.distance_km)} km` : "";
    return el("li", { "data-rank": c }, c, el("span", { class: "muted" }, dist));
  });
  const chain = (doc.chain || []).map((c) => el("div", {}, el("code", {}, c.name), c.cname ? ` → ${c.cname}` : "", c.source ? el("span", { class: "muted" }, ` (${c.source.kind}${c.source.name ? ` ${c.source.namespace ? `${c.source.namespace}/` : ""}${c.source.name}` : ""})`) : null));
  const unusable = (doc.shards || []).filter((s) => !s.usable).map((s) => el("div", {}, `${s.cluster}: not used`, s.reason ? el("span", { class: "muted" }, ` — ${s.reason}`) : null));
  box.replaceChildren(
    el("div", {}, cluster ? "Answered by " : "No cluster answers", cluster ? el("span", { class: "answer-cluster", id: "explain-cluster" }, cluster) : null, el("span", { class: "muted" }, ` · ${doc.rcode}`)),
    el("dl", {},
      el("dt", {}, "Client"), el("dd", {}, `${loc.from || "none"}${loc.place ? ` (${loc.place.lat.toFixed(2)}, ${loc.place.lon.toFixed(2)})` : ""}${loc.from === "ecs" && loc.scope !== undefined && loc.scope !== null ? ` · ECS scope /${loc.scope}` : ""}`),
      el("dt", {}, "Policy"), el("dd", {}, `${ranking.policy || "—"}${ranking.applied && ranking.applied !== ranking.policy ? ` (applied: ${ranking.applied})` : ""}`),
      el("dt", {}, "Chain"), el("dd", {}, chain.length ? chain : "—"),
      el("dt", {}, "Ranking"), el("dd", {}, order.length ? el("ol", { id: "explain-order" }, order) : "—"),
      el("dt", {}, "Answer"), el("dd", {}, answers.length ? el("ol", { id: "explain-answer" }, answers) : "no records"),
      unusable.length ? [el("dt", {}, "Left out"), el("dd", {}, unusable)] : null,
    ),
  );
}

// The client's place and a line from it to the answering cluster.
function renderExplainOverlay() {
  const layer = document.getElementById("explain-layer");
  layer.replaceChildren();
  const ex = state.explain;
  if (!ex || !ex.place) return;
  const [x1, y1] = project(ex.place.lat, ex.place.lon);
  const target = ex.cluster && clusterByName(ex.cluster);
  if (target && target.location) {
    const [x2, y2] = project(target.location[0], target.location[1]);
    // A gentle arc rather than a straight line, so a line along a row of clusters
    // does not hide them.
    const mx = (x1 + x2) / 2;
    const my = (y1 + y2) / 2 - Math.max(60, Math.hypot(x2 - x1, y2 - y1) * 0.2);
    layer.append(svg("path", { id: "explain-line", class: "answer animated", "data-cluster": ex.cluster, d: `M${x1.toFixed(1)} ${y1.toFixed(1)}Q${mx.toFixed(1)} ${my.toFixed(1)} ${x2.toFixed(1)} ${y2.toFixed(1)}` }));
  }
  layer.append(
    svg("g", { class: "client", "data-client": ex.place.label || "", transform: `translate(${x1.toFixed(1)} ${y1.toFixed(1)})` },
      svg("circle", { r: 26 }),
      svg("text", { x: 0, y: 86, "text-anchor": "middle" }, ex.place.label || "client")),
  );
}

// ---- start -------------------------------------------------------------------------

setupExplain();
document.getElementById("explain-name").addEventListener("input", (e) => { e.target.dataset.touched = "true"; });
setInterval(refreshProxy, PROXY_REFRESH_MS);
poll();
