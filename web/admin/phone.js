// Admin dashboard, phone part: the directory (number <-> user <-> tenant <-> time zone), "call this user
// now", and the outbound attempts of presence-aware outreach. Loaded before admin.js, whose helpers
// (api, el, $, fmtTime, showError) it uses when called.
"use strict";

async function refreshPhone() {
  try {
    const [directory, attempts] = await Promise.all([api("GET", "/phone/directory"), api("GET", "/phone/attempts")]);
    renderDirectory(directory.entries);
    renderAttempts(attempts.attempts);
    $("phone-panel").hidden = false;
    $("phone-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    if (err.status === 404) { $("phone-panel").hidden = true; return; }  // a server without the phone API
    showError(err);
  }
}

function renderDirectory(entries) {
  const body = $("directory");
  body.replaceChildren();
  if (!entries.length) body.append(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No phone numbers yet.")));
  for (const e of entries) {
    body.append(el("tr", {},
      el("td", {}, e.number), el("td", {}, e.user_id), el("td", {}, e.tenant), el("td", {}, e.timezone),
      el("td", {}, e.sip_uri || "the number, through the trunk"), el("td", {}, e.source),
      el("td", {},
        el("button", { class: "secondary", onclick: () => callNow(e.user_id) }, "Call now"), " ",
        el("button", { class: "secondary", onclick: () => removeEntry(e.number) }, "Remove"))));
  }
}

function renderAttempts(rows) {
  const body = $("phone-attempts");
  body.replaceChildren();
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: "8", class: "muted" }, "No outbound calls yet.")));
  for (const r of rows) {
    body.append(el("tr", {},
      el("td", {}, r.user_id), el("td", { class: `status-${r.status}` }, r.status), el("td", {}, String(r.attempts)),
      el("td", {}, r.last_outcome || "—"), el("td", {}, fmtTime(r.next_attempt_at)), el("td", {}, r.response || "—"),
      el("td", {}, r.detail || ""), el("td", {}, fmtTime(r.updated_at))));
  }
}

async function addEntry(event) {
  event.preventDefault();
  const form = event.target;
  const entry = {
    number: form.number.value.trim(), user_id: form.user_id.value.trim(),
    tenant: form.tenant.value.trim(), timezone: form.timezone.value.trim(),
  };
  if (form.sip_uri.value.trim()) entry.sip_uri = form.sip_uri.value.trim();
  try {
    const stored = await api("POST", "/phone/directory", entry);
    $("directory-result").textContent = `Saved ${stored.number} for ${stored.user_id}.`;
    showError(null);
    refreshPhone();
  } catch (err) { $("directory-result").textContent = ""; showError(err); }
}

async function removeEntry(number) {
  try { await api("DELETE", `/phone/directory/${encodeURIComponent(number)}`); refreshPhone(); }
  catch (err) { showError(err); }
}

async function callNow(userId) {
  const text = window.prompt(`Call ${userId} now. What should the agent say first? (empty: the greeting)`, "");
  if (text === null) return;
  try {
    const body = { user_id: userId };
    if (text.trim()) body.text = text.trim();
    const result = await api("POST", "/phone/calls", body);
    $("directory-result").textContent = `Calling ${userId} at ${result.target}…`;
    showError(null);
    refreshPhone();
  } catch (err) { showError(err); }
}

document.getElementById("directory-form").addEventListener("submit", addEntry);
