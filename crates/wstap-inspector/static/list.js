// A virtual list: a table of any length that keeps only the rows on screen (and a page
// or two around them) in the browser.
//
// Rows are addressed by index (0 .. total-1) and fetched a page at a time from the
// server, which pages by keyset over the store. The scrollbar is a tall spacer; past a
// few million pixels (browsers cap element heights) the scroll position maps to an index
// proportionally. With `follow` on, the list sticks to its end as rows arrive; scrolling
// up pauses it, scrolling back to the end resumes it.

import { el, replace } from './dom.js';

const PAGE = 100;
const MAX_SPACER_PX = 8_000_000;
const KEEP_PAGES_AROUND = 2;
// A live list asks for new rows at most this often: enough for eyes, cheap for the proxy.
const REFRESH_MS = 250;

export class VirtualList {
  /**
   * `root`: the element to fill. `columns`: [{title, width, cls}]. `render(row, prev)`:
   * {cells: [...], cls}. `onOpen(row)`: Enter or a click. `onFollow(on)`: follow changed.
   */
  constructor(root, { columns, rowHeight = 24, render, onOpen, onFollow, onError, empty }) {
    this.root = root;
    this.columns = columns;
    this.rowHeight = rowHeight;
    this.renderRow = render;
    this.onOpen = onOpen || (() => {});
    this.onFollow = onFollow || (() => {});
    this.onError = onError || (() => {});
    this.emptyText = empty || 'Nothing here yet.';
    this.total = 0;
    this.pages = new Map();
    this.inFlight = new Set();
    this.generation = 0;
    this.fetchPage = null;
    this.selected = -1;
    this.follow = false;

    root.classList.add('vlist');
    root.style.setProperty('--columns', columns.map((c) => c.width).join(' '));
    this.head = el('div', { class: 'vhead row' }, columns.map((c) => el('span', { class: c.cls || '', text: c.title })));
    this.viewport = el('div', { class: 'viewport' });
    this.spacer = el('div', { class: 'spacer' });
    this.rows = el('div', { class: 'rows' });
    this.empty = el('div', { class: 'empty-rows muted', text: this.emptyText });
    this.viewport.append(this.spacer, this.rows, this.empty);
    root.replaceChildren(this.head, this.viewport);

    this.viewport.addEventListener('scroll', () => this.scrolled());
    // Rows are redrawn as data arrives; a press (not a click, which needs the same
    // element under both halves) opens a row even while the list is live.
    this.rows.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      const rowEl = e.target.closest('.row');
      if (!rowEl) return;
      const index = Number(rowEl.dataset.index);
      this.select(index, false);
      const row = this.rowAt(index);
      if (row) this.onOpen(row);
    });
    new ResizeObserver(() => this.render()).observe(this.viewport);
  }

  /** Shows rows from `fetchPage(index, limit) -> {total, rows}`, from the start (or end). */
  setSource(fetchPage, { follow = this.follow } = {}) {
    this.generation++;
    this.fetchPage = fetchPage;
    this.pages.clear();
    this.inFlight.clear();
    this.total = 0;
    this.selected = -1;
    this.setFollow(follow);
    this.loadPage(0, 0, PAGE);
    this.render();
  }

  /** Learns of rows added since, at most every REFRESH_MS (the last call is never lost). */
  refresh() {
    if (this.refreshTimer) return;
    const wait = Math.max(0, REFRESH_MS - (Date.now() - (this.refreshedAt || 0)));
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      this.refreshedAt = Date.now();
      this.refreshNow();
    }, wait);
  }

  /** Fetches the rows past the known end, now. */
  async refreshNow() {
    if (!this.fetchPage) return;
    // One refresh at a time: commits that arrive meanwhile are folded into one more.
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = true;
    try {
      do {
        this.refreshAgain = false;
        await this.refreshOnce();
      } while (this.refreshAgain);
    } finally {
      this.refreshing = false;
    }
  }

  async refreshOnce() {
    const generation = this.generation;
    const from = this.total;
    try {
      const answer = await this.fetchPage(from, PAGE);
      if (generation !== this.generation) return;
      this.store(from, answer.rows);
      this.setTotal(answer.total);
    } catch (error) {
      if (generation === this.generation) this.onError(error);
    }
  }

  /** Forgets every loaded row and fetches what is on screen again, where it is. */
  reload() {
    this.generation++;
    this.pages.clear();
    this.inFlight.clear();
    this.render();
  }

  /** Replaces loaded rows that `matches` with `update(row)`: live counts, say. */
  updateRows(matches, update) {
    let changed = false;
    for (const page of this.pages.values()) {
      for (let i = 0; i < page.length; i++) {
        if (page[i] && matches(page[i])) {
          page[i] = update(page[i]);
          changed = true;
        }
      }
    }
    if (changed) this.render();
  }

  rowAt(index) {
    const page = this.pages.get(Math.floor(index / PAGE));
    return page ? page[index % PAGE] : undefined;
  }

  setTotal(total) {
    this.total = total;
    this.render();
    if (this.follow) this.scrollToEnd();
  }

  setFollow(on) {
    if (this.follow === on) return;
    this.follow = on;
    this.onFollow(on);
    if (on) this.scrollToEnd();
  }

  scrollToEnd() {
    this.viewport.scrollTop = this.viewport.scrollHeight;
    this.render();
  }

  /** Moves the selection by `step` rows, keeping it on screen. */
  move(step) {
    if (this.total === 0) return;
    const from = this.selected < 0 ? (step > 0 ? -1 : this.total) : this.selected;
    this.select(Math.max(0, Math.min(this.total - 1, from + step)), true);
  }

  /** Opens the selected row. */
  openSelected() {
    const row = this.selected >= 0 ? this.rowAt(this.selected) : undefined;
    if (row) this.onOpen(row);
  }

  select(index, reveal) {
    this.selected = index;
    if (reveal) this.reveal(index);
    this.render();
  }

  /** Scrolls so that row `index` is on screen. */
  reveal(index) {
    const { first, visible } = this.window();
    if (index >= first && index < first + visible - 1) return;
    const target = index < first ? index : index - visible + 2;
    this.scrollToIndex(Math.max(0, target));
  }

  scrollToIndex(index) {
    const geometry = this.geometry();
    this.setFollow(false);
    if (!geometry.scaled) {
      this.viewport.scrollTop = index * this.rowHeight;
    } else {
      const span = Math.max(1, this.total - geometry.fits);
      this.viewport.scrollTop = (Math.min(index, span) / span) * geometry.maxScroll;
    }
    this.render();
  }

  geometry() {
    const viewportHeight = this.viewport.clientHeight || 1;
    const full = this.total * this.rowHeight;
    const spacer = Math.min(full, MAX_SPACER_PX);
    const visible = Math.ceil(viewportHeight / this.rowHeight) + 1;
    const fits = Math.max(1, Math.floor(viewportHeight / this.rowHeight));
    return { viewportHeight, spacer, scaled: full > MAX_SPACER_PX, visible, fits, maxScroll: Math.max(0, spacer - viewportHeight) };
  }

  /** The first row on screen, how many fit, and where the rows are drawn. */
  window() {
    const g = this.geometry();
    const top = this.viewport.scrollTop;
    let first;
    let offset;
    if (!g.scaled) {
      first = Math.floor(top / this.rowHeight);
      offset = first * this.rowHeight;
    } else {
      // At the end of the scrollbar, the last row sits at the bottom of the viewport.
      const span = Math.max(0, this.total - g.fits);
      first = g.maxScroll > 0 ? Math.round((top / g.maxScroll) * span) : 0;
      offset = top;
    }
    first = Math.max(0, Math.min(first, Math.max(0, this.total - 1)));
    return { first, visible: g.visible, offset, geometry: g };
  }

  /** Any scroll, the user's or ours: at the end, the list follows; elsewhere, not. */
  scrolled() {
    const g = this.geometry();
    this.setFollow(this.viewport.scrollTop >= g.maxScroll - this.rowHeight / 2);
    this.render();
  }

  render() {
    const { first, visible, offset, geometry } = this.window();
    this.spacer.style.height = `${geometry.spacer}px`;
    this.rows.style.transform = `translateY(${offset}px)`;
    this.empty.hidden = this.total > 0 || this.inFlight.size > 0;
    const last = Math.min(this.total, first + visible);
    const out = [];
    let prev = first > 0 ? this.rowAt(first - 1) : null;
    for (let index = first; index < last; index++) {
      const row = this.rowAt(index);
      if (row === undefined) {
        this.ensure(index);
        out.push(el('div', { class: 'row loading', 'data-index': index }, el('span', { class: 'muted', text: '…' })));
        prev = null;
        continue;
      }
      const drawn = this.renderRow(row, prev);
      const cls = ['row', drawn.cls, index === this.selected ? 'selected' : ''].filter(Boolean).join(' ');
      out.push(el('div', { class: cls, 'data-index': index },
        drawn.cells.map((cell, i) => el('span', { class: this.columns[i].cls || '' }, cell))));
      prev = row;
    }
    replace(this.rows, out);
    this.evict(first, last);
  }

  /** Fetches what row `index` needs: its page, or the rest of a partly loaded page. */
  ensure(index) {
    const pageNo = Math.floor(index / PAGE);
    const page = this.pages.get(pageNo);
    const have = page ? page.length : 0;
    this.loadPage(pageNo, have, PAGE - have);
  }

  async loadPage(pageNo, have, limit) {
    if (!this.fetchPage || limit <= 0) return;
    const from = pageNo * PAGE + have;
    const key = `${pageNo}:${from}`;
    if (this.inFlight.has(key)) return;
    this.inFlight.add(key);
    const generation = this.generation;
    try {
      const answer = await this.fetchPage(from, limit);
      if (generation !== this.generation) return;
      this.inFlight.delete(key);
      this.store(from, answer.rows);
      if (answer.total !== this.total) this.setTotal(answer.total);
      else this.render();
    } catch (error) {
      if (generation !== this.generation) return;
      this.inFlight.delete(key);
      this.onError(error);
      this.render();
    }
  }

  /** Keeps `rows`, the rows from index `from` on. */
  store(from, rows) {
    rows.forEach((row, i) => {
      const index = from + i;
      const pageNo = Math.floor(index / PAGE);
      const at = index % PAGE;
      let page = this.pages.get(pageNo);
      if (!page) {
        // A page is kept from its first row on, without holes.
        if (at !== 0) return;
        page = [];
        this.pages.set(pageNo, page);
      }
      if (at <= page.length) page[at] = row;
    });
  }

  /** Forgets pages far from the screen: the browser keeps what is shown and a margin. */
  evict(first, last) {
    const low = Math.floor(first / PAGE) - KEEP_PAGES_AROUND;
    const high = Math.floor(last / PAGE) + KEEP_PAGES_AROUND;
    for (const pageNo of this.pages.keys()) {
      if (pageNo < low || pageNo > high) this.pages.delete(pageNo);
    }
  }

  /** Rows the browser holds now (for tests and the status line). */
  heldRows() {
    let n = 0;
    for (const page of this.pages.values()) n += page.length;
    return n;
  }
}
