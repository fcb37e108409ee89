// The pywhisk console: sign in, actions and packages, activations, the live view and the invokers.
// Everything the server sends is rendered with textContent (never innerHTML): action names, results and logs
// are user data. The page's CSP (controller/routes/console.py) allows this origin's scripts only.

import { ApiError, WhiskApi, fetchPublic } from "./api.js";
import { LiveCharts } from "./live.js";
import { annotation, liveSeries, liveSummary, parsePrometheus, timing } from "./stats.js";

const KEY_STORAGE = "pywhisk.console.key";
const POLL_MS = 2000;
const LIVE_WINDOW_MS = 2 * 60 * 1000;
const LIVE_BUCKET_MS = 5000;
const LIVE_MAX_PAGES = 5; // 5 x 200 records per poll at most: the API's list limit is 200
const STATUS_NAMES = ["success", "application error", "developer error", "whisk internal error"];
// As the pywsk CLI (pywsk/entities.py KIND_BY_EXTENSION, BINARY_EXTENSIONS): .zip needs an explicit kind.
const KIND_BY_EXTENSION = { ".js": "nodejs:default", ".py": "python:default", ".wasm": "wasm:default" };
const BINARY_EXTENSIONS = new Set([".zip", ".jar", ".wasm"]);

const state = {
  api: null,
  namespace: null,
  executorByPath: new Map(),
  view: "actions",
  pollTimer: null,
  charts: null,
};

const $ = (id) => document.getElementById(id);

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("key").value);
  });
  $("sign-out").addEventListener("click", signOut);
  $("namespace").addEventListener("change", () => {
    state.namespace = $("namespace").value;
    showView(state.view);
  });
  for (const button of $("tabs").querySelectorAll("button")) {
    button.addEventListener("click", () => showView(button.dataset.view));
  }
  $("create-form").addEventListener("submit", (event) => {
    event.preventDefault();
    createAction();
  });
  $("invoke-form").addEventListener("submit", (event) => {
    event.preventDefault();
    invokeAction();
  });
  $("activation-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadActivations();
  });
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) signIn(saved);
});

// -- signing in ------------------------------------------------------------------------------------------

async function signIn(key) {
  showError($("sign-in-error"), null);
  if (!/^[^:\s]+:\S+$/.test(key.trim())) {
    showError($("sign-in-error"), "A key has the form uuid:key.");
    return;
  }
  let api;
  let namespaces;
  try {
    api = new WhiskApi(key);
    namespaces = await api.namespaces();
  } catch (error) {
    sessionStorage.removeItem(KEY_STORAGE);
    const message = error instanceof ApiError && error.status === 401
      ? `The server refused this key (401): ${error.message}`
      : `Cannot sign in: ${describe(error)}`;
    showError($("sign-in-error"), message);
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key.trim());
  $("key").value = "";
  state.api = api;
  const select = $("namespace");
  select.replaceChildren(...namespaces.map((ns) => option(ns, ns)));
  state.namespace = namespaces[0];
  $("whoami").textContent = `signed in as ${key.trim().split(":")[0]}`;
  $("sign-in-view").hidden = true;
  $("tabs").hidden = false;
  $("namespace-picker").hidden = false;
  $("sign-out").hidden = false;
  showView("actions");
}

function signOut() {
  sessionStorage.removeItem(KEY_STORAGE);
  window.location.reload();
}

// -- views -----------------------------------------------------------------------------------------------

function showView(view) {
  state.view = view;
  showError($("error"), null);
  for (const button of $("tabs").querySelectorAll("button")) {
    button.classList.toggle("active", button.dataset.view === view);
  }
  for (const section of document.querySelectorAll("section.view")) {
    section.hidden = section.id !== `${view}-view`;
  }
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
  if (view === "actions") guarded(loadActionsAndPackages);
  if (view === "activations") guarded(loadActivations);
  if (view === "live" || view === "invokers") poll(view);
}

// The live and invokers views refresh every POLL_MS while shown; the next poll is scheduled after the last
// one finished, so a slow server never piles requests up.
async function poll(view) {
  if (state.view !== view) return;
  await guarded(view === "live" ? refreshLive : refreshInvokers);
  if (state.view === view) state.pollTimer = setTimeout(() => poll(view), POLL_MS);
}

async function guarded(load) {
  try {
    await load();
  } catch (error) {
    showError($("error"), describe(error));
  }
}

// -- actions and packages ----------------------------------------------------------------------------------

async function loadActionsAndPackages() {
  const [actions, packages] = await Promise.all([
    state.api.actions(state.namespace),
    state.api.packages(state.namespace),
  ]);
  rememberExecutors(actions);
  const rows = actions.map((action) => {
    const name = qualifiedName(action);
    const invoke = button("invoke", () => {
      $("invoke-name").value = name;
      $("invoke-params").focus();
    });
    return row([name, String(annotation(action, "exec") || ""), action.version], invoke);
  });
  $("actions-table").tBodies[0].replaceChildren(...rows);
  const packageRows = packages.map((pkg) => {
    const binding = pkg.binding && pkg.binding.name ? `${pkg.binding.namespace}/${pkg.binding.name}` : "";
    return row([pkg.name, binding, pkg.version]);
  });
  $("packages-table").tBodies[0].replaceChildren(...packageRows);
  const select = $("invoke-name");
  const chosen = select.value;
  select.replaceChildren(...actions.map((action) => option(qualifiedName(action), qualifiedName(action))));
  if (chosen) select.value = chosen;
}

// An action listed in namespace "ns" or package "ns/pkg" is "name" or "pkg/name" to the API.
function qualifiedName(action) {
  const parts = String(action.namespace).split("/");
  return parts.length > 1 ? `${parts.slice(1).join("/")}/${action.name}` : action.name;
}

function rememberExecutors(actions) {
  for (const action of actions) {
    const executor = annotation(action, "executor");
    const path = `${action.namespace}/${action.name}`;
    if (executor) state.executorByPath.set(path, String(executor));
    else state.executorByPath.delete(path);
  }
}

async function createAction() {
  const status = $("create-status");
  const name = $("create-name").value.trim();
  const file = $("create-file").files[0];
  if (!name || !file) return;
  const extension = (/\.[^.]+$/.exec(file.name.toLowerCase()) || [""])[0];
  const kind = $("create-kind").value || KIND_BY_EXTENSION[extension];
  if (!kind) {
    status.textContent = extension === ".zip"
      ? "A .zip action needs its kind: choose one."
      : `'${extension || file.name}' is not a supported action runtime: choose a kind.`;
    status.className = "error";
    return;
  }
  const action = { exec: { kind, code: await readCode(file, extension) } };
  const executor = $("create-executor").value;
  if (executor) action.annotations = [{ key: "executor", value: executor }];
  try {
    const created = await state.api.putAction(state.namespace, name, action);
    status.textContent = `ok: ${name} (kind ${annotation(created, "exec") || kind}, version ${created.version})`;
    status.className = "ok";
    await loadActionsAndPackages();
    $("invoke-name").value = name;
  } catch (error) {
    status.textContent = `Unable to create action '${name}': ${describe(error)}`;
    status.className = "error";
  }
}

// Text as text, binaries (and text that is not UTF-8) as base64, as the CLI sends them.
async function readCode(file, extension) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (!BINARY_EXTENSIONS.has(extension)) {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch {
      // not UTF-8: sent as base64 below
    }
  }
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

async function invokeAction() {
  const status = $("invoke-status");
  const output = $("invoke-result");
  const name = $("invoke-name").value;
  let params;
  try {
    params = JSON.parse($("invoke-params").value || "{}");
    if (params === null || typeof params !== "object" || Array.isArray(params)) throw new Error("not an object");
  } catch (error) {
    status.textContent = `The parameters must be a JSON object: ${error.message}`;
    status.className = "error";
    return;
  }
  status.textContent = `invoking ${name}…`;
  status.className = "muted";
  output.textContent = "";
  try {
    const record = await state.api.invoke(state.namespace, name, params);
    const t = timing(record);
    status.textContent = `ok: activation ${record.activationId}, ${record.response.status}, ${t.total} ms`
      + ` (wait ${t.wait}, init ${t.init}, run ${t.run})`;
    status.className = "ok";
    output.textContent = JSON.stringify(record.response.result, null, 2);
  } catch (error) {
    status.textContent = `Unable to invoke '${name}': ${describe(error)}`;
    status.className = "error";
  }
}

// -- activations ---------------------------------------------------------------------------------------------

async function loadActivations() {
  const filters = {
    limit: 200,
    name: $("filter-name").value.trim(),
    since: toMillis($("filter-since").value),
    upto: toMillis($("filter-upto").value),
  };
  const status = $("filter-status").value;
  const summaries = await state.api.activations(state.namespace, filters);
  // The API filters by name and time; the status code is filtered here, on the page it returned.
  const shown = status === "" ? summaries : summaries.filter((a) => String(a.statusCode) === status);
  const longest = Math.max(1, ...shown.map((a) => timing(a).total));
  const rows = shown.map((activation) => {
    const t = timing(activation);
    const tr = row([
      new Date(activation.start).toLocaleString(),
      String(annotation(activation, "path") || activation.name),
      activation.activationId,
      STATUS_NAMES[activation.statusCode] || String(activation.statusCode),
      `${t.wait} / ${t.init} / ${t.run}`,
    ]);
    const cell = document.createElement("td");
    cell.append(timelineBar(t, longest));
    tr.append(cell);
    tr.classList.add("clickable");
    tr.dataset.activationId = activation.activationId;
    tr.addEventListener("click", () => guarded(() => showActivation(activation.activationId)));
    return tr;
  });
  $("activations-table").tBodies[0].replaceChildren(...rows);
}

async function showActivation(id) {
  const record = await state.api.activation(state.namespace, id);
  const t = timing(record);
  $("detail-id").textContent = record.activationId;
  $("detail-timeline").replaceChildren(timelineBar(t, t.total, true));
  const times = [
    ["waitTime", t.wait], ["initTime", t.init], ["run", t.run], ["duration", t.duration], ["total", t.total],
  ];
  $("detail-times").replaceChildren(...times.flatMap(([name, ms]) => {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = `${ms} ms`;
    dd.dataset.timing = name;
    return [dt, dd];
  }));
  $("detail-result").textContent = JSON.stringify(record.response, null, 2);
  $("detail-logs").textContent = (record.logs || []).join("\n");
  $("activation-detail").hidden = false;
}

// Three segments, wait | init | run, scaled to `scale` ms; widths set through the CSSOM (CSP-safe).
// A phase that happened is never drawn zero wide: a cold start of a module the executor has already loaded
// inits in under a millisecond (initTime 0), and the bar must still show it was a cold start.
function timelineBar(t, scale, labelled = false) {
  const bar = document.createElement("div");
  bar.className = labelled ? "timeline large" : "timeline";
  for (const [name, ms] of [["wait", t.wait], ["init", t.init], ["run", t.run]]) {
    const happened = ms > 0 || (name === "init" && t.cold);
    const segment = document.createElement("span");
    segment.className = `segment ${name}`;
    segment.dataset.ms = String(ms);
    segment.style.width = `${scale > 0 ? (100 * ms) / scale : 0}%`;
    if (happened) segment.style.minWidth = "3px";
    segment.title = `${name} ${ms} ms`;
    if (labelled && happened) segment.textContent = `${name} ${ms} ms`;
    bar.append(segment);
  }
  return bar;
}

// -- live view ---------------------------------------------------------------------------------------------

async function refreshLive() {
  const nowMs = Date.now();
  const records = await recentActivations(nowMs - LIVE_WINDOW_MS);
  if (state.executorByPath.size === 0) rememberExecutors(await state.api.actions(state.namespace));
  const series = liveSeries(records, {
    nowMs, windowMs: LIVE_WINDOW_MS, bucketMs: LIVE_BUCKET_MS, executorByPath: state.executorByPath,
  });
  if (!state.charts) state.charts = new LiveCharts($("chart-throughput"), $("chart-latency"), $("chart-cold"));
  state.charts.update(series);
  const summary = liveSummary(records);
  $("live-window").textContent = `${LIVE_WINDOW_MS / 60000} minutes`;
  $("live-summary").textContent = summary.count === 0
    ? "No activations in this window yet."
    : `${summary.count} activations; latency p50 ${summary.p50} ms, p95 ${summary.p95} ms, p99 ${summary.p99} ms; `
      + `cold starts ${summary.coldShare.toFixed(1)}%`;
  await refreshStarts();
}

async function recentActivations(since) {
  const records = [];
  for (let page = 0; page < LIVE_MAX_PAGES; page++) {
    const batch = await state.api.activations(state.namespace, { since, limit: 200, skip: page * 200 });
    records.push(...batch);
    if (batch.length < 200) break;
  }
  return records;
}

async function refreshStarts() {
  const samples = await metrics();
  $("starts-missing").hidden = samples !== null;
  const byExecutor = new Map();
  for (const sample of samples || []) {
    if (sample.name !== "pywhisk_starts_total") continue;
    const tally = byExecutor.get(sample.labels.executor) || { cold: 0, warm: 0 };
    if (sample.labels.start === "cold") tally.cold += sample.value;
    else tally.warm += sample.value;
    byExecutor.set(sample.labels.executor, tally);
  }
  const rows = [...byExecutor].sort((a, b) => a[0].localeCompare(b[0])).map(([executor, { cold, warm }]) => {
    const share = cold + warm > 0 ? `${((100 * cold) / (cold + warm)).toFixed(1)}%` : "";
    return row([executor, String(cold), String(warm), share]);
  });
  $("starts-table").tBodies[0].replaceChildren(...rows);
}

// /metrics parsed, or null when it does not answer (another build, or not enabled): the console degrades.
async function metrics() {
  try {
    return parsePrometheus(await fetchPublic("/metrics", "text/plain"));
  } catch {
    return null;
  }
}

// -- invokers ------------------------------------------------------------------------------------------------

async function refreshInvokers() {
  const health = JSON.parse(await fetchPublic("/invokers", "application/json"));
  const rows = Object.entries(health).sort().map(([name, status]) => {
    const tr = row([name, String(status)]);
    tr.cells[1].className = `health ${status}`;
    return tr;
  });
  $("invokers-table").tBodies[0].replaceChildren(...rows);
  const samples = await metrics();
  $("pools-missing").hidden = samples !== null;
  const pools = (samples || []).filter((s) => s.name === "pywhisk_pool_instances");
  pools.sort((a, b) => poolKey(a).localeCompare(poolKey(b)));
  $("pools-table").tBodies[0].replaceChildren(
    ...pools.map((s) => row([s.labels.invoker || "", s.labels.executor || "", s.labels.state || "", String(s.value)])),
  );
}

function poolKey(sample) {
  return `${sample.labels.invoker}/${sample.labels.executor}/${sample.labels.state}`;
}

// -- DOM helpers (text only) -----------------------------------------------------------------------------------

function row(texts, ...extra) {
  const tr = document.createElement("tr");
  for (const text of texts) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    tr.append(td);
  }
  for (const node of extra) {
    const td = document.createElement("td");
    td.append(node);
    tr.append(td);
  }
  return tr;
}

function option(value, text) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text;
  return element;
}

function button(text, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.addEventListener("click", onClick);
  return element;
}

function showError(element, message) {
  element.hidden = !message;
  element.textContent = message || "";
}

function describe(error) {
  if (error instanceof ApiError) return `${error.message} (HTTP ${error.status})`;
  return error && error.message ? error.message : String(error);
}

// <input type=datetime-local> gives local time without a zone; the API takes epoch milliseconds.
function toMillis(value) {
  if (!value) return undefined;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}
