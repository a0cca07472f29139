"""Search architectures and recipes with Optuna: validation accuracy against parameters and CPU time.

    python scripts/search.py --study screen --trials 20 --seeds 2 -- --epochs 8 --train-limit 20000
    python scripts/search.py --study screen --trials 20 -- --epochs 8 --train-limit 20000   # continues it
    python scripts/search.py --study screen --report                          # Pareto front -> reports/
    OPTUNA_STORAGE=postgresql://user:pw@db-host/optuna python scripts/search.py --study screen --trials 50

A study lives in a database (`--storage`, else $OPTUNA_STORAGE, else a SQLite file under runs/), so
calling the command again continues it, several `--jobs` share it, and the same command on several
machines pointed at one database server shares it too. $OPTUNA_STORAGE keeps a password off every
command line (worker processes get it through their environment); wherever the URL is shown, its
password is masked. A study stores the train.py flags and seeds of its first call, and refuses a call
with others, so that all its trials are scored alike. Each trial samples a layer spec and a recipe, trains it with
`--seeds` seeds through train.py (everything after `--` is passed on), and scores it by three
objectives: mean validation accuracy (up), parameters (down) and seconds per epoch (down). The test
set is never used to choose: trials record validation figures only; confirm a chosen setting with
scripts/seeds.py, which reports test accuracy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

from compact_mnist.cli import ArgumentParser, UsageError, UserError, number, positive_int, run_cli
from compact_mnist.files import stamp, write_report
from compact_mnist.goals import NOT_THE_RECIPE
from compact_mnist.recipe import Recipe
from model import Net, count_parameters
from scripts.launch import RunFailed, RunStopped, train_run

ROOT = Path(__file__).resolve().parent.parent

DIRECTIONS = ["maximize", "minimize", "minimize"]  # validation accuracy, parameters, seconds per epoch
# Up to three stages split by 2x2 max-pools: (most convolutions, narrowest width, widest width).
STAGES = [(2, 2, 16), (3, 4, 24), (3, 4, 32)]
SEARCHED = ("--model", "--lr", "--label-smoothing", "--dropout", "--weight-decay", "--augment-strength", "--ema")
RESERVED = (*SEARCHED, "--seed", "--out-dir", "--resume", "--no-augment")
# Pruning compares a trial with finished ones from this fraction of the schedule on, once OneCycleLR's
# warm-up is over and validation accuracy starts to say something about the end.
PRUNE_FROM = 0.5
STORAGE_ATTEMPTS = 5  # tries to open a storage whose tables another worker may be creating
STORAGE_VARIABLE = "OPTUNA_STORAGE"  # the variable Optuna's own command line reads
# SQLAlchemy 2's postgresql:// means psycopg 3; other servers' drivers are named in SQLAlchemy's docs.
DRIVERS = {
    "postgresql": 'pip install "psycopg[binary]"', "postgresql+psycopg": 'pip install "psycopg[binary]"',
    "postgresql+psycopg2": "pip install psycopg2-binary", "mysql": "pip install mysqlclient",
}  # fmt: skip
SMALLEST_SPEC = ",M,".join([str(STAGES[0][1])] + [f"{low}s" for _, low, _ in STAGES[1:]])


def default_storage() -> str:
    return f"sqlite:///{(ROOT / 'runs' / 'search.db').as_posix()}"


def storage_url(flag: str | None) -> str:
    """The study database: --storage, else $OPTUNA_STORAGE, else the SQLite file under runs/."""
    return flag or os.environ.get(STORAGE_VARIABLE) or default_storage()


def masked(url: str) -> str:
    """`url` as it may be shown: with its password replaced by ***, or only its scheme if it cannot be parsed."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # SQLAlchemy raises ArgumentError, ValueError...: then nothing after the scheme is safe
        return url.split("://", 1)[0] + "://..." if "://" in url else "(not a URL)"


def spec_params(spec: str) -> int:
    return count_parameters(Net(spec))


def suggest_spec(trial) -> str:
    """A layer spec: convolutions per stage, their widths and kind (plain or depthwise-separable after the
    first stage), a max-pool between stages, and optionally a 1x1 convolution before the head. The first
    stage halves the map either by a max-pool or by a stride of 2 in its last convolution (`8d`), which
    computes a quarter of that layer's outputs: on a CPU the full-resolution layers set an epoch's time."""
    stages = []
    for stage, (most, low, high) in enumerate(STAGES):
        convs = trial.suggest_int(f"stage{stage + 1}_convs", 1, most)
        widths = [trial.suggest_int(f"stage{stage + 1}_width{i + 1}", low, high, step=2) for i in range(convs)]
        kind = trial.suggest_categorical(f"stage{stage + 1}_kind", ["", "s"]) if stage else ""
        stages.append(",".join(f"{width}{kind}" for width in widths))
    if trial.suggest_categorical("stage1_downsampling", ["pool", "stride"]) == "stride":
        stages[:2] = [f"{stages[0]}d,{stages[1]}"]
    head = trial.suggest_categorical("head_1x1", [0, 10, 16])
    return ",M,".join(stages) + (f",{head}p" if head else "")


def suggest_recipe(trial) -> list[str]:
    """train.py flags for the searched hyperparameters."""
    values = {
        "--lr": trial.suggest_float("lr", 0.05, 1.0, log=True),
        "--label-smoothing": trial.suggest_float("label_smoothing", 0.0, 0.15),
        "--dropout": trial.suggest_float("dropout", 0.0, 0.2),
        "--weight-decay": trial.suggest_float("weight_decay", 1e-5, 2e-3, log=True),
        "--augment-strength": trial.suggest_float("augment_strength", 0.0, 1.5),
        "--ema": trial.suggest_categorical("ema", [0.0, 0.99, 0.995, 0.998]),
    }
    return [item for flag, value in values.items() for item in (flag, f"{value:.4g}")]


def check_train_args(train_args: list[str]) -> int:
    """Refuse flags that the search sets itself or that train.py refuses; return the epoch count."""
    import train

    for flag in train_args:
        if flag.split("=")[0] in RESERVED:
            raise UserError(f"{flag} after -- is set by the search itself; leave out {', '.join(RESERVED)}")
    try:
        recipe = train.parse_args(train_args, exit_on_error=False).recipe
    except UsageError as error:
        raise UserError(f"train.py refuses the flags after --: {error}") from None
    except SystemExit:  # --help: it printed train.py's flags
        raise UserError("--help after -- trains nothing; train.py's flags are listed above") from None
    if recipe.val_size == 0:
        raise UserError("--val-size 0 after -- leaves no validation images to score trials on")
    return recipe.epochs


def open_storage(url: str, heartbeat: int = 60):
    """An Optuna storage for `url`; a malformed or unreachable one is a `UserError` that never shows its password.
    A worker that sends no heartbeat for 3 x `heartbeat` seconds has its running trial marked failed."""
    import optuna
    from sqlalchemy.exc import IntegrityError

    engine = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 60}}  # several workers on one file wait for each other's writes
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for attempt in range(STORAGE_ATTEMPTS):
        try:
            # The heartbeat lets any worker mark a trial FAILED whose machine died while running it.
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=3 * heartbeat
            )
        except Exception as error:  # SQLAlchemy raises many kinds: bad URL, missing driver, no server
            racing = isinstance(error, IntegrityError) or "already exists" in str(error)
            if racing and attempt + 1 < STORAGE_ATTEMPTS:
                # Workers started together on a new database race to create its tables; the loser retries.
                time.sleep(1 + attempt)
                continue
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            reason = reason.replace(url, masked(url))
            driver = DRIVERS.get(url.split("://", 1)[0])
            if driver and "import" in reason:
                reason += f" (install its driver: {driver})"
            raise UserError(f"cannot open the study database {masked(url)}: {reason}") from None


def make_pruner(trial, params: int, epochs: int):
    """`on_epoch` for the trial's first seed: stop once its validation accuracy, from PRUNE_FROM of the
    schedule on, is below that of every finished trial with no more parameters at the same epoch."""
    import optuna

    curve: dict[int, float] = {}

    def on_epoch(epoch: int, val_acc: float) -> bool:
        curve[epoch] = val_acc
        trial.set_user_attr("val_curve", curve)
        if epoch < PRUNE_FROM * epochs:
            return False
        rivals = [
            other.user_attrs["val_curve"].get(str(epoch), other.user_attrs["val_curve"].get(epoch))
            for other in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if other.user_attrs.get("params", float("inf")) <= params and "val_curve" in other.user_attrs
        ]
        rivals = [value for value in rivals if value is not None]
        return len(rivals) >= 3 and val_acc < min(rivals)

    return on_epoch


def objective(trial, args: argparse.Namespace, epochs: int, threads: int) -> tuple[float, int, float]:
    import optuna

    spec = suggest_spec(trial)
    params = spec_params(spec)
    trial.set_user_attr("spec", spec)
    trial.set_user_attr("params", params)
    if args.max_params and params > args.max_params:
        # Over budget: recorded as pruned before any training is spent on it.
        trial.set_user_attr("error", f"over --max-params {args.max_params:,}, not trained")
        raise optuna.TrialPruned()
    flags = ["--model", spec, *suggest_recipe(trial), *args.train_args]
    trial.set_user_attr("train_args", flags)
    val, seconds = [], []
    for seed in range(args.seeds):
        out = args.runs / args.study / f"trial-{trial.number}" / f"seed-{seed}"
        on_epoch = make_pruner(trial, params, epochs) if seed == 0 else None
        try:
            meta = train_run(["--seed", str(seed), *flags], out, threads, on_epoch)["meta"]
        except RunStopped as stopped:
            trial.set_user_attr("error", f"seed {seed} {stopped}: behind every smaller finished trial")
            raise optuna.TrialPruned() from None
        except RunFailed as error:
            trial.set_user_attr("error", str(error))
            raise
        val.append(meta["val_accuracy"])
        seconds.append(meta["seconds_per_epoch"])
    trial.set_user_attr("val_accuracies", val)
    trial.set_user_attr("threads", threads)
    return statistics.mean(val), params, statistics.mean(seconds)


def print_trial(study, trial) -> None:
    """One line per finished trial (Optuna's own log prints every parameter, and tracebacks for failures)."""
    spec, params = trial.user_attrs.get("spec"), trial.user_attrs.get("params", 0)
    if trial.state.name == "COMPLETE":
        outcome = f"val {trial.values[0]:.2f}%, {trial.values[2]:.1f} s/epoch"
    else:
        outcome = trial.user_attrs.get("error") or trial.state.name.lower()
    print(f"trial {trial.number} {trial.state.name.lower()}: {spec} ({params:,} parameters): {outcome}", flush=True)


def pareto_report(study, out_dir: Path) -> Path:
    """Write the study's Pareto front as JSON, markdown and a picture; return the JSON path."""
    import optuna

    from compact_mnist.plots import pareto_front

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    front_numbers = {trial.number for trial in study.best_trials}

    def row(trial) -> dict:
        return dict(
            trial=trial.number,
            spec=trial.user_attrs["spec"],
            params=int(trial.values[1]),
            val_mean=trial.values[0],
            val_runs=trial.user_attrs["val_accuracies"],
            seconds_per_epoch=trial.values[2],
            train_args=trial.user_attrs["train_args"],
        )

    front = sorted((row(trial) for trial in complete if trial.number in front_numbers), key=lambda r: r["params"])
    trials = study.get_trials(deepcopy=False)
    states = [trial.state.name.lower() for trial in trials]
    # Throughput: trials whose training ran to its end or to the pruner, over the study's wall-clock span
    # (a study continued later counts the pause too).
    trained = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED") and "train_args" in t.user_attrs]
    hours = (
        (max(t.datetime_complete for t in trained) - min(t.datetime_start for t in trained)).total_seconds() / 3600
        if trained
        else 0.0
    )
    report = dict(
        study=study.study_name,
        objectives=["val_mean (max)", "params (min)", "seconds_per_epoch (min)"],
        trials={state: states.count(state) for state in sorted(set(states))},
        trained_trials=len(trained),
        wall_clock_hours=hours,
        pareto_front=front,
    )
    path = out_dir / f"search-{study.study_name}.json"
    write_report(report, markdown(report), path)
    points = [(int(t.values[1]), t.values[0], t.values[2], t.number in front_numbers) for t in complete]
    pareto_front(points, f"study {study.study_name}: {len(complete)} complete trials", path.with_suffix(".png"))
    stamp(path.with_suffix(".png"), [path], f"python scripts/search.py --study {study.study_name} --report")
    return path


def markdown(report: dict) -> str:
    counts = ", ".join(f"{count} {state}" for state, count in report["trials"].items())
    hours, trained = report["wall_clock_hours"], report["trained_trials"]
    pace = f" {trained} trials trained in {hours * 60:.0f} minutes ({trained / hours:.0f} per hour)." if hours else ""
    lines = [
        f"Study `{report['study']}`: {counts}.{pace} Pareto front over mean validation accuracy (up), parameters "
        "(down) and seconds per epoch (down); validation only, no test figures.",
        "",
        "| trial | layer spec | parameters | val mean | seeds | s / epoch | train.py flags |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for row in report["pareto_front"]:
        flags = " ".join(row["train_args"][2:])
        lines.append(
            f"| {row['trial']} | `{row['spec']}` | {row['params']:,} | {row['val_mean']:.2f}% | "
            f"{len(row['val_runs'])} | {row['seconds_per_epoch']:.1f} | `{flags}` |"
        )
    return "\n".join(lines) + "\n"


def start_worker(args: argparse.Namespace, url: str, trials: int, threads: int) -> subprocess.Popen:
    """Another `search.py --jobs 1` process on the same study, for `trials` of this call's trials. The storage
    URL goes through its environment: on a command line, any user of the machine could read its password."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--study",
        args.study,
        "--trials",
        str(trials),
        "--seeds",
        str(args.seeds),
        "--threads",
        str(threads),
        "--runs",
        str(args.runs),
        "--heartbeat",
        str(args.heartbeat),
    ]
    if args.max_params:
        command += ["--max-params", str(args.max_params)]
    env = dict(os.environ, **{STORAGE_VARIABLE: url})
    return subprocess.Popen([*command, "--", *args.train_args], cwd=ROOT, env=env)


def base_recipe(train_args: list[str]) -> Recipe:
    """What every trial trains apart from the searched values: train.py's recipe for a layer spec with these flags."""
    import train

    return train.parse_args(["--model", SMALLEST_SPEC, *train_args], exit_on_error=False).recipe


def check_same_trials(study, args: argparse.Namespace) -> None:
    """Record the recipe and seeds of a new study's trials; refuse to add trials of another kind to an old one (they
    would share a Pareto front and a per-epoch pruner with trials scored differently). Recipes are compared, not
    flags: the same flags can train another recipe after a default changes. A study stored before its recipe was
    trained its layer specs without elastic distortion unless its flags asked for it."""
    asked = base_recipe(args.train_args)
    stored = study.user_attrs  # one read of the storage
    flags = stored.get("train_args", args.train_args)
    if "recipe" in stored:
        recipe = Recipe.recorded(stored["recipe"])
    else:
        if "train_args" in stored and not any(flag.split("=")[0] == "--elastic" for flag in flags):
            flags = [*flags, "--elastic", "0"]
        recipe = base_recipe(flags)
        study.set_user_attr("recipe", recipe.as_dict())
    for key, value in {"train_args": flags, "seeds": args.seeds}.items():
        if key not in stored:
            study.set_user_attr(key, value)
    differ = {
        name: (old, new)
        for name, old in recipe.as_dict().items()
        if name not in NOT_THE_RECIPE and old != (new := getattr(asked, name))
    }
    if stored.get("seeds", args.seeds) != args.seeds:
        differ["seeds"] = (stored["seeds"], args.seeds)
    if differ:
        words = "; ".join(f"{key.replace('_', ' ')} {old} there, {new} here" for key, (old, new) in differ.items())
        raise UserError(
            f"study {args.study!r} trains other trials ({words}); run it with the study's recipe "
            f"(`-- {' '.join(flags)}`), or start a new --study"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--study", default="search", help="study name")
    add(
        "--storage",
        default=None,
        help=f"SQLAlchemy URL of the study database (default: ${STORAGE_VARIABLE}, else sqlite:///runs/search.db); "
        f"a URL with a password belongs in ${STORAGE_VARIABLE}, not on the command line",
    )
    add(
        "--trials",
        type=number(int, at_least=0),
        default=0,
        help="trials to run now, on top of the study's earlier ones (default: 0, only report)",
    )
    add(
        "--jobs",
        type=positive_int,
        default=1,
        help="trials run at once, each in its own worker process sharing the study",
    )
    add("--threads", type=positive_int, default=None, help="CPU threads per training run (default: cores / jobs)")
    add("--seeds", type=positive_int, default=2, help="seeds trained per trial")
    add(
        "--heartbeat",
        type=positive_int,
        default=60,
        help="seconds between a worker's heartbeats; a trial whose worker is silent for 3 of them is marked failed",
    )
    add("--max-params", type=positive_int, default=None, help="skip architectures over this many parameters")
    add(
        "--runs", type=Path, default=ROOT / "runs" / "search", help="folder for the trials' runs (default: %(default)s)"
    )
    add("--report", action="store_true", help="write the Pareto front to --report-dir after the trials")
    add("--report-dir", type=Path, default=ROOT / "reports", help="folder for the report (default: reports/)")
    add("train_args", nargs="*", help="train.py flags for every trial, after --")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    epochs = check_train_args(args.train_args)
    if args.max_params and spec_params(SMALLEST_SPEC) > args.max_params:
        raise UserError(
            f"--max-params {args.max_params:,}: no architecture in the search space is that small "
            f"(the smallest, {SMALLEST_SPEC}, has {spec_params(SMALLEST_SPEC):,} parameters)"
        )
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    url = storage_url(args.storage)
    storage = open_storage(url, args.heartbeat)
    if args.trials == 0:
        try:
            study = optuna.load_study(study_name=args.study, storage=storage)
        except KeyError:
            known = ", ".join(optuna.get_all_study_names(storage)) or "none"
            raise UserError(f"no study {args.study!r} in {masked(url)}; studies there: {known}") from None
    else:
        try:
            study = optuna.create_study(
                study_name=args.study,
                storage=storage,
                directions=DIRECTIONS,
                load_if_exists=True,
                sampler=optuna.samplers.NSGAIISampler(population_size=10),
            )
        except ValueError as error:
            raise UserError(f"study {args.study!r} cannot be continued here: {error}") from None
    optuna.storages.fail_stale_trials(study)  # trials whose worker died (no heartbeat) become FAIL
    if args.trials:
        check_same_trials(study, args)
        threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
        print(f"study {args.study}: {len(study.trials)} trials so far; running {args.trials} more", flush=True)
        # Worker processes rather than Optuna's threads: each stops cleanly on Ctrl-C, as on many machines.
        shares = [args.trials // args.jobs + (job < args.trials % args.jobs) for job in range(args.jobs)]
        helpers = [start_worker(args, url, share, threads) for share in shares[1:] if share]
        try:
            study.optimize(
                lambda trial: objective(trial, args, epochs, threads),
                n_trials=shares[0],
                catch=(RunFailed,),
                callbacks=[print_trial],
            )
        finally:
            for helper in helpers:
                helper.wait()
    states = [trial.state.name.lower() for trial in study.trials]
    print(f"study {args.study}: " + ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states))))
    if args.report:
        print(f"wrote {pareto_report(study, args.report_dir)} (and .md, .png)")
    return 0


if __name__ == "__main__":
    run_cli(main)
