// The `stats` plugin's work, apart from the WIT bindings (step.c turns its
// result into the contract's records): reads the config and the input,
// computes count, min, max, mean, standard deviation and percentiles of a
// numeric series, and judges one of them against warn/critical thresholds.

#ifndef STATS_STATS_H
#define STATS_STATS_H

#include "json.h"

#define STATS_NAME "stats"
#define STATS_VERSION "0.1.0"
extern const char STATS_DESCRIPTION[];
extern const char STATS_CONFIG_SCHEMA[];

// The contract's severities, lowest first.
typedef enum { SEVERITY_INFO, SEVERITY_LOW, SEVERITY_MEDIUM, SEVERITY_HIGH, SEVERITY_CRITICAL } severity;

typedef enum {
    STATS_OK,
    // The config is wrong (the contract's invalid-config).
    STATS_INVALID_CONFIG,
    // The input is not what the config says it is (the contract's failed).
    STATS_FAILED,
} stats_status;

typedef struct {
    const char *name;
    double value;
    // A ("resource", <config.resource>) label, or none.
    const char *resource;
} stats_metric;

typedef struct {
    severity severity;
    const char *title;
    const char *detail;
    const char *resource; // or NULL
} stats_finding;

typedef struct {
    stats_status status;
    const char *error; // unless STATS_OK
    const char *data;  // JSON text
    stats_metric *metrics;
    size_t metric_count;
    stats_finding *findings;
    size_t finding_count;
    const char *summary; // the line for the step's log
} stats_result;

// Runs one step on `config` and `input` (JSON text); everything in `out`
// lives in `a`.
void stats_run(arena *a, const char *config, size_t config_len, const char *input, size_t input_len,
               stats_result *out);

#endif
