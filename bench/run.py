"""Measure Review Desk on a loaded database, side by side with a stock admin.

    .venv/bin/python bench/run.py \\
        --database-url postgres://postgres@127.0.0.1:5432/reviewdesk_bench \\
        --redis-url redis://127.0.0.1:6379/6

One command, one run. Load the data first with ``bench/load.py``. Prints a table
and writes ``bench/RESULTS.md`` (and the raw figures to ``bench/data/results.json``):

- pages, timed in this process around a Django test-client request (middleware,
  session, view, template) after a warm-up; SQL queries counted on one more
  request: the reviewer queue and the same requests against a stock
  ``ModelAdmin`` (``bench/urls.py``), the case page, the support lookup;
- claim next through ``reviews.services.review_case_claim_next`` from K
  concurrent processes, each with its own connection and reviewer;
- the key status endpoint and the signed event intake under gunicorn (2 workers)
  driven by ``wrk`` on loopback;
- decision -> email handed to the email backend, through a real Celery worker
  on Redis.

Writes (claims, decisions, intake) go to cases the run adds and removes again
(``bench/scratch.py``); the loaded data set is left as it was.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.load import (  # noqa: E402
    DATA_DIR,
    create_database,
    ensure_staff,
    setup_django,
    staff_email,
)

BENCH_WEBHOOK_SECRET = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMDEyMzQ1Njc4OWFi"
BENCH_API_TOKEN = "bench-platform-token"


def log(message: str) -> None:
    print(message, flush=True)


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def cpu_counters() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        fields = [
            int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]
        ]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def busy_percent(before, after) -> float | None:
    if not before or not after or after[1] == before[1]:
        return None
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])


def process_tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root`` and its children."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = int(fields[11]) + int(fields[12])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(used.get(pid, 0) for pid in tree) / ticks


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# --- pages --------------------------------------------------------------------


def count_rows(html: str) -> int | None:
    """Rows of the changelist's result table, if the page has one."""
    start = html.find('id="result_list"')
    if start < 0:
        return None
    end = html.find("</table>", start)
    table = html[start:end]
    body = table.find("<tbody")
    return table.count("<tr", body) if body >= 0 else None


def explain(sql: str) -> str:
    from django.db import connection

    if not sql.lstrip().upper().startswith("SELECT") or "FOR UPDATE" in sql.upper():
        return ""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def time_page(client, urls: list[str], *, samples: int, warmup: int) -> dict:
    """p50/p95 of ``samples`` GETs cycling through ``urls``; queries of one more.

    A page that raises is reported as not measured, with the error.
    """
    try:
        return _time_page(client, urls, samples=samples, warmup=warmup)
    except Exception as exc:  # noqa: BLE001 - a broken page is a result
        return {
            "url": urls[0],
            "error": f"{type(exc).__name__}: {str(exc)[:200]}",
            "p50_ms": None,
            "p95_ms": None,
            "queries": None,
            "rows": None,
            "status": {},
            "ok": False,
        }


def _time_page(client, urls: list[str], *, samples: int, warmup: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    statuses: Counter = Counter()
    for number in range(warmup):
        client.get(urls[number % len(urls)])
    timings, cpu = [], []
    for number in range(samples):
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.get(urls[number % len(urls)])
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        statuses[response.status_code] += 1
    with CaptureQueriesContext(connection) as captured:
        response = client.get(urls[0])
    queries = [
        {"ms": float(query["time"]) * 1000, "sql": query["sql"]}
        for query in captured.captured_queries
    ]
    slowest = max(queries, key=lambda query: query["ms"], default=None)
    plan = ""
    if slowest and slowest["ms"] >= 2:
        try:
            plan = explain(slowest["sql"])
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            plan = f"(EXPLAIN failed: {exc})"
    html = response.content.decode(errors="replace")
    return {
        "url": urls[0],
        "samples": samples,
        "p50_ms": ms(percentile(timings, 0.50)),
        "p95_ms": ms(percentile(timings, 0.95)),
        # This process's CPU per request (Python only; PostgreSQL not included):
        # what the page costs whatever else the machine is doing.
        "cpu_p50_ms": ms(percentile(cpu, 0.50)),
        "queries": len(queries),
        "rows": count_rows(html),
        "status": dict(statuses),
        "ok": set(statuses) == {200},
        "query_log": queries,
        "slowest_plan": plan,
    }


def pick_samples(count: int = 20) -> dict:
    """Search terms spread over the data: contact emails, key ids, references."""
    from django.db import connection

    rng = random.Random(7)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(id), max(id) FROM accounts_developeraccount "
            "WHERE platform_account_id ~ '^acct_[0-9]+$'"
        )
        low, high = cursor.fetchone()
        account_ids = rng.sample(range(low, high + 1), min(count * 2, high - low + 1))
        cursor.execute(
            "SELECT a.id, a.contact_email, "
            "(SELECT k.platform_key_id FROM reviews_apikey k WHERE k.account_id = a.id "
            " ORDER BY k.id DESC LIMIT 1) "
            "FROM accounts_developeraccount a WHERE a.id = ANY(%s) ORDER BY a.id",
            [account_ids],
        )
        accounts = cursor.fetchall()[:count]
        cursor.execute(
            "SELECT min(id), max(id) FROM reviews_reviewcase c "
            "WHERE EXISTS (SELECT 1 FROM reviews_apikey k WHERE k.id = c.key_id "
            "AND k.platform_key_id ~ '^pk_[0-9]+$')"
        )
        case_low, case_high = cursor.fetchone()
        cases = rng.sample(range(case_low, case_high + 1), count)
        cursor.execute(
            "SELECT max(substring(platform_key_id from 4)::int) FROM reviews_apikey "
            "WHERE platform_key_id ~ '^pk_[0-9]{7}$'"
        )
        nkeys = cursor.fetchone()[0]
    return {
        "emails": [row[1] for row in accounts],
        "keys": [row[2] for row in accounts if row[2]],
        "references": [f"RC-{pk:06d}" for pk in cases],
        "nkeys": nkeys,
    }


def measure_pages(args, samples: dict) -> dict:
    from urllib.parse import urlencode

    from django.test import Client

    from accounts.models import User
    from bench.datagen import LONG_ACCOUNT, SHORT_ACCOUNT
    from reviews.models import ReviewCase

    reviewer = User.objects.get(email=staff_email("reviewer01"))
    support = User.objects.get(email=staff_email("support01"))
    product = Client()
    product.force_login(reviewer)
    support_client = Client()
    support_client.force_login(support)

    def queue(**params) -> str:
        return "/reviews/reviewcase/" + (f"?{urlencode(params)}" if params else "")

    def stock(**params) -> str:
        return "/stock/reviews/reviewcase/" + (
            f"?{urlencode(params)}" if params else ""
        )

    kinds = [
        ("unfiltered", [queue()], [stock()]),
        ("queued", [queue(state="queued")], [stock(state__exact="queued")]),
        (
            "mine",
            [queue(assigned="mine")],
            [stock(assignee__id__exact=reviewer.pk)],
        ),
        (
            "search: contact email",
            [queue(q=term) for term in samples["emails"]],
            [stock(q=term) for term in samples["emails"]],
        ),
        (
            "search: key id",
            [queue(q=term) for term in samples["keys"]],
            [stock(q=term) for term in samples["keys"]],
        ),
        (
            "search: case reference",
            [queue(q=term) for term in samples["references"]],
            [stock(q=term) for term in samples["references"]],
        ),
    ]
    results: dict = {"queue": [], "case": [], "lookup": []}
    for name, product_urls, stock_urls in kinds:
        log(f"  queue {name}")
        measured = {"kind": name}
        measured["product"] = time_page(
            product, product_urls, samples=args.samples, warmup=args.warmup
        )
        stock_samples = (
            args.stock_search_samples
            if name.startswith("search")
            else args.stock_samples
        )
        measured["stock"] = time_page(
            product, stock_urls, samples=stock_samples, warmup=1
        )
        results["queue"].append(measured)

    for name, account in (
        ("short history", SHORT_ACCOUNT),
        ("long history", LONG_ACCOUNT),
    ):
        log(f"  case page, {name}")
        case = (
            ReviewCase.objects.filter(account__platform_account_id=account)
            .order_by("-id")
            .first()
        )
        if case is None:
            results["case"].append({"kind": name, "error": f"no case of {account}"})
            continue
        measured = time_page(
            product,
            [f"/reviews/reviewcase/{case.pk}/change/"],
            samples=args.samples,
            warmup=args.warmup,
        )
        measured["kind"] = name
        measured["events"] = case.events.count()
        measured["previous_cases"] = (
            ReviewCase.objects.filter(account_id=case.account_id).count() - 1
        )
        results["case"].append(measured)

    for name, terms in (
        ("by email", samples["emails"]),
        ("by key id", samples["keys"]),
        ("by case reference", samples["references"]),
    ):
        log(f"  support lookup {name}")
        measured = time_page(
            support_client,
            [f"/reviews/lookup/?{urlencode({'q': term})}" for term in terms],
            samples=args.samples,
            warmup=args.warmup,
        )
        measured["kind"] = name
        results["lookup"].append(measured)
    return results


# --- claim next ---------------------------------------------------------------


def _claimer(user_id, seconds, barrier, results, low, high):
    """One reviewer claiming as fast as the service lets them (a child process)."""
    from django.db import connection

    from accounts.models import User
    from reviews.services import review_case_claim_next

    user = User.objects.get(pk=user_id)
    user.has_perm("reviews.work_reviewcase")  # as a request would: perms loaded once
    connection.ensure_connection()
    latencies, claimed, errors = [], [], []
    empty = outside = 0
    barrier.wait()
    began, cpu_began = time.time(), time.process_time()
    deadline = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        if started >= deadline:
            break
        try:
            case = review_case_claim_next(actor=user)
        except Exception as exc:  # noqa: BLE001 - reported, never hidden
            errors.append(repr(exc)[:300])
            continue
        latencies.append(time.perf_counter() - started)
        if case is None:
            empty += 1
            break
        claimed.append(case.pk)
        if not low <= case.pk <= high:
            outside += 1
            break
    results.put(
        {
            "user": user_id,
            "began": began,
            "ended": time.time(),
            "cpu": time.process_time() - cpu_began,
            "latencies": latencies,
            "claimed": claimed,
            "errors": errors,
            "empty": empty,
            "outside": outside,
        }
    )
    connection.close()


def verify_claims(case_ids: list[int], per_process: list[dict]) -> dict:
    """No case claimed twice, none lost: the callers' answers against the database."""
    from reviews.audit import CASE_CLAIMED
    from reviews.models import CaseEvent, ReviewCase

    returned = Counter(pk for result in per_process for pk in result["claimed"])
    holder = {pk: result["user"] for result in per_process for pk in result["claimed"]}
    events = Counter(
        CaseEvent.objects.filter(code=CASE_CLAIMED, case_id__in=case_ids).values_list(
            "case_id", flat=True
        )
    )
    rows = {
        pk: (state, assignee)
        for pk, state, assignee in ReviewCase.objects.filter(
            pk__in=case_ids
        ).values_list("pk", "state", "assignee_id")
    }
    twice_returned = [pk for pk, count in returned.items() if count > 1]
    twice_logged = [pk for pk, count in events.items() if count > 1]
    lost = [
        pk
        for pk in returned
        if rows.get(pk) != ("in_review", holder[pk]) or events.get(pk) != 1
    ]
    unreported = [pk for pk in events if pk not in returned]
    queued_but_claimed = [
        pk for pk, (state, _) in rows.items() if state == "queued" and pk in events
    ]
    in_review = sum(1 for state, _ in rows.values() if state == "in_review")
    queued = sum(1 for state, _ in rows.values() if state == "queued")
    return {
        "claims": sum(returned.values()),
        "double_claims": len(twice_returned) + len(twice_logged),
        "lost": len(lost) + len(unreported) + len(queued_but_claimed),
        "consistent_counts": in_review == len(returned)
        and in_review + queued == len(case_ids),
        "examples": (twice_returned + twice_logged + lost + unreported)[:10],
    }


def measure_claims(args) -> list[dict]:
    import multiprocessing

    from django.db import connections

    from accounts.models import User
    from bench import scratch

    context = multiprocessing.get_context("fork")
    claimers = list(
        User.objects.filter(
            email__startswith="claimer", email__endswith="@bench.example"
        )
        .order_by("email")
        .values_list("pk", flat=True)
    )
    results = []
    # Deep enough for 1.5x the best rate seen so far (at least 1,500 claims/s).
    expected_rate = 1500.0
    for k in args.claim_k:
        tag = f"claim{k}x{os.getpid()}"
        depth = int(args.claim_seconds * 1.5 * expected_rate) + 100
        log(f"  K={k}: adding {depth:,} queued cases ahead of the queue")
        case_ids = scratch.add_queued_cases(tag=tag, count=depth)
        low, high = min(case_ids), max(case_ids)
        connections.close_all()
        barrier = context.Barrier(k + 1)
        queue = context.Queue()
        processes = [
            context.Process(
                target=_claimer,
                args=(claimers[i], args.claim_seconds, barrier, queue, low, high),
            )
            for i in range(k)
        ]
        load_before = load_average()
        for process in processes:
            process.start()
        barrier.wait(timeout=120)
        per_process = [queue.get(timeout=args.claim_seconds + 120) for _ in processes]
        for process in processes:
            process.join(timeout=30)
        latencies = [value for result in per_process for value in result["latencies"]]
        began = min(result["began"] for result in per_process)
        ended = max(result["ended"] for result in per_process)
        claims = sum(len(result["claimed"]) for result in per_process)
        check = verify_claims(case_ids, per_process)
        outside = sum(result["outside"] for result in per_process)
        entry = {
            "k": k,
            "seconds": ended - began,
            "claims": claims,
            "rate": claims / (ended - began) if ended > began else 0.0,
            "p50_ms": ms(percentile(latencies, 0.50)),
            "p95_ms": ms(percentile(latencies, 0.95)),
            "p99_ms": ms(percentile(latencies, 0.99)),
            "cpu_ms_per_claim": ms(sum(r["cpu"] for r in per_process) / claims)
            if claims
            else None,
            "errors": [e for result in per_process for e in result["errors"]][:5],
            "error_count": sum(len(result["errors"]) for result in per_process),
            "queue_ran_dry": any(
                result["empty"] or result["outside"] for result in per_process
            ),
            "queue_depth": depth,
            "load_before": load_before,
            "load_after": load_average(),
            **check,
        }
        if outside:
            entry["note"] = f"{outside} claim(s) reached the loaded queue"
        results.append(entry)
        log(
            f"  K={k}: {claims:,} claims in {entry['seconds']:.1f} s = "
            f"{entry['rate']:.0f}/s, p95 {entry['p95_ms'] or 0:.1f} ms, "
            f"double {check['double_claims']}, lost {check['lost']}"
        )
        scratch.delete_tagged(tag)
        expected_rate = max(expected_rate, entry["rate"])
    scratch.vacuum(["reviews_reviewcase", "reviews_caseevent", "reviews_checkresult"])
    return results


# --- HTTP under gunicorn ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(args, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "DJANGO_SECRET_KEY": "bench-secret-key-not-for-production",
            "PLATFORM_WEBHOOK_SECRET": BENCH_WEBHOOK_SECRET,
            "PLATFORM_API_TOKEN": BENCH_API_TOKEN,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_COOKIES": "false",
            "LOG_LEVEL": "WARNING",
            # Production settings require an ESP; the web processes send none.
            "EMAIL_BACKEND": "bench.email_backend.RecordingBackend",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def stop(process: subprocess.Popen, seconds: float = 20) -> None:
    """Stop a process group this run started (by its id), waiting for it."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def run_wrk(args, port: int, script: str, seconds: float, env: dict) -> dict:
    if args.load_generator == "python" or shutil.which("wrk") is None:
        return run_python_load(args, port, script, seconds, env)
    command = [
        "wrk",
        "-t2",
        f"-c{args.http_connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(ROOT / "bench" / "wrk" / script),
        f"http://127.0.0.1:{port}",
    ]
    finished = subprocess.run(
        command,
        env={**os.environ, **env, "BENCH_WRK_THREADS": "2"},
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    for line in finished.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            data = json.loads(line.removeprefix("BENCHJSON "))
            seconds_run = data["duration_us"] / 1e6
            errors = sum(
                value for key, value in data.items() if key.startswith("errors_")
            )
            return {
                "requests": data["requests"],
                "seconds": seconds_run,
                "rate": data["requests"] / seconds_run if seconds_run else 0.0,
                "p50_ms": data["p50_us"] / 1000,
                "p95_ms": data["p95_us"] / 1000,
                "p99_ms": data["p99_us"] / 1000,
                "max_ms": data["max_us"] / 1000,
                "errors": errors,
                "non_2xx": data["errors_status"],
                "wrapped": data.get("wrapped", 0),
                "generator": "wrk",
            }
    raise RuntimeError(
        f"wrk gave no result: {finished.stdout[-500:]} {finished.stderr[-500:]}"
    )


def run_python_load(args, port: int, script: str, seconds: float, env: dict) -> dict:
    """A small load generator of our own, used when ``wrk`` is not installed.

    ``--http-connections`` threads, each with one keep-alive connection, for
    ``seconds``; same requests as the wrk scripts. Its own CPU use is higher than
    wrk's, so figures from it are conservative.
    """
    import http.client
    import threading

    connections = args.http_connections
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0] * connections
    requests_by_thread: list[list[tuple[str, str, bytes | None, dict]]] = []
    if script == "intake.lua":
        lines = Path(env["BENCH_EVENTS_FILE"]).read_text().splitlines()
        for number in range(connections):
            mine = []
            for line in lines[number::connections]:
                message_id, stamp, signature, body = line.split("\t", 3)
                headers = {
                    "Content-Type": "application/json",
                    "webhook-id": message_id,
                    "webhook-timestamp": stamp,
                    "webhook-signature": signature,
                }
                mine.append(("POST", "/api/v1/platform-events", body.encode(), headers))
            requests_by_thread.append(mine)
    else:
        rng = random.Random(4242)
        headers = {"Authorization": f"Bearer {env['BENCH_API_TOKEN']}"}
        nkeys = int(env["BENCH_NKEYS"])
        for _ in range(connections):
            requests_by_thread.append(
                [
                    (
                        "GET",
                        f"/api/v1/keys/pk_{rng.randint(1, nkeys):07d}",
                        None,
                        headers,
                    )
                    for _ in range(5000)
                ]
            )

    def worker(number: int) -> None:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        queue = requests_by_thread[number]
        index = 0
        while time.perf_counter() < deadline and queue:
            method, path, body, headers = queue[index % len(queue)]
            index += 1
            started = time.perf_counter()
            try:
                client.request(method, path, body=body, headers=headers)
                response = client.getresponse()
                response.read()
                if response.status >= 400:
                    failures[number] += 1
            except OSError:
                failures[number] += 1
                client.close()
                client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            latencies[number].append(time.perf_counter() - started)
        client.close()

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    every = [value for values in latencies for value in values]
    return {
        "requests": len(every),
        "seconds": elapsed,
        "rate": len(every) / elapsed if elapsed else 0.0,
        "p50_ms": ms(percentile(every, 0.50)),
        "p95_ms": ms(percentile(every, 0.95)),
        "p99_ms": ms(percentile(every, 0.99)),
        "max_ms": ms(max(every)) if every else None,
        "errors": sum(failures),
        "non_2xx": sum(failures),
        "wrapped": 0,
        "generator": "python",
    }


def write_events(path: Path, *, tag: str, count: int) -> None:
    """``count`` signed ``production_key.requested`` events, one new partner each."""
    from standardwebhooks.webhooks import Webhook

    webhook = Webhook(BENCH_WEBHOOK_SECRET)
    now = datetime.now(UTC)
    stamp = str(int(now.timestamp()))
    lines = []
    for number in range(count):
        affiliate = (
            {
                "tastemakers_account_id": f"TM-{number}",
                "partner_id": str(7000000 + number),
            }
            if number % 4 == 0
            else None
        )
        account = {
            "id": f"acct_{tag}_{number}",
            "name": f"Intake Partner {number} Ltd",
            "contact_email": f"dev{number}@{tag}.intake.example",
            "contact_name": "Ivy Intake",
            "help_desk_account_id": f"HD-{number}",
        }
        if affiliate:
            account["affiliate"] = affiliate
        body = json.dumps(
            {
                "type": "production_key.requested",
                "timestamp": now.isoformat().replace("+00:00", "Z"),
                "data": {
                    "account": account,
                    "key": {
                        "id": f"pk_{tag}_{number}",
                        "name": "Production",
                        "last4": f"{number % 10000:04d}",
                        "created_at": now.isoformat().replace("+00:00", "Z"),
                    },
                    "integration": {
                        "app_name": f"Intake App {number}",
                        "app_url": f"https://intake{number}.example",
                        "endpoints": ["products_link", "recipe"],
                    },
                },
            },
            separators=(",", ":"),
        )
        message_id = f"msg_{tag}_{number}"
        signature = webhook.sign(message_id, now, body)
        lines.append(f"{message_id}\t{stamp}\t{signature}\t{body}\n")
    path.write_text("".join(lines))


def start_gunicorn(args) -> tuple[subprocess.Popen, int]:
    """gunicorn with the product's production settings on a free loopback port."""
    port = free_port()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    env = service_env(args, DJANGO_SETTINGS_MODULE="config.settings.production")
    with (DATA_DIR / "gunicorn.log").open("w") as log_file:
        server = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                "config.wsgi",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return server, port


def measure_http(args, samples: dict, server: subprocess.Popen, port: int) -> dict:
    import urllib.error
    import urllib.request

    from bench import scratch

    tag = f"intake{os.getpid()}"
    log_path = DATA_DIR / "gunicorn.log"
    results: dict = {"port": port}
    try:
        probe = f"http://127.0.0.1:{port}/api/v1/keys/pk_0000001"
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                probe, headers={"Authorization": f"Bearer {BENCH_API_TOKEN}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    status = response.status
                break
            except urllib.error.HTTPError as exc:
                status = exc.code
                break
            except OSError:
                time.sleep(0.2)
        results["probe_status"] = status
        if status is None:
            raise RuntimeError(f"gunicorn did not answer; see {log_path}")
        wrk_env = {
            "BENCH_API_TOKEN": BENCH_API_TOKEN,
            "BENCH_NKEYS": str(samples["nkeys"]),
        }
        log(f"  key status (probe answered {status})")
        if not args.quick:
            run_wrk(args, port, "key_status.lua", 2, wrk_env)
        cpu_before = process_tree_cpu(server.pid)
        results["key_status"] = run_wrk(
            args, port, "key_status.lua", args.http_seconds, wrk_env
        )
        results["key_status"]["server_cpu_ms_per_request"] = ms(
            (process_tree_cpu(server.pid) - cpu_before)
            / max(1, results["key_status"]["requests"])
        )
        results["key_status"]["load_after"] = load_average()

        log("  signed intake")
        events = DATA_DIR / f"events-{tag}.tsv"
        warm = DATA_DIR / f"events-{tag}-warm.tsv"
        write_events(events, tag=tag, count=int(args.http_seconds * 2500) + 100)
        if not args.quick:
            write_events(warm, tag=f"{tag}w", count=400)
            run_wrk(args, port, "intake.lua", 1, {"BENCH_EVENTS_FILE": str(warm)})
        cpu_before = process_tree_cpu(server.pid)
        results["intake"] = run_wrk(
            args,
            port,
            "intake.lua",
            args.http_seconds,
            {"BENCH_EVENTS_FILE": str(events)},
        )
        results["intake"]["server_cpu_ms_per_request"] = ms(
            (process_tree_cpu(server.pid) - cpu_before)
            / max(1, results["intake"]["requests"])
        )
        results["intake"]["load_after"] = load_average()
        for path in (events, warm):
            path.unlink(missing_ok=True)
    finally:
        # Requests still in flight when the load generator stopped must finish
        # before the cases they opened are removed.
        stop(server)
        from django.db import connection

        connection.close()
        deleted = scratch.delete_tagged(tag)
        scratch.delete_tagged(f"{tag}w")
        results["intake_cases_created"] = deleted.get("cases", 0)
    return results


# --- decision -> email --------------------------------------------------------


def start_worker(args) -> tuple[subprocess.Popen, str]:
    """A Celery worker on the run's own queue, with the recording email backend."""
    hostname = f"bench{os.getpid()}@{socket.gethostname()}"
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    env = service_env(
        args,
        DJANGO_SETTINGS_MODULE="bench.settings",
        BENCH_CELERY_QUEUE=os.environ["BENCH_CELERY_QUEUE"],
        BENCH_RUN_ID=os.environ["BENCH_RUN_ID"],
        BENCH_REDIS_URL=args.redis_url,
    )
    with (DATA_DIR / "celery.log").open("w") as log_file:
        worker = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "celery"),
                "-A",
                "config",
                "worker",
                "--concurrency",
                "2",
                "--loglevel",
                "WARNING",
                "-Q",
                os.environ["BENCH_CELERY_QUEUE"],
                "--hostname",
                hostname,
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return worker, hostname


def measure_email(args, worker: subprocess.Popen, hostname: str) -> dict:
    import redis

    from accounts.models import User
    from bench import scratch
    from bench.email_backend import handoff_key
    from config.celery import app
    from reviews import services
    from reviews.models import CheckResult, DenialReason, Notification

    run_id = os.environ["BENCH_RUN_ID"]
    store = redis.Redis.from_url(args.redis_url)
    store.delete(handoff_key(run_id))
    tag = f"mail{os.getpid()}"
    count = args.decisions
    case_ids = scratch.add_queued_cases(tag=tag, count=count)
    decider = User.objects.get(email=staff_email("decider01"))
    log_path = DATA_DIR / "celery.log"
    result: dict = {"decisions": count}
    try:
        deadline = time.monotonic() + 90
        ready = False
        while time.monotonic() < deadline and not ready:
            if worker.poll() is not None:
                raise RuntimeError(f"the Celery worker exited; see {log_path}")
            ready = bool(app.control.ping(destination=[hostname], timeout=1.0))
        if not ready:
            raise RuntimeError(f"the Celery worker did not start; see {log_path}")
        reason = (
            DenialReason.objects.filter(is_active=True, criterion__applies_to="all")
            .order_by("id")
            .first()
        )
        committed: dict[str, float] = {}
        service_ms = []
        log(f"  {count} decisions at {args.decision_rate:g}/s")
        worker_cpu = process_tree_cpu(worker.pid)
        started = time.monotonic()
        for number, case_id in enumerate(case_ids):
            pause = started + number / args.decision_rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            case = services.review_case_claim(actor=decider, case_id=case_id)
            checks = list(CheckResult.objects.filter(case_id=case_id))
            deny = number % 3 == 2
            changes = [
                services.CheckChange(
                    check.criterion_id,
                    "fail"
                    if deny and check.criterion_id == reason.criterion_id
                    else "pass",
                )
                for check in checks
            ]
            services.review_case_record_checks(
                actor=decider, case_id=case_id, changes=changes
            )
            decision_started = time.perf_counter()
            if deny:
                services.review_case_deny(
                    actor=decider,
                    case_id=case_id,
                    reasons=[
                        services.DenialChoice(reason.pk, "Seen in the benchmark.")
                    ],
                )
            else:
                services.review_case_approve(actor=decider, case_id=case_id)
            # The service returned: committed, and the send task handed to Redis.
            committed[case.account.contact_email.lower()] = time.time()
            service_ms.append((time.perf_counter() - decision_started) * 1000)
        log("  waiting for the emails")
        deadline = time.monotonic() + args.email_timeout
        handed: dict = {}
        while time.monotonic() < deadline:
            handed = store.hgetall(handoff_key(run_id))
            if len(handed) >= count:
                break
            time.sleep(0.2)
        latencies = []
        for email, at in committed.items():
            value = handed.get(email.encode())
            if value is not None:
                latencies.append(float(value) - at)
        result.update(
            {
                "emails": len(latencies),
                "p50_ms": ms(percentile(latencies, 0.50)),
                "p95_ms": ms(percentile(latencies, 0.95)),
                "max_ms": ms(max(latencies)) if latencies else None,
                "decision_service_p50_ms": percentile(service_ms, 0.5),
                "worker_cpu_ms_per_email": ms(
                    (process_tree_cpu(worker.pid) - worker_cpu) / max(1, len(latencies))
                ),
                "sent_rows": Notification.objects.filter(
                    case_id__in=case_ids, status="sent"
                ).count(),
                "load_after": load_average(),
            }
        )
    finally:
        store.delete(handoff_key(run_id))
        from django.db import connection

        connection.close()
        scratch.delete_tagged(tag)
    return result


# --- main ---------------------------------------------------------------------


def machine(args) -> dict:
    import django
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
        cursor.execute(
            "SELECT name, current_setting(name), '' FROM pg_settings WHERE name IN "
            "('shared_buffers', 'work_mem', 'effective_cache_size', 'random_page_cost',"
            " 'max_connections', 'synchronous_commit', 'jit')"
        )
        settings = {name: f"{value}{unit}" for name, value, unit in cursor.fetchall()}
        counts = {}
        for table in (
            "accounts_developeraccount",
            "reviews_reviewcase",
            "reviews_checkresult",
            "reviews_caseevent",
            "reviews_notification",
            "reviews_casedenialreason",
            "accounts_developeraccountemail",
        ):
            cursor.execute(f'SELECT count(*) FROM "{table}"')
            counts[table] = cursor.fetchone()[0]
        cursor.execute("SELECT state, count(*) FROM reviews_reviewcase GROUP BY state")
        states = dict(cursor.fetchall())
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        wrk = (
            subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
            .stdout.split("\n")[0]
            .split(" Copyright")[0]
        )
    except OSError:
        wrk = "not installed"
    import celery
    import gunicorn
    import psycopg

    top = subprocess.run(
        ["ps", "-eo", "pcpu,comm", "--sort=-pcpu"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()[1:6]

    def git(*command: str) -> str:
        return subprocess.run(
            ["git", *command], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    changed = [line for line in git("status", "--porcelain").splitlines() if line]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_files": len(changed),
        "nproc": os.cpu_count(),
        "memory": memory,
        "cpu": platform.processor() or platform.machine(),
        "postgres": postgres,
        "postgres_settings": settings,
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg": psycopg.__version__,
        "gunicorn": gunicorn.__version__,
        "celery": celery.__version__,
        "wrk": wrk,
        "load_before": load_average(),
        "top_processes_before": [" ".join(line.split()) for line in top],
        "counts": counts,
        "states": states,
    }


def migrations_pending() -> bool:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    return bool(executor.migration_plan(executor.loader.graph.leaf_nodes()))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/reviewdesk_bench"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6")
    )
    parser.add_argument(
        "--samples", type=int, default=100, help="timed requests per page"
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--stock-samples", type=int, default=30)
    parser.add_argument("--stock-search-samples", type=int, default=10)
    parser.add_argument("--claim-seconds", type=float, default=20)
    parser.add_argument(
        "--claim-k",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[2, 8, 50],
    )
    parser.add_argument("--http-seconds", type=float, default=20)
    parser.add_argument("--http-connections", type=int, default=8)
    parser.add_argument(
        "--load-generator",
        choices=["wrk", "python"],
        default="wrk",
        help="wrk (Debian's; falls back to python when not installed) or python",
    )
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--decision-rate", type=float, default=20, help="per second")
    parser.add_argument("--email-timeout", type=float, default=60)
    parser.add_argument(
        "--skip",
        type=lambda text: set(text.split(",")),
        default=set(),
        help="comma-separated phases to skip: pages,claims,http,email",
    )
    parser.add_argument("--output", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--json", default=str(DATA_DIR / "results.json"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny samples and durations (the CI smoke test); figures mean nothing",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.warmup = 2, 1
        args.stock_samples = args.stock_search_samples = 2
        args.claim_seconds, args.http_seconds = 1, 1
        args.decisions, args.decision_rate = 6, 50
        args.email_timeout = min(args.email_timeout, 30)
    if max(args.claim_k) > 50:
        parser.error("at most 50 claim processes (claimer01…claimer50)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    command = "bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    os.environ.setdefault("BENCH_RUN_ID", f"run{os.getpid()}")
    os.environ.setdefault("BENCH_CELERY_QUEUE", f"bench.{os.getpid()}")
    os.environ["REDIS_URL"] = args.redis_url
    os.environ["BENCH_REDIS_URL"] = args.redis_url
    create_database(args.database_url)
    setup_django(args.database_url)
    from django.core.management import call_command

    if migrations_pending():
        call_command("migrate", verbosity=0, interactive=False)
    ensure_staff()
    results: dict = {"command": command, "machine": machine(args), "errors": {}}
    cases = results["machine"]["counts"]["reviews_reviewcase"]
    log(f"Review Desk benchmark: {cases:,} cases")
    samples = pick_samples()
    results["samples"] = {
        key: value[:3] if isinstance(value, list) else value
        for key, value in samples.items()
    }
    # The servers start now and are ready by their phase; they stay idle until then.
    server = port = worker = hostname = None
    if "http" not in args.skip:
        server, port = start_gunicorn(args)
    if "email" not in args.skip:
        worker, hostname = start_worker(args)
    phases = [
        ("pages", lambda: measure_pages(args, samples)),
        ("claims", lambda: measure_claims(args)),
        ("http", lambda: measure_http(args, samples, server, port)),
        ("email", lambda: measure_email(args, worker, hostname)),
    ]
    try:
        for name, phase in phases:
            if name in args.skip:
                continue
            log(f"[{name}] load {load_average()}")
            started, counters = time.monotonic(), cpu_counters()
            results.setdefault("phase_load", {})[name] = {"before": load_average()}
            try:
                results[name] = phase()
            except Exception as exc:  # noqa: BLE001 - a phase's failure is a result
                import traceback

                traceback.print_exc()
                results["errors"][name] = f"{type(exc).__name__}: {exc}"
            results.setdefault("durations", {})[name] = time.monotonic() - started
            results["phase_load"][name].update(
                after=load_average(),
                machine_busy_percent=busy_percent(counters, cpu_counters()),
            )
    finally:
        for process in (server, worker):
            if process is not None:
                stop(process, seconds=30)
    results["machine"]["load_after"] = load_average()
    table = report.render_table(results)
    print(table, flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    report.write_results(Path(args.output), results, quick=args.quick)
    log(f"Wrote {args.output}")
    return results


if __name__ == "__main__":
    main()
