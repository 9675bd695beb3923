/* prf.c - IKEv2 PRFs, prf+ and the key schedules built on them.
 *
 * PRF_HMAC_SHA2_* (RFC 4868), PRF_AES128_XCBC (RFC 4434, over AES-ECB since
 * OpenSSL has no XCBC MAC) and PRF_AES128_CMAC (RFC 4615, OpenSSL CMAC).
 * A keyed PRF state is reset (not rebuilt) between prf+ blocks. */
/* the low-level SHA-2 calls of the direct HMAC path are deprecated API in 3.0 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "internal.h"
#include <string.h>

#define IKC_PRF_MAX_OUT 64
#define IKC_PRF_PLUS_MAX_BLOCKS 255   /* RFC 7296 §2.13 */

/* ---------------------------------------------------------------- HMAC --- */

/* ---- direct SHA-2 midstates (default provider only, see internal.h) ---- */

static void sha2_init(int kind, ikc_sha2_state *s) {
    if (kind == 256) SHA256_Init(&s->s256);
    else if (kind == 384) SHA384_Init(&s->s512);
    else SHA512_Init(&s->s512);
}

static void sha2_update(int kind, ikc_sha2_state *s, const uint8_t *d, size_t n) {
    if (kind == 256) SHA256_Update(&s->s256, d, n);
    else SHA512_Update(&s->s512, d, n);   /* SHA-384 shares SHA-512's update */
}

static void sha2_final(int kind, ikc_sha2_state *s, uint8_t *out) {
    if (kind == 256) SHA256_Final(out, &s->s256);
    else if (kind == 384) SHA384_Final(out, &s->s512);
    else SHA512_Final(out, &s->s512);
}

static int hmac_init_with(ikc_hmac *h, ikc_md_kind kind, int kdf_class, const uint8_t *key, size_t key_len) {
    uint8_t pad[144], hashed[EVP_MAX_MD_SIZE];   /* 144: above the largest SHA-2 block (128) */
    unsigned int hashed_len = 0;
    int rc = IKC_ERR_OPENSSL;
    int direct = ikc_md_direct(kind, kdf_class);
    EVP_MD *md = NULL;
    size_t block;
    h->inner = h->outer = h->work = NULL;
    h->direct = direct;
    if (direct) {
        /* the default provider's SHA-2: no EVP object (nor its lock) is needed */
        block = direct == 256 ? 64 : 128;
        h->out_len = (size_t)direct / 8;
    } else {
        md = ikc_get_md_ex(kind, kdf_class, &direct);
        if (!md) return IKC_ERR_OPENSSL;
        block = (size_t)EVP_MD_get_block_size(md);
        if (block == 0 || block > sizeof(pad)) goto done;
        h->out_len = (size_t)EVP_MD_get_size(md);
        h->direct = 0;
    }
    if (!h->direct) {
        h->inner = EVP_MD_CTX_new();
        h->outer = EVP_MD_CTX_new();
        h->work = EVP_MD_CTX_new();
        if (!h->inner || !h->outer || !h->work) { rc = IKC_ERR_NOMEM; goto done; }
    }
    if (key_len > block) {   /* RFC 2104: long keys are hashed first */
        if (h->direct) {
            sha2_init(h->direct, &h->work_state);
            sha2_update(h->direct, &h->work_state, key, key_len);
            sha2_final(h->direct, &h->work_state, hashed);
            hashed_len = (unsigned int)h->out_len;
        } else if (EVP_DigestInit_ex2(h->work, md, NULL) != 1 || EVP_DigestUpdate(h->work, key, key_len) != 1 ||
                   EVP_DigestFinal_ex(h->work, hashed, &hashed_len) != 1) {
            goto done;
        }
        key = hashed;
        key_len = hashed_len;
    }
    for (int outer = 0; outer < 2; outer++) {
        memset(pad, outer ? 0x5c : 0x36, block);
        for (size_t i = 0; i < key_len; i++) pad[i] ^= key[i];
        if (h->direct) {
            ikc_sha2_state *s = outer ? &h->out_state : &h->in_state;
            sha2_init(h->direct, s);
            sha2_update(h->direct, s, pad, block);
        } else {
            EVP_MD_CTX *c = outer ? h->outer : h->inner;
            if (EVP_DigestInit_ex2(c, md, NULL) != 1 || EVP_DigestUpdate(c, pad, block) != 1) goto done;
        }
    }
    rc = IKC_OK;
done:
    ikc_wipe(pad, block <= sizeof(pad) ? block : sizeof(pad));
    if (hashed_len) ikc_wipe(hashed, hashed_len);
    EVP_MD_free(md);
    if (rc != IKC_OK) ikc_hmac_free(h);
    return rc;
}

int ikc_hmac_init(ikc_hmac *h, ikc_md_kind md, const uint8_t *key, size_t key_len) {
    return hmac_init_with(h, md, 0, key, key_len);
}

int ikc_hmac_init_kdf(ikc_hmac *h, ikc_md_kind md, const uint8_t *key, size_t key_len) {
    return hmac_init_with(h, md, 1, key, key_len);
}

int ikc_hmac_begin(ikc_hmac *h) {
    if (h->direct) {
        h->work_state = h->in_state;
        return IKC_OK;
    }
    return EVP_MD_CTX_copy_ex(h->work, h->inner) == 1 ? IKC_OK : IKC_ERR_OPENSSL;
}

int ikc_hmac_update(ikc_hmac *h, const uint8_t *data, size_t len) {
    if (!len) return IKC_OK;
    if (h->direct) {
        sha2_update(h->direct, &h->work_state, data, len);
        return IKC_OK;
    }
    return EVP_DigestUpdate(h->work, data, len) == 1 ? IKC_OK : IKC_ERR_OPENSSL;
}

int ikc_hmac_end(ikc_hmac *h, uint8_t *out) {
    uint8_t inner[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok;
    if (h->direct) {
        sha2_final(h->direct, &h->work_state, inner);
        h->work_state = h->out_state;
        sha2_update(h->direct, &h->work_state, inner, h->out_len);
        sha2_final(h->direct, &h->work_state, out);
        ok = 1;
    } else {
        ok = EVP_DigestFinal_ex(h->work, inner, &n) == 1 &&
             EVP_MD_CTX_copy_ex(h->work, h->outer) == 1 &&
             EVP_DigestUpdate(h->work, inner, n) == 1 &&
             EVP_DigestFinal_ex(h->work, out, &n) == 1 && n == h->out_len;
    }
    ikc_wipe(inner, h->out_len);
    return ok ? IKC_OK : IKC_ERR_OPENSSL;
}

int ikc_hmac_oneshot(ikc_hmac *h, const uint8_t *const *parts, const size_t *lens, size_t nparts,
                     uint8_t *out) {
    int rc = ikc_hmac_begin(h);
    for (size_t i = 0; i < nparts && rc == IKC_OK; i++) rc = ikc_hmac_update(h, parts[i], lens[i]);
    return rc == IKC_OK ? ikc_hmac_end(h, out) : rc;
}

void ikc_hmac_free(ikc_hmac *h) {
    /* the digest contexts / midstates hold the padded key */
    EVP_MD_CTX_free(h->inner);
    EVP_MD_CTX_free(h->outer);
    EVP_MD_CTX_free(h->work);
    h->inner = h->outer = h->work = NULL;
    if (h->direct) {
        size_t n = h->direct == 256 ? sizeof(SHA256_CTX) : sizeof(SHA512_CTX);
        ikc_wipe(&h->in_state, n);
        ikc_wipe(&h->out_state, n);
        ikc_wipe(&h->work_state, n);
    }
    h->direct = 0;
}

int ikc_hmac_new(ikc_md_kind md, const uint8_t *key, size_t key_len, ikc_hmac **out) {
    ikc_hmac *h = calloc(1, sizeof(*h));
    if (!h) return IKC_ERR_NOMEM;
    int rc = ikc_hmac_init(h, md, key, key_len);
    if (rc != IKC_OK) {
        ikc_hmac_release(h);
        return rc;
    }
    *out = h;
    return IKC_OK;
}

void ikc_hmac_release(ikc_hmac *h) {
    if (!h) return;
    ikc_hmac_free(h);
    ikc_wipe(h, sizeof(*h));
    free(h);
}

int ikc_integ_params(int integ_id, size_t *key_len, size_t *icv_len, ikc_md_kind *md) {
    switch (integ_id) {
    case IKC_INTEG_HMAC_SHA1_96:      *key_len = 20; *icv_len = 12; *md = IKC_MD_SHA1;   return IKC_OK;
    case IKC_INTEG_HMAC_SHA2_256_128: *key_len = 32; *icv_len = 16; *md = IKC_MD_SHA256; return IKC_OK;
    case IKC_INTEG_HMAC_SHA2_384_192: *key_len = 48; *icv_len = 24; *md = IKC_MD_SHA384; return IKC_OK;
    case IKC_INTEG_HMAC_SHA2_512_256: *key_len = 64; *icv_len = 32; *md = IKC_MD_SHA512; return IKC_OK;
    default: return IKC_ERR_UNSUPPORTED;
    }
}

/* ---------------------------------------------------------------- XCBC --- */

/* AES-XCBC-MAC-128 (RFC 3566 §4) state: K1 in an ECB context, K2/K3 kept. */
typedef struct {
    EVP_CIPHER_CTX *k1;
    uint8_t k2[16], k3[16];
    uint8_t e[16];        /* running CBC state */
    uint8_t buf[16];      /* pending (possibly last) block */
    size_t buf_len;
} xcbc_state;

static int aes128_ecb_block(EVP_CIPHER_CTX *ctx, const uint8_t in[16], uint8_t out[16]) {
    int n = 0;
    return EVP_EncryptUpdate(ctx, out, &n, in, 16) == 1 && n == 16 ? IKC_OK : IKC_ERR_OPENSSL;
}

static EVP_CIPHER_CTX *aes128_ecb_ctx(const uint8_t key[16]) {
    EVP_CIPHER *ecb = ikc_get_cipher(IKC_C_AES128_ECB);
    EVP_CIPHER_CTX *ctx = ecb ? EVP_CIPHER_CTX_new() : NULL;
    if (ctx && (EVP_EncryptInit_ex2(ctx, ecb, key, NULL, NULL) != 1 ||
                EVP_CIPHER_CTX_set_padding(ctx, 0) != 1)) {
        EVP_CIPHER_CTX_free(ctx);
        ctx = NULL;
    }
    EVP_CIPHER_free(ecb);
    return ctx;
}

static void xcbc_free(xcbc_state *x) {
    EVP_CIPHER_CTX_free(x->k1);
    ikc_wipe(x, sizeof(*x));
}

static int xcbc_setkey(xcbc_state *x, const uint8_t key[16]) {
    static const uint8_t c1[16] = {1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1};
    static const uint8_t c2[16] = {2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2};
    static const uint8_t c3[16] = {3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3};
    uint8_t k1[16];
    int rc = IKC_ERR_OPENSSL;
    memset(x, 0, sizeof(*x));
    EVP_CIPHER_CTX *kctx = aes128_ecb_ctx(key);
    if (!kctx) return IKC_ERR_OPENSSL;
    if (aes128_ecb_block(kctx, c1, k1) || aes128_ecb_block(kctx, c2, x->k2) ||
        aes128_ecb_block(kctx, c3, x->k3))
        goto done;
    x->k1 = aes128_ecb_ctx(k1);
    rc = x->k1 ? IKC_OK : IKC_ERR_OPENSSL;
done:
    EVP_CIPHER_CTX_free(kctx);
    ikc_wipe(k1, sizeof(k1));
    return rc;
}

static void xcbc_reset(xcbc_state *x) {
    memset(x->e, 0, 16);
    x->buf_len = 0;
}

static int xcbc_update(xcbc_state *x, const uint8_t *data, size_t len) {
    /* The last block is treated specially, so a full block is only processed
     * once more data follows it. */
    while (len > 0) {
        if (x->buf_len == 16) {
            for (int i = 0; i < 16; i++) x->e[i] ^= x->buf[i];
            if (aes128_ecb_block(x->k1, x->e, x->e)) return IKC_ERR_OPENSSL;
            x->buf_len = 0;
        }
        size_t take = 16 - x->buf_len;
        if (take > len) take = len;
        memcpy(x->buf + x->buf_len, data, take);
        x->buf_len += take;
        data += take;
        len -= take;
    }
    return IKC_OK;
}

static int xcbc_final(xcbc_state *x, uint8_t out[16]) {
    uint8_t last[16];
    if (x->buf_len == 16) {
        for (int i = 0; i < 16; i++) last[i] = x->buf[i] ^ x->k2[i];
    } else {
        memcpy(last, x->buf, x->buf_len);
        last[x->buf_len] = 0x80;
        memset(last + x->buf_len + 1, 0, 15 - x->buf_len);
        for (int i = 0; i < 16; i++) last[i] ^= x->k3[i];
    }
    for (int i = 0; i < 16; i++) x->e[i] ^= last[i];
    int rc = aes128_ecb_block(x->k1, x->e, out);
    ikc_wipe(last, sizeof(last));
    return rc;
}

/* ----------------------------------------------------------- PRF state --- */

typedef struct {
    int id;
    size_t out_len;
    ikc_hmac hmac;        /* PRF_HMAC_SHA2_* */
    EVP_MAC_CTX *mac;     /* PRF_AES128_CMAC */
    xcbc_state xcbc;      /* PRF_AES128_XCBC */
} prf_state;

static int is_hmac_prf(int id) {
    return id == IKC_PRF_HMAC_SHA1 || id == IKC_PRF_HMAC_SHA2_256 || id == IKC_PRF_HMAC_SHA2_384
        || id == IKC_PRF_HMAC_SHA2_512;
}

int ikc_prf_output_len(int prf_id, size_t *out_len) {
    if (!out_len) return IKC_ERR_ARG;
    switch (prf_id) {
    case IKC_PRF_HMAC_SHA1:     *out_len = 20; return IKC_OK;
    case IKC_PRF_HMAC_SHA2_256: *out_len = 32; return IKC_OK;
    case IKC_PRF_HMAC_SHA2_384: *out_len = 48; return IKC_OK;
    case IKC_PRF_HMAC_SHA2_512: *out_len = 64; return IKC_OK;
    case IKC_PRF_AES128_XCBC:
    case IKC_PRF_AES128_CMAC: *out_len = 16; return IKC_OK;
    default: return IKC_ERR_UNSUPPORTED;
    }
}

static void prf_free(prf_state *st) {
    if (is_hmac_prf(st->id)) ikc_hmac_free(&st->hmac);
    EVP_MAC_CTX_free(st->mac);
    if (st->id == IKC_PRF_AES128_XCBC) xcbc_free(&st->xcbc);
    st->mac = NULL;
    st->id = 0;
}

static int cmac_raw(EVP_MAC_CTX **ctxp, const uint8_t key[16]) {
    *ctxp = ikc_new_cmac_ctx();
    if (!*ctxp) return IKC_ERR_OPENSSL;
    return EVP_MAC_init(*ctxp, key, 16, NULL) == 1 ? IKC_OK : IKC_ERR_OPENSSL;
}

static int prf_init(prf_state *st, int prf_id, const uint8_t *key, size_t key_len);
static int prf_update(prf_state *st, const uint8_t *data, size_t len);
static int prf_final(prf_state *st, uint8_t *out);
static int prf_reset(prf_state *st);

/* RFC 4434 §2 / RFC 4615 §3: a key that is not 16 octets is first run
 * through the MAC under the all-zero key (XCBC pads short keys instead). */
static int aes_prf_normalise_key(int prf_id, const uint8_t *key, size_t key_len, uint8_t k[16]) {
    static const uint8_t zero[16];
    if (key_len == 16) { memcpy(k, key, 16); return IKC_OK; }
    if (prf_id == IKC_PRF_AES128_XCBC && key_len < 16) {
        memset(k, 0, 16);
        memcpy(k, key, key_len);
        return IKC_OK;
    }
    prf_state inner;
    int rc = prf_init(&inner, prf_id, zero, 16);
    if (rc == IKC_OK) rc = prf_update(&inner, key, key_len);
    if (rc == IKC_OK) rc = prf_final(&inner, k);
    prf_free(&inner);
    return rc;
}

static int prf_init(prf_state *st, int prf_id, const uint8_t *key, size_t key_len) {
    int rc;
    /* only the fields of the PRF in use are set (each init fills its own) */
    st->id = 0;
    st->mac = NULL;
    if ((rc = ikc_prf_output_len(prf_id, &st->out_len)) != IKC_OK) return rc;
    st->id = prf_id;
    if (!key && key_len) return IKC_ERR_ARG;
    switch (prf_id) {
    case IKC_PRF_HMAC_SHA1:
    case IKC_PRF_HMAC_SHA2_256:
    case IKC_PRF_HMAC_SHA2_384:
    case IKC_PRF_HMAC_SHA2_512: {
        ikc_md_kind md = prf_id == IKC_PRF_HMAC_SHA1 ? IKC_MD_SHA1
                       : prf_id == IKC_PRF_HMAC_SHA2_256 ? IKC_MD_SHA256
                       : prf_id == IKC_PRF_HMAC_SHA2_384 ? IKC_MD_SHA384 : IKC_MD_SHA512;
        rc = ikc_hmac_init_kdf(&st->hmac, md, key, key_len);
        if (rc == IKC_OK) rc = ikc_hmac_begin(&st->hmac);
        return rc;
    }
    case IKC_PRF_AES128_CMAC:
    case IKC_PRF_AES128_XCBC: {
        uint8_t k[16];
        memset(&st->xcbc, 0, sizeof(st->xcbc));   /* prf_free may run on a failed init */
        rc = aes_prf_normalise_key(prf_id, key, key_len, k);
        if (rc == IKC_OK)
            rc = prf_id == IKC_PRF_AES128_CMAC ? cmac_raw(&st->mac, k) : xcbc_setkey(&st->xcbc, k);
        ikc_wipe(k, sizeof(k));
        if (rc != IKC_OK) prf_free(st);
        return rc;
    }
    }
    return IKC_ERR_UNSUPPORTED;
}

static int prf_update(prf_state *st, const uint8_t *data, size_t len) {
    if (len == 0) return IKC_OK;
    if (st->id == IKC_PRF_AES128_XCBC) return xcbc_update(&st->xcbc, data, len);
    if (is_hmac_prf(st->id)) return ikc_hmac_update(&st->hmac, data, len);
    return EVP_MAC_update(st->mac, data, len) == 1 ? IKC_OK : IKC_ERR_OPENSSL;
}

static int prf_final(prf_state *st, uint8_t *out) {
    size_t n = 0;
    if (st->id == IKC_PRF_AES128_XCBC) return xcbc_final(&st->xcbc, out);
    if (is_hmac_prf(st->id)) return ikc_hmac_end(&st->hmac, out);
    if (EVP_MAC_final(st->mac, out, &n, st->out_len) != 1 || n != st->out_len) return IKC_ERR_OPENSSL;
    return IKC_OK;
}

static int prf_reset(prf_state *st) {
    if (st->id == IKC_PRF_AES128_XCBC) { xcbc_reset(&st->xcbc); return IKC_OK; }
    if (is_hmac_prf(st->id)) return ikc_hmac_begin(&st->hmac);
    return EVP_MAC_init(st->mac, NULL, 0, NULL) == 1 ? IKC_OK : IKC_ERR_OPENSSL;
}

/* prf over a list of parts, on a state that was just initialised or reset */
static int prf_parts(prf_state *st, const uint8_t *const *parts, const size_t *lens, size_t n, uint8_t *out) {
    int rc = IKC_OK;
    for (size_t i = 0; i < n && rc == IKC_OK; i++) rc = prf_update(st, parts[i], lens[i]);
    return rc == IKC_OK ? prf_final(st, out) : rc;
}

int ikc_prf(int prf_id, const uint8_t *key, size_t key_len,
            const uint8_t *data, size_t data_len, uint8_t *out, size_t out_len) {
    prf_state st;
    size_t need;
    int rc = ikc_prf_output_len(prf_id, &need);
    if (rc != IKC_OK) return rc;
    if (!out || (!data && data_len)) return IKC_ERR_ARG;
    if (out_len != need) return IKC_ERR_BUFFER;
    if ((rc = prf_init(&st, prf_id, key, key_len)) != IKC_OK) return rc;
    rc = prf_parts(&st, &data, &data_len, 1, out);
    prf_free(&st);
    return rc;
}

/* prf+ (RFC 7296 §2.13) over a seed given in parts, so callers never build
 * Ni | Nr | SPIi | SPIr in a temporary buffer. */
static int prf_plus_parts(int prf_id, const uint8_t *key, size_t key_len,
                          const uint8_t *const *seed, const size_t *seed_lens, size_t nseed,
                          uint8_t *out, size_t out_len) {
    prf_state st;
    uint8_t t[IKC_PRF_MAX_OUT];
    size_t hlen;
    int rc = ikc_prf_output_len(prf_id, &hlen);
    if (rc != IKC_OK) return rc;
    if (!out && out_len) return IKC_ERR_ARG;
    /* bound before any multiplication can overflow */
    if (out_len > (size_t)IKC_PRF_PLUS_MAX_BLOCKS * hlen) return IKC_ERR_LIMIT;
    if (out_len == 0) return IKC_OK;
    if ((rc = prf_init(&st, prf_id, key, key_len)) != IKC_OK) return rc;
    size_t done = 0;
    for (unsigned n = 1; done < out_len && rc == IKC_OK; n++) {
        uint8_t counter = (uint8_t)n;
        if (n > 1) {
            rc = prf_reset(&st);
            if (rc == IKC_OK) rc = prf_update(&st, t, hlen);
        }
        for (size_t i = 0; i < nseed && rc == IKC_OK; i++) rc = prf_update(&st, seed[i], seed_lens[i]);
        if (rc == IKC_OK) rc = prf_update(&st, &counter, 1);
        if (rc == IKC_OK) rc = prf_final(&st, t);
        if (rc == IKC_OK) {
            size_t take = out_len - done < hlen ? out_len - done : hlen;
            memcpy(out + done, t, take);
            done += take;
        }
    }
    ikc_wipe(t, hlen);
    prf_free(&st);
    if (rc != IKC_OK) ikc_wipe(out, out_len);
    return rc;
}

int ikc_prf_plus(int prf_id, const uint8_t *key, size_t key_len,
                 const uint8_t *seed, size_t seed_len, uint8_t *out, size_t out_len) {
    if (!seed && seed_len) return IKC_ERR_ARG;
    return prf_plus_parts(prf_id, key, key_len, &seed, &seed_len, 1, out, out_len);
}

/* ------------------------------------------------------- key schedules --- */

static int ike_keys_len_ok(int prf_id, size_t integ_len, size_t encr_len, size_t out_len,
                           uint8_t *skeyseed_out, size_t skeyseed_len, size_t *prf_len) {
    int rc = ikc_prf_output_len(prf_id, prf_len);
    if (rc != IKC_OK) return rc;
    /* each term is small; bound them before adding so the sum cannot wrap */
    if (integ_len > 1024 || encr_len > 1024) return IKC_ERR_ARG;
    if (out_len != 3 * *prf_len + 2 * integ_len + 2 * encr_len) return IKC_ERR_BUFFER;
    if (skeyseed_out && skeyseed_len != *prf_len) return IKC_ERR_BUFFER;
    return IKC_OK;
}

static int expand_ike_keys(int prf_id, const uint8_t *skeyseed, size_t skeyseed_len,
                           const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len,
                           const uint8_t *spi_i, const uint8_t *spi_r, uint8_t *out, size_t out_len) {
    const uint8_t *seed[4] = { ni, nr, spi_i, spi_r };
    size_t lens[4] = { ni_len, nr_len, 8, 8 };
    return prf_plus_parts(prf_id, skeyseed, skeyseed_len, seed, lens, 4, out, out_len);
}

static int nonces_ok(const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len) {
    /* RFC 7296 §3.9 asks 16..256 octets of the protocol; the KDF accepts the
     * 8-octet minimum that SP 800-135 test vectors and the AES PRFs' 8+8
     * nonce key need, and keeps the 256 upper bound its buffers rely on. */
    return ni && nr && ni_len >= 8 && ni_len <= 256 && nr_len >= 8 && nr_len <= 256;
}

int ikc_ike_keys_initial(int prf_id,
                         const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len,
                         const uint8_t *gir, size_t gir_len,
                         const uint8_t *spi_i, const uint8_t *spi_r,
                         size_t integ_key_len, size_t encr_key_len,
                         char *out_c, size_t out_len,
                         char *skeyseed_c, size_t skeyseed_len) {
    uint8_t *out = (uint8_t *)out_c, *skeyseed_out = (uint8_t *)skeyseed_c;
    uint8_t skeyseed[IKC_PRF_MAX_OUT], key[512];
    size_t prf_len, key_len;
    int rc = ike_keys_len_ok(prf_id, integ_key_len, encr_key_len, out_len,
                             skeyseed_out, skeyseed_len, &prf_len);
    if (rc != IKC_OK) return rc;
    if (!nonces_ok(ni, ni_len, nr, nr_len) || !gir || !gir_len || !spi_i || !spi_r || !out)
        return IKC_ERR_ARG;
    /* SKEYSEED = prf(Ni | Nr, g^ir); the AES PRFs key with the first 8 octets
     * of each nonce (RFC 7296 §2.14). */
    if (prf_id == IKC_PRF_AES128_XCBC || prf_id == IKC_PRF_AES128_CMAC) {
        memcpy(key, ni, 8);
        memcpy(key + 8, nr, 8);
        key_len = 16;
    } else {
        memcpy(key, ni, ni_len);
        memcpy(key + ni_len, nr, nr_len);
        key_len = ni_len + nr_len;
    }
    rc = ikc_prf(prf_id, key, key_len, gir, gir_len, skeyseed, prf_len);
    if (rc == IKC_OK)
        rc = expand_ike_keys(prf_id, skeyseed, prf_len, ni, ni_len, nr, nr_len, spi_i, spi_r, out, out_len);
    if (rc == IKC_OK && skeyseed_out) memcpy(skeyseed_out, skeyseed, prf_len);
    ikc_wipe(skeyseed, sizeof(skeyseed));
    ikc_wipe(key, sizeof(key));
    return rc;
}

/* SKEYSEED = prf_old(SK_d_old, prefix | Ni | Nr), then expand with prf_new:
 * shared by rekey/clone (prefix = g^ir) and resumption (prefix = "Resumption"). */
static int derived_ike_keys(int old_prf_id, const uint8_t *sk_d_old, size_t sk_d_old_len,
                            int new_prf_id, const uint8_t *prefix, size_t prefix_len,
                            const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len,
                            const uint8_t *spi_i, const uint8_t *spi_r,
                            size_t integ_key_len, size_t encr_key_len,
                            uint8_t *out, size_t out_len,
                            uint8_t *skeyseed_out, size_t skeyseed_len) {
    uint8_t skeyseed[IKC_PRF_MAX_OUT];
    size_t old_len, new_len;
    prf_state st;
    int rc = ikc_prf_output_len(old_prf_id, &old_len);
    if (rc != IKC_OK) return rc;
    if ((rc = ike_keys_len_ok(new_prf_id, integ_key_len, encr_key_len, out_len, NULL, 0, &new_len)) != IKC_OK)
        return rc;
    if (skeyseed_out && skeyseed_len != old_len) return IKC_ERR_BUFFER;
    if (!nonces_ok(ni, ni_len, nr, nr_len) || !sk_d_old || !sk_d_old_len || !prefix || !prefix_len ||
        !spi_i || !spi_r || !out)
        return IKC_ERR_ARG;
    const uint8_t *parts[3] = { prefix, ni, nr };
    size_t lens[3] = { prefix_len, ni_len, nr_len };
    if ((rc = prf_init(&st, old_prf_id, sk_d_old, sk_d_old_len)) != IKC_OK) return rc;
    rc = prf_parts(&st, parts, lens, 3, skeyseed);
    prf_free(&st);
    if (rc == IKC_OK)
        rc = expand_ike_keys(new_prf_id, skeyseed, old_len, ni, ni_len, nr, nr_len, spi_i, spi_r, out, out_len);
    if (rc == IKC_OK && skeyseed_out) memcpy(skeyseed_out, skeyseed, old_len);
    ikc_wipe(skeyseed, sizeof(skeyseed));
    return rc;
}

int ikc_ike_keys_rekey(int old_prf_id, const uint8_t *sk_d_old, size_t sk_d_old_len,
                       int new_prf_id, const uint8_t *gir, size_t gir_len,
                       const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len,
                       const uint8_t *spi_i, const uint8_t *spi_r,
                       size_t integ_key_len, size_t encr_key_len,
                       char *out_c, size_t out_len,
                       char *skeyseed_c, size_t skeyseed_len) {
    uint8_t *out = (uint8_t *)out_c, *skeyseed_out = (uint8_t *)skeyseed_c;
    return derived_ike_keys(old_prf_id, sk_d_old, sk_d_old_len, new_prf_id, gir, gir_len,
                            ni, ni_len, nr, nr_len, spi_i, spi_r, integ_key_len, encr_key_len,
                            out, out_len, skeyseed_out, skeyseed_len);
}

int ikc_ike_keys_resume(int prf_id, const uint8_t *sk_d_old, size_t sk_d_old_len,
                        const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len,
                        const uint8_t *spi_i, const uint8_t *spi_r,
                        size_t integ_key_len, size_t encr_key_len,
                        char *out_c, size_t out_len,
                        char *skeyseed_c, size_t skeyseed_len) {
    uint8_t *out = (uint8_t *)out_c, *skeyseed_out = (uint8_t *)skeyseed_c;
    static const uint8_t label[10] = { 'R','e','s','u','m','p','t','i','o','n' };
    return derived_ike_keys(prf_id, sk_d_old, sk_d_old_len, prf_id, label, sizeof(label),
                            ni, ni_len, nr, nr_len, spi_i, spi_r, integ_key_len, encr_key_len,
                            out, out_len, skeyseed_out, skeyseed_len);
}

int ikc_child_keymat(int prf_id, const uint8_t *sk_d, size_t sk_d_len,
                     const uint8_t *gir, size_t gir_len,
                     const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len,
                     uint8_t *out, size_t out_len) {
    if (!nonces_ok(ni, ni_len, nr, nr_len) || !sk_d || !sk_d_len || (!gir && gir_len)) return IKC_ERR_ARG;
    const uint8_t *parts[3] = { gir, ni, nr };
    size_t lens[3] = { gir_len, ni_len, nr_len };
    return gir_len ? prf_plus_parts(prf_id, sk_d, sk_d_len, parts, lens, 3, out, out_len)
                   : prf_plus_parts(prf_id, sk_d, sk_d_len, parts + 1, lens + 1, 2, out, out_len);
}
