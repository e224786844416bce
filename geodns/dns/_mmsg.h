/* What the UDP loop (_mmsg.c) asks of a hook that answers more queries without the interpreter
 * (geodns/answer/_subnets.c).  The hook comes as a capsule named HOOK_NAME, with a context
 * object of its own, so dns/ needs to know nothing of what the hook knows. */
#ifndef GEODNS_MMSG_H
#define GEODNS_MMSG_H

#include <Python.h>

#define HOOK_NAME "geodns.hook"

typedef struct {
    /* The answer to the query ``data`` (``len`` at least 12: a header; ``rest``: its octets after
     * the ID, the name up to its first zero octet in lower case, as a bytes object),
     * written to ``out`` (``room`` octets): its length, with a new reference to its counting key
     * in ``key`` and whether it carried a client subnet in ``ecs``; 0 when the hook leaves it to
     * the interpreter (nothing counted, nothing changed); -1 with an exception set. */
    Py_ssize_t (*answer)(PyObject *ctx, const char *data, Py_ssize_t len, PyObject *rest, char *out,
                         Py_ssize_t room, PyObject **key, int *ecs);
} Hook;

#endif
