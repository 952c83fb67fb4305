"""Ray Tune wiring: the one module that imports Ray, so Ray's API churn stays here.

A sweep is a Tuner over our own grid expansion (or an OptunaSearch over the
declared distributions), FIFO or ASHA, each trial with its resources, retried
from its last checkpoint up to `max_failures`. A driver-side callback is the
only MLflow writer (sweeper.tracking) and prints live progress.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import optuna
import ray
from ray import tune
from ray.tune.experiment import Trial as RayTrial
from ray.tune.result import AUTO_RESULT_KEYS
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from sweeper import storage, warm_start
from sweeper.cluster_access import (
    ClusterUnavailable,
    auth_hint,
    probe_address,
)
from sweeper.encoders import export_encoder
from sweeper.identity import check_sweep_identity
from sweeper.shipping import UPLOAD_EXCLUDES, project_modules
from sweeper.spec import (
    OptunaParam,
    SweepSpec,
    Trial,
    base_config,
    check_runnable,
    expand,
    num_trials,
    summary,
)
from sweeper.tracking import (
    STOPPED_TAG,
    TRIAL_ID_TAG,
    SweepTracker,
    run_name,
)
from sweeper.trainable import STATE_FILE, grid_entry, run_trial_in_worker, trial_from_ray_config
from sweeper.warm_start import WarmStart
from trainers.data import DatasetError, check_dataset
from trainers.loop import (
    CheckpointError,
    Metrics,
    TrainingDiverged,
    TrialInfeasible,
    load_checkpoint,
)

log = logging.getLogger(__name__)

_RAY_KEYS = set(AUTO_RESULT_KEYS) | {"done", "trial_id", "experiment_tag", "should_checkpoint",
                                     "sweeper_node_id"}
_FAILURE_KEY = "sweeper_failure"  # a final result saying the trial failed for good
_NODE_KEY = "sweeper_node_id"  # the Ray node a result came from (all nodes may share an IP)


@dataclass(frozen=True)
class SweepOptions:
    storage: Path | str  # results root, a folder or a URI; the sweep's is storage/name
    tracking_uri: str
    address: str | None = None
    resume: bool = False
    retry_failed: bool = False


@dataclass
class SweepOutcome:
    total: int
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run name, error)
    unfinished: int = 0  # trials not finished or failed: running, pending, or never started
    best: tuple[str, float] | None = None  # among trials that ran every epoch
    stopped_early: int = 0  # finished trials a scheduler stopped before their last epoch
    wall_seconds: float = 0.0
    trial_seconds: float = 0.0  # the trials' own time, summed over the epochs they reported

    @property
    def interrupted(self) -> bool:
        return bool(self.unfinished)


# --- the Ray trainable ----------------------------------------------------------

def _ray_trainable(config: dict[str, Any]) -> None:
    """Runs in a Ray worker: resume from Tune's checkpoint, report every epoch."""
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:  # read now: the folder may be pruned later
            resume = load_checkpoint(Path(folder) / STATE_FILE)

    node_id = ray.get_runtime_context().get_node_id()

    def publish(metrics: Metrics, folder: Path) -> None:
        tune.report({**metrics, _NODE_KEY: node_id},
                    checkpoint=tune.Checkpoint.from_directory(str(folder)))

    try:
        run_trial_in_worker(config, publish, resume)
    except (TrainingDiverged, TrialInfeasible, DatasetError, CheckpointError) as exc:
        # A retry would fail the same way: say so first (the driver then turns Tune's
        # retries off for this trial), then fail, so that Tune records the trial as
        # errored: it stays failed across --resume, and --retry-failed re-runs it.
        tune.report({_FAILURE_KEY: f"{type(exc).__name__}: {exc}"})
        raise


# --- the driver-side callback -------------------------------------------------------

class _Session:
    """Per-process state of the running sweep; the callback (which Ray pickles
    with the experiment) looks it up here, so a restored sweep writes through
    this process's tracker and progress stream."""

    def __init__(self, spec: SweepSpec, tracker: SweepTracker, progress: TextIO,
                 warm_trials: int = 0) -> None:
        self.spec = spec
        self.warm_trials = warm_trials  # Optuna trials a warm start put in the study first
        self.tracker = tracker
        self.progress = progress
        self.with_seed = len(spec.search.seeds) > 1
        self.runs: dict[str, str] = {}  # Ray trial id -> MLflow run id
        self.names: dict[str, str] = {}
        # Each trial's latest metric: "best" is the best of these, so that when every trial
        # has finished it is the summary's best final metric, not one epoch's peak. Trials
        # finished before a --resume count too.
        self.latest: dict[str, float] = tracker.finished_metrics(spec.metric)
        self.trial_seconds = 0.0
        self.trials: list[RayTrial] = []
        self.errors: dict[str, str] = {}
        self.workers: dict[str, str] = {}  # Ray trial id -> "host:pid" of its latest worker

    def run_for(self, trial: RayTrial) -> str:
        if trial.trial_id not in self.runs:
            resolved = _trial_of(trial, self.warm_trials)
            self.runs[trial.trial_id] = self.tracker.trial_run(resolved, self.with_seed,
                                                               key=trial.trial_id)
            self.names[trial.trial_id] = run_name(resolved.params, self.with_seed)
        return self.runs[trial.trial_id]

    def on_start(self, trial: RayTrial) -> None:
        # Tune's retries apply again to a trial that --retry-failed restarts.
        trial.max_failures = self.spec.max_failures
        self.run_for(trial)

    def on_result(self, trials: list[RayTrial], trial: RayTrial, result: dict[str, Any]) -> None:
        if _FAILURE_KEY in result:
            # The worker raises next; a retry would fail the same way.
            self.errors[trial.trial_id] = str(result[_FAILURE_KEY])
            trial.max_failures = 0
            return
        metrics = {k: v for k, v in result.items() if k not in _RAY_KEYS}
        run_id = self.run_for(trial)
        worker = f"{result.get('hostname', '?')}:{result.get('pid', '?')}"
        if self.workers.get(trial.trial_id) != worker:  # first result, or after a retry
            self.workers[trial.trial_id] = worker
            self.tracker.set_worker(run_id, str(result.get(_NODE_KEY, "?")),
                                    str(result.get("node_ip", "?")), worker)
        self.tracker.log_metrics(run_id, metrics, step=int(metrics.get("epoch", 0)))
        self.trial_seconds += float(result.get("time_this_iter_s", 0.0))
        value = metrics.get(self.spec.metric)
        name = self.names[trial.trial_id]
        if isinstance(value, int | float):
            self.latest[name] = float(value)
        self._print(trials, f"{name} epoch {int(metrics.get('epoch', 0))}/"
                            f"{_trial_of(trial).config.train.epochs}"
                            + (f" {self.spec.metric} {value:.4f}" if value is not None else ""))

    def on_complete(self, trials: list[RayTrial], trial: RayTrial) -> None:
        epochs = _trial_of(trial).config.train.epochs
        reached = int((trial.last_result or {}).get("epoch", epochs))
        if reached < epochs:  # a scheduler (ASHA) stopped it: say so wherever it is shown
            self.latest.pop(self.names.get(trial.trial_id, ""), None)  # best: full runs only
            self.tracker.end_trial(self.run_for(trial), "FINISHED",
                                   tags={STOPPED_TAG: str(reached)})
            self._print(trials, f"{self.names[trial.trial_id]} stopped early at epoch "
                                f"{reached}/{epochs} by the scheduler",
                        (trial, RayTrial.TERMINATED))
            return
        self.tracker.end_trial(self.run_for(trial), "FINISHED")
        if self.spec.save_encoders == "all":
            self.keep_encoder(trial)
        self._print(trials, f"{self.names[trial.trial_id]} finished", (trial, RayTrial.TERMINATED))

    def keep_encoder(self, trial: RayTrial) -> None:
        """Put the trial's final encoder (from its last checkpoint) into its run."""
        run_id = self.run_for(trial)
        if trial.checkpoint is None or self.tracker.has_encoder(run_id):
            return
        with tempfile.TemporaryDirectory(prefix="sweeper-encoder-") as scratch, \
                trial.checkpoint.as_directory() as folder:
            self.tracker.log_encoder(run_id, export_encoder(
                Path(folder) / STATE_FILE, _trial_of(trial).config, Path(scratch) / "encoder"))

    def keep_best_encoder(self) -> None:
        best, _ = self.tracker.best_trial(self.spec.metric, self.spec.mode)
        trial_id = best.data.tags.get(TRIAL_ID_TAG) if best is not None else None
        for trial in self.trials:
            if trial.trial_id == trial_id:
                self.keep_encoder(trial)

    def on_error(self, trials: list[RayTrial], trial: RayTrial) -> None:
        error = self.errors.get(trial.trial_id) or _error_text(trial)
        self.errors[trial.trial_id] = error
        self.tracker.end_trial(self.run_for(trial), "FAILED", error)
        self._print(trials, f"{self.names[trial.trial_id]} FAILED: {error}",
                    (trial, RayTrial.ERROR))

    def on_recover(self, trials: list[RayTrial], trial: RayTrial) -> None:
        name = self.names.get(trial.trial_id) or _trial_name(trial, self.with_seed)
        self._print(trials, f"{name} failed; retrying from its last checkpoint")

    def _print(self, trials: list[RayTrial], event: str,
               settled: tuple[RayTrial, str] | None = None) -> None:
        """One progress line; `settled` is a trial whose new status Tune sets only
        after the callback returns."""
        self.trials = trials
        statuses = [settled[1] if settled and t is settled[0] else t.status for t in trials]
        total = max(len(trials), num_trials(self.spec))
        done, running, failed = (statuses.count(s) for s in
                                 (RayTrial.TERMINATED, RayTrial.RUNNING, RayTrial.ERROR))
        pending = total - done - running - failed
        best = ""
        if self.latest:
            pick = max if self.spec.mode == "max" else min
            name, value = pick(self.latest.items(), key=lambda item: item[1])
            best = f" | best {self.spec.metric} {value:.4f} ({name})"
        print(f"[{done}/{total} done, {running} running, {pending} pending, {failed} failed]"
              f" {event}{best}", file=self.progress, flush=True)


_SESSION: _Session | None = None


class _TrackingCallback(tune.Callback):
    """Forwards Tune's trial events to the active session (see _Session)."""

    def on_trial_start(self, iteration: int, trials: list[RayTrial], trial: RayTrial,
                       **info: Any) -> None:
        if _SESSION is not None:
            _SESSION.on_start(trial)

    def on_trial_result(self, iteration: int, trials: list[RayTrial], trial: RayTrial,
                        result: dict[str, Any], **info: Any) -> None:
        if _SESSION is not None:
            _SESSION.on_result(trials, trial, result)

    def on_trial_complete(self, iteration: int, trials: list[RayTrial], trial: RayTrial,
                          **info: Any) -> None:
        if _SESSION is not None:
            _SESSION.on_complete(trials, trial)

    def on_trial_error(self, iteration: int, trials: list[RayTrial], trial: RayTrial,
                       **info: Any) -> None:
        if _SESSION is not None:
            _SESSION.on_error(trials, trial)

    def on_trial_recover(self, iteration: int, trials: list[RayTrial], trial: RayTrial,
                         **info: Any) -> None:
        if _SESSION is not None:
            _SESSION.on_recover(trials, trial)

    def on_experiment_end(self, trials: list[RayTrial], **info: Any) -> None:
        if _SESSION is not None:
            _SESSION.trials = trials


def _error_text(trial: RayTrial) -> str:
    """The worker's exception as one line, e.g. 'TrainingDiverged: loss became NaN at step 7'."""
    text = ""
    try:  # the local error file is written before the callback runs; storage syncs later
        if trial.error_file and Path(trial.error_file).is_file():
            text = Path(trial.error_file).read_text()
        elif (error := trial.get_error()) is not None:
            text = str(error)
    except OSError:
        pass
    # Ray wraps the worker's traceback; its last non-empty line is the exception itself.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "trial failed (no error recorded)"
    kind, sep, message = lines[-1].partition(": ")
    return f"{kind.rsplit('.', 1)[-1]}{sep}{message}".strip() or "trial failed (no error text)"


# --- building the Tuner --------------------------------------------------------

def _param_space(spec: SweepSpec) -> dict[str, Any]:
    if spec.search.type == "grid":
        return {"trial": tune.grid_search([grid_entry(t) for t in expand(spec)])}
    sampled = {name: _domain(dist) for name, dist in spec.search.params.items()
               if isinstance(dist, OptunaParam)}
    return {"base": base_config(spec), "seed": spec.search.seeds[0], "sampled": sampled}


def _domain(param: OptunaParam) -> Any:
    if param.type == "categorical":
        return tune.choice(list(param.choices or []))
    assert param.low is not None and param.high is not None  # checked by the spec
    if param.type == "int":
        low, high = int(param.low), int(param.high) + 1  # Tune's upper bound is exclusive
        return tune.lograndint(low, high) if param.log else tune.randint(low, high)
    return tune.loguniform(param.low, param.high) if param.log else tune.uniform(param.low,
                                                                                 param.high)


def _search_alg(spec: SweepSpec, warm: WarmStart) -> Searcher | None:
    if spec.search.type != "optuna":
        return None
    seed = spec.search.seeds[0]
    sampler = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
               "cmaes": optuna.samplers.CmaEsSampler}[spec.search.sampler](seed=seed)
    # Earlier sweeps' results enter the study as evaluated trials, under the flattened
    # names Tune gives the space ("sampled/temperature").
    points = [{f"sampled/{name}": value for name, value in point.items()}
              for point in warm.points]
    search: Searcher = OptunaSearch(sampler=sampler, metric=spec.metric, mode=spec.mode,
                                    points_to_evaluate=points or None,
                                    evaluated_rewards=warm.rewards or None)
    if spec.max_concurrent_trials:
        search = ConcurrencyLimiter(search, max_concurrent=spec.max_concurrent_trials)
    return search


def _scheduler(spec: SweepSpec) -> TrialScheduler:
    if spec.scheduler.type == "asha":
        max_epochs = max(t.config.train.epochs for t in expand(spec))
        return ASHAScheduler(time_attr="epoch", max_t=max(max_epochs, 1),
                             grace_period=spec.scheduler.grace_period,
                             reduction_factor=spec.scheduler.reduction_factor)
    return FIFOScheduler()


def _trial_of(trial: RayTrial, warm_trials: int = 0) -> Trial:
    """The sweep's Trial behind a Ray trial. A grid trial carries its index; an Optuna
    trial's is its number in the study: the order Tune created it in (Tune asks the
    sampler once per trial it creates, and tags the trial with that count), after the
    `warm_trials` a warm start added to the study first."""
    resolved = trial_from_ray_config(trial.config)
    if resolved.index >= 0:
        return resolved
    count = (trial.experiment_tag or "").split("_", 1)[0]
    return (replace(resolved, index=warm_trials + int(count) - 1) if count.isdigit()
            else resolved)


def _trial_name(trial: RayTrial, with_seed: bool) -> str:
    return run_name(trial_from_ray_config(trial.config).params, with_seed)


def _build_tuner(spec: SweepSpec, options: SweepOptions, trainable: Any,
                 warm: WarmStart) -> tune.Tuner:
    with_seed = len(spec.search.seeds) > 1
    return tune.Tuner(
        trainable,
        param_space=_param_space(spec),
        tune_config=tune.TuneConfig(
            metric=spec.metric, mode=spec.mode,
            search_alg=_search_alg(spec, warm), scheduler=_scheduler(spec),
            num_samples=spec.search.num_samples or 1 if spec.search.type == "optuna" else 1,
            max_concurrent_trials=spec.max_concurrent_trials if spec.search.type == "grid"
            else None,
            # A fresh worker per trial re-imports torch and the project: ~8 s a trial on
            # two cores. Reusing workers brings the overhead to ~1 s (sweeper bench sweep).
            reuse_actors=True,
            trial_name_creator=lambda t: _trial_name(t, with_seed),
            trial_dirname_creator=lambda t: f"{_trial_name(t, with_seed)}-{t.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=storage.resolve(options.storage),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[_TrackingCallback()],
            verbose=0,
        ),
    )


def _quiet_tune(record: logging.LogRecord) -> bool:
    """Drop Tune's own words for what the driver reports itself: a trial's failure (with
    the worker's traceback), the trials left incomplete, how to resume with
    Tuner.restore (the driver prints the `sweeper run ... --resume` command instead)."""
    return not record.getMessage().startswith((
        "Trial task failed", "Trials did not complete", "Experiment has been interrupted",
        "Stop signal received"))


def init_ray(address: str | None) -> bool:
    """Connect to `address` (or $RAY_ADDRESS, Ray's convention), else start a private
    local instance listening on 127.0.0.1 only. False when Ray was already running."""
    if ray.is_initialized():
        return False
    # Trials read relative paths (dataset.root) from the driver's folder, not a trial folder.
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0
    # A trial that fails for good ends with a result that has no metric (see _FAILURE_KEY).
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # Keeping one checkpoint per trial forces a state snapshot after each; on small
    # trials Tune warns about that every few seconds. The snapshot is what we want.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    for name in ("ray.tune.tune", "ray.tune.execution.tune_controller"):
        logging.getLogger(name).addFilter(_quiet_tune)
    # The local instance has token authentication on, as it should: no need to say so at
    # every sweep (docs/reliability.md says where the token lives).
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    runtime_env: dict[str, Any] = {"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        connect_cluster(address, runtime_env)
    else:
        # "local": always a new private instance. A bare ray.init() would join whatever
        # cluster /tmp/ray/ray_current_cluster names, and hang if that one is gone.
        with _loopback_node():
            ray.init(address="local", include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, runtime_env=runtime_env,
                     _node_ip_address="127.0.0.1")
    return True


def shutdown_ray() -> None:
    ray.shutdown()


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """Keep the private instance's node address 127.0.0.1, so that its servers (GCS,
    raylet, workers, agents) listen on loopback only (docs/reliability.md, "Ports").

    Ray turns a `_node_ip_address` of 127.0.0.1 into the machine's outward address
    (services.resolve_ip_for_localhost) unless multi-node clusters are switched off, as
    Ray does itself on macOS and Windows; its servers then listen on that address and
    on all interfaces. Switched off for the start only: `ray start` and joining a
    cluster (--address) are unaffected. If a Ray version drops the switch, the
    instance starts as before (measured with `ss -ltnp`; see the docs)."""
    from ray._private import ray_constants

    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        log.warning("this Ray version has no ENABLE_RAY_CLUSTER switch: the local Ray "
                    "instance may listen on all interfaces")
        yield
        return
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def connect_cluster(address: str, runtime_env: dict[str, Any]) -> None:
    """Join an existing cluster, or fail in seconds with one line saying why."""
    if address.startswith("ray://"):
        # Under Ray Client the Tuner runs on the head node, away from this driver's
        # MLflow writer: trials would silently go untracked.
        raise ClusterUnavailable(
            f"--address {address}: Ray Client (ray://) is not supported; use `sweeper submit "
            "SPEC --address http://HEAD:8265`, or run on a cluster node with --address HEAD:6379")
    if address != "auto":
        probe_address(address)
    # An existing cluster: ship the project's code to its nodes, unless this driver
    # is a Ray job (`sweeper submit`), whose runtime env already carries it.
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:
        runtime_env |= {"py_modules": project_modules(), "excludes": UPLOAD_EXCLUDES}
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env=runtime_env)
    except (ConnectionError, ray.exceptions.AuthenticationError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterUnavailable(f"cannot join the Ray cluster at {address}: {first}"
                                 + auth_hint()) from None


def check_resources(spec: SweepSpec) -> None:
    """Refuse trials that no node of the cluster can ever hold: Tune would wait forever."""
    need = {"CPU": float(spec.resources.cpu), "GPU": float(spec.resources.gpu)}
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if any(all(res.get(k, 0.0) >= v for k, v in need.items() if v > 0) for res in nodes):
        return
    largest = ", ".join(f"{res.get('CPU', 0):g} CPUs and {res.get('GPU', 0):g} GPUs"
                        for res in sorted(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)),
                                          reverse=True)[:3]) or "no nodes"
    raise ClusterUnavailable(
        f"resources: each trial asks for {need['CPU']:g} CPUs and {need['GPU']:g} GPUs, but no "
        f"node of this Ray cluster has that much (largest: {largest}); lower resources.cpu / "
        "resources.gpu (e.g. --set resources.cpu=1)")


def run_sweep(spec: SweepSpec, spec_text: str, options: SweepOptions,
              progress: TextIO = sys.stderr) -> SweepOutcome:
    """Run (or resume) the sweep to its end, or until interrupted.

    Everything that can refuse the sweep (storage, MLflow, data, Ray, resources) is
    checked before the sweep is opened in MLflow; whatever fails after that ends the
    parent run and every trial run still open, so nothing is left RUNNING."""
    global _SESSION
    started = time.perf_counter()
    check_runnable(spec)
    address = options.address or os.environ.get("RAY_ADDRESS")
    if address and "://" not in address and address != "auto":
        probe_address(address)  # first: a dead address must not wait on anything else
    storage.check_bucket(options.storage)
    folder = storage.sweep_location(options.storage, spec.name)
    if options.address is None:  # on a cluster the workers' filesystems are what matter
        for dataset in {t.config.dataset for t in expand(spec)}:
            check_dataset(dataset)
    tracker = SweepTracker(options.tracking_uri, spec.name)
    tracker.check_available()
    restoring = check_sweep_identity(spec.name, folder, tune.Tuner.can_restore(folder), tracker,
                                     options.resume, progress)
    warm = WarmStart() if restoring else warm_start.collect(spec, options.tracking_uri)
    for note in warm.notes:
        print(f"warm start: {note}", file=progress, flush=True)
    if warm.points:
        print(f"warm start: {len(warm.points)} finished trial(s) of "
              + ", ".join(f"{n} ({k})" for n, k in warm.used.items()) + " seed the sampler",
              file=progress, flush=True)
    init_ray(options.address)
    check_resources(spec)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a batch scheduler, `kill`) stops the sweep as gracefully as Ctrl-C; set
        # after ray.init, which installs a SIGTERM handler of its own that aborts the driver.
        signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    tracker.open_sweep(spec_text, summary(spec), num_trials(spec), storage=folder,
                       params={"warm_start_trials": str(len(warm.points))})
    warm_trials = (int(tracker.parent_param("warm_start_trials") or 0) if restoring
                   else len(warm.points))
    _SESSION = session = _Session(spec, tracker, progress, warm_trials)
    trainable = tune.with_resources(_ray_trainable, {"cpu": spec.resources.cpu,
                                                     "gpu": spec.resources.gpu})
    try:
        if restoring:
            print(f"resuming sweep {spec.name!r} from {folder}", file=progress, flush=True)
            tuner = tune.Tuner.restore(folder, trainable, resume_unfinished=True,
                                       resume_errored=options.retry_failed,
                                       restart_errored=False)
        else:
            tuner = _build_tuner(spec, options, trainable, warm)
        tuner.fit()
        outcome = _outcome(spec, _SESSION, tracker, time.perf_counter() - started)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        reason = None if interrupted else f"the driver failed: {type(exc).__name__}: {exc}"
        tracker.end_open_trials("KILLED" if interrupted else "FAILED", reason)
        tracker.end_sweep("KILLED" if interrupted else "FAILED", reason, patience_s=30.0)
        raise
    finally:
        _SESSION = None
    outcome.best, outcome.stopped_early = _best_finished(spec, tracker)
    if spec.save_encoders == "best":
        session.keep_best_encoder()
    tracker.log_summary(spec.metric, spec.mode)
    tracker.end_open_trials("KILLED")  # trials an interrupt stopped continue on --resume
    tracker.end_sweep("KILLED" if outcome.interrupted
                      else "FAILED" if outcome.failed else "FINISHED")
    return outcome


def _outcome(spec: SweepSpec, session: _Session, tracker: SweepTracker,
             wall: float) -> SweepOutcome:
    outcome = SweepOutcome(total=num_trials(spec), wall_seconds=wall,
                           trial_seconds=session.trial_seconds)
    for trial in session.trials:
        name = session.names.get(trial.trial_id) or _trial_name(trial, session.with_seed)
        # Sweeps from before failures were raised ended a failed trial TERMINATED with a
        # failure result.
        old_failure = (trial.last_result or {}).get(_FAILURE_KEY)
        if trial.status == RayTrial.ERROR or (trial.status == RayTrial.TERMINATED
                                              and old_failure):
            outcome.failed.append((name, session.errors.get(trial.trial_id)
                                   or tracker.recorded_error(trial.trial_id)
                                   or str(old_failure or "") or _error_text(trial)))
        # Tune also marks TERMINATED the trials an interrupt stopped mid-run; those have
        # no FINISHED run (None: a store outage kept it from being written).
        elif trial.status == RayTrial.TERMINATED and tracker.run_status(trial.trial_id) in (
                None, "FINISHED"):
            outcome.finished.append(name)
    # Tune creates trials lazily, so some may not exist yet when a sweep is interrupted.
    outcome.unfinished = outcome.total - len(outcome.finished) - len(outcome.failed)
    return outcome


def _best_finished(spec: SweepSpec, tracker: SweepTracker
                   ) -> tuple[tuple[str, float] | None, int]:
    """The best final metric among trials that ran every epoch (including earlier
    sessions'), and how many finished trials a scheduler stopped early."""
    best, stopped = tracker.best_trial(spec.metric, spec.mode)
    if best is None:
        return None, stopped
    return (best.info.run_name, best.data.metrics[spec.metric]), stopped


def dry_run(spec: SweepSpec, limit: int = 1000) -> list[str]:
    """The lines `sweeper run --dry-run` prints: one per trial (or the Optuna space),
    the first `limit` of a larger grid and how many more, built one trial at a time."""
    import itertools

    from sweeper.spec import expansion_size, iter_trials

    lines = [summary(spec)]
    if spec.search.type == "optuna":
        for name, dist in spec.search.params.items():
            lines.append(f"  {name}: {dist}")
        return lines
    with_seed = len(spec.search.seeds) > 1
    for trial in itertools.islice(iter_trials(spec), limit):
        lines.append(f"  {trial.index:>3}  {run_name(trial.params, with_seed):<32} "
                     f"{trial.config_hash}")
    more = expansion_size(spec) - limit
    if more > 0:
        lines.append(f"  ... and {more} more (sweeper trial SPEC --index I shows any one)")
    return lines
