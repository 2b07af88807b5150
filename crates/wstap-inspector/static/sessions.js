// The sessions list: every session of the capture, live, with a filter.

import { get } from './api.js';
import { el } from './dom.js';
import { clock, count, duration, size } from './format.js';
import { VirtualList } from './list.js';

const COLUMNS = [
  { title: '#', width: '4.5em', cls: 'num' },
  { title: 'Started', width: '7.5em' },
  { title: 'Client', width: '9em' },
  { title: 'Via', width: '5.5em' },
  { title: 'URL', width: 'minmax(10em, 1fr)' },
  { title: 'TLS', width: '3.2em' },
  { title: 'State', width: '5.5em' },
  { title: 'HTTP', width: '3.5em', cls: 'num' },
  { title: 'Protocol', width: '5em' },
  { title: 'Extensions', width: '7em' },
  { title: 'Frames ↑/↓', width: '8em', cls: 'num' },
  { title: 'Bytes ↑/↓', width: '9.5em', cls: 'num' },
  { title: 'Duration', width: '5.5em', cls: 'num' },
  { title: '⚠', width: '3em', cls: 'num' },
];

/** What a session's URL column shows: its URL, else its CONNECT target. */
export function sessionUrl(s) {
  return s.url || s.target;
}

/** The views that are application protocols (the rest are formats). */
const PROTOCOLS = new Set(['signalr', 'socketio', 'stomp', 'mqtt', 'graphql', 'jsonrpc']);

/** The Protocol column: the protocol wstap decodes, else the subprotocol chosen. */
function protocolCell(s) {
  if (s.view && PROTOCOLS.has(s.view)) {
    return el('span', { class: 'proto', title: s.subprotocol ? `subprotocol ${s.subprotocol}` : 'decoded as this protocol', text: s.view });
  }
  return s.subprotocol ?? '';
}

function cells(s) {
  const state = el('span', { class: `state ${s.state}`, text: s.state });
  const violations = s.violations > 0 ? el('span', { class: 'bad', text: count(s.violations) }) : '';
  return [
    String(s.id),
    clock(s.started_us),
    s.client,
    el('span', { text: s.via, title: s.listener ? `${s.via} on ${s.listener}` : s.via }),
    sessionUrl(s),
    s.tls ? 'TLS' : '',
    state,
    s.status ?? '',
    protocolCell(s),
    (s.extensions || []).join(', '),
    `${count(s.frames_c2s)} / ${count(s.frames_s2c)}`,
    `${size(s.bytes_c2s)} / ${size(s.bytes_s2c)}`,
    duration(s.duration_us),
    violations,
  ];
}

export class SessionsList {
  constructor(root, { onOpen, onError, onCount }) {
    this.filter = '';
    this.onCount = onCount;
    this.list = new VirtualList(root, {
      columns: COLUMNS,
      render: (s) => ({ cells: cells(s), cls: s.violations > 0 ? 'has-violations' : '' }),
      onOpen,
      onError,
      empty: 'No sessions yet: point a client\'s proxy at wstap.',
    });
    this.openId = null;
  }

  /** Shows the sessions `filter` selects. */
  show(filter) {
    this.filter = filter;
    this.list.setSource((index, limit) => this.fetch(index, limit), { follow: true });
  }

  async fetch(index, limit) {
    const answer = await get('sessions', { filter: this.filter, index, limit });
    this.onCount(answer.total);
    return answer;
  }

  /** Applies a commit: changed rows in place, new ones fetched. */
  committed(rows) {
    const byId = new Map(rows.map((r) => [r.id, r]));
    if (this.filter) {
      // A filter may take sessions in or out as they change: fetch what is on screen.
      this.list.reload();
      return;
    }
    this.list.updateRows((r) => byId.has(r.id), (r) => ({ ...byId.get(r.id), index: r.index }));
    this.list.refresh();
  }

  markOpen(id) {
    this.openId = id;
  }
}
