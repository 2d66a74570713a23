"""`threshold`: checks numbers against warning and critical thresholds.

A tend plugin written in Python and built with componentize-py against
`wit/plugin.wit` (world `plugin`, `tend:plugin@0.1.0`). See README.md.

Its input is the data to check, typically a previous step's output:

- a number: one value;
- an object of numbers, e.g. `{"/": 91.5, "/data": 40}`: one value per key,
  the key naming it;
- a list of numbers: one value per item, named by its index;
- a list of objects, e.g. host-metrics' `disks`: one value per item, read
  from the field `value_field` and named by the field `name_field`;
- any of the above under a dotted `path` of a bigger object
  (`path: "memory.used_percent"`).

For every value it emits a metric named `metric` (labelled with the value's
name, if any) and, for a value at or past a threshold, a finding: `medium`
past `warn`, `critical` past `critical` (both configurable). With `below:
true` the thresholds are lower bounds (free space, a score). Its data says
the status of each value and of the whole check.

It needs no grants: the only host call it makes is `host.log`.
"""

import json
import math

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host
from wit_world.imports.types import (
    Finding,
    LogLevel,
    Metric,
    PluginInfo,
    Severity,
    StepContext,
    StepError_Failed,
    StepError_InvalidConfig,
    StepOutput,
)

NAME = "threshold"
VERSION = "0.1.0"

SEVERITIES = {s.name.lower(): s for s in Severity}

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "threshold config",
    "description": "What to check the step's input against.",
    "type": "object",
    "additionalProperties": False,
    "required": ["metric"],
    "anyOf": [{"required": ["warn"]}, {"required": ["critical"]}],
    "properties": {
        "metric": {
            "type": "string",
            "minLength": 1,
            "description": "Name of the metric emitted for each value, e.g. disk_used_percent; also names the check in findings.",
        },
        "warn": {
            "type": "number",
            "description": "A value at or past this raises a finding of warn_severity.",
        },
        "critical": {
            "type": "number",
            "description": "A value at or past this raises a finding of critical_severity.",
        },
        "below": {
            "type": "boolean",
            "default": False,
            "description": "The thresholds are lower bounds: a value at or under them is past them (free space, a score).",
        },
        "path": {
            "type": "string",
            "description": "Dotted path to the values inside the input, e.g. memory.used_percent or disks; by default the whole input.",
        },
        "value_field": {
            "type": "string",
            "description": "For a list of objects: the field holding each value, e.g. used_percent.",
        },
        "name_field": {
            "type": "string",
            "description": "For a list of objects: the field naming each value, e.g. mount_point; by default its index.",
        },
        "unit": {
            "type": "string",
            "default": "",
            "description": "Unit written after values in findings, e.g. %.",
        },
        "warn_severity": {
            "enum": ["info", "low", "medium", "high", "critical"],
            "default": "medium",
            "description": "Severity of a finding past warn.",
        },
        "critical_severity": {
            "enum": ["info", "low", "medium", "high", "critical"],
            "default": "critical",
            "description": "Severity of a finding past critical.",
        },
    },
}

DEFAULTS = {"below": False, "unit": "", "warn_severity": "medium", "critical_severity": "critical"}


class InvalidConfig(Exception):
    pass


class BadInput(Exception):
    pass


def is_number(v):
    """True for a JSON number a metric can hold (not a boolean, NaN or huge)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return abs(v) < 2**1023
    return isinstance(v, float) and math.isfinite(v)


def parse_config(text):
    """The config with defaults filled in; errors name the field."""
    try:
        raw = json.loads(text) if text.strip() else None
    except (ValueError, RecursionError) as e:
        raise InvalidConfig(f"config is not valid JSON: {e}")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidConfig(f"config: expected an object, got {type_name(raw)}")
    unknown = sorted(set(raw) - set(CONFIG_SCHEMA["properties"]))
    if unknown:
        known = ", ".join(CONFIG_SCHEMA["properties"])
        raise InvalidConfig(f"field `{unknown[0]}`: unknown field; expected one of {known}")
    config = dict(DEFAULTS, warn=None, critical=None, path=None, value_field=None, name_field=None)
    config.update(raw)
    if not isinstance(config.get("metric"), str) or not config["metric"]:
        raise InvalidConfig("field `metric`: required; expected a non-empty string, e.g. \"disk_used_percent\"")
    for field in ("warn", "critical"):
        if config[field] is not None and not is_number(config[field]):
            raise InvalidConfig(f"field `{field}`: expected a number, got {type_name(config[field])}")
    if config["warn"] is None and config["critical"] is None:
        raise InvalidConfig("set `warn`, `critical` or both")
    if not isinstance(config["below"], bool):
        raise InvalidConfig(f"field `below`: expected true or false, got {type_name(config['below'])}")
    for field in ("path", "value_field", "name_field", "unit"):
        if config[field] is not None and not isinstance(config[field], str):
            raise InvalidConfig(f"field `{field}`: expected a string, got {type_name(config[field])}")
    for field in ("warn_severity", "critical_severity"):
        if config[field] not in SEVERITIES:
            raise InvalidConfig(f"field `{field}`: expected one of {', '.join(SEVERITIES)}, got {config[field]!r}")
    warn, critical = config["warn"], config["critical"]
    if warn is not None and critical is not None:
        if (not config["below"] and warn > critical) or (config["below"] and warn < critical):
            order = "at or above" if config["below"] else "at or below"
            raise InvalidConfig(f"field `warn`: {warn} must be {order} `critical` ({critical})")
    return config


def type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    return "an object"


def values_of(data, config):
    """[(name or None, value)] from the input; errors say where."""
    where = "input"
    if config["path"]:
        for key in config["path"].split("."):
            if isinstance(data, dict) and key in data:
                data = data[key]
            elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
                data = data[int(key)]
            else:
                raise BadInput(f"{where} has no `{key}` (path {config['path']!r})")
            where = f"{where}.{key}"
    if is_number(data):
        return [(None, data)]
    if isinstance(data, dict) and config["value_field"] and config["value_field"] in data:
        return [(item_name(data, None, config), item_value(data, where, config))]
    if isinstance(data, dict):
        out = []
        for key, value in data.items():
            if not is_number(value):
                raise BadInput(f"{where}.{key}: expected a number, got {type_name(value)}")
            out.append((key, value))
        return out
    if isinstance(data, list):
        out = []
        for i, item in enumerate(data):
            if is_number(item):
                out.append((str(i), item))
            elif isinstance(item, dict):
                out.append((item_name(item, i, config), item_value(item, f"{where}[{i}]", config)))
            else:
                raise BadInput(f"{where}[{i}]: expected a number or an object, got {type_name(item)}")
        return out
    raise BadInput(f"{where}: expected a number, an object or a list, got {type_name(data)}")


def item_value(item, where, config):
    field = config["value_field"]
    if not field:
        raise BadInput(f"{where} is an object; set `value_field` to the field holding its value")
    value = item.get(field)
    if not is_number(value):
        raise BadInput(f"{where}.{field}: expected a number, got {type_name(value)}")
    return value


def item_name(item, index, config):
    field = config["name_field"]
    if field and field in item:
        return str(item[field])
    return None if index is None else str(index)


def status_of(value, config):
    """"critical", "warn" or "ok"."""
    past = (lambda v, t: v <= t) if config["below"] else (lambda v, t: v >= t)
    if config["critical"] is not None and past(value, config["critical"]):
        return "critical"
    if config["warn"] is not None and past(value, config["warn"]):
        return "warn"
    return "ok"


def fmt(value):
    return str(int(value)) if value == int(value) else f"{value:g}"


class Step(exports.Step):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            description=(
                "Checks numbers against warning and critical thresholds. Its input is a number, an object "
                "of numbers, or a list of numbers or objects (optionally under a dotted path); it emits a "
                "metric for every value and a finding for every value at or past a threshold (or at or "
                "under, with below: true). Written in Python to show that plugins need not be Rust."
            ),
            config_schema=json.dumps(CONFIG_SCHEMA),
            capabilities=[],
        )

    def run(self, ctx: StepContext, config: str, input: str) -> StepOutput:
        try:
            config = parse_config(config)
        except InvalidConfig as e:
            raise Err(StepError_InvalidConfig(str(e)))
        try:
            data = json.loads(input) if input.strip() else None
        except (ValueError, RecursionError) as e:
            raise Err(StepError_Failed(f"input is not valid JSON: {e}"))
        try:
            values = values_of(data, config)
        except BadInput as e:
            raise Err(StepError_Failed(str(e)))

        name, unit = config["metric"], config["unit"]
        bound = "at or under" if config["below"] else "at or over"
        metrics, findings, checked = [], [], []
        for label, value in values:
            status = status_of(value, config)
            labels = [("name", label)] if label is not None else []
            metrics.append(Metric(name=name, value=float(value), labels=labels))
            checked.append({"name": label, "value": value, "status": status})
            if status == "ok":
                continue
            threshold = config[status if status == "critical" else "warn"]
            severity = SEVERITIES[config["critical_severity" if status == "critical" else "warn_severity"]]
            what = f"{name} of {label}" if label is not None else name
            findings.append(
                Finding(
                    severity=severity,
                    title=f"{what} is {fmt(value)}{unit}, {bound} the {status} threshold {fmt(threshold)}{unit}",
                    detail=(
                        f"{what} = {fmt(value)}{unit}; warn {fmt_opt(config['warn'], unit)}, "
                        f"critical {fmt_opt(config['critical'], unit)} (run {ctx.run_id}, step {ctx.step_id})"
                    ),
                    resource=label,
                )
            )

        order = {"ok": 0, "warn": 1, "critical": 2}
        overall = max((c["status"] for c in checked), key=order.get, default="ok")
        counts = {s: sum(1 for c in checked if c["status"] == s) for s in order}
        host.log(
            LogLevel.INFO,
            f"{name}: checked {len(checked)} value(s): {counts['ok']} ok, {counts['warn']} warn, "
            f"{counts['critical']} critical",
        )
        if not checked:
            host.log(LogLevel.WARN, f"{name}: the input holds no values to check")
        out = {
            "metric": name,
            "status": overall,
            "ok": overall == "ok",
            "warn": config["warn"],
            "critical": config["critical"],
            "below": config["below"],
            "values": checked,
        }
        return StepOutput(data=json.dumps(out), metrics=metrics, findings=findings)


def fmt_opt(value, unit):
    return "unset" if value is None else f"{fmt(value)}{unit}"
