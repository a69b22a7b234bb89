"""Turn Hydra's and OmegaConf's multi-line exceptions into one-line config errors."""

from __future__ import annotations

import re

from serotiny_core.errors import ConfigError, SerotinyError

# submitit's error for a job that ended without writing its result: two lines, then the
# job's whole error stream.
NO_RESULT = re.compile(r"Job (\S+) \(task: \d+\) with path (\S+)\s+"
                       r"has not produced any output \(state: ([^)]*)\)")
# How a job's error ends the traceback in its log (see hydra_app.JobFailed).
JOB_ERROR = "serotiny_core.hydra_app.JobFailed: "


def _flatten(text: str) -> str:
    """Hydra's 'Available options' lists become one comma-separated line."""
    parts: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Config search path"):
            break
        if not line:
            continue
        if raw.startswith("\t") and parts and parts[-1].endswith(":"):
            parts[-1] += f" {line}"
        elif raw.startswith("\t") and parts:
            parts[-1] += f", {line}"
        else:
            parts.append(line)
    joined = parts[0] if parts else ""
    for part in parts[1:]:
        joined += (" " if joined.endswith((".", ":")) else "; ") + part
    return joined


def serotiny_cause(error: BaseException) -> SerotinyError | None:
    """The first SerotinyError in ``error``'s chain of causes (chains can loop)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, SerotinyError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _from_worker(error: SerotinyError) -> SerotinyError:
    """torch re-raises a DataLoader worker's error with the worker's traceback as its
    message; keep the last line, which is the original message."""
    text = str(error)
    if "Original Traceback" not in text:
        return error
    last = text.strip().splitlines()[-1]
    prefix = f"{type(error).__module__}.{type(error).__name__}: "
    return type(error)(last.removeprefix(prefix))


def _os_error(error: OSError) -> SerotinyError:
    where = f" {error.filename}" if error.filename else ""
    return SerotinyError(f"cannot write or read{where}: {error.strerror or error}",
                         hint="check the folder exists, is writable and the disk has space, "
                              "or choose another output folder with hydra.run.dir=...")


def _broken_plugins_note() -> str:
    """The plugins that failed to load, if this command loaded plugins: one may have provided
    the missing config, and its error is the cause to fix."""
    from serotiny_core.plugins import get_plugins

    if not get_plugins.cache_info().currsize or not get_plugins().broken:
        return ""
    broken = "; ".join(f"{b.name!r} ({b.distribution}): {b.error}" for b in get_plugins().broken)
    return f". Plugins that failed to load might provide it: {broken}"


def _job_without_result(error: Exception) -> Exception:
    """A launcher's job that was cancelled (scancel), hit its time limit, was killed or failed.

    The job's own error, which its log ends with, is the cause to act on: it
    is shown after the job's state (a job ended by SIGTERM says where its
    checkpoint is and how to resume).
    """
    text = str(error)
    match = NO_RESULT.search(text)
    if match is None:
        return error
    job, result, state = match.groups()
    own = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith(JOB_ERROR)]
    log = result.removesuffix("_result.pkl") + "_log.err"
    return SerotinyError(f"the launcher's job {job} ended without a result (state: {state})"
                         + (f": {own[-1]}" if own else ""), hint=f"its log: {log}")


def translate(error: BaseException) -> BaseException:
    """A :class:`SerotinyError` for anything a user's config caused; others unchanged."""
    import yaml
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    cause = serotiny_cause(error)
    if cause is not None:
        return _from_worker(cause)
    if isinstance(error, OSError) and error.errno is not None:
        return _os_error(error)
    if isinstance(error, yaml.YAMLError):
        return ConfigError(f"YAML syntax error: {_flatten(str(error))}")
    if isinstance(error, MissingConfigException):  # a group option nobody provides
        return ConfigError(_flatten(str(error)) + _broken_plugins_note())
    if isinstance(error, HydraException):
        from hydra.errors import InstantiationException

        wrapped = ConfigError if not isinstance(error, InstantiationException) else SerotinyError
        return wrapped(_flatten(str(error)))
    if isinstance(error, OmegaConfBaseException):
        return ConfigError(_flatten(str(error)))
    if type(error).__name__ == "UncompletedJobError":  # submitit's, without importing it
        return _job_without_result(error)
    return error
