import Foundation
import SixtyCore

extension RunReport {
  /// One self-contained HTML file: the JSON report embedded as data, and the styles and script
  /// that draw the summary, the per-host timeline, the failures and each task's output from it.
  /// Nothing is fetched when it is viewed.
  public func html() -> String {
    // The JSON sits in a <script> element: a `<` inside it could close the element, so every one
    // (they occur only inside strings) is written as the JSON escape \u003c.
    let data = String(decoding: json(), as: UTF8.self).replacingOccurrences(of: "<", with: "\\u003c")
    var order = JSONWriter()
    order.beginArray()
    for play in plays { order.value(strings: play.hosts.map(\.host)) }
    order.endArray()
    let orderText = order.string.replacingOccurrences(of: "<", with: "\\u003c")
    let title = Self.xmlEscape(
      "Sixty run\(runID.map { " \($0)" } ?? ""): \(playbook) (\(status.rawValue))")
    return """
      <!DOCTYPE html>
      <html lang="en">
      <head>
      <meta charset="utf-8">
      <meta name="viewport" content="width=device-width, initial-scale=1">
      <meta name="generator" content="sixty">
      <title>\(title)</title>
      <style>\(Self.reportStyle)</style>
      </head>
      <body>
      <noscript><p class="noscript">This report draws itself with JavaScript; the data is in the <code>sixty-report</code> element of this file (the same JSON as <code>--report</code>).</p></noscript>
      <header id="summary"></header>
      <nav id="filters" aria-label="Filter hosts"></nav>
      <main>
      <section id="timeline" aria-label="Timeline"></section>
      <section id="failures" aria-label="Failures"></section>
      </main>
      <aside id="detail" hidden aria-live="polite"></aside>
      <script id="sixty-report" type="application/json">\(data)</script>
      <script id="sixty-order" type="application/json">\(orderText)</script>
      <script>\(Self.reportScript)</script>
      </body>
      </html>

      """
  }

  static let reportStyle = #"""
    :root { --ok:#2e8b57; --failed:#d0342c; --timedout:#c76b00; --unreachable:#7b3fa0; --notstarted:#9aa0a6;
      --skipped:#c9ccd1; --pending:#c9ccd1; --push:#1f5fbf; --auth:#111; --win:rgba(31,95,191,.10);
      --line:#e3e5e8; --muted:#5f6368; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
    body { margin: 0; color: #202124; background: #fff; }
    header, nav, main { padding: 0 20px; }
    h1 { font-size: 18px; margin: 16px 0 4px; word-break: break-all; }
    h2 { font-size: 15px; margin: 20px 0 6px; }
    .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600;
      font-size: 12px; vertical-align: middle; margin-left: 6px; }
    .b-succeeded, .b-ok { background: var(--ok); } .b-failed { background: var(--failed); }
    .b-aborted, .b-interrupted, .b-error, .b-refused, .b-running { background: var(--timedout); }
    dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 8px 0; }
    dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; word-break: break-all; }
    .cards { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0; }
    .card { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 90px; }
    .card b { display: block; font-size: 20px; } .card span { color: var(--muted); }
    nav#filters { position: sticky; top: 0; background: #fff; z-index: 3; border-bottom: 1px solid var(--line);
      padding-top: 8px; padding-bottom: 8px; display: flex; gap: 6px; flex-wrap: wrap; align-items: center; }
    nav button { border: 1px solid var(--line); background: #f8f9fa; border-radius: 14px; padding: 3px 10px;
      cursor: pointer; font: inherit; }
    nav button[aria-pressed="true"] { background: #202124; color: #fff; border-color: #202124; }
    nav input { font: inherit; padding: 3px 8px; border: 1px solid var(--line); border-radius: 4px; }
    nav .legend { margin-left: auto; color: var(--muted); display: flex; gap: 10px; align-items: center; }
    .legend i { display: inline-block; vertical-align: middle; margin-right: 3px; }
    .axis { position: relative; height: 18px; margin-left: 254px; border-bottom: 1px solid var(--line);
      color: var(--muted); font-size: 11px; }
    .axis span { position: absolute; transform: translateX(-50%); white-space: nowrap; }
    .play h2 .outcome { font-weight: normal; color: var(--muted); }
    .row { display: flex; align-items: center; height: 20px; border-bottom: 1px solid #f1f3f4;
      content-visibility: auto; contain-intrinsic-size: auto 20px; }
    .row[hidden] { display: none; }
    .row:hover { background: #f8f9fa; }
    .row .name { width: 170px; flex: none; text-align: left; border: 0; background: none; padding: 0 6px 0 0;
      font: inherit; cursor: pointer; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; color: #1a0dab; }
    .row .st { width: 84px; flex: none; font-size: 11px; color: var(--muted); white-space: nowrap; }
    .row.s-failed .st, .row.s-unreachable .st, .row.s-timedout .st { color: var(--failed); font-weight: 600; }
    .track { position: relative; flex: 1; height: 14px; cursor: pointer; }
    .track .win { position: absolute; top: 0; bottom: 0; background: var(--win); border-left: 1px solid rgba(31,95,191,.35); }
    .track .push { position: absolute; top: -1px; width: 0; height: 0; margin-left: -4px; border-left: 4px solid transparent;
      border-right: 4px solid transparent; border-top: 7px solid var(--push); z-index: 2; }
    .track .auth { position: absolute; top: 4px; width: 6px; height: 6px; margin-left: -3px; border-radius: 50%;
      background: var(--auth); z-index: 2; }
    .track .auth.late { background: var(--failed); outline: 2px solid var(--failed); }
    .track .task { position: absolute; top: 3px; height: 8px; min-width: 2px; border-radius: 1px; z-index: 1;
      box-shadow: inset -1px 0 0 #fff; }
    .t-ok { background: var(--ok); } .t-failed { background: var(--failed); } .t-timedout { background: var(--timedout); }
    .t-skipped, .t-pending { background: var(--skipped); }
    .legend .task { position: static; display: inline-block; width: 14px; height: 8px; }
    .legend .push { display: inline-block; width: 0; height: 0; border-left: 4px solid transparent;
      border-right: 4px solid transparent; border-top: 7px solid var(--push); }
    .legend .auth { display: inline-block; width: 6px; height: 6px; border-radius: 50%; background: var(--auth); }
    .legend .win { display: inline-block; width: 14px; height: 10px; background: var(--win); border-left: 1px solid rgba(31,95,191,.35); }
    #failures .cluster { border: 1px solid var(--line); border-left: 4px solid var(--failed); border-radius: 4px;
      padding: 6px 10px; margin: 8px 0; }
    #failures .cluster.c-notstarted { border-left-color: var(--notstarted); }
    .cluster .hosts button { border: 0; background: none; color: #1a0dab; cursor: pointer; font: inherit; padding: 0 4px 0 0; }
    pre { background: #f8f9fa; border: 1px solid var(--line); border-radius: 4px; padding: 6px 8px; margin: 4px 0;
      max-height: 320px; overflow: auto; white-space: pre-wrap; word-break: break-all; font-size: 12px; }
    aside#detail { position: fixed; top: 0; right: 0; bottom: 0; width: min(640px, 92vw); background: #fff; z-index: 5;
      border-left: 1px solid var(--line); box-shadow: -4px 0 16px rgba(0,0,0,.12); overflow: auto; padding: 12px 16px; }
    aside#detail .close { float: right; font: inherit; cursor: pointer; }
    aside#detail .taskd { border-top: 1px solid var(--line); padding: 6px 0; }
    aside#detail .taskd.focus { background: #fff8e1; }
    .muted { color: var(--muted); } .noscript { padding: 20px; }
    """#

  static let reportScript = #"""
    (function () {
      "use strict";
      var began = performance.now();
      var R = JSON.parse(document.getElementById("sixty-report").textContent);
      // Certificate mode shows certificates where pushes are shown.
      var certificates = R.pushes && R.pushes.mode === "certificate";
      var pushedWord = certificates ? "certificate issued" : "key pushed";
      var validWord = certificates ? "certificate valid" : "key valid";
      var ORDER = JSON.parse(document.getElementById("sixty-order").textContent);
      function esc(s) {
        return String(s).replace(/[&<>"']/g, function (c) {
          return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
        });
      }
      function ms(iso) { return iso ? Date.parse(iso) : NaN; }
      function cls(status) { return String(status).replace(/\s+/g, ""); }
      function clock(t) { return isNaN(t) ? "-" : new Date(t).toISOString().replace("T", " ").replace("Z", " UTC"); }
      function span(seconds) {
        if (!isFinite(seconds)) return "-";
        if (seconds < 1) return Math.round(seconds * 1000) + " ms";
        if (seconds < 120) return seconds.toFixed(seconds < 10 ? 2 : 1) + " s";
        var m = Math.floor(seconds / 60), s = Math.round(seconds - m * 60);
        return m < 60 ? m + " min " + s + " s" : Math.floor(m / 60) + " h " + (m % 60) + " min";
      }

      // Every host, in inventory order, with its times in milliseconds.
      var hosts = [];
      R.plays.forEach(function (play, p) {
        (ORDER[p] || Object.keys(play.hosts)).forEach(function (name) {
          var h = play.hosts[name];
          if (!h) return;
          var pushes = (h.pushes || []).map(ms);
          var auth = ms(h.authenticated);
          var lastPush = NaN;
          pushes.forEach(function (t) { if (!isNaN(auth) && t <= auth) lastPush = t; });
          hosts.push({ i: hosts.length, p: p, play: play, name: name, h: h, pushes: pushes, auth: auth,
            lastPush: lastPush, tasks: (h.tasks || []).map(function (t) { return { t: t, s: ms(t.started), e: ms(t.ended) }; }) });
        });
      });
      var t0 = ms(R.started), t1 = ms(R.finished);
      hosts.forEach(function (x) {
        x.pushes.forEach(function (t) { if (t < t0) t0 = t; });
        [x.auth, ms(x.h.finished)].concat(x.tasks.map(function (k) { return k.e; })).forEach(function (t) {
          if (!isNaN(t) && (isNaN(t1) || t > t1)) t1 = t;
        });
      });
      if (isNaN(t1) || t1 <= t0) t1 = t0 + 1000;
      var total = t1 - t0;
      function pct(t) { return Math.max(0, Math.min(100, (t - t0) / total * 100)).toFixed(3); }

      // Summary.
      var byStatus = {}, taskStatus = {}, latencies = [], inside = 0, outside = 0;
      hosts.forEach(function (x) {
        byStatus[x.h.status] = (byStatus[x.h.status] || 0) + 1;
        x.tasks.forEach(function (k) { taskStatus[k.t.status] = (taskStatus[k.t.status] || 0) + 1; });
        if (!isNaN(x.auth) && !isNaN(x.lastPush)) {
          latencies.push(x.auth - x.lastPush);
          if (x.auth - x.lastPush <= x.play.key_ttl_seconds * 1000) inside++; else outside++;
        }
      });
      latencies.sort(function (a, b) { return a - b; });
      function quantile(q) { return latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)] : NaN; }
      var statusOrder = ["ok", "failed", "unreachable", "timed out", "not started", "pending"];
      var head = "<h1>" + esc(R.playbook) + (R.run_id != null ? " <span class=\"muted\">run " + esc(R.run_id) + "</span>" : "") +
        "<span class=\"badge b-" + cls(R.status) + "\" id=\"run-status\">" + esc(R.status) +
        (R.exit_code != null ? " · exit " + esc(R.exit_code) : "") + "</span></h1>";
      if (R.message) head += "<p>" + esc(R.message) + "</p>";
      head += "<div class=\"cards\">";
      head += "<div class=\"card\"><b>" + hosts.length + "</b><span>hosts</span></div>";
      statusOrder.forEach(function (s) {
        if (byStatus[s]) head += "<div class=\"card\" data-count=\"" + esc(s) + "\"><b>" + byStatus[s] + "</b><span>" + esc(s) + "</span></div>";
      });
      head += "<div class=\"card\"><b>" + esc(span(total / 1000)) + "</b><span>duration</span></div>";
      head += "<div class=\"card\"><b>" + esc(span(quantile(0.5) / 1000)) + "</b><span>push→auth median</span></div>";
      head += "<div class=\"card\"><b>" + esc(span(quantile(0.99) / 1000)) + "</b><span>push→auth p99</span></div>";
      head += "<div class=\"card\" id=\"window-check\"><b>" + inside + "/" + (inside + outside) + "</b><span>authenticated inside the key window</span></div>";
      head += "</div><dl class=\"facts\">";
      function fact(label, value) { if (value != null && value !== "") head += "<dt>" + esc(label) + "</dt><dd>" + esc(value) + "</dd>"; }
      fact("started", clock(ms(R.started)));
      fact("finished", R.finished ? clock(ms(R.finished)) : "not recorded");
      fact("tasks", Object.keys(taskStatus).map(function (s) { return taskStatus[s] + " " + s; }).join(", "));
      fact("plays", R.plays.map(function (p) {
        return p.name + ": " + p.outcome + (p.reason ? " (" + p.reason + ")" : "") + ", key valid " + p.key_ttl_seconds + " s" +
          (p.concurrency ? ", " + p.concurrency + " at once" : "");
      }).join("; "));
      fact("inventory", R.inventory); fact("policy", R.policy); fact("limit", R.limit);
      fact("started by", R.started_by ? R.started_by + (R.trigger ? " (" + R.trigger + (R.job ? ", job " + R.job : "") + ")" : "") : null);
      fact("key", R.key_fingerprint ? R.key_fingerprint + (R.pushes ? " (" + R.pushes.key_type + ": " + R.pushes.key_type_reason + ")" : "") : null);
      fact("pacing", R.pushes ? R.pushes.text : null);
      fact("login", R.pushes ? (R.pushes.mode === "certificate" ? "60-second certificates signed by the broker" : "pushed keys") : null);
      fact("output", R.output === "tail" ? "the last 4 KB of each stream, from the history" : "as captured (at most 1 MB per stream)");
      head += "</dl>";
      document.getElementById("summary").innerHTML = head;

      // Filters.
      var nav = "<button data-filter=\"all\" aria-pressed=\"true\">all " + hosts.length + "</button>";
      statusOrder.forEach(function (s) {
        if (byStatus[s]) nav += "<button data-filter=\"" + esc(s) + "\" aria-pressed=\"false\">" + esc(s) + " " + byStatus[s] + "</button>";
      });
      nav += "<input id=\"search\" type=\"search\" placeholder=\"host contains…\" aria-label=\"Host name contains\">";
      nav += "<span class=\"legend\"><span><i class=\"push\"></i>" + pushedWord + "</span><span><i class=\"win\"></i>" + validWord + "</span>" +
        "<span><i class=\"auth\"></i>authenticated</span><span><i class=\"task t-ok\"></i>ok</span>" +
        "<span><i class=\"task t-failed\"></i>failed</span><span><i class=\"task t-timedout\"></i>timed out</span>" +
        "<span><i class=\"task t-skipped\"></i>skipped</span></span>";
      var navElement = document.getElementById("filters");
      navElement.innerHTML = nav;

      // Timeline: one row per host and play.
      var ticks = "";
      var step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map(function (s) { return s * 1000; })
        .find(function (s) { return total / s <= 8; }) || Math.ceil(total / 8 / 3600000) * 3600000;
      for (var t = 0; t <= total; t += step) {
        ticks += "<span style=\"left:" + (t / total * 100).toFixed(3) + "%\">+" + esc(span(t / 1000)) + "</span>";
      }
      var timeline = "<h2>Timeline</h2>";
      R.plays.forEach(function (play, p) {
        timeline += "<div class=\"play\" data-play=\"" + p + "\"><h2>" + esc(play.name) + " <span class=\"outcome\">" +
          esc(play.outcome) + (play.reason ? ": " + esc(play.reason) : "") + "</span></h2><div class=\"axis\">" + ticks + "</div><div class=\"rows\">";
        var parts = [];
        hosts.forEach(function (x) {
          if (x.p !== p) return;
          var h = x.h, ttl = play.key_ttl_seconds * 1000;
          var row = "<div class=\"row s-" + cls(h.status) + "\" data-i=\"" + x.i + "\" data-host=\"" + esc(x.name) +
            "\" data-status=\"" + esc(h.status) + "\"><button class=\"name\" title=\"" + esc(x.name + (h.address ? " " + h.address : "")) + "\">" +
            esc(x.name) + "</button><span class=\"st\">" + esc(h.status) + "</span><div class=\"track\">";
          x.pushes.forEach(function (t) {
            row += "<i class=\"win\" style=\"left:" + pct(t) + "%;width:" + (pct(Math.min(t + ttl, t1)) - pct(t)).toFixed(3) + "%\"></i>";
          });
          x.pushes.forEach(function (t, n) {
            row += "<i class=\"push\" data-t=\"" + (t - t0) + "\" style=\"left:" + pct(t) + "%\" title=\"" + pushedWord + " " + esc(clock(t)) + "\"></i>";
          });
          if (!isNaN(x.auth)) {
            var late = !isNaN(x.lastPush) && x.auth - x.lastPush > ttl;
            row += "<i class=\"auth" + (late ? " late" : "") + "\" data-t=\"" + (x.auth - t0) + "\" style=\"left:" + pct(x.auth) +
              "%\" title=\"authenticated " + esc(clock(x.auth)) + (isNaN(x.lastPush) ? "" : ", " + esc(span((x.auth - x.lastPush) / 1000)) + " after the push") + "\"></i>";
          }
          x.tasks.forEach(function (k, n) {
            if (isNaN(k.s)) return;
            var e = isNaN(k.e) ? k.s : k.e;
            row += "<b class=\"task t-" + cls(k.t.status) + "\" data-task=\"" + n + "\" style=\"left:" + pct(k.s) + "%;width:" +
              (pct(e) - pct(k.s)).toFixed(3) + "%\" title=\"" + esc(k.t.name + ": " + k.t.status + (k.t.exit_status != null ? " (exit " + k.t.exit_status + ")" : "") +
              ", " + span((e - k.s) / 1000)) + "\"></b>";
          });
          parts.push(row + "</div></div>");
        });
        timeline += parts.join("") + "</div></div>";
      });
      var timelineElement = document.getElementById("timeline");
      timelineElement.innerHTML = timeline;
      var rows = Array.prototype.slice.call(timelineElement.querySelectorAll(".row"));

      // Failures, clustered: the same task failing the same way on many hosts is one entry.
      var clusters = {}, clusterList = [];
      function firstLine(text) {
        var lines = String(text || "").split("\n").map(function (l) { return l.trim(); }).filter(Boolean);
        return lines.length ? lines[0].slice(0, 200) : "";
      }
      function add(key, x, title, detail, excerpt, kind, task) {
        var c = clusters[key];
        if (!c) { c = clusters[key] = { title: title, detail: detail, excerpt: excerpt, kind: kind, hosts: [], task: task }; clusterList.push(c); }
        c.hosts.push(x);
      }
      hosts.forEach(function (x) {
        var failedTask = false;
        x.tasks.forEach(function (k, n) {
          if (k.t.status !== "failed" && k.t.status !== "timed out") return;
          failedTask = true;
          var reason = k.t.reason || k.t.status;
          var stream = k.t.stderr && k.t.stderr.trim() ? k.t.stderr : (k.t.stdout || "");
          add(x.play.name + "\u0000" + k.t.name + "\u0000" + reason + "\u0000" + firstLine(stream), x,
            k.t.name, reason, stream.split("\n").filter(Boolean).slice(-8).join("\n"), "failed", n);
        });
        var s = x.h.status;
        if (!failedTask && (s === "failed" || s === "unreachable" || s === "timed out" || s === "not started")) {
          add(x.play.name + "\u0000" + s + "\u0000" + (x.h.message || ""), x, s === "not started" ? "not started" : "host " + s,
            x.h.message || s, "", s === "not started" ? "notstarted" : "failed", null);
        }
      });
      clusterList.sort(function (a, b) { return (a.kind === b.kind ? 0 : a.kind === "failed" ? -1 : 1) || b.hosts.length - a.hosts.length; });
      var failures = "<h2>Failures</h2>";
      if (!clusterList.length) failures += "<p class=\"muted\" id=\"no-failures\">Every host finished ok.</p>";
      clusterList.forEach(function (c) {
        var names = c.hosts.slice(0, 60).map(function (x) {
          return "<button data-open=\"" + x.i + "\"" + (c.task != null ? " data-task=\"" + c.task + "\"" : "") + ">" + esc(x.name) + "</button>";
        }).join(" ");
        if (c.hosts.length > 60) names += " <span class=\"muted\">and " + (c.hosts.length - 60) + " more (filter the timeline to see them)</span>";
        failures += "<div class=\"cluster c-" + c.kind + "\" data-hosts=\"" + c.hosts.length + "\"><b>" + esc(c.title) + "</b> — " + esc(c.detail) +
          " <span class=\"muted\">(" + c.hosts.length + " host" + (c.hosts.length === 1 ? "" : "s") + ")</span><div class=\"hosts\">" + names + "</div>" +
          (c.excerpt ? "<pre>" + esc(c.excerpt) + "</pre>" : "") + "</div>";
      });
      document.getElementById("failures").innerHTML = failures;

      // Filtering.
      var current = "all";
      function applyFilter() {
        var needle = document.getElementById("search").value.trim().toLowerCase();
        var shown = 0;
        rows.forEach(function (row) {
          var visible = (current === "all" || row.getAttribute("data-status") === current) &&
            (!needle || row.getAttribute("data-host").toLowerCase().indexOf(needle) >= 0);
          row.hidden = !visible;
          if (visible) shown++;
        });
        document.documentElement.setAttribute("data-shown", String(shown));
      }
      navElement.addEventListener("click", function (event) {
        var button = event.target.closest("button[data-filter]");
        if (!button) return;
        current = button.getAttribute("data-filter");
        navElement.querySelectorAll("button[data-filter]").forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
        applyFilter();
      });
      document.getElementById("search").addEventListener("input", applyFilter);

      // A host's tasks and their output, on demand.
      var detail = document.getElementById("detail");
      function element(tag, className, text) {
        var e = document.createElement(tag);
        if (className) e.className = className;
        if (text != null) e.textContent = text;
        return e;
      }
      function open(index, focusTask) {
        var x = hosts[index], h = x.h;
        detail.textContent = "";
        var close = element("button", "close", "close ✕");
        close.addEventListener("click", function () { detail.hidden = true; });
        detail.appendChild(close);
        detail.appendChild(element("h2", null, x.name + " (" + h.status + ")"));
        var facts = element("dl", "facts");
        function f(label, value) { if (value == null || value === "") return; facts.appendChild(element("dt", null, label)); facts.appendChild(element("dd", null, value)); }
        f("play", x.play.name); f("address", h.address); f("user", h.user); f("message", h.message);
        f(pushedWord, x.pushes.map(clock).join(", ") || "never");
        f("authenticated", isNaN(x.auth) ? "never" : clock(x.auth) + (h.push_to_auth_ms != null ? " (" + h.push_to_auth_ms + " ms after the push)" : ""));
        if (h.reconnects) f("reconnects", String(h.reconnects));
        detail.appendChild(facts);
        x.tasks.forEach(function (k, n) {
          var box = element("div", "taskd" + (n === focusTask ? " focus" : ""));
          var line = k.t.name + ": " + k.t.status + (k.t.reason ? " (" + k.t.reason + ")" : "") +
            (k.t.exit_status != null ? ", exit " + k.t.exit_status : "") + (k.t.attempts > 1 ? ", " + k.t.attempts + " attempts" : "") +
            (isNaN(k.s) ? "" : ", " + span(((isNaN(k.e) ? k.s : k.e) - k.s) / 1000) + " from " + clock(k.s));
          box.appendChild(element("b", null, line));
          if (k.t.stdout) { box.appendChild(element("div", "muted", "stdout")); box.appendChild(element("pre", "out", k.t.stdout)); }
          if (k.t.stderr) { box.appendChild(element("div", "muted", "stderr")); box.appendChild(element("pre", "err", k.t.stderr)); }
          if (!isNaN(k.s) && !k.t.stdout && !k.t.stderr) box.appendChild(element("div", "muted", "no output"));
          detail.appendChild(box);
          if (n === focusTask) setTimeout(function () { box.scrollIntoView({ block: "nearest" }); }, 0);
        });
        detail.hidden = false;
        detail.setAttribute("data-host", x.name);
      }
      document.addEventListener("click", function (event) {
        var opener = event.target.closest("[data-open]");
        if (opener) { open(+opener.getAttribute("data-open"), opener.hasAttribute("data-task") ? +opener.getAttribute("data-task") : null); return; }
        var row = event.target.closest(".row");
        if (!row) return;
        var task = event.target.closest("[data-task]");
        open(+row.getAttribute("data-i"), task ? +task.getAttribute("data-task") : null);
      });
      document.addEventListener("keydown", function (event) { if (event.key === "Escape") detail.hidden = true; });
      // A link can choose the filter and open a host: #status=failed&host=web-3&q=web.
      var wanted = new URLSearchParams(location.hash.slice(1));
      if (wanted.has("status")) {
        var chosen = navElement.querySelector("button[data-filter=\"" + CSS.escape(wanted.get("status")) + "\"]");
        if (chosen) {
          current = wanted.get("status");
          navElement.querySelectorAll("button[data-filter]").forEach(function (b) { b.setAttribute("aria-pressed", String(b === chosen)); });
        }
      }
      if (wanted.has("q")) document.getElementById("search").value = wanted.get("q");
      if (wanted.has("host")) {
        var found = hosts.find(function (x) { return x.name === wanted.get("host"); });
        if (found) open(found.i, null);
      }

      applyFilter();
      document.documentElement.setAttribute("data-hosts", String(hosts.length));
      document.documentElement.setAttribute("data-render-ms", String(Math.round(performance.now() - began)));
    })();
    """#
}

extension JSONWriter {
  /// An array of strings as one value.
  mutating func value(strings: [String]) {
    beginArray()
    for text in strings { value(text) }
    endArray()
  }
}
