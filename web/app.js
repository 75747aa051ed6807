// The page: sign-in, balance and deposit, sending a packet, its share link, the packet page
// (open, live grab list, best luck), history with cursor paging; /app/ops loads ops.js.
import { ApiError, call, followPacket, isAdmin, parseToken, parseYuan, session, signIn, signOut, yuan } from './api.js';
import { clear, field, h } from './dom.js';

const dev = document.body.dataset.dev === '1';
const main = document.getElementById('main');

// ?as=N in any address signs in as N (--dev only): demos and tests open tabs as several users.
function signInFromAddress() {
  const params = new URLSearchParams(location.search);
  const as = params.get('as');
  if (as === null) return;
  if (dev && /^[1-9]\d{0,15}$/.test(as)) signIn({ kind: 'dev', userId: Number(as) });
  params.delete('as');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + (rest ? '?' + rest : ''));
}

function renderHeader() {
  const s = session();
  const who = document.getElementById('who');
  who.textContent = s ? 'user ' + s.userId + (isAdmin(s, dev) && !dev ? ' (admin)' : '') : '';
  document.getElementById('ops-link').hidden = !isAdmin(s, dev);
  const out = document.getElementById('sign-out');
  out.hidden = !s;
  out.onclick = null;
  out.addEventListener('click', () => { signOut(); location.reload(); }, { once: true });
}

function errorBox() {
  const box = h('p', { class: 'error', role: 'alert' });
  box.show = (message) => { box.textContent = message || ''; };
  return box;
}

// ---- sign in ------------------------------------------------------------------------------

function viewSignIn() {
  const box = errorBox();
  const forms = [];
  if (dev) {
    const id = h('input', { name: 'user_id', inputmode: 'numeric', autocomplete: 'off', placeholder: '1' });
    const idField = field('User id', id, 'Development mode (--dev): any positive number.');
    forms.push(h('form', { class: 'card', id: 'dev-sign-in', onsubmit: (e) => {
      e.preventDefault();
      if (!/^[1-9]\d{0,15}$/.test(id.value.trim())) return idField.showError('Enter a positive whole number.');
      signIn({ kind: 'dev', userId: Number(id.value.trim()) });
      start();
    } }, h('h2', {}, 'Sign in'), idField, h('button', { type: 'submit' }, 'Sign in')));
  }
  const token = h('textarea', { name: 'token', rows: 3, autocomplete: 'off', spellcheck: 'false' });
  const tokenField = field('Bearer token', token, 'From `redpacket token --user N`; kept in this tab only.');
  forms.push(h('form', { class: 'card', id: 'token-sign-in', onsubmit: (e) => {
    e.preventDefault();
    const parsed = parseToken(token.value);
    if (!parsed) return tokenField.showError('This is not a redpacket token (rp1.<user>.<expiry>.<admin>.<signature>).');
    signIn({ kind: 'token', ...parsed });
    start();
  } }, h('h2', {}, dev ? 'Or paste a token' : 'Sign in'), tokenField, h('button', { type: 'submit' }, 'Use token')));
  clear(main).append(...forms, box);
}

// ---- home: balance, deposit, send, history -------------------------------------------------------

function balanceCard() {
  const s = session();
  const amount = h('p', { class: 'balance', id: 'balance' }, '…');
  const pending = h('p', { class: 'muted', id: 'pending' });
  const box = errorBox();
  async function refresh() {
    try {
      const b = await call('GET', '/v1/users/' + s.userId + '/balance');
      amount.textContent = yuan(b.balance_cents);
      pending.textContent = b.pending_cents ? yuan(b.pending_cents) + ' on its way' : '';
      box.show('');
    } catch (e) { box.show(e.message); }
  }
  const card = h('section', { class: 'card' }, h('h2', {}, 'Balance'), amount, pending, box);
  if (isAdmin(s, dev)) {
    const input = h('input', { name: 'deposit', inputmode: 'decimal', placeholder: '100.00' });
    const depositField = field('Deposit (yuan)', input);
    card.append(h('form', { class: 'inline', id: 'deposit-form', onsubmit: async (e) => {
      e.preventDefault();
      const cents = parseYuan(input.value);
      if (cents === null || cents < 1) return depositField.showError('Enter an amount like 100 or 12.50.');
      depositField.showError('');
      try {
        await call('POST', '/v1/users/' + s.userId + '/deposit', { amount_cents: cents, request_id: 'web-' + crypto.randomUUID() });
        input.value = '';
        refresh();
      } catch (err) { depositField.showError(err.message); }
    } }, depositField, h('button', { type: 'submit' }, 'Deposit')));
  }
  card.refresh = refresh;
  refresh();
  return card;
}

// Which form field an API error is about (its message names the JSON field first).
function fieldOfError(error) {
  if (error.code === 'insufficient_funds') return 'total';
  const m = /^(total_cents|count|kind|greeting|receiver_id|expires_in_s)\b/.exec(error.raw || '');
  return m ? { total_cents: 'total', expires_in_s: 'total' }[m[1]] || m[1] : null;
}

function sendCard(onSent) {
  const inputs = {
    total: h('input', { name: 'total', inputmode: 'decimal', placeholder: '10.00', autocomplete: 'off' }),
    count: h('input', { name: 'count', inputmode: 'numeric', placeholder: '5', autocomplete: 'off' }),
    kind: h('select', { name: 'kind' }, h('option', { value: 'lucky' }, 'Lucky (random shares)'), h('option', { value: 'equal' }, 'Equal shares')),
    greeting: h('input', { name: 'greeting', maxlength: 200, placeholder: '恭喜发财' }),
    receiver_id: h('input', { name: 'receiver_id', inputmode: 'numeric', placeholder: 'anyone', autocomplete: 'off' }),
  };
  const fields = {
    total: field('Total (yuan)', inputs.total),
    count: field('Shares', inputs.count),
    kind: field('Kind', inputs.kind),
    greeting: field('Greeting', inputs.greeting),
    receiver_id: field('Only for user (optional)', inputs.receiver_id, 'An exclusive packet has one share.'),
  };
  const box = errorBox();
  const share = h('div', { id: 'share' });
  const button = h('button', { type: 'submit' }, 'Send');
  const form = h('form', { class: 'card', id: 'send-form', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    for (const f of Object.values(fields)) f.showError('');
    box.show('');
    const total = parseYuan(inputs.total.value);
    let ok = true;
    if (total === null || total < 1) { fields.total.showError('Enter an amount like 10 or 8.88 (at least 0.01).'); ok = false; }
    const count = inputs.count.value.trim();
    if (!/^\d{1,9}$/.test(count) || Number(count) < 1) { fields.count.showError('Enter a whole number of shares, at least 1.'); ok = false; }
    const receiver = inputs.receiver_id.value.trim();
    if (receiver && !/^[1-9]\d{0,15}$/.test(receiver)) { fields.receiver_id.showError('A user id is a positive whole number.'); ok = false; }
    if (!ok) return;
    const body = { total_cents: total, count: Number(count), kind: inputs.kind.value, greeting: inputs.greeting.value,
      request_id: 'web-' + crypto.randomUUID() };
    if (receiver) body.receiver_id = Number(receiver);
    button.disabled = true;
    try {
      const packet = await call('POST', '/v1/packets', body);
      const link = location.origin + '/app/p/' + packet.packet_id;
      clear(share).append(h('p', {}, 'Sent ' + yuan(packet.total_cents) + ' in ' + packet.count + ' shares. Share this link:'),
        h('p', {}, h('a', { href: '/app/p/' + packet.packet_id, id: 'share-link' }, link)),
        h('button', { type: 'button', class: 'secondary', onclick: () => navigator.clipboard && navigator.clipboard.writeText(link) }, 'Copy link'));
      onSent();
    } catch (err) {
      const which = fieldOfError(err);
      if (which && fields[which]) fields[which].showError(err.message);
      else box.show(err.message);
    } finally {
      button.disabled = false;
    }
  } }, h('h2', {}, 'Send a red packet'), ...Object.values(fields), button, box, share);
  return form;
}

function historyCard() {
  const s = session();
  const list = h('ul', { class: 'history', id: 'history' });
  const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'More');
  const box = errorBox();
  let kind = 'sent';
  let cursor = null;
  async function load(reset) {
    if (reset) { clear(list); cursor = null; }
    try {
      const page = await call('GET', '/v1/users/' + s.userId + '/history?kind=' + kind + '&limit=10' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
      for (const item of page.items) {
        const text = kind === 'sent'
          ? yuan(item.total_cents) + ' × ' + item.count + ' · ' + item.status + ' · '
          : yuan(item.amount_cents) + ' from user ' + item.sender_id + ' · ';
        list.append(h('li', {}, h('a', { href: '/app/p/' + item.packet_id }, text + (kind === 'sent' ? item.greeting || '(no greeting)' : '#' + item.packet_id))));
      }
      if (!list.firstChild) list.append(h('li', { class: 'muted' }, 'Nothing yet.'));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      box.show('');
    } catch (e) { box.show(e.message); }
  }
  more.addEventListener('click', () => load(false));
  const tabs = ['sent', 'received'].map((k) => h('button', { type: 'button', class: k === kind ? 'tab active' : 'tab', onclick: (e) => {
    kind = k;
    for (const t of tabs) t.classList.toggle('active', t === e.currentTarget);
    load(true);
  } }, k === 'sent' ? 'Sent' : 'Received'));
  const card = h('section', { class: 'card' }, h('h2', {}, 'History'), h('div', { class: 'tabs' }, tabs), list, more, box);
  card.refresh = () => load(true);
  load(true);
  return card;
}

function viewHome() {
  const balance = balanceCard();
  const historyView = historyCard();
  clear(main).append(balance, sendCard(() => { balance.refresh(); historyView.refresh(); }), historyView);
}

// ---- the packet page ------------------------------------------------------------------------

function viewPacket(packetId) {
  const s = session();
  const greeting = h('h2', { class: 'greeting', id: 'greeting' });
  const meta = h('p', { class: 'muted', id: 'meta' });
  const status = h('p', { id: 'status' });
  const result = h('div', { class: 'result', id: 'result' });
  const openButton = h('button', { type: 'button', class: 'open', id: 'open' }, '開 Open');
  const list = h('ol', { class: 'grabs', id: 'grabs' });
  const sum = h('p', { id: 'sum' });
  const live = h('span', { class: 'live', id: 'live' });
  const box = errorBox();
  const grabs = new Map();  // seq -> grab
  const shown = new Set();  // seqs already in the list
  let details = null;

  function renderGrabs() {
    clear(list);
    let total = 0;
    for (const grab of [...grabs.values()].sort((a, b) => a.seq - b.seq)) {
      total += grab.amount_cents;
      const best = details && details.best_luck_user_id === grab.user_id;
      const fresh = !shown.has(grab.seq);  // only a new grab pops in
      shown.add(grab.seq);
      list.append(h('li', { class: [best ? 'best' : '', fresh ? 'fresh' : ''].join(' ').trim() || null, 'data-user': grab.user_id },
        h('span', {}, 'user ' + grab.user_id + (s && grab.user_id === s.userId ? ' (you)' : '')),
        h('span', { class: 'amount' }, yuan(grab.amount_cents)),
        best ? h('span', { class: 'badge' }, '手气最佳 best luck') : null));
    }
    sum.textContent = grabs.size + ' grabbed, ' + yuan(total) + ' in all';
  }
  function renderDetails() {
    if (!details) return;
    greeting.textContent = details.greeting || '恭喜发财';
    meta.textContent = 'From user ' + details.sender_id + ' · ' + yuan(details.total_cents) + ' in ' + details.count + ' ' +
      details.kind + ' shares' + (details.receiver_id ? ' · only for user ' + details.receiver_id : '');
    // From the grabs seen so far (the details, the stream, our own): newer than the details.
    let grabbed = 0;
    for (const grab of grabs.values()) grabbed += grab.amount_cents;
    const remainingCount = Math.max(0, Math.min(details.remaining_count, details.count - grabs.size));
    const remainingCents = Math.max(0, Math.min(details.remaining_cents, details.total_cents - grabbed));
    const state = details.status === 'open' && remainingCount === 0 ? 'exhausted' : details.status;
    let text = 'Status: ' + state + ' · ' + remainingCount + ' left';
    if (state === 'open') text += ' (' + yuan(remainingCents) + ')';
    if (details.refund_cents !== null && details.refund_cents !== undefined) text += ' · refunded ' + yuan(details.refund_cents);
    status.textContent = text;
    openButton.disabled = details.status !== 'open' || (s && [...grabs.values()].some((g) => g.user_id === s.userId));
  }
  function showAmount(cents, note) {
    clear(result).append(h('p', { class: 'won pop', id: 'won' }, yuan(cents)), note ? h('p', { class: 'muted' }, note) : null);
  }
  openButton.addEventListener('click', async () => {
    openButton.disabled = true;
    box.show('');
    try {
      const grab = await call('POST', '/v1/packets/' + packetId + '/grab');
      showAmount(grab.amount_cents, 'Yours! Share ' + grab.seq + ' of ' + (details ? details.count : '?') + '.');
      if (!grabs.has(grab.seq)) grabs.set(grab.seq, { user_id: grab.user_id, amount_cents: grab.amount_cents, seq: grab.seq });
      renderGrabs();
      renderDetails();
    } catch (e) {
      if (e.code === 'conflict' && e.body) showAmount(e.body.amount_cents, 'You already opened this one.');
      else box.show(e.status === 410 ? 'Too late: ' + e.message + '.' : e.message);
      openButton.disabled = e.code === 'conflict' || e.status === 410;
    }
  });

  clear(main).append(h('section', { class: 'card packet' }, greeting, meta, status, openButton, result, box),
    h('section', { class: 'card' }, h('h2', {}, 'Who got what ', live), list, sum));

  call('GET', '/v1/packets/' + packetId).then((d) => {
    details = d;
    for (const grab of d.grabs) grabs.set(grab.seq, grab);
    renderDetails();
    renderGrabs();
    if (d.status !== 'open') { live.textContent = ''; return; }
    followPacket(packetId, {
      onGrab: (grab) => { grabs.set(grab.seq, grab); renderGrabs(); renderDetails(); },
      onFinished: (d2) => { details = d2; for (const g of d2.grabs) grabs.set(g.seq, g); renderDetails(); renderGrabs(); },
      onState: (state) => { live.textContent = state === 'live' ? '● live' : state === 'reconnecting' ? '○ reconnecting' : ''; live.dataset.state = state; },
    });
  }).catch((e) => {
    greeting.textContent = e.status === 404 ? 'No such packet' : 'Cannot load this packet';
    openButton.hidden = true;
    box.show(e.message);
  });
}

// ---- routing --------------------------------------------------------------------------------

async function start() {
  signInFromAddress();
  renderHeader();
  const path = location.pathname;
  if (!session()) return viewSignIn();
  if (path === '/app/ops' || path === '/app/ops/') {
    const ops = await import('./ops.js');
    return ops.viewOps(main);
  }
  const m = /^\/app\/p\/([1-9]\d{0,18})\/?$/.exec(path);
  if (m) return viewPacket(m[1]);
  if (path.startsWith('/app/p/')) {
    clear(main).append(h('section', { class: 'card' }, h('h2', {}, 'No such packet'), h('p', {}, 'This link is not a packet link.')));
    return;
  }
  viewHome();
}

window.addEventListener('unhandledrejection', (e) => {
  const message = e.reason instanceof ApiError ? e.reason.message : 'Something went wrong: ' + (e.reason && e.reason.message);
  main.prepend(h('p', { class: 'error', role: 'alert' }, message));
});

start();
