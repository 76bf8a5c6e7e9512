// The recording page's player: the archival rendition's stored segments, played as they
// are (each a standalone MP4 fetched from the API with Range; no re-encoding, no MSE,
// which cannot take non-fragmented MP4). One <video> plays segment i while a second,
// hidden one holds segment i+1, swapped in on "ended" for near-gapless play. One timeline
// spans the whole recording: seeking picks the segment and sets its currentTime.
"use strict";
(() => {
  const player = document.querySelector(".player[data-segments]");
  if (!player) { return; }
  const segs = JSON.parse(player.dataset.segments || "[]");
  if (!segs.length) { return; }
  const slots = Array.from(player.querySelectorAll("video.seg"));
  const timeline = player.querySelector("[data-role=timeline]");
  const shown = player.querySelector("[data-role=time]");
  const button = player.querySelector("[data-act=play]");
  const stopAt = player.dataset.to === "" ? null : Number(player.dataset.to);
  const startAt = player.dataset.from === "" ? 0 : Number(player.dataset.from);
  let cur = 0; // index into slots of the visible video
  let wantPlay = false;

  const clock = (s) => {
    const t = Math.max(0, Math.floor(s));
    const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;  // as the pages write it
  };
  const video = () => slots[cur];
  const other = () => slots[1 - cur];
  const indexOf = (v) => (v.dataset.index === undefined ? -1 : Number(v.dataset.index));
  const segmentAt = (t) => {
    const i = segs.findIndex((g) => t < g.end);
    return i === -1 ? segs.length - 1 : i;
  };
  const now = () => {
    const i = indexOf(video());
    return i < 0 ? 0 : segs[i].start + video().currentTime;
  };

  function load(v, i) {
    if (indexOf(v) === i) { return; }
    v.dataset.index = String(i);
    v.src = segs[i].src;
    v.load();
  }
  function preloadNext() {
    const i = indexOf(video()) + 1;
    if (i < segs.length) { load(other(), i); }
  }
  function show(slot) {
    slots[1 - slot].pause();
    slots[1 - slot].hidden = true;
    slots[slot].hidden = false;
    cur = slot;
    player.dataset.index = String(indexOf(video()));
  }
  function at(v, offset, then) {
    const go = () => { v.currentTime = Math.max(0, offset); if (then) { then(); } };
    if (v.readyState >= 1) { go(); } else { v.addEventListener("loadedmetadata", go, { once: true }); }
  }
  function seek(t) {
    const i = segmentAt(t);
    if (indexOf(video()) !== i) {
      if (indexOf(other()) === i) { show(1 - cur); } else { load(video(), i); }
    }
    at(video(), t - segs[i].start, () => {
      preloadNext();
      if (wantPlay) { video().play().catch(() => {}); }
    });
    tick(t);
  }
  function tick(t) {
    timeline.value = String(t);
    shown.textContent = clock(t);
    player.dataset.time = t.toFixed(2);
  }
  function setPlaying(on) {
    wantPlay = on;
    button.textContent = on ? player.dataset.wordPause : player.dataset.wordPlay;
    if (on) { video().play().catch(() => {}); } else { video().pause(); }
  }

  for (const v of slots) {
    v.addEventListener("timeupdate", () => {
      if (v !== video()) { return; }
      const t = now();
      tick(t);
      if (stopAt !== null && t >= stopAt) { setPlaying(false); }
    });
    v.addEventListener("ended", () => {
      if (v !== video()) { return; }
      const next = indexOf(v) + 1;
      if (next >= segs.length) { setPlaying(false); return; }
      if (indexOf(other()) !== next) { load(other(), next); }
      show(1 - cur);
      at(video(), 0, () => {
        if (wantPlay) { video().play().catch(() => {}); }
        preloadNext();
      });
    });
  }
  button.addEventListener("click", () => setPlaying(!wantPlay));
  timeline.addEventListener("input", () => seek(Number(timeline.value)));

  const form = document.querySelector(".linkform");
  if (form) {
    for (const [act, role] of [["mark-start", "start"], ["mark-end", "end"]]) {
      const b = form.querySelector(`[data-act=${act}]`);
      const input = form.querySelector(`[data-role=${role}]`);
      b.hidden = false;
      b.addEventListener("click", () => { input.value = clock(now()); });
    }
  }
  button.disabled = false;
  timeline.disabled = false;
  show(0);
  seek(Math.min(startAt, segs[segs.length - 1].end));
  if (player.dataset.from !== "") { setPlaying(true); }
})();
