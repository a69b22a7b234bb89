"""Keep secrets out of everything serotiny writes: the store, config files, tags, logs.

Three rules, applied wherever a config or a command line is recorded:

- a value read from the environment (``${oc.env:NAME}``, or anything
  interpolating one) is recorded as the interpolation, unresolved;
- a key that names a secret (``password``, ``token``, ``secret``,
  ``api_key``, ...) is recorded as ``***``;
- the password of a URI (``http://user:PASSWORD@host``) is recorded as ``***``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

MASK = "***"
SECRET_WORDS = (r"pass(?:word|wd|phrase)?|secret|secret[_-]?key|token|api[_-]?key|access[_-]?key"
                r"|private[_-]?key|credentials?")
SECRET_KEY = re.compile(rf"(?:^|[._/-])(?:{SECRET_WORDS})$", re.IGNORECASE)
# key=value inside a longer text (an override, Hydra's override_dirname "a=1,b.token=x")
SECRET_ASSIGNMENT = re.compile(
    rf"(?<![\w.+~/@-])(?P<key>(?:[\w.+~/@-]*[._/+~-])?(?:{SECRET_WORDS}))=(?P<value>[^,\s]*)",
    re.IGNORECASE)
URI_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/:@\s]*):(?P<password>[^/@\s]+)@",
                          re.IGNORECASE)
ENV_INTERPOLATION = "${oc.env:"
MIN_SECRET_LENGTH = 4  # shorter environment values are not searched for inside other values


def is_secret_key(key: Any) -> bool:
    """``password``, ``db.token``, ``MY_API_KEY``... but not ``tokenizer`` or ``passes``."""
    return bool(SECRET_KEY.search(str(key)))


def redact_text(text: str) -> str:
    """A command line, URI or log line with URI passwords and ``secret_key=value`` masked."""
    text = URI_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    return SECRET_ASSIGNMENT.sub(rf"\g<key>={MASK}", text)


def _is_interpolation(raw: Any) -> bool:
    return isinstance(raw, str) and "${" in raw


def _env_values(raw: Any, resolved: Any, found: set[str]) -> None:
    """The resolved values of every leaf that reads the environment."""
    if isinstance(resolved, dict):
        for key, value in resolved.items():
            _env_values(raw.get(key) if isinstance(raw, dict) else None, value, found)
    elif isinstance(resolved, list):
        for index, value in enumerate(resolved):
            _env_values(raw[index] if isinstance(raw, list) and index < len(raw) else None, value, found)
    elif isinstance(raw, str) and ENV_INTERPOLATION in raw and resolved not in (None, ""):
        found.add(str(resolved))


def _leaf(key: Any, raw: Any, resolved: Any, secrets: set[str]) -> Any:
    if key is not None and is_secret_key(key):
        return MASK
    if isinstance(raw, str) and ENV_INTERPOLATION in raw:
        return raw
    if isinstance(resolved, str):
        if any(len(s) >= MIN_SECRET_LENGTH and s in resolved for s in secrets):
            return raw if _is_interpolation(raw) else MASK
        return redact_text(resolved)
    return resolved


def _walk(key: Any, raw: Any, resolved: Any, secrets: set[str]) -> Any:
    if isinstance(resolved, dict):
        if key is not None and is_secret_key(key):
            return MASK
        return {k: _walk(k, raw.get(k) if isinstance(raw, dict) else None, v, secrets)
                for k, v in resolved.items()}
    if isinstance(resolved, list):
        raws = raw if isinstance(raw, list) else []
        return [_walk(key, raws[i] if i < len(raws) else None, v, secrets) for i, v in enumerate(resolved)]
    return _leaf(key, raw, resolved, secrets)


def recordable(cfg: DictConfig) -> dict[str, Any]:
    """``cfg`` resolved, as it may be recorded: environment values, secret keys and passwords masked."""
    raw = OmegaConf.to_container(cfg, resolve=False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    secrets: set[str] = set()
    _env_values(raw, resolved, secrets)
    return _walk(None, raw, resolved, secrets)


def redact_plain(data: Any, key: Any = None) -> Any:
    """A plain structure (a YAML file Hydra wrote) with secret keys and passwords masked."""
    if isinstance(data, dict):
        return MASK if key is not None and is_secret_key(key) else {
            k: redact_plain(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [redact_plain(v, key) for v in data]
    if key is not None and is_secret_key(key):
        return MASK
    return redact_text(data) if isinstance(data, str) else data


def redact_yaml_file(path: Path) -> None:
    """Rewrite a YAML file Hydra wrote (``.hydra/*.yaml``, ``multirun.yaml``) with secrets masked."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return
    masked = redact_plain(data)
    if masked != data:
        path.write_text(yaml.safe_dump(masked, sort_keys=False), encoding="utf-8")


def redact_hydra_files() -> None:
    """The current job's ``.hydra`` folder, which Hydra wrote before the job started."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    if hydra.output_subdir is None:
        return
    folder = Path(hydra.runtime.output_dir) / str(hydra.output_subdir)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        redact_yaml_file(folder / name)
