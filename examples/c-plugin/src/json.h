// A small JSON reader and writer for the `stats` plugin: tend hands a step
// its config and input as JSON text and takes its output data as JSON text.
//
// Every value the reader makes lives in one arena; `arena_free` releases
// them all at once at the end of a call. Strings are NUL-terminated UTF-8
// (`\u` escapes decoded, surrogate pairs included) with their length kept,
// since JSON strings may hold NUL.

#ifndef STATS_JSON_H
#define STATS_JSON_H

#include <stdbool.h>
#include <stddef.h>

// ---- arena ----------------------------------------------------------------

// Memory that is freed all at once.
typedef struct arena arena;

arena *arena_new(void);
// Zeroed memory, or aborts when the step's memory limit is reached (the
// host reports the trap as out of memory).
void *arena_alloc(arena *a, size_t size);
char *arena_strndup(arena *a, const char *s, size_t len);
// A string made like printf's.
char *arena_printf(arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_free(arena *a);

// ---- values ---------------------------------------------------------------

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
} json_kind;

typedef struct json json;

struct json {
    json_kind kind;
    bool boolean;      // JSON_BOOL
    double number;     // JSON_NUMBER
    const char *str;   // JSON_STRING (NUL-terminated)
    size_t len;        // JSON_STRING: bytes; JSON_ARRAY, JSON_OBJECT: items
    json **items;      // JSON_ARRAY, JSON_OBJECT: the values
    const char **keys; // JSON_OBJECT: the keys, in document order
};

// Parses `len` bytes of JSON text into `*out`. Returns NULL, or a message
// saying what is wrong and at which byte offset.
const char *json_parse(arena *a, const char *text, size_t len, json **out);

// The value of `key` in an object, or NULL (also when `obj` is not an object).
const json *json_get(const json *obj, const char *key);

// What a value is, for messages: "null", "true", "a number", "a string", ...
const char *json_kind_name(const json *v);

// A short rendering of a value for messages: the JSON text of a number,
// boolean, null or string (quoted, cut after 60 bytes), "a list of N" or
// "an object".
const char *json_describe(arena *a, const json *v);

// ---- writer ---------------------------------------------------------------

// A growing byte buffer, allocated in an arena.
typedef struct {
    arena *arena;
    char *buf;
    size_t len;
    size_t cap;
} strbuf;

void sb_init(strbuf *sb, arena *a);
void sb_raw(strbuf *sb, const char *s, size_t len);
void sb_str(strbuf *sb, const char *s);
void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// A JSON string literal, escaped.
void sb_json_string(strbuf *sb, const char *s, size_t len);
// A number in its shortest form that reads back as the same double
// ("97.5", "80", "1e+21"); `null` for NaN and infinities, which JSON lacks.
void sb_number(strbuf *sb, double x);
// The same, rounded to `digits` significant digits first (for people:
// 774 rather than 773.9999999999998).
void sb_number_digits(strbuf *sb, double x, int digits);
// The NUL-terminated text written so far.
const char *sb_text(strbuf *sb);

#endif
