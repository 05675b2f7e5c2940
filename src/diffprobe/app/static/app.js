// diffprobe app: the grid, selection, keyboard and the calls to the JSON API (/api/...). No framework, no CDN.
"use strict";

const PER_PAGE = 100;
const SCALE_PX = 50;  // the scale bar shows this many pixels of the original images
const TILE_PX = 96;   // until someone picks a zoom, the first page's typical image is shown about this large
const $ = (id) => document.getElementById(id);

const state = {
  classes: [],       // [{name, predicted, validated, dubious, total}]
  view: null,        // {kind: "class", label}, {kind: "cluster", number, part}, {kind: "next"},
                     // {kind: "changes", from, to}, {kind: "dashboard"} or {kind: "export"}
  page: 0, total: 0,
  objects: [],       // the page shown
  selected: new Set(),
  anchor: null,      // index of the last plain click, for Shift ranges
  cursor: 0,
  zoomSet: false,    // the zoom was set from the images (until someone moves the slider, which is remembered)
  collapsed: new Set(JSON.parse(localStorage.getItem("diffprobe-collapsed") || "[]")),  // groups folded (remembered)
};

function user() { return $("user").value.trim(); }

// Every failure is said in the header: a refused request with the server's reason (error.status and error.data
// keep the rest), a server that cannot be reached with what that means for the action.
async function api(method, url, body) {
  const headers = {};
  if (user()) headers["X-Diffprobe-User"] = user();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(url, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    const error = new Error("cannot reach the server: is 'diffprobe app' still running?" +
                            (method === "GET" ? "" : " This action was not saved."));
    say(error.message, true);
    throw error;
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const error = Object.assign(new Error(data.detail || `${r.status} ${r.statusText}`), {status: r.status, data});
    say(error.message, true);
    throw error;
  }
  return data;
}

// An element with text children: names typed by people never go through innerHTML.
function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children.map((c) => (c instanceof Node ? c : String(c))));
  return e;
}

function viewKey(view) {
  if (view.kind === "class") return `class:${view.label}`;
  if (view.kind === "cluster") return `cluster:${view.number}${view.part === "grown" ? ":grown" : ""}`;
  if (view.kind === "changes") return `changes:${view.from}>${view.to}`;
  return view.kind;  // next, dashboard, export
}

function viewTitle(view) {
  if (view.kind === "class") return view.label;
  if (view.kind === "cluster") return `cluster ${view.number}${view.part === "grown" ? ": the images Grow added" : ""}`;
  if (view.kind === "changes") return `retrain moved: ${view.from} → ${view.to}`;
  return {next: "Next to look at", dashboard: "Dashboard", export: "Export"}[view.kind];
}

function say(text, isError = false) {
  const m = $("message");
  m.textContent = m.title = text;  // one line in the header; the whole text on hover
  m.className = isError ? "error" : "";
}

// ---- loading -------------------------------------------------------------------------------------------------
async function loadProject() {
  const [p, tree] = await Promise.all([api("GET", "/api/project"), api("GET", "/api/classes/tree")]);
  state.classes = p.classes;
  $("project-name").textContent = p.name;
  const validated = p.classes.reduce((s, c) => s + c.validated, 0);
  $("project-info").textContent = `${p.n_objects} images, ${validated} validated`;
  if (!user()) $("user").placeholder = p.user;
  const byName = new Map(p.classes.map((c) => [c.name, c]));
  $("classes").replaceChildren(...tree.nodes.map((node) => classNode(node, byName)));
  $("class-names").replaceChildren(...p.classes.map((c) => Object.assign(document.createElement("option"), {value: c.name})));
  markCurrent();
}

// The classes in a tree (GET /api/classes/tree: the project's taxonomy, else the names' shared "_" prefixes). A class
// is an li with data-label; a group an li.group with its row (fold it with a click, remembered) and its children,
// a class that is a group too first among them ("itself"). Counts of a group: summed over everything under it.
function classLeaf(c, text, itself = false) {
  const li = document.createElement("li");
  li.dataset.label = c.name;
  li.dataset.key = `class:${c.name}`;
  li.title = c.name;
  li.append(el("span", {}, text, ...(itself ? [el("span", {className: "hint"}, " itself")] : [])),
            el("span", {className: "hint"}, `${c.validated} / ${c.total}`));
  if (c.source === "user" && !c.total) {  // an empty class people added (a typo) can go
    const remove = el("button", {className: "remove", title: `remove the empty class ${c.name}`}, "×");
    remove.onclick = (e) => { e.stopPropagation(); removeClass(c.name); };
    li.append(remove);
  }
  li.onclick = () => show({kind: "class", label: c.name});
  return li;
}

function classNode(node, byName) {
  const own = byName.get(node.name) || {...node, source: "model"};
  if (!node.children.length) return classLeaf(own, node.label);
  const li = el("li", {className: "group"});
  li.dataset.group = node.name;
  li.dataset.total = node.total;
  const toggle = el("button", {className: "toggle"});
  const row = el("div", {className: "group-row", title: `${node.name}: ${node.validated} validated of ${node.total}`},
                 el("span", {}, toggle, node.label), el("span", {className: "hint"}, `${node.validated} / ${node.total}`));
  row.onclick = () => foldGroup(li, !li.classList.contains("collapsed"));
  li.append(row, el("ul", {className: "children"}, ...(node.class ? [classLeaf(own, node.label, true)] : []),
                    ...node.children.map((child) => classNode(child, byName))));
  foldGroup(li, state.collapsed.has(node.name), false);
  return li;
}

function foldGroup(li, fold, remember = true) {
  li.classList.toggle("collapsed", fold);
  const toggle = li.querySelector(":scope > .group-row .toggle");
  toggle.textContent = fold ? "▸" : "▾";
  toggle.setAttribute("aria-expanded", String(!fold));
  toggle.title = fold ? "show the classes of this group" : "fold this group";
  if (!remember) return;
  fold ? state.collapsed.add(li.dataset.group) : state.collapsed.delete(li.dataset.group);
  localStorage.setItem("diffprobe-collapsed", JSON.stringify([...state.collapsed]));
}

// The sidebar shows the classes whose name holds the search text, without the empty ones unless asked (a model
// of 121 classes predicts a few dozen on one sample); the class on screen stays listed.
function filterClasses() {
  const text = $("class-search").value.trim().toLowerCase();
  const hideEmpty = $("hide-empty").checked;
  const totals = new Map(state.classes.map((c) => [c.name, c.total]));
  for (const li of document.querySelectorAll("#classes li[data-label]")) {
    const current = li.classList.contains("current");
    const empty = !totals.get(li.dataset.label);
    li.hidden = !current && (!li.dataset.label.toLowerCase().includes(text) || (hideEmpty && empty));
  }
  // A group is listed while a class under it is; a search opens the folded groups it finds classes in.
  for (const group of document.querySelectorAll("#classes li.group")) {
    group.hidden = !group.querySelector("li[data-label]:not([hidden])");
    group.classList.toggle("searched", Boolean(text));
  }
}

async function removeClass(name) {
  if (!confirm(`Remove the empty class "${name}"?`)) return;
  await api("DELETE", `/api/classes/${encodeURIComponent(name)}`);
  say(`class ${name} removed`);
  await loadProject();
}

async function loadChanges() {
  const r = await fetch("/api/changes");
  if (r.ok) showChanges(await r.json());
}

function showChanges(result) {
  $("changes-text").textContent = `${result.n_changed} predictions moved class`;
  $("changes").replaceChildren(...result.transitions.slice(0, 10).map((t) => {
    const li = el("li", {}, el("span", {}, `${t.from} → ${t.to}`), el("span", {className: "hint"}, t.n));
    li.dataset.key = `changes:${t.from}>${t.to}`;
    li.onclick = () => show({kind: "changes", from: t.from, to: t.to});
    return li;
  }));
  markCurrent();
}

function markCurrent() {
  const key = state.view ? viewKey(state.view) : null;
  const cluster = state.view && state.view.kind === "cluster" ? `cluster:${state.view.number}` : null;
  for (const li of document.querySelectorAll("#sidebar li")) {
    const k = li.dataset.key || li.dataset.view;
    li.classList.toggle("current", k === key || k === cluster);
  }
  filterClasses();
}

async function loadClusters() {
  try {
    const r = await fetch("/api/clusters");
    if (r.ok) showClusterList(await r.json());
  } catch (e) { /* no clusters yet */ }
}

function showClusterList(result) {
  $("clusters").replaceChildren(...result.clusters.map((c) => {
    const li = document.createElement("li");
    li.dataset.cluster = c.cluster;
    li.dataset.key = `cluster:${c.cluster}`;
    // A cluster whose every image is decided (named) is greyed and ticked; the others say how many are left.
    const done = c.n_left === 0;
    li.classList.toggle("done", done);
    li.title = done ? "every image decided" : `${c.n_left} of ${c.size} images still predicted`;
    li.append(el("span", {}, `${done ? "✓ " : ""}cluster ${c.cluster}`),
              el("span", {className: "hint"}, done ? c.size : `${c.n_left} / ${c.size}`));
    li.onclick = () => show({kind: "cluster", number: c.cluster});
    return li;
  }));
  markCurrent();
}

async function loadPage() {
  if (!state.view) return;
  if (state.view.kind === "dashboard") return loadDashboard();
  if (state.view.kind === "export") return loadExport();
  const q = new URLSearchParams({page: state.page, per_page: PER_PAGE});
  let url;
  if (state.view.kind === "class") {
    q.set("label", state.view.label);
    q.set("sort", $("sort").value);
    if ($("status").value) q.set("status", $("status").value);
    url = `/api/objects?${q}`;
  } else if (state.view.kind === "cluster") {
    q.set("part", state.view.part || "all");
    url = `/api/clusters/${state.view.number}/objects?${q}`;
  } else if (state.view.kind === "changes") {
    q.set("from", state.view.from);
    q.set("to", state.view.to);
    url = `/api/changes/objects?${q}`;
  } else {  // next: one page, recomputed after each decision
    url = `/api/next?${new URLSearchParams({n: PER_PAGE, measure: $("next-measure").value})}`;
  }
  const r = await api("GET", url);
  state.total = r.total;
  const pages = Math.max(1, Math.ceil(r.total / PER_PAGE));
  if (state.page >= pages && state.page > 0) { state.page = pages - 1; return loadPage(); }
  state.objects = r.objects;
  if (localStorage.getItem("diffprobe-zoom") === null && !state.zoomSet && r.objects.length) {
    $("zoom").value = nativeZoom(r.objects);
    state.zoomSet = true;
  }
  state.cursor = Math.min(state.cursor, Math.max(0, r.objects.length - 1));
  $("page-text").textContent = `page ${state.page + 1} / ${pages} (${r.total} images)`;
  renderGrid();
}

// One scale for every image (their true relative size), chosen so the median image is about TILE_PX large:
// a 40 px plankton crop is not lost in a 90 px tile, a 400 px one does not fill the screen.
function nativeZoom(objects) {
  const sizes = objects.map((o) => Math.max(o.width, o.height)).sort((a, b) => a - b);
  const median = sizes[Math.floor(sizes.length / 2)] || TILE_PX;
  return String(Math.min(4, Math.max(0.25, Math.round((4 * TILE_PX) / median) / 4)));
}

function renderGrid() {
  const zoom = parseFloat($("zoom").value);
  $("scale-bar").style.width = `${SCALE_PX * zoom}px`;
  $("scale-text").textContent = `${SCALE_PX} px`;
  const mixed = state.view.kind !== "class";  // images of several labels: name each tile's label
  // What the grid shows, for scripts and tests that wait for a view to finish loading.
  $("grid").dataset.view = viewKey(state.view);
  $("grid").replaceChildren(...state.objects.map((o, i) => {
    const tile = document.createElement("div");
    tile.className = `tile status-${o.status}`;
    tile.dataset.id = o.id;
    tile.dataset.index = i;
    const img = document.createElement("img");
    img.loading = "lazy";
    img.alt = o.object_id;
    img.width = Math.max(1, Math.round(o.width * zoom));   // the true relative size: one scale for every image
    img.height = Math.max(1, Math.round(o.height * zoom));
    img.src = `/api/objects/${o.id}/image`;
    if (img.width > 240 || img.height > 240) tile.classList.add("scaled");
    const caption = document.createElement("div");
    caption.className = "caption";
    // The probability is the model's for predicted_label: an image a person put in another class shows none
    // (that class's probability is not kept, and the old class's would read as confidence in the new one).
    const moved = o.label !== o.predicted_label;
    caption.innerHTML = `<span class="badge ${o.status}">${o.status}</span> `;
    caption.append(moved ? o.label : `${mixed ? `${o.label} · ` : ""}${Math.round(o.probability * 100)}%`);
    tile.title = `${o.object_id}: ${o.width}×${o.height} px; model: ${o.predicted_label} ${(o.probability * 100).toFixed(1)}%` +
      (moved ? `; a person put it in ${o.label}` : "");
    tile.append(img, caption);
    tile.onclick = (e) => clickTile(i, e);
    tile.ondblclick = () => openDetail(o.id);
    return tile;
  }));
  paintSelection();
}

function paintSelection() {
  for (const tile of $("grid").children) {
    const i = Number(tile.dataset.index);
    tile.classList.toggle("selected", state.selected.has(state.objects[i].id));
    tile.classList.toggle("cursor", i === state.cursor);
  }
  const n = state.selected.size;
  $("selection-text").textContent = n ? `${n} selected` : "nothing selected";
}

async function show(view) {
  state.view = view;
  state.page = 0;
  state.cursor = 0;
  state.selected.clear();
  state.anchor = null;
  $("view-title").textContent = viewTitle(view);
  markCurrent();
  // Only a class can be sorted and filtered: a cluster is ordered by distance to its centre, the next images by
  // uncertainty.
  $("sort").disabled = $("status").disabled = view.kind !== "class";
  const board = view.kind === "dashboard" || view.kind === "export";  // a panel, not a grid
  document.querySelector("main").classList.toggle("board", board);
  $("grid").hidden = $("actions").hidden = $("pager").hidden = board;
  $("dashboard").hidden = view.kind !== "dashboard";
  $("export-view").hidden = view.kind !== "export";
  $("cluster-actions").hidden = view.kind !== "cluster";
  await loadPage();
  if (!board) $("grid").focus();
}

// ---- dashboard -----------------------------------------------------------------------------------------------
const percent = (x) => (x === null ? "–" : `${Math.round(x * 100)}%`);

// A horizontal bar (value) with an interval (low..high) drawn over it; all on a scale of 0..top.
function bar(value, low, high, top, kind) {
  const track = el("div", {className: "bar-track"});
  const at = (x) => `${Math.max(0, Math.min(100, (100 * x) / (top || 1)))}%`;
  if (value !== null) track.append(el("div", {className: `bar ${kind}`, style: `width: ${at(value)}`}));
  if (low !== null && high !== null) {
    track.append(el("div", {className: "interval", style: `left: ${at(low)}; width: calc(${at(high)} - ${at(low)})`}));
  }
  return track;
}

async function loadDashboard() {
  const d = await api("GET", "/api/dashboard");
  const rows = d.classes.filter((c) => c.predicted || c.validated_as_this).sort((a, b) => b.predicted - a.predicted);
  const top = Math.max(1, ...rows.map((c) => Math.max(c.predicted, c.abundance_high || 0)));
  const table = el("table", {className: "board"},
    el("tr", {}, el("th", {}, "class"), el("th", {}, "predicted"), el("th", {}, "validated"),
       el("th", {}, "precision (95% interval)"), el("th", {}, "abundance: model count and estimate (95% interval)")));
  for (const c of rows) {
    const precision = c.validated ? `${percent(c.precision)} of ${c.validated} (${percent(c.precision_low)}–${percent(c.precision_high)})` : "none validated";
    const abundance = c.abundance === null ? `${c.predicted}` : `${c.predicted} → ${Math.round(c.abundance)} (${Math.round(c.abundance_low)}–${Math.round(c.abundance_high)})`;
    const row = el("tr", {},
      el("td", {}, c.class),
      el("td", {className: "number"}, c.predicted),
      el("td", {className: "number"}, `${c.validated} (${percent(c.validated / Math.max(1, c.predicted))})`),
      el("td", {}, bar(c.precision, c.validated ? c.precision_low : null, c.validated ? c.precision_high : null, 1, "precision"),
         el("span", {className: "hint"}, precision)),
      el("td", {className: "abundance"}, el("div", {}, bar(c.predicted, null, null, top, "count"),
                                                  bar(c.abundance, c.abundance_low, c.abundance_high, top, "estimate")),
         el("span", {className: "hint"}, abundance)));
    row.dataset.class = c.class;
    table.append(row);
  }
  const accuracy = d.accuracy === null ? "no image validated yet: validate some to estimate precision and abundances"
    : `predictions right on ${percent(d.accuracy)} of the validated images (${percent(d.accuracy_low)}–${percent(d.accuracy_high)})`;
  $("dashboard").replaceChildren(
    el("p", {id: "board-summary"}, `${d.n_objects} images, ${d.n_validated} validated (${percent(d.share_validated)}), ` +
       `${d.n_dubious} dubious; ${accuracy}.`),
    table,
    el("p", {className: "hint"}, "Precision: validated as predicted / validated, among the images the model puts " +
       "in the class (Wilson interval). Estimate: adjusted classify and count, the model's counts corrected by " +
       "the errors seen on the validated images (bootstrap interval). Both trust the validated images to be a " +
       "fair sample of their class."),
    confusionTable(d.confusion));
  $("dashboard").dataset.loaded = String(d.n_validated);
}

// ---- export ----------------------------------------------------------------------------------------------------
// What each export holds before it is written: the TSV's rows by status, and per class whether a bundle fitted
// now would learn it (validated images >= the minimum) or leave it out.
async function loadExport() {
  const p = await api("GET", "/api/project");
  const sum = (key) => p.classes.reduce((s, c) => s + c[key], 0);
  const min = Math.max(2, Number(localStorage.getItem("diffprobe-min-per-class")) || 5);
  const input = el("input", {id: "export-min", type: "number", min: 2, value: min});
  const rows = p.classes.filter((c) => c.total);
  const inBundle = (c) => {
    if (c.validated >= min) return "in the bundle";
    return c.validated ? `left out (${c.validated} < ${min})` : "–";
  };
  const table = el("table", {className: "board"},
    el("tr", {}, el("th", {}, "class"), el("th", {}, "validated"), el("th", {}, "dubious"), el("th", {}, "predicted"),
       el("th", {}, "bundle")),
    ...rows.map((c) => {
      const tr = el("tr", {}, el("td", {}, c.name), el("td", {className: "number"}, c.validated),
                    el("td", {className: "number"}, c.dubious), el("td", {className: "number"}, c.predicted),
                    el("td", {}, inBundle(c)));
      tr.dataset.class = c.name;
      return tr;
    }));
  const write = el("button", {id: "export-view-bundle"}, "Write the bundle");
  write.onclick = () => exportBundle(Number(input.value));
  input.onchange = () => { localStorage.setItem("diffprobe-min-per-class", input.value); loadExport(); };
  $("export-view").replaceChildren(
    el("h2", {}, "Labels"),
    el("p", {id: "export-summary"}, `${p.n_objects} rows: ${sum("validated")} validated, ${sum("dubious")} dubious, ` +
       `${sum("predicted")} predicted (the model's label, status predicted, as EcoTaxa imports them). `,
       el("a", {href: "/api/export.tsv", download: ""}, "EcoTaxa TSV"), " · ",
       el("a", {href: "/api/export.csv", download: ""}, "CSV"), "; also: diffprobe app export DIR --out OUT."),
    el("h2", {}, "A classifier bundle from the validated images"),
    el("p", {}, "classes with at least ", input, " validated images are learned, the others left out; written to " +
       "the project's bundle/ folder. ", write),
    table);
  $("export-view").dataset.loaded = String(sum("validated"));
}

function confusionTable(confusion) {
  if (!confusion.classes.length) return el("p", {className: "hint"}, "No confusion yet: nothing validated.");
  const top = Math.max(1, ...confusion.counts.flat());
  const table = el("table", {className: "confusion"},
    el("caption", {}, "validated label (rows) against predicted label (columns)"),
    el("tr", {}, el("th", {}), ...confusion.classes.map((c) => el("th", {className: "column"}, el("span", {}, c)))));
  confusion.counts.forEach((row, i) => {
    table.append(el("tr", {}, el("th", {}, confusion.classes[i]), ...row.map((n, j) => el("td", {
      className: i === j ? "diagonal" : "",
      title: `${n} validated as ${confusion.classes[i]}, predicted ${confusion.classes[j]}`,
      style: n ? `background: rgba(26, 102, 210, ${0.15 + (0.85 * n) / top}); color: ${n / top > 0.5 ? "#fff" : "#222"}` : "",
    }, n || ""))));
  });
  return table;
}

// ---- selection -----------------------------------------------------------------------------------------------
function clickTile(i, e) {
  const id = state.objects[i].id;
  if (e.shiftKey && state.anchor !== null) {
    const [a, b] = [Math.min(state.anchor, i), Math.max(state.anchor, i)];
    if (!(e.ctrlKey || e.metaKey)) state.selected.clear();
    for (let k = a; k <= b; k++) state.selected.add(state.objects[k].id);
  } else if (e.ctrlKey || e.metaKey) {
    state.selected.has(id) ? state.selected.delete(id) : state.selected.add(id);
    state.anchor = i;
  } else {
    state.selected = new Set([id]);
    state.anchor = i;
  }
  state.cursor = i;
  paintSelection();
  $("grid").focus();
}

function moveCursor(step, extend) {
  if (!state.objects.length) return;
  state.cursor = Math.max(0, Math.min(state.objects.length - 1, state.cursor + step));
  if (extend) state.selected.add(state.objects[state.cursor].id);
  paintSelection();
  $("grid").children[state.cursor].scrollIntoView({block: "nearest"});
}

function tilesPerRow() {
  const tiles = $("grid").children;
  if (!tiles.length) return 1;
  const top = tiles[0].offsetTop;
  let n = 0;
  while (n < tiles.length && tiles[n].offsetTop === top) n++;
  return Math.max(1, n);
}

// ---- actions -------------------------------------------------------------------------------------------------
async function decide(action, extra = {}) {
  const ids = [...state.selected];
  if (!ids.length) { say("select images first (click, Shift-click, or a for all on the page)", true); return; }
  // The version of each image as this page shows it: if another tab or person changed one since, the server
  // refuses the whole decision (409) with the images as they are now, and those tiles are redrawn.
  const shown = new Map(state.objects.map((o) => [o.id, o]));
  const versions = ids.map((id) => (shown.has(id) ? shown.get(id).version : -1));
  let r;
  try {
    r = await api("POST", "/api/decisions", {ids, action, versions, ...extra});
  } catch (e) {
    if (e.status === 409) refreshTiles(e.data.current);
    return;
  }
  const verb = {validate: "validated", dubious: "marked dubious", move: `moved to ${extra.label}`}[action];
  say(`${verb}: ${r.changed} image${r.changed === 1 ? "" : "s"}${r.changed ? " (u undoes)" : ""}`);
  state.selected.clear();
  await Promise.all([loadProject(), loadPage(), loadClusters()]);
}

function refreshTiles(current) {
  const now = new Map(current.map((o) => [o.id, o]));
  state.objects = state.objects.map((o) => now.get(o.id) || o);
  for (const id of now.keys()) state.selected.delete(id);
  renderGrid();
  for (const id of now.keys()) {
    const tile = $("grid").querySelector(`.tile[data-id="${id}"]`);
    if (tile) tile.classList.add("refreshed");
  }
  loadProject();
}

async function moveSelection() {
  const label = $("move-to").value.trim();
  if (!label) { $("move-to").focus(); return; }
  const known = state.classes.some((c) => c.name === label);
  if (!known && !confirm(`"${label}" is not a class yet. Create it and move the selection there?`)) return;
  await decide("move", {label, new_class: !known});
  $("move-to").value = "";
  $("grid").focus();
}

async function undo() {
  const r = await api("POST", "/api/undo");
  say(`undid ${r.action}: ${r.changed} image${r.changed === 1 ? "" : "s"} restored` +
      (r.skipped ? `, ${r.skipped} left (changed since)` : ""));
  await Promise.all([loadProject(), loadPage(), loadClusters()]);
}

// What a retrain did, or would do (a preview): its effect on the validated images it was not fitted on first.
function retrainText(r) {
  const moves = r.transitions.slice(0, 2).map((t) => `${t.from} → ${t.to} ${t.n}`).join(", ");
  const read = r.readout === "hidden" ? "the model's hidden layer" : "the features";
  const e = r.effect;
  const worse = r.applied ? " (worse: 'Back to the model' undoes the retrain)" : " (worse)";
  return `${r.applied ? "retrained" : "a retrain now would fit"} on ${r.n_validated} validated images, reading ` +
    `${read} (${r.classes.length} classes) in ${r.seconds} s: right on ${e.retrain_right} of ${e.n} validated ` +
    `images it was not fitted on, the model's own predictions on ${e.model_right}${e.worse ? worse : ""}; ` +
    `${r.n_changed} predictions ${r.applied ? "changed" : "would change"}` +
    (moves ? ` (${moves}${r.applied ? "; all in the sidebar" : ""})` : "") +
    (r.left_out.length ? `; ${r.left_out.length} classes under 2 validated images keep the model's predictions ` +
                         `(${r.n_kept} images)` + (r.left_out.length <= 5 ? `: ${r.left_out.join(", ")}` : "") : "");
}

async function previewRetrain() {
  say("estimating what a retrain would do…");
  const r = await api("GET", "/api/retrain/preview");
  say(retrainText(r), r.effect.worse);
}

async function retrain() {
  say("retraining…");
  const r = await api("POST", "/api/retrain");
  say(retrainText(r), r.effect.worse);
  await Promise.all([loadProject(), loadChanges(), loadPage()]);
}

async function backToModel() {
  const r = await api("POST", "/api/retrain/undo");
  say(`back to the model's own predictions: ${r.n_changed} predictions changed`);
  await Promise.all([loadProject(), loadChanges(), loadPage()]);
}

async function exportBundle(minPerClass) {
  say("writing the bundle…");
  const r = await api("POST", "/api/export/bundle", minPerClass ? {min_per_class: minPerClass} : undefined);
  const left = Object.entries(r.left_out).map(([c, n]) => `${c} (${n})`).join(", ");
  say(`bundle of ${r.classes.length} classes from ${r.n_images} validated images (cross-validated accuracy ` +
      `${Math.round(r.cross_validated_accuracy * 100)}%) written to ${r.path}` +
      (left ? `; left out (under ${r.min_per_class} validated): ${left}` : ""));
}

async function makeClusters() {
  say("clustering…");
  const r = await api("POST", "/api/clusters", {
    method: $("cluster-method").value, k: Number($("cluster-k").value), min_cluster_size: Number($("cluster-min").value),
    max_probability: Number($("cluster-p").value)});
  say(`${r.clusters.length} clusters of ${r.n_objects} unvalidated images below p ${r.max_probability}` +
      (r.n_noise ? ` (${r.n_noise} in no cluster)` : ""));
  showClusterList(r);
}

async function splitCluster() {
  const r = await api("POST", `/api/clusters/${state.view.number}/split`);
  say(`cluster ${state.view.number} split into ${r.made.join(" and ")}`);
  showClusterList(r);
  await show({kind: "cluster", number: r.made[0]});
}

async function growCluster() {
  const number = state.view.number;
  const r = await api("POST", `/api/clusters/${number}/grow`, {n: Number($("grow-n").value)});
  say(`cluster ${number} grew by ${r.added.length} images, nearest its centre first: check them, then name the cluster`);
  showClusterList(r);
  await show({kind: "cluster", number, part: "grown"});
}

async function nameCluster() {
  const label = $("cluster-name").value.trim();
  if (!label) { $("cluster-name").focus(); return; }
  const known = state.classes.some((c) => c.name === label);
  if (!known && !confirm(`"${label}" is not a class yet. Create it and name the cluster so?`)) return;
  const r = await api("POST", `/api/clusters/${state.view.number}/name`, {label, new_class: !known});
  say(`cluster ${state.view.number} named ${label}: ${r.changed} images validated` +
      (r.kept ? `, ${r.kept} decided before kept as they were` : "") + " (u undoes)");
  $("cluster-name").value = "";
  await Promise.all([loadProject(), loadPage(), loadClusters()]);
}

function changePage(step) {
  const pages = Math.max(1, Math.ceil(state.total / PER_PAGE));
  const page = Math.max(0, Math.min(pages - 1, state.page + step));
  if (page === state.page) return;
  state.page = page;
  state.selected.clear();
  state.cursor = 0;
  loadPage();
}

// ---- one image, enlarged -------------------------------------------------------------------------------------
// The image as large as the box allows (never smaller than in the grid), what is known of it, and the images
// nearest it in the model's features: what else in the project looks like this.
async function openDetail(id) {
  const [o, near] = await Promise.all([api("GET", `/api/objects/${id}`), api("GET", `/api/objects/${id}/neighbours`)]);
  const scale = Math.max(parseFloat($("zoom").value), Math.min(8, 420 / Math.max(o.width, o.height)));
  const img = $("detail-image");
  img.src = `/api/objects/${o.id}/image`;
  img.alt = o.object_id;
  img.width = Math.round(o.width * scale);
  img.height = Math.round(o.height * scale);
  const moved = o.label !== o.predicted_label;
  const facts = [["object", o.object_id], ["sample", o.sample], ["size", `${o.width} × ${o.height} px`],
    ["shown at", `× ${scale.toFixed(2)}`], ["class", o.label], ["status", o.status],
    ["model", `${o.predicted_label} ${(o.probability * 100).toFixed(1)}%` + (moved ? " (a person put it elsewhere)" : "")]];
  $("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("detail-neighbours").replaceChildren(...near.objects.map((n) => {
    const tile = el("div", {className: `tile status-${n.status}`},
      el("img", {src: `/api/objects/${n.id}/image`, alt: n.object_id, loading: "lazy"}),
      el("div", {className: "caption"}, n.label));
    tile.dataset.id = n.id;
    tile.title = `${n.object_id}: ${n.width}×${n.height} px`;
    tile.onclick = () => openDetail(n.id);
    return tile;
  }));
  $("detail").dataset.id = o.id;
  $("detail").hidden = false;
}

function closeDetail() {
  $("detail").hidden = true;
  $("grid").focus();
}

// ---- keyboard ------------------------------------------------------------------------------------------------
document.addEventListener("keydown", (e) => {
  if (!$("detail").hidden) {
    if (e.key === "Escape") { e.preventDefault(); closeDetail(); }
    return;
  }
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (document.activeElement === $("class-search")) {
    const text = $("class-search").value.trim().toLowerCase();
    const found = [...document.querySelectorAll("#classes li[data-label]")]
      .find((li) => !li.hidden && li.dataset.label.toLowerCase().includes(text));
    if (e.key === "Enter" && found) { e.preventDefault(); show({kind: "class", label: found.dataset.label}); }
    if (e.key === "Escape") { $("class-search").value = ""; filterClasses(); }
    return;
  }
  if (document.activeElement === $("cluster-name")) {
    if (e.key === "Enter") { e.preventDefault(); nameCluster(); }
    return;
  }
  if (document.activeElement === $("move-to")) {
    if (e.key === "Enter") { e.preventDefault(); moveSelection(); }
    if (e.key === "Escape") { $("move-to").value = ""; $("grid").focus(); }
    return;
  }
  if (typing || !state.view || $("grid").hidden) return;
  const ctrl = e.ctrlKey || e.metaKey;
  const key = e.key.toLowerCase();
  if (ctrl && key === "z") { e.preventDefault(); undo(); return; }
  if (ctrl && key === "a") { e.preventDefault(); selectAll(); return; }
  if (ctrl || e.altKey) return;
  const actions = {
    v: () => decide("validate"), d: () => decide("dubious"), u: () => undo(), a: selectAll,
    m: () => $("move-to").focus(), n: () => changePage(1), p: () => changePage(-1),
    g: () => state.view.kind === "cluster" && growCluster(),
    pagedown: () => changePage(1), pageup: () => changePage(-1),
    escape: () => { state.selected.clear(); paintSelection(); },
    enter: () => state.objects[state.cursor] && openDetail(state.objects[state.cursor].id),
    arrowright: () => moveCursor(1, e.shiftKey), arrowleft: () => moveCursor(-1, e.shiftKey),
    arrowdown: () => moveCursor(tilesPerRow(), e.shiftKey), arrowup: () => moveCursor(-tilesPerRow(), e.shiftKey),
    " ": () => {
      const id = state.objects[state.cursor] && state.objects[state.cursor].id;
      if (id === undefined) return;
      state.selected.has(id) ? state.selected.delete(id) : state.selected.add(id);
      state.anchor = state.cursor;
      paintSelection();
    },
  };
  if (actions[key]) { e.preventDefault(); actions[key](); }
});

function selectAll() {
  state.selected = new Set(state.objects.map((o) => o.id));
  paintSelection();
}

// ---- wiring --------------------------------------------------------------------------------------------------
$("user").value = localStorage.getItem("diffprobe-user") || "";
$("user").onchange = () => localStorage.setItem("diffprobe-user", user());
$("validate").onclick = () => decide("validate");
$("dubious").onclick = () => decide("dubious");
$("move").onclick = moveSelection;
$("undo").onclick = undo;
$("retrain").onclick = retrain;
$("preview-retrain").onclick = previewRetrain;
$("back-to-model").onclick = backToModel;
$("export-bundle").onclick = () => exportBundle();
$("make-clusters").onclick = makeClusters;
$("cluster-method").onchange = () => {
  const hdbscan = $("cluster-method").value === "hdbscan";  // HDBSCAN finds its own number of clusters
  $("cluster-k-label").hidden = hdbscan;
  $("cluster-min-label").hidden = !hdbscan;
};
$("split").onclick = splitCluster;
$("grow").onclick = growCluster;
$("show-grown").onclick = () => show({kind: "cluster", number: state.view.number, part: "grown"});
$("name-cluster").onclick = nameCluster;
$("show-dashboard").onclick = () => show({kind: "dashboard"});
$("show-export").onclick = () => show({kind: "export"});
$("detail-close").onclick = closeDetail;
$("detail").onclick = (e) => { if (e.target === $("detail")) closeDetail(); };
$("show-next").onclick = () => show({kind: "next"});
$("next-measure").onchange = () => state.view && state.view.kind === "next" && loadPage();
$("prev").onclick = () => changePage(-1);
$("next").onclick = () => changePage(1);
$("sort").onchange = $("status").onchange = () => { state.page = 0; loadPage(); };
$("zoom").value = localStorage.getItem("diffprobe-zoom") || $("zoom").value;
$("zoom").oninput = () => {
  localStorage.setItem("diffprobe-zoom", $("zoom").value);
  if (state.view) renderGrid();
};
$("hide-empty").checked = localStorage.getItem("diffprobe-hide-empty") !== "no";
$("hide-empty").onchange = () => {
  localStorage.setItem("diffprobe-hide-empty", $("hide-empty").checked ? "yes" : "no");
  filterClasses();
};
$("class-search").oninput = filterClasses;

(async () => {
  await loadProject();
  await Promise.all([loadClusters(), loadChanges()]);
  const first = state.classes.find((c) => c.total > 0);
  if (first) await show({kind: "class", label: first.name});
})();
