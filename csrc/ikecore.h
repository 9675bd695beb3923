/*
 * ikecore.h - the whole FFI contract between the C core and Python.
 *
 * build.py hands everything between the CDEF markers to cffi's cdef, so this
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
/* CDEF END */

#endif
