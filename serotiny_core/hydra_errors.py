"""Turn Hydra's and OmegaConf's multi-line exceptions into one-line config errors."""

from __future__ import annotations

from serotiny_core.errors import ConfigError, SerotinyError


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
    return "; ".join(parts)


def _cause(error: BaseException) -> SerotinyError | None:
    seen = error
    while seen is not None:
        if isinstance(seen, SerotinyError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def translate(error: BaseException) -> BaseException:
    """A :class:`SerotinyError` for anything a user's config caused; others unchanged."""
    import yaml
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    cause = _cause(error)
    if cause is not None:
        return cause
    if isinstance(error, yaml.YAMLError):
        return ConfigError(f"YAML syntax error: {_flatten(str(error))}")
    if isinstance(error, HydraException):
        from hydra.errors import InstantiationException

        wrapped = ConfigError if not isinstance(error, InstantiationException) else SerotinyError
        return wrapped(_flatten(str(error)))
    if isinstance(error, OmegaConfBaseException):
        return ConfigError(_flatten(str(error)))
    return error
