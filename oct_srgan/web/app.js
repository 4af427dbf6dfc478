// oct-srgan serve: upload one scan, process it on the server, compare input | bicubic | SR | SR - bicubic.
"use strict";

const $ = (id) => document.getElementById(id);
// Every panel on the page: its caption, image text and whether it starts hidden (built by buildPanels).
const PANEL_VIEWS = [
  { name: "input", caption: "input", alt: "input B-scan", label: "input" },
  { name: "bicubic", caption: "bicubic", alt: "bicubic upscaling", label: "bicubic" },
  { name: "sr", caption: "SR (model)", alt: "super-resolved B-scan", label: "SR" },
  { name: "diff", caption: "SR − bicubic", alt: "difference SR minus bicubic", label: "difference",
    title: "Mid-grey: SR equals bicubic; brighter: SR brighter; darker: SR darker" },
  { name: "hr", caption: "original (scored against)", alt: "original B-scan", label: "original", hidden: true },
];
const PANELS = PANEL_VIEWS.map((view) => view.name);
const PROCESSED_PANELS = ["bicubic", "sr", "diff"]; // exist per B-scan once the worker has done it
const POLL_MS = 400;
const MAX_ZOOM = 32;
const KEY_ZOOM = 1.25;
const KEY_PAN = 0.1; // of the panel's size per arrow key
const MAX_STEM = 100;

const state = {
  model: null,
  suffixes: [], // scan suffixes from /api/formats, longest first (as serving.download_name uses them)
  scan: null,
  reference: null, // check mode: an uploaded clean scan to score against, else the scan itself
  fileName: "",
  mode: "enhance",
  k: 0,
  job: 0, // bumped for every processing request, so stale responses are ignored
  progress: null,
  loaded: {},
  metricsFor: null,
  pollTimer: null,
  view: { s: 1, tx: 0, ty: 0 },
  wl: { window: 100, level: 50 }, // percent of the displayed grey range
};

// ---------------------------------------------------------------------------------------------
// server calls

async function api(method, url, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.body = body;
    options.headers["Content-Type"] = "application/octet-stream";
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error("the server cannot be reached");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const message = data && typeof data.error === "string" ? data.error : `request failed (HTTP ${response.status})`;
    throw new Error(message);
  }
  return data;
}

function showError(message) {
  const box = $("error");
  box.textContent = String(message).split("\n")[0];
  box.hidden = false;
}

function clearError() {
  $("error").textContent = "";
  $("error").hidden = true;
}

// ---------------------------------------------------------------------------------------------
// model box

function fmt(value, digits) {
  return typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "–";
}

// The file picker's accepted types and the download names' suffixes come from the format table.
async function loadFormats() {
  try {
    const formats = await api("GET", "/api/formats");
    state.suffixes = formats.suffixes;
    const accept = [...formats.suffixes, ...formats.media_types].join(",");
    $("file-input").accept = accept;
    $("reference-input").accept = accept;
  } catch (err) {
    showError(err.message);
  }
}

async function loadModel() {
  try {
    state.model = await api("GET", "/api/model");
  } catch (err) {
    showError(err.message);
    return;
  }
  const m = state.model;
  $("model-source").textContent = m.source;
  const axes = m.upsample_axes === "lateral" ? " (lateral only)" : "";
  $("model-scale").textContent = `×${m.scale}${axes}, ${m.channels} channel${m.channels === 1 ? "" : "s"}`;
  const card = m.card;
  if (card && typeof card.model_psnr === "number") {
    const n = card.n_images ? `, ${card.n_images} B-scans` : "";
    const against = {
      reference: ", against clean references (registered averages)",
      self: ", against the noisy scans themselves",
    }[m.card_target] || "";
    const where = document.createElement("div");
    where.textContent = `${card.split || "test"} split${n}${against}:`;
    const numbers = document.createElement("div");
    numbers.textContent =
      `SR ${fmt(card.model_psnr, 2)} dB / ${fmt(card.model_ssim, 4)}, ` +
      `bicubic ${fmt(card.bicubic_psnr, 2)} dB / ${fmt(card.bicubic_ssim, 4)} (PSNR / SSIM)`;
    $("model-card").replaceChildren(where, numbers);
  } else {
    $("model-card").textContent = "no evaluation numbers in this model file";
  }
  showDiffScale(null);
}

// The diff panel's scale, per B-scan: black and white are -scale and +scale grey levels (8-bit).
function showDiffScale(scale) {
  const caption = $("caption-diff");
  const p = state.model ? state.model.diff_percentile : 99.5;
  if (typeof scale !== "number") {
    caption.textContent = "SR − bicubic (mid-grey = equal)";
    caption.title = "";
    return;
  }
  const s = scale.toFixed(scale < 10 ? 1 : 0);
  caption.textContent = `SR − bicubic: black −${s} … white +${s}`;
  caption.title =
    `Black −${s}, mid-grey 0, white +${s} grey levels (of 255): the scale is the ${p}th percentile ` +
    "of |SR − bicubic| on this B-scan; " +
    "larger differences show as pure black or white. Brighter: SR brighter than bicubic; darker: SR darker.";
}

// What check mode scores against, and why a despeckling model can lose against the scan itself.
function showCheckTarget(target) {
  const text =
    target === "reference"
      ? "Scored against the reference you uploaded (a clean scan of the same location): " +
        "how close SR and bicubic come to it."
      : "Scored against the uploaded scan itself, speckle included (no reference uploaded). " +
        "A model trained to remove speckle (towards clean registered averages) is penalised here " +
        "for the noise it removes, so it can score below bicubic on this check while scoring above " +
        "it against clean references (the model box). Upload a clean reference to score against it.";
  $("metrics-target").textContent = text;
}

// ---------------------------------------------------------------------------------------------
// upload and processing

async function handleFile(file) {
  if (!file) return;
  clearError();
  const limit = state.model ? state.model.max_upload_mb : null;
  if (limit !== null && file.size > limit * 1024 * 1024) {
    showError(`file too large: the upload limit is ${limit} MB`);
    return;
  }
  stopPolling();
  setProgress(null, "uploading…");
  let scan;
  try {
    scan = await api("POST", "/api/scans", file);
  } catch (err) {
    setProgress(0, "");
    showError(err.message);
    return;
  } finally {
    $("file-input").value = "";
  }
  state.scan = scan;
  state.reference = null;
  $("reference-name").textContent = "none: scored against the scan itself";
  state.fileName = file.name || "";
  state.k = 0;
  resetView();
  const slider = $("bscan-slider");
  slider.max = String(scan.n_bscans - 1);
  slider.value = "0";
  slider.disabled = scan.n_bscans < 2;
  buildStrip(scan.n_bscans);
  $("bscan-strip").hidden = scan.n_bscans < 2;
  onSlider();
  const kind = scan.format === "nifti" ? "NIfTI" : scan.format.toUpperCase();
  const plural = scan.n_bscans === 1 ? "" : "s";
  $("scan-info").textContent =
    `${kind}, ${scan.n_bscans} B-scan${plural} of ${scan.width}×${scan.height}, ${scan.bit_depth}-bit ` +
    `(id ${scan.id.slice(0, 8)})`;
  $("scan-note").textContent = scan.note ? `Note: ${scan.note}.` : "";
  $("scan-note").hidden = !scan.note;
  await startProcessing();
}

async function handleReference(file) {
  if (!file || !state.scan) return;
  clearError();
  let reference;
  try {
    reference = await api("POST", "/api/scans", file);
  } catch (err) {
    showError(`reference: ${err.message}`);
    return;
  } finally {
    $("reference-input").value = "";
  }
  state.reference = reference;
  const plural = reference.n_bscans === 1 ? "" : "s";
  $("reference-name").textContent =
    `scoring against ${reference.n_bscans} B-scan${plural} of ${reference.width}×${reference.height} (id ${reference.id.slice(0, 8)})` +
    (reference.note ? `; ${reference.note}` : "");
  await startProcessing();
}

async function startProcessing() {
  if (!state.scan) return;
  clearError();
  stopPolling();
  state.job += 1;
  const job = state.job;
  state.loaded = {};
  state.metricsFor = null;
  state.progress = null;
  setDownload(false);
  updateLayout();
  clearPanels();
  try {
    const reference = state.mode === "check" && state.reference ? `&reference=${state.reference.id}` : "";
    state.progress = await api("POST", `/api/scans/${state.scan.id}/process?mode=${state.mode}${reference}`);
  } catch (err) {
    showError(err.message);
    setProgress(0, "");
    return;
  }
  if (job !== state.job) return;
  onProgress(state.progress);
}

function stopPolling() {
  if (state.pollTimer !== null) {
    clearTimeout(state.pollTimer);
    state.pollTimer = null;
  }
}

async function poll(job) {
  state.pollTimer = null;
  let progress;
  try {
    progress = await api("GET", `/api/scans/${state.scan.id}/progress`);
  } catch (err) {
    if (job === state.job) showError(err.message);
    return;
  }
  if (job !== state.job) return;
  state.progress = progress;
  onProgress(progress);
}

function onProgress(p) {
  const total = p.total || 1;
  if (p.state === "error") {
    setProgress(p.done / total, "failed");
    showError(p.error || "processing failed");
  } else if (p.state === "done") {
    setProgress(1, `done: ${p.total} B-scan${p.total === 1 ? "" : "s"}`);
  } else if (p.state === "cancelled") {
    setProgress(p.done / total, "cancelled");
  } else {
    setProgress(p.done / total, p.state === "queued" ? "queued…" : `processing ${p.done} / ${p.total}`);
  }
  setDownload(Boolean(p.download));
  loadPanels();
  if (p.state === "queued" || p.state === "running") {
    const job = state.job;
    state.pollTimer = setTimeout(() => poll(job), POLL_MS);
  }
}

function setProgress(fraction, text) {
  const bar = $("progress");
  if (fraction === null) {
    bar.removeAttribute("value");
  } else {
    bar.value = fraction;
  }
  $("progress-text").textContent = text;
}

// The source's name with "_sr" and the content's suffix: scan.dcm -> scan_sr.dcm (as serving.download_name).
function downloadName(clientName, scan) {
  let name = String(clientName || "").split(/[/\\]/).pop();
  for (const extension of state.suffixes) {
    if (name.toLowerCase().endsWith(extension)) {
      name = name.slice(0, name.length - extension.length);
      break;
    }
  }
  const stem = name.replace(/[^A-Za-z0-9._-]/gu, "_").replace(/^\.+/, "").slice(0, MAX_STEM);
  return `${stem || "scan_" + scan.id.slice(0, 8)}_sr${scan.suffix}`;
}

function setDownload(enabled) {
  const link = $("download");
  if (enabled && state.scan && state.mode === "enhance") {
    link.href = `/api/scans/${state.scan.id}/download?name=${encodeURIComponent(state.fileName)}`;
    link.setAttribute("download", downloadName(state.fileName, state.scan));
    link.classList.remove("disabled");
    link.setAttribute("aria-disabled", "false");
  } else {
    link.removeAttribute("href");
    link.removeAttribute("download");
    link.classList.add("disabled");
    link.setAttribute("aria-disabled", "true");
  }
}

// ---------------------------------------------------------------------------------------------
// panels

function visiblePanels() {
  return state.mode === "check" ? PANELS : PANELS.filter((name) => name !== "hr");
}

function updateLayout() {
  const check = state.mode === "check";
  $("figure-hr").hidden = !check;
  $("metrics").hidden = !check;
  $("reference-zone").hidden = !check;
  $("caption-hr").textContent = check && state.reference ? "reference (uploaded)" : "original (scored against)";
  if (check) showCheckTarget(state.reference ? "reference" : "self");
  const scan = state.scan;
  if (!scan || !state.model) return;
  const s = state.model.scale;
  const lateral = state.model.upsample_axes === "lateral";
  let width = scan.width;
  let height = scan.height;
  if (check) {
    width = Math.floor(width / s) * s;
    height = lateral ? height : Math.floor(height / s) * s;
    const lrW = width / s;
    const lrH = lateral ? height : height / s;
    $("caption-input").textContent = `input: original degraded ×${s} (${lrW}×${lrH})`;
  } else {
    $("caption-input").textContent = `input (${width}×${height})`;
    if (lateral) width *= s;
  }
  $("caption-input").title = $("caption-input").textContent;
  for (const viewport of document.querySelectorAll(".viewport")) {
    viewport.style.aspectRatio = `${width} / ${height}`;
  }
}

function clearPanels() {
  for (const name of PANELS) {
    $(`panel-${name}`).removeAttribute("src");
    $(`pending-${name}`).hidden = true;
  }
  for (const id of ["metric-bicubic-psnr", "metric-bicubic-ssim", "metric-sr-psnr", "metric-sr-ssim"]) {
    $(id).textContent = "–";
  }
  $("metrics-mean").textContent = "";
}

function isFinished(k) {
  const p = state.progress;
  return Boolean(p && Array.isArray(p.finished) && p.finished.includes(k));
}

function panelReady(name) {
  const p = state.progress;
  if (!p || !p.mode) return false;
  if (!PROCESSED_PANELS.includes(name)) return true;
  return isFinished(state.k);
}

// A B-scan's processed panels appear as soon as the server lists it as finished, not at the end of the volume.
function loadPanels() {
  if (!state.scan) return;
  updateStrip();
  const p = state.progress;
  const active = Boolean(p && (p.state === "queued" || p.state === "running"));
  for (const name of visiblePanels()) {
    const img = $(`panel-${name}`);
    const pending = $(`pending-${name}`);
    const key = `${state.job}/${state.k}`;
    if (!panelReady(name)) {
      if (state.loaded[name] !== key) img.removeAttribute("src");
      pending.hidden = !active;
      pending.textContent = `B-scan ${state.k + 1}: waiting (${p ? p.done : 0} / ${p ? p.total : 0} done)`;
      continue;
    }
    pending.hidden = true;
    if (state.loaded[name] === key) continue;
    state.loaded[name] = key;
    img.src = `/api/scans/${state.scan.id}/bscan/${state.k}/${name}.png?job=${state.job}`;
  }
  const scales = p && Array.isArray(p.diff_scale) ? p.diff_scale : [];
  showDiffScale(isFinished(state.k) ? scales[state.k] : null);
  if (state.mode === "check" && panelReady("sr")) loadMetrics();
}

async function loadMetrics() {
  const key = `${state.job}/${state.k}/${state.progress ? state.progress.done : 0}`;
  if (state.metricsFor === key) return;
  state.metricsFor = key;
  const job = state.job;
  const k = state.k;
  let data;
  try {
    data = await api("GET", `/api/scans/${state.scan.id}/metrics/${k}`);
  } catch (err) {
    showError(err.message);
    return;
  }
  if (job !== state.job || k !== state.k || !data.scores) return;
  showCheckTarget(data.target);
  $("metric-bicubic-psnr").textContent = fmt(data.scores.bicubic.psnr, 2);
  $("metric-bicubic-ssim").textContent = fmt(data.scores.bicubic.ssim, 4);
  $("metric-sr-psnr").textContent = fmt(data.scores.sr.psnr, 2);
  $("metric-sr-ssim").textContent = fmt(data.scores.sr.ssim, 4);
  if (data.mean && data.n_done > 1) {
    $("metrics-mean").textContent =
      `mean over ${data.n_done} B-scans: bicubic ${fmt(data.mean.bicubic.psnr, 2)} dB / ${fmt(data.mean.bicubic.ssim, 4)}, ` +
      `SR ${fmt(data.mean.sr.psnr, 2)} dB / ${fmt(data.mean.sr.ssim, 4)}`;
  } else {
    $("metrics-mean").textContent = `border of ${data.shave} pixels left out of the scores`;
  }
}

function buildStrip(n) {
  const strip = $("bscan-strip");
  strip.replaceChildren();
  for (let k = 0; k < n; k += 1) {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.dataset.k = String(k);
    strip.appendChild(cell);
  }
}

function updateStrip() {
  for (const cell of $("bscan-strip").children) {
    const k = Number(cell.dataset.k);
    cell.classList.toggle("done", isFinished(k));
    cell.classList.toggle("current", k === state.k);
  }
}

function onStripClick(event) {
  const cell = event.target.closest(".cell");
  if (!cell) return;
  $("bscan-slider").value = cell.dataset.k;
  onSlider();
}

function stepBscan(delta) {
  if (!state.scan) return;
  const slider = $("bscan-slider");
  const k = Math.min(state.scan.n_bscans - 1, Math.max(0, state.k + delta));
  slider.value = String(k);
  onSlider();
}

function onSlider() {
  const k = Number($("bscan-slider").value);
  $("bscan-label").textContent = state.scan ? `${k + 1} / ${state.scan.n_bscans}` : "–";
  if (k === state.k) {
    updateStrip();
    return;
  }
  state.k = k;
  state.metricsFor = null;
  for (const id of ["metric-bicubic-psnr", "metric-bicubic-ssim", "metric-sr-psnr", "metric-sr-ssim"]) {
    $(id).textContent = "–";
  }
  loadPanels();
}

// ---------------------------------------------------------------------------------------------
// window / level: one SVG linear transfer (index.html, #window-level-filter) for every panel

function applyWindowLevel() {
  const width = state.wl.window / 100;
  const level = state.wl.level / 100;
  const slope = 1 / width; // grey g shows as (g - level) / width + 0.5, clipped to [0, 1]
  const intercept = 0.5 - level / width;
  for (const id of ["wl-r", "wl-g", "wl-b"]) {
    $(id).setAttribute("slope", slope.toFixed(4));
    $(id).setAttribute("intercept", intercept.toFixed(4));
  }
  $("panels").classList.toggle("windowed", state.wl.window !== 100 || state.wl.level !== 50);
  $("wl-window-value").textContent = `${state.wl.window}%`;
  $("wl-level-value").textContent = `${state.wl.level}%`;
}

function onWindowLevel() {
  state.wl.window = Number($("wl-window").value);
  state.wl.level = Number($("wl-level").value);
  applyWindowLevel();
}

function resetWindowLevel() {
  $("wl-window").value = "100";
  $("wl-level").value = "50";
  onWindowLevel();
}

// ---------------------------------------------------------------------------------------------
// synchronised zoom and pan: one transform for every panel (all viewports have the same size)

function applyView() {
  const { s, tx, ty } = state.view;
  const transform = `translate(${tx}px, ${ty}px) scale(${s})`;
  for (const name of PANELS) $(`panel-${name}`).style.transform = transform;
  $("panels").classList.toggle("pixelated", s >= 2);
}

function clampView(width, height) {
  const v = state.view;
  v.tx = Math.min(0, Math.max(width * (1 - v.s), v.tx));
  v.ty = Math.min(0, Math.max(height * (1 - v.s), v.ty));
}

function resetView() {
  state.view = { s: 1, tx: 0, ty: 0 };
  applyView();
}

function panelRect() {
  const shown = [...document.querySelectorAll(".viewport")].find((v) => v.offsetWidth > 0);
  return shown ? shown.getBoundingClientRect() : null;
}

// Zoom by ``factor`` about the point (x, y) of a panel, keeping that point where it is.
function zoomAbout(factor, x, y, rect) {
  const v = state.view;
  const s = Math.min(MAX_ZOOM, Math.max(1, v.s * factor));
  v.tx = x - ((x - v.tx) * s) / v.s;
  v.ty = y - ((y - v.ty) * s) / v.s;
  v.s = s;
  clampView(rect.width, rect.height);
  applyView();
}

function zoomKey(factor) {
  const rect = panelRect();
  if (rect) zoomAbout(factor, rect.width / 2, rect.height / 2, rect);
}

function panKey(dx, dy) {
  const rect = panelRect();
  if (!rect) return;
  state.view.tx += dx * KEY_PAN * rect.width;
  state.view.ty += dy * KEY_PAN * rect.height;
  clampView(rect.width, rect.height);
  applyView();
}

// +/-/0 zoom, W resets window/level, arrows pan (or at full view step B-scans), Page Up/Down step B-scans.
// Keys typed into a form control keep their own meaning there (the sliders and radio buttons use arrows).
function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const inField = event.target instanceof HTMLInputElement;
  const zoomed = state.view.s > 1;
  switch (event.key) {
    case "+":
    case "=":
      zoomKey(KEY_ZOOM);
      break;
    case "-":
    case "_":
    case "\u2212":
      zoomKey(1 / KEY_ZOOM);
      break;
    case "0":
      resetView();
      break;
    case "w":
    case "W":
      resetWindowLevel();
      break;
    case "PageUp":
    case "PageDown":
      if (inField) return;
      stepBscan(event.key === "PageUp" ? -1 : 1);
      break;
    case "ArrowLeft":
    case "ArrowRight":
      if (inField) return;
      if (zoomed) panKey(event.key === "ArrowLeft" ? 1 : -1, 0);
      else stepBscan(event.key === "ArrowLeft" ? -1 : 1);
      break;
    case "ArrowUp":
    case "ArrowDown":
      if (inField || !zoomed) return;
      panKey(0, event.key === "ArrowUp" ? 1 : -1);
      break;
    default:
      return;
  }
  event.preventDefault();
}

function onWheel(event) {
  event.preventDefault();
  const rect = event.currentTarget.getBoundingClientRect();
  zoomAbout(Math.exp(-event.deltaY * 0.0015), event.clientX - rect.left, event.clientY - rect.top, rect);
}

function onPointerDown(event) {
  if (event.button !== 0) return;
  const viewport = event.currentTarget;
  viewport.setPointerCapture(event.pointerId);
  viewport.classList.add("dragging");
  let lastX = event.clientX;
  let lastY = event.clientY;
  const move = (e) => {
    state.view.tx += e.clientX - lastX;
    state.view.ty += e.clientY - lastY;
    lastX = e.clientX;
    lastY = e.clientY;
    const rect = viewport.getBoundingClientRect();
    clampView(rect.width, rect.height);
    applyView();
  };
  const up = () => {
    viewport.classList.remove("dragging");
    viewport.removeEventListener("pointermove", move);
    viewport.removeEventListener("pointerup", up);
    viewport.removeEventListener("pointercancel", up);
  };
  viewport.addEventListener("pointermove", move);
  viewport.addEventListener("pointerup", up);
  viewport.addEventListener("pointercancel", up);
}

// ---------------------------------------------------------------------------------------------
// wiring

function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

// The panel figures (ids figure-, caption-, panel-, pending-<name>), one per PANEL_VIEWS entry.
function buildPanels() {
  for (const view of PANEL_VIEWS) {
    const caption = element("figcaption", { id: `caption-${view.name}`, ...(view.title ? { title: view.title } : {}) });
    caption.textContent = view.caption;
    const image = element("img", { id: `panel-${view.name}`, alt: view.alt, draggable: "false" });
    const pending = element("div", { class: "pending", id: `pending-${view.name}` });
    pending.hidden = true;
    const viewport = element("div", { class: "viewport", tabindex: "0",
      "aria-label": `${view.label} panel: + and − zoom, arrow keys pan` }, [element("div", { class: "layer" }, [image]), pending]);
    const figure = element("figure", { class: "panel", id: `figure-${view.name}`, "data-panel": view.name }, [caption, viewport]);
    figure.hidden = Boolean(view.hidden);
    $("panels").append(figure);
  }
}

function init() {
  buildPanels();
  $("file-input").addEventListener("change", (e) => handleFile(e.target.files[0]));
  $("reference-input").addEventListener("change", (e) => handleReference(e.target.files[0]));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    handleFile(e.dataTransfer.files[0]);
  });
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      state.mode = radio.value;
      startProcessing();
      updateLayout();
    });
  }
  state.mode = document.querySelector('input[name="mode"]:checked').value;
  updateLayout();
  $("bscan-slider").addEventListener("input", onSlider);
  $("bscan-strip").addEventListener("click", onStripClick);
  $("wl-window").addEventListener("input", onWindowLevel);
  $("wl-level").addEventListener("input", onWindowLevel);
  $("wl-reset").addEventListener("click", resetWindowLevel);
  onWindowLevel();
  $("zoom-reset").addEventListener("click", resetView);
  document.addEventListener("keydown", onKey);
  for (const viewport of document.querySelectorAll(".viewport")) {
    viewport.addEventListener("wheel", onWheel, { passive: false });
    viewport.addEventListener("pointerdown", onPointerDown);
    viewport.addEventListener("dblclick", resetView);
  }
  window.addEventListener("resize", resetView);
  loadFormats();
  loadModel();
}

init();
