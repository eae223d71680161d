// The live view: polls api/state (the session as JSON, see hil/live/feed.py) and redraws with Plotly.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
const MICRO = 1e6;
let intervalMs = 1000;

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

function child(parent, selector, make) {
  let node = parent.querySelector(":scope > " + selector);
  if (!node) { node = make(); parent.appendChild(node); }
  return node;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

function number(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  const v = Number(value);
  return Math.abs(v) >= 10 ** digits ? v.toFixed(0) : v.toPrecision(digits);
}

function cell(field, value) {
  if (value === null || value === undefined) return "–";
  if (field.name === "time_s" && field.unit === "s") return new Date(value * 1000).toLocaleTimeString();
  return typeof value === "number" && !Number.isInteger(value) ? number(value, 5) : String(value);
}

function progressLine(run) {
  const p = run.progress;
  const parts = [`units ${p.units_done} / ${p.n_units}`];
  if (p.n_trials > 0) parts.push(`trials ${p.trials_done} / ${p.n_trials}`);
  if (p.rate !== null) parts.push(`${number(p.rate)} ${p.rate_unit}`);
  if (run.status === "running") parts.push(`ETA ${duration(p.eta_s)}`);
  return parts.join(" · ");
}

function title(text) {  // left, clear of the mode bar on the right
  return {text: text, x: 0.01, xanchor: "left", font: {size: 14}};
}

function plotDiv(box, kind) {
  return child(box, `.plot.${kind}`, () => el("div", {class: `plot ${kind}`}));
}

function drawCurves(box, run) {
  const traces = [];
  run.curves.forEach((curve, i) => {
    const color = PALETTE[i % PALETTE.length];
    const label = run.curves.filter(c => c.device === curve.device).length > 1
      ? `${curve.device} (${number(curve.width_s * 1e9)} ns)` : curve.device;
    const fitted = curve.fit ? ` · I50 ${number(curve.fit.i50_a * MICRO)} µA, w ${number(curve.fit.w_a * MICRO, 2)} µA`
                             : "";
    traces.push({
      x: curve.current_a.map(v => v * MICRO), y: curve.p, type: "scatter", mode: "markers", name: label + fitted,
      legendgroup: label, marker: {color: color, size: 6},
      error_y: {type: "data", symmetric: false, color: color, thickness: 1, width: 2,
                array: curve.ci_high.map((h, k) => h - curve.p[k]), arrayminus: curve.ci_low.map((l, k) => curve.p[k] - l)},
      text: curve.n_trials.map(n => `${n} trials`),
    });
    if (curve.fit) {
      traces.push({
        x: curve.fit.current_a.map(v => v * MICRO), y: curve.fit.p, type: "scatter", mode: "lines",
        name: `${label} logistic fit`, legendgroup: label, showlegend: false, line: {color: color, width: 1.5},
        hoverinfo: "skip",
      });
    }
  });
  Plotly.react(plotDiv(box, "pi"), traces, {
    title: title("P(I): points with 95 % Wilson intervals, running logistic fit"),
    xaxis: {title: {text: "bias current I (µA)"}}, yaxis: {title: {text: "switching probability P"}, range: [-0.05, 1.05]},
    margin: {t: 40}, legend: {font: {size: 10}},
  }, {displaylogo: false});
}

function drawLoops(box, run) {
  const devices = [...new Set(run.loops.map(l => l.device))];
  const traces = run.loops.map(loop => ({
    x: loop.current_a.map(v => v * MICRO), y: loop.reading_ohm, type: "scatter", mode: "lines+markers",
    name: `${loop.device} loop ${loop.loop}`, marker: {size: 3},
    line: {color: PALETTE[devices.indexOf(loop.device) % PALETTE.length], width: 1},
  }));
  Plotly.react(plotDiv(box, "loops"), traces, {
    title: title("Hysteresis loops"), xaxis: {title: {text: "current I (µA)"}},
    yaxis: {title: {text: "R_xy (Ω)"}}, margin: {t: 40}, legend: {font: {size: 10}},
  }, {displaylogo: false});
}

function drawEpochs(box, run) {
  const e = run.epochs;
  Plotly.react(plotDiv(box, "training"), [
    {x: e.epoch, y: e.loss, type: "scatter", mode: "lines+markers", name: "loss", line: {color: PALETTE[3]}},
    {x: e.epoch, y: e.train_accuracy, type: "scatter", mode: "lines+markers", name: "train accuracy", yaxis: "y2",
     line: {color: PALETTE[0]}},
    {x: e.epoch, y: e.test_accuracy, type: "scatter", mode: "lines+markers", name: "test accuracy", yaxis: "y2",
     line: {color: PALETTE[2]}, connectgaps: true},
  ], {
    title: title(`Training${run.role ? " (" + run.role + ")" : ""}`),
    xaxis: {title: {text: "epoch"}, dtick: Math.max(1, Math.ceil(e.epoch.length / 10))},
    yaxis: {title: {text: "loss"}},
    yaxis2: {title: {text: "accuracy"}, overlaying: "y", side: "right", range: [0, 1], tickmode: "auto"},
    margin: {t: 40}, legend: {orientation: "h", y: -0.2},
  }, {displaylogo: false});
}

function drawTables(box, run) {
  box.replaceChildren();
  for (const table of run.tables) {
    const node = el("table", {class: "records", "data-table": table.name});
    node.appendChild(el("caption", {}, `${table.name}: ${table.n_rows} rows` +
                                       (table.n_rows > table.rows.length ? ` (latest ${table.rows.length})` : "")));
    const head = el("tr");
    table.fields.forEach(f => head.appendChild(el("th", {}, f.unit ? `${f.name} (${f.unit})` : f.name)));
    node.appendChild(head);
    for (const row of table.rows) {
      const tr = el("tr");
      row.forEach((v, k) => tr.appendChild(el("td", {}, cell(table.fields[k], v))));
      node.appendChild(tr);
    }
    box.appendChild(node);
  }
}

function drawRun(run) {
  const container = document.getElementById("runs");
  const box = child(container, `#run-${run.name}`, () => el("section", {id: `run-${run.name}`, class: "run"}));
  const title = child(box, "h2", () => el("h2"));
  title.replaceChildren(el("span", {}, `run ${run.name} · ${run.protocol}${run.role ? " (" + run.role + ")" : ""} · `),
                        el("span", {class: `status status-${run.status}`}, run.status));
  const bar = child(box, ".progress", () => el("div", {class: "progress"}));
  const meter = child(bar, "progress", () => el("progress"));
  const total = run.progress.n_trials > 0 ? run.progress.n_trials : run.progress.n_units;
  const done = run.progress.n_trials > 0 ? run.progress.trials_done : run.progress.units_done;
  meter.max = Math.max(total, 1);
  meter.value = done;
  child(bar, "span", () => el("span", {class: "progress-text"})).textContent = progressLine(run);
  const plots = child(box, ".plots", () => el("div", {class: "plots"}));
  if (run.curves.length) drawCurves(plots, run);
  if (run.loops.length) drawLoops(plots, run);
  if (run.epochs) drawEpochs(plots, run);
  drawTables(child(box, ".tables", () => el("div", {class: "tables"})), run);
}

function errorItems(state) {
  const items = [];
  for (const run of state.runs) {
    for (const e of run.errors.instrument_errors) {
      const where = [`run ${run.name}`, e.unit !== null && e.unit !== undefined ? `unit ${e.unit}` : "",
                     e.device ? `device ${e.device}` : "", e.time_utc || ""].filter(Boolean).join(", ");
      items.push(["instrument-error", `${e.instrument} (${e.model}) reports ${e.code}: ${e.message} — ${where}`]);
    }
    if (run.errors.stopped) items.push(["run-stopped", `run ${run.name} (${run.protocol}) ${run.status}: ${run.errors.stopped}`]);
    for (const lost of run.errors.lost_devices) {
      items.push(["lost-device", `run ${run.name}: device ${lost.device} lost (${lost.reason})`]);
    }
  }
  return items;
}

function drawErrors(state) {
  const items = errorItems(state);
  const list = document.getElementById("error-list");
  list.replaceChildren(...items.map(([kind, text]) => el("li", {class: kind}, text)));
  document.getElementById("errors").hidden = items.length === 0;
}

function draw(state) {
  document.getElementById("file").textContent = `${state.file}${state.kind ? " · " + state.kind : ""}`;
  const status = document.getElementById("status");
  status.textContent = state.stale ? state.note : `read ${state.read_utc} · ${state.runs.length} run(s)`;
  status.className = state.stale ? "stale" : "";
  drawErrors(state);
  const shown = new Set(state.runs.map(run => `run-${run.name}`));
  for (const box of [...document.getElementById("runs").children]) {
    if (!shown.has(box.id)) box.remove();  // the file was replaced by one with fewer runs
  }
  state.runs.forEach(drawRun);
}

async function poll() {
  try {
    const response = await fetch("api/state", {cache: "no-store"});
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    const state = await response.json();
    intervalMs = Math.max(100, state.interval_s * 1000);
    draw(state);
  } catch (error) {
    const status = document.getElementById("status");
    status.textContent = `no answer from hil watch (${error.message}); retrying`;
    status.className = "stale";
  }
  setTimeout(poll, intervalMs);
}

poll();
