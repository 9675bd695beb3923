/* esp_internal.h - the ESP SA and packet vector layouts, shared by esp.c and
 * esp_vec.c only; never seen by cffi. */
#ifndef IKC_ESP_INTERNAL_H
#define IKC_ESP_INTERNAL_H
#include "internal.h"

struct ikc_esp {
    uint32_t spi;
    unsigned int flags;
    /* octets, not ints, and the size beside them: a gateway holds two SAs per
     * Child SA, and 16 octets less moves both into a smaller malloc chunk */
    uint8_t aead, esn, has_integ;
    uint8_t gcm_nonce_param;                  /* AES-GCM: nonce by parameter, no re-initialisation */
    uint32_t size;                            /* of the whole allocation, tail included */
    uint8_t salt[4];                          /* AEAD nonce salt */
    size_t iv_len, icv_len, block, hdr_len;   /* block: alignment of the encrypted part */
    EVP_CIPHER_CTX *enc, *dec;                /* keyed once; IV set per packet */
    ikc_ivgen ivgen;                          /* CBC outbound: unpredictable IVs from seq */
    ikc_hmac *integ;                          /* CBC only: 688 octets an AEAD SA does without */
    uint64_t seq_out, seq_max;                /* last sequence number sent, its limit */
    uint64_t top;                             /* highest authenticated sequence number */
    uint32_t window, wmask;                   /* replay window (packets), ring words - 1 */
    uint64_t *bitmap;                         /* in tail; NULL without a window */
    uint64_t stats[IKC_ESP_STAT_COUNT];
    uint64_t last_seq;                        /* of the last packet decrypt1 opened */
    /* AEAD parameters built once, pointing at the buffers below: constructing
     * them per packet showed in profiles at 64 octets. In tail, for the
     * directions the SA has only (NULL otherwise): a gateway holds 100,000s of
     * one-way SAs, and the other direction's would cost 120-160 octets each. */
    OSSL_PARAM *p_nonce_out, *p_tag_out;      /* [2] each */
    OSSL_PARAM *p_nonce_in;                   /* [3] */
    uint8_t nonce_out[12], nonce_in[12], tag_in[16], tag_out[16];
    /* one allocation with the SA: its AEAD parameters, then its replay bitmap */
    _Alignas(8) unsigned char tail[];
};

struct ikc_pktvec {
    uint8_t *buf;
    uint32_t slots, slot_size, headroom, count;
    uint32_t *off, *len;
    int32_t *status;
    uint8_t *nh;
    uint64_t *seq;
    void *addr;          /* struct sockaddr_storage[slots] */
    uint32_t *addrlen;
    void *msgs, *iovs;   /* struct mmsghdr[slots], struct iovec[slots] (Linux) */
    uint32_t *map;       /* send: message index -> packet index */
    int last_errno;
};

/* packet i's slot, and whether its caller-writable offset/length stay inside it */
static inline uint8_t *ikc_vec_slot(const ikc_pktvec *v, uint32_t i) {
    return v->buf + (size_t)i * v->slot_size;
}

static inline int ikc_vec_span_ok(const ikc_pktvec *v, uint32_t i) {
    return v->off[i] <= v->slot_size && v->len[i] <= v->slot_size - v->off[i];
}

int ikc_esp_seal_inplace(ikc_esp *sa, uint8_t *pkt, size_t payload_len, int next_header,
                         size_t tfc_len, const uint8_t *iv_override, size_t cap, size_t *out_len);
int ikc_esp_open(ikc_esp *sa, uint8_t *pkt, size_t len, uint8_t *out, size_t out_cap,
                 size_t *payload_len, int *nh, uint64_t *seq);
#endif
