// See json.h.

#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- arena ----------------------------------------------------------------

typedef struct block {
    struct block *next;
    size_t used, cap;
    max_align_t data[];
} block;

struct arena {
    block *head;
};

enum { BLOCK_SIZE = 64 * 1024 };

arena *arena_new(void) {
    arena *a = calloc(1, sizeof *a);
    if (!a) abort();
    return a;
}

void *arena_alloc(arena *a, size_t size) {
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!a->head || a->head->cap - a->head->used < size) {
        size_t cap = size > BLOCK_SIZE ? size : BLOCK_SIZE;
        block *b = malloc(sizeof(block) + cap);
        if (!b) abort();
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += size;
    memset(p, 0, size);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t len) {
    char *p = arena_alloc(a, len + 1);
    memcpy(p, s, len);
    p[len] = 0;
    return p;
}

char *arena_printf(arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void arena_free(arena *a) {
    block *b = a->head;
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

// ---- reader ---------------------------------------------------------------

// Deeper nesting is refused rather than risking the step's stack.
enum { MAX_DEPTH = 128 };

typedef struct {
    arena *arena;
    const char *text;
    size_t len, pos;
    const char *error;
} parser;

static bool fail(parser *p, const char *what) {
    if (!p->error) p->error = arena_printf(p->arena, "%s at byte %zu", what, p->pos);
    return false;
}

static void skip_ws(parser *p) {
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) return fail(p, "unexpected character");
    p->pos += n;
    return true;
}

static int hex4(parser *p) {
    if (p->len - p->pos < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->text[p->pos + i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    p->pos += 4;
    return v;
}

static void put_utf8(strbuf *sb, uint32_t c) {
    char b[4];
    size_t n;
    if (c < 0x80) {
        b[0] = (char)c, n = 1;
    } else if (c < 0x800) {
        b[0] = (char)(0xC0 | c >> 6), b[1] = (char)(0x80 | (c & 0x3F)), n = 2;
    } else if (c < 0x10000) {
        b[0] = (char)(0xE0 | c >> 12), b[1] = (char)(0x80 | (c >> 6 & 0x3F)), b[2] = (char)(0x80 | (c & 0x3F)), n = 3;
    } else {
        b[0] = (char)(0xF0 | c >> 18), b[1] = (char)(0x80 | (c >> 12 & 0x3F)), b[2] = (char)(0x80 | (c >> 6 & 0x3F));
        b[3] = (char)(0x80 | (c & 0x3F)), n = 4;
    }
    sb_raw(sb, b, n);
}

// A string literal; p->pos is at its opening quote.
static bool parse_string(parser *p, const char **out, size_t *out_len) {
    p->pos++;
    strbuf sb;
    sb_init(&sb, p->arena);
    for (;;) {
        if (p->pos >= p->len) return fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c == '"') break;
        if (c < 0x20) return fail(p, "control character in string");
        if (c != '\\') {
            size_t start = p->pos;
            while (p->pos < p->len && p->text[p->pos] != '"' && p->text[p->pos] != '\\' &&
                   (unsigned char)p->text[p->pos] >= 0x20)
                p->pos++;
            sb_raw(&sb, p->text + start, p->pos - start);
            continue;
        }
        p->pos++;
        if (p->pos >= p->len) return fail(p, "unterminated string");
        char e = p->text[p->pos++];
        switch (e) {
        case '"': sb_raw(&sb, "\"", 1); break;
        case '\\': sb_raw(&sb, "\\", 1); break;
        case '/': sb_raw(&sb, "/", 1); break;
        case 'b': sb_raw(&sb, "\b", 1); break;
        case 'f': sb_raw(&sb, "\f", 1); break;
        case 'n': sb_raw(&sb, "\n", 1); break;
        case 'r': sb_raw(&sb, "\r", 1); break;
        case 't': sb_raw(&sb, "\t", 1); break;
        case 'u': {
            int u = hex4(p);
            if (u < 0) return fail(p, "bad \\u escape");
            uint32_t cp = (uint32_t)u;
            if (u >= 0xD800 && u < 0xDC00 && p->len - p->pos >= 6 && p->text[p->pos] == '\\' &&
                p->text[p->pos + 1] == 'u') {
                p->pos += 2;
                int lo = hex4(p);
                if (lo < 0xDC00 || lo >= 0xE000) return fail(p, "unpaired surrogate in \\u escape");
                cp = 0x10000 + (((uint32_t)u - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            } else if (u >= 0xD800 && u < 0xE000) {
                return fail(p, "unpaired surrogate in \\u escape");
            }
            put_utf8(&sb, cp);
            break;
        }
        default: p->pos--; return fail(p, "bad escape in string");
        }
    }
    p->pos++;
    *out = sb_text(&sb);
    *out_len = sb.len;
    return true;
}

static bool parse_number(parser *p, double *out) {
    size_t start = p->pos;
    if (p->text[p->pos] == '-') p->pos++;
    size_t digits = p->pos;
    while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') p->pos++;
    if (p->pos == digits || (p->text[digits] == '0' && p->pos - digits > 1)) return fail(p, "bad number");
    if (p->pos < p->len && p->text[p->pos] == '.') {
        size_t frac = ++p->pos;
        while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') p->pos++;
        if (p->pos == frac) return fail(p, "bad number");
    }
    if (p->pos < p->len && (p->text[p->pos] == 'e' || p->text[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->len && (p->text[p->pos] == '+' || p->text[p->pos] == '-')) p->pos++;
        size_t exp = p->pos;
        while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') p->pos++;
        if (p->pos == exp) return fail(p, "bad number");
    }
    // strtod needs a NUL-terminated copy: the text is not.
    char *copy = arena_strndup(p->arena, p->text + start, p->pos - start);
    *out = strtod(copy, NULL);
    return true;
}

static bool parse_value(parser *p, json **out, int depth);

// An array or object; p->pos is at its opening bracket.
static bool parse_container(parser *p, json *v, int depth) {
    bool object = p->text[p->pos] == '{';
    char close = object ? '}' : ']';
    if (depth >= MAX_DEPTH) return fail(p, "nested deeper than 128 levels");
    p->pos++;
    size_t cap = 0;
    skip_ws(p);
    if (p->pos < p->len && p->text[p->pos] == close) {
        p->pos++;
        return true;
    }
    for (;;) {
        if (v->len == cap) {
            cap = cap ? cap * 2 : 8;
            json **items = arena_alloc(p->arena, cap * sizeof *items);
            if (v->len) memcpy(items, v->items, v->len * sizeof *items);
            v->items = items;
            if (object) {
                const char **keys = arena_alloc(p->arena, cap * sizeof *keys);
                if (v->len) memcpy(keys, v->keys, v->len * sizeof *keys);
                v->keys = keys;
            }
        }
        skip_ws(p);
        if (object) {
            size_t key_len;
            if (p->pos >= p->len || p->text[p->pos] != '"') return fail(p, "expected a string key");
            if (!parse_string(p, &v->keys[v->len], &key_len)) return false;
            skip_ws(p);
            if (p->pos >= p->len || p->text[p->pos] != ':') return fail(p, "expected ':'");
            p->pos++;
        }
        if (!parse_value(p, &v->items[v->len], depth + 1)) return false;
        v->len++;
        skip_ws(p);
        if (p->pos < p->len && p->text[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->text[p->pos] == close) {
            p->pos++;
            return true;
        }
        return fail(p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool parse_value(parser *p, json **out, int depth) {
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "unexpected end of text");
    json *v = arena_alloc(p->arena, sizeof *v);
    *out = v;
    char c = p->text[p->pos];
    switch (c) {
    case 'n': v->kind = JSON_NULL; return literal(p, "null");
    case 't': v->kind = JSON_BOOL, v->boolean = true; return literal(p, "true");
    case 'f': v->kind = JSON_BOOL; return literal(p, "false");
    case '"': v->kind = JSON_STRING; return parse_string(p, &v->str, &v->len);
    case '[': v->kind = JSON_ARRAY; return parse_container(p, v, depth);
    case '{': v->kind = JSON_OBJECT; return parse_container(p, v, depth);
    default:
        if (c == '-' || (c >= '0' && c <= '9')) {
            v->kind = JSON_NUMBER;
            return parse_number(p, &v->number);
        }
        return fail(p, "unexpected character");
    }
}

const char *json_parse(arena *a, const char *text, size_t len, json **out) {
    parser p = {.arena = a, .text = text, .len = len};
    if (!parse_value(&p, out, 0)) return p.error;
    skip_ws(&p);
    if (p.pos != p.len) {
        fail(&p, "unexpected text after the value");
        return p.error;
    }
    return NULL;
}

const json *json_get(const json *obj, const char *key) {
    if (!obj || obj->kind != JSON_OBJECT) return NULL;
    // The last one wins, as in most JSON readers.
    for (size_t i = obj->len; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0) return obj->items[i];
    return NULL;
}

const char *json_kind_name(const json *v) {
    switch (v->kind) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return v->boolean ? "true" : "false";
    case JSON_NUMBER: return "a number";
    case JSON_STRING: return "a string";
    case JSON_ARRAY: return "a list";
    case JSON_OBJECT: return "an object";
    }
    return "?";
}

const char *json_describe(arena *a, const json *v) {
    strbuf sb;
    sb_init(&sb, a);
    switch (v->kind) {
    case JSON_NUMBER: sb_number(&sb, v->number); break;
    case JSON_STRING: {
        enum { MAX = 60 };
        if (v->len <= MAX) {
            sb_json_string(&sb, v->str, v->len);
        } else {
            size_t cut = MAX;
            while (cut > 0 && ((unsigned char)v->str[cut] & 0xC0) == 0x80) cut--; // keep UTF-8 whole
            sb_json_string(&sb, v->str, cut);
            sb_str(&sb, "...");
        }
        break;
    }
    case JSON_ARRAY: sb_printf(&sb, "a list of %zu", v->len); break;
    default: sb_str(&sb, json_kind_name(v)); break;
    }
    return sb_text(&sb);
}

// ---- writer ---------------------------------------------------------------

void sb_init(strbuf *sb, arena *a) {
    *sb = (strbuf){.arena = a};
    sb->cap = 64;
    sb->buf = arena_alloc(a, sb->cap);
}

static void sb_reserve(strbuf *sb, size_t more) {
    if (sb->len + more + 1 <= sb->cap) return;
    size_t cap = sb->cap * 2;
    while (cap < sb->len + more + 1) cap *= 2;
    char *buf = arena_alloc(sb->arena, cap);
    memcpy(buf, sb->buf, sb->len);
    sb->buf = buf;
    sb->cap = cap;
}

void sb_raw(strbuf *sb, const char *s, size_t len) {
    sb_reserve(sb, len);
    memcpy(sb->buf + sb->len, s, len);
    sb->len += len;
    sb->buf[sb->len] = 0;
}

void sb_str(strbuf *sb, const char *s) { sb_raw(sb, s, strlen(s)); }

void sb_printf(strbuf *sb, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    sb_reserve(sb, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

void sb_json_string(strbuf *sb, const char *s, size_t len) {
    sb_raw(sb, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        sb_raw(sb, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '"': sb_raw(sb, "\\\"", 2); break;
        case '\\': sb_raw(sb, "\\\\", 2); break;
        case '\n': sb_raw(sb, "\\n", 2); break;
        case '\r': sb_raw(sb, "\\r", 2); break;
        case '\t': sb_raw(sb, "\\t", 2); break;
        default: sb_printf(sb, "\\u%04x", c); break;
        }
    }
    sb_raw(sb, s + start, len - start);
    sb_raw(sb, "\"", 1);
}

void sb_number(strbuf *sb, double x) { sb_number_digits(sb, x, 17); }

void sb_number_digits(strbuf *sb, double x, int digits) {
    if (!isfinite(x)) {
        sb_str(sb, "null");
        return;
    }
    if (x == 0) x = 0; // no "-0"
    char b[40];
    int precision = 1;
    if (digits < 17) {
        snprintf(b, sizeof b, "%.*g", digits, x);
        x = strtod(b, NULL);
    }
    for (; precision < 17; precision++) {
        snprintf(b, sizeof b, "%.*g", precision, x);
        if (strtod(b, NULL) == x) break;
    }
    // %g switches to an exponent once the exponent reaches the precision
    // (900 is "9e+02" at precision 1): write digits up to 1e17 in full.
    int exponent = x == 0 ? 0 : (int)floor(log10(fabs(x)));
    if (exponent >= precision && exponent < 17) precision = exponent + 1;
    snprintf(b, sizeof b, "%.*g", precision, x);
    sb_str(sb, b);
}

const char *sb_text(strbuf *sb) { return sb->buf; }
