// chromalab's page: a small client-side queue that sends one photo (or video) at a time to
// POST /api/colorize (or /api/colorize-video) and shows each photo in a before/after wipe; a
// photo's "Color points" mode edits it through /api/points/*. Plain JavaScript, no libraries
// and no network beyond this server, so the page works offline.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = {
  items: [],          // one per file: {id, file, video, card, key, blob, url, name, error}
  reference: null,    // the reference photo (File) or null
  referenceId: 0,     // bumps whenever the reference changes (part of the settings key)
  busy: false,        // a request is in flight
  info: null,         // GET /api/info
  activePoints: null, // the photo whose color points the keyboard edits (the last one touched)
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
    else setUpPoints(item);
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
  if (item.pts) forgetPoints(item);
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
  card.querySelector(".points-toggle").hidden = item.video || !item.blob;
}

// ---- the queue: one request at a time ------------------------------------------------------

async function pump() {
  if (!state.info) return;
  // A photo with color points is rendered by its points edit, whatever the settings.
  for (const item of state.items.filter(usesPoints)) {
    if (item.pts.renderedKey !== editKey()) requestRender(item);
    labelDownload(item, document.querySelector('input[name="format"]:checked').value);
  }
  if (state.busy) return;
  const item = state.items.find((candidate) => candidate.key !== settingsKey(candidate) && !usesPoints(candidate));
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
  const size = (response.headers.get("X-Chromalab-Size") || "").split("x");
  item.infoText = `${size[0]}×${size[1]} px · ${seconds.toFixed(2)} s`;
  const link = card.querySelector(".download");
  Object.assign(link, { href: item.url, download: item.name, hidden: false });
  labelDownload(item, s.format);
  if (usesPoints(item)) {  // switched to color points meanwhile: their render is what shows
    setCardState(item, "done", card.querySelector(".info").textContent);
    return;
  }
  after.src = item.url;
  await after.decode().catch(() => {});
  card.querySelector(".compare").style.aspectRatio = `${after.naturalWidth} / ${after.naturalHeight}`;
  setCardState(item, "done", item.infoText);
  const before = card.querySelector(".before");
  if (before.naturalWidth === 0) before.src = item.url;  // undisplayable upload (e.g. TIFF)
  card.classList.remove("no-preview");
  hideBanner();
}

function labelDownload(item, format) {
  item.card.querySelector(".download").textContent = `Download ${format === "jpeg" ? "JPEG" : "PNG"}`;
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

// ---- color points --------------------------------------------------------------------------
// A photo in "Color points" mode keeps an edit on the server (the photo decoded and
// the network run once); every change re-renders it there in a fraction of a second. At most
// one render per photo is in flight: changes made meanwhile only mark it dirty, and when the
// render returns the latest points are sent (older states are never sent at all). Renders
// carry a sequence number, so the server drops any that a newer one overtook.

const PREVIEW_SIDE = 2048;  // live previews; downloads are full size
const HISTORY_LIMIT = 100;
const SUGGESTED_COLORS = [
  ["#f3d3b8", "light skin"], ["#d9a47e", "medium skin"], ["#a8704b", "tan skin"], ["#6b4028", "dark skin"],
  ["#7fb2e5", "sky blue"], ["#5d8f3a", "grass green"], ["#a4482f", "brick red"], ["#d8c08a", "sand"],
  ["#1f2f5c", "navy (clothing)"], ["#7a1f2b", "burgundy (clothing)"], ["#4a6b8a", "denim (clothing)"],
  ["#f4f1e8", "white (clothing)"],
];
const popup = { item: null, index: -1, opened: 0 };

const usesPoints = (item) => Boolean(item.pts) && (item.pointsMode || item.pts.points.length > 0);
const copyPoints = (points) => points.map((point) => ({ ...point }));

// What an edit depends on: the model and the color controls (not the download format).
function editKey() {
  const s = { model: $("#model").value, reference: state.referenceId };
  if (state.info && state.info.controls) {
    for (const name of Object.keys(state.info.controls)) s[name] = $("#" + name).value;
  }
  return JSON.stringify(s);
}

function setUpPoints(item) {
  const card = item.card;
  item.pts = {
    points: [], history: [], selected: -1, lastTag: null, good: [],
    edit: null, editKey: null, opening: null, width: 0, height: 0,
    seq: 0, inFlight: false, dirty: false, renderedKey: null, url: null,
  };
  const layer = card.querySelector(".points-layer");
  card.querySelector(".points-toggle").addEventListener("click", () => setPointsMode(item, !item.pointsMode));
  layer.addEventListener("click", (event) => {
    if (event.target === layer) addPointAt(item, layerFraction(item, event));
  });
  layer.addEventListener("keydown", (event) => {
    if (event.target === layer && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      addPointAt(item, { x: 0.5, y: 0.5 }, true);
    }
  });
  card.addEventListener("pointerdown", () => { state.activePoints = item; });
  card.querySelector(".points-undo").addEventListener("click", () => undo(item));
  card.querySelector(".points-delete").addEventListener("click", () => deletePoint(item, item.pts.selected));
  card.querySelector(".points-clear").addEventListener("click", () => {
    if (!item.pts.points.length) return;
    remember(item, "clear");
    item.pts.points = [];
    changed(item, -1);
  });
  card.querySelector(".points-save").addEventListener("click", () => {
    const stem = item.file.name.replace(/\.[^.]*$/, "") || "photo";
    saveBlob(new Blob([pointsJson(item.pts.points)], { type: "application/json" }), `${stem}-points.json`);
  });
  card.querySelector(".points-load").addEventListener("click", () => {
    state.activePoints = item;
    $("#points-input").click();
  });
  card.querySelector(".download").addEventListener("click", async (event) => {
    if (!usesPoints(item)) return;  // the plain result: the link's own file
    event.preventDefault();
    const result = await fullResolution(item);
    if (result) saveBlob(result.blob, result.name);
  });
  new ResizeObserver(() => placeLayer(item)).observe(card.querySelector(".compare"));
}

function setPointsMode(item, on) {
  const card = item.card;
  item.pointsMode = on;
  card.classList.toggle("points-mode", on);
  card.querySelector(".points-toggle").setAttribute("aria-pressed", String(on));
  card.querySelector(".points-bar").hidden = !on;
  closePopup();
  if (on) {
    state.activePoints = item;
    drawPoints(item);
    card.querySelector(".points-layer").focus();
    if (item.pts.points.length || item.key !== settingsKey(item)) {
      requestRender(item);
    } else {  // the result on show is the model's own: only the edit is needed yet
      item.pts.renderedKey = editKey();
      setPointsState(item, "opening");
      ensureEdit(item).then(() => setPointsState(item, "ready"), (error) => pointsError(item, error.message));
    }
  } else if (!item.pts.points.length && item.url) {  // back to the plain result
    card.querySelector(".after").src = item.url;
    card.querySelector(".info").textContent = item.infoText || "";
  }
  updateChrome();
  pump();
}

function setPointsState(item, value, text = "updating…") {
  item.card.dataset.points = value;
  item.card.querySelector(".points-busy").hidden = value !== "rendering" && value !== "opening";
  item.card.querySelector(".points-busy-text").textContent = text;
}

// ---- the edit and the renders

async function ensureEdit(item) {
  while (item.pts.opening) await item.pts.opening.catch(() => {});
  if (item.pts.edit && item.pts.editKey === editKey()) return item.pts.edit;
  item.pts.opening = openEdit(item, editKey());
  try {
    return await item.pts.opening;
  } finally {
    item.pts.opening = null;
  }
}

async function openEdit(item, key) {
  const s = JSON.parse(key);
  const form = new FormData();
  form.append("image", item.file, item.file.name);
  form.append("model", s.model);
  if (state.info.controls) {
    for (const name of Object.keys(state.info.controls)) form.append(name, s[name]);
    if (state.reference) form.append("reference", state.reference, state.reference.name);
  }
  const response = await reach(fetch("/api/points/edit", { method: "POST", body: form }));
  if (!response.ok) throw new Error(await errorMessage(response));
  const info = await response.json();
  closeEdit(item);
  Object.assign(item.pts, { edit: info.edit, editKey: key, width: info.width, height: info.height });
  return info.edit;
}

function closeEdit(item) {
  if (item.pts.edit) fetch(`/api/points/edit/${item.pts.edit}`, { method: "DELETE" }).catch(() => {});
  item.pts.edit = null;
}

async function reach(request) {
  try {
    return await request;
  } catch (error) {
    throw new Error("cannot reach the chromalab server — is `chromalab serve` still running?");
  }
}

// A request on the photo's edit; an expired (or evicted) edit is opened again, once.
async function withEdit(item, send) {
  const response = await reach(send(await ensureEdit(item)));
  if (response.status !== 404) return response;
  item.pts.edit = null;
  return reach(send(await ensureEdit(item)));
}

function renderRequest(edit, points, extra) {
  return fetch("/api/points/render", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ edit, points, ...extra }),
  });
}

function requestRender(item) {
  item.pts.dirty = true;
  setPointsState(item, "rendering");
  if (!item.pts.inFlight) renderLoop(item);
}

async function renderLoop(item) {
  item.pts.inFlight = true;
  let ok = true;
  try {
    while (item.pts.dirty && !item.removed) {
      item.pts.dirty = false;
      ok = await renderOnce(item);
    }
  } finally {
    item.pts.inFlight = false;
  }
  if (ok && !item.removed) setPointsState(item, "ready");
}

async function renderOnce(item) {
  const seq = ++item.pts.seq;
  const key = editKey();
  const points = copyPoints(item.pts.points);
  let response;
  try {
    response = await withEdit(item, (edit) =>
      renderRequest(edit, points, { seq, max_side: PREVIEW_SIDE, format: "jpeg" }));
  } catch (error) {
    return pointsError(item, error.message);
  }
  if (response.status === 409) return true;  // a newer change overtook it: nothing to show
  if (response.status === 503) {  // the server's queue is full (other photos, other pages): retry
    setPointsState(item, "rendering", "server busy, retrying…");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    setPointsState(item, "rendering");
    item.pts.dirty = true;
    return true;
  }
  if (!response.ok) {
    // Only loaded files can hold bad points: go back to the last points that rendered.
    // The picture on show is still that of those points, so nothing needs rendering.
    const message = await errorMessage(response);
    if (response.status === 400 && JSON.stringify(points) !== JSON.stringify(item.pts.good)) {
      item.pts.points = copyPoints(item.pts.good);
      item.pts.selected = -1;
      closePopup();
      drawPoints(item);
    }
    return pointsError(item, message);
  }
  const blob = await response.blob();
  if (item.removed) return true;
  item.pts.good = points;
  item.pts.renderedKey = key;
  await showRender(item, blob, response, points.length);
  return true;
}

async function showRender(item, blob, response, count) {
  const card = item.card;
  if (item.pts.url) URL.revokeObjectURL(item.pts.url);
  item.pts.url = URL.createObjectURL(blob);
  const after = card.querySelector(".after");
  after.src = item.pts.url;
  await after.decode().catch(() => {});
  const photo = (response.headers.get("X-Chromalab-Photo-Size") || "").replace("x", "×");
  const shown = (response.headers.get("X-Chromalab-Size") || "").replace("x", "×");
  const seconds = Number(response.headers.get("X-Chromalab-Seconds") || 0);
  card.querySelector(".info").textContent = `${photo} px · ${count} point${count === 1 ? "" : "s"} · ` +
    `${seconds.toFixed(2)} s${shown !== photo ? ` · preview ${shown}` : ""}`;
  card.querySelector(".error").hidden = true;
  placeLayer(item);
}

function pointsError(item, message) {
  const error = item.card.querySelector(".error");
  error.textContent = message;
  error.hidden = false;
  setPointsState(item, "error");
  return false;
}

// The full-resolution result with the points (downloads and the ZIP): never dropped.
async function fullResolution(item) {
  const format = document.querySelector('input[name="format"]:checked').value;
  try {
    const points = copyPoints(item.pts.points);
    const response = await withEdit(item, (edit) => renderRequest(edit, points, { format }));
    if (!response.ok) return pointsError(item, await errorMessage(response)) && null;
    return { name: downloadName(response, item.file.name, format), blob: await response.blob() };
  } catch (error) {
    return pointsError(item, error.message) && null;
  }
}

function forgetPoints(item) {
  closeEdit(item);
  if (item.pts.url) URL.revokeObjectURL(item.pts.url);
  if (popup.item === item) closePopup();
  if (state.activePoints === item) state.activePoints = null;
}

// ---- points on the picture

// The picture's box inside its <img> (object-fit: contain letterboxes it), in client pixels.
function pictureBox(item) {
  const img = item.card.querySelector(".after");
  const box = img.getBoundingClientRect();
  const ratio = img.naturalWidth && img.naturalHeight ? img.naturalWidth / img.naturalHeight : box.width / box.height;
  let width = box.width;
  let height = box.height;
  if (width / height > ratio) width = height * ratio; else height = width / ratio;
  return { left: box.left + (box.width - width) / 2, top: box.top + (box.height - height) / 2, width, height };
}

function placeLayer(item) {
  if (!item.pointsMode) return;
  const picture = pictureBox(item);
  const compare = item.card.querySelector(".compare").getBoundingClientRect();
  Object.assign(item.card.querySelector(".points-layer").style, {
    left: `${picture.left - compare.left}px`, top: `${picture.top - compare.top}px`,
    width: `${picture.width}px`, height: `${picture.height}px`, right: "auto", bottom: "auto",
  });
}

// Where an event falls on the picture, as fractions of its width and height.
function layerFraction(item, event) {
  const box = item.card.querySelector(".points-layer").getBoundingClientRect();
  return { x: (event.clientX - box.left) / box.width, y: (event.clientY - box.top) / box.height };
}

// Fractions of the picture -> the photo's own pixel (integers, inside the photo).
function toPixel(item, fraction) {
  const clamp = (value, size) => Math.min(size - 1, Math.max(0, Math.floor(value * size)));
  return { x: clamp(fraction.x, item.pts.width), y: clamp(fraction.y, item.pts.height) };
}

function photoPixel(item, event) {
  return toPixel(item, layerFraction(item, event));
}

function isLight(color) {
  const [r, g, b] = [1, 3, 5].map((at) => parseInt(color.slice(at, at + 2), 16) / 255);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.6;
}

function drawPoints(item) {
  const layer = item.card.querySelector(".points-layer");
  layer.replaceChildren(...item.pts.points.map((point, index) => pointMarker(item, point, index)));
  const count = item.pts.points.length;
  const card = item.card;
  card.querySelector(".points-undo").disabled = !item.pts.history.length;
  card.querySelector(".points-delete").disabled = item.pts.selected < 0;
  card.querySelector(".points-clear").disabled = !count;
  card.querySelector(".points-save").disabled = !count;
  card.dataset.pointCount = String(count);
  placeLayer(item);
}

function pointMarker(item, point, index) {
  const marker = document.createElement("button");
  marker.type = "button";
  marker.className = `point${isLight(point.color) ? " light" : ""}${index === item.pts.selected ? " selected" : ""}`;
  marker.dataset.x = point.x;
  marker.dataset.y = point.y;
  marker.dataset.color = point.color;
  marker.setAttribute("aria-label", `color point ${index + 1} at ${point.x}, ${point.y}: ${point.color}`);
  positionMarker(item, marker, point);
  let drag = null;
  marker.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    event.stopPropagation();
    state.activePoints = item;
    select(item, index);
    marker.focus();
    marker.setPointerCapture(event.pointerId);
    drag = { x: event.clientX, y: event.clientY, moved: false };
  });
  marker.addEventListener("pointermove", (event) => {
    if (!drag || (!drag.moved && Math.hypot(event.clientX - drag.x, event.clientY - drag.y) < 4)) return;
    if (!drag.moved) {
      drag.moved = true;
      remember(item, `drag:${++popup.opened}`);
      closePopup();
    }
    Object.assign(point, photoPixel(item, event));
    positionMarker(item, marker, point);
    requestRender(item);
  });
  marker.addEventListener("pointerup", () => {
    if (drag && !drag.moved) openPopup(item, index);
    if (drag && drag.moved) drawPoints(item);
    drag = null;
  });
  marker.addEventListener("click", (event) => {
    event.stopPropagation();
    if (event.detail === 0) openPopup(item, index, null, true);  // Enter or Space on the focused point
  });
  marker.addEventListener("keydown", (event) => {
    const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[event.key];
    if (!steps) return;
    event.preventDefault();
    const layer = item.card.querySelector(".points-layer").getBoundingClientRect();
    const step = Math.max(1, Math.round(item.pts.width / layer.width)) * (event.shiftKey ? 10 : 1);
    remember(item, `nudge:${index}`);
    point.x = Math.min(item.pts.width - 1, Math.max(0, point.x + steps[0] * step));
    point.y = Math.min(item.pts.height - 1, Math.max(0, point.y + steps[1] * step));
    positionMarker(item, marker, point);
    marker.setAttribute("aria-label", `color point ${index + 1} at ${point.x}, ${point.y}: ${point.color}`);
    requestRender(item);
  });
  return marker;
}

function positionMarker(item, marker, point) {
  marker.style.left = `${((point.x + 0.5) / item.pts.width) * 100}%`;
  marker.style.top = `${((point.y + 0.5) / item.pts.height) * 100}%`;
  marker.style.background = point.color;
  marker.dataset.x = point.x;
  marker.dataset.y = point.y;
  marker.dataset.color = point.color;
}

function select(item, index) {
  item.pts.selected = index;
  item.card.querySelectorAll(".point").forEach((marker, at) => marker.classList.toggle("selected", at === index));
  item.card.querySelector(".points-delete").disabled = index < 0;
}

// ---- editing: every change is one undo step (a drag, or one popup's color choices, is one)

function remember(item, tag) {
  if (tag && tag === item.pts.lastTag) return;
  item.pts.lastTag = tag;
  item.pts.history.push(copyPoints(item.pts.points));
  if (item.pts.history.length > HISTORY_LIMIT) item.pts.history.shift();
}

function changed(item, selected) {
  item.pts.selected = selected;
  drawPoints(item);
  requestRender(item);
}

async function addPointAt(item, fraction, fromKeyboard = false) {
  state.activePoints = item;
  let color = "#808080";
  let pixel;
  try {
    await ensureEdit(item);  // the photo's size in pixels comes with it
    pixel = toPixel(item, fraction);
    const response = await withEdit(item, (edit) =>
      fetch(`/api/points/color?edit=${encodeURIComponent(edit)}&x=${pixel.x}&y=${pixel.y}`));
    if (!response.ok) return pointsError(item, await errorMessage(response));
    color = (await response.json()).color;
  } catch (error) {
    return pointsError(item, error.message);
  }
  remember(item, `add:${++popup.opened}`);
  item.pts.points.push({ x: pixel.x, y: pixel.y, color });
  changed(item, item.pts.points.length - 1);
  openPopup(item, item.pts.points.length - 1, color, fromKeyboard);
  return true;
}

function deletePoint(item, index) {
  if (index < 0 || index >= item.pts.points.length) return;
  remember(item, `delete:${++popup.opened}`);
  item.pts.points.splice(index, 1);
  closePopup();
  changed(item, -1);
  item.card.querySelector(".points-layer").focus();
}

function undo(item) {
  if (!item.pts.history.length) return;
  item.pts.points = item.pts.history.pop();
  item.pts.lastTag = null;
  closePopup();
  changed(item, -1);
}

function setPointColor(item, index, color, tag) {
  const point = item.pts.points[index];
  if (!point || point.color === color) return;
  remember(item, tag);
  point.color = color;
  drawPoints(item);
  requestRender(item);
}

function pointsJson(points) {  // chromalab.inference.points.points_to_json's layout
  const plain = points.map(({ x, y, color, radius }) => (radius == null ? { x, y, color } : { x, y, color, radius }));
  return JSON.stringify({ points: plain }, null, 2) + "\n";
}

async function loadPoints(item, file) {
  let document_;
  try {
    document_ = JSON.parse(await file.text());
  } catch (error) {
    return pointsError(item, `${file.name}: not valid JSON`);
  }
  const points = document_ && Array.isArray(document_.points) ? document_.points : null;
  if (!points || points.some((point) => !point || typeof point !== "object")) {
    return pointsError(item, `${file.name}: expected {"points": [{"x": .., "y": .., "color": "#rrggbb"}, ...]}`);
  }
  if (!item.pointsMode) setPointsMode(item, true);
  await ensureEdit(item).catch(() => {});
  remember(item, `load:${++popup.opened}`);
  // Checked by the server's render (a bad point is its one-line 400); "B03A2E" shown as "#b03a2e".
  item.pts.points = points.map((point) => {
    const color = typeof point.color === "string" && /^#?[0-9a-fA-F]{6}$/.test(point.color.trim())
      ? `#${point.color.trim().replace("#", "").toLowerCase()}` : point.color;
    return { ...point, color };
  });
  changed(item, -1);
  return true;
}

// ---- the color popup

function openPopup(item, index, modelColor = null, focus = false) {
  const point = item.pts.points[index];
  if (!point) return;
  popup.item = item;
  popup.index = index;
  popup.opened += 1;
  select(item, index);
  const box = $("#point-popup");
  $("#point-color").value = point.color;
  showModelColor(modelColor);
  if (!modelColor) {
    const opened = popup.opened;
    withEdit(item, (edit) =>
      fetch(`/api/points/color?edit=${encodeURIComponent(edit)}&x=${point.x}&y=${point.y}`))
      .then((response) => (response.ok ? response.json() : null))
      .then((answer) => { if (answer && popup.opened === opened) showModelColor(answer.color); })
      .catch(() => {});
  }
  box.hidden = false;
  placePopup();
  if (focus) (modelColor ? $("#model-color") : $("#point-color")).focus();
}

// Beside its point, inside the window; closed when the point scrolls out of view.
function placePopup() {
  const box = $("#point-popup");
  const markerElement = popup.item && popup.item.card.querySelectorAll(".point")[popup.index];
  if (box.hidden || !markerElement) return;
  const marker = markerElement.getBoundingClientRect();
  if (marker.bottom < 0 || marker.top > window.innerHeight) {
    closePopup();
    return;
  }
  const width = box.offsetWidth;
  const height = box.offsetHeight;
  let left = marker.right + 12;
  if (left + width > window.innerWidth - 8) left = Math.max(8, marker.left - 12 - width);
  const top = Math.min(Math.max(8, marker.top - 24), window.innerHeight - height - 8);
  Object.assign(box.style, { left: `${left}px`, top: `${top}px` });
}

function showModelColor(color) {
  const button = $("#model-color");
  button.dataset.color = color || "";
  button.disabled = !color;
  button.querySelector(".swatch").style.background = color || "transparent";
  $("#model-color-value").textContent = color || "…";
}

function closePopup() {
  const box = $("#point-popup");
  if (!box.hidden && box.contains(document.activeElement) && popup.item) {
    popup.item.card.querySelector(".points-layer").focus();  // keyboard users stay on the photo
  }
  box.hidden = true;
  popup.item = null;
  popup.index = -1;
}

function chooseColor(color) {
  if (popup.item) setPointColor(popup.item, popup.index, color, `color:${popup.opened}`);
}

function wirePointsPage() {
  const swatches = $("#suggested-colors");
  for (const [color, name] of SUGGESTED_COLORS) {
    const button = document.createElement("button");
    button.type = "button";
    button.style.background = color;
    button.title = `${name} (${color})`;
    button.setAttribute("aria-label", name);
    button.addEventListener("click", () => chooseColor(color));
    swatches.appendChild(button);
  }
  $("#model-color").addEventListener("click", (event) => chooseColor(event.currentTarget.dataset.color));
  $("#point-color").addEventListener("input", (event) => chooseColor(event.target.value));
  $("#point-popup-close").addEventListener("click", closePopup);
  $("#point-popup-delete").addEventListener("click", () => { if (popup.item) deletePoint(popup.item, popup.index); });
  $("#points-input").addEventListener("change", (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (file && state.activePoints) loadPoints(state.activePoints, file);
  });
  // A click anywhere but the popup or a photo's points closes the popup.
  document.addEventListener("pointerdown", (event) => {
    if (!$("#point-popup").hidden && !event.target.closest("#point-popup, .points-layer")) closePopup();
  });
  window.addEventListener("scroll", placePopup, { passive: true });
  window.addEventListener("resize", placePopup);
  document.addEventListener("keydown", pointsKeys);
}

function isTyping(target) {
  return target.isContentEditable || target.tagName === "TEXTAREA" ||
    (target.tagName === "INPUT" && /^(text|search|number|email|url|password)$/.test(target.type));
}

function pointsKeys(event) {
  const item = state.activePoints;
  if (event.key === "Escape" && !$("#point-popup").hidden) {
    closePopup();
    return;
  }
  if (!item || !item.pointsMode || item.removed || isTyping(event.target)) return;
  if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo(item);
  } else if ((event.key === "Delete" || event.key === "Backspace") && item.pts.selected >= 0 &&
             !(event.target.tagName === "INPUT" && event.target.type !== "color")) {
    event.preventDefault();
    deletePoint(item, item.pts.selected);
  }
}

// ---- page chrome ---------------------------------------------------------------------------

function updateChrome() {
  const items = state.items;
  const done = items.filter((item) => item.blob && !item.error);
  const outdated = items.filter((item) => item.key !== settingsKey(item) && !usesPoints(item));
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
  const entries = [];
  for (const item of done) {  // photos with points: their full-resolution render
    entries.push(usesPoints(item) ? await fullResolution(item) : item);
    if (!entries[entries.length - 1]) return;  // its error is on its card
  }
  saveBlob(await zipBlob(uniqueNames(entries)), "colorized.zip");
}

function saveBlob(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
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
  wirePointsPage();
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
