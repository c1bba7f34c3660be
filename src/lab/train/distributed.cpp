#include "lab/train/distributed.h"

// The C API only: OpenMPI's deprecated C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdlib>

namespace hearth::lab {

Distributed& Distributed::get() {
    static Distributed d;
    return d;
}

Distributed::Distributed() {
    const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_RANK");
    if (!launched) return;
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) MPI_Init(nullptr, nullptr);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    active_ = true;
}

Distributed::~Distributed() {
    if (!active_) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

namespace {
// MPI counts are ints: large buffers go in pieces.
template <class T>
void reduce_bcast(T* x, size_t n, MPI_Datatype type, int rank) {
    constexpr size_t kPiece = size_t(1) << 28;
    for (size_t off = 0; off < n; off += kPiece) {
        const int count = static_cast<int>(n - off < kPiece ? n - off : kPiece);
        MPI_Reduce(rank == 0 ? MPI_IN_PLACE : x + off, rank == 0 ? x + off : nullptr, count, type, MPI_SUM, 0,
                   MPI_COMM_WORLD);
        MPI_Bcast(x + off, count, type, 0, MPI_COMM_WORLD);
    }
}
}  // namespace

void Distributed::sum(float* x, size_t n) {
    if (active_ && size_ > 1) reduce_bcast(x, n, MPI_FLOAT, rank_);
}

void Distributed::sum(double* x, size_t n) {
    if (active_ && size_ > 1) reduce_bcast(x, n, MPI_DOUBLE, rank_);
}

void Distributed::abort(int code) {
    if (active_ && size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
    std::exit(code);
}

}  // namespace hearth::lab
