// One frame or message in full: its facts, then its bytes as text, a JSON tree, a hex
// dump, base64, and (compressed) the bytes as they were on the wire.

import { el, replace } from './dom.js';
import { ARROW, DIR_TITLE, clock, closeMeaning, count, flags, fromBase64, hexDump, size, utf8 } from './format.js';

const MAX_TREE_NODES = 5000;

/** The capture's bound (`--capture-max`), for what a dropped payload says. */
let captureBound = null;

/** Tells the detail pane the capture's bound, in bytes (`null`: none). */
export function knowCaptureBound(bytes) {
  captureBound = bytes;
}

/** Why a payload is not there. */
export function droppedText() {
  return `payload dropped to keep the capture under ${captureBound ? size(captureBound) : 'its bound'} (--capture-max)`;
}

/** Shows `record` (a frame or message detail from the API) in `root`; a data, ping or
 * pong message offers to be sent again (`onResend(record)`). */
export function showDetail(root, kind, record, { onResend } = {}) {
  const data = fromBase64(record.data?.base64);
  const wire = record.wire ? fromBase64(record.wire.base64) : null;
  const text = utf8(data);
  let json;
  let isJson = false;
  if (text !== null && /^\s*[[{"]/.test(text)) {
    try {
      json = JSON.parse(text);
      isJson = true;
    } catch { /* not JSON */ }
  }
  const views = [];
  if (record.decoded) views.push([viewTitle(record.decoded.view), () => decodedView(record.decoded)]);
  if (record.data?.dropped) {
    views.push(['Payload', () => el('p', { class: 'dropped', text: droppedText() })]);
  } else {
    if (isJson) views.push(['JSON', () => jsonTree(json)]);
    if (text !== null) views.push(['Text', () => el('pre', { class: 'payload text', text })]);
    views.push(['Hex', () => el('pre', { class: 'payload hex', text: hexDump(data) })]);
    views.push(['Base64', () => el('pre', { class: 'payload b64', text: record.data?.base64 || '' })]);
  }
  if (record.origin || record.compressed || record.inflated_len !== null && record.inflated_len !== undefined) {
    if (wire) views.push(['Wire hex', () => el('pre', { class: 'payload hex', text: hexDump(wire) })]);
  }

  const body = el('div', { class: 'view' });
  const tabs = el('nav', { class: 'tabs small' });
  const pick = (name) => {
    for (const b of tabs.children) b.classList.toggle('on', b.dataset.view === name);
    const view = views.find(([n]) => n === name);
    replace(body, view ? view[1]() : '');
    root.dataset.view = name;
  };
  for (const [name] of views) {
    tabs.append(el('button', { 'data-view': name, text: name, onclick: () => pick(name) }));
  }
  const resendable = onResend && kind === 'messages' && [1, 2, 9, 10].includes(record.opcode) && !record.data?.truncated && !record.data?.dropped;
  const resend = resendable
    ? el('button', { id: 'resend', title: 'send this message again on the session, as it is or edited', onclick: () => onResend(record) }, 'Resend…')
    : null;
  replace(root, facts(kind, record), resend, tabs, body);
  pick(views[0][0]);
}

/** How the detail pane names a view's tab. */
const VIEW_TITLES = {
  text: 'Text', json: 'JSON', hex: 'Hex', msgpack: 'MessagePack', cbor: 'CBOR', protobuf: 'Protobuf',
  signalr: 'SignalR', socketio: 'Socket.IO', stomp: 'STOMP', mqtt: 'MQTT', graphql: 'GraphQL', jsonrpc: 'JSON-RPC',
};

function viewTitle(view) {
  return VIEW_TITLES[view] || view;
}

/** A message decoded by its session's view: each item's summary and tree, and where it
 * stopped parsing (the raw bytes are a tab away). */
function decodedView(decoded) {
  const parts = [];
  if (decoded.problem) {
    parts.push(el('p', { class: 'bad', text: `Not ${viewTitle(decoded.view)} at byte ${decoded.problem.at}: ${decoded.problem.what}` }));
  }
  for (const item of decoded.items || []) {
    parts.push(el('div', { class: 'item' },
      el('p', { class: 'item-summary', text: item.summary }),
      item.call ? el('p', { class: 'muted', text: `${item.call.role === 'call' ? 'calls' : 'answers'} ${item.call.key}` }) : null,
      jsonTree(item.decoded)));
  }
  return el('div', { class: 'decoded-view' }, parts);
}

function facts(kind, r) {
  const title = `${kind === 'frames' ? 'Frame' : 'Message'} ${count(r.seq)}`;
  const lines = [
    ['Direction', `${ARROW[r.dir]} ${DIR_TITLE[r.dir]}`],
    ['Time', clock(r.time_us)],
    ['Opcode', `${r.opcode_name} (${r.opcode})`],
    ['Flags', flags(r.flags_byte, r.flags)],
  ];
  if (kind === 'frames') {
    lines.push(['Mask key', r.mask_key || 'not masked']);
    lines.push(['Header', `${r.header_len} bytes`]);
    lines.push(['Payload', `${count(r.len)} bytes${r.inflated_len !== null && r.inflated_len !== undefined ? `, ${count(r.inflated_len)} inflated` : ''}`]);
    if (r.message !== null && r.message !== undefined) lines.push(['Message', `${count(r.message)} (this frame alone)`]);
  } else {
    lines.push(['Frames', `${count(r.frames)}${r.first_frame !== null ? ` (frame ${count(r.first_frame)}${r.last_frame !== r.first_frame ? ` to ${count(r.last_frame)}` : ''})` : ''}`]);
    lines.push(['Length', `${count(r.len)} bytes${r.compressed ? `, ${count(r.wire_len)} on the wire (compressed)` : ''}`]);
    if (r.incomplete) lines.push(['Incomplete', 'the session ended before its last frame']);
  }
  if (r.data?.dropped) lines.push(['Kept', 'nothing: dropped to stay within the capture\'s bound']);
  else if (r.data?.truncated) lines.push(['Kept', `${size(fromBase64(r.data.base64).length)} of ${size(r.data.len)} (--max-capture)`]);
  if (r.close) lines.push(['Close', `${r.close.code ?? '—'} ${closeMeaning(r.close.code)}${r.close.reason ? `: “${r.close.reason}”` : ''}`]);
  const table = el('dl', { class: 'facts' }, lines.map(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  const violations = (r.violations || []).length
    ? el('ul', { class: 'violations' }, r.violations.map((v) => el('li', { text: v })))
    : null;
  return el('div', { class: 'detail-head' }, el('h3', { text: title }), table, violations);
}

/** A collapsible tree of a JSON value; big values are cut at MAX_TREE_NODES nodes. */
export function jsonTree(value) {
  let nodes = 0;
  const leaf = (v) => {
    const type = v === null ? 'null' : typeof v;
    return el('span', { class: `j-${type}`, text: type === 'string' ? JSON.stringify(v) : String(v) });
  };
  const build = (v, key, depth) => {
    nodes++;
    const label = key === undefined ? null : el('span', { class: 'j-key', text: `${key}: ` });
    if (v === null || typeof v !== 'object') return el('div', { class: 'j-row' }, label, leaf(v));
    const entries = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    const brackets = Array.isArray(v) ? ['[', ']'] : ['{', '}'];
    const summary = el('summary', {}, label, `${brackets[0]} `, el('span', { class: 'muted', text: `${entries.length} ${Array.isArray(v) ? 'items' : 'keys'}` }), ` ${brackets[1]}`);
    const node = el('details', { class: 'j-node', open: depth < 2 }, summary);
    for (const [k, x] of entries) {
      if (nodes >= MAX_TREE_NODES) {
        node.append(el('div', { class: 'muted', text: '… cut short (see Text)' }));
        break;
      }
      node.append(build(x, k, depth + 1));
    }
    return node;
  };
  return el('div', { class: 'payload json' }, build(value, undefined, 0));
}
