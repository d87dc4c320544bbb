// koral console: live updates over EventSource, and fetch() carrying the CSRF header.
// Progressive enhancement: every page works without this file (forms post, links navigate).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

function text(tag, value) {
  const el = document.createElement(tag);
  el.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  return el;
}

// The cluster list (and a cluster page's state badge): rows follow the "state" events.
function followClusters(source, table, badge) {
  const es = new EventSource(source);
  es.addEventListener("state", (ev) => {
    const row = JSON.parse(ev.data);
    if (badge) {
      if (row.name !== badge.dataset.cluster) return;
      const el = document.getElementById("cluster-state");
      if (el) { el.textContent = row.state; el.className = "state state-" + row.state.toLowerCase(); }
      return;
    }
    const tr = table.querySelector(`tr[data-cluster="${CSS.escape(row.name)}"]`);
    if (!tr) { es.close(); window.location.reload(); return; } // a new cluster: render it whole
    for (const key of ["state", "autoscaling", "size", "version", "endpoint"]) {
      const cell = tr.querySelector(`[data-field="${key}"]`);
      if (cell) cell.textContent = row[key] || "—";
    }
    const state = tr.querySelector('[data-field="state"]');
    if (state) state.className = "state state-" + row.state.toLowerCase();
    const busy = tr.querySelector('[data-field="busy"]');
    if (busy) { busy.hidden = !row.busy; busy.textContent = row.busy ? "busy" : ""; busy.title = row.busy || ""; }
  });
  es.addEventListener("gone", (ev) => {
    const name = JSON.parse(ev.data).name;
    if (badge) return;
    table.querySelector(`tr[data-cluster="${CSS.escape(name)}"]`)?.remove();
  });
}

// A table of events: append each new one.
function followEvents(table) {
  const body = table.tBodies[0];
  const es = new EventSource(table.dataset.stream);
  es.addEventListener("event", (ev) => {
    const e = JSON.parse(ev.data);
    const tr = document.createElement("tr");
    for (const key of ["time", "operation", "phase", "result", "message"]) tr.append(text("td", e[key]));
    body.append(tr);
  });
  es.addEventListener("end", () => es.close());
}

// A job's progress: phase, play, task, per-host counters, failures; then its result.
function followJob(section) {
  const es = new EventSource(section.dataset.stream);
  es.addEventListener("view", (ev) => {
    const v = JSON.parse(ev.data);
    document.getElementById("job-phase").textContent = v.phase || "—";
    document.getElementById("job-play").textContent = v.play || "—";
    document.getElementById("job-task").textContent = v.task || "—";
    const body = document.querySelector("#hosts tbody");
    body.replaceChildren();
    for (const [host, h] of Object.entries(v.hosts)) {
      const tr = document.createElement("tr");
      tr.dataset.host = host;
      for (const value of [host, h.ok, h.changed, h.failed, h.skipped, h.unreachable ? "yes" : "", h.task]) {
        tr.append(text("td", value));
      }
      body.append(tr);
    }
    const failures = document.getElementById("failures");
    failures.replaceChildren(...v.failures.map((f) => text("li", `${f.host}: ${f.task}: ${f.message}`)));
    const messages = document.getElementById("messages");
    messages.replaceChildren(...v.messages.map((m) => text("li", m)));
  });
  es.addEventListener("job", (ev) => {
    const job = JSON.parse(ev.data);
    const badge = document.getElementById("job-state");
    if (badge.textContent !== job.state) {
      badge.textContent = job.state;
      badge.className = "state job-" + job.state;
      if (job.state !== "running") window.location.reload(); // render the result and the re-run
    }
  });
  es.addEventListener("end", () => es.close());
}

// One-button forms (lifecycle, remove a node, delete a rule) post with fetch() and the CSRF header,
// then go where the console sends them; a refusal falls back to the plain form post, whose page
// shows the error at its place.
function enhanceButtons() {
  for (const form of document.querySelectorAll("form.inline")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const resp = await fetch(form.action, {
        method: "POST", body: new FormData(form), headers: { "X-CSRF-Token": csrf() }, credentials: "same-origin",
      });
      if (resp.ok && resp.redirected) window.location.assign(resp.url);
      else form.submit();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const list = document.getElementById("clusters");
  if (list) followClusters(list.dataset.stream, list, null);
  const badge = document.getElementById("cluster-stream");
  if (badge) followClusters(badge.dataset.stream, null, badge);
  const events = document.getElementById("events");
  if (events) followEvents(events);
  const progress = document.getElementById("progress");
  if (progress) followJob(progress);
  enhanceButtons();
});
