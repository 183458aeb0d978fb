/* fuzz_sdpo_pref.c: the sDPO preference-record parsers (plugins/sdpo/pref_data.c) on arbitrary bytes; the first
 * byte picks the format (ultrafeedback, orca, hh), the rest is the JSONL text. Invariants checked: parsing
 * never reads past the input, and every pair it returns has a prompt ending in a user turn and responses
 * no longer than the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "plugins/sdpo/sdpo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    rp_pref_format fmt = (rp_pref_format)(data[0] % 3);
    size_t n = size - 1;
    char *t = malloc(n ? n : 1);   /* exact size so ASan catches any read past the end */
    if (!t) return 0;
    if (n) memcpy(t, data + 1, n);
    rp_pref_set s = { 0 };
    rp_pref_parse(t, n, fmt, "fuzz", &s);
    for (size_t i = 0; i < s.n; i++) {
        const rp_pref_pair *p = &s.pairs[i];
        if (p->n_msgs < 1 || strcmp(p->msgs[p->n_msgs - 1].role, "user")) abort();
        if (strlen(p->chosen) > n || strlen(p->rejected) > n) abort();
    }
    rp_pref_set_free(&s);
    free(t);
    return 0;
}
