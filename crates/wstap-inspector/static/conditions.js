// A live session's network conditions (docs/rules.md#network-conditions): what applies
// to each way now, and a line to set them in the language `--conditions` speaks.

import { get, send } from './api.js';
import { $, replace } from './dom.js';

/** One way's conditions as the API gives them, in words. */
function wayText(way, entry) {
  if (!entry) return `to the ${way}: none`;
  const what = entry.conditions.replace(/^to:(client|server), /, '');
  return `to the ${way}: ${what} (${entry.name})`;
}


/** The form under a session's summary bar, and the chip that says conditions apply. */
export class ConditionsForm {
  constructor() {
    this.session = null;
    $('#conditions-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.apply($('#conditions-spec').value);
    });
    $('#conditions-clear').addEventListener('click', () => this.apply('none'));
    $('#conditions-cancel').addEventListener('click', () => this.hide());
  }

  /** Opens the form on `session`, showing what applies now. */
  async show(session) {
    this.session = session;
    $('#conditions-form').hidden = false;
    $('#conditions-status').textContent = '';
    await this.refresh(session);
    $('#conditions-spec').focus();
  }

  hide() {
    $('#conditions-form').hidden = true;
  }

  /** Shows what applies to `session` now (a chip in the summary, and the form's line). */
  async refresh(session) {
    this.session = session;
    let answer = null;
    try {
      answer = await get(`sessions/${session}/conditions`);
    } catch {
      answer = null;
    }
    if (session !== this.session) return;
    const shaped = answer && (answer.client || answer.server);
    const chip = $('#conditions-chip');
    chip.hidden = !shaped;
    if (shaped) {
      const bare = (entry) => entry.conditions.replace(/^to:(client|server), /, '');
      const words = [answer.server && `↑ ${bare(answer.server)}`, answer.client && `↓ ${bare(answer.client)}`]
        .filter(Boolean).join('  ');
      chip.textContent = `network ${words}`;
      chip.title = 'network conditions apply to this session (Network… to change them)';
    }
    replace($('#conditions-now'), answer
      ? `${wayText('server', answer.server)} · ${wayText('client', answer.client)}`
      : 'not live');
  }

  /** Sets `spec` on the session; what it says back is shown. */
  async apply(spec) {
    const status = $('#conditions-status');
    try {
      await send('POST', `sessions/${this.session}/conditions`, { conditions: spec.trim() || 'none' });
      status.className = 'muted';
      status.textContent = spec.trim() === 'none' ? 'cleared' : 'applied';
      await this.refresh(this.session);
    } catch (e) {
      status.className = 'bad';
      status.textContent = e.message;
    }
  }
}
