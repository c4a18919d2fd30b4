"""Hyperparameter search with Optuna: TPE sampling, median pruning, one run folder per trial.

The search space is decided in one place, :func:`default_space`, from the architecture table
(learning rates around the architecture's defaults, its unfreeze depth, image sizes around its
native size) and can be overridden by a JSON file of the same shape. Each trial is an ordinary
training run in ``<outputs>/search/<study>/runs/`` tagged with its study and number, so every
other script works on it; the objective is the validation metric training already monitors
(``val_pr_auc``) — the test split is never read. The first trial is the base settings
themselves, so the study shows what tuning adds to them. Optuna's Keras callback reports the metric
after every epoch and stops trials the median pruner deems poor. The study lives in a database
(SQLite beside the trials by default), so an interrupted search resumes where it stopped, and a
PostgreSQL/MySQL URL lets several processes or machines share one study.
"""
from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import optuna
from optuna_integration import TFKerasPruningCallback

from skin_lesion import layout
from skin_lesion.errors import ConfigError
from skin_lesion.io_utils import read_json, write_json_atomic, write_text_atomic
from skin_lesion.models.architectures import get_architecture
from skin_lesion.plots import save_figure
from skin_lesion.training.config import PATH_SETTINGS, TrainConfig
from skin_lesion.training.trainer import MONITOR, train

log = logging.getLogger(__name__)

KINDS = ("float", "int", "categorical")
#: Trials that always run whole before the pruner judges, and epochs before it judges a trial.
STARTUP_TRIALS, WARMUP_EPOCHS = 3, 2


def default_space(config: TrainConfig) -> dict[str, dict]:
    """Ranges around the resolved ``config``'s architecture defaults, for the phases it trains."""
    spec = get_architecture(config.architecture)
    space: dict[str, dict] = {}
    for phase, name in ((1, "learning_rate"), (2, "fine_tune_learning_rate")):
        if not getattr(config, f"skip_phase{phase}"):
            rate = getattr(config, name)
            space[name] = {"type": "float", "low": rate / 4, "high": rate * 4, "log": True}
    if spec.pretrained and not config.skip_phase2:
        space["unfreeze_layers"] = {"type": "int", "low": 0, "high": 2 * spec.unfreeze_layers}
    sizes = sorted({max(32, round(config.img_size * factor / 16) * 16) for factor in (0.75, 1.0, 1.25)})
    space.update({
        "img_size": {"type": "categorical", "choices": sizes},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5},
        "dense_units": {"type": "categorical", "choices": [0, 128, 256, 512]},
        "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.15},
        "schedule": {"type": "categorical", "choices": ["plateau", "cosine"]},
    })
    return space


def search_space(config: TrainConfig, override_file: Path | None = None) -> dict[str, dict]:
    """The default space, with the entries of ``override_file`` replacing (or, as null,
    removing) the defaults; every entry is checked."""
    space = default_space(config)
    if override_file:
        overrides = read_json(override_file, "Search space file")
        if not isinstance(overrides, dict):
            raise ConfigError(f"Search space file {override_file} must hold a JSON object.")
        space.update(overrides)
        space = {name: entry for name, entry in space.items() if entry is not None}
    for name, entry in space.items():
        check_entry(name, entry, override_file)
    return space


def check_entry(name: str, entry: dict, source: Path | None) -> None:
    where = f"Search space file {source}" if source else "Search space"
    if name not in TrainConfig.names() or name in ("architecture", "task", "split_file", "outputs_dir", "cache_dir"):
        raise ConfigError(f"{where}: {name!r} is not a setting a search can vary.")
    kind = entry.get("type") if isinstance(entry, dict) else None
    needed = ("choices",) if kind == "categorical" else ("low", "high")
    if kind not in KINDS or any(key not in entry for key in needed):
        raise ConfigError(f"{where}: {name} must be {{\"type\": \"float\"|\"int\", \"low\": ..., \"high\": ...[, "
                          f"\"log\": true]}} or {{\"type\": \"categorical\", \"choices\": [...]}}; got {entry}.")


def suggest(trial: optuna.Trial, space: dict[str, dict]) -> dict:
    """One value per entry of ``space`` from Optuna's sampler."""
    values = {}
    for name, entry in space.items():
        if entry["type"] == "categorical":
            values[name] = trial.suggest_categorical(name, entry["choices"])
        elif entry["type"] == "int":
            values[name] = trial.suggest_int(name, entry["low"], entry["high"], log=entry.get("log", False))
        else:
            values[name] = trial.suggest_float(name, entry["low"], entry["high"], log=entry.get("log", False))
    return values


def default_storage(outputs_dir: Path, study: str) -> str:
    path = layout.OutputsLayout(outputs_dir).search_dir(study) / "study.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.resolve()}"


def trial_config(base: TrainConfig, values: dict, study: str) -> TrainConfig:
    """A trial's settings: the base ones with the sampled values; its run folder under the
    study's folder, its image cache shared with the base outputs."""
    outputs = layout.OutputsLayout(Path(base.outputs_dir))
    return dataclasses.replace(base, **values, outputs_dir=str(outputs.search_dir(study)),
                               cache_dir=base.cache_dir).resolved()


def objective(base: TrainConfig, space: dict, study: str, extra_callbacks: list):
    """The function Optuna calls: train one run, return its best validation metric."""
    def run_trial(trial: optuna.Trial) -> float:
        config = trial_config(base, suggest(trial, space), study)
        tag = {"search": {"study": study, "trial": trial.number}}
        log.info("Trial %d: %s", trial.number, {name: getattr(config, name) for name in space})
        pruning = TFKerasPruningCallback(trial, MONITOR)
        try:
            run = train(config, extra_callbacks=[pruning, *extra_callbacks], record=tag)
        except optuna.TrialPruned:
            log.info("Trial %d pruned", trial.number)
            mark_pruned(Path(config.outputs_dir), trial.number)
            raise
        trial.set_user_attr("run", str(run.root))
        return float(read_json(run.config, "Training config")["best"][MONITOR])
    return run_trial


def mark_pruned(study_dir: Path, number: int) -> None:
    """Record in a pruned trial's run folder that the pruner stopped it."""
    for config_file in (study_dir / "runs").glob(f"*/{layout.CONFIG_FILE}"):
        record = read_json(config_file, "Training config")
        if record.get("search", {}).get("trial") == number and record.get("status") == "running":
            write_json_atomic(config_file, {**record, "status": "pruned"})


def open_study(name: str, storage: str, pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create the study or load it to go on; heartbeats let a new process fail trials whose
    process died (killed or crashed) instead of waiting for them forever."""
    with warnings.catch_warnings():  # heartbeats are marked experimental: no console noise for it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        database = optuna.storages.RDBStorage(storage, heartbeat_interval=30, grace_period=90)
    return optuna.create_study(
        study_name=name, storage=database, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=STARTUP_TRIALS),
        pruner=pruner or optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS,
                                                     n_warmup_steps=WARMUP_EPOCHS))


def finished(study: optuna.Study) -> int:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def enqueue_base(study: optuna.Study, base: TrainConfig, space: dict[str, dict]) -> None:
    """Make a new study's first trial the base settings themselves (where the space allows
    them): the search then starts from the recipe and shows what tuning adds to it."""
    def allowed(entry: dict, value) -> bool:
        if entry["type"] == "categorical":
            return value in entry["choices"]
        return value is not None and entry["low"] <= value <= entry["high"]

    values = {name: getattr(base, name) for name, entry in space.items() if allowed(entry, getattr(base, name))}
    study.enqueue_trial(values, skip_if_exists=True)


def run_search(base: TrainConfig, trials: int, study_name: str, storage: str | None = None,
               timeout: float | None = None, space_file: Path | None = None,
               extra_callbacks: list | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Run trials until the study holds ``trials`` finished ones (or ``timeout`` seconds pass),
    then write ``best_config.json`` and the plots into the study's folder. ``pruner`` replaces
    the median pruner (a test forces pruning with it)."""
    paths_as_given = {name: getattr(base, name) for name in PATH_SETTINGS}
    base = base.resolved()
    space = search_space(base, space_file)
    storage = storage or default_storage(Path(base.outputs_dir), study_name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(study_name, storage, pruner)
    if not study.trials:
        enqueue_base(study, base, space)
    remaining = trials - finished(study)
    log.info("Study %s (%s): %d trial(s) finished, %d to run; search space: %s", study_name, storage,
             trials - remaining, max(remaining, 0), ", ".join(space))
    if remaining > 0:
        study.optimize(objective(base, space, study_name, extra_callbacks or []), n_trials=remaining,
                       timeout=timeout, gc_after_trial=True)
    write_results(study, dataclasses.replace(base, **paths_as_given),
                  layout.OutputsLayout(Path(base.outputs_dir)).search_dir(study_name))
    return study


def write_results(study: optuna.Study, base: TrainConfig, folder: Path) -> None:
    """``best_config.json`` (settings ``03_train.py --config`` takes as they are, with the paths
    as the search was given them, so a checkout moved elsewhere can use it), ``trials.csv`` and
    Optuna's plots."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    write_text_atomic(folder / "trials.csv", study.trials_dataframe().to_csv(index=False))
    if not complete:
        log.warning("No trial of study %s has completed; no best settings yet.", study.study_name)
        return
    best = study.best_trial
    settings = dataclasses.replace(base, **best.params).as_dict()
    write_json_atomic(folder / "best_config.json", settings)
    log.info("Best trial %d: %s %.4f with %s -> %s", best.number, MONITOR, best.value, best.params,
             folder / "best_config.json")
    write_plots(study, folder, len(complete))


def write_plots(study: optuna.Study, folder: Path, complete: int) -> None:
    from optuna.visualization import matplotlib as plots

    drawings = {"optimization_history": plots.plot_optimization_history,
                "parallel_coordinate": plots.plot_parallel_coordinate}
    if complete >= 2:  # importances need a spread of results
        drawings["param_importances"] = plots.plot_param_importances
    else:
        log.info("No parameter-importance plot: it needs at least 2 completed trials, the study has %d.",
                 complete)
    with warnings.catch_warnings():  # the matplotlib backend is "experimental"; constant axes warn
        warnings.simplefilter("ignore")
        for name, draw in drawings.items():
            axes = draw(study)
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
            save_figure(figure, folder / f"{name}.png")
