/* spd.c - the data path's traffic-selector policy (RFC 4301 §4.4.1, §5.1-5.2).
 *
 * A table of installed Child SAs keyed by inbound SPI, each with its local and
 * remote traffic selectors. One call per packet vector checks decrypted
 * tunnel-mode packets against their SA's selectors (inbound) or finds, for
 * each outbound IP packet, the newest routable SA whose selectors cover it.
 * Python did this per packet at about 5 us; here it is a few tens of ns.
 *
 * No work per packet or per SA change grows with the number of SAs:
 * - entries keep their slot for life (a free list reuses holes), so other
 *   structures refer to them by number;
 * - SPI -> entry through an open-addressing index that grows by doubling and
 *   deletes by backward shift;
 * - outbound routes: an entry whose remote selectors are all single host
 *   addresses (a road warrior's virtual IP) sits in the bucket of each of
 *   those addresses; any other entry is "wide" and sits in one list that every
 *   uncached lookup also scans. The buckets are found through a second index
 *   of the same kind. Buckets and the wide list are kept oldest first, so a
 *   lookup walks them newest first and stops at the first routable match;
 * - a direct-mapped cache of 5-tuples in front, validated per hit by stamps
 *   (see flow_slot) instead of being emptied whenever any SA changes.
 * Not thread-safe: one table per data path thread. */
#include "esp_internal.h"
#include <stdlib.h>
#include <string.h>

#define SPD_MAX_TS 256            /* selectors per side of one SA */
#define SPD_MAX_ENTRIES (1u << 20)
#define FLOW_CACHE_SLOTS 1024     /* power of two */
#define VEC_SLOTS_MAX (1u << 16)  /* as esp_vec.c allows */
#define BUCKET_INLINE 2           /* an SA and its rekeyed successor, without a malloc */

enum { PLACED_NONE, PLACED_HOSTS, PLACED_WIDE };

typedef struct {
    uint32_t spi;                 /* 0: a free slot */
    unsigned int flags;
    uint32_t n_local, n_remote;
    ikc_ts *ts;                   /* n_local local selectors, then n_remote remote ones */
    uint64_t drops;
    uint64_t seq;                 /* when it was added: the newest routable SA wins */
    uint64_t stamp;               /* new whenever the flows it is the route of may change */
    ikc_esp *sa;                  /* the inbound SA bound to this SPI, if any */
    uint32_t next_free;           /* free slot: the next free entry number + 1 */
    uint8_t placed;               /* PLACED_*: where the route lookup finds it */
} spd_entry;

/* a remote host address: the key of a route bucket */
typedef struct {
    uint8_t version;
    uint8_t addr[16];             /* IPv4: the first 4 octets, the rest zero */
} host_key;

typedef struct {
    host_key key;
    uint32_t n, cap;              /* cap 0: a free slot (n then links the free list) */
    uint64_t stamp;               /* new whenever a routable entry joins; 0: free slot */
    union {                       /* entry numbers, oldest (lowest seq) first */
        uint32_t in[BUCKET_INLINE];
        uint32_t *heap;
    } items;
} host_bucket;

typedef struct {
    uint8_t version, proto;
    uint16_t sport, dport;
    uint8_t src[16], dst[16];
} flow;

/* hashed and compared as bytes: no padding inside */
_Static_assert(sizeof(flow) == 38, "flow must have no padding");

/* A cached route stays right while none of these changed: the answer entry
 * (removed, re-set or taken out of routing: its stamp), the bucket of the
 * flow's destination (a routable entry joined it: its stamp; or a bucket was
 * made for an address that had none), the wide list (a routable wide entry
 * joined). Nothing else can make another entry the newest covering one. */
typedef struct {
    flow key;
    uint8_t used;
    uint32_t entry;               /* the route's entry number + 1; 0: no SA covers the flow */
    uint32_t bucket;              /* the destination's bucket number + 1; 0: it had none */
    uint64_t entry_stamp, bucket_stamp, wide_stamp;
} flow_slot;

/* open addressing with linear probing over "number + 1" (0: free): the SPI
 * index (entry numbers) and the host index (bucket numbers) */
typedef struct {
    uint32_t *slot;
    uint32_t mask;
} ref_index;

struct ikc_spd {
    spd_entry *ent;               /* entry numbers are stable: removal frees a slot */
    uint32_t used, cap, live, free_head;
    uint64_t next_seq, next_stamp;
    ref_index spi_index;
    host_bucket *bucket;
    uint32_t b_used, b_cap, b_live, b_free_head;
    ref_index host_index;
    uint32_t *wide;               /* wide entries' numbers, oldest first */
    uint32_t n_wide, wide_cap;
    uint64_t wide_stamp;
    ikc_spd_stats stats;
    flow_slot cache[FLOW_CACHE_SLOTS];
};

/* ---- the two indexes ---- */

static inline uint32_t spi_hash(uint32_t spi) { return spi * 2654435761u; }

static inline uint32_t host_hash(const host_key *k) {
    uint64_t a, b;
    memcpy(&a, k->addr, 8);
    memcpy(&b, k->addr + 8, 8);
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull) ^ k->version) * 0xC2B2AE3D27D4EB4Full;
    return (uint32_t)(h ^ (h >> 29) ^ (h >> 47));
}

typedef uint32_t (*home_hash)(const ikc_spd *spd, uint32_t number);

static uint32_t entry_home(const ikc_spd *spd, uint32_t k) { return spi_hash(spd->ent[k].spi); }
static uint32_t bucket_home(const ikc_spd *spd, uint32_t b) { return host_hash(&spd->bucket[b].key); }

static void ref_put(ref_index *ix, uint32_t number, uint32_t hash) {
    uint32_t h = hash & ix->mask;
    while (ix->slot[h]) h = (h + 1) & ix->mask;
    ix->slot[h] = number + 1;
}

/* room for n numbers at half load, rehashed into a table twice the size when
 * needed (amortised O(1) a change). Called before the table changes, so that
 * running out of memory leaves it as it was: the content stays the same. */
static int ref_reserve(ref_index *ix, uint32_t n, home_hash home, const ikc_spd *spd) {
    uint32_t size = ix->slot ? ix->mask + 1 : 0;
    if (size && (uint64_t)n * 2 <= size) return IKC_OK;
    uint32_t grown = size ? size : 16;
    while ((uint64_t)grown < (uint64_t)n * 2) grown <<= 1;
    ref_index bigger = { calloc(grown, sizeof(uint32_t)), grown - 1 };
    if (!bigger.slot) return IKC_ERR_NOMEM;
    for (uint32_t h = 0; h < size; h++)
        if (ix->slot[h]) ref_put(&bigger, ix->slot[h] - 1, home(spd, ix->slot[h] - 1));
    free(ix->slot);
    *ix = bigger;
    return IKC_OK;
}

/* deletion by backward shift: no tombstones, so lookups stay short */
static void ref_delete(ref_index *ix, uint32_t number, home_hash home, const ikc_spd *spd) {
    uint32_t mask = ix->mask, i = home(spd, number) & mask, j;
    while (ix->slot[i] != number + 1) i = (i + 1) & mask;
    for (j = i;;) {
        j = (j + 1) & mask;
        uint32_t k = ix->slot[j];
        if (!k) break;
        uint32_t h = home(spd, k - 1) & mask;
        /* the number at j may move to i if i lies on its probe path from h to j */
        if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
            ix->slot[i] = k;
            i = j;
        }
    }
    ix->slot[i] = 0;
}

static spd_entry *find(const ikc_spd *spd, uint32_t spi) {
    const ref_index *ix = &spd->spi_index;
    uint32_t h = spi_hash(spi) & ix->mask;
    for (uint32_t k; (k = ix->slot[h]) != 0; h = (h + 1) & ix->mask)
        if (spd->ent[k - 1].spi == spi) return &spd->ent[k - 1];
    return NULL;
}

/* the bucket number + 1 of a remote host address; 0: none */
static uint32_t bucket_find(const ikc_spd *spd, const host_key *key) {
    const ref_index *ix = &spd->host_index;
    uint32_t h = host_hash(key) & ix->mask;
    for (uint32_t b; (b = ix->slot[h]) != 0; h = (h + 1) & ix->mask) {
        const host_key *have = &spd->bucket[b - 1].key;
        if (have->version == key->version && memcmp(have->addr, key->addr, 16) == 0) return b;
    }
    return 0;
}

/* ---- where the route lookup finds an entry ---- */

static inline size_t addr_len(uint8_t version) { return version == 4 ? 4 : 16; }

static inline int ts_is_host(const ikc_ts *t) {
    return memcmp(t->start_addr, t->end_addr, addr_len(t->version)) == 0;
}

static void host_key_of(const ikc_ts *t, host_key *key) {
    memset(key, 0, sizeof(*key));
    key->version = t->version;
    memcpy(key->addr, t->start_addr, addr_len(t->version));
}

static uint8_t placement(const ikc_ts *remote, uint32_t n_remote) {
    if (!n_remote) return PLACED_NONE;            /* covers nothing: never a route */
    for (uint32_t i = 0; i < n_remote; i++)
        if (!ts_is_host(&remote[i])) return PLACED_WIDE;
    return PLACED_HOSTS;
}

/* remote selector i names a host that no earlier one named (so that an entry
 * sits in each bucket once) */
static int first_of_its_host(const ikc_ts *remote, uint32_t i) {
    for (uint32_t j = 0; j < i; j++)
        if (remote[j].version == remote[i].version &&
            memcmp(remote[j].start_addr, remote[i].start_addr, addr_len(remote[i].version)) == 0)
            return 0;
    return 1;
}

static inline uint32_t *bucket_items(host_bucket *b) {
    return b->cap > BUCKET_INLINE ? b->items.heap : b->items.in;
}

/* an oldest-first list of entry numbers: where entry k goes (binary search on seq) */
static uint32_t seq_position(const ikc_spd *spd, const uint32_t *list, uint32_t n, uint64_t seq) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (spd->ent[list[mid]].seq < seq) lo = mid + 1; else hi = mid;
    }
    return lo;
}

static void list_insert(const ikc_spd *spd, uint32_t *list, uint32_t *n, uint32_t k) {
    uint32_t at = seq_position(spd, list, *n, spd->ent[k].seq);
    memmove(list + at + 1, list + at, (*n - at) * sizeof(*list));
    list[at] = k;
    (*n)++;
}

static void list_remove(const ikc_spd *spd, uint32_t *list, uint32_t *n, uint32_t k) {
    uint32_t at = seq_position(spd, list, *n, spd->ent[k].seq);
    memmove(list + at, list + at + 1, (*n - at - 1) * sizeof(*list));
    (*n)--;
}

/* Make room to place an entry with these remote selectors (it may already be
 * placed: room is counted as if it were not). Only capacities change, so a
 * failure here leaves the table as it was. */
static int place_reserve(ikc_spd *spd, const ikc_ts *remote, uint32_t n_remote) {
    uint8_t where = placement(remote, n_remote);
    if (where == PLACED_WIDE && spd->n_wide == spd->wide_cap) {
        uint32_t cap = spd->wide_cap ? spd->wide_cap * 2 : 16;
        uint32_t *grown = realloc(spd->wide, cap * sizeof(*grown));
        if (!grown) return IKC_ERR_NOMEM;
        spd->wide = grown;
        spd->wide_cap = cap;
    }
    if (where != PLACED_HOSTS) return IKC_OK;
    uint32_t fresh = 0;
    for (uint32_t i = 0; i < n_remote; i++) {
        if (!first_of_its_host(remote, i)) continue;
        host_key key;
        host_key_of(&remote[i], &key);
        uint32_t b = bucket_find(spd, &key);
        if (!b) { fresh++; continue; }
        host_bucket *hb = &spd->bucket[b - 1];
        if (hb->n < hb->cap) continue;
        uint32_t cap = hb->cap * 2;
        uint32_t *grown = malloc(cap * sizeof(*grown));
        if (!grown) return IKC_ERR_NOMEM;
        memcpy(grown, bucket_items(hb), hb->n * sizeof(*grown));
        if (hb->cap > BUCKET_INLINE) free(hb->items.heap);
        hb->items.heap = grown;
        hb->cap = cap;
    }
    if (fresh > spd->b_cap - spd->b_live) {      /* free-list slots and unused ones */
        uint32_t cap = spd->b_cap ? spd->b_cap : 16;
        while (cap - spd->b_live < fresh) cap *= 2;
        host_bucket *grown = realloc(spd->bucket, cap * sizeof(*grown));
        if (!grown) return IKC_ERR_NOMEM;
        spd->bucket = grown;
        spd->b_cap = cap;
    }
    return ref_reserve(&spd->host_index, spd->b_live + fresh, bucket_home, spd);
}

static uint32_t bucket_new(ikc_spd *spd, const host_key *key) {
    uint32_t b;
    if (spd->b_free_head) {
        b = spd->b_free_head - 1;
        spd->b_free_head = spd->bucket[b].n;
    } else {
        b = spd->b_used++;
    }
    host_bucket *hb = &spd->bucket[b];
    memset(hb, 0, sizeof(*hb));
    hb->key = *key;
    hb->cap = BUCKET_INLINE;
    hb->stamp = ++spd->next_stamp;    /* flows cached as "no bucket" look again */
    spd->b_live++;
    ref_put(&spd->host_index, b, host_hash(key));
    return b;
}

static void bucket_free(ikc_spd *spd, uint32_t b) {
    host_bucket *hb = &spd->bucket[b];
    ref_delete(&spd->host_index, b, bucket_home, spd);
    if (hb->cap > BUCKET_INLINE) free(hb->items.heap);
    hb->cap = 0;
    hb->stamp = 0;                    /* flows cached with this bucket look again */
    hb->n = spd->b_free_head;
    spd->b_free_head = b + 1;
    spd->b_live--;
}

/* after place_reserve: cannot fail */
static void place(ikc_spd *spd, uint32_t k) {
    spd_entry *e = &spd->ent[k];
    const ikc_ts *remote = e->ts + e->n_local;
    int routable = (e->flags & IKC_SPD_ROUTE) != 0;
    e->placed = placement(remote, e->n_remote);
    if (e->placed == PLACED_WIDE) {
        list_insert(spd, spd->wide, &spd->n_wide, k);
        if (routable) spd->wide_stamp = ++spd->next_stamp;
        return;
    }
    if (e->placed != PLACED_HOSTS) return;
    for (uint32_t i = 0; i < e->n_remote; i++) {
        if (!first_of_its_host(remote, i)) continue;
        host_key key;
        host_key_of(&remote[i], &key);
        uint32_t b = bucket_find(spd, &key);
        b = b ? b - 1 : bucket_new(spd, &key);
        host_bucket *hb = &spd->bucket[b];
        list_insert(spd, bucket_items(hb), &hb->n, k);
        if (routable) hb->stamp = ++spd->next_stamp;   /* it may now be these flows' route */
    }
}

static void unplace(ikc_spd *spd, uint32_t k) {
    spd_entry *e = &spd->ent[k];
    const ikc_ts *remote = e->ts + e->n_local;
    if (e->placed == PLACED_WIDE) list_remove(spd, spd->wide, &spd->n_wide, k);
    if (e->placed == PLACED_HOSTS) {
        for (uint32_t i = 0; i < e->n_remote; i++) {
            if (!first_of_its_host(remote, i)) continue;
            host_key key;
            host_key_of(&remote[i], &key);
            uint32_t b = bucket_find(spd, &key) - 1;
            host_bucket *hb = &spd->bucket[b];
            list_remove(spd, bucket_items(hb), &hb->n, k);
            if (!hb->n) bucket_free(spd, b);
        }
    }
    e->placed = PLACED_NONE;
}

/* a routable entry appeared where it was not before: flows it may cover look again */
static void announce(ikc_spd *spd, uint32_t k) {
    spd_entry *e = &spd->ent[k];
    const ikc_ts *remote = e->ts + e->n_local;
    if (e->placed == PLACED_WIDE) spd->wide_stamp = ++spd->next_stamp;
    if (e->placed != PLACED_HOSTS) return;
    for (uint32_t i = 0; i < e->n_remote; i++) {
        host_key key;
        host_key_of(&remote[i], &key);
        spd->bucket[bucket_find(spd, &key) - 1].stamp = ++spd->next_stamp;
    }
}

/* ---- the table ---- */

int ikc_spd_new(ikc_spd **out) {
    if (!out) return IKC_ERR_ARG;
    *out = NULL;
    ikc_spd *spd = calloc(1, sizeof(*spd));
    if (!spd) return IKC_ERR_NOMEM;
    spd->wide_stamp = spd->next_stamp = 1;
    if (ref_reserve(&spd->spi_index, 0, entry_home, spd) ||
        ref_reserve(&spd->host_index, 0, bucket_home, spd)) {
        ikc_spd_free(spd);
        return IKC_ERR_NOMEM;
    }
    *out = spd;
    return IKC_OK;
}

void ikc_spd_free(ikc_spd *spd) {
    if (!spd) return;
    for (uint32_t k = 0; k < spd->used; k++) free(spd->ent[k].ts);
    for (uint32_t b = 0; b < spd->b_used; b++)
        if (spd->bucket[b].cap > BUCKET_INLINE) free(spd->bucket[b].items.heap);
    free(spd->ent);
    free(spd->bucket);
    free(spd->wide);
    free(spd->spi_index.slot);
    free(spd->host_index.slot);
    free(spd);
}

static int ts_valid(const ikc_ts *t) {
    return (t->version == 4 || t->version == 6) && t->start_port <= t->end_port &&
           memcmp(t->start_addr, t->end_addr, addr_len(t->version)) <= 0;
}

int ikc_spd_set(ikc_spd *spd, uint32_t spi, const ikc_ts *local, size_t n_local,
                const ikc_ts *remote, size_t n_remote, unsigned int flags) {
    if (!spd || spi == 0 || (n_local && !local) || (n_remote && !remote) ||
        n_local > SPD_MAX_TS || n_remote > SPD_MAX_TS || (flags & ~(unsigned)(IKC_SPD_CHECK | IKC_SPD_ROUTE)))
        return IKC_ERR_ARG;
    for (size_t i = 0; i < n_local; i++) if (!ts_valid(&local[i])) return IKC_ERR_ARG;
    for (size_t i = 0; i < n_remote; i++) if (!ts_valid(&remote[i])) return IKC_ERR_ARG;
    spd_entry *e = find(spd, spi);
    if (!e && spd->live >= SPD_MAX_ENTRIES) return IKC_ERR_LIMIT;
    /* every allocation first, so that running out of memory changes nothing */
    int rc = place_reserve(spd, remote, (uint32_t)n_remote);
    if (rc) return rc;
    if (!e) {
        if ((rc = ref_reserve(&spd->spi_index, spd->live + 1, entry_home, spd))) return rc;
        if (!spd->free_head && spd->used == spd->cap) {
            uint32_t cap = spd->cap ? spd->cap * 2 : 16;
            spd_entry *grown = realloc(spd->ent, cap * sizeof(*grown));
            if (!grown) return IKC_ERR_NOMEM;
            spd->ent = grown;
            spd->cap = cap;
        }
    }
    ikc_ts *ts = malloc((n_local + n_remote ? n_local + n_remote : 1) * sizeof(*ts));
    if (!ts) return IKC_ERR_NOMEM;
    if (n_local) memcpy(ts, local, n_local * sizeof(*ts));
    if (n_remote) memcpy(ts + n_local, remote, n_remote * sizeof(*ts));
    uint32_t k;
    if (e) {                          /* new selectors, same place in the order */
        k = (uint32_t)(e - spd->ent);
        unplace(spd, k);
        free(e->ts);
    } else {
        if (spd->free_head) {
            k = spd->free_head - 1;
            spd->free_head = spd->ent[k].next_free;
        } else {
            k = spd->used++;
        }
        e = &spd->ent[k];
        memset(e, 0, sizeof(*e));
        e->spi = spi;
        e->seq = ++spd->next_seq;
        spd->live++;
        ref_put(&spd->spi_index, k, spi_hash(spi));
    }
    e->ts = ts;
    e->n_local = (uint32_t)n_local;
    e->n_remote = (uint32_t)n_remote;
    e->flags = flags;
    e->stamp = ++spd->next_stamp;     /* routes cached through it look again */
    place(spd, k);
    return IKC_OK;
}

int ikc_spd_set_flags(ikc_spd *spd, uint32_t spi, unsigned int flags) {
    if (!spd || (flags & ~(unsigned)(IKC_SPD_CHECK | IKC_SPD_ROUTE))) return IKC_ERR_ARG;
    spd_entry *e = find(spd, spi);
    if (!e) return IKC_ERR_SPI;
    unsigned int was = e->flags;
    e->flags = flags;
    if ((was & IKC_SPD_ROUTE) && !(flags & IKC_SPD_ROUTE))
        e->stamp = ++spd->next_stamp;                  /* no longer anyone's route */
    if (!(was & IKC_SPD_ROUTE) && (flags & IKC_SPD_ROUTE))
        announce(spd, (uint32_t)(e - spd->ent));       /* may now be the newest route */
    return IKC_OK;
}

int ikc_spd_remove(ikc_spd *spd, uint32_t spi) {
    if (!spd) return IKC_ERR_ARG;
    spd_entry *e = find(spd, spi);
    if (!e) return IKC_ERR_SPI;
    uint32_t k = (uint32_t)(e - spd->ent);
    unplace(spd, k);
    ref_delete(&spd->spi_index, k, entry_home, spd);
    free(e->ts);
    memset(e, 0, sizeof(*e));         /* stamp 0: routes cached through it look again */
    e->next_free = spd->free_head;
    spd->free_head = k + 1;
    spd->live--;
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

uint32_t ikc_spd_count(const ikc_spd *spd) { return spd ? spd->live : 0; }

int ikc_spd_route_stats(const ikc_spd *spd, ikc_spd_stats *out) {
    if (!spd || !out) return IKC_ERR_ARG;
    *out = spd->stats;
    return IKC_OK;
}

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
    /* FNV's low bits, the slot number, depend only on the inputs' low bits:
     * fold the high ones in (flows to neighbouring addresses collided) */
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    return h ^ (h >> 12);
}

static inline int cached_route_holds(const ikc_spd *spd, const flow_slot *c, const host_key *dst) {
    if (c->wide_stamp != spd->wide_stamp) return 0;
    if (c->bucket ? spd->bucket[c->bucket - 1].stamp != c->bucket_stamp : bucket_find(spd, dst) != 0) return 0;
    return !c->entry || spd->ent[c->entry - 1].stamp == c->entry_stamp;
}

/* The newest routable entry that covers the flow, as a scan of every entry
 * would find it: an entry covers a flow only through a remote selector that
 * holds its destination, so it is in that address's bucket or in the wide
 * list. Both are walked newest first; the wide list only down to the newest
 * match the bucket gave. */
static uint32_t route_one(ikc_spd *spd, const flow *f) {
    host_key dst;
    memset(&dst, 0, sizeof(dst));
    dst.version = f->version;
    memcpy(dst.addr, f->dst, 16);                  /* IPv4: parse_flow left the rest zero */
    flow_slot *c = &spd->cache[flow_hash(f) & (FLOW_CACHE_SLOTS - 1)];
    spd->stats.lookups++;
    if (c->used && memcmp(&c->key, f, sizeof(*f)) == 0 && cached_route_holds(spd, c, &dst)) {
        spd->stats.cache_hits++;
        return c->entry ? spd->ent[c->entry - 1].spi : 0;
    }
    uint32_t best = 0, examined = 0, b = bucket_find(spd, &dst);
    uint64_t best_seq = 0;
    if (b) {
        host_bucket *hb = &spd->bucket[b - 1];
        const uint32_t *items = bucket_items(hb);
        for (uint32_t i = hb->n; i-- > 0;) {
            const spd_entry *e = &spd->ent[items[i]];
            examined++;
            if ((e->flags & IKC_SPD_ROUTE) && allows(e, f, 1)) { best = items[i] + 1; best_seq = e->seq; break; }
        }
    }
    for (uint32_t i = spd->n_wide; i-- > 0;) {
        const spd_entry *e = &spd->ent[spd->wide[i]];
        if (e->seq < best_seq) break;               /* older than the bucket's answer */
        examined++;
        if ((e->flags & IKC_SPD_ROUTE) && allows(e, f, 1)) { best = spd->wide[i] + 1; break; }
    }
    spd->stats.entries_examined += examined;
    spd->stats.last_examined = examined;
    c->key = *f;
    c->used = 1;
    c->entry = best;
    c->entry_stamp = best ? spd->ent[best - 1].stamp : 0;
    c->bucket = b;
    c->bucket_stamp = b ? spd->bucket[b - 1].stamp : 0;
    c->wide_stamp = spd->wide_stamp;
    return best ? spd->ent[best - 1].spi : 0;
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
