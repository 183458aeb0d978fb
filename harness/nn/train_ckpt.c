/* train_ckpt.c: trainer checkpoints: the trainable tensors (all weights for full training, the adapters for
 * LoRA) with their AdamW moments and the step count, so that a resumed run repeats the uninterrupted one.
 * Layout (little-endian): "RPTRAIN1", u64 step, u32 tensor count, then per tensor u16 name length, the
 * name, i64 length n, and n f32 values, n f32 first moments, n f32 second moments.
 * rp_trainer_reset_optimizer drops the optimizer state (moments, step) and keeps the weights.
 * Invariants: a save goes to path.tmp and is renamed over path, so a crash never leaves half a checkpoint;
 * a load checks every name, length and the file size before it writes anything into the trainer. */
#include <stdio.h>
#include <string.h>
#include "nn/train_impl.h"

static const char MAGIC[8] = { 'R', 'P', 'T', 'R', 'A', 'I', 'N', '1' };

/* Save trainable tensors, moments and step. */
rp_status rp_trainer_save(const rp_trainer *tr, const char *path) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return rp_fail(RP_ERR_INVAL, "checkpoint: path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return rp_fail(RP_ERR_IO, "checkpoint: cannot write %s", tmp);
    uint64_t step = (uint64_t)tr->step;
    uint32_t np = (uint32_t)tr->n_params;
    int ok = fwrite(MAGIC, 8, 1, f) == 1 && fwrite(&step, 8, 1, f) == 1 && fwrite(&np, 4, 1, f) == 1;
    for (int i = 0; ok && i < tr->n_params; i++) {
        const tr_param *q = &tr->params[i];
        uint16_t len = (uint16_t)strlen(q->name);
        int64_t n = q->n;
        ok = fwrite(&len, 2, 1, f) == 1 && fwrite(q->name, len, 1, f) == 1 && fwrite(&n, 8, 1, f) == 1 &&
             fwrite(q->p, sizeof(float), (size_t)n, f) == (size_t)n && fwrite(q->m, sizeof(float), (size_t)n, f) == (size_t)n &&
             fwrite(q->v, sizeof(float), (size_t)n, f) == (size_t)n;
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return rp_fail(RP_ERR_IO, "checkpoint: writing %s failed", path);
    }
    return RP_OK;
}

/* Check the file against the trainer's tensors (pass 0) or read the values in (pass 1). */
static rp_status load_pass(rp_trainer *tr, FILE *f, const char *path, int pass, uint64_t *step) {
    char magic[8];
    uint32_t np;
    if (fread(magic, 8, 1, f) != 1 || memcmp(magic, MAGIC, 8)) return rp_fail(RP_ERR_FORMAT, "%s: not a repro training checkpoint", path);
    if (fread(step, 8, 1, f) != 1 || fread(&np, 4, 1, f) != 1) return rp_fail(RP_ERR_FORMAT, "%s: truncated header", path);
    if (np != (uint32_t)tr->n_params)
        return rp_fail(RP_ERR_FORMAT, "%s: %u tensors, the trainer has %d (another method, rank or targets?)", path, np, tr->n_params);
    for (int i = 0; i < tr->n_params; i++) {
        tr_param *q = &tr->params[i];
        uint16_t len;
        char name[sizeof q->name];
        int64_t n;
        if (fread(&len, 2, 1, f) != 1 || len >= sizeof name || fread(name, len, 1, f) != 1 || fread(&n, 8, 1, f) != 1)
            return rp_fail(RP_ERR_FORMAT, "%s: tensor %d: truncated or overlong name", path, i);
        name[len] = 0;
        if (strcmp(name, q->name)) return rp_fail(RP_ERR_FORMAT, "%s: tensor %d is %s, the trainer expects %s", path, i, name, q->name);
        if (n != q->n)
            return rp_fail(RP_ERR_FORMAT, "%s: tensor %s has %lld values, the trainer's has %lld", path, name, (long long)n, (long long)q->n);
        if (pass == 0) {
            if (fseek(f, (long)(3 * n * (int64_t)sizeof(float)), SEEK_CUR) != 0) return rp_fail(RP_ERR_FORMAT, "%s: tensor %s truncated", path, name);
        } else if (fread(q->p, sizeof(float), (size_t)n, f) != (size_t)n || fread(q->m, sizeof(float), (size_t)n, f) != (size_t)n ||
                   fread(q->v, sizeof(float), (size_t)n, f) != (size_t)n) {
            return rp_fail(RP_ERR_IO, "%s: reading tensor %s failed", path, name);
        }
    }
    if (pass == 0) {
        long here = ftell(f);
        if (fseek(f, 0, SEEK_END) != 0 || ftell(f) != here)
            return rp_fail(RP_ERR_FORMAT, "%s: size %ld, the tensors end at %ld (truncated or trailing bytes)", path, ftell(f), here);
    }
    return RP_OK;
}

/* Load a checkpoint after validating all of it. */
rp_status rp_trainer_load(rp_trainer *tr, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return rp_fail(RP_ERR_IO, "checkpoint: cannot open %s", path);
    uint64_t step;
    rp_status st = load_pass(tr, f, path, 0, &step);
    if (st == RP_OK) { rewind(f); st = load_pass(tr, f, path, 1, &step); }
    fclose(f);
    RP_TRY(st);
    tr->step = (int64_t)step;
    rp_trainer_zero_grad(tr);
    return RP_OK;
}

/* Zero the AdamW moments and the step count, keeping the weights: the next update is a fresh optimizer's first. */
void rp_trainer_reset_optimizer(rp_trainer *tr) {
    for (int i = 0; i < tr->n_params; i++) {
        const tr_param *q = &tr->params[i];
        memset(q->m, 0, (size_t)q->n * sizeof *q->m);
        memset(q->v, 0, (size_t)q->n * sizeof *q->v);
    }
    tr->step = 0;
    rp_trainer_zero_grad(tr);
}
