// What every part of the dashboard shares: building elements, the server's clock, times and durations,
// and reading the service's JSON (its problem+json answers turned into one readable line).

export const $ = (id) => document.getElementById(id);

/** A DOM element with attributes and children; text is always set as text, never parsed as HTML. */
export function h(tag, attrs = {}, ...children) {
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
export const shortId = (id) => id.slice(-6);

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const clock = { offset: 0 }; // server time minus this browser's time
export const serverNow = () => Date.now() + clock.offset;

export function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function duration(seconds) {
  if (seconds <= 0) return 'now';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** "yet_to_start" as a reader says it. */
export const words = (status) => status.replaceAll('_', ' ');

export async function getJson(path) {
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
export function problemText(problem) {
  if (!problem) return '';
  const errors = problem.errors ? Object.entries(problem.errors).map(([field, messages]) => `${field}: ${messages.join(' ')}`) : [];
  return [problem.detail, ...errors].filter(Boolean).join(' ') || problem.title || '';
}
