"""Fill the generated sections of README.md and docs/*.md from the committed results.

    python scripts/render_readme.py          # rewrite README.md and docs/*.md
    python scripts/render_readme.py --check  # exit 1 if any of them is out of date

Each section sits between `<!-- BEGIN name -->` and `<!-- END name -->` and is rebuilt from
models/metrics.json, the reports/ and benchmarks/ files that scripts wrote, or the model itself,
so no number in them is typed by hand.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import tomllib

from compact_mnist.cli import ArgumentParser
from compact_mnist.data import ELASTIC_GRID, ROTATION_DEGREES, SHIFT_PIXELS, TRAIN_IMAGES, ZOOM
from compact_mnist.files import fingerprint
from compact_mnist.goals import GOALS, TARGET_ACCURACY, Goal, preset_of, recorded_recipe
from compact_mnist.layers import PARTS, part_of, project_imports
from compact_mnist.recipe import for_model, shown
from model import PRESETS, SHIFTS, Net, count_parameters, describe, layer_table

ROOT = Path(__file__).resolve().parent.parent

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def headline() -> str:
    """The README's first numbers: the default's size, the committed model's test accuracy, the spread over seeds."""
    meta = json.loads((ROOT / "models" / "metrics.json").read_text(encoding="utf-8"))["meta"]
    entry = json.loads((ROOT / "reports" / "seeds.json").read_text(encoding="utf-8"))["default"]
    test, plain = entry["summary"]["test_acc"], entry["summary"].get("plain_test_acc")
    over_seeds = f"; without them {plain['mean']:.2f}%, worst seed {plain['min']:.2f}%" if plain else ""
    return (
        f"The default network has **{count_parameters(Net('default')):,} parameters**. The committed model scores "
        f"**{meta['test_accuracy']:.2f}%** on the test set{views_note(meta.get('plain_test_accuracy'))}; over "
        f"{len(entry['runs'])} seeds its recipe averages **{test['mean']:.2f}%** (worst seed {test['min']:.2f}%, std "
        f"{test['std']:.3f}{over_seeds}), every number from the final epoch, nothing chosen on the test set."
    )


def views_note(plain: float | None) -> str:
    """What follows a figure read with test-time views: the plain network's beside it; nothing for a plain one."""
    return f" read with test-time views ({plain:.2f}% without them)" if plain is not None else ""


def results() -> str:
    """The committed model's run on the CPU and the latest run on a GPU, each with the command that reproduces it."""
    lines = [
        "| run | parameters | val accuracy | test accuracy | epochs | seconds / epoch (with evaluation) | whole run "
        "| machine |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for path, device in (
        (ROOT / "models" / "metrics.json", ""),
        (ROOT / "reports" / "cuda_run.json", " --device cuda"),
    ):
        meta = json.loads(path.read_text(encoding="utf-8"))["meta"]
        preset = preset_of(recorded_recipe(meta))
        flag = "" if preset == "default" else f" --model {preset or meta['spec']}"
        label = f"`{path.relative_to(ROOT).as_posix()}`: `python train.py{flag}{device}`"
        if preset != "default":
            notes.append(
                f"`{path.relative_to(ROOT).as_posix()}` is of `{preset or meta['spec']}`, not the current "
                f"default: the default has not been run{' on CUDA' if device else ''} yet."
            )
        lines.append(
            f"| {label} | {meta['params']:,} | {meta['val_accuracy']:.2f}%{views_note(meta.get('plain_val_accuracy'))} "
            f"| **{meta['test_accuracy']:.2f}%**{views_note(meta.get('plain_test_accuracy'))} "
            f"| {meta['epochs']} | {meta['seconds_per_epoch']:.1f} | {meta['train_seconds']:.0f} s "
            f"| {meta['machine']}, {meta['threads']} CPU threads, torch {meta['torch_version']} |"
        )
    # Which checkpoint these figures describe: after a retrain, the README test knows the tables are stale.
    lines.append(f"<!-- models/mnist_model.pth sha256 {fingerprint(ROOT / 'models' / 'mnist_model.pth')} -->")
    return "\n".join(lines + ([""] + notes if notes else []))


def network() -> str:
    """The default network as a table of layers, from model.layer_table: shapes, parameters, arithmetic and the
    receptive field of each."""
    table = describe("default")
    if not for_model().views:
        return table
    return table + (
        f"\n\nThe default reads with test-time views: {len(SHIFTS)} passes of this network per digit, "
        f"{len(SHIFTS)} times these multiply-accumulates."
    )


def install() -> str:
    """Both installs' sizes and times, from benchmarks/install.json."""
    report = json.loads((ROOT / "benchmarks" / "install.json").read_text(encoding="utf-8"))
    kit, everything = report["installs"]["kit"], report["installs"]["everything"]
    wheel = report.get("cpu_wheel")
    cpu = f"; a CPU-only torch wheel is {wheel['megabytes']:,.0f} MB and brings none" if wheel else ""
    return (
        f"Measured here (`python benchmarks/bench_install.py`, Python {report['python']}, packages from a local "
        f"store): everything installs {everything['distributions']} distributions, {everything['megabytes']:,.0f} MB, "
        f"in {everything['seconds']:.0f} s; the kit alone {kit['distributions']}, {kit['megabytes']:,.0f} MB, in "
        f"{kit['seconds']:.0f} s. Of each, torch itself is {kit['torch_megabytes']:,.0f} MB, and the CUDA libraries "
        f"the default Linux torch brings are {kit['cuda_megabytes']:,.0f} MB{cpu}. Besides torch and those, the kit "
        f"adds {kit['not_torch_megabytes']:,.0f} MB and everything {everything['not_torch_megabytes']:,.0f} MB."
    )


def runs(seconds: list[float]) -> str:
    return "one run" if len(seconds) == 1 else f"median of {len(seconds)} runs"


def timings() -> str:
    """How long training, the installs and the suite take here, from the files their scripts write."""
    meta = json.loads((ROOT / "models" / "metrics.json").read_text(encoding="utf-8"))["meta"]
    installs = json.loads((ROOT / "benchmarks" / "install.json").read_text(encoding="utf-8"))["installs"]
    suite_file = ROOT / "benchmarks" / "suite.json"
    suite = "`python benchmarks/bench_suite.py` times the suite (not yet run)"
    if suite_file.is_file():
        results = json.loads(suite_file.read_text(encoding="utf-8"))
        today, before = results["today"], results.get("baseline")
        full, fast, fast_name = today["pytest -v"], today['pytest -m "not slow"'], 'pytest -m "not slow"'
        suite = (
            f"On {results.get('machine', 'this machine')}, `pytest -v` takes {full['median_seconds']:.0f} s "
            f"({re.sub(r' in [0-9.]+s.*', '', full['outcome'])}; {runs(full['seconds'])}) and "
            f'`pytest -m "not slow"` {fast["median_seconds"]:.0f} s'
        )
        if before:
            suite += (
                f", against {before['pytest -v']['median_seconds']:.0f} s and "
                f"{before[fast_name]['median_seconds']:.0f} s for the suite of "
                f"{results['revision']['baseline']} in the same session"
            )
        if "coverage" in today:
            suite += f"; it runs {today['coverage']['percent']:.1f}% of the project's lines"
            if before and "coverage" in before:
                suite += f", the earlier suite {before['coverage']['percent']:.1f}%"
        flags = f"--repeats {len(full['seconds'])}"
        flags += f" --baseline {results['revision']['baseline']}" if before else ""
        flags += " --coverage" if "coverage" in today else ""
        suite += f" (`python benchmarks/bench_suite.py {flags}`)"
    floor = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["coverage"]["report"]
    suite += (
        f". The workflow fails below {floor['fail_under']}% line coverage (coverage.py, every process the suite starts "
        "included; the script's `--coverage` measures it)"
    )
    return (
        f"{suite}. The committed model trained in {meta['train_seconds']:.0f} s (`python train.py`, "
        f"{meta['threads']} threads, {meta['machine']}), and installing everything took "
        f"{installs['everything']['seconds']:.0f} s, the kit alone {installs['kit']['seconds']:.0f} s."
    )


def epochs() -> str:
    """How test accuracy grows with the epoch budget: one row per `--epochs` setting."""
    report = json.loads((ROOT / "reports" / "epochs.json").read_text(encoding="utf-8"))
    lines = [
        f"| --epochs | seeds | test mean | test min | seeds >= {TARGET_ACCURACY}% | val mean |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    default = for_model().epochs

    def epoch_budget(entry: dict) -> int:
        flags = entry["train_args"]
        return int(flags[flags.index("--epochs") + 1]) if "--epochs" in flags else default

    for entry in sorted(report.values(), key=epoch_budget):
        test, val = entry["summary"]["test_acc"], entry["summary"]["val_acc"]
        reached = sum(run["test_acc"] >= TARGET_ACCURACY for run in entry["runs"])
        lines.append(
            f"| {epoch_budget(entry)} | {len(entry['runs'])} | {test['mean']:.2f}% | {test['min']:.2f}% "
            f"| {reached} of {len(entry['runs'])} | {val['mean']:.2f}% |"
        )
    return "\n".join(lines)


def seeds() -> str:
    """Mean, min and std over seeds for each preset, from the multi-seed report."""
    report = json.loads((ROOT / "reports" / "seeds.json").read_text(encoding="utf-8"))
    lines = [
        "| preset | parameters | reads | seeds | test mean | test min | test std | without views: mean, min "
        f"| val mean | seeds >= {TARGET_ACCURACY:.2f}% (pass mark) | goal over seeds | goal met |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, entry in report.items():
        summary = entry["summary"]
        test, val, plain = summary["test_acc"], summary.get("val_acc"), summary.get("plain_test_acc")
        val_mean = f"{val['mean']:.2f}%" if val else "n/a (trained on all 60,000)"
        passed = f"{sum(run['test_acc'] >= TARGET_ACCURACY for run in entry['runs'])} of {len(entry['runs'])}"
        if plain:
            alone = sum(run["plain_test_acc"] >= TARGET_ACCURACY for run in entry["runs"])
            passed += f" (without views {alone})"
        target, met = "none", ""
        if name in PRESETS:  # the goals a preset is held to; other entries have none
            goal = GOALS[name]
            met = "yes" if goal_met(goal, entry["params"], test) else "**no**"
            if plain:
                met += f" (without views: {'yes' if goal_met(goal, entry['params'], plain) else '**no**'})"
            target = (
                f"<= {goal.budget:,} params, "
                + (f"min >= {goal.least_min:.2f}%, " if goal.least_min else "")
                + f"mean >= {goal.least_mean:.2f}%"
            )
        without = f"{plain['mean']:.3f}%, {plain['min']:.2f}%" if plain else "(the same)"
        # The mean to 3 decimals: it is compared with a 2-decimal target, and can miss it by less than 0.005.
        lines.append(
            f"| {name} | {entry['params']:,} | {'with views' if plain else 'plain'} | {len(entry['runs'])} "
            f"| **{test['mean']:.3f}%** | {test['min']:.2f}% | {test['std']:.3f} | {without} | {val_mean} "
            f"| {passed} | {target} | {met} |"
        )
    return "\n".join(lines)


def goal_met(goal: Goal, params: int, test: dict[str, float]) -> bool:
    """Whether a preset's figures over seeds (mean and min test accuracy) meet its goal within its budget."""
    return params <= goal.budget and test["min"] >= goal.least_min and test["mean"] >= goal.least_mean


# Each preset's views screen: its models read on validation plain and with views, then (once adopted) on test.
VIEWS_SCREENS = {
    "default": "views-seeds",
    "small": "views-screen-small",
    "tiny": "views-screen-tiny",
    "micro": "views-screen-micro",
}


def views() -> str:
    """What test-time views buy and cost for each preset, from its views screen's report."""
    lines = [
        "| preset | reads | report | models | validation gain (standard error) | test with views (worst seed) | "
        "without views (worst) | microseconds per image, with views and without (one thread) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, stem in VIEWS_SCREENS.items():
        reads = "with views" if for_model(name).views else "plain"
        report = json.loads((ROOT / "reports" / f"{stem}.json").read_text(encoding="utf-8"))
        gain, test, cost = report["val_gain"], report.get("test"), report["seconds_per_image"]
        tested = (
            [f"{test[key]['mean']:.3f}% ({test[key]['min']:.2f}%)" for key in ("views", "plain")] if test else ["", ""]
        )
        lines.append(
            f"| {name} | {reads} | `reports/{stem}.md` | {len(report['models'])} "
            f"| {gain['mean']:+.3f}% ({gain['standard_error']:.3f}%) | "
            f"{tested[0]} | {tested[1]} | {cost['views'] * 1e6:,.0f} and {cost['plain'] * 1e6:,.0f} "
            f"({cost['views'] / cost['plain']:.1f}x) |"
        )
    return "\n".join(lines) + (
        "\n\nA preset reads with views when the views' gain on validation, paired by model, exceeds two standard "
        "errors; test figures decide nothing and were gathered after that. The default's row is its 20 seeds (it "
        "adopted the views on 10, `reports/views-screen.md`). The timings ran at different times and loads: "
        "compare within a row."
    )


def sweep() -> str:
    """Validation results of the design sweep (3 seeds per setting), best first."""
    report = json.loads((ROOT / "reports" / "sweep.json").read_text(encoding="utf-8"))
    lines = [
        "| setting | parameters | train.py flags | val mean | val min | test mean |",
        "|---|---:|---|---:|---:|---:|",
    ]
    ranked = sorted(report.items(), key=lambda item: -item[1]["summary"]["val_acc"]["mean"])
    for name, entry in ranked:
        val, test = entry["summary"]["val_acc"], entry["summary"]["test_acc"]
        lines.append(
            f"| {name} | {entry['params']:,} | `{' '.join(entry['train_args'])}` | **{val['mean']:.2f}%** "
            f"| {val['min']:.2f}% | {test['mean']:.2f}% |"
        )
    return "\n".join(lines)


def architecture() -> str:
    """The layer table of each preset, computed from the model."""
    return "\n\n".join(describe(preset) for preset in PRESETS)


def layers() -> str:
    """The kit and each layer on top of it, from compact_mnist/layers.py, and which imports which, read from the
    code's own imports."""
    lines = ["| part | what it adds | modules | packages it adds (`pip install -e .[NAME]`) |", "|---|---|---|---|"]
    for name, part in PARTS.items():
        modules = ", ".join(f"`{module}`" for module in part.modules)
        lines.append(f"| **{name}** | {part.adds} | {modules} | {', '.join(part.packages)} |")
    graph = ["```mermaid", "flowchart BT"]
    for name in PARTS:
        imported = {part_of(other) for module in PARTS[name].modules for other in project_imports(module)}
        graph += [f"    {name} --> {other}" for other in PARTS if other in imported and other != name]
    return "\n".join(lines) + "\n\nAn arrow is an import, drawn from the code:\n\n" + "\n".join(graph) + "\n```"


def kit_workflow() -> str:
    """The workflow that docs/ci-badge.md gives to copy: the `kit` job of this project's own tests workflow."""
    text = (ROOT / ".github" / "workflows" / "tests.yml").read_text(encoding="utf-8")
    job = re.search(r"^  kit:\n(?:    .*\n|\n)*", text, flags=re.M)
    assert job, "the tests workflow has no kit job"
    return "```yaml\nname: tests\n\non: [push, pull_request]\n\njobs:\n" + job.group(0).rstrip() + "\n```"


def presets() -> str:
    """Each preset's size, arithmetic and the receptive field of its last convolution, from the model."""
    lines = [
        "| preset | layer spec | parameters | MACs per image | receptive field of the last convolution |",
        "|---|---|---:|---:|---:|",
    ]
    for preset, spec in PRESETS.items():
        rows = layer_table(Net(preset))
        convolutions = [row for row in rows if "Conv" in row["layer"] or "Separable" in row["layer"]]
        lines.append(
            f"| {preset} | `{spec}` | {count_parameters(Net(preset)):,} | "
            f"{sum(row['macs'] for row in rows):,} | {convolutions[-1]['rf']} pixels |"
        )
    return "\n".join(lines)


def recipe() -> str:
    """How the default trains, from the recipe and the augmentation's bounds, and what the other presets change."""
    default = for_model()
    augmentation = (
        f"rotation up to {ROTATION_DEGREES:g} degrees, shift up to {SHIFT_PIXELS:g} pixels, zoom "
        f"{1 - ZOOM:.0%}-{1 + ZOOM:.0%}"
    )
    if default.elastic:
        augmentation += (
            f", and a smooth elastic displacement of up to {default.elastic:g} pixels (a coarse "
            f"{ELASTIC_GRID}x{ELASTIC_GRID} field, after Simard et al., 2003)"
        )
    changes = []
    for name in PRESETS:
        changed = {key: value for key, value in for_model(name).as_dict().items() if value != getattr(default, key)}
        changed.pop("model", None)
        words = ", ".join(f"{key.replace('_', ' ')} {shown(value)}" for key, value in changed.items())
        changes += [f"`{name}` {words}"] if changed else []
    return (
        f"- **Data on the device.** The {TRAIN_IMAGES:,} training images are split once into "
        f"{TRAIN_IMAGES - default.val_size:,} for training and {default.val_size:,} for validation. "
        "All images live as normalized tensors on the device; "
        f"each batch is augmented in one `grid_sample` call: {augmentation}.\n"
        f"- **Recipe.** SGD with Nesterov momentum, OneCycleLR to a peak learning rate of "
        f"{default.lr:g}, batch {default.batch_size}, weight decay {default.weight_decay:g}, label smoothing "
        f"{default.label_smoothing:g}, dropout {default.dropout:g}, {default.epochs} epochs; where the other presets "
        f"differ: {'; '.join(changes)} (`compact_mnist.recipe.PRESET_RECIPES`). On a CPU the network is stored "
        "channels-last, where depthwise and 1x1 convolutions run faster.\n"
        + (
            "- **Test-time views.** The saved model reads each digit as the mean of its probabilities over the image "
            f"and its four one-pixel shifts, all {len(SHIFTS)} in one batch (`Net.views`), at {len(SHIFTS)} times a "
            "plain reading's arithmetic; training sees the image alone, and every figure with views has the plain "
            "network's beside it. `--no-views` saves a model that reads plain."
            if default.views
            else ""
        )
    )


def curves() -> str:
    """What the committed model's training curves show, in numbers from its metrics.json."""
    history = json.loads((ROOT / "models" / "metrics.json").read_text(encoding="utf-8"))["history"]
    middle = [h for h in history[2:-4] if h["val_acc"] is not None]
    dip = min(middle, key=lambda h: h["val_acc"])
    last = history[-1]
    return (
        f"After the first two epochs, validation accuracy still swings from epoch to epoch (down to "
        f"{dip['val_acc']:.2f}% at epoch {dip['epoch']}, learning rate {dip['lr']:.2f}); it settles only as "
        f"OneCycleLR brings the rate down in the last epochs, ending at {last['val_acc']:.2f}%. The saved model is "
        "the last epoch's, never the best-looking one."
    )


def confusions() -> str:
    """The committed model's most frequent mistakes on the test set, from evaluate.py's report."""
    report = json.loads((ROOT / "reports" / "evaluation.json").read_text(encoding="utf-8"))
    matrix = report["confusion_matrix"]
    pairs = sorted(
        ((matrix[true][guess], true, guess) for true in range(10) for guess in range(10) if true != guess), reverse=True
    )[:6]
    listed = ", ".join(f"{true} read as {guess} ({count})" for count, true, guess in pairs)
    return f"Its most frequent confusions on the 10,000 test digits (`reports/evaluation.json`): {listed}."


def reading_summary() -> str:
    """The reading table in a few lines, for the README: the model card holds the table itself."""
    report = json.loads((ROOT / "reports" / "reading_rate.json").read_text(encoding="utf-8"))
    rows = report["rows"]
    paired = {name: row for name, row in rows.items() if row["plain_files"] is not None and name != "number"}
    gaps = {name: row["plain_files"] - row["now"]["read_correctly"] for name, row in paired.items()}
    widest = max(gaps, key=gaps.get)
    lowest = min(rows, key=lambda name: rows[name]["now"]["read_correctly"])
    refused = sum(row["now"]["refused"] for row in rows.values())
    alone = rows[lowest]["now"].get("read_correctly_without_views")
    without = "" if alone is None else f"; {alone:.1f}% without test-time views"
    return (
        f"{len(rows)} kinds of picture, {sum(row['samples'] for row in rows.values()):,} files in all, {refused} "
        f"refused. Of the {len(paired)} single-digit kinds made from MNIST digits, the furthest below the same "
        f"digits as plain files is *{widest}*, {rows[widest]['now']['read_correctly']:.1f}% against "
        f"{rows[widest]['plain_files']:.1f}%; the lowest row is *{lowest}* "
        f"({rows[lowest]['now']['read_correctly']:.1f}%{without}). "
        "Numbers of 2 to 6 digits are read whole "
        f"{rows['number']['now']['read_correctly']:.1f}% of the time, drawn digits "
        f"{rows['drawn']['now']['read_correctly']:.1f}%, typed {rows['typed']['now']['read_correctly']:.1f}%. "
        "Every row is in the [model card](docs/model-card.md#reading-rates)."
    )


def web() -> str:
    """The browser page's figures in a few lines (benchmarks/web.json); the whole table is benchmarks/web.md."""
    report = json.loads((ROOT / "benchmarks" / "web.json").read_text(encoding="utf-8"))
    visit, kinds, digits = report["first_visit"], report["parity"], report["test_digits"]
    largest, size = max(visit["files"].items(), key=lambda item: item[1])
    drawn = kinds["drawn"]
    pictures = sum(row["pictures"] for row in kinds.values())
    same = sum(row["pictures"] * row["same_digit"] / 100 for row in kinds.values())
    worst = min(kinds, key=lambda kind: kinds[kind]["same_digit"])
    return (
        f"Measured in headless Chromium on this 2-core machine ([benchmarks/web.md](../benchmarks/web.md), "
        f"`python benchmarks/bench_web.py`): a first visit transfers {visit['bytes'] / 1e6:.1f} MB "
        f"({largest}, onnxruntime's WebAssembly, is {size / 1e6:.1f} MB of it), and the first prediction comes "
        f"{visit['first_prediction_ms'] / 1000:.1f} s after navigation. A drawn digit takes "
        f"{drawn['preprocess_ms']['median']:.0f} ms to preprocess (95th percentile "
        f"{drawn['preprocess_ms']['p95']:.0f} ms) and {drawn['inference_ms']['median']:.1f} ms to read "
        f"({drawn['inference_ms']['p95']:.1f} ms). On {pictures:,} pictures, both sides reading with the int8 "
        f"model (the page in the browser, predict.py's preprocessing in Python's onnxruntime), the page reads the "
        f"same digit on {same / pictures:.2%} (lowest: *{worst}*, {kinds[worst]['same_digit']:.1f}%). Reading "
        f"rates, the page's int8 model against predict.py's float one: drawn digits "
        f"{drawn['page_reads']:.1f}% against {drawn['predict_py_reads']:.1f}%, typed "
        f"{kinds['typed']['page_reads']:.1f}% against {kinds['typed']['predict_py_reads']:.1f}%. The 10,000 test "
        f"digits through its inference alone: {digits['page_accuracy']:.2f}%."
    )


def written_by_a_script(path: str):
    """A section that is a markdown file a script wrote (benchmark, search, reading-rate reports)."""
    return lambda: (ROOT / path).read_text(encoding="utf-8").strip()


SECTIONS = {
    "headline": headline, "results": results, "seeds": seeds, "views": views, "epochs": epochs, "sweep": sweep,
    "architecture": architecture, "layers": layers, "kit_workflow": kit_workflow,
    "network": network, "install": install, "timings": timings,
    "benchmark": written_by_a_script("benchmarks/results.md"),
    "startup": written_by_a_script("benchmarks/startup.md"),
    "search": written_by_a_script("reports/search-screen.md"),
    "reading": written_by_a_script("reports/reading_rate.md"), "reading_summary": reading_summary,
    "confusions": confusions, "curves": curves, "presets": presets, "recipe": recipe,
    "frontier": written_by_a_script("reports/frontier.md"),
    "onnx": written_by_a_script("benchmarks/onnx.md"),
    "demo": written_by_a_script("benchmarks/demo.md"), "web": web,
    "margin": written_by_a_script("reports/margin-screen.md"),
    "ablation": written_by_a_script("reports/ablation.md"),
}  # fmt: skip


def hub_front_matter() -> str:
    """The model card's YAML header, which the Hugging Face Hub reads: license, library, tags, data set, and the
    test accuracy of the committed model and of the default's recipe over seeds (`model-index`)."""
    meta = json.loads((ROOT / "models" / "metrics.json").read_text(encoding="utf-8"))["meta"]
    entry = json.loads((ROOT / "reports" / "seeds.json").read_text(encoding="utf-8"))["default"]
    test, seeds = entry["summary"]["test_acc"], len(entry["runs"])
    views = " read with test-time views"
    committed = views if meta.get("plain_test_accuracy") is not None else ""
    recipe = views if "plain_test_acc" in entry["summary"] else ""
    results = [
        (meta["test_accuracy"], f"test accuracy of the committed model (final epoch){committed}"),
        (round(test["mean"], 3), f"test accuracy, mean of {seeds} seeds of the recipe{recipe}"),
        (test["min"], f"test accuracy, worst of {seeds} seeds{recipe}"),
    ]
    if committed:
        results.append((meta["plain_test_accuracy"], "test accuracy of the committed model without test-time views"))
    metrics = "".join(
        f"          - type: accuracy\n            value: {value}\n            name: {name}\n" for value, name in results
    )
    header = """---
license: mit
library_name: pytorch
tags:
  - image-classification
  - mnist
  - compact-cnn
datasets:
  - ylecun/mnist
metrics:
  - accuracy
model-index:
  - name: compact-mnist-cnn
    results:
      - task:
          type: image-classification
        dataset:
          name: MNIST
          type: ylecun/mnist
          split: test
        metrics:
"""
    return header + metrics + "---\n"


def render(text: str) -> str:
    """A document's text with every generated section rebuilt, and its YAML header where it has one (the model
    card's, for the Hugging Face Hub)."""
    if text.startswith("---\n"):
        text = hub_front_matter() + text[text.index("\n---\n", 3) + 5 :]

    def fill(match: re.Match) -> str:
        name = match.group(1)
        return f"<!-- BEGIN {name} -->\n{SECTIONS[name]()}\n<!-- END {name} -->"

    return re.sub(r"<!-- BEGIN (\w+) -->.*?<!-- END \1 -->", fill, text, flags=re.S)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that every document is up to date")
    args = parser.parse_args(argv)
    stale = []
    for document in DOCUMENTS:
        current = document.read_text(encoding="utf-8")
        rendered = render(current)
        if rendered != current:
            stale.append(document.relative_to(ROOT).as_posix())
            if not args.check:
                document.write_text(rendered, encoding="utf-8")
    if args.check and stale:
        print(f"{', '.join(stale)} out of date: run python scripts/render_readme.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
