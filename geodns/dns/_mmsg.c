/* UDP in batches, and the memo's hits answered without the interpreter.
 *
 * Why C: on a machine where a system call is cheap, a DNS server that answers a
 * repeated query from memory spends most of its time in the interpreter's
 * per-datagram work (slicing, calls, the counters), not in the kernel.  gdnsd
 * answers such a query in about a microsecond of CPU; the same work through
 * Python frames costs three.  So this module owns the loop that geodns/dns/udp.py
 * drives: recvmmsg(2) up to 64 datagrams, answer each, sendmmsg(2) the answers.
 *
 * Each datagram is answered one of two ways:
 *   - a memo hit: the query after its ID is a key of ``memo`` (the fast path's
 *     dict of encoded responses, geodns/answer/fastpath.py; its entries are
 *     tuples it documents there): the answer is the ID and the stored tail, and
 *     for an entry with several answers (a GSLB record) the entry's own
 *     ``again`` callable picks one and counts it.  What a hit counts (queries per
 *     key, ECS, answer time) is gathered here and handed back per call, for the
 *     caller to add to its counters in one go;
 *   - anything else: ``slow(data, key)``, the Python path, which answers every
 *     query a memo hit would too (the memo is a cache, never the truth).
 *
 * Nothing here knows DNS beyond "an ID, then the rest": the keys and entries
 * are made by the Python fast path, which the tests compare against.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "_mmsg.h"

#define BATCH 64        /* datagrams per system call */
#define ROUNDS 4        /* batches per call of serve, then the event loop's other work */
#define SLOT 65536      /* octets per datagram slot: any UDP datagram fits */
#define MAX_BOUNDS 32   /* answer-time histogram bounds */
#define MAX_KEYS (BATCH * ROUNDS)

typedef struct {
    PyObject_HEAD
    int fd;
    int v6;
    int used;                 /* slots the last receive filled, whose address lengths to reset */
    char *in, *out;           /* BATCH slots of SLOT octets each way (anonymous maps: pages on use) */
    struct sockaddr_in6 names[BATCH];
    struct iovec iov_in[BATCH], iov_out[BATCH];
    struct mmsghdr recv[BATCH], send[BATCH];
    int nbounds;
    long long bounds[MAX_BOUNDS];  /* nanoseconds, ascending */
} Batch;

typedef struct {
    PyObject *key;  /* a counting key (origin, qtype, rcode), held until the counts are read */
    long n;
} Count;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void Batch_dealloc(Batch *self) {
    if (self->in != NULL && self->in != MAP_FAILED) munmap(self->in, (size_t)BATCH * SLOT);
    if (self->out != NULL && self->out != MAP_FAILED) munmap(self->out, (size_t)BATCH * SLOT);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Batch_init(Batch *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fd", "v6", "bounds", NULL};
    int fd, v6;
    PyObject *bounds = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ip|O", kwlist, &fd, &v6, &bounds)) return -1;
    self->fd = fd;
    self->v6 = v6;
    self->nbounds = 0;
    if (bounds != NULL && bounds != Py_None) {
        PyObject *seq = PySequence_Fast(bounds, "bounds must be a sequence of seconds");
        if (seq == NULL) return -1;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        if (n > MAX_BOUNDS) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "too many bounds");
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            double s = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
            if (s == -1.0 && PyErr_Occurred()) {
                Py_DECREF(seq);
                return -1;
            }
            self->bounds[i] = (long long)(s * 1e9 + 0.5);
        }
        self->nbounds = (int)n;
        Py_DECREF(seq);
    }
    if (self->in == NULL) {
        self->in = mmap(NULL, (size_t)BATCH * SLOT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        self->out = mmap(NULL, (size_t)BATCH * SLOT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (self->in == MAP_FAILED || self->out == MAP_FAILED) {
            PyErr_SetFromErrno(PyExc_OSError);
            if (self->in != MAP_FAILED) munmap(self->in, (size_t)BATCH * SLOT);
            if (self->out != MAP_FAILED) munmap(self->out, (size_t)BATCH * SLOT);
            self->in = self->out = NULL;
            return -1;
        }
    }
    memset(self->recv, 0, sizeof(self->recv));
    memset(self->send, 0, sizeof(self->send));
    for (int i = 0; i < BATCH; i++) {
        self->iov_in[i].iov_base = self->in + (size_t)i * SLOT;
        self->iov_in[i].iov_len = SLOT;
        self->iov_out[i].iov_base = self->out + (size_t)i * SLOT;
        self->recv[i].msg_hdr.msg_iov = &self->iov_in[i];
        self->recv[i].msg_hdr.msg_iovlen = 1;
        self->recv[i].msg_hdr.msg_name = &self->names[i];
        self->send[i].msg_hdr.msg_iov = &self->iov_out[i];
        self->send[i].msg_hdr.msg_iovlen = 1;
    }
    self->used = BATCH;
    return 0;
}

/* The key ``slow`` is given for the sender: an IPv4 address as the kernel stored it (an int in
 * the host's order), or an IPv6 one's 16 octets and scope id (bytes). */
static PyObject *sender_key(Batch *self, int i) {
    if (!self->v6) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&self->names[i];
        uint32_t a;
        memcpy(&a, &sin->sin_addr, 4);
        return PyLong_FromUnsignedLong(a);
    }
    return PyBytes_FromStringAndSize((const char *)&self->names[i].sin6_addr, 20);
}

/* The memo's entry for the query in slot i (``rest``: its octets after the ID): under ``rest``,
 * else under (rest, the sender's address text) when ``clients`` knows the sender (an answer that
 * depends on the resolver's own address).  A new reference; NULL with no exception when none. */
static PyObject *memo_entry(Batch *self, int i, PyObject *memo, PyObject *clients, PyObject *rest) {
    PyObject *entry = PyDict_GetItemWithError(memo, rest); /* borrowed */
    if (entry == NULL && !PyErr_Occurred() && clients != Py_None) {
        PyObject *sender = sender_key(self, i);
        PyObject *text = sender != NULL ? PyDict_GetItemWithError(clients, sender) : NULL;
        Py_XDECREF(sender);
        if (text != NULL) {
            PyObject *key = PyTuple_Pack(2, rest, text);
            if (key != NULL) {
                entry = PyDict_GetItemWithError(memo, key);
                Py_DECREF(key);
            }
        }
    }
    Py_XINCREF(entry);
    return entry;
}

/* The memo's answer for the query in slot i, written to ``out``: its length, with a new reference
 * to its counting key in ``key`` and its ECS flag in ``ecs``; 0 when the memo has none; -1 with
 * an exception set. */
static Py_ssize_t memo_answer(Batch *self, int i, PyObject *memo, PyObject *clients, PyObject *rest,
                              const char *data, char *out, PyObject **key, int *ecs) {
    PyObject *entry = memo_entry(self, i, memo, clients, rest);
    if (entry == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) < 3) {
        Py_DECREF(entry);
        return 0;
    }
    PyObject *tail = PyTuple_GET_ITEM(entry, 0);
    if (tail == Py_None) {
        /* A GSLB entry: (None, key, ecs, tails, again); again() counts one answer and picks it. */
        PyObject *tails = PyTuple_GET_SIZE(entry) >= 5 ? PyTuple_GET_ITEM(entry, 3) : NULL;
        if (tails == NULL || !PyTuple_CheckExact(tails)) {
            Py_DECREF(entry);
            return 0;
        }
        PyObject *picked = PyObject_CallNoArgs(PyTuple_GET_ITEM(entry, 4));
        Py_ssize_t at = picked != NULL ? PyLong_AsSsize_t(picked) : -1;
        Py_XDECREF(picked);
        if (at == -1 && PyErr_Occurred()) {
            Py_DECREF(entry);
            return -1;
        }
        if (at < 0 || at >= PyTuple_GET_SIZE(tails)) {
            Py_DECREF(entry);
            PyErr_SetString(PyExc_IndexError, "a memo entry's again() picked no answer it holds");
            return -1;
        }
        tail = PyTuple_GET_ITEM(tails, at);
    }
    if (!PyBytes_CheckExact(tail) || PyBytes_GET_SIZE(tail) + 2 > SLOT) {
        int counted = PyTuple_GET_ITEM(entry, 0) == Py_None;
        Py_DECREF(entry);
        if (!counted) return 0; /* not an answer of ours: the Python path's */
        /* again() counted it already: the Python path must not count it again */
        PyErr_SetString(PyExc_TypeError, "a memo entry's answer is not a datagram's bytes");
        return -1;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(tail);
    out[0] = data[0];
    out[1] = data[1];
    memcpy(out + 2, PyBytes_AS_STRING(tail), (size_t)size);
    *key = PyTuple_GET_ITEM(entry, 1);
    Py_INCREF(*key);
    *ecs = PyTuple_GET_ITEM(entry, 2) == Py_True;
    Py_DECREF(entry);
    return size + 2;
}

static PyObject *counted_of(Count *counts, int nkeys, long hits, long ecs, long long nanos, long *buckets,
                            int nbuckets) {
    PyObject *pairs = PyTuple_New(nkeys);
    if (pairs == NULL) return NULL;
    for (int k = 0; k < nkeys; k++) {
        PyObject *pair = Py_BuildValue("(Ol)", counts[k].key, counts[k].n);
        if (pair == NULL) {
            Py_DECREF(pairs);
            return NULL;
        }
        PyTuple_SET_ITEM(pairs, k, pair);
    }
    PyObject *hist = PyTuple_New(nbuckets);
    if (hist == NULL) {
        Py_DECREF(pairs);
        return NULL;
    }
    for (int b = 0; b < nbuckets; b++) {
        PyObject *n = PyLong_FromLong(buckets[b]);
        if (n == NULL) {
            Py_DECREF(pairs);
            Py_DECREF(hist);
            return NULL;
        }
        PyTuple_SET_ITEM(hist, b, n);
    }
    return Py_BuildValue("(llLNN)", hits, ecs, nanos, hist, pairs);
}

/* Send the first ``sending`` answers; an answer the kernel refuses is dropped (a lost datagram). */
static void send_all(Batch *self, int sending) {
    int sent = 0;
    while (sent < sending) {
        int done = sendmmsg(self->fd, &self->send[sent], (unsigned)(sending - sent), 0);
        if (done < 0) {
            if (errno == EINTR) continue;
            done = 1;
        }
        sent += done;
    }
}

/* Count one answer given here: its time in the histogram, its key among the call's keys (``key``
 * is a new reference, kept there or dropped). */
typedef struct {
    Count counts[MAX_KEYS];
    int nkeys;
    long hits, ecs;
    long long nanos;
    long buckets[MAX_BOUNDS + 1];
} Tally;

static void tally(Batch *self, Tally *t, long long took, PyObject *key, int ecs) {
    int b = 0;
    while (b < self->nbounds && self->bounds[b] < took) b++;
    t->buckets[b]++;
    t->nanos += took;
    t->hits++;
    t->ecs += ecs != 0;
    int k = 0;
    while (k < t->nkeys && t->counts[k].key != key) k++;
    if (k == t->nkeys) {
        t->counts[k].key = key;
        t->counts[k].n = 0;
        t->nkeys++;
    } else {
        Py_DECREF(key);
    }
    t->counts[k].n++;
}

/* The answer for the query in slot i from the memo or the hook, as memo_answer says.
 *
 * Both are keyed by the query with its name in lower case (fastpath.py's ``_lowered``), which is
 * how nearly every query arrives; a resolver that randomises the case of each name (0x20, as
 * Google Public DNS does) is looked up lower-cased, and gets its own name back in the answer's
 * question, as ``FastPath._memo_mixed_case`` does it.  The name ends at the first zero octet
 * after the header (should a label hold one, what follows it is compared as it is, there too). */
static Py_ssize_t answer_here(Batch *self, int i, PyObject *memo, PyObject *clients, const Hook *hook,
                              PyObject *hook_ctx, const char *data, Py_ssize_t len, char *out, PyObject **key,
                              int *ecs) {
    if (len < 12) return 0;
    PyObject *rest = PyBytes_FromStringAndSize(data + 2, len - 2);
    if (rest == NULL) return -1;
    const char *zero = memchr(data + 12, 0, (size_t)(len - 12));
    Py_ssize_t end = zero != NULL ? zero - data : 12;
    int mixed = 0;
    char *name = PyBytes_AS_STRING(rest) + 10; /* not hashed yet: still ours to change */
    for (Py_ssize_t j = 0; j < end - 12; j++) {
        if (name[j] >= 'A' && name[j] <= 'Z') {
            name[j] += 'a' - 'A';
            mixed = 1;
        }
    }
    Py_ssize_t size = memo_answer(self, i, memo, clients, rest, data, out, key, ecs);
    if (size > 0 && mixed) memcpy(out + 12, data + 12, (size_t)(end - 12)); /* the asker's own case */
    if (size == 0 && hook != NULL) size = hook->answer(hook_ctx, data, len, rest, out, SLOT, key, ecs);
    Py_DECREF(rest);
    return size;
}

static PyObject *Batch_serve(Batch *self, PyObject *args) {
    PyObject *memo, *slow, *clients = Py_None, *hooked = Py_None;
    if (!PyArg_ParseTuple(args, "OO|OO:serve", &memo, &slow, &clients, &hooked)) return NULL;
    if ((memo != Py_None && !PyDict_Check(memo)) || (clients != Py_None && !PyDict_Check(clients))) {
        PyErr_SetString(PyExc_TypeError, "memo and clients must be dicts or None");
        return NULL;
    }
    const Hook *hook = NULL;
    PyObject *hook_ctx = NULL;
    if (hooked != Py_None) {
        if (memo == Py_None || !PyTuple_Check(hooked) || PyTuple_GET_SIZE(hooked) != 2) {
            PyErr_SetString(PyExc_TypeError, "hook must be (capsule, context), with a memo");
            return NULL;
        }
        hook = PyCapsule_GetPointer(PyTuple_GET_ITEM(hooked, 0), HOOK_NAME);
        if (hook == NULL) return NULL;
        hook_ctx = PyTuple_GET_ITEM(hooked, 1);
    }
    if (self->in == NULL) {
        PyErr_SetString(PyExc_ValueError, "Batch not initialised");
        return NULL;
    }
    Tally t;
    memset(&t, 0, sizeof(t));
    long received = 0;
    int failed = 0;  /* ``slow`` raised (only what ``answer_safely`` lets through): sent what was ready, then raise */
    long errors = 0;    /* the memo's or the hook's Python raised: that datagram went to ``slow`` */
    PyObject *error = NULL; /* the first of those exceptions, for the caller to log */

    for (int round = 0; round < ROUNDS && !failed; round++) {
        for (int i = 0; i < self->used; i++) self->recv[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in6);
        int n = recvmmsg(self->fd, self->recv, BATCH, MSG_DONTWAIT, NULL);
        self->used = n > 0 ? n : 0;
        if (n <= 0) break;
        received += n;
        int sending = 0;
        for (int i = 0; i < n && !failed; i++) {
            const char *data = self->in + (size_t)i * SLOT;
            Py_ssize_t len = self->recv[i].msg_len;
            char *out = self->out + (size_t)sending * SLOT;
            Py_ssize_t size = 0;
            if (memo != Py_None) {
                long long start = now_ns();
                PyObject *key = NULL;
                int ecs = 0;
                size = answer_here(self, i, memo, clients, hook, hook_ctx, data, len, out, &key, &ecs);
                if (size < 0) {
                    /* A bug behind a Python callback: contained as answer_safely contains the handler's;
                     * the Python path answers this one (it may raise again there: SERVFAIL). */
                    PyObject *type, *value, *traceback;
                    PyErr_Fetch(&type, &value, &traceback);
                    PyErr_NormalizeException(&type, &value, &traceback);
                    if (error == NULL && value != NULL) {
                        if (traceback != NULL) PyException_SetTraceback(value, traceback);
                        error = value;
                        value = NULL;
                    }
                    Py_XDECREF(type);
                    Py_XDECREF(value);
                    Py_XDECREF(traceback);
                    errors++;
                    size = 0;
                } else if (size > 0) {
                    tally(self, &t, now_ns() - start, key, ecs);
                }
            }
            if (size == 0) {
                PyObject *datagram = PyBytes_FromStringAndSize(data, len);
                PyObject *sender = datagram != NULL ? sender_key(self, i) : NULL;
                PyObject *response = sender != NULL ? PyObject_CallFunctionObjArgs(slow, datagram, sender, NULL) : NULL;
                Py_XDECREF(datagram);
                Py_XDECREF(sender);
                if (response == NULL) {
                    failed = 1;
                    break;
                }
                if (response == Py_None) {
                    Py_DECREF(response);
                    continue;
                }
                if (!PyBytes_Check(response)) {
                    Py_DECREF(response);
                    PyErr_SetString(PyExc_TypeError, "slow() must return bytes or None");
                    failed = 1;
                    break;
                }
                size = PyBytes_GET_SIZE(response);
                if (size <= SLOT) memcpy(out, PyBytes_AS_STRING(response), (size_t)size);
                Py_DECREF(response);
                if (size > SLOT) continue;
            }
            self->iov_out[sending].iov_len = (size_t)size;
            self->send[sending].msg_hdr.msg_name = &self->names[i];
            self->send[sending].msg_hdr.msg_namelen = self->recv[i].msg_hdr.msg_namelen;
            sending++;
        }
        send_all(self, sending);
        if (n < BATCH) break;
    }
    PyObject *result = NULL;
    if (!failed) {
        PyObject *counted = Py_None;
        Py_INCREF(counted);
        if (t.hits > 0) counted = counted_of(t.counts, t.nkeys, t.hits, t.ecs, t.nanos, t.buckets, self->nbounds + 1);
        if (counted != NULL)
            result = Py_BuildValue("(lNlO)", received, counted, errors, error != NULL ? error : Py_None);
    }
    Py_XDECREF(error);
    for (int k = 0; k < t.nkeys; k++) Py_DECREF(t.counts[k].key);
    return result;
}

static PyMethodDef Batch_methods[] = {
    {"serve", (PyCFunction)Batch_serve, METH_VARARGS,
     "serve(memo, slow, clients=None, hook=None) -> (received, counted, errors, error): read, answer and send up to 4\n"
     "batches of 64 datagrams.  memo: query after its ID (or (that, sender text), the sender's text from\n"
     "clients, keyed as slow's key) -> entry; hook: (capsule, context), asked after the memo (_mmsg.h);\n"
     "slow(datagram, sender key) -> answer or None for the rest.  counted is None, or (answered here,\n"
     "with ECS, nanoseconds, buckets, ((key, n), ...)); errors: how many datagrams went to slow because\n"
     "the memo's or the hook's Python raised, error the first exception."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "geodns.dns._mmsg.Batch",
    .tp_basicsize = sizeof(Batch),
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Batch(fd, v6, bounds=()): recvmmsg/sendmmsg over one bound, non-blocking UDP socket.",
    .tp_methods = Batch_methods,
    .tp_init = (initproc)Batch_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_mmsg",
    .m_doc = "UDP in batches, and the memo's hits answered in C (see udp.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__mmsg(void) {
    if (PyType_Ready(&BatchType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&BatchType);
    if (PyModule_AddObject(m, "Batch", (PyObject *)&BatchType) < 0) {
        Py_DECREF(&BatchType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "BATCH", BATCH);
    PyModule_AddIntConstant(m, "ROUNDS", ROUNDS);
    return m;
}
