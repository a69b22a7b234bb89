"""A Hydra sweeper over Optuna's ask/tell API (``hydra/sweeper=serotiny_optuna``).

Optuna does the sampling and the pruning; this module is only the Hydra
glue: it turns Hydra's sweep syntax (``choice``, ``range``, ``interval``,
``tag(log, ...)``) into Optuna distributions, asks the study for ``n_jobs``
trials at a time and runs them as one batch through the configured Hydra
launcher (basic, joblib, submitit, SLURM), then tells the study what each
job returned. The study lives in a storage (by default an SQLite file in
the project) under a name keyed by the sweep, so running the same command
again continues it: ``n_trials`` is the study's total. Hydra finds the
class through :mod:`hydra_plugins.serotiny_optuna_sweeper`; Optuna is
imported only when the sweeper runs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, ListConfig, OmegaConf

from serotiny_core import pruning, sweep
from serotiny_core.errors import ConfigError

log = logging.getLogger("serotiny")
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
SYNTAX = "choice(a,b,...), range(start,stop[,step]), interval(low,high), tag(log, interval(low,high))"
NOT_IN_STUDY_NAME = ("fresh_sweep",)
RETRY_OF = "serotiny.retry_of"  # user attribute of a trial asked again: the trial it continues


def flat_params(params: Any, prefix: str = "") -> dict[str, Any]:
    """``params`` as dotted key -> expression: YAML keeps ``model.latent_dim`` as one key, while
    ``hydra.sweeper.params.model.latent_dim=...`` on the command line nests it."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, (DictConfig, dict)):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _expression(key: str, value: Any) -> str:
    """A ``params`` entry as an override: a list of values is a choice among them."""
    if isinstance(value, (ListConfig, list)):
        return f"{key}=choice({','.join(str(v) for v in value)})"
    return f"{key}={value}"


def _distribution(override: Any) -> Any:
    """The Optuna distribution of one sweep override (range(a,b) leaves b out, as in Hydra)."""
    from hydra.core.override_parser.types import IntervalSweep, RangeSweep, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    sweep = override.value()
    if override.is_choice_sweep() or (isinstance(sweep, RangeSweep) and sweep.shuffle):
        # as override text: Optuna's choices are plain values, Hydra's may be lists or dicts
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(sweep, RangeSweep):
        values = list(override.sweep_iterator())
        if not values or sweep.step <= 0:
            raise ValueError("the range holds no value (it needs start < stop and a positive step)")
        if all(isinstance(v, int) for v in (sweep.start, sweep.step)):
            return IntDistribution(values[0], values[-1], step=sweep.step)
        return FloatDistribution(values[0], values[-1], step=sweep.step)
    if isinstance(sweep, IntervalSweep):
        log_scale = "log" in sweep.tags
        if "int" in sweep.tags:
            return IntDistribution(int(sweep.start), int(sweep.end), log=log_scale)
        return FloatDistribution(sweep.start, sweep.end, log=log_scale)
    raise ValueError(f"{type(sweep).__name__} sweeps are not supported")


class SearchSpace:
    """The space to search (name -> distribution) and the overrides every trial gets as they are."""

    def __init__(self, expressions: Sequence[tuple[str, str]]) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create()
        self.keys: dict[str, str] = {}  # param name -> the override's key, with its + or ++
        self.distributions: dict[str, Any] = {}
        fixed: dict[str, str] = {}
        for where, expression in expressions:
            try:
                override = parser.parse_override(expression)
                name = override.key_or_group
                if override.is_sweep_override():
                    self.distributions[name] = _distribution(override)
                    self.keys[name] = override.get_key_element()
                    fixed.pop(name, None)
                else:
                    fixed[name] = override.input_line
                    self.distributions.pop(name, None)
            except Exception as error:
                raise ConfigError(f"{where}: cannot search {expression!r}: {str(error).splitlines()[0]}",
                                  hint=f"use Hydra's sweep syntax: {SYNTAX}") from error
        self.fixed = list(fixed.values())

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """A trial's overrides: its sampled values, then the fixed ones."""
        return [*(f"{self.keys[name]}={value}" for name, value in params.items()), *self.fixed]


class OptunaSweeper(Sweeper):
    """Runs an Optuna study's trials as Hydra jobs, in batches of ``n_jobs``."""

    def __init__(self, direction: str = "minimize", n_trials: int = 20, n_jobs: int = 1,
                 study_name: str | None = None, storage: str | None = None,
                 sampler: DictConfig | None = None, pruner: DictConfig | None = None,
                 params: DictConfig | None = None) -> None:
        if direction not in ("minimize", "maximize"):
            raise ConfigError(f"hydra.sweeper.direction is {direction!r}",
                              hint="set it to minimize or maximize")
        if n_jobs < 1:
            raise ConfigError(f"hydra.sweeper.n_jobs is {n_jobs}", hint="set it to 1 or more")
        self.direction, self.n_trials, self.n_jobs = direction, n_trials, n_jobs
        self.study_name, self.storage = study_name, storage or None
        self.sampler, self.pruner = sampler, pruner
        self.params = flat_params(params or {})

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
        self.job_idx = 0

    def sweep(self, arguments: list[str]) -> list[Any]:
        space = SearchSpace([*((f"hydra.sweeper.params.{key}", _expression(key, value))
                               for key, value in self.params.items()),
                             *(("the command line", argument) for argument in arguments)])
        study = self._study(arguments)
        resume_interrupted(study)
        returns: list[Any] = []
        missing = self.n_trials - len(done_trials(study))  # a failed trial is not asked again here
        while missing > 0:
            trials = [study.ask(space.distributions) for _ in range(min(self.n_jobs, missing))]
            returns += self._run(study, trials, space)
            missing -= len(trials)
        write_best(study, Path(self.config.hydra.sweep.dir))
        return returns

    def _study(self, arguments: list[str]) -> Any:
        import optuna
        from hydra.utils import instantiate

        name = self.study_name or default_study_name(self.config.hydra.job.config_name,
                                                     self.params, arguments)
        if self.config.get("fresh_sweep"):  # a study of its own; the stored one is kept
            name = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if self.pruner is not None and self.storage is None and \
                self.config.hydra.launcher.get("_target_") != BASIC_LAUNCHER:
            raise ConfigError("pruning with hydra.sweeper.storage=null works only with the basic "
                              "launcher: jobs in other processes cannot reach a study in memory",
                              hint="keep the default storage (the project's optuna.db) or set "
                                   "hydra.sweeper.storage=sqlite:///PATH")
        storage = self.storage or optuna.storages.InMemoryStorage()
        if self.storage is None:  # where this process's jobs find it (see pruning)
            pruning.MEMORY_STORAGES[name] = storage
        study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                    sampler=instantiate(self.sampler), pruner=self._pruner(),
                                    direction=self.direction)
        log.info("Optuna study %r (%s): %d of %d trials done", name, self.storage or "in memory",
                 len(done_trials(study)), self.n_trials)
        return study

    def _pruner(self) -> Any:
        import optuna
        from hydra.utils import instantiate

        return optuna.pruners.NopPruner() if self.pruner is None else instantiate(self.pruner)

    def _trial_env(self, study: Any, trial: Any, overrides: list[str]) -> list[str]:
        """What a trial's job learns through its environment: which trial of which study it is,
        and which MLflow run is its own (by the trial it continues, if it was asked again)."""
        pruner = json.dumps(OmegaConf.to_container(self.pruner, resolve=True)) if self.pruner else ""
        origin = trial.user_attrs.get(RETRY_OF, trial.number)
        env = {pruning.TRIAL_ENV: str(trial.number), pruning.STUDY_ENV: study.study_name,
               pruning.STORAGE_ENV: self.storage or "", pruning.PRUNER_ENV: pruner,
               sweep.JOB_ENV: f"trial {origin}: {sweep.job_key(overrides)}"}
        return [f"++hydra.job.env_set.{key}={_quoted(value)}" for key, value in env.items()]

    def _run(self, study: Any, trials: list[Any], space: SearchSpace) -> list[Any]:
        """Launch one batch of trials and tell the study each one's outcome."""
        batch = []
        for trial in trials:
            overrides = space.overrides(trial.params)
            batch.append([*overrides, *self._trial_env(study, trial, overrides)])
        returns = self.launcher.launch(batch, initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        for trial, job in zip(trials, returns):
            tell(study, trial, job.return_value)
        return list(returns)


def _quoted(value: str) -> str:
    """A value as a quoted Hydra override string. Hydra reads a backslash as an escape only
    before a quote or at the end, so only those are escaped (a Windows path stays as it is)."""
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"'{escaped}'"


def default_study_name(config_name: str, params: dict[str, Any], arguments: list[str]) -> str:
    """``train-<hash>``: the same command (search space and overrides, hydra.* aside) gets the
    same study, so running it again continues it; another command gets a study of its own."""
    space = sorted([*(_expression(k, v) for k, v in params.items()),
                    *(a for a in arguments if a.lstrip("+~").split("=")[0] not in NOT_IN_STUDY_NAME)])
    return f"{config_name}-{hashlib.sha256(json.dumps(space).encode()).hexdigest()[:8]}"


def done_trials(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def resume_interrupted(study: Any) -> None:
    """Trials a crashed or killed command left RUNNING: failed in the study and asked again,
    with the same values, so their jobs resume (in their own MLflow runs) rather than restart."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params,
                            user_attrs={RETRY_OF: trial.user_attrs.get(RETRY_OF, trial.number)})
        log.info("trial %d was interrupted; running it again with %s", trial.number, trial.params)


def tell(study: Any, trial: Any, value: Any) -> None:
    """A job's return value to the study: a value, pruned, or failed (no value)."""
    from optuna.trial import TrialState

    if isinstance(value, pruning.Pruned):
        study.tell(trial, state=TrialState.PRUNED)
    elif value is None:
        log.warning("trial %d returned no value of optimized_metric; it counts as failed",
                    trial.number)
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, float(value))


def write_best(study: Any, sweep_dir: Path) -> None:
    """The best parameters and value so far, in ``<sweep dir>/optimization_results.yaml``."""
    try:
        best = study.best_trial
    except ValueError:  # no trial completed: every one was pruned or failed
        log.warning("no trial of study %r completed; no best parameters", study.study_name)
        return
    log.info("best value %s with %s", best.value, best.params)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create({"name": "optuna", "study_name": study.study_name,
                                     "best_params": best.params, "best_value": best.value}),
                   sweep_dir / "optimization_results.yaml")
