/* ctx.c - the explicit OpenSSL library context: providers, property queries,
 * algorithms fetched once and cached, and a report of who serves what. */
#include "internal.h"
#include <openssl/provider.h>
#include <openssl/opensslv.h>
#include <openssl/rand.h>
#include <openssl/err.h>
#include <pthread.h>
#include <string.h>
#include <stdio.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#ifndef IKC_VERSION
#define IKC_VERSION "unknown"
#endif

#define IKC_MAX_PROVIDERS 8

static const char *const cipher_names[IKC_C_COUNT] = {
    "AES-128-GCM", "AES-192-GCM", "AES-256-GCM",
    "AES-128-CBC", "AES-192-CBC", "AES-256-CBC",
    "AES-128-ECB", "ChaCha20-Poly1305",
};
static const char *const md_names[IKC_MD_COUNT] = { "SHA1", "SHA2-256", "SHA2-384", "SHA2-512" };

typedef struct {
    OSSL_LIB_CTX *libctx;
    OSSL_PROVIDER *providers[IKC_MAX_PROVIDERS];
    int nproviders;
    EVP_CIPHER *ciphers[IKC_C_COUNT];
    EVP_MD *mds[IKC_MD_COUNT];       /* MAC class: HMAC for SK / ESP integrity */
    EVP_MD *kdf_mds[IKC_MD_COUNT];   /* KDF class: HMAC inside prf / prf+ */
    int md_direct[IKC_MD_COUNT], kdf_md_direct[IKC_MD_COUNT];  /* see ikc_get_md_ex */
    EVP_MAC *cmac;
    /* CMAC context with its cipher already set: duplicating it avoids the
     * per-init algorithm fetch that setting the parameter costs */
    EVP_MAC_CTX *cmac_tmpl;
} ikc_context;

static ikc_context g_ctx;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_ready;

static void context_release(ikc_context *c) {
    for (int i = 0; i < IKC_C_COUNT; i++) EVP_CIPHER_free(c->ciphers[i]);
    for (int i = 0; i < IKC_MD_COUNT; i++) EVP_MD_free(c->mds[i]);
    for (int i = 0; i < IKC_MD_COUNT; i++) EVP_MD_free(c->kdf_mds[i]);
    EVP_MAC_CTX_free(c->cmac_tmpl);
    EVP_MAC_free(c->cmac);
    for (int i = 0; i < c->nproviders; i++) OSSL_PROVIDER_unload(c->providers[i]);
    OSSL_LIB_CTX_free(c->libctx);
    memset(c, 0, sizeof(*c));
}

/* SHA-2 served by the default provider may be driven through its low-level
 * API (see ikc_hmac in internal.h); 0 means: always use EVP. */
static int direct_sha2(const EVP_MD *md, ikc_md_kind kind) {
    const OSSL_PROVIDER *prov = md ? EVP_MD_get0_provider(md) : NULL;
    if (!prov || strcmp(OSSL_PROVIDER_get0_name(prov), "default") != 0) return 0;
    switch (kind) {
    case IKC_MD_SHA256: return 256;
    case IKC_MD_SHA384: return 384;
    case IKC_MD_SHA512: return 512;
    default: return 0;
    }
}

static int context_build(ikc_context *c, const char *providers, const char *mac_props,
                         const char *cipher_props, const char *kdf_props) {
    char list[256];
    memset(c, 0, sizeof(*c));
    if (!providers || !*providers) providers = "default";
    if (strlen(providers) >= sizeof(list)) return IKC_ERR_ARG;
    c->libctx = OSSL_LIB_CTX_new();
    if (!c->libctx) return IKC_ERR_NOMEM;
    strcpy(list, providers);
    for (char *save = NULL, *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        while (*name == ' ') name++;
        if (!*name) continue;
        if (c->nproviders == IKC_MAX_PROVIDERS) return IKC_ERR_ARG;
        OSSL_PROVIDER *p = OSSL_PROVIDER_load(c->libctx, name);
        if (!p) return IKC_ERR_OPENSSL;
        c->providers[c->nproviders++] = p;
    }
    if (c->nproviders == 0) return IKC_ERR_ARG;
    for (int i = 0; i < IKC_C_COUNT; i++)
        c->ciphers[i] = EVP_CIPHER_fetch(c->libctx, cipher_names[i], cipher_props ? cipher_props : "");
    for (int i = 0; i < IKC_MD_COUNT; i++) {
        c->mds[i] = EVP_MD_fetch(c->libctx, md_names[i], mac_props ? mac_props : "");
        c->kdf_mds[i] = EVP_MD_fetch(c->libctx, md_names[i], kdf_props ? kdf_props : "");
        c->md_direct[i] = direct_sha2(c->mds[i], (ikc_md_kind)i);
        c->kdf_md_direct[i] = direct_sha2(c->kdf_mds[i], (ikc_md_kind)i);
    }
    c->cmac = EVP_MAC_fetch(c->libctx, "CMAC", mac_props ? mac_props : "");
    /* The PRFs and SK protection cannot work without these. */
    if (!c->mds[IKC_MD_SHA256] || !c->kdf_mds[IKC_MD_SHA256] || !c->ciphers[IKC_C_AES128_ECB])
        return IKC_ERR_OPENSSL;
    if (c->cmac && c->ciphers[IKC_C_AES128_ECB]) {
        /* keyed with zeros: OpenSSL cannot duplicate a CMAC context that has
         * no key yet; every user re-keys its copy before use */
        static const uint8_t zero_key[16];
        OSSL_PARAM p[3] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, "AES-128-CBC", 0),
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_PROPERTIES,
                                             (char *)(mac_props ? mac_props : ""), 0),
            OSSL_PARAM_construct_end() };
        c->cmac_tmpl = EVP_MAC_CTX_new(c->cmac);
        if (!c->cmac_tmpl || EVP_MAC_init(c->cmac_tmpl, zero_key, sizeof(zero_key), p) != 1)
            return IKC_ERR_OPENSSL;
    }
    return IKC_OK;
}

int ikc_ctx_configure(const char *providers, const char *mac_props,
                      const char *cipher_props, const char *kdf_props) {
    ikc_context fresh;
    int rc = context_build(&fresh, providers, mac_props, cipher_props, kdf_props);
    if (rc != IKC_OK) {
        context_release(&fresh);
        ERR_clear_error();
        return rc;
    }
    pthread_mutex_lock(&g_lock);
    if (g_ready) context_release(&g_ctx);
    g_ctx = fresh;
    g_ready = 1;
    pthread_mutex_unlock(&g_lock);
    return IKC_OK;
}

static void ensure_ready(void) {
    if (__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&g_lock);
    if (!g_ready) {
        ikc_context fresh;
        if (context_build(&fresh, NULL, NULL, NULL, NULL) == IKC_OK) {
            g_ctx = fresh;
            __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
        } else {
            context_release(&fresh);
        }
    }
    pthread_mutex_unlock(&g_lock);
}

/* Getters take the lock so that a concurrent reconfigure cannot free the
 * algorithm between our read and the caller's up_ref. */
#define IKC_GETTER(type, expr, upref)                      \
    type *r;                                               \
    ensure_ready();                                        \
    pthread_mutex_lock(&g_lock);                           \
    r = (expr);                                            \
    if (r && !upref(r)) r = NULL;                          \
    pthread_mutex_unlock(&g_lock);                         \
    return r;

EVP_CIPHER *ikc_get_cipher(ikc_cipher_kind kind) {
    if ((unsigned)kind >= IKC_C_COUNT) return NULL;
    IKC_GETTER(EVP_CIPHER, g_ctx.ciphers[kind], EVP_CIPHER_up_ref)
}
EVP_MD *ikc_get_md(ikc_md_kind kind) {
    if ((unsigned)kind >= IKC_MD_COUNT) return NULL;
    IKC_GETTER(EVP_MD, g_ctx.mds[kind], EVP_MD_up_ref)
}
EVP_MD *ikc_get_md_ex(ikc_md_kind kind, int kdf_class, int *direct) {
    EVP_MD *r;
    if ((unsigned)kind >= IKC_MD_COUNT) return NULL;
    ensure_ready();
    pthread_mutex_lock(&g_lock);
    r = kdf_class ? g_ctx.kdf_mds[kind] : g_ctx.mds[kind];
    *direct = kdf_class ? g_ctx.kdf_md_direct[kind] : g_ctx.md_direct[kind];
    if (r && !EVP_MD_up_ref(r)) r = NULL;
    pthread_mutex_unlock(&g_lock);
    return r;
}
int ikc_md_direct(ikc_md_kind kind, int kdf_class) {
    if ((unsigned)kind >= IKC_MD_COUNT) return 0;
    ensure_ready();
    /* set when a context is built and swapped in whole under the lock; a reader
     * racing a reconfiguration sees either context's flag, both valid */
    return __atomic_load_n(kdf_class ? &g_ctx.kdf_md_direct[kind] : &g_ctx.md_direct[kind],
                           __ATOMIC_ACQUIRE);
}

EVP_MD *ikc_get_kdf_md(ikc_md_kind kind) {
    if ((unsigned)kind >= IKC_MD_COUNT) return NULL;
    IKC_GETTER(EVP_MD, g_ctx.kdf_mds[kind], EVP_MD_up_ref)
}

static EVP_MAC_CTX *dup_template(EVP_MAC_CTX *const *slot) {
    EVP_MAC_CTX *r;
    ensure_ready();
    pthread_mutex_lock(&g_lock);
    r = *slot ? EVP_MAC_CTX_dup(*slot) : NULL;
    pthread_mutex_unlock(&g_lock);
    return r;
}
EVP_MAC_CTX *ikc_new_cmac_ctx(void) { return dup_template(&g_ctx.cmac_tmpl); }

OSSL_LIB_CTX *ikc_libctx(void) {
    ensure_ready();
    return g_ctx.libctx;
}

int ikc_random(uint8_t *buf, size_t len) {
    if (len > INT32_MAX) return IKC_ERR_ARG;
    ensure_ready();
    return RAND_bytes_ex(g_ctx.libctx, buf, len, 0) == 1 ? IKC_OK : IKC_ERR_OPENSSL;
}

static const char *provider_of(const OSSL_PROVIDER *p) {
    return p ? OSSL_PROVIDER_get0_name(p) : "none";
}

int ikc_ctx_report(char *buf, size_t buflen) {
    if (!buf || buflen == 0) return IKC_ERR_ARG;
    ensure_ready();
    pthread_mutex_lock(&g_lock);
    const char *mac = provider_of(g_ctx.mds[IKC_MD_SHA256] ? EVP_MD_get0_provider(g_ctx.mds[IKC_MD_SHA256]) : NULL);
    const char *cipher = provider_of(g_ctx.ciphers[IKC_C_AES128_GCM]
                                     ? EVP_CIPHER_get0_provider(g_ctx.ciphers[IKC_C_AES128_GCM]) : NULL);
    const char *kdf = provider_of(g_ctx.kdf_mds[IKC_MD_SHA256]
                                  ? EVP_MD_get0_provider(g_ctx.kdf_mds[IKC_MD_SHA256]) : NULL);
    int n = snprintf(buf, buflen, "mac=%s;cipher=%s;kdf=%s;loaded=", mac, cipher, kdf);
    for (int i = 0; i < g_ctx.nproviders && n >= 0 && (size_t)n < buflen; i++)
        n += snprintf(buf + n, buflen - (size_t)n, "%s%s", i ? "," : "",
                      OSSL_PROVIDER_get0_name(g_ctx.providers[i]));
    pthread_mutex_unlock(&g_lock);
    return (n < 0 || (size_t)n >= buflen) ? IKC_ERR_BUFFER : IKC_OK;
}

const char *ikc_version(void) { return IKC_VERSION; }
unsigned long ikc_openssl_version_num(void) { return OpenSSL_version_num(); }
const char *ikc_openssl_version_text(void) { return OpenSSL_version(OPENSSL_VERSION); }

unsigned int ikc_cpu_features(void) {
    unsigned int f = 0;
#if defined(__x86_64__) || defined(__i386__)
    unsigned int a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        if (c & (1u << 25)) f |= IKC_CPU_AESNI;
        if (c & (1u << 1)) f |= IKC_CPU_PCLMULQDQ;
    }
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        if (c & (1u << 9)) f |= IKC_CPU_VAES;
        if (b & (1u << 29)) f |= IKC_CPU_SHANI;
        if (b & (1u << 5)) f |= IKC_CPU_AVX2;
    }
#endif
    return f;
}
