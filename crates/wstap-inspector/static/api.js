// The inspector's HTTP API (docs/inspector.md). The token travels in a cookie set when
// the page was first opened, so requests here carry nothing but their parameters.

/** `/api/PATH?params`, without empty parameters. */
export function apiUrl(path, params = {}) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') query.set(name, String(value));
  }
  const text = query.toString();
  return `/api/${path}${text ? `?${text}` : ''}`;
}

/** An API error: its status and the server's body (`error`, maybe `filter_error`). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** GETs a JSON answer; a non-2xx answer throws an ApiError. */
export async function get(path, params) {
  const response = await fetch(apiUrl(path, params), { credentials: 'same-origin' });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = { error: `HTTP ${response.status} without a JSON body` };
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/**
 * Sends a change: `method` (POST, PATCH, DELETE) with `body` as JSON, which no foreign
 * page may send. Says it comes from the inspector (the capture records who decided).
 */
export async function send(method, path, body = {}) {
  const response = await fetch(apiUrl(path), {
    method,
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-Wstap-Client': 'inspector' },
    body: JSON.stringify(body),
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = { error: `HTTP ${response.status} without a JSON body` };
  }
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

/**
 * Follows the live feed: `onCommit({last_event, sessions})`, `onResync()`,
 * `onState(text)`, and `onIntercept()` when breakpoints or held messages change.
 */
export function follow({ onCommit, onResync, onState, onIntercept }) {
  const source = new EventSource('/api/live');
  source.addEventListener('intercept', () => onIntercept?.());
  source.addEventListener('hello', (e) => {
    const hello = JSON.parse(e.data);
    onState(hello.live ? 'live' : 'saved');
  });
  source.addEventListener('commit', (e) => onCommit(JSON.parse(e.data)));
  source.addEventListener('resync', () => onResync());
  source.addEventListener('end', () => { onState('ended'); source.close(); });
  source.onerror = () => onState(source.readyState === EventSource.CLOSED ? 'ended' : 'reconnecting');
  return source;
}
