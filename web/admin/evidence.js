// Admin dashboard, evidence (issue 14): the call view (each reply with how it was produced and the document
// sentences behind it) and knowledge-base evaluations. Uses admin.js's helpers ($, el, api, authFetch...).
"use strict";

const POLL_EVAL_MS = 500;
let openCall = null;  // call id shown in the call view; refreshed while the call is live
let evalTimer = null;

// --- call records and the call view ----------------------------------------------------------------

async function refreshRecords() {
  try {
    const data = await api("GET", "/call-records?limit=20");
    const body = $("records");
    body.replaceChildren();
    for (const call of data.calls) {
      const view = el("button", { class: "secondary", onclick: () => showCall(call.call_id) }, "View");
      body.append(el("tr", { "data-call-id": call.call_id },
        el("td", {}, fmtTime(call.started_at)), el("td", {}, call.user_id || "anonymous"),
        el("td", {}, call.node_id), el("td", {}, String(call.turns)),
        el("td", {}, call.live ? "live" : `${fmtTime(call.ended_at)} (${call.end_reason || "?"})`), el("td", {}, view)));
      if (call.call_id === openCall && call.live) showCall(openCall);
    }
    $("records-note").textContent = data.calls.length ? "" : "No calls recorded yet.";
    $("records-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err.status === 404) { $("records-note").textContent = "This server does not expose call records."; return; }
    showError(err);
  }
}

async function showCall(callId) {
  try {
    const call = await api("GET", `/call-records/${encodeURIComponent(callId)}`);
    openCall = callId;
    $("call-view-title").textContent = `${call.call_id} · ${call.user_id || "anonymous"} · ${fmtTime(call.started_at)}`;
    const box = $("call-turns");
    box.replaceChildren();
    if (!call.turns.length) box.append(el("p", { class: "muted" }, "No replies yet."));
    for (const turn of call.turns) box.append(renderTurn(turn));
    $("call-view").hidden = false;
  } catch (err) { showError(err); }
}

function renderTurn(turn) {
  const node = el("div", { class: "turn", "data-turn": String(turn.index) },
    el("div", { class: "turn-user" }, `caller: ${turn.user_text}`),
    el("div", { class: "turn-agent" }, `agent: ${turn.agent_text}${turn.interrupted ? " (interrupted)" : ""}`));
  const g = turn.grounding;
  if (!g) {
    node.append(el("p", { class: "muted" }, "No grounding was recorded for this reply."));
    return node;
  }
  const confidence = g.confidence === null || g.confidence === undefined ? "" : ` · confidence ${g.confidence.toFixed(2)}`;
  node.append(el("div", { class: "grounding" },
    el("span", { class: `produced produced-${g.produced_by || "none"}` }, g.produced_by || "no account"), confidence));
  if (g.evidence.length) {
    const list = el("ul", { class: "evidence" });
    for (const e of g.evidence) list.append(el("li", {}, el("code", {}, e.doc_id), " ", e.sentence));
    node.append(el("div", { class: "label" }, "Evidence"), list);
  }
  if (g.rejected.length) {
    const list = el("ul", { class: "rejected" });
    for (const r of g.rejected) {
      list.append(el("li", {}, `“${r.text}” — not in the evidence: ${r.unsupported.join(", ")}`));
    }
    node.append(el("div", { class: "label" }, "Not spoken (failed the fact check)"), list);
  }
  return node;
}

// --- evaluations ---------------------------------------------------------------------------------

const SCORE_ROWS = [
  ["answer_accuracy", "answers holding the accepted facts"],
  ["unanswerable_refusal_rate", "questions without an answer that were refused"],
  ["invented_fact_rate", "replies with a fact the evidence lacks"],
  ["wrong_answer_rate", "answers without the accepted fact, not refused"],
  ["answerable_refused_rate", "answerable questions refused"],
  ["first_sentence_s_p50", "seconds to the first sentence (median)"],
  ["questions", "questions"],
];

async function runEvaluation(event) {
  event.preventDefault();
  const form = event.target;
  const file = form.file.files[0];
  $("eval-error").textContent = "";
  if (!file) { $("eval-error").textContent = "Choose a question file."; return; }
  const body = new FormData();
  body.append("file", file, file.name);
  try {
    const job = await authFetch("POST", `${API}/evaluations`, body);
    form.reset();
    showEvaluation(job);
    pollEvaluation(job.job_id);
  } catch (err) {
    $("eval-error").textContent = `Evaluation of "${file.name}" refused: ${err.message}`;
  }
}

async function pollEvaluation(jobId) {
  clearTimeout(evalTimer);
  try {
    const job = await api("GET", `/evaluations/${encodeURIComponent(jobId)}`);
    showEvaluation(job);
    if (job.status === "running") evalTimer = setTimeout(() => pollEvaluation(jobId), POLL_EVAL_MS);
  } catch (err) { $("eval-error").textContent = String(err.message || err); }
}

function fmtScore(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(3) : String(value);
}

function showEvaluation(job) {
  const progress = $("eval-progress");
  progress.textContent = `"${job.file_name}": ${job.status}, ${job.done} / ${job.total} questions`
    + (job.error ? ` (${job.error})` : "");
  progress.classList.toggle("error", job.status === "failed");
  const scores = $("eval-scores-body");
  scores.replaceChildren();
  if (job.scores) {
    for (const [key, label] of SCORE_ROWS) {
      scores.append(el("tr", { "data-score": key }, el("td", {}, `${key} (${label})`), el("td", {}, fmtScore(job.scores[key]))));
    }
  }
  $("eval-scores").hidden = !job.scores;
  const failures = $("eval-failures");
  failures.replaceChildren();
  for (const f of job.failures || []) {
    const evidence = f.evidence.map((e) => `[${e.doc_id}] ${e.sentence}`).join(" / ") || "(none)";
    const question = f.after.length ? `${f.after.join(" / ")} → ${f.question}` : f.question;
    failures.append(el("tr", { "data-case": f.id }, el("td", {}, question), el("td", {}, f.expected),
      el("td", {}, f.said || "(nothing)"), el("td", {}, `${f.why}${f.produced_by ? ` [${f.produced_by}]` : ""}`),
      el("td", {}, evidence)));
  }
  $("eval-failures-table").hidden = !(job.failures && job.failures.length);
}

// --- wiring --------------------------------------------------------------------------------------

onStart.push(() => { refreshRecords(); timers.push(setInterval(refreshRecords, POLL_SLOW_MS)); });
onLogout.push(() => { clearTimeout(evalTimer); evalTimer = null; openCall = null; $("call-view").hidden = true; });
$("eval-form").addEventListener("submit", runEvaluation);
