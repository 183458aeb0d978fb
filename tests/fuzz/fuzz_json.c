/* fuzz_json.c: libFuzzer target for the JSON parser and writer. Invariants checked on every input: parsing
 * never reads past the input, fails with an "offset N: expected" message or succeeds, and a parsed tree
 * written compactly parses again to a text that writes identically (write is a fixed point). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "util/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rp_json *j = NULL;
    if (rp_json_parse((const char *)data, size, &j) != RP_OK) {
        if (strncmp(rp_errmsg(), "offset ", 7) != 0 && strncmp(rp_errmsg(), "json: out of memory", 19) != 0) abort();
        return 0;
    }
    rp_buf a = {0}, b = {0};
    if (rp_json_write(j, &a, 0) == RP_OK) {
        rp_json *k = NULL;
        if (rp_json_parse(a.data, a.len, &k) != RP_OK) abort();
        if (rp_json_write(k, &b, 0) != RP_OK || a.len != b.len || memcmp(a.data, b.data, a.len) != 0) abort();
        rp_json_free(k);
        rp_buf_clear(&b);
        if (rp_json_write(j, &b, 1) != RP_OK) abort();
    }
    rp_buf_free(&a);
    rp_buf_free(&b);
    rp_json_free(j);
    return 0;
}
