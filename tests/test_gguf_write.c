/* test_gguf_write.c: the GGUF writer round trip (write -> our reader -> the same metadata and tensors): every
 * scalar type, strings, fixed-size and string arrays, tensors of stored types f32, f16, q8_0 and q4_1 (raw
 * blocks), a caller-set alignment; metadata copied from a read file keeps types and values; a key set twice
 * keeps its place with the new value; bad input (byte counts, duplicate names, dims, alignment, an unwritable
 * path) is an error naming the problem and leaves no file behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "model/gguf_write.h"
#include "model/model_file.h"
#include "../tests/check.h"

static void fill(uint8_t *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) { seed = seed * 1103515245u + 12345u; p[i] = (uint8_t)(seed >> 16); }
}

static void test_round_trip(const char *path) {
    rp_gguf_writer *w = rp_gguf_writer_new();
    CHECK(w != NULL);
    CHECK(rp_gguf_writer_set_string(w, "general.architecture", "llama", 5) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.u8", RP_GGUF_U8, 200) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.i8", RP_GGUF_I8, -100) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.u16", RP_GGUF_U16, 65000) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.i16", RP_GGUF_I16, -30000) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.u32", RP_GGUF_U32, 4000000000ll) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.i32", RP_GGUF_I32, -2000000000ll) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.u64", RP_GGUF_U64, 1ll << 40) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.i64", RP_GGUF_I64, -(1ll << 40)) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.bool", RP_GGUF_BOOL, 1) == RP_OK);
    CHECK(rp_gguf_writer_set_float(w, "t.f32", RP_GGUF_F32, 0.25) == RP_OK);
    CHECK(rp_gguf_writer_set_float(w, "t.f64", RP_GGUF_F64, 1e-300) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.replaced", RP_GGUF_U32, 1) == RP_OK);
    float fa[3] = {1.5f, -2.0f, 3.25f};
    int32_t ia[4] = {7, -8, 9, 10};
    CHECK(rp_gguf_writer_set_array(w, "t.farr", RP_GGUF_F32, fa, 3) == RP_OK);
    CHECK(rp_gguf_writer_set_array(w, "t.iarr", RP_GGUF_I32, ia, 4) == RP_OK);
    const char *strs[3] = {"a", "", "hello world"};
    size_t lens[3] = {1, 0, 11};
    CHECK(rp_gguf_writer_set_string_array(w, "t.sarr", strs, lens, 3) == RP_OK);
    CHECK(rp_gguf_writer_set_int(w, "t.replaced", RP_GGUF_U32, 42) == RP_OK);   /* in place */
    CHECK(rp_gguf_writer_set_int(w, "general.alignment", RP_GGUF_U32, 64) == RP_OK);

    float t0[5] = {1, 2, 3, 4, 5};                 /* f32 [5] */
    uint16_t t1[2 * 8];                             /* f16 [2, 8] */
    uint8_t t2[3 * 34], t3[2 * 2 * 20];             /* q8_0 [3, 32]; q4_1 [2, 2, 32] */
    fill((uint8_t *)t1, sizeof t1, 1); fill(t2, sizeof t2, 2); fill(t3, sizeof t3, 3);
    int64_t s0[1] = {5}, s1[2] = {2, 8}, s2[2] = {3, 32}, s3[3] = {2, 2, 32};
    CHECK(rp_gguf_writer_add_tensor(w, "blk.0.a", RP_F32, 1, s0, t0, sizeof t0) == RP_OK);
    CHECK(rp_gguf_writer_add_tensor(w, "blk.0.b", RP_F16, 2, s1, t1, sizeof t1) == RP_OK);
    CHECK(rp_gguf_writer_add_tensor(w, "c", RP_Q8_0, 2, s2, t2, sizeof t2) == RP_OK);
    CHECK(rp_gguf_writer_add_tensor(w, "d", RP_Q4_1, 3, s3, t3, sizeof t3) == RP_OK);
    /* bad input */
    CHECK(rp_gguf_writer_add_tensor(w, "c", RP_F32, 1, s0, t0, sizeof t0) != RP_OK && strstr(rp_errmsg(), "added twice"));
    CHECK(rp_gguf_writer_add_tensor(w, "e", RP_F32, 1, s0, t0, 4) != RP_OK && strstr(rp_errmsg(), "needs 20"));
    int64_t bad[1] = {33};
    CHECK(rp_gguf_writer_add_tensor(w, "e", RP_Q8_0, 1, bad, t2, 34) != RP_OK && strstr(rp_errmsg(), "block size"));
    CHECK(rp_gguf_writer_add_tensor(w, "e", RP_F32, 5, s0, t0, sizeof t0) != RP_OK && strstr(rp_errmsg(), "dimensions"));
    CHECK(rp_gguf_writer_set_int(w, "t.bad", RP_GGUF_U8, 300) != RP_OK && strstr(rp_errmsg(), "t.bad"));
    CHECK(rp_gguf_writer_set_array(w, "t.bad", RP_GGUF_STRING, strs, 1) != RP_OK);
    CHECK(rp_gguf_writer_write(w, path) == RP_OK);
    rp_gguf_writer_free(w);

    rp_model_file *f = NULL;
    rp_status st = rp_model_file_open(path, &f);
    CHECK_MSG(st == RP_OK, "%s", rp_errmsg());
    if (st != RP_OK) return;
    int64_t iv;
    double fv;
    CHECK(strcmp(rp_model_file_meta_string(f, "general.architecture"), "llama") == 0);
    CHECK(rp_model_file_meta_int(f, "t.u8", &iv) && iv == 200);
    CHECK(rp_model_file_meta_int(f, "t.i8", &iv) && iv == -100);
    CHECK(rp_model_file_meta_int(f, "t.u16", &iv) && iv == 65000);
    CHECK(rp_model_file_meta_int(f, "t.i16", &iv) && iv == -30000);
    CHECK(rp_model_file_meta_int(f, "t.u32", &iv) && iv == 4000000000ll);
    CHECK(rp_model_file_meta_int(f, "t.i32", &iv) && iv == -2000000000ll);
    CHECK(rp_model_file_meta_int(f, "t.u64", &iv) && iv == (1ll << 40));
    CHECK(rp_model_file_meta_int(f, "t.i64", &iv) && iv == -(1ll << 40));
    CHECK(rp_model_file_meta_type(f, "t.bool") == RP_META_BOOL && rp_model_file_meta_int(f, "t.bool", &iv) && iv == 1);
    CHECK(rp_model_file_meta_float(f, "t.f32", &fv) && fv == 0.25);
    CHECK(rp_model_file_meta_float(f, "t.f64", &fv) && fv == 1e-300);
    CHECK(rp_model_file_meta_int(f, "t.replaced", &iv) && iv == 42);
    CHECK(rp_model_file_n_meta(f) == 17);
    CHECK(strcmp(rp_model_file_meta_key_at(f, 12), "t.replaced") == 0);   /* kept its place */
    CHECK(rp_model_file_meta_array_len(f, "t.farr") == 3 && rp_model_file_meta_array_float(f, "t.farr", 2, &fv) && fv == 3.25);
    CHECK(rp_model_file_meta_array_len(f, "t.iarr") == 4 && rp_model_file_meta_array_int(f, "t.iarr", 1, &iv) && iv == -8);
    size_t len;
    const char *s = rp_model_file_meta_array_string(f, "t.sarr", 2, &len);
    CHECK(s && len == 11 && memcmp(s, "hello world", 11) == 0);
    CHECK(rp_model_file_meta_array_string(f, "t.sarr", 1, &len) && len == 0);
    CHECK(rp_model_file_n_weights(f) == 4);
    const void *datas[4] = {t0, t1, t2, t3};
    const size_t sizes[4] = {sizeof t0, sizeof t1, sizeof t2, sizeof t3};
    const char *names[4] = {"blk.0.a", "blk.0.b", "c", "d"};
    const rp_dtype dts[4] = {RP_F32, RP_F16, RP_Q8_0, RP_Q4_1};
    const int nds[4] = {1, 2, 2, 3};
    const int64_t *shapes[4] = {s0, s1, s2, s3};
    for (int i = 0; i < 4; i++) {
        const rp_weight *wt = rp_model_file_weight(f, names[i]);
        CHECK_MSG(wt && wt->dtype == dts[i] && wt->ndim == nds[i] && wt->nbytes == sizes[i], "tensor %s", names[i]);
        if (!wt) continue;
        CHECK(memcmp(wt->shape, shapes[i], (size_t)nds[i] * sizeof(int64_t)) == 0);
        CHECK_MSG(memcmp(wt->data, datas[i], sizes[i]) == 0, "tensor %s bytes", names[i]);
        CHECK_MSG(((uintptr_t)wt->data - (uintptr_t)rp_model_file_weight_at(f, 0)->data) % 64 == 0, "tensor %s alignment", names[i]);
    }

    /* copying metadata from the read file keeps types and values */
    rp_gguf_writer *w2 = rp_gguf_writer_new();
    for (int i = 0; i < rp_model_file_n_meta(f); i++) CHECK(rp_gguf_writer_copy_meta(w2, f, rp_model_file_meta_key_at(f, i)) == RP_OK);
    CHECK(rp_gguf_writer_copy_meta(w2, f, "no.such.key") == RP_ERR_NOTFOUND);
    CHECK(rp_gguf_writer_remove(w2, "t.i8") == 1 && rp_gguf_writer_remove(w2, "t.i8") == 0);
    char path2[700];
    snprintf(path2, sizeof path2, "%s.copy", path);
    CHECK(rp_gguf_writer_write(w2, path2) == RP_OK);
    rp_gguf_writer_free(w2);
    rp_model_file *g = NULL;
    CHECK(rp_model_file_open(path2, &g) == RP_OK);
    if (g) {
        CHECK(rp_model_file_n_meta(g) == 16 && rp_model_file_n_weights(g) == 0);
        CHECK(rp_model_file_meta_int(g, "t.u32", &iv) && iv == 4000000000ll);
        CHECK(rp_model_file_meta_float(g, "t.f64", &fv) && fv == 1e-300);
        s = rp_model_file_meta_array_string(g, "t.sarr", 2, &len);
        CHECK(s && len == 11 && memcmp(s, "hello world", 11) == 0);
        CHECK(rp_model_file_meta_array_int(g, "t.iarr", 3, &iv) && iv == 10);
    }
    rp_model_file_free(g);
    rp_model_file_free(f);
    unlink(path2);
}

static void test_failures(const char *dir) {
    rp_gguf_writer *w = rp_gguf_writer_new();
    CHECK(rp_gguf_writer_set_int(w, "general.alignment", RP_GGUF_U32, 48) == RP_OK);
    char p[600];
    snprintf(p, sizeof p, "%s/bad_align.gguf", dir);
    CHECK(rp_gguf_writer_write(w, p) != RP_OK && strstr(rp_errmsg(), "power of two"));
    CHECK(access(p, F_OK) != 0);
    CHECK(rp_gguf_writer_set_int(w, "general.alignment", RP_GGUF_U32, 32) == RP_OK);
    CHECK(rp_gguf_writer_write(w, "/nonexistent-dir/x.gguf") == RP_ERR_IO && strstr(rp_errmsg(), "/nonexistent-dir/x.gguf.tmp"));
    rp_gguf_writer_free(w);
}

int main(void) {
    char dir[] = "/tmp/rp_gguf_write_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    char path[600];
    snprintf(path, sizeof path, "%s/rt.gguf", dir);
    test_round_trip(path);
    test_failures(dir);
    unlink(path);
    rmdir(dir);
    return checks_done("test_gguf_write");
}
