// The live part of the status page: swap in what /events sends (at most once a second, only on change),
// and replay dead letters without leaving the page. Without this script the page is a readable snapshot.
(() => {
  'use strict';
  const live = document.getElementById('live');
  const conn = document.getElementById('conn');
  const notice = document.getElementById('notice');
  const token = new URLSearchParams(location.search).get('token') || '';
  const query = token ? '?token=' + encodeURIComponent(token) : '';
  const say = (el, text) => { if (el) el.textContent = text; };

  const es = new EventSource('/events' + query);
  const asof = document.getElementById('asof');
  const clock = (at) => { if (asof) { asof.dateTime = at; asof.textContent = (at.split('T')[1] || at).slice(0, 8); } };
  // the live part, when it changed: keep what the reader opened or closed
  es.addEventListener('live', (e) => {
    const open = {};
    live.querySelectorAll('details[id]').forEach((d) => { open[d.id] = d.open; });
    live.innerHTML = e.data;
    live.querySelectorAll('details[id]').forEach((d) => { if (d.id in open) d.open = open[d.id]; });
    say(conn, 'live');
    conn && conn.classList.add('on');
  });
  // once a second: nothing changed, the time it was checked
  es.addEventListener('tick', (e) => clock(e.data));
  // EventSource reconnects by itself (a restarted supervisor comes back on the same page when its port is set)
  es.onerror = () => { say(conn, 'reconnecting…'); conn && conn.classList.remove('on'); };

  let hide;
  const tell = (text, ok) => {
    say(notice, text);
    notice.className = 'notice ' + (ok ? 'ok' : 'bad');
    clearTimeout(hide);
    hide = setTimeout(() => say(notice, ''), 10000);
  };

  document.addEventListener('submit', async (ev) => {
    const form = ev.target;
    if (!form.classList || !form.classList.contains('replay')) return;
    ev.preventDefault();
    const button = form.querySelector('button');
    const id = button ? button.dataset.id : '?';
    const t = (form.elements.token && form.elements.token.value) || token;
    if (button) { button.disabled = true; button.textContent = 'Replaying…'; }
    try {
      const r = await fetch(form.action, {
        method: 'POST', credentials: 'same-origin', headers: { 'X-Ghboot-Token': t },
      });
      const body = await r.json().catch(() => ({}));
      tell(r.ok
        ? `Replayed dead letter ${body.replayed} (events stream sequence ${body.sequence}).`
        : `Replay of dead letter ${id} refused (${r.status}): ${body.error || 'see ghboot logs supervisor'}`, r.ok);
    } catch (e) {
      tell(`Replay of dead letter ${id} failed: ${e}`, false);
    }
    if (button && button.isConnected) { button.disabled = false; button.textContent = 'Replay'; }
  });
})();
