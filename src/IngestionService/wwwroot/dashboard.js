// The live dashboard: polls GET /queue, /windows and /ingestions about once a second and redraws in place.
// No framework and no build step; every figure comes from the documented endpoints.

const POLL_MS = 1000;
const WINDOWS = 30;
const INGESTIONS = 20;
const SLOT_PX = 132; // the width of one Window on the timeline
const PRIORITIES = ['HIGH', 'MEDIUM', 'LOW'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const $ = (id) => document.getElementById(id);

/** A DOM element with attributes and children; text is always set as text, never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') element.className = value;
    else if (name === 'style') Object.assign(element.style, value);
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : value);
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

/** UUIDv7 ids share their leading (time) digits, so the tail tells ingestions apart. */
const shortId = (id) => id.slice(-6);

const clock = { offset: 0 }; // server time minus this browser's time
const serverNow = () => Date.now() + clock.offset;

function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function duration(seconds) {
  if (seconds <= 0) return 'now';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(problemText(body) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

/** One line from an application/problem+json answer: its detail, or its field errors. */
function problemText(problem) {
  if (!problem) return '';
  const errors = problem.errors ? Object.entries(problem.errors).map(([field, messages]) => `${field}: ${messages.join(' ')}`) : [];
  return [problem.detail, ...errors].filter(Boolean).join(' ') || problem.title || '';
}

// ---- the queue -------------------------------------------------------------------------------------

const state = { queue: null, windows: [], lookup: null };

function renderQueue(queue) {
  const rows = queue.priorities.map((p) => h('tr', { class: `p-row-${p.priority}` },
    h('th', { scope: 'row' }, h('span', { class: `chip p-${p.priority}` }, p.priority)),
    h('td', { class: 'num', 'data-priority': p.priority }, String(p.waiting)),
    h('td', { class: 'num', title: p.drained_at ? `last of them admitted about ${time(p.drained_at)}` : '' },
      p.waiting === 0 ? '—' : duration(p.drain_seconds))));
  $('queue-rows').replaceChildren(...rows);
  $('limits').textContent = `${queue.batch_size} ids per ${queue.window_seconds} s window`;
}

function renderCountdown() {
  const queue = state.queue;
  if (!queue) return;
  const running = state.windows.find((w) => w.state === 'running');
  const left = (Date.parse(queue.next_admission_at) - serverNow()) / 1000;
  let text;
  const paused = queue.upstream_paused_until ? (Date.parse(queue.upstream_paused_until) - serverNow()) / 1000 : 0;
  if (paused > 0) text = `in ${paused.toFixed(1)} s: the upstream asked for a pause (429)`;
  else if (running) text = left > 0 ? `in ${left.toFixed(1)} s (window ${running.seq} in flight)` : `when window ${running.seq} finishes`;
  else if (queue.total_waiting === 0) text = left > 0 ? `in ${left.toFixed(1)} s, when work arrives` : 'at once, when work arrives';
  else text = left > 0 ? `in ${left.toFixed(1)} s` : 'now';
  $('countdown').textContent = text;
  const marker = document.querySelector('.next-marker');
  if (marker && state.timeline) marker.style.left = `${x(Math.max(Date.parse(queue.next_admission_at), serverNow()))}px`;
  const now = document.querySelector('.now-marker');
  if (now && state.timeline) now.style.left = `${x(serverNow())}px`;
}

// ---- the timeline ----------------------------------------------------------------------------------

/**
 * Pixels from the strip's left edge for a time in milliseconds. The strip is a row of Window-long slots
 * aligned on whole windows since the epoch (so the grid stays put from one poll to the next); a run of
 * empty slots between windows is folded into one "idle" slot, so an idle hour does not stretch the strip.
 */
function x(ms) {
  const { windowMs, columns, last } = state.timeline;
  const slot = Math.floor(ms / windowMs);
  const column = columns.get(slot);
  if (column === undefined) return (last + 1) * SLOT_PX; // past the strip's end until the next poll
  return (column + (ms - slot * windowMs) / windowMs) * SLOT_PX;
}

function renderTimeline(windows, queue) {
  const windowMs = queue.window_seconds * 1000;
  const now = serverNow();
  const slotOf = (ms) => Math.floor(ms / windowMs);
  const keep = new Set();
  for (const w of windows) {
    const first = slotOf(Date.parse(w.started_at));
    const finished = w.finished_at ? slotOf(Date.parse(w.finished_at)) : slotOf(now);
    for (let slot = first; slot <= Math.min(finished, first + 2); slot++) keep.add(slot);
  }
  const endSlot = slotOf(Math.max(now, Date.parse(queue.next_admission_at)));
  for (let slot = endSlot - 2; slot <= endSlot + 1; slot++) keep.add(slot);

  const columns = new Map();
  const gaps = [];
  let column = 0;
  let previous = null;
  for (const slot of [...keep].sort((a, b) => a - b)) {
    if (previous !== null && slot > previous + 1) gaps.push({ column: column++, idleMs: (slot - previous - 1) * windowMs });
    columns.set(slot, column++);
    previous = slot;
  }
  state.timeline = { windowMs, columns, last: column - 1 };

  const scroller = $('timeline-scroll');
  const atEnd = scroller.scrollLeft + scroller.clientWidth >= scroller.scrollWidth - 8;
  const strip = $('timeline-strip');
  strip.style.width = `${column * SLOT_PX}px`;
  strip.style.setProperty('--slot', `${SLOT_PX}px`);
  strip.style.setProperty('--rows', String(queue.batch_size));

  const labels = [...columns].filter(([slot, c]) => c % 2 === 0 || !columns.has(slot - 1)).map(([slot]) =>
    h('span', { class: 'grid-label', style: { left: `${x(slot * windowMs)}px` } }, time(new Date(slot * windowMs).toISOString()).slice(0, 8)));
  const folds = gaps.map((gap) => h('span', { class: 'gap', style: { left: `${gap.column * SLOT_PX}px`, width: `${SLOT_PX}px` } },
    `idle ${duration(gap.idleMs / 1000)}`));

  const blocks = windows.map((w) => {
    const startedAt = Date.parse(w.started_at);
    const finishedAt = w.finished_at ? Date.parse(w.finished_at) : now;
    const ids = w.items.flatMap((item) => item.ids.map((id) => ({ id, item })));
    return h('li', {
      class: `block state-${w.state}`,
      style: { left: `${x(startedAt)}px`, width: `${SLOT_PX - 6}px` },
      'data-window-seq': w.seq,
      'aria-label': `Window ${w.seq}, ${w.state}, started ${time(w.started_at)}: ${ids.map(({ id, item }) => `${id} (${item.priority} ${shortId(item.ingestion_id)})`).join(', ')}`,
    },
    h('span', { class: 'block-head' }, `#${w.seq} ${w.state === 'running' ? 'in flight' : w.state}`),
    ...ids.map(({ id, item }) => h('span', {
      class: `id p-${item.priority}`,
      'data-ingestion-id': item.ingestion_id,
      title: `${item.priority} ingestion ${item.ingestion_id}`,
    }, h('b', {}, String(id)), ` ${shortId(item.ingestion_id)}`)),
    h('span', { class: 'fetch', style: { width: `${Math.min(100, ((finishedAt - startedAt) / windowMs) * 100)}%` }, title: 'time the fetches took' }));
  });

  strip.replaceChildren(
    ...labels,
    ...folds,
    h('ol', { class: 'blocks' }, blocks),
    h('span', { class: 'now-marker', style: { left: `${x(now)}px` }, title: 'now' }),
    h('span', { class: 'next-marker', style: { left: `${x(Math.max(Date.parse(queue.next_admission_at), now))}px` }, title: 'next admission' }));
  if (atEnd) scroller.scrollLeft = scroller.scrollWidth;
}

// ---- recent ingestions -----------------------------------------------------------------------------

const rows = new Map(); // ingestion id → its list item, kept across polls so focus is never lost

function renderRecent(ingestions) {
  const list = $('recent-list');
  const seen = new Set();
  const ordered = ingestions.map((ingestion) => {
    seen.add(ingestion.ingestion_id);
    let row = rows.get(ingestion.ingestion_id);
    if (!row) {
      row = h('li', { class: 'ingestion', 'data-ingestion-id': ingestion.ingestion_id },
        h('div', { class: 'line' },
          h('span', { class: `chip p-${ingestion.priority}` }, ingestion.priority),
          h('button', { type: 'button', class: 'link', onclick: () => lookUp(ingestion.ingestion_id), 'aria-label': `Look up ingestion ${ingestion.ingestion_id}` },
            h('code', {}, shortId(ingestion.ingestion_id))),
          h('span', { class: 'created' }, time(ingestion.created_at)),
          h('span', { class: 'counts' })),
        h('div', { class: 'bar', role: 'img' },
          h('span', { class: 'seg completed' }), h('span', { class: 'seg triggered' }), h('span', { class: 'seg yet_to_start' })));
      rows.set(ingestion.ingestion_id, row);
    }

    const b = ingestion.batches;
    row.dataset.status = ingestion.status;
    row.querySelector('.counts').textContent =
      `${ingestion.status.replaceAll('_', ' ')} · ${b.completed}/${b.total} batches · ${ingestion.completed_ids}/${ingestion.total_ids} ids`
      + (ingestion.failed_ids > 0 ? ` · ${ingestion.failed_ids} failed` : '');
    const bar = row.querySelector('.bar');
    bar.setAttribute('aria-label', `${b.completed} completed, ${b.triggered} triggered, ${b.yet_to_start} yet to start of ${b.total} batches`);
    for (const key of ['completed', 'triggered', 'yet_to_start']) {
      bar.querySelector(`.${key}`).style.flexGrow = String(b[key]);
    }
    return row;
  });

  for (const id of [...rows.keys()]) if (!seen.has(id)) rows.delete(id);
  // Move only what is out of place, so a focused button stays focused.
  ordered.forEach((row, i) => { if (list.children[i] !== row) list.insertBefore(row, list.children[i] ?? null); });
  while (list.children.length > ordered.length) list.lastElementChild.remove();
  $('recent-empty').hidden = ordered.length > 0;
}

// ---- look-up ---------------------------------------------------------------------------------------

async function lookUp(id) {
  $('lookup-id').value = id;
  state.lookup = id;
  await refreshLookup();
}

async function refreshLookup() {
  const id = state.lookup;
  const out = $('lookup-result');
  if (!id) return;
  if (!UUID.test(id)) {
    out.replaceChildren(h('p', { class: 'error' }, 'An ingestion id looks like 01a20a3e-239e-79ad-a582-0861a3e8b439.'));
    state.lookup = null;
    return;
  }

  let status;
  try {
    status = await getJson(`/status/${encodeURIComponent(id)}`);
  } catch (error) {
    if (state.lookup !== id) return;
    out.replaceChildren(h('p', { class: 'error' }, error.message));
    if (error.status === 404) state.lookup = null;
    return;
  }

  if (state.lookup !== id) return;
  out.replaceChildren(
    h('p', { class: 'summary', 'data-status': status.status },
      h('span', { class: `chip p-${status.priority}` }, status.priority), ' ',
      h('code', {}, status.ingestion_id), ` · ${status.status.replaceAll('_', ' ')} · created ${time(status.created_at)}`,
      status.ids_ahead !== null ? ` · ${status.ids_ahead} ids ahead` : '',
      status.failed_ids > 0 ? ` · ${status.failed_ids} failed (see /ingestions/${status.ingestion_id}/results)` : ''),
    h('div', { class: 'table-scroll' },
      h('table', { class: 'batches' },
        h('thead', {}, h('tr', {}, ...['Batch', 'Ids', 'Status', 'Triggered', 'Completed', 'Expected start'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, status.batches.map((batch, i) => h('tr', { class: `status-${batch.status}` },
          h('td', { class: 'num' }, String(i + 1)),
          h('td', {}, batch.ids.join(', ')),
          h('td', {}, batch.status.replaceAll('_', ' ') + (batch.failed_ids ? `, ${batch.failed_ids} failed` : '')),
          h('td', {}, time(batch.triggered_at)),
          h('td', {}, time(batch.completed_at)),
          h('td', {}, time(batch.estimated_start_at))))))));
  if (status.status === 'completed') state.lookup = null; // nothing will change any more
}

$('lookup-form').addEventListener('submit', (event) => {
  event.preventDefault();
  lookUp($('lookup-id').value.trim());
});

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
      'Accepted: ', h('button', { type: 'button', class: 'link', onclick: () => lookUp(body.ingestion_id) }, h('code', {}, body.ingestion_id))));
    await poll();
  } catch (error) {
    out.replaceChildren(h('p', { class: 'error' }, `Could not reach the service: ${error.message}`));
  } finally {
    button.disabled = false;
  }
});

// ---- the loop --------------------------------------------------------------------------------------

let polling = null;

async function poll() {
  if (polling) return polling;
  polling = (async () => {
    try {
      const [queue, windowLog, recent] = await Promise.all([
        getJson('/queue'), getJson(`/windows?limit=${WINDOWS}`), getJson(`/ingestions?limit=${INGESTIONS}`)]);
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
    }
  })();
  return polling;
}

function setConnection(live, why = '') {
  const element = $('connection');
  element.textContent = live ? 'live' : `disconnected${why ? `: ${why}` : ''}`;
  element.classList.toggle('down', !live);
}

async function loop() {
  if (!document.hidden) await poll();
  setTimeout(loop, POLL_MS);
}

setInterval(renderCountdown, 100);
loop();
