// The inspector page: the sessions list above, the open session below, kept live by the
// feed, and the interception panel over them. Keyboard: `/` focuses the filter, `j`/`k`
// move, `Enter` opens, `Esc` goes back, `b` opens the breakpoints and held messages
// (whose own keys are in intercept.js).

import { apiUrl, follow, get, send } from './api.js';
import { $, el, replace } from './dom.js';
import { count, size } from './format.js';
import { droppedText, knowCaptureBound } from './detail.js';
import { SessionsList } from './sessions.js';
import { SessionView } from './session.js';
import { Composer, InterceptPanel } from './intercept.js';
import { ConditionsForm } from './conditions.js';
import { ReplayView } from './replay.js';

const state = { active: 'sessions', openId: null, reloadTimer: null };

/** Shows a filter error under its box, the caret under the offending part. */
function showFilterError(box, error) {
  const target = $(box);
  const info = error?.body?.filter_error;
  if (!error) {
    target.hidden = true;
    return;
  }
  target.hidden = false;
  if (info) {
    const input = box === '#session-filter-error' ? $('#session-filter') : $('#record-filter');
    replace(target, `${input.value}\n${' '.repeat(info.column)}${'^'.repeat(info.width)} ${info.message}`);
  } else {
    replace(target, error.message || String(error));
  }
}

const sessions = new SessionsList($('#sessions'), {
  onOpen: (s) => openSession(s.id),
  onError: (e) => showFilterError('#session-filter-error', e),
  onCount: (total) => { $('#session-count').textContent = `${count(total)} sessions`; },
});

const view = new SessionView({
  onError: (which, e) => showFilterError(which === 'records' ? '#record-filter-error' : '#session-filter-error', e),
  onResend: (r) => composer.show(state.openId, resendPreset(r)),
});

const composer = new Composer();

/** The composer filled with a recorded message, to send again to whoever received it. */
function resendPreset(r) {
  const type = { 1: 'text', 2: 'binary', 9: 'ping', 10: 'pong' }[r.opcode] || 'binary';
  const to = r.dir === 'c2s' ? 'server' : 'client';
  const text = type === 'text' ? new TextDecoder().decode(Uint8Array.from(atob(r.data?.base64 || ''), (c) => c.charCodeAt(0))) : undefined;
  const payload = text !== undefined ? { text } : { base64: r.data?.base64 || '' };
  return { to, type, resend: r.id, ...payload };
}

/** The held count, on every view: the header's badge and the page's title. */
const intercept = new InterceptPanel({
  onCount: (held, available) => {
    const badge = $('#held-badge');
    badge.hidden = held === 0;
    badge.textContent = `${count(held)} held`;
    $('#intercept-toggle').hidden = !available;
    $('#session-actions').hidden = !available;
    document.title = held ? `(${count(held)} held) wstap inspector` : 'wstap inspector';
  },
});
$('#intercept-toggle').addEventListener('click', () => intercept.toggle());
$('#held-badge').addEventListener('click', () => intercept.toggle(true));
$('#intercept-close').addEventListener('click', () => intercept.toggle(false));
$('#compose').addEventListener('click', () => composer.show(state.openId));
const conditions = new ConditionsForm();
$('#network').addEventListener('click', () => conditions.show(state.openId));
// Aborting drops both connections: the button asks once more first.
$('#abort').addEventListener('click', async (e) => {
  const button = e.currentTarget;
  if (!button.classList.contains('armed')) {
    button.classList.add('armed');
    button.textContent = 'Abort: sure?';
    setTimeout(() => {
      button.classList.remove('armed');
      button.textContent = 'Abort';
    }, 4000);
    return;
  }
  button.classList.remove('armed');
  button.textContent = 'Abort';
  try {
    await send('POST', `sessions/${state.openId}/abort`);
  } catch (error) {
    showFilterError('#record-filter-error', error);
  }
});

async function openSession(id) {
  state.openId = id;
  state.active = 'records';
  sessions.markOpen(id);
  $('#session-pane').hidden = false;
  $('#empty-pane').hidden = true;
  conditions.hide();
  conditions.refresh(id);
  if (replayView.session !== id) {
    replayView.reset();
    if (!$('#tab-replay').hidden) showTab('records');
  }
  if (location.hash !== `#session=${id}`) history.replaceState(null, '', `#session=${id}`);
  try {
    await view.open(id);
  } catch (e) {
    showFilterError('#record-filter-error', e);
  }
}

function showSessionExports() {
  const filter = $('#session-filter').value.trim();
  const links = ['ndjson', 'json', 'har'].map((format) => el('a', {
    class: 'button',
    href: apiUrl('export', { format, filter }),
    download: `wstap-capture.${format}`,
    title: filter ? 'the sessions and records the filter selects' : 'the whole capture',
    text: format.toUpperCase(),
  }));
  replace($('#session-exports'), el('span', { class: 'muted', text: 'Export ' }), links);
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

$('#session-filter').addEventListener('input', debounce(() => {
  showFilterError('#session-filter-error', null);
  sessions.show($('#session-filter').value.trim());
  showSessionExports();
}, 250));
$('#record-filter').addEventListener('input', debounce(() => view.setFilter($('#record-filter').value), 250));
$('#hide-control').addEventListener('change', (e) => view.setHideControl(e.target.checked));
$('#follow').addEventListener('change', (e) => view.list.setFollow(e.target.checked));
for (const button of document.querySelectorAll('#kind-toggle button')) {
  button.addEventListener('click', () => {
    for (const b of document.querySelectorAll('#kind-toggle button')) b.classList.toggle('on', b === button);
    view.setKind(button.dataset.kind);
  });
}
/** Brings the session's tab `name` forward. */
function showTab(name) {
  for (const b of document.querySelectorAll('#session-tabs button')) b.classList.toggle('on', b.dataset.tab === name);
  for (const tab of ['records', 'handshake', 'interventions', 'replay']) {
    $(`#tab-${tab}`).hidden = name !== tab;
  }
}
for (const button of document.querySelectorAll('#session-tabs button')) {
  button.addEventListener('click', () => showTab(button.dataset.tab));
}
const replayView = new ReplayView({ showTab });
$('#replay').addEventListener('click', () => replayView.run(state.openId));
$('#sessions').addEventListener('focusin', () => { state.active = 'sessions'; });
$('#records').addEventListener('focusin', () => { state.active = 'records'; });
// Capture phase: before the list's own handler, which may open a session (and so make
// the records the active list).
$('#sessions').addEventListener('pointerdown', () => { state.active = 'sessions'; }, true);
$('#records').addEventListener('pointerdown', () => { state.active = 'records'; }, true);

document.addEventListener('keydown', (e) => {
  const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement;
  if (e.key === 'Escape') {
    if (typing) e.target.blur();
    else if (intercept.open) intercept.toggle(false);
    else state.active = 'sessions';
    return;
  }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (intercept.key(e)) return;
  if (e.key === 'b') {
    e.preventDefault();
    intercept.toggle();
    return;
  }
  const list = state.active === 'records' && state.openId !== null ? view.list : sessions.list;
  if (e.key === '/') {
    e.preventDefault();
    (state.active === 'records' && state.openId !== null ? $('#record-filter') : $('#session-filter')).focus();
  } else if (e.key === 'j' || e.key === 'ArrowDown') {
    e.preventDefault();
    list.move(1);
  } else if (e.key === 'k' || e.key === 'ArrowUp') {
    e.preventDefault();
    list.move(-1);
  } else if (e.key === 'Enter') {
    e.preventDefault();
    list.openSelected();
  }
});

// The divider between the two panes drags.
$('#divider').addEventListener('pointerdown', (e) => {
  const main = $('#main');
  const move = (m) => {
    const top = main.getBoundingClientRect().top;
    const share = Math.min(80, Math.max(12, ((m.clientY - top) / main.clientHeight) * 100));
    main.style.setProperty('--sessions-share', `${share}%`);
  };
  const up = () => {
    window.removeEventListener('pointermove', move);
    window.removeEventListener('pointerup', up);
  };
  window.addEventListener('pointermove', move);
  window.addEventListener('pointerup', up);
  e.preventDefault();
});

function setLive(text) {
  const live = $('#live');
  live.textContent = { live: '● live', saved: 'saved capture', reconnecting: 'reconnecting…', ended: 'capture ended' }[text] || text;
  live.className = `live ${text}`;
}

/** A notice under the header, until dismissed. */
function notify(text) {
  $('#notice-text').textContent = text;
  $('#notice').hidden = false;
}

/** The capture's size against its bound, in the header; the first time payloads are
 * dropped to stay within it, a notice that says so and how to raise it. */
function showSize(capture) {
  if (!capture) return;
  knowCaptureBound(capture.bound);
  const shown = $('#capture-size');
  shown.hidden = false;
  shown.textContent = capture.bound ? `${size(capture.bytes)} of ${size(capture.bound)}` : size(capture.bytes);
  shown.title = capture.bound ? 'the capture on disk, and its bound (--capture-max)' : 'the capture on disk (no bound)';
  shown.classList.toggle('full', capture.dropped > 0);
  if (capture.dropped > 0) {
    shown.textContent += ` · ${size(capture.dropped)} of payloads dropped`;
    shown.title = `${droppedText()}: every record is kept; start wstap with a larger --capture-max (0: no bound) to keep more`;
    if (!state.warnedDropped) {
      state.warnedDropped = true;
      notify(`The capture reached its bound of ${size(capture.bound)}: its oldest payloads are being dropped (every record is kept). Start wstap with a larger --capture-max, or 0 for none, to keep more.`);
    }
  }
}

async function start() {
  $('#notice-dismiss').addEventListener('click', () => { $('#notice').hidden = true; });
  try {
    const capture = await get('capture');
    $('#capture').textContent = capture.dir;
    $('#capture').title = `written by ${capture.info.writer}`;
    showSize(capture.size);
  } catch (e) {
    $('#capture').textContent = e.message;
  }
  sessions.show('');
  showSessionExports();
  follow({
    onCommit: (commit) => {
      showSize(commit.size);
      if (commit.many) {
        // Too many sessions changed to list: fetch what is on screen, four times a second.
        if (!state.reloadTimer) {
          state.reloadTimer = setTimeout(() => {
            state.reloadTimer = null;
            sessions.list.reload();
          }, 250);
        }
        if (state.openId !== null) view.list.refresh();
        return;
      }
      sessions.committed(commit.sessions);
      for (const row of commit.sessions) view.committed(row);
    },
    onResync: () => {
      sessions.list.reload();
      if (state.openId !== null) view.list.refresh();
    },
    onState: setLive,
    onIntercept: () => {
      intercept.refresh();
      if (state.openId !== null) conditions.refresh(state.openId);
      // An intercept event comes before the capture commits what was done: ask a little later.
      if (state.openId !== null) setTimeout(() => view.loadInterventions(), 200);
    },
  });
  intercept.refresh();
  const wanted = /^#session=(\d+)$/.exec(location.hash);
  if (wanted) openSession(Number(wanted[1]));
}

start();
