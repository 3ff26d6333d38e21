"""The report of a simulated hall day: figures, then text and an HTML page with inline SVG
charts (no scripts, nothing fetched).

Waits are from the ticket's issue to its first call; a transferred or requeued
ticket's later calls are not waits for the estimate. The estimate's accuracy is
measured against two baselines computed at the same moment of issue, from the
same state: the queue-length predictor (n + 1) x mean service time / windows
serving the service (the controller's learned mean, windows open or paused), and
the last-to-enter-service predictor (the wait of the latest ticket of the same
service to be called for the first time).
"""

from __future__ import annotations

import html
from typing import Any

from controller.backoffice.hall_reports import percentile
from sim.hallday import DayRecord, TicketRecord


def _minutes(t: TicketRecord) -> float:
    return (t.first_called - t.issued) / 60  # type: ignore[operator]


def _pct(values: list[float], q: float) -> float | None:
    v = percentile(sorted(values), q)
    return round(v, 1) if v is not None else None


def _accuracy(rows: list[TicketRecord]) -> dict[str, Any]:
    n = len(rows)
    if not n:
        return {"tickets": 0}
    waits = [_minutes(t) for t in rows]

    def mae(pred) -> float:
        return round(sum(abs(w - pred(t)) for w, t in zip(waits, rows, strict=True)) / n, 2)

    return {
        "tickets": n,
        "mean_wait": round(sum(waits) / n, 2),
        "ours_mae": mae(lambda t: t.eta[1]),
        "queue_length_mae": mae(lambda t: t.queue_length_eta),
        "last_entered_mae": mae(lambda t: t.last_entered_eta),
        "ours_bias": round(sum(w - t.eta[1] for w, t in zip(waits, rows, strict=True)) / n, 2),
        "inside_p10_p90": round(sum(1 for w, t in zip(waits, rows, strict=True) if t.eta[0] <= w <= t.eta[2]) / n, 3),
        "below_p10": round(sum(1 for w, t in zip(waits, rows, strict=True) if w < t.eta[0]) / n, 3),
        "ours_max_error": round(max(abs(w - t.eta[1]) for w, t in zip(waits, rows, strict=True)), 1),
    }


# the first minutes of a session, before every window is staffed: their tickets' estimates are
# measured apart (issue 12 item 5: a ticket at 09:00 printed the wait to the afternoon session)
SESSION_START_MINUTES = 30


def session_start_tickets(day: DayRecord, minutes: float = SESSION_START_MINUTES) -> list[TicketRecord]:
    """The called tickets issued in the first `minutes` of a session of the day."""
    starts = [s.start.hour * 3600 + s.start.minute * 60 + s.start.second
              for s in day.scenario.hall.hours_on(day.scenario.day).sessions]
    return [t for t in day.tickets.values() if t.first_called is not None
            and any(a <= t.issued < a + minutes * 60 for a in starts)]


def figures(day: DayRecord) -> dict[str, Any]:
    """Everything the report shows, as plain data (JSON-able, deterministic for a seed)."""
    s = day.scenario
    statuses = day.statuses
    counts = {k: sum(1 for v in statuses.values() if v == k)
              for k in ("finished", "no_show", "cancelled", "waiting", "called")}
    called = [t for t in day.tickets.values() if t.first_called is not None]
    services = {}
    for prefix in sorted({t.service for t in day.tickets.values()}):
        mine = [t for t in day.tickets.values() if t.service == prefix]
        waits = [_minutes(t) for t in mine if t.first_called is not None]
        served = day.service_minutes.get(prefix, [])
        services[prefix] = {
            "name": s.hall.services[prefix].name,
            "issued": len(mine),
            "served": sum(1 for t in mine if statuses.get(t.id) == "finished"),
            "no_show": sum(1 for t in mine if statuses.get(t.id) == "no_show"),
            "wait_p50": _pct(waits, 0.5), "wait_p90": _pct(waits, 0.9),
            "wait_max": round(max(waits), 1) if waits else None,
            "service_p50": _pct(served, 0.5), "service_p90": _pct(served, 0.9),
            "estimate": _accuracy([t for t in called if t.service == prefix]),
        }
    windows = []
    for a in day.windows:
        logged = a.logged_in + (day.end if a.state != "closed" else 0.0)
        if logged > 0:
            windows.append({"window": a.number, "visits": a.visits, "open_hours": round(logged / 3600, 2),
                            "utilisation": round(min(1.0, a.busy / logged), 3)})
    limit = s.hall.rules.pause_limit_minutes * 60
    ev = day.evaluation
    waits_all = [_minutes(t) for t in called]
    hours = []
    for h in range(0, 24):
        mine = [t for t in called if h * 3600 <= t.issued < (h + 1) * 3600]
        if mine:
            hours.append({"hour": h, "issued": len(mine), "wait_p50": _pct([_minutes(t) for t in mine], 0.5),
                          "wait_p90": _pct([_minutes(t) for t in mine], 0.9)})
    return {
        "scenario": s.name, "hall": s.hall.name, "day": s.day.isoformat(), "seed": day.seed,
        "windows": len(s.hall.windows),
        "staffing": [[f"{t:%H:%M}", n] for t, n in day.staffing],
        "tickets": {"issued": len(statuses), "kiosk_printed": day.printed, "desk_issued": day.desk_issued,
                    "served": counts["finished"], "no_show": counts["no_show"],
                    "cancelled": counts["cancelled"], "still_open": counts["waiting"] + counts["called"],
                    "transferred": day.events.get("ticket_transferred", 0),
                    "turned_away": day.refused},
        "waits": {"p50": _pct(waits_all, 0.5), "p90": _pct(waits_all, 0.9),
                  "max": round(max(waits_all), 1) if waits_all else None},
        "services": services,
        "hours": hours,
        "windows_use": {
            "mean_utilisation": round(sum(w["utilisation"] for w in windows) / len(windows), 3) if windows else None,
            "windows_opened": len(windows),
            "tidal_opened": day.tidal_opened,
            "absences": day.absences, "covered": day.covers,
            "per_window": windows,
        },
        "pauses": {"count": len(day.pauses),
                   "over_limit": sum(1 for p in day.pauses if p["over_limit"]),
                   "limit_minutes": s.hall.rules.pause_limit_minutes,
                   "alerts": day.events.get("pause_over_limit", 0),
                   "longest_minutes": round(max((p["seconds"] for p in day.pauses), default=0) / 60, 1),
                   "over_by_minutes": round(sum(max(0, p["seconds"] - limit) for p in day.pauses) / 60, 1)},
        "evaluation": {k: ev.get(k) for k in ("visits", "evaluated", "evaluation_rate",
                                              "satisfaction_rate", "bad_reviews_real_name",
                                              "bad_reviews_anonymous", "bad_review_cases",
                                              "callback_rate")},
        "callbacks": {k: day.cases.get(k) for k in ("bad_reviews", "bad_reviews_closed",
                                                    "anonymous_bad_reviews", "overdue_now")},
        "floor_alerts": {k: day.events.get(k, 0) for k in ("window_uncovered", "posts_away", "window_idle")},
        "estimate": _accuracy(called),
        "estimate_session_start": _accuracy(session_start_tickets(day)),
        "devices": [{"at": _hhmm(t), "device": d, "state": st, "detail": detail}
                    for t, d, st, detail in day.devices],
        "commands": day.commands,
        "habits": dict(day.habits),
        "reminders": dict(day.reminders),
        "invariants": {name: {"holds": not bad, "broken_by": bad[:10], "count": len(bad)}
                       for name, bad in day.invariants.items()},
    }


def _hhmm(seconds: float) -> str:
    return f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}"


def _f(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1%}" if unit == "%" else f"{v:g}{unit}"
    return f"{v}{unit}"


def text(f: dict[str, Any]) -> str:
    """The report as plain text, for a terminal or a CI log."""
    t, e, w, p = f["tickets"], f["estimate"], f["windows_use"], f["pauses"]
    s0 = f["estimate_session_start"]
    lines = [
        f"{f['scenario']}: {f['hall']}, {f['day']}, seed {f['seed']}, {f['windows']} windows",
        "",
        f"tickets   issued {t['issued']} (kiosk printed {t['kiosk_printed']}, guidance desk "
        f"{t['desk_issued']}), served {t['served']}, no-show {t['no_show']}, cancelled "
        f"{t['cancelled']}, transferred {t['transferred']}, still open {t['still_open']}",
        "          turned away at the kiosk: "
        + (", ".join(f"{k} {v}" for k, v in t["turned_away"].items()) or "none"),
        f"waits     P50 {_f(f['waits']['p50'])} min, P90 {_f(f['waits']['p90'])} min, "
        f"longest {_f(f['waits']['max'])} min (issue to first call)",
        "",
        "service                     issued served no-show  wait P50  P90   max  service P50  P90",
    ]
    for prefix, s in f["services"].items():
        lines.append(f"  {prefix} {s['name'][:10]:<10}{'':<12} {s['issued']:>6} {s['served']:>6} "
                     f"{s['no_show']:>7} {_f(s['wait_p50']):>9} {_f(s['wait_p90']):>4} "
                     f"{_f(s['wait_max']):>5} {_f(s['service_p50']):>12} {_f(s['service_p90']):>4}")
    lines += [
        "",
        f"windows   {w['windows_opened']} opened, mean utilisation {_f(w['mean_utilisation'], '%')}; "
        f"tidal windows opened {w['tidal_opened']}; absences {w['absences']}, covered by a B post "
        f"or the supervisor {w['covered']}",
        f"pauses    {p['count']}, over the {p['limit_minutes']}-minute limit {p['over_limit']} "
        f"(alerts {p['alerts']}), longest {p['longest_minutes']} min, {p['over_by_minutes']} min "
        f"over in all",
        "alerts    A-post window unstaffed {window_uncovered}, A and B posts both away {posts_away}, "
        "window idle while people waited {window_idle}".format(**f["floor_alerts"]),
    ]
    if h := f.get("habits"):
        lines += [
            "habits    {double_taps} double taps at the kiosk ({second_tap_same_ticket} given the same "
            "ticket again), {cards_left} cards left on the reader ({taps_beside_a_left_card} "
            "anonymous taps beside one); right after 办结 staff paused {pause_after_finish} times and "
            "logged out {logout_after_finish}, {prompt_open_at_step_away} times with the pad still "
            "asking".format(**h)]
    if r := f.get("reminders"):
        lines += [
            "texts     {opted_in} citizens asked for 到号提醒 at the kiosk; the SMS gateway took "
            "{messages} messages ({ahead} 即将叫到, {called} called) in {posts} posts".format(**r)]
    ev, cb = f["evaluation"], f["callbacks"]
    lines += [
        f"grades    {_f(ev['evaluated'])} of {_f(ev['visits'])} visits graded "
        f"({_f(ev['evaluation_rate'], '%')}), satisfied {_f(ev['satisfaction_rate'], '%')}, bad "
        f"reviews {_f(ev['bad_reviews_real_name'])} real-name + {_f(ev['bad_reviews_anonymous'])} anonymous",
        f"callbacks {_f(cb['bad_reviews'])} cases opened for real-name bad reviews, "
        f"{_f(cb['bad_reviews_closed'])} closed on the day, {_f(cb['overdue_now'])} overdue",
        "",
        "wait estimate (printed P50 against the actual wait; mean absolute error, minutes)",
        f"  ours {_f(e.get('ours_mae'))}   queue-length (n+1)/(s*mu) {_f(e.get('queue_length_mae'))}   "
        f"last-to-enter-service {_f(e.get('last_entered_mae'))}",
        f"  ours is {_gain(e)} lower than queue-length; actual wait inside the printed P10-P90 "
        f"{_f(e.get('inside_p10_p90'), '%')} (below P10 {_f(e.get('below_p10'), '%')}), "
        f"bias {_f(e.get('ours_bias'))} min over {e.get('tickets')} tickets",
        f"  tickets of a session's first {SESSION_START_MINUTES} minutes: ours {_f(s0.get('ours_mae'))}, "
        f"queue-length {_f(s0.get('queue_length_mae'))}, bias {_f(s0.get('ours_bias'))} min, "
        f"largest miss {_f(s0.get('ours_max_error'))} min, "
        f"inside P10-P90 {_f(s0.get('inside_p10_p90'), '%')}, over {s0.get('tickets')} tickets",
        "",
        "devices   " + ("; ".join(f"{d['at']} {d['device']} {d['state']}" + (f" ({d['detail']})" if d['detail'] else "")
                                  for d in _device_changes(f["devices"])) or "no faults"),
        "",
        "invariants",
    ]
    for name, v in f["invariants"].items():
        mark = "ok  " if v["holds"] else "FAIL"
        extra = "" if v["holds"] else f": {v['count']}, e.g. {', '.join(v['broken_by'])}"
        lines.append(f"  {mark} {name}{extra}")
    if f["staffing"]:
        lines += ["", "staffing  " + ", ".join(f"{at} {n}" for at, n in f["staffing"])]
    return "\n".join(lines) + "\n"


def _gain(e: dict[str, Any]) -> str:
    if not e.get("queue_length_mae"):
        return "-"
    return f"{1 - e['ours_mae'] / e['queue_length_mae']:.0%}"


def _device_changes(devices: list[dict[str, Any]], most: int = 12) -> list[dict[str, Any]]:
    """Health changes, a flapping line's repeats folded: the first report of each state."""
    out, last = [], {}
    for d in devices:
        if last.get(d["device"], "online") != d["state"]:  # a device coming up is no news
            out.append(d)
        last[d["device"]] = d["state"]
    return out[:most]


# --- HTML -----------------------------------------------------------------------------


def _bars(items: list[tuple[str, list[float]]], series: list[str], colours: list[str],
          width: int = 720, height: int = 220, unit: str = "") -> str:
    """Grouped bars as inline SVG: one group per label, one bar per series."""
    if not items:
        return ""
    top = max((v for _, vs in items for v in vs if v is not None), default=1) or 1
    left, bottom = 40, 30
    gw = (width - left) / len(items)
    bw = max(2.0, gw * 0.8 / len(series))
    out = [f'<svg viewBox="0 0 {width} {height + bottom + 12}" width="{width}" '
           f'height="{height + bottom + 12}" role="img" xmlns="http://www.w3.org/2000/svg">'
           '<g transform="translate(0,12)">']
    for i in range(5):
        y = height - height * i / 4
        out.append(f'<line x1="{left}" x2="{width}" y1="{y:.0f}" y2="{y:.0f}" stroke="#ddd"/>'
                   f'<text x="{left - 4}" y="{y + 4:.0f}" text-anchor="end" font-size="10">'
                   f'{top * i / 4:.0f}{unit}</text>')
    for g, (label, values) in enumerate(items):
        x0 = left + g * gw + gw * 0.1
        for k, v in enumerate(values):
            if v is None:
                continue
            h = height * v / top
            out.append(f'<rect x="{x0 + k * bw:.1f}" y="{height - h:.1f}" width="{bw - 1:.1f}" '
                       f'height="{h:.1f}" fill="{colours[k]}"><title>{html.escape(label)} '
                       f'{html.escape(series[k])}: {v:g}{unit}</title></rect>')
        out.append(f'<text x="{x0 + gw * 0.4:.1f}" y="{height + 14}" text-anchor="middle" '
                   f'font-size="10">{html.escape(label)}</text>')
    legend = " ".join(f'<tspan fill="{c}">■</tspan> {html.escape(s)}' for s, c in zip(series, colours, strict=True))
    out.append(f'<text x="{left}" y="{height + bottom - 2}" font-size="11">{legend}</text></g></svg>')
    return "".join(out)


def _scatter(points: list[tuple[float, float]], width: int = 360, height: int = 300) -> str:
    """Printed P50 (x) against the actual wait (y), with the diagonal."""
    if not points:
        return ""
    top = max(max(x, y) for x, y in points) or 1
    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg" role="img">',
           f'<line x1="30" y1="{height - 20}" x2="{width}" y2="{height - 20 - (height - 20) * (width - 30) / width}" '
           f'stroke="#999" stroke-dasharray="4"/>',
           f'<text x="{width - 4}" y="{height - 4}" text-anchor="end" font-size="10">'
           f'printed P50 (max {top:.0f} min)</text>',
           '<text x="2" y="10" font-size="10">actual wait</text>']
    step = max(1, len(points) // 1500)
    for x, y in points[::step]:
        px = 30 + (width - 30) * x / top
        py = (height - 20) - (height - 20) * y / top
        out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="1.6" fill="#2a6fb0" fill-opacity="0.5"/>')
    out.append("</svg>")
    return "".join(out)


def page(f: dict[str, Any], day: DayRecord) -> str:
    """The report as one self-contained HTML page."""
    e = f["estimate"]
    services = f["services"]
    waits = _bars([(p, [s["wait_p50"], s["wait_p90"]]) for p, s in services.items()],
                  ["wait P50", "wait P90"], ["#7fb3e0", "#2a6fb0"], unit="")
    errors = _bars([(p, [s["estimate"].get("ours_mae"), s["estimate"].get("queue_length_mae"),
                         s["estimate"].get("last_entered_mae")]) for p, s in services.items()],
                   ["ours", "queue length", "last to enter service"], ["#2a8a4a", "#c0803a", "#9a5ab0"])
    by_hour = _bars([(f"{h['hour']:02d}", [h["issued"]]) for h in f["hours"]], ["tickets issued"],
                    ["#888"], width=480)
    per_window = f["windows_use"]["per_window"]
    use = _bars([(str(w["window"]), [round(w["utilisation"] * 100, 1)]) for w in per_window[:60]],
                ["utilisation %"], ["#2a6fb0"], unit="%")
    scatter = _scatter([(t.eta[1], _minutes(t)) for t in day.tickets.values() if t.first_called is not None])
    checks = "".join(f"<li class={'ok' if v['holds'] else 'bad'}>{'✓' if v['holds'] else '✗'} "
                     f"{html.escape(n)}</li>" for n, v in f["invariants"].items())
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{html.escape(f['scenario'])} — simulated hall day</title>
<style>
body {{ font: 14px/1.45 system-ui, "Noto Sans CJK SC", sans-serif; margin: 2em auto; max-width: 980px; color: #222 }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px }}
h2 {{ margin-top: 1.6em; border-bottom: 1px solid #ddd }}
.ok {{ color: #2a8a4a }} .bad {{ color: #b00020; font-weight: bold }}
.figure {{ display: inline-block; vertical-align: top; margin-right: 1em }}
</style></head><body>
<h1>{html.escape(f['hall'])}: {html.escape(f['scenario'])}</h1>
<p>{f['day']}, seed {f['seed']}, {f['windows']} windows. Ours: mean absolute error {_f(e.get('ours_mae'))} min
against {_f(e.get('queue_length_mae'))} (queue length) and {_f(e.get('last_entered_mae'))} (last to enter service);
{_f(e.get('inside_p10_p90'), '%')} of actual waits inside the printed P10–P90.</p>
<h2>Invariants</h2><ul>{checks}</ul>
<h2>Waits per service (minutes, issue to first call)</h2>{waits}
<h2>Estimate error per service (mean absolute error, minutes)</h2>{errors}
<div class="figure"><h2>Printed P50 against actual wait</h2>{scatter}</div>
<div class="figure"><h2>Tickets issued per hour</h2>{by_hour}</div>
<h2>Window utilisation{' (first 60 windows)' if len(per_window) > 60 else ''}</h2>{use}
<h2>The whole report</h2><pre>{html.escape(text(f))}</pre>
</body></html>
"""


# --- a run of several days (sim.multiday) ------------------------------------------------------


def run_figures(run) -> dict[str, Any]:
    """A `sim.multiday.RunRecord` as plain data: each day (an open day's full figures, or what
    the kiosk told citizens on a closed one) and the checks of the whole run."""
    s = run.scenario
    days = []
    for d in run.days:
        if d.closed is not None:
            days.append({"day": d.day.isoformat(), "open": False, "closed_reason": d.closed.reason,
                         "came": d.closed.came, "turned_away": dict(sorted(d.closed.refused.items())),
                         "told": d.closed.messages})
            continue
        f = figures(d.record)
        hours = s.hall.hours_on(d.day)
        days.append({"day": d.day.isoformat(), "open": True,
                     "hours": ", ".join(f"{x.start:%H:%M}-{x.end:%H:%M}" for x in hours.sessions),
                     "left_unfinished": d.forgotten, "ended_at_day_change": d.ended_at_day_change,
                     "served_past_closing": d.past_closing, "clock_faults": d.clock_faults,
                     "figures": f})
    return {
        "scenario": s.name, "hall": s.hall.name, "seed": run.seed, "windows": len(s.hall.windows),
        "days": days, "commands": run.commands,
        "invariants": {name: {"holds": not bad, "broken_by": bad[:10], "count": len(bad)}
                       for name, bad in run.invariants.items()},
    }


def _day_holds(day: dict[str, Any]) -> bool:
    return day["open"] is False or all(v["holds"] for v in day["figures"]["invariants"].values())


def run_text(f: dict[str, Any]) -> str:
    """The run as plain text: a line per day, the whole run's checks, then each open day's report."""
    days = f["days"]
    lines = [
        f"{f['scenario']}: {f['hall']}, {len(days)} days {days[0]['day']} to {days[-1]['day']}, "
        f"seed {f['seed']}, {f['windows']} windows, the controller restarted every night",
        "",
        "day         hours                      issued served no-show cancelled  past closing  "
        "left unfinished  clock faults  checks",
    ]
    for d in days:
        if not d["open"]:
            refused = ", ".join(f"{k} {v}" for k, v in d["turned_away"].items()) or "nobody came"
            lines.append(f"{d['day']}  closed ({d['closed_reason'] or '-'}): {d['came']} citizens "
                         f"came, turned away: {refused}")
            continue
        t = d["figures"]["tickets"]
        lines.append(f"{d['day']}  {d['hours']:<25} {t['issued']:>6} {t['served']:>6} {t['no_show']:>7} "
                     f"{t['cancelled']:>9} {d['served_past_closing']:>13} "
                     f"{len(d['left_unfinished']):>16} {d['clock_faults']:>13}  "
                     f"{'ok' if _day_holds(d) else 'FAIL'}")
    told = [f"  {d['day']}: " + " / ".join(d["told"]) for d in days if not d["open"] and d["told"]]
    if told:
        lines += ["", "the kiosk on a closed day said"] + told
    lines += ["", "invariants of the whole run"]
    for name, v in f["invariants"].items():
        mark = "ok  " if v["holds"] else "FAIL"
        extra = "" if v["holds"] else f": {v['count']}, e.g. {'; '.join(v['broken_by'])}"
        lines.append(f"  {mark} {name}{extra}")
    for d in days:
        if d["open"]:
            lines += ["", f"=== {d['day']} " + "=" * 60, "", text(d["figures"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def run_page(f: dict[str, Any]) -> str:
    """The run's report page: the days, the checks, each day's report (no scripts, nothing fetched)."""
    rows = []
    for d in f["days"]:
        if not d["open"]:
            rows.append(f"<tr><td>{d['day']}</td><td colspan=7>closed ({html.escape(d['closed_reason'] or '-')}): "
                        f"{d['came']} came, all turned away: "
                        f"{html.escape(' / '.join(d['told']))}</td></tr>")
            continue
        t = d["figures"]["tickets"]
        ok = _day_holds(d)
        rows.append(f"<tr><td>{d['day']}</td><td>{d['hours']}</td><td>{t['issued']}</td><td>{t['served']}</td>"
                    f"<td>{d['served_past_closing']}</td><td>{len(d['left_unfinished'])}</td>"
                    f"<td>{d['clock_faults']}</td><td class={'ok' if ok else 'bad'}>{'✓' if ok else '✗'}</td></tr>")
    checks = "".join(f"<li class={'ok' if v['holds'] else 'bad'}>{'✓' if v['holds'] else '✗'} "
                     f"{html.escape(n)}" + ("" if v["holds"] else
                                            f": {html.escape('; '.join(v['broken_by']))}") + "</li>"
                     for n, v in f["invariants"].items())
    reports = "".join(f"<h2>{d['day']}</h2><pre>{html.escape(text(d['figures']))}</pre>"
                      for d in f["days"] if d["open"])
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>{html.escape(f['scenario'])} — simulated hall days</title>
<style>
body {{ font: 14px/1.45 system-ui, "Noto Sans CJK SC", sans-serif; margin: 2em auto; max-width: 980px; color: #222 }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px }}
h2 {{ margin-top: 1.6em; border-bottom: 1px solid #ddd }}
td, th {{ padding: 2px 8px; text-align: left }}
.ok {{ color: #2a8a4a }} .bad {{ color: #b00020; font-weight: bold }}
</style></head><body>
<h1>{html.escape(f['hall'])}: {html.escape(f['scenario'])}</h1>
<p>{len(f['days'])} days against one database, seed {f['seed']}, {f['windows']} windows; the controller
restarted every night.</p>
<table><tr><th>day</th><th>hours</th><th>issued</th><th>served</th><th>served past closing</th>
<th>left unfinished</th><th>clock faults</th><th>day's checks</th></tr>{''.join(rows)}</table>
<h2>Invariants of the whole run</h2><ul>{checks}</ul>
{reports}
</body></html>
"""
