'use strict';
// The status page's script: "back up now" with the typed token as the bearer header (the token
// lives in the input only: no cookie, no storage), and while a backup runs the progress from
// /api/v1/status every second; when it has ended the sections are replaced by fresh ones.
(function () {
  const token = document.getElementById('token');
  let timer = null;
  const sections = () => Array.from(document.querySelectorAll('section.db'));
  const section = (db) => sections().find((s) => s.dataset.db === db);
  const bytes = (n) => {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return i === 0 ? n + ' B' : n.toFixed(1) + ' ' + u[i];
  };
  const say = (db, text, cls) => {
    const m = section(db).querySelector('.msg');
    m.textContent = text;
    m.className = 'msg ' + (cls || '');
  };
  document.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button.backup');
    if (!b) return;
    const db = b.dataset.db;
    const t = token ? token.value.trim() : '';
    if (!t) { say(db, 'Type the API token first.', 'refused'); return; }
    say(db, 'Starting…');
    try {
      const r = await fetch('/api/v1/backups?database=' + encodeURIComponent(db), {
        method: 'POST', headers: { Authorization: 'Bearer ' + t }, credentials: 'omit', cache: 'no-store',
      });
      const j = await r.json().catch(() => ({}));
      if (r.status === 202) { say(db, 'Backup ' + j.id + ' started.', 'ok'); poll(); return; }
      say(db, 'Refused (' + r.status + '): ' + (j.error || r.statusText), 'refused');
      if (r.status === 409) poll();
    } catch (e) {
      say(db, 'Request failed: ' + e, 'refused');
    }
  });
  function show(el, d) {
    const box = el.querySelector('.running');
    let text = box.querySelector('.text');
    const r = d.running;
    text.textContent = 'Running: ' + r.id + ' (' + r.trigger + '), started ' + r.started_at.slice(0, 19).replace('T', ' ') + ' UTC, ' +
      bytes(r.dumped_bytes) + ' dumped' + (r.expected_bytes ? ' of about ' + bytes(r.expected_bytes) : '');
    let p = box.querySelector('progress');
    if (!p) { p = document.createElement('progress'); box.appendChild(p); }
    p.max = Math.max(r.expected_bytes || 0, 1);
    p.value = Math.min(r.dumped_bytes, p.max);
    el.dataset.running = '1';
  }
  async function reload() {
    const r = await fetch('/', { cache: 'no-store', credentials: 'omit' });
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
    for (const fresh of doc.querySelectorAll('section.db')) {
      const old = section(fresh.dataset.db);
      if (!old) continue;
      const msg = old.querySelector('.msg');
      const node = document.importNode(fresh, true);
      const m = node.querySelector('.msg');
      m.textContent = msg.textContent;
      m.className = msg.className;
      old.replaceWith(node);
    }
    const free = doc.getElementById('free');
    if (free) document.getElementById('free').textContent = free.textContent;
  }
  async function tick() {
    let s;
    try {
      s = await (await fetch('/api/v1/status', { cache: 'no-store', credentials: 'omit' })).json();
    } catch (e) { return; }
    let running = false;
    let ended = false;
    for (const d of s.databases) {
      const el = section(d.name);
      if (!el) continue;
      if (d.running) { running = true; show(el, d); } else if (el.dataset.running === '1') { ended = true; }
    }
    if (ended || !running) await reload();
    if (!running) { clearInterval(timer); timer = null; }
  }
  function poll() {
    if (timer) return;
    timer = setInterval(tick, 1000);
    tick();
  }
  if (sections().some((s) => s.dataset.running === '1')) poll();
})();
