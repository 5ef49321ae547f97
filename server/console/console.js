// CrewSafe dispatcher console: a live list of open alarms with acknowledge and resolve, and the
// incident reports with their photos and recordings.
// Plain JS, no framework, no outside resources; the reference server inlines this file into
// the page at /console. Everything shown comes from the server as text (textContent only);
// attachment files are fetched with the token in a header and shown from blob: URLs.
'use strict';
(() => {
  const EVENTS_PATH = '/v1/dispatch/events';
  const SOS_PATH = '/v1/dispatch/sos';
  const REPORTS_PATH = '/v1/dispatch/reports';
  const REPORTS_PAGE = 25; // reports per request
  const REPORTS_REFRESH_MS = 10000; // the first page is asked for again this often
  const AUTO_IMAGE_MAX_BYTES = 15 * 1024 * 1024; // larger photos load on request
  // Image types shown inline; anything else is offered as a file to save.
  const INLINE_IMAGES = [
    'image/png',
    'image/jpeg',
    'image/gif',
    'image/webp',
    'image/avif',
    'image/bmp',
  ];
  const TOKEN_KEY = 'crewsafe.dispatcher-token';
  const MAX_MESSAGE_CHARS = 500;
  const RESOLVED_KEEP_MS = 10 * 60 * 1000; // resolved alarms stay visible this long...
  const RESOLVED_KEEP_MAX = 20; // ...and at most this many
  const TRAIL_SHOWN = 8; // earlier positions listed per alarm
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const STABLE_MS = 10000; // a stream that lived this long resets the backoff
  const SILENCE_MS = 75000; // nothing (not even a comment) for this long: reconnect

  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    alarms: new Map(), // "device_id NUL id" -> { sos, node, resolvedAt, escalated }
    lastEventId: null, // id of the last event received, sent back as Last-Event-ID
    clockOffsetMs: 0, // the server's clock minus this browser's (estimated, see clockSample)
    clockLow: -Infinity, // bounds of that offset from what the server said so far
    clockHigh: Infinity,
    abort: null, // AbortController of the current stream
    backoffMs: BACKOFF_MIN_MS,
    retryMinMs: 0, // the server's `retry:` field, if any
    retryTimer: 0,
    connectedAt: 0,
    audio: null, // AudioContext, once the operator armed sound
    alarmTones: 0,
    view: 'alarms', // the panel shown: 'alarms' or 'reports'
    reports: new Map(), // "device_id NUL id" -> { report, node, files: Map(attachment id -> file) }
    reportsCursor: undefined, // next_cursor of the oldest page loaded (null: no older ones)
    reportsTimer: 0,
    reportsLoading: false,
    reportsGeneration: 0, // bumped on logout: answers of an older session are dropped
  };

  // ---- Time -------------------------------------------------------------------------------

  const serverNow = () => Date.now() + state.clockOffsetMs;

  // The page's clock is corrected to the server's (ages and escalation are server times).
  // Each answer bounds the offset: a Date header (whole seconds) was written between sending
  // the request and reading the answer; an event's `updated_at` lies before its arrival. The
  // estimate is the middle of the tightest bounds; bounds that contradict each other (the
  // server's clock was set) start over.
  function clockSample(low, high) {
    let lo = Math.max(state.clockLow, low);
    let hi = Math.min(state.clockHigh, high);
    if (lo > hi) [lo, hi] = [low, high];
    state.clockLow = lo;
    state.clockHigh = hi;
    if (Number.isFinite(lo) && Number.isFinite(hi)) state.clockOffsetMs = (lo + hi) / 2;
    else if (Number.isFinite(lo)) state.clockOffsetMs = lo;
    else if (Number.isFinite(hi)) state.clockOffsetMs = hi - 500;
  }
  function noteServerDate(res, sentAt) {
    const date = Date.parse(res.headers.get('Date') || '');
    if (!Number.isNaN(date)) clockSample(date - Date.now(), date + 1000 - sentAt);
  }

  const pad = (n) => String(n).padStart(2, '0');
  // Local wall-clock time; the date too when it is not today.
  function fmtTime(iso) {
    if (!iso) return '?';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    const today = new Date();
    if (d.toDateString() === today.toDateString()) return time;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
  }
  function fmtAge(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return (h ? `${h}:${pad(m)}` : `${m}`) + `:${pad(s % 60)}`;
  }

  // ---- Connection status ------------------------------------------------------------------

  function setStatus(kind, text) {
    const el = $('status');
    el.className = `status ${kind}`;
    el.textContent = text;
    document.body.dataset.conn =
      kind === 'on' ? 'connected' : kind === 'wait' ? 'reconnecting' : 'off';
  }

  // ---- The event stream ---------------------------------------------------------------------
  // EventSource cannot send Authorization, so the stream is read with fetch and parsed here
  // (the text/event-stream format: `field: value` lines, a blank line ends an event, lines
  // starting with ':' are comments).

  function sseParser(onEvent, onRetry) {
    let buf = '';
    let skipLF = false; // the previous chunk ended with CR (a CRLF split across chunks)
    let data = [];
    let type = '';
    let idBuffer = null;
    function line(l) {
      if (l === '') {
        const ev = { id: idBuffer, type: type || 'message', data: data.join('\n') };
        const had = data.length > 0;
        data = [];
        type = '';
        if (had || ev.id !== null) onEvent(ev, had);
        return;
      }
      if (l[0] === ':') return;
      const colon = l.indexOf(':');
      const field = colon < 0 ? l : l.slice(0, colon);
      let value = colon < 0 ? '' : l.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') type = value;
      else if (field === 'id' && !value.includes('\0')) idBuffer = value;
      else if (field === 'retry' && /^\d+$/.test(value)) onRetry(Number(value));
    }
    return (chunk) => {
      buf += chunk;
      let start = 0;
      for (let i = 0; i < buf.length; i++) {
        const c = buf[i];
        if (c === '\n' && skipLF && i === 0) {
          start = 1;
          skipLF = false;
          continue;
        }
        skipLF = false;
        if (c !== '\n' && c !== '\r') continue;
        line(buf.slice(start, i));
        if (c === '\r') {
          if (i + 1 < buf.length) {
            if (buf[i + 1] === '\n') i++;
          } else skipLF = true;
        }
        start = i + 1;
      }
      buf = buf.slice(start);
    };
  }

  function onStreamEvent(ev, hasData) {
    if (ev.id !== null) state.lastEventId = document.body.dataset.lastEventId = ev.id;
    if (!hasData || ev.type !== 'alarm') return;
    let sos;
    try {
      sos = JSON.parse(ev.data);
    } catch (e) {
      console.warn('bad alarm event', e);
      return;
    }
    if (!sos || typeof sos.id !== 'string' || typeof sos.device_id !== 'string') return;
    const changed = Date.parse(sos.updated_at);
    if (!Number.isNaN(changed)) clockSample(changed - Date.now(), Infinity);
    upsert(sos, true);
  }

  async function connect() {
    clearTimeout(state.retryTimer);
    if (state.abort) state.abort.abort();
    if (!state.token) return;
    const ctl = new AbortController();
    state.abort = ctl;
    setStatus('wait', state.connectedAt ? 'reconnecting…' : 'connecting…');
    let watchdog = 0;
    let openedAt = 0;
    const kick = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => ctl.abort(), SILENCE_MS);
    };
    try {
      const headers = { Authorization: `Bearer ${state.token}`, Accept: 'text/event-stream' };
      if (state.lastEventId !== null) headers['Last-Event-ID'] = state.lastEventId;
      kick();
      const sentAt = Date.now();
      const res = await fetch(EVENTS_PATH, { headers, cache: 'no-store', signal: ctl.signal });
      noteServerDate(res, sentAt);
      if (res.status === 401) {
        clearTimeout(watchdog);
        askToken('The server refused this token.');
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      state.connectedAt = openedAt = Date.now();
      setStatus('on', 'connected');
      const parse = sseParser(onStreamEvent, (ms) => {
        state.retryMinMs = ms;
      });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        kick();
        parse(decoder.decode(value, { stream: true }));
      }
      throw new Error('the server closed the stream');
    } catch (e) {
      clearTimeout(watchdog);
      if (ctl !== state.abort) return; // replaced by a newer connection, or stopped
      // A stream that lived a while was fine: start the backoff over.
      if (openedAt && Date.now() - openedAt > STABLE_MS) state.backoffMs = BACKOFF_MIN_MS;
      scheduleReconnect(e.name === 'AbortError' ? 'no data' : String(e.message || e));
    }
  }

  function scheduleReconnect(why) {
    const delay = Math.max(state.retryMinMs, state.backoffMs * (0.5 + Math.random() / 2));
    state.backoffMs = Math.min(BACKOFF_MAX_MS, state.backoffMs * 2);
    setStatus('wait', `reconnecting in ${Math.ceil(delay / 1000)} s (${why})`);
    state.retryTimer = setTimeout(connect, delay);
  }

  function stop() {
    clearTimeout(state.retryTimer);
    const ctl = state.abort;
    state.abort = null;
    if (ctl) ctl.abort();
  }

  // A laptop that loses its network: drop the stream now, reconnect as soon as it is back.
  window.addEventListener('offline', () => {
    if (!state.abort) return;
    stop();
    state.abort = new AbortController(); // marks "wanted" until back online
    setStatus('wait', 'offline: waiting for the network');
  });
  window.addEventListener('online', () => {
    if (!state.abort) return;
    state.backoffMs = BACKOFF_MIN_MS;
    connect();
  });

  // ---- Alarms -------------------------------------------------------------------------------

  const keyOf = (sos) => `${sos.device_id}\u0000${sos.id}`;
  const isOpen = (sos) => sos.status !== 'resolved';

  function isEscalated(sos) {
    if (sos.status !== 'delivered') return false;
    if (sos.escalated) return true;
    const at = Date.parse(sos.escalates_at || '');
    return !Number.isNaN(at) && at <= serverNow();
  }

  // Takes a new view of an alarm. Stream events always replace; an action's answer only if
  // the stream has not already brought something at least as new.
  function upsert(sos, fromStream) {
    const key = keyOf(sos);
    let a = state.alarms.get(key);
    const isNew = !a;
    if (a && !fromStream && Date.parse(sos.updated_at) <= Date.parse(a.sos.updated_at)) return;
    if (!a) {
      a = { sos, node: buildNode(key), resolvedAt: 0, escalated: false };
      state.alarms.set(key, a);
    }
    a.sos = sos;
    // When it was resolved, on the server's clock (or now, if the view does not say).
    if (!isOpen(sos) && !a.resolvedAt)
      a.resolvedAt = Date.parse(sos.resolved_at || '') || serverNow();
    fill(a);
    if (isNew && sos.status === 'delivered') tone('alarm');
    scheduleLayout();
  }

  // One layout for a burst of events (the first snapshot may hold many alarms).
  let layoutPending = false;
  function scheduleLayout() {
    if (layoutPending) return;
    layoutPending = true;
    setTimeout(() => {
      layoutPending = false;
      layout();
    }, 0);
  }

  // Builds the (empty) card of an alarm from the template and wires its buttons.
  function buildNode(key) {
    const node = $('alarm-template').content.firstElementChild.cloneNode(true);
    node.querySelector('.do-ack').addEventListener('click', () => act(key, 'acknowledge'));
    node.querySelector('.do-resolve').addEventListener('click', () => act(key, 'resolve'));
    node.querySelector('.actions').addEventListener('submit', (e) => e.preventDefault());
    return node;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // "51.16940, 71.44910 ±7 m (gps, fix 12:03:00)" and a map link.
  function position(loc) {
    const frag = document.createDocumentFragment();
    const lat = Number(loc.latitude).toFixed(5);
    const lon = Number(loc.longitude).toFixed(5);
    frag.append(el('span', 'coords', `${lat}, ${lon}`));
    frag.append(` ±${Math.round(loc.accuracy_m)} m`);
    const extra = [loc.provider, `fix ${fmtTime(loc.fixed_at)}`];
    if (loc.altitude_m !== null && loc.altitude_m !== undefined)
      extra.push(`alt ${Math.round(loc.altitude_m)} m`);
    frag.append(` (${extra.join(', ')})`);
    const a = el('a', 'map', 'map');
    a.href = `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=18/${lat}/${lon}`;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    frag.append(a);
    return frag;
  }

  // Writes an alarm's current view into its card.
  function fill(a) {
    const s = a.sos;
    const q = (sel) => a.node.querySelector(sel);
    a.node.dataset.id = s.id;
    a.node.dataset.deviceId = s.device_id;
    a.node.dataset.status = s.status;
    a.node.classList.toggle('acknowledged', s.status === 'acknowledged');
    const missed = s.alarm === 'missed_check_in';
    q('.kind').textContent = missed ? 'MISSED CHECK-IN' : 'SOS';
    q('.kind').classList.toggle('missed', missed);
    q('.crew').textContent = s.crew ? s.crew.crew_id : '?';
    const who = [];
    if (s.crew && s.crew.staff_id) who.push(`staff ${s.crew.staff_id}`);
    who.push(`device ${s.device_id}`);
    q('.who').textContent = who.join(' · ');
    q('.state').textContent = s.cancel && isOpen(s) ? `${s.status}, cancelled by crew` : s.status;
    // A missed check-in is raised by the server itself (its clock); an SOS by the phone.
    q('.times').textContent = missed
      ? `raised by the server ${fmtTime(s.received_at)}`
      : `raised ${fmtTime(s.raised_at)} (phone) · received ${fmtTime(s.received_at)} (server)`;

    const where = q('.where');
    where.replaceChildren();
    const label = missed ? 'Last known position' : 'Position';
    if (s.location) where.append(`${label} `, position(s.location));
    else where.append(`${label} unknown`);

    const trail = q('.trail');
    trail.replaceChildren();
    const earlier = (s.trail || []).slice().reverse(); // newest first
    if (earlier.length) trail.append(el('li', '', 'Earlier:'));
    for (const loc of earlier.slice(0, TRAIL_SHOWN)) {
      const li = el('li');
      li.append(position(loc));
      trail.append(li);
    }
    if (earlier.length > TRAIL_SHOWN)
      trail.append(el('li', '', `… ${earlier.length - TRAIL_SHOWN} older positions`));

    const ci = q('.checkin');
    ci.replaceChildren();
    if (s.check_in) {
      const c = s.check_in;
      const parts = [
        `Check-in${c.address ? ` at ${c.address}` : ''}: due ${fmtTime(c.due_at)} (server)`,
        `started ${fmtTime(c.started_at)} (phone), received ${fmtTime(c.received_at)}`,
      ];
      if (c.done_at) {
        parts.push(
          `checked in ${fmtTime(c.done_at)} (phone), received ${fmtTime(c.done_received_at)}` +
            (c.closed_late ? ' — CLOSED LATE' : ''),
        );
      } else parts.push('not checked in');
      ci.textContent = parts.join(' · ');
    }

    q('.note').textContent = s.note ? `Note: ${s.note}` : '';
    const cancel = s.cancel;
    q('.cancel').textContent = cancel
      ? `Cancelled by crew at ${fmtTime(cancel.cancelled_at)} (phone): ` +
        String(cancel.reason).replace(/_/g, ' ') +
        (cancel.note ? ` — “${cancel.note}”` : '')
      : '';
    const ack = [];
    if (s.acknowledged_at)
      ack.push(`Acknowledged by ${s.acknowledged_by || '?'} at ${fmtTime(s.acknowledged_at)}`);
    if (s.resolved_at) ack.push(`Resolved by ${s.resolved_by || '?'} at ${fmtTime(s.resolved_at)}`);
    q('.ack').textContent = ack.join(' · ');
    q('.msg').textContent = s.message ? `Message to crew: “${s.message}”` : '';
    q('.do-ack').disabled = s.status !== 'delivered';
    q('.do-resolve').disabled = !isOpen(s);
    tick(a);
  }

  // The parts that change with time alone: age and escalation.
  function tick(a) {
    const s = a.sos;
    const since = Date.parse(s.received_at);
    a.node.querySelector('.age').textContent =
      isOpen(s) && !Number.isNaN(since) ? fmtAge(serverNow() - since) : '';
    const esc = isOpen(s) && isEscalated(s);
    a.node.classList.toggle('escalated', esc);
    a.node.dataset.escalated = String(esc);
    if (esc && !a.escalated) tone('escalation');
    a.escalated = esc;
  }

  // Open alarms: unacknowledged first, oldest first; then resolved ones, newest first.
  function layout() {
    const now = serverNow();
    const open = [];
    const done = [];
    for (const [key, a] of state.alarms) {
      if (isOpen(a.sos)) open.push(a);
      else if (now - a.resolvedAt < RESOLVED_KEEP_MS) done.push(a);
      else {
        a.node.remove();
        state.alarms.delete(key);
      }
    }
    const rank = (a) => (a.sos.status === 'delivered' ? 0 : 1);
    open.sort(
      (x, y) =>
        rank(x) - rank(y) ||
        Date.parse(x.sos.received_at) - Date.parse(y.sos.received_at) ||
        (x.sos.id < y.sos.id ? -1 : 1),
    );
    done.sort((x, y) => y.resolvedAt - x.resolvedAt);
    for (const a of done.splice(RESOLVED_KEEP_MAX)) {
      a.node.remove();
      state.alarms.delete(keyOf(a.sos));
    }
    place($('open'), open);
    place($('resolved'), done);
    $('empty').hidden = open.length > 0;
    $('resolved-title').hidden = done.length === 0;
    const unack = open.filter((a) => a.sos.status === 'delivered').length;
    const esc = open.filter((a) => a.escalated).length;
    $('open-count').textContent = open.length ? `(${open.length})` : '';
    $('counts').textContent =
      `${open.length} open · ${unack} unacknowledged` + (esc ? ` · ${esc} ESCALATED` : '');
    document.title = (unack ? `(${unack}) ` : '') + 'CrewSafe dispatch';
  }

  // Puts the cards in order, moving only those out of place (keeps focus and typed text).
  function place(list, items) {
    items.forEach((a, i) => {
      if (list.children[i] !== a.node) list.insertBefore(a.node, list.children[i] || null);
    });
    while (list.children.length > items.length) list.lastElementChild.remove();
  }

  // ---- Acknowledge and resolve --------------------------------------------------------------

  async function act(key, action) {
    const a = state.alarms.get(key);
    if (!a) return;
    const input = a.node.querySelector('.message');
    const error = a.node.querySelector('.actions .error');
    const message = input.value.trim();
    error.textContent = '';
    if ([...message].length > MAX_MESSAGE_CHARS) {
      error.textContent = `The message is longer than ${MAX_MESSAGE_CHARS} characters.`;
      return;
    }
    const url =
      `${SOS_PATH}/${encodeURIComponent(a.sos.id)}/${action}` +
      `?device_id=${encodeURIComponent(a.sos.device_id)}`;
    const init = {
      method: 'POST',
      headers: { Authorization: `Bearer ${state.token}` },
      cache: 'no-store',
    };
    if (message) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify({ message });
    }
    const buttons = a.node.querySelectorAll('.actions button');
    buttons.forEach((b) => {
      b.disabled = true;
    });
    try {
      const sentAt = Date.now();
      const res = await fetch(url, init);
      noteServerDate(res, sentAt);
      if (res.status === 401) {
        askToken('The server refused this token.');
        return;
      }
      if (!res.ok) {
        const body = await res.json().catch(() => null);
        error.textContent = `${action} failed: ${(body && body.message) || `HTTP ${res.status}`}`;
        return;
      }
      input.value = '';
      upsert(await res.json(), false);
    } catch (e) {
      error.textContent = `${action} failed: ${e.message || e} (network)`;
    } finally {
      const cur = state.alarms.get(key);
      if (cur) fill(cur);
      else
        buttons.forEach((b) => {
          b.disabled = false;
        });
    }
  }

  // ---- Sound --------------------------------------------------------------------------------
  // Browsers allow audio only after the operator interacted with the page: one click on
  // "Arm sound" creates the AudioContext; from then on new alarms beep (an oscillator, no file).

  function tone(kind) {
    const ctx = state.audio;
    if (!ctx) return;
    if (ctx.state === 'suspended') ctx.resume();
    const t = ctx.currentTime + 0.01;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'square';
    const notes =
      kind === 'alarm' ? [880, 660, 880, 660] : kind === 'escalation' ? [988, 988, 988] : [660];
    notes.forEach((f, i) => osc.frequency.setValueAtTime(f, t + i * 0.22));
    const end = t + notes.length * 0.22;
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.25, t + 0.02);
    gain.gain.setValueAtTime(0.25, end - 0.03);
    gain.gain.exponentialRampToValueAtTime(0.0001, end);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t);
    osc.stop(end + 0.01);
    if (kind !== 'armed') document.body.dataset.alarmTones = String(++state.alarmTones);
  }

  $('arm').addEventListener('click', () => {
    const btn = $('arm');
    if (state.audio) {
      state.audio.close();
      state.audio = null;
      btn.textContent = 'Arm sound';
      btn.classList.remove('armed');
      delete document.body.dataset.sound;
      return;
    }
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) {
      btn.textContent = 'No sound in this browser';
      return;
    }
    state.audio = new Ctx();
    state.audio.resume().then(() => {
      document.body.dataset.sound = state.audio ? state.audio.state : 'off';
    });
    tone('armed'); // a short beep: the operator hears that sound works
    btn.textContent = 'Sound armed';
    btn.classList.add('armed');
  });


  // ---- Reports ------------------------------------------------------------------------------
  // The report list is asked for a page at a time (newest first). While the Reports view is
  // shown, the first page is asked for again every REPORTS_REFRESH_MS: new reports come in at
  // the top, and files that finished uploading since turn from "not on the server yet" into
  // photos and players. Files are fetched with the token in the Authorization header (never
  // in a URL) and shown from blob: URLs, revoked when the token is forgotten.

  const authHeaders = () => ({ Authorization: `Bearer ${state.token}` });
  const reportKey = (r) => `${r.device_id}\u0000${r.id}`;
  const words = (w) => String(w || '').replace(/_/g, ' ');

  function fmtBytes(n) {
    const units = ['bytes', 'KiB', 'MiB', 'GiB'];
    let v = Number(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    const short = i === 0 ? `${v} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
    return i === 0 ? short : `${short} (${Number(n).toLocaleString('en')} bytes)`;
  }

  function showView(view) {
    state.view = view;
    for (const [name, tab, panel] of [
      ['alarms', $('tab-alarms'), $('alarms-view')],
      ['reports', $('tab-reports'), $('reports-view')],
    ]) {
      const on = name === view;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      panel.hidden = !on;
    }
    document.body.dataset.view = view;
    clearTimeout(state.reportsTimer);
    if (view === 'reports') refreshReports();
  }

  $('tab-alarms').addEventListener('click', () => showView('alarms'));
  $('tab-reports').addEventListener('click', () => showView('reports'));
  // The tab pattern: arrow keys move between the tabs, Home/End to the first/last.
  $('views').addEventListener('keydown', (e) => {
    const tabs = [$('tab-alarms'), $('tab-reports')];
    const at = tabs.indexOf(document.activeElement);
    if (at < 0) return;
    let to = null;
    if (e.key === 'ArrowRight') to = (at + 1) % tabs.length;
    else if (e.key === 'ArrowLeft') to = (at + tabs.length - 1) % tabs.length;
    else if (e.key === 'Home') to = 0;
    else if (e.key === 'End') to = tabs.length - 1;
    if (to === null) return;
    e.preventDefault();
    tabs[to].focus();
    showView(to === 0 ? 'alarms' : 'reports');
  });
  $('reports-refresh').addEventListener('click', () => refreshReports());
  $('reports-more').addEventListener('click', () => loadReports(state.reportsCursor));

  function scheduleReports() {
    clearTimeout(state.reportsTimer);
    if (state.view === 'reports' && state.token)
      state.reportsTimer = setTimeout(refreshReports, REPORTS_REFRESH_MS);
  }

  // The newest page again.
  function refreshReports() {
    return loadReports(null);
  }

  // Most pages one refresh reads to close a gap (more new reports than a page since the last
  // refresh); beyond that the rest comes with the next refreshes.
  const GAP_PAGES = 8;

  // Loads the newest page (`cursor` null) or the page at `cursor` (older reports). When every
  // report of a newest page is new, the pages after it are read too, until one holds a report
  // already shown: no report falls between the newest page and those loaded before.
  async function loadReports(cursor) {
    if (state.reportsLoading || !state.token) return;
    state.reportsLoading = true;
    const generation = state.reportsGeneration;
    // The live region speaks only of what changed (new reports, errors), not of each poll.
    const status = $('reports-status');
    if (!state.reports.size) status.textContent = 'loading…';
    const hadReports = state.reports.size > 0;
    let at = cursor; // the cursor of the page to read now
    let anchor = cursor ? 'end' : 'top'; // where its new reports go
    let added = 0;
    try {
      for (let pages = 1; ; pages++) {
        let url = `${REPORTS_PATH}?limit=${REPORTS_PAGE}`;
        if (at) url += `&cursor=${encodeURIComponent(at)}`;
        const sentAt = Date.now();
        const res = await fetch(url, { headers: authHeaders(), cache: 'no-store' });
        noteServerDate(res, sentAt);
        if (generation !== state.reportsGeneration) return;
        if (res.status === 401) {
          askToken('The server refused this token.');
          return;
        }
        if (!res.ok) {
          const body = await res.json().catch(() => null);
          const why = (body && body.message) || `HTTP ${res.status}`;
          status.textContent = `Reports could not be loaded: ${why}`;
          return;
        }
        const page = await res.json();
        if (generation !== state.reportsGeneration) return;
        const reports = page.reports || [];
        const merged = mergeReports(reports, anchor);
        added += merged.added;
        // The paging position is that of the oldest page loaded; a newest page sets it only
        // until an older one has been asked for.
        if (cursor || state.reportsCursor === undefined)
          state.reportsCursor = page.next_cursor || null;
        const gap =
          !cursor &&
          hadReports &&
          page.next_cursor &&
          reports.length > 0 &&
          merged.added === reports.length;
        if (!gap || pages >= GAP_PAGES) break;
        at = page.next_cursor;
        anchor = merged.last;
      }
      if (added && !cursor && hadReports)
        status.textContent = `${added} new report${added > 1 ? 's' : ''}`;
      else if (
        status.textContent === 'loading…' ||
        status.textContent.startsWith('Reports could not')
      )
        status.textContent = '';
      $('reports-more').hidden = !state.reportsCursor;
      showReportCount();
      $('reports-updated').textContent = `updated ${fmtTime(new Date().toISOString())}`;
    } catch (e) {
      status.textContent = `Reports could not be loaded: ${e.message || e} (network)`;
    } finally {
      if (generation === state.reportsGeneration) {
        state.reportsLoading = false;
        scheduleReports();
      }
    }
  }

  // Puts a page's reports in the list: known ones are updated in place, new ones go after
  // the page's previous report, the page's first at `anchor`: 'top', 'end', or after that
  // entry. The number of new reports, and the page's last entry.
  function mergeReports(reports, anchor) {
    const list = $('reports');
    let prev = null;
    let added = 0;
    for (const r of reports) {
      if (!r || typeof r.id !== 'string' || typeof r.device_id !== 'string') continue;
      const key = reportKey(r);
      let entry = state.reports.get(key);
      if (!entry) {
        entry = { report: r, node: buildReport(), files: new Map() };
        state.reports.set(key, entry);
        added++;
        if (prev) prev.node.after(entry.node);
        else if (anchor === 'end') list.append(entry.node);
        else if (anchor === 'top' || !anchor) list.prepend(entry.node);
        else anchor.node.after(entry.node);
      }
      entry.report = r;
      fillReport(entry);
      prev = entry;
    }
    return { added, last: prev };
  }

  // "(12)", or "(25+)" while older reports are still to load.
  function showReportCount() {
    const n = state.reports.size;
    $('reports-empty').hidden = n > 0;
    $('reports-count').textContent = n ? `(${n}${state.reportsCursor ? '+' : ''})` : '';
  }

  function buildReport() {
    return $('report-template').content.firstElementChild.cloneNode(true);
  }

  function fact(dl, term, value) {
    if (value === null || value === undefined || value === '') return;
    dl.append(el('dt', '', term), el('dd', '', String(value)));
  }

  // Writes a report's current view into its entry (files are kept, only their state moves).
  function fillReport(entry) {
    const r = entry.report;
    const c = r.content || {};
    const q = (sel) => entry.node.querySelector(sel);
    entry.node.dataset.id = r.id;
    entry.node.dataset.deviceId = r.device_id;
    entry.node.dataset.severity = c.severity || '';
    q('.rkind').textContent = words(c.kind).toUpperCase() || 'REPORT';
    q('.severity').textContent = c.severity ? words(c.severity) : '';
    q('.crew').textContent = c.crew ? c.crew.crew_id : '?';
    const who = [];
    if (c.crew && c.crew.staff_id) who.push(`staff ${c.crew.staff_id}`);
    who.push(`device ${r.device_id}`);
    q('.who').textContent = who.join(' · ');
    q('.times').textContent =
      `occurred ${fmtTime(c.occurred_at)} · finalized ${fmtTime(c.finalized_at)} (phone) · ` +
      `received ${fmtTime(r.received_at)} (server)`;
    const where = q('.where');
    where.replaceChildren();
    if (c.address) where.append(`Address: ${c.address}`);
    if (c.location) where.append(c.address ? ' · ' : '', 'Position ', position(c.location));
    q('.narrative').textContent = c.narrative || '';
    const dl = q('.facts');
    dl.replaceChildren();
    for (const h of c.staff_harmed || [])
      fact(
        dl,
        'Staff harmed',
        [words(h.role), h.name, h.injury_description].filter(Boolean).join(' — '),
      );
    fact(dl, 'Perpetrator', c.perpetrator_description);
    for (const w of c.witnesses || [])
      fact(dl, 'Witness', [w.name, w.contact].filter(Boolean).join(' — '));
    fact(
      dl,
      'Police',
      c.police_called
        ? `called${c.police_report_number ? `, report no. ${c.police_report_number}` : ''}`
        : 'not called',
    );
    fact(dl, 'Dispatch call no.', c.dispatch_call_number);
    fillFiles(entry);
  }

  function fillFiles(entry) {
    const r = entry.report;
    const list = entry.node.querySelector('.files');
    const atts = Array.isArray(r.attachments) ? r.attachments : [];
    entry.node.querySelector('.files-title').hidden = atts.length === 0;
    list.hidden = atts.length === 0;
    atts.forEach((a, i) => {
      let f = entry.files.get(a.id);
      if (!f || f.sha256 !== a.sha256) {
        if (f) f.node.remove();
        f = { sha256: a.sha256, node: el('li', 'file'), url: null, loading: false, error: '' };
        entry.files.set(a.id, f);
      }
      if (list.children[i] !== f.node) list.insertBefore(f.node, list.children[i] || null);
      f.att = a;
      fillFile(entry, f, i + 1, atts.length);
    });
  }

  const isInlineImage = (a) => INLINE_IMAGES.includes(String(a.mime_type).toLowerCase());

  // One file: what it is, its size and SHA-256; a stored photo inline, a stored recording in
  // a player once loaded, anything else as a file to save.
  function fillFile(entry, f, n, of) {
    const a = f.att;
    const node = f.node;
    const label = `${words(a.kind)} ${n} of ${of}`;
    node.dataset.attachmentId = a.id;
    node.dataset.kind = a.kind;
    node.dataset.stored = String(Boolean(a.stored));
    node.dataset.state = f.url ? 'loaded' : f.loading ? 'loading' : f.error ? 'error' : 'idle';
    const shown = node.dataset.shown; // what the node shows now: redraw only on a change
    const want = `${a.stored}|${a.received}|${Boolean(f.url)}|${f.loading}|${f.error}|${label}`;
    if (shown === want) return;
    node.dataset.shown = want;
    node.replaceChildren();

    const media = el('div', 'media');
    if (f.url && a.kind !== 'audio' && a.kind !== 'video' && isInlineImage(a)) {
      const img = document.createElement('img');
      img.alt =
        `${label}: photo attached to the report, ` +
        `captured ${fmtTime(a.captured_at)} (phone)`;
      img.decoding = 'async';
      img.src = f.url;
      media.append(img);
    } else if (f.url && (a.kind === 'audio' || a.kind === 'video')) {
      const player = document.createElement(a.kind === 'audio' ? 'audio' : 'video');
      player.controls = true;
      player.preload = 'metadata';
      player.src = f.url;
      player.setAttribute('aria-label', `${label}, captured ${fmtTime(a.captured_at)} (phone)`);
      media.append(player);
    }
    node.append(media);

    const info = el('div', 'info');
    info.append(el('strong', '', label), ` · ${a.mime_type} · ${fmtBytes(a.size)}`);
    info.append(` · captured ${fmtTime(a.captured_at)} (phone)`);
    const sha = el('div', 'sha');
    sha.append('SHA-256 ', el('code', '', a.sha256));
    info.append(sha);
    const actions = el('div', 'file-actions');
    if (!a.stored) {
      actions.append(
        el(
          'span',
          'pending',
          `Not on the server yet: ${fmtBytes(a.received)} of ${fmtBytes(a.size)} received.`,
        ),
      );
    } else if (f.url) {
      const save = el('a', 'save', `Save ${words(a.kind)}`);
      save.href = f.url;
      save.download = fileName(entry.report, a);
      actions.append(save);
    } else {
      const what =
        a.kind === 'audio' || a.kind === 'video'
          ? `Load and play ${words(a.kind)}`
          : isInlineImage(a)
            ? 'Show photo'
            : 'Load file';
      const btn = el('button', 'load', f.loading ? 'Loading…' : what);
      btn.type = 'button';
      btn.disabled = f.loading;
      btn.setAttribute('aria-label', `${btn.textContent} (${label}, ${fmtBytes(a.size)})`);
      btn.addEventListener('click', () => loadFile(entry, f));
      actions.append(btn);
    }
    if (f.error) actions.append(el('span', 'error', f.error));
    info.append(actions);
    node.append(info);

    // Photos of a sensible size load by themselves once stored.
    const small = a.size <= AUTO_IMAGE_MAX_BYTES;
    if (a.stored && !f.url && !f.loading && !f.error && isInlineImage(a) && small)
      loadFile(entry, f);
  }

  function fileName(report, a) {
    const ext = (String(a.mime_type).split('/')[1] || 'bin').replace(/[^a-z0-9]/gi, '').slice(0, 8);
    return `report-${report.id.slice(0, 8)}-${a.kind}-${a.id.slice(0, 8)}.${ext || 'bin'}`;
  }

  function fileUrl(report, a) {
    return (
      `${REPORTS_PATH}/${encodeURIComponent(report.id)}/attachments/${encodeURIComponent(a.id)}` +
      `?device_id=${encodeURIComponent(report.device_id)}`
    );
  }

  // Fetches a stored file with the token in a header into a blob: URL.
  async function loadFile(entry, f) {
    if (f.loading || f.url) return;
    const generation = state.reportsGeneration;
    f.loading = true;
    f.error = '';
    const redraw = () => {
      const atts = entry.report.attachments || [];
      const i = atts.findIndex((x) => x.id === f.att.id);
      fillFile(entry, f, i + 1, atts.length);
    };
    redraw();
    try {
      const res = await fetch(fileUrl(entry.report, f.att), {
        headers: authHeaders(),
        cache: 'no-store',
      });
      if (generation !== state.reportsGeneration) return;
      if (res.status === 401) {
        askToken('The server refused this token.');
        return;
      }
      if (!res.ok) {
        const body = await res.json().catch(() => null);
        f.error = `Could not load: ${(body && body.message) || `HTTP ${res.status}`}`;
        return;
      }
      const blob = await res.blob();
      if (generation !== state.reportsGeneration) return;
      f.url = URL.createObjectURL(blob);
    } catch (e) {
      f.error = `Could not load: ${e.message || e} (network)`;
    } finally {
      f.loading = false;
      if (generation === state.reportsGeneration) redraw();
    }
  }

  // Forgets every report and revokes their blob: URLs (a new token, or none).
  function clearReports() {
    state.reportsGeneration++;
    clearTimeout(state.reportsTimer);
    state.reportsLoading = false;
    for (const entry of state.reports.values()) {
      for (const f of entry.files.values()) if (f.url) URL.revokeObjectURL(f.url);
      entry.node.remove();
    }
    state.reports.clear();
    state.reportsCursor = undefined;
    $('reports-more').hidden = true;
    $('reports-empty').hidden = true;
    $('reports-count').textContent = '';
    $('reports-status').textContent = '';
    $('reports-updated').textContent = '';
  }

  // ---- Token --------------------------------------------------------------------------------

  function askToken(error) {
    stop();
    state.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    setStatus('off', 'not connected');
    clearReports();
    $('board').hidden = true;
    $('views').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = error || '';
    $('token').focus();
  }

  function start() {
    $('login').hidden = true;
    $('board').hidden = false;
    $('views').hidden = false;
    $('logout').hidden = false;
    for (const a of state.alarms.values()) a.node.remove();
    state.alarms.clear();
    state.lastEventId = null;
    state.connectedAt = 0;
    state.backoffMs = BACKOFF_MIN_MS;
    layout();
    connect();
    clearReports();
    showView(state.view);
  }

  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('token').value.trim();
    if (!token) return;
    $('token').value = '';
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  $('logout').addEventListener('click', () => askToken(''));

  // Every second: ages and escalations; a new layout when an escalation changed, and every
  // 30 s anyway (resolved alarms age out of the list).
  let ticks = 0;
  setInterval(() => {
    let escalationChanged = false;
    for (const a of state.alarms.values()) {
      const was = a.escalated;
      if (isOpen(a.sos)) tick(a);
      escalationChanged ||= was !== a.escalated;
    }
    if (escalationChanged || ++ticks % 30 === 0) layout();
  }, 1000);

  if (state.token) start();
  else askToken('');
})();
