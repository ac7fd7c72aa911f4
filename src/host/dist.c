/* dist.c — the collectives of pt_dist.h: the single-process backend, MPI for host tensors (with a
 * bf16 sum/max/min as user-defined MPI ops), NCCL for device tensors (compiled under PT_WITH_CUDA),
 * and the watchdog that ends a rank stuck in a collective because a peer died.
 *
 * Watchdog: one detached thread, started on the first guarded call. pt_dist_guard_begin(op) arms a
 * deadline (now + timeout) before a blocking MPI call, pt_dist_guard_end disarms it; a deadline that
 * passes while armed prints the message of pt_dist.h and calls _exit(124). It never calls MPI (MPI is
 * initialised MPI_THREAD_FUNNELED: only the main thread talks to MPI).
 *
 * Tests: tests/lua/test_dist.lua (single), tests/cli/test_dist_mpirun.sh (mpirun -np 2, including a
 * killed and a stopped rank), tests/gpu/test_dist_nccl.lua (1-rank NCCL).
 */
#include "pt_dist.h"

#include <math.h>    /* isfinite */
#include <pthread.h> /* the watchdog thread */
#include <stdio.h>   /* fprintf, snprintf */
#include <stdlib.h>  /* getenv, strtod, atexit */
#include <string.h>  /* strcmp, memcpy */
#include <time.h>    /* clock_gettime */
#include <unistd.h>  /* _exit, getpid */

#ifdef PT_WITH_MPI
#include <mpi.h> /* MPI_Init_thread, MPI_Allreduce, ... */
#endif
#ifdef PT_WITH_CUDA
#include <nccl.h> /* ncclCommInitRank, ncclAllReduce, ... */

#include "../kernels/cuda/pt_cuda_internal.h" /* pt_cuda_use, pt_cuda_compute_stream */
#endif

#define PT_DIST_DEFAULT_TIMEOUT 600.0

static struct {
    int init;
    pt_dist_backend backend;
    int rank, world, local_rank, local_world;
    double timeout; /* seconds; 0 = no watchdog */
#ifdef PT_WITH_MPI
    int mpi_owned, mpi_finalized;
    MPI_Comm comm;
    MPI_Datatype bf16;
    MPI_Op bf16_sum, bf16_max, bf16_min;
#endif
} g = {0, PT_DIST_SINGLE, 0, 1, 0, 1, PT_DIST_DEFAULT_TIMEOUT
#ifdef PT_WITH_MPI
       , 0, 0, 0, 0, 0, 0, 0
#endif
};

/* ---------------------------------------------------------------------------------------------- */
/* watchdog                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cv;
static int wd_started, wd_armed;
static unsigned long wd_gen;
static struct timespec wd_deadline;
static const char *wd_op = "";
static double wd_secs;

static void wd_fire(void) {
    char msg[512];
    int n = snprintf(msg, sizeof msg,
                     "proteus.dist: rank %d of %d (pid %d): %s did not complete within %g s; a peer rank died or "
                     "hangs. Ending this rank (exit code %d). Check the other ranks' output for the first error; "
                     "raise the limit with PROTEUS_DIST_TIMEOUT=seconds or dist.init{timeout = seconds}.\n",
                     g.rank, g.world, (int)getpid(), wd_op, wd_secs, PT_DIST_EXIT_TIMEOUT);
    if (n > 0) {
        ssize_t w = write(2, msg, (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1));
        (void)w;
    }
    _exit(PT_DIST_EXIT_TIMEOUT);
}

static int ts_before(const struct timespec *a, const struct timespec *b) {
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *wd_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&wd_mu);
    for (;;) {
        while (!wd_armed)
            pthread_cond_wait(&wd_cv, &wd_mu);
        unsigned long gen = wd_gen;
        struct timespec dl = wd_deadline;
        pthread_cond_timedwait(&wd_cv, &wd_mu, &dl);
        if (wd_armed && wd_gen == gen) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (!ts_before(&now, &dl))
                wd_fire();
        }
    }
    return NULL;
}

static void wd_start_locked(void) {
    if (wd_started)
        return;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_t th;
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &ta, wd_main, NULL) == 0)
        wd_started = 1;
    pthread_attr_destroy(&ta);
}

__attribute__((unused)) static void pt_dist_guard_begin(const char *op) {
    if (!(g.timeout > 0) || g.world <= 1)
        return;
    pthread_mutex_lock(&wd_mu);
    wd_start_locked();
    if (wd_started) {
        clock_gettime(CLOCK_MONOTONIC, &wd_deadline);
        double whole = (double)(long long)g.timeout;
        wd_deadline.tv_sec += (time_t)whole;
        wd_deadline.tv_nsec += (long)((g.timeout - whole) * 1e9);
        if (wd_deadline.tv_nsec >= 1000000000L) {
            wd_deadline.tv_sec++;
            wd_deadline.tv_nsec -= 1000000000L;
        }
        wd_op = op;
        wd_secs = g.timeout;
        wd_armed = 1;
        wd_gen++;
        pthread_cond_signal(&wd_cv);
    }
    pthread_mutex_unlock(&wd_mu);
}

__attribute__((unused)) static void pt_dist_guard_end(void) {
    if (!wd_started)
        return;
    pthread_mutex_lock(&wd_mu);
    wd_armed = 0;
    wd_gen++;
    pthread_cond_signal(&wd_cv);
    pthread_mutex_unlock(&wd_mu);
}

/* ---------------------------------------------------------------------------------------------- */
/* queries and options                                                                             */
/* ---------------------------------------------------------------------------------------------- */

int pt_dist_initialized(void) { return g.init; }
pt_dist_backend pt_dist_backend_get(void) { return g.backend; }
const char *pt_dist_backend_name(void) { return g.backend == PT_DIST_MPI ? "mpi" : "single"; }
int pt_dist_rank(void) { return g.rank; }
int pt_dist_world(void) { return g.world; }
int pt_dist_local_rank(void) { return g.local_rank; }
int pt_dist_local_world(void) { return g.local_world; }
double pt_dist_timeout(void) { return g.timeout; }

int pt_dist_has_mpi(void) {
#ifdef PT_WITH_MPI
    return 1;
#else
    return 0;
#endif
}

int pt_dist_has_nccl(void) {
#ifdef PT_WITH_CUDA
    return 1;
#else
    return 0;
#endif
}

pt_status pt_dist_set_timeout(double seconds) {
    if (!(seconds >= 0) || !isfinite(seconds))
        return PT_FAIL(PT_ERR_VALUE, "proteus.dist: timeout %g s is not a number of seconds >= 0 (0 = no watchdog)",
                       seconds);
    g.timeout = seconds;
    return PT_OK;
}

pt_status pt_dist_op_parse(const char *name, pt_dist_op *out) {
    if (!strcmp(name, "sum"))
        *out = PT_RED_SUM;
    else if (!strcmp(name, "avg") || !strcmp(name, "mean"))
        *out = PT_RED_AVG;
    else if (!strcmp(name, "max"))
        *out = PT_RED_MAX;
    else if (!strcmp(name, "min"))
        *out = PT_RED_MIN;
    else
        return PT_FAIL(PT_ERR_VALUE, "proteus.dist: unknown reduction '%s'; use \"sum\", \"avg\", \"max\" or \"min\"",
                       name);
    return PT_OK;
}

__attribute__((unused)) static const char *op_name(pt_dist_op op) {
    static const char *names[] = {"sum", "avg", "max", "min"};
    return names[op];
}

/* ---------------------------------------------------------------------------------------------- */
/* MPI                                                                                             */
/* ---------------------------------------------------------------------------------------------- */

#ifdef PT_WITH_MPI
static pt_status mpi_fail(int err, const char *what) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, s, &len) != MPI_SUCCESS)
        snprintf(s, sizeof s, "MPI error %d", err);
    return PT_FAIL(PT_ERR_DEVICE, "proteus.dist: %s failed on rank %d of %d: %s", what, g.rank, g.world, s);
}

#define PT_MPI_RUN(what, call)                 \
    do {                                       \
        pt_dist_guard_begin(what);             \
        int pt_mpi_e_ = (call);                \
        pt_dist_guard_end();                   \
        if (pt_mpi_e_ != MPI_SUCCESS)          \
            return mpi_fail(pt_mpi_e_, (what)); \
    } while (0)

static void bf16_sum_fn(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++)
        b[i] = pt_f32_to_bf16(pt_bf16_to_f32(a[i]) + pt_bf16_to_f32(b[i]));
}

static void bf16_max_fn(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++)
        if (pt_bf16_to_f32(a[i]) > pt_bf16_to_f32(b[i]))
            b[i] = a[i];
}

static void bf16_min_fn(void *in, void *inout, int *len, MPI_Datatype *dt) {
    (void)dt;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++)
        if (pt_bf16_to_f32(a[i]) < pt_bf16_to_f32(b[i]))
            b[i] = a[i];
}

static void mpi_atexit(void) {
    if (!g.mpi_owned || g.mpi_finalized)
        return;
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin)
        return;
    g.mpi_finalized = 1;
    pt_dist_guard_begin("MPI_Finalize at exit (waiting for every rank to finish its script)");
    MPI_Finalize();
    pt_dist_guard_end();
}

static pt_status mpi_type(pt_dtype dt, int reducing, MPI_Datatype *out) {
    switch (dt) {
    case PT_F32: *out = MPI_FLOAT; return PT_OK;
    case PT_F64: *out = MPI_DOUBLE; return PT_OK;
    case PT_BF16: *out = g.bf16; return PT_OK;
    case PT_I64: *out = MPI_INT64_T; return PT_OK;
    case PT_I32: *out = MPI_INT32_T; return PT_OK;
    case PT_U8: *out = MPI_UINT8_T; return PT_OK;
    default: break;
    }
    (void)reducing;
    return PT_FAIL(PT_ERR_DTYPE, "proteus.dist: cannot reduce a %s tensor; reductions take f32, f64, bf16, i64, i32 "
                                 "or u8 (cast first)", pt_dtype_name(dt));
}

static MPI_Op mpi_op(pt_dtype dt, pt_dist_op op) {
    if (dt == PT_BF16)
        return op == PT_RED_MAX ? g.bf16_max : op == PT_RED_MIN ? g.bf16_min : g.bf16_sum;
    return op == PT_RED_MAX ? MPI_MAX : op == PT_RED_MIN ? MPI_MIN : MPI_SUM;
}

static pt_status mpi_init(void) {
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
        int provided = 0;
        int e = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (e != MPI_SUCCESS)
            return PT_FAIL(PT_ERR_DEVICE, "proteus.dist: MPI_Init_thread failed (error %d); check the mpirun command "
                                          "line and that every rank runs the same proteus build", e);
        g.mpi_owned = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int e = MPI_Comm_dup(MPI_COMM_WORLD, &g.comm);
    if (e != MPI_SUCCESS)
        return mpi_fail(e, "MPI_Comm_dup");
    MPI_Comm_set_errhandler(g.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(g.comm, &g.rank);
    MPI_Comm_size(g.comm, &g.world);
    MPI_Comm local;
    e = MPI_Comm_split_type(g.comm, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL, &local);
    if (e != MPI_SUCCESS)
        return mpi_fail(e, "MPI_Comm_split_type (local ranks)");
    MPI_Comm_rank(local, &g.local_rank);
    MPI_Comm_size(local, &g.local_world);
    MPI_Comm_free(&local);
    MPI_Type_contiguous(2, MPI_BYTE, &g.bf16);
    MPI_Type_commit(&g.bf16);
    MPI_Op_create(bf16_sum_fn, 1, &g.bf16_sum);
    MPI_Op_create(bf16_max_fn, 1, &g.bf16_max);
    MPI_Op_create(bf16_min_fn, 1, &g.bf16_min);
    g.backend = PT_DIST_MPI;
    if (g.mpi_owned)
        atexit(mpi_atexit);
    return PT_OK;
}
#endif

/* ---------------------------------------------------------------------------------------------- */
/* init                                                                                            */
/* ---------------------------------------------------------------------------------------------- */

static const char *launcher_env(void) {
    static const char *keys[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", NULL};
    for (int i = 0; keys[i]; i++)
        if (getenv(keys[i]))
            return keys[i];
    return NULL;
}

pt_status pt_dist_init(double timeout_s) {
    if (timeout_s > 0)
        PT_TRY(pt_dist_set_timeout(timeout_s));
    if (g.init)
        return PT_OK;
    if (!(timeout_s > 0)) {
        const char *te = getenv("PROTEUS_DIST_TIMEOUT");
        if (te && *te) {
            char *end;
            double v = strtod(te, &end);
            if (*end || !(v >= 0) || !isfinite(v))
                return PT_FAIL(PT_ERR_VALUE, "proteus.dist: PROTEUS_DIST_TIMEOUT=%s is not a number of seconds >= 0 "
                                             "(0 = no watchdog)", te);
            g.timeout = v;
        }
    }
    const char *force = getenv("PROTEUS_DIST");
    if (force && *force && strcmp(force, "single") && strcmp(force, "auto"))
        return PT_FAIL(PT_ERR_VALUE, "proteus.dist: PROTEUS_DIST=%s; use \"single\" (one process) or \"auto\"",
                       force);
    const char *launcher = launcher_env();
    if (launcher && !(force && !strcmp(force, "single"))) {
#ifdef PT_WITH_MPI
        PT_TRY(mpi_init());
#else
        const char *ws = getenv("OMPI_COMM_WORLD_SIZE");
        if (!ws)
            ws = getenv("PMI_SIZE");
        if (ws && strcmp(ws, "1"))
            return PT_FAIL(PT_ERR_UNSUPPORTED,
                           "proteus.dist: started by an MPI launcher (%s=%s) but this proteus was built without MPI; "
                           "install libopenmpi-dev and rebuild (CMake finds MPI), or run one process",
                           launcher, ws);
#endif
    } else {
        const char *pw = getenv("PROTEUS_WORLD_SIZE");
        if (pw && *pw && strcmp(pw, "1") && !(force && !strcmp(force, "single")))
            return PT_FAIL(PT_ERR_UNSUPPORTED,
                           "proteus.dist: PROTEUS_WORLD_SIZE=%s is set, but ranks are started only through MPI: use "
                           "`proteus --nproc N script.lua` or `mpirun -np N proteus script.lua`",
                           pw);
    }
    g.init = 1;
    return PT_OK;
}

/* ---------------------------------------------------------------------------------------------- */
/* NCCL (device tensors)                                                                           */
/* ---------------------------------------------------------------------------------------------- */

#ifdef PT_WITH_CUDA
static ncclComm_t nccl_comm;
static int nccl_dev = -1;

static pt_status nccl_fail(ncclResult_t r, const char *what) {
    const char *last = nccl_comm ? ncclGetLastError(nccl_comm) : ncclGetLastError(NULL);
    return PT_FAIL(PT_ERR_DEVICE, "proteus.dist: %s failed on rank %d of %d: NCCL %s%s%s", what, g.rank, g.world,
                   ncclGetErrorString(r), last && *last ? ": " : "", last ? last : "");
}

#define PT_NCCL_CHECK(what, call)                  \
    do {                                           \
        ncclResult_t pt_nccl_r_ = (call);          \
        if (pt_nccl_r_ != ncclSuccess)             \
            return nccl_fail(pt_nccl_r_, (what));  \
    } while (0)

static pt_status nccl_ready(const pt_tensor *t) {
    PT_TRY(pt_cuda_use(t->device.index));
    if (nccl_comm) {
        if (t->device.index != nccl_dev)
            return PT_FAIL(PT_ERR_DEVICE, "proteus.dist: rank %d's NCCL communicator is on cuda:%d, the tensor is on "
                                          "cuda:%d; keep each rank's tensors on dist.device()",
                           g.rank, nccl_dev, t->device.index);
        return PT_OK;
    }
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (g.rank == 0)
        PT_NCCL_CHECK("ncclGetUniqueId", ncclGetUniqueId(&id));
#ifdef PT_WITH_MPI
    if (g.backend == PT_DIST_MPI)
        PT_MPI_RUN("MPI_Bcast of the NCCL unique id", MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, g.comm));
#endif
    pt_dist_guard_begin("ncclCommInitRank");
    ncclResult_t r = ncclCommInitRank(&nccl_comm, g.world, id, g.rank);
    pt_dist_guard_end();
    if (r != ncclSuccess) {
        nccl_comm = NULL;
        return nccl_fail(r, "ncclCommInitRank");
    }
    nccl_dev = t->device.index;
    return PT_OK;
}

static pt_status nccl_type(pt_dtype dt, ncclDataType_t *out) {
    switch (dt) {
    case PT_F32: *out = ncclFloat32; return PT_OK;
    case PT_F64: *out = ncclFloat64; return PT_OK;
    case PT_BF16: *out = ncclBfloat16; return PT_OK;
    case PT_F16: *out = ncclFloat16; return PT_OK;
    case PT_I64: *out = ncclInt64; return PT_OK;
    case PT_I32: *out = ncclInt32; return PT_OK;
    case PT_U8: *out = ncclUint8; return PT_OK;
    case PT_I8: *out = ncclInt8; return PT_OK;
    default: break;
    }
    return PT_FAIL(PT_ERR_DTYPE, "proteus.dist: NCCL cannot reduce a %s tensor", pt_dtype_name(dt));
}

static ncclRedOp_t nccl_op(pt_dist_op op) {
    return op == PT_RED_AVG ? ncclAvg : op == PT_RED_MAX ? ncclMax : op == PT_RED_MIN ? ncclMin : ncclSum;
}
#endif

/* ---------------------------------------------------------------------------------------------- */
/* collectives                                                                                     */
/* ---------------------------------------------------------------------------------------------- */

static pt_status check_tensor(const char *op, const pt_tensor *t, const char *which) {
    if (!pt_tensor_is_contiguous(t))
        return PT_FAIL(PT_ERR_VALUE, "proteus.dist.%s: the %s tensor is not contiguous; call :contiguous() first", op,
                       which);
    if (t->device.type == PT_DEV_CUDA && !pt_dist_has_nccl())
        return PT_FAIL(PT_ERR_UNSUPPORTED, "proteus.dist.%s: device tensors need NCCL (a CUDA build)", op);
    return PT_OK;
}

static int is_reducible(pt_dtype dt) {
    return dt == PT_F32 || dt == PT_F64 || dt == PT_BF16 || dt == PT_I64 || dt == PT_I32 || dt == PT_U8 ||
           dt == PT_F16 || dt == PT_I8;
}

static pt_status check_reduce(const char *op, const pt_tensor *t, pt_dist_op red) {
    if (!is_reducible(t->dtype) || ((t->dtype == PT_F16 || t->dtype == PT_I8) && t->device.type == PT_DEV_CPU))
        return PT_FAIL(PT_ERR_DTYPE, "proteus.dist.%s: cannot reduce a %s tensor; reductions take f32, f64, bf16, "
                                     "i64, i32 or u8 (cast first)", op, pt_dtype_name(t->dtype));
    if (red == PT_RED_AVG && !pt_dtype_is_float(t->dtype))
        return PT_FAIL(PT_ERR_DTYPE, "proteus.dist.%s: \"avg\" needs a float tensor, got %s; use \"sum\" and divide",
                       op, pt_dtype_name(t->dtype));
    return PT_OK;
}

static pt_status ensure_init(void) {
    if (!g.init)
        PT_TRY(pt_dist_init(0));
    return PT_OK;
}

/* dst ← src element for element in flat order (same dtype, both contiguous, same numel). */
static pt_status copy_flat(pt_tensor *dst, const pt_tensor *src) {
    pt_tensor *v = NULL;
    PT_TRY(pt_tensor_view_of(&v, src, dst->ndim, dst->shape, dst->stride, src->offset));
    pt_status s = pt_tensor_copy_(dst, v);
    pt_tensor_release(v);
    return s;
}

#ifdef PT_WITH_MPI
/* x ← x / world for the float dtypes (host) after an MPI sum */
static void host_divide(pt_tensor *t) {
    int64_t n = pt_tensor_numel(t);
    void *p = pt_tensor_data(t);
    if (t->dtype == PT_F32) {
        float w = (float)g.world;
        for (int64_t i = 0; i < n; i++)
            ((float *)p)[i] /= w;
    } else if (t->dtype == PT_F64) {
        for (int64_t i = 0; i < n; i++)
            ((double *)p)[i] /= (double)g.world;
    } else if (t->dtype == PT_BF16) {
        float w = (float)g.world;
        uint16_t *h = p;
        for (int64_t i = 0; i < n; i++)
            h[i] = pt_f32_to_bf16(pt_bf16_to_f32(h[i]) / w);
    }
}
#endif

#define PT_MPI_CHUNK ((int64_t)1 << 28)

pt_status pt_dist_all_reduce(pt_tensor *t, pt_dist_op op) {
    PT_TRY(ensure_init());
    PT_TRY(check_tensor("all_reduce", t, "input"));
    PT_TRY(check_reduce("all_reduce", t, op));
    int64_t n = pt_tensor_numel(t);
    if (n == 0)
        return PT_OK;
#ifdef PT_WITH_CUDA
    if (t->device.type == PT_DEV_CUDA) {
        ncclDataType_t ty;
        PT_TRY(nccl_type(t->dtype, &ty));
        PT_TRY(nccl_ready(t));
        void *p = pt_tensor_data(t);
        PT_NCCL_CHECK("ncclAllReduce",
                      ncclAllReduce(p, p, (size_t)n, ty, nccl_op(op), nccl_comm, pt_cuda_compute_stream()));
        return PT_OK;
    }
#endif
    if (g.world == 1)
        return PT_OK;
#ifdef PT_WITH_MPI
    MPI_Datatype ty;
    PT_TRY(mpi_type(t->dtype, 1, &ty));
    char *p = pt_tensor_data(t);
    size_t es = pt_dtype_size(t->dtype);
    char what[64];
    snprintf(what, sizeof what, "all_reduce(%s, %s)", op_name(op), pt_dtype_name(t->dtype));
    for (int64_t off = 0; off < n; off += PT_MPI_CHUNK) {
        int cnt = (int)(n - off < PT_MPI_CHUNK ? n - off : PT_MPI_CHUNK);
        PT_MPI_RUN(what, MPI_Allreduce(MPI_IN_PLACE, p + (size_t)off * es, cnt, ty, mpi_op(t->dtype, op), g.comm));
    }
    if (op == PT_RED_AVG)
        host_divide(t);
    return PT_OK;
#else
    return PT_FAIL(PT_ERR_UNSUPPORTED, "proteus.dist.all_reduce: world %d without MPI", g.world);
#endif
}

pt_status pt_dist_reduce_scatter(pt_tensor *out, const pt_tensor *in, pt_dist_op op) {
    PT_TRY(ensure_init());
    PT_TRY(check_tensor("reduce_scatter", in, "input"));
    PT_TRY(check_tensor("reduce_scatter", out, "output"));
    PT_TRY(check_reduce("reduce_scatter", in, op));
    if (in->dtype != out->dtype || !pt_device_eq(in->device, out->device))
        return PT_FAIL(PT_ERR_VALUE, "proteus.dist.reduce_scatter: input %s and output %s differ in dtype or device",
                       pt_dtype_name(in->dtype), pt_dtype_name(out->dtype));
    int64_t k = pt_tensor_numel(out), n = pt_tensor_numel(in);
    if (n != k * g.world)
        return PT_FAIL(PT_ERR_SHAPE, "proteus.dist.reduce_scatter: input has %lld elements, the output %lld; the input "
                                     "must hold world (%d) times the output (pad dim 1 to a multiple of %d)",
                       (long long)n, (long long)k, g.world, g.world);
    if (k == 0)
        return PT_OK;
#ifdef PT_WITH_CUDA
    if (in->device.type == PT_DEV_CUDA) {
        ncclDataType_t ty;
        PT_TRY(nccl_type(in->dtype, &ty));
        PT_TRY(nccl_ready(in));
        PT_NCCL_CHECK("ncclReduceScatter", ncclReduceScatter(pt_tensor_data(in), pt_tensor_data(out), (size_t)k, ty,
                                                             nccl_op(op), nccl_comm, pt_cuda_compute_stream()));
        return PT_OK;
    }
#endif
    if (g.world == 1)
        return copy_flat(out, in);
#ifdef PT_WITH_MPI
    if (k > INT32_MAX)
        return PT_FAIL(PT_ERR_VALUE, "proteus.dist.reduce_scatter: shards of %lld elements exceed MPI's int count; "
                                     "split the tensor", (long long)k);
    MPI_Datatype ty;
    PT_TRY(mpi_type(in->dtype, 1, &ty));
    char what[64];
    snprintf(what, sizeof what, "reduce_scatter(%s, %s)", op_name(op), pt_dtype_name(in->dtype));
    PT_MPI_RUN(what, MPI_Reduce_scatter_block(pt_tensor_data(in), pt_tensor_data(out), (int)k, ty,
                                              mpi_op(in->dtype, op), g.comm));
    if (op == PT_RED_AVG)
        host_divide(out);
    return PT_OK;
#else
    return PT_FAIL(PT_ERR_UNSUPPORTED, "proteus.dist.reduce_scatter: world %d without MPI", g.world);
#endif
}

pt_status pt_dist_all_gather(pt_tensor *out, const pt_tensor *in) {
    PT_TRY(ensure_init());
    PT_TRY(check_tensor("all_gather", in, "input"));
    PT_TRY(check_tensor("all_gather", out, "output"));
    if (in->dtype != out->dtype || !pt_device_eq(in->device, out->device))
        return PT_FAIL(PT_ERR_VALUE, "proteus.dist.all_gather: input %s and output %s differ in dtype or device",
                       pt_dtype_name(in->dtype), pt_dtype_name(out->dtype));
    int64_t k = pt_tensor_numel(in), n = pt_tensor_numel(out);
    if (n != k * g.world)
        return PT_FAIL(PT_ERR_SHAPE, "proteus.dist.all_gather: output has %lld elements, the input %lld; the output "
                                     "must hold world (%d) times the input",
                       (long long)n, (long long)k, g.world);
    if (k == 0)
        return PT_OK;
    size_t bytes = (size_t)k * pt_dtype_size(in->dtype);
    (void)bytes; /* unused in a build with neither MPI nor NCCL */
#ifdef PT_WITH_CUDA
    if (in->device.type == PT_DEV_CUDA) {
        PT_TRY(nccl_ready(in));
        PT_NCCL_CHECK("ncclAllGather", ncclAllGather(pt_tensor_data(in), pt_tensor_data(out), bytes, ncclUint8,
                                                     nccl_comm, pt_cuda_compute_stream()));
        return PT_OK;
    }
#endif
    if (g.world == 1)
        return copy_flat(out, in);
#ifdef PT_WITH_MPI
    if (bytes > INT32_MAX)
        return PT_FAIL(PT_ERR_VALUE, "proteus.dist.all_gather: %zu bytes per rank exceed MPI's int count; split the "
                                     "tensor", bytes);
    PT_MPI_RUN("all_gather", MPI_Allgather(pt_tensor_data(in), (int)bytes, MPI_BYTE, pt_tensor_data(out), (int)bytes,
                                           MPI_BYTE, g.comm));
    return PT_OK;
#else
    return PT_FAIL(PT_ERR_UNSUPPORTED, "proteus.dist.all_gather: world %d without MPI", g.world);
#endif
}

pt_status pt_dist_broadcast(pt_tensor *t, int root) {
    PT_TRY(ensure_init());
    PT_TRY(check_tensor("broadcast", t, "input"));
    if (root < 0 || root >= g.world)
        return PT_FAIL(PT_ERR_INDEX, "proteus.dist.broadcast: root %d is outside ranks 0..%d", root, g.world - 1);
    int64_t n = pt_tensor_numel(t);
    if (n == 0)
        return PT_OK;
    size_t bytes = (size_t)n * pt_dtype_size(t->dtype);
    (void)bytes;
#ifdef PT_WITH_CUDA
    if (t->device.type == PT_DEV_CUDA) {
        PT_TRY(nccl_ready(t));
        void *p = pt_tensor_data(t);
        PT_NCCL_CHECK("ncclBroadcast",
                      ncclBroadcast(p, p, bytes, ncclUint8, root, nccl_comm, pt_cuda_compute_stream()));
        return PT_OK;
    }
#endif
    if (g.world == 1)
        return PT_OK;
#ifdef PT_WITH_MPI
    char *p = pt_tensor_data(t);
    for (size_t off = 0; off < bytes; off += (size_t)PT_MPI_CHUNK) {
        int cnt = (int)(bytes - off < (size_t)PT_MPI_CHUNK ? bytes - off : (size_t)PT_MPI_CHUNK);
        PT_MPI_RUN("broadcast", MPI_Bcast(p + off, cnt, MPI_BYTE, root, g.comm));
    }
    return PT_OK;
#else
    return PT_FAIL(PT_ERR_UNSUPPORTED, "proteus.dist.broadcast: world %d without MPI", g.world);
#endif
}

pt_status pt_dist_barrier(void) {
    PT_TRY(ensure_init());
    if (g.world == 1)
        return PT_OK;
#ifdef PT_WITH_MPI
    PT_MPI_RUN("barrier", MPI_Barrier(g.comm));
    return PT_OK;
#else
    return PT_FAIL(PT_ERR_UNSUPPORTED, "proteus.dist.barrier: world %d without MPI", g.world);
#endif
}

pt_status pt_dist_abort(const char *msg, int code) {
    if (!msg)
        msg = "aborted";
#ifdef PT_WITH_MPI
    if (g.init && g.backend == PT_DIST_MPI && g.world > 1) {
        fprintf(stderr, "proteus.dist: rank %d of %d: %s; ending every rank (MPI_Abort)\n", g.rank, g.world, msg);
        fflush(stderr);
        MPI_Abort(g.comm, code ? code : 1);
    }
#endif
    (void)code;
    return PT_FAIL(PT_ERR_VALUE, "%s", msg);
}
