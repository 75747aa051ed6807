// The API client of the page: the caller's identity (sessionStorage only), JSON requests with
// readable errors, money formatting, and the packet event stream (fetch-based Server-Sent
// Events, so the caller's header goes with it; resumes with Last-Event-ID).

const KEY = 'redpacket.session';

// {kind:'dev', userId} or {kind:'token', token, userId, admin}; null when signed out.
export function session() {
  try { return JSON.parse(sessionStorage.getItem(KEY)); } catch { return null; }
}
export function signIn(value) { sessionStorage.setItem(KEY, JSON.stringify(value)); }
export function signOut() { sessionStorage.removeItem(KEY); }

// A bearer token rp1.<user>.<expiry>.<admin>.<mac>: what it says (the server checks the mac).
export function parseToken(token) {
  const parts = token.trim().split('.');
  if (parts.length !== 5 || parts[0] !== 'rp1' || !/^\d+$/.test(parts[1])) return null;
  return { userId: Number(parts[1]), admin: parts[3] === '1', token: token.trim() };
}

export function isAdmin(s, dev) { return s && (s.kind === 'dev' ? dev : s.admin); }

export function authHeaders() {
  const s = session();
  if (!s) return {};
  return s.kind === 'dev' ? { 'X-User-Id': String(s.userId) } : { Authorization: 'Bearer ' + s.token };
}

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(readable(message));
    this.raw = message;  // as the server wrote it (names the JSON field first)
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

// The server speaks cents and JSON field names; the page speaks yuan.
function readable(message) {
  return message
    .replace(/^count must not exceed total_cents.*/, 'more shares than cents: every share needs at least ¥0.01')
    .replace(/^total_cents must be at (most|least) (\d+)/, (_, which, n) => 'the total must be at ' + which + ' ' + yuan(Number(n)))
    .replace(/\b(\d+) cents\b/g, (_, n) => yuan(Number(n)))
    .replace(/, the packet needs (\d+)$/, (_, n) => ', the packet needs ' + yuan(Number(n)))
    .replace(/^expires_in_s/, 'the expiry (seconds)');
}

// Resolves with the JSON body of a 2xx; rejects with an ApiError carrying a readable message.
export async function call(method, path, body) {
  const init = { method, headers: { ...authHeaders() } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'The server cannot be reached (' + e.message + ').');
  }
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (response.ok) return json;
  const code = json && json.error ? json.error : 'http_' + response.status;
  let message = json && json.message ? json.message : 'The server answered ' + response.status + '.';
  if (code === 'insufficient_funds') message = 'Insufficient funds: ' + message + '.';
  if (response.status === 429) message = 'Too many requests: wait a moment and try again.';
  if (response.status === 401) message = 'Not signed in, or the token is not valid: ' + message;
  throw new ApiError(response.status, code, message, json);
}

// 1234 -> "¥12.34". Integer cents only: no floating point on money.
export function yuan(cents) {
  const negative = cents < 0;
  const abs = Math.abs(cents);
  const text = Math.floor(abs / 100) + '.' + String(abs % 100).padStart(2, '0');
  return (negative ? '-¥' : '¥') + text;
}

// "12.3" -> 1230; null when it is not an amount with at most two decimals.
export function parseYuan(text) {
  const match = /^\s*(\d{1,10})(?:\.(\d{0,2}))?\s*$/.exec(text);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] || '').padEnd(2, '0'));
}

// Follows GET /v1/packets/{id}/events: onGrab(grab) per grab in seq order, onFinished(details)
// once. Reconnects after a drop, resuming after the last seq seen. Returns a stop function.
export function followPacket(packetId, { onGrab, onFinished, onState }) {
  let lastSeq = 0;
  let stopped = false;
  let controller = null;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const headers = { ...authHeaders(), Accept: 'text/event-stream' };
        if (lastSeq > 0) headers['Last-Event-ID'] = String(lastSeq);
        const response = await fetch('/v1/packets/' + packetId + '/events', { headers, signal: controller.signal });
        if (!response.ok) throw new Error('status ' + response.status);
        onState && onState('live');
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = { type: 'message', data: '', id: null };
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) continue;
              const colon = line.indexOf(':');
              const field = colon < 0 ? line : line.slice(0, colon);
              const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
              if (field === 'event') event.type = value;
              else if (field === 'data') event.data += value;
              else if (field === 'id') event.id = value;
            }
            if (event.type === 'grab') {
              const grab = JSON.parse(event.data);
              if (grab.seq > lastSeq) { lastSeq = grab.seq; onGrab(grab); }
            } else if (event.type === 'finished') {
              stopped = true;
              onState && onState('finished');
              onFinished(JSON.parse(event.data));
            }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      if (stopped) return;
      onState && onState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  run();
  return () => { stopped = true; if (controller) controller.abort(); };
}
