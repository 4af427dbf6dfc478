// oct-srgan serve: upload one scan, process it on the server, compare input | bicubic | SR.
"use strict";

const $ = (id) => document.getElementById(id);
const PANELS = ["input", "bicubic", "sr", "hr"];
const POLL_MS = 400;
const MAX_ZOOM = 32;

const state = {
  model: null,
  scan: null,
  mode: "enhance",
  k: 0,
  job: 0, // bumped for every processing request, so stale responses are ignored
  progress: null,
  loaded: {},
  metricsFor: null,
  pollTimer: null,
  view: { s: 1, tx: 0, ty: 0 },
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
    $("model-card").textContent =
      `${card.split || "test"} split${n}: SR ${fmt(card.model_psnr, 2)} dB / ${fmt(card.model_ssim, 4)}, ` +
      `bicubic ${fmt(card.bicubic_psnr, 2)} dB / ${fmt(card.bicubic_ssim, 4)} (PSNR / SSIM)`;
  } else {
    $("model-card").textContent = "no evaluation numbers in this model file";
  }
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
  state.k = 0;
  resetView();
  const slider = $("bscan-slider");
  slider.max = String(scan.n_bscans - 1);
  slider.value = "0";
  slider.disabled = scan.n_bscans < 2;
  onSlider();
  const kind = scan.format === "nifti" ? "NIfTI" : scan.format.toUpperCase();
  const plural = scan.n_bscans === 1 ? "" : "s";
  $("scan-info").textContent =
    `${kind}, ${scan.n_bscans} B-scan${plural} of ${scan.width}×${scan.height}, ${scan.bit_depth}-bit ` +
    `(id ${scan.id.slice(0, 8)})`;
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
    state.progress = await api("POST", `/api/scans/${state.scan.id}/process?mode=${state.mode}`);
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

function setDownload(enabled) {
  const link = $("download");
  if (enabled && state.scan && state.mode === "enhance") {
    link.href = `/api/scans/${state.scan.id}/download`;
    link.setAttribute("download", "");
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
  return state.mode === "check" ? PANELS : PANELS.slice(0, 3);
}

function updateLayout() {
  const check = state.mode === "check";
  $("figure-hr").hidden = !check;
  $("metrics").hidden = !check;
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
  for (const viewport of document.querySelectorAll(".viewport")) {
    viewport.style.aspectRatio = `${width} / ${height}`;
  }
}

function clearPanels() {
  for (const name of PANELS) $(`panel-${name}`).removeAttribute("src");
  for (const id of ["metric-bicubic-psnr", "metric-bicubic-ssim", "metric-sr-psnr", "metric-sr-ssim"]) {
    $(id).textContent = "–";
  }
  $("metrics-mean").textContent = "";
}

function panelReady(name) {
  const p = state.progress;
  if (!p || !p.mode) return false;
  if (name === "input" || name === "hr") return true;
  return p.done > state.k;
}

function loadPanels() {
  if (!state.scan) return;
  for (const name of visiblePanels()) {
    const img = $(`panel-${name}`);
    const key = `${state.job}/${state.k}`;
    if (!panelReady(name)) {
      if (state.loaded[name] !== key) img.removeAttribute("src");
      continue;
    }
    if (state.loaded[name] === key) continue;
    state.loaded[name] = key;
    img.src = `/api/scans/${state.scan.id}/bscan/${state.k}/${name}.png?job=${state.job}`;
  }
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

function onSlider() {
  const k = Number($("bscan-slider").value);
  $("bscan-label").textContent = state.scan ? `${k + 1} / ${state.scan.n_bscans}` : "–";
  if (k === state.k) return;
  state.k = k;
  state.metricsFor = null;
  for (const id of ["metric-bicubic-psnr", "metric-bicubic-ssim", "metric-sr-psnr", "metric-sr-ssim"]) {
    $(id).textContent = "–";
  }
  loadPanels();
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

function onWheel(event) {
  event.preventDefault();
  const rect = event.currentTarget.getBoundingClientRect();
  const x = event.clientX - rect.left;
  const y = event.clientY - rect.top;
  const v = state.view;
  const s = Math.min(MAX_ZOOM, Math.max(1, v.s * Math.exp(-event.deltaY * 0.0015)));
  v.tx = x - ((x - v.tx) * s) / v.s;
  v.ty = y - ((y - v.ty) * s) / v.s;
  v.s = s;
  clampView(rect.width, rect.height);
  applyView();
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

function init() {
  $("file-input").addEventListener("change", (e) => handleFile(e.target.files[0]));
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
  $("zoom-reset").addEventListener("click", resetView);
  for (const viewport of document.querySelectorAll(".viewport")) {
    viewport.addEventListener("wheel", onWheel, { passive: false });
    viewport.addEventListener("pointerdown", onPointerDown);
    viewport.addEventListener("dblclick", resetView);
  }
  window.addEventListener("resize", resetView);
  loadModel();
}

init();
