/* fuzz_safe_parse.c: every SAFE output parser and the sentence splitter on arbitrary bytes; the first byte
 * picks nothing (all run on every input), so one corpus covers them all; the Serper and chat-completion
 * response parsers run on the same bytes. Invariants checked: parsers never
 * read past the input, returned items are NUL-terminated and no longer than the input, labels are valid. */
#include "plugins/safe/safe_text.h"
#include "plugins/safe/safe.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* copy into an exact-size allocation so ASan catches any read past the end */
    char *t = malloc(size ? size : 1);
    if (!t) return 0;
    if (size) memcpy(t, data, size);
    rp_safe_strlist l = {0};
    if (rp_safe_split_sentences(t, size, 1, &l) == RP_OK)
        for (size_t i = 0; i < l.n; i++) if (strlen(l.items[i]) > size) abort();
    rp_safe_strlist_free(&l);
    if (rp_safe_parse_facts(t, size, &l) == RP_OK)
        for (size_t i = 0; i < l.n; i++) if (strlen(l.items[i]) > size) abort();
    rp_safe_strlist_free(&l);
    rp_buf b = {0};
    int found = 0;
    if (rp_safe_parse_code_block(t, size, &b, &found) == RP_OK && found && (b.len == 0 || b.len > size)) abort();
    if (rp_safe_parse_bracket(t, size, &b, &found) == RP_OK && found && b.len > size) abort();
    rp_buf_free(&b);
    rp_safe_label a = rp_safe_parse_relevance(t, size), r = rp_safe_parse_rating(t, size);
    if (a != RP_SAFE_UNPARSED && a != RP_SAFE_RELEVANT && a != RP_SAFE_IRRELEVANT) abort();
    if (r != RP_SAFE_UNPARSED && r != RP_SAFE_SUPPORTED && r != RP_SAFE_NOT_SUPPORTED) abort();
    /* the HTTP response parsers (untrusted bodies): Serper results and chat completions */
    rp_buf o = {0};
    if (rp_safe_serper_parse(t, size, 3, &o) == RP_OK && o.len == 0) abort();
    rp_buf_free(&o);
    rp_safe_call c = {0};
    if (rp_safe_openai_parse(t, size, &c) == RP_OK && !c.text.data) abort();
    rp_buf_free(&c.text);
    free(t);
    return 0;
}
