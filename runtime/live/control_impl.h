/* control_impl.h - private: the sk_control struct shared by control.c (queue,
 * status, stdin reader) and control_http.c (the HTTP server). */
#ifndef SK_CONTROL_IMPL_H
#define SK_CONTROL_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "runtime/live/control.h"

struct sk_control {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* signalled on every push */
    sk_ctl_cmd *q;              /* ring of max_queue */
    int qcap, qhead, qn;
    uint64_t next_id;
    atomic_int stop;
    size_t max_arg;
    int accept_text;
    char **embeds;
    int n_embeds;
    sk_ctl_status st;           /* last published */
    int have_status;
    /* stdin reader */
    pthread_t in_th;
    int in_running, in_fd;
    atomic_int in_quit;
    /* HTTP server (control_http.c) */
    void *http;
    void (*http_stop)(sk_control *c);
    int http_port;
    /* refreshes a status copy as of the request (sk_control_set_status_hook) */
    void (*status_hook)(void *user, sk_ctl_status *st);
    void *status_hook_user;
};

#endif
