// What every page shares: its head and top bar, the API client, the live event stream,
// tables, toasts, the hall's clock, Chinese/English text. Served by the controller itself;
// no page loads anything from outside the hall.
//
// A page's head is its charset, title, /static/hall.css and this script; its own script
// runs at the end of its body and starts with Hall.words({...}) and Hall.page({...}).
"use strict";

const Hall = (() => {
  const WORDS = {
    zh: {
      "lang.switch": "English", "home": "首页", "logout": "退出登录", "login": "登录",
      "live.online": "实时连接", "live.offline": "连接中断，正在重连…",
      "error.network": "无法连接到服务器，请稍候重试", "error.unknown": "操作失败",
      "minutes": "分钟", "people": "人", "window": "窗口", "no": "号",
      "state.open": "空闲", "state.serving": "办理中", "state.paused": "暂停服务",
      "state.closed": "未开放", "post.A": "A岗", "post.B": "B岗顶岗",
      "close": "关闭", "cancel": "取消", "confirm": "确定", "print": "打印",
      "loading": "加载中…", "none": "无",
      "role.staff": "窗口人员", "role.supervisor": "现场管理", "role.callback_officer": "回访专员",
      "role.admin": "系统管理员",
    },
    en: {
      "lang.switch": "中文", "home": "Home", "logout": "Log out", "login": "Log in",
      "live.online": "Live", "live.offline": "Connection lost, reconnecting…",
      "error.network": "Cannot reach the server; please try again shortly",
      "error.unknown": "The action failed",
      "minutes": "min", "people": "people", "window": "Window", "no": "",
      "state.open": "Free", "state.serving": "Serving", "state.paused": "Paused",
      "state.closed": "Closed", "post.A": "A post", "post.B": "B cover",
      "close": "Close", "cancel": "Cancel", "confirm": "OK", "print": "Print",
      "loading": "Loading…", "none": "None",
      "role.staff": "Counter staff", "role.supervisor": "Supervisor", "role.callback_officer": "Callback officer",
      "role.admin": "Administrator",
    },
  };

  let lang = localStorage.getItem("hall.lang") === "en" ? "en" : "zh";

  function words(more) {
    for (const l of Object.keys(more)) Object.assign(WORDS[l], more[l]);
  }

  // t("key", {n: 3}) replaces {n} in the text.
  function t(key, vars) {
    let text = WORDS[lang][key] ?? WORDS.zh[key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) text = text.replaceAll(`{${k}}`, v);
    return text;
  }

  // Elements carry data-i18n="key"; inputs data-i18n-placeholder="key".
  function applyWords(root = document) {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    root.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    });
  }

  function setLang(next, onChange) {
    lang = next;
    localStorage.setItem("hall.lang", lang);
    applyWords();
    if (onChange) onChange();
  }

  // A button that switches the language; onChange re-renders what the page drew itself.
  function langButton(onChange) {
    const b = document.createElement("button");
    b.className = "lang";
    b.type = "button";
    b.dataset.i18n = "lang.switch";
    b.textContent = t("lang.switch");
    b.addEventListener("click", () => setLang(lang === "zh" ? "en" : "zh", onChange));
    return b;
  }

  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  // Every change carries x-hall-page: the server refuses a cookie-only change without it.
  async function api(method, path, body, headers = {}) {
    const init = { method, headers: { ...headers, "x-hall-page": "1" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let r;
    try {
      r = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "network", t("error.network"));
    }
    if (r.status === 204) return null;
    const type = r.headers.get("content-type") || "";
    const data = type.includes("json") ? await r.json() : await r.text();
    if (!r.ok) {
      // a kiosk without its key is asked for the key (kiosk.html), not sent to the staff login
      const kioskKey = ["kiosk_key_required", "bad_kiosk_key"].includes(data.error);
      if (r.status === 401 && !path.endsWith("/auth/login") && !kioskKey) {
        location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      }
      throw new ApiError(r.status, data.error || "http_error", data.message || t("error.unknown"));
    }
    return data;
  }

  // The live stream of hall events. The browser's EventSource reconnects by itself and
  // resumes after Last-Event-ID; when it gives up (a 5xx while the controller restarts)
  // a new one is made. Every (re)connection calls onChange({kind: "connected"}) so the page
  // reloads the whole state; every event calls onChange(event). A periodic refresh makes
  // sure a page never stays stale, whatever the network did.
  function live(onChange, { onStatus, refreshSeconds = 30 } = {}) {
    let source = null;
    let retry = null;
    const status = (up) => { if (onStatus) onStatus(up); };

    // Named events (event: ticket_called) do not reach onmessage; listen for each kind.
    const KINDS = ["ticket_issued", "ticket_called", "ticket_recalled", "ticket_missed",
      "ticket_finished", "ticket_transferred", "ticket_cancelled", "ticket_requeued", "window_opened",
      "window_closed", "window_paused", "window_resumed", "pause_over_limit", "day_started",
      "device_health", "evaluation_prompted", "evaluation_ended", "ticket_evaluated",
      "tidal_open_proposed", "tidal_close_proposed", "clock_fault", "clock_restored",
      "window_uncovered", "posts_away", "window_idle", "patrol_due", "patrol_recorded",
      "guidance_called", "guidance_answered"];

    function deliver(m) {
      let event;
      try { event = JSON.parse(m.data); } catch (e) { event = { kind: "unknown" }; }
      onChange(event);
    }

    function open() {
      if (retry) { clearTimeout(retry); retry = null; }
      if (source) source.close();
      source = new EventSource("/api/v1/events");
      source.onopen = () => { status(true); onChange({ kind: "connected" }); };
      source.onerror = () => {
        status(false);
        if (source.readyState === EventSource.CLOSED && !retry) retry = setTimeout(open, 1000);
      };
      source.onmessage = deliver;
      for (const k of KINDS) source.addEventListener(k, deliver);
    }

    open();
    setInterval(() => {
      if (!source || source.readyState === EventSource.CLOSED) open();
      onChange({ kind: "refresh" });
    }, refreshSeconds * 1000);
    return { reconnect: open };
  }

  // The badge that says whether the live stream is up: onStatus for live(). With
  // hideWhenUp it shows only when the line is lost (a TV shows nothing while all is well).
  function liveBadge(badge, { hideWhenUp = false } = {}) {
    return (up) => {
      badge.classList.toggle("down", !up);
      if (hideWhenUp) badge.classList.toggle("hidden", up);
      badge.dataset.i18n = up ? "live.online" : "live.offline";
      badge.textContent = t(badge.dataset.i18n);
    };
  }

  // Coalesce bursts of events into one reload.
  function debounce(fn, ms = 80) {
    let timer = null;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") { if (v) node.className = v; }
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function time(iso) {
    if (!iso) return "";
    return iso.slice(11, 16);
  }

  function minutesSince(iso, nowIso) {
    if (!iso) return 0;
    return Math.max(0, Math.round((Date.parse(nowIso) - Date.parse(iso)) / 60000));
  }

  function toast(message, kind = "error") {
    let box = document.getElementById("toast");
    if (!box) {
      box = el("div", { id: "toast", role: "alert" });
      document.body.append(box);
    }
    box.className = `toast ${kind}`;
    box.textContent = message;
    clearTimeout(box._timer);
    box._timer = setTimeout(() => { box.className = "toast hidden"; }, 6000);
  }

  async function logout() {
    try { await api("POST", "/api/v1/auth/logout"); } catch (e) { /* already out */ }
    location.href = "/login?next=" + encodeURIComponent(location.pathname);
  }

  // -- the page's frame -----------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  // Shows a failed request's message (the controller's Chinese one): for .catch(toastError).
  function toastError(e) { toast(e.message); }

  // The staff member's name and role, for the top bar.
  function nameAndRole(me) { return `${me.staff.name} · ${t("role." + me.staff.role)}`; }

  // What every page does once its body is there: the language button (into #lang; onLang
  // re-renders what the page drew itself) and the words in the chosen language. A screen
  // nobody touches (the hall display) names its one language (language: "zh") and gets no
  // button: a choice made elsewhere in its browser does not carry over to it.
  // A staff page (staff: true) also gets its top bar, in front of everything else: its title
  // (the page's word `title`), the live badge #live (live: true), who is logged in (#who:
  // who(me), the name unless the page says otherwise; who: null leaves it to the page),
  // `extra` elements, the language button and 退出登录. It returns {me}: the promise of
  // /api/v1/auth/me (without a session, api() leads to the login page).
  function page({ staff = false, title = "title", live = false, who = (me) => me.staff.name, extra = [],
    onLang, language } = {}) {
    let me = null;
    const showWho = () => { if (me && who) $("who").textContent = who(me); };
    if (staff) {
      document.body.prepend(el("header", { class: "bar" },
        el("h1", { id: "title", "data-i18n": title }),
        live ? el("span", { id: "live", class: "live", "data-i18n": "live.online" }) : null,
        el("span", { class: "who", id: "who" }),
        extra,
        el("span", { id: "lang" }),
        el("button", { type: "button", class: "secondary", id: "logout", "data-i18n": "logout",
          onclick: () => logout() })));
    }
    if (language) lang = language;
    else $("lang").append(langButton(() => { showWho(); if (onLang) onLang(); }));
    applyWords();
    if (!staff) return { me: null };
    const got = api("GET", "/api/v1/auth/me");
    got.then((m) => { me = m; showWho(); }, toastError);
    return { me: got };
  }

  // -- tables -----------------------------------------------------------------------

  // A table of a list of objects, one row each. columns: [{key, label: the word over it,
  // value: row => text or element, num: a figure (right-aligned by the page's CSS), class:
  // the cell's class (the key unless given)}]. `into` is the <table>, or its <tbody> where
  // the page keeps an id. Options: rowAttrs(row) gives a row's attributes; empty, the word
  // shown in a single row when there are no rows; total, one more object drawn last as the
  // "total" row; head: false keeps the page's own header row (or none).
  function table(into, columns, rows, { rowAttrs, empty, total, head = true } = {}) {
    const node = into.closest("table");
    const body = into.tagName === "TBODY" ? into : node.tBodies[0] || node.createTBody();
    if (head) {
      (node.tHead || node.createTHead()).replaceChildren(el("tr", {}, columns.map((c) =>
        el("th", { class: c.num ? "num" : null, "data-col": c.key }, t(c.label)))));
    }
    const line = (row, attrs) => el("tr", attrs, columns.map((c) =>
      el("td", { class: [c.num ? "num" : "", c.class ?? c.key].join(" ").trim() }, c.value(row))));
    if (!rows.length && empty) {
      body.replaceChildren(el("tr", { class: "empty-row" },
        el("td", { colspan: columns.length, class: "empty" }, t(empty))));
    } else {
      body.replaceChildren(...rows.map((r) => line(r, rowAttrs ? rowAttrs(r) : {})),
        ...(total && rows.length ? [line(total, { class: "total" })] : []));
    }
    return node;
  }

  // A device's kind in the page's words (kind.<kind>), else in the controller's.
  function deviceKind(d) {
    const key = `kind.${d.kind}`;
    const word = t(key);
    return word === key ? (d.kind_name || d.kind) : word;
  }

  // The devices' health (supervisor, admin), in the page's words: col.device, col.kind,
  // col.window, col.state over the columns, deviceKind and device.<state>. Offline and
  // faulty devices are alert rows.
  function deviceTable(into, devices) {
    const badge = { offline: "red", fault: "red", online: "green", warning: "amber" };
    return table(into, [
      { key: "device", label: "col.device", value: (d) => d.device },
      { key: "kind", label: "col.kind", value: deviceKind },
      { key: "window", label: "col.window", value: (d) => d.window ?? "" },
      { key: "state", label: "col.state", value: (d) => [
        el("span", { class: `badge ${badge[d.state] || "grey"}` }, t(`device.${d.state}`)),
        d.detail ? ` ${d.detail}` : ""] },
    ], devices, { rowAttrs: (d) => ({ class: badge[d.state] === "red" ? "alert" : null,
      "data-device": d.device, "data-state": d.state }) });
  }

  // A figure tile: a big number over its word (tone: good, bad).
  function tile(key, value, tone, attrs = {}) {
    return el("div", { class: tone ? `tile ${tone}` : "tile", ...attrs }, el("b", {}, value), t(key));
  }

  // -- the hall -------------------------------------------------------------------

  // What the hall shows of a window: closed, paused, serving (someone called) or open.
  function windowState(w) {
    if (w.state === "closed") return "closed";
    if (w.state === "paused") return "paused";
    return w.current ? "serving" : "open";
  }

  // The hall's clock, which may differ from this PC's (a demo hall may run a shifted one):
  // set from any /api/v1/hall answer by syncClock.
  const clock = { offset: 0, timezone: undefined };
  function syncClock(hall) {
    clock.offset = Date.parse(hall.now) - Date.now();
    clock.timezone = hall.hall.timezone;
  }
  function hallNow() { return new Date(Date.now() + clock.offset); }
  // "09:05" in the hall's time zone.
  function hallTime(date = hallNow()) {
    return date.toLocaleTimeString("zh-CN", { hour: "2-digit", minute: "2-digit", hour12: false,
      timeZone: clock.timezone });
  }

  // One run of fn at a time: a call while it runs asks for one more run after it (however
  // many calls came). The promise returned settles when the runs asked for so far are done.
  function serially(fn) {
    let running = null, again = false;
    return function run() {
      if (running) { again = true; return running; }
      running = (async () => {
        try {
          do { again = false; await fn(); } while (again);
        } finally { running = null; }
      })();
      return running;
    };
  }

  // The head every page leaves out: a page that set its own viewport (the hall display's
  // 1920) keeps it; the empty icon spares the controller a /favicon.ico request.
  if (!document.head.querySelector("meta[name=viewport]")) {
    document.head.append(el("meta", { name: "viewport", content: "width=device-width, initial-scale=1" }));
  }
  if (!document.head.querySelector("link[rel=icon]")) document.head.append(el("link", { rel: "icon", href: "data:," }));

  return { words, t, applyWords, langButton, api, ApiError, live, liveBadge, debounce, el, time,
    minutesSince, toast, toastError, logout, $, page, nameAndRole, table, deviceKind, deviceTable, tile, windowState,
    syncClock, hallNow, hallTime, serially, setLang, get lang() { return lang; } };
})();
