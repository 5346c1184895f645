// chromalab's page: a small client-side queue that sends one photo (or video) at a time to
// POST /api/colorize (or /api/colorize-video) and shows each photo in a before/after wipe. Plain JavaScript, no
// libraries and no network beyond this server, so the page works offline.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = {
  items: [],          // one per file: {id, file, video, card, key, blob, url, name, error}
  reference: null,    // the reference photo (File) or null
  referenceId: 0,     // bumps whenever the reference changes (part of the settings key)
  busy: false,        // a request is in flight
  info: null,         // GET /api/info
};
let nextId = 1;
let settingsTimer = null;

// ---- settings ------------------------------------------------------------------------------

function settings(item) {
  const s = { model: $("#model").value, reference: state.referenceId };
  if (item.video) {
    s.temporal = $("#temporal").checked;
  } else {
    s.format = document.querySelector('input[name="format"]:checked').value;
  }
  if (state.info && state.info.controls) {
    for (const name of Object.keys(state.info.controls)) s[name] = $("#" + name).value;
  }
  return s;
}

// Every result remembers the settings it was made with; a file whose key differs from the
// current one is (re)colorized, so any change of model, slider or format updates them all.
const settingsKey = (item) => JSON.stringify(settings(item));
const isVideo = (file) => file.type.startsWith("video/") || /\.(mp4|m4v|mov|mkv|avi|webm)$/i.test(file.name);

function settingsChanged(delay = 250) {
  clearTimeout(settingsTimer);
  settingsTimer = setTimeout(pump, delay);
  updateChrome();  // show at once that results are out of date
}

function formatSlider(name, value) {
  const v = Number(value);
  if (name === "hue") return `${v > 0 ? "+" : ""}${v.toFixed(0)}°`;
  if (name === "saturation") return `${Math.round(v * 100)}%`;
  return `${v > 0 ? "+" : ""}${v.toFixed(2)}`;
}

function setUpControls(controls) {
  if (!controls) {
    $("#controls").hidden = true;
    $("#controls-missing").hidden = false;
    return;
  }
  for (const [name, range] of Object.entries(controls)) {
    const input = $("#" + name);
    Object.assign(input, { min: range.min, max: range.max, step: range.step });
    input.value = range.neutral;
    const show = () => { $("#" + name + "-value").textContent = formatSlider(name, input.value); };
    show();
    input.addEventListener("input", () => { show(); settingsChanged(400); });
    input.addEventListener("dblclick", () => { input.value = range.neutral; show(); settingsChanged(); });
  }
  $("#reset").addEventListener("click", () => {
    for (const [name, range] of Object.entries(controls)) {
      $("#" + name).value = range.neutral;
      $("#" + name + "-value").textContent = formatSlider(name, range.neutral);
    }
    setReference(null);
  });
  $("#reference-pick").addEventListener("click", () => $("#reference-input").click());
  $("#reference-input").addEventListener("change", (event) => {
    if (event.target.files.length) setReference(event.target.files[0]);
    event.target.value = "";
  });
  $("#reference-clear").addEventListener("click", () => setReference(null));
}

function setReference(file) {
  const preview = $("#reference-preview");
  if (preview.src) URL.revokeObjectURL(preview.src);
  state.reference = file;
  state.referenceId += 1;
  preview.hidden = !file;
  preview.removeAttribute("src");
  if (file) preview.src = URL.createObjectURL(file);
  $("#reference-clear").hidden = !file;
  $("#reference-pick").textContent = file ? "Change…" : "Choose…";
  settingsChanged(0);
}

// ---- photos --------------------------------------------------------------------------------

function addFiles(files) {
  for (const file of files) {
    const card = $("#card-template").content.firstElementChild.cloneNode(true);
    const video = Boolean(state.info && state.info.video) && isVideo(file);
    const item = { id: nextId++, file, video, card, key: null, blob: null, url: null, error: null };
    if (video) setUpVideoCard(item);
    card.querySelector(".name").textContent = file.name;
    card.querySelector(".name").title = file.name;
    const before = card.querySelector(".before");
    const source = URL.createObjectURL(file);
    if (!video) before.src = source;
    before.addEventListener("load", () => {
      const compare = card.querySelector(".compare");
      if (!compare.style.aspectRatio && before.naturalWidth) {
        compare.style.aspectRatio = `${before.naturalWidth} / ${before.naturalHeight}`;
      }
    });
    // Formats the browser cannot show (TIFF, or not an image at all): use the result, shown
    // in gray, once there is one; until then a plain placeholder instead of a broken icon.
    before.addEventListener("error", () => {
      if (item.url && before.src !== item.url) {
        before.src = item.url;
      } else {
        before.removeAttribute("src");
        card.classList.add("no-preview");
      }
    });
    item.source = source;
    wireWipe(card);
    card.querySelector(".remove").addEventListener("click", () => removeItem(item));
    setCardState(item, "queued");
    state.items.push(item);
    $("#results").appendChild(card);
  }
  updateChrome();
  pump();
}

// A video's card plays the upload (in gray) until the colorized video replaces it.
function setUpVideoCard(item) {
  const card = item.card;
  card.classList.add("video");
  const player = card.querySelector("video");
  player.src = URL.createObjectURL(item.file);
  player.addEventListener("loadedmetadata", () => {
    if (player.videoWidth) card.querySelector(".compare").style.aspectRatio = `${player.videoWidth} / ${player.videoHeight}`;
  });
  player.addEventListener("error", () => { if (!item.url) card.classList.add("no-preview"); });
}

function wireWipe(card) {
  const compare = card.querySelector(".compare");
  const wipe = card.querySelector(".wipe");
  const apply = () => compare.style.setProperty("--pos", wipe.value + "%");
  wipe.addEventListener("input", apply);
  apply();
}

function removeItem(item) {
  state.items = state.items.filter((other) => other !== item);
  item.removed = true;
  for (const url of [item.url, item.source, item.video && item.card.querySelector("video").src]) {
    if (url) URL.revokeObjectURL(url);
  }
  item.card.remove();
  updateChrome();
}

function setCardState(item, status, detail = "") {
  const card = item.card;
  const busy = card.querySelector(".busy");
  busy.hidden = !(status === "queued" || status === "working");
  card.querySelector(".busy-text").textContent = status === "queued" ? "waiting…" : "colorizing…";
  card.classList.toggle("queued", status === "queued");
  card.classList.toggle("failed", status === "error");
  // A photo being re-colorized keeps showing its previous result under the busy veil.
  card.classList.toggle("done", status === "done" || (status === "working" && Boolean(item.blob)));
  const error = card.querySelector(".error");
  error.hidden = status !== "error";
  error.textContent = status === "error" ? detail : "";
  if (status === "done") card.querySelector(".info").textContent = detail;
}

// ---- the queue: one request at a time ------------------------------------------------------

async function pump() {
  if (state.busy || !state.info) return;
  const item = state.items.find((candidate) => candidate.key !== settingsKey(candidate));
  updateChrome();
  if (!item) return;
  state.busy = true;
  item.key = settingsKey(item);
  setCardState(item, "working");
  updateChrome();
  try {
    await colorize(item, item.key);
  } finally {
    state.busy = false;
  }
  pump();
}

async function colorize(item, key) {
  const s = JSON.parse(key);
  const form = new FormData();
  form.append(item.video ? "video" : "images", item.file, item.file.name);
  form.append("model", s.model);
  if (item.video) form.append("temporal", s.temporal);
  else form.append("format", s.format);
  if (state.info.controls) {
    for (const name of Object.keys(state.info.controls)) form.append(name, s[name]);
    if (state.reference) form.append("reference", state.reference, state.reference.name);
  }
  const stopWatching = item.video ? watchVideoProgress(item) : () => {};
  let response;
  let blob;
  try {
    response = await fetch(item.video ? "/api/colorize-video" : "/api/colorize", { method: "POST", body: form });
    if (response.ok) blob = await response.blob();
  } catch (error) {
    fail(item, "cannot reach the chromalab server — is `chromalab serve` still running?");
    return;
  } finally {
    stopWatching();
  }
  if (item.removed) return;
  if (!response.ok) {
    fail(item, await errorMessage(response));
    return;
  }
  if (item.url) URL.revokeObjectURL(item.url);
  item.blob = blob;
  item.url = URL.createObjectURL(blob);
  item.error = null;
  item.name = downloadName(response, item.file.name, s.format);
  const card = item.card;
  const seconds = Number(response.headers.get("X-Chromalab-Seconds") || 0);
  if (item.video) {
    showVideoResult(item, response, seconds);
    return;
  }
  const after = card.querySelector(".after");
  after.src = item.url;
  await after.decode().catch(() => {});
  card.querySelector(".compare").style.aspectRatio = `${after.naturalWidth} / ${after.naturalHeight}`;
  const link = card.querySelector(".download");
  Object.assign(link, { href: item.url, download: item.name, hidden: false });
  link.textContent = `Download ${s.format === "jpeg" ? "JPEG" : "PNG"}`;
  setCardState(item, "done", `${after.naturalWidth}×${after.naturalHeight} px · ${seconds.toFixed(2)} s`);
  const before = card.querySelector(".before");
  if (before.naturalWidth === 0) before.src = item.url;  // undisplayable upload (e.g. TIFF)
  card.classList.remove("no-preview");
  hideBanner();
}

function showVideoResult(item, response, seconds) {
  const card = item.card;
  const player = card.querySelector("video");
  URL.revokeObjectURL(player.src);
  player.src = item.url;
  card.classList.remove("no-preview");
  const link = card.querySelector(".download");
  Object.assign(link, { href: item.url, download: item.name, hidden: false });
  link.textContent = `Download ${item.name.endsWith(".webm") ? "WebM" : "MP4"}`;
  const size = (response.headers.get("X-Chromalab-Size") || "").replace("x", "×");
  const frames = response.headers.get("X-Chromalab-Frames") || "?";
  setCardState(item, "done", `${size} px · ${frames} frames · ${seconds.toFixed(1)} s`);
  hideBanner();
}

// Videos take a while: show frames done, polled from the server once a second.
function watchVideoProgress(item) {
  const text = item.card.querySelector(".busy-text");
  const timer = setInterval(async () => {
    try {
      const progress = await (await fetch("/api/progress")).json();
      if (progress.total) text.textContent = `colorizing… frame ${progress.done} of ${progress.total}`;
    } catch (ignored) { /* the main request reports a dead server */ }
  }, 1000);
  return () => clearInterval(timer);
}

function fail(item, message) {
  item.error = message;
  item.card.querySelector(".download").hidden = true;
  setCardState(item, "error", message);
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
  } catch (ignored) { /* not JSON */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

function downloadName(response, uploadName, format) {
  const header = response.headers.get("Content-Disposition") || "";
  const utf8 = header.match(/filename\*=UTF-8''([^;]+)/);
  if (utf8) return decodeURIComponent(utf8[1]);
  const stem = uploadName.replace(/\.[^.]*$/, "");
  return `${stem}-colorized.${format === "jpeg" ? "jpg" : format ? "png" : "mp4"}`;
}

// ---- page chrome ---------------------------------------------------------------------------

function updateChrome() {
  const items = state.items;
  const done = items.filter((item) => item.blob && !item.error);
  const outdated = items.filter((item) => item.key !== settingsKey(item));
  const waiting = outdated.length;
  for (const item of items) item.card.classList.toggle("stale", Boolean(item.blob) && outdated.includes(item));
  const status = $("#status");
  if (state.busy || waiting) {
    status.innerHTML = '<span class="spinner"></span>';
    status.append(waiting ? ` colorizing… ${waiting} more waiting` : " colorizing…");
    status.classList.add("working");
  } else {
    const failed = items.length - done.length;
    status.textContent = items.length
      ? `${done.length} of ${items.length} colorized${failed ? ` · ${failed} failed` : ""}` : "";
    status.classList.remove("working");
  }
  $("#download-all").disabled = done.length === 0 || state.busy || waiting > 0;
  $("#clear-all").hidden = items.length === 0;
  $("#dropzone").classList.toggle("compact", items.length > 0);
}

function showBanner(message) {
  const banner = $("#banner");
  banner.textContent = message;
  banner.hidden = false;
}

function hideBanner() { $("#banner").hidden = true; }

// ---- ZIP of all results --------------------------------------------------------------------
// Built in the browser from the results it already holds: no re-upload, no second run of
// the model, no server-side state. Hand-written because browsers have no ZIP writer and
// the page must not load libraries from the internet; "stored" entries only (PNG and JPEG
// are compressed already), so it is just headers and a CRC-32.

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

async function zipBlob(entries) {
  const encoder = new TextEncoder();
  const now = new Date();
  const dosTime = (now.getHours() << 11) | (now.getMinutes() << 5) | (now.getSeconds() >> 1);
  const dosDate = ((now.getFullYear() - 1980) << 9) | ((now.getMonth() + 1) << 5) | now.getDate();
  const parts = [];
  const central = [];
  let offset = 0;
  for (const entry of entries) {
    const name = encoder.encode(entry.name);
    const data = new Uint8Array(await entry.blob.arrayBuffer());
    const crc = crc32(data);
    const local = new DataView(new ArrayBuffer(30));
    // Local file header: signature, version 2.0, UTF-8 names flag, stored, time, date, sizes.
    [[0, 0x04034b50, 4], [4, 20, 2], [6, 0x0800, 2], [8, 0, 2], [10, dosTime, 2], [12, dosDate, 2],
     [14, crc, 4], [18, data.length, 4], [22, data.length, 4], [26, name.length, 2], [28, 0, 2]]
      .forEach(([at, value, size]) => size === 4 ? local.setUint32(at, value, true) : local.setUint16(at, value, true));
    const record = new DataView(new ArrayBuffer(46));
    [[0, 0x02014b50, 4], [4, 20, 2], [6, 20, 2], [8, 0x0800, 2], [10, 0, 2], [12, dosTime, 2],
     [14, dosDate, 2], [16, crc, 4], [20, data.length, 4], [24, data.length, 4], [28, name.length, 2],
     [30, 0, 2], [32, 0, 2], [34, 0, 2], [36, 0, 2], [38, 0, 4], [42, offset, 4]]
      .forEach(([at, value, size]) => size === 4 ? record.setUint32(at, value, true) : record.setUint16(at, value, true));
    parts.push(local, name, data);
    central.push(record, name);
    offset += 30 + name.length + data.length;
  }
  const centralSize = central.reduce((sum, part) => sum + part.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  [[0, 0x06054b50, 4], [8, entries.length, 2], [10, entries.length, 2], [12, centralSize, 4], [16, offset, 4]]
    .forEach(([at, value, size]) => size === 4 ? end.setUint32(at, value, true) : end.setUint16(at, value, true));
  return new Blob([...parts, ...central, end], { type: "application/zip" });
}

function uniqueNames(items) {
  const used = new Set();
  return items.map((item) => {
    let name = item.name;
    for (let n = 2; used.has(name); n++) name = item.name.replace(/(\.[^.]*)?$/, ` (${n})$1`);
    used.add(name);
    return { name, blob: item.blob };
  });
}

async function downloadAll() {
  const done = state.items.filter((item) => item.blob && !item.error);
  if (!done.length) return;
  const blob = await zipBlob(uniqueNames(done));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "colorized.zip";
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// ---- start-up ------------------------------------------------------------------------------

function wireDropzone() {
  const zone = $("#dropzone");
  const input = $("#file-input");
  $("#pick").addEventListener("click", (event) => { event.stopPropagation(); input.click(); });
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") input.click(); });
  input.addEventListener("change", () => { addFiles([...input.files]); input.value = ""; });
  // Dropping anywhere on the page adds photos; the zone lights up while dragging.
  window.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  window.addEventListener("dragleave", (event) => { if (!event.relatedTarget) zone.classList.remove("over"); });
  window.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    const files = [...(event.dataTransfer ? event.dataTransfer.files : [])];
    if (files.length) addFiles(files);
  });
}

async function start() {
  wireDropzone();
  $("#download-all").addEventListener("click", downloadAll);
  $("#clear-all").addEventListener("click", () => [...state.items].forEach(removeItem));
  for (const radio of document.querySelectorAll('input[name="format"]')) {
    radio.addEventListener("change", () => settingsChanged(0));
  }
  $("#model").addEventListener("change", () => settingsChanged(0));
  $("#temporal").addEventListener("change", () => settingsChanged(0));
  try {
    const response = await fetch("/api/info");
    state.info = await response.json();
  } catch (error) {
    showBanner("cannot reach the chromalab server — is `chromalab serve` still running?");
    return;
  }
  const select = $("#model");
  for (const model of state.info.models) {
    const option = new Option(`${model.label}${model.kind === "run" ? "  (training run)" : ""}`, model.id);
    option.title = model.id;
    select.add(option);
  }
  select.value = state.info.default_model;
  setUpControls(state.info.controls);
  $("#video-options").hidden = !state.info.video;
  if (state.info.video) {
    $("#file-input").accept += ",video/*,.mkv,.avi,.mov";
    $("#drop-text").textContent = "Drop photos or videos here";
    $("#pick").textContent = "Choose files…";
  }
  const kinds = state.info.video ? "Photos (JPEG, PNG, TIFF, WebP, BMP) or videos (MP4, WebM, MOV, MKV, AVI)"
    : "JPEG, PNG, TIFF, WebP or BMP";
  $("#limit-hint").textContent =
    `${kinds} · up to ${state.info.max_upload_mb} MB each · results keep the full resolution`;
  document.body.classList.add("ready");
}

document.addEventListener("DOMContentLoaded", start);
