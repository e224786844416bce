/* The subnet templates' answer (subnets.py) in C, for the batched UDP loop (geodns/dns/_mmsg.c).
 *
 * Why: at resolver scale most GSLB queries carry a client subnet seen for the first time, so the
 * memo misses and the answer comes from a template: the query shape's answer for the subnet's
 * place.  In Python that costs the interpreter about four microseconds per query (the place's
 * binary search, the checks, the splice, the calls between them); gdnsd does the same in well
 * under one.  This is ``SubnetTemplates.answer`` for the common case, step for step, over the very
 * dicts and sets the Python path fills and reads; whatever it does not answer (a shape not known,
 * a place without a template, a repeat for the memo, an IPv4-mapped subnet, a record that reads
 * more than the area) it leaves untouched to the interpreter, which answers as it would have
 * anyway.  A name in mixed case (0x20) is looked up lower-cased and answered in its own case.
 * tests/test_udp_memo.py compares the two, byte for byte and count for count.
 *
 * The loop reaches this through a capsule (``HOOK``) and a ``Context`` made before each batch
 * (fastpath.py, ``FastPath.hook``): the templates, the doorkeeper's sets, the record's TTL, the
 * names that read more than the area, and the compiled areas (geo/netmap.py) as arrays.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "../dns/_mmsg.h"

typedef unsigned __int128 u128;

#define FIXED 24 /* octets from the root label on, before the address: root, type, class, OPT, ECS head */
#define EXACT -1 /* an area id: not compiled, ask the Locator (geo/compile.py) */

/* One IP version's compiled runs: run i starts at starts[i] (v4) or hi[i]:lo[i] (v6), area ids[i]. */
typedef struct {
    Py_buffer starts, hi, lo, ids;
    Py_ssize_t n;
    int bits;
} Runs;

typedef struct {
    PyObject_HEAD
    PyObject *entries;     /* query without its address -> shape (subnets._Shape, a tuple) */
    PyObject *seen;        /* the doorkeeper's sets (fastpath.py), and its own call for a full one */
    PyObject *seen_before;
    PyObject *seen_again;
    Py_ssize_t seen_max;
    PyObject *ttl;         /* record name -> its TTL now */
    PyObject *exact;       /* record names that read more than the area */
    PyObject *interned;    /* area << 8 | prefix -> the place (geo/netmap.py) */
    Runs v4, v6;
    int have_areas;
} Context;

/* _Shape's fields (subnets.py) */
enum { S_KEY, S_K, S_MASK, S_END, S_NAME, S_QTYPE, S_COUNTED, S_VARIANTS, S_PLACES, S_SIZE };

static void release(Runs *r) {
    if (r->starts.obj) PyBuffer_Release(&r->starts);
    if (r->hi.obj) PyBuffer_Release(&r->hi);
    if (r->lo.obj) PyBuffer_Release(&r->lo);
    if (r->ids.obj) PyBuffer_Release(&r->ids);
}

static void Context_dealloc(Context *self) {
    Py_XDECREF(self->entries);
    Py_XDECREF(self->seen);
    Py_XDECREF(self->seen_before);
    Py_XDECREF(self->seen_again);
    Py_XDECREF(self->ttl);
    Py_XDECREF(self->exact);
    Py_XDECREF(self->interned);
    release(&self->v4);
    release(&self->v6);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int take(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->itemsize != itemsize) {
        PyBuffer_Release(view);
        view->obj = NULL;
        PyErr_SetString(PyExc_TypeError, "an areas array of the wrong item size");
        return -1;
    }
    return 0;
}

/* Context(entries, seen, seen_before, seen_again, seen_max, ttl, exact, areas) where areas is None
 * or (v4 starts 'I', v4 ids 'i', v6 starts' high 64 bits 'Q', low 64 bits 'Q', v6 ids 'i', interned). */
static int Context_init(Context *self, PyObject *args, PyObject *kwds) {
    PyObject *entries, *seen, *before, *again, *ttl, *exact, *areas;
    Py_ssize_t seen_max;
    (void)kwds;
    if (self->entries != NULL) {
        PyErr_SetString(PyExc_TypeError, "a Context is made once");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "O!O!O!OnOOO", &PyDict_Type, &entries, &PySet_Type, &seen, &PySet_Type, &before,
                          &again, &seen_max, &ttl, &exact, &areas))
        return -1;
    if (!PyAnySet_Check(exact)) {
        PyErr_SetString(PyExc_TypeError, "exact must be a set");
        return -1;
    }
    Py_INCREF(entries);
    self->entries = entries;
    Py_INCREF(seen);
    self->seen = seen;
    Py_INCREF(before);
    self->seen_before = before;
    Py_INCREF(again);
    self->seen_again = again;
    self->seen_max = seen_max;
    Py_INCREF(ttl);
    self->ttl = ttl;
    Py_INCREF(exact);
    self->exact = exact;
    if (areas == Py_None) return 0;
    PyObject *v4s, *v4i, *v6h, *v6l, *v6i, *interned;
    if (!PyArg_ParseTuple(areas, "OOOOOO!", &v4s, &v4i, &v6h, &v6l, &v6i, &PyDict_Type, &interned)) return -1;
    if (take(v4s, &self->v4.starts, 4) < 0 || take(v4i, &self->v4.ids, 4) < 0 || take(v6h, &self->v6.hi, 8) < 0 ||
        take(v6l, &self->v6.lo, 8) < 0 || take(v6i, &self->v6.ids, 4) < 0)
        return -1;
    self->v4.n = self->v4.starts.len / 4;
    self->v6.n = self->v6.hi.len / 8;
    if (self->v4.ids.len / 4 != self->v4.n || self->v6.lo.len / 8 != self->v6.n || self->v6.ids.len / 4 != self->v6.n) {
        PyErr_SetString(PyExc_ValueError, "areas arrays of different lengths");
        return -1;
    }
    self->v4.bits = 32;
    self->v6.bits = 128;
    Py_INCREF(interned);
    self->interned = interned;
    self->have_areas = 1;
    return 0;
}

static PyTypeObject ContextType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "geodns.answer._subnets.Context",
    .tp_basicsize = sizeof(Context),
    .tp_dealloc = (destructor)Context_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "What the templates' answer reads, for one batch (see FastPath.hook).",
    .tp_init = (initproc)Context_init,
    .tp_new = PyType_GenericNew,
};

static int bit_length(u128 v) {
    uint64_t hi = (uint64_t)(v >> 64), lo = (uint64_t)v;
    if (hi) return 128 - __builtin_clzll(hi);
    return lo ? 64 - __builtin_clzll(lo) : 0;
}

static int trailing_zeros(u128 v) { /* v != 0 */
    uint64_t lo = (uint64_t)v;
    return lo ? __builtin_ctzll(lo) : 64 + __builtin_ctzll((uint64_t)(v >> 64));
}

/* geo/netmap.widest: the shortest prefix length whose network around ``value`` lies in [lo, hi]. */
static int widest(u128 value, u128 lo, u128 hi, int bits) {
    u128 max = bits == 128 ? ~(u128)0 : (((u128)1 << bits) - 1);
    int h = bit_length(value ^ lo);
    int zeros = lo ? trailing_zeros(lo) : bits;
    int m_lo = zeros >= h ? zeros : h - 1;
    h = bit_length(value ^ hi);
    int ones = hi != max ? trailing_zeros(hi + 1) : bits;
    int m_hi = ones >= h ? ones : h - 1;
    int m = m_lo < m_hi ? m_lo : m_hi;
    if (m > bits) m = bits;
    return bits - m;
}

static u128 start_of(const Runs *r, Py_ssize_t i) {
    if (r->bits == 32) return ((const uint32_t *)r->starts.buf)[i];
    return ((u128)((const uint64_t *)r->hi.buf)[i] << 64) | ((const uint64_t *)r->lo.buf)[i];
}

/* geo/netmap.AreaMap.locate: area << 8 | prefix for ``value``, or -1 where the map says nothing. */
static long locate(const Runs *r, u128 value) {
    Py_ssize_t lo = 0, hi = r->n; /* bisect_right */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (value < start_of(r, mid))
            hi = mid;
        else
            lo = mid + 1;
    }
    Py_ssize_t i = lo - 1;
    if (i < 0) return -1;
    int area = ((const int32_t *)r->ids.buf)[i];
    if (area == EXACT) return -1;
    u128 max = r->bits == 128 ? ~(u128)0 : (((u128)1 << r->bits) - 1);
    u128 top = i + 1 < r->n ? start_of(r, i + 1) - 1 : max;
    return (long)area << 8 | widest(value, start_of(r, i), top, r->bits);
}

/* The place of the subnet in data[cut:len) (family from the ECS head before it), borrowed; NULL
 * with no exception when the Python path must find it. */
static PyObject *place_of(Context *c, const unsigned char *data, Py_ssize_t cut, Py_ssize_t len) {
    if (!c->have_areas) return NULL;
    Py_ssize_t k = len - cut;
    int v4 = data[cut - 3] == 1;
    if (k > (v4 ? 4 : 16)) return NULL;
    u128 value = 0;
    for (Py_ssize_t j = 0; j < k; j++) value = value << 8 | data[cut + j];
    value <<= 8 * ((v4 ? 4 : 16) - k);
    if (!v4 && (value >> 32) == 0xFFFF) return NULL; /* ::ffff:0:0/96 (an IPv4 area widened): Python */
    long code = locate(v4 ? &c->v4 : &c->v6, value);
    if (code < 0) return NULL;
    PyObject *key = PyLong_FromLong(code);
    if (key == NULL) return NULL;
    PyObject *place = PyDict_GetItemWithError(c->interned, key);
    Py_DECREF(key);
    return place;
}

/* The doorkeeper (FastPath._seen_again) for ``rest``: 1 when seen before (the memo's to answer),
 * 0 when not (remembered now), -1 on an error. */
static int seen_again(Context *c, PyObject *rest) {
    Py_hash_t h = PyObject_Hash(rest);
    if (h == -1) return -1;
    PyObject *key = PyLong_FromSsize_t(h);
    if (key == NULL) return -1;
    int found = PySet_Contains(c->seen, key);
    if (found == 0) found = PySet_Contains(c->seen_before, key);
    if (found == 0) {
        if (PySet_GET_SIZE(c->seen) >= c->seen_max) {
            PyObject *r = PyObject_CallOneArg(c->seen_again, key); /* turns the generations over */
            found = r == NULL ? -1 : 0;
            Py_XDECREF(r);
        } else if (PySet_Add(c->seen, key) < 0) {
            found = -1;
        }
    }
    Py_DECREF(key);
    return found;
}

static Py_ssize_t answer(PyObject *ctx, const char *query, Py_ssize_t len, PyObject *rest, char *out, Py_ssize_t room,
                         PyObject **key, int *ecs) {
    if (!Py_IS_TYPE(ctx, &ContextType) || ((Context *)ctx)->entries == NULL) {
        PyErr_SetString(PyExc_TypeError, "the hook's context must be a Context");
        return -1;
    }
    Context *c = (Context *)ctx;
    const unsigned char *data = (const unsigned char *)query;
    if (len < 12) return 0;
    const unsigned char *zero = memchr(data + 12, 0, (size_t)(len - 12));
    if (zero == NULL) return 0;
    Py_ssize_t end = zero - data;
    Py_ssize_t k = len - end - FIXED;
    if (k <= 0) return 0;
    Py_ssize_t cut = len - k;
    /* ``rest`` has the name in lower case (0x20 resolvers), as the shapes' keys have it */
    PyObject *prefix = PyBytes_FromStringAndSize(PyBytes_AS_STRING(rest), cut - 2);
    if (prefix == NULL) return -1;
    PyObject *shape = PyDict_GetItemWithError(c->entries, prefix); /* borrowed */
    Py_DECREF(prefix);
    if (shape == NULL) return PyErr_Occurred() ? -1 : 0; /* a shape not known yet */
    if (!PyTuple_Check(shape) || PyTuple_GET_SIZE(shape) < S_SIZE) return 0;
    if (PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, S_K)) != k) return PyErr_Occurred() ? -1 : 0;
    long mask = PyLong_AsLong(PyTuple_GET_ITEM(shape, S_MASK));
    if (mask == -1 && PyErr_Occurred()) return -1;
    if (data[len - 1] & mask) return 0; /* bits past the source prefix: the full path refuses it */
    PyObject *name = PyTuple_GET_ITEM(shape, S_NAME);
    int exact = PySet_Contains(c->exact, name);
    if (exact != 0) return exact < 0 ? -1 : 0;
    PyObject *place = place_of(c, data, cut, len);
    if (place == NULL) return PyErr_Occurred() ? -1 : 0;
    PyObject *id = PyLong_FromVoidPtr(place);
    if (id == NULL) return -1;
    PyObject *kept = PyDict_GetItemWithError(PyTuple_GET_ITEM(shape, S_PLACES), id); /* borrowed */
    Py_DECREF(id);
    if (kept == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(kept) || PyTuple_GET_SIZE(kept) < 4 || PyTuple_GET_ITEM(kept, 0) != place) return 0;
    Py_INCREF(kept); /* the calls below run Python, which could drop the dicts' references */
    Py_INCREF(shape);
    Py_ssize_t size = -1;
    PyObject *ttl = PyObject_CallOneArg(c->ttl, name);
    int same = ttl != NULL ? PyObject_RichCompareBool(PyTuple_GET_ITEM(kept, 1), ttl, Py_EQ) : -1;
    Py_XDECREF(ttl);
    int again = same == 1 ? seen_again(c, rest) : same;
    if (same == 0 || again == 1) {
        size = 0; /* a template of another TTL, or a repeat: the interpreter's (and its memo's) */
    } else if (again == 0) {
        PyObject *picked = PyObject_CallNoArgs(PyTuple_GET_ITEM(kept, 2)); /* counts, picks */
        Py_ssize_t at = picked != NULL ? PyLong_AsSsize_t(picked) : -1;
        Py_XDECREF(picked);
        PyObject *variants = PyTuple_GET_ITEM(kept, 3);
        if (at == -1 && PyErr_Occurred()) {
            size = -1;
        } else if (!PyTuple_Check(variants) || at < 0 || at >= PyTuple_GET_SIZE(variants)) {
            PyErr_SetString(PyExc_IndexError, "a place's repeater picked no template it holds");
        } else {
            PyObject *pair = PyTuple_GET_ITEM(variants, at);
            PyObject *header = PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 ? PyTuple_GET_ITEM(pair, 0) : NULL;
            PyObject *tail = header != NULL ? PyTuple_GET_ITEM(pair, 1) : NULL;
            Py_ssize_t nh = header != NULL && PyBytes_Check(header) ? PyBytes_GET_SIZE(header) : -1;
            Py_ssize_t nt = tail != NULL && PyBytes_Check(tail) ? PyBytes_GET_SIZE(tail) : -1;
            Py_ssize_t total = 2 + nh + (end - 12) + nt + k;
            if (nh < 0 || nt < 0) {
                PyErr_SetString(PyExc_TypeError, "a place's template is not (header, tail) bytes");
            } else if (total > room) {
                PyErr_SetString(PyExc_ValueError, "a template's answer does not fit a datagram");
            } else {
                char *at_out = out;
                memcpy(at_out, query, 2);
                memcpy(at_out += 2, PyBytes_AS_STRING(header), (size_t)nh);
                memcpy(at_out += nh, query + 12, (size_t)(end - 12));
                memcpy(at_out += end - 12, PyBytes_AS_STRING(tail), (size_t)nt);
                memcpy(at_out + nt, query + cut, (size_t)k);
                *key = PyTuple_GET_ITEM(shape, S_COUNTED);
                Py_INCREF(*key);
                *ecs = 1;
                size = total;
            }
        }
    }
    Py_DECREF(shape);
    Py_DECREF(kept);
    return size;
}

static const Hook hook = {answer};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_subnets",
    .m_doc = "The subnet templates' answer in C, for the batched UDP loop (see subnets.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__subnets(void) {
    if (PyType_Ready(&ContextType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&ContextType);
    if (PyModule_AddObject(m, "Context", (PyObject *)&ContextType) < 0) {
        Py_DECREF(&ContextType);
        Py_DECREF(m);
        return NULL;
    }
    PyObject *capsule = PyCapsule_New((void *)&hook, HOOK_NAME, NULL);
    if (capsule == NULL || PyModule_AddObject(m, "HOOK", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
