/* fuzz_tasks.c: libFuzzer target for the task record parsers (MMLU CSV, HellaSwag text, the JSON-lines
 * formats, TruthfulQA JSON). The first byte picks the parser, the rest is the file. Invariants checked on
 * every input: a parser either succeeds with items that keep task.h's invariants (gold in range, non-empty
 * choices, a context for each choice) or fails with RP_ERR_FORMAT and a message naming the file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "eval/task.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *p = (const char *)data + 1, *path = "fuzz.in";
    size_t n = size - 1;
    rp_task *t = NULL;
    rp_status st;
    switch (data[0] % 9) {
    case 0: st = rp_tasks_parse_mmlu_csv(path, p, n, "fuzz_subject", data[0] & 0x10, &t); break;
    case 1: st = rp_tasks_parse_hellaswag(path, p, n, &t); break;
    case 2: st = rp_tasks_parse_query_jsonl("q", path, p, n, "\nAnswer:", &t); break;
    case 3: st = rp_tasks_parse_winogrande(path, p, n, &t); break;
    case 4: st = rp_tasks_parse_lambada(path, p, n, &t); break;
    case 5: st = rp_tasks_parse_truthfulqa(path, p, n, 1, &t); break;
    case 6: st = rp_tasks_parse_truthfulqa(path, p, n, 2, &t); break;
    case 7: { /* PIQA: the labels are the input's last line(s) after a NUL, if any */
        const char *nul = memchr(p, 0, n);
        size_t dl = nul ? (size_t)(nul - p) : n;
        st = rp_tasks_parse_piqa(path, p, dl, "labels.lst", nul ? nul + 1 : "", nul ? n - dl - 1 : 0, &t);
        break;
    }
    default: { /* the CSV record reader alone */
        rp_buf f = {0};
        size_t pos = 0, line = 1, starts[16];
        int nf;
        while (pos < n && rp_csv_record(path, p, n, &pos, &line, &f, starts, 16, &nf) == RP_OK)
            for (int k = 0; k < nf; k++) if (starts[k] > f.len) abort();
        rp_buf_free(&f);
        return 0;
    }
    }
    if (st != RP_OK) {
        if (st != RP_ERR_FORMAT && st != RP_ERR_NOMEM) abort();
        if (st == RP_ERR_FORMAT && !strstr(rp_errmsg(), path) && !strstr(rp_errmsg(), "labels.lst")) abort();
        return 0;
    }
    for (size_t i = 0; i < t->n_items; i++) {
        const rp_task_item *it = &t->items[i];
        if (it->n_choices < 1 || it->gold < 0 || it->gold >= it->n_choices) abort();
        for (int c = 0; c < it->n_choices; c++)
            if (!it->choices[c][0] || !rp_task_item_context(it, c)) abort();
    }
    rp_buf b = {0};
    if (t->n_items && rp_task_prefix(t, t->n_items - 1, 3, 1, &b) != RP_OK) abort();
    rp_buf_free(&b);
    rp_task_free(t);
    return 0;
}
