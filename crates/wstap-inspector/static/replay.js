// A recorded session played again through the proxy (docs/inspector.md), and the
// server's answers now beside the recording: one row per message, same, changed (for
// JSON, which fields), missing or extra.

import { send } from './api.js';
import { $, el, replace } from './dom.js';
import { count } from './format.js';

const MARK = { same: '=', changed: '~', missing: '−', extra: '+' };

/** The session's Replay tab: runs a replay and shows its comparison side by side. */
export class ReplayView {
  /** `showTab(name)` brings the tab forward. */
  constructor({ showTab }) {
    this.showTab = showTab;
    this.session = null;
  }

  /** Replays `session` (each message once the server answered the one before). */
  async run(session) {
    this.session = session;
    $('#replay-tab').hidden = false;
    this.showTab('replay');
    const root = $('#tab-replay');
    replace(root, el('p', { class: 'muted', text: `Replaying session ${session} through the proxy…` }));
    try {
      const answer = await send('POST', `sessions/${session}/replay`, { timing: 'fast' });
      if (session !== this.session) return;
      this.render(answer);
    } catch (e) {
      if (session !== this.session) return;
      replace(root, el('p', { class: 'bad', text: `The replay did not run: ${e.message}` }));
    }
  }

  /** Forgets the last replay: another session was opened. */
  reset() {
    this.session = null;
    $('#replay-tab').hidden = true;
    replace($('#tab-replay'));
  }

  render(answer) {
    const equal = answer.changed + answer.missing + answer.extra === 0;
    const summary = `${count(answer.same)} same, ${count(answer.changed)} changed, `
      + `${count(answer.missing)} missing, ${count(answer.extra)} extra`;
    const cell = (side) => el('td', { class: 'preview', text: side ? side.text : '' });
    const seq = (side) => el('td', { class: 'num', text: side ? `#${side.seq}` : '' });
    const rows = answer.rows.map((r) => el('tr', { class: `cmp-${r.status}` },
      el('td', { class: 'mark', title: r.status, text: MARK[r.status] }),
      seq(r.recorded), cell(r.recorded),
      seq(r.replayed), cell(r.replayed),
      el('td', { class: 'fields', text: r.fields.join(', ') })));
    replace($('#tab-replay'),
      el('p', { class: equal ? 'ok' : 'bad', id: 'replay-summary',
        text: `${equal ? 'The same answers' : 'The answers differ'}: ${summary}. `
          + 'The replayed session is recorded as a session of its own.' }),
      el('table', { class: 'interventions compare' },
        el('thead', {}, el('tr', {}, ['', '#', 'Recorded', '#', 'Replayed now', 'Fields that differ']
          .map((h) => el('th', { text: h })))),
        el('tbody', {}, rows)));
  }
}
