(function () {
  "use strict";
  const D = window.VGRC_DATA;
  const Q = D.queries;
  const nQ = Q.ids.length;
  const state = { filter: "all", run: 0, category: "", text: "", sort: "order", page: 0 };
  let rows = [];

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  // rank change of query q under run r: "improved" | "degraded" | "unchanged"
  function status(q, r) {
    const rf = D.runs[r].rankFinal[q], rs = D.runs[r].rankStage1[q];
    if (rf === rs) return "unchanged";
    if (rs < 0) return "improved";
    if (rf < 0) return "degraded";
    return rf < rs ? "improved" : "degraded";
  }
  function change(q, r) {
    const rf = D.runs[r].rankFinal[q], rs = D.runs[r].rankStage1[q];
    if (rf < 0 || rs < 0) return 0;
    return rs - rf;
  }

  function compute() {
    const text = state.text.trim().toLowerCase();
    const out = [];
    for (let q = 0; q < nQ; q++) {
      if (state.filter !== "all" && status(q, state.run) !== state.filter) continue;
      if (state.category && Q.categories[q].indexOf(state.category) < 0) continue;
      if (text && Q.captions[q].toLowerCase().indexOf(text) < 0 && Q.ids[q].toLowerCase().indexOf(text) < 0) continue;
      out.push(q);
    }
    if (state.sort === "gain") out.sort((a, b) => change(b, state.run) - change(a, state.run) || a - b);
    if (state.sort === "loss") out.sort((a, b) => change(a, state.run) - change(b, state.run) || a - b);
    rows = out;
  }

  function thumb(img, q, rank, grade) {
    const rel = Q.relevant[q].indexOf(img) >= 0;
    const t = D.images.thumbs[img];
    const box = el("div", { class: "thumb" + (rel ? " rel" : ""), title: D.images.ids[img] + (rel ? " (relevant)" : ""), "data-image-id": D.images.ids[img] });
    box.appendChild(el("img", { src: t || "", alt: D.images.ids[img], loading: "lazy" }));
    if (rank !== null) box.appendChild(el("span", { class: "rk", text: String(rank + 1) }));
    if (grade !== undefined && grade !== null) box.appendChild(el("span", { class: "grade", title: "symbolic relevance (App. H, 0–4)", text: String(grade) }));
    return box;
  }
  function thumbs(list, q, grades) {
    return el("div", { class: "thumbs" }, list.slice(0, D.top).map((img, i) => thumb(img, q, i, grades ? grades[q][i] : null)));
  }
  function rankText(r) { return r < 0 ? "—" : String(r + 1); }

  function render() {
    const body = document.getElementById("query-body");
    body.replaceChildren();
    const pages = Math.max(1, Math.ceil(rows.length / D.pageSize));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * D.pageSize;
    for (const q of rows.slice(start, start + D.pageSize)) {
      const tr = el("tr", { class: "query-row", "data-query-id": Q.ids[q], "data-status": status(q, state.run) });
      const info = Q.images ? el("td", {}, [thumb(Q.images[q], q, null), el("div", { class: "caption", text: Q.ids[q] })]) : el("td", {}, [
        el("div", { class: "caption", text: Q.captions[q] }),
        el("div", { class: "objects", text: "objects: " + (Q.objects[q].join(" · ") || "—") }),
        el("div", { class: "cats", text: Q.categories[q].length ? "category: " + Q.categories[q].join(", ") : "" }),
      ]);
      tr.appendChild(info);
      const target = Q.relevant[q].length ? thumb(Q.relevant[q][0], q, null) : el("span", { class: "muted", text: "none in gallery" });
      tr.appendChild(el("td", {}, [target]));
      const shownStage1 = new Set();
      D.runs.forEach((run, r) => {
        if (!shownStage1.has(run.stage1)) {
          shownStage1.add(run.stage1);
          tr.appendChild(el("td", { class: "stage1-list" }, [thumbs(D.stage1Lists[run.stage1][q], q, D.stage1Grades[run.stage1])]));
        }
        tr.appendChild(el("td", { class: "final-list", "data-run": String(r) }, [thumbs(run.final[q], q, run.finalGrades)]));
      });
      const ranks = el("td", {});
      D.runs.forEach((run, r) => {
        const s = status(q, r);
        ranks.appendChild(el("div", { class: s, text: (D.runs.length > 1 ? run.name + ": " : "") + rankText(run.rankStage1[q]) + " → " + rankText(run.rankFinal[q]) }));
        if (run.ndcg) ranks.appendChild(el("div", { class: "muted", text: "nDCG@10 " + run.ndcg[q].toFixed(3) }));
      });
      const btn = el("button", { class: "detail-button", "data-query-index": String(q), text: "details" });
      btn.addEventListener("click", () => openDetail(q));
      ranks.appendChild(btn);
      tr.appendChild(ranks);
      body.appendChild(tr);
    }
    document.getElementById("shown-count").textContent = String(rows.length);
    document.getElementById("page-info").textContent = "page " + (state.page + 1) + " of " + pages;
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
  }

  function update() { compute(); render(); }

  // ---- detail view: the saved transport plans of one query ----
  const pending = {};
  function loadChunk(r, chunk, then) {
    const key = r + "-" + chunk;
    if (window.VGRC_PLANS && window.VGRC_PLANS[key]) return then(window.VGRC_PLANS[key]);
    if (pending[key]) return pending[key].push(then);
    pending[key] = [then];
    const s = document.createElement("script");
    s.src = "data/plans-" + key + ".js";
    s.onload = () => { for (const f of pending[key]) f(window.VGRC_PLANS[key]); delete pending[key]; };
    s.onerror = () => { for (const f of pending[key]) f(null); delete pending[key]; };
    document.head.appendChild(s);
  }

  function planView(p, q) {
    const box = el("div", { class: "plan", "data-gallery-id": D.images.ids[p.g], "data-rank-final": String(p.rf) });
    if (p.boxes && p.boxes.length === 4 * p.m) {
      // the candidate's regions on its picture, numbered as in the plan
      const pic = el("div", { class: "regions" }, [el("img", { src: D.images.thumbs[p.g] || "", alt: D.images.ids[p.g] })]);
      for (let j = 0; j < p.m; j++) {
        const [l, t, r, b] = p.boxes.slice(4 * j, 4 * j + 4);
        const d = el("div", { class: "region-box", "data-region": String(j + 1) }, [el("span", { text: String(j + 1) })]);
        d.style.left = (100 * l) + "%"; d.style.top = (100 * t) + "%";
        d.style.width = (100 * (r - l)) + "%"; d.style.height = (100 * (b - t)) + "%";
        pic.appendChild(d);
      }
      box.appendChild(pic);
    } else {
      box.appendChild(el("div", {}, [thumb(p.g, q, null)]));
    }
    box.appendChild(el("div", { text: "final rank " + (p.rf + 1) + " (stage 1: " + (p.rs + 1) + ") · cost " + (Math.abs(p.cost) < 5e-5 ? 0 : p.cost).toFixed(4) + (p.rel ? " · relevant" : "") }));
    const n = p.n, m = p.m, rowH = 26, w = 520, h = Math.max(n, m) * rowH + 20;
    const s = svg("svg", { width: w, height: h, class: "plan-svg" });
    const ys = (k, total) => 14 + k * rowH + (Math.max(n, m) - total) * rowH / 2;
    let maxMass = 0;
    for (const v of p.plan) maxMass = Math.max(maxMass, v);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) {
        const mass = p.plan[i * m + j];
        if (mass <= 1e-9) continue;
        s.appendChild(svg("line", { x1: 170, y1: ys(i, n), x2: 350, y2: ys(j, m), stroke: "#2a5db0", "stroke-opacity": 0.75,
          "stroke-width": (1 + 9 * mass / (maxMass || 1)).toFixed(2), class: "plan-edge", "data-i": i, "data-j": j, "data-mass": String(mass) }));
      }
    }
    for (let i = 0; i < n; i++) { const t = svg("text", { x: 165, y: ys(i, n) + 4, "text-anchor": "end" }); t.textContent = p.qo[i]; s.appendChild(t); }
    for (let j = 0; j < m; j++) { const t = svg("text", { x: 355, y: ys(j, m) + 4 }); t.textContent = p.co[j]; s.appendChild(t); }
    box.appendChild(s);
    const table = el("table", { class: "plan-table" });
    table.appendChild(el("tr", {}, [el("th", { text: "cost M / mass" }), ...p.co.map((c) => el("th", { text: c }))]));
    for (let i = 0; i < n; i++) {
      const tr = el("tr", {}, [el("th", { text: p.qo[i] })]);
      for (let j = 0; j < m; j++) tr.appendChild(el("td", { "data-mass": String(p.plan[i * m + j]), text: p.M[i * m + j].toFixed(3) + " / " + p.plan[i * m + j].toFixed(3) }));
      table.appendChild(tr);
    }
    box.appendChild(table);
    return box;
  }

  function openDetail(q) {
    const panel = document.getElementById("detail");
    const content = document.getElementById("detail-content");
    content.replaceChildren(el("h2", { text: Q.captions[q] || Q.ids[q] }), Q.images ? thumb(Q.images[q], q, null)
      : el("div", { class: "objects", text: "query objects: " + (Q.objects[q].join(" · ") || "—") }));
    panel.hidden = false;
    panel.dataset.queryId = Q.ids[q];
    D.runs.forEach((run, r) => {
      const section = el("div", { class: "detail-run", "data-run": String(r) }, [el("h2", { text: run.label })]);
      content.appendChild(section);
      if (!run.plansChunk) {
        section.appendChild(el("p", { class: "muted", text: run.planHint }));
        return;
      }
      loadChunk(r, Math.floor(q / run.plansChunk), (chunk) => {
        const plans = chunk && chunk[q];
        if (!plans) { section.appendChild(el("p", { class: "muted", text: "No plans were saved for this query (eval --save-plans N saves the first N queries')." })); return; }
        for (const p of plans) section.appendChild(planView(p, q));
        section.dataset.loaded = "1";
      });
    });
  }

  function init() {
    document.getElementById("total-count").textContent = String(nQ);
    document.querySelectorAll("#controls button[data-filter]").forEach((b) => b.addEventListener("click", () => {
      document.querySelectorAll("#controls button[data-filter]").forEach((x) => x.classList.remove("active"));
      b.classList.add("active"); state.filter = b.dataset.filter; state.page = 0; update();
    }));
    const runSel = document.getElementById("run-select");
    D.runs.forEach((run, r) => runSel.appendChild(el("option", { value: String(r), text: run.name })));
    runSel.addEventListener("change", () => { state.run = Number(runSel.value); state.page = 0; update(); });
    const catSel = document.getElementById("category-select");
    for (const c of D.categories) catSel.appendChild(el("option", { value: c, text: c }));
    catSel.addEventListener("change", () => { state.category = catSel.value; state.page = 0; update(); });
    let timer = null;
    document.getElementById("search").addEventListener("input", (e) => {
      clearTimeout(timer); timer = setTimeout(() => { state.text = e.target.value; state.page = 0; update(); }, 150);
    });
    document.getElementById("sort-select").addEventListener("change", (e) => { state.sort = e.target.value; state.page = 0; update(); });
    document.getElementById("prev").addEventListener("click", () => { state.page--; render(); window.scrollTo(0, 0); });
    document.getElementById("next").addEventListener("click", () => { state.page++; render(); window.scrollTo(0, 0); });
    document.getElementById("detail-close").addEventListener("click", () => { document.getElementById("detail").hidden = true; });
    const head = document.getElementById("query-head");
    const cells = [el("th", { text: Q.images ? "query image" : "query" }), el("th", { text: "target" })];
    const seen = new Set();
    D.runs.forEach((run) => {
      if (!seen.has(run.stage1)) { seen.add(run.stage1); cells.push(el("th", { text: "stage 1 top " + D.top + (D.runs.length > 1 ? " (" + run.name + ")" : "") })); }
      cells.push(el("th", { text: "final top " + D.top + " · " + run.name }));
    });
    cells.push(el("th", { text: "rank of target: stage 1 → final" }));
    head.replaceChildren(el("tr", {}, cells));
    update();
    document.body.dataset.ready = "1";
    window.VGRC_READY_MS = performance.now();
  }
  init();
})();
