// See stats.h.

#include "stats.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char STATS_DESCRIPTION[] =
    "Summarizes a numeric series from the input: count, min, max, mean, standard deviation and percentiles "
    "(p50, p95 and p99 by default), each emitted as a metric, and raises a finding when one of them (p95 by "
    "default) is at or past a warn or critical threshold. The series is a list of numbers, numeric strings, "
    "[time, value] pairs (as prometheus-query returns a range) or objects (`value_field`), or an object of "
    "numbers, at `path` in the input. Written in C.";

const char STATS_CONFIG_SCHEMA[] =
    "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"type\": \"object\", "
    "\"additionalProperties\": false, \"required\": [\"metric\"], \"properties\": {"
    "\"metric\": {\"type\": \"string\", \"pattern\": \"^[A-Za-z_][A-Za-z0-9_]*$\", "
    "\"description\": \"Prefix of the metrics emitted, e.g. latency_ms gives latency_ms_p95; names the series in "
    "findings\"}, "
    "\"path\": {\"type\": \"string\", \"description\": \"Dotted path to the series in the input, e.g. "
    "by_name.latency.series.0.values (a number indexes a list); the whole input by default\"}, "
    "\"value_field\": {\"type\": \"string\", \"description\": \"For a series of objects: the field holding each "
    "value\"}, "
    "\"percentiles\": {\"type\": \"array\", \"items\": {\"type\": \"number\", \"exclusiveMinimum\": 0, "
    "\"maximum\": 100}, \"description\": \"Percentiles to compute (linear interpolation between closest ranks); "
    "[50, 95, 99] by default\"}, "
    "\"stat\": {\"type\": \"string\", \"description\": \"The statistic the thresholds apply to: count, min, max, "
    "mean, stddev or a computed percentile such as p99; p95 by default\"}, "
    "\"warn\": {\"type\": \"number\", \"description\": \"A finding when `stat` is at or over it (under it with "
    "`below`)\"}, "
    "\"critical\": {\"type\": \"number\", \"description\": \"A finding when `stat` is at or over it (under it "
    "with `below`)\"}, "
    "\"below\": {\"type\": \"boolean\", \"description\": \"The thresholds are lower bounds (a throughput, a "
    "score); false by default\"}, "
    "\"unit\": {\"type\": \"string\", \"description\": \"Written after values in findings, e.g. ms\"}, "
    "\"resource\": {\"type\": \"string\", \"description\": \"What the series is about, e.g. a URL: the resource "
    "of findings and a label of metrics\"}, "
    "\"warn_severity\": {\"enum\": [\"info\", \"low\", \"medium\", \"high\", \"critical\"], \"description\": "
    "\"Severity of a finding past `warn`; medium by default\"}, "
    "\"critical_severity\": {\"enum\": [\"info\", \"low\", \"medium\", \"high\", \"critical\"], \"description\": "
    "\"Severity of a finding past `critical`; critical by default\"}}}";

// By default the p50, p95 and p99 percentiles are computed.
static const double DEFAULT_PERCENTILES[] = {50, 95, 99};
// By default the thresholds apply to the 95th percentile.
static const char DEFAULT_STAT[] = "p95";
// By default a value past `warn` raises a medium finding.
static const severity DEFAULT_WARN_SEVERITY = SEVERITY_MEDIUM;
// By default a value past `critical` raises a critical finding.
static const severity DEFAULT_CRITICAL_SEVERITY = SEVERITY_CRITICAL;
// At most this many percentiles, so that a step's metrics stay readable.
enum { MAX_PERCENTILES = 16 };

static const char *const FIELDS[] = {"metric",   "path",  "value_field", "percentiles", "stat",          "warn",
                                     "critical", "below", "unit",        "resource",    "warn_severity", "critical_severity"};
static const char *const SEVERITIES[] = {"info", "low", "medium", "high", "critical"};

typedef struct {
    const char *metric;
    const char *path;        // or NULL: the whole input
    const char *value_field; // or NULL
    double percentiles[MAX_PERCENTILES];
    size_t percentile_count;
    const char *stat;
    bool stat_given;
    bool has_warn, has_critical;
    double warn, critical;
    bool below;
    const char *unit;
    const char *resource; // or NULL
    severity warn_severity, critical_severity;
} config;

typedef struct {
    arena *arena;
    stats_result *out;
} step;

// Ends the step with an error; always false, for `return error(...)`.
__attribute__((format(printf, 3, 4))) static bool error(step *s, stats_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = arena_alloc(s->arena, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->out->status = status;
    s->out->error = msg;
    return false;
}

// Significant digits of numbers in messages, findings and the log line;
// the output data keeps every digit.
enum { HUMAN_DIGITS = 10 };

// A number for people: "774", "209.2142857", "1e+21".
static const char *number_text(arena *a, double x) {
    strbuf sb;
    sb_init(&sb, a);
    sb_number_digits(&sb, x, HUMAN_DIGITS);
    return sb_text(&sb);
}

// "field `name`: expected <what>, got <the value>".
static bool wrong_type(step *s, const char *field, const char *what, const json *v) {
    return error(s, STATS_INVALID_CONFIG, "field `%s`: expected %s, got %s", field, what, json_describe(s->arena, v));
}

static bool config_string(step *s, const json *cfg, const char *field, const char **out) {
    const json *v = json_get(cfg, field);
    if (!v) return true;
    if (v->kind != JSON_STRING) return wrong_type(s, field, "a string", v);
    *out = v->str;
    return true;
}

static bool config_number(step *s, const json *cfg, const char *field, bool *given, double *out) {
    const json *v = json_get(cfg, field);
    if (!v) return true;
    if (v->kind != JSON_NUMBER) return wrong_type(s, field, "a number", v);
    *given = true;
    *out = v->number;
    return true;
}

static bool config_severity(step *s, const json *cfg, const char *field, severity *out) {
    const json *v = json_get(cfg, field);
    if (!v) return true;
    if (v->kind == JSON_STRING)
        for (size_t i = 0; i < sizeof SEVERITIES / sizeof *SEVERITIES; i++)
            if (strcmp(v->str, SEVERITIES[i]) == 0) {
                *out = (severity)i;
                return true;
            }
    return wrong_type(s, field, "one of info, low, medium, high, critical", v);
}

static bool is_metric_name(const char *name) {
    if (!*name || (*name >= '0' && *name <= '9')) return false;
    for (const char *c = name; *c; c++)
        if (!(*c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            return false;
    return true;
}

// "p95", "p99.9".
static const char *percentile_name(arena *a, double p) { return arena_printf(a, "p%s", number_text(a, p)); }

static bool stat_known(const config *c, arena *a, const char *stat) {
    static const char *const plain[] = {"count", "min", "max", "mean", "stddev"};
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        if (strcmp(stat, plain[i]) == 0) return true;
    for (size_t i = 0; i < c->percentile_count; i++)
        if (strcmp(stat, percentile_name(a, c->percentiles[i])) == 0) return true;
    return false;
}

static bool parse_config(step *s, const char *text, size_t len, config *c) {
    arena *a = s->arena;
    json *cfg;
    const char *err = json_parse(a, text, len, &cfg);
    if (err) return error(s, STATS_INVALID_CONFIG, "the config is not JSON: %s", err);
    if (cfg->kind == JSON_NULL) cfg->kind = JSON_OBJECT; // no `with:`
    if (cfg->kind != JSON_OBJECT)
        return error(s, STATS_INVALID_CONFIG, "expected an object, got %s", json_describe(a, cfg));
    for (size_t i = 0; i < cfg->len; i++) {
        bool known = false;
        for (size_t f = 0; f < sizeof FIELDS / sizeof *FIELDS; f++) known |= strcmp(cfg->keys[i], FIELDS[f]) == 0;
        if (!known) {
            strbuf sb;
            sb_init(&sb, a);
            sb_json_string(&sb, cfg->keys[i], strlen(cfg->keys[i]));
            return error(s, STATS_INVALID_CONFIG,
                         "unknown field %s, expected one of metric, path, value_field, percentiles, stat, warn, "
                         "critical, below, unit, resource, warn_severity, critical_severity",
                         sb_text(&sb));
        }
    }

    *c = (config){.stat = DEFAULT_STAT, .unit = "", .warn_severity = DEFAULT_WARN_SEVERITY,
                  .critical_severity = DEFAULT_CRITICAL_SEVERITY};
    if (!config_string(s, cfg, "metric", &c->metric)) return false;
    if (!c->metric)
        return error(s, STATS_INVALID_CONFIG, "field `metric` is required: the prefix of the metrics, e.g. \"latency_ms\"");
    if (!is_metric_name(c->metric))
        return error(s, STATS_INVALID_CONFIG, "field `metric`: %s is not a metric name ([A-Za-z_][A-Za-z0-9_]*)",
                     json_describe(a, json_get(cfg, "metric")));

    if (!config_string(s, cfg, "path", &c->path)) return false;
    if (c->path && *c->path == 0) c->path = NULL;
    if (c->path) {
        size_t n = strlen(c->path);
        if (c->path[0] == '.' || c->path[n - 1] == '.' || strstr(c->path, ".."))
            return error(s, STATS_INVALID_CONFIG, "field `path`: %s has an empty segment; write keys between dots, "
                         "e.g. \"latency.values\"", json_describe(a, json_get(cfg, "path")));
    }
    if (!config_string(s, cfg, "value_field", &c->value_field)) return false;

    const json *ps = json_get(cfg, "percentiles");
    if (!ps) {
        memcpy(c->percentiles, DEFAULT_PERCENTILES, sizeof DEFAULT_PERCENTILES);
        c->percentile_count = sizeof DEFAULT_PERCENTILES / sizeof *DEFAULT_PERCENTILES;
    } else {
        if (ps->kind != JSON_ARRAY) return wrong_type(s, "percentiles", "a list of numbers", ps);
        if (ps->len > MAX_PERCENTILES)
            return error(s, STATS_INVALID_CONFIG, "field `percentiles`: %zu percentiles, at most %d are allowed",
                         ps->len, MAX_PERCENTILES);
        for (size_t i = 0; i < ps->len; i++) {
            const json *p = ps->items[i];
            const char *field = arena_printf(a, "percentiles[%zu]", i);
            if (p->kind != JSON_NUMBER) return wrong_type(s, field, "a number", p);
            if (!(p->number > 0 && p->number <= 100))
                return error(s, STATS_INVALID_CONFIG, "field `%s`: %s is out of range, expected over 0 and at most 100",
                             field, number_text(a, p->number));
            for (size_t j = 0; j < i; j++)
                if (c->percentiles[j] == p->number)
                    return error(s, STATS_INVALID_CONFIG, "field `%s`: %s is listed twice", field,
                                 number_text(a, p->number));
            c->percentiles[c->percentile_count++] = p->number;
        }
    }

    if (!config_string(s, cfg, "stat", &c->stat)) return false;
    c->stat_given = json_get(cfg, "stat") != NULL;
    if (!config_number(s, cfg, "warn", &c->has_warn, &c->warn)) return false;
    if (!config_number(s, cfg, "critical", &c->has_critical, &c->critical)) return false;
    const json *below = json_get(cfg, "below");
    if (below && below->kind != JSON_BOOL) return wrong_type(s, "below", "true or false", below);
    c->below = below && below->boolean;
    if (!config_string(s, cfg, "unit", &c->unit)) return false;
    if (!config_string(s, cfg, "resource", &c->resource)) return false;
    if (!config_severity(s, cfg, "warn_severity", &c->warn_severity)) return false;
    if (!config_severity(s, cfg, "critical_severity", &c->critical_severity)) return false;

    if (!stat_known(c, a, c->stat)) {
        strbuf known;
        sb_init(&known, a);
        sb_str(&known, "count, min, max, mean, stddev");
        for (size_t i = 0; i < c->percentile_count; i++)
            sb_printf(&known, ", %s", percentile_name(a, c->percentiles[i]));
        if (c->stat_given)
            return error(s, STATS_INVALID_CONFIG, "field `stat`: %s is not computed, expected one of %s",
                         json_describe(a, json_get(cfg, "stat")), sb_text(&known));
        if (c->has_warn || c->has_critical)
            return error(s, STATS_INVALID_CONFIG, "field `stat`: the thresholds apply to \"%s\" by default, which "
                         "`percentiles` leaves out; set `stat` to one of %s", DEFAULT_STAT, sb_text(&known));
        c->stat = NULL; // nothing to judge
    }
    if (c->has_warn && c->has_critical && (c->below ? c->critical > c->warn : c->critical < c->warn))
        return error(s, STATS_INVALID_CONFIG, "field `critical`: %s is %s `warn` (%s); %s", number_text(a, c->critical),
                     c->below ? "over" : "under", number_text(a, c->warn),
                     c->below ? "lower bounds (`below: true`) need critical at or under warn"
                              : "upper bounds need critical at or over warn (or set `below: true`)");
    return true;
}

// ---- the series -------------------------------------------------------------

typedef struct {
    double *values;
    size_t count, cap;
    size_t skipped; // null, NaN or infinite
} series;

static void push(arena *a, series *s, double x) {
    if (s->count == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        double *values = arena_alloc(a, s->cap * sizeof *values);
        if (s->count) memcpy(values, s->values, s->count * sizeof *values);
        s->values = values;
    }
    s->values[s->count++] = x;
}

// The value at `c->path` in the input, or an error naming the first
// segment that is not there.
static bool find_path(step *s, const config *c, const json *input, const json **out) {
    const json *v = input;
    if (!c->path) {
        *out = v;
        return true;
    }
    const char *start = c->path;
    for (;;) {
        const char *dot = strchr(start, '.');
        size_t seg_len = dot ? (size_t)(dot - start) : strlen(start);
        char *seg = arena_strndup(s->arena, start, seg_len);
        size_t prefix_len = (size_t)(start - c->path) + seg_len;
        const json *next = NULL;
        if (v->kind == JSON_OBJECT) {
            next = json_get(v, seg);
        } else if (v->kind == JSON_ARRAY) {
            char *end;
            unsigned long i = strtoul(seg, &end, 10);
            if (*end == 0 && *seg >= '0' && *seg <= '9' && i < v->len) next = v->items[i];
        }
        if (!next) {
            const char *why = "";
            if (v->kind == JSON_ARRAY)
                why = arena_printf(s->arena, ": %s is a list of %zu; index it with a number from 0",
                                   start == c->path ? "the input" : arena_strndup(s->arena, c->path, (size_t)(start - c->path - 1)),
                                   v->len);
            return error(s, STATS_FAILED, "input has no `%.*s` (path '%s')%s", (int)prefix_len, c->path, c->path, why);
        }
        v = next;
        if (!dot) break;
        start = dot + 1;
    }
    *out = v;
    return true;
}

// Where the series is, for messages: "the input" or "path 'a.b'".
static const char *where(step *s, const config *c) {
    return c->path ? arena_printf(s->arena, "path '%s'", c->path) : "the input";
}

static bool take(step *s, const config *c, series *out, const json *item, const char *name, bool allow_pair) {
    const json *v = item;
    if (c->value_field) {
        if (item->kind != JSON_OBJECT)
            return error(s, STATS_FAILED, "item %s of the series at %s is %s, expected an object with `%s`", name,
                         where(s, c), json_describe(s->arena, item), c->value_field);
        v = json_get(item, c->value_field);
        if (!v) return error(s, STATS_FAILED, "item %s of the series at %s has no `%s`", name, where(s, c), c->value_field);
        allow_pair = false;
    }
    switch (v->kind) {
    case JSON_NUMBER: push(s->arena, out, v->number); return true;
    case JSON_NULL: out->skipped++; return true;
    case JSON_STRING: {
        // Prometheus writes sample values as strings: "12.5", "NaN", "+Inf".
        char *end;
        double x = strtod(v->str, &end);
        bool hex = strchr(v->str, 'x') || strchr(v->str, 'X');
        if (v->len > 0 && end == v->str + v->len && !hex && v->str[0] != ' ') {
            if (isfinite(x))
                push(s->arena, out, x);
            else
                out->skipped++;
            return true;
        }
        break;
    }
    case JSON_ARRAY:
        if (allow_pair && v->len == 2) return take(s, c, out, v->items[1], name, false);
        break;
    default: break;
    }
    return error(s, STATS_FAILED, "item %s of the series at %s is %s, expected a number, a numeric string, null%s", name,
                 where(s, c), json_describe(s->arena, v), allow_pair && !c->value_field ? " or a [time, value] pair" : "");
}

static bool collect(step *s, const config *c, const json *v, series *out) {
    switch (v->kind) {
    case JSON_NUMBER:
    case JSON_STRING:
        if (!c->value_field) return take(s, c, out, v, "0", false);
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < v->len; i++)
            if (!take(s, c, out, v->items[i], arena_printf(s->arena, "%zu", i), true)) return false;
        return true;
    case JSON_OBJECT:
        for (size_t i = 0; i < v->len; i++) {
            strbuf name;
            sb_init(&name, s->arena);
            sb_json_string(&name, v->keys[i], strlen(v->keys[i]));
            if (!take(s, c, out, v->items[i], sb_text(&name), true)) return false;
        }
        return true;
    default: break;
    }
    return error(s, STATS_FAILED, "the series at %s is %s, expected a list or an object%s", where(s, c),
                 json_describe(s->arena, v), c->value_field ? "" : " of numbers, or a number");
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The p-th percentile of sorted values: linear interpolation between the
// closest ranks (Excel's PERCENTILE.INC), computed as numpy.percentile's
// default method does, to the last bit.
static double percentile(const double *sorted, size_t n, double p) {
    double rank = (double)(n - 1) * (p / 100);
    size_t lo = (size_t)floor(rank);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    double t = rank - (double)lo, a = sorted[lo], b = sorted[hi], diff = b - a;
    return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

typedef struct {
    const char *name;
    double value;
} named;

void stats_run(arena *a, const char *config_text, size_t config_len, const char *input_text, size_t input_len,
               stats_result *out) {
    *out = (stats_result){.status = STATS_OK};
    step s = {.arena = a, .out = out};
    config c;
    if (!parse_config(&s, config_text, config_len, &c)) return;
    json *input;
    const char *err = json_parse(a, input_text, input_len, &input);
    if (err) {
        error(&s, STATS_FAILED, "the input is not JSON: %s", err);
        return;
    }
    const json *at;
    if (!find_path(&s, &c, input, &at)) return;
    series values = {0};
    if (!collect(&s, &c, at, &values)) return;
    size_t n = values.count;
    if (n == 0) {
        error(&s, STATS_FAILED, "no values in the series at %s (%zu skipped: null, NaN or infinite)", where(&s, &c),
              values.skipped);
        return;
    }

    qsort(values.values, n, sizeof *values.values, compare);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += values.values[i];
    double mean = sum / (double)n, squares = 0;
    for (size_t i = 0; i < n; i++) squares += (values.values[i] - mean) * (values.values[i] - mean);
    named stats[5 + MAX_PERCENTILES] = {
        {"count", (double)n},
        {"min", values.values[0]},
        {"max", values.values[n - 1]},
        {"mean", mean},
        {"stddev", sqrt(squares / (double)n)},
    };
    size_t stat_count = 5;
    for (size_t i = 0; i < c.percentile_count; i++)
        stats[stat_count++] = (named){percentile_name(a, c.percentiles[i]), percentile(values.values, n, c.percentiles[i])};

    // The judged statistic.
    const char *status = "ok";
    double judged = NAN;
    for (size_t i = 0; c.stat && i < stat_count; i++)
        if (strcmp(stats[i].name, c.stat) == 0) judged = stats[i].value;
    bool past_critical = c.has_critical && (c.below ? judged <= c.critical : judged >= c.critical);
    bool past_warn = c.has_warn && (c.below ? judged <= c.warn : judged >= c.warn);
    if (past_critical)
        status = "critical";
    else if (past_warn)
        status = "warn";

    // Metrics: <metric>_<stat>, a dot of a percentile written as `_`.
    out->metrics = arena_alloc(a, stat_count * sizeof *out->metrics);
    for (size_t i = 0; i < stat_count; i++) {
        char *name = arena_printf(a, "%s_%s", c.metric, stats[i].name);
        for (char *d = name; (d = strchr(d, '.'));) *d = '_';
        out->metrics[out->metric_count++] = (stats_metric){name, stats[i].value, c.resource};
    }

    // "min 1ms, mean 3ms, ..., p99 12ms" (count apart).
    strbuf summary;
    sb_init(&summary, a);
    sb_printf(&summary, "%zu value(s)", n);
    if (values.skipped) sb_printf(&summary, " (%zu skipped)", values.skipped);
    for (size_t i = 1; i < stat_count; i++)
        sb_printf(&summary, "%s %s %s%s", i == 1 ? ":" : ",", stats[i].name, number_text(a, stats[i].value), c.unit);

    if (strcmp(status, "ok") != 0) {
        double threshold = past_critical ? c.critical : c.warn;
        strbuf detail;
        sb_init(&detail, a);
        sb_printf(&detail, "%s at %s, %s. Thresholds of %s%s:", c.metric, where(&s, &c), sb_text(&summary), c.stat,
                  c.below ? " (lower bounds)" : "");
        if (c.has_warn) sb_printf(&detail, " warn %s%s", number_text(a, c.warn), c.unit);
        if (c.has_warn && c.has_critical) sb_str(&detail, ",");
        if (c.has_critical) sb_printf(&detail, " critical %s%s", number_text(a, c.critical), c.unit);
        sb_str(&detail, ".");
        out->findings = arena_alloc(a, sizeof *out->findings);
        out->findings[0] = (stats_finding){
            .severity = past_critical ? c.critical_severity : c.warn_severity,
            .title = arena_printf(a, "%s %s is %s%s, at or %s the %s threshold %s%s", c.metric, c.stat,
                                  number_text(a, judged), c.unit, c.below ? "under" : "over", status,
                                  number_text(a, threshold), c.unit),
            .detail = sb_text(&detail),
            .resource = c.resource,
        };
        out->finding_count = 1;
    }
    out->summary = arena_printf(a, "%s: %s", c.metric, sb_text(&summary));

    strbuf data;
    sb_init(&data, a);
    sb_str(&data, "{\"metric\": ");
    sb_json_string(&data, c.metric, strlen(c.metric));
    for (size_t i = 0; i < stat_count; i++) {
        sb_str(&data, ", ");
        sb_json_string(&data, stats[i].name, strlen(stats[i].name));
        sb_str(&data, ": ");
        sb_number(&data, stats[i].value);
    }
    sb_printf(&data, ", \"skipped\": %zu, \"stat\": ", values.skipped);
    if (c.stat)
        sb_json_string(&data, c.stat, strlen(c.stat));
    else
        sb_str(&data, "null");
    sb_str(&data, ", \"value\": ");
    sb_number(&data, judged);
    sb_printf(&data, ", \"status\": \"%s\", \"warn\": ", status);
    if (c.has_warn) sb_number(&data, c.warn); else sb_str(&data, "null");
    sb_str(&data, ", \"critical\": ");
    if (c.has_critical) sb_number(&data, c.critical); else sb_str(&data, "null");
    sb_printf(&data, ", \"below\": %s}", c.below ? "true" : "false");
    out->data = sb_text(&data);
}
