// The live dashboard: redraws from GET /queue, /windows and /ingestions whenever GET /events says something
// happened (a window, the queue's depth, a pause), and polls them every ten seconds besides; without the
// event stream (a proxy that buffers it, an old browser), it polls about once a second instead.
// No framework and no build step; every figure comes from the documented endpoints. The parts live in
// timeline.js (the windows), ingestions.js (recent ingestions and the look-up) and control.js (pause, resume).

import { $, h, clock, serverNow, time, duration, getJson, problemText } from './dom.js';
import { renderTimeline, placeMarkers } from './timeline.js';
import { renderRecent, recentPath, refreshLookup, startLookup } from './ingestions.js';
import { renderPause, startPauseToggle, renderLimits, startLimitsEditor } from './control.js';

const POLL_MS = 1000;           // without the event stream
const STREAM_POLL_MS = 10000;   // with it: a look now and then all the same, should an event be missed
const STREAM_EVENTS = ['window.started', 'window.finished', 'queue.depth', 'queue.paused', 'queue.resumed',
  'limits.changed', 'ingestion.cancelled', 'ingestion.moved', 'reset'];
const WINDOWS = 30;

const state = { queue: null, windows: [] };

// ---- the queue -------------------------------------------------------------------------------------

function renderQueue(queue) {
  const rows = queue.priorities.map((p) => h('tr', { class: `p-row-${p.priority}` },
    h('th', { scope: 'row' }, h('span', { class: `chip p-${p.priority}` }, p.priority)),
    h('td', { class: 'num', 'data-priority': p.priority }, String(p.waiting)),
    h('td', { class: 'num', title: p.drained_at ? `last of them admitted about ${time(p.drained_at)}` : '' },
      p.waiting === 0 ? '—' : p.drain_seconds === null ? 'paused' : duration(p.drain_seconds))));
  $('queue-rows').replaceChildren(...rows);
  renderPause(queue);
  renderLimits(queue);
}

function renderCountdown() {
  const queue = state.queue;
  if (!queue) return;
  const running = state.windows.find((w) => w.state === 'running');
  const left = (Date.parse(queue.next_admission_at) - serverNow()) / 1000;
  const paused = queue.upstream_paused_until ? (Date.parse(queue.upstream_paused_until) - serverNow()) / 1000 : 0;
  let text;
  if (queue.paused) text = running ? `paused: window ${running.seq} finishes, then none until resumed` : 'paused: none until the queue is resumed';
  else if (paused > 0) text = `in ${paused.toFixed(1)} s: the upstream asked for a pause (429)`;
  else if (running) text = left > 0 ? `in ${left.toFixed(1)} s (window ${running.seq} in flight)` : `when window ${running.seq} finishes`;
  else if (queue.total_waiting === 0) text = left > 0 ? `in ${left.toFixed(1)} s, when work arrives` : 'at once, when work arrives';
  else text = left > 0 ? `in ${left.toFixed(1)} s` : 'now';
  $('countdown').textContent = text;
  $('countdown').classList.toggle('paused', queue.paused || paused > 0);
  placeMarkers(queue);
}

// ---- submit ----------------------------------------------------------------------------------------

$('submit-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const out = $('submit-result');
  const text = $('submit-ids').value.trim();
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) {
    out.replaceChildren(h('p', { class: 'error' }, 'Enter one or more whole numbers, separated by commas or spaces.'));
    $('submit-ids').focus();
    return;
  }

  const button = event.submitter ?? event.target.querySelector('button');
  button.disabled = true;
  try {
    const response = await fetch('/ingest', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ ids: parts.map(Number), priority: $('submit-priority').value }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      out.replaceChildren(h('p', { class: 'error' }, `Refused (${response.status}): ${problemText(body)}`));
      return;
    }

    out.replaceChildren(h('p', { class: 'ok', 'data-ingestion-id': body.ingestion_id },
      'Accepted: ', h('a', { class: 'link', href: `#/ingestions/${body.ingestion_id}` }, h('code', {}, body.ingestion_id))));
    await poll();
  } catch (error) {
    out.replaceChildren(h('p', { class: 'error' }, `Could not reach the service: ${error.message}`));
  } finally {
    button.disabled = false;
  }
});

// ---- the loop --------------------------------------------------------------------------------------

let polling = null;
let again = false;
let streamOpen = false;

/** A redraw for an event: now, or right after the one in flight (which may have read too early). */
function refreshSoon() {
  if (polling) again = true;
  else poll();
}

async function poll() {
  if (polling) return polling;
  polling = (async () => {
    try {
      const [queue, windowLog, recent] = await Promise.all([
        getJson('/queue'), getJson(`/windows?limit=${WINDOWS}`), getJson(recentPath())]);
      clock.offset = Date.parse(queue.now) - Date.now();
      state.queue = queue;
      state.windows = windowLog.windows;
      renderQueue(queue);
      renderTimeline(windowLog.windows, queue);
      renderRecent(recent.ingestions);
      renderCountdown();
      await refreshLookup();
      setConnection(true);
    } catch (error) {
      setConnection(false, error.message);
    } finally {
      polling = null;
      if (again) {
        again = false;
        refreshSoon();
      }
    }
  })();
  return polling;
}

function startStream() {
  if (!window.EventSource) return;
  const source = new EventSource('/events');
  const mark = (open) => {
    streamOpen = open;
    $('connection').dataset.stream = open ? 'open' : 'closed';
  };
  source.addEventListener('open', () => mark(true));
  source.addEventListener('error', () => mark(false)); // it reconnects by itself; polling covers meanwhile
  for (const type of STREAM_EVENTS) source.addEventListener(type, refreshSoon);
}

function setConnection(live, why = '') {
  const element = $('connection');
  element.textContent = live ? 'live' : `disconnected${why ? `: ${why}` : ''}`;
  element.classList.toggle('down', !live);
}

async function loop() {
  if (!document.hidden) await poll();
  setTimeout(loop, streamOpen ? STREAM_POLL_MS : POLL_MS);
}

startLookup(poll);
startPauseToggle(poll);
startLimitsEditor(poll);
setInterval(renderCountdown, 100);
startStream();
loop();
