// Data-parallel training across processes with Debian's OpenMPI: started by `mpirun -np R hearth train ...`,
// every rank holds the whole model, computes the gradients of its share of each batch's rows, and the ranks sum
// them before the (identical) optimiser step. A plain `hearth train` never initialises MPI: one rank of one.
#pragma once
#include <cstddef>

namespace hearth::lab {

class Distributed {
public:
    // Initialises MPI when the process was started by an MPI launcher (mpirun sets OMPI_COMM_WORLD_SIZE or
    // PMIX_RANK); otherwise a single rank. Idempotent.
    static Distributed& get();
    ~Distributed();

    int rank() const { return rank_; }
    int size() const { return size_; }
    bool is_root() const { return rank_ == 0; }
    bool active() const { return active_; }

    // Sums x over the ranks, leaving the same bits on every rank (rank 0 reduces, then broadcasts: an
    // all-reduce may add in a different order on different ranks, and the ranks' weights must never diverge).
    void sum(float* x, size_t n);
    void sum(double* x, size_t n);
    // Ends every rank: one failing rank must not leave the others waiting in a collective.
    [[noreturn]] void abort(int code);

private:
    Distributed();
    bool active_ = false;
    int rank_ = 0, size_ = 1;
};

}  // namespace hearth::lab
