/*
 * ikecore.h - the whole FFI contract between the C core and Python.
 *
 * build_ffi.py hands everything between the CDEF markers to cffi's cdef, so this
 * region may only hold what cffi parses: plain integer #defines, opaque
 * typedefs and prototypes. No OpenSSL type crosses this boundary.
 *
 * Conventions: every function returns an int status (IKC_OK or a negative
 * IKC_ERR_*), outputs go to caller-owned buffers whose capacity is passed in,
 * handles are opaque and freed by their *_free function, which wipes keys.
 */
#ifndef IKECORE_H
#define IKECORE_H
#include <stddef.h>
#include <stdint.h>

/* CDEF BEGIN */
#define IKC_OK                 0
#define IKC_ERR_ARG           -1   /* NULL pointer, bad length, misuse */
#define IKC_ERR_UNSUPPORTED   -2   /* unknown transform id */
#define IKC_ERR_KEYLEN        -3   /* key of the wrong size for the algorithm */
#define IKC_ERR_LIMIT         -4   /* prf+ beyond 255 blocks, counter exhausted */
#define IKC_ERR_TAG           -5   /* ICV / AEAD tag did not verify */
#define IKC_ERR_OPENSSL       -6   /* OpenSSL refused (fetch, init, ...) */
#define IKC_ERR_NOMEM         -7
#define IKC_ERR_BUFFER        -8   /* caller's output buffer too small */
#define IKC_ERR_TRUNCATED     -9   /* input shorter than its framing needs */
#define IKC_ERR_PADDING      -10   /* malformed padding / pad length */
#define IKC_ERR_REPLAY       -11   /* ESP: replayed or left of the window */
#define IKC_ERR_SEQ_EXHAUSTED -12  /* ESP: sequence space used up, rekey */
#define IKC_ERR_SPI          -13   /* ESP: packet for another SPI */
#define IKC_ERR_STATE        -14   /* call not valid in this object's state */

/* IANA transform ids (RFC 7296 §3.3.2) */
#define IKC_PRF_HMAC_SHA1       2   /* legacy peers only (RFC 8247 §2.3: MUST) */
#define IKC_PRF_HMAC_SHA2_256   5
#define IKC_PRF_HMAC_SHA2_384   6
#define IKC_PRF_HMAC_SHA2_512   7
#define IKC_PRF_AES128_XCBC     4
#define IKC_PRF_AES128_CMAC     8

#define IKC_ENCR_AES_CBC       12
#define IKC_ENCR_AES_GCM_8     18
#define IKC_ENCR_AES_GCM_12    19
#define IKC_ENCR_AES_GCM_16    20
#define IKC_ENCR_CHACHA20_POLY1305 28

#define IKC_INTEG_NONE                  0
#define IKC_INTEG_HMAC_SHA1_96          2   /* RFC 2404; legacy peers only (RFC 8247 §2.4) */
#define IKC_INTEG_HMAC_SHA2_256_128    12
#define IKC_INTEG_HMAC_SHA2_384_192    13
#define IKC_INTEG_HMAC_SHA2_512_256    14

/* operation classes of the library context, for property queries */
#define IKC_CLASS_MAC     0   /* HMAC, CMAC: PRFs and integrity */
#define IKC_CLASS_CIPHER  1   /* AES-GCM/CBC/ECB, ChaCha20-Poly1305 */
#define IKC_CLASS_KDF     2   /* digests behind the MACs */

/* CPU feature bits reported by ikc_cpu_features */
#define IKC_CPU_AESNI      1
#define IKC_CPU_PCLMULQDQ  2
#define IKC_CPU_VAES       4
#define IKC_CPU_SHANI      8
#define IKC_CPU_AVX2      16

/* ---- build and runtime facts ---- */
const char *ikc_version(void);
unsigned long ikc_openssl_version_num(void);
const char *ikc_openssl_version_text(void);
unsigned int ikc_cpu_features(void);

/* ---- the library context ----
 * providers: comma-separated provider names to load ("default" when NULL or
 * empty); *_props: OpenSSL property queries per operation class (NULL = "").
 * Algorithms are fetched once here and cached; objects created afterwards hold
 * their own references, so reconfiguring never invalidates a live object. */
int ikc_ctx_configure(const char *providers, const char *mac_props,
                      const char *cipher_props, const char *kdf_props);
/* "name" of the provider serving each class, written as
 * "mac=NAME;cipher=NAME;kdf=NAME;loaded=A,B" into buf (NUL-terminated). */
int ikc_ctx_report(char *buf, size_t buflen);

/* ---- PRFs (RFC 7296 §2.13, RFC 4868, RFC 4434, RFC 4615) ---- */
int ikc_prf_output_len(int prf_id, size_t *out_len);   /* = preferred key length */
int ikc_prf(int prf_id, const uint8_t *key, size_t key_len,
            const uint8_t *data, size_t data_len, uint8_t *out, size_t out_len);
int ikc_prf_plus(int prf_id, const uint8_t *key, size_t key_len,
                 const uint8_t *seed, size_t seed_len, uint8_t *out, size_t out_len);

/* ---- one-shot key schedules ----
 * IKE SA keys are written as the prf+ stream lays them out:
 *   SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr
 * with SK_d/SK_p = prf output length, SK_a = integ_key_len (0 for AEAD),
 * SK_e = encr_key_len (AEAD: key + salt). out_len must equal the sum.
 * skeyseed_out may be NULL; otherwise it receives SKEYSEED (prf output length). */
int ikc_ike_keys_initial(int prf_id,
                         const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len,
                         const uint8_t *gir, size_t gir_len,
                         const uint8_t *spi_i, const uint8_t *spi_r,
                         size_t integ_key_len, size_t encr_key_len,
                         char *out, size_t out_len,
                         char *skeyseed_out, size_t skeyseed_len);
/* Rekey and clone (RFC 7296 §2.18, RFC 7791 §5.2):
 *   SKEYSEED = prf_old(SK_d_old, g^ir_new | Ni | Nr), expanded with prf_new. */
int ikc_ike_keys_rekey(int old_prf_id, const uint8_t *sk_d_old, size_t sk_d_old_len,
                       int new_prf_id, const uint8_t *gir, size_t gir_len,
                       const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len,
                       const uint8_t *spi_i, const uint8_t *spi_r,
                       size_t integ_key_len, size_t encr_key_len,
                       char *out, size_t out_len,
                       char *skeyseed_out, size_t skeyseed_len);
/* Resumption (RFC 5723 §5.1): SKEYSEED = prf(SK_d_old, "Resumption" | Ni | Nr). */
int ikc_ike_keys_resume(int prf_id, const uint8_t *sk_d_old, size_t sk_d_old_len,
                        const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len,
                        const uint8_t *spi_i, const uint8_t *spi_r,
                        size_t integ_key_len, size_t encr_key_len,
                        char *out, size_t out_len,
                        char *skeyseed_out, size_t skeyseed_len);
/* Child SA KEYMAT (RFC 7296 §2.17): prf+(SK_d, [g^ir_new |] Ni | Nr);
 * gir may be NULL with gir_len 0 when no key exchange took place. */
int ikc_child_keymat(int prf_id, const uint8_t *sk_d, size_t sk_d_len,
                     const uint8_t *gir, size_t gir_len,
                     const uint8_t *ni, size_t ni_len, const uint8_t *nr, size_t nr_len,
                     uint8_t *out, size_t out_len);

/* ---- IKE Encrypted payload protection (RFC 7296 §3.14, RFC 5282, RFC 7634) ----
 * One object per key and direction. 'aad' is the message from the first octet
 * of the IKE header through the SK payload's generic header; 'sealed' is
 * IV | ciphertext (incl. padding and pad length) | ICV. Not thread-safe. */
typedef struct ikc_sk ikc_sk;
int ikc_sk_new(int encr_id, const uint8_t *encr_key, size_t encr_key_len,
               int integ_id, const uint8_t *integ_key, size_t integ_key_len,
               ikc_sk **out);
void ikc_sk_free(ikc_sk *sk);
/* free the cipher contexts (about 1 KB each) until the next seal or open
 * keys them again: for an IKE SA between exchanges, which may be hours */
void ikc_sk_idle(ikc_sk *sk);
int ikc_sk_params(const ikc_sk *sk, size_t *iv_len, size_t *icv_len, size_t *block_len);
int ikc_sk_sealed_len(const ikc_sk *sk, size_t plain_len, size_t *sealed_len);
/* iv may be NULL (fresh IV: counter-based for AEAD, random for CBC) */
int ikc_sk_seal(ikc_sk *sk, const uint8_t *aad, size_t aad_len,
                const uint8_t *plain, size_t plain_len,
                const uint8_t *iv, size_t iv_len,
                uint8_t *out, size_t out_len);
/* writes the inner payloads (padding removed) and their length */
int ikc_sk_open(ikc_sk *sk, const uint8_t *aad, size_t aad_len,
                const uint8_t *sealed, size_t sealed_len,
                uint8_t *out, size_t out_cap, size_t *out_len);
/* Whole-message forms, as an encoder and a receiver use them.
 * seal: 'prefix' is the IKE header, any clear payloads and the SK generic
 * header; the message written to 'out' (prefix_len + sealed length octets)
 * has the IKE Length and the SK Payload Length filled in.
 * open: the SK payload's generic header starts at 'sk_offset' and must be
 * the message's last payload; its lengths are checked against msg_len. */
int ikc_sk_seal_message(ikc_sk *sk, const uint8_t *prefix, size_t prefix_len,
                        const uint8_t *plain, size_t plain_len, char *out, size_t out_len);
int ikc_sk_open_message(ikc_sk *sk, const uint8_t *msg, size_t msg_len, size_t sk_offset,
                        char *out, size_t out_cap, size_t *out_len);
/* ---- ESP (RFC 4303; RFC 4106, RFC 7634, RFC 3602 + RFC 4868; RFC 3948) ----
 * One ikc_esp per SA. The packet handed in/out is SPI .. ICV (no IP or UDP
 * header). GCM/ChaCha20: explicit IV = the 64-bit sequence number. AES-CBC:
 * IV = AES-ECB(per-SA random key, seq64 | per-SA random salt). An SA is not
 * thread-safe; different SAs may be used on different threads at once. */
#define IKC_ESP_F_ESN            1   /* extended (64-bit) sequence numbers */
#define IKC_ESP_F_OUTBOUND       2   /* build only the encrypt side */
#define IKC_ESP_F_INBOUND        4   /* build only the decrypt side (neither: both) */
#define IKC_ESP_F_NO_PAD_CHECK   8   /* do not check padding contents 1,2,3,... */
#define IKC_ESP_F_KEEP_TFC      16   /* do not strip TFC padding after an inner IP packet */
#define IKC_ESP_F_NO_INTEGRITY  32   /* allow AES-CBC without INTEG (RFC 4303 §3.2; tests) */
#define IKC_ESP_MAX_WINDOW   1048576 /* anti-replay window, packets (0 = off) */
#define IKC_ESP_MAX_PACKET     65535 /* largest ESP packet built or accepted */
#define IKC_ESP_HEADER_LEN         8 /* SPI + sequence number */
#define IKC_ESP_NH_DUMMY          59 /* RFC 4303 §2.6: dummy packet */
#define IKC_ESP_NH_PER_PACKET     -1 /* batch encrypt: next header from the vector */
#define IKC_ESP_NH_FROM_IP        -2 /* batch encrypt: 4 or 41 from the IP version nibble */

/* per-SA counters, ikc_esp_stats index */
#define IKC_ESP_STAT_PACKETS       0
#define IKC_ESP_STAT_OCTETS        1   /* payload octets */
#define IKC_ESP_STAT_AUTH_FAILED   2
#define IKC_ESP_STAT_REPLAYED      3
#define IKC_ESP_STAT_MALFORMED     4   /* truncated, padding, SPI, too large */
#define IKC_ESP_STAT_COUNT         5

typedef struct ikc_esp ikc_esp;
/* key: ENCR key (AEAD: key | 4-octet salt, as IKEv2 KEYMAT lays it out);
 * integ: INTEG id and key (AEAD: IKC_INTEG_NONE and no key) */
int ikc_esp_new(uint32_t spi, int encr_id, const uint8_t *key, size_t key_len,
                int integ_id, const uint8_t *integ_key, size_t integ_key_len,
                unsigned int flags, uint32_t replay_window, ikc_esp **out);
void ikc_esp_free(ikc_esp *sa);
int ikc_esp_params(const ikc_esp *sa, size_t *iv_len, size_t *icv_len, size_t *block_len);
/* length of the ESP packet for a payload (+ TFC padding octets) */
int ikc_esp_packet_len(const ikc_esp *sa, size_t payload_len, size_t tfc_len, size_t *packet_len);
int ikc_esp_encrypt(ikc_esp *sa, const uint8_t *payload, size_t payload_len, int next_header,
                    size_t tfc_len, uint8_t *out, size_t out_cap, size_t *out_len);
/* known-answer tests only: the caller's IV instead of the SA's (may repeat an IV!) */
int ikc_esp_encrypt_iv(ikc_esp *sa, const uint8_t *iv, size_t iv_len,
                       const uint8_t *payload, size_t payload_len, int next_header,
                       size_t tfc_len, uint8_t *out, size_t out_cap, size_t *out_len);
/* out receives the payload (TFC padding stripped after an inner IP packet);
 * out_cap >= packet_len always suffices. next_header and seq may be NULL. */
int ikc_esp_decrypt(ikc_esp *sa, const uint8_t *packet, size_t packet_len,
                    uint8_t *out, size_t out_cap, size_t *out_len, int *next_header, uint64_t *seq);
/* single-packet fast path (few arguments: the cffi call costs as much as
 * the crypto): results land in the calling thread's scratch buffer
 * (ikc_esp_scratch, IKC_ESP_SCRATCH octets, valid until that thread's next
 * call; larger packets use the calls above).
 * encrypt1 returns the packet length, decrypt1 (payload length << 8) | next
 * header; both a negative IKC_ERR_* on failure. decrypt1 keeps the packet's
 * full sequence number for ikc_esp_last_seq. */
#define IKC_ESP_SCRATCH 2048
char *ikc_esp_scratch(ikc_esp *sa);
int ikc_esp_encrypt1(ikc_esp *sa, const char *payload, size_t payload_len, int next_header);
int ikc_esp_decrypt1(ikc_esp *sa, const char *packet, size_t packet_len);
uint64_t ikc_esp_last_seq(const ikc_esp *sa);
/* outbound: the last sequence number sent (0 = none); may only move forward */
int ikc_esp_get_seq(const ikc_esp *sa, uint64_t *last_sent);
int ikc_esp_set_seq(ikc_esp *sa, uint64_t last_sent);
/* inbound: highest authenticated sequence number (0 = none yet) */
int ikc_esp_get_replay_top(const ikc_esp *sa, uint64_t *top);
/* resynchronise the inbound state (SA migration, tests): window emptied, 'top'
 * marked as received */
int ikc_esp_set_replay_top(ikc_esp *sa, uint64_t top);
int ikc_esp_stats(const ikc_esp *sa, uint64_t *out, size_t n);

/* ---- packet vectors: many packets in one buffer, for the batch calls ----
 * 'slots' packets of 'slot_size' octets each, contiguous; packet i lives at
 * buf + i*slot_size + offsets[i], lengths[i] octets. Fresh data goes in at
 * 'headroom' so that encryption can put the ESP header in front in place.
 * status[i]: IKC_OK (processed), IKC_PKT_* (> 0) or a negative IKC_ERR_*. */
#define IKC_PKT_PENDING     1   /* loaded, waiting for processing */
#define IKC_PKT_IKE         2   /* UDP 4500 with non-ESP marker: IKE (marker stripped) */
#define IKC_PKT_KEEPALIVE   3   /* UDP 4500 NAT keepalive (0xFF) */
#define IKC_PKT_DUMMY       4   /* authenticated ESP dummy packet (next header 59): drop */
#define IKC_PKT_SENT        5   /* handed to the socket by ikc_vec_send */
#define IKC_PKT_EMPTY       6   /* unused slot */
#define IKC_ERR_IO        -15   /* socket / fd error: see ikc_vec_errno */

typedef struct ikc_pktvec ikc_pktvec;
int ikc_vec_new(uint32_t slots, uint32_t slot_size, uint32_t headroom, ikc_pktvec **out);
void ikc_vec_free(ikc_pktvec *v);
uint8_t *ikc_vec_buf(ikc_pktvec *v);
uint32_t *ikc_vec_offsets(ikc_pktvec *v);
uint32_t *ikc_vec_lengths(ikc_pktvec *v);
int32_t *ikc_vec_status(ikc_pktvec *v);
uint8_t *ikc_vec_next_headers(ikc_pktvec *v);
uint64_t *ikc_vec_seqs(ikc_pktvec *v);
uint32_t ikc_vec_count(const ikc_pktvec *v);
int ikc_vec_set_count(ikc_pktvec *v, uint32_t count);
int ikc_vec_errno(const ikc_pktvec *v);
/* count packets of 'len' octets at headroom, status PENDING, next header nh
 * (contents untouched: write them through ikc_vec_buf) */
int ikc_vec_reset(ikc_pktvec *v, uint32_t count, uint32_t len, int next_header);
/* count packets laid end to end in data with their lengths, copied in at headroom */
int ikc_vec_load(ikc_pktvec *v, const uint8_t *data, size_t data_len,
                 const uint32_t *lens, uint32_t count, int next_header);
/* packets with status OK, concatenated into out (lens[] gets each length) */
int ikc_vec_gather(const ikc_pktvec *v, uint8_t *out, size_t out_cap, uint32_t *lens,
                   uint32_t lens_cap, uint32_t *n, size_t *total);
/* sum of statuses: how many packets have each status class */
int ikc_vec_count_status(const ikc_pktvec *v, int32_t status, uint32_t *n);
/* every packet with status 'from' gets status 'to' (e.g. OK -> PENDING to feed
 * encrypted packets to a decrypting SA); n = how many changed */
int ikc_vec_restatus(ikc_pktvec *v, int32_t from, int32_t to, uint32_t *n);

/* batch ESP: dst NULL = in place, else results land in dst's slot of the
 * same index (src untouched). Encrypt takes packets with status OK or
 * PENDING; decrypt takes PENDING ones. n_ok = packets that succeeded. */
int ikc_esp_encrypt_vec(ikc_esp *sa, ikc_pktvec *src, ikc_pktvec *dst, int next_header,
                        uint32_t tfc_len, uint32_t *n_ok);
int ikc_esp_decrypt_vec(ikc_esp *sa, ikc_pktvec *src, ikc_pktvec *dst, uint32_t *n_ok);
/* inbound demultiplexing by SPI over several SAs (unknown SPI: IKC_ERR_SPI) */
int ikc_esp_decrypt_vec_multi(ikc_esp *const *sas, size_t nsas, ikc_pktvec *src,
                              ikc_pktvec *dst, uint32_t *n_ok);

/* UDP encapsulation (RFC 3948) over a vector received on port 4500: marks
 * keepalives and IKE messages (stripping the non-ESP marker), leaves ESP PENDING */
int ikc_vec_classify_udpencap(ikc_pktvec *v);
/* prepend / strip an 8-octet UDP header (checksum 0) on packets with status
 * OK (wrap) or PENDING (unwrap), for raw sockets and TUN-side NAT-T */
int ikc_vec_udp_wrap(ikc_pktvec *v, uint16_t src_port, uint16_t dst_port);
int ikc_vec_udp_unwrap(ikc_pktvec *v);

/* socket and fd I/O without a Python object per packet.
 * recv: up to 'max' datagrams into slots 0.. (count set, PENDING, peer
 * address kept); wait=1 blocks until one arrives, wait=0 never blocks.
 * send: every packet with status OK, to its address (none: connected
 * socket); sent packets become IKC_PKT_SENT. recvmmsg/sendmmsg on Linux. */
int ikc_vec_recv(ikc_pktvec *v, int fd, uint32_t max, int wait, uint32_t *received);
int ikc_vec_send(ikc_pktvec *v, int fd, uint32_t *sent);
/* TUN-style fds: one packet per read()/write() */
int ikc_vec_read_fd(ikc_pktvec *v, int fd, uint32_t max, int wait, uint32_t *received);
int ikc_vec_write_fd(ikc_pktvec *v, int fd, uint32_t *written);
/* peer address of packet i ("1.2.3.4" / "2001:db8::1"), or set it
 * (i = UINT32_MAX: all slots; host NULL: clear) */
int ikc_vec_get_addr(const ikc_pktvec *v, uint32_t i, char *host, size_t host_cap, uint16_t *port);
int ikc_vec_set_addr(ikc_pktvec *v, uint32_t i, const char *host, uint16_t port);
/* ---- traffic-selector policy of the data path (RFC 4301 §4.4.1) ----
 * Installed Child SAs by inbound SPI, with their selectors. Inbound: packets
 * that decrypted OK (spis[] taken by ikc_vec_spis before decrypting) are
 * checked against their SA's selectors when it has IKC_SPD_CHECK (tunnel
 * mode): outside them, or no IP header of the version the next header names,
 * status IKC_ERR_POLICY. Outbound: each PENDING IP packet gets the inbound SPI
 * of the newest IKC_SPD_ROUTE SA whose selectors cover it (local = source),
 * or 0 and status IKC_ERR_POLICY. Not thread-safe. */
typedef struct {
    uint8_t version;                 /* 4 or 6 */
    uint8_t ip_protocol;             /* 0: any */
    uint16_t start_port, end_port;   /* 0-65535: any (also for protocols without ports) */
    uint8_t start_addr[16], end_addr[16];   /* IPv4: the first 4 octets */
} ikc_ts;
#define IKC_ERR_POLICY    -16   /* data path: outside the SA's traffic selectors / no SA covers it */
#define IKC_PKT_PARKED      7   /* set aside by ikc_vec_select */
#define IKC_SPD_CHECK       1
#define IKC_SPD_ROUTE       2
typedef struct ikc_spd ikc_spd;
int ikc_spd_new(ikc_spd **out);
void ikc_spd_free(ikc_spd *spd);
/* add the SA with inbound SPI spi (or give it new selectors and flags, keeping its place) */
int ikc_spd_set(ikc_spd *spd, uint32_t spi, const ikc_ts *local, size_t n_local,
                const ikc_ts *remote, size_t n_remote, unsigned int flags);
int ikc_spd_set_flags(ikc_spd *spd, uint32_t spi, unsigned int flags);
int ikc_spd_remove(ikc_spd *spd, uint32_t spi);
int ikc_spd_drops(const ikc_spd *spd, uint32_t spi, uint64_t *drops);
uint32_t ikc_spd_count(const ikc_spd *spd);
/* the outbound route lookups' work, for tests that bound it: lookups made,
 * how many the flow cache answered, and the entries the others examined (in
 * all, and in the last one). A flow that is not cached examines the entries
 * of its destination's host bucket (SAs whose remote selectors are single
 * hosts, that address among them) and the "wide" ones (any other remote
 * selector), each newest first until the first match: not every entry. */
typedef struct {
    uint64_t lookups, cache_hits, entries_examined;
    uint32_t last_examined;
} ikc_spd_stats;
int ikc_spd_route_stats(const ikc_spd *spd, ikc_spd_stats *out);
/* The inbound step of a gateway: decrypt every PENDING packet with the SA its
 * SPI names (as ikc_esp_decrypt_vec_multi, in place), check the tunnel-mode
 * ones against their SA's selectors, and count the outcomes of exactly these
 * packets: tally[status - IKC_TALLY_MIN]. spis[i]: the inbound SPI of each
 * packet that ended OK, else 0. */
#define IKC_TALLY_MIN     -16
#define IKC_TALLY_SIZE     24
int ikc_spd_receive(ikc_spd *spd, ikc_esp *const *sas, size_t nsas, ikc_pktvec *v,
                    uint32_t *spis, uint32_t cap, uint32_t *tally, uint32_t ntally);
/* sas NULL and nsas 0 in ikc_spd_receive: each packet's SA is the one bound
 * to its SPI, found by hash (no work that grows with the number of SAs).
 * bind: an inbound SA (made with its decrypt side) for an SPI in the table,
 * or NULL to unbind; the caller keeps it alive while it is bound. */
int ikc_spd_bind(ikc_spd *spd, uint32_t spi, ikc_esp *sa);
/* spis: cap entries, one per packet; groups: groups_cap entries, receives the
 * distinct SPIs routed to, in order of first appearance (at most one per
 * packet, so groups_cap >= the vector's count always suffices; less is
 * IKC_ERR_ARG) */
int ikc_spd_route(ikc_spd *spd, ikc_pktvec *v, uint32_t *spis, uint32_t cap, uint32_t *groups,
                  uint32_t groups_cap, uint32_t *n_groups, uint32_t *n_routed);
/* one SA's packets: PENDING or PARKED packets become PENDING where spis[i] ==
 * spi and PARKED elsewhere; n = how many are PENDING */
int ikc_vec_select(ikc_pktvec *v, const uint32_t *spis, uint32_t cap, uint32_t spi, uint32_t *n);
/* ---- session resumption tickets (RFC 5723 §6.1, §9.1) ----
 * One ikc_ticket_key per ticket-protection key: AES-GCM with a 16- or
 * 32-octet key, keyed once, wiped when freed. A sealed blob is
 *     header | nonce (12) | ciphertext | tag (16)
 * and the header (the caller's clear framing: version, key id) is the AAD.
 * seal: out_len must be header_len + 12 + plain_len + 16; 'header' may lie in
 * place at the start of 'out'. open: header_len says where the nonce starts;
 * out_cap >= sealed_len suffices; on any failure 'out' holds no plaintext.
 * wrap/unwrap seal another ticket key's raw key under this one (a cluster's
 * shared key ring) so that it never leaves C memory in the clear.
 * Not thread-safe: one object per key and thread. */
#define IKC_TICKET_NONCE_LEN   12
#define IKC_TICKET_TAG_LEN     16
#define IKC_TICKET_MAX_LEN  65535   /* largest header, plaintext or sealed blob */
typedef struct ikc_ticket_key ikc_ticket_key;
int ikc_ticket_key_new(const uint8_t *key, size_t key_len, ikc_ticket_key **out);
void ikc_ticket_key_free(ikc_ticket_key *k);
int ikc_ticket_key_len(const ikc_ticket_key *k, size_t *key_len);
int ikc_ticket_seal(ikc_ticket_key *k, const uint8_t *header, size_t header_len,
                    const uint8_t *nonce, size_t nonce_len, const uint8_t *plain, size_t plain_len,
                    char *out, size_t out_len);
int ikc_ticket_open(ikc_ticket_key *k, const uint8_t *sealed, size_t sealed_len, size_t header_len,
                    char *out, size_t out_cap, size_t *out_len);
int ikc_ticket_wrap_key(ikc_ticket_key *wrapper, const ikc_ticket_key *k,
                        const uint8_t *header, size_t header_len, const uint8_t *nonce, size_t nonce_len,
                        char *out, size_t out_len);
int ikc_ticket_unwrap_key(ikc_ticket_key *wrapper, const uint8_t *sealed, size_t sealed_len,
                          size_t header_len, ikc_ticket_key **out);
/* CDEF END */

#endif
