/* internal.h - shared by the C core's translation units; never seen by cffi. */
#ifndef IKC_INTERNAL_H
#define IKC_INTERNAL_H
#include "ikecore.h"
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>

/* Algorithms fetched once from the library context. Each getter returns a
 * new reference the caller must release (EVP_*_free), so objects built from
 * them outlive a reconfiguration. NULL means the provider set lacks it. */
typedef enum {
    IKC_C_AES128_GCM, IKC_C_AES192_GCM, IKC_C_AES256_GCM,
    IKC_C_AES128_CBC, IKC_C_AES192_CBC, IKC_C_AES256_CBC,
    IKC_C_AES128_ECB, IKC_C_CHACHA20_POLY1305,
    IKC_C_COUNT
} ikc_cipher_kind;

typedef enum { IKC_MD_SHA1, IKC_MD_SHA256, IKC_MD_SHA384, IKC_MD_SHA512, IKC_MD_COUNT } ikc_md_kind;

EVP_CIPHER *ikc_get_cipher(ikc_cipher_kind kind);
EVP_MAC *ikc_get_hmac(void);
EVP_MAC *ikc_get_cmac(void);
EVP_MD *ikc_get_md(ikc_md_kind kind);
OSSL_LIB_CTX *ikc_libctx(void);
int ikc_random(uint8_t *buf, size_t len);

/* HMAC keyed once, reused: used by PRFs, SK and ESP integrity. */
typedef struct {
    EVP_MAC_CTX *keyed;   /* holds the key; re-initialised with NULL key per use */
    size_t out_len;       /* full HMAC output */
} ikc_hmac;
int ikc_hmac_init(ikc_hmac *h, ikc_md_kind md, const uint8_t *key, size_t key_len);
int ikc_hmac_oneshot(ikc_hmac *h, const uint8_t *const *parts, const size_t *lens, size_t nparts,
                     uint8_t *out /* out_len bytes */);
void ikc_hmac_free(ikc_hmac *h);

/* integrity transform facts (RFC 4868): key length, ICV length, digest */
int ikc_integ_params(int integ_id, size_t *key_len, size_t *icv_len, ikc_md_kind *md);

/* Constant-time comparison. */
static inline int ikc_ct_equal(const uint8_t *a, const uint8_t *b, size_t n) {
    return CRYPTO_memcmp(a, b, n) == 0;
}

static inline void ikc_put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t ikc_get32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
#endif
