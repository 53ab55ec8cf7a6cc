// Admin dashboard: plain JS against /api/admin (see /api/admin/openapi.json). The token lives in
// sessionStorage, so closing the tab logs out. A token in the URL's fragment (/admin/#token=..., what the
// server prints when it generated one) signs in; fragments never reach the server or its logs.
"use strict";

const API = "/api/admin";
const TOKEN_KEY = "voice-agent-admin-token";
const POLL_CALLS_MS = 2000;
const POLL_SLOW_MS = 5000;
const POLL_FAST_MS = 700;  // while a knowledge document is being ingested or deleted
let timers = [];
// Other scripts of the page (evidence.js) add what they start on sign-in and stop on sign-out.
const onStart = [];
const onLogout = [];

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  }
  return node;
}

function fmtTime(value) {
  // The API gives ISO strings; call records give epoch seconds.
  if (value === null || value === undefined || value === "") return "—";
  return new Date(typeof value === "number" ? value * 1000 : value).toLocaleString();
}

class ApiError extends Error {
  constructor(status, body) {
    const details = (body && body.details) ? body.details.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`) : [];
    super([(body && body.error) || `HTTP ${status}`, ...details].join("; "));
    this.status = status;
  }
}

async function api(method, path, body) {
  if (body === undefined) return authFetch(method, API + path);
  return authFetch(method, API + path, JSON.stringify(body), { "Content-Type": "application/json" });
}

// Any admin-token request (the admin API and the knowledge document API); JSON answer or ApiError.
async function authFetch(method, url, body, extraHeaders = {}) {
  const headers = { ...extraHeaders, Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}` };
  const response = await fetch(url, { method, headers, body });
  let data = null;
  try { data = await response.json(); } catch (_) { /* empty or non-JSON body */ }
  if (response.status === 401) { logout("The admin token was refused."); throw new ApiError(401, data); }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function showError(err) {
  $("app-error").textContent = err ? String(err.message || err) : "";
}

// --- login ---------------------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  try {
    await api("GET", "/campaigns");
    $("login-error").textContent = "";
    start();
  } catch (err) {
    $("login-error").textContent = err.status === 401 ? "Wrong token." : String(err.message);
  }
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  timers.forEach(clearInterval);
  timers = [];
  clearTimeout(knowledgeTimer);
  knowledgeTimer = null;
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login-panel").hidden = false;
  $("login-error").textContent = message || "";
  onLogout.forEach((stop) => stop());
}

function start() {
  $("login-panel").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;
  refreshCalls(); refreshCampaigns(); refreshIntents(); refreshLatency(); refreshKnowledge(); refreshPhone();
  timers.push(setInterval(refreshCalls, POLL_CALLS_MS));
  timers.push(setInterval(refreshPhone, POLL_CALLS_MS));
  timers.push(setInterval(refreshCampaigns, POLL_SLOW_MS));
  timers.push(setInterval(refreshLatency, POLL_SLOW_MS));
  onStart.forEach((begin) => begin());
}

// --- live calls ----------------------------------------------------------------------------------

async function refreshCalls() {
  try {
    const data = await api("GET", "/calls");
    const box = $("calls");
    box.replaceChildren();
    const load = data.load;
    $("calls-load").textContent = load
      ? `lines in use: ${load.in_use} of ${load.max_calls}` + (load.refused ? ` · ${load.refused} callers refused (all lines busy)` : "")
      : "";
    $("calls-load").className = load && load.in_use >= load.max_calls ? "full" : "";
    if (!data.available) box.append(el("p", { class: "muted" }, "This server does not expose live calls."));
    else if (!data.calls.length) box.append(el("p", { class: "muted" }, "No live calls."));
    for (const call of data.calls) {
      const turns = el("div", { class: "turns" });
      for (const turn of call.transcript || []) {
        const role = turn.role || turn.speaker || "?";
        turns.append(el("div", { class: `turn-${role}` }, `${role}: ${turn.text ?? ""}`));
      }
      box.append(el("div", { class: "call" },
        el("strong", {}, `${call.user_id || "anonymous"} `),
        el("small", {}, `${call.transport || ""}${call.on_hold ? " (on hold)" : ""} call ${call.call_id} · since ${fmtTime(call.started_at)}`),
        turns));
      turns.scrollTop = turns.scrollHeight;
    }
    $("calls-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) { showError(err); }
}

// --- send now ------------------------------------------------------------------------------------

async function sendNow(event) {
  event.preventDefault();
  const form = event.target;
  try {
    const prompt = { user_id: form.user_id.value.trim(), text: form.text.value };
    if (form.tenant.value.trim()) prompt.tenant = form.tenant.value.trim();
    const result = await api("POST", "/prompts", prompt);
    $("send-result").textContent = `${result.status} (prompt ${result.prompt_id})`;
    form.text.value = "";
  } catch (err) { $("send-result").textContent = ""; showError(err); }
}

// --- campaigns -----------------------------------------------------------------------------------

function campaignFromForm(form) {
  const spec = { name: form.name.value.trim() };
  if (form.tenant.value.trim()) spec.tenant = form.tenant.value.trim();
  const audience = form.audience.value.trim();
  spec.audience = form.audience_kind.value === "users"
    ? { user_ids: audience.split(",").map((s) => s.trim()).filter(Boolean) }
    : { intent_label: audience };
  spec[form.content_kind.value] = form.content.value;
  const tz = form.timezone.value.trim();
  if (form.schedule_kind.value === "at") {
    if (!form.at.value) throw new Error("Pick a time for a one-off campaign.");
    spec.schedule = { at: new Date(form.at.value).toISOString() };  // the browser's local time, sent as UTC
  } else {
    spec.schedule = { cron: form.cron.value.trim() };
    if (tz) spec.schedule.timezone = tz;
  }
  if (form.ttl_s.value) spec.ttl_s = Number(form.ttl_s.value);
  return spec;
}

async function createCampaign(event) {
  event.preventDefault();
  try {
    const created = await api("POST", "/campaigns", campaignFromForm(event.target));
    $("campaign-result").textContent = `Created "${created.name}", next run ${fmtTime(created.next_run_at)}.`;
    showError(null);
    refreshCampaigns();
  } catch (err) { $("campaign-result").textContent = ""; showError(err); }
}

function describeAudience(a) {
  return a.user_ids ? a.user_ids.join(", ") : `latest intent = ${a.intent_label}`;
}

function describeSchedule(s) {
  return s.at ? `once ${fmtTime(s.at)}` : `cron "${s.cron}"${s.timezone ? " " + s.timezone : ""}`;
}

async function campaignAction(id, action) {
  try { await api("POST", `/campaigns/${encodeURIComponent(id)}/${action}`); refreshCampaigns(); }
  catch (err) { showError(err); }
}

async function refreshCampaigns() {
  try {
    const data = await api("GET", "/campaigns");
    const body = $("campaigns");
    body.replaceChildren();
    for (const c of data.campaigns) {
      const actions = el("td");
      if (c.status === "active") actions.append(el("button", { class: "secondary", onclick: () => campaignAction(c.id, "pause") }, "Pause"));
      if (c.status === "paused") actions.append(el("button", { class: "secondary", onclick: () => campaignAction(c.id, "resume") }, "Resume"));
      if (c.status === "active" || c.status === "paused") {
        actions.append(" ", el("button", { class: "secondary", onclick: () => campaignAction(c.id, "cancel") }, "Cancel"));
      }
      actions.append(" ", el("button", { class: "secondary", onclick: () => showDeliveries(c) }, "Delivery"));
      body.append(el("tr", {},
        el("td", {}, c.name), el("td", { class: `status-${c.status}` }, c.status),
        el("td", {}, describeAudience(c.audience)), el("td", {}, describeSchedule(c.schedule)),
        el("td", {}, fmtTime(c.next_run_at)), el("td", {}, fmtTime(c.last_run_at)), actions));
    }
  } catch (err) { showError(err); }
}

async function showDeliveries(campaign) {
  try {
    const data = await api("GET", `/campaigns/${encodeURIComponent(campaign.id)}/deliveries`);
    $("deliveries-title").textContent = campaign.name;
    const body = $("deliveries");
    body.replaceChildren();
    if (!data.deliveries.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "Nothing scheduled or sent yet.")));
    for (const d of data.deliveries) {
      body.append(el("tr", {}, el("td", {}, d.user_id), el("td", {}, fmtTime(d.run_at)),
        el("td", { class: `status-${d.status}` }, d.status), el("td", {}, d.detail || ""),
        el("td", {}, fmtTime(d.updated_at))));
    }
    $("deliveries-panel").hidden = false;
  } catch (err) { showError(err); }
}

// --- intents -------------------------------------------------------------------------------------

async function refreshIntents(event) {
  if (event) event.preventDefault();
  const form = $("intent-filter");
  const params = new URLSearchParams();
  if (form.conversation_id.value.trim()) params.set("conversation_id", form.conversation_id.value.trim());
  if (form.user_id.value.trim()) params.set("user_id", form.user_id.value.trim());
  try {
    const data = await api("GET", `/intents?${params}`);
    const body = $("intents");
    body.replaceChildren();
    for (const r of data.intents) {
      body.append(el("tr", {}, el("td", {}, fmtTime(r.analyzed_at)), el("td", {}, r.conversation_id),
        el("td", {}, r.user_id), el("td", {}, r.label + (r.fallback ? " (fallback)" : "")),
        el("td", {}, r.confidence.toFixed(2)), el("td", {}, r.follow_up ? `yes${r.when ? " at " + fmtTime(r.when) : ""}` : "no"),
        el("td", {}, r.prompt || "")));
    }
  } catch (err) { showError(err); }
}

// --- knowledge documents -------------------------------------------------------------------------
// /api/knowledge/documents (knowledge/sources/upload.py): ingestion is asynchronous, so after an upload or
// a delete the list is polled fast until no document is queued, processing or being deleted.

const KNOWLEDGE = "/api/knowledge/documents";
let knowledgeTimer = null;
let lastUpload = null;  // { doc_id, name } of the latest upload from this page, reported until it settles
const deleting = new Set();  // documents (status URLs) whose delete was accepted but that are still listed

function scheduleKnowledge(delay) {
  clearTimeout(knowledgeTimer);
  knowledgeTimer = sessionStorage.getItem(TOKEN_KEY) ? setTimeout(refreshKnowledge, delay) : null;
}

function knowledgeUrl(doc) {
  return doc.status_url || `${KNOWLEDGE}/${encodeURIComponent(doc.doc_id)}`;  // names the document's tenant
}

function describeDocStatus(doc) {
  if (deleting.has(knowledgeUrl(doc))) return "deleting";
  return doc.status + (doc.error ? `: ${doc.error}` : "");
}

function reportUpload(doc) {
  if (!lastUpload || doc.doc_id !== lastUpload.doc_id) return;
  const result = $("knowledge-result");
  if (doc.status === "ready") result.textContent = `"${lastUpload.name}" is ready (${doc.chunk_count} chunks).`;
  else if (doc.status === "failed") result.textContent = `"${lastUpload.name}" failed: ${doc.error || "no reason given"}`;
  else result.textContent = `"${lastUpload.name}": ${doc.status}…`;
  result.classList.toggle("error", doc.status === "failed");
}

async function refreshKnowledge() {
  let busy = false;
  try {
    const data = await authFetch("GET", `${KNOWLEDGE}?limit=1000`);
    const listed = new Set(data.documents.map((d) => knowledgeUrl(d)));
    for (const id of [...deleting]) if (!listed.has(id)) deleting.delete(id);
    const body = $("knowledge-docs");
    body.replaceChildren();
    for (const doc of data.documents) {
      const del = el("button", { class: "secondary", onclick: () => deleteDocument(doc) }, "Delete");
      if (deleting.has(knowledgeUrl(doc))) del.disabled = true;
      const where = doc.tenant && doc.tenant !== "default" ? `${doc.tenant} / ${doc.doc_id}` : doc.doc_id;
      body.append(el("tr", { "data-doc-id": doc.doc_id },
        el("td", {}, doc.title || doc.doc_id, el("br"), el("small", {}, where)),
        el("td", {}, doc.source), el("td", { class: `status-${doc.status}` }, describeDocStatus(doc)),
        el("td", {}, String(doc.chunk_count)), el("td", {}, fmtTime(doc.updated_at)), el("td", {}, del)));
      reportUpload(doc);
      const retrying = doc.status === "failed" && (doc.error || "").includes("(retrying");
      busy = busy || doc.status === "queued" || doc.status === "processing" || retrying;
    }
    busy = busy || deleting.size > 0;
    $("knowledge-note").textContent = data.documents.length ? "" : "No documents yet.";
    $("knowledge-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err.status === 404) {  // the server runs without a knowledge base: nothing to poll
      $("knowledge-form").hidden = true;
      $("eval-form").hidden = true;
      $("knowledge-note").textContent = "This server does not expose the knowledge document API (knowledge base not started).";
      return;
    }
    $("knowledge-error").textContent = String(err.message || err);
  }
  scheduleKnowledge(busy ? POLL_FAST_MS : POLL_SLOW_MS);
}

async function uploadDocument(event) {
  event.preventDefault();
  const form = event.target;
  const file = form.file.files[0];
  $("knowledge-error").textContent = "";
  $("knowledge-result").classList.remove("error");
  if (!file) { $("knowledge-error").textContent = "Choose a file to upload."; return; }
  const body = new FormData();
  body.append("file", file, file.name);  // the browser sets the multipart boundary header itself
  if (form.title.value.trim()) body.append("title", form.title.value.trim());
  if (form.tags.value.trim()) body.append("tags", form.tags.value.trim());
  $("knowledge-result").textContent = `Uploading "${file.name}"…`;
  try {
    const created = await authFetch("POST", KNOWLEDGE, body);
    lastUpload = { doc_id: created.doc_id, name: file.name };
    $("knowledge-result").textContent = `"${file.name}": ${created.status} (document ${created.doc_id}).`;
    form.reset();
    refreshKnowledge();
  } catch (err) {
    $("knowledge-result").textContent = "";
    $("knowledge-error").textContent = `Upload of "${file.name}" refused: ${err.message}`;
  }
}

async function deleteDocument(doc) {
  if (!window.confirm(`Delete "${doc.title || doc.doc_id}" from the knowledge base?`)) return;
  try {
    await authFetch("DELETE", knowledgeUrl(doc));
    deleting.add(knowledgeUrl(doc));
    $("knowledge-error").textContent = "";
  } catch (err) {
    if (err.status !== 404) $("knowledge-error").textContent = String(err.message || err);  // 404: already gone
  }
  refreshKnowledge();
}

// --- latency chart -------------------------------------------------------------------------------

async function refreshLatency() {
  const canvas = $("latency-chart");
  try {
    const data = await api("GET", "/latency");
    drawLatency(canvas, data.stages);
    $("latency-note").textContent = data.stages.length
      ? "From this node's voice_agent_<stage>_seconds histograms since start."
      : "No latency samples yet: make a call.";
  } catch (err) {
    if (err.status !== 404) { showError(err); return; }
    drawLatency(canvas, []);
    $("latency-note").textContent = "Latency metrics are not exposed by this server (placeholder).";
  }
}

function drawLatency(canvas, stages) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  if (!stages.length) {
    ctx.fillStyle = "#888";
    ctx.fillText("no data", width / 2 - 20, height / 2);
    return;
  }
  const left = 40, bottom = height - 40, top = 20;
  const max = Math.max(0.05, ...stages.map((s) => s.p95_s || 0));
  const slot = (width - left - 10) / stages.length;
  ctx.strokeStyle = "#ccc";
  ctx.fillStyle = "#555";
  for (let i = 0; i <= 4; i += 1) {
    const y = bottom - ((bottom - top) * i) / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(width - 10, y); ctx.stroke();
    ctx.fillText(`${((max * i) / 4).toFixed(2)}s`, 2, y + 4);
  }
  stages.forEach((s, i) => {
    const x = left + i * slot + slot * 0.15;
    const barWidth = slot * 0.3;
    [[s.p50_s, "#457b9d"], [s.p95_s, "#e63946"]].forEach(([value, color], j) => {
      const h = ((value || 0) / max) * (bottom - top);
      ctx.fillStyle = color;
      ctx.fillRect(x + j * barWidth, bottom - h, barWidth - 2, h);
    });
    ctx.fillStyle = "#333";
    ctx.fillText(`${s.stage} (n=${s.count})`, x, bottom + 16);
  });
  ctx.fillStyle = "#457b9d"; ctx.fillRect(width - 150, 4, 10, 10);
  ctx.fillStyle = "#333"; ctx.fillText("p50", width - 136, 13);
  ctx.fillStyle = "#e63946"; ctx.fillRect(width - 100, 4, 10, 10);
  ctx.fillStyle = "#333"; ctx.fillText("p95", width - 86, 13);
}

// --- wiring --------------------------------------------------------------------------------------

$("login-form").addEventListener("submit", login);
$("logout").addEventListener("click", () => logout(""));
$("send-form").addEventListener("submit", sendNow);
$("campaign-form").addEventListener("submit", createCampaign);
$("intent-filter").addEventListener("submit", refreshIntents);
$("knowledge-form").addEventListener("submit", uploadDocument);
const fragmentToken = new URLSearchParams(location.hash.slice(1)).get("token");
if (fragmentToken) {
  sessionStorage.setItem(TOKEN_KEY, fragmentToken);
  history.replaceState(null, "", location.pathname);  // the token leaves the address bar and history
}
// After every script of the page ran (evidence.js registers its hooks), resume a signed-in session.
window.addEventListener("DOMContentLoaded", () => { if (sessionStorage.getItem(TOKEN_KEY)) start(); });
