/* esp_vec.c - packet vectors: many packets in one contiguous buffer, processed
 * by one C call each (cffi releases the GIL around it), filled from and
 * drained to sockets with recvmmsg/sendmmsg (Linux; a recvfrom/sendto loop
 * elsewhere), UDP encapsulation of ESP (RFC 3948). */
#include "esp_internal.h"
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#define VEC_MAX_SLOTS (1u << 16)
#define VEC_MAX_SLOT_SIZE (IKC_ESP_MAX_PACKET + 1024u)

void ikc_vec_free(ikc_pktvec *v) {
    if (!v) return;
    if (v->buf) {
        /* packets may hold plaintext */
        OPENSSL_cleanse(v->buf, (size_t)v->slots * v->slot_size);
        free(v->buf);
    }
    free(v->off); free(v->len); free(v->status); free(v->nh); free(v->seq);
    free(v->addr); free(v->addrlen); free(v->msgs); free(v->iovs); free(v->map);
    free(v);
}

int ikc_vec_new(uint32_t slots, uint32_t slot_size, uint32_t headroom, ikc_pktvec **out) {
    if (!out) return IKC_ERR_ARG;
    *out = NULL;
    if (slots == 0 || slots > VEC_MAX_SLOTS || slot_size < 64 || slot_size > VEC_MAX_SLOT_SIZE ||
        headroom >= slot_size)
        return IKC_ERR_ARG;
    ikc_pktvec *v = calloc(1, sizeof(*v));
    if (!v) return IKC_ERR_NOMEM;
    v->slots = slots;
    v->slot_size = slot_size;
    v->headroom = headroom;
    /* slots * slot_size <= 2^16 * (2^16 + 1024): no overflow in size_t */
    v->buf = calloc((size_t)slots, slot_size);
    v->off = calloc(slots, sizeof(uint32_t));
    v->len = calloc(slots, sizeof(uint32_t));
    v->status = calloc(slots, sizeof(int32_t));
    v->nh = calloc(slots, 1);
    v->seq = calloc(slots, sizeof(uint64_t));
    v->addr = calloc(slots, sizeof(struct sockaddr_storage));
    v->addrlen = calloc(slots, sizeof(uint32_t));
    v->map = calloc(slots, sizeof(uint32_t));
#ifdef __linux__
    v->msgs = calloc(slots, sizeof(struct mmsghdr));
    v->iovs = calloc(slots, sizeof(struct iovec));
    if (!v->msgs || !v->iovs) { ikc_vec_free(v); return IKC_ERR_NOMEM; }
#endif
    if (!v->buf || !v->off || !v->len || !v->status || !v->nh || !v->seq || !v->addr ||
        !v->addrlen || !v->map) {
        ikc_vec_free(v);
        return IKC_ERR_NOMEM;
    }
    for (uint32_t i = 0; i < slots; i++) { v->off[i] = headroom; v->status[i] = IKC_PKT_EMPTY; }
    *out = v;
    return IKC_OK;
}

uint8_t *ikc_vec_buf(ikc_pktvec *v) { return v ? v->buf : NULL; }
uint32_t *ikc_vec_offsets(ikc_pktvec *v) { return v ? v->off : NULL; }
uint32_t *ikc_vec_lengths(ikc_pktvec *v) { return v ? v->len : NULL; }
int32_t *ikc_vec_status(ikc_pktvec *v) { return v ? v->status : NULL; }
uint8_t *ikc_vec_next_headers(ikc_pktvec *v) { return v ? v->nh : NULL; }
uint64_t *ikc_vec_seqs(ikc_pktvec *v) { return v ? v->seq : NULL; }
uint32_t ikc_vec_count(const ikc_pktvec *v) { return v ? v->count : 0; }
int ikc_vec_errno(const ikc_pktvec *v) { return v ? v->last_errno : 0; }

int ikc_vec_set_count(ikc_pktvec *v, uint32_t count) {
    if (!v || count > v->slots) return IKC_ERR_ARG;
    for (uint32_t i = count; i < v->count; i++) v->status[i] = IKC_PKT_EMPTY;
    v->count = count;
    return IKC_OK;
}


int ikc_vec_reset(ikc_pktvec *v, uint32_t count, uint32_t len, int next_header) {
    if (!v || count > v->slots || len > v->slot_size - v->headroom ||
        next_header < -1 || next_header > 255)
        return IKC_ERR_ARG;
    for (uint32_t i = 0; i < count; i++) {
        v->off[i] = v->headroom;
        v->len[i] = len;
        v->status[i] = IKC_PKT_PENDING;
        if (next_header >= 0) v->nh[i] = (uint8_t)next_header;
    }
    for (uint32_t i = count; i < v->count; i++) v->status[i] = IKC_PKT_EMPTY;
    v->count = count;
    return IKC_OK;
}

int ikc_vec_load(ikc_pktvec *v, const uint8_t *data, size_t data_len,
                 const uint32_t *lens, uint32_t count, int next_header) {
    if (!v || (!data && data_len) || (!lens && count) || count > v->slots ||
        next_header < -1 || next_header > 255)
        return IKC_ERR_ARG;
    size_t pos = 0, room = v->slot_size - v->headroom;
    for (uint32_t i = 0; i < count; i++) {
        if (lens[i] > data_len - pos) return IKC_ERR_ARG;   /* lengths beyond the data */
        pos += lens[i];
    }
    pos = 0;
    for (uint32_t i = 0; i < count; i++) {
        v->off[i] = v->headroom;
        if (next_header >= 0) v->nh[i] = (uint8_t)next_header;
        if (lens[i] > room) {
            v->len[i] = 0;
            v->status[i] = IKC_ERR_BUFFER;   /* does not fit its slot */
        } else {
            memcpy(ikc_vec_slot(v, i) + v->headroom, data + pos, lens[i]);
            v->len[i] = lens[i];
            v->status[i] = IKC_PKT_PENDING;
        }
        pos += lens[i];
    }
    for (uint32_t i = count; i < v->count; i++) v->status[i] = IKC_PKT_EMPTY;
    v->count = count;
    return IKC_OK;
}

int ikc_vec_gather(const ikc_pktvec *v, uint8_t *out, size_t out_cap, uint32_t *lens,
                   uint32_t lens_cap, uint32_t *n, size_t *total) {
    if (!v || (!out && out_cap) || (!lens && lens_cap) || !n || !total) return IKC_ERR_ARG;
    size_t pos = 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->count; i++) {
        if (v->status[i] != IKC_OK) continue;
        if (!ikc_vec_span_ok(v, i)) return IKC_ERR_ARG;
        if (k >= lens_cap || v->len[i] > out_cap - pos) return IKC_ERR_BUFFER;
        memcpy(out + pos, ikc_vec_slot(v, i) + v->off[i], v->len[i]);
        lens[k++] = v->len[i];
        pos += v->len[i];
    }
    *n = k;
    *total = pos;
    return IKC_OK;
}

int ikc_vec_count_status(const ikc_pktvec *v, int32_t status, uint32_t *n) {
    if (!v || !n) return IKC_ERR_ARG;
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->count; i++) k += v->status[i] == status;
    *n = k;
    return IKC_OK;
}

int ikc_vec_restatus(ikc_pktvec *v, int32_t from, int32_t to, uint32_t *n) {
    if (!v || !n) return IKC_ERR_ARG;
    uint32_t k = 0;
    for (uint32_t i = 0; i < v->count; i++)
        if (v->status[i] == from) { v->status[i] = to; k++; }
    *n = k;
    return IKC_OK;
}

/* ---- batch ESP ---- */

static int check_pair(const ikc_pktvec *src, const ikc_pktvec *dst) {
    if (!src) return IKC_ERR_ARG;
    if (dst && (dst == src || dst->slots < src->count)) return IKC_ERR_ARG;
    return IKC_OK;
}

static inline void skip_packet(const ikc_pktvec *src, ikc_pktvec *dst, uint32_t i) {
    if (dst) {
        dst->status[i] = src->status[i];
        dst->off[i] = dst->headroom;
        dst->len[i] = 0;
    }
}

static inline void fail_packet(ikc_pktvec *src, ikc_pktvec *dst, uint32_t i, int rc) {
    ikc_pktvec *w = dst ? dst : src;
    w->status[i] = rc;
    if (dst) { dst->off[i] = dst->headroom; dst->len[i] = 0; }
}

int ikc_esp_encrypt_vec(ikc_esp *sa, ikc_pktvec *src, ikc_pktvec *dst, int next_header,
                        uint32_t tfc_len, uint32_t *n_ok) {
    int rc;
    if (!sa || !n_ok) return IKC_ERR_ARG;
    if ((rc = check_pair(src, dst)) != IKC_OK) return rc;
    if (next_header < IKC_ESP_NH_FROM_IP || next_header > 255 || tfc_len > IKC_ESP_MAX_PACKET)
        return IKC_ERR_ARG;
    if (!sa->enc) return IKC_ERR_STATE;
    uint32_t ok = 0;
    size_t hdr = sa->hdr_len;
    for (uint32_t i = 0; i < src->count; i++) {
        int32_t st = src->status[i];
        if (st != IKC_OK && st != IKC_PKT_PENDING) { skip_packet(src, dst, i); continue; }
        if (!ikc_vec_span_ok(src, i)) { fail_packet(src, dst, i, IKC_ERR_ARG); continue; }
        uint32_t off = src->off[i], len = src->len[i];
        const uint8_t *payload = ikc_vec_slot(src, i) + off;
        int nh = next_header;
        if (nh == IKC_ESP_NH_PER_PACKET) nh = src->nh[i];
        else if (nh == IKC_ESP_NH_FROM_IP) {
            uint8_t ver = len ? payload[0] >> 4 : 0;
            if (ver == 4) nh = 4;
            else if (ver == 6) nh = 41;
            else { fail_packet(src, dst, i, IKC_ERR_ARG); continue; }
        }
        ikc_pktvec *w = dst ? dst : src;
        size_t pkt_off;
        if (dst) {
            pkt_off = off >= hdr ? off - hdr : 0;
            if (pkt_off + hdr > dst->slot_size || len > dst->slot_size - pkt_off - hdr) {
                fail_packet(src, dst, i, IKC_ERR_BUFFER);
                continue;
            }
            memcpy(ikc_vec_slot(dst, i) + pkt_off + hdr, payload, len);
        } else {
            if (off < hdr) { fail_packet(src, dst, i, IKC_ERR_BUFFER); continue; }   /* no headroom */
            pkt_off = off - hdr;
        }
        size_t out_len;
        rc = ikc_esp_seal_inplace(sa, ikc_vec_slot(w, i) + pkt_off, len, nh, tfc_len, NULL,
                                  w->slot_size - pkt_off, &out_len);
        if (rc != IKC_OK) { fail_packet(src, dst, i, rc); continue; }
        w->off[i] = (uint32_t)pkt_off;
        w->len[i] = (uint32_t)out_len;
        w->status[i] = IKC_OK;
        w->nh[i] = (uint8_t)nh;
        w->seq[i] = sa->seq_out;
        if (dst) {
            memcpy((struct sockaddr_storage *)dst->addr + i, (struct sockaddr_storage *)src->addr + i,
                   sizeof(struct sockaddr_storage));
            dst->addrlen[i] = src->addrlen[i];
        }
        ok++;
    }
    if (dst) dst->count = src->count;
    *n_ok = ok;
    return IKC_OK;
}

static void open_one(ikc_esp *sa, ikc_pktvec *src, ikc_pktvec *dst, uint32_t i, uint32_t *ok) {
    uint32_t off = src->off[i], len = src->len[i];
    size_t hdr = sa->hdr_len, plen;
    uint8_t *pkt = ikc_vec_slot(src, i) + off, *out;
    size_t out_cap;
    ikc_pktvec *w = dst ? dst : src;
    if (len < hdr) {
        /* too short for the header: report it the way ikc_esp_open would */
        int rc = len < IKC_ESP_HEADER_LEN || ikc_get32(pkt) == sa->spi ? IKC_ERR_TRUNCATED : IKC_ERR_SPI;
        sa->stats[IKC_ESP_STAT_MALFORMED]++;
        fail_packet(src, dst, i, rc);
        return;
    }
    if (dst) {
        if ((size_t)off + hdr > dst->slot_size) { fail_packet(src, dst, i, IKC_ERR_BUFFER); return; }
        out = ikc_vec_slot(dst, i) + off + hdr;
        out_cap = dst->slot_size - off - hdr;
    } else {
        out = pkt + hdr;
        out_cap = len - hdr;
    }
    int nh;
    uint64_t seq;
    int rc = ikc_esp_open(sa, pkt, len, out, out_cap, &plen, &nh, &seq);
    if (rc < 0) { fail_packet(src, dst, i, rc); return; }
    w->off[i] = (uint32_t)(off + hdr);
    w->len[i] = (uint32_t)plen;
    w->nh[i] = (uint8_t)nh;
    w->seq[i] = seq;
    w->status[i] = rc;   /* IKC_OK or IKC_PKT_DUMMY */
    if (dst) {
        memcpy((struct sockaddr_storage *)dst->addr + i, (struct sockaddr_storage *)src->addr + i,
               sizeof(struct sockaddr_storage));
        dst->addrlen[i] = src->addrlen[i];
    }
    if (rc == IKC_OK) (*ok)++;
}

int ikc_esp_decrypt_vec(ikc_esp *sa, ikc_pktvec *src, ikc_pktvec *dst, uint32_t *n_ok) {
    int rc;
    if (!sa || !n_ok) return IKC_ERR_ARG;
    if ((rc = check_pair(src, dst)) != IKC_OK) return rc;
    if (!sa->dec) return IKC_ERR_STATE;
    uint32_t ok = 0;
    for (uint32_t i = 0; i < src->count; i++) {
        if (src->status[i] != IKC_PKT_PENDING) { skip_packet(src, dst, i); continue; }
        if (!ikc_vec_span_ok(src, i)) { fail_packet(src, dst, i, IKC_ERR_ARG); continue; }
        open_one(sa, src, dst, i, &ok);
    }
    if (dst) dst->count = src->count;
    *n_ok = ok;
    return IKC_OK;
}

int ikc_esp_decrypt_vec_multi(ikc_esp *const *sas, size_t nsas, ikc_pktvec *src,
                              ikc_pktvec *dst, uint32_t *n_ok) {
    int rc;
    if (!n_ok || (!sas && nsas)) return IKC_ERR_ARG;
    if ((rc = check_pair(src, dst)) != IKC_OK) return rc;
    for (size_t k = 0; k < nsas; k++)
        if (!sas[k] || !sas[k]->dec) return IKC_ERR_ARG;
    uint32_t ok = 0;
    size_t last = 0;
    for (uint32_t i = 0; i < src->count; i++) {
        if (src->status[i] != IKC_PKT_PENDING) { skip_packet(src, dst, i); continue; }
        if (!ikc_vec_span_ok(src, i)) { fail_packet(src, dst, i, IKC_ERR_ARG); continue; }
        if (src->len[i] < IKC_ESP_HEADER_LEN) { fail_packet(src, dst, i, IKC_ERR_TRUNCATED); continue; }
        uint32_t spi = ikc_get32(ikc_vec_slot(src, i) + src->off[i]);
        ikc_esp *sa = NULL;
        if (nsas && sas[last]->spi == spi) sa = sas[last];
        else
            for (size_t k = 0; k < nsas; k++)
                if (sas[k]->spi == spi) { sa = sas[k]; last = k; break; }
        if (!sa) { fail_packet(src, dst, i, IKC_ERR_SPI); continue; }
        open_one(sa, src, dst, i, &ok);
    }
    if (dst) dst->count = src->count;
    *n_ok = ok;
    return IKC_OK;
}

/* ---- UDP encapsulation (RFC 3948) ---- */

int ikc_vec_classify_udpencap(ikc_pktvec *v) {
    if (!v) return IKC_ERR_ARG;
    for (uint32_t i = 0; i < v->count; i++) {
        if (v->status[i] != IKC_PKT_PENDING) continue;
        if (!ikc_vec_span_ok(v, i)) { v->status[i] = IKC_ERR_ARG; continue; }
        const uint8_t *p = ikc_vec_slot(v, i) + v->off[i];
        uint32_t len = v->len[i];
        if (len == 1 && p[0] == 0xFF) {
            v->status[i] = IKC_PKT_KEEPALIVE;   /* RFC 3948 §2.3 */
        } else if (len >= 4 && ikc_get32(p) == 0) {
            v->status[i] = IKC_PKT_IKE;         /* non-ESP marker (RFC 3948 §2.2) */
            v->off[i] += 4;
            v->len[i] -= 4;
        } else if (len < IKC_ESP_HEADER_LEN) {
            v->status[i] = IKC_ERR_TRUNCATED;
        }
    }
    return IKC_OK;
}

int ikc_vec_udp_wrap(ikc_pktvec *v, uint16_t src_port, uint16_t dst_port) {
    if (!v) return IKC_ERR_ARG;
    for (uint32_t i = 0; i < v->count; i++) {
        if (v->status[i] != IKC_OK) continue;
        if (!ikc_vec_span_ok(v, i)) { v->status[i] = IKC_ERR_ARG; continue; }
        if (v->off[i] < 8 || v->len[i] > 65535 - 8) { v->status[i] = IKC_ERR_BUFFER; continue; }
        uint8_t *h = ikc_vec_slot(v, i) + v->off[i] - 8;
        uint32_t ulen = v->len[i] + 8;
        h[0] = (uint8_t)(src_port >> 8); h[1] = (uint8_t)src_port;
        h[2] = (uint8_t)(dst_port >> 8); h[3] = (uint8_t)dst_port;
        h[4] = (uint8_t)(ulen >> 8); h[5] = (uint8_t)ulen;
        h[6] = 0; h[7] = 0;   /* checksum 0 (RFC 3948 §2.1) */
        v->off[i] -= 8;
        v->len[i] = ulen;
    }
    return IKC_OK;
}

int ikc_vec_udp_unwrap(ikc_pktvec *v) {
    if (!v) return IKC_ERR_ARG;
    for (uint32_t i = 0; i < v->count; i++) {
        if (v->status[i] != IKC_PKT_PENDING) continue;
        if (!ikc_vec_span_ok(v, i)) { v->status[i] = IKC_ERR_ARG; continue; }
        const uint8_t *h = ikc_vec_slot(v, i) + v->off[i];
        if (v->len[i] < 8) { v->status[i] = IKC_ERR_TRUNCATED; continue; }
        uint32_t ulen = ((uint32_t)h[4] << 8) | h[5];
        if (ulen < 8 || ulen > v->len[i]) { v->status[i] = IKC_ERR_TRUNCATED; continue; }
        v->off[i] += 8;
        v->len[i] = ulen - 8;
    }
    return IKC_OK;
}

/* ---- socket and fd I/O ---- */

static inline int transient(int e) { return e == EAGAIN || e == EWOULDBLOCK || e == EINTR; }

int ikc_vec_recv(ikc_pktvec *v, int fd, uint32_t max, int wait, uint32_t *received) {
    if (!v || !received || fd < 0) return IKC_ERR_ARG;
    *received = 0;
    if (max == 0 || max > v->slots) max = v->slots;
    size_t room = v->slot_size - v->headroom;
    uint32_t n = 0;
#ifdef __linux__
    struct mmsghdr *m = v->msgs;
    struct iovec *iov = v->iovs;
    for (uint32_t i = 0; i < max; i++) {
        iov[i].iov_base = ikc_vec_slot(v, i) + v->headroom;
        iov[i].iov_len = room;
        memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
        m[i].msg_hdr.msg_name = (struct sockaddr_storage *)v->addr + i;
        m[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
        m[i].msg_len = 0;
    }
    int r = recvmmsg(fd, m, max, wait ? MSG_WAITFORONE : MSG_DONTWAIT, NULL);
    if (r < 0) {
        v->last_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK) r = 0;
        else return IKC_ERR_IO;
    }
    n = (uint32_t)r;
    for (uint32_t i = 0; i < n; i++) {
        v->off[i] = v->headroom;
        v->len[i] = m[i].msg_len;
        v->addrlen[i] = m[i].msg_hdr.msg_namelen;
        v->status[i] = (m[i].msg_hdr.msg_flags & MSG_TRUNC) ? IKC_ERR_BUFFER : IKC_PKT_PENDING;
    }
#else
    for (; n < max; n++) {
        socklen_t alen = sizeof(struct sockaddr_storage);
        int flags = (wait && n == 0) ? 0 : MSG_DONTWAIT;
        ssize_t r = recvfrom(fd, ikc_vec_slot(v, n) + v->headroom, room, flags | MSG_TRUNC,
                             (struct sockaddr *)((struct sockaddr_storage *)v->addr + n), &alen);
        if (r < 0) {
            v->last_errno = errno;
            if (transient(errno) && (n > 0 || errno != EINTR)) break;
            return IKC_ERR_IO;
        }
        v->off[n] = v->headroom;
        v->len[n] = (size_t)r > room ? (uint32_t)room : (uint32_t)r;
        v->addrlen[n] = alen;
        v->status[n] = (size_t)r > room ? IKC_ERR_BUFFER : IKC_PKT_PENDING;
    }
#endif
    for (uint32_t i = n; i < v->count; i++) v->status[i] = IKC_PKT_EMPTY;
    v->count = n;
    *received = n;
    return IKC_OK;
}

static int fatal_fd_errno(int e) { return e == EBADF || e == ENOTSOCK || e == EFAULT || e == EINVAL; }

int ikc_vec_send(ikc_pktvec *v, int fd, uint32_t *sent) {
    if (!v || !sent || fd < 0) return IKC_ERR_ARG;
    *sent = 0;
    uint32_t k = 0, done = 0;
    for (uint32_t i = 0; i < v->count; i++) {
        if (v->status[i] != IKC_OK) continue;
        if (!ikc_vec_span_ok(v, i)) { v->status[i] = IKC_ERR_ARG; continue; }
        v->map[k++] = i;
    }
#ifdef __linux__
    struct mmsghdr *m = v->msgs;
    struct iovec *iov = v->iovs;
    for (uint32_t j = 0; j < k; j++) {
        uint32_t i = v->map[j];
        iov[j].iov_base = ikc_vec_slot(v, i) + v->off[i];
        iov[j].iov_len = v->len[i];
        memset(&m[j].msg_hdr, 0, sizeof(m[j].msg_hdr));
        m[j].msg_hdr.msg_iov = &iov[j];
        m[j].msg_hdr.msg_iovlen = 1;
        if (v->addrlen[i]) {
            m[j].msg_hdr.msg_name = (struct sockaddr_storage *)v->addr + i;
            m[j].msg_hdr.msg_namelen = v->addrlen[i];
        }
    }
    uint32_t j = 0;
    while (j < k) {
        int r = sendmmsg(fd, m + j, k - j, MSG_DONTWAIT);
        if (r < 0) {
            v->last_errno = errno;
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;   /* socket full: retry later */
            if (fatal_fd_errno(errno) && done == 0 && j == 0) return IKC_ERR_IO;
            v->status[v->map[j]] = IKC_ERR_IO;   /* this datagram was refused; go on */
            j++;
            continue;
        }
        for (int t = 0; t < r; t++) v->status[v->map[j + t]] = IKC_PKT_SENT;
        j += (uint32_t)r;
        done += (uint32_t)r;
    }
#else
    for (uint32_t j = 0; j < k; j++) {
        uint32_t i = v->map[j];
        ssize_t r = sendto(fd, ikc_vec_slot(v, i) + v->off[i], v->len[i], MSG_DONTWAIT,
                           v->addrlen[i] ? (struct sockaddr *)((struct sockaddr_storage *)v->addr + i) : NULL,
                           (socklen_t)v->addrlen[i]);
        if (r < 0) {
            v->last_errno = errno;
            if (errno == EINTR) { j--; continue; }
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (fatal_fd_errno(errno) && done == 0) return IKC_ERR_IO;
            v->status[i] = IKC_ERR_IO;
            continue;
        }
        v->status[i] = IKC_PKT_SENT;
        done++;
    }
#endif
    *sent = done;
    return IKC_OK;
}

int ikc_vec_read_fd(ikc_pktvec *v, int fd, uint32_t max, int wait, uint32_t *received) {
    if (!v || !received || fd < 0) return IKC_ERR_ARG;
    *received = 0;
    if (max == 0 || max > v->slots) max = v->slots;
    size_t room = v->slot_size - v->headroom;
    uint32_t n = 0;
    while (n < max) {
        if (n > 0 || !wait) {
            struct pollfd p = { .fd = fd, .events = POLLIN };
            if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) break;
        }
        ssize_t r = read(fd, ikc_vec_slot(v, n) + v->headroom, room);
        if (r < 0) {
            v->last_errno = errno;
            if (transient(errno) && !(n == 0 && errno == EINTR)) break;
            if (n > 0) break;
            return IKC_ERR_IO;
        }
        if (r == 0) break;   /* end of file */
        v->off[n] = v->headroom;
        v->len[n] = (uint32_t)r;
        v->addrlen[n] = 0;
        v->status[n] = IKC_PKT_PENDING;
        n++;
    }
    for (uint32_t i = n; i < v->count; i++) v->status[i] = IKC_PKT_EMPTY;
    v->count = n;
    *received = n;
    return IKC_OK;
}

int ikc_vec_write_fd(ikc_pktvec *v, int fd, uint32_t *written) {
    if (!v || !written || fd < 0) return IKC_ERR_ARG;
    uint32_t done = 0;
    *written = 0;
    for (uint32_t i = 0; i < v->count; i++) {
        if (v->status[i] != IKC_OK) continue;
        if (!ikc_vec_span_ok(v, i)) { v->status[i] = IKC_ERR_ARG; continue; }
        ssize_t r;
        do r = write(fd, ikc_vec_slot(v, i) + v->off[i], v->len[i]); while (r < 0 && errno == EINTR);
        if (r < 0) {
            v->last_errno = errno;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (fatal_fd_errno(errno) && done == 0) return IKC_ERR_IO;
            v->status[i] = IKC_ERR_IO;
            continue;
        }
        v->status[i] = IKC_PKT_SENT;
        done++;
    }
    *written = done;
    return IKC_OK;
}

int ikc_vec_get_addr(const ikc_pktvec *v, uint32_t i, char *host, size_t host_cap, uint16_t *port) {
    if (!v || !host || !port || i >= v->slots || host_cap < INET6_ADDRSTRLEN) return IKC_ERR_ARG;
    const struct sockaddr_storage *ss = (const struct sockaddr_storage *)v->addr + i;
    host[0] = 0;
    *port = 0;
    if (v->addrlen[i] == 0) return IKC_OK;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (!inet_ntop(AF_INET, &a->sin_addr, host, (socklen_t)host_cap)) return IKC_ERR_ARG;
        *port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (!inet_ntop(AF_INET6, &a->sin6_addr, host, (socklen_t)host_cap)) return IKC_ERR_ARG;
        *port = ntohs(a->sin6_port);
    } else {
        return IKC_ERR_UNSUPPORTED;
    }
    return IKC_OK;
}

int ikc_vec_set_addr(ikc_pktvec *v, uint32_t i, const char *host, uint16_t port) {
    if (!v || (i >= v->slots && i != UINT32_MAX)) return IKC_ERR_ARG;
    struct sockaddr_storage ss;
    uint32_t alen = 0;
    memset(&ss, 0, sizeof(ss));
    if (host) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
            a4->sin_family = AF_INET;
            a4->sin_port = htons(port);
            alen = sizeof(*a4);
        } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
            a6->sin6_family = AF_INET6;
            a6->sin6_port = htons(port);
            alen = sizeof(*a6);
        } else {
            return IKC_ERR_ARG;
        }
    }
    uint32_t lo = i == UINT32_MAX ? 0 : i, hi = i == UINT32_MAX ? v->slots : i + 1;
    for (uint32_t k = lo; k < hi; k++) {
        memcpy((struct sockaddr_storage *)v->addr + k, &ss, sizeof(ss));
        v->addrlen[k] = alen;
    }
    return IKC_OK;
}
