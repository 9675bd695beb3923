/* spd.c - the data path's traffic-selector policy (RFC 4301 §4.4.1, §5.1-5.2).
 *
 * A table of installed Child SAs keyed by inbound SPI, each with its local and
 * remote traffic selectors. One call per packet vector checks decrypted
 * tunnel-mode packets against their SA's selectors (inbound) or finds, for
 * each outbound IP packet, the newest routable SA whose selectors cover it.
 * Python did this per packet at about 5 us; here it is a few tens of ns.
 *
 * Lookups: SPI -> entry through an open-addressing index rebuilt on every
 * change (changes are rare: SA install, rekey, delete); outbound flows through
 * a direct-mapped cache of 5-tuples, emptied by a generation bump on change.
 * Not thread-safe: one table per data path thread. */
#include "esp_internal.h"
#include <stdlib.h>
#include <string.h>

#define SPD_MAX_TS 256            /* selectors per side of one SA */
#define SPD_MAX_ENTRIES (1u << 20)
#define FLOW_CACHE_SLOTS 1024     /* power of two */
#define VEC_SLOTS_MAX (1u << 16)  /* as esp_vec.c allows */

typedef struct {
    uint32_t spi;
    unsigned int flags;
    uint32_t n_local, n_remote;
    ikc_ts *ts;                   /* n_local local selectors, then n_remote remote ones */
    uint64_t drops;
    uint64_t seq;                 /* when it was added: the newest routable SA wins */
    ikc_esp *sa;                  /* the inbound SA bound to this SPI, if any */
} spd_entry;

typedef struct {
    uint8_t version, proto;
    uint16_t sport, dport;
    uint8_t src[16], dst[16];
} flow;

/* hashed and compared as bytes: no padding inside */
_Static_assert(sizeof(flow) == 38, "flow must have no padding");

typedef struct {
    flow key;
    uint64_t generation;          /* 0: empty */
    uint32_t spi;                 /* 0: no SA covers the flow */
} flow_slot;

struct ikc_spd {
    spd_entry *ent;               /* unordered (a removal moves the last entry into the hole) */
    uint32_t n, cap;
    uint64_t next_seq;
    uint32_t *index;              /* entry number + 1 by SPI hash; 0: free */
    uint32_t index_mask;
    uint64_t generation;
    flow_slot cache[FLOW_CACHE_SLOTS];
};

static inline uint32_t spi_hash(uint32_t spi) { return spi * 2654435761u; }

/* an index with room for n entries: allocated before the table changes, so
 * that running out of memory leaves the table as it was */
static uint32_t *index_alloc(uint32_t n, uint32_t *size) {
    *size = 16;
    while (*size < n * 2u) *size <<= 1;
    return calloc(*size, sizeof(uint32_t));
}

static void index_install(ikc_spd *spd, uint32_t *idx, uint32_t size) {
    for (uint32_t k = 0; k < spd->n; k++) {
        uint32_t h = spi_hash(spd->ent[k].spi) & (size - 1);
        while (idx[h]) h = (h + 1) & (size - 1);
        idx[h] = k + 1;
    }
    free(spd->index);
    spd->index = idx;
    spd->index_mask = size - 1;
    spd->generation++;            /* every cached route is stale now */
}

/* the index slot that holds entry number k (0-based) */
static uint32_t slot_of(const ikc_spd *spd, uint32_t k) {
    uint32_t h = spi_hash(spd->ent[k].spi) & spd->index_mask;
    while (spd->index[h] != k + 1) h = (h + 1) & spd->index_mask;
    return h;
}

static spd_entry *find(const ikc_spd *spd, uint32_t spi) {
    uint32_t h = spi_hash(spi) & spd->index_mask;
    for (uint32_t k; (k = spd->index[h]) != 0; h = (h + 1) & spd->index_mask)
        if (spd->ent[k - 1].spi == spi) return &spd->ent[k - 1];
    return NULL;
}

/* linear probing deletion by backward shift: no tombstones, so lookups stay short */
static void index_delete(ikc_spd *spd, uint32_t i) {
    uint32_t mask = spd->index_mask, j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t k = spd->index[j];
        if (!k) break;
        uint32_t home = spi_hash(spd->ent[k - 1].spi) & mask;
        /* the entry at j may move to i if i lies on its probe path from home to j */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            spd->index[i] = k;
            i = j;
        }
    }
    spd->index[i] = 0;
}

int ikc_spd_new(ikc_spd **out) {
    if (!out) return IKC_ERR_ARG;
    *out = NULL;
    ikc_spd *spd = calloc(1, sizeof(*spd));
    if (!spd) return IKC_ERR_NOMEM;
    spd->generation = 1;
    uint32_t size;
    uint32_t *idx = index_alloc(0, &size);
    if (!idx) { free(spd); return IKC_ERR_NOMEM; }
    index_install(spd, idx, size);
    *out = spd;
    return IKC_OK;
}

void ikc_spd_free(ikc_spd *spd) {
    if (!spd) return;
    for (uint32_t k = 0; k < spd->n; k++) free(spd->ent[k].ts);
    free(spd->ent);
    free(spd->index);
    free(spd);
}

static int ts_valid(const ikc_ts *t) {
    size_t alen = t->version == 4 ? 4 : 16;
    return (t->version == 4 || t->version == 6) && t->start_port <= t->end_port &&
           memcmp(t->start_addr, t->end_addr, alen) <= 0;
}

int ikc_spd_set(ikc_spd *spd, uint32_t spi, const ikc_ts *local, size_t n_local,
                const ikc_ts *remote, size_t n_remote, unsigned int flags) {
    if (!spd || spi == 0 || (n_local && !local) || (n_remote && !remote) ||
        n_local > SPD_MAX_TS || n_remote > SPD_MAX_TS || (flags & ~(unsigned)(IKC_SPD_CHECK | IKC_SPD_ROUTE)))
        return IKC_ERR_ARG;
    for (size_t i = 0; i < n_local; i++) if (!ts_valid(&local[i])) return IKC_ERR_ARG;
    for (size_t i = 0; i < n_remote; i++) if (!ts_valid(&remote[i])) return IKC_ERR_ARG;
    ikc_ts *ts = malloc((n_local + n_remote ? n_local + n_remote : 1) * sizeof(*ts));
    if (!ts) return IKC_ERR_NOMEM;
    if (n_local) memcpy(ts, local, n_local * sizeof(*ts));
    if (n_remote) memcpy(ts + n_local, remote, n_remote * sizeof(*ts));
    spd_entry *e = find(spd, spi);
    if (e) {                      /* new selectors, same place in the order */
        free(e->ts);
        e->ts = ts;
        e->n_local = (uint32_t)n_local;
        e->n_remote = (uint32_t)n_remote;
        e->flags = flags;
        spd->generation++;
        return IKC_OK;
    }
    if (spd->n >= SPD_MAX_ENTRIES) { free(ts); return IKC_ERR_LIMIT; }
    /* the index grows by doubling (amortised O(1) an SA); otherwise the new
     * entry goes straight in: no whole-table work per SA */
    uint32_t size = 0, *idx = NULL;
    if ((spd->n + 1) * 2u > spd->index_mask + 1) {
        idx = index_alloc(spd->n + 1, &size);
        if (!idx) { free(ts); return IKC_ERR_NOMEM; }
    }
    if (spd->n == spd->cap) {
        uint32_t cap = spd->cap ? spd->cap * 2 : 16;
        spd_entry *grown = realloc(spd->ent, cap * sizeof(*grown));
        if (!grown) { free(ts); free(idx); return IKC_ERR_NOMEM; }
        spd->ent = grown;
        spd->cap = cap;
    }
    e = &spd->ent[spd->n++];
    memset(e, 0, sizeof(*e));
    e->spi = spi;
    e->ts = ts;
    e->n_local = (uint32_t)n_local;
    e->n_remote = (uint32_t)n_remote;
    e->flags = flags;
    e->seq = ++spd->next_seq;
    if (idx) {
        index_install(spd, idx, size);
    } else {
        uint32_t h = spi_hash(spi) & spd->index_mask;
        while (spd->index[h]) h = (h + 1) & spd->index_mask;
        spd->index[h] = spd->n;             /* entry number n - 1, plus one */
        spd->generation++;                  /* cached routes may now prefer it */
    }
    return IKC_OK;
}

int ikc_spd_set_flags(ikc_spd *spd, uint32_t spi, unsigned int flags) {
    if (!spd || (flags & ~(unsigned)(IKC_SPD_CHECK | IKC_SPD_ROUTE))) return IKC_ERR_ARG;
    spd_entry *e = find(spd, spi);
    if (!e) return IKC_ERR_SPI;
    e->flags = flags;
    spd->generation++;
    return IKC_OK;
}

int ikc_spd_remove(ikc_spd *spd, uint32_t spi) {
    if (!spd) return IKC_ERR_ARG;
    spd_entry *e = find(spd, spi);
    if (!e) return IKC_ERR_SPI;
    uint32_t k = (uint32_t)(e - spd->ent), last = spd->n - 1;
    index_delete(spd, slot_of(spd, k));
    free(e->ts);
    if (k != last) {                        /* the last entry fills the hole; its seq keeps its age */
        spd->index[slot_of(spd, last)] = k + 1;
        spd->ent[k] = spd->ent[last];
    }
    spd->n--;
    spd->generation++;                      /* every cached route is stale now */
    return IKC_OK;
}

int ikc_spd_bind(ikc_spd *spd, uint32_t spi, ikc_esp *sa) {
    if (!spd || (sa && !sa->dec)) return IKC_ERR_ARG;
    spd_entry *e = find(spd, spi);
    if (!e) return IKC_ERR_SPI;
    e->sa = sa;
    return IKC_OK;
}

int ikc_spd_drops(const ikc_spd *spd, uint32_t spi, uint64_t *drops) {
    if (!spd || !drops) return IKC_ERR_ARG;
    const spd_entry *e = find(spd, spi);
    if (!e) return IKC_ERR_SPI;
    *drops = e->drops;
    return IKC_OK;
}

uint32_t ikc_spd_count(const ikc_spd *spd) { return spd ? spd->n : 0; }

/* ---- packets ---- */

static inline int port_protocol(uint8_t p) { return p == 6 || p == 17 || p == 132; }   /* TCP UDP SCTP */

/* (version, src, dst, protocol, ports) of an IP packet; ports 0 when the
 * protocol has none or this is a later fragment. 0: not a parseable IP header. */
static int parse_flow(const uint8_t *p, uint32_t len, flow *f) {
    memset(f, 0, sizeof(*f));
    if (len < 20) return 0;
    if ((p[0] >> 4) == 4) {
        uint32_t ihl = (uint32_t)(p[0] & 15) * 4;
        if (ihl < 20 || ihl > len) return 0;
        f->version = 4;
        f->proto = p[9];
        memcpy(f->src, p + 12, 4);
        memcpy(f->dst, p + 16, 4);
        uint32_t frag_off = ((uint32_t)(p[6] & 0x1F) << 8) | p[7];
        if (port_protocol(f->proto) && frag_off == 0 && len >= ihl + 4) {
            f->sport = (uint16_t)((p[ihl] << 8) | p[ihl + 1]);
            f->dport = (uint16_t)((p[ihl + 2] << 8) | p[ihl + 3]);
        }
        return 1;
    }
    if ((p[0] >> 4) == 6 && len >= 40) {
        f->version = 6;
        f->proto = p[6];
        memcpy(f->src, p + 8, 16);
        memcpy(f->dst, p + 24, 16);
        if (port_protocol(f->proto) && len >= 44) {
            f->sport = (uint16_t)((p[40] << 8) | p[41]);
            f->dport = (uint16_t)((p[42] << 8) | p[43]);
        }
        return 1;
    }
    return 0;
}

static inline int ts_match(const ikc_ts *t, const flow *f, const uint8_t *addr, uint16_t port) {
    size_t alen = f->version == 4 ? 4 : 16;
    if (t->version != f->version) return 0;
    if (memcmp(t->start_addr, addr, alen) > 0 || memcmp(addr, t->end_addr, alen) > 0) return 0;
    if (t->ip_protocol && t->ip_protocol != f->proto) return 0;
    if (!(t->start_port == 0 && t->end_port == 65535) && (port < t->start_port || port > t->end_port))
        return 0;
    return 1;
}

/* outbound: local = source; inbound: local = destination */
static int allows(const spd_entry *e, const flow *f, int outbound) {
    const uint8_t *la = outbound ? f->src : f->dst, *ra = outbound ? f->dst : f->src;
    uint16_t lp = outbound ? f->sport : f->dport, rp = outbound ? f->dport : f->sport;
    int ok = 0;
    for (uint32_t i = 0; i < e->n_local && !ok; i++) ok = ts_match(&e->ts[i], f, la, lp);
    if (!ok) return 0;
    for (uint32_t i = 0; i < e->n_remote; i++)
        if (ts_match(&e->ts[e->n_local + i], f, ra, rp)) return 1;
    return 0;
}

static inline uint8_t *pkt_at(const ikc_pktvec *v, uint32_t i) {
    return ikc_vec_slot(v, i) + v->off[i];
}


int ikc_spd_receive(ikc_spd *spd, ikc_esp *const *sas, size_t nsas, ikc_pktvec *v,
                    uint32_t *spis, uint32_t cap, uint32_t *tally, uint32_t ntally) {
    uint64_t was_pending[VEC_SLOTS_MAX / 64];
    if (!spd || !v || !spis || !tally || cap < v->count || ntally != IKC_TALLY_SIZE ||
        v->count > VEC_SLOTS_MAX)
        return IKC_ERR_ARG;
    memset(tally, 0, ntally * sizeof(*tally));
    memset(was_pending, 0, (v->count + 63) / 64 * sizeof(uint64_t));
    /* the SPI is gone once a packet is decrypted in place: note it first */
    for (uint32_t i = 0; i < v->count; i++) {
        spis[i] = 0;
        if (v->status[i] != IKC_PKT_PENDING) continue;
        was_pending[i / 64] |= (uint64_t)1 << (i % 64);
        if (ikc_vec_span_ok(v, i) && v->len[i] >= 4) spis[i] = ikc_get32(pkt_at(v, i));
    }
    /* no array given: each packet's SA is the one bound to its SPI here, found
     * through the index; the call below then picks among at most count SAs */
    ikc_esp **bound = NULL;
    if (!sas && !nsas && v->count) {
        bound = malloc(v->count * sizeof(*bound));
        if (!bound) return IKC_ERR_NOMEM;
        for (uint32_t i = 0; i < v->count; i++) {
            if (!spis[i]) continue;
            spd_entry *e = find(spd, spis[i]);
            if (!e || !e->sa) continue;
            size_t m = nsas;                /* packets of one SA come in runs: look back first */
            while (m > 0 && bound[m - 1] != e->sa) m--;
            if (m == 0) bound[nsas++] = e->sa;
        }
        sas = bound;
    }
    uint32_t n_ok;
    int rc = ikc_esp_decrypt_vec_multi(sas, nsas, v, NULL, &n_ok);
    free(bound);
    if (rc != IKC_OK) return rc;
    for (uint32_t i = 0; i < v->count; i++) {
        if (!(was_pending[i / 64] >> (i % 64) & 1)) continue;
        if (v->status[i] == IKC_OK) {
            spd_entry *e = find(spd, spis[i]);
            if (!e) {
                v->status[i] = IKC_ERR_SPI;
            } else if (e->flags & IKC_SPD_CHECK) {
                flow f;
                int nh = v->nh[i];
                /* the inner header must be of the IP version the next header names */
                if ((nh != 4 && nh != 41) || !ikc_vec_span_ok(v, i) || !parse_flow(pkt_at(v, i), v->len[i], &f) ||
                    f.version != (nh == 4 ? 4 : 6) || !allows(e, &f, 0)) {
                    v->status[i] = IKC_ERR_POLICY;
                    e->drops++;
                }
            }
        }
        if (v->status[i] != IKC_OK) spis[i] = 0;
        int32_t s = v->status[i];
        if (s >= IKC_TALLY_MIN && s < IKC_TALLY_MIN + (int32_t)IKC_TALLY_SIZE) tally[s - IKC_TALLY_MIN]++;
    }
    return IKC_OK;
}

static uint32_t flow_hash(const flow *f) {
    /* FNV-1a over the tuple */
    uint32_t h = 2166136261u;
    const uint8_t *b = (const uint8_t *)f;
    for (size_t i = 0; i < sizeof(*f); i++) { h ^= b[i]; h *= 16777619u; }
    return h;
}

static uint32_t route_one(ikc_spd *spd, const flow *f) {
    flow_slot *c = &spd->cache[flow_hash(f) & (FLOW_CACHE_SLOTS - 1)];
    if (c->generation == spd->generation && memcmp(&c->key, f, sizeof(*f)) == 0) return c->spi;
    uint32_t spi = 0;
    uint64_t newest = 0;
    for (uint32_t k = 0; k < spd->n; k++) {        /* the newest SA that covers the flow */
        const spd_entry *e = &spd->ent[k];
        if (e->seq > newest && (e->flags & IKC_SPD_ROUTE) && allows(e, f, 1)) {
            spi = e->spi;
            newest = e->seq;
        }
    }
    c->key = *f;
    c->generation = spd->generation;
    c->spi = spi;
    return spi;
}

int ikc_spd_route(ikc_spd *spd, ikc_pktvec *v, uint32_t *spis, uint32_t cap, uint32_t *groups,
                  uint32_t groups_cap, uint32_t *n_groups, uint32_t *n_routed) {
    if (!spd || !v || !spis || !groups || !n_groups || !n_routed || cap < v->count || groups_cap < v->count)
        return IKC_ERR_ARG;
    uint32_t routed = 0, ng = 0, last = 0;
    for (uint32_t i = 0; i < v->count; i++) {
        spis[i] = 0;
        if (v->status[i] != IKC_PKT_PENDING) continue;
        flow f;
        uint32_t spi = 0;
        if (ikc_vec_span_ok(v, i) && parse_flow(pkt_at(v, i), v->len[i], &f)) spi = route_one(spd, &f);
        if (!spi) { v->status[i] = IKC_ERR_POLICY; continue; }
        spis[i] = spi;
        routed++;
        if (spi != last) {        /* a new group? (packets of a flow come in runs) */
            uint32_t g = 0;
            while (g < ng && groups[g] != spi) g++;
            if (g == ng) groups[ng++] = spi;
            last = spi;
        }
    }
    *n_groups = ng;
    *n_routed = routed;
    return IKC_OK;
}

int ikc_vec_select(ikc_pktvec *v, const uint32_t *spis, uint32_t cap, uint32_t spi, uint32_t *n) {
    if (!v || !spis || !n || cap < v->count) return IKC_ERR_ARG;
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->count; i++) {
        int32_t s = v->status[i];
        if (s != IKC_PKT_PENDING && s != IKC_PKT_PARKED) continue;
        if (spis[i] == spi) { v->status[i] = IKC_PKT_PENDING; k++; }
        else v->status[i] = IKC_PKT_PARKED;
    }
    *n = k;
    return IKC_OK;
}
