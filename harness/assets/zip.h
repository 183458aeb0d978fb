/* zip.h: read one member of a zip archive (a Python wheel is a zip) into a file, streaming: the central
 * directory is found from the end-of-central-directory record, every size and offset is checked against
 * the archive's length before use, stored and deflated members are supported, and the CRC-32 and
 * uncompressed size recorded in the directory are verified. ZIP64 archives and encrypted members are
 * refused with a message. */
#ifndef RP_ZIP_H
#define RP_ZIP_H
#include <stdint.h>
#include "util/err.h"

/* Extract member (exact name, e.g. "pkg/model.gguf") of the archive zip_path into out_path (created or
 * truncated; removed again on failure). *size receives the member's uncompressed size when non-NULL and
 * sha256_hex (65 bytes, may be NULL) its SHA-256, computed while writing. */
rp_status rp_zip_extract(const char *zip_path, const char *member, const char *out_path, uint64_t *size,
                         char *sha256_hex);

#endif
