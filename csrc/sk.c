/* sk.c - protection of the IKEv2 Encrypted payload (RFC 7296 §3.14).
 *
 * AEAD (RFC 5282 AES-GCM with 8/12/16-octet ICV, RFC 7634 ChaCha20-Poly1305):
 *   key = cipher key | 4-octet salt, nonce = salt | 8-octet IV,
 *   AAD = IKE header .. SK generic header, tag appended.
 * AES-CBC + HMAC-SHA2 (encrypt-then-MAC): 16-octet random IV, ICV = truncated
 *   HMAC over IKE header .. end of ciphertext. */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

#define SK_MAX_PLAIN (1u << 20)   /* far above any IKE message (max 64 KiB) */

struct ikc_sk {
    /* the 4-octet fields together, without padding between them: 120 octets
     * in all, the next smaller malloc chunk (two per IKE SA, for hours) */
    int aead;
    uint8_t salt[4];
    ikc_cipher_kind kind;
    uint8_t key[32];             /* the cipher key, for the context not made yet */
    size_t iv_len, icv_len, block_len;
    uint64_t next_iv;            /* IV counter (AEAD: the IV itself, random start) */
    ikc_ivgen ivgen;             /* CBC: unpredictable IVs from the counter */
    /* keyed on first use, then only the IV is set per message: an IKE SA seals
     * with one direction's keys and opens with the other's, so each ikc_sk
     * usually needs one context, not two (about 1 KB each) */
    EVP_CIPHER_CTX *enc, *dec;
    ikc_hmac *integ;             /* CBC only */
};

void ikc_sk_idle(ikc_sk *sk) {
    if (!sk) return;
    EVP_CIPHER_CTX_free(sk->enc);   /* frees and cleanses the key schedule; the key stays */
    EVP_CIPHER_CTX_free(sk->dec);
    sk->enc = sk->dec = NULL;
}

static int sk_context(ikc_sk *sk, int enc, EVP_CIPHER_CTX **ctx) {
    EVP_CIPHER_CTX **slot = enc ? &sk->enc : &sk->dec;
    if (!*slot) {
        int rc = ikc_keyed_cipher(sk->kind, sk->key, enc, slot);
        if (rc != IKC_OK) return rc;
    }
    *ctx = *slot;
    return IKC_OK;
}

void ikc_sk_free(ikc_sk *sk) {
    if (!sk) return;
    EVP_CIPHER_CTX_free(sk->enc);   /* frees (and cleanses) the key schedule */
    EVP_CIPHER_CTX_free(sk->dec);
    if (!sk->aead) {
        ikc_hmac_release(sk->integ);
        ikc_ivgen_free(&sk->ivgen);
    }
    ikc_wipe(sk, sizeof(*sk));
    free(sk);
}

int ikc_sk_new(int encr_id, const uint8_t *encr_key, size_t encr_key_len,
               int integ_id, const uint8_t *integ_key, size_t integ_key_len, ikc_sk **out) {
    ikc_encr_info info;
    int rc;
    if (!out || !encr_key) return IKC_ERR_ARG;
    *out = NULL;
    if ((rc = ikc_encr_lookup(encr_id, encr_key_len, &info)) != IKC_OK) return rc;
    ikc_sk *sk = calloc(1, sizeof(*sk));
    if (!sk) return IKC_ERR_NOMEM;
    sk->aead = info.aead;
    sk->icv_len = info.icv_len;
    if (sk->aead) {
        /* RFC 5282 §8 / RFC 7634 §4: an AEAD carries no separate integrity */
        if (integ_id != IKC_INTEG_NONE || integ_key_len) { rc = IKC_ERR_ARG; goto fail; }
        sk->iv_len = 8;
        sk->block_len = 1;
        memcpy(sk->salt, encr_key + info.cipher_key_len, 4);
        if ((rc = ikc_random((uint8_t *)&sk->next_iv, sizeof(sk->next_iv))) != IKC_OK) goto fail;
    } else {
        size_t want_key, icv;
        ikc_md_kind md;
        if ((rc = ikc_integ_params(integ_id, &want_key, &icv, &md)) != IKC_OK) goto fail;
        if (!integ_key || integ_key_len != want_key) { rc = IKC_ERR_KEYLEN; goto fail; }
        sk->iv_len = 16;
        sk->block_len = 16;
        sk->icv_len = icv;
        if ((rc = ikc_hmac_new(md, integ_key, integ_key_len, &sk->integ)) != IKC_OK) goto fail;
        if ((rc = ikc_ivgen_init(&sk->ivgen)) != IKC_OK) goto fail;
    }
    if (info.cipher_key_len > sizeof(sk->key)) { rc = IKC_ERR_KEYLEN; goto fail; }
    sk->kind = info.kind;
    memcpy(sk->key, encr_key, info.cipher_key_len);

    *out = sk;
    return IKC_OK;
fail:
    ikc_sk_free(sk);
    return rc;
}

int ikc_sk_params(const ikc_sk *sk, size_t *iv_len, size_t *icv_len, size_t *block_len) {
    if (!sk || !iv_len || !icv_len || !block_len) return IKC_ERR_ARG;
    *iv_len = sk->iv_len;
    *icv_len = sk->icv_len;
    *block_len = sk->block_len;
    return IKC_OK;
}

/* plaintext + padding + pad length byte, padded to the block size (minimum padding) */
static size_t padded_len(const ikc_sk *sk, size_t plain_len) {
    size_t n = plain_len + 1;
    return (n + sk->block_len - 1) / sk->block_len * sk->block_len;
}

int ikc_sk_sealed_len(const ikc_sk *sk, size_t plain_len, size_t *sealed_len) {
    if (!sk || !sealed_len || plain_len > SK_MAX_PLAIN) return IKC_ERR_ARG;
    *sealed_len = sk->iv_len + padded_len(sk, plain_len) + sk->icv_len;
    return IKC_OK;
}

static void aead_nonce(const ikc_sk *sk, const uint8_t *iv, uint8_t nonce[12]) {
    memcpy(nonce, sk->salt, 4);
    memcpy(nonce + 4, iv, 8);
}

int ikc_sk_seal(ikc_sk *sk, const uint8_t *aad, size_t aad_len,
                const uint8_t *plain, size_t plain_len,
                const uint8_t *iv, size_t iv_len, uint8_t *out, size_t out_len) {
    size_t sealed, body;
    int n, rc;
    if (!sk || !out || (!aad && aad_len) || (!plain && plain_len)) return IKC_ERR_ARG;
    if ((rc = ikc_sk_sealed_len(sk, plain_len, &sealed)) != IKC_OK) return rc;
    if (aad_len > SK_MAX_PLAIN) return IKC_ERR_ARG;
    if (out_len != sealed) return IKC_ERR_BUFFER;
    if (iv && iv_len != sk->iv_len) return IKC_ERR_ARG;
    EVP_CIPHER_CTX *enc;
    if ((rc = sk_context(sk, 1, &enc)) != IKC_OK) return rc;
    body = padded_len(sk, plain_len);
    uint8_t *ivp = out, *ct = out + sk->iv_len, *icv = ct + body;

    if (iv) {
        memcpy(ivp, iv, sk->iv_len);
    } else if (sk->aead) {
        uint64_t c = sk->next_iv++;
        for (int i = 7; i >= 0; i--) { ivp[i] = (uint8_t)c; c >>= 8; }
    } else if ((rc = ikc_ivgen_next(&sk->ivgen, sk->next_iv++, ivp)) != IKC_OK) {
        return rc;
    }
    /* the plaintext is framed in the output buffer and encrypted in place */
    memmove(ct, plain, plain_len);
    size_t pad = body - plain_len - 1;
    for (size_t i = 0; i < pad; i++) ct[plain_len + i] = (uint8_t)(i + 1);
    ct[body - 1] = (uint8_t)pad;

    if (sk->aead) {
        uint8_t nonce[12];
        aead_nonce(sk, ivp, nonce);
        if (EVP_EncryptInit_ex2(enc, NULL, NULL, nonce, NULL) != 1 ||
            (aad_len && EVP_EncryptUpdate(enc, NULL, &n, aad, (int)aad_len) != 1) ||
            EVP_EncryptUpdate(enc, ct, &n, ct, (int)body) != 1 ||
            EVP_EncryptFinal_ex(enc, ct + n, &n) != 1 ||
            ikc_aead_get_tag(enc, icv, sk->icv_len) != IKC_OK)
            goto openssl_fail;
    } else {
        uint8_t mac[64];
        if (EVP_EncryptInit_ex2(enc, NULL, NULL, ivp, NULL) != 1 ||
            EVP_EncryptUpdate(enc, ct, &n, ct, (int)body) != 1 || (size_t)n != body)
            goto openssl_fail;
        const uint8_t *parts[2] = { aad, out };
        size_t lens[2] = { aad_len, sk->iv_len + body };
        if (ikc_hmac_oneshot(sk->integ, parts, lens, 2, mac) != IKC_OK) goto openssl_fail;
        memcpy(icv, mac, sk->icv_len);
        ikc_wipe(mac, sizeof(mac));
    }
    return IKC_OK;
openssl_fail:
    ikc_wipe(out, out_len);
    return IKC_ERR_OPENSSL;
}

int ikc_sk_open(ikc_sk *sk, const uint8_t *aad, size_t aad_len,
                const uint8_t *sealed, size_t sealed_len,
                uint8_t *out, size_t out_cap, size_t *out_len) {
    int n, rc;
    EVP_CIPHER_CTX *dec;
    if (!sk || !sealed || !out || !out_len || (!aad && aad_len)) return IKC_ERR_ARG;
    if (aad_len > SK_MAX_PLAIN || sealed_len > SK_MAX_PLAIN) return IKC_ERR_ARG;
    /* at least IV, one block (pad length octet) and the ICV */
    if (sealed_len < sk->iv_len + sk->block_len + sk->icv_len) return IKC_ERR_TRUNCATED;
    size_t body = sealed_len - sk->iv_len - sk->icv_len;
    if (body % sk->block_len) return IKC_ERR_PADDING;
    if (out_cap < body) return IKC_ERR_BUFFER;
    if ((rc = sk_context(sk, 0, &dec)) != IKC_OK) return rc;
    const uint8_t *iv = sealed, *ct = sealed + sk->iv_len, *icv = ct + body;

    if (sk->aead) {
        uint8_t nonce[12];
        aead_nonce(sk, iv, nonce);
        if (EVP_DecryptInit_ex2(dec, NULL, NULL, nonce, NULL) != 1 ||
            ikc_aead_set_tag(dec, icv, sk->icv_len) != IKC_OK ||
            (aad_len && EVP_DecryptUpdate(dec, NULL, &n, aad, (int)aad_len) != 1) ||
            EVP_DecryptUpdate(dec, out, &n, ct, (int)body) != 1)
            goto openssl_fail;
        if (EVP_DecryptFinal_ex(dec, out + n, &n) != 1) {
            /* no plaintext leaves a failed tag check */
            ikc_wipe(out, body);
            return IKC_ERR_TAG;
        }
    } else {
        uint8_t mac[64];
        const uint8_t *parts[2] = { aad, sealed };
        size_t lens[2] = { aad_len, sk->iv_len + body };
        if (ikc_hmac_oneshot(sk->integ, parts, lens, 2, mac) != IKC_OK) goto openssl_fail;
        int ok = ikc_ct_equal(mac, icv, sk->icv_len);
        ikc_wipe(mac, sizeof(mac));
        if (!ok) return IKC_ERR_TAG;   /* MAC checked before anything is decrypted */
        if (EVP_DecryptInit_ex2(dec, NULL, NULL, iv, NULL) != 1 ||
            EVP_DecryptUpdate(dec, out, &n, ct, (int)body) != 1 || (size_t)n != body)
            goto openssl_fail;
    }
    size_t pad = out[body - 1];
    if (pad + 1 > body) {
        ikc_wipe(out, body);
        return IKC_ERR_PADDING;
    }
    *out_len = body - pad - 1;
    return IKC_OK;
openssl_fail:
    ikc_wipe(out, out_cap < body ? out_cap : body);
    return IKC_ERR_OPENSSL;
}

#define IKE_HEADER_LEN 28
#define GENERIC_HEADER_LEN 4

int ikc_sk_seal_message(ikc_sk *sk, const uint8_t *prefix, size_t prefix_len,
                        const uint8_t *plain, size_t plain_len, char *out_chars, size_t out_len) {
    uint8_t *out = (uint8_t *)out_chars;
    size_t sealed;
    int rc;
    if (!sk || !prefix || !out || (!plain && plain_len)) return IKC_ERR_ARG;
    if (prefix_len < IKE_HEADER_LEN + GENERIC_HEADER_LEN || prefix_len > SK_MAX_PLAIN) return IKC_ERR_ARG;
    if ((rc = ikc_sk_sealed_len(sk, plain_len, &sealed)) != IKC_OK) return rc;
    /* the SK payload length field is 16 bits; the whole message fits in 32 */
    if (sealed + GENERIC_HEADER_LEN > 0xffff) return IKC_ERR_LIMIT;
    if (out_len != prefix_len + sealed) return IKC_ERR_BUFFER;
    memcpy(out, prefix, prefix_len);
    ikc_put32(out + 24, (uint32_t)out_len);
    uint8_t *sk_len = out + prefix_len - 2;
    sk_len[0] = (uint8_t)((sealed + GENERIC_HEADER_LEN) >> 8);
    sk_len[1] = (uint8_t)(sealed + GENERIC_HEADER_LEN);
    return ikc_sk_seal(sk, out, prefix_len, plain, plain_len, NULL, 0, out + prefix_len, sealed);
}

int ikc_sk_open_message(ikc_sk *sk, const uint8_t *msg, size_t msg_len, size_t sk_offset,
                        char *out_chars, size_t out_cap, size_t *out_len) {
    uint8_t *out = (uint8_t *)out_chars;
    if (!sk || !msg || !out || !out_len) return IKC_ERR_ARG;
    if (msg_len > SK_MAX_PLAIN || sk_offset < IKE_HEADER_LEN || sk_offset > msg_len ||
        msg_len - sk_offset < GENERIC_HEADER_LEN)
        return IKC_ERR_TRUNCATED;
    size_t payload_len = ((size_t)msg[sk_offset + 2] << 8) | msg[sk_offset + 3];
    if (payload_len != msg_len - sk_offset || ikc_get32(msg + 24) != msg_len) return IKC_ERR_TRUNCATED;
    size_t aad_len = sk_offset + GENERIC_HEADER_LEN;
    return ikc_sk_open(sk, msg, aad_len, msg + aad_len, msg_len - aad_len, out, out_cap, out_len);
}
