// A session's timeline: messages (or bytes) per slice of time, client to server above
// the axis and server to client below, drawn on a canvas.

import { duration, size, count } from './format.js';

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/** Draws `data` ({start_us, end_us, width_us, buckets}) on `canvas`. */
export function drawTimeline(canvas, data, metric = 'messages') {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 84;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  g.font = '11px system-ui, sans-serif';
  g.textBaseline = 'top';
  const up = metric === 'bytes' ? 'bytes_c2s' : 'messages_c2s';
  const down = metric === 'bytes' ? 'bytes_s2c' : 'messages_s2c';
  const buckets = data?.buckets || [];
  const mid = Math.round(height / 2);
  g.fillStyle = css('--faint');
  g.fillRect(0, mid, width, 1);
  if (!buckets.length) {
    g.fillStyle = css('--muted');
    g.fillText('no messages yet', 8, 6);
    return;
  }
  const slices = Math.max(1, Math.ceil((data.end_us - data.start_us) / data.width_us));
  const barWidth = Math.max(1, (width - 2) / slices);
  const peak = Math.max(1, ...buckets.map((b) => Math.max(b[up], b[down])));
  const scale = (mid - 14) / peak;
  for (const b of buckets) {
    const x = 1 + ((b.start_us - data.start_us) / data.width_us) * barWidth;
    const w = Math.max(1, barWidth - (barWidth > 3 ? 1 : 0));
    g.fillStyle = css('--c2s');
    const hUp = Math.max(b[up] ? 1 : 0, b[up] * scale);
    g.fillRect(x, mid - hUp, w, hUp);
    g.fillStyle = css('--s2c');
    const hDown = Math.max(b[down] ? 1 : 0, b[down] * scale);
    g.fillRect(x, mid + 1, w, hDown);
  }
  const per = duration(data.width_us);
  const peakText = metric === 'bytes' ? `${size(peak)}` : `${count(peak)} msgs`;
  g.fillStyle = css('--muted');
  g.fillText(`↑ client → server   peak ${peakText} per ${per}`, 6, 2);
  g.textBaseline = 'bottom';
  g.fillText(`↓ server → client   ${duration(data.end_us - data.start_us)} in all`, 6, height - 2);
}
