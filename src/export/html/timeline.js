// slicesim timeline: draws the run embedded in #slicesim-data on a canvas.
//
// Only the visible stretch is drawn (binary search per lane), and markers that crowd one
// spot are merged into a counted glyph (layoutRow, the same rule as
// src/export/lanes.rs::layout_row), so a 100 000-event run redraws in milliseconds.
// After each draw the page publishes what it drew on <body data-*> for tests.
(function () {
  'use strict';
  var started = performance.now();
  var D = JSON.parse(document.getElementById('slicesim-data').textContent);
  var S = D.strings;
  var canvas = document.getElementById('timeline');
  var ctx = canvas.getContext('2d');
  var tooltip = document.getElementById('tooltip');
  var GUTTER = 150, AXIS_H = 26, RIGHT = 12, LANE_H = D.lane_h, GW = D.glyph_w;
  var MIN_SPAN_NS = 20;
  var CPUS = D.lanes.filter(function (l) { return l.cpu; }).length;

  // Marker rows per lane: one per distinct glyph y, each with its times and indices.
  var rowYs = [];
  D.mark_kinds.forEach(function (k) { if (rowYs.indexOf(k.y) < 0) rowYs.push(k.y); });
  var rows = D.marks.map(function (m) {
    return rowYs.map(function (y) {
      var idx = [];
      for (var i = 0; i < m.k.length; i++) if (D.mark_kinds[m.k[i]].y === y) idx.push(i);
      return { y: y, idx: idx, t: idx.map(function (i) { return m.t[i]; }), glyphs: [] };
    });
  });

  var view = { start: 0, end: D.end_ns };
  if (D.window) view = { start: D.window[0], end: D.window[1] };
  var hashWindow = /window=(\d+):(\d+)/.exec(location.hash);
  if (hashWindow && +hashWindow[2] > +hashWindow[1]) view = { start: +hashWindow[1], end: +hashWindow[2] };

  // The plot's width, read from the layout once per draw (not per marker: it is a DOM query).
  var plotWidth = 50;
  function plotW() { return plotWidth; }
  function measure() { plotWidth = Math.max(50, canvas.clientWidth - GUTTER - RIGHT); }
  function xOf(t) { return GUTTER + (t - view.start) * plotWidth / (view.end - view.start); }
  function tOf(x) { return view.start + (x - GUTTER) * (view.end - view.start) / plotWidth; }
  function laneTop(i) { return AXIS_H + i * LANE_H; }

  // First index with a[i] >= v (a sorted).
  function lowerBound(a, v) {
    var lo = 0, hi = a.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (a[mid] < v) lo = mid + 1; else hi = mid; }
    return lo;
  }

  // ns in the unit of the view's span, with the decimals a tick step needs.
  function fmtTime(ns, step) {
    var span = view.end - view.start;
    if (span >= 2e6) return (ns / 1e6).toFixed(Math.max(0, 6 - Math.floor(Math.log10(step) + 1e-9))) + ' ms';
    if (span >= 2e3) return (ns / 1e3).toFixed(Math.max(0, 3 - Math.floor(Math.log10(step) + 1e-9))) + ' us';
    return Math.round(ns) + ' ns';
  }

  // Exact, as --trace text prints times: µs with every ns.
  function usExact(ns) { return (ns / 1e3).toFixed(3) + ' us'; }

  function glyph(c, shape, color, x, y) {
    c.fillStyle = color; c.strokeStyle = color; c.lineWidth = 1.6;
    c.beginPath();
    switch (shape) {
      case 'bar': c.fillRect(x - 1, y - 6, 2, 12); return;
      case 'tri_up': c.moveTo(x, y - 5); c.lineTo(x + 5, y + 4); c.lineTo(x - 5, y + 4); c.closePath(); c.fill(); return;
      case 'tri_down': c.moveTo(x, y + 5); c.lineTo(x + 5, y - 4); c.lineTo(x - 5, y - 4); c.closePath(); c.fill(); return;
      case 'diamond': c.moveTo(x, y - 6); c.lineTo(x + 5, y); c.lineTo(x, y + 6); c.lineTo(x - 5, y); c.closePath(); c.fill(); return;
      case 'circle': c.arc(x, y, 4.5, 0, 2 * Math.PI); c.fill(); return;
      case 'ring': c.arc(x, y, 3.8, 0, 2 * Math.PI); c.stroke(); return;
      case 'square': c.fillRect(x - 4, y - 4, 8, 8); return;
      case 'box': c.strokeRect(x - 3.5, y - 3.5, 7, 7); return;
      case 'x': c.moveTo(x - 4, y - 4); c.lineTo(x + 4, y + 4); c.moveTo(x + 4, y - 4); c.lineTo(x - 4, y + 4); c.stroke(); return;
      case 'cross': c.lineWidth = 3; c.moveTo(x - 5, y); c.lineTo(x + 5, y); c.moveTo(x, y - 6); c.lineTo(x, y + 6); c.stroke(); return;
    }
  }

  // Room a label takes beside its glyph (label_w in lanes.rs).
  function labelW(text) { return text ? 6 * text.length + 2 : 0; }

  // Markers closer than one glyph form a cluster: up to fan_max side by side, each
  // followed by room for its label (nudged right of their time), a denser or
  // further-pushed one as a single counted glyph. Mirrors layout_row in lanes.rs.
  function layoutRow(lane, row, lo, hi) {
    var m = D.marks[lane], out = [], cursor = -Infinity, i = lo;
    while (i < hi) {
      var x0 = xOf(row.t[i]), j = i + 1;
      while (j < hi && xOf(row.t[j]) - x0 < GW) j++;
      var start = Math.max(x0, cursor), n = j - i;
      if (n <= D.fan_max && start - x0 <= GW * D.fan_max) {
        var x = start;
        for (var k = 0; k < n; k++) {
          var mi = row.idx[i + k];
          out.push({ x: x, first: mi, count: 1, kind: m.k[mi] });
          x += GW + labelW(S[m.l[mi]]);
        }
        cursor = x;
      } else {
        var best = m.k[row.idx[i]];
        for (var q = i + 1; q < j; q++) {
          var kq = m.k[row.idx[q]];
          if (D.mark_kinds[kq].rank < D.mark_kinds[best].rank) best = kq;
        }
        out.push({ x: x0, first: row.idx[i], count: n, members: row.idx.slice(i, j), kind: best });
        cursor = x0 + GW;
      }
      i = j;
    }
    return out;
  }

  function drawAxis(w) {
    var span = view.end - view.start, target = span / Math.max(1, plotW() / 110);
    var step = Math.pow(10, Math.floor(Math.log10(target)));
    if (target / step >= 5) step *= 5; else if (target / step >= 2) step *= 2;
    step = Math.max(1, step);
    ctx.font = '11px system-ui, sans-serif'; ctx.textBaseline = 'middle';
    for (var t = Math.ceil(view.start / step) * step; t <= view.end; t += step) {
      var x = xOf(t);
      ctx.fillStyle = '#eee'; ctx.fillRect(Math.round(x), AXIS_H, 1, D.lanes.length * LANE_H);
      ctx.fillStyle = '#555'; ctx.fillRect(Math.round(x), AXIS_H - 6, 1, 6);
      ctx.textAlign = 'center'; ctx.fillText(fmtTime(t, step), x, AXIS_H - 14);
    }
    ctx.fillStyle = '#555'; ctx.fillRect(GUTTER, AXIS_H - 1, w - GUTTER - RIGHT, 1);
  }

  function drawBands(lane, top) {
    for (var si = 0; si < D.bands.length; si++) {
      var b = D.bands[si];
      if (b.lane !== lane) continue;
      var k = D.band_kinds[b.kind], y = top + k.y, lastPx = -1;
      // Bands of one kind on one lane never overlap: sorted by end too.
      for (var i = lowerBound(b.e, view.start); i < b.s.length && b.s[i] <= view.end; i++) {
        var x1 = xOf(b.s[i]), x2 = xOf(b.e[i]);
        if (x2 < lastPx + 1 && Math.floor(x1) <= lastPx) continue; // pixel already filled
        var w = Math.max(1, x2 - x1);
        ctx.fillStyle = k.color || D.palette[b.p[i] % D.palette.length];
        ctx.fillRect(x1, y, w, k.h);
        lastPx = Math.floor(x1 + w);
        var label = S[b.n[i]];
        if (label && w > 40) {
          ctx.fillStyle = '#fff'; ctx.font = '10px system-ui, sans-serif'; ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
          ctx.save(); ctx.beginPath(); ctx.rect(x1, y, w, k.h); ctx.clip();
          ctx.fillText(label, Math.max(x1, GUTTER) + 3, y + k.h / 2 + 0.5);
          ctx.restore();
        }
      }
    }
  }

  var drawn = { events: 0, glyphs: 0, aggregates: 0 };

  function drawMarks(lane, top) {
    rows[lane].forEach(function (row) {
      var lo = lowerBound(row.t, view.start), hi = lowerBound(row.t, view.end + 1);
      var gs = layoutRow(lane, row, lo, hi);
      row.glyphs = gs;
      var m = D.marks[lane];
      for (var g = 0; g < gs.length; g++) {
        var G = gs[g], k = D.mark_kinds[G.kind], y = top + row.y;
        drawn.events += G.count; drawn.glyphs++;
        if (G.count === 1) {
          glyph(ctx, k.shape, k.color, G.x, y);
          // A label shows where layoutRow left it room (not where a merged box sits).
          var label = S[m.l[G.first]], next = g + 1 < gs.length ? gs[g + 1].x : Infinity;
          if (label && next - G.x >= GW + labelW(label)) {
            ctx.font = '10px system-ui, sans-serif';
            ctx.fillStyle = k.color; ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
            ctx.fillText(label, G.x + 6, y - 1);
          }
        } else {
          drawn.aggregates++;
          ctx.fillStyle = k.color; ctx.fillRect(G.x - GW / 2 + 0.5, y - 6, GW - 1, 12);
          ctx.fillStyle = '#fff'; ctx.font = 'bold 8px system-ui, sans-serif'; ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
          ctx.fillText(G.count > 99 ? '+' : String(G.count), G.x, y + 0.5);
        }
      }
    });
  }

  function draw() {
    var t0 = performance.now();
    measure();
    var dpr = window.devicePixelRatio || 1, w = canvas.clientWidth;
    var h = AXIS_H + D.lanes.length * LANE_H + 6;
    canvas.style.height = h + 'px';
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    drawn = { events: 0, glyphs: 0, aggregates: 0 };
    D.lanes.forEach(function (l, i) {
      var top = laneTop(i);
      ctx.fillStyle = i % 2 ? '#fafafa' : '#f1f3f5'; ctx.fillRect(0, top, w, LANE_H);
      ctx.fillStyle = '#ccc'; ctx.fillRect(0, top + LANE_H - 1, w, 1);
    });
    drawAxis(w);
    ctx.save(); ctx.beginPath(); ctx.rect(GUTTER, 0, w - GUTTER - RIGHT + 6, h); ctx.clip();
    D.lanes.forEach(function (l, i) { drawBands(i, laneTop(i)); drawMarks(i, laneTop(i)); });
    ctx.restore();
    D.lanes.forEach(function (l, i) {
      var top = laneTop(i);
      ctx.fillStyle = '#222'; ctx.font = 'bold 12px system-ui, sans-serif'; ctx.textAlign = 'left'; ctx.textBaseline = 'middle';
      ctx.fillText(l.name.length > 20 ? l.name.slice(0, 19) + '\u2026' : l.name, 6, top + 12);
      ctx.fillStyle = '#777'; ctx.font = '9px system-ui, sans-serif'; ctx.textAlign = 'right';
      D.band_kinds.forEach(function (k) { if (k.cpu_lane === l.cpu) ctx.fillText(k.short, GUTTER - 5, top + k.y + k.h / 2); });
    });
    var unit = (view.end - view.start) / 10;
    document.getElementById('window').textContent = fmtTime(view.start, unit) + ' \u2026 ' + fmtTime(view.end, unit);
    var b = document.body.dataset;
    b.markersDrawn = String(drawn.events);
    b.glyphsDrawn = String(drawn.glyphs);
    b.aggregatesDrawn = String(drawn.aggregates);
    b.drawMs = (performance.now() - t0).toFixed(1);
    b.viewStart = String(Math.round(view.start)); b.viewEnd = String(Math.round(view.end));
    b.plotLeft = String(GUTTER); b.plotWidth = String(plotWidth);
  }

  var pending = false;
  function redraw() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; draw(); });
  }

  function setView(start, end) {
    var span = Math.max(MIN_SPAN_NS, end - start), total = D.end_ns;
    span = Math.min(span, total * 1.5);
    start = Math.min(Math.max(start, -total * 0.25), total * 1.25 - span);
    view = { start: start, end: start + span };
    redraw();
  }
  function zoom(factor, atX) {
    var t = atX === undefined ? (view.start + view.end) / 2 : tOf(atX);
    setView(t - (t - view.start) * factor, t + (view.end - t) * factor);
  }
  function pan(fraction) {
    var d = (view.end - view.start) * fraction;
    setView(view.start + d, view.end + d);
  }

  // What is under (x, y), as text: a glyph's records, or the bands there.
  function describeAt(x, y) {
    var lane = Math.floor((y - AXIS_H) / LANE_H);
    if (lane < 0 || lane >= D.lanes.length || x < GUTTER) return null;
    var top = laneTop(lane), m = D.marks[lane], best = null;
    rows[lane].forEach(function (row) {
      if (Math.abs(y - (top + row.y)) > 7) return;
      row.glyphs.forEach(function (g) {
        var dx = Math.abs(x - g.x);
        if (dx <= GW / 2 && (!best || dx < best.dx)) best = { g: g, dx: dx };
      });
    });
    function line(i) {
      var who = m.w[i] < 0 ? 'idle' : D.lanes[CPUS + m.w[i]].name;
      return usExact(m.t[i]) + '  cpu' + m.c[i] + '  ' + who + ': ' + S[m.x[i]];
    }
    if (best) {
      var g = best.g;
      if (g.count === 1) return D.mark_kinds[g.kind].legend + '\n' + line(g.first);
      var byKind = {};
      g.members.forEach(function (i) { var n = D.mark_kinds[m.k[i]].name; byKind[n] = (byKind[n] || 0) + 1; });
      var text = g.count + ' events here (zoom in to separate them): ' +
        Object.keys(byKind).map(function (n) { return byKind[n] + ' ' + n; }).join(', ');
      g.members.slice(0, 8).forEach(function (i) { text += '\n' + line(i); });
      if (g.count > 8) text += '\n\u2026';
      return text;
    }
    var t = tOf(x), found = [];
    D.bands.forEach(function (b) {
      if (b.lane !== lane) return;
      var k = D.band_kinds[b.kind];
      if (y < top + k.y - 1 || y > top + k.y + k.h + 1) return;
      var i = lowerBound(b.e, t);
      if (i < b.s.length && b.s[i] <= t) {
        found.push(k.legend + '\n' + S[b.d[i]] + '\n' + usExact(b.s[i]) + ' \u2026 ' + usExact(b.e[i]) + ' (' + (b.e[i] - b.s[i]) + ' ns)');
      }
    });
    return found.length ? found.join('\n') : null;
  }

  function hoverAt(x, y) {
    var text = describeAt(x, y);
    document.body.dataset.hover = text || '';
    if (!text) { tooltip.hidden = true; return; }
    tooltip.textContent = text;
    tooltip.hidden = false;
    var left = x + 14, box = canvas.clientWidth;
    tooltip.style.left = Math.max(0, Math.min(left, box - tooltip.offsetWidth - 4)) + 'px';
    tooltip.style.top = (y + 14) + 'px';
  }

  var drag = null;
  canvas.addEventListener('wheel', function (e) {
    e.preventDefault();
    if (e.shiftKey) pan(e.deltaY / 1000);
    else zoom(Math.exp(e.deltaY * 0.0015), e.offsetX);
  }, { passive: false });
  canvas.addEventListener('mousedown', function (e) {
    drag = { x: e.clientX, start: view.start, end: view.end };
    canvas.classList.add('dragging');
  });
  window.addEventListener('mouseup', function () { drag = null; canvas.classList.remove('dragging'); });
  canvas.addEventListener('mousemove', function (e) {
    if (drag) {
      var dt = (e.clientX - drag.x) * (drag.end - drag.start) / plotW();
      setView(drag.start - dt, drag.end - dt);
      tooltip.hidden = true;
      return;
    }
    hoverAt(e.offsetX, e.offsetY);
  });
  canvas.addEventListener('mouseleave', function () { tooltip.hidden = true; });
  function key(e) {
    if (e.target && e.target.tagName === 'BUTTON' && e.key === 'Enter') return;
    switch (e.key) {
      case '+': case '=': zoom(0.5); break;
      case '-': case '_': zoom(2); break;
      case 'ArrowLeft': pan(-0.2); break;
      case 'ArrowRight': pan(0.2); break;
      case '0': case 'Home': setView(0, D.end_ns); break;
      default: return;
    }
    e.preventDefault();
  }
  window.addEventListener('keydown', key);
  document.getElementById('zoom-in').onclick = function () { zoom(0.5); };
  document.getElementById('zoom-out').onclick = function () { zoom(2); };
  document.getElementById('pan-left').onclick = function () { pan(-0.2); };
  document.getElementById('pan-right').onclick = function () { pan(0.2); };
  document.getElementById('reset').onclick = function () { setView(0, D.end_ns); };
  window.addEventListener('resize', redraw);

  function legend() {
    var box = document.getElementById('legend');
    function item(draw, text) {
      var el = document.createElement('span'); el.className = 'item';
      var c = document.createElement('canvas'); c.width = 56; c.height = 32;
      var g = c.getContext('2d'); g.scale(2, 2); draw(g);
      el.appendChild(c); el.appendChild(document.createTextNode(text)); box.appendChild(el);
    }
    D.mark_kinds.forEach(function (k) { item(function (g) { glyph(g, k.shape, k.color, 14, 8); }, k.legend); });
    D.band_kinds.forEach(function (k) {
      item(function (g) {
        if (k.color) { g.fillStyle = k.color; g.fillRect(2, 8 - k.h / 2, 24, k.h); return; }
        D.palette.slice(0, 3).forEach(function (c, i) { g.fillStyle = c; g.fillRect(2 + i * 8, 2, 8, 12); });
      }, k.legend);
    });
    item(function (g) {
      g.fillStyle = '#555'; g.fillRect(9, 2, 9, 12);
      g.fillStyle = '#fff'; g.font = 'bold 8px system-ui, sans-serif'; g.textAlign = 'center'; g.textBaseline = 'middle'; g.fillText('7', 13.5, 8.5);
    }, 'n crowded events (zoom in)');
  }

  document.getElementById('title').textContent = D.title;
  document.getElementById('subtitle').textContent = D.subtitle;
  var total = 0;
  D.marks.forEach(function (m) { total += m.t.length; });
  document.body.dataset.markersTotal = String(total);
  legend();
  draw();
  document.body.dataset.loadMs = (performance.now() - started).toFixed(1);
  // Test hook: #probe=LANE:NS hovers, as a mouse would, the glyph of lane LANE that
  // stands for the marker nearest NS in time.
  var probe = /probe=(\d+):(\d+)/.exec(location.hash);
  if (probe && rows[+probe[1]]) {
    var lane = +probe[1], t = +probe[2], pm = D.marks[lane], best = null;
    rows[lane].forEach(function (row) {
      row.glyphs.forEach(function (g) {
        (g.members || [g.first]).forEach(function (i) {
          var dt = Math.abs(pm.t[i] - t);
          if (!best || dt < best.dt) best = { dt: dt, x: g.x, y: laneTop(lane) + row.y };
        });
      });
    });
    if (best) hoverAt(best.x, best.y);
  }
  // For scripts and benchmarks: show [start, end] (ns) and draw now, not on the next frame.
  window.slicesimTimeline = {
    show: function (start, end) { view = { start: start, end: end }; draw(); return drawn; }
  };
  document.body.dataset.ready = '1';
})();
