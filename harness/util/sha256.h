/* sha256.h: SHA-256 (FIPS 180-4), one-shot and streaming, plus lowercase hex. Used to verify assets and
 * to key caches. The streaming context is plain data: no allocation, copyable. */
#ifndef RP_SHA256_H
#define RP_SHA256_H
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"

typedef struct rp_sha256_ctx { uint32_t h[8]; uint64_t nbytes; uint8_t block[64]; size_t fill; } rp_sha256_ctx;

/* Start a digest. */
void rp_sha256_init(rp_sha256_ctx *c);
/* Feed len bytes (any chunking gives the same digest). */
void rp_sha256_update(rp_sha256_ctx *c, const void *data, size_t len);
/* Finish: write the 32-byte digest (the context must be re-initialised before reuse). */
void rp_sha256_final(rp_sha256_ctx *c, uint8_t out[32]);
/* Digest of one buffer. */
void rp_sha256(const void *data, size_t len, uint8_t out[32]);
/* Write 32 bytes as 64 lowercase hex digits plus NUL into hex (65 bytes). */
void rp_sha256_hex(const uint8_t digest[32], char hex[65]);
/* Hex digest of a whole file, streamed (errors name the path). */
rp_status rp_sha256_file(const char *path, char hex[65]);

#endif
