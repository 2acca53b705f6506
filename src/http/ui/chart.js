// agentkv's status page: the chart of time to first token by placement,
// drawn by hand on a canvas from /admin/status's "ttft" buckets (average per
// bucket, one line per placement). Text goes in with textContent only.
'use strict';

window.agentkvChart = (() => {
  const COLORS = {
    resident: '#2f7d32', restored: '#1f5fbf', prefix: '#8e44ad', cold: '#c0392b', stateless: '#7f8c8d',
  };
  const PLACEMENTS = Object.keys(COLORS);

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // The step of 4 grid lines that cover `v`: 1, 2, 2.5 or 5 times a power of 10.
  function niceStep(v) {
    if (v <= 0) return 5;
    const p = Math.pow(10, Math.floor(Math.log10(v / 4)));
    for (const m of [1, 2, 2.5, 5, 10]) if (4 * m * p >= v) return m * p;
    return 10 * p;
  }

  function label(ms) {
    if (ms < 1000) return ms + ' ms';
    return String(Math.round(ms / 100) / 10) + ' s';
  }

  function draw(canvas, legend, ttft, now) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 560;
    const h = canvas.clientHeight || 200;
    if (canvas.width !== Math.round(w * ratio)) canvas.width = Math.round(w * ratio);
    if (canvas.height !== Math.round(h * ratio)) canvas.height = Math.round(h * ratio);
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    const left = 48, right = 8, top = 8, bottom = 22;
    const buckets = ttft.buckets;
    const span = buckets.length * ttft.bucket_ms;
    const start = buckets.length ? buckets[0].start : now - span;
    let max = 0;
    const counts = {};
    for (const b of buckets) {
      for (const p of PLACEMENTS) {
        if (!b[p]) continue;
        max = Math.max(max, b[p].avg_ms);
        counts[p] = (counts[p] || 0) + b[p].count;
      }
    }
    const step = niceStep(max);
    const ymax = 4 * step;
    const x = (t) => left + ((t - start) / span) * (w - left - right);
    const y = (v) => top + (1 - v / ymax) * (h - top - bottom);

    g.font = '11px system-ui, sans-serif';
    g.strokeStyle = '#e2e5ea';
    g.fillStyle = '#66707c';
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (let i = 0; i <= 4; i += 1) {
      const v = step * i;
      g.beginPath();
      g.moveTo(left, Math.round(y(v)) + 0.5);
      g.lineTo(w - right, Math.round(y(v)) + 0.5);
      g.stroke();
      g.fillText(label(v), left - 6, y(v));
    }
    g.textAlign = 'center';
    g.textBaseline = 'top';
    for (let m = 10; m >= 0; m -= 2) {
      const t = now - m * 60000;
      if (t < start) continue;
      g.fillText(m === 0 ? 'now' : '−' + m + ' min', x(t), h - bottom + 6);
    }

    for (const p of PLACEMENTS) {
      if (!counts[p]) continue;
      g.strokeStyle = COLORS[p];
      g.fillStyle = COLORS[p];
      g.lineWidth = 1.5;
      let drawing = false;
      g.beginPath();
      for (const b of buckets) {
        if (!b[p]) { drawing = false; continue; }
        const px = x(b.start + ttft.bucket_ms / 2);
        const py = y(b[p].avg_ms);
        if (drawing) g.lineTo(px, py); else g.moveTo(px, py);
        drawing = true;
      }
      g.stroke();
      for (const b of buckets) {
        if (!b[p]) continue;
        g.beginPath();
        g.arc(x(b.start + ttft.bucket_ms / 2), y(b[p].avg_ms), 2.5, 0, 2 * Math.PI);
        g.fill();
      }
    }

    const items = PLACEMENTS.filter((p) => counts[p]).map((p) => {
      const item = el('span');
      const swatch = el('span', null, 'swatch');
      swatch.style.background = COLORS[p];
      item.append(swatch, document.createTextNode(p + ' (' + counts[p] + ')'));
      return item;
    });
    if (!items.length) items.push(el('span', 'no requests in the last 10 minutes'));
    legend.replaceChildren(...items);
  }

  return { draw };
})();
