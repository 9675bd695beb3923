/* cipher.c - what an ENCR transform id and a key length mean, and cipher
 * contexts keyed once; shared by IKE SK protection and ESP. */
#include "internal.h"
#include <string.h>

int ikc_encr_lookup(int encr_id, size_t key_len, ikc_encr_info *info) {
    size_t cipher_key;
    switch (encr_id) {
    case IKC_ENCR_AES_GCM_8:
    case IKC_ENCR_AES_GCM_12:
    case IKC_ENCR_AES_GCM_16:
        /* RFC 4106 §8.1 / RFC 5282 §7.1: the key material ends with a 4-octet salt */
        if (key_len < 4) return IKC_ERR_KEYLEN;
        cipher_key = key_len - 4;
        if (cipher_key != 16 && cipher_key != 24 && cipher_key != 32) return IKC_ERR_KEYLEN;
        info->kind = cipher_key == 16 ? IKC_C_AES128_GCM : cipher_key == 24 ? IKC_C_AES192_GCM : IKC_C_AES256_GCM;
        info->aead = 1;
        info->icv_len = encr_id == IKC_ENCR_AES_GCM_8 ? 8 : encr_id == IKC_ENCR_AES_GCM_12 ? 12 : 16;
        break;
    case IKC_ENCR_CHACHA20_POLY1305:
        if (key_len != 36) return IKC_ERR_KEYLEN;   /* RFC 7634 §2: 32-octet key + salt */
        cipher_key = 32;
        info->kind = IKC_C_CHACHA20_POLY1305;
        info->aead = 1;
        info->icv_len = 16;
        break;
    case IKC_ENCR_AES_CBC:
        cipher_key = key_len;
        if (cipher_key != 16 && cipher_key != 24 && cipher_key != 32) return IKC_ERR_KEYLEN;
        info->kind = cipher_key == 16 ? IKC_C_AES128_CBC : cipher_key == 24 ? IKC_C_AES192_CBC : IKC_C_AES256_CBC;
        info->aead = 0;
        info->icv_len = 0;     /* from the INTEG transform */
        break;
    default:
        return IKC_ERR_UNSUPPORTED;
    }
    info->cipher_key_len = cipher_key;
    return IKC_OK;
}

int ikc_keyed_cipher(ikc_cipher_kind kind, const uint8_t *key, int enc, EVP_CIPHER_CTX **out) {
    EVP_CIPHER *cipher = ikc_get_cipher(kind);
    EVP_CIPHER_CTX *ctx = cipher ? EVP_CIPHER_CTX_new() : NULL;
    int aead = kind == IKC_C_AES128_GCM || kind == IKC_C_AES192_GCM || kind == IKC_C_AES256_GCM ||
               kind == IKC_C_CHACHA20_POLY1305;
    int rc = !cipher ? IKC_ERR_UNSUPPORTED : !ctx ? IKC_ERR_NOMEM : IKC_OK;
    /* the key schedule is computed once here; each message only sets its IV */
    if (rc == IKC_OK &&
        (EVP_CipherInit_ex2(ctx, cipher, NULL, NULL, enc, NULL) != 1 ||
         (aead && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1) ||
         EVP_CipherInit_ex2(ctx, NULL, key, NULL, enc, NULL) != 1 ||
         (!aead && EVP_CIPHER_CTX_set_padding(ctx, 0) != 1)))
        rc = IKC_ERR_OPENSSL;
    EVP_CIPHER_free(cipher);
    if (rc != IKC_OK) {
        EVP_CIPHER_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return IKC_OK;
}

/* Unpredictable CBC IVs without a DRBG call per message (RAND_bytes costs more
 * than sealing an IKE message): IV = AES-ECB(random key, counter | random salt),
 * a PRP of a never-repeating input (NIST SP 800-38A Appendix C). */
int ikc_ivgen_init(ikc_ivgen *g) {
    uint8_t key[16];
    int rc = ikc_random(key, sizeof(key));
    g->ecb = NULL;
    if (rc == IKC_OK) rc = ikc_random(g->salt, sizeof(g->salt));
    if (rc == IKC_OK) rc = ikc_keyed_cipher(IKC_C_AES128_ECB, key, 1, &g->ecb);
    ikc_wipe(key, sizeof(key));
    return rc;
}

int ikc_ivgen_next(ikc_ivgen *g, uint64_t counter, uint8_t out[16]) {
    uint8_t block[16];
    int n = 0;
    for (int i = 7; i >= 0; i--) { block[i] = (uint8_t)counter; counter >>= 8; }
    memcpy(block + 8, g->salt, 8);
    return EVP_EncryptUpdate(g->ecb, out, &n, block, 16) == 1 && n == 16 ? IKC_OK : IKC_ERR_OPENSSL;
}

void ikc_ivgen_free(ikc_ivgen *g) {
    EVP_CIPHER_CTX_free(g->ecb);    /* frees (and cleanses) the key schedule */
    g->ecb = NULL;
    ikc_wipe(g->salt, sizeof(g->salt));
}

/* AEAD tags through the parameter API directly: EVP_CIPHER_CTX_ctrl builds the
 * same OSSL_PARAM on every call, which costs a tenth of sealing a small packet. */
int ikc_aead_get_tag(EVP_CIPHER_CTX *ctx, uint8_t *tag, size_t len) {
    OSSL_PARAM p[2] = { OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, len),
                        OSSL_PARAM_construct_end() };
    return EVP_CIPHER_CTX_get_params(ctx, p) == 1 ? IKC_OK : IKC_ERR_OPENSSL;
}

int ikc_aead_set_tag(EVP_CIPHER_CTX *ctx, const uint8_t *tag, size_t len) {
    OSSL_PARAM p[2] = { OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, (void *)tag, len),
                        OSSL_PARAM_construct_end() };
    return EVP_CIPHER_CTX_set_params(ctx, p) == 1 ? IKC_OK : IKC_ERR_OPENSSL;
}
