"""The benchmark's table, targets (issue 4) and ``bench/RESULTS.md``."""

from __future__ import annotations

import re
from pathlib import Path

ANALYSIS_START = "<!-- analysis:start (kept by bench/run.py between runs) -->"
ANALYSIS_END = "<!-- analysis:end -->"


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def verdict(checks: list[tuple[bool | None, str]]) -> str:
    """PASS when every check holds; MISS naming the failed ones; – if unmeasured."""
    failed = [label for ok, label in checks if ok is False]
    if any(ok is None for ok, _ in checks) and not failed:
        return "–"
    return "PASS" if not failed else "MISS: " + ", ".join(failed)


def _le(value, limit) -> bool | None:
    return None if value is None else value <= limit


def _ge(value, limit) -> bool | None:
    return None if value is None else value >= limit


def _page_failure(page: dict) -> str | None:
    if page.get("error"):
        return page["error"]
    if not page.get("ok"):
        return "HTTP " + ", ".join(str(code) for code in sorted(page.get("status", {})))
    return None


def queue_rows(results: dict) -> list[list[str]]:
    rows = []
    for entry in results.get("pages", {}).get("queue", []):
        kind, product, stock = entry["kind"], entry["product"], entry["stock"]
        search = kind.startswith("search")
        failure = _page_failure(product)
        ratio = None
        if not failure and product["p50_ms"] and stock.get("p50_ms"):
            ratio = stock["p50_ms"] / product["p50_ms"]
        if search:
            target = "p95 ≤ 30 ms, ≥ 50× stock"
            checks = [(_le(product["p95_ms"], 30), "p95"), (_ge(ratio, 50), "ratio")]
        else:
            target = "p95 ≤ 75 ms, ≤ 6 queries"
            checks = [
                (_le(product["p95_ms"], 75), "p95"),
                (_le(product["queries"], 6), "queries"),
            ]
            if kind != "mine":
                target += ", ≥ 50 rows"
                checks.append((_ge(product["rows"], 50), "rows"))
            if kind == "unfiltered":
                target += ", ≥ 4× stock"
                checks.append((_ge(ratio, 4), "ratio"))
        result = f"MISS: {failure}" if failure else verdict(checks)
        stock_failure = _page_failure(stock)
        rows.append(
            [
                f"queue: {kind}",
                fmt(product["p50_ms"]),
                fmt(product["p95_ms"]),
                fmt(product.get("cpu_p50_ms")),
                fmt(product["queries"]),
                fmt(product["rows"]),
                stock_failure or fmt(stock.get("p50_ms")),
                fmt(stock.get("p95_ms")),
                fmt(stock.get("queries")),
                f"{ratio:,.1f}×" if ratio else "–",
                target,
                result,
            ]
        )
    return rows


def page_rows(results: dict) -> list[list[str]]:
    rows = []
    pages = results.get("pages", {})
    cases = pages.get("case", [])
    counts = {entry.get("queries") for entry in cases if not _page_failure(entry)}
    constant = len(counts) == 1 if len(cases) == 2 else None
    for entry in cases:
        failure = _page_failure(entry)
        checks = [(_le(entry.get("p95_ms"), 100), "p95"), (constant, "queries vary")]
        label = (
            f"case page: {entry['kind']} ({entry.get('events', '?')} events, "
            f"{entry.get('previous_cases', '?')} earlier cases)"
        )
        rows.append(
            [
                label,
                fmt(entry.get("p50_ms")),
                fmt(entry.get("p95_ms")),
                fmt(entry.get("cpu_p50_ms")),
                fmt(entry.get("queries")),
                "p95 ≤ 100 ms, queries independent of history",
                f"MISS: {failure}" if failure else verdict(checks),
            ]
        )
    for entry in pages.get("lookup", []):
        failure = _page_failure(entry)
        rows.append(
            [
                f"support lookup {entry['kind']}",
                fmt(entry.get("p50_ms")),
                fmt(entry.get("p95_ms")),
                fmt(entry.get("cpu_p50_ms")),
                fmt(entry.get("queries")),
                "p95 ≤ 30 ms",
                f"MISS: {failure}"
                if failure
                else verdict([(_le(entry.get("p95_ms"), 30), "p95")]),
            ]
        )
    return rows


def claim_rows(results: dict) -> list[list[str]]:
    rows = []
    for entry in results.get("claims", []):
        k = entry["k"]
        checks = [
            (entry["double_claims"] == 0, "double claims"),
            (entry["lost"] == 0, "lost"),
            (entry["error_count"] == 0, "errors"),
        ]
        target = "0 double claims, none lost"
        if k == 2:
            target = "≥ 600/s, " + target
            checks.append((entry["rate"] >= 600, "rate"))
        if k == 8:
            target = "≥ 450/s, p95 ≤ 30 ms, " + target
            checks += [
                (entry["rate"] >= 450, "rate"),
                (_le(entry["p95_ms"], 30), "p95"),
            ]
        rows.append(
            [
                f"claim next, K={k}",
                fmt(entry["claims"]),
                fmt(entry["rate"], 0),
                fmt(entry["p50_ms"]),
                fmt(entry["p95_ms"]),
                fmt(entry["p99_ms"]),
                fmt(entry.get("cpu_ms_per_claim"), 2),
                f"{entry['double_claims']} / {entry['lost']}",
                target,
                verdict(checks)
                + (" (queue ran dry)" if entry["queue_ran_dry"] else ""),
            ]
        )
    return rows


def http_rows(results: dict) -> list[list[str]]:
    rows = []
    http = results.get("http", {})
    for key, label, target, checks_of in (
        (
            "key_status",
            "key status GET /api/v1/keys/<id>",
            "≥ 1,000 req/s, p95 ≤ 10 ms",
            lambda e: [(e["rate"] >= 1000, "rate"), (e["p95_ms"] <= 10, "p95")],
        ),
        (
            "intake",
            "signed intake POST /api/v1/platform-events",
            "≥ 300 events/s, p99 ≤ 100 ms",
            lambda e: [(e["rate"] >= 300, "rate"), (e["p99_ms"] <= 100, "p99")],
        ),
    ):
        entry = http.get(key)
        if not entry:
            continue
        checks = checks_of(entry)
        checks.append((entry["errors"] == 0, f"{entry['errors']} errors/non-2xx"))
        if entry.get("generator") == "python":
            label += " [python client]"
        if entry.get("wrapped"):
            label += f" ({entry['wrapped']} redeliveries)"
        rows.append(
            [
                label,
                fmt(entry["requests"]),
                fmt(entry["rate"], 0),
                fmt(entry["p50_ms"]),
                fmt(entry["p95_ms"]),
                fmt(entry["p99_ms"]),
                fmt(entry.get("server_cpu_ms_per_request"), 2),
                target,
                verdict(checks),
            ]
        )
    email = results.get("email")
    if email:
        complete = email.get("emails") == email.get("decisions")
        checks = [
            (_le(email.get("p95_ms"), 2000), "p95"),
            (complete, f"{email.get('emails')} of {email.get('decisions')} emails"),
        ]
        rows.append(
            [
                "decision → email handed to the backend",
                f"{fmt(email.get('emails'))} emails",
                "–",
                fmt(email.get("p50_ms")),
                fmt(email.get("p95_ms")),
                fmt(email.get("max_ms")) + " (max)",
                fmt(email.get("worker_cpu_ms_per_email"), 2) + " (worker)",
                "p95 ≤ 2 s",
                verdict(checks),
            ]
        )
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


QUEUE_HEADER = [
    "page",
    "p50 ms",
    "p95 ms",
    "CPU p50 ms",
    "queries",
    "rows",
    "stock p50 ms",
    "stock p95 ms",
    "stock queries",
    "stock p50 / p50",
    "target",
    "result",
]
PAGE_HEADER = ["page", "p50 ms", "p95 ms", "CPU p50 ms", "queries", "target", "result"]
CLAIM_HEADER = [
    "measure",
    "claims",
    "claims/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "CPU ms/claim",
    "double / lost",
    "target",
    "result",
]
HTTP_HEADER = [
    "measure",
    "requests",
    "req/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "web CPU ms/req",
    "target",
    "result",
]


def render_table(results: dict) -> str:
    parts = []
    for header, rows in (
        (QUEUE_HEADER, queue_rows(results)),
        (PAGE_HEADER, page_rows(results)),
        (CLAIM_HEADER, claim_rows(results)),
        (HTTP_HEADER, http_rows(results)),
    ):
        if rows:
            parts.append(markdown_table(header, rows))
    for phase, error in results.get("errors", {}).items():
        parts.append(f"**{phase}: not measured** — {error}")
    return "\n\n".join(parts)


def _machine(results: dict) -> str:
    m = results["machine"]
    settings = ", ".join(f"{k}={v}" for k, v in sorted(m["postgres_settings"].items()))
    counts = ", ".join(f"{k} {v:,}" for k, v in m["counts"].items())
    states = ", ".join(f"{k} {v:,}" for k, v in sorted(m["states"].items()))
    top = "; ".join(m.get("top_processes_before", []))
    return "\n".join(
        [
            f"- **Date**: {m['date']}",
            f"- **Command**: `.venv/bin/python {results['command']}`",
            f"- **Code**: commit {m.get('commit', '?')}"
            + (
                f" plus uncommitted changes in {m['uncommitted_files']} file(s) "
                "(other helpers' work in progress)"
                if m.get("uncommitted_files")
                else ""
            ),
            f"- **Machine**: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM; "
            f"PostgreSQL {m['postgres']} ({settings}); Python {m['python']}, "
            f"Django {m['django']}, psycopg {m['psycopg']}, gunicorn {m['gunicorn']}, "
            f"Celery {m['celery']}, {m['wrk']}",
            f"- **Load average** (1/5/15 min) before: {m['load_before']}, after: "
            f"{m.get('load_after', '?')}; busiest processes at the start: {top}",
            "- **Machine load during each phase** (load average before → after; "
            "whole-machine CPU busy, this run included): "
            + "; ".join(
                f"{name} {info['before']} → {info.get('after', '?')}, "
                f"{fmt(info.get('machine_busy_percent'), 0)}% busy"
                for name, info in results.get("phase_load", {}).items()
            ),
            f"- **Data**: {counts}",
            f"- **Case states**: {states}",
        ]
    )


def _appendix(results: dict) -> str:
    blocks = []
    pages = results.get("pages", {})
    entries = []
    for entry in pages.get("queue", []):
        entries.append((f"queue {entry['kind']}", entry["product"]))
        entries.append((f"stock {entry['kind']}", entry["stock"]))
    for group in ("case", "lookup"):
        for entry in pages.get(group, []):
            entries.append((f"{group} {entry['kind']}", entry))
    for label, page in entries:
        log = page.get("query_log") or []
        lines = [f"{q['ms']:8.2f} ms  {q['sql'][:220]}" for q in log]
        plan = page.get("slowest_plan") or ""
        blocks.append(
            f"<details><summary>{label}: {len(log)} queries, "
            f"{sum(q['ms'] for q in log):.1f} ms in SQL "
            f"(<code>{page.get('url', '')}</code>)"
            "</summary>\n\n```\n"
            + "\n".join(lines)
            + ("\n\n-- EXPLAIN ANALYZE of the slowest:\n" + plan if plan else "")
            + "\n```\n</details>"
        )
    return "\n".join(blocks)


def _kept_analysis(path: Path) -> str:
    if path.exists():
        match = re.search(
            re.escape(ANALYSIS_START) + r"(.*?)" + re.escape(ANALYSIS_END),
            path.read_text(),
            re.S,
        )
        if match:
            return match.group(1).strip("\n")
    return "(No analysis written yet.)"


METHOD = """\
- Pages: server time measured in-process around a Django test-client GET (URL
  routing, middleware, session and user, the view, template rendering; no network),
  logged in as `reviewer01@bench.example` (queue, case page, stock admin) or
  `support01@bench.example` (lookup); warm-up requests first; p50/p95 by nearest
  rank; queries counted on one further request. Searches cycle through 20 different
  terms (contact emails, key ids, case references of random partners and cases).
  "CPU p50" is this process's CPU time per request (Python: middleware, view,
  ORM, templates; PostgreSQL's own work not included): unlike the wall-clock
  figures it hardly changes with other load on the machine.
- Stock baseline: `bench/urls.py` mounts a plain `ModelAdmin` of `ReviewCase` at
  `/stock/` (same columns, `list_filter = ("state",)`, `search_fields` over
  `id__exact`, `account__name`, `account__contact_email`, `key__platform_key_id`,
  ordering oldest first), registered only in `bench.settings`. Same user, same
  search terms; "queued" is `?state__exact=queued`, "mine" is
  `?assignee__id__exact=<reviewer>`. The ratio is stock p50 / product p50.
- Claim next: K forked processes, each with its own connection and its own reviewer
  (`claimerNN@bench.example`), call `reviews.services.review_case_claim_next` in a
  loop for the given time; latency is the service call. The run first adds enough
  queued cases *ahead of* the loaded queue (1.5× the best rate seen × duration,
  at least 1,500/s), so the queue never empties and the loaded queue is untouched,
  and removes them afterwards. The check compares every case each process got with
  the database: one `reviews.case.claimed` event per claimed case, state in review
  held by that process's reviewer, no claim event on a case nobody got, counts add up.
  "CPU ms/claim" is the claiming processes' own CPU per claim (Python and libpq).
- HTTP: gunicorn (`config.wsgi`, production settings, 2 sync workers) on a free
  loopback port, started and stopped by the run; `wrk -t2 -c8` with
  `bench/wrk/*.lua` after a short warm-up. Key status: random loaded keys.
  Intake: every request a new partner and key (signed beforehand; wrk's Lua has no
  HMAC); the cases it opens are deleted afterwards. "web CPU ms/req" is the CPU
  the gunicorn master and workers used during the run divided by the requests
  (PostgreSQL's and wrk's CPU not included).
- Decision → email: a Celery worker (`celery -A config worker --concurrency 2`,
  `bench.settings`, its own queue on Redis) is started by the run; the run claims,
  checks and decides (2 approvals : 1 denial) queued cases through the services at a
  steady rate; the time runs from the decision service's return (committed, task
  queued after commit) to the email backend's hand-off
  (`bench.email_backend.RecordingBackend`, which records it in Redis).
"""


def write_results(path: Path, results: dict, *, quick: bool = False) -> None:
    analysis = _kept_analysis(path)
    title = "# Benchmark results" + (
        " (quick smoke run — figures mean nothing)" if quick else ""
    )
    text = "\n\n".join(
        [
            title,
            "Generated by `bench/run.py` (data by `bench/load.py`); issue 4. "
            "Only the Analysis section is written by hand.",
            _machine(results),
            "## Results",
            render_table(results),
            "## Analysis",
            f"{ANALYSIS_START}\n{analysis}\n{ANALYSIS_END}",
            "## Method",
            METHOD,
            "## Appendix: SQL per page",
            "Queries of the counted request (time in ms, SQL cut at 220 characters) "
            "and the plan of the slowest one.",
            _appendix(results),
        ]
    )
    path.write_text(text.rstrip() + "\n")
