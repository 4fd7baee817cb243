// lmbench explore: one card per model; every model is asked separately so a slow one never blocks the rest.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
const cards = new Map();  // model name -> {el, family, seq, attention}
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(path, params) {
  const response = await fetch(path + "?" + new URLSearchParams(params));
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function spinner() { return el("span", {class: "spinner", role: "status", "aria-label": "loading"}); }

function showError(slot, error) { slot.replaceChildren(el("div", {class: "error"}, String(error.message || error))); }

function makeCard(model, index) {
  const colour = PALETTE[index % PALETTE.length];
  const card = el("section", {class: "model-card", "data-model": model.name, "data-family": model.family,
                              style: `--colour: ${colour}`});
  const slots = {
    bars: el("div", {class: "bars"}, spinner()),
    picked: el("div", {class: "picked"}),
    sample: el("div", {class: "sample"}),
    extra: el("div", {class: "section extra"}),
  };
  card.append(el("h2", {}, model.name + " ", el("span", {class: "family"}, model.family)),
              slots.bars, slots.picked, slots.sample);
  if (model.family === "ngram" || model.family === "transformer") card.append(slots.extra);
  else slots.extra = null;
  $("models").append(card);
  cards.set(model.name, {el: card, family: model.family, slots, seq: 0, attention: null});
}

function renderBars(slot, top) {
  const best = Math.max(...top.map((t) => t.prob), 1e-12);
  slot.replaceChildren(...top.map((t) => el("div", {class: "bar-row"},
    el("span", {class: "token", title: t.token}, t.token),
    el("span", {class: "track"}, el("div", {class: "bar", style: `width: ${(100 * t.prob / best).toFixed(1)}%`})),
    el("span", {class: "p"}, t.prob.toFixed(4)))));
}

function renderBackoff(slot, answer) {
  const rows = answer.steps.map((s) => {
    const ctx = s.context.length ? s.context.join(" ") : "(no context)";
    const text = s.found
      ? `order ${s.order}: "${ctx} ${answer.token}" stored, ln p = ${s.logprob.toFixed(3)}`
      : `order ${s.order}: "${ctx} ${answer.token}" not stored, back-off weight ln = ${s.backoff_logweight.toFixed(3)}`;
    return el("div", {class: "backoff-step" + (s.found ? " found" : "")}, text);
  });
  slot.replaceChildren(el("b", {}, `Back-off path for "${answer.token}"`),
                       ...rows, el("div", {}, `p = ${answer.prob.toPrecision(4)}`));
}

function drawAttention(canvas, tokens, weights) {
  const n = tokens.length, cell = Math.max(8, Math.min(22, Math.floor(260 / n))), margin = 70;
  canvas.width = margin + n * cell + 4;
  canvas.height = margin + n * cell + 4;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = "10px monospace";
  ctx.fillStyle = "#333";
  for (let i = 0; i < n; i++) {
    ctx.save();
    ctx.translate(margin + i * cell + cell / 2 + 3, margin - 4);
    ctx.rotate(-Math.PI / 3);
    ctx.fillText(tokens[i].slice(0, 9), 0, 0);
    ctx.restore();
    ctx.textAlign = "right";
    ctx.fillText(tokens[i].slice(0, 9), margin - 4, margin + i * cell + cell / 2 + 3);
    ctx.textAlign = "left";
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const w = weights[i][j];
      const shade = Math.round(255 * (1 - Math.sqrt(w)));
      ctx.fillStyle = `rgb(${shade}, ${shade}, 255)`;
      ctx.fillRect(margin + j * cell, margin + i * cell, cell - 1, cell - 1);
    }
  }
}

function renderAttention(card, answer) {
  const slot = card.slots.extra;
  card.attention = answer;
  const canvas = el("canvas", {class: "attention"});
  const caption = el("div", {class: "muted"});
  const buttons = el("div", {class: "heads"});
  const show = (layer, head) => {
    drawAttention(canvas, answer.tokens, answer.layers[layer][head]);
    canvas.dataset.layer = layer;
    canvas.dataset.head = head;
    for (const b of buttons.children) b.classList.toggle("selected", b.dataset.layer == layer && b.dataset.head == head);
    caption.textContent = `layer ${layer}, head ${head}: the last position looks back ` +
      `${answer.mean_distance[layer][head].toFixed(2)} tokens on average`;
  };
  answer.layers.forEach((heads, layer) => heads.forEach((_, head) => {
    const furthest = answer.furthest_head.layer === layer && answer.furthest_head.head === head;
    const b = el("button", {type: "button", class: "head-button" + (furthest ? " furthest" : ""),
                            "data-layer": layer, "data-head": head}, `L${layer} H${head}` + (furthest ? " \u2605" : ""));
    b.addEventListener("click", () => show(layer, head));
    buttons.append(b);
  }));
  slot.replaceChildren(el("b", {}, "Attention per layer and head"), buttons, canvas, caption);
  show(answer.furthest_head.layer, answer.furthest_head.head);
}

function params() {
  return {prefix: $("prefix").value, k: $("k").value, token: $("picked").value.trim()};
}

// ------------------------------------------------------------------ the page's state in its URL (state.js)
let sampled = false;  // whether continuations were sampled: a link that says so samples again on opening

function chosenModels() {
  const boxes = [...document.querySelectorAll("#model-picker input[type=checkbox]")];
  return boxes.every((b) => b.checked) ? null : boxes.filter((b) => b.checked).map((b) => b.value);
}

function currentState() {
  return {prefix: $("prefix").value, k: $("k").value, picked: $("picked").value.trim(),
          temperature: $("temperature").value, seed: $("seed").value, n: $("n").value, sampled,
          models: chosenModels()};
}

function writeUrl() {  // replaceState: the link follows the page without filling the history
  const hash = ExploreState.encode(currentState());
  history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
}

function applyState(state) {
  for (const key of ["prefix", "k", "picked", "temperature", "seed", "n"]) $(key).value = state[key];
  sampled = state.sampled;
  for (const box of document.querySelectorAll("#model-picker input[type=checkbox]")) {
    box.checked = state.models === null || state.models.includes(box.value);
  }
  showChosen();
}

function showChosen() {
  const chosen = chosenModels();
  for (const [name, card] of cards) card.el.hidden = chosen !== null && !chosen.includes(name);
}

function makePicker(models) {
  $("model-picker").replaceChildren(...models.map((m) => {
    const box = el("input", {type: "checkbox", value: m.name});
    box.checked = true;
    box.addEventListener("change", () => { showChosen(); writeUrl(); refresh(); });
    return el("label", {class: "pick"}, box, " " + m.name);
  }));
}

function refresh() {
  const {prefix, k, token} = params();
  let tokensShown = false;
  for (const [name, card] of cards) {
    if (card.el.hidden) continue;
    const seq = ++card.seq;
    const current = () => seq === card.seq;
    card.slots.bars.replaceChildren(spinner());
    const query = {model: name, prefix, k};
    if (token) query.token = token;
    api("/api/next", query).then((answer) => {
      if (!current()) return;
      if (!tokensShown) {
        tokensShown = true;
        $("tokens").replaceChildren(...["<s>", ...answer.prefix_tokens].map((t) => el("span", {}, t)));
      }
      renderBars(card.slots.bars, answer.models[name]);
      card.slots.picked.textContent = token ? `p(${token}) = ${answer.picked[name].toPrecision(4)}` : "";
    }).catch((e) => { if (current()) { showError(card.slots.bars, e); card.slots.picked.textContent = ""; } });
    if (card.family === "ngram") {
      card.slots.extra.replaceChildren(spinner());
      const q = {model: name, prefix};
      if (token) q.token = token;
      api("/api/backoff", q).then((a) => current() && renderBackoff(card.slots.extra, a))
        .catch((e) => current() && showError(card.slots.extra, e));
    } else if (card.family === "transformer") {
      card.slots.extra.replaceChildren(spinner());
      api("/api/attention", {model: name, text: prefix}).then((a) => current() && renderAttention(card, a))
        .catch((e) => current() && showError(card.slots.extra, e));
    }
  }
}

function sample() {
  const query = {prefix: $("prefix").value, n: $("n").value, seed: $("seed").value, temperature: $("temperature").value};
  sampled = true;
  writeUrl();
  for (const [name, card] of cards) {
    if (card.el.hidden) continue;
    card.slots.sample.replaceChildren(spinner());
    api("/api/generate", {...query, model: name})
      .then((a) => card.slots.sample.replaceChildren("sample: ", el("code", {}, a.tokens.join(" "))))
      .catch((e) => showError(card.slots.sample, e));
  }
}

let timer = null;
function later() { clearTimeout(timer); timer = setTimeout(refresh, 250); writeUrl(); }

function openState() {  // the state the URL holds (a shared link), onto the page
  applyState(ExploreState.decode(location.hash, [...cards.keys()]));
  refresh();
  if (sampled) sample();
}

async function start() {
  const info = await api("/api/models", {});
  $("run-dir").textContent = `${info.models.length} model(s) from ${info.run_dir}`;
  info.models.forEach(makeCard);
  makePicker(info.models);
  for (const id of ["prefix", "k", "picked"]) $(id).addEventListener("input", later);
  for (const id of ["temperature", "seed", "n"]) $(id).addEventListener("input", writeUrl);
  $("sample").addEventListener("click", sample);
  $("copy-link").addEventListener("click", () => {
    writeUrl();
    navigator.clipboard?.writeText(location.href).then(
      () => { $("copy-link").textContent = "Link copied"; }, () => {});
  });
  window.addEventListener("hashchange", openState);  // a link pasted into this tab
  openState();
}

start().catch((e) => showError($("models"), e));
