// diffprobe app: the grid, selection, keyboard and the calls to the JSON API (/api/...). No framework, no CDN.
"use strict";

const PER_PAGE = 100;
const SCALE_PX = 50;  // the scale bar shows this many pixels of the original images
const $ = (id) => document.getElementById(id);

const state = {
  classes: [],       // [{name, predicted, validated, dubious, total}]
  view: null,        // {kind: "class", label} or {kind: "cluster", number}
  page: 0, total: 0,
  objects: [],       // the page shown
  selected: new Set(),
  anchor: null,      // index of the last plain click, for Shift ranges
  cursor: 0,
};

function user() { return $("user").value.trim(); }

async function api(method, url, body) {
  const headers = {};
  if (user()) headers["X-Diffprobe-User"] = user();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(url, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const error = new Error(data.detail || `${r.status} ${r.statusText}`);
    say(error.message, true);
    throw error;
  }
  return data;
}

function say(text, isError = false) {
  const m = $("message");
  m.textContent = text;
  m.className = isError ? "error" : "";
}

// ---- loading -------------------------------------------------------------------------------------------------
async function loadProject() {
  const p = await api("GET", "/api/project");
  state.classes = p.classes;
  $("project-name").textContent = p.name;
  const validated = p.classes.reduce((s, c) => s + c.validated, 0);
  $("project-info").textContent = `${p.n_objects} images, ${validated} validated`;
  if (!user()) $("user").placeholder = p.user;
  const list = $("classes");
  list.replaceChildren(...p.classes.map((c) => {
    const li = document.createElement("li");
    li.dataset.label = c.name;
    li.innerHTML = `<span></span><span class="hint"></span>`;
    li.firstChild.textContent = c.name;
    li.lastChild.textContent = `${c.validated} / ${c.total}`;
    if (state.view && state.view.kind === "class" && state.view.label === c.name) li.classList.add("current");
    li.onclick = () => show({kind: "class", label: c.name});
    return li;
  }));
  $("class-names").replaceChildren(...p.classes.map((c) => Object.assign(document.createElement("option"), {value: c.name})));
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
    li.innerHTML = `<span>cluster ${c.cluster}</span><span class="hint">${c.size}</span>`;
    if (state.view && state.view.kind === "cluster" && state.view.number === c.cluster) li.classList.add("current");
    li.onclick = () => show({kind: "cluster", number: c.cluster});
    return li;
  }));
}

async function loadPage() {
  if (!state.view) return;
  const q = new URLSearchParams({page: state.page, per_page: PER_PAGE});
  let url;
  if (state.view.kind === "class") {
    q.set("label", state.view.label);
    q.set("sort", $("sort").value);
    if ($("status").value) q.set("status", $("status").value);
    url = `/api/objects?${q}`;
  } else {
    url = `/api/clusters/${state.view.number}/objects?${q}`;
  }
  const r = await api("GET", url);
  state.total = r.total;
  const pages = Math.max(1, Math.ceil(r.total / PER_PAGE));
  if (state.page >= pages && state.page > 0) { state.page = pages - 1; return loadPage(); }
  state.objects = r.objects;
  state.cursor = Math.min(state.cursor, Math.max(0, r.objects.length - 1));
  $("page-text").textContent = `page ${state.page + 1} / ${pages} (${r.total} images)`;
  renderGrid();
}

function renderGrid() {
  const zoom = parseFloat($("zoom").value);
  $("scale-bar").style.width = `${SCALE_PX * zoom}px`;
  $("scale-text").textContent = `${SCALE_PX} px`;
  const inCluster = state.view.kind === "cluster";
  // What the grid shows, for scripts and tests that wait for a view to finish loading.
  $("grid").dataset.view = inCluster ? `cluster:${state.view.number}` : `class:${state.view.label}`;
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
    const label = inCluster || o.label !== o.predicted_label ? `${o.label} · ` : "";
    caption.innerHTML = `<span class="badge ${o.status}">${o.status}</span> `;
    caption.append(`${label}${Math.round(o.probability * 100)}%`);
    tile.title = `${o.object_id}: ${o.width}×${o.height} px; model: ${o.predicted_label} ${(o.probability * 100).toFixed(1)}%`;
    tile.append(img, caption);
    tile.onclick = (e) => clickTile(i, e);
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
  $("view-title").textContent = view.kind === "class" ? view.label : `cluster ${view.number}`;
  for (const li of document.querySelectorAll("#sidebar li")) {
    li.classList.toggle("current", view.kind === "class" ? li.dataset.label === view.label
                                                        : Number(li.dataset.cluster) === view.number);
  }
  $("sort").disabled = $("status").disabled = view.kind === "cluster";  // a cluster is ordered by distance to its centre
  await loadPage();
  $("grid").focus();
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
  const r = await api("POST", "/api/decisions", {ids, action, ...extra});
  const verb = {validate: "validated", dubious: "marked dubious", move: `moved to ${extra.label}`}[action];
  say(`${verb}: ${r.changed} image${r.changed === 1 ? "" : "s"}${r.changed ? " (u undoes)" : ""}`);
  state.selected.clear();
  await Promise.all([loadProject(), loadPage()]);
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
  await Promise.all([loadProject(), loadPage()]);
}

async function retrain() {
  say("retraining…");
  const r = await api("POST", "/api/retrain");
  say(`retrained on ${r.n_validated} validated images (${r.classes.length} classes, cross-validated accuracy ` +
      `${Math.round(r.cross_validated_accuracy * 100)}%) in ${r.seconds} s: ${r.n_changed} predictions changed` +
      (r.left_out.length ? `; left out (under 2 validated): ${r.left_out.join(", ")}` : ""));
  await Promise.all([loadProject(), loadPage()]);
}

async function makeClusters() {
  say("clustering…");
  const r = await api("POST", "/api/clusters", {k: Number($("cluster-k").value), max_probability: Number($("cluster-p").value)});
  say(`${r.clusters.length} clusters of ${r.n_objects} unvalidated images below p ${r.max_probability}`);
  showClusterList(r);
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

// ---- keyboard ------------------------------------------------------------------------------------------------
document.addEventListener("keydown", (e) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (document.activeElement === $("move-to")) {
    if (e.key === "Enter") { e.preventDefault(); moveSelection(); }
    if (e.key === "Escape") { $("move-to").value = ""; $("grid").focus(); }
    return;
  }
  if (typing || !state.view) return;
  const ctrl = e.ctrlKey || e.metaKey;
  const key = e.key.toLowerCase();
  if (ctrl && key === "z") { e.preventDefault(); undo(); return; }
  if (ctrl && key === "a") { e.preventDefault(); selectAll(); return; }
  if (ctrl || e.altKey) return;
  const actions = {
    v: () => decide("validate"), d: () => decide("dubious"), u: () => undo(), a: selectAll,
    m: () => $("move-to").focus(), n: () => changePage(1), p: () => changePage(-1),
    pagedown: () => changePage(1), pageup: () => changePage(-1),
    escape: () => { state.selected.clear(); paintSelection(); },
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
$("make-clusters").onclick = makeClusters;
$("prev").onclick = () => changePage(-1);
$("next").onclick = () => changePage(1);
$("sort").onchange = $("status").onchange = () => { state.page = 0; loadPage(); };
$("zoom").oninput = () => state.view && renderGrid();

(async () => {
  await loadProject();
  await loadClusters();
  const first = state.classes.find((c) => c.total > 0);
  if (first) await show({kind: "class", label: first.name});
})();
