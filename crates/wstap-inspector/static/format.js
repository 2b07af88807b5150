// Numbers, times, bytes and codes as people read them.

/** `14:03:27.123` (local time) from µs since the epoch. */
export function clock(us) {
  if (us === null || us === undefined) return '';
  const d = new Date(us / 1000);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A date and time, for session starts. */
export function dateTime(us) {
  const d = new Date(us / 1000);
  return `${d.toLocaleDateString()} ${clock(us)}`;
}

/** A duration in µs: `840 µs`, `12.3 ms`, `4.20 s`, `3 min 2 s`. */
export function duration(us) {
  if (us === null || us === undefined) return '';
  const abs = Math.abs(us);
  if (abs < 1000) return `${Math.round(us)} µs`;
  if (abs < 1e6) return `${(us / 1000).toFixed(abs < 1e4 ? 2 : 1)} ms`;
  if (abs < 6e7) return `${(us / 1e6).toFixed(2)} s`;
  const s = Math.round(us / 1e6);
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** `+12.3 ms` between two rows. */
export function delta(us) {
  if (us === null || us === undefined || Number.isNaN(us)) return '';
  return `+${duration(us)}`;
}

/** A byte count: `512 B`, `1.5 KiB`, `3.2 MiB`. */
export function size(n) {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** `1,234,567`. */
export const count = (n) => (n ?? 0).toLocaleString('en-US');

/** What close codes mean (RFC 6455 section 7.4, and the IANA registry). */
const CLOSE_CODES = {
  1000: 'normal closure',
  1001: 'going away (page left or server shutting down)',
  1002: 'protocol error',
  1003: 'unsupported data',
  1005: 'no status code was sent',
  1006: 'closed without a close frame',
  1007: 'invalid payload data (e.g. bad UTF-8)',
  1008: 'policy violation',
  1009: 'message too big',
  1010: 'an extension the client needs was not negotiated',
  1011: 'internal server error',
  1012: 'service restart',
  1013: 'try again later',
  1014: 'bad gateway',
  1015: 'TLS handshake failed',
};

/** What a close code means. */
export function closeMeaning(code) {
  if (code === null || code === undefined) return 'no code';
  if (CLOSE_CODES[code]) return CLOSE_CODES[code];
  if (code >= 3000 && code <= 3999) return 'registered for libraries and frameworks';
  if (code >= 4000 && code <= 4999) return 'private to the application';
  if (code < 1000) return 'not a valid close code';
  return 'reserved';
}

/** The flags byte with its set bits named: `0x81 FIN`. */
export function flags(byte, names) {
  const hex = `0x${byte.toString(16).padStart(2, '0')}`;
  const bits = (names || []).filter((n) => n !== 'MASK');
  return bits.length ? `${hex} ${bits.join(' ')}` : hex;
}

/** The bytes of base64 text. */
export function fromBase64(text) {
  const binary = atob(text || '');
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The bytes as UTF-8 text, or null when they are not valid UTF-8. */
export function utf8(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** A hex dump: offset, 16 bytes in hex, and their printable ASCII. */
export function hexDump(bytes, limit = 65536) {
  const shown = Math.min(bytes.length, limit);
  const lines = [];
  for (let at = 0; at < shown; at += 16) {
    const row = bytes.subarray(at, Math.min(at + 16, shown));
    let hex = '';
    let ascii = '';
    for (let i = 0; i < 16; i++) {
      if (i < row.length) {
        hex += row[i].toString(16).padStart(2, '0') + ' ';
        ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : '.';
      } else {
        hex += '   ';
      }
      if (i === 7) hex += ' ';
    }
    lines.push(`${at.toString(16).padStart(8, '0')}  ${hex} |${ascii}|`);
  }
  if (bytes.length > shown) lines.push(`… ${bytes.length - shown} more bytes`);
  return lines.join('\n');
}

/** Direction arrows: client to server, server to client. */
export const ARROW = { c2s: '↑', s2c: '↓' };
export const DIR_TITLE = { c2s: 'client → server', s2c: 'server → client' };

/** Base64 of bytes. */
export function toBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Bytes as hex pairs, 16 to a line: what the hex editor shows. */
export function hexPairs(bytes) {
  const lines = [];
  for (let at = 0; at < bytes.length; at += 16) {
    lines.push([...bytes.subarray(at, at + 16)].map((b) => b.toString(16).padStart(2, '0')).join(' '));
  }
  return lines.join('\n');
}

/** The bytes of hex pairs (any spacing); throws on anything else. */
export function parseHex(text) {
  const digits = text.replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) throw new Error('hex must be pairs of 0-9 and a-f');
  const bytes = new Uint8Array(digits.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** How long ago `us` (µs since the epoch) was, short. */
export function ago(us) {
  const seconds = Math.max(0, Math.round((Date.now() * 1000 - us) / 1e6));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
}
