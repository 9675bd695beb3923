/* fastpath.c - ikecore._fastpath: the single-packet ESP calls (and ticket
 * seal/open, see TicketKey below) at C speed.
 *
 * Two costs sit between Python and a 1400-octet AES-GCM seal that the C core
 * does in about 450 ns: cffi's per-call work (the GIL dance and an argument
 * tuple, about 100 ns) and a Python-level method that checks its arguments
 * before calling down (about 175 ns). This module removes both: it defines
 * SinglePacketESP, the C base class of ikecore.esp.EspSA, whose encrypt and
 * decrypt are METH_FASTCALL methods that call the C core's ikc_esp_encrypt /
 * ikc_esp_decrypt directly and build the result bytes in place.
 *
 * The core's functions come as addresses from the cffi module (bind), so there
 * is one copy of the core and one library context. Anything off the common
 * case (a non-bytes buffer, TFC padding, an unbound object) is forwarded to the
 * Python methods _encrypt_general / _decrypt_general, which use cffi; errors
 * are raised by the Python callable handed to bind, so both paths raise the
 * same ikecore.errors classes. Large packets release the GIL so that SAs on
 * other threads keep running.
 *
 * Built on the limited API (Py_LIMITED_API 3.10, set by build_ffi.py), so one
 * abi3 module serves CPython 3.10 onwards: a heap type from PyType_FromSpec,
 * function calls instead of the bytes/tuple macros, and a stack buffer plus one
 * copy where the full API would shrink the result in place (_PyBytes_Resize).
 * docs/packaging.md has the figures against the per-version build, which this
 * file still compiles to without Py_LIMITED_API. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#ifdef Py_LIMITED_API
#define BYTES_DATA(o) PyBytes_AsString(o)
#define BYTES_SIZE(o) PyBytes_Size(o)
#else
#define BYTES_DATA(o) PyBytes_AS_STRING(o)
#define BYTES_SIZE(o) PyBytes_GET_SIZE(o)
#endif

/* the C core's calls (csrc/ikecore.h), bound by address */
typedef int (*packet_len_fn)(const void *sa, size_t payload_len, size_t tfc_len, size_t *packet_len);
typedef int (*encrypt_fn)(void *sa, const uint8_t *payload, size_t payload_len, int next_header,
                          size_t tfc_len, uint8_t *out, size_t out_cap, size_t *out_len);
typedef int (*decrypt_fn)(void *sa, const uint8_t *packet, size_t packet_len, uint8_t *out,
                          size_t out_cap, size_t *out_len, int *next_header, uint64_t *seq);

static packet_len_fn packet_len;
static encrypt_fn encrypt;
static decrypt_fn decrypt;
static PyObject *raise_error;     /* raise_error(rc, what): raises the ikecore.errors class */
static PyObject *str_encrypt_general, *str_decrypt_general;

#define RELEASE_GIL_ABOVE 512   /* octets: below, releasing costs more than the work */
#define IKC_ERR_OPENSSL (-6)

static PyObject *fp_bind(PyObject *module, PyObject *const *args, Py_ssize_t n) {
    if (n != 4) {
        PyErr_SetString(PyExc_TypeError, "bind(packet_len, encrypt, decrypt, raise_error)");
        return NULL;
    }
    void *l = PyLong_AsVoidPtr(args[0]), *e = PyLong_AsVoidPtr(args[1]), *d = PyLong_AsVoidPtr(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (!l || !e || !d) { PyErr_SetString(PyExc_ValueError, "null function address"); return NULL; }
    if (!PyCallable_Check(args[3])) { PyErr_SetString(PyExc_TypeError, "raise_error must be callable"); return NULL; }
    packet_len = (packet_len_fn)l;
    encrypt = (encrypt_fn)e;
    decrypt = (decrypt_fn)d;
    PyObject *old = raise_error;
    Py_INCREF(args[3]);
    raise_error = args[3];
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

/* an error code from the core becomes the caller's exception */
static PyObject *fail(int rc, const char *what) {
    if (!raise_error) { PyErr_Format(PyExc_RuntimeError, "%s failed (%d)", what, rc); return NULL; }
    PyObject *r = PyObject_CallFunction(raise_error, "is", rc, what);
    if (r) {   /* raise_error must raise; if it returned, say so rather than lose the error */
        Py_DECREF(r);
        PyErr_Format(PyExc_RuntimeError, "%s failed (%d)", what, rc);
    }
    return NULL;
}

typedef struct {
    PyObject_HEAD
    void *sa;          /* ikc_esp *, owned by the subclass (its cffi handle) */
    size_t framing;    /* header + IV + ICV + pad length + next header octets */
} SinglePacketESP;

/* forward the call, as it came, to the Python method `name` (the uncommon
 * cases: a rebuilt argument tuple and keyword dict cost nothing that matters) */
static PyObject *forward(PyObject *self, PyObject *name, PyObject *const *args, Py_ssize_t n,
                         PyObject *kwnames) {
    PyObject *method = PyObject_GetAttr(self, name), *pos = NULL, *kw = NULL, *r = NULL;
    if (!method) return NULL;
    if (!(pos = PyTuple_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(args[i]);
        if (PyTuple_SetItem(pos, i, args[i]) < 0) goto done;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_Size(kwnames) : 0;
    if (nkw) {
        if (!(kw = PyDict_New())) goto done;
        for (Py_ssize_t i = 0; i < nkw; i++)
            if (PyDict_SetItem(kw, PyTuple_GetItem(kwnames, i), args[n + i]) < 0) goto done;
    }
    r = PyObject_Call(method, pos, kw);
done:
    Py_DECREF(method);
    Py_XDECREF(pos);
    Py_XDECREF(kw);
    return r;
}

/* The result goes straight into a new bytes object (filling one before it is
 * shared is the C API's documented pattern): no scratch buffer, no extra copy. */
static PyObject *sp_encrypt(PyObject *self, PyObject *const *args, Py_ssize_t n, PyObject *kwnames) {
    void *sa = ((SinglePacketESP *)self)->sa;
    if (n != 2 || kwnames || !sa || !encrypt || !PyBytes_CheckExact(args[0]) || !PyLong_CheckExact(args[1]))
        return forward(self, str_encrypt_general, args, n, kwnames);
    int overflow = 0;
    long nh = PyLong_AsLongAndOverflow(args[1], &overflow);
    if (overflow || nh < 0 || nh > 255) return fail(-1, "ESP encrypt");     /* IKC_ERR_ARG */
    const uint8_t *data = (const uint8_t *)BYTES_DATA(args[0]);
    size_t len = (size_t)BYTES_SIZE(args[0]), total = 0, written = 0;
    int r = packet_len(sa, len, 0, &total);
    if (r < 0) return fail(r, "ESP encrypt");
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!out) return NULL;
    uint8_t *dst = (uint8_t *)BYTES_DATA(out);
    if (len > RELEASE_GIL_ABOVE) {
        Py_BEGIN_ALLOW_THREADS
        r = encrypt(sa, data, len, (int)nh, 0, dst, total, &written);
        Py_END_ALLOW_THREADS
    } else {
        r = encrypt(sa, data, len, (int)nh, 0, dst, total, &written);
    }
    if (r < 0 || written != total) {
        Py_DECREF(out);
        return fail(r < 0 ? r : IKC_ERR_OPENSSL, "ESP encrypt");
    }
    return out;
}

/* the payload of a packet up to this size is decrypted on the stack and copied
 * once into its bytes object; larger ones go into a bytes object of the whole
 * encrypted part, shrunk afterwards (in place with the full API) */
#define STACK_DECRYPT_MAX 2048

/* a memset the compiler cannot drop as a dead store */
static void *(*const volatile wipe)(void *, int, size_t) = memset;

/* a bytes object of the first `got` octets of `big` (consumed) */
static PyObject *shrink(PyObject *big, size_t got) {
#ifdef Py_LIMITED_API
    if ((size_t)BYTES_SIZE(big) == got) return big;
    PyObject *out = PyBytes_FromStringAndSize(BYTES_DATA(big), (Py_ssize_t)got);
    Py_DECREF(big);
    return out;
#else
    if (_PyBytes_Resize(&big, (Py_ssize_t)got) < 0) return NULL;
    return big;
#endif
}

static PyObject *sp_decrypt(PyObject *self, PyObject *const *args, Py_ssize_t n, PyObject *kwnames) {
    void *sa = ((SinglePacketESP *)self)->sa;
    size_t framing = ((SinglePacketESP *)self)->framing;
    if (n != 1 || kwnames || !sa || !decrypt || !PyBytes_CheckExact(args[0]))
        return forward(self, str_decrypt_general, args, n, kwnames);
    const uint8_t *data = (const uint8_t *)BYTES_DATA(args[0]);
    size_t len = (size_t)BYTES_SIZE(args[0]), got = 0;
    int nh = 0, r;
    uint64_t seq = 0;
    /* room for the whole encrypted part (the core decrypts all of it there);
     * the payload is that less the padding. A packet shorter than its framing
     * gets an error from the core. */
    size_t room = len > framing ? len - framing + 2 : 1;
    PyObject *out;
    if (room <= STACK_DECRYPT_MAX) {
        uint8_t buf[STACK_DECRYPT_MAX];
        if (len > RELEASE_GIL_ABOVE) {
            Py_BEGIN_ALLOW_THREADS
            r = decrypt(sa, data, len, buf, room, &got, &nh, &seq);
            Py_END_ALLOW_THREADS
        } else {
            r = decrypt(sa, data, len, buf, room, &got, &nh, &seq);
        }
        if (r < 0) {
            wipe(buf, 0, room);   /* may hold plaintext of a packet that failed late */
            return fail(r, "ESP decrypt");
        }
        out = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)got);
        wipe(buf, 0, got);
        if (!out) return NULL;
    } else {
        PyObject *big = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)room);
        if (!big) return NULL;
        uint8_t *dst = (uint8_t *)BYTES_DATA(big);
        Py_BEGIN_ALLOW_THREADS
        r = decrypt(sa, data, len, dst, room, &got, &nh, &seq);
        Py_END_ALLOW_THREADS
        if (r < 0) {
            Py_DECREF(big);
            return fail(r, "ESP decrypt");
        }
        if (!(out = shrink(big, got))) return NULL;
    }
    PyObject *next_header = PyLong_FromLong(nh);
    if (!next_header) { Py_DECREF(out); return NULL; }
    PyObject *t = PyTuple_Pack(2, out, next_header);
    Py_DECREF(out);
    Py_DECREF(next_header);
    return t;
}

/* _bind_sa(address, framing): the ikc_esp * this object serves (0: none, calls
 * go to Python) and its fixed framing (8 + IV + ICV + 2 octets) */
static PyObject *sp_bind_sa(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    if (n != 2) { PyErr_SetString(PyExc_TypeError, "_bind_sa(address, framing)"); return NULL; }
    void *sa = PyLong_AsVoidPtr(args[0]);
    size_t framing = PyLong_AsSize_t(args[1]);
    if (PyErr_Occurred()) return NULL;
    if (framing < 2) { PyErr_SetString(PyExc_ValueError, "framing below 2 octets"); return NULL; }
    ((SinglePacketESP *)self)->sa = sa;
    ((SinglePacketESP *)self)->framing = framing;
    Py_RETURN_NONE;
}

static PyMethodDef sp_methods[] = {
    {"encrypt", (PyCFunction)(void (*)(void))sp_encrypt, METH_FASTCALL | METH_KEYWORDS,
     "encrypt($self, payload, next_header, *, tfc_pad=0)\n--\n\n"
     "ESP-protect payload (an IP packet in tunnel mode, the transport payload\n"
     "otherwise); returns SPI .. ICV. tfc_pad zero octets of TFC padding go after\n"
     "the payload (RFC 4303 section 2.7). Raises ikecore.errors.SequenceExhausted\n"
     "when the counter is used up."},
    {"decrypt", (PyCFunction)(void (*)(void))sp_decrypt, METH_FASTCALL | METH_KEYWORDS,
     "decrypt($self, packet)\n--\n\n"
     "Verify and decrypt SPI .. ICV; returns (payload, next_header).\n\n"
     "A dummy packet (next header 59, RFC 4303 section 2.6) is returned as such:\n"
     "drop it. Raises ikecore.errors.InvalidTag (ICV), ReplayError (replayed or\n"
     "left of the window) or MalformedPacket (truncated, bad padding, other SPI)."},
    {"_bind_sa", (PyCFunction)(void (*)(void))sp_bind_sa, METH_FASTCALL,
     "bind the C core's ikc_esp * (by address) and its framing octets"},
    {NULL, NULL, 0, NULL},
};

/* A heap type (the limited API has no static ones): it holds a reference to
 * itself from each instance, which its dealloc drops, as heap types must. */
static void sp_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot sp_slots[] = {
    {Py_tp_doc, (void *)"Base of ikecore.esp.EspSA: its single-packet encrypt and decrypt in C."},
    {Py_tp_methods, sp_methods},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)sp_dealloc},
    {0, NULL},
};

static PyType_Spec sp_spec = {
    .name = "ikecore._fastpath.SinglePacketESP",
    .basicsize = sizeof(SinglePacketESP),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = sp_slots,
};

/* ---- session resumption tickets: TicketKey, the C base of
 * ikecore.crypto.TicketCipher. seal(plaintext, nonce, header) and
 * open(ticket, header_len) call ikc_ticket_seal / ikc_ticket_open directly
 * into a new bytes object; anything off the common case (non-bytes, a closed
 * key) goes to the Python methods _seal_general / _open_general. The GIL stays
 * held: a ticket is small, and the key's EVP contexts serve one caller at a
 * time. */
typedef int (*ticket_seal_fn)(void *k, const uint8_t *header, size_t header_len, const uint8_t *nonce,
                              size_t nonce_len, const uint8_t *plain, size_t plain_len, char *out,
                              size_t out_len);
typedef int (*ticket_open_fn)(void *k, const uint8_t *sealed, size_t sealed_len, size_t header_len,
                              char *out, size_t out_cap, size_t *out_len);
static ticket_seal_fn ticket_seal;
static ticket_open_fn ticket_open;
static PyObject *ticket_raise_error;
static PyObject *str_seal_general, *str_open_general;
#define TICKET_OVERHEAD 28   /* IKC_TICKET_NONCE_LEN + IKC_TICKET_TAG_LEN */

static PyObject *fp_bind_tickets(PyObject *module, PyObject *const *args, Py_ssize_t n) {
    if (n != 3) {
        PyErr_SetString(PyExc_TypeError, "bind_tickets(seal, open, raise_error)");
        return NULL;
    }
    void *s = PyLong_AsVoidPtr(args[0]), *o = PyLong_AsVoidPtr(args[1]);
    if (PyErr_Occurred()) return NULL;
    if (!s || !o) { PyErr_SetString(PyExc_ValueError, "null function address"); return NULL; }
    if (!PyCallable_Check(args[2])) { PyErr_SetString(PyExc_TypeError, "raise_error must be callable"); return NULL; }
    ticket_seal = (ticket_seal_fn)s;
    ticket_open = (ticket_open_fn)o;
    PyObject *old = ticket_raise_error;
    Py_INCREF(args[2]);
    ticket_raise_error = args[2];
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

static PyObject *ticket_fail(int rc, const char *what) {
    if (!ticket_raise_error) { PyErr_Format(PyExc_RuntimeError, "%s failed (%d)", what, rc); return NULL; }
    PyObject *r = PyObject_CallFunction(ticket_raise_error, "is", rc, what);
    if (r) {
        Py_DECREF(r);
        PyErr_Format(PyExc_RuntimeError, "%s failed (%d)", what, rc);
    }
    return NULL;
}

typedef struct {
    PyObject_HEAD
    void *key;         /* ikc_ticket_key *, owned by the subclass (its cffi handle) */
} TicketKey;

static PyObject *tk_seal(PyObject *self, PyObject *const *args, Py_ssize_t n, PyObject *kwnames) {
    void *key = ((TicketKey *)self)->key;
    if (n != 3 || kwnames || !key || !ticket_seal || !PyBytes_CheckExact(args[0]) ||
        !PyBytes_CheckExact(args[1]) || !PyBytes_CheckExact(args[2]))
        return forward(self, str_seal_general, args, n, kwnames);
    size_t plain_len = (size_t)BYTES_SIZE(args[0]), header_len = (size_t)BYTES_SIZE(args[2]);
    size_t total = header_len + TICKET_OVERHEAD + plain_len;   /* the core bounds every length */
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!out) return NULL;
    int r = ticket_seal(key, (const uint8_t *)BYTES_DATA(args[2]), header_len,
                        (const uint8_t *)BYTES_DATA(args[1]), (size_t)BYTES_SIZE(args[1]),
                        (const uint8_t *)BYTES_DATA(args[0]), plain_len, BYTES_DATA(out), total);
    if (r < 0) {
        Py_DECREF(out);
        return ticket_fail(r, "ticket seal");
    }
    return out;
}

static PyObject *tk_open(PyObject *self, PyObject *const *args, Py_ssize_t n, PyObject *kwnames) {
    void *key = ((TicketKey *)self)->key;
    if (n != 2 || kwnames || !key || !ticket_open || !PyBytes_CheckExact(args[0]) ||
        !PyLong_CheckExact(args[1]))
        return forward(self, str_open_general, args, n, kwnames);
    Py_ssize_t header_len = PyLong_AsSsize_t(args[1]);
    if (header_len < 0) {
        if (PyErr_Occurred()) PyErr_Clear();
        return forward(self, str_open_general, args, n, kwnames);   /* its ValueError */
    }
    size_t len = (size_t)BYTES_SIZE(args[0]), got = 0;
    /* too short for its framing: the core says so (IKC_ERR_TRUNCATED) */
    size_t room = len >= (size_t)header_len + TICKET_OVERHEAD ? len - (size_t)header_len - TICKET_OVERHEAD : 0;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(room ? room : 1));
    if (!out) return NULL;
    int r = ticket_open(key, (const uint8_t *)BYTES_DATA(args[0]), len, (size_t)header_len,
                        BYTES_DATA(out), room ? room : 1, &got);
    if (r < 0) {
        Py_DECREF(out);
        return ticket_fail(r, "ticket open");
    }
    /* AES-GCM: the plaintext is exactly `room` octets, so this shrinks only the
     * empty ticket's 1-octet placeholder */
    return shrink(out, got);
}

/* _bind_key(address): the ikc_ticket_key * this object serves (0: none, calls go to Python) */
static PyObject *tk_bind_key(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    if (n != 1) { PyErr_SetString(PyExc_TypeError, "_bind_key(address)"); return NULL; }
    void *key = PyLong_AsVoidPtr(args[0]);
    if (PyErr_Occurred()) return NULL;
    ((TicketKey *)self)->key = key;
    Py_RETURN_NONE;
}

static PyMethodDef tk_methods[] = {
    {"seal", (PyCFunction)(void (*)(void))tk_seal, METH_FASTCALL | METH_KEYWORDS,
     "seal($self, plaintext, nonce, header=b'')\n--\n\n"
     "header | nonce | AES-GCM(plaintext, aad=header) | tag. The 12-octet nonce\n"
     "must never repeat under one key: draw it at random."},
    {"open", (PyCFunction)(void (*)(void))tk_open, METH_FASTCALL | METH_KEYWORDS,
     "open($self, ticket, header_len)\n--\n\n"
     "Verify and decrypt a sealed blob whose first header_len octets are its\n"
     "header. Raises ikecore.errors.InvalidTag when it does not verify and\n"
     "MalformedPacket when it is too short."},
    {"_bind_key", (PyCFunction)(void (*)(void))tk_bind_key, METH_FASTCALL,
     "bind the C core's ikc_ticket_key * (by address)"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot tk_slots[] = {
    {Py_tp_doc, (void *)"Base of ikecore.crypto.TicketCipher: its seal and open in C."},
    {Py_tp_methods, tk_methods},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)sp_dealloc},   /* the same heap-type dealloc */
    {0, NULL},
};

static PyType_Spec tk_spec = {
    .name = "ikecore._fastpath.TicketKey",
    .basicsize = sizeof(TicketKey),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = tk_slots,
};

static PyMethodDef module_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))fp_bind, METH_FASTCALL, "bind the C core's functions"},
    {"bind_tickets", (PyCFunction)(void (*)(void))fp_bind_tickets, METH_FASTCALL,
     "bind the C core's ticket seal and open"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "ikecore._fastpath",
    .m_doc = "single-packet ESP calls without cffi's or a Python method's per-call cost",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    str_encrypt_general = PyUnicode_InternFromString("_encrypt_general");
    str_decrypt_general = PyUnicode_InternFromString("_decrypt_general");
    if (!str_encrypt_general || !str_decrypt_general) return NULL;
    str_seal_general = PyUnicode_InternFromString("_seal_general");
    str_open_general = PyUnicode_InternFromString("_open_general");
    if (!str_seal_general || !str_open_general) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    PyObject *type = PyType_FromSpec(&sp_spec);
    if (!type) { Py_DECREF(m); return NULL; }
    if (PyModule_AddObject(m, "SinglePacketESP", type) < 0) {   /* steals on success */
        Py_DECREF(type);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *ticket_type = PyType_FromSpec(&tk_spec);
    if (!ticket_type) { Py_DECREF(m); return NULL; }
    if (PyModule_AddObject(m, "TicketKey", ticket_type) < 0) {
        Py_DECREF(ticket_type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
