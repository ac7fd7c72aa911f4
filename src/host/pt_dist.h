/* pt_dist.h — collectives across processes (DESIGN.md "Distribution"): one process per rank, MPI
 * for host (CPU) tensors, NCCL for device (CUDA) tensors, and a single-process backend when a
 * program runs alone. The Lua module is proteus._dist (src/bindings/dist.c), the library
 * lua/lib/proteus/dist.lua; the whole picture is docs/distributed.md.
 *
 * Backends (chosen once by pt_dist_init):
 *   single  world 1, rank 0: every collective is the identity (avg divides by 1, all_gather and
 *           reduce_scatter copy). Always there.
 *   mpi     when built with MPI (PT_WITH_MPI) and started by an MPI launcher (mpirun / mpiexec:
 *           OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the environment). Host tensors go through
 *           MPI collectives; bf16 sums use a user-defined MPI op (f32 add, rounded to bf16 per add).
 *   nccl    device tensors (PT_WITH_CUDA): a communicator created on first use over the rank's GPU
 *           (local_rank mod device count); the unique id comes from rank 0 over MPI, so any number
 *           of nodes works; with world 1 the id stays in-process. Collectives are enqueued on the
 *           device's compute stream (stream-ordered, like every kernel).
 *   PROTEUS_DIST=single in the environment forces the single backend even under a launcher.
 *
 * Tensors: contiguous, any dtype for all_gather/broadcast; all_reduce/reduce_scatter take f32, f64,
 * bf16 (sum/avg/max/min) and i64, i32, u8 (sum/max/min). avg = sum then division by the world size
 * (floats only). Every rank must call the same collectives in the same order with the same shapes
 * (the MPI/NCCL contract); shapes are not exchanged.
 *
 * Dead ranks: every blocking host collective runs under a watchdog with a deadline (timeout, default
 * 600 s, PROTEUS_DIST_TIMEOUT=seconds or pt_dist_set_timeout). A rank stuck past it because a peer
 * died or hangs prints
 *   "proteus.dist: rank R of W: <op> did not complete within S s; a peer rank died or hangs ..."
 * and ends the process with exit code 124 (the only place proteus ends a process on its own: a
 * blocked MPI call cannot return). The launcher (mpirun) then ends the remaining ranks. MPI errors
 * are returned (MPI_ERRORS_RETURN), never fatal, and become PT_ERR_DEVICE with MPI's message.
 *
 * Tests: tests/lua/test_dist.lua (single process), tests/cli/test_dist_mpirun.sh (mpirun -np 2),
 * tests/gpu/test_dist_nccl.lua (1-rank NCCL; skips without a GPU).
 */
#ifndef PT_DIST_H
#define PT_DIST_H

#include <stddef.h>

#include "pt_tensor.h"

typedef enum { PT_DIST_SINGLE = 0, PT_DIST_MPI = 1 } pt_dist_backend;
typedef enum { PT_RED_SUM = 0, PT_RED_AVG, PT_RED_MAX, PT_RED_MIN } pt_dist_op;

#define PT_DIST_EXIT_TIMEOUT 124 /* exit code of a rank ended by the watchdog */

/* Initialises the backend once (later calls return PT_OK and change nothing). timeout_s > 0 sets the
 * watchdog deadline, <= 0 keeps PROTEUS_DIST_TIMEOUT or the default. Under MPI, MPI is finalised at
 * process exit (atexit), itself under the watchdog. */
pt_status pt_dist_init(double timeout_s);
int pt_dist_initialized(void);
pt_dist_backend pt_dist_backend_get(void);
const char *pt_dist_backend_name(void); /* "single" / "mpi" */
int pt_dist_rank(void);
int pt_dist_world(void);
int pt_dist_local_rank(void);  /* rank among the processes of this node */
int pt_dist_local_world(void); /* processes on this node */
/* 1 when this build has MPI / NCCL compiled in. */
int pt_dist_has_mpi(void);
int pt_dist_has_nccl(void);

double pt_dist_timeout(void);
pt_status pt_dist_set_timeout(double seconds);

/* Parses "sum", "avg" (or "mean"), "max", "min". */
pt_status pt_dist_op_parse(const char *name, pt_dist_op *out);

/* In place on t (contiguous). */
pt_status pt_dist_all_reduce(pt_tensor *t, pt_dist_op op);
/* out (contiguous, numel k) ← op over ranks of in's slice [rank·k, (rank+1)·k) (in numel W·k). */
pt_status pt_dist_reduce_scatter(pt_tensor *out, const pt_tensor *in, pt_dist_op op);
/* out (contiguous, numel W·k) ← in (numel k) of every rank, in rank order. */
pt_status pt_dist_all_gather(pt_tensor *out, const pt_tensor *in);
/* t ← root's t. */
pt_status pt_dist_broadcast(pt_tensor *t, int root);
pt_status pt_dist_barrier(void);

/* Ends every rank now (MPI_Abort) after printing msg; single backend: returns PT_ERR_VALUE with msg
 * (nothing to abort). Used by dist.main when a rank's script fails, so the others do not wait for
 * the watchdog. */
pt_status pt_dist_abort(const char *msg, int code);

#endif
