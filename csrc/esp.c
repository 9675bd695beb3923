/* esp.c - ESP transforms (RFC 4303), one SA per direction (or both, for tests).
 *
 * AEAD (RFC 4106 AES-GCM-16, RFC 7634 ChaCha20-Poly1305):
 *   key = cipher key | 4-octet salt; nonce = salt | 8-octet IV; the IV is the
 *   64-bit sequence number (unique per SA, never repeats since the counter never
 *   cycles); AAD = SPI | seq32, or SPI | seq-high | seq-low with ESN (RFC 4106 §5,
 *   RFC 7634 §2.1); padding only for 4-octet alignment.
 * AES-CBC + HMAC-SHA2 (RFC 3602, RFC 4868): 16-octet IV = AES-ECB under a
 *   per-SA random key of (seq64 | per-SA random salt): unique and unpredictable
 *   (NIST SP 800-38A App. C); plaintext padded to 16 octets; ICV = truncated
 *   HMAC over SPI .. end of ciphertext [| seq-high with ESN] (RFC 4303 §3.3.2.1).
 *
 * Receive order (RFC 4303 §3.4): SPI, length/alignment, sequence number
 * inference (RFC 4303 App. A2.2) and replay check, ICV, decrypt, window update
 * (only after the ICV verified), padding check. No plaintext is returned for a
 * packet whose ICV failed: the output is wiped.
 *
 * Anti-replay window: RFC 6479 ring of 64-bit words, sliding clears whole words. */
#include "internal.h"
#include "esp_internal.h"
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

#define AEAD_IV_LEN 8
#define CBC_IV_LEN 16

void ikc_esp_free(ikc_esp *sa) {
    if (!sa) return;
    EVP_CIPHER_CTX_free(sa->enc);   /* frees and cleanses the key schedules */
    EVP_CIPHER_CTX_free(sa->dec);
    ikc_ivgen_free(&sa->ivgen);
    ikc_hmac_release(sa->integ);
    OPENSSL_cleanse(sa, sa->size);    /* the tail too: the replay state */
    free(sa);
}

/* the whole 12-octet nonce as TLS's "fixed IV" with the documented length -1
 * (AES-GCM), the tag to expect (decrypting) and the tag made (encrypting) */
static void aead_params_init(ikc_esp *sa) {
    if (sa->p_nonce_out) {
        sa->p_nonce_out[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED,
                                                               sa->nonce_out, (size_t)-1);
        sa->p_nonce_out[1] = OSSL_PARAM_construct_end();
        sa->p_tag_out[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, sa->tag_out, 16);
        sa->p_tag_out[1] = OSSL_PARAM_construct_end();
    }
    if (sa->p_nonce_in) {
        sa->p_nonce_in[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, sa->tag_in, 16);
        sa->p_nonce_in[1] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED,
                                                              sa->nonce_in, (size_t)-1);
        sa->p_nonce_in[2] = OSSL_PARAM_construct_end();
    }
}

/* RFC 6479: M words with (M-1)*64 >= window - 1; M a power of two. No
 * window (an outbound SA, or replay checks off): no bitmap. */
static uint32_t replay_words(uint32_t window) {
    uint32_t need = window / 64 + 2, m = 2;
    if (!window) return 0;
    while (m < need) m <<= 1;
    return m;
}

int ikc_esp_new(uint32_t spi, int encr_id, const uint8_t *key, size_t key_len,
                int integ_id, const uint8_t *integ_key, size_t integ_key_len,
                unsigned int flags, uint32_t replay_window, ikc_esp **out) {
    ikc_encr_info info;
    int rc;
    if (!out) return IKC_ERR_ARG;
    *out = NULL;
    if (!key || replay_window > IKC_ESP_MAX_WINDOW || (integ_key_len && !integ_key) ||
        (flags & ~(unsigned)63) ||
        ((flags & IKC_ESP_F_OUTBOUND) && (flags & IKC_ESP_F_INBOUND)))
        return IKC_ERR_ARG;
    /* ESP implements the 16-octet ICV of AES-GCM only (RFC 4106 §8.3's MUST) */
    if (encr_id != IKC_ENCR_AES_GCM_16 && encr_id != IKC_ENCR_CHACHA20_POLY1305 && encr_id != IKC_ENCR_AES_CBC)
        return IKC_ERR_UNSUPPORTED;
    if ((rc = ikc_encr_lookup(encr_id, key_len, &info)) != IKC_OK) return rc;
    int want_out = !(flags & IKC_ESP_F_INBOUND), want_in = !(flags & IKC_ESP_F_OUTBOUND);
    /* the tail: the AEAD parameters of the directions the SA has, then the
     * replay bitmap */
    size_t n_out = info.aead && want_out ? 4 : 0, n_in = info.aead && want_in ? 3 : 0;
    uint32_t words = replay_words(replay_window);
    size_t size = sizeof(ikc_esp) + (n_out + n_in) * sizeof(OSSL_PARAM) + (size_t)words * sizeof(uint64_t);
    ikc_esp *sa = calloc(1, size);
    if (!sa) return IKC_ERR_NOMEM;
    sa->size = (uint32_t)size;      /* under 300 KB: the largest window's bitmap is 256 KB */
    OSSL_PARAM *params = (OSSL_PARAM *)sa->tail;
    if (n_out) {
        sa->p_nonce_out = params;
        sa->p_tag_out = params + 2;
    }
    if (n_in) sa->p_nonce_in = params + n_out;
    sa->window = replay_window;
    sa->wmask = words ? words - 1 : 0;
    sa->bitmap = words ? (uint64_t *)(params + n_out + n_in) : NULL;
    sa->spi = spi;
    sa->flags = flags;
    sa->esn = (flags & IKC_ESP_F_ESN) != 0;
    sa->seq_max = sa->esn ? UINT64_MAX : UINT32_MAX;
    sa->aead = info.aead;
    if (sa->aead) {
        /* RFC 4106 §8 / RFC 7634 §2: no separate integrity transform */
        if (integ_id != IKC_INTEG_NONE || integ_key_len) { rc = IKC_ERR_ARG; goto fail; }
        sa->iv_len = AEAD_IV_LEN;
        sa->icv_len = 16;
        sa->block = 4;
        memcpy(sa->salt, key + info.cipher_key_len, 4);
    } else {
        sa->iv_len = CBC_IV_LEN;
        sa->block = 16;
        if (integ_id == IKC_INTEG_NONE) {
            /* confidentiality-only ESP is legal (RFC 4303 §3.2) but must be asked for */
            if (!(flags & IKC_ESP_F_NO_INTEGRITY) || integ_key_len) { rc = IKC_ERR_ARG; goto fail; }
            sa->icv_len = 0;
        } else {
            size_t want_key, icv;
            ikc_md_kind md;
            if ((rc = ikc_integ_params(integ_id, &want_key, &icv, &md)) != IKC_OK) goto fail;
            if (!integ_key || integ_key_len != want_key) { rc = IKC_ERR_KEYLEN; goto fail; }
            sa->icv_len = icv;
            if ((rc = ikc_hmac_new(md, integ_key, integ_key_len, &sa->integ)) != IKC_OK) goto fail;
            sa->has_integ = 1;
        }
    }
    sa->hdr_len = IKC_ESP_HEADER_LEN + sa->iv_len;
    rc = IKC_OK;
    if (want_out) rc = ikc_keyed_cipher(info.kind, key, 1, &sa->enc);
    if (rc == IKC_OK && want_in) rc = ikc_keyed_cipher(info.kind, key, 0, &sa->dec);
    if (rc != IKC_OK) goto fail;
    if (sa->aead) {
        aead_params_init(sa);
        /* AES-GCM: nonces by parameter where the provider takes them (the
         * default one does); otherwise every packet re-initialises the cipher */
        if (encr_id == IKC_ENCR_AES_GCM_16) {
            sa->gcm_nonce_param = (!want_out || EVP_CIPHER_CTX_set_params(sa->enc, sa->p_nonce_out) == 1) &&
                                  (!want_in || EVP_CIPHER_CTX_set_params(sa->dec, sa->p_nonce_in) == 1);
            if (!sa->gcm_nonce_param) ERR_clear_error();
        }
    }
    if (!sa->aead && want_out && (rc = ikc_ivgen_init(&sa->ivgen)) != IKC_OK) goto fail;
    *out = sa;
    return IKC_OK;
fail:
    ikc_esp_free(sa);
    return rc;
}

int ikc_esp_params(const ikc_esp *sa, size_t *iv_len, size_t *icv_len, size_t *block_len) {
    if (!sa || !iv_len || !icv_len || !block_len) return IKC_ERR_ARG;
    *iv_len = sa->iv_len;
    *icv_len = sa->icv_len;
    *block_len = sa->block;
    return IKC_OK;
}

/* encrypted part: payload | TFC | padding | pad length | next header, aligned */
static inline size_t body_len(const ikc_esp *sa, size_t inner) {
    return (inner + 2 + sa->block - 1) / sa->block * sa->block;
}

int ikc_esp_packet_len(const ikc_esp *sa, size_t payload_len, size_t tfc_len, size_t *packet_len) {
    if (!sa || !packet_len) return IKC_ERR_ARG;
    if (payload_len > IKC_ESP_MAX_PACKET || tfc_len > IKC_ESP_MAX_PACKET) return IKC_ERR_ARG;
    size_t n = sa->hdr_len + body_len(sa, payload_len + tfc_len) + sa->icv_len;
    if (n > IKC_ESP_MAX_PACKET) return IKC_ERR_ARG;
    *packet_len = n;
    return IKC_OK;
}

static inline void put64(uint8_t *p, uint64_t v) {
    ikc_put32(p, (uint32_t)(v >> 32));
    ikc_put32(p + 4, (uint32_t)v);
}

/* ---- sealing ----
 * pkt points at the packet's first octet (SPI); the payload is already at
 * pkt + hdr_len (payload_len octets); cap = room from pkt on. */
/* src: where the payload is, when it is not already at pkt + hdr_len. An AEAD
 * encrypts it from there (no copy); CBC copies it in first. */
static int esp_seal(ikc_esp *sa, uint8_t *pkt, const uint8_t *src, size_t payload_len, int next_header,
                    size_t tfc_len, const uint8_t *iv_override, size_t cap, size_t *out_len) {
    int n;
    if (!sa->enc) return IKC_ERR_STATE;
    if (next_header < 0 || next_header > 255) return IKC_ERR_ARG;
    if (payload_len > IKC_ESP_MAX_PACKET || tfc_len > IKC_ESP_MAX_PACKET) return IKC_ERR_ARG;
    size_t inner = payload_len + tfc_len;
    size_t body = body_len(sa, inner);
    size_t total = sa->hdr_len + body + sa->icv_len;
    if (total > IKC_ESP_MAX_PACKET) return IKC_ERR_ARG;
    if (total > cap) return IKC_ERR_BUFFER;
    if (sa->seq_out >= sa->seq_max) return IKC_ERR_SEQ_EXHAUSTED;   /* never wrap: rekey */
    uint64_t seq = sa->seq_out + 1;

    uint8_t *ivp = pkt + IKC_ESP_HEADER_LEN, *ct = pkt + sa->hdr_len, *icv = ct + body;
    if (src && !sa->aead && payload_len) memmove(ct, src, payload_len);
    if (!sa->aead) src = NULL;
    ikc_put32(pkt, sa->spi);
    ikc_put32(pkt + 4, (uint32_t)seq);
    if (iv_override) {
        memcpy(ivp, iv_override, sa->iv_len);
    } else if (sa->aead) {
        put64(ivp, seq);
    } else {
        if (ikc_ivgen_next(&sa->ivgen, seq, ivp) != IKC_OK) return IKC_ERR_OPENSSL;
    }
    /* trailer: TFC zeros, padding 1,2,3,... (RFC 4303 §2.4), pad length, next header */
    uint8_t *t = ct + payload_len;
    if (tfc_len) memset(t, 0, tfc_len);
    size_t pad = body - inner - 2;
    for (size_t i = 0; i < pad; i++) t[tfc_len + i] = (uint8_t)(i + 1);
    ct[body - 2] = (uint8_t)pad;
    ct[body - 1] = (uint8_t)next_header;

    if (sa->aead) {
        uint8_t *nonce = sa->nonce_out, aad[12];
        size_t aad_len;
        memcpy(nonce, sa->salt, 4);
        memcpy(nonce + 4, ivp, 8);
        ikc_put32(aad, sa->spi);
        if (sa->esn) { put64(aad + 4, seq); aad_len = 12; }
        else { ikc_put32(aad + 4, (uint32_t)seq); aad_len = 8; }
        int n2 = 0;
        /* payload from its source (or in place), then the trailer in place */
        size_t first = src ? payload_len : body;
        if ((sa->gcm_nonce_param ? EVP_CIPHER_CTX_set_params(sa->enc, sa->p_nonce_out) != 1
                                 : EVP_EncryptInit_ex2(sa->enc, NULL, NULL, nonce, NULL) != 1) ||
            EVP_EncryptUpdate(sa->enc, NULL, &n, aad, (int)aad_len) != 1 ||
            (first && EVP_EncryptUpdate(sa->enc, ct, &n, src ? src : ct, (int)first) != 1) ||
            (first != body && EVP_EncryptUpdate(sa->enc, ct + first, &n2, ct + first, (int)(body - first)) != 1) ||
            EVP_EncryptFinal_ex(sa->enc, ct + body, &n) != 1 ||
            EVP_CIPHER_CTX_get_params(sa->enc, sa->p_tag_out) != 1)
            goto openssl_fail;
        memcpy(icv, sa->tag_out, sa->icv_len);
    } else {
        if (EVP_EncryptInit_ex2(sa->enc, NULL, NULL, ivp, NULL) != 1 ||
            EVP_EncryptUpdate(sa->enc, ct, &n, ct, (int)body) != 1 || (size_t)n != body)
            goto openssl_fail;
        if (sa->has_integ) {
            uint8_t mac[64], hi[4];
            ikc_put32(hi, (uint32_t)(seq >> 32));
            const uint8_t *parts[2] = { pkt, hi };
            size_t lens[2] = { sa->hdr_len + body, sa->esn ? 4 : 0 };
            if (ikc_hmac_oneshot(sa->integ, parts, lens, 2, mac) != IKC_OK) goto openssl_fail;
            memcpy(icv, mac, sa->icv_len);
            OPENSSL_cleanse(mac, sizeof(mac));
        }
    }
    sa->seq_out = seq;
    sa->stats[IKC_ESP_STAT_PACKETS]++;
    sa->stats[IKC_ESP_STAT_OCTETS] += payload_len;
    *out_len = total;
    return IKC_OK;
openssl_fail:
    OPENSSL_cleanse(pkt, total);
    return IKC_ERR_OPENSSL;
}

int ikc_esp_seal_inplace(ikc_esp *sa, uint8_t *pkt, size_t payload_len, int next_header,
                         size_t tfc_len, const uint8_t *iv_override, size_t cap, size_t *out_len) {
    return esp_seal(sa, pkt, NULL, payload_len, next_header, tfc_len, iv_override, cap, out_len);
}

static int encrypt_common(ikc_esp *sa, const uint8_t *iv, size_t iv_len,
                          const uint8_t *payload, size_t payload_len, int next_header,
                          size_t tfc_len, uint8_t *out, size_t out_cap, size_t *out_len) {
    if (!sa || !out || !out_len || (!payload && payload_len)) return IKC_ERR_ARG;
    if (iv && iv_len != sa->iv_len) return IKC_ERR_ARG;
    if (payload_len > IKC_ESP_MAX_PACKET) return IKC_ERR_ARG;
    if (out_cap < sa->hdr_len || out_cap - sa->hdr_len < payload_len) return IKC_ERR_BUFFER;
    return esp_seal(sa, out, payload_len ? payload : NULL, payload_len, next_header, tfc_len, iv,
                    out_cap, out_len);
}

int ikc_esp_encrypt(ikc_esp *sa, const uint8_t *payload, size_t payload_len, int next_header,
                    size_t tfc_len, uint8_t *out, size_t out_cap, size_t *out_len) {
    return encrypt_common(sa, NULL, 0, payload, payload_len, next_header, tfc_len, out, out_cap, out_len);
}

int ikc_esp_encrypt_iv(ikc_esp *sa, const uint8_t *iv, size_t iv_len,
                       const uint8_t *payload, size_t payload_len, int next_header,
                       size_t tfc_len, uint8_t *out, size_t out_cap, size_t *out_len) {
    if (!iv) return IKC_ERR_ARG;
    return encrypt_common(sa, iv, iv_len, payload, payload_len, next_header, tfc_len, out, out_cap, out_len);
}

/* ---- anti-replay and ESN inference ---- */

/* RFC 4303 App. A2.2: the 64-bit number a received low half stands for. */
static int infer_seq(const ikc_esp *sa, uint32_t seql, uint64_t *seq) {
    if (!sa->esn) { *seq = seql; return IKC_OK; }
    /* with the window off, infer over half the 32-bit space */
    uint32_t w = sa->window ? sa->window : 0x80000000u;
    uint32_t tl = (uint32_t)sa->top, th = (uint32_t)(sa->top >> 32), sh;
    if (tl >= w - 1) {                       /* case A */
        if (seql >= tl - w + 1) sh = th;
        else if (th == UINT32_MAX) return IKC_ERR_REPLAY;   /* beyond 2^64: cannot be valid */
        else sh = th + 1;
    } else {                                 /* case B */
        if (seql >= tl - w + 1) {            /* mod 2^32: the previous epoch */
            if (th == 0) return IKC_ERR_REPLAY;   /* before the first packet */
            sh = th - 1;
        } else sh = th;
    }
    *seq = ((uint64_t)sh << 32) | seql;
    return IKC_OK;
}

static inline int replay_check(const ikc_esp *sa, uint64_t seq) {
    if (seq == 0) return IKC_ERR_REPLAY;     /* never sent: the counter starts at 1 */
    if (!sa->window || seq > sa->top) return IKC_OK;
    if (sa->top - seq >= sa->window) return IKC_ERR_REPLAY;   /* left of the window */
    uint64_t word = sa->bitmap[(seq >> 6) & sa->wmask];
    return (word >> (seq & 63)) & 1 ? IKC_ERR_REPLAY : IKC_OK;
}

static inline void replay_update(ikc_esp *sa, uint64_t seq) {
    if (seq > sa->top) {
        if (sa->window) {
            uint64_t cur = sa->top >> 6, nw = seq >> 6, diff = nw - cur;
            if (diff > (uint64_t)sa->wmask + 1) diff = (uint64_t)sa->wmask + 1;
            for (uint64_t i = 1; i <= diff; i++) sa->bitmap[(cur + i) & sa->wmask] = 0;
        }
        sa->top = seq;
    }
    if (sa->window) sa->bitmap[(seq >> 6) & sa->wmask] |= (uint64_t)1 << (seq & 63);
}

/* ---- opening ----
 * pkt/len: the packet; out: where the decrypted body goes (may be
 * pkt + hdr_len: in place); out_cap its room. On success *payload_len,
 * *nh and *seq are set; status IKC_OK, or IKC_PKT_DUMMY for next header 59. */
int ikc_esp_open(ikc_esp *sa, uint8_t *pkt, size_t len, uint8_t *out, size_t out_cap,
                 size_t *payload_len, int *nh, uint64_t *seqp) {
    int n, rc;
    if (!sa->dec) return IKC_ERR_STATE;
    if (len < IKC_ESP_HEADER_LEN) { sa->stats[IKC_ESP_STAT_MALFORMED]++; return IKC_ERR_TRUNCATED; }
    if (ikc_get32(pkt) != sa->spi) { sa->stats[IKC_ESP_STAT_MALFORMED]++; return IKC_ERR_SPI; }
    if (len > IKC_ESP_MAX_PACKET) { sa->stats[IKC_ESP_STAT_MALFORMED]++; return IKC_ERR_BUFFER; }
    /* at least header, one aligned block (holding pad length + next header), ICV */
    if (len < sa->hdr_len + sa->block + sa->icv_len) { sa->stats[IKC_ESP_STAT_MALFORMED]++; return IKC_ERR_TRUNCATED; }
    size_t body = len - sa->hdr_len - sa->icv_len;
    if (body % sa->block) { sa->stats[IKC_ESP_STAT_MALFORMED]++; return IKC_ERR_PADDING; }
    if (out_cap < body) { sa->stats[IKC_ESP_STAT_MALFORMED]++; return IKC_ERR_BUFFER; }
    uint64_t seq;
    if ((rc = infer_seq(sa, ikc_get32(pkt + 4), &seq)) != IKC_OK ||
        (rc = replay_check(sa, seq)) != IKC_OK) {
        sa->stats[IKC_ESP_STAT_REPLAYED]++;
        return rc;
    }
    const uint8_t *ivp = pkt + IKC_ESP_HEADER_LEN, *ct = pkt + sa->hdr_len, *icv = ct + body;

    if (sa->aead) {
        uint8_t *nonce = sa->nonce_in, aad[12];
        size_t aad_len;
        memcpy(nonce, sa->salt, 4);
        memcpy(nonce + 4, ivp, 8);
        ikc_put32(aad, sa->spi);
        if (sa->esn) { put64(aad + 4, seq); aad_len = 12; }
        else { ikc_put32(aad + 4, (uint32_t)seq); aad_len = 8; }
        memcpy(sa->tag_in, icv, 16);   /* in-place decryption may not clobber it, but be safe */
        if ((sa->gcm_nonce_param ? EVP_CIPHER_CTX_set_params(sa->dec, sa->p_nonce_in) != 1
                                 : EVP_DecryptInit_ex2(sa->dec, NULL, NULL, nonce, NULL) != 1 ||
                                   ikc_aead_set_tag(sa->dec, sa->tag_in, 16) != IKC_OK) ||
            EVP_DecryptUpdate(sa->dec, NULL, &n, aad, (int)aad_len) != 1 ||
            EVP_DecryptUpdate(sa->dec, out, &n, ct, (int)body) != 1) {
            OPENSSL_cleanse(out, body);
            return IKC_ERR_OPENSSL;
        }
        if (EVP_DecryptFinal_ex(sa->dec, out + n, &n) != 1) {
            OPENSSL_cleanse(out, body);   /* no unauthenticated plaintext leaves */
            sa->stats[IKC_ESP_STAT_AUTH_FAILED]++;
            return IKC_ERR_TAG;
        }
    } else {
        if (sa->has_integ) {
            uint8_t mac[64], hi[4];
            ikc_put32(hi, (uint32_t)(seq >> 32));
            const uint8_t *parts[2] = { pkt, hi };
            size_t lens[2] = { sa->hdr_len + body, sa->esn ? 4 : 0 };
            if (ikc_hmac_oneshot(sa->integ, parts, lens, 2, mac) != IKC_OK) return IKC_ERR_OPENSSL;
            int ok = ikc_ct_equal(mac, icv, sa->icv_len);
            OPENSSL_cleanse(mac, sizeof(mac));
            if (!ok) { sa->stats[IKC_ESP_STAT_AUTH_FAILED]++; return IKC_ERR_TAG; }   /* before decrypting */
        }
        if (EVP_DecryptInit_ex2(sa->dec, NULL, NULL, ivp, NULL) != 1 ||
            EVP_DecryptUpdate(sa->dec, out, &n, ct, (int)body) != 1 || (size_t)n != body) {
            OPENSSL_cleanse(out, body);
            return IKC_ERR_OPENSSL;
        }
    }
    /* authenticated: the window moves now (RFC 4303 §3.4.3) */
    replay_update(sa, seq);

    size_t pad = out[body - 2];
    uint8_t next = out[body - 1];
    if (pad + 2 > body) { OPENSSL_cleanse(out, body); sa->stats[IKC_ESP_STAT_MALFORMED]++; return IKC_ERR_PADDING; }
    size_t plen = body - pad - 2;
    if (!(sa->flags & IKC_ESP_F_NO_PAD_CHECK)) {
        uint8_t bad = 0;
        for (size_t i = 0; i < pad; i++) bad |= (uint8_t)(out[plen + i] ^ (uint8_t)(i + 1));
        if (bad) { OPENSSL_cleanse(out, body); sa->stats[IKC_ESP_STAT_MALFORMED]++; return IKC_ERR_PADDING; }
    }
    /* TFC padding (RFC 4303 §2.7) after an inner IP packet: cut at its length */
    if (!(sa->flags & IKC_ESP_F_KEEP_TFC)) {
        if (next == 4 && plen >= 20 && (out[0] >> 4) == 4) {
            size_t ip_len = ((size_t)out[2] << 8) | out[3];
            if (ip_len >= 20 && ip_len < plen) plen = ip_len;
        } else if (next == 41 && plen >= 40 && (out[0] >> 4) == 6) {
            size_t ip_len = 40 + (((size_t)out[4] << 8) | out[5]);
            if (ip_len < plen) plen = ip_len;
        }
    }
    sa->stats[IKC_ESP_STAT_PACKETS]++;
    sa->stats[IKC_ESP_STAT_OCTETS] += plen;
    *payload_len = plen;
    *nh = next;
    *seqp = seq;
    sa->last_seq = seq;
    return next == IKC_ESP_NH_DUMMY ? IKC_PKT_DUMMY : IKC_OK;
}

int ikc_esp_decrypt(ikc_esp *sa, const uint8_t *packet, size_t packet_len,
                    uint8_t *out, size_t out_cap, size_t *out_len, int *next_header, uint64_t *seq) {
    size_t plen;
    int nh;
    uint64_t s;
    if (!sa || !packet || !out || !out_len) return IKC_ERR_ARG;
    int rc = ikc_esp_open(sa, (uint8_t *)packet, packet_len, out, out_cap, &plen, &nh, &s);
    if (rc < 0) return rc;
    /* the body was decrypted at out; the payload starts there */
    *out_len = plen;
    if (next_header) *next_header = nh;
    if (seq) *seq = s;
    return IKC_OK;
}

/* The single-packet calls' output: one buffer per thread rather than per SA
 * (2 KB each, which a gateway holding 100,000 Child SAs cannot afford). A
 * caller reads it before its thread makes the next call. */
static _Thread_local uint8_t esp_scratch[IKC_ESP_SCRATCH];

char *ikc_esp_scratch(ikc_esp *sa) { return sa ? (char *)esp_scratch : NULL; }
uint64_t ikc_esp_last_seq(const ikc_esp *sa) { return sa ? sa->last_seq : 0; }

int ikc_esp_encrypt1(ikc_esp *sa, const char *payload, size_t payload_len, int next_header) {
    size_t out_len;
    if (!sa || (!payload && payload_len)) return IKC_ERR_ARG;
    if (payload_len > IKC_ESP_SCRATCH - sa->hdr_len) return IKC_ERR_BUFFER;
    if (payload_len) memcpy(esp_scratch + sa->hdr_len, payload, payload_len);
    int rc = ikc_esp_seal_inplace(sa, esp_scratch, payload_len, next_header, 0, NULL,
                                  IKC_ESP_SCRATCH, &out_len);
    return rc == IKC_OK ? (int)out_len : rc;
}

int ikc_esp_decrypt1(ikc_esp *sa, const char *packet, size_t packet_len) {
    size_t plen;
    int nh;
    if (!sa || !packet) return IKC_ERR_ARG;
    if (packet_len > IKC_ESP_SCRATCH) return IKC_ERR_BUFFER;
    int rc = ikc_esp_open(sa, (uint8_t *)packet, packet_len, esp_scratch, IKC_ESP_SCRATCH,
                          &plen, &nh, &sa->last_seq);
    if (rc < 0) return rc;
    return (int)(plen << 8) | nh;   /* plen < IKC_ESP_SCRATCH: no overflow */
}

int ikc_esp_get_seq(const ikc_esp *sa, uint64_t *last_sent) {
    if (!sa || !last_sent) return IKC_ERR_ARG;
    *last_sent = sa->seq_out;
    return IKC_OK;
}

int ikc_esp_set_seq(ikc_esp *sa, uint64_t last_sent) {
    if (!sa) return IKC_ERR_ARG;
    if (last_sent > sa->seq_max) return IKC_ERR_ARG;
    if (last_sent < sa->seq_out) return IKC_ERR_STATE;   /* an IV must never repeat */
    sa->seq_out = last_sent;
    return IKC_OK;
}

int ikc_esp_get_replay_top(const ikc_esp *sa, uint64_t *top) {
    if (!sa || !top) return IKC_ERR_ARG;
    *top = sa->top;
    return IKC_OK;
}

int ikc_esp_set_replay_top(ikc_esp *sa, uint64_t top) {
    if (!sa) return IKC_ERR_ARG;
    if (top > sa->seq_max) return IKC_ERR_ARG;
    if (sa->bitmap) memset(sa->bitmap, 0, (size_t)(sa->wmask + 1) * sizeof(uint64_t));
    sa->top = top;
    if (top && sa->window) sa->bitmap[(top >> 6) & sa->wmask] |= (uint64_t)1 << (top & 63);
    return IKC_OK;
}

int ikc_esp_stats(const ikc_esp *sa, uint64_t *out, size_t n) {
    if (!sa || !out || n > IKC_ESP_STAT_COUNT) return IKC_ERR_ARG;
    memcpy(out, sa->stats, n * sizeof(uint64_t));
    return IKC_OK;
}
