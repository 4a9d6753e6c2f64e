// Recent ingestions (filtered by status and priority) and the look-up of one ingestion: its batches,
// and what the upstream answered for each id. A look-up is linkable: /#/ingestions/{id}.

import { $, h, UUID, shortId, time, words, getJson } from './dom.js';
import { ingestionActions } from './control.js';

const INGESTIONS = 20;
const RESULTS = 100;
const ROUTE = /^#\/ingestions\/([^/?#]+)$/;

// ---- recent ingestions -----------------------------------------------------------------------------

const rows = new Map(); // ingestion id → its list item, kept across polls so focus is never lost

/** GET /ingestions with the filter the page shows. */
export function recentPath() {
  const query = new URLSearchParams({ limit: String(INGESTIONS) });
  const status = $('filter-status').value;
  if (status === 'failed') query.set('failed', 'true');
  else if (status) query.set('status', status);
  if ($('filter-priority').value) query.set('priority', $('filter-priority').value);
  return `/ingestions?${query}`;
}

/** The ids of an ingestion by where they are: succeeded, failed, in a window or waiting for a retry, not started, cancelled. */
function idParts(ingestion) {
  const cancelled = ingestion.cancelled_ids ?? 0;
  return {
    succeeded: ingestion.completed_ids - ingestion.failed_ids,
    failed: ingestion.failed_ids,
    started: ingestion.started_ids - ingestion.completed_ids,
    waiting: ingestion.total_ids - ingestion.started_ids - cancelled,
    cancelled,
  };
}

const PARTS = ['succeeded', 'failed', 'started', 'waiting', 'cancelled'];

function newRow(ingestion) {
  return h('li', { class: 'ingestion', 'data-ingestion-id': ingestion.ingestion_id },
    h('div', { class: 'line' },
      h('span', { class: `chip p-${ingestion.priority}` }, ingestion.priority),
      h('a', { class: 'link', href: `#/ingestions/${ingestion.ingestion_id}`, 'aria-label': `Look up ingestion ${ingestion.ingestion_id}` },
        h('code', {}, shortId(ingestion.ingestion_id))),
      h('span', { class: 'created' }, time(ingestion.created_at)),
      h('span', { class: 'counts' })),
    h('div', { class: 'bar', role: 'img' },
      ...PARTS.map((part) => h('span', { class: `seg ${part}` }))));
}

export function renderRecent(ingestions) {
  const list = $('recent-list');
  const seen = new Set();
  const ordered = ingestions.map((ingestion) => {
    seen.add(ingestion.ingestion_id);
    let row = rows.get(ingestion.ingestion_id);
    if (!row) {
      row = newRow(ingestion);
      rows.set(ingestion.ingestion_id, row);
    }

    const b = ingestion.batches;
    const parts = idParts(ingestion);
    const chip = row.querySelector('.chip');
    chip.textContent = ingestion.priority; // an operator may have moved it
    chip.className = `chip p-${ingestion.priority}`;
    row.dataset.status = ingestion.status;
    row.dataset.failed = String(ingestion.failed_ids);
    row.classList.toggle('has-failures', ingestion.failed_ids > 0);
    row.querySelector('.counts').textContent =
      `${words(ingestion.status)}${ingestion.failed_ids > 0 ? `, ${ingestion.failed_ids} failed` : ''}`
      + `${parts.cancelled > 0 ? (ingestion.status === 'cancelled' ? ` (${parts.cancelled} ids never called)` : `, ${parts.cancelled} cancelled`) : ''}`
      + ` · ${b.completed}/${b.total} batches · ${ingestion.completed_ids}/${ingestion.total_ids} ids`;
    const bar = row.querySelector('.bar');
    bar.setAttribute('aria-label', `of ${ingestion.total_ids} ids: ${parts.succeeded} succeeded, ${parts.failed} failed, `
      + `${parts.started} started, ${parts.waiting} not started, ${parts.cancelled} cancelled`);
    for (const [part, count] of Object.entries(parts)) bar.querySelector(`.${part}`).style.flexGrow = String(count);
    return row;
  });

  for (const id of [...rows.keys()]) if (!seen.has(id)) rows.delete(id);
  // Move only what is out of place, so a focused link stays focused.
  ordered.forEach((row, i) => { if (list.children[i] !== row) list.insertBefore(row, list.children[i] ?? null); });
  while (list.children.length > ordered.length) list.lastElementChild.remove();
  const filtered = $('filter-status').value !== '' || $('filter-priority').value !== '';
  $('recent-empty').textContent = filtered ? 'No ingestion matches this filter.' : 'No ingestion yet.';
  $('recent-empty').hidden = ordered.length > 0;
}

// ---- look-up ---------------------------------------------------------------------------------------

const lookup = { id: null, actionsFor: null };

/** Shows an ingestion, and puts it in the address so the look-up can be shared or reloaded. */
export async function lookUp(id) {
  $('lookup-id').value = id;
  if (lookup.actionsFor !== id) $('lookup-action-result').textContent = '';
  const hash = `#/ingestions/${id}`;
  if (location.hash !== hash) history.pushState(null, '', hash);
  lookup.id = id;
  await refreshLookup();
}

function batchesTable(status) {
  return h('div', { class: 'table-scroll' },
    h('table', { class: 'batches' },
      h('caption', {}, 'Batches'),
      h('thead', {}, h('tr', {}, ...['Batch', 'Ids', 'Status', 'Triggered', 'Completed', 'Expected start'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, status.batches.map((batch, i) => h('tr', { class: `status-${batch.status}${batch.failed_ids ? ' has-failures' : ''}` },
        h('td', { class: 'num' }, String(i + 1)),
        h('td', {}, batch.ids.join(', ')),
        h('td', {}, words(batch.status) + (batch.failed_ids ? `, ${batch.failed_ids} failed` : '') + (batch.cancelled_ids && batch.status !== 'cancelled' ? `, ${batch.cancelled_ids} cancelled` : '')),
        h('td', {}, time(batch.triggered_at)),
        h('td', {}, time(batch.completed_at)),
        h('td', {}, time(batch.estimated_start_at)))))));
}

function resultsTable(id, page) {
  const preview = (result) => {
    if (result.body === null || result.body === undefined) return '—';
    const text = result.body.length > 60 ? `${result.body.slice(0, 60)}…` : result.body;
    return result.body_truncated ? `${text} (cut)` : text;
  };
  return h('div', { class: 'table-scroll' },
    h('table', { class: 'results' },
      h('caption', {}, 'Results ', h('a', { href: `/ingestions/${id}/results` }, '(JSON)')),
      h('thead', {}, h('tr', {}, ...['Position', 'Id', 'State', 'HTTP', 'Attempts', 'Error', 'Body'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, page.results.map((result) => h('tr', { class: `result-${result.state}`, 'data-position': result.position },
        h('td', { class: 'num' }, String(result.position)),
        h('td', { class: 'num' }, String(result.id)),
        h('td', { class: 'state' }, result.state + (result.next_attempt_at ? ` (next ${time(result.next_attempt_at)})` : '')),
        h('td', { class: 'num' }, result.http_status === null ? '—' : String(result.http_status)),
        h('td', { class: 'num' }, String(result.attempts)),
        h('td', { class: 'error-text' }, result.error ?? ''),
        h('td', { class: 'body', title: result.body ?? '' }, preview(result)))))),
    page.next ? h('p', { class: 'hint' }, `The first ${page.results.length} ids; the rest from `, h('a', { href: page.next }, page.next)) : null);
}

/** Who is told when it is done, and how each attempt went: nothing at all when nobody is. */
function deliveriesPanel(deliveries) {
  if (!deliveries || !deliveries.callback_url) return null;
  const event = deliveries.events[0];
  const state = event
    ? `${words(event.type.replace('ingestion.', ''))} event ${words(event.state)}${event.next_attempt_at ? `, next attempt ${time(event.next_attempt_at)}` : ''}`
    : 'told once it is done';
  return h('div', { class: 'deliveries', 'data-state': event ? event.state : 'waiting' },
    h('p', { class: 'delivery-summary' }, 'Webhook to ', h('code', {}, deliveries.callback_url), ` · ${state} `,
      h('a', { href: `/ingestions/${deliveries.ingestion_id}/deliveries` }, '(JSON)')),
    event && event.attempts.length > 0 ? h('div', { class: 'table-scroll' },
      h('table', { class: 'attempts' },
        h('caption', {}, 'Delivery attempts'),
        h('thead', {}, h('tr', {}, ...['Attempt', 'At', 'Answer', 'Took'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, event.attempts.map((attempt) => h('tr', { class: attempt.http_status >= 200 && attempt.http_status < 300 ? 'attempt-ok' : 'attempt-failed' },
          h('td', { class: 'num' }, String(attempt.attempt)),
          h('td', {}, time(attempt.at)),
          h('td', { class: attempt.error ? 'error-text' : '' }, attempt.error ?? `HTTP ${attempt.http_status}`),
          h('td', { class: 'num' }, `${attempt.duration_ms} ms`)))))) : null);
}

export async function refreshLookup() {
  const id = lookup.id;
  const out = $('lookup-result');
  if (!id) return;
  if (!UUID.test(id)) {
    showActions({ ids_ahead: null });
    out.replaceChildren(h('p', { class: 'error' }, 'An ingestion id looks like 01a20a3e-239e-79ad-a582-0861a3e8b439.'));
    lookup.id = null;
    return;
  }

  let status;
  let page = null;
  let deliveries = null;
  try {
    status = await getJson(`/status/${encodeURIComponent(id)}`);
    if (status.started_ids > 0) page = await getJson(`/ingestions/${encodeURIComponent(id)}/results?limit=${RESULTS}`);
    deliveries = await getJson(`/ingestions/${encodeURIComponent(id)}/deliveries`);
  } catch (error) {
    if (lookup.id !== id) return;
    showActions({ ids_ahead: null });
    out.replaceChildren(h('p', { class: 'error' }, error.message));
    if (error.status === 404) lookup.id = null;
    return;
  }

  if (lookup.id !== id) return;
  const finished = status.status === 'completed' || status.status === 'cancelled';
  showActions(status);

  out.replaceChildren(
    h('p', { class: 'summary', 'data-status': status.status, 'data-failed': String(status.failed_ids) },
      h('span', { class: `chip p-${status.priority}` }, status.priority), ' ',
      h('code', {}, status.ingestion_id), ` · ${words(status.status)}`,
      status.failed_ids > 0 ? h('strong', { class: 'error' }, `, ${status.failed_ids} failed`) : '',
      ` · created ${time(status.created_at)}`,
      status.ids_ahead !== null ? ` · ${status.ids_ahead} ids ahead` : '',
      status.queue_paused ? h('strong', { class: 'paused-note' }, ' · queue paused') : '',
      status.cancelled_ids ? ` · ${status.cancelled_ids} ids ${status.cancel_reason === 'expired' ? 'expired' : 'cancelled'} ${time(status.cancelled_at)}` : '',
      status.not_after ? ` · not after ${time(status.not_after)}` : ''),
    ...[deliveriesPanel(deliveries)].filter(Boolean),
    batchesTable(status),
    ...(page ? [resultsTable(status.ingestion_id, page)] : []));
  const told = !deliveries?.callback_url || deliveries.events.some((event) => event.state !== 'pending');
  if (finished && told) lookup.id = null; // nothing will change any more
}

/**
 * Cancel and Move, while ids of the looked-up ingestion wait to start. Kept in a container of their own,
 * outside what each refresh rebuilds, so an open selector or a focused button is not lost every second.
 */
function showActions(status) {
  const box = $('lookup-actions');
  if (status.ids_ahead === null) {
    box.replaceChildren();
    lookup.actionsFor = null;
    return;
  }

  if (lookup.actionsFor !== status.ingestion_id) {
    lookup.actionsFor = status.ingestion_id;
    box.replaceChildren(ingestionActions(status, refreshLookup, () => lookup.actionsFor === status.ingestion_id));
  }
}

/** The look-up in the address (/#/ingestions/{id}): shown on load, and whenever the address changes. */
function fromAddress() {
  const match = ROUTE.exec(location.hash);
  if (!match) return;
  let id;
  try {
    id = decodeURIComponent(match[1]);
  } catch {
    id = match[1]; // not valid percent-encoding: the look-up says what an id looks like
  }
  lookUp(id);
}

export function startLookup(poll) {
  $('lookup-form').addEventListener('submit', (event) => {
    event.preventDefault();
    lookUp($('lookup-id').value.trim());
  });
  for (const id of ['filter-status', 'filter-priority']) $(id).addEventListener('change', () => poll());
  window.addEventListener('hashchange', fromAddress);
  fromAddress();
}
