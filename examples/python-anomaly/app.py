"""`anomaly`: finds the points of a metric series that stand out from its recent past.

A tend plugin written in Python and built with componentize-py against
`wit/plugin.wit` (world `plugin`, `tend:plugin@0.1.0`). See README.md.

Its input holds the new points of one or more series, typically a previous
step's output:

- a number: one new point;
- a list of numbers, or of `[unix_seconds, value]` pairs (a Prometheus
  range series' `values`): new points, oldest first;
- a prometheus-query result (`{"series": [{"labels": ..., "value": ...} or
  {"labels": ..., "values": [[t, v], ...]}]}`) or its `series` list: one
  series per entry, named by its labels;
- an object of names to numbers or lists: one series per key;
- any of the above under a dotted `path` of a bigger object.

Each series' history is kept in the runbook's plugin state (`state-get`,
`state-set`; always allowed), so every run extends it: the baseline of a
point is the `window` points before it, from earlier runs and from the
input. A point is judged once the baseline has `min_points` points:

- `zscore`: z = (value - mean) / stddev of the last `window` points
  (sample standard deviation);
- `ewma`: z = (value - m) / s, where m and s^2 are the exponentially
  weighted moving average and variance (smoothing `alpha`) of every point
  before it.

A point with |z| at or past `threshold` (in the configured `direction`) is
an anomaly: a finding naming the point, `medium` up to 1.5 x threshold,
`high` up to 2 x, `critical` past that (or when the baseline is flat and the
value differs). Metrics, for the newest point of each series: `<metric>`
(its value) and `<metric>_mean`, `<metric>_stddev`, `<metric>_zscore` once
the baseline is big enough.
"""

import json
import math
import time

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

NAME = "anomaly"
VERSION = "0.1.0"

METHODS = ("zscore", "ewma")
DIRECTIONS = ("both", "up", "down")
# The largest `window`: a series' history must fit a state value (1 MiB).
MAX_WINDOW = 1000
# Version of the history kept in state; another version starts afresh.
STATE_VERSION = 1

DEFAULTS = {
    "method": "zscore",
    "window": 30,
    "threshold": 3.0,
    "min_points": 5,
    "alpha": 0.3,
    "direction": "both",
    "path": None,
    "state_key": None,
    "remember": True,
}

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "anomaly config",
    "description": "Which series to judge and how far from its recent past a point must be to be an anomaly.",
    "type": "object",
    "additionalProperties": False,
    "required": ["metric"],
    "properties": {
        "metric": {
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "description": "Name of the metric the series measures, e.g. error_rate_percent; names the emitted "
            "metrics (<metric>, <metric>_mean, <metric>_stddev, <metric>_zscore) and the findings.",
        },
        "method": {
            "enum": list(METHODS),
            "default": DEFAULTS["method"],
            "description": "zscore: distance from the mean of the last `window` points in standard deviations; "
            "ewma: distance from the exponentially weighted moving average in its moving standard deviations.",
        },
        "window": {
            "type": "integer",
            "minimum": 2,
            "maximum": MAX_WINDOW,
            "default": DEFAULTS["window"],
            "description": "How many past points form the baseline (zscore) and how many the state keeps.",
        },
        "threshold": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": DEFAULTS["threshold"],
            "description": "A point at least this many standard deviations away is an anomaly.",
        },
        "min_points": {
            "type": "integer",
            "minimum": 2,
            "default": DEFAULTS["min_points"],
            "description": "Points the baseline needs before a point is judged; until then the series is learning.",
        },
        "alpha": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "default": DEFAULTS["alpha"],
            "description": "ewma only: weight of the newest point in the moving average and variance.",
        },
        "direction": {
            "enum": list(DIRECTIONS),
            "default": DEFAULTS["direction"],
            "description": "Which side is an anomaly: both, up (above the baseline) or down (below it).",
        },
        "path": {
            "type": "string",
            "description": "Dotted path to the series inside the input, e.g. by_name.error_rate; by default the "
            "whole input.",
        },
        "state_key": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "Key of the runbook's plugin state holding the history; by default anomaly:<metric>. "
            "Two steps judging different series of one metric need different keys.",
        },
        "remember": {
            "type": "boolean",
            "default": DEFAULTS["remember"],
            "description": "Keep the history in the runbook's state (false: judge the input on its own).",
        },
    },
}


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


def quote(v):
    """The value as JSON text, cut short: how error messages quote what they got."""
    text = json.dumps(v)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_config(text):
    """The config with defaults filled in; errors name the field and quote the value."""
    try:
        raw = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError) as e:
        raise InvalidConfig(f"config is not valid JSON: {e}")
    if not isinstance(raw, dict):
        raise InvalidConfig(f"config: expected an object, got {quote(raw)}")
    known = CONFIG_SCHEMA["properties"]
    for field in raw:
        if field not in known:
            raise InvalidConfig(f"field `{field}`: unknown field; expected one of {', '.join(known)}")
    config = dict(DEFAULTS)
    config.update(raw)

    def bad(field, expected):
        return InvalidConfig(f"field `{field}`: expected {expected}, got {quote(config[field])}")

    metric = config.get("metric")
    if "metric" not in raw:
        raise InvalidConfig('field `metric`: required; expected a metric name, e.g. "error_rate_percent"')
    if not isinstance(metric, str) or not metric or not (metric[0].isalpha() or metric[0] == "_"):
        raise bad("metric", "a metric name (letters, digits and _, not starting with a digit)")
    if not all(c.isascii() and (c.isalnum() or c == "_") for c in metric):
        raise bad("metric", "a metric name (letters, digits and _, not starting with a digit)")
    if config["method"] not in METHODS:
        raise bad("method", "one of " + ", ".join(METHODS))
    if config["direction"] not in DIRECTIONS:
        raise bad("direction", "one of " + ", ".join(DIRECTIONS))
    for field, low, high in (("window", 2, MAX_WINDOW), ("min_points", 2, None)):
        v = config[field]
        if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
            raise bad(field, f"an integer from {low} to {high}" if high else f"an integer of at least {low}")
    if not is_number(config["threshold"]) or config["threshold"] <= 0:
        raise bad("threshold", "a number greater than 0")
    if not is_number(config["alpha"]) or not 0 < config["alpha"] <= 1:
        raise bad("alpha", "a number greater than 0 and at most 1")
    for field in ("path", "state_key"):
        if config[field] is not None and (not isinstance(config[field], str) or not config[field]):
            raise bad(field, "a non-empty string")
    if not isinstance(config["remember"], bool):
        raise bad("remember", "true or false")
    if config["method"] == "zscore" and config["min_points"] > config["window"]:
        raise InvalidConfig(
            f"field `min_points`: {config['min_points']} is more than `window` ({config['window']}): "
            "the baseline would never have enough points"
        )
    if config["state_key"] is None:
        config["state_key"] = f"anomaly:{metric}"
    config["threshold"] = float(config["threshold"])
    return config


# --- The input: series of new points -------------------------------------


class Series:
    """One series: a name (its labels as text, or its key), labels for its
    metrics, and the new points, each (index, unix seconds or None, value)."""

    def __init__(self, name, labels):
        self.name = name
        self.labels = labels
        self.points = []
        self.skipped = 0


def number_of(v, where):
    """A sample's value: a number, or Prometheus's text of one ("NaN",
    "+Inf" and the like give None: they are skipped)."""
    if is_number(v):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            raise BadInput(f"{where}: expected a number, got {quote(v)}")
        return f if math.isfinite(f) else None
    raise BadInput(f"{where}: expected a number, got {quote(v)}")


def add_points(series, items, where):
    """Adds a list of numbers or of [time, value] pairs to `series`."""
    for i, item in enumerate(items):
        at = None
        if isinstance(item, list):
            if len(item) != 2 or not is_number(item[0]):
                raise BadInput(f"{where}[{i}]: expected a number or a [time, value] pair, got {quote(item)}")
            at, item = item[0], item[1]
        value = number_of(item, f"{where}[{i}]" if at is None else f"{where}[{i}][1]")
        if value is None:
            series.skipped += 1
        else:
            series.points.append((len(series.points) + series.skipped, at, value))


def selector(labels):
    """`{instance="a:1", job="demo"}` (without `__name__`); "" without labels."""
    shown = [f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__"]
    return "{" + ", ".join(shown) + "}" if shown else ""


def prometheus_series(items, where):
    out = []
    for i, item in enumerate(items):
        labels = item.get("labels") or {}
        if not isinstance(labels, dict):
            raise BadInput(f"{where}[{i}].labels: expected an object, got {quote(labels)}")
        labels = {str(k): str(v) for k, v in labels.items() if k != "__name__"}
        series = Series(selector(labels), sorted(labels.items()))
        if "values" in item:
            if not isinstance(item["values"], list):
                raise BadInput(f"{where}[{i}].values: expected a list, got {quote(item['values'])}")
            add_points(series, item["values"], f"{where}[{i}].values")
        elif "value" in item:
            add_points(series, [item["value"]], f"{where}[{i}].value")
        else:
            raise BadInput(f"{where}[{i}]: a series needs `value` or `values`, got {quote(item)}")
        out.append(series)
    return out


def is_prometheus_series(items):
    return bool(items) and all(isinstance(s, dict) and ("value" in s or "values" in s) for s in items)


def series_of(data, path):
    """The series in the input; errors say where."""
    where = "input"
    if path:
        for key in path.split("."):
            if isinstance(data, dict) and key in data:
                data = data[key]
            elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
                data = data[int(key)]
            else:
                raise BadInput(f"{where} has no `{key}` (path {path!r})")
            where = f"{where}.{key}"
    if is_number(data) or isinstance(data, str):
        series = Series("", [])
        add_points(series, [data], where)
        return [series]
    if isinstance(data, list):
        if is_prometheus_series(data):
            return prometheus_series(data, where)
        series = Series("", [])
        add_points(series, data, where)
        return [series]
    if isinstance(data, dict):
        if isinstance(data.get("series"), list):
            return prometheus_series(data["series"], f"{where}.series")
        out = []
        for key, value in data.items():
            series = Series(selector({"series": str(key)}), [("series", str(key))])
            add_points(series, value if isinstance(value, list) else [value], f"{where}.{key}")
            out.append(series)
        return out
    raise BadInput(f"{where}: expected a number, a list or an object of series, got {quote(data)}")


# --- Judging ---------------------------------------------------------------


def load_history(config):
    """The history of every series of this metric from the runbook's state:
    {series name: {"points": [values], "ewma": {"mean", "var", "n"}}}."""
    if not config["remember"]:
        return {}
    text = host.state_get(config["state_key"])
    if text is None:
        return {}
    try:
        saved = json.loads(text)
        if saved.get("version") == STATE_VERSION and isinstance(saved.get("series"), dict):
            return saved["series"]
    except (ValueError, AttributeError):
        pass
    host.log(LogLevel.WARN, f"state key {config['state_key']!r} does not hold a history of this plugin: starting afresh")
    return {}


def save_history(config, history):
    if not config["remember"]:
        return
    text = json.dumps({"version": STATE_VERSION, "series": history}, separators=(",", ":"))
    try:
        host.state_set(config["state_key"], text)
    except Err as e:
        raise Err(
            StepError_Failed(
                f"could not keep the history in state key {config['state_key']!r}: {e.value}; "
                "lower `window` or judge fewer series"
            )
        )


def severity_of(z, threshold):
    """How far out: medium up to 1.5 x threshold, high up to 2 x, then critical."""
    if z is None:
        return Severity.CRITICAL
    ratio = abs(z) / threshold
    if ratio >= 2:
        return Severity.CRITICAL
    if ratio >= 1.5:
        return Severity.HIGH
    return Severity.MEDIUM


def baseline(method, points, ewma, config):
    """(mean, stddev, size) of the baseline before the next point, or None
    while it is too small."""
    if method == "zscore":
        base = points[-config["window"] :]
        n = len(base)
        if n < config["min_points"]:
            return None
        mean = math.fsum(base) / n
        var = math.fsum((v - mean) ** 2 for v in base) / (n - 1)
        return mean, math.sqrt(var), n
    if ewma["n"] < config["min_points"]:
        return None
    return ewma["mean"], math.sqrt(ewma["var"]), ewma["n"]


def update_ewma(ewma, value, alpha):
    if ewma["n"] == 0:
        ewma["mean"], ewma["var"] = value, 0.0
    else:
        d = value - ewma["mean"]
        ewma["mean"] += alpha * d
        ewma["var"] = (1 - alpha) * (ewma["var"] + alpha * d * d)
    ewma["n"] += 1


def judge(series, kept, config):
    """Judges the new points of one series against its history, extends the
    history; returns the series' data (its anomalies and newest point)."""
    points = [float(v) for v in kept.get("points", []) if is_number(v)]
    ewma = kept.get("ewma")
    if not (isinstance(ewma, dict) and all(is_number(ewma.get(k)) for k in ("mean", "var", "n"))):
        ewma = {"mean": 0.0, "var": 0.0, "n": 0}
    method, threshold, direction = config["method"], config["threshold"], config["direction"]
    anomalies, last = [], None
    for index, at, value in series.points:
        base = baseline(method, points, ewma, config)
        point = {"index": index, "at": at, "value": value}
        if base is None:
            point.update(mean=None, stddev=None, z=None, baseline=len(points) if method == "zscore" else ewma["n"])
        else:
            mean, stddev, size = base
            if stddev > 0:
                z = (value - mean) / stddev
            else:
                z = 0.0 if value == mean else None
            point.update(mean=mean, stddev=stddev, z=z, baseline=size)
            side = "up" if value > mean else "down"
            out = z is None or abs(z) >= threshold
            if out and direction in ("both", side):
                point.update(direction=side, severity=severity_of(z, threshold).name.lower())
                anomalies.append(point)
        last = point
        points.append(value)
        update_ewma(ewma, value, config["alpha"])
    kept["points"] = points[-config["window"] :]
    kept["ewma"] = ewma
    if last is None:
        status = "empty"
    elif anomalies:
        status = "anomaly"
    elif last["z"] is None:
        status = "learning"
    else:
        status = "ok"
    return {
        "name": series.name,
        "labels": dict(series.labels),
        "status": status,
        "new_points": len(series.points),
        "skipped": series.skipped,
        "history": len(kept["points"]) if method == "zscore" else ewma["n"],
        "last": last,
        "anomalies": anomalies,
    }


def fmt(value):
    """A value as findings show it: 6 significant digits, no needless ".0"."""
    return f"{value:.6g}"


def finding_of(config, series, point, ctx):
    what = config["metric"] + series["name"]
    if point["at"] is not None:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(point["at"]))
        where = f"at {at}"
    else:
        where = f"point {point['index']}"
    if config["method"] == "zscore":
        average, of = "the mean", f" of the {point['baseline']} points before it"
    else:
        average, of = "the moving average", ""
    if point["z"] is None:
        title = f"{what} {where}: {fmt(point['value'])} differs from a flat baseline of {fmt(point['mean'])}"
    else:
        side = "above" if point["direction"] == "up" else "below"
        title = (
            f"{what} {where}: {fmt(point['value'])} is {abs(point['z']):.2f} standard deviations "
            f"{side} {average} {fmt(point['mean'])}{of}"
        )
    z = "infinite" if point["z"] is None else f"{point['z']:.3f}"
    detail = (
        f"method {config['method']}, baseline of {point['baseline']} point(s)"
        f"{' (window ' + str(config['window']) + ')' if config['method'] == 'zscore' else ''}: "
        f"mean {fmt(point['mean'])}, stddev {fmt(point['stddev'])}; z {z}, threshold {fmt(config['threshold'])} "
        f"(run {ctx.run_id}, step {ctx.step_id})"
    )
    return Finding(severity=Severity[point["severity"].upper()], title=title, detail=detail, resource=what)


def metrics_of(config, series):
    last = series["last"]
    if last is None:
        return []
    labels = list(series["labels"].items())
    name = config["metric"]
    out = [Metric(name=name, value=last["value"], labels=labels)]
    if last["mean"] is not None:
        out.append(Metric(name=f"{name}_mean", value=last["mean"], labels=labels))
        out.append(Metric(name=f"{name}_stddev", value=last["stddev"], labels=labels))
    if last["z"] is not None:
        out.append(Metric(name=f"{name}_zscore", value=last["z"], labels=labels))
    return out


class Step(exports.Step):
    def describe(self) -> PluginInfo:
        return PluginInfo(
            name=NAME,
            version=VERSION,
            description=(
                "Finds the points of a metric series that stand out from its recent past, by z-score over a "
                "rolling window or by an exponentially weighted moving average. Its input is a number, a list "
                "of numbers or [time, value] pairs, a prometheus-query result, or an object of named series; "
                "each series' history is kept in the runbook's state, so every run extends it. It emits the "
                "newest value with its mean, standard deviation and z-score as metrics, and a finding naming "
                "each anomalous point. Written in Python."
            ),
            config_schema=json.dumps(CONFIG_SCHEMA),
            capabilities=["state"],
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
            all_series = series_of(data, config["path"])
        except BadInput as e:
            raise Err(StepError_Failed(str(e)))

        history = load_history(config)
        judged = []
        for series in all_series:
            kept = history.get(series.name)
            if not isinstance(kept, dict):
                kept = history[series.name] = {}
            judged.append(judge(series, kept, config))
        save_history(config, history)

        findings = [finding_of(config, s, p, ctx) for s in judged for p in s["anomalies"]]
        metrics = [m for s in judged for m in metrics_of(config, s)]
        count = sum(len(s["anomalies"]) for s in judged)
        statuses = {s["status"] for s in judged}
        status = next((s for s in ("anomaly", "ok", "learning") if s in statuses), "empty")
        new = sum(s["new_points"] for s in judged)
        host.log(
            LogLevel.INFO,
            f"{config['metric']}: judged {new} new point(s) of {len(judged)} series by {config['method']}: "
            f"{count} anomal{'y' if count == 1 else 'ies'}",
        )
        for s in judged:
            if s["status"] == "learning":
                host.log(
                    LogLevel.INFO,
                    f"{config['metric']}{s['name']}: learning, {s['history']} point(s) of history, "
                    f"{config['min_points']} needed",
                )
        out = {
            "metric": config["metric"],
            "method": config["method"],
            "threshold": config["threshold"],
            "status": status,
            "anomalies": count,
            "series": judged,
        }
        return StepOutput(data=json.dumps(out), metrics=metrics, findings=findings)
