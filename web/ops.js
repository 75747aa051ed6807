// The operator's dashboard (/app/ops, admin only): every 2 s it reads the server's own metrics
// (GET /v1/ops/metrics, the Prometheus text of /metrics behind an admin check) and /readyz, and
// draws grabs/s, grab latency p50/p99, open connections, journal and ledger lag, packets in
// memory, dependency health and replica lag, with SVG charts of the last 5 minutes.
import { authHeaders } from './api.js';
import { clear, h } from './dom.js';

const INTERVAL_MS = 2000;
const WINDOW = 150;  // points: 5 minutes at 2 s

// Prometheus text -> [{name, labels: {..}, value}]
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) for (const pair of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

function sum(samples, name, match = {}) {
  let total = 0;
  let found = false;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).some(([k, v]) => s.labels[k] !== v)) continue;
    total += s.value;
    found = true;
  }
  return found ? total : null;
}

// Quantile q of the grab latency between two scrapes, from the histogram's bucket deltas.
function quantile(prev, now, q) {
  const buckets = (samples) => samples.filter((s) => s.name === 'redpacket_http_request_duration_seconds_bucket' && s.labels.route === 'grab')
    .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), value: s.value })).sort((a, b) => a.le - b.le);
  const a = buckets(prev);
  const b = buckets(now);
  if (!b.length) return null;
  const delta = b.map((x, i) => ({ le: x.le, value: x.value - (a[i] ? a[i].value : 0) }));
  const count = delta[delta.length - 1].value;
  if (count <= 0) return null;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const bucket of delta) {
    if (bucket.value >= rank) {
      if (bucket.le === Infinity) return lower;
      const inBucket = bucket.value - below;
      return lower + (bucket.le - lower) * (inBucket > 0 ? (rank - below) / inBucket : 1);
    }
    lower = bucket.le;
    below = bucket.value;
  }
  return lower;
}

const SVG = 'http://www.w3.org/2000/svg';
function chart(title, unit) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 300 80');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('class', 'series');
  svg.append(line);
  const value = h('span', { class: 'value' }, '–');
  const card = h('section', { class: 'card tile', 'data-metric': title }, h('h3', {}, title), value, svg);
  const points = [];
  card.push = (v) => {
    points.push(v === null || Number.isNaN(v) ? null : v);
    while (points.length > WINDOW) points.shift();
    value.textContent = v === null ? '–' : format(v, unit);
    const known = points.filter((p) => p !== null);
    const max = Math.max(1e-9, ...known);
    line.setAttribute('points', points.map((p, i) => p === null ? null : (i * 300 / (WINDOW - 1)).toFixed(1) + ',' + (78 - (p / max) * 74).toFixed(1)).filter(Boolean).join(' '));
  };
  return card;
}

function format(v, unit) {
  if (unit === 'ms') return v < 1 ? v.toFixed(2) + ' ms' : v.toFixed(1) + ' ms';
  if (unit === '/s') return v.toFixed(v < 10 ? 1 : 0) + ' /s';
  if (unit === 's') return v.toFixed(1) + ' s';
  return String(Math.round(v));
}

export async function viewOps(main) {
  const box = h('p', { class: 'error', role: 'alert' });
  const health = h('ul', { class: 'health', id: 'health' });
  const tiles = {
    grabs: chart('Grabs /s', '/s'),
    p50: chart('Grab p50', 'ms'),
    p99: chart('Grab p99', 'ms'),
    connections: chart('Open connections', ''),
    journal: chart('Journal lag (events)', ''),
    ledger: chart('Ledger lag (events)', ''),
    packets: chart('Packets in memory', ''),
    streams: chart('Event streams', ''),
    replica: chart('Replica lag', 's'),
  };
  clear(main).append(h('h2', {}, 'Operations'), box, h('section', { class: 'card' }, h('h3', {}, 'Health (/readyz)'), health),
    h('div', { class: 'tiles', id: 'tiles' }, Object.values(tiles)));
  let previous = null;
  let previousAt = 0;
  async function tick() {
    let samples;
    try {
      const response = await fetch('/v1/ops/metrics', { headers: authHeaders() });
      if (response.status === 401 || response.status === 403) {
        box.textContent = 'This dashboard is for admins: sign in with an admin token.';
        return false;
      }
      if (!response.ok) throw new Error('metrics answered ' + response.status);
      samples = parseMetrics(await response.text());
      box.textContent = '';
    } catch (e) {
      box.textContent = 'Cannot read the metrics: ' + e.message;
      return true;
    }
    const now = performance.now();
    if (previous) {
      const seconds = (now - previousAt) / 1000;
      const grabs = (sum(samples, 'redpacket_http_requests_total', { route: 'grab', status: '200' }) || 0) -
        (sum(previous, 'redpacket_http_requests_total', { route: 'grab', status: '200' }) || 0);
      tiles.grabs.push(grabs / seconds);
      const p50 = quantile(previous, samples, 0.5);
      const p99 = quantile(previous, samples, 0.99);
      tiles.p50.push(p50 === null ? null : p50 * 1000);
      tiles.p99.push(p99 === null ? null : p99 * 1000);
    }
    tiles.connections.push(sum(samples, 'redpacket_http_open_connections'));
    tiles.journal.push(sum(samples, 'redpacket_journal_queued_events') ?? sum(samples, 'redpacket_kafka_pending_events'));
    tiles.ledger.push(sum(samples, 'redpacket_ledger_lag_events'));
    tiles.packets.push(sum(samples, 'redpacket_packets_in_memory'));
    tiles.streams.push(sum(samples, 'redpacket_event_streams_open'));
    tiles.replica.push(sum(samples, 'redpacket_mariadb_replica_lag_seconds'));
    previous = samples;
    previousAt = now;
    try {
      const ready = await fetch('/readyz').then((r) => r.json());
      clear(health).append(h('li', { class: ready.status === 'ready' ? 'ok' : 'bad' }, 'service: ' + ready.status),
        ...Object.entries(ready.checks || {}).map(([name, state]) => h('li', { class: state === 'ok' ? 'ok' : 'bad' }, name + ': ' + state)));
    } catch (e) {
      clear(health).append(h('li', { class: 'bad' }, 'readyz: ' + e.message));
    }
    return true;
  }
  if (await tick()) {
    const timer = setInterval(async () => { if (!(await tick())) clearInterval(timer); }, INTERVAL_MS);
  }
}
