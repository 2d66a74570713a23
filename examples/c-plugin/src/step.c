// The `step` interface of tend's `plugin` world (wit/plugin.wit), on the
// bindings `wit-bindgen c` generates into plugin.h / plugin.c: turns
// stats.c's result into the contract's records.
//
// Ownership, as the generated code has it: the arguments of an export
// belong to the callee (free them), and whatever an export returns is
// freed by the generated post-return function, so every returned string
// and list is a malloc'd copy (`plugin_string_dup`), never a literal.

#include "plugin.h"
#include "stats.h"

#include <stdlib.h>
#include <string.h>

// Zeroed memory for `count` items; NULL for none (the post-return
// function frees only lists that have items).
static void *xcalloc(size_t count, size_t size) {
    if (count == 0) return NULL;
    void *p = calloc(count, size);
    if (!p) abort(); // the host reports it as out of memory
    return p;
}

void exports_tend_plugin_step_describe(exports_tend_plugin_step_plugin_info_t *ret) {
    plugin_string_dup(&ret->name, STATS_NAME);
    plugin_string_dup(&ret->version, STATS_VERSION);
    plugin_string_dup(&ret->description, STATS_DESCRIPTION);
    ret->config_schema.is_some = true;
    plugin_string_dup(&ret->config_schema.val, STATS_CONFIG_SCHEMA);
    ret->capabilities = (plugin_list_string_t){.ptr = NULL, .len = 0}; // needs no grant
}

static tend_plugin_types_severity_t severity_of(severity s) {
    switch (s) {
    case SEVERITY_INFO: return TEND_PLUGIN_TYPES_SEVERITY_INFO;
    case SEVERITY_LOW: return TEND_PLUGIN_TYPES_SEVERITY_LOW;
    case SEVERITY_MEDIUM: return TEND_PLUGIN_TYPES_SEVERITY_MEDIUM;
    case SEVERITY_HIGH: return TEND_PLUGIN_TYPES_SEVERITY_HIGH;
    case SEVERITY_CRITICAL: break;
    }
    return TEND_PLUGIN_TYPES_SEVERITY_CRITICAL;
}

bool exports_tend_plugin_step_run(exports_tend_plugin_step_step_context_t *ctx, plugin_string_t *config,
                                  plugin_string_t *input, exports_tend_plugin_step_step_output_t *ret,
                                  exports_tend_plugin_step_step_error_t *err) {
    arena *a = arena_new();
    stats_result r;
    stats_run(a, (const char *)config->ptr, config->len, (const char *)input->ptr, input->len, &r);
    tend_plugin_types_step_context_free(ctx);
    plugin_string_free(config);
    plugin_string_free(input);

    bool ok = r.status == STATS_OK;
    if (!ok) {
        err->tag = r.status == STATS_INVALID_CONFIG ? TEND_PLUGIN_TYPES_STEP_ERROR_INVALID_CONFIG
                                                    : TEND_PLUGIN_TYPES_STEP_ERROR_FAILED;
        // invalid_config and failed share the union's storage.
        plugin_string_dup(&err->val.failed, r.error);
    } else {
        plugin_string_t line;
        plugin_string_set(&line, r.summary); // borrowed: the host copies it
        tend_plugin_host_log(TEND_PLUGIN_TYPES_LOG_LEVEL_INFO, &line);

        plugin_string_dup(&ret->data, r.data);
        ret->metrics.len = r.metric_count;
        ret->metrics.ptr = xcalloc(r.metric_count, sizeof *ret->metrics.ptr);
        for (size_t i = 0; i < r.metric_count; i++) {
            tend_plugin_types_metric_t *m = &ret->metrics.ptr[i];
            plugin_string_dup(&m->name, r.metrics[i].name);
            m->value = r.metrics[i].value;
            if (r.metrics[i].resource) {
                m->labels.len = 1;
                m->labels.ptr = xcalloc(1, sizeof *m->labels.ptr);
                plugin_string_dup(&m->labels.ptr[0].f0, "resource");
                plugin_string_dup(&m->labels.ptr[0].f1, r.metrics[i].resource);
            }
        }
        ret->findings.len = r.finding_count;
        ret->findings.ptr = xcalloc(r.finding_count, sizeof *ret->findings.ptr);
        for (size_t i = 0; i < r.finding_count; i++) {
            tend_plugin_types_finding_t *f = &ret->findings.ptr[i];
            f->severity = severity_of(r.findings[i].severity);
            plugin_string_dup(&f->title, r.findings[i].title);
            plugin_string_dup(&f->detail, r.findings[i].detail);
            f->resource.is_some = r.findings[i].resource != NULL;
            if (f->resource.is_some) plugin_string_dup(&f->resource.val, r.findings[i].resource);
        }
    }
    arena_free(a);
    return ok;
}
