/* ticket.c - session resumption ticket protection (RFC 5723 §6.1, §9.1).
 *
 * One ikc_ticket_key per ticket-protection key: AES-GCM (128 or 256) keyed
 * once in an encrypting and a decrypting context, the algorithm fetched from
 * the library context like every other object. A sealed blob is
 *     header | nonce (12) | ciphertext | tag (16)
 * where 'header' is the caller's clear framing (format version, key id) and
 * is the AAD, so nothing in a ticket is unauthenticated. The same object
 * wraps other ticket keys for a cluster's shared store: the raw key never
 * leaves C memory except sealed. Keys are wiped when freed. Not thread-safe:
 * one object per key and thread. */
#include "internal.h"
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

struct ikc_ticket_key {
    EVP_CIPHER_CTX *enc, *dec;
    size_t key_len;
    int nonce_param;             /* the provider takes the nonce as a parameter */
    uint8_t key[32];             /* kept for wrapping (ikc_ticket_wrap_key) */
    uint8_t nonce[IKC_TICKET_NONCE_LEN];
    uint8_t tag_out[IKC_TICKET_TAG_LEN], tag_in[IKC_TICKET_TAG_LEN];
    OSSL_PARAM p_nonce_out[2], p_open[3], p_tag_out[2];
};

void ikc_ticket_key_free(ikc_ticket_key *k) {
    if (!k) return;
    EVP_CIPHER_CTX_free(k->enc);   /* frees and cleanses the key schedules */
    EVP_CIPHER_CTX_free(k->dec);
    ikc_wipe(k, sizeof(*k));
    free(k);
}

int ikc_ticket_key_new(const uint8_t *key, size_t key_len, ikc_ticket_key **out) {
    int rc;
    if (!out || !key) return IKC_ERR_ARG;
    *out = NULL;
    if (key_len != 16 && key_len != 32) return IKC_ERR_KEYLEN;
    ikc_ticket_key *k = calloc(1, sizeof(*k));
    if (!k) return IKC_ERR_NOMEM;
    ikc_cipher_kind kind = key_len == 16 ? IKC_C_AES128_GCM : IKC_C_AES256_GCM;
    k->key_len = key_len;
    memcpy(k->key, key, key_len);
    if ((rc = ikc_keyed_cipher(kind, key, 1, &k->enc)) != IKC_OK ||
        (rc = ikc_keyed_cipher(kind, key, 0, &k->dec)) != IKC_OK) {
        ikc_ticket_key_free(k);
        return rc;
    }
    /* the whole 12-octet nonce as TLS's "fixed IV" (length -1), as esp.c does:
     * setting it by parameter skips a cipher re-initialisation per call */
    k->p_nonce_out[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED,
                                                          k->nonce, (size_t)-1);
    k->p_nonce_out[1] = OSSL_PARAM_construct_end();
    k->p_open[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, k->tag_in,
                                                     IKC_TICKET_TAG_LEN);
    k->p_open[1] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED,
                                                     k->nonce, (size_t)-1);
    k->p_open[2] = OSSL_PARAM_construct_end();
    k->p_tag_out[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, k->tag_out,
                                                        IKC_TICKET_TAG_LEN);
    k->p_tag_out[1] = OSSL_PARAM_construct_end();
    k->nonce_param = EVP_CIPHER_CTX_set_params(k->enc, k->p_nonce_out) == 1 &&
                     EVP_CIPHER_CTX_set_params(k->dec, k->p_open) == 1;
    if (!k->nonce_param) ERR_clear_error();
    *out = k;
    return IKC_OK;
}

int ikc_ticket_key_len(const ikc_ticket_key *k, size_t *key_len) {
    if (!k || !key_len) return IKC_ERR_ARG;
    *key_len = k->key_len;
    return IKC_OK;
}

static int seal(ikc_ticket_key *k, const uint8_t *header, size_t header_len,
                const uint8_t *nonce, size_t nonce_len, const uint8_t *plain, size_t plain_len,
                uint8_t *out, size_t out_len) {
    int n = 0;
    if (!k || !out || !nonce || (!header && header_len) || (!plain && plain_len)) return IKC_ERR_ARG;
    if (nonce_len != IKC_TICKET_NONCE_LEN) return IKC_ERR_ARG;
    if (header_len > IKC_TICKET_MAX_LEN || plain_len > IKC_TICKET_MAX_LEN) return IKC_ERR_ARG;
    if (out_len != header_len + IKC_TICKET_NONCE_LEN + plain_len + IKC_TICKET_TAG_LEN)
        return IKC_ERR_BUFFER;
    uint8_t *ct = out + header_len + IKC_TICKET_NONCE_LEN;
    /* memmove: the caller may hand the header in place in 'out' */
    if (header_len) memmove(out, header, header_len);
    memcpy(out + header_len, nonce, IKC_TICKET_NONCE_LEN);
    memcpy(k->nonce, nonce, IKC_TICKET_NONCE_LEN);
    if ((k->nonce_param ? EVP_CIPHER_CTX_set_params(k->enc, k->p_nonce_out) != 1
                        : EVP_EncryptInit_ex2(k->enc, NULL, NULL, k->nonce, NULL) != 1) ||
        (header_len && EVP_EncryptUpdate(k->enc, NULL, &n, out, (int)header_len) != 1) ||
        (plain_len && EVP_EncryptUpdate(k->enc, ct, &n, plain, (int)plain_len) != 1) ||
        EVP_EncryptFinal_ex(k->enc, ct + plain_len, &n) != 1 ||
        EVP_CIPHER_CTX_get_params(k->enc, k->p_tag_out) != 1) {
        ikc_wipe(out, out_len);
        ERR_clear_error();
        return IKC_ERR_OPENSSL;
    }
    memcpy(ct + plain_len, k->tag_out, IKC_TICKET_TAG_LEN);
    return IKC_OK;
}

int ikc_ticket_seal(ikc_ticket_key *k, const uint8_t *header, size_t header_len,
                    const uint8_t *nonce, size_t nonce_len, const uint8_t *plain, size_t plain_len,
                    char *out, size_t out_len) {
    return seal(k, header, header_len, nonce, nonce_len, plain, plain_len, (uint8_t *)out, out_len);
}

/* Verifies before anything leaves: on failure 'out' holds no plaintext. */
static int open_sealed(ikc_ticket_key *k, const uint8_t *sealed, size_t sealed_len, size_t header_len,
                       uint8_t *out, size_t out_cap, size_t *out_len) {
    int n = 0, written = 0, n2 = 0;
    if (!k || !sealed || !out || !out_len) return IKC_ERR_ARG;
    if (sealed_len > IKC_TICKET_MAX_LEN || header_len > IKC_TICKET_MAX_LEN) return IKC_ERR_ARG;
    if (sealed_len < header_len + IKC_TICKET_NONCE_LEN + IKC_TICKET_TAG_LEN) return IKC_ERR_TRUNCATED;
    size_t body = sealed_len - header_len - IKC_TICKET_NONCE_LEN - IKC_TICKET_TAG_LEN;
    if (out_cap < body) return IKC_ERR_BUFFER;
    const uint8_t *ct = sealed + header_len + IKC_TICKET_NONCE_LEN;
    memcpy(k->nonce, sealed + header_len, IKC_TICKET_NONCE_LEN);
    memcpy(k->tag_in, ct + body, IKC_TICKET_TAG_LEN);
    if ((k->nonce_param ? EVP_CIPHER_CTX_set_params(k->dec, k->p_open) != 1
                        : (EVP_DecryptInit_ex2(k->dec, NULL, NULL, k->nonce, NULL) != 1 ||
                           ikc_aead_set_tag(k->dec, k->tag_in, IKC_TICKET_TAG_LEN) != IKC_OK)) ||
        (header_len && EVP_DecryptUpdate(k->dec, NULL, &n, sealed, (int)header_len) != 1) ||
        (body && (EVP_DecryptUpdate(k->dec, out, &written, ct, (int)body) != 1 || (size_t)written != body))) {
        if (body) ikc_wipe(out, body);
        ERR_clear_error();
        return IKC_ERR_OPENSSL;
    }
    /* GCM writes nothing here; the pointer stays inside the caller's buffer */
    if (EVP_DecryptFinal_ex(k->dec, out + (size_t)written, &n2) != 1) {
        if (body) ikc_wipe(out, body);   /* no unauthenticated plaintext leaves */
        ERR_clear_error();
        return IKC_ERR_TAG;
    }
    *out_len = body;
    return IKC_OK;
}

int ikc_ticket_open(ikc_ticket_key *k, const uint8_t *sealed, size_t sealed_len, size_t header_len,
                    char *out, size_t out_cap, size_t *out_len) {
    return open_sealed(k, sealed, sealed_len, header_len, (uint8_t *)out, out_cap, out_len);
}

int ikc_ticket_wrap_key(ikc_ticket_key *wrapper, const ikc_ticket_key *k,
                        const uint8_t *header, size_t header_len, const uint8_t *nonce, size_t nonce_len,
                        char *out, size_t out_len) {
    if (!k) return IKC_ERR_ARG;
    return seal(wrapper, header, header_len, nonce, nonce_len, k->key, k->key_len, (uint8_t *)out, out_len);
}

int ikc_ticket_unwrap_key(ikc_ticket_key *wrapper, const uint8_t *sealed, size_t sealed_len,
                          size_t header_len, ikc_ticket_key **out) {
    uint8_t key[32];
    size_t key_len = 0;
    int rc;
    if (!out) return IKC_ERR_ARG;
    *out = NULL;
    /* a wrapped key is 16 or 32 octets: anything else is refused unopened */
    if (sealed_len < header_len + IKC_TICKET_NONCE_LEN + IKC_TICKET_TAG_LEN) return IKC_ERR_TRUNCATED;
    size_t body = sealed_len - header_len - IKC_TICKET_NONCE_LEN - IKC_TICKET_TAG_LEN;
    if (body != 16 && body != 32) return IKC_ERR_KEYLEN;
    rc = open_sealed(wrapper, sealed, sealed_len, header_len, key, sizeof(key), &key_len);
    if (rc == IKC_OK) rc = ikc_ticket_key_new(key, key_len, out);
    ikc_wipe(key, sizeof(key));
    return rc;
}
