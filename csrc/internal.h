/* internal.h - shared by the C core's translation units; never seen by cffi. */
#ifndef IKC_INTERNAL_H
#define IKC_INTERNAL_H
#include "ikecore.h"
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

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
/* A fresh, unkeyed CMAC context with its cipher already chosen. */
EVP_MAC_CTX *ikc_new_cmac_ctx(void);
EVP_MD *ikc_get_md(ikc_md_kind kind);       /* fetched with the MAC class query */
EVP_MD *ikc_get_kdf_md(ikc_md_kind kind);   /* fetched with the KDF class query */
/* either class; *direct = 256/384/512 when the default provider's SHA-2 may be
 * driven directly, else 0 */
EVP_MD *ikc_get_md_ex(ikc_md_kind kind, int kdf_class, int *direct);
/* just the flag: 256/384/512 when the default provider's SHA-2 serves the class */
int ikc_md_direct(ikc_md_kind kind, int kdf_class);
OSSL_LIB_CTX *ikc_libctx(void);
int ikc_random(uint8_t *buf, size_t len);

/* HMAC (RFC 2104) keyed once and reused, built on EVP digests: the padded
 * key is absorbed once into 'inner'/'outer', and each message starts from a
 * copy of them. Used by the PRFs (KDF digests) and SK / ESP integrity (MAC
 * digests). Not thread-safe: one per key and thread. */
typedef union {
    SHA256_CTX s256;
    SHA512_CTX s512;      /* SHA-384 and SHA-512 */
} ikc_sha2_state;
typedef struct {
    EVP_MD_CTX *inner, *outer, *work;
    size_t out_len;       /* full HMAC output */
    /* When the digest comes from OpenSSL's default provider, the same SHA-2
     * code is driven directly from saved midstates: OpenSSL 3.0's per-call
     * EVP dispatch costs more than hashing an IKE-sized input. Digests from
     * any other provider (offload) always go through EVP. */
    int direct;           /* 0, or 256/384/512 */
    ikc_sha2_state in_state, out_state, work_state;
} ikc_hmac;
int ikc_hmac_init(ikc_hmac *h, ikc_md_kind md, const uint8_t *key, size_t key_len);      /* MAC class */
int ikc_hmac_init_kdf(ikc_hmac *h, ikc_md_kind md, const uint8_t *key, size_t key_len);  /* KDF class */
int ikc_hmac_begin(ikc_hmac *h);
int ikc_hmac_update(ikc_hmac *h, const uint8_t *data, size_t len);
int ikc_hmac_end(ikc_hmac *h, uint8_t *out /* out_len bytes */);
int ikc_hmac_oneshot(ikc_hmac *h, const uint8_t *const *parts, const size_t *lens, size_t nparts,
                     uint8_t *out /* out_len bytes */);
void ikc_hmac_free(ikc_hmac *h);
/* a heap-allocated HMAC (for objects that need one only with some transforms);
 * release frees and wipes it, and takes NULL */
int ikc_hmac_new(ikc_md_kind md, const uint8_t *key, size_t key_len, ikc_hmac **out);
void ikc_hmac_release(ikc_hmac *h);

/* ENCR transform facts for a key length (AEAD key material includes the salt) */
typedef struct {
    ikc_cipher_kind kind;
    int aead;
    size_t cipher_key_len;   /* without the salt */
    size_t icv_len;          /* AEAD tag length; 0 for CBC (the INTEG transform decides) */
} ikc_encr_info;
int ikc_encr_lookup(int encr_id, size_t key_len, ikc_encr_info *info);
/* A context of that cipher keyed once (enc = 1 encrypt, 0 decrypt); AEADs get a 12-octet IV */
int ikc_keyed_cipher(ikc_cipher_kind kind, const uint8_t *key, int enc, EVP_CIPHER_CTX **out);

/* AEAD tag out of an encrypting / into a decrypting context (len: the ICV length) */
int ikc_aead_get_tag(EVP_CIPHER_CTX *ctx, uint8_t *tag, size_t len);
int ikc_aead_set_tag(EVP_CIPHER_CTX *ctx, const uint8_t *tag, size_t len);

/* Unpredictable, never-repeating CBC IVs (see cipher.c) */
typedef struct {
    EVP_CIPHER_CTX *ecb;
    uint8_t salt[8];
} ikc_ivgen;
int ikc_ivgen_init(ikc_ivgen *g);
int ikc_ivgen_next(ikc_ivgen *g, uint64_t counter, uint8_t out[16]);
void ikc_ivgen_free(ikc_ivgen *g);

/* integrity transform facts (RFC 4868): key length, ICV length, digest */
int ikc_integ_params(int integ_id, size_t *key_len, size_t *icv_len, ikc_md_kind *md);

/* Wipe secrets. glibc's explicit_bzero is a full-speed memset the compiler
 * may not drop; OPENSSL_cleanse walks byte by byte, which shows on the
 * per-message paths. */
#if defined(__GLIBC__)
#include <string.h>
#define ikc_wipe(p, n) explicit_bzero((p), (n))
#else
#define ikc_wipe(p, n) OPENSSL_cleanse((p), (n))
#endif

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
