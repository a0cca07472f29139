"""The demo under load: requests per second and latency with several gradio_client clients at once.

    python benchmarks/bench_demo.py          # a few minutes; writes benchmarks/demo.json and demo.md

Starts `python app.py` at each --concurrency setting in turn (1 is Gradio's own default, what the demo ran at
before it set one), then --clients threads, each with its own `gradio_client.Client`, call the `predict`
endpoint as fast as answers come: distinct digits drawn as the sketchpad draws them, and every tenth request
a junk file that must come back refused with the demo's message. Per setting: requests per second, the
median and 95th-percentile latency, the server's CPU time per request (Linux), and whether it still answers
afterwards. Settings run in --rounds interleaved rounds (1, 4, 1, 4, ...), and the figures are the median
round's, so that the comparison holds while the machine's speed drifts.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from app import CONCURRENCY
from compact_mnist.cli import ArgumentParser, positive_int, run_cli
from compact_mnist.drawings import TEMPLATES, draw, place
from compact_mnist.files import write_report
from compact_mnist.webpage import Demo
from train import machine_name

ROOT = Path(__file__).resolve().parent.parent

JUNK_EVERY = 10  # every tenth request sends a file that is not an image


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process so far (Linux's /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def digit_files(folder: Path, count: int) -> list[tuple[str, Path]]:
    """`count` distinct drawn digits as PNG files (label, path), and a junk file labelled None."""
    rng = random.Random(0)
    files = []
    for index in range(count):
        digit = index % 10
        path = folder / f"{index:04d}.png"
        draw(place(rng.choice(TEMPLATES[digit]), rng), width=rng.randint(12, 36)).save(path)
        files.append((str(digit), path))
    return files


def load(url: str, clients: int, requests: int, files: list[tuple[str, Path]], junk: Path) -> dict:
    """`clients` threads share `requests` calls of the predict endpoint; what each took, and what went wrong."""
    from gradio_client import Client, handle_file

    latencies, failures, refused = [], [], []
    counter = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        connection = Client(url, verbose=False)
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            is_junk = index % JUNK_EVERY == JUNK_EVERY - 1
            label, path = (None, junk) if is_junk else files[index % len(files)]
            start = time.perf_counter()
            try:
                answer = connection.predict(handle_file(str(path)), api_name="/predict")["label"]
            except Exception as error:  # gradio_client raises the demo's message for a refused file
                answer = f"refused: {error}"
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if is_junk:
                    refused.append("not a readable image" in answer)
                elif answer.startswith("refused"):
                    failures.append(answer)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return dict(seconds=time.perf_counter() - start, latencies=latencies, failures=failures, refused=refused)


def handler_cpu_ms(files: list[tuple[str, Path]], junk: Path) -> float:
    """CPU time per request of the demo's own work (loader, preprocessing and model), in this process on one
    thread as the server runs it: what is left of the server's CPU time per request is Gradio's."""
    import app
    from compact_mnist.checkpoint import load_model

    torch.set_num_threads(1)
    reader = app.Reader(*load_model(ROOT / "models" / "mnist_model.pth"))
    paths = [junk if index % JUNK_EVERY == JUNK_EVERY - 1 else path for index, (_, path) in enumerate(files)]
    start = time.process_time()
    for path in paths:
        reader.read_upload(str(path))
    return 1000 * (time.process_time() - start) / len(paths)


def measure(concurrency: int, args: argparse.Namespace, files: list, junk: Path) -> dict:
    """One round: a fresh server at `concurrency`, warmed up, then the load; its figures."""
    with Demo(concurrency) as server:
        load(server.url, 1, 5, files, junk)  # the first requests pay for imports and the model's first run
        cpu_before, client_cpu_before = cpu_seconds(server.process.pid), time.process_time()
        run = load(server.url, args.clients, args.requests, files, junk)
        cpu_after, client_cpu = cpu_seconds(server.process.pid), time.process_time() - client_cpu_before
        still_serving = load(server.url, 1, 1, files, junk)["failures"] == []
    latencies = sorted(run["latencies"])
    return dict(
        concurrency=concurrency,
        requests=len(latencies),
        seconds=run["seconds"],
        requests_per_second=len(latencies) / run["seconds"],
        p50_ms=1000 * statistics.median(latencies),
        p95_ms=1000 * latencies[int(0.95 * (len(latencies) - 1))],
        server_cpu_ms_per_request=None if cpu_before is None else 1000 * (cpu_after - cpu_before) / len(latencies),
        client_cpu_ms_per_request=1000 * client_cpu / len(latencies),
        digit_failures=len(run["failures"]),
        junk_sent=len(run["refused"]),
        junk_refused=sum(run["refused"]),
        still_serving=still_serving,
    )


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--settings",
        type=positive_int,
        nargs="+",
        default=[1, CONCURRENCY],
        help=f"--concurrency values to compare (default: 1 {CONCURRENCY}, before and now)",
    )
    parser.add_argument("--clients", type=positive_int, default=8, help="concurrent clients")
    parser.add_argument(
        "--requests",
        type=positive_int,
        default=220,
        help="requests per round, every tenth junk (default: 220: 198 digits, 22 junk)",
    )
    parser.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "demo.json",
        help="results file, with .md beside it (default: the committed benchmarks/demo.json)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        files = digit_files(Path(folder), args.requests)
        junk = Path(folder) / "junk.png"
        junk.write_bytes(b"\x89PNG but not really")
        handler = handler_cpu_ms(files, junk)
        rounds = {setting: [] for setting in args.settings}
        for round_index in range(args.rounds):
            for setting in args.settings:
                result = measure(setting, args, files, junk)
                rounds[setting].append(result)
                rate, p50, p95 = (result[key] for key in ("requests_per_second", "p50_ms", "p95_ms"))
                print(
                    f"round {round_index + 1}, --concurrency {setting}: {rate:.1f} requests/s, p50 {p50:.0f} ms, "
                    f"p95 {p95:.0f} ms",
                    flush=True,
                )
    results = [sorted(runs, key=lambda r: r["requests_per_second"])[len(runs) // 2] for runs in rounds.values()]
    baseline = results[0]["requests_per_second"]
    for result in results:
        result["vs_first"] = result["requests_per_second"] / baseline
    report = dict(
        machine=machine_name(torch.device("cpu")),
        cpus=os.cpu_count(),
        python=platform.python_version(),
        clients=args.clients,
        requests=args.requests,
        rounds=args.rounds,
        handler_cpu_ms_per_request=handler,
        results=results,
        all_rounds=rounds,
    )
    write_report(report, markdown(report), args.out)
    return 0


def markdown(report: dict) -> str:
    """The table: a row per --concurrency setting, the first setting's requests/s as 1.00x."""
    lines = [
        f"Measured on {report['machine']} ({report['cpus']} CPUs, server and clients together), {report['clients']} "
        f"gradio_client clients, {report['requests']} requests a round (every {JUNK_EVERY}th a junk file), the "
        f"median of {report['rounds']} interleaved rounds.",
        "",
        "| app.py --concurrency | requests/s | vs first | p50 latency | p95 latency | server CPU per request "
        "| clients' CPU per request | junk refused | still serving |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        server = f"{r['server_cpu_ms_per_request']:.0f} ms" if r["server_cpu_ms_per_request"] is not None else "n/a"
        lines.append(
            f"| {r['concurrency']} | {r['requests_per_second']:.1f} | {r['vs_first']:.2f}x | {r['p50_ms']:.0f} ms "
            f"| {r['p95_ms']:.0f} ms | {server} | {r['client_cpu_ms_per_request']:.0f} ms "
            f"| {r['junk_refused']} of {r['junk_sent']} | {'yes' if r['still_serving'] else 'no'} |"
        )
    busy = [r for r in report["results"] if r["server_cpu_ms_per_request"] is not None]
    cores = ", ".join(
        f"{(r['server_cpu_ms_per_request'] + r['client_cpu_ms_per_request']) * r['requests_per_second'] / 1000:.2f} "
        f"at --concurrency {r['concurrency']}"
        for r in busy
    )
    lines.append(
        f"\nThe demo's own work (loader, preprocessing, model) takes {report['handler_cpu_ms_per_request']:.1f} ms of "
        "CPU per request on one thread; the rest of the server's CPU time is Gradio's. Server and clients together "
        f"kept this many of the {report['cpus']} cores busy: {cores}."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_cli(main)
