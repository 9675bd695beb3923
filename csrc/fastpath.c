/* fastpath.c - ikecore._fastpath: the single-packet ESP calls without cffi's
 * per-call cost.
 *
 * cffi releases the GIL and packs an argument tuple on every call: about
 * 100 ns before any work, half of what sealing a 64-octet packet costs. These
 * two METH_FASTCALL functions call the C core's ikc_esp_encrypt/decrypt
 * (through addresses handed over by ikecore.esp.sa from the cffi module, so
 * there is one copy of the core and its library context) and build the
 * result bytes directly. C still never raises: a negative IKC_ERR_* comes
 * back as an int for the Python layer to map. Large packets release the GIL
 * so that SAs on other threads keep running. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* the C core's calls (csrc/ikecore.h), bound by address */
typedef int (*packet_len_fn)(const void *sa, size_t payload_len, size_t tfc_len, size_t *packet_len);
typedef int (*encrypt_fn)(void *sa, const uint8_t *payload, size_t payload_len, int next_header,
                          size_t tfc_len, uint8_t *out, size_t out_cap, size_t *out_len);
typedef int (*decrypt_fn)(void *sa, const uint8_t *packet, size_t packet_len, uint8_t *out,
                          size_t out_cap, size_t *out_len, int *next_header, uint64_t *seq);

static packet_len_fn packet_len;
static encrypt_fn encrypt;
static decrypt_fn decrypt;

#define RELEASE_GIL_ABOVE 512   /* octets: below, releasing costs more than the work */

static PyObject *fp_bind(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    if (n != 3) { PyErr_SetString(PyExc_TypeError, "bind(packet_len, encrypt, decrypt)"); return NULL; }
    void *l = PyLong_AsVoidPtr(args[0]), *e = PyLong_AsVoidPtr(args[1]), *d = PyLong_AsVoidPtr(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (!l || !e || !d) { PyErr_SetString(PyExc_ValueError, "null function address"); return NULL; }
    packet_len = (packet_len_fn)l;
    encrypt = (encrypt_fn)e;
    decrypt = (decrypt_fn)d;
    Py_RETURN_NONE;
}

/* The result goes straight into a new bytes object (filling one before it is
 * shared is the C API's documented pattern): no scratch buffer, no extra copy. */

/* encrypt(sa_address, payload: bytes, next_header) -> bytes | int (error) */
static PyObject *fp_encrypt(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    if (n != 3 || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encrypt(sa, payload: bytes, next_header)");
        return NULL;
    }
    void *sa = PyLong_AsVoidPtr(args[0]);
    long nh = PyLong_AsLong(args[2]);
    if (PyErr_Occurred()) return NULL;
    if (!sa || !encrypt) { PyErr_SetString(PyExc_ValueError, "not bound"); return NULL; }
    if (nh < 0 || nh > 255) return PyLong_FromLong(-1);       /* IKC_ERR_ARG */
    const uint8_t *data = (const uint8_t *)PyBytes_AS_STRING(args[1]);
    size_t len = (size_t)PyBytes_GET_SIZE(args[1]), total = 0, written = 0;
    int r = packet_len(sa, len, 0, &total);
    if (r < 0) return PyLong_FromLong(r);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!out) return NULL;
    uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(out);
    if (len > RELEASE_GIL_ABOVE) {
        Py_BEGIN_ALLOW_THREADS
        r = encrypt(sa, data, len, (int)nh, 0, dst, total, &written);
        Py_END_ALLOW_THREADS
    } else {
        r = encrypt(sa, data, len, (int)nh, 0, dst, total, &written);
    }
    if (r < 0 || written != total) {
        Py_DECREF(out);
        return PyLong_FromLong(r < 0 ? r : -6);               /* IKC_ERR_OPENSSL: cannot happen */
    }
    return out;
}

/* decrypt(sa_address, packet: bytes) -> (payload, next_header) | int (error) */
static PyObject *fp_decrypt(PyObject *self, PyObject *const *args, Py_ssize_t n) {
    if (n != 2 || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "decrypt(sa, packet: bytes)");
        return NULL;
    }
    void *sa = PyLong_AsVoidPtr(args[0]);
    if (PyErr_Occurred()) return NULL;
    if (!sa || !decrypt) { PyErr_SetString(PyExc_ValueError, "not bound"); return NULL; }
    const uint8_t *data = (const uint8_t *)PyBytes_AS_STRING(args[1]);
    size_t len = (size_t)PyBytes_GET_SIZE(args[1]), got = 0;
    int nh = 0, r;
    uint64_t seq = 0;
    /* the payload is never longer than the packet */
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(len ? len : 1));
    if (!out) return NULL;
    uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(out);
    if (len > RELEASE_GIL_ABOVE) {
        Py_BEGIN_ALLOW_THREADS
        r = decrypt(sa, data, len, dst, len ? len : 1, &got, &nh, &seq);
        Py_END_ALLOW_THREADS
    } else {
        r = decrypt(sa, data, len, dst, len ? len : 1, &got, &nh, &seq);
    }
    if (r < 0) {
        Py_DECREF(out);
        return PyLong_FromLong(r);
    }
    if (_PyBytes_Resize(&out, (Py_ssize_t)got) < 0) return NULL;
    PyObject *next_header = PyLong_FromLong(nh);
    if (!next_header) { Py_DECREF(out); return NULL; }
    PyObject *t = PyTuple_New(2);
    if (!t) { Py_DECREF(out); Py_DECREF(next_header); return NULL; }
    PyTuple_SET_ITEM(t, 0, out);
    PyTuple_SET_ITEM(t, 1, next_header);
    return t;
}

static PyMethodDef methods[] = {
    {"bind", (PyCFunction)(void (*)(void))fp_bind, METH_FASTCALL, "bind the C core's functions"},
    {"encrypt", (PyCFunction)(void (*)(void))fp_encrypt, METH_FASTCALL, "ESP-protect one payload"},
    {"decrypt", (PyCFunction)(void (*)(void))fp_decrypt, METH_FASTCALL, "open one ESP packet"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "ikecore._fastpath",
    .m_doc = "single-packet ESP calls without cffi's per-call cost",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) { return PyModule_Create(&module); }
