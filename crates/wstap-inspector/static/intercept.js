// Interception: the breakpoints and rules, the messages held now, and the editor of the
// one chosen.
// The live feed says when either changes; everything done here is a call of the API
// (docs/inspector.md), and the capture records it as the inspector's decision.
//
// Keys, while the panel is open and no box has the focus: f forward, d drop, e edit,
// c continue (forward all and stop breaking on that session), a forward all held in the
// session, j/k move between held messages. In the editor, Ctrl+Enter sends the edit.

import { get, send } from './api.js';
import { $, el, replace } from './dom.js';
import { ARROW, DIR_TITLE, ago, count, fromBase64, hexPairs, parseHex, size, toBase64, utf8 } from './format.js';
import { jsonTree } from './detail.js';

/** A held message's bytes, from the API's `text` or `base64`. */
function bytesOf(held) {
  return held.text !== undefined ? new TextEncoder().encode(held.text) : fromBase64(held.base64);
}

/** One line of a held message, for the queue. */
function previewOf(held) {
  const text = held.text !== undefined ? held.text : utf8(fromBase64(held.base64));
  if (text !== null && text !== undefined) return text.length > 120 ? `${text.slice(0, 120)}…` : text;
  return `${size(held.len)} binary`;
}

export class InterceptPanel {
  constructor({ onCount }) {
    this.root = $('#intercept-pane');
    this.onCount = onCount;
    this.held = [];
    this.breakpoints = [];
    this.rules = [];
    this.rulesFile = null;
    this.chosen = null;
    this.mode = 'Text';
    this.modeOf = null;
    this.available = true;
    this.timer = null;
    $('#rules-reload').addEventListener('click', () => this.reloadRules());
    $('#rules-add').addEventListener('click', () => {
      $('#rule-form').hidden = !$('#rule-form').hidden;
      if (!$('#rule-form').hidden) $('#rule-text').focus();
    });
    $('#rule-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.addRules();
    });
    $('#breakpoint-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.addBreakpoint();
    });
    // How long each message has waited, kept current.
    setInterval(() => this.renderQueue(), 1000);
  }

  get open() {
    return !this.root.hidden;
  }

  toggle(show = !this.open) {
    this.root.hidden = !show;
    $('#intercept-toggle').classList.toggle('on', show);
    if (show) this.refresh();
  }

  /** Asks for the breakpoints and the held messages again (the feed said they changed). */
  refresh() {
    // Changes come in bursts: one request for a burst.
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), 30);
  }

  async load() {
    try {
      const [held, breakpoints, rules] = await Promise.all([get('held'), get('breakpoints'), get('rules')]);
      this.held = held.held;
      this.breakpoints = breakpoints.breakpoints;
      this.rules = rules.rules;
      this.rulesFile = rules.file || null;
      // A saved capture has no live sessions: nothing to intercept.
      this.available = held.intercepting;
    } catch (e) {
      this.error(e.message);
    }
    if (this.chosen !== null && !this.held.some((h) => h.id === this.chosen)) this.chosen = null;
    if (this.chosen === null && this.held.length) this.chosen = this.held[0].id;
    this.onCount(this.held.length, this.available);
    this.render();
  }

  error(text) {
    const box = $('#intercept-error');
    box.hidden = !text;
    box.textContent = text || '';
  }

  render() {
    this.renderBreakpoints();
    this.renderRules();
    this.renderQueue();
    this.renderEditor();
  }

  renderBreakpoints() {
    const items = this.breakpoints.map((b) => el('li', { class: b.enabled ? 'on' : 'off', 'data-id': b.id },
      el('input', {
        type: 'checkbox', checked: b.enabled, title: b.enabled ? 'holding: click to disable' : 'disabled: click to enable',
        onchange: (e) => this.call('PATCH', `breakpoints/${b.id}`, { enabled: e.target.checked }),
      }),
      el('code', { class: 'grow', text: b.filter }),
      b.control ? el('span', { class: 'chip', text: 'control frames too' }) : null,
      el('span', { class: 'count', text: `${count(b.hits)} hit${b.hits === 1 ? '' : 's'}` }),
      el('button', { class: 'icon', title: 'remove', text: '✕', onclick: () => this.call('DELETE', `breakpoints/${b.id}`) })));
    replace($('#breakpoint-list'), items.length ? items
      : el('li', { class: 'muted', text: 'No breakpoints: messages flow. Add a filter above (e.g. dir:c2s and text~"login").' }));
  }

  /** The rules in force (hidden when there are none): each one's name, filter and hits. */
  renderRules() {
    const any = this.rules.length > 0;
    $('#rules-reload').hidden = this.rulesFile === null;
    if (this.rulesFile !== null) $('#rules-from').textContent = `from ${this.rulesFile}: they decide by themselves`;
    $('#rule-list').hidden = !any;
    $('#rules-count').textContent = `${count(this.rules.length)} rule${this.rules.length === 1 ? '' : 's'}`;
    replace($('#rule-list'), this.rules.map((r) => el('li', { class: 'on', 'data-id': r.id },
      el('span', { class: 'chip', title: `rule ${r.id}: what it holds is decided by the rule`, text: r.name }),
      el('code', { class: 'grow', text: r.filter }),
      r.every_ms !== undefined ? el('span', { class: 'chip', text: `every ${r.every_ms / 1000} s` }) : null,
      r.conditions !== undefined ? el('span', { class: 'chip net', title: 'network conditions', text: r.conditions }) : null,
      el('span', { class: 'count', text: ruleCount(r) }),
      el('button', { class: 'icon', title: 'remove', text: '✕', onclick: () => this.call('DELETE', `rules/${r.id}`) }))));
  }

  /** Adds the rules written in the form (the rules file's language), after those in
   * force; a mistake is shown with its line and column, and nothing is added. */
  async addRules() {
    const box = $('#rules-error');
    try {
      await send('POST', 'rules', { rules: $('#rule-text').value });
      box.hidden = true;
      $('#rule-text').value = '';
      $('#rule-form').hidden = true;
    } catch (e) {
      box.hidden = false;
      box.textContent = e.message;
    }
    this.refresh();
  }

  /** Reads the rules file again; a mistake in it is shown, and the rules in force stay. */
  async reloadRules() {
    const box = $('#rules-error');
    try {
      const answer = await send('POST', 'rules/reload', {});
      box.hidden = true;
      $('#rules-count').textContent = `${count(answer.in_force)} in force`;
    } catch (e) {
      box.hidden = false;
      box.textContent = e.message;
    }
    this.refresh();
  }

  renderQueue() {
    if (!this.open) return;
    $('#held-count').textContent = `${count(this.held.length)} held`;
    const rows = this.held.map((h) => el('li', {
      class: `held-row ${h.dir}${h.id === this.chosen ? ' chosen' : ''}`,
      'data-id': h.id,
      onclick: () => {
        this.chosen = h.id;
        this.render();
      },
    },
    el('span', { class: 'dir', title: DIR_TITLE[h.dir], text: ARROW[h.dir] }),
    el('span', { class: 'num', text: `#${h.session}` }),
    el('span', { text: h.type }),
    el('span', { class: 'num', text: size(h.len) }),
    el('span', { class: 'muted num', title: 'waiting for how long', text: ago(h.since_us) }),
    el('span', { class: 'preview', text: previewOf(h) })));
    replace($('#held-list'), rows.length ? rows
      : el('li', { class: 'muted', text: 'Nothing held. A message a breakpoint selects waits here for you.' }));
  }

  chosenMessage() {
    return this.held.find((h) => h.id === this.chosen) || null;
  }

  renderEditor() {
    const root = $('#held-editor');
    const held = this.chosenMessage();
    if (!held) {
      root.hidden = true;
      return;
    }
    root.hidden = false;
    const bytes = bytesOf(held);
    const text = utf8(bytes);
    let json = null;
    if (text !== null) {
      try {
        json = JSON.parse(text);
      } catch { /* not JSON */ }
    }
    const modes = [...(json !== null ? ['JSON'] : []), ...(text !== null ? ['Text'] : []), 'Hex'];
    // A message opens in its richest view; the view chosen stays while it is open.
    if (this.modeOf !== held.id || !modes.includes(this.mode)) {
      this.mode = modes[0];
      this.modeOf = held.id;
    }
    const tabs = el('nav', { class: 'tabs small' }, modes.map((m) => el('button', {
      class: m === this.mode ? 'on' : '', 'data-mode': m, text: m,
      onclick: () => {
        this.mode = m;
        this.renderEditor();
      },
    })));
    const initial = this.mode === 'Hex' ? hexPairs(bytes)
      : this.mode === 'JSON' ? JSON.stringify(json, null, 2) : text;
    const editor = el('textarea', {
      id: 'held-text', class: 'editor', spellcheck: 'false',
      'aria-label': `the held message as ${this.mode}`,
      onkeydown: (e) => {
        if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
          e.preventDefault();
          this.decide('edit');
        }
      },
      oninput: () => this.check(),
    });
    editor.value = initial;
    const tree = this.mode === 'JSON' ? el('div', { class: 'tree' }, jsonTree(json)) : null;
    const facts = `${DIR_TITLE[held.dir]} · session ${held.session} · ${held.type} · ${size(held.len)}`
      + `${held.compressed ? ' · compressed' : ''}${held.breakpoint ? ` · breakpoint ${held.breakpoint}` : ''}`;
    const buttons = el('div', { class: 'actions' },
      el('button', { class: 'primary', 'data-action': 'forward', title: 'send it on, byte for byte (f)', onclick: () => this.decide('forward') }, 'Forward ', el('kbd', { text: 'f' })),
      el('button', { 'data-action': 'edit', title: 'send the edit instead (e to edit, Ctrl+Enter to send)', onclick: () => this.decide('edit') }, 'Send edit ', el('kbd', { text: 'e' })),
      el('button', { class: 'danger', 'data-action': 'drop', title: 'never send it (d)', onclick: () => this.decide('drop') }, 'Drop ', el('kbd', { text: 'd' })),
      el('button', { 'data-action': 'all', title: 'forward everything held in this session (a)', onclick: () => this.forwardSession() }, 'Forward all ', el('kbd', { text: 'a' })),
      el('button', { 'data-action': 'continue', title: 'forward all and stop breaking on this session (c)', onclick: () => this.decide('continue') }, 'Continue ', el('kbd', { text: 'c' })),
      held.type === 'text' ? el('label', { class: 'check', title: 'send the edit even if it is not valid UTF-8' },
        el('input', { type: 'checkbox', id: 'as-bytes' }), ' send as bytes') : null);
    replace(root,
      el('div', { class: 'muted small', text: facts }),
      tabs, tree, editor,
      el('div', { id: 'edit-check', class: 'check-line muted' }),
      buttons);
    this.check();
  }

  /** What the editor holds, as the payload of an edit (throws when it cannot be one). */
  edited() {
    const value = $('#held-text').value;
    if (this.mode === 'Hex') return { base64: toBase64(parseHex(value)) };
    if (this.mode === 'JSON') JSON.parse(value);
    return { text: value };
  }

  check() {
    const line = $('#edit-check');
    if (!line) return;
    try {
      const payload = this.edited();
      const len = payload.text !== undefined ? new TextEncoder().encode(payload.text).length : fromBase64(payload.base64).length;
      line.className = 'check-line muted';
      line.textContent = `${this.mode === 'JSON' ? 'valid JSON, ' : ''}${count(len)} bytes`;
    } catch (e) {
      line.className = 'check-line bad';
      line.textContent = e.message;
    }
  }

  async decide(action) {
    const held = this.chosenMessage();
    if (!held) return;
    const body = { action };
    if (action === 'edit') {
      try {
        Object.assign(body, this.edited());
      } catch (e) {
        this.error(`not sent: ${e.message}`);
        return;
      }
      body.as_bytes = $('#as-bytes')?.checked || false;
    }
    await this.call('POST', `held/${held.id}`, body);
  }

  /** Forwards every message held in the chosen one's session, oldest first. */
  async forwardSession() {
    const held = this.chosenMessage();
    if (!held) return;
    for (const h of this.held.filter((x) => x.session === held.session)) {
      if (!(await this.call('POST', `held/${h.id}`, { action: 'forward' }))) break;
    }
  }

  async call(method, path, body) {
    try {
      await send(method, path, body);
      this.error(null);
      return true;
    } catch (e) {
      this.error(e.message);
      return false;
    } finally {
      this.refresh();
    }
  }

  async addBreakpoint() {
    const input = $('#breakpoint-filter');
    const box = $('#breakpoint-error');
    try {
      await send('POST', 'breakpoints', { filter: input.value, control: $('#breakpoint-control').checked });
      input.value = '';
      box.hidden = true;
    } catch (e) {
      const info = e.body?.filter_error;
      box.hidden = false;
      box.textContent = info
        ? `${input.value}\n${' '.repeat(info.column)}${'^'.repeat(info.width)} ${info.message}`
        : e.message;
    }
    this.refresh();
  }

  /** A key the panel answers; true when it did. */
  key(e) {
    if (!this.open) return false;
    const held = this.chosenMessage();
    const at = this.held.findIndex((h) => h.id === this.chosen);
    const actions = {
      f: () => this.decide('forward'),
      d: () => this.decide('drop'),
      c: () => this.decide('continue'),
      a: () => this.forwardSession(),
      e: () => $('#held-text')?.focus(),
      j: () => this.move(at + 1),
      k: () => this.move(at - 1),
    };
    const act = actions[e.key];
    if (!act || (!held && e.key !== 'j' && e.key !== 'k')) return false;
    e.preventDefault();
    act();
    return true;
  }

  move(to) {
    if (!this.held.length) return;
    this.chosen = this.held[Math.max(0, Math.min(this.held.length - 1, to))].id;
    this.render();
  }
}

/** The composer of a live session: send a message, a close, or abort it. */
export class Composer {
  constructor() {
    this.session = null;
    $('#composer-type').addEventListener('change', () => this.showFields());
    $('#composer').addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    $('#composer-cancel').addEventListener('click', () => this.hide());
    this.showFields();
  }

  /** Opens the composer on `session`, filled with `preset` ({to, type, text|base64,
   * resend}): `resend` is the id of the recorded message it sends again. */
  show(session, preset = {}) {
    this.session = session;
    this.resend = preset.resend;
    $('#composer').hidden = false;
    $('#composer-to').value = preset.to || 'server';
    $('#composer-type').value = preset.type || 'text';
    $('#composer-payload').value = preset.text ?? preset.base64 ?? '';
    $('#composer-encoding').value = preset.base64 !== undefined ? 'base64' : 'text';
    $('#composer-status').textContent = '';
    this.showFields();
    $('#composer-payload').focus();
  }

  hide() {
    $('#composer').hidden = true;
  }

  showFields() {
    const close = $('#composer-type').value === 'close';
    for (const id of ['#composer-code', '#composer-reason']) $(id).hidden = !close;
    for (const id of ['#composer-payload', '#composer-encoding']) $(id).hidden = close;
  }

  async submit() {
    const type = $('#composer-type').value;
    const body = { to: $('#composer-to').value, type };
    if (type === 'close') {
      body.code = Number($('#composer-code').value || 1000);
      body.reason = $('#composer-reason').value;
    } else if ($('#composer-encoding').value === 'base64') {
      body.base64 = $('#composer-payload').value.trim();
    } else {
      body.text = $('#composer-payload').value;
    }
    if (this.resend !== undefined && type !== 'close') body.resend = this.resend;
    const status = $('#composer-status');
    // A close goes to one side or both as a real close handshake.
    const path = type === 'close' ? `sessions/${this.session}/close` : `sessions/${this.session}/inject`;
    try {
      if (type !== 'close' && body.to === 'both') throw new Error('only a close goes to both sides');
      await send('POST', path, body);
      status.className = 'muted';
      status.textContent = `sent to the ${body.to}`;
    } catch (e) {
      status.className = 'bad';
      status.textContent = e.message;
    }
  }
}

/** How often a rule fired, a timer sent, or conditions shaped a session. */
function ruleCount(r) {
  const plural = (n, word) => `${count(n)} ${word}${n === 1 ? '' : 's'}`;
  if (r.every_ms !== undefined) return `${count(r.hits)} sent`;
  if (r.conditions !== undefined) return plural(r.hits, 'session');
  return plural(r.hits, 'hit');
}
