/* fuzz_zip.c: libFuzzer target for the zip member reader (assets/zip.h). The input is written to a
 * temporary file as the archive and two member names are extracted from it. Invariants checked on every
 * input: the reader returns (never crashes or hangs), a failure names the archive in its message (or is
 * out of memory) and leaves no output file, and a success leaves a file whose length and SHA-256 are the
 * ones the reader reported. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "assets/zip.h"
#include "util/buf.h"
#include "util/sha256.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char zip_path[256], out_path[256];

/* Remove the temporary files when the fuzzer or the replay driver exits. */
static void cleanup(void) {
    unlink(zip_path);
    unlink(out_path);
}

/* Extract member from the archive at zip_path and check the invariants above. */
static void check_member(const char *member) {
    uint64_t got_size = 0;
    char hex[65] = {0};
    rp_status st = rp_zip_extract(zip_path, member, out_path, &got_size, hex);
    if (st != RP_OK) {
        if (!strstr(rp_errmsg(), zip_path) && st != RP_ERR_NOMEM) {
            fprintf(stderr, "zip error without the archive's name: %s\n", rp_errmsg());
            abort();
        }
        if (access(out_path, F_OK) == 0) { fprintf(stderr, "failed extraction left %s\n", out_path); abort(); }
        return;
    }
    rp_buf b = {0};
    if (rp_read_file(out_path, &b) != RP_OK || b.len != got_size) abort();
    uint8_t d[32];
    char want[65];
    rp_sha256(b.data, b.len, d);
    rp_sha256_hex(d, want);
    if (strcmp(want, hex) != 0) abort();
    rp_buf_free(&b);
    unlink(out_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!zip_path[0]) {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp) tmp = "/tmp";
        snprintf(zip_path, sizeof zip_path, "%s/fuzz-zip-%ld.zip", tmp, (long)getpid());
        snprintf(out_path, sizeof out_path, "%s/fuzz-zip-%ld.out", tmp, (long)getpid());
        atexit(cleanup);
    }
    if (rp_write_file(zip_path, data, size) != RP_OK) abort();
    check_member("a.txt");
    check_member("d/b.bin");
    return 0;
}
