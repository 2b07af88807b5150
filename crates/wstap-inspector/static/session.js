// One session: its summary, its handshake, its timeline, and its frames or messages
// (one toggle), each with its bytes in the detail pane.

import { apiUrl, get, send } from './api.js';
import { $, el, replace } from './dom.js';
import { ARROW, DIR_TITLE, clock, closeMeaning, count, delta, duration, flags, size } from './format.js';
import { VirtualList } from './list.js';
import { droppedText, showDetail } from './detail.js';
import { drawTimeline } from './timeline.js';
import { sessionUrl } from './sessions.js';

/** The records table's columns: the same for both, but the frames' masking key where
 * messages show their frame count. */
function columns(kind) {
  const middle = kind === 'frames'
    ? { title: 'Mask', width: '7.5em' }
    : { title: 'Frames', width: '4.5em', cls: 'num' };
  return [
    { title: '#', width: '5.5em', cls: 'num' },
    { title: 'Time', width: '7.5em' },
    { title: 'Δ', width: '5.5em', cls: 'num' },
    { title: '', width: '1.5em', cls: 'dir' },
    { title: 'Opcode', width: '4.5em' },
    { title: 'Flags', width: '6em' },
    middle,
    { title: 'Length', width: '5.5em', cls: 'num' },
    { title: 'Payload', width: 'minmax(8em, 1fr)', cls: 'preview' },
  ];
}

/** Why a message wstap wrote is in the list. */
const ORIGIN_TITLE = {
  edited: 'wstap sent this edit in place of a held message',
  injected: 'wstap sent this message of its own',
  resent: 'wstap sent a recorded message again',
};

function preview(r) {
  if (r.preview?.dropped) return el('span', { class: 'dropped', title: droppedText(), text: 'payload dropped' });
  if (r.close) return `close ${r.close.code ?? ''} ${closeMeaning(r.close.code)}${r.close.reason ? `: ${r.close.reason}` : ''}`;
  if (r.decoded?.summary) {
    return el('span', { class: r.decoded.problem ? 'decoded bad' : 'decoded', title: `decoded as ${r.decoded.view}`, text: r.decoded.summary });
  }
  const p = r.preview || {};
  const shown = p.text !== undefined ? p.text : p.hex;
  return `${shown}${p.more ? ' …' : ''}`;
}

/** A call's latency on its row (a link to its answer), or an answer's link to its call. */
function callMark(r, calls, onJump) {
  if (!calls) return null;
  const call = calls.byCall.get(r.seq);
  if (call) {
    return el('a', {
      class: 'latency', href: '#', title: `${call.name}: answered by message ${count(call.answer)}; click to go there`,
      text: `↪ ${duration(call.latency_us)}`,
      // A press on the link is not a press on its row (which would open the call).
      onpointerdown: (e) => e.stopPropagation(),
      onclick: (e) => { e.preventDefault(); e.stopPropagation(); onJump(call.answer); },
    });
  }
  const answer = calls.byAnswer.get(r.seq);
  if (answer) {
    return el('a', {
      class: 'latency answer', href: '#', title: `answers message ${count(answer.call)} (${answer.name}); click to go there`,
      text: `↩ ${count(answer.call)}`,
      onpointerdown: (e) => e.stopPropagation(),
      onclick: (e) => { e.preventDefault(); e.stopPropagation(); onJump(answer.call); },
    });
  }
  if (calls.unanswered.has(r.seq)) return el('span', { class: 'latency bad', title: 'never answered', text: 'no answer' });
  return null;
}

function cells(kind, r, prev, calls, onJump) {
  const gap = prev ? r.time_us - prev.time_us : null;
  const dir = el('span', { class: r.dir, title: DIR_TITLE[r.dir], text: ARROW[r.dir] });
  const middle = kind === 'frames' ? (r.mask_key || '') : count(r.frames);
  const length = r.inflated_len !== null && r.inflated_len !== undefined
    ? `${size(r.len)} → ${size(r.inflated_len)}`
    : size(r.len);
  // What a breakpoint did to it, or that wstap wrote it, before what it said.
  const mark = r.fate
    ? el('span', { class: `fate ${r.fate}`, title: 'a breakpoint held it: see Interventions', text: r.fate.replace('_', ' ') })
    : r.origin
      ? el('span', { class: `origin ${r.origin}`, title: ORIGIN_TITLE[r.origin], text: r.origin })
      : null;
  const latency = kind === 'messages' ? callMark(r, calls, onJump) : null;
  const shown = mark || latency ? el('span', {}, mark, latency, preview(r)) : preview(r);
  return [
    count(r.seq), clock(r.time_us), delta(gap), dir, r.opcode_name,
    flags(r.flags_byte, r.flags), middle, length, shown,
  ];
}

export class SessionView {
  constructor({ onError, onResend }) {
    this.onResend = onResend;
    this.id = null;
    this.kind = 'messages';
    this.filterText = '';
    this.hideControl = false;
    this.selected = null;
    this.onError = onError;
    this.recordsRoot = $('#records');
    this.list = null;
    this.makeList();
    this.timeline = null;
    this.calls = null;
    this.timelineEvery = 1000;
    $('#view-pick').addEventListener('change', (e) => this.chooseView(e.target.value));
    this.metric = 'messages';
    $('#timeline').addEventListener('click', () => {
      this.metric = this.metric === 'messages' ? 'bytes' : 'messages';
      drawTimeline($('#timeline'), this.timeline, this.metric);
    });
    new ResizeObserver(() => drawTimeline($('#timeline'), this.timeline, this.metric)).observe($('#timeline'));
  }

  makeList() {
    const kind = this.kind;
    this.list = new VirtualList(this.recordsRoot, {
      columns: columns(kind),
      render: (r, prev) => ({
        cells: cells(kind, r, prev, this.calls, (seq) => this.jumpTo(seq)),
        cls: [r.dir, r.violations?.length ? 'violation' : '', r.opcode >= 8 ? 'control' : '',
          this.selected === r.seq ? 'opened' : ''].filter(Boolean).join(' '),
      }),
      onOpen: (r) => this.openRecord(r),
      onFollow: (on) => { $('#follow').checked = on; },
      // A count from the last filter that worked would mislead under a bad one.
      onError: (e) => {
        $('#record-count').textContent = '';
        this.onError('records', e);
      },
      empty: 'No frames or messages (yet) in this session, or none match.',
    });
  }

  /** The filter the records list uses: the user's, and the control toggle. */
  effectiveFilter() {
    const parts = [];
    if (this.filterText.trim()) parts.push(`(${this.filterText})`);
    if (this.hideControl) parts.push('not op:control');
    return parts.join(' and ');
  }

  async open(id) {
    this.id = id;
    this.selected = null;
    replace($('#detail'), el('p', { class: 'muted hint', text: 'Select a row to see its bytes.' }));
    const answer = await get(`sessions/${id}`);
    if (this.id !== id) return;
    this.showSummary(answer.session);
    this.showHandshake(answer);
    this.showInterventions(answer.interventions || []);
    this.calls = null;
    this.showRecords();
    this.loadTimeline();
    this.loadCalls(answer.session);
  }

  /** Pairs the session's calls with their answers (for protocols that number calls), so
   * each call's row shows its latency. */
  async loadCalls(session) {
    const id = session.id;
    if (!session.view) return;
    try {
      const answer = await get(`sessions/${id}/calls`);
      if (id !== this.id) return;
      const byCall = new Map();
      const byAnswer = new Map();
      for (const a of answer.answered || []) {
        byCall.set(a.call, a);
        byAnswer.set(a.answer, a);
      }
      const unanswered = new Set((answer.unanswered || []).map((u) => u.call));
      this.calls = byCall.size || unanswered.size ? { byCall, byAnswer, unanswered } : null;
      this.showCallStats(answer);
      this.list.render();
    } catch (e) {
      this.onError('records', e);
    }
  }

  /** The calls' figures in the summary bar: answered, p50 and p99 per name, unanswered. */
  showCallStats(answer) {
    const chip = $('#calls-chip');
    const names = answer.by_name || [];
    if (!names.length && !(answer.unanswered || []).length) {
      chip.hidden = true;
      return;
    }
    const total = names.reduce((n, s) => n + s.count, 0);
    const lines = names.map((s) => `${s.name}: ${count(s.count)} calls, p50 ${duration(s.p50_us)}, p99 ${duration(s.p99_us)}, max ${duration(s.max_us)}`);
    if ((answer.unanswered || []).length) lines.push(`never answered: ${answer.unanswered.map((u) => `${u.name} (message ${count(u.call)})`).join(', ')}`);
    chip.textContent = `${count(total)} calls answered${answer.unanswered?.length ? `, ${count(answer.unanswered.length)} not` : ''}`;
    chip.title = lines.join('\n');
    chip.hidden = false;
  }

  /** Shows message `seq` (the list unfiltered, where a message's index is its number). */
  jumpTo(seq) {
    if (this.kind !== 'messages') return;
    if (this.effectiveFilter()) {
      // A filtered list numbers its rows otherwise: show the message in the detail pane.
      this.openRecord({ seq });
      return;
    }
    this.list.select(seq, true);
    this.openRecord({ seq });
  }

  /** Reads the session's messages with `view` from now on ('' for wstap's choice). */
  async chooseView(view) {
    if (this.id === null) return;
    try {
      await send('POST', `sessions/${this.id}/view`, { view: view || null });
      const answer = await get(`sessions/${this.id}`);
      this.showSummary(answer.session);
      this.calls = null;
      this.showRecords();
      this.loadCalls(answer.session);
      if (this.selected !== null) this.openRecord({ seq: this.selected });
    } catch (e) {
      this.onError('records', e);
    }
  }

  showRecords() {
    const id = this.id;
    const filter = this.effectiveFilter();
    this.onError('records', null);
    this.list.setSource(async (index, limit) => {
      const answer = await get(`sessions/${id}/rows`, { kind: this.kind, filter, index, limit });
      $('#record-count').textContent = `${count(answer.total)} ${this.kind}${filter ? ` of ${count(answer.extent)}` : ''}`;
      return answer;
    }, { follow: $('#follow').checked });
    this.showExports();
  }

  setKind(kind) {
    if (kind === this.kind) return;
    this.kind = kind;
    this.selected = null;
    this.makeList();
    if (this.id !== null) this.showRecords();
  }

  setFilter(text) {
    this.filterText = text;
    if (this.id !== null) this.showRecords();
  }

  setHideControl(on) {
    this.hideControl = on;
    if (this.id !== null) this.showRecords();
  }

  /** A commit changed this session: new counts, maybe new rows, maybe interventions. */
  committed(row) {
    if (row.id !== this.id) return;
    this.showSummary(row);
    if (!$('#tab-interventions').hidden) this.loadInterventions();
    this.list.refresh();
    // The timeline redraws at most once a second (less often when it is slow to compute:
    // at most a tenth of the time goes to it), and once more after the last commit.
    if (!this.timelineTimer) {
      const wait = Math.max(0, this.timelineEvery - (Date.now() - (this.timelineAt || 0)));
      this.timelineTimer = setTimeout(() => {
        this.timelineTimer = null;
        this.loadTimeline();
      }, wait);
    }
  }

  async loadTimeline() {
    const id = this.id;
    const started = Date.now();
    this.timelineAt = started;
    try {
      const data = await get(`sessions/${id}/timeline`);
      this.timelineEvery = Math.max(1000, 10 * (Date.now() - started));
      if (id !== this.id) return;
      this.timeline = data;
      drawTimeline($('#timeline'), data, this.metric);
    } catch (e) {
      this.onError('records', e);
    }
  }

  async openRecord(r) {
    this.selected = r.seq;
    this.list.render();
    const path = `sessions/${this.id}/${this.kind}/${r.seq}`;
    try {
      const detail = await get(path);
      if (this.selected !== r.seq) return;
      showDetail($('#detail'), this.kind, detail, { onResend: this.onResend });
    } catch (e) {
      replace($('#detail'), el('p', { class: 'bad', text: e.message }));
    }
  }

  showSummary(s) {
    replace($('#session-title'), `#${s.id} `, el('span', { class: 'url', text: sessionUrl(s) }));
    const chips = [
      el('span', { class: `chip state ${s.state}`, text: s.state }),
      s.status ? el('span', { class: 'chip', text: `HTTP ${s.status}` }) : null,
      s.tls ? el('span', { class: 'chip', text: 'TLS' }) : null,
      s.subprotocol ? el('span', { class: 'chip', text: s.subprotocol }) : null,
      ...(s.extensions || []).map((x) => el('span', { class: 'chip', text: x })),
      el('span', { class: 'chip', text: `↑ ${count(s.messages_c2s)} msgs ${size(s.bytes_c2s)}` }),
      el('span', { class: 'chip', text: `↓ ${count(s.messages_s2c)} msgs ${size(s.bytes_s2c)}` }),
      s.duration_us !== null && s.duration_us !== undefined ? el('span', { class: 'chip', text: duration(s.duration_us) }) : null,
      s.close_code ? el('span', { class: 'chip', title: closeMeaning(s.close_code), text: `close ${s.close_code}${s.close_reason ? ` “${s.close_reason}”` : ''}` }) : null,
      s.violations ? el('span', { class: 'chip bad', text: `${count(s.violations)} violations` }) : null,
      s.error ? el('span', { class: 'chip bad', title: s.error, text: s.error }) : null,
    ];
    replace($('#session-chips'), chips);
    $('#view-pick').value = s.view || '';
    // Only a live session takes messages, closes and aborts.
    const live = s.state === 'open';
    $('#compose').disabled = !live;
    $('#network').disabled = !live;
    // A WebSocket session replays, live or not: its handshake was recorded.
    $('#replay').disabled = s.status !== 101;
    $('#abort').disabled = !live;
    if (!live) {
      $('#composer').hidden = true;
      $('#conditions-form').hidden = true;
      $('#conditions-chip').hidden = true;
    }
  }

  showExports() {
    const filter = this.effectiveFilter();
    const links = ['ndjson', 'json', 'har'].map((format) => el('a', {
      class: 'button',
      href: apiUrl('export', { format, session: this.id, filter }),
      download: `wstap-session-${this.id}.${format}`,
      title: filter ? `session ${this.id}, what the filter selects` : `all of session ${this.id}`,
      text: format.toUpperCase(),
    }));
    replace($('#record-exports'), el('span', { class: 'muted', text: 'Export ' }), links);
  }

  /** Asks for the session's interventions again (they are few: the whole list). */
  async loadInterventions() {
    if (this.id === null) return;
    const id = this.id;
    try {
      const answer = await get(`sessions/${id}`);
      if (id === this.id) this.showInterventions(answer.interventions || []);
    } catch { /* the next commit or intercept event asks again */ }
  }

  /** What wstap did to the session, in order: each held message, who decided what, and
   * what was sent instead; the message it was is the one ending with the frame named. */
  showInterventions(list) {
    $('#interventions-tab').textContent = list.length ? `Interventions (${count(list.length)})` : 'Interventions';
    const root = $('#tab-interventions');
    if (!list.length) {
      replace(root, el('p', { class: 'muted', text: 'wstap did nothing to this session: every byte went as it was read.' }));
      return;
    }
    const rows = list.map((i) => {
      // Network conditions: their number names them, and their reason is what they set.
      const shaping = i.action === 'conditioned' || i.by === 'conditions';
      const which = shaping ? 'conditions' : i.by === 'rule' ? 'rule' : 'breakpoint';
      const what = [
        i.held !== undefined ? `held message ${i.held}` : null,
        i.frame !== undefined ? `ending with frame ${i.frame}` : null,
        i.breakpoint !== undefined ? `${which} ${i.breakpoint}` : null,
        i.action === 'conditioned' ? i.reason : null,
        i.action === 'tagged' ? `tag ${i.reason}` : null,
        i.code !== undefined ? `code ${i.code}${i.reason ? ` “${i.reason}”` : ''}` : null,
        i.bytes !== undefined ? `${size(i.bytes)} kept when it was let go` : null,
      ].filter(Boolean).join(', ');
      const sent = i.payload ? (i.payload.encoding === 'utf8' ? i.payload.data : `base64 ${i.payload.data}`) : '';
      return el('tr', { class: `act-${i.action}` },
        el('td', { class: 'num', text: clock(Date.parse(i.time) * 1000) }),
        el('td', { class: 'action', text: i.action.replace('_', ' ') }),
        el('td', { class: i.dir || '', text: i.dir ? `${ARROW[i.dir]} ${DIR_TITLE[i.dir]}` : 'both sides' }),
        el('td', { text: i.by }),
        el('td', { text: what }),
        el('td', { class: 'preview', text: sent }));
    });
    replace(root, el('table', { class: 'interventions' },
      el('thead', {}, el('tr', {}, ['Time', 'What', 'Direction', 'By', 'Which', 'Sent'].map((h) => el('th', { text: h })))),
      el('tbody', {}, rows)));
  }

  showHandshake({ session, handshake, http }) {
    const root = $('#tab-handshake');
    const parts = [];
    if (handshake) {
      const verdicts = [
        ['Sec-WebSocket-Accept', handshake.accept_valid ? '✓ valid' : '✗ not what the key requires', !handshake.accept_valid],
        ['Subprotocol', handshake.subprotocol || 'none'],
        ['Extensions', (handshake.extensions || []).join(', ') || 'none'],
      ];
      if (handshake.deflate) {
        const d = handshake.deflate;
        verdicts.push(['permessage-deflate', [
          d.server_no_context_takeover ? 'server_no_context_takeover' : 'server keeps context',
          d.client_no_context_takeover ? 'client_no_context_takeover' : 'client keeps context',
          `server window ${d.server_max_window_bits ?? 15} bits`,
          `client window ${d.client_max_window_bits ?? 15} bits`,
        ].join(', ')]);
      }
      if ((handshake.undecoded_extensions || []).length) verdicts.push(['Not decoded', handshake.undecoded_extensions.join(', '), true]);
      for (const issue of handshake.issues || []) verdicts.push(['Issue', issue, true]);
      if (handshake.duration_us) verdicts.push(['Took', duration(handshake.duration_us)]);
      const fwd = handshake.forwarded || {};
      if (fwd.target) verdicts.push(['Sent upstream as', fwd.target]);
      for (const h of fwd.rewritten_headers || []) verdicts.push([`${h.name} rewritten`, `${h.from} → ${h.to}`]);
      if ((fwd.removed_headers || []).length) verdicts.push(['Not forwarded', fwd.removed_headers.join(', ')]);
      parts.push(el('h3', { text: 'Verdicts' }), facts(verdicts));
      parts.push(el('div', { class: 'heads' },
        el('div', {}, el('h3', { text: 'Request, as the client sent it' }), el('pre', { class: 'head', text: handshake.request_raw ?? rebuild(handshake.request, true) })),
        el('div', {}, el('h3', { text: 'Response, as the server sent it' }), el('pre', { class: 'head', text: handshake.response_raw ?? (handshake.response ? rebuild(handshake.response, false) : '(no response)') }))));
    } else {
      parts.push(el('p', { class: 'muted', text: 'No WebSocket handshake in this session.' }));
    }
    parts.push(el('h3', { text: 'TLS' }), el('div', { class: 'heads' },
      tlsLeg('Client ↔ wstap', session.client_tls),
      tlsLeg('wstap ↔ server', session.upstream_tls)));
    if ((http || []).length) {
      parts.push(el('h3', { text: 'HTTP exchanges' }));
      parts.push(el('ul', { class: 'plain' }, http.map((x) => el('li', {
        text: `${clock(Date.parse(x.time) * 1000)}  ${x.request.method} ${x.url}  → ${x.response ? x.response.status : (x.error || 'no response')}`,
      }))));
    }
    parts.push(el('h3', { text: 'Session' }), facts([
      ['Client', session.client], ['Target', session.target],
      ['Via', session.listener ? `${session.via} on ${session.listener}` : session.via],
      ['Upstream proxy', session.upstream_proxy
        ? `${session.upstream_proxy.proxy}: ${session.upstream_proxy.status_line} in ${duration(session.upstream_proxy.connect_us)}`
        : 'none (direct)'],
      ['Started', clock(session.started_us)], ['State', session.state],
      ['Closed by', session.close_initiator || '—'],
      ['Close', session.close_code ? `${session.close_code} ${closeMeaning(session.close_code)} ${session.close_reason || ''}` : '—'],
    ]));
    replace(root, parts);
  }
}

function facts(rows) {
  return el('dl', { class: 'facts' }, rows.map(([k, v, bad]) => [el('dt', { text: k }), el('dd', { class: bad ? 'bad' : '', text: v })]));
}

function tlsLeg(title, leg) {
  if (!leg) return el('div', {}, el('h4', { text: title }), el('p', { class: 'muted', text: 'plain TCP' }));
  const rows = [
    ['Version', leg.version], ['Cipher', leg.cipher], ['SNI', leg.sni || '—'], ['ALPN', leg.alpn || '—'],
  ];
  const cert = leg.certificate;
  if (cert) {
    rows.push(['Certificate', cert.subject], ['Issuer', cert.issuer],
      ['Names', (cert.names || []).join(', ') || '—'],
      ['Valid', `${cert.not_before} to ${cert.not_after}`], ['SHA-256', cert.sha256]);
  }
  return el('div', {}, el('h4', { text: title }), facts(rows));
}

/** A head rebuilt from its parsed form, when the raw bytes were not kept. */
function rebuild(head, isRequest) {
  const first = isRequest ? `${head.method} ${head.target} ${head.version}` : `${head.version} ${head.status} ${head.reason}`;
  const headers = (head.headers || []).map((h) => Array.isArray(h) ? `${h[0]}: ${h[1]}` : `${h.name}: ${h.value}`);
  return [first, ...headers].join('\r\n');
}
