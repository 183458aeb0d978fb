/* test_json.c: the JSON parser and writer against hand-checked cases: RFC 8259 grammar corners, UTF-8 and
 * \uXXXX surrogate pairs (bytes from the Unicode standard's tables), depth limit, every truncation of a
 * document, inputs that are not NUL-terminated, error offsets, writer escaping, round trips, and a real
 * jsonl file from the mirror when present. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "util/json.h"
#include "tests/check.h"

static rp_json *parse(const char *s) {
    rp_json *j = NULL;
    rp_status st = rp_json_parse(s, strlen(s), &j);
    return st == RP_OK ? j : NULL;
}

/* Parse from an exact-size heap copy (no NUL after it), so ASan catches any over-read. */
static rp_status parse_exact(const char *s, size_t n, rp_json **out) {
    char *c = malloc(n ? n : 1);
    memcpy(c, s, n);
    rp_status st = rp_json_parse(c, n, out);
    free(c);
    return st;
}

static int fails_at(const char *s, size_t offset, const char *word) {
    rp_json *j = NULL;
    rp_status st = rp_json_parse(s, strlen(s), &j);
    if (st == RP_OK) { rp_json_free(j); fprintf(stderr, "  parsed but should fail: %s\n", s); return 0; }
    char want[64];
    snprintf(want, sizeof want, "offset %zu: expected", offset);
    int ok = st == RP_ERR_FORMAT && strncmp(rp_errmsg(), want, strlen(want)) == 0 && (!word || strstr(rp_errmsg(), word));
    if (!ok) fprintf(stderr, "  input %s -> %s (wanted '%s' ... %s)\n", s, rp_errmsg(), want, word ? word : "");
    return ok;
}

static void test_scalars(void) {
    rp_json *j = parse(" 42 ");
    CHECK(j && rp_json_typeof(j) == RP_JSON_NUMBER && rp_json_num(j, 0) == 42.0);
    rp_json_free(j);
    j = parse("-0");
    CHECK(j && rp_json_num(j, 1) == 0.0 && signbit(rp_json_num(j, 1)));
    rp_json_free(j);
    j = parse("[0.1, 1.5e-3, -2E+2, 1e308, 9007199254740993, 12345678901234567890, 5e-324, 1e999]");
    CHECK(j && rp_json_len(j) == 8);
    CHECK(rp_json_num(rp_json_at(j, 0), 0) == 0.1);
    CHECK(rp_json_num(rp_json_at(j, 1), 0) == 0.0015);
    CHECK(rp_json_num(rp_json_at(j, 2), 0) == -200.0);
    CHECK(rp_json_num(rp_json_at(j, 3), 0) == 1e308);
    CHECK(rp_json_num(rp_json_at(j, 4), 0) == 9007199254740992.0);   /* 2^53+1 rounds to even: 2^53 */
    CHECK(rp_json_num(rp_json_at(j, 5), 0) == 12345678901234567890.0);
    CHECK(rp_json_num(rp_json_at(j, 6), 0) == 4.9406564584124654e-324);
    CHECK(isinf(rp_json_num(rp_json_at(j, 7), 0)));
    rp_json_free(j);
    j = parse("[true,false,null]");
    CHECK(j && rp_json_bool(rp_json_at(j, 0), 0) == 1 && rp_json_bool(rp_json_at(j, 1), 1) == 0);
    CHECK(rp_json_typeof(rp_json_at(j, 2)) == RP_JSON_NULL);
    CHECK(rp_json_bool(rp_json_at(j, 2), 7) == 7);                     /* wrong type gives the fallback */
    CHECK(rp_json_num(rp_json_at(j, 0), -1) == -1);
    CHECK(strcmp(rp_json_str(rp_json_at(j, 0), "fb"), "fb") == 0);
    CHECK(rp_json_at(j, 3) == NULL);
    rp_json_free(j);
}

static void test_strings(void) {
    rp_json *j = parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    CHECK(j && strcmp(rp_json_str(j, ""), "a\"b\\c/d\b\f\n\r\t") == 0);
    rp_json_free(j);
    /* U+00E9 = C3 A9, U+20AC = E2 82 AC, U+1F600 (pair D83D DE00) = F0 9F 98 80 */
    j = parse("\"\\u00e9\\u20AC\\ud83d\\ude00\"");
    CHECK(j && strcmp(rp_json_str(j, ""), "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80") == 0);
    rp_json_free(j);
    /* raw UTF-8 passes through */
    j = parse("\"\xC3\xA9\xF0\x9F\x98\x80\"");
    CHECK(j && strcmp(rp_json_str(j, ""), "\xC3\xA9\xF0\x9F\x98\x80") == 0);
    rp_json_free(j);
    /* lone surrogates become U+FFFD (EF BF BD) */
    j = parse("[\"x\\ud800y\", \"\\udc00\", \"\\ud83d\\u0041\"]");
    CHECK(j && strcmp(rp_json_str(rp_json_at(j, 0), ""), "x\xEF\xBF\xBDy") == 0);
    CHECK(j && strcmp(rp_json_str(rp_json_at(j, 1), ""), "\xEF\xBF\xBD") == 0);
    CHECK(j && strcmp(rp_json_str(rp_json_at(j, 2), ""), "\xEF\xBF\xBD" "A") == 0);
    rp_json_free(j);
    /* embedded NUL keeps its length */
    j = parse("\"a\\u0000b\"");
    size_t n = 0;
    const char *s = rp_json_strn(j, &n);
    CHECK(j && n == 3 && s[0] == 'a' && s[1] == 0 && s[2] == 'b' && s[3] == 0);
    rp_json_free(j);
    CHECK(fails_at("\"\xC0\xAF\"", 1, "UTF-8"));            /* overlong '/' */
    CHECK(fails_at("\"\xED\xA0\x80\"", 1, "UTF-8"));        /* UTF-8-encoded surrogate */
    CHECK(fails_at("\"\xF4\x90\x80\x80\"", 1, "UTF-8"));    /* above U+10FFFF */
    CHECK(fails_at("\"ab\xE2\x82\"", 3, "UTF-8"));          /* truncated sequence */
    CHECK(fails_at("\"a\nb\"", 2, "control"));
    CHECK(fails_at("\"\\x\"", 2, "escape"));
    CHECK(fails_at("\"\\u12G4\"", 3, "hex"));
    CHECK(fails_at("\"abc", 4, "closing"));
}

static void test_containers(void) {
    rp_json *j = parse("{\"a\": {\"b\": [10, {\"c\": \"deep\"}]}, \"k\": 1, \"k\": 2, \"e\": {}, \"f\": []}");
    CHECK(j != NULL);
    CHECK(strcmp(rp_json_str(rp_json_path(j, "a.b.1.c"), ""), "deep") == 0);
    CHECK(rp_json_num(rp_json_path(j, "a.b.0"), 0) == 10);
    CHECK(rp_json_path(j, "a.b.2") == NULL && rp_json_path(j, "a.x") == NULL && rp_json_path(j, "a.b.x") == NULL);
    CHECK(rp_json_num(rp_json_get(j, "k"), 0) == 2);            /* last duplicate wins */
    CHECK(rp_json_len(j) == 5 && strcmp(rp_json_key_at(j, 0), "a") == 0 && rp_json_key_at(j, 5) == NULL);
    CHECK(rp_json_len(rp_json_get(j, "e")) == 0 && rp_json_typeof(rp_json_get(j, "e")) == RP_JSON_OBJECT);
    CHECK(rp_json_len(rp_json_get(j, "f")) == 0 && rp_json_typeof(rp_json_get(j, "f")) == RP_JSON_ARRAY);
    CHECK(rp_json_get(rp_json_get(j, "f"), "x") == NULL);
    rp_json_free(j);

    CHECK(fails_at("[1,]", 3, "value"));
    CHECK(fails_at("[1 2]", 3, "','"));
    CHECK(fails_at("{\"a\" 1}", 5, "':'"));
    CHECK(fails_at("{a:1}", 1, "string key"));
    CHECK(fails_at("{\"a\":1,}", 7, "string key"));
    CHECK(fails_at("", 0, "value"));
    CHECK(fails_at("   ", 3, "value"));
    CHECK(fails_at("01", 1, "end of input"));
    CHECK(fails_at("1.", 2, "digit"));
    CHECK(fails_at("-", 1, "digit"));
    CHECK(fails_at("1e+", 3, "digit"));
    CHECK(fails_at(".5", 0, "value"));
    CHECK(fails_at("+1", 0, "value"));
    CHECK(fails_at("tru", 0, "value"));
    CHECK(fails_at("nul", 0, "value"));
    CHECK(fails_at("NaN", 0, "value"));
    CHECK(fails_at("{} {}", 3, "end of input"));
    CHECK(fails_at("<html><body>502 Bad Gateway</body></html>", 0, "value"));
}

static void test_depth(void) {
    /* 512 nested arrays parse; 513 fail with a message, not a stack overflow; 100000 also fail */
    for (int depth = 512; depth <= 513; depth++) {
        char *s = malloc((size_t)depth * 2 + 1);
        memset(s, '[', (size_t)depth);
        memset(s + depth, ']', (size_t)depth);
        rp_json *j = NULL;
        rp_status st = parse_exact(s, (size_t)depth * 2, &j);
        if (depth == 512) CHECK(st == RP_OK && j);
        else CHECK(st == RP_ERR_FORMAT && strstr(rp_errmsg(), "offset 512: expected at most 512 nested"));
        rp_json_free(j);
        free(s);
    }
    size_t big = 100000;
    char *s = malloc(big);
    memset(s, '[', big);
    rp_json *j = NULL;
    CHECK(parse_exact(s, big, &j) == RP_ERR_FORMAT && j == NULL);
    free(s);
}

static void test_truncations(void) {
    const char *doc = "{\"id\": \"q-1\", \"text\": \"caf\\u00e9 \xF0\x9F\x98\x80 \\ud83d\\ude00\", \"scores\": [1, -2.5e3, 0.125],"
                      " \"ok\": true, \"none\": null, \"nested\": {\"a\": [[], {}]}}";
    size_t n = strlen(doc);
    rp_json *j = NULL;
    CHECK(parse_exact(doc, n, &j) == RP_OK);
    rp_json_free(j);
    int bad = 0;
    for (size_t k = 0; k < n; k++) {
        j = NULL;
        rp_status st = parse_exact(doc, k, &j);
        /* every proper prefix fails with a positioned message and returns no tree */
        if (st != RP_ERR_FORMAT || j != NULL || strncmp(rp_errmsg(), "offset ", 7) != 0) bad++;
        rp_json_free(j);
    }
    CHECK_MSG(bad == 0, "%d prefixes misparsed", bad);
}

static void test_write(void) {
    rp_json *o = rp_json_new_object();
    CHECK(rp_json_set(o, "text", rp_json_new_string("a\"b\\c\n\x01\x1f\x7f\xC3\xA9")) == RP_OK);
    CHECK(rp_json_set(o, "n", rp_json_new_number(3)) == RP_OK);
    CHECK(rp_json_set(o, "n", rp_json_new_number(0.1)) == RP_OK);        /* replaces */
    CHECK(rp_json_set(o, "inf", rp_json_new_number(INFINITY)) == RP_OK);
    CHECK(rp_json_set(o, "nan", rp_json_new_number(NAN)) == RP_OK);
    rp_json *a = rp_json_new_array();
    CHECK(rp_json_push(a, rp_json_new_bool(1)) == RP_OK);
    CHECK(rp_json_push(a, rp_json_new_null()) == RP_OK);
    CHECK(rp_json_push(a, rp_json_new_number(-1e21)) == RP_OK);
    CHECK(rp_json_push(a, rp_json_new_stringn("\xFF" "x", 2)) == RP_OK);  /* invalid UTF-8 byte */
    CHECK(rp_json_set(o, "arr", a) == RP_OK);
    CHECK(rp_json_push(o, rp_json_new_null()) == RP_ERR_INVAL);           /* push on an object: freed, error */
    CHECK(rp_json_set(a, "x", rp_json_new_null()) == RP_ERR_INVAL);
    rp_buf b = {0};
    CHECK(rp_json_write(o, &b, 0) == RP_OK);
    const char *want = "{\"text\":\"a\\\"b\\\\c\\n\\u0001\\u001f\\u007f\xC3\xA9\",\"n\":0.1,\"inf\":null,\"nan\":null,"
                       "\"arr\":[true,null,-1e+21,\"\\ufffdx\"]}";
    CHECK_MSG(strcmp(b.data, want) == 0, "%s", b.data);
    /* round trip: the compact text re-parses to the same values */
    rp_json *r = parse(b.data);
    CHECK(r && strcmp(rp_json_str(rp_json_get(r, "text"), ""), "a\"b\\c\n\x01\x1f\x7f\xC3\xA9") == 0);
    CHECK(r && rp_json_num(rp_json_get(r, "n"), 0) == 0.1);
    rp_json_free(r);
    rp_buf_clear(&b);
    CHECK(rp_json_write(a, &b, 1) == RP_OK);
    CHECK_MSG(strcmp(b.data, "[\n  true,\n  null,\n  -1e+21,\n  \"\\ufffdx\"\n]") == 0, "%s", b.data);
    rp_json_free(o);
    /* numbers that need 17 digits survive a round trip exactly */
    double vals[] = { 0.1 + 0.2, 1.0 / 3.0, 5e-324, 1.7976931348623157e308, 123456789.125, -0.0, 9007199254740993.0 * 4 };
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        rp_json *v = rp_json_new_number(vals[i]);
        rp_buf_clear(&b);
        CHECK(rp_json_write(v, &b, 0) == RP_OK);
        rp_json *back = parse(b.data);
        CHECK_MSG(back && rp_json_num(back, 1) == vals[i] && signbit(rp_json_num(back, 1)) == signbit(vals[i]),
                  "%.17g wrote %s", vals[i], b.data);
        rp_json_free(back);
        rp_json_free(v);
    }
    rp_buf_clear(&b);
    CHECK(rp_json_quote(&b, "tab\there", 8) == RP_OK && strcmp(b.data, "\"tab\\there\"") == 0);
    rp_buf_free(&b);
}

static void test_mirror_jsonl(void) {
    const char *mirror = getenv("REPRO_MIRROR");
    char path[4096];
    snprintf(path, sizeof path, "%s/boolq/boolq.jsonl", mirror ? mirror : "");
    rp_buf b = {0};
    if (!mirror || rp_read_file(path, &b) != RP_OK) { printf("skip [mirror]: %s not readable\n", path); CHECK(1); return; }
    size_t lines = 0, ok = 0, with_question = 0;
    for (char *p = b.data, *end = b.data + b.len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n) {
            lines++;
            rp_json *j = NULL;
            if (rp_json_parse(p, n, &j) == RP_OK) {
                ok++;
                if (rp_json_str(rp_json_get(j, "query"), NULL)) with_question++;
            }
            rp_json_free(j);
        }
        p += n + 1;
    }
    CHECK_MSG(lines > 0 && ok == lines && with_question == lines, "%zu lines, %zu parsed, %zu with question", lines, ok, with_question);
    rp_buf_free(&b);
}

int main(void) {
    test_scalars();
    test_strings();
    test_containers();
    test_depth();
    test_truncations();
    test_write();
    test_mirror_jsonl();
    return checks_done("json");
}
