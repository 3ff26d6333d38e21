// 巡查台账 on the supervisor page (000 巡查制度 第三条, 第六条): the reminder at the patrol
// times, the form that records a round (who is at each window is taken by the controller
// from the live state), and today's rounds. The page's event handler passes events on.
"use strict";
const Patrol = (() => {
  Hall.words({
    zh: {
      "patrol.due": "{time} 定时巡查时间到，请巡查后记录", "patrol.ok": "今日巡查无异常",
      "patrol.findings": "巡查中发现的问题", "patrol.area": "地点（默认大厅）",
      "patrol.record": "记录巡查", "patrol.recorded": "巡查已记录", "patrol.rounds": "今日巡查台账",
      "patrol.none": "今天还没有巡查记录", "patrol.clean": "无异常",
      "patrol.round": "{time} · {area} · 巡查人员 {signer} · {result}",
    },
    en: {
      "patrol.due": "{time}: time for the patrol; record it afterwards", "patrol.ok": "Nothing found",
      "patrol.findings": "Problems found", "patrol.area": "Place (default: the hall)",
      "patrol.record": "Record the round", "patrol.recorded": "Patrol recorded",
      "patrol.rounds": "Today's patrol ledger", "patrol.none": "No patrol recorded today",
      "patrol.clean": "nothing found", "patrol.round": "{time} · {area} · by {signer} · {result}",
    },
  });
  const $ = Hall.$;
  let due = null, rounds = [];

  function render() {
    $("patrol-due").hidden = !due;
    if (due) $("patrol-due").textContent = Hall.t("patrol.due", { time: due });
    const line = (r) => Hall.el("li", { "data-round": r.id }, Hall.t("patrol.round", {
      time: Hall.time(r.at), area: r.area, signer: r.signer_name || r.signer,
      result: r.no_problems ? Hall.t("patrol.clean") : r.findings }));
    $("patrol-rounds").replaceChildren(...(rounds.length ? rounds.map(line)
      : [Hall.el("li", { class: "muted" }, Hall.t("patrol.none"))]));
  }

  async function load() {
    try { rounds = await Hall.api("GET", "/api/v1/patrols"); render(); } catch (e) { Hall.toastError(e); }
  }

  function onEvent(event) {
    if (event.kind === "patrol_due") { due = event.data.time; render(); }
    else if (event.kind === "patrol_recorded") { due = null; load(); }
    else if (event.kind === "connected") load();
  }

  async function record() {
    const body = { no_problems: $("patrol-ok").checked, findings: $("patrol-findings").value.trim(),
      area: $("patrol-area").value.trim() };
    try {
      await Hall.api("POST", "/api/v1/patrols", body);
      $("patrol-findings").value = "";
      $("patrol-ok").checked = false;
      due = null;
      Hall.toast(Hall.t("patrol.recorded"), "info");
      load();
    } catch (e) { Hall.toastError(e); }
  }

  $("patrol-record").onclick = record;
  return { onEvent, render, load };
})();
