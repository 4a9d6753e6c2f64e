// An operator's actions from the page: pause and resume the queue, cancel or move an ingestion, and the
// rate limit. Each asks for confirmation first and shows the service's answer. When the service has an
// admin key (Admin:ApiKey), the page asks for it once and keeps it for this tab only.

import { $, h, time, problemText } from './dom.js';

const KEY = 'ingestion-admin-key';
const known = { needsKey: false }; // from GET /queue: whether the control calls need the admin key

function askForKey() {
  const given = window.prompt('This service asks for its admin key (Admin:ApiKey) for this action:');
  if (!given) throw new Error('no admin key given');
  sessionStorage.setItem(KEY, given.trim());
}

/** Sends a control call, with the admin key when the service needs one (asked once, kept for this tab); a refused key is asked again once. */
export async function control(path, body, method = 'POST') {
  if (known.needsKey && !sessionStorage.getItem(KEY)) askForKey();
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const key = sessionStorage.getItem(KEY);
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const answer = await response.json().catch(() => null);
    if (response.ok) return answer;
    if (response.status === 401) {
      sessionStorage.removeItem(KEY);
      if (attempt === 0) {
        askForKey();
        continue;
      }
    }
    throw new Error(`${response.status}: ${problemText(answer)}`);
  }
  throw new Error('not done');
}

/** The header's pause state and its Pause/Resume button, from GET /queue. */
export function renderPause(queue) {
  known.needsKey = queue.control_needs_key;
  const button = $('pause-toggle');
  button.textContent = queue.paused ? 'Resume queue' : 'Pause queue';
  button.dataset.paused = String(queue.paused);
  const banner = $('pause-banner');
  banner.hidden = !queue.paused;
  if (queue.paused) {
    banner.replaceChildren(h('strong', {}, 'Queue paused'), ` since ${time(queue.paused_at)}`,
      queue.pause_reason ? `: ${queue.pause_reason}` : '', '. No window starts until it is resumed; submissions are still accepted.');
  }
}

export function startPauseToggle(poll) {
  $('pause-toggle').addEventListener('click', async () => {
    const out = $('control-result');
    const paused = $('pause-toggle').dataset.paused === 'true';
    let request;
    if (paused) {
      if (!window.confirm('Resume the queue? The next window starts as soon as the rate limit allows.')) return;
      request = control('/queue/resume');
    } else {
      const reason = window.prompt('Pause the queue? No window starts until it is resumed; the window in flight finishes.\nReason (optional):', '');
      if (reason === null) return;
      request = control('/queue/pause', reason.trim() ? { reason: reason.trim() } : undefined);
    }
    const queue = await report(out, request, (q) => (q.paused ? `Paused at ${time(q.paused_at)}.` : 'Resumed.'));
    if (queue) {
      renderPause(queue);
      await poll();
    }
  });
}

/** Shows a control call's outcome in `out` (while `current()` holds): the text for its answer, or why it was not done. */
async function report(out, request, describe, current = () => true) {
  try {
    const answer = await request;
    if (current()) {
      out.className = 'control-result ok';
      out.textContent = describe(answer);
    }
    return answer;
  } catch (error) {
    if (current()) {
      out.className = 'control-result error';
      out.textContent = `Not done: ${error.message}`;
    }
    return null;
  }
}

// ---- one ingestion: cancel, move to another priority ------------------------------------------------

/**
 * The look-up's actions for an ingestion some of whose ids still wait: cancel them, or move them to
 * another priority. Built once per look-up and kept across refreshes, so a chosen priority stays chosen;
 * the answer goes to #lookup-action-result, which outlives them, unless another ingestion is looked up
 * by the time it comes (`current` says).
 */
export function ingestionActions(status, refresh, current) {
  const out = $('lookup-action-result');
  const id = status.ingestion_id;
  const answer = (request, describe) => report(out, request, describe, current);
  const cancel = h('button', { type: 'button', class: 'control', id: 'lookup-cancel' }, 'Cancel waiting ids');
  cancel.addEventListener('click', async () => {
    if (!window.confirm(`Cancel the ids of ingestion ${id} that have not started? They will never be called; ids in flight finish.`)) return;
    const done = await answer(control(`/ingestions/${encodeURIComponent(id)}/cancel`),
      (s) => `Cancelled ${s.cancelled_ids} ids; the ingestion is ${s.status.replaceAll('_', ' ')}.`);
    if (done) await refresh();
  });
  const priority = h('select', { id: 'lookup-priority', 'aria-label': 'New priority' },
    ...['HIGH', 'MEDIUM', 'LOW'].map((p) => h('option', p === status.priority ? { value: p, selected: '' } : { value: p }, p)));
  const move = h('button', { type: 'button', class: 'control', id: 'lookup-move' }, 'Move');
  move.addEventListener('click', async () => {
    const to = priority.value;
    if (!window.confirm(`Move the waiting ids of ingestion ${id} to ${to}? They keep their place by created time there.`)) return;
    const done = await answer(control(`/ingestions/${encodeURIComponent(id)}`, { priority: to }, 'PATCH'),
      (s) => `Now ${s.priority}${s.ids_ahead !== null ? `, ${s.ids_ahead} ids ahead` : ''}.`);
    if (done) await refresh();
  });
  return h('div', { class: 'actions' }, cancel, ' ', h('label', { for: 'lookup-priority' }, 'Priority'), ' ', priority, ' ', move);
}

// ---- the rate limit -----------------------------------------------------------------------------------

/** The header's limit, from GET /queue, and the editor's fields while it is closed. */
export function renderLimits(queue) {
  $('limits-summary').textContent = `${queue.batch_size} id${queue.batch_size === 1 ? '' : 's'} per ${queue.window_seconds} s window`;
  if (!$('limits-editor').open) {
    $('limit-batch').value = String(queue.batch_size);
    $('limit-window').value = windowText(queue.window_seconds);
  }
}

/** [d.]hh:mm:ss[.fff], as PUT /limits takes it (hours past 23 are a day: "24:00:00" is not a duration there). */
function windowText(seconds) {
  const ms = Math.round(seconds * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const [d, h, m, s, f] = [Math.floor(ms / 86400000), Math.floor(ms / 3600000) % 24, Math.floor(ms / 60000) % 60, Math.floor(ms / 1000) % 60, ms % 1000];
  return `${d ? `${d}.` : ''}${pad(h)}:${pad(m)}:${pad(s)}${f ? `.${pad(f, 3)}` : ''}`;
}

const describeLimits = (limits) => `${limits.batch_size} ids per ${limits.window} (${limits.source}), from the next window.`;

export function startLimitsEditor(poll) {
  $('limits-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const batch = Number($('limit-batch').value);
    const window_ = $('limit-window').value.trim();
    if (!window.confirm(`Set the rate limit to ${batch} ids per ${window_}? Every instance applies it from its next window.`)) return;
    if (await report($('limits-result'), control('/limits', { batch_size: batch, window: window_ }, 'PUT'), describeLimits)) {
      $('limits-editor').open = false;
      await poll();
    }
  });
  $('limits-reset').addEventListener('click', async () => {
    if (!window.confirm('Go back to the configured rate limit (Ingestion:BatchSize, Ingestion:Window)?')) return;
    if (await report($('limits-result'), control('/limits', undefined, 'DELETE'), describeLimits)) {
      $('limits-editor').open = false;
      await poll();
    }
  });
}

