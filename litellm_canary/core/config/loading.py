"""Turning outside input into a :class:`CanaryConfig`: a mapping (:func:`parse_config`) or a YAML/JSON
file, possibly a LiteLLM proxy ``config.yaml`` (:func:`load_config_file`). Errors name the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from litellm_canary.core.config.canary_config import CanaryConfig
from litellm_canary.core.config.errors import ConfigError
from litellm_canary.core.config.model_list import checkable_model_list, validate_against_model_list
from litellm_canary.core.config.parse_errors import describe_parse_error


def _describe(error: ValidationError) -> str:
    lines = []
    items = error.errors()
    deeper = {item["loc"][:n] for item in items for n in range(len(item["loc"]))}
    for item in items:
        if item["type"] == "too_short" and item["loc"] in deeper:
            continue  # pydantic repeats a failing item as "too short" on its container
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
        value = item.get("input")
        shown = "" if isinstance(value, Mapping) else f" (got {value!r})"
        lines.append(f"{where or 'config'}: {item['msg']}{shown}")
    return "invalid canary config: " + "; ".join(lines)


def parse_config(
    raw: CanaryConfig | Mapping[str, Any], *, base_dir: str | Path | None = None
) -> CanaryConfig:
    """Validate a config mapping (as loaded from YAML or JSON) into a :class:`CanaryConfig`.

    ``base_dir`` is the folder of the file the mapping came from: relative ``evals.golden_set`` paths
    resolve against it (without it, against the working directory).
    """
    if isinstance(raw, CanaryConfig):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"canary config must be a mapping, got {type(raw).__name__}")
    try:
        return CanaryConfig.model_validate(dict(raw), context={"base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def load_config_file(path: str | Path, *, check_model_list: bool = False) -> CanaryConfig:
    """Read a canary config from a YAML or JSON file. A LiteLLM proxy ``config.yaml`` whose
    ``litellm_canary`` key holds the canary config is accepted too; with ``check_model_list`` its
    rollouts are checked against that file's ``model_list`` (see :func:`checkable_model_list`)."""
    file = Path(path)
    data = _read_document(file)
    if isinstance(data, Mapping) and "litellm_canary" in data:
        config = parse_config(data["litellm_canary"], base_dir=file.parent)
        model_list = checkable_model_list(data) if check_model_list else None
        if model_list is not None:
            validate_against_model_list(config, model_list)
        return config
    return parse_config(data, base_dir=file.parent)


def _read_document(file: Path) -> Any:
    try:
        text = file.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {file}: {error.strerror}") from None
    try:
        if file.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as error:  # yaml and json raise different types; both mean "not parseable"
        kind = "JSON" if file.suffix == ".json" else "YAML"
        raise ConfigError(f"config file {file} is not valid {kind}: {describe_parse_error(error)}") from None
    return data
