// The timeline of windows: each block is one window and its ids, placed at its start; what each call
// came to is marked on its id; a pause the upstream asked for is drawn from the window that caused it.

import { $, h, shortId, serverNow, time, duration } from './dom.js';

const SLOT_PX = 132; // the width of one Window on the timeline
const MAX_PAUSE_SLOTS = 30; // a longer pause is drawn to its end, with the slots in between folded

/** How each outcome of GET /windows is marked: a glyph (so colour is never the only sign) and its meaning. */
export const OUTCOMES = {
  retrying: { glyph: '↻', meaning: 'failed, called again later' },
  failed: { glyph: '✕', meaning: 'failed for good' },
  throttled: { glyph: '‖', meaning: 'refused for quota (429), called again after the pause' },
};

let layout = null; // { windowMs, columns, last } of the strip as last drawn

/**
 * Pixels from the strip's left edge for a time in milliseconds. The strip is a row of Window-long slots
 * aligned on whole windows since the epoch (so the grid stays put from one poll to the next); a run of
 * empty slots between windows is folded into one "idle" slot, so an idle hour does not stretch the strip.
 */
function x(ms) {
  const { windowMs, columns, last } = layout;
  const slot = Math.floor(ms / windowMs);
  const column = columns.get(slot);
  if (column === undefined) return (last + 1) * SLOT_PX; // past the strip's end until the next poll
  return (column + (ms - slot * windowMs) / windowMs) * SLOT_PX;
}

/** Moves the "now" and "next admission" lines between polls. */
export function placeMarkers(queue) {
  if (!layout || !queue) return;
  const now = serverNow();
  const next = document.querySelector('.next-marker');
  if (next) next.hidden = queue.paused; // paused: no clock says when the next window comes
  if (next) next.style.left = `${x(Math.max(Date.parse(queue.next_admission_at), now))}px`;
  const line = document.querySelector('.now-marker');
  if (line) line.style.left = `${x(now)}px`;
}

/** The slots the strip shows: each window's first three, every slot a pause covers (within reason), and now. */
function slotsToKeep(windows, queue, windowMs, now) {
  const slotOf = (ms) => Math.floor(ms / windowMs);
  const keep = new Set();
  const range = (from, to) => { for (let slot = from; slot <= to; slot++) keep.add(slot); };
  for (const w of windows) {
    const first = slotOf(Date.parse(w.started_at));
    const finished = w.finished_at ? slotOf(Date.parse(w.finished_at)) : slotOf(now);
    range(first, Math.min(finished, first + 2));
    if (w.paused_until && w.finished_at) {
      const end = slotOf(Date.parse(w.paused_until));
      range(finished, Math.min(end, finished + MAX_PAUSE_SLOTS));
      keep.add(end);
    }
  }
  const endSlot = slotOf(Math.max(now, Date.parse(queue.next_admission_at)));
  range(endSlot - 2, endSlot + 1);
  return [...keep].sort((a, b) => a - b);
}

function idMark(id, item, outcome) {
  const mark = OUTCOMES[outcome];
  return h('span', {
    class: `id p-${item.priority}${mark ? ` o-${outcome}` : ''}`,
    'data-ingestion-id': item.ingestion_id,
    'data-outcome': outcome ?? null,
    title: `${item.priority} ingestion ${item.ingestion_id}${outcome ? `: ${mark ? mark.meaning : outcome}` : ''}`,
  }, mark ? h('i', { class: 'mark', 'aria-hidden': 'true' }, mark.glyph) : null, h('b', {}, String(id)), ` ${shortId(item.ingestion_id)}`);
}

function block(w, windowMs, now) {
  const startedAt = Date.parse(w.started_at);
  const finishedAt = w.finished_at ? Date.parse(w.finished_at) : now;
  const calls = w.items.flatMap((item) => item.ids.map((id, i) => ({ id, item, outcome: item.outcomes?.[i] })));
  const counts = Object.keys(OUTCOMES)
    .map((outcome) => [outcome, calls.filter((call) => call.outcome === outcome).length])
    .filter(([, count]) => count > 0);
  const trouble = counts.map(([outcome, count]) => `${count} ${outcome}`).join(', ');
  return h('li', {
    class: `block state-${w.state}${counts.length ? ' has-trouble' : ''}`,
    style: { left: `${x(startedAt)}px`, width: `${SLOT_PX - 6}px` },
    'data-window-seq': w.seq,
    'aria-label': `Window ${w.seq}, ${w.state}${trouble ? ` (${trouble})` : ''}, started ${time(w.started_at)}: `
      + calls.map(({ id, item, outcome }) => `${id} (${item.priority} ${shortId(item.ingestion_id)}${outcome ? `, ${outcome}` : ''})`).join(', '),
  },
  h('span', { class: 'block-head' }, `#${w.seq} ${w.state === 'running' ? 'in flight' : w.state}`,
    counts.map(([outcome, count]) => h('span', { class: `tally o-${outcome}`, title: `${count} ${OUTCOMES[outcome].meaning}` }, ` ${OUTCOMES[outcome].glyph}${count}`))),
  ...calls.map(({ id, item, outcome }) => idMark(id, item, outcome)),
  h('span', { class: 'fetch', style: { width: `${Math.min(100, ((finishedAt - startedAt) / windowMs) * 100)}%` }, title: 'time the fetches took' }));
}

/** The pause a window's answers asked for, from its finish to the pause's end. */
function pauseBand(w) {
  const from = x(Date.parse(w.finished_at));
  const to = x(Date.parse(w.paused_until));
  return h('span', {
    class: 'pause-band',
    'data-window-seq': w.seq,
    style: { left: `${from}px`, width: `${Math.max(4, to - from)}px` },
    title: `the upstream refused window ${w.seq} for quota: no window started until ${time(w.paused_until)}`,
  }, h('span', { class: 'pause-label' }, `‖ upstream pause until ${time(w.paused_until).slice(0, 8)}`));
}

export function renderTimeline(windows, queue) {
  const windowMs = queue.window_seconds * 1000;
  const now = serverNow();

  const columns = new Map();
  const gaps = [];
  let column = 0;
  let previous = null;
  for (const slot of slotsToKeep(windows, queue, windowMs, now)) {
    if (previous !== null && slot > previous + 1) gaps.push({ column: column++, idleMs: (slot - previous - 1) * windowMs });
    columns.set(slot, column++);
    previous = slot;
  }
  layout = { windowMs, columns, last: column - 1 };

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
  const pauses = windows.filter((w) => w.paused_until && w.finished_at).map(pauseBand);

  strip.replaceChildren(
    ...labels,
    ...folds,
    ...pauses,
    h('ol', { class: 'blocks' }, windows.map((w) => block(w, windowMs, now))),
    h('span', { class: 'now-marker', style: { left: `${x(now)}px` }, title: 'now' }),
    h('span', { class: 'next-marker', style: { left: `${x(Math.max(Date.parse(queue.next_admission_at), now))}px` }, title: 'next admission' }));
  if (atEnd) scroller.scrollLeft = scroller.scrollWidth;
}
