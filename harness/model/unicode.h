/* unicode.h: the few Unicode facts the tokenizers need: UTF-8 decoding and the letter / number / white
 * space classes used by GPT-2-style pre-tokenizer patterns (\p{L}, \p{N}, \s). */
#ifndef RP_UNICODE_H
#define RP_UNICODE_H
#include <stddef.h>
#include <stdint.h>

enum { RP_UC_LETTER = 1, RP_UC_NUMBER = 2, RP_UC_SPACE = 4 };

/* Class bits of a code point (0 for punctuation, symbols, marks, unassigned and invalid values). */
int rp_unicode_class(uint32_t cp);
/* Length of the UTF-8 sequence a lead byte announces (1 for continuation or invalid bytes). */
int rp_utf8_len(unsigned char c);
/* Decode one code point at s (n >= 1 bytes left); *len gets the bytes consumed (always >= 1). */
uint32_t rp_utf8_decode(const unsigned char *s, size_t n, int *len);

#endif
