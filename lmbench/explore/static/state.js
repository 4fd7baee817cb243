// lmbench explore: the page's state (chosen models, prefix, settings) as the URL's hash, so a link restores it.
// Pure functions, no DOM: the page (app.js) and the tests (Node, tests/test_explore_state.py) share them.
"use strict";

const ExploreState = (() => {
  // every setting with its default and its allowed range; a default is left out of the link
  const DEFAULTS = {prefix: "", k: 8, picked: "", temperature: 1, seed: 0, n: 15, sampled: false, models: null};
  const RANGES = {k: [1, 100, true], temperature: [0.05, 10, false], seed: [0, 2 ** 31 - 1, true], n: [1, 100, true]};
  const MAX_PREFIX = 1000;

  // a state -> "prefix=...&k=...&model=a&model=b" (only what differs from the defaults; models in page order)
  function encode(state) {
    const params = new URLSearchParams();
    for (const key of ["prefix", "k", "picked", "temperature", "seed", "n"]) {
      if (state[key] !== undefined && String(state[key]) !== String(DEFAULTS[key])) params.set(key, String(state[key]));
    }
    if (state.sampled) params.set("sampled", "1");
    if (Array.isArray(state.models)) {
      if (state.models.length === 0) params.set("none", "1");  // every model unticked: still a choice
      for (const name of state.models) params.append("model", name);
    }
    return params.toString();
  }

  function number(text, key) {
    const [lo, hi, integer] = RANGES[key];
    const value = Number(text);
    if (text === null || text.trim() === "" || !Number.isFinite(value) || value < lo || value > hi) return DEFAULTS[key];
    if (integer && !Number.isInteger(value)) return DEFAULTS[key];
    return value;
  }

  // "#prefix=...&..." (or without "#") -> a full state; values out of range or of unknown models fall back
  // to the defaults, so a hand-edited or stale link still opens. ``known``: the models the page has.
  function decode(hash, known) {
    const params = new URLSearchParams(String(hash || "").replace(/^#/, ""));
    const state = {...DEFAULTS};
    state.prefix = (params.get("prefix") || "").slice(0, MAX_PREFIX);
    state.picked = (params.get("picked") || "").trim();
    for (const key of Object.keys(RANGES)) state[key] = number(params.get(key), key);
    state.sampled = params.get("sampled") === "1";
    const asked = params.getAll("model");
    if (asked.length || params.get("none") === "1") {
      const names = new Set(known || asked);
      const chosen = (known || asked).filter((name) => asked.includes(name) && names.has(name));
      state.models = chosen.length || params.get("none") === "1" ? chosen : null;  // none known: show all
    }
    return state;
  }

  return {DEFAULTS, encode, decode};
})();

if (typeof module !== "undefined") module.exports = ExploreState;  // Node (the tests)
