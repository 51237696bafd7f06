// Text that runs into other text or is cut, in the page as drawn (shadow roots included): pairs of text boxes
// (each line of a text node) that overlap, elements whose clipped text is wider than they are, <select>s narrower
// than their chosen option, and Bokeh figure titles (drawn on the canvas) wider than their figure. Table cells are
// left out: Tabulator clips a long value on purpose. Used by tests/dashboard/test_classroom.py.
() => {
  const els = [];
  const walk = (root) => { for (const el of root.querySelectorAll('*')) { if (el.shadowRoot) walk(el.shadowRoot); els.push(el); } };
  walk(document);
  const visible = (el) => { const r = el.getBoundingClientRect(); if (r.width < 1 || r.height < 1) return null;
    const cs = getComputedStyle(el); if (cs.visibility === 'hidden' || cs.display === 'none' || +cs.opacity === 0) return null; return r; };
  const ctx = document.createElement('canvas').getContext('2d');
  const width = (text, font) => { ctx.font = font; return ctx.measureText(text).width; };
  const texts = [], cut = [];
  for (const el of els) {
    if (['STYLE', 'SCRIPT', 'LINK', 'OPTION', 'svg'].includes(el.tagName)) continue;
    const own = Array.from(el.childNodes).filter(n => n.nodeType === 3 && n.textContent.trim()).map(n => n.textContent.trim()).join(' ');
    const r = visible(el); if (!r) continue;
    if (own) {
      // the box of the text itself, not of its element
      const range = document.createRange(), rects = [];
      for (const n of el.childNodes) if (n.nodeType === 3 && n.textContent.trim()) { range.selectNodeContents(n);
        for (const b of range.getClientRects()) if (b.width > 0) rects.push({left: b.left, top: b.top, right: b.right, bottom: b.bottom}); }
      if (rects.length && !el.closest('.tabulator-cell')) texts.push({text: own.slice(0, 50), rects, el});
      const cs = getComputedStyle(el);
      if ((cs.overflowX === 'hidden' || cs.textOverflow === 'ellipsis' || cs.overflow === 'hidden') && el.scrollWidth > el.clientWidth + 1 && !el.closest('.tabulator'))
        cut.push({kind: 'clipped', text: own.slice(0, 60), scroll: el.scrollWidth, client: el.clientWidth});
    }
    if (el.tagName === 'SELECT' && el.selectedIndex >= 0) {
      const cs = getComputedStyle(el), opt = el.options[el.selectedIndex];
      const need = width(opt.text, `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`) + parseFloat(cs.paddingLeft) + 18;
      if (need > el.clientWidth + 1) cut.push({kind: 'select', text: opt.text, need: Math.round(need), has: el.clientWidth});
    }
  }
  const over = [];
  for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
    if (texts[i].el.contains(texts[j].el) || texts[j].el.contains(texts[i].el)) continue;
    let hit = null;
    for (const a of texts[i].rects) for (const b of texts[j].rects) {
      const dx = Math.min(a.right, b.right) - Math.max(a.left, b.left), dy = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (dx > 2 && dy > 2) hit = [Math.round(dx), Math.round(dy)]; }
    if (hit) over.push([texts[i].text, texts[j].text, ...hit]);
  }
  const checked = [];
  // Bokeh figure titles drawn on the canvas: wider than the figure means cut
  for (const d of Bokeh.documents) for (const m of d.all_models) {
    if (!m.title || typeof m.title !== 'object' || !('text' in m.title) || !m.title.text) continue;
    const views = Bokeh.index ? Object.values(Bokeh.index) : [];
    const find = (vs) => { for (const v of vs) { if (v.model === m) return v; const c = v.child_views ? find(Array.from(v.child_views)) : null; if (c) return c; } return null; };
    const v = find(views); if (!v || !v.el) continue; const r = v.el.getBoundingClientRect(); if (r.width < 1) continue;
    const t = m.title, size = (t.text_font_size || '13px');
    const px = size.endsWith('px') ? parseFloat(size) : parseFloat(size) * 16;
    const need = width(t.text, `${t.text_font_style || 'bold'} ${px}px ${t.text_font || 'helvetica'}`) + 10;
    checked.push([t.text.slice(0,30), Math.round(need), Math.round(r.width)]);
    if (need > r.width) cut.push({kind: "title", text: t.text, need: Math.round(need), has: Math.round(r.width)});
  }
  return {over, cut, titles: checked.length};
}
