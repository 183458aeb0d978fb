/* test_cpu_memory.c: the CPU backend's host memory (rp_cpu_alloc / rp_cpu_free): every size comes back
 * 64-byte aligned, zero-filled and writable, through both paths (malloc below 2 MiB, mapped pages from 2 MiB
 * on), and an impossible size is NULL. That freed big tensors leave resident memory flat is checked where the
 * pattern that fragmented glibc's heap arises, through Lua (tests/tensor_test.lua). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensor/backend.h"
#include "tensor/ops_ref.h"
#include "../tests/check.h"

static void test_sizes(void) {
    const size_t sizes[] = { 0, 1, 63, 64, 65, 4096, ((size_t)2 << 20) - 128, (size_t)2 << 20, ((size_t)2 << 20) + 1, (size_t)9 << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        unsigned char *p = rp_cpu_alloc(NULL, n);
        CHECK_MSG(p != NULL, "%zu bytes", n);
        if (!p) continue;
        CHECK_MSG(((uintptr_t)p & 63) == 0, "%zu bytes: 64-byte aligned", n);
        int zero = 1;
        for (size_t k = 0; k < n; k++) zero &= p[k] == 0;
        CHECK_MSG(zero, "%zu bytes: zero-filled", n);
        memset(p, 0xab, n ? n : 1);
        rp_cpu_free(NULL, p);
    }
    rp_cpu_free(NULL, NULL);
    CHECK(rp_cpu_alloc(NULL, SIZE_MAX - 8) == NULL);
}

int main(void) {
    test_sizes();
    return checks_done("test_cpu_memory");
}
