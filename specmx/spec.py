"""Design specs in YAML: one file holds any of specmx's spec objects, validated on load.

A spec file is a mapping whose top-level keys are sections, each holding the fields of one
spec object (`models/config.py`):

    fma:  {in_fmt: bf16, acc_fmt: fp32, window: 4, step: 4, policy: internal}
    gemm: {rows: 4, cols: 4, dataflow: ws, pe_stages: 2, max_m: 64}   # + optional fma: {...}
    perf: {clock_mhz: 250, bandwidth: 64}
    ssm:  {family: mamba2, d_inner: 64, d_state: 16, heads: 4, groups: 2, lanes: 4}  # + fma: {...}
    engine: {rows: 4, cols: 4, pe_stages: 12, lanes: 4, tile: 8, state_slots: 16}  # + fma: {...}

Missing sections and fields take their defaults; `gemm.fma`, `ssm.fma` and `engine.fma` default
to the top-level `fma` section (`ssm` and `engine` keep their own where they cannot use that
one: they need an fp32 accumulator). Loading is safe (`yaml.safe_load`). Every error is one line that names the key path,
the bad value and the allowed values (`gemm.rows: must be >= 1, got 0`), and an unknown key is
reported with the nearest valid one. New spec objects join by adding one entry to `SECTIONS`.
"""

import difflib
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import yaml

from specmx.models.config import EngineConfig, FMAConfig, GemmConfig, PerfConfig, SSMConfig

__all__ = ["Spec", "SpecError", "SECTIONS", "load_spec", "spec_from_dict", "spec_to_dict", "with_fields"]


class SpecError(ValueError):
    """A spec that cannot be loaded: the message is one line starting with the key path."""


@dataclass(frozen=True)
class Spec:
    """Every spec object of one design, each at its default unless the file says otherwise."""

    fma: FMAConfig = field(default_factory=FMAConfig)
    gemm: GemmConfig = field(default_factory=GemmConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    ssm: SSMConfig = field(default_factory=SSMConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)


# section name -> spec object class; fields whose value is itself a spec object, per class
SECTIONS = {"fma": FMAConfig, "gemm": GemmConfig, "perf": PerfConfig, "ssm": SSMConfig, "engine": EngineConfig}
_NESTED = {GemmConfig: {"fma": FMAConfig}, SSMConfig: {"fma": FMAConfig}, EngineConfig: {"fma": FMAConfig}}


def _kind(value):
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__)


def _unknown(path, key, allowed):
    near = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    return SpecError(f"{path}{key}: unknown key; {hint}allowed: {', '.join(allowed)}")


def _build(cls, data, path, defaults=None):
    """A `cls` from a mapping of its fields; `defaults` gives values for missing nested fields."""
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of {', '.join(f.name for f in fields(cls))}, "
                        f"got {_kind(data)}")
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            raise _unknown(f"{path}.", key, names)
    kwargs = dict(defaults or {})
    for name, value in data.items():
        sub = _NESTED.get(cls, {}).get(name)
        kwargs[name] = _build(sub, value, f"{path}.{name}") if sub else value
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{path}.{exc}") from None


def spec_from_dict(data, source="spec"):
    """A validated `Spec` from the parsed YAML document `data` (`source` names it in errors)."""
    if data is None:
        raise SpecError(f"{source}: empty spec; expected a mapping with any of: {', '.join(SECTIONS)}")
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping with any of: {', '.join(SECTIONS)}, got {_kind(data)}")
    for key in data:
        if key not in SECTIONS:
            raise _unknown("", key, list(SECTIONS))
    objects = {}
    if "fma" in data:
        objects["fma"] = _build(FMAConfig, data["fma"], "fma")
    fma = objects.get("fma", FMAConfig())
    for name, cls in SECTIONS.items():
        if name in data and name not in objects:
            defaults = {"fma": fma} if cls in _NESTED else None
            objects[name] = _build(cls, data[name], name, defaults)
    for name, cls in SECTIONS.items():
        if cls in _NESTED and name not in objects:
            objects[name] = _wrap(cls, name, fma)
    return Spec(**objects)


def _wrap(cls, name, fma):
    """A section the file leaves out: its defaults on the file's `fma`, or entirely its defaults
    where that `fma` does not suit it (the SSM datapath needs an fp32 accumulator; a file that
    sets `fma: {acc_fmt: bf16}` for a GEMM engine still loads)."""
    try:
        return cls(fma=fma)
    except ValueError:
        return cls()


def load_spec(path):
    """Read and validate a YAML spec file. Raises SpecError (one line) for anything wrong."""
    p = Path(path)
    if p.is_dir():
        raise SpecError(f"spec: {str(p)!r} is a directory, not a YAML file")
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise SpecError(f"spec: no such file {str(p)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"spec: cannot read {str(p)!r}: {exc.__class__.__name__}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise SpecError(f"spec: {os.path.basename(p)} is not valid YAML{where}: {problem}") from None
    return spec_from_dict(data, f"spec: {os.path.basename(p)}")


def spec_to_dict(spec: Spec):
    """The normalized spec: every section with every field, as plain YAML-ready values."""
    return {name: asdict(getattr(spec, name)) for name in SECTIONS}


def with_fields(obj, **changes):
    """`dataclasses.replace` for CLI overrides, dropping the changes that are None (flag not
    given). Raises SpecError with the field's message."""
    changes = {k: v for k, v in changes.items() if v is not None}
    try:
        return replace(obj, **changes) if changes else obj
    except (ValueError, TypeError) as exc:
        raise SpecError(str(exc)) from None
